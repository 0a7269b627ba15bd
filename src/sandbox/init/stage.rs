//! The init stage: forks the container's first process into its namespaces,
//! holds it until the runtime has placed it, and reports how its set-up
//! failed.

use super::child::child;
use super::clone;
use super::*;

pub(super) fn stage(spec: &SandboxSpec, runtime: &OwnedFd) -> StepResult<i32> {
    if spec.user_ns.is_some() {
        precreate_mountpoints(spec)?;
    }
    let _image = attach_image(spec)?;
    preopen(spec)?;
    let (parent_end, child_end) = channel::pair()
        .map_err(|e| errno_err("init", e.raw_os_error().unwrap_or(0), "socketpair"))?;

    let mut flags = libc::CLONE_PARENT
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    if spec.net == NetNs::New {
        flags |= libc::CLONE_NEWNET;
    }
    if spec.user_ns.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    // On cgroup v2 the child is born in its group; on v1 it moves itself
    // (`clone::join_v1`); what is left is written below.
    let group = clone::v2_group(&spec.cgroup_procs);
    // Groups made while the child builds its root are joined after it.
    let (tasks, later) = if spec.join_late {
        (Vec::new(), clone::v1_later(&spec.cgroup_procs))
    } else {
        (clone::v1_tasks(&spec.cgroup_procs), Vec::new())
    };
    let self_moved: Vec<usize> = tasks
        .iter()
        .map(|(i, _)| *i)
        .chain(later.iter().map(|(i, ..)| *i))
        .collect();
    // SAFETY: `__init` is single-threaded, so the child may run arbitrary
    // code until exec.
    let (pid, born_in) = unsafe { clone::fork_into(flags, group.as_ref().map(|(_, fd)| fd)) }
        .map_err(|e| errno_err("clone", e.raw_os_error().unwrap_or(0), "new namespaces"))?;
    if pid == 0 {
        drop(parent_end);
        drop(group);
        let err = child(spec, &child_end, tasks, later);
        let _ = channel::send(child_end.as_fd(), &Message::Failed(err));
        // SAFETY: leave at once, without running the parent's exit handlers.
        unsafe { libc::_exit(127) };
    }
    let joined = group.filter(|_| born_in).map(|(i, _)| i);
    drop(tasks);
    drop(later);
    drop(child_end);
    if let Some(maps) = &spec.user_ns {
        let write = |file: &str, m: &[(u32, u32, u32)]| {
            let text: String = m.iter().map(|(a, b, c)| format!("{a} {b} {c}\n")).collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|e| {
                errno_err(
                    "user namespace",
                    e.raw_os_error().unwrap_or(0),
                    file.to_string(),
                )
            })
        };
        if let Err(e) = write("uid_map", &maps.uid).and_then(|_| write("gid_map", &maps.gid)) {
            // SAFETY: killing the child we just made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(e);
        }
    }
    poke_child(&parent_end)?;
    // A v2 group the child was not born in (a kernel before 5.7) is joined by
    // a write of its pid, which can wait for an RCU grace period; the child
    // builds its root meanwhile, and waits for the second poke before it
    // makes its cgroup namespace and runs anything of the container.
    for (i, procs) in spec.cgroup_procs.iter().enumerate() {
        if Some(i) == joined || self_moved.contains(&i) {
            continue;
        }
        if let Err(e) = std::fs::write(procs, pid.to_string()) {
            // The child may have failed before it could be moved (the write
            // then fails in ways that depend on how far its exit got): its
            // own report, if it sent one, is the error.
            if let Some(err) = failed_report(&parent_end) {
                return Err(err);
            }
            // SAFETY: killing the child we just made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(errno_err(
                "cgroup",
                e.raw_os_error().unwrap_or(0),
                procs.display().to_string(),
            ));
        }
    }
    if spec.hold_before_exec {
        hold(runtime, pid)?;
    }
    poke_child(&parent_end)?;
    channel::exec_outcome(parent_end.as_fd()).map(|()| pid)
}

/// Tells the runtime the process exists and waits for it to say go on; a
/// runtime that fails (or goes away) has the process killed.
pub(super) fn hold(runtime: &OwnedFd, pid: i32) -> StepResult<()> {
    let kill = || {
        // SAFETY: killing the child this stage made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    if let Err(e) = channel::send(runtime.as_fd(), &Message::Created { pid }) {
        kill();
        return Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "tell the runtime",
        ));
    }
    match channel::recv(runtime.as_fd()) {
        Ok(Some(Message::Continue)) => Ok(()),
        Ok(Some(Message::Failed(e))) => {
            kill();
            Err(e)
        }
        other => {
            kill();
            Err(errno_err(
                "init",
                0,
                format!("runtime went away while the process was held ({other:?})"),
            ))
        }
    }
}

/// The child's failure report if it has sent one (waiting briefly, never
/// for a child that is still working).
pub(super) fn failed_report(chan: &OwnedFd) -> Option<StepError> {
    let mut p = libc::pollfd {
        fd: chan.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, 200) } <= 0 {
        return None;
    }
    match channel::recv(chan.as_fd()) {
        Ok(Some(Message::Failed(err))) => Some(err),
        _ => None,
    }
}

/// Lets the child go on. If it has already failed (and so closed its end),
/// its own report is the error, not the broken pipe.
pub(super) fn poke_child(chan: &OwnedFd) -> StepResult<()> {
    match channel::poke(chan) {
        Ok(()) => Ok(()),
        Err(e) => match channel::recv(chan.as_fd()) {
            Ok(Some(Message::Failed(err))) => Err(err),
            _ => Err(errno_err(
                "init",
                e.raw_os_error().unwrap_or(0),
                "the child went away",
            )),
        },
    }
}
