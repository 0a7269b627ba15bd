//! Assembling the container's root filesystem, in the child, inside its own
//! mount namespace. Every mount target in the image is resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image can never send a
//! mount onto the host.
//!
//! `system.rs` makes the runtime's own mounts (`/proc`, `/sys`, `/dev`,
//! masked and read-only paths), `pivot.rs` turns the assembled tree into
//! the root; the path helpers every mount goes through are here.

mod pivot;
mod system;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use super::binds::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, bind_device,
    bind_fresh_devices, bind_with,
};
use super::channel::StepError;

pub type StepResult<T> = Result<T, StepError>;

pub use pivot::{mount_points, mounts_outside, open_root, pivot};
pub use system::{MASKED, READ_ONLY, mask_paths, system_mounts};

/// Builds a [`StepError`] from the current errno.
pub fn os_err(step: impl Into<String>, detail: impl Into<String>) -> StepError {
    StepError {
        step: step.into(),
        errno: io::Error::last_os_error().raw_os_error().unwrap_or(0),
        detail: detail.into(),
    }
}

pub fn errno_err(step: impl Into<String>, errno: i32, detail: impl Into<String>) -> StepError {
    StepError {
        step: step.into(),
        errno,
        detail: detail.into(),
    }
}

pub fn cstr(p: impl AsRef<std::ffi::OsStr>) -> CString {
    use std::os::unix::ffi::OsStrExt;
    // Paths come from validated specs; an interior NUL becomes an empty path
    // that the kernel rejects with a clear ENOENT.
    CString::new(p.as_ref().as_bytes()).unwrap_or_default()
}

/// mount(2), with NULL for absent arguments.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let s = source.map(cstr);
    let t = cstr(target);
    let f = fstype.map(cstr);
    let d = data.map(cstr);
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a NUL-terminated string that
    // outlives the call.
    let r = unsafe { libc::mount(p(&s), t.as_ptr(), p(&f), flags, p(&d).cast()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `rel` under `root` as if `root` were `/` (symlinks and `..` never
/// leave it).
pub fn openat2_in_root(root: RawFd, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
    openat2(
        root,
        rel,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2(2) of `rel` (empty: `dir` itself) from `dir`, close-on-exec.
pub(super) fn openat2(dir: RawFd, rel: &Path, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let path = cstr(if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    });
    /// `struct open_how` of openat2(2).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: `how` and `path` are valid for the call; the size is exact.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Resolves `target` (absolute, inside the container) under `root`, creating
/// missing directories (and, with `file`, the last component as an empty
/// file), and returns an `O_PATH` handle to it. Symlinks are followed as if
/// `root` were `/`.
pub fn mountpoint(root: &OwnedFd, target: &Path, file: bool) -> io::Result<OwnedFd> {
    mountpoint_depth(root, target, file, 0)
}

pub(super) fn is_symlink(dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    let n = cstr(name);
    // SAFETY: a zeroed stat buffer for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir is a valid fd; n is NUL-terminated; st is valid for writes.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            n.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
}

fn read_link_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<PathBuf> {
    let n = cstr(name);
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is valid for its length; dir and n are valid.
    let len = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Where `link` (found in directory `base`, both relative to the root)
/// points, read the way RESOLVE_IN_ROOT does: `..` never climbs above the root.
fn lexical_in_root(base: &Path, link: &Path) -> PathBuf {
    let mut out = if link.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for c in link.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn mountpoint_depth(root: &OwnedFd, target: &Path, file: bool, depth: u32) -> io::Result<OwnedFd> {
    let comps: Vec<&std::ffi::OsStr> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::new();
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let parent = openat2_in_root(root.as_raw_fd(), &cur, libc::O_PATH | libc::O_DIRECTORY)?;
        cur.push(name);
        match openat2_in_root(root.as_raw_fd(), &cur, libc::O_PATH) {
            Ok(fd) if last => return Ok(fd),
            Ok(_) => continue,
            Err(e)
                if e.raw_os_error() == Some(libc::ENOENT)
                    && depth < 40
                    && is_symlink(&parent, name) =>
            {
                // A dangling symlink: make what it points at, inside the
                // root (as RESOLVE_IN_ROOT reads it), then go on through it.
                let link = read_link_at(&parent, name)?;
                let base = cur.parent().map(Path::to_path_buf).unwrap_or_default();
                let target = lexical_in_root(&base, &link);
                drop(mountpoint_depth(
                    root,
                    &Path::new("/").join(&target),
                    false,
                    depth + 1,
                )?);
                match openat2_in_root(root.as_raw_fd(), &cur, libc::O_PATH) {
                    Ok(fd) if last => return Ok(fd),
                    Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Create it relative to the parent we resolved safely.
                let n = cstr(name);
                // O_PATH fds cannot be used with mkdirat; reopen the parent as a directory.
                let dir = openat2_in_root(
                    root.as_raw_fd(),
                    cur.parent().unwrap_or(Path::new("")),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                )?;
                drop(parent);
                // SAFETY: dir is a valid directory fd; n is NUL-terminated.
                let r = unsafe {
                    if last && file {
                        let fd = libc::openat(
                            dir.as_raw_fd(),
                            n.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                            0
                        } else {
                            -1
                        }
                    } else {
                        libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), 0o755)
                    }
                };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                if last {
                    return openat2_in_root(root.as_raw_fd(), &cur, libc::O_PATH);
                }
            }
            Err(e) => return Err(e),
        }
    }
    openat2_in_root(
        root.as_raw_fd(),
        Path::new(""),
        libc::O_PATH | libc::O_DIRECTORY,
    )
}

/// Mounts onto `target` inside `root` through its resolved handle.
#[allow(clippy::too_many_arguments)]
fn mount_in(
    root: &OwnedFd,
    target: &Path,
    file: bool,
    source: Option<&str>,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
    step: &str,
) -> StepResult<()> {
    let fd = mountpoint(root, target, file).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("mount point {}", target.display()),
        )
    })?;
    mount(source, &fd_path(&fd), fstype, flags, data).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            source.unwrap_or_default().to_string(),
        )
    })
}

/// A bind remount must keep flags the kernel locked on the source mount
/// (e.g. `noexec` from the host); add them and retry once on EPERM.
pub fn remount_keeping_locked(at: &Path, flags: libc::c_ulong) -> io::Result<()> {
    match mount(None, at, None, flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let c = cstr(at);
            // SAFETY: statvfs writes into a zeroed struct we own.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: c is NUL-terminated; st is valid for writes.
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return Err(e);
            }
            let locked =
                st.f_flag & (libc::ST_NOEXEC | libc::ST_NOSUID | libc::ST_NODEV | libc::ST_RDONLY);
            mount(None, at, None, flags | locked as libc::c_ulong, None)
        }
        other => other,
    }
}

pub fn tmpfs(
    root: &OwnedFd,
    target: &Path,
    size: Option<u64>,
    mode: Option<u32>,
    step: &str,
) -> StepResult<()> {
    let mut data = format!("mode={:o}", mode.unwrap_or(0o755));
    if let Some(s) = size {
        data.push_str(&format!(",size={s}"));
    }
    mount_in(
        root,
        target,
        false,
        Some("tmpfs"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&data),
        step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_the_initramfs_everything_but_the_new_root_is_detached_deepest_first() {
        let info = "\
1 0 0:2 / / rw - rootfs rootfs rw
20 1 0:20 / /proc rw - proc proc rw
21 1 0:21 / /sys rw - sysfs sysfs rw
22 21 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
23 1 0:23 / /run rw - tmpfs tmpfs rw
24 23 0:24 / /run/rkstack/s/rootfs/web rw - overlay overlay rw
25 24 0:25 / /run/rkstack/s/rootfs/web/proc rw - proc proc rw
26 1 0:26 / /my\\040dir rw - tmpfs tmpfs rw
";
        let out = mounts_outside(info, Path::new("/run/rkstack/s/rootfs/web"));
        let shown: Vec<String> = out.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(shown, ["/sys/fs/cgroup", "/my dir", "/sys", "/proc"]);
    }
}
