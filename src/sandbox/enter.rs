//! The init stage's other job: a process inside a running container. The
//! stage joins the container's cgroup and namespaces (user first, mount
//! last, which also makes the container's root ours), then clones the
//! process with `CLONE_PARENT` so the runtime reaps it. The process takes
//! the container's user, capabilities, no_new_privs and seccomp, and execs.

use std::os::fd::{AsFd, OwnedFd};

use super::channel::StepError;
use super::channel::{self, Message};
use super::init::{Identity, become_and_exec};
use super::rootfs::{StepResult, cstr, errno_err, os_err};
use super::spec::ExecSpec;

pub(super) fn stage(spec: &ExecSpec, runtime: &OwnedFd) -> StepResult<i32> {
    // v1 groups: the stage (single-threaded) moves itself alone, which
    // does not wait for the kernel's thread-group lock (see `init::clone`).
    let tasks = super::init::v1_tasks(&spec.cgroup_procs);
    let moved: Vec<usize> = tasks.iter().map(|(i, _)| *i).collect();
    super::init::join_v1(tasks, &spec.cgroup_procs)?;
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() };
    for (_, procs) in spec
        .cgroup_procs
        .iter()
        .enumerate()
        .filter(|(i, _)| !moved.contains(i))
    {
        std::fs::write(procs, me.to_string()).map_err(|e| {
            errno_err(
                "cgroup",
                e.raw_os_error().unwrap_or(0),
                procs.display().to_string(),
            )
        })?;
    }
    let mut order = Vec::new();
    if spec.user_ns {
        order.push(("user", libc::CLONE_NEWUSER));
    }
    order.extend([
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("pid", libc::CLONE_NEWPID),
        ("mnt", libc::CLONE_NEWNS),
    ]);
    // Open them all first: once in the mount namespace, /proc is the container's.
    let mut fds = Vec::new();
    for (ns, flag) in &order {
        let path = cstr(format!("/proc/{}/ns/{ns}", spec.target));
        // SAFETY: path is NUL-terminated.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(os_err(
                "join container",
                format!("{ns} namespace of pid {}", spec.target),
            ));
        }
        fds.push((fd, *ns, *flag));
    }
    for (fd, ns, flag) in &fds {
        // SAFETY: fd is a namespace fd we opened.
        let r = unsafe { libc::setns(*fd, *flag) };
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(*fd) };
        if r != 0 {
            return Err(os_err("join container", format!("{ns} namespace")));
        }
    }
    let (parent_end, child_end) = channel::pair()
        .map_err(|e| errno_err("init", e.raw_os_error().unwrap_or(0), "socketpair"))?;
    // SAFETY: fork-like clone of this single-threaded stage; the child enters the pid namespace.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        return Err(os_err("clone", "exec"));
    }
    if pid == 0 {
        drop(parent_end);
        let err = child(spec);
        let _ = channel::send(child_end.as_fd(), &Message::Failed(err));
        // SAFETY: leave at once.
        unsafe { libc::_exit(127) };
    }
    drop(child_end);
    tell_cloned(runtime, pid as i32)?;
    channel::exec_outcome(parent_end.as_fd()).map(|()| pid as i32)
}

/// Tells the runtime the pid of the process just cloned (killed if that fails).
fn tell_cloned(runtime: &OwnedFd, pid: i32) -> StepResult<()> {
    channel::send(runtime.as_fd(), &Message::Cloned { pid }).map_err(|e| {
        // SAFETY: killing the child this stage made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        errno_err("init", e.raw_os_error().unwrap_or(0), "tell the runtime")
    })
}

fn child(spec: &ExecSpec) -> StepError {
    if let Err(e) = super::init::set_rlimits(&spec.rlimits) {
        return e;
    }
    if let Some(size) = spec.terminal {
        let owner = match super::users::resolve(&spec.user) {
            Ok((uid, gid, _)) => (uid, gid),
            Err(e) => return e,
        };
        if let Err(e) = super::pty::take(size, owner) {
            return e;
        }
    }
    become_and_exec(
        &Identity {
            user: &spec.user,
            workdir: &spec.workdir,
            command: &spec.command,
            env: &spec.env,
            capabilities: &spec.capabilities,
            no_new_privileges: spec.no_new_privileges,
            seccomp: &spec.seccomp,
        },
        || Ok(()),
    )
}
