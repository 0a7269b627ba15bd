//! The runtime's own mounts in a new root: `/proc` with its masked and
//! read-only paths, `/sys`, a minimal `/dev` and its devices.

use super::*;

/// Devices every container gets (bind-mounted from the host, which works in
/// a user namespace too, where mknod does not).
pub(super) const DEFAULT_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// A tmpfs on the root's `/dev`, and a descriptor of its root. Made
/// detached and attached on the mount point found inside the root, the
/// descriptor is the new tmpfs's whatever happens to the name `dev`
/// meanwhile (a `dir:` rootfs may be shared with a running container):
/// the device nodes are bound into it through that descriptor. A kernel
/// without the new mount API (before 5.2) mounts it the old way and
/// finds it again by name.
fn fresh_dev(root: &OwnedFd) -> StepResult<OwnedFd> {
    let fail = |e: io::Error, what: &str| {
        errno_err(
            "mount /dev",
            e.raw_os_error().unwrap_or(0),
            what.to_string(),
        )
    };
    match super::super::binds::detached_dev_tmpfs() {
        Ok(tmpfs) => {
            let at =
                mountpoint(root, Path::new("/dev"), false).map_err(|e| fail(e, "mount point"))?;
            super::super::binds::move_mount_to(&tmpfs, &at).map_err(|e| fail(e, "attach"))?;
            Ok(tmpfs)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
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
            openat2_in_root(
                root.as_raw_fd(),
                Path::new("dev"),
                libc::O_PATH | libc::O_DIRECTORY,
            )
            .map_err(|e| fail(e, "open"))
        }
        Err(e) => Err(fail(e, "tmpfs")),
    }
}

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
    let fresh = fresh_dev(root)?;
    if !bind_fresh_devices(&fresh, DEFAULT_DEVICES)? {
        for d in DEFAULT_DEVICES {
            let host = PathBuf::from("/dev").join(d);
            bind_device(root, &host, &format!("mount {}", host.display()))?;
        }
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
