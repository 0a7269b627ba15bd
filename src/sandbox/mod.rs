//! Turning a [`SandboxSpec`] into a running, isolated process.
//!
//! The runtime never forks itself: it executes a sealed in-memory copy of its
//! own binary as `rkstack __init` (see [`init`]), hands it the spec over a
//! typed channel, and gets back the pid of the container's first process
//! (a direct child of the runtime) or the step that failed.

mod assemble;
mod binds;
pub mod blockdev;
mod caps;
pub mod cgroup;
mod channel;
mod enter;
pub mod init;
pub mod pty;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
mod users;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub use channel::StepError;
pub use spec::*;

/// Why a container could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A setup step in the child failed: `web: mount /data: no such file or directory (source /srv/data)`.
    #[error("{name}: {error}")]
    Step { name: String, error: StepError },
    #[error("{name}: cannot start the runtime's init stage")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{name}: the init stage broke off: {detail}")]
    Protocol { name: String, detail: String },
    /// The stage (or the process it made) did not answer in time: both
    /// were killed. Nothing a container controls may hold its caller.
    #[error(
        "{name}: no answer from the process entering the container within {secs} s; it was killed"
    )]
    Timeout { name: String, secs: u64 },
    #[error("cannot make a sealed copy of the rkstack binary")]
    Memfd(#[source] io::Error),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// A sealed, in-memory copy of the running binary: what `__init` runs from,
/// so that nothing inside a container can ever write to the host's binary
/// through `/proc/PID/exe` (runc CVE-2019-5736).
fn sealed_exe() -> Result<RawFd, SandboxError> {
    static EXE: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    let r =
        EXE.get_or_init(|| make_sealed_exe().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)));
    match r {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(errno) => Err(SandboxError::Memfd(io::Error::from_raw_os_error(*errno))),
    }
}

/// memfd_create(2): executable (kernels with `vm.memfd_noexec` need it said; older ones ignore it).
const MFD_EXEC: libc::c_uint = 0x10;

fn make_sealed_exe() -> io::Result<OwnedFd> {
    let name = CString::new("rkstack").unwrap_or_default();
    // SAFETY: name is NUL-terminated.
    let mut fd = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | MFD_EXEC,
        )
    };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Before Linux 6.3 the flag is unknown.
        // SAFETY: as above.
        fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    let low = unsafe { OwnedFd::from_raw_fd(fd) };
    // Keep it well above the fds `__init` is handed (its channel goes to 3).
    // SAFETY: fcntl on our own fd.
    let high = unsafe { libc::fcntl(low.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(low);
    // SAFETY: the duplicate is ours.
    let memfd = unsafe { OwnedFd::from_raw_fd(high) };
    let exe = std::fs::File::open("/proc/self/exe")?;
    let len = exe.metadata()?.len();
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: both fds are valid; the kernel copies between them.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        left -= n as u64;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(memfd)
}

/// Where the container's stdio goes.
#[derive(Debug, Default)]
pub enum Stdio3 {
    /// The runtime's own stdin, stdout and stderr.
    #[default]
    Inherit,
    /// These three fds.
    Fds(OwnedFd, OwnedFd, OwnedFd),
}

/// Starts the container. Returns the host pid of its first process, a direct
/// child of the calling process, once it has exec'd its command.
pub fn spawn(spec: &SandboxSpec, stdio: Stdio3) -> Result<i32, SandboxError> {
    launch(&spec.name, init::Job::Start(spec), stdio, None)
}

/// [`spawn`], calling `prepare(pid)` once the process is in its namespaces
/// and cgroup and before it runs anything of the container (its network is
/// set up there). An error from `prepare` kills it and is the error.
pub fn spawn_prepared(
    spec: &SandboxSpec,
    stdio: Stdio3,
    prepare: &mut dyn FnMut(i32) -> Result<(), String>,
) -> Result<i32, SandboxError> {
    let mut held = spec.clone();
    held.hold_before_exec = true;
    launch(
        &held.name.clone(),
        init::Job::Start(&held),
        stdio,
        Some(prepare),
    )
}

/// Runs a process inside a running container (its namespaces, cgroup,
/// user, capabilities, no_new_privs and seccomp). Returns its host pid, a
/// direct child of the caller, once it has exec'd.
pub fn exec(spec: &ExecSpec, stdio: Stdio3) -> Result<i32, SandboxError> {
    launch(&spec.name, init::Job::Exec(spec), stdio, None)
}

type Prepare<'a> = Option<&'a mut dyn FnMut(i32) -> Result<(), String>>;

/// How long the caller waits for the init stage's answers: a new
/// container's root is assembled in that time (loop devices, verity,
/// overlayfs), a process entering a running one only joins and execs.
/// Past it the stage and its process are killed and the start fails.
const START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
const EXEC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long to wait for `job`'s stage. Past it the stage is killed, and
/// the process it made: a process entering a running container by the pid
/// the stage reported (`Cloned`; it shares the container's cgroups); a new
/// container's first process is in its own new cgroups before it runs
/// anything of the container, so it ends with them, as after any failed
/// start (the callers end what is in a failed container's cgroups).
fn deadline(job: &init::Job<'_>) -> std::time::Duration {
    match job {
        init::Job::Start(_) => START_DEADLINE,
        init::Job::Exec(_) => EXEC_DEADLINE,
    }
}

fn launch(
    name: &str,
    job: init::Job<'_>,
    stdio: Stdio3,
    prepare: Prepare<'_>,
) -> Result<i32, SandboxError> {
    // A single-threaded caller may fork the init stage of a new container
    // directly: no other thread can hold a lock across the fork, and the
    // forked copy is PID 1 of a new pid namespace that nothing else is in
    // until it has exec'd the container's command. A process that enters a
    // running container (exec, health checks) is seen by the container's
    // processes from its first moment there, so it is always a fresh
    // exec of the sealed copy: its memory holds its own spec and nothing
    // else of the caller's (no other container's environment, no stack
    // file), and its binary is the sealed memfd, never the host's file.
    // Both are non-dumpable until their execve (see `init::seal`).
    // RKSTACK_SPAWN=reexec forces the sealed re-exec (its tests use it).
    let reexec = std::env::var_os("RKSTACK_SPAWN").is_some_and(|v| v == "reexec");
    if !reexec && matches!(job, init::Job::Start(_)) && single_threaded() {
        return spawn_forked(name, job, stdio, prepare);
    }
    spawn_reexec(name, job, stdio, prepare)
}

fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count() == 1)
        .unwrap_or(false)
}

fn spawn_forked(
    name: &str,
    job: init::Job<'_>,
    stdio: Stdio3,
    prepare: Prepare<'_>,
) -> Result<i32, SandboxError> {
    let name = name.to_string();
    let (ours, theirs) = channel::pair().map_err(|source| SandboxError::Spawn {
        name: name.clone(),
        source,
    })?;
    // SAFETY: the process is single-threaded (checked by the caller); the
    // child only runs the init stage and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SandboxError::Spawn {
            name,
            source: io::Error::last_os_error(),
        });
    }
    if pid == 0 {
        init::seal();
        drop(ours);
        if let Stdio3::Fds(i, o, e) = &stdio {
            // SAFETY: dup2 onto the standard fds of this child.
            unsafe {
                libc::dup2(i.as_raw_fd(), 0);
                libc::dup2(o.as_raw_fd(), 1);
                libc::dup2(e.as_raw_fd(), 2);
            }
        }
        drop(stdio);
        init::forked(theirs, job);
    }
    drop(theirs);
    drop(stdio);
    let result = reply(&ours, &name, prepare, pid, deadline(&job));
    let mut status = 0;
    // SAFETY: reaping the init stage we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result
}

fn spawn_reexec(
    name: &str,
    job: init::Job<'_>,
    stdio: Stdio3,
    prepare: Prepare<'_>,
) -> Result<i32, SandboxError> {
    let name = name.to_string();
    let exe = sealed_exe()?;
    let (ours, theirs) = channel::pair().map_err(|source| SandboxError::Spawn {
        name: name.clone(),
        source,
    })?;
    let mut cmd = Command::new(format!("/proc/self/fd/{exe}"));
    cmd.arg0("rkstack").arg("__init");
    if let Stdio3::Fds(i, o, e) = stdio {
        cmd.stdin(Stdio::from(i))
            .stdout(Stdio::from(o))
            .stderr(Stdio::from(e));
    }
    let their_fd = theirs.as_raw_fd();
    // SAFETY: only dup2 runs between fork and exec, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let r = if their_fd == init::INIT_FD {
                libc::fcntl(their_fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(their_fd, init::INIT_FD)
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut init = cmd.spawn().map_err(|source| SandboxError::Spawn {
        name: name.clone(),
        source,
    })?;
    drop(theirs);
    let result = talk(&ours, &name, job, prepare, init.id() as i32);
    // `__init` exits as soon as it has answered; reap it.
    let _ = init.wait();
    result
}

fn talk(
    chan: &OwnedFd,
    name: &str,
    job: init::Job<'_>,
    prepare: Prepare<'_>,
    stage: i32,
) -> Result<i32, SandboxError> {
    let limit = deadline(&job);
    let msg = match job {
        init::Job::Start(spec) => channel::Message::Start(Box::new(spec.clone())),
        init::Job::Exec(spec) => channel::Message::Exec(Box::new(spec.clone())),
    };
    channel::send(chan.as_fd(), &msg).map_err(|e| SandboxError::Protocol {
        name: name.to_string(),
        detail: e.to_string(),
    })?;
    reply(chan, name, prepare, stage, limit)
}

/// The init stage's answer: the container's pid, or what failed. Waits
/// `limit` at most (the caller's own `prepare` included); see [`deadline`]
/// for what is killed then.
fn reply(
    chan: &OwnedFd,
    name: &str,
    mut prepare: Prepare<'_>,
    stage: i32,
    limit: std::time::Duration,
) -> Result<i32, SandboxError> {
    let name = name.to_string();
    let broke = |detail: String| SandboxError::Protocol {
        name: name.clone(),
        detail,
    };
    let until = std::time::Instant::now() + limit;
    let mut cloned = None;
    loop {
        if !answers_by(chan, until) {
            for pid in [cloned, Some(stage)].into_iter().flatten() {
                // SAFETY: the stage this call started and the process it
                // reported cloning (a child of ours, not reaped yet).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            return Err(SandboxError::Timeout {
                name: name.clone(),
                secs: limit.as_secs(),
            });
        }
        match channel::recv(chan.as_fd()) {
            Ok(Some(channel::Message::Cloned { pid })) => cloned = Some(pid),
            Ok(Some(channel::Message::Started { pid })) => return Ok(pid),
            Ok(Some(channel::Message::Created { pid })) => {
                let Some(p) = prepare.as_mut() else {
                    return Err(broke("it waited, but nothing was to be prepared".into()));
                };
                let answer = match p(pid) {
                    Ok(()) => channel::Message::Continue,
                    Err(detail) => channel::Message::Failed(StepError {
                        step: "prepare".into(),
                        errno: 0,
                        detail,
                    }),
                };
                channel::send(chan.as_fd(), &answer).map_err(|e| broke(e.to_string()))?;
            }
            Ok(Some(channel::Message::Failed(error))) => {
                return Err(SandboxError::Step {
                    name: name.clone(),
                    error,
                });
            }
            Ok(Some(other)) => return Err(broke(format!("unexpected message {other:?}"))),
            Ok(None) => return Err(broke("it exited without an answer".into())),
            Err(e) => return Err(broke(e.to_string())),
        }
    }
}

/// Whether `chan` has something to read (or was closed) before `until`.
fn answers_by(chan: &OwnedFd, until: std::time::Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut p = libc::pollfd {
            fd: chan.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut p, 1, ms) } {
            n if n > 0 => return true,
            0 => return false,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return true,
        }
    }
}
