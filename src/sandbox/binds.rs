//! Bind mounts with the new mount API: a bind's source is opened once (a
//! user's bind refusing any symlink on the way), cloned as a detached mount
//! tree (`open_tree`), its flags set on every mount of that tree
//! (`mount_setattr`), and only then attached (`move_mount`) to the mount
//! point resolved inside the rootfs. The init stage makes the trees while
//! it is still the host's root; the container's first process attaches
//! them. Kernels before 5.12 get a bind and a remount of its top mount.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::rootfs::{
    StepResult, cstr, errno_err, fd_path, mount, mountpoint, openat2, remount_keeping_locked,
};

/// Bind-mounts a host path (and every mount under it) onto `target` inside
/// `root`, `nosuid,nodev` (and `ro`) on each of those mounts.
///
/// `tree` is the source's tree made already by [`bind_tree`] in the init
/// stage (which can still reach folders closed to a user namespace's ids);
/// without it the source is opened and its tree made here, the same way.
pub fn bind(
    root: &OwnedFd,
    source: &Path,
    tree: Option<&OwnedFd>,
    target: &Path,
    read_only: bool,
    step: &str,
) -> StepResult<()> {
    let Some(tree) = tree else {
        let handle = open_bind_source(source, step)?;
        return bind_handle(root, source, &handle, target, bind_attrs(read_only), step);
    };
    let fd = mountpoint(root, target, !is_dir(tree, source, step)?).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("mount point {}", target.display()),
        )
    })?;
    move_mount_to(tree, &fd).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("source {}", source.display()),
        )
    })
}

fn bind_attrs(read_only: bool) -> u64 {
    let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if read_only {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    attrs
}

/// The detached, flagged mount tree of a bind source (see [`bind`]), or
/// `None` on a kernel without the new mount API.
pub fn bind_tree(source: &Path, read_only: bool, step: &str) -> StepResult<Option<OwnedFd>> {
    let handle = open_bind_source(source, step)?;
    match detached_bind(&handle, bind_attrs(read_only)) {
        Ok(tree) => Ok(Some(tree)),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(None),
        Err(e) => Err(errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("source {}", source.display()),
        )),
    }
}

/// Whether the opened `handle` (of `source`) is a directory.
fn is_dir(handle: &OwnedFd, source: &Path, step: &str) -> StepResult<bool> {
    let err = |e: io::Error| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("source {}", source.display()),
        )
    };
    Ok(std::fs::File::from(handle.try_clone().map_err(err)?)
        .metadata()
        .map_err(err)?
        .is_dir())
}

/// A bind source opened refusing every symlink on its way (the supervisor
/// resolved the user's path when it read the stack file; a symlink found
/// now appeared since), as one handle every later step acts on.
pub fn open_bind_source(source: &Path, step: &str) -> StepResult<OwnedFd> {
    let src = source.display();
    open_no_symlinks(source).map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(0);
        if errno != libc::ELOOP {
            return errno_err(step, errno, format!("source {src}"));
        }
        let detail = match first_symlink(source) {
            Some((link, to)) => format!(
                "source {src}: {} is a symlink (to {}), which it was not when the stack file was read; refused",
                link.display(),
                to.display()
            ),
            None => format!("source {src}: a symlink on its way; refused"),
        };
        errno_err(step, errno, detail)
    })
}

/// The first symlink on the way to `path`, and where it points.
fn first_symlink(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            let to = std::fs::read_link(&cur).unwrap_or_default();
            return Some((cur, to));
        }
    }
    None
}

/// `source` opened as an `O_PATH` handle without following any symlink.
fn open_no_symlinks(source: &Path) -> io::Result<OwnedFd> {
    openat2(
        libc::AT_FDCWD,
        source,
        libc::O_PATH,
        libc::RESOLVE_NO_SYMLINKS,
    )
}

/// A device node: bound without `nodev`, or it could not be opened.
pub fn bind_device(root: &OwnedFd, dev: &Path, step: &str) -> StepResult<()> {
    bind_with(root, dev, dev, MOUNT_ATTR_NOSUID, step)
}

/// Binds the host's `/dev/NAME` for each of `names` onto the fresh `/dev`
/// tmpfs whose root is `dev`. Nothing of the container has run yet and
/// that tmpfs holds only what rkstack made, so each mount point is made by
/// name (`O_EXCL | O_NOFOLLOW`) and its node attached to that name: 8
/// system calls a node, where [`bind_device`], which resolves every step
/// inside the root and suits any place, takes 23. `Ok(false)`, with
/// nothing made, where the kernel lacks the new mount API (before 5.12):
/// the caller binds them the general way.
pub fn bind_fresh_devices(dev: &OwnedFd, names: &[&str]) -> StepResult<bool> {
    for (i, name) in names.iter().enumerate() {
        let host = Path::new("/dev").join(name);
        let step = format!("mount {}", host.display());
        let err = |e: io::Error, what: &str| {
            errno_err(&step, e.raw_os_error().unwrap_or(0), what.to_string())
        };
        let handle = open_root_any(&host).map_err(|e| err(e, "source"))?;
        let tree = match detached_bind(&handle, MOUNT_ATTR_NOSUID) {
            Ok(tree) => tree,
            Err(e) if i == 0 && e.raw_os_error() == Some(libc::ENOSYS) => return Ok(false),
            Err(e) => return Err(err(e, "source")),
        };
        let n = cstr(*name);
        // SAFETY: a directory fd of ours and a NUL-terminated plain name.
        let fd = unsafe {
            libc::openat(
                dev.as_raw_fd(),
                n.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(err(io::Error::last_os_error(), "mount point"));
        }
        // SAFETY: closing the fd just made.
        unsafe { libc::close(fd) };
        move_mount_at(&tree, dev, name).map_err(|e| err(e, "attach"))?;
    }
    Ok(true)
}

/// `mount_setattr(2)` attributes.
pub(super) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(super) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(super) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(super) const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Binds `source` (following symlinks: device nodes such as
/// `/dev/serial/by-id/...`, and the host's /sys, are the host's own).
pub(super) fn bind_with(
    root: &OwnedFd,
    source: &Path,
    target: &Path,
    attrs: u64,
    step: &str,
) -> StepResult<()> {
    let handle = open_root_any(source).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("source {}", source.display()),
        )
    })?;
    bind_handle(root, source, &handle, target, attrs, step)
}

/// Binds the opened `handle` (of `source`, named in messages) onto
/// `target` inside `root`, with `attrs` on every mount of its tree.
fn bind_handle(
    root: &OwnedFd,
    source: &Path,
    handle: &OwnedFd,
    target: &Path,
    attrs: u64,
    step: &str,
) -> StepResult<()> {
    let src = source.to_string_lossy().into_owned();
    let is_dir = is_dir(handle, source, step)?;
    let fd = mountpoint(root, target, !is_dir).map_err(|e| {
        errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("mount point {}", target.display()),
        )
    })?;
    match detached_bind(handle, attrs) {
        // The flags are on every mount of the tree before it is attached,
        // and it is attached to the very place resolved above: nothing can
        // swap the target in between (CVE-2021-30465) or leave a submount
        // writable.
        Ok(tree) => move_mount_to(&tree, &fd)
            .map_err(|e| errno_err(step, e.raw_os_error().unwrap_or(0), format!("source {src}"))),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // Bound through the handle's /proc/self/fd link: still the
            // file that was opened.
            let via = fd_path(handle).to_string_lossy().into_owned();
            legacy_bind(root, &via, target, &fd, !is_dir, attrs, step)
        }
        Err(e) => Err(errno_err(
            step,
            e.raw_os_error().unwrap_or(0),
            format!("source {src}"),
        )),
    }
}

/// An `O_PATH` handle to `path`, following symlinks.
fn open_root_any(path: &Path) -> io::Result<OwnedFd> {
    openat2(libc::AT_FDCWD, path, libc::O_PATH, 0)
}

/// A detached copy of the mount tree at `source` (open_tree(2)), with
/// `attrs` set on each of its mounts (mount_setattr(2), Linux 5.12).
fn detached_bind(source: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let empty = cstr("");
    // SAFETY: the source's handle and an empty path; the kernel returns a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            source.as_raw_fd(),
            empty.as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | AT_RECURSIVE
                | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the new fd is ours.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    /// `struct mount_attr`.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = cstr("");
    // SAFETY: the tree fd, an empty path and a struct of the size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// A detached copy of the mount at `dir` (and below it), for a child in
/// another mount namespace to attach.
pub fn detached_tree(dir: &Path) -> io::Result<OwnedFd> {
    detached_bind(&open_root_any(dir)?, 0)
}

/// A detached, read-only overlayfs of `lowers` (top first, at least two):
/// an image's layers made one tree by the init stage, which can reach the
/// store, for a container in a user namespace, which cannot.
pub fn detached_overlay(lowers: &[PathBuf]) -> io::Result<OwnedFd> {
    let lowerdir = lowers
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    detached_fs("overlay", &[("lowerdir", &lowerdir)], MOUNT_ATTR_RDONLY)
}

/// A new tmpfs for a container's `/dev`, detached (ENOSYS before Linux
/// 5.2): its descriptor names its root however it is attached later.
pub(super) fn detached_dev_tmpfs() -> io::Result<OwnedFd> {
    const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
    detached_fs(
        "tmpfs",
        &[("source", "tmpfs"), ("mode", "755"), ("size", "65536k")],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_STRICTATIME,
    )
}

/// A new filesystem of `fstype` with string `options`, as a detached
/// mount with `attrs` (the new mount API: fsopen, fsconfig, fsmount).
fn detached_fs(fstype: &str, options: &[(&str, &str)], attrs: u64) -> io::Result<OwnedFd> {
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let fstype = cstr(fstype);
    // SAFETY: a NUL-terminated name; the kernel returns a new fd.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the new fd is ours.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for (key, value) in options {
        let (key, value) = (cstr(*key), cstr(*value));
        // SAFETY: our fs context fd and NUL-terminated strings.
        let set = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: our fs context fd; this command takes no key or value.
    let created = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if created != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: our fs context fd; the kernel returns a new mount fd.
    let mnt = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    if mnt < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the new fd is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}

/// Attaches a detached tree (from [`detached_tree`] or
/// [`detached_overlay`]) at `at`, a path of this mount namespace.
pub fn attach_tree(tree: &OwnedFd, at: &Path) -> io::Result<()> {
    move_mount_to(tree, &open_root_any(at)?)
}

/// Attaches a detached mount tree onto the place `at` refers to.
pub(super) fn move_mount_to(tree: &OwnedFd, at: &OwnedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let empty = cstr("");
    // SAFETY: two valid fds and empty NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            at.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches the detached `tree` at `name` in the directory `dir` (the final
/// name not followed if a symlink).
fn move_mount_at(tree: &OwnedFd, dir: &OwnedFd, name: &str) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let (empty, n) = (cstr(""), cstr(name));
    // SAFETY: two valid fds and NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            dir.as_raw_fd(),
            n.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Before Linux 5.12: bind, then remount the top mount with the flags.
/// Submounts keep theirs, and the target is resolved a second time.
fn legacy_bind(
    root: &OwnedFd,
    src: &str,
    target: &Path,
    fd: &OwnedFd,
    file: bool,
    attrs: u64,
    step: &str,
) -> StepResult<()> {
    mount(
        Some(src),
        &fd_path(fd),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| errno_err(step, e.raw_os_error().unwrap_or(0), format!("source {src}")))?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT;
    for (attr, flag) in [
        (MOUNT_ATTR_RDONLY, libc::MS_RDONLY),
        (MOUNT_ATTR_NOSUID, libc::MS_NOSUID),
        (MOUNT_ATTR_NODEV, libc::MS_NODEV),
        (MOUNT_ATTR_NOEXEC, libc::MS_NOEXEC),
    ] {
        if attrs & attr != 0 {
            flags |= flag;
        }
    }
    // Re-resolve: the handle points at the covered directory, not the new mount.
    let fd = mountpoint(root, target, file)
        .map_err(|e| errno_err(step, e.raw_os_error().unwrap_or(0), "remount"))?;
    remount_keeping_locked(&fd_path(&fd), flags)
        .map_err(|e| errno_err(step, e.raw_os_error().unwrap_or(0), "remount"))
}
