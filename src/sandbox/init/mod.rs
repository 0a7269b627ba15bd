//! The `rkstack __init` stage and the container's first process.
//!
//! `__init` is exec'd fresh (from a sealed copy of the binary) by the runtime,
//! so it is single-threaded and may fork safely whatever the runtime is. It
//! reads the spec and clones the container's first process into new
//! namespaces with `CLONE_PARENT`, so that process is a direct child of the
//! runtime, born in its cgroup on v2 (`clone.rs`); on v1 the child moves
//! itself, first thing or (`join_late`) once the runtime has made the
//! groups while the child built its root. It writes the user namespace
//! maps, lets the child go, holds it for the runtime when asked, and
//! reports `Started`
//! once the child has exec'd (its end of the channel closes on exec) or the
//! child's `Failed`.
//!
//! The child runs the setup steps in order: user → hostname → rootfs and
//! mounts → /proc, /dev, /sys → pivot_root → masked paths → loopback →
//! rlimits → user and groups → workdir → capabilities → no_new_privs →
//! seccomp → exec. A failed step is sent back as data, never as text on stderr.
//!
//! `stage.rs` is the init stage itself (the hold until the runtime is
//! ready, the report of a failed child); `clone.rs` the fork into the
//! namespaces and the cgroup;
//! `child.rs` is what the container's first process does before its exec.

mod child;
mod clone;
mod stage;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::assemble::{
    assemble_root, attach_image, mount_target, precreate_mountpoints, preopen, seal_root,
    user_mounts,
};
use super::channel::{self, Message, StepError};
use super::rootfs::{self, StepResult, errno_err, os_err};
use super::spec::{NetNs, Root, SandboxSpec, UserSpec};
use super::{caps, seccomp, users};

pub(super) use child::{Identity, become_and_exec, set_rlimits};
pub use child::{rlimit_resource, root_user};
pub(super) use clone::{join_v1, v1_tasks};
use stage::stage;

/// The fd on which `__init` finds its channel to the runtime.
pub const INIT_FD: i32 = 3;

/// Entry point of `rkstack __init`. Never returns.
pub fn main() -> ! {
    seal();
    close_above_channel();
    // SAFETY: fd 3 was placed there by the runtime for us alone.
    let chan = unsafe { OwnedFd::from_raw_fd(INIT_FD) };
    let code = match run(&chan) {
        Ok(pid) => match channel::send(chan.as_fd(), &Message::Started { pid }) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(e) => {
            let _ = channel::send(chan.as_fd(), &Message::Failed(e));
            1
        }
    };
    std::process::exit(code)
}

fn run(chan: &OwnedFd) -> StepResult<i32> {
    match channel::recv(chan.as_fd()) {
        Ok(Some(Message::Start(spec))) => stage(&spec, chan),
        Ok(Some(Message::Exec(spec))) => super::enter::stage(&spec, chan),
        Ok(other) => Err(errno_err(
            "init",
            0,
            format!("expected Start or Exec, got {other:?}"),
        )),
        Err(e) => Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "reading the spec",
        )),
    }
}

/// What a forked init stage is to do.
#[derive(Debug)]
pub(super) enum Job<'a> {
    Start(&'a SandboxSpec),
    Exec(&'a super::spec::ExecSpec),
}

/// Makes this process non-dumpable until its execve (which resets it for
/// the container's command): no process of a container may ptrace it,
/// read its memory or open its `/proc/PID/exe` and descriptors — even one
/// with the capabilities this process drops to — without `CAP_SYS_PTRACE`
/// over the host's user namespace (runc and crun do the same).
pub(super) fn seal() {
    // SAFETY: plain prctl on this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// The init stage in a process forked by a single-threaded runtime: the
/// same work as `__init`, with the spec already in memory. The caller has
/// sealed it and set stdio; every other descriptor but the channel is
/// closed here. Never returns.
pub(super) fn forked(chan: OwnedFd, job: Job<'_>) -> ! {
    let chan = keep_only(chan);
    let result = match job {
        Job::Start(spec) => stage(spec, &chan),
        Job::Exec(spec) => super::enter::stage(spec, &chan),
    };
    let msg = match result {
        Ok(pid) => Message::Started { pid },
        Err(e) => Message::Failed(e),
    };
    let code = i32::from(channel::send(chan.as_fd(), &msg).is_err());
    // SAFETY: leave without running the runtime's exit handlers or destructors.
    unsafe { libc::_exit(code) }
}

/// Moves the channel to [`INIT_FD`] and closes every descriptor above it:
/// the caller's logs, pipes, sockets and locks never reach a container.
fn keep_only(chan: OwnedFd) -> OwnedFd {
    let fd = chan.as_raw_fd();
    if fd != INIT_FD {
        // SAFETY: dup2 onto a fixed slot of this forked process.
        if unsafe { libc::dup2(fd, INIT_FD) } < 0 {
            return chan;
        }
        drop(chan);
    } else {
        std::mem::forget(chan);
    }
    // SAFETY: a plain syscall on the channel, which now lives at INIT_FD alone.
    unsafe { libc::fcntl(INIT_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    close_above_channel();
    // SAFETY: INIT_FD is the channel, owned by nothing else now.
    unsafe { OwnedFd::from_raw_fd(INIT_FD) }
}

/// Closes every descriptor above the channel: nothing of the caller's but
/// the channel and stdio (its logs, pipes, sockets, locks) goes on.
fn close_above_channel() {
    // SAFETY: plain syscall on this process's own descriptor table.
    unsafe { libc::syscall(libc::SYS_close_range, INIT_FD as u32 + 1, u32::MAX, 0) };
}
