//! Making the assembled tree the root: `pivot_root`, or a move of the root
//! on an initramfs, and the host's mounts left outside it.

use super::*;

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
pub(super) fn on_initramfs() -> bool {
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
pub(super) fn move_root(new_root: &Path) -> StepResult<()> {
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
        .map(crate::sandbox::cgroup::unescape)
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
