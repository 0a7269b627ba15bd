//! The supervisor's decisions, driven without root through the fake
//! launcher: what starts when, what a child's end leads to, how stops,
//! reloads, shutdowns and adoption go. Exits, timers and requests are
//! handed to it as the loop would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod adopt;
mod dns;
mod networks;
mod starts;
mod stops;
mod update;

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::container::fake::{FakeHandle, FakeLauncher};
use crate::network::fake::{FakeNet, FakeNetHandle};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A supervisor of a stack file in a temporary folder, on the fake.
pub(super) struct H {
    pub(super) sup: Supervisor,
    pub(super) fake: FakeHandle,
    pub(super) net: FakeNetHandle,
    pub(super) dir: tempfile::TempDir,
    pub(super) stack: String,
}

pub(super) fn wait_status(code: i32) -> i32 {
    code << 8
}

impl H {
    /// `body`'s containers, each `dir:` of a folder, sleeping, loopback
    /// only; not started yet.
    pub(super) fn new(body: &str) -> H {
        let dir = tempfile::tempdir().unwrap();
        let stack = format!(
            "t{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        H::in_dir(dir, stack, body)
    }

    pub(super) fn in_dir(dir: tempfile::TempDir, stack: String, body: &str) -> H {
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        let file = dir.path().join("stack.toml");
        std::fs::write(&file, H::text(&stack, &rootfs, body)).unwrap();
        let st = config::load(&file).unwrap();
        let desired = DesiredState::from_stack(st);
        let opts = UpOptions {
            file,
            state_dir: dir.path().join("state"),
            data_dir: dir.path().join("data"),
            insecure_registries: Vec::new(),
            attach: false,
            trusted_keys: dir.path().join("trusted.d"),
        };
        let (fake, handle) = FakeLauncher::new();
        // A signalfd of no signal: the harness hands signals over itself.
        let signals = nix::sys::signalfd::SignalFd::with_flags(
            &nix::sys::signal::SigSet::empty(),
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )
        .unwrap();
        let (net, net_handle) = FakeNet::new();
        let sup = Supervisor::new(opts, desired, Box::new(fake), Box::new(net), signals);
        H {
            sup,
            fake: handle,
            net: net_handle,
            dir,
            stack,
        }
    }

    pub(super) fn text(stack: &str, rootfs: &Path, body: &str) -> String {
        format!(
            "name = \"{stack}\"\n[defaults]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\n{body}",
            rootfs.display()
        )
    }

    /// Carries out the first plan, as `up` does after adoption.
    pub(super) fn up(&mut self) {
        self.try_up().unwrap();
    }

    /// What `up` does first: adoption, the port check, the first plan.
    pub(super) fn try_up(&mut self) -> Result<(), String> {
        self.sup.adopt();
        let plan = plan::reconcile(&self.sup.desired, &self.sup.observed());
        self.sup.check_ports(&self.sup.desired, &plan)?;
        let text = std::fs::read_to_string(&self.sup.opts.file).unwrap();
        self.sup.first_generation(&text);
        self.sup.execute(&plan);
        self.sup.save_state();
        Ok(())
    }

    /// The file's text for `body`.
    pub(super) fn body(&self, body: &str) -> String {
        H::text(&self.stack, &self.dir.path().join("rootfs"), body)
    }

    /// `apply` of `body`, gated as given; its answer, once there.
    pub(super) fn apply(
        &mut self,
        body: &str,
        timeout: Duration,
        stable: Duration,
    ) -> tokio::sync::oneshot::Receiver<Result<Reply, ControlError>> {
        let text = self.body(body);
        self.ask(Command::Apply(crate::control::Apply {
            text,
            timeout: Some(timeout),
            stable: Some(stable),
            rollback: None,
            bundle: None,
        }))
    }

    /// The generations as `N outcome (reason)`.
    pub(super) fn history(&self) -> Vec<String> {
        self.sup
            .update
            .gens
            .list()
            .iter()
            .map(|g| format!("{} {} ({})", g.number, g.outcome, g.reason))
            .collect()
    }

    pub(super) fn state(&self, name: &str) -> State {
        self.sup.live.get(name).map(|l| l.state.clone()).unwrap()
    }

    /// As if `name` had run for `d` already (health checks count their
    /// failures only once its first interval is over).
    pub(super) fn running_for(&mut self, name: &str, d: Duration) {
        if let Some(l) = self.sup.live.get_mut(name) {
            l.started = Some(Instant::now() - d);
        }
    }

    pub(super) fn pid(&self, name: &str) -> i32 {
        self.sup.live.get(name).and_then(|l| l.pid).unwrap()
    }

    pub(super) fn starts(&self, name: &str) -> usize {
        self.fake.borrow().pids_of(name).len()
    }

    /// Its process exits with `code`.
    pub(super) fn exits(&mut self, name: &str, code: i32) {
        let pid = self.pid(name);
        self.sup.child_exited(pid, wait_status(code));
    }

    /// Its process is killed by `signal`.
    pub(super) fn killed(&mut self, name: &str, signal: i32) {
        let pid = self.pid(name);
        self.sup.child_exited(pid, signal);
    }

    /// The pending timer `which` matches: when it is due from now.
    pub(super) fn timer(&self, which: impl Fn(&Timer) -> bool) -> Option<Duration> {
        self.sup
            .timers
            .iter()
            .find(|std::cmp::Reverse((_, t))| which(t))
            .map(|std::cmp::Reverse((at, _))| at.saturating_duration_since(Instant::now()))
    }

    /// Fires the first pending timer `which` matches; false if none.
    pub(super) fn fire(&mut self, which: impl Fn(&Timer) -> bool) -> bool {
        let mut all: Vec<_> = std::mem::take(&mut self.sup.timers).into_sorted_vec();
        // Sorted descending by Reverse: the earliest is last.
        all.reverse();
        let Some(i) = all.iter().position(|std::cmp::Reverse((_, t))| which(t)) else {
            self.sup.timers = all.into_iter().collect();
            return false;
        };
        let std::cmp::Reverse((_, t)) = all.remove(i);
        self.sup.timers = all.into_iter().collect();
        self.sup.on_timer(t);
        true
    }

    /// The file is saved with `body` and reloaded.
    pub(super) fn edit(&mut self, body: &str) -> Result<Plan, ControlError> {
        let rootfs = self.dir.path().join("rootfs");
        std::fs::write(&self.sup.opts.file, H::text(&self.stack, &rootfs, body)).unwrap();
        self.sup.try_reload("test")
    }

    /// The events of this stack recorded since `seq`, as `NAME: message`.
    pub(super) fn events_since(&self, seq: u64) -> Vec<String> {
        crate::supervisor::events::since(seq)
            .into_iter()
            .filter(|e| e.stack == self.stack)
            .map(|e| match e.container {
                Some(c) => format!("{c}: {}", e.message),
                None => e.message,
            })
            .collect()
    }

    /// A request answered by the supervisor: its answer if one came yet.
    pub(super) fn ask(
        &mut self,
        command: Command,
    ) -> tokio::sync::oneshot::Receiver<Result<Reply, ControlError>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.sup.on_request(Request { command, reply });
        rx
    }
}

pub(super) fn last_seq() -> u64 {
    crate::supervisor::events::since(0)
        .last()
        .map_or(0, |e| e.seq)
}

pub(super) fn is_restart(name: &'static str) -> impl Fn(&Timer) -> bool {
    move |t| matches!(t, Timer::Restart(n) if n == name)
}

pub(super) fn is_stop_kill(name: &'static str) -> impl Fn(&Timer) -> bool {
    move |t| matches!(t, Timer::StopKill(n, _) if n == name)
}

pub(super) fn answered_state(
    rx: &mut tokio::sync::oneshot::Receiver<Result<Reply, ControlError>>,
) -> Option<String> {
    match rx.try_recv() {
        Ok(Ok(Reply::Json(b))) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v["state"].as_str().map(String::from)),
        _ => None,
    }
}

pub(super) const TWO: &str = "[containers.a]\n[containers.b]\n";
