//! Health checks: run in the container as sealed processes, their results
//! turned into health states and restarts.

use super::*;

/// How soon after a start the first check runs.
pub(super) const FIRST_CHECK: Duration = Duration::from_millis(50);
/// Checks before the first `interval` is over come at growing delays
/// within these bounds (half the time since the start).
const EARLY_MIN: Duration = Duration::from_millis(100);
const EARLY_MAX: Duration = Duration::from_millis(500);

impl Supervisor {
    /// Runs the container's health command inside it.
    pub(super) fn run_check(&mut self, name: &str) {
        let stack = self.stack();
        let cache = self.opts.state_dir.join("seccomp");
        let Some(l) = self.live.get(name) else { return };
        let (Some(pid), Some(h)) = (l.pid, l.spec.config.health.clone()) else {
            return;
        };
        if l.state != State::Running || self.children.checking(name) {
            return;
        }
        let spec = match lower::exec_spec(
            &l.spec.config,
            pid,
            h.command.clone(),
            self.launcher.procs_files(name),
            Some(&cache),
        ) {
            Ok(mut s) => {
                if let (None, Some(u)) = (&l.spec.config.user, &l.image_user) {
                    s.user = lower::image_user(u);
                }
                s
            }
            Err(e) => {
                event(
                    &stack,
                    Kind::CheckFailed,
                    format!("{name}: health check cannot run: {e}"),
                );
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
            (Ok(i), Ok(o), Ok(e)) => match self.launcher.exec(&spec, Stdio3::Fds(i, o, e)) {
                Ok(check) => {
                    self.children.insert(check, Child::Check(name.to_string()));
                    self.timers.push(std::cmp::Reverse((
                        now + h.timeout.0,
                        Timer::HealthTimeout(name.to_string(), check),
                    )));
                }
                Err(e) => {
                    event(
                        &stack,
                        Kind::CheckFailed,
                        format!("{name}: health check failed to run: {e}"),
                    );
                    self.on_check(name, Exit::Code(127));
                }
            },
            _ => event(
                &stack,
                Kind::CheckFailed,
                format!("{name}: health check: cannot open /dev/null"),
            ),
        }
    }

    pub(super) fn on_check(&mut self, name: &str, exit: Exit) {
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
        let ran = l.started.map(|s| s.elapsed()).unwrap_or_default();
        // Until its first success, a container is checked early and often
        // (a health-gated dependent starts as soon as it is up), but a
        // failure counts only once the first `interval` is over — where
        // compose would run its first check.
        let early = before == Some(Health::Starting) && ran < h.interval.0;
        if exit == Exit::Code(0) {
            l.health_failures = 0;
            l.health = Some(Health::Healthy);
        } else {
            // Failures while starting up do not count, until it was healthy once.
            let starting_up = before == Some(Health::Starting) && ran < h.start_period.0;
            if !early && !starting_up {
                l.health_failures += 1;
                if l.health_failures >= h.retries {
                    l.health = Some(Health::Unhealthy);
                }
            }
        }
        let after = l.health;
        // Once, when it turns unhealthy.
        let action = (after == Some(Health::Unhealthy) && before != after)
            .then(|| h.action(&l.spec.config.restart));
        let pid = l.pid;
        let next = if early && after == Some(Health::Starting) {
            (ran / 2)
                .clamp(EARLY_MIN, EARLY_MAX)
                .min(h.interval.0.saturating_sub(ran).max(EARLY_MIN))
        } else {
            h.interval.0
        };
        self.timers.push(std::cmp::Reverse((
            now + next,
            Timer::HealthCheck(name.to_string()),
        )));
        if before != after {
            let word = match after {
                Some(Health::Healthy) => "healthy",
                Some(Health::Unhealthy) => "unhealthy",
                _ => "starting",
            };
            event(
                &stack,
                match after {
                    Some(Health::Healthy) => Kind::Healthy,
                    Some(Health::Unhealthy) => Kind::Unhealthy,
                    _ => Kind::Waiting,
                },
                format!("{name}: {word}"),
            );
            self.start_ready();
        }
        match action {
            Some(config::HealthAction::Restart) => {
                event(
                    &stack,
                    Kind::Restarting,
                    format!("{name}: restarting: unhealthy (health.on_failure = \"restart\")"),
                );
                self.stop_then(name, Then::RestartUnhealthy);
            }
            Some(config::HealthAction::Stop) => {
                event(
                    &stack,
                    Kind::Stopping,
                    format!(
                        "{name}: stopping: unhealthy (health.on_failure = \"stop\"; `rkstack start {name}` brings it back)"
                    ),
                );
                self.stop(name);
            }
            Some(config::HealthAction::Kill) => {
                if let Some(pid) = pid {
                    event(
                        &stack,
                        Kind::Warning,
                        format!("{name}: killed: unhealthy (health.on_failure = \"kill\")"),
                    );
                    self.launcher.signal(pid, libc::SIGKILL);
                }
            }
            Some(config::HealthAction::None) | None => {}
        }
    }
}
