//! The fork of the container's first process into its namespaces, straight
//! into its cgroup v2 group where the kernel can (`clone3` with
//! `CLONE_INTO_CGROUP`, Linux 5.7). Moving a task by writing `cgroup.procs`
//! takes the kernel's thread-group lock for writing, which waits for an RCU
//! grace period (≈ 7 ms of a 10 ms start on a quiet 2-core machine); a
//! process born in its group never moves, so the start does not wait for it.
//! cgroup v1 has no such clone: there the child writes itself ("0") into
//! each group's `tasks` file, first thing. A task that moves itself alone
//! (one thread, the caller) does not take that lock (the kernel's "cgroup:
//! Optimize single thread migration"): ≈ 0.1 ms for all hierarchies where a
//! write of its pid by the stage took ≈ 7 ms. The child is single-threaded
//! until it execs, so the thread is the whole process.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `struct clone_args` of the kernel's ABI up to `cgroup` (version 2, 88
/// bytes). The libc crate has it for some targets only, each its own way.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP`, as the 64-bit flag it is.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The one cgroup v2 group among `procs` (`cgroup.procs` files), opened for
/// `CLONE_INTO_CGROUP`: its index in `procs` and the directory. `None` on
/// v1 or where the directory cannot be opened (the write then says why).
pub(super) fn v2_group(procs: &[PathBuf]) -> Option<(usize, OwnedFd)> {
    procs.iter().enumerate().find_map(|(i, p)| {
        let dir = p.parent()?;
        let fs = nix::sys::statfs::statfs(dir).ok()?;
        if fs.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            return None;
        }
        open_dir(dir).map(|fd| (i, fd))
    })
}

/// The `tasks` files of the cgroup v1 groups among `procs`, opened for
/// writing, with their index in `procs`: the child writes itself into
/// them (`join_v1`). A group whose file cannot be opened is left to the
/// stage's write of `cgroup.procs`, which says what is wrong.
pub(in crate::sandbox) fn v1_tasks(procs: &[PathBuf]) -> Vec<(usize, OwnedFd)> {
    use nix::fcntl::{OFlag, open};
    procs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let dir = p.parent()?;
            let fs = nix::sys::statfs::statfs(dir).ok()?;
            if fs.filesystem_type() != nix::sys::statfs::CGROUP_SUPER_MAGIC {
                return None;
            }
            let fd = open(
                &dir.join("tasks"),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ok()?;
            Some((i, fd))
        })
        .collect()
}

/// In the child: moves the calling (only) thread into each group of
/// `tasks` and closes the files, so nothing later in the container can
/// move itself. Errors name the group's `cgroup.procs` path.
pub(in crate::sandbox) fn join_v1(
    tasks: Vec<(usize, OwnedFd)>,
    procs: &[PathBuf],
) -> crate::sandbox::rootfs::StepResult<()> {
    for (i, fd) in tasks {
        if let Err(e) = nix::unistd::write(&fd, b"0") {
            let path = procs.get(i).map(|p| p.display().to_string());
            return Err(crate::sandbox::rootfs::errno_err(
                "cgroup",
                e as i32,
                path.unwrap_or_default(),
            ));
        }
    }
    Ok(())
}

/// For groups the runtime makes while the child builds its root
/// (`SandboxSpec::join_late`): the deepest folder of each cgroup v1 group's
/// path that exists now, opened, and the rest of the path to its `tasks`
/// file, with the group's index in `procs`. The child opens and writes
/// them after the runtime has made the groups (`join_v1_later`).
pub(super) fn v1_later(procs: &[PathBuf]) -> Vec<(usize, OwnedFd, PathBuf)> {
    use nix::fcntl::{OFlag, open};
    procs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let group = p.parent()?;
            let mut dir = group;
            loop {
                match open(
                    dir,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                ) {
                    Ok(fd) => {
                        let fs = nix::sys::statfs::fstatfs(&fd).ok()?;
                        if fs.filesystem_type() != nix::sys::statfs::CGROUP_SUPER_MAGIC {
                            return None;
                        }
                        let rest = group.strip_prefix(dir).ok()?.join("tasks");
                        return Some((i, fd, rest));
                    }
                    Err(nix::errno::Errno::ENOENT) => dir = dir.parent()?,
                    Err(_) => return None,
                }
            }
        })
        .collect()
}

/// In the child, once the runtime has made its groups: moves the calling
/// (only) thread into each group of `later` (see [`v1_later`]), as
/// [`join_v1`] does.
pub(super) fn join_v1_later(
    later: Vec<(usize, OwnedFd, PathBuf)>,
    procs: &[PathBuf],
) -> crate::sandbox::rootfs::StepResult<()> {
    use nix::fcntl::{OFlag, openat};
    let tasks = later
        .into_iter()
        .map(|(i, dir, rest)| {
            openat(
                &dir,
                &rest,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map(|fd| (i, fd))
            .map_err(|e| {
                let path = procs.get(i).map(|p| p.display().to_string());
                crate::sandbox::rootfs::errno_err("cgroup", e as i32, path.unwrap_or_default())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    join_v1(tasks, procs)
}

fn open_dir(dir: &Path) -> Option<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    // Not O_PATH: CLONE_INTO_CGROUP wants a descriptor opened for reading.
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

/// A fork-like clone (the child goes on on this stack) with `flags`
/// (`CLONE_*` namespace and parent flags; SIGCHLD is added), born in
/// `group` when given. Returns as fork does: 0 in the child, the child's
/// pid in the parent; and whether the child was born in `group` (false when
/// the kernel refused `clone3` or `CLONE_INTO_CGROUP`: the plain clone that
/// follows needs the group joined by a write).
///
/// # Safety
/// The caller must be single-threaded: the child runs on until it execs.
pub(super) unsafe fn fork_into(
    flags: libc::c_int,
    group: Option<&OwnedFd>,
) -> std::io::Result<(libc::pid_t, bool)> {
    if let Some(g) = group {
        // With CLONE_PARENT, clone3 wants no exit signal: the child takes
        // ours (SIGCHLD, which its parent, the runtime, waits for).
        let exit_signal = if flags & libc::CLONE_PARENT != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        };
        let args = CloneArgs {
            flags: flags as u64 | CLONE_INTO_CGROUP,
            exit_signal,
            cgroup: g.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: args is a valid clone_args of the size given; no stack is
        // given, so the child continues on a copy of ours, as with fork.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return Ok((pid as libc::pid_t, true));
        }
        // ENOSYS (before 5.3), E2BIG (before 5.7), EOPNOTSUPP or EBUSY from
        // the group: the plain clone and the write report what is wrong.
    }
    // SAFETY: a fork-like clone without a new stack.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((pid as libc::pid_t, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_has_the_kernels_version_2_size() {
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
    }

    #[test]
    fn a_v1_or_plain_folder_is_no_v2_group() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(v2_group(&[dir.path().join("cgroup.procs")]).is_none());
        assert!(v2_group(&[]).is_none());
    }
}
