//! `rkstack up`: one thread, one owner of live state. Signals (signalfd),
//! the stack file's folder (inotify), the containers' output pipes and the
//! timers meet in one `poll`. Plans come from the pure planner and are
//! executed in order; decisions (restart or not, and when) come from
//! [`super::restart`].

use std::collections::{BTreeMap, BinaryHeap};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::control::{ApiError, Command, ContainerInfo, Request};
use super::lockfile::{LockFile, Taken};
use super::logs::Log;
use super::lower::{self, Paths};
use super::restart::{self, Decision, Ended, History};
use super::run::{Exit, sigset};
use super::userns;

mod requests;
use crate::config::{self, UserNamespace};
use crate::plan::{self, Action, ContainerSpec, DesiredState, ObservedState, Plan, Record, Target};
use crate::sandbox::cgroup::{Cgroup, Layout};
use crate::sandbox::{self, Stdio3};
use requests::{Waiter, wait_ready};

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
}

/// `up -d`: where the detached supervisor tells the command that started it
/// whether the stack came up (`ok`) or failed (`failed: why`).
#[derive(Debug)]
pub struct ReadyPipe(pub OwnedFd);

impl ReadyPipe {
    /// Writes the one message the waiting parent reads.
    pub fn tell(&self, msg: &str) {
        // SAFETY: writing our message to the pipe we were given.
        unsafe { libc::write(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
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
    Stopped,
}

/// Health of a running container with a `[health]` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

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
    /// Its cgroup's accounting files, opened when first read in a run.
    usage: std::cell::RefCell<Option<crate::sandbox::cgroup::UsageReader>>,
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
    cgroup: Cgroup,
    pid: Option<i32>,
    started: Option<Instant>,
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
}

/// An image pull in the background: the loop goes on (requests, restarts,
/// reloads) while a `rkstack pull` child fetches it; containers waiting for
/// it are in [`State::Pulling`].
struct PullJob {
    /// The image reference as the stack file names it (`docker://...`).
    image: String,
    /// The child's output, read for the error when it fails.
    log: PathBuf,
    since: Instant,
}

struct Supervisor {
    opts: UpOptions,
    desired: DesiredState,
    live: BTreeMap<String, Live>,
    layout: Layout,
    timers: BinaryHeap<std::cmp::Reverse<(Instant, Timer)>>,
    signal_fd: OwnedFd,
    inotify: Option<OwnedFd>,
    file_name: Option<std::ffi::OsString>,
    /// Health checks in flight: their pid → the container.
    checks: BTreeMap<i32, String>,
    /// The state file's last written text.
    last_saved: Option<String>,
    /// `up -d`'s parent, waiting to hear that the stack is up.
    ready: Option<ReadyPipe>,
    /// Where the containers' cgroups go, relative to each hierarchy's root.
    cgroup_base: PathBuf,
    /// Networks made, as the plan sees them.
    networks: BTreeMap<String, plan::NetworkRecord>,
    /// The nftables rules last applied (ports and NAT), to apply only changes.
    nft_rules: Option<String>,
    /// Addresses of containers that ended while no supervisor ran: they
    /// get them back when they start again (network → address).
    past_ips: BTreeMap<String, BTreeMap<String, std::net::IpAddr>>,
    /// Host ports in the nftables table now.
    published: Vec<super::stacks::Published>,
    /// Processes run by `exec` requests: pid → who waits for its status.
    execs: BTreeMap<i32, tokio::sync::oneshot::Sender<i32>>,
    /// Image pulls under way (`rkstack pull` processes): pid → the pull.
    pulls: BTreeMap<i32, PullJob>,
    reloads: u64,
    last_reload_ok: bool,
    /// Started by systemd in the `supervisor` leaf of its unit.
    placed_in_leaf: bool,
    /// Where each bind source resolved when the file was first read.
    pins: super::binds::Pins,
}

/// Editors save in a burst of events (write, rename, chmod) within a few
/// milliseconds; one reload after the burst is enough.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(10);

const HANDLED: &[i32] = &[libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Records one lifecycle event (see [`super::events`]).
fn event(stack: &str, msg: impl std::fmt::Display) {
    super::events::record(stack, msg.to_string());
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

/// Runs the stack until SIGTERM/SIGINT. Returns when every container is stopped.
pub fn up(opts: UpOptions) -> Result<(), UpError> {
    up_with(opts, None, None)
}

/// What `up -d`'s waiting parent is told when the supervisor gives up
/// before the stack is up: this prefix, then the error.
pub const READY_EXITED: &str = "exited: ";

/// [`up`], reporting to `ready` once every container is up or one failed,
/// or why the supervisor could not carry on.
pub fn up_with(
    opts: UpOptions,
    ready: Option<ReadyPipe>,
    control: Option<Control>,
) -> Result<(), UpError> {
    super::nofile::raise();
    let report = ready.as_ref().and_then(|r| r.0.try_clone().ok());
    let result = supervise(opts, ready, control);
    if let (Err(e), Some(fd)) = (&result, report) {
        // Nobody reads any more once the stack was reported up: harmless.
        let msg = format!("{READY_EXITED}{e}");
        // SAFETY: writing our message to the pipe we were given.
        unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
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
    let set = sigset(&handled);
    // SAFETY: blocking our signals so they arrive through the signalfd only.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: a new signalfd for the blocked set.
    let sfd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if sfd < 0 {
        return Err(os("signalfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: a new fd that we own.
    let signal_fd = unsafe { OwnedFd::from_raw_fd(sfd) };
    let mut stack = config::load(&opts.file)?;
    let mut pins = super::binds::Pins::default();
    pins.apply(&mut stack);
    // One supervisor per stack: a second would adopt, and fight over, the
    // first one's containers. The lock goes with the process, however it ends.
    let _lock = lock_stack(&opts.state_dir, stack.name.as_str())?;
    let desired = {
        let ids = super::images::ids(&stack, &opts.data_dir);
        DesiredState::from_stack_with_images(stack, &ids)
    };
    let (inotify, file_name) = watch(&opts.file);
    let layout = Layout::detect()?;
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let placed_in_leaf = matches!(layout, Layout::V2 { .. })
        && own_cgroup
            .lines()
            .any(|l| l.starts_with("0::") && l.trim_end().ends_with("/supervisor"));
    let cgroup_base = claim_cgroup_base(&layout, &own_cgroup, &desired.stack);
    let mut sup = Supervisor {
        nft_rules: None,
        past_ips: BTreeMap::new(),
        published: Vec::new(),
        execs: BTreeMap::new(),
        pulls: BTreeMap::new(),
        reloads: 0,
        last_reload_ok: true,
        placed_in_leaf,
        pins,
        networks: BTreeMap::new(),
        cgroup_base,
        layout,
        desired,
        live: BTreeMap::new(),
        timers: BinaryHeap::new(),
        signal_fd,
        inotify,
        file_name,
        checks: BTreeMap::new(),
        last_saved: None,
        ready,
        opts,
    };
    sup.adopt();
    super::images::empty_trash(&sup.opts.data_dir, &sup.stack());
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
    event(&sup.desired.stack, format!("plan:\n{plan}"));
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
        let requests = match control {
            Some(c) => {
                tokio::task::spawn_local(c.server);
                Some(c.requests)
            }
            None => None,
        };
        sup.run_loop(requests).await
    });
    sd_notify("STOPPING=1");
    sup.shutdown();
    result
}

/// Watches the stack file's folder: editors save by rename.
fn watch(file: &Path) -> (Option<OwnedFd>, Option<std::ffi::OsString>) {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return (None, None);
    }
    // SAFETY: new fd, ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c =
        CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str())).unwrap_or_default();
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE;
    // SAFETY: valid fd and NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
        return (None, None);
    }
    (Some(fd), file.file_name().map(|n| n.to_os_string()))
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

    async fn run_loop(
        &mut self,
        mut requests: Option<tokio::sync::mpsc::UnboundedReceiver<Request>>,
    ) -> Result<(), UpError> {
        let mut waiter = Waiter::default();
        // Whether the last pass only answered questions (then the loop's
        // descriptors are those of the last wait).
        let mut questions_only = false;
        loop {
            // Whether a timer did something in this pass.
            let mut fired = false;
            let now = Instant::now();
            while let Some(std::cmp::Reverse((at, _))) = self.timers.peek() {
                if *at > now {
                    break;
                }
                if let Some(std::cmp::Reverse((_, t))) = self.timers.pop() {
                    self.on_timer(t);
                    fired = true;
                }
            }
            let timeout = self
                .timers
                .peek()
                .map(|std::cmp::Reverse((at, _))| {
                    at.saturating_duration_since(Instant::now())
                        .as_millis()
                        .min(60_000) as i32
                })
                .unwrap_or(60_000);
            let mut fds = vec![libc::pollfd {
                fd: self.signal_fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(i) = &self.inotify {
                fds.push(libc::pollfd {
                    fd: i.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let mut pipes: Vec<(String, usize)> = Vec::new();
            for (name, l) in &self.live {
                for (s, fd) in [(0, l.log.out_r.as_raw_fd()), (1, l.log.err_r.as_raw_fd())] {
                    fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    pipes.push((name.clone(), s));
                }
            }
            let mut adopted: Vec<String> = Vec::new();
            for (name, l) in &self.live {
                if let Some(p) = &l.pidfd {
                    fds.push(libc::pollfd {
                        fd: p.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    adopted.push(name.clone());
                }
            }
            let same_fds = questions_only && !fired;
            let (n, asked) =
                wait_ready(&mut fds, timeout, requests.as_mut(), &mut waiter, same_fds).await;
            questions_only = !asked.is_empty() && asked.iter().all(|r| r.command.reads_only());
            for r in asked {
                if self.on_request(r) {
                    // Let the server send the answer before the loop ends.
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    event(&self.stack(), "stopping the stack (down)");
                    return Ok(());
                }
            }
            if n < 0 {
                continue;
            }
            if n == 0 && questions_only && !fired {
                // Nothing happened but questions: nothing to save or report.
                continue;
            }
            questions_only = false;
            let base = 1 + usize::from(self.inotify.is_some());
            for (i, (name, stream)) in pipes.iter().enumerate() {
                if fds[base + i].revents != 0
                    && let Some(l) = self.live.get_mut(name)
                {
                    l.log.drain(*stream);
                }
            }
            let stack = self.stack();
            // One event when an episode of dropped lines starts, one with
            // its count when writing works again: a full disk does not
            // push everything else out of the event journal.
            for (name, l) in self.live.iter_mut() {
                if l.log.dropping && !l.log.announced {
                    l.log.announced = true;
                    event(
                        &stack,
                        format!(
                            "{name}: log lines dropped: writing {} failed (disk full?); the container runs on",
                            l.log.path().display()
                        ),
                    );
                } else if !l.log.dropping && l.log.announced {
                    l.log.announced = false;
                    event(
                        &stack,
                        format!(
                            "{name}: {} log lines were dropped; {} is written again",
                            l.log.dropped,
                            l.log.path().display()
                        ),
                    );
                }
            }
            let base = base + pipes.len();
            for (i, name) in adopted.iter().enumerate() {
                if fds[base + i].revents != 0 {
                    // An adopted container ended; not our child, so its status is unknown.
                    let ran = self
                        .live
                        .get(name)
                        .and_then(|l| l.started)
                        .map(|s| s.elapsed())
                        .unwrap_or_default();
                    if let Some(l) = self.live.get_mut(name) {
                        l.pid = None;
                        l.pidfd = None;
                    }
                    event(
                        &self.stack(),
                        format!("{name}: ended (it was adopted, so its exit status is unknown)"),
                    );
                    self.after_exit(name, Exit::Code(255), ran);
                }
            }
            self.save_state();
            self.report_ready();
            if self.inotify.is_some() && fds[1].revents != 0 && self.file_changed() {
                // Debounced: editors write, rename and touch in a burst.
                self.timers.push(std::cmp::Reverse((
                    Instant::now() + RELOAD_DEBOUNCE,
                    Timer::Reload,
                )));
            }
            if fds[0].revents != 0 {
                let mut reaped = false;
                for sig in self.read_signals() {
                    match sig {
                        libc::SIGCHLD => {
                            self.reap();
                            reaped = true;
                        }
                        libc::SIGHUP => self.reload("SIGHUP"),
                        libc::SIGTERM | libc::SIGINT => {
                            super::pid1::stopped_by(sig);
                            event(&self.stack(), "stopping the stack");
                            return Ok(());
                        }
                        s if super::pid1::is_init() && super::pid1::finish_of(s).is_some() => {
                            super::pid1::stopped_by(s);
                            event(&self.stack(), format!("stopping the stack (signal {s})"));
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                // What the exits changed (a restart policy giving up, a
                // container gone) is saved now, not at the next wake-up.
                if reaped {
                    self.save_state();
                }
            }
        }
    }

    fn read_signals(&self) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            // SAFETY: a zeroed buffer the kernel fills.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            // SAFETY: reading one record into info.
            let n = unsafe {
                libc::read(
                    self.signal_fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if n <= 0 {
                return out;
            }
            out.push(info.ssi_signo as i32);
        }
    }

    fn file_changed(&self) -> bool {
        let Some(fd) = &self.inotify else {
            return false;
        };
        let mut buf = [0u8; 4096];
        let mut hit = false;
        loop {
            // SAFETY: buf valid for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return hit;
            }
            let mut off = 0usize;
            while off + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with any alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_start = off + std::mem::size_of::<libc::inotify_event>();
                let name_end = (name_start + ev.len as usize).min(n as usize);
                let raw = &buf[name_start..name_end];
                let name = raw.split(|b| *b == 0).next().unwrap_or(&[]);
                if self
                    .file_name
                    .as_ref()
                    .is_some_and(|f| std::os::unix::ffi::OsStrExt::as_bytes(f.as_os_str()) == name)
                {
                    hit = true;
                }
                off = name_end;
            }
        }
    }

    fn on_timer(&mut self, t: Timer) {
        match t {
            Timer::Reload => {
                // Several events may have queued several reloads; one will do.
                self.timers
                    .retain(|std::cmp::Reverse((_, t))| *t != Timer::Reload);
                self.reload("file changed");
            }
            Timer::Restart(name) => {
                let due = matches!(
                    self.live.get(&name).map(|l| &l.state),
                    Some(State::Backoff(_))
                );
                if due {
                    self.start(&name);
                }
            }
            Timer::HealthCheck(name) => self.run_check(&name),
            Timer::Watchdog(every) => {
                sd_notify("WATCHDOG=1");
                self.timers.push(std::cmp::Reverse((
                    Instant::now() + every,
                    Timer::Watchdog(every),
                )));
            }
            Timer::HealthTimeout(name, pid) => {
                if self.checks.get(&pid) == Some(&name) {
                    // SAFETY: killing the health check process we started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// Re-reads the stack file. An invalid file changes nothing.
    fn reload(&mut self, why: &str) {
        let _ = self.try_reload(why);
    }

    /// [`Supervisor::reload`], with its outcome: the plan carried out, or why
    /// the file was rejected (the stack then runs on as it was).
    fn try_reload(&mut self, why: &str) -> Result<Plan, ApiError> {
        let now_us = {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: ts is valid for writes.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
        };
        sd_notify(&format!("RELOADING=1\nMONOTONIC_USEC={now_us}"));
        self.reloads += 1;
        let result = self.reload_plan(why);
        self.last_reload_ok = result.is_ok();
        if let Err(e) = &result {
            let detail = if e.problems.is_empty() {
                e.error.clone()
            } else {
                format!("{}:\n{}", e.error, e.problems.join("\n"))
            };
            event(
                &self.stack(),
                format!("reload ({why}) rejected, the stack keeps running as it was:\n{detail}"),
            );
        }
        self.notify_status("READY=1");
        result
    }

    fn reload_plan(&mut self, why: &str) -> Result<Plan, ApiError> {
        let mut stack = config::load(&self.opts.file).map_err(|e| {
            ApiError::invalid(
                format!("{} is not a valid stack file", self.opts.file.display()),
                e.diagnostics().iter().map(|d| d.to_string()).collect(),
            )
        })?;
        self.pins.apply(&mut stack);
        if stack.name.as_str() != self.desired.stack {
            return Err(ApiError::conflict(format!(
                "the stack's name changed to {}; restart rkstack to rename a stack",
                stack.name
            )));
        }
        let desired = {
            let ids = super::images::ids(&stack, &self.opts.data_dir);
            DesiredState::from_stack_with_images(stack, &ids)
        };
        let plan = plan::reconcile(&desired, &self.observed());
        self.check_ports(&desired, &plan)
            .map_err(ApiError::conflict)?;
        // What the starts need from the host, before anything is stopped.
        let problems: Vec<String> = plan
            .ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .filter_map(|o| desired.container(&o.name))
            .flat_map(|c| super::preflight::problems(&c.config))
            .collect();
        if !problems.is_empty() {
            return Err(ApiError::invalid(
                "the new stack cannot start here; nothing was changed",
                problems,
            ));
        }
        self.desired = desired;
        if plan.is_noop() {
            event(&self.stack(), format!("reload ({why}): nothing to do"));
        } else {
            event(&self.stack(), format!("reload ({why}):\n{plan}"));
        }
        // Also a plan of keeps: policy keys (restart, stop_signal, health
        // timing, ...) take effect through them without a restart.
        self.execute(&plan);
        Ok(plan)
    }

    fn observed(&self) -> ObservedState {
        ObservedState {
            containers: self
                .live
                .iter()
                .map(|(n, l)| (n.clone(), l.record.clone()))
                .collect(),
            networks: self.networks.clone(),
        }
    }

    /// Carries out a plan, op by op, in its order. No decisions here.
    fn execute(&mut self, plan: &Plan) {
        self.execute_ops(plan);
        // Networks may have gone or changed without any container event.
        self.apply_ports();
    }

    fn execute_ops(&mut self, plan: &Plan) {
        for op in &plan.ops {
            match (op.target, op.action) {
                (Target::Container, Action::Stop) => {
                    self.stop(&op.name);
                    if op.why == plan::Why::Removed {
                        self.remove(&op.name);
                    }
                }
                (Target::Container, Action::Start) => {
                    let Some(spec) = self.desired.container(&op.name).cloned() else {
                        continue;
                    };
                    if op.why == plan::Why::Recreate {
                        // A new container: a fresh writable layer (a restart keeps it).
                        super::images::discard_layer(&self.opts.data_dir, &self.stack(), &op.name);
                    }
                    match self.live.get_mut(&op.name) {
                        Some(l) => {
                            l.spec = spec;
                            l.user_stopped = false;
                            l.history = History::default();
                        }
                        None => match self.admit(spec) {
                            Ok(l) => {
                                self.live.insert(op.name.clone(), l);
                            }
                            Err(e) => {
                                event(&self.stack(), format!("{}: cannot be set up: {e}", op.name));
                                continue;
                            }
                        },
                    }
                    self.start_when_ready(&op.name);
                }
                (Target::Container, Action::Update) => {
                    let Some(spec) = self.desired.container(&op.name).cloned() else {
                        continue;
                    };
                    if let Some(l) = self.live.get_mut(&op.name) {
                        match lower::cgroup_limits(&spec.config)
                            .map_err(|e| e.to_string())
                            .and_then(|lim| l.cgroup.apply(&lim).map_err(|e| e.to_string()))
                        {
                            Ok(()) => {
                                l.record.limits = spec.limits.clone();
                                l.spec = spec;
                                event(&self.desired.stack, format!("{}: {}", op.name, op.cause));
                            }
                            Err(e) => event(
                                &self.desired.stack,
                                format!("{}: limits not applied: {e}", op.name),
                            ),
                        }
                    }
                }
                (Target::Container, Action::Keep) => {
                    // Policy keys (restart, health timing, ...) take effect without a restart.
                    if let (Some(spec), Some(l)) = (
                        self.desired.container(&op.name).cloned(),
                        self.live.get_mut(&op.name),
                    ) {
                        l.spec = spec;
                    }
                }
                (Target::Network, Action::Create) => {
                    let Some(n) = self.desired.networks.get(&op.name).cloned() else {
                        continue;
                    };
                    if let (Some(subnet), Some(gw)) = (n.config.subnet, n.config.gateway) {
                        let bridge = crate::network::names::bridge(&self.stack(), &op.name);
                        // A subnet the host already routes elsewhere would cut it off.
                        let ours = [(
                            op.name.clone(),
                            crate::network::Subnet {
                                addr: subnet.addr,
                                prefix: subnet.prefix,
                            },
                        )];
                        let routes: Vec<crate::network::Subnet> =
                            crate::network::linux::ipv4_routes()
                                .into_iter()
                                .filter(|(iface, _)| *iface != bridge)
                                .map(|(_, r)| r)
                                .collect();
                        if let Some((_, r)) =
                            crate::network::ipam::host_overlaps(&ours, &routes).first()
                        {
                            event(
                                &self.stack(),
                                format!(
                                    "network {}: not made: {subnet} overlaps the host's route to {r}; choose another subnet",
                                    op.name
                                ),
                            );
                            continue;
                        }
                        match crate::network::linux::ensure_bridge(&bridge, gw, subnet.prefix) {
                            Ok(()) => event(
                                &self.stack(),
                                format!(
                                    "network {}: bridge {bridge} up ({subnet}, gateway {gw})",
                                    op.name
                                ),
                            ),
                            Err(e) => event(
                                &self.stack(),
                                format!("network {}: cannot be made: {e}", op.name),
                            ),
                        }
                    }
                    self.networks.insert(op.name.clone(), n.record());
                }
                (Target::Network, Action::Remove) => {
                    let bridge = crate::network::names::bridge(&self.stack(), &op.name);
                    if let Err(e) = crate::network::linux::delete_link(&bridge) {
                        event(&self.stack(), format!("network {}: {e}", op.name));
                    }
                    self.networks.remove(&op.name);
                }
                _ => {}
            }
        }
    }

    /// Makes the long-lived parts of a container: its log and cgroup handle.
    fn admit(&self, spec: ContainerSpec) -> Result<Live, String> {
        let stack = self.stack();
        let c = &spec.config;
        let log = Log::open(
            self.opts
                .data_dir
                .join(&stack)
                .join("logs")
                .join(format!("{}.log", c.name)),
            c.logging.max_size.0,
            c.logging.max_files,
        )
        .map_err(|e| format!("log file: {e}"))?;
        let cgroup = Cgroup::new(self.layout.clone(), self.cgroup_base.join(c.name.as_str()))
            .only(&lower::extra_controllers(c));
        let staging = self
            .opts
            .state_dir
            .join(&stack)
            .join("rootfs")
            .join(c.name.as_str());
        Ok(Live {
            record: spec.record(),
            spec,
            cgroup,
            pid: None,
            started: None,
            state: State::Stopped,
            ips: BTreeMap::new(),
            oom_base: 0,
            last_error: None,
            last_exit: None,
            image_user: None,
            usage: Default::default(),
            pidfd: None,
            starttime: None,
            health: None,
            health_failures: 0,
            history: History::default(),
            restarts: 0,
            user_stopped: false,
            pulled: false,
            log,
            staging,
            claim: None,
        })
    }

    fn start(&mut self, name: &str) {
        let stack = self.stack();
        let now = Instant::now();
        if let Some(l) = self.live.get(name)
            && let Some(image) =
                super::images::pull_needed(&l.spec.config, &self.opts.data_dir, l.pulled)
        {
            self.pull_for(name, image);
            return;
        }
        let result = self.try_start(name);
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        l.history.started(now, l.spec.config.start_limit.as_ref());
        match result {
            Ok(pid) => {
                l.pid = Some(pid);
                l.oom_base = l.cgroup.events().oom_kills;
                l.starttime = proc_starttime(pid);
                l.pidfd = None;
                l.started = Some(now);
                l.state = State::Running;
                l.record = l.spec.record();
                l.health_failures = 0;
                l.health = l.spec.config.health.as_ref().map(|_| Health::Starting);
                let first = l
                    .spec
                    .config
                    .health
                    .as_ref()
                    .map(|h| h.interval.0.min(Duration::from_secs(1)));
                event(&stack, format!("{name}: started (pid {pid})"));
                if let Some(after) = first {
                    self.timers.push(std::cmp::Reverse((
                        now + after,
                        Timer::HealthCheck(name.to_string()),
                    )));
                }
                self.refresh_hosts();
                self.start_ready();
            }
            Err(e) => {
                event(&stack, format!("{name}: failed to start: {e}"));
                l.last_error = Some(format!("failed to start: {e}"));
                // A start that fails is a failed run for the restart policy.
                self.after_exit(name, Exit::Code(127), Duration::ZERO);
            }
        }
    }

    /// Puts `name` in [`State::Pulling`] and pulls `image` in the
    /// background, unless a pull of it is under way already.
    fn pull_for(&mut self, name: &str, image: String) {
        let stack = self.stack();
        if let Some(l) = self.live.get_mut(name) {
            l.state = State::Pulling;
        }
        if self.pulls.values().any(|p| p.image == image) {
            event(&stack, format!("{name}: waiting for the pull of {image}"));
            return;
        }
        match self.spawn_pull(&image) {
            Ok((pid, log)) => {
                event(&stack, format!("{name}: pulling {image} (pid {pid})"));
                self.pulls.insert(
                    pid,
                    PullJob {
                        image,
                        log,
                        since: Instant::now(),
                    },
                );
            }
            Err(e) => self.pull_failed(name, &format!("pull {image}: {e}")),
        }
    }

    /// Starts `rkstack pull IMAGE` (this very binary) with the supervisor's
    /// data dir and registries, its output to a file.
    fn spawn_pull(&self, image: &str) -> Result<(i32, PathBuf), String> {
        let dir = self.opts.state_dir.join(self.stack()).join("pulls");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = dir.join(format!(
            "{}.log",
            crate::image::store::Digest::of(image.as_bytes()).hex()
        ));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg0("rkstack")
            .arg("--data-dir")
            .arg(&self.opts.data_dir);
        for r in &self.opts.insecure_registries {
            cmd.arg("--insecure-registry").arg(r);
        }
        cmd.arg("pull")
            .arg(image)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: only sigprocmask, async-signal-safe, between fork and exec:
        // the loop's blocked signals (they come through its signalfd) must
        // not stay blocked in the pull.
        unsafe {
            cmd.pre_exec(|| {
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("rkstack pull: {e}"))?;
        // Reaped by the loop's waitpid (SIGCHLD), like every child.
        let pid = child.id() as i32;
        drop(child);
        Ok((pid, log))
    }

    /// A pull ended: its containers start, or fail as a failed start does
    /// (their restart policy tries again, with a new pull).
    fn on_pull_done(&mut self, job: PullJob, exit: Exit) {
        let stack = self.stack();
        let output = std::fs::read_to_string(&job.log).unwrap_or_default();
        let _ = std::fs::remove_file(&job.log);
        let waiting: Vec<String> = self
            .live
            .iter()
            .filter(|(_, l)| {
                l.state == State::Pulling && l.spec.config.image.to_string() == job.image
            })
            .map(|(n, _)| n.clone())
            .collect();
        if exit == Exit::Code(0) {
            event(
                &stack,
                format!(
                    "pulled {} in {:.1} s",
                    job.image,
                    job.since.elapsed().as_secs_f64()
                ),
            );
            for name in waiting {
                if let Some(l) = self.live.get_mut(&name) {
                    l.pulled = true;
                }
                self.start(&name);
            }
            return;
        }
        let why = output
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.trim_start_matches("rkstack: ").to_string())
            .unwrap_or_else(|| describe(exit));
        event(&stack, format!("pull of {} failed: {why}", job.image));
        for name in waiting {
            self.pull_failed(&name, &format!("pull {}: {why}", job.image));
        }
    }

    fn pull_failed(&mut self, name: &str, why: &str) {
        if let Some(l) = self.live.get_mut(name) {
            let now = Instant::now();
            l.history.started(now, l.spec.config.start_limit.as_ref());
            l.last_error = Some(format!("failed to start: {why}"));
        }
        event(&self.stack(), format!("{name}: failed to start: {why}"));
        self.after_exit(name, Exit::Code(127), Duration::ZERO);
    }

    /// Ends pulls under way (the stack stops); what they fetched stays in
    /// the store's scratch folder, and the next pull resumes it.
    fn end_pulls(&mut self) {
        for (pid, job) in std::mem::take(&mut self.pulls) {
            // SAFETY: signalling and reaping the pull process we started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            let _ = std::fs::remove_file(&job.log);
        }
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("pulls"));
    }

    fn try_start(&mut self, name: &str) -> Result<i32, String> {
        let opts = self.opts.clone();
        let stack = self.stack();
        let nets = self.network_plan(name)?;
        if let Some(l) = self.live.get_mut(name) {
            l.ips = nets.iter().map(|n| (n.network.clone(), n.ip)).collect();
        }
        let etc = if nets.is_empty() {
            None
        } else {
            Some(self.write_etc(name)?)
        };
        let l = self.live.get_mut(name).ok_or("not known")?;
        let c = l.spec.config.clone();
        if c.security.user_namespace == UserNamespace::Auto && l.claim.is_none() {
            l.claim = Some(
                userns::claim(&opts.state_dir).map_err(|e| format!("user namespace range: {e}"))?,
            );
        }
        std::fs::create_dir_all(&l.staging).map_err(|e| format!("{}: {e}", l.staging.display()))?;
        if let Some(cl) = &l.claim {
            let _ = std::os::unix::fs::chown(&l.staging, Some(cl.start), Some(cl.start));
        }
        let image =
            super::images::prepare(&c, &opts.data_dir, &stack, &opts.insecure_registries, false)?;
        let image_user = image.as_ref().and_then(|i| i.defaults.user.clone());
        // In a user namespace the container's root writes its layer as the
        // range's first id: the layer and overlayfs' work folder are its.
        if let (Some(cl), Some(Some((u, w)))) = (&l.claim, image.as_ref().map(|i| &i.upper)) {
            for d in [u, w] {
                std::os::unix::fs::chown(d, Some(cl.start), Some(cl.start))
                    .map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
        // A pulled image's identity: recorded as if the plan had known it,
        // so the next reload does not take the pull for a change.
        if let (config::ImageRef::Docker { .. }, Some(i)) = (&c.image, &image)
            && l.spec.image_id.as_deref() != Some(i.manifest.as_str())
        {
            l.spec = l.spec.with_image_id(&i.manifest);
            if let Some(d) = self.desired.containers.iter_mut().find(|d| d.name == name) {
                *d = d.with_image_id(&i.manifest);
            }
        }
        let paths = Paths {
            image,
            data_dir: opts.data_dir.clone(),
            stack: stack.clone(),
            volume_paths: self
                .desired
                .volumes
                .iter()
                .filter_map(|(n, p)| p.clone().map(|p| (n.clone(), p)))
                .collect(),
        };
        for m in &c.mounts {
            if let config::Mount::Volume { source, .. } = m {
                let dir = paths.volume(source.as_str());
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("volume {source}: {}: {e}", dir.display()))?;
            }
        }
        let l = self.live.get_mut(name).ok_or("not known")?;
        l.image_user = image_user;
        let limits = lower::cgroup_limits(&c).map_err(|e| e.to_string())?;
        let devices = lower::device_rules(&c).map_err(|e| e.to_string())?;
        l.cgroup.create().map_err(|e| e.to_string())?;
        // One container, one instance: whatever is in its cgroup now was
        // started by a supervisor that died before it could record it
        // (no record, no adoption): it ends before the new one starts.
        if l.cgroup.kill_all() {
            event(
                &stack,
                format!("{name}: ended an unrecorded instance left by the previous supervisor"),
            );
        }
        l.cgroup.apply(&limits).map_err(|e| e.to_string())?;
        l.cgroup
            .restrict_devices(&devices)
            .map_err(|e| e.to_string())?;
        let spec = lower::sandbox_spec(
            &c,
            &paths,
            &l.staging,
            l.claim.as_ref().map(|cl| (cl.start, cl.count)),
            l.cgroup.procs_files(),
            Some(&opts.state_dir.join("seccomp")),
        )
        .map_err(|e| e.to_string())?;
        for w in lower::warnings(&c) {
            event(&stack, w);
        }
        let mut spec = spec;
        if let Some((hosts, resolv)) = etc {
            for (source, target) in [(hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")] {
                spec.mounts.push(crate::sandbox::spec::MountSpec::Bind {
                    source,
                    target: PathBuf::from(target),
                    read_only: true,
                });
            }
        }
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| e.to_string());
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let stdio = Stdio3::Fds(OwnedFd::from(null), dup(&l.log.out_w)?, dup(&l.log.err_w)?);
        if nets.is_empty() {
            return sandbox::spawn(&spec, stdio).map_err(|e| e.to_string());
        }
        // Its network is set up after its namespaces exist, before it runs.
        let mut attach = |pid: i32| -> Result<(), String> {
            for n in &nets {
                crate::network::linux::attach(&crate::network::linux::Attach {
                    pid,
                    bridge: &n.bridge,
                    host_if: &n.host_if,
                    inside: &n.inside,
                    addr: n.ip,
                    prefix: n.prefix,
                    gateway: n.gateway,
                })
                .map_err(|e| format!("network {}: {e}", n.network))?;
            }
            Ok(())
        };
        sandbox::spawn_prepared(&spec, stdio, &mut attach).map_err(|e| e.to_string())
    }

    /// The networks `name` joins, with its address on each (IPAM over every
    /// member of the network; a previous address is kept while valid).
    fn network_plan(&self, name: &str) -> Result<Vec<NetPlan>, String> {
        let Some(c) = self.desired.container(name) else {
            return Ok(Vec::new());
        };
        let config::NetworkMode::Networks(atts) = &c.config.network else {
            return Ok(Vec::new());
        };
        let stack = self.stack();
        let mut out = Vec::new();
        for (i, att) in atts.iter().enumerate() {
            let Some(n) = self.desired.networks.get(att.network.as_str()) else {
                continue;
            };
            let (Some(cidr), Some(gw)) = (n.config.subnet, n.config.gateway) else {
                continue;
            };
            if !self.networks.contains_key(att.network.as_str()) {
                return Err(format!("network {} is not up (see why above)", att.network));
            }
            let subnet = crate::network::Subnet {
                addr: cidr.addr,
                prefix: cidr.prefix,
            };
            let mut members: BTreeMap<String, Option<std::net::IpAddr>> = BTreeMap::new();
            let mut previous: BTreeMap<String, std::net::IpAddr> = BTreeMap::new();
            for other in &self.desired.containers {
                if let config::NetworkMode::Networks(oa) = &other.config.network
                    && let Some(a) = oa.iter().find(|a| a.network == att.network)
                {
                    members.insert(other.name.clone(), a.ip);
                    if let Some(ip) = self
                        .live
                        .get(&other.name)
                        .map(|l| &l.ips)
                        .filter(|ips| !ips.is_empty())
                        .or_else(|| self.past_ips.get(&other.name))
                        .and_then(|ips| ips.get(att.network.as_str()))
                    {
                        previous.insert(other.name.clone(), *ip);
                    }
                }
            }
            let req = crate::network::ipam::Request {
                network: att.network.as_str(),
                subnet,
                gateway: gw,
                members: &members,
                previous: &previous,
            };
            let ips = crate::network::ipam::assign(&req).map_err(|e| e.to_string())?;
            let Some(ip) = ips.get(name).copied() else {
                continue;
            };
            out.push(NetPlan {
                network: att.network.to_string(),
                bridge: crate::network::names::bridge(&stack, att.network.as_str()),
                host_if: crate::network::names::veth_host(&stack, name, att.network.as_str()),
                inside: crate::network::names::inside(out.len()),
                ip,
                prefix: cidr.prefix,
                // The first network gives the default route, unless it is internal.
                gateway: (i == 0 && !n.config.internal).then_some(gw),
            });
        }
        Ok(out)
    }

    /// Writes `name`'s /etc/hosts and /etc/resolv.conf (bind-mounted into it);
    /// rewriting them in place later changes what the running container sees.
    fn write_etc(&self, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let dir = self
            .opts
            .state_dir
            .join(self.stack())
            .join("etc")
            .join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let hosts = dir.join("hosts");
        let resolv = dir.join("resolv.conf");
        std::fs::write(&hosts, self.hosts_of(name))
            .map_err(|e| format!("{}: {e}", hosts.display()))?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&resolv, crate::network::hosts::resolv_conf(&host_resolv))
            .map_err(|e| format!("{}: {e}", resolv.display()))?;
        Ok((hosts, resolv))
    }

    fn hosts_of(&self, name: &str) -> String {
        let Some(c) = self.desired.container(name) else {
            return String::new();
        };
        let config::NetworkMode::Networks(atts) = &c.config.network else {
            return String::new();
        };
        let mut networks = Vec::new();
        for att in atts {
            let mut peers = Vec::new();
            for other in &self.desired.containers {
                let config::NetworkMode::Networks(oa) = &other.config.network else {
                    continue;
                };
                let Some(a) = oa.iter().find(|a| a.network == att.network) else {
                    continue;
                };
                let Some(l) = self.live.get(&other.name) else {
                    continue;
                };
                let Some(ip) = l.ips.get(att.network.as_str()) else {
                    continue;
                };
                if other.name != name && l.state != State::Running {
                    continue;
                }
                peers.push(crate::network::hosts::Peer {
                    name: other.name.clone(),
                    aliases: a.aliases.clone(),
                    ip: *ip,
                });
            }
            networks.push(peers);
        }
        crate::network::hosts::hosts_file(name, &c.config.hostname, &networks)
    }

    /// Removes the host ends of a stopped container's veths at once: the
    /// kernel would only do it some time after its network namespace is gone.
    fn detach(&self, name: &str) {
        let Some(l) = self.live.get(name) else { return };
        for net in l.ips.keys() {
            let own = crate::network::names::veth_host(&self.stack(), name, net);
            for n in crate::network::names::veth_host_names(&own) {
                let _ = crate::network::linux::delete_link(&n);
            }
        }
    }

    /// Before a plan changes anything: the host ports it will publish must
    /// not be held by a socket of this host (those rkstack already publishes
    /// for this stack are its own).
    fn check_ports(&self, desired: &DesiredState, plan: &Plan) -> Result<(), String> {
        let starting: Vec<&str> = plan
            .ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .map(|o| o.name.as_str())
            .collect();
        if starting.is_empty() {
            return Ok(());
        }
        let ours: std::collections::BTreeSet<(&str, u16)> = self
            .desired
            .containers
            .iter()
            .filter(|c| {
                self.live
                    .get(&c.name)
                    .is_some_and(|l| l.state == State::Running)
            })
            .flat_map(|c| {
                c.config
                    .ports
                    .iter()
                    .map(|p| (p.proto.as_str(), p.host_port))
            })
            .collect();
        let held = crate::network::linux::ports_in_use();
        let others = super::stacks::published_by_others(&self.opts.state_dir, &desired.stack);
        let mut problems = Vec::new();
        for c in desired
            .containers
            .iter()
            .filter(|c| starting.contains(&c.name.as_str()))
        {
            for p in &c.config.ports {
                let key = (p.proto.as_str(), p.host_port);
                if let Some((other, _)) = others
                    .iter()
                    .find(|(_, o)| o.proto == key.0 && o.port == key.1)
                {
                    problems.push(format!(
                        "{}: host port {}/{} is already published by stack {other}",
                        c.name, p.host_port, key.0
                    ));
                } else if held.contains(&key) && !ours.contains(&key) {
                    problems.push(format!(
                        "{}: host port {}/{} is already in use on this host",
                        c.name, p.host_port, key.0
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Published ports of the running containers and NAT of the networks,
    /// applied to the stack's nftables table when they changed.
    fn apply_ports(&mut self) {
        use crate::network::nft;
        let stack = self.stack();
        let mut publish = Vec::new();
        for c in &self.desired.containers {
            let config::NetworkMode::Networks(atts) = &c.config.network else {
                continue;
            };
            let Some(l) = self.live.get(&c.name).filter(|l| l.state == State::Running) else {
                continue;
            };
            // Ports go to the address on its first bridge network that is not internal.
            let Some(ip) = atts
                .iter()
                .filter(|a| {
                    self.desired
                        .networks
                        .get(a.network.as_str())
                        .is_some_and(|n| !n.config.internal)
                })
                .find_map(|a| l.ips.get(a.network.as_str()))
            else {
                continue;
            };
            for p in &c.config.ports {
                publish.push(nft::Publish {
                    proto: p.proto.as_str(),
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_ip: *ip,
                    container_port: p.container_port,
                });
            }
        }
        let bridges: Vec<nft::Bridge> = self
            .desired
            .networks
            .values()
            .filter(|n| self.networks.contains_key(&n.name))
            .filter_map(|n| {
                n.config.subnet.map(|s| nft::Bridge {
                    name: crate::network::names::bridge(&stack, &n.name),
                    subnet: crate::network::Subnet {
                        addr: s.addr,
                        prefix: s.prefix,
                    },
                    nat: n.config.nat,
                    internal: n.config.internal,
                })
            })
            .collect();
        let wanted = !publish.is_empty() || !bridges.is_empty();
        if !publish.is_empty() || bridges.iter().any(|b| b.nat) {
            match nft::enable_forwarding() {
                Ok(true) => event(
                    &stack,
                    "IPv4 forwarding turned on (net.ipv4.ip_forward = 1) for published ports and NAT",
                ),
                Ok(false) => {}
                Err(e) => event(
                    &stack,
                    format!("IPv4 forwarding could not be turned on: {e}"),
                ),
            }
        }
        let rules = nft::ruleset(&stack, &publish, &bridges);
        if (!wanted && self.nft_rules.is_none())
            || self.nft_rules.as_deref() == Some(rules.as_str())
        {
            return;
        }
        let result = if wanted {
            nft::apply(&stack, &publish, &bridges)
        } else {
            nft::remove(&stack)
        };
        match result {
            Ok(()) => {
                self.nft_rules = wanted.then_some(rules);
                let mut published: Vec<_> = publish
                    .iter()
                    .map(|p| super::stacks::Published {
                        proto: p.proto.to_string(),
                        port: p.host_port,
                    })
                    .collect();
                published.sort();
                published.dedup();
                self.published = published;
            }
            Err(e) => event(&stack, format!("ports and nat not applied: {e}")),
        }
    }

    /// Rewrites every running container's /etc/hosts (members came or went).
    fn refresh_hosts(&mut self) {
        self.apply_ports();
        for (name, l) in &self.live {
            if l.state != State::Running || l.ips.is_empty() {
                continue;
            }
            let path = self
                .opts
                .state_dir
                .join(self.stack())
                .join("etc")
                .join(name)
                .join("hosts");
            let text = self.hosts_of(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // In place: the container sees the same file, with new contents.
                let _ = std::fs::write(&path, text);
            }
        }
    }

    /// Reaps every child that ended; containers go through their policy.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: status is valid for writes.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(name) = self.checks.remove(&pid) {
                self.on_check(&name, decode(status));
                continue;
            }
            if let Some(waiter) = self.execs.remove(&pid) {
                let _ = waiter.send(status);
                continue;
            }
            if let Some(job) = self.pulls.remove(&pid) {
                self.on_pull_done(job, decode(status));
                continue;
            }
            let Some(name) = self
                .live
                .iter()
                .find(|(_, l)| l.pid == Some(pid))
                .map(|(n, _)| n.clone())
            else {
                continue; // an orphan re-parented to us: reaped, nothing more
            };
            let exit = decode(status);
            let Some(l) = self.live.get_mut(&name) else {
                continue;
            };
            let exit = if exit == Exit::Signal(libc::SIGKILL)
                && l.cgroup.events().oom_kills > l.oom_base
            {
                Exit::Oom
            } else {
                exit
            };
            let ran = l.started.map(|s| s.elapsed()).unwrap_or_default();
            l.pid = None;
            self.after_exit(&name, exit, ran);
        }
    }

    fn after_exit(&mut self, name: &str, exit: Exit, ran: Duration) {
        let stack = self.stack();
        let now = Instant::now();
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        l.health = None;
        l.last_exit = Some(exit);
        // Whatever it left in its cgroup goes with it; the cgroup itself is
        // kept for the next run (making one costs more than the restart).
        l.cgroup.kill_all();
        let ended = if exit == Exit::Code(0) {
            Ended::Success
        } else {
            Ended::Failure
        };
        let c = &l.spec.config;
        let d = restart::decide(
            &restart::Policy::of(c),
            ended,
            ran,
            l.user_stopped,
            &mut l.history,
            now,
        );
        let how = match exit {
            Exit::Code(c) => format!("exited with status {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::Oom => "killed by the out-of-memory killer".to_string(),
        };
        match d {
            Decision::Restart(after) => {
                l.restarts += 1;
                l.state = State::Backoff(now + after);
                event(
                    &stack,
                    format!("{name}: {how}; restarting in {} ms", after.as_millis()),
                );
                self.timers.push(std::cmp::Reverse((
                    now + after,
                    Timer::Restart(name.to_string()),
                )));
            }
            Decision::Stay => {
                l.state = State::Exited(exit);
                event(&stack, format!("{name}: {how}"));
            }
            Decision::GiveUp(why) => {
                l.state = State::Failed(format!("{how}; {why}"));
                event(
                    &stack,
                    format!("{name}: failed: {how}; {why}; it stays down"),
                );
            }
        }
        self.refresh_hosts();
        // A dependency that completed may let others start.
        self.start_ready();
    }

    /// Whether every dependency of `name` meets its condition.
    fn deps_ready(&self, name: &str) -> Result<(), String> {
        let Some(l) = self.live.get(name) else {
            return Err("not known".into());
        };
        for (dep, cond) in &l.spec.config.depends_on {
            let d = self.live.get(dep.as_str());
            let ok = match cond {
                config::Condition::Started => d.is_some_and(|d| d.state == State::Running),
                config::Condition::Healthy => d.is_some_and(|d| {
                    d.state == State::Running && d.health == Some(Health::Healthy)
                }),
                config::Condition::Completed => {
                    d.is_some_and(|d| d.state == State::Exited(Exit::Code(0)))
                }
            };
            if !ok {
                let c = match cond {
                    config::Condition::Started => "started",
                    config::Condition::Healthy => "healthy",
                    config::Condition::Completed => "completed",
                };
                return Err(format!("{dep} ({c})"));
            }
        }
        Ok(())
    }

    fn start_when_ready(&mut self, name: &str) {
        match self.deps_ready(name) {
            Ok(()) => self.start(name),
            Err(waiting) => {
                if let Some(l) = self.live.get_mut(name) {
                    l.state = State::Waiting;
                }
                event(&self.stack(), format!("{name}: waiting for {waiting}"));
            }
        }
    }

    /// Container names in start order (dependencies first).
    fn start_order(&self) -> Vec<String> {
        self.desired
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// Starts, in dependency order, the waiting containers whose
    /// dependencies are now met.
    fn start_ready(&mut self) {
        let order = self.start_order();
        for name in order {
            let waiting = self
                .live
                .get(&name)
                .is_some_and(|l| l.state == State::Waiting);
            if waiting && self.deps_ready(&name).is_ok() {
                self.start(&name);
            }
        }
    }

    /// Runs the container's health command inside it.
    fn run_check(&mut self, name: &str) {
        let stack = self.stack();
        let cache = self.opts.state_dir.join("seccomp");
        let Some(l) = self.live.get(name) else { return };
        let (Some(pid), Some(h)) = (l.pid, l.spec.config.health.clone()) else {
            return;
        };
        if l.state != State::Running || self.checks.values().any(|n| n == name) {
            return;
        }
        let spec = match lower::exec_spec(
            &l.spec.config,
            pid,
            h.command.clone(),
            l.cgroup.procs_files(),
            Some(&cache),
        ) {
            Ok(mut s) => {
                if let (None, Some(u)) = (&l.spec.config.user, &l.image_user) {
                    s.user = lower::image_user(u);
                }
                s
            }
            Err(e) => {
                event(&stack, format!("{name}: health check cannot run: {e}"));
                return;
            }
        };
        let devnull = || {
            std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
        };
        let now = Instant::now();
        match (devnull(), devnull(), devnull()) {
            (Ok(i), Ok(o), Ok(e)) => match sandbox::exec(&spec, Stdio3::Fds(i, o, e)) {
                Ok(check) => {
                    self.checks.insert(check, name.to_string());
                    self.timers.push(std::cmp::Reverse((
                        now + h.timeout.0,
                        Timer::HealthTimeout(name.to_string(), check),
                    )));
                }
                Err(e) => {
                    event(&stack, format!("{name}: health check failed to run: {e}"));
                    self.on_check(name, Exit::Code(127));
                }
            },
            _ => event(
                &stack,
                format!("{name}: health check: cannot open /dev/null"),
            ),
        }
    }

    fn on_check(&mut self, name: &str, exit: Exit) {
        let stack = self.stack();
        let now = Instant::now();
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        let Some(h) = l.spec.config.health.clone() else {
            return;
        };
        if l.state != State::Running {
            return;
        }
        let before = l.health;
        if exit == Exit::Code(0) {
            l.health_failures = 0;
            l.health = Some(Health::Healthy);
        } else {
            let in_start_period = l.started.is_some_and(|s| s.elapsed() < h.start_period.0);
            // Failures while starting up do not count, until it was healthy once.
            if !(in_start_period && before == Some(Health::Starting)) {
                l.health_failures += 1;
                if l.health_failures >= h.retries {
                    l.health = Some(Health::Unhealthy);
                }
            }
        }
        let after = l.health;
        let restart =
            after == Some(Health::Unhealthy) && l.spec.config.restart != config::RestartPolicy::No;
        self.timers.push(std::cmp::Reverse((
            now + h.interval.0,
            Timer::HealthCheck(name.to_string()),
        )));
        if before != after {
            let word = match after {
                Some(Health::Healthy) => "healthy",
                Some(Health::Unhealthy) => "unhealthy",
                _ => "starting",
            };
            event(&stack, format!("{name}: {word}"));
            self.start_ready();
        }
        if restart {
            event(&stack, format!("{name}: restarting: unhealthy"));
            self.stop(name);
            if let Some(l) = self.live.get_mut(name) {
                l.user_stopped = false;
                l.restarts += 1;
            }
            self.start(name);
        }
    }

    /// Stops one container: its stop signal, `stop_timeout`, then SIGKILL.
    fn stop(&mut self, name: &str) {
        self.stop_many(&[name.to_string()]);
    }

    /// Stops containers together (none of them depends on another): each
    /// gets its stop signal at once, each is given its `stop_timeout`, then
    /// SIGKILL; their cgroups go afterwards.
    fn stop_many(&mut self, names: &[String]) {
        let stack = self.stack();
        let start = Instant::now();
        // (name, pid, deadline, pidfd of an adopted one, SIGKILL sent)
        let mut waiting: Vec<(String, i32, Instant, Option<i32>, bool)> = Vec::new();
        for name in names {
            let Some(l) = self.live.get_mut(name) else {
                continue;
            };
            l.user_stopped = true;
            if let State::Backoff(_) | State::Waiting | State::Pulling = l.state {
                l.state = State::Stopped;
            }
            let Some(pid) = l.pid else { continue };
            let c = &l.spec.config;
            // SAFETY: signalling the container we started.
            unsafe { libc::kill(pid, c.stop_signal.number()) };
            waiting.push((
                name.clone(),
                pid,
                start + c.stop_timeout.0,
                l.pidfd.as_ref().map(|p| p.as_raw_fd()),
                false,
            ));
        }
        let mut ended: Vec<(String, i32)> = Vec::new();
        let only_chld = sigset(&[libc::SIGCHLD]);
        let mut killed = false;
        while !waiting.is_empty() {
            let now = Instant::now();
            waiting.retain_mut(|(name, pid, deadline, pidfd, sent_kill)| {
                let mut status = 0;
                let done = match pidfd {
                    Some(fd) => {
                        let mut p = libc::pollfd {
                            fd: *fd,
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd, no wait.
                        unsafe { libc::poll(&mut p, 1, 0) > 0 }
                    }
                    // SAFETY: status valid for writes.
                    None => unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) == *pid },
                };
                if done {
                    ended.push((
                        name.clone(),
                        if pidfd.is_some() {
                            libc::SIGKILL
                        } else {
                            status
                        },
                    ));
                    return false;
                }
                if now >= *deadline && !*sent_kill {
                    event(
                        &stack,
                        format!("{name}: did not stop within its stop_timeout; killing it"),
                    );
                    // SAFETY: signalling the container we started.
                    unsafe { libc::kill(*pid, libc::SIGKILL) };
                    *sent_kill = true;
                }
                true
            });
            if waiting.is_empty() {
                break;
            }
            if killed
                && waiting
                    .iter()
                    .all(|(_, _, d, _, _)| now > *d + Duration::from_secs(10))
            {
                // SIGKILL'ed ten seconds ago and still there: stop waiting.
                break;
            }
            killed |= waiting.iter().any(|(_, _, d, _, _)| now >= *d);
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            };
            // SAFETY: waiting for SIGCHLD (blocked) with a timeout.
            unsafe { libc::sigtimedwait(&only_chld, std::ptr::null_mut(), &ts) };
            for (name, ..) in &waiting {
                if let Some(l) = self.live.get_mut(name) {
                    l.log.drain(0);
                    l.log.drain(1);
                }
            }
        }
        for (name, status) in ended {
            let Some(l) = self.live.get_mut(&name) else {
                continue;
            };
            l.log.drain(0);
            l.log.drain(1);
            l.pid = None;
            l.pidfd = None;
            l.usage.replace(None);
            let _ = l.cgroup.destroy();
            let _ = std::fs::remove_dir(&l.staging);
            l.state = State::Stopped;
            event(
                &stack,
                format!("{name}: stopped ({})", describe(decode(status))),
            );
            self.detach(&name);
        }
        self.refresh_hosts();
        // Other children may have ended meanwhile; their SIGCHLD was taken here.
        self.reap();
    }

    fn remove(&mut self, name: &str) {
        if let Some(l) = self.live.remove(name) {
            l.usage.replace(None);
            let _ = l.cgroup.destroy();
            let _ = std::fs::remove_dir(&l.staging);
            let _ = std::fs::remove_dir_all(
                self.opts
                    .state_dir
                    .join(self.stack())
                    .join("etc")
                    .join(name),
            );
            l.log.remove_pipes();
        }
        // Its writable layer goes with it.
        super::images::discard_layer(&self.opts.data_dir, &self.stack(), name);
    }

    /// Stops every container, dependents first: all containers of one
    /// dependency level at once, the deepest level first.
    fn shutdown(&mut self) {
        self.end_pulls();
        let order = self.start_order();
        let others: Vec<String> = self
            .live
            .keys()
            .filter(|n| !order.contains(n))
            .cloned()
            .collect();
        // Level: 0 for no dependencies, else one more than the deepest dependency.
        let mut level: BTreeMap<String, usize> = BTreeMap::new();
        for c in &self.desired.containers {
            let l = c
                .depends_on
                .iter()
                .filter_map(|d| level.get(d))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            level.insert(c.name.clone(), l);
        }
        self.stop_many(&others);
        let deepest = level.values().copied().max().unwrap_or(0);
        for l in (0..=deepest).rev() {
            let batch: Vec<String> = order
                .iter()
                .filter(|n| level.get(*n) == Some(&l))
                .cloned()
                .collect();
            self.stop_many(&batch);
        }
        for name in order.iter().chain(others.iter()) {
            self.remove(name);
        }
        for net in std::mem::take(&mut self.networks).into_keys() {
            let bridge = crate::network::names::bridge(&self.stack(), &net);
            if let Err(e) = crate::network::linux::delete_link(&bridge) {
                event(&self.stack(), format!("network {net}: {e}"));
            }
        }
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("etc"));
        if self.nft_rules.take().is_some()
            && let Err(e) = crate::network::nft::remove(&self.stack())
        {
            event(&self.stack(), format!("ports and nat: {e}"));
        }
        // Stopped on purpose: nothing is left to adopt.
        let _ = std::fs::remove_file(self.state_path());
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("rootfs"));
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()));
        event(&self.stack(), "stack stopped");
    }
}

fn decode(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

fn describe(e: Exit) -> String {
    match e {
        Exit::Code(c) => format!("status {c}"),
        Exit::Signal(s) => format!("signal {s}"),
        Exit::Oom => "oom".into(),
    }
}

/// What survives a supervisor crash: `STATE_DIR/STACK/state.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SavedState {
    stack: String,
    containers: BTreeMap<String, Saved>,
    /// The networks whose bridges exist, with what they were made from.
    #[serde(default)]
    networks: BTreeMap<String, plan::NetworkRecord>,
    /// Host ports published now (other stacks check theirs against them).
    #[serde(default)]
    published: Vec<super::stacks::Published>,
    /// Images from the store its containers are declared with (`rmi`
    /// refuses to remove them while the stack runs).
    #[serde(default)]
    images: Vec<String>,
    /// Whether systemd started the supervisor in its `supervisor` leaf
    /// (`DelegateSubgroup=`): it can then start the next one beside the
    /// containers (see [`super::unit`]).
    #[serde(default)]
    placed_in_leaf: bool,
}

/// [`SavedState`]'s `placed_in_leaf` of a stack; false without a state.
pub fn placed_in_leaf(state_dir: &Path, stack: &str) -> bool {
    std::fs::read(state_dir.join(stack).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<SavedState>(&b).ok())
        .is_some_and(|s| s.placed_in_leaf)
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    #[serde(default)]
    ips: BTreeMap<String, std::net::IpAddr>,
    pid: Option<i32>,
    starttime: Option<u64>,
    record: Record,
    restarts: u32,
    user_stopped: bool,
    /// Why its restart policy gave up on it (`start_limit`): it stays down
    /// across a supervisor restart too.
    #[serde(default)]
    failed: Option<String>,
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks
/// since boot. A pid with another start time is another process.
fn proc_starttime(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = text.rsplit_once(')')?.1;
    // Fields after the command: state is field 3; starttime is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A process that has ended but was not reaped yet (its parent died with
/// the previous supervisor) is no container to adopt.
fn proc_dead(pid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    matches!(
        text.rsplit_once(')')
            .and_then(|(_, a)| a.split_whitespace().next()),
        Some("Z" | "X" | "x")
    )
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new fd that we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Writes a file atomically: a temporary file, fsync, rename.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    // State (the containers' specs, their environment among them) is
    // for root alone.
    let mut f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Supervisor {
    /// For `up -d`: once every container runs (or completed), or one failed.
    fn report_ready(&mut self) {
        if self.ready.is_none() {
            return;
        }
        let mut failed = None;
        let mut pending = false;
        for (name, l) in &self.live {
            match &l.state {
                State::Running => pending |= l.health == Some(Health::Starting),
                State::Exited(Exit::Code(0)) => {}
                State::Failed(why) => failed = Some(format!("{name}: {why}")),
                State::Exited(e) if l.spec.config.restart == config::RestartPolicy::No => {
                    let why = l
                        .last_error
                        .clone()
                        .unwrap_or_else(|| format!("exited with {}", describe(*e)));
                    failed = Some(format!("{name}: {why}"));
                }
                _ => pending = true,
            }
        }
        let msg = match (failed, pending) {
            (Some(f), _) => format!("failed: {f}"),
            (None, false) => "ok".to_string(),
            (None, true) => return,
        };
        if let Some(ReadyPipe(fd)) = self.ready.take() {
            // SAFETY: writing our message to the pipe we were given.
            unsafe { libc::write(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
        }
    }

    fn state_path(&self) -> PathBuf {
        self.opts.state_dir.join(self.stack()).join("state.json")
    }

    /// Saves the live state when it changed.
    fn save_state(&mut self) {
        let saved = SavedState {
            stack: self.stack(),
            containers: self
                .live
                .iter()
                .map(|(n, l)| {
                    (
                        n.clone(),
                        Saved {
                            ips: l.ips.clone(),
                            pid: l.pid,
                            starttime: l.starttime,
                            record: l.record.clone(),
                            restarts: l.restarts,
                            user_stopped: l.user_stopped,
                            failed: match &l.state {
                                State::Failed(why) => Some(why.clone()),
                                _ => None,
                            },
                        },
                    )
                })
                .collect(),
            networks: self.networks.clone(),
            published: self.published.clone(),
            placed_in_leaf: self.placed_in_leaf,
            images: {
                let mut v: Vec<String> = self
                    .desired
                    .containers
                    .iter()
                    .filter(|c| {
                        matches!(
                            c.config.image,
                            config::ImageRef::Oci { .. } | config::ImageRef::Tar { .. }
                        )
                    })
                    .map(|c| c.config.image.to_string())
                    .collect();
                v.sort();
                v.dedup();
                v
            },
        };
        let Ok(text) = serde_json::to_string_pretty(&saved) else {
            return;
        };
        if self.last_saved.as_deref() == Some(text.as_str()) {
            return;
        }
        match write_atomic(&self.state_path(), text.as_bytes()) {
            Ok(()) => self.last_saved = Some(text),
            Err(e) => event(
                &self.stack(),
                format!("cannot save {}: {e}", self.state_path().display()),
            ),
        }
    }

    /// After a crash of a previous supervisor: containers still running as
    /// recorded are adopted as they are; what is stale is cleaned up.
    fn adopt(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.state_path()) else {
            return;
        };
        let saved: SavedState = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                event(
                    &self.stack(),
                    format!(
                        "{}: unreadable ({e}); starting afresh",
                        self.state_path().display()
                    ),
                );
                return;
            }
        };
        let had_networks = !saved.networks.is_empty();
        // Bridges it made are known again, so the first plan keeps, recreates
        // or removes them like any others; one gone meanwhile is made anew.
        for (name, record) in saved.networks {
            let bridge = crate::network::names::bridge(&self.stack(), &name);
            if crate::network::linux::link_exists(&bridge) {
                self.networks.insert(name, record);
            }
        }
        // Its nftables table may hold rules the file no longer asks for:
        // the first update replaces or removes it whatever it holds.
        if had_networks {
            self.nft_rules = Some(String::new());
        }
        for (name, sv) in saved.containers {
            let alive = sv.pid.filter(|p| {
                sv.starttime.is_some() && proc_starttime(*p) == sv.starttime && !proc_dead(*p)
            });
            let spec = self.desired.container(&name).cloned();
            match (alive, spec) {
                (Some(pid), Some(spec)) => {
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    l.pid = Some(pid);
                    l.ips = sv.ips;
                    l.starttime = sv.starttime;
                    l.pidfd = pidfd_open(pid);
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    l.user_stopped = sv.user_stopped;
                    l.state = State::Running;
                    l.started = Some(Instant::now());
                    l.health = l.spec.config.health.as_ref().map(|_| Health::Starting);
                    if let Some(h) = &l.spec.config.health {
                        self.timers.push(std::cmp::Reverse((
                            Instant::now() + h.interval.0,
                            Timer::HealthCheck(name.clone()),
                        )));
                    }
                    event(&self.stack(), format!("{name}: adopted (pid {pid})"));
                    self.live.insert(name, l);
                }
                (None, Some(spec)) if sv.user_stopped => {
                    // Stopped by a user: it stays stopped (`start` brings it back).
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    l.ips = sv.ips;
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    l.user_stopped = true;
                    l.state = State::Stopped;
                    event(
                        &self.stack(),
                        format!("{name}: stays stopped (stopped by a user)"),
                    );
                    self.live.insert(name, l);
                }
                (None, Some(spec)) if sv.failed.is_some() => {
                    // Given up on by its restart policy: it stays down
                    // (`start` brings it back), whatever killed the supervisor.
                    let Ok(mut l) = self.admit(spec) else {
                        continue;
                    };
                    let why = sv.failed.unwrap_or_default();
                    l.record = sv.record;
                    l.restarts = sv.restarts;
                    event(
                        &self.stack(),
                        format!("{name}: stays down (failed before this supervisor: {why})"),
                    );
                    l.state = State::Failed(why);
                    self.live.insert(name, l);
                }
                (alive, spec) => {
                    if spec.is_some() && !sv.ips.is_empty() {
                        self.past_ips.insert(name.clone(), sv.ips.clone());
                    }
                    // Dead, or no longer in the file: nothing of it stays.
                    let cg = Cgroup::new(self.layout.clone(), self.cgroup_base.join(&name));
                    if let Some(pid) = alive {
                        // SAFETY: a container of this stack, recorded with its start time.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    let _ = cg.destroy();
                    let _ = std::fs::remove_dir(
                        self.opts
                            .state_dir
                            .join(self.stack())
                            .join("rootfs")
                            .join(&name),
                    );
                    event(
                        &self.stack(),
                        format!("{name}: cleaned up after the previous supervisor"),
                    );
                }
            }
        }
    }
}

/// Where a stack's container cgroups go. On cgroup v2 under a delegated
/// subtree (systemd's `Delegate=yes`: our own cgroup is not the root), the
/// containers become children of our own cgroup and we move ourselves into
/// a `supervisor` leaf beside them (v2 allows no processes in a cgroup whose
/// controllers are handed down). Elsewhere: `rkstack/STACK`.
pub fn cgroup_base(layout: &Layout, self_cgroup: &str, stack: &str) -> (PathBuf, Option<PathBuf>) {
    if let Layout::V2 { .. } = layout {
        let own = self_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| p.trim().trim_start_matches('/'))
            .unwrap_or("");
        let own = own.strip_suffix("/supervisor").unwrap_or(own);
        if !own.is_empty() {
            let base = PathBuf::from(own);
            return (base.clone(), Some(base.join("supervisor")));
        }
    }
    (Path::new("rkstack").join(stack), None)
}

fn claim_cgroup_base(layout: &Layout, own: &str, stack: &str) -> PathBuf {
    let (base, leaf) = cgroup_base(layout, own, stack);
    if let (Some(leaf), Layout::V2 { root }) = (leaf, layout) {
        let dir = root.join(&leaf);
        let moved = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()));
        if let Err(e) = moved {
            event(
                stack,
                format!(
                    "cannot move into {}: {e}; container cgroups go under rkstack/{stack}",
                    dir.display()
                ),
            );
            return Path::new("rkstack").join(stack);
        }
    }
    base
}

/// One network of a container about to start.
struct NetPlan {
    network: String,
    bridge: String,
    host_if: String,
    inside: String,
    ip: std::net::IpAddr,
    prefix: u8,
    gateway: Option<std::net::IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_base_follows_a_delegated_v2_subtree() {
        let v2 = Layout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        let under_systemd = "0::/system.slice/rkstack@demo.service\n";
        assert_eq!(
            cgroup_base(&v2, under_systemd, "demo"),
            (
                PathBuf::from("system.slice/rkstack@demo.service"),
                Some(PathBuf::from(
                    "system.slice/rkstack@demo.service/supervisor"
                ))
            )
        );
        // Restarted inside its own leaf: the same base.
        let again = "0::/system.slice/rkstack@demo.service/supervisor\n";
        assert_eq!(
            cgroup_base(&v2, again, "demo").0,
            PathBuf::from("system.slice/rkstack@demo.service")
        );
        // PID 1 of an appliance, or a shell at the root: rkstack/STACK.
        assert_eq!(
            cgroup_base(&v2, "0::/\n", "demo"),
            (PathBuf::from("rkstack/demo"), None)
        );
        let v1 = Layout::V1 {
            controllers: Default::default(),
        };
        assert_eq!(
            cgroup_base(&v1, "4:memory:/x\n0::/y\n", "demo"),
            (PathBuf::from("rkstack/demo"), None)
        );
    }
}
