//! `rkstack up`: one thread, one owner of live state. Signals (signalfd),
//! the stack file's folder (inotify), the containers' output pipes and the
//! timers meet in one `poll`. Plans come from the pure planner and are
//! executed in order; decisions (restart or not, and when) come from
//! [`super::restart`].

use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::collections::{BTreeMap, BinaryHeap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::events::{Facts, Kind};
use super::logs::Log;
use super::restart::{self, Decision, Ended, History};
use crate::container::lower::{self, Paths};
use crate::container::run::sigset;
use crate::container::userns;
use crate::control::Exit;
use crate::control::{Command, ContainerInfo, ControlError, Reply, Request};
use crate::host::lockfile::{LockFile, Taken};

mod attach;
mod children;
mod dns;
mod event_loop;
mod execute;
mod gate;
mod health;
mod lifecycle;
mod networks;
mod persist;
mod placement;
mod pulls;
mod reload;
mod requests;
mod shutdown;
mod sources;
mod staging;
mod stops;
#[cfg(test)]
mod tests;
mod update;
mod wait;
mod watch;
use crate::config::{self, UserNamespace};
use crate::container::Launcher;
use crate::plan::{self, Action, ContainerSpec, DesiredState, ObservedState, Plan, Record, Target};
use crate::sandbox::Stdio3;
use crate::sandbox::cgroup::Layout;
use children::Child;
use lifecycle::{decode, exit_facts};
pub use placement::cgroup_base;
use placement::claim_cgroup_base;
use stops::StopEnd;
use wait::{Waiter, wait_ready};

#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{what}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::sandbox::cgroup::CgroupError),
    #[error(
        "stack {stack} is already running (supervisor pid {pid}); stop it first, or edit its file to change it"
    )]
    AlreadyRunning { stack: String, pid: String },
    /// Host ports the stack would publish are held by other sockets.
    #[error("{0}; nothing was started")]
    PortsInUse(String),
    /// What its containers need from the host is not there (a rootfs, an
    /// image file, a bind source, a seccomp profile).
    #[error("the stack cannot start here:\n{}\nnothing was started", .0.join("\n"))]
    CannotStart(Vec<String>),
}

/// Takes `STATE_DIR/STACK.lock` for as long as the returned lock lives;
/// the file goes with it.
fn lock_stack(state_dir: &Path, stack: &str) -> Result<LockFile, UpError> {
    std::fs::create_dir_all(state_dir).map_err(os(format!("create {}", state_dir.display())))?;
    let path = state_dir.join(format!("{stack}.lock"));
    match LockFile::take(&path, &std::process::id().to_string())
        .map_err(os(format!("lock {}", path.display())))?
    {
        Taken::Ours(lock) => Ok(lock),
        Taken::Held(pid) => Err(UpError::AlreadyRunning {
            stack: stack.to_string(),
            pid,
        }),
    }
}

fn os(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpError {
    let what = what.into();
    move |source| UpError::Os { what, source }
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub data_dir: PathBuf,
    /// Registries (HOST[:PORT]) pulled from over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The containers' output on stdout too, prefixed (`up --attach`).
    pub attach: bool,
    /// The public keys bundles applied through the API must be signed by
    /// (any one; none there: unsigned bundles are taken).
    pub trusted_keys: PathBuf,
}

/// `up -d`: where the detached supervisor tells the command that started it
/// whether the stack came up (`ok`) or failed (`failed: why`).
#[derive(Debug)]
pub struct ReadyPipe(pub OwnedFd);

impl ReadyPipe {
    /// Writes the one message the waiting parent reads.
    pub fn tell(&self, msg: &str) {
        // One short write to a pipe: whole, or the reader is gone.
        let _ = nix::unistd::write(&self.0, msg.as_bytes());
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Held back until its dependencies are started, healthy or completed.
    Waiting,
    /// Waiting for its image, being pulled in the background.
    Pulling,
    Running,
    /// Waiting to be restarted at this instant.
    Backoff(Instant),
    Exited(Exit),
    Failed(String),
    /// Sent its stop signal; killed at this instant if it has not ended.
    /// The loop goes on meanwhile; its end finishes the stop.
    Stopping(Instant),
    Stopped,
}

pub use crate::control::Health;

struct Live {
    /// Its address on each network it joins (kept across restarts).
    ips: BTreeMap<String, std::net::IpAddr>,
    /// OOM kills the cgroup had counted when this run started (the cgroup
    /// is kept across restarts, so its counter is too).
    oom_base: u64,
    /// Why the last start failed, for `up -d` and `ps`.
    last_error: Option<String>,
    /// How its last run ended.
    last_exit: Option<Exit>,
    /// The user its image's config names (for exec and health checks too).
    image_user: Option<String>,
    /// The store's unpacked layers its present run is made of (their
    /// folder names): the store's collection keeps them while it runs.
    layers: Vec<String>,
    /// Set for a container adopted from a previous supervisor: it is not our
    /// child, so its end is seen through this pidfd instead of waitpid.
    pidfd: Option<OwnedFd>,
    /// Start time of `pid` (from /proc), to tell it from a reused pid.
    starttime: Option<u64>,
    health: Option<Health>,
    /// Consecutive failed checks.
    health_failures: u32,
    spec: ContainerSpec,
    /// What the running process was created from.
    record: Record,
    pid: Option<i32>,
    started: Option<Instant>,
    /// `started` on the wall clock (Unix milliseconds), kept in the state
    /// file so an adopting supervisor counts uptime from the real start.
    started_at: Option<u64>,
    state: State,
    history: History,
    restarts: u32,
    user_stopped: bool,
    /// Its image was pulled for it (`pull_policy = "always"` pulls once
    /// per created container, not at every restart).
    pulled: bool,
    log: Log,
    staging: PathBuf,
    claim: Option<userns::Claim>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Restart(String),
    Reload,
    HealthCheck(String),
    HealthTimeout(String, i32),
    Watchdog(Duration),
    /// A stop's deadline (the one in [`State::Stopping`]): SIGKILL.
    StopKill(String, Instant),
    /// Ten seconds after that SIGKILL: the stop is over, ended or not.
    StopGiveUp(String, Instant),
    /// The health gate of an applied generation is due for a decision.
    Gate,
}

/// What waits for a container's stop to finish.
enum Then {
    /// `start` or `restart` by a user: started again, its history cleared.
    StartByUser,
    /// Restarted because it became unhealthy.
    RestartUnhealthy,
    /// A request answered with the container's state once stopped.
    Reply(tokio::sync::oneshot::Sender<Result<Reply, ControlError>>),
}

/// What waits until no plan is being carried out.
enum Idle {
    /// An answer computed already, sent once the plan's ops are done.
    Reply(
        tokio::sync::oneshot::Sender<Result<Reply, ControlError>>,
        Result<Reply, ControlError>,
    ),
    /// A reload that came while a plan waited for a stop.
    Reload {
        why: String,
        reply: Option<tokio::sync::oneshot::Sender<Result<Reply, ControlError>>>,
    },
}

struct Supervisor {
    opts: UpOptions,
    desired: DesiredState,
    live: BTreeMap<String, Live>,
    /// Container processes and cgroups.
    launcher: Box<dyn Launcher>,
    /// Bridges, veths, routes, ports and rules on the host.
    net: Box<dyn crate::network::NetOps>,
    /// What the stack's networks are now (the one owner of that state).
    nets: networks::Networks,
    timers: BinaryHeap<std::cmp::Reverse<(Instant, Timer)>>,
    signal_fd: SignalFd,
    /// The stack file's path, watched.
    watch: Option<watch::FileWatch>,
    /// Every child process by pid: containers, checks, execs, pulls.
    children: children::Children,
    /// The state file's last written text.
    last_saved: Option<String>,
    /// `up -d`'s parent, waiting to hear that the stack is up.
    ready: Option<ReadyPipe>,
    reloads: u64,
    last_reload_ok: bool,
    /// Started by systemd in the `supervisor` leaf of its unit.
    placed_in_leaf: bool,
    /// Where each bind source resolved when the file was first read.
    pins: super::binds::Pins,
    /// Plan ops not carried out yet: the first waits for a stop to finish.
    queue: std::collections::VecDeque<plan::Op>,
    /// Whether the queue is being worked through (a nested call returns).
    in_queue: bool,
    /// Waiting containers are being started (a nested call only asks for
    /// another round: a start that lets others start never recurses, so a
    /// thousand dependents of one container cannot exhaust the stack).
    in_start_ready: bool,
    /// A start during that round may have let others start.
    ready_again: bool,
    /// What runs when a container's stop finishes.
    after_stop: Vec<(String, Then)>,
    /// What runs when the queue is empty.
    when_idle: Vec<Idle>,
    /// Once the stack is stopping: the batches of containers still to
    /// stop, in order (dependents first); empty when all have stopped.
    shutting: Option<std::collections::VecDeque<Vec<String>>>,
    /// Generations and the health gate of an applied one.
    update: update::Updates,
}

/// Editors save in a burst of events (write, rename, chmod) within a few
/// milliseconds; one reload after the burst is enough.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(10);

const HANDLED: &[i32] = &[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

impl Supervisor {
    /// A supervisor of `desired` with nothing running yet; `signal_fd`
    /// is what the loop reads signals from.
    fn new(
        opts: UpOptions,
        desired: DesiredState,
        launcher: Box<dyn Launcher>,
        net: Box<dyn crate::network::NetOps>,
        signal_fd: SignalFd,
    ) -> Supervisor {
        Supervisor {
            reloads: 0,
            last_reload_ok: true,
            placed_in_leaf: false,
            pins: Default::default(),
            queue: Default::default(),
            in_queue: false,
            in_start_ready: false,
            ready_again: false,
            after_stop: Vec::new(),
            when_idle: Vec::new(),
            shutting: None,
            update: update::Updates::open(&opts.data_dir, &desired.stack, desired.update.keep),
            launcher,
            net,
            desired,
            live: BTreeMap::new(),
            timers: BinaryHeap::new(),
            signal_fd,
            watch: None,
            children: Default::default(),
            nets: Default::default(),
            last_saved: None,
            ready: None,
            opts,
        }
    }
}

/// Records one lifecycle event (see [`super::events`]).
fn event(stack: &str, kind: Kind, msg: impl std::fmt::Display) {
    super::events::record_as(stack, kind, Facts::default(), msg.to_string());
}

/// [`event`] with its facts as fields.
fn event_with(stack: &str, kind: Kind, facts: Facts, msg: impl std::fmt::Display) {
    super::events::record_as(stack, kind, facts, msg.to_string());
}

/// Tells systemd (when it started us with NOTIFY_SOCKET).
pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let _ = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), Path::new(&path))
    };
}

/// What `up` acts on the machine through: the binary's entry point joins
/// the real ones (the Linux launcher and network operations), tests
/// the fakes; the supervisor names neither.
pub struct Seams {
    /// Makes the launcher once the cgroup layout and the stack's cgroup
    /// base (`rkstack/STACK`, or the unit's own under systemd) are known.
    pub launcher: fn(Layout, PathBuf) -> Box<dyn Launcher>,
    pub net: Box<dyn crate::network::NetOps>,
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seams")
    }
}

/// What `up -d`'s waiting parent is told when the supervisor gives up
/// before the stack is up: this prefix, then the error.
pub const READY_EXITED: &str = "exited: ";

/// Runs the stack until SIGTERM/SIGINT or a `down`, and returns when every
/// container is stopped. Reports to `ready` once every container is up or
/// one failed, or why the supervisor could not carry on.
pub fn up_with(
    opts: UpOptions,
    seams: Seams,
    ready: Option<ReadyPipe>,
    control: Option<Control>,
) -> Result<(), UpError> {
    crate::container::nofile::raise();
    let report = ready.as_ref().and_then(|r| r.0.try_clone().ok());
    let result = supervise(opts, seams, ready, control);
    if let (Err(e), Some(fd)) = (&result, report) {
        // Nobody reads any more once the stack was reported up: harmless.
        let msg = format!("{READY_EXITED}{e}");
        let _ = nix::unistd::write(&fd, msg.as_bytes());
    }
    result
}

/// Control requests for the event loop, and the server that produces them
/// (run on the loop's own thread while the loop waits).
pub struct Control {
    pub requests: tokio::sync::mpsc::UnboundedReceiver<Request>,
    pub server: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

fn supervise(
    opts: UpOptions,
    seams: Seams,
    ready: Option<ReadyPipe>,
    control: Option<Control>,
) -> Result<(), UpError> {
    // Orphans of the containers' processes come to us, and are reaped.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut handled = HANDLED.to_vec();
    if super::pid1::is_init() {
        handled.extend(super::pid1::signals());
    }
    // SAFETY: a set sigemptyset and sigaddset made; it may hold real-time
    // signals (PID 1's), which nix's `Signal` cannot name.
    let set = unsafe { SigSet::from_sigset_t_unchecked(sigset(&handled)) };
    // Our signals arrive through the signalfd only.
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| os("sigprocmask")(e.into()))?;
    let signal_fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| os("signalfd")(e.into()))?;
    let text = config::read_text(&opts.file)?;
    let mut stack = config::parse(&text, &opts.file)?;
    let mut pins = super::binds::Pins::default();
    pins.apply(&mut stack);
    // One supervisor per stack: a second would adopt, and fight over, the
    // first one's containers. The lock goes with the process, however it ends.
    let _lock = lock_stack(&opts.state_dir, stack.name.as_str())?;
    let updates = update::Updates::open(&opts.data_dir, stack.name.as_str(), stack.update.keep);
    // Where the file is a rollback's generation, its containers run the
    // images that generation pinned.
    let image_pins = updates.pins_for(&text);
    let desired = {
        let mut ids = crate::container::images::ids(&stack, &opts.data_dir);
        ids.extend(image_pins.clone());
        DesiredState::from_stack_with_images(stack, &ids)
    };
    let file_watch = watch::FileWatch::new(&opts.file);
    let layout = Layout::detect()?;
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let placed_in_leaf = matches!(layout, Layout::V2 { .. })
        && own_cgroup
            .lines()
            .any(|l| l.starts_with("0::") && l.trim_end().ends_with("/supervisor"));
    let cgroup_base = claim_cgroup_base(&layout, &own_cgroup, &desired.stack);
    let mut sup = Supervisor::new(
        opts,
        desired,
        (seams.launcher)(layout, cgroup_base),
        seams.net,
        signal_fd,
    );
    sup.watch = file_watch;
    sup.ready = ready;
    sup.placed_in_leaf = placed_in_leaf;
    sup.pins = pins;
    sup.update = updates;
    sup.update.pins = image_pins;
    sup.adopt();
    crate::container::images::empty_trash(&sup.opts.data_dir, &sup.stack());
    // systemd's watchdog: a sign of life from the event loop at half the period.
    if let Some(usec) = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        && std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p == std::process::id().to_string())
        && usec > 0
    {
        let every = Duration::from_micros(usec / 2);
        sup.timers.push(std::cmp::Reverse((
            Instant::now() + every,
            Timer::Watchdog(every),
        )));
    }
    let plan = plan::reconcile(&sup.desired, &sup.observed());
    if let Err(e) = sup.check_ports(&sup.desired, &plan) {
        // Nothing was changed yet; containers adopted from a crash run on.
        return Err(UpError::PortsInUse(e));
    }
    // A missing rootfs or bind source refuses the stack now, rather than
    // leaving a supervisor that retries a start that cannot work.
    let problems: Vec<String> = plan
        .ops
        .iter()
        .filter(|o| o.target == Target::Container && o.action == Action::Start)
        .filter_map(|o| sup.desired.container(&o.name))
        .flat_map(|c| super::preflight::problems(&c.config))
        .collect();
    if !problems.is_empty() {
        return Err(UpError::CannotStart(problems));
    }
    event(&sup.desired.stack, Kind::Plan, format!("plan:\n{plan}"));
    sup.first_generation(&text);
    // Subscribed before the first start: no line is missed.
    let attached = sup.opts.attach.then(|| {
        let width = sup
            .desired
            .containers
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        (crate::supervisor::logs::subscribe(), width)
    });
    sup.execute(&plan);
    sup.save_state();
    sup.report_ready();
    sup.notify_status("READY=1");
    // One thread throughout: the runtime only waits for the loop's file
    // descriptors and serves the API in between (the fork fast path of the
    // sandbox needs a single-threaded process).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(os("the event loop's runtime"))?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, async {
        if let Some((rx, width)) = attached {
            tokio::task::spawn_local(attach::print(rx, width));
        }
        let requests = match control {
            Some(c) => {
                tokio::task::spawn_local(c.server);
                Some(c.requests)
            }
            None => None,
        };
        sup.run_loop(requests).await
    });
    sup.shutdown();
    result
}

impl Supervisor {
    fn stack(&self) -> String {
        self.desired.stack.clone()
    }

    fn notify_status(&self, head: &str) {
        let running = self
            .live
            .values()
            .filter(|l| l.state == State::Running)
            .count();
        sd_notify(&format!(
            "{head}\nSTATUS={running} of {} containers running",
            self.live.len()
        ));
    }
}
