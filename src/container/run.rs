//! `rkstack run`: one container in the foreground. Signals to rkstack are
//! forwarded to the container; its exit status becomes rkstack's (128+N for
//! signal N); its cgroup and staging directory are removed afterwards,
//! whatever way it ended. Mounts live in the container's own mount
//! namespace and go with it.

use std::path::{Path, PathBuf};

use crate::config::{Container, UserNamespace};
use crate::container::lower::{self, LowerError, Paths};
use crate::container::userns;
use crate::host::namelock::NameLock;
use crate::sandbox::cgroup::{Cgroup, CgroupError, Layout};
use crate::sandbox::{self, SandboxError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("a container named {0} is already running (rkstack run); give this one another --name")]
    NameInUse(String),
    #[error("{what}")]
    Setup {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub use crate::control::Exit;

/// Options of a foreground run beyond the container itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Stack name used in the cgroup path (`rkstack/STACK/NAME`).
    pub stack: String,
    /// Registries (HOST[:PORT]) pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
}

const FORWARDED: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// A signal set of these signals.
pub fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: building a signal set in a zeroed struct we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Runs `c` until it exits. Must be called from a single-threaded process
/// (it uses the process's signal mask).
pub fn run(c: &Container, opts: &RunOptions) -> Result<Exit, RunError> {
    let mut all: Vec<i32> = FORWARDED.to_vec();
    all.push(libc::SIGCHLD);
    let set = sigset(&all);
    // SAFETY: blocking signals for this (single-threaded) process so they are
    // taken synchronously below; the container resets its mask before exec.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let _name = lock_name(&opts.state_dir, c.name.as_str())?;
    let layout = Layout::detect()?;
    let cg = Cgroup::new(
        layout,
        Path::new("rkstack").join(&opts.stack).join(c.name.as_str()),
    );
    // The new root is mounted inside the container's own mount namespace,
    // so one mount point serves every one-off container (a folder made
    // and removed per run cost 0.15 ms on a disk's /run). A root in a user
    // namespace needs a folder it owns: one per run, as before.
    let own_staging = c.security.user_namespace == UserNamespace::Auto;
    let staging = if own_staging {
        opts.state_dir
            .join("rootfs")
            .join(format!("{}-{}", c.name, std::process::id()))
    } else {
        opts.state_dir.join("rootfs").join(SHARED_MOUNT_POINT)
    };
    // A one-off container's writable layer (images only) goes with it,
    // like `docker run --rm`; one left by a run that was killed is not
    // handed to this one. The folders above it stay for the next run.
    let layer =
        crate::container::images::container_dir(&opts.data_dir, &opts.stack, c.name.as_str());
    let _ = std::fs::remove_dir_all(&layer);
    let result = start_and_wait(c, opts, &cg, &staging, &set);
    if own_staging {
        let _ = std::fs::remove_dir(&staging);
    }
    let _ = std::fs::remove_dir_all(&layer);
    let cleanup = cg.destroy();
    let exit = result?;
    cleanup?;
    Ok(exit)
}

/// The one mount point of one-off containers' roots, in `STATE/rootfs/`
/// (never removed: removing a folder unmounts what other mount namespaces
/// have on it). A leading dot: no container name.
const SHARED_MOUNT_POINT: &str = ".root";

/// Holds the name `NAME` in `STATE/rootfs/.names` while the one-off
/// container `NAME` runs: a second `run` of that name is refused rather
/// than sharing the first one's cgroup and writable layer (and removing
/// them under it at its end).
fn lock_name(state_dir: &Path, name: &str) -> Result<NameLock, RunError> {
    let dir = state_dir.join("rootfs");
    let path = dir.join(NAMES_FILE);
    let setup = |what: String| move |source| RunError::Setup { what, source };
    let take = || NameLock::take(&path, name);
    let taken = match take() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(setup(format!("create {}", dir.display())))?;
            take()
        }
        other => other,
    };
    taken
        .map_err(setup(format!("lock {}", path.display())))?
        .ok_or_else(|| RunError::NameInUse(name.to_string()))
}

/// The file of one-off containers' names (see [`NameLock`]); never removed.
const NAMES_FILE: &str = ".names";

fn start_and_wait(
    c: &Container,
    opts: &RunOptions,
    cg: &Cgroup,
    staging: &Path,
    set: &libc::sigset_t,
) -> Result<Exit, RunError> {
    let limits = lower::cgroup_limits(c)?;
    let devices = lower::device_rules(c)?;
    let claim = match c.security.user_namespace {
        UserNamespace::Auto => {
            Some(
                userns::claim(&opts.state_dir).map_err(|source| RunError::Setup {
                    what: format!("{}: cannot claim a user namespace range", c.name),
                    source,
                })?,
            )
        }
        _ => None,
    };
    std::fs::create_dir_all(staging).map_err(|source| RunError::Setup {
        what: format!("create {}", staging.display()),
        source,
    })?;
    if let Some(cl) = &claim {
        // The mapped root must be able to enter the staging directory.
        let _ = std::os::unix::fs::chown(staging, Some(cl.start), Some(cl.start));
    }
    let image = crate::container::images::prepare(
        c,
        &opts.data_dir,
        &opts.stack,
        &opts.insecure_registries,
        true,
    )
    .map_err(|what| LowerError::Invalid {
        name: c.name.to_string(),
        what,
    })?;
    let paths = Paths {
        data_dir: opts.data_dir.clone(),
        stack: opts.stack.clone(),
        volume_paths: Default::default(),
        image,
    };
    let mut spec = lower::sandbox_spec(
        c,
        &paths,
        staging,
        claim.as_ref().map(|cl| (cl.start, cl.count)),
        cg.procs_files(),
        Some(&opts.state_dir.join("seccomp")),
    )?;
    // In the foreground, the container goes when rkstack goes.
    spec.die_with_parent = true;
    spec.discard_layer = true;
    for w in lower::warnings(c) {
        // A warning for the person at the terminal; nothing else to tell.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("rkstack: warning: {w}");
        }
    }
    // cgroup v1: the groups are made while the container's first process
    // builds its root (it joins them before anything of the container
    // runs); making ten hierarchies' groups was ≈ 0.5 ms of the start. On
    // a hybrid host its cgroup2 group comes first: it is born there. Not
    // in a user namespace: mapped, the process may no longer write the
    // host's cgroup files, so it joins first thing.
    let pid = if cg.is_v1() && spec.user_ns.is_none() {
        cg.create_unified()?;
        spec.join_late = true;
        let mut failed = None;
        let started = {
            let mut prepare = |_pid: i32| {
                make_groups(cg, &limits, &devices).map_err(|e| {
                    let text = e.to_string();
                    failed = Some(e);
                    text
                })
            };
            sandbox::spawn_prepared(&spec, sandbox::Stdio3::Inherit, &mut prepare)
        };
        match (started, failed) {
            (Ok(pid), _) => pid,
            (Err(_), Some(e)) => return Err(e.into()),
            (Err(e), None) => return Err(e.into()),
        }
    } else {
        make_groups(cg, &limits, &devices)?;
        sandbox::spawn(&spec, sandbox::Stdio3::Inherit)?
    };
    let exit = wait(pid, set);
    if let Exit::Signal(libc::SIGKILL) = exit
        && cg.events().oom_kills > 0
    {
        return Ok(Exit::Oom);
    }
    Ok(exit)
}

/// The container's groups, with its limits and device rules.
fn make_groups(
    cg: &Cgroup,
    limits: &crate::sandbox::cgroup::Limits,
    devices: &[String],
) -> Result<(), CgroupError> {
    let new = cg.create()?;
    cg.configure(limits, devices, new)
}

/// Forwards signals to `pid` until it exits.
fn wait(pid: i32, set: &libc::sigset_t) -> Exit {
    loop {
        // SAFETY: siginfo is written by the kernel; set is a valid signal set.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(set, &mut info)
        };
        if sig == libc::SIGCHLD || sig < 0 {
            // Reap every child that ended; ours decides.
            loop {
                let mut status = 0;
                // SAFETY: status is valid for writes.
                let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                if r == pid {
                    return if libc::WIFEXITED(status) {
                        Exit::Code(libc::WEXITSTATUS(status))
                    } else {
                        Exit::Signal(libc::WTERMSIG(status))
                    };
                }
            }
        } else {
            // SAFETY: forwarding a signal to the container we started.
            unsafe { libc::kill(pid, sig) };
        }
    }
}
