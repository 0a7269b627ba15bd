//! Assembling the container's root filesystem, in the child, inside its own
//! mount namespace. Every mount target in the image is resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the image can never send a
//! mount onto the host.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use super::binds::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, bind_device,
    bind_with,
};
use super::channel::StepError;

pub type StepResult<T> = Result<T, StepError>;

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

/// Devices every container gets (bind-mounted from the host, which works in
/// a user namespace too, where mknod does not).
const DEFAULT_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/proc`, a minimal `/dev`, read-only `/sys`.
pub fn system_mounts(root: &OwnedFd, devices: &[PathBuf], own_netns: bool) -> StepResult<()> {
    // rkstack reads and writes files under /proc by name after the pivot
    // (masks, its LSM labels): they must be the procfs it mounted, not
    // wherever a symlink of the image's sends them.
    for name in ["proc", "sys"] {
        if is_symlink(root, std::ffi::OsStr::new(name)) {
            return Err(errno_err(
                format!("mount /{name}"),
                libc::ELOOP,
                format!("the rootfs's /{name} is a symlink; refused"),
            ));
        }
    }
    let nosx = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount_in(
        root,
        Path::new("/proc"),
        false,
        Some("proc"),
        Some("proc"),
        nosx,
        None,
        "mount /proc",
    )?;
    mount_in(
        root,
        Path::new("/dev"),
        false,
        Some("tmpfs"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
        "mount /dev",
    )?;
    for d in DEFAULT_DEVICES {
        let host = PathBuf::from("/dev").join(d);
        bind_device(root, &host, &format!("mount {}", host.display()))?;
    }
    for d in devices {
        bind_device(root, d, &format!("device {}", d.display()))?;
    }
    // In a user namespace the mode= option may be refused: then without it.
    let devpts = |opts: &str| {
        mount_in(
            root,
            Path::new("/dev/pts"),
            false,
            Some("devpts"),
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(opts),
            "mount /dev/pts",
        )
    };
    devpts("newinstance,ptmxmode=0666,mode=0620")
        .or_else(|_| devpts("newinstance,ptmxmode=0666"))?;
    mount_in(
        root,
        Path::new("/dev/shm"),
        false,
        Some("shm"),
        Some("tmpfs"),
        nosx,
        Some("mode=1777,size=65536k"),
        "mount /dev/shm",
    )?;
    mount_in(
        root,
        Path::new("/dev/mqueue"),
        false,
        Some("mqueue"),
        Some("mqueue"),
        nosx,
        None,
        "mount /dev/mqueue",
    )?;
    let dev = mountpoint(root, Path::new("/dev"), false)
        .map_err(|e| errno_err("mount /dev", e.raw_os_error().unwrap_or(0), "links"))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let (l, t) = (cstr(link), cstr(to));
        let devdir = PathBuf::from(format!("/proc/self/fd/{}", dev.as_raw_fd()));
        let d = cstr(&devdir);
        // SAFETY: plain path strings; the directory is our fresh /dev tmpfs.
        let dfd = unsafe {
            libc::open(
                d.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if dfd < 0 {
            return Err(os_err("mount /dev", "links"));
        }
        // SAFETY: dfd is a directory fd we opened; strings are NUL-terminated.
        let r = unsafe { libc::symlinkat(t.as_ptr(), dfd, l.as_ptr()) };
        // SAFETY: closing the fd we opened above.
        unsafe { libc::close(dfd) };
        if r != 0 {
            return Err(os_err("mount /dev", format!("link /dev/{link}")));
        }
    }
    let ro = libc::MS_RDONLY | nosx;
    if own_netns {
        mount_in(
            root,
            Path::new("/sys"),
            false,
            Some("sysfs"),
            Some("sysfs"),
            ro,
            None,
            "mount /sys",
        )?;
    } else {
        // Without its own network namespace the kernel refuses a new
        // sysfs; the host's is bound, with every mount under it (cgroups,
        // debugfs, ...) read-only, nosuid, nodev and noexec.
        bind_with(
            root,
            Path::new("/sys"),
            Path::new("/sys"),
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            "mount /sys",
        )?;
    }
    Ok(())
}

/// Docker's masked paths: read as empty (files) or an empty read-only tmpfs (directories).
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// After pivot_root: masks and read-only paths. Missing paths are skipped.
pub fn mask_paths(extra: &[PathBuf]) -> StepResult<()> {
    for p in MASKED
        .iter()
        .map(PathBuf::from)
        .chain(extra.iter().cloned())
    {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let r = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0"),
            )
        } else {
            mount(Some("/dev/null"), &p, None, libc::MS_BIND, None)
        };
        r.map_err(|e| {
            errno_err(
                "mask",
                e.raw_os_error().unwrap_or(0),
                p.display().to_string(),
            )
        })?;
    }
    for p in READ_ONLY {
        let p = Path::new(p);
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        mount(
            Some(&p.to_string_lossy()),
            p,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .and_then(|_| {
            remount_keeping_locked(
                p,
                libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
            )
        })
        .map_err(|e| {
            errno_err(
                "read-only path",
                e.raw_os_error().unwrap_or(0),
                p.display().to_string(),
            )
        })?;
    }
    Ok(())
}

/// Moves into `new_root` with pivot_root and detaches the old root.
pub fn pivot(new_root: &Path) -> StepResult<()> {
    let c = cstr(new_root);
    let dot = cstr(".");
    // SAFETY: plain syscalls on NUL-terminated paths.
    unsafe {
        if libc::chdir(c.as_ptr()) != 0 {
            return Err(os_err("pivot_root", "chdir to new root"));
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) && on_initramfs() {
                return move_root(new_root);
            }
            return Err(errno_err(
                "pivot_root",
                e.raw_os_error().unwrap_or(0),
                new_root.display().to_string(),
            ));
        }
        // The old root is now stacked under "."; make it private so the
        // detach does not propagate, then let it go.
        if libc::mount(
            std::ptr::null(),
            dot.as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("pivot_root", "old root private"));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(os_err("pivot_root", "unmount old root"));
        }
        let slash = cstr("/");
        if libc::chdir(slash.as_ptr()) != 0 {
            return Err(os_err("pivot_root", "chdir /"));
        }
    }
    Ok(())
}

/// Whether `/` is the initramfs (rootfs), which pivot_root cannot move:
/// rkstack as the init of an image that runs from its initramfs.
fn on_initramfs() -> bool {
    // SAFETY: statfs fills the zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let slash = cstr("/");
    // SAFETY: a NUL-terminated path and a valid buffer.
    if unsafe { libc::statfs(slash.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    matches!(st.f_type as i64, RAMFS_MAGIC | TMPFS_MAGIC)
}

/// The root of the initramfs cannot be pivoted away (what switch_root
/// works around): every mount outside `new_root` is detached first, then
/// `new_root` is moved over `/` and made the root. Nothing of the host
/// is left reachable: the mounts `new_root` was in (and the initramfs'
/// root directory) are covered by it, the rest was unmounted.
fn move_root(new_root: &Path) -> StepResult<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| errno_err("pivot_root", e.raw_os_error().unwrap_or(0), "mountinfo"))?;
    for target in mounts_outside(&info, new_root) {
        let c = cstr(&target);
        // SAFETY: a NUL-terminated path. A mount gone already (with its
        // parent) is no error.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let dot = cstr(".");
    let slash = cstr("/");
    // SAFETY: plain syscalls on NUL-terminated paths; cwd is new_root.
    unsafe {
        if libc::mount(
            dot.as_ptr(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("pivot_root", "move the root over the initramfs"));
        }
        if libc::chroot(dot.as_ptr()) != 0 {
            return Err(os_err("pivot_root", "chroot"));
        }
        if libc::chdir(slash.as_ptr()) != 0 {
            return Err(os_err("pivot_root", "chdir /"));
        }
    }
    Ok(())
}

/// The mount points of a `/proc/*/mountinfo` text, in its order.
pub fn mount_points(mountinfo: &str) -> impl Iterator<Item = PathBuf> + '_ {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(super::cgroup::unescape)
}

/// Mount points of a mountinfo text that are neither `root`, under it,
/// nor one of its ancestors (detaching those would take `root` along; the
/// move covers them), deepest first (the order to detach them in).
pub fn mounts_outside(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mount_points(mountinfo)
        .filter(|m| !m.starts_with(root) && !root.starts_with(m))
        .collect();
    // Later mounts first, then a stable sort by depth: two mounts stacked
    // on one point are both detached, top first.
    out.reverse();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out
}

/// Opens a directory as a handle for [`mountpoint`].
pub fn open_root(p: &Path) -> StepResult<OwnedFd> {
    let c = cstr(p);
    // SAFETY: c is NUL-terminated.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(os_err("rootfs", p.display().to_string()));
    }
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
