//! The supervisor's loop: timers, then one wait for every descriptor and
//! request, then each ready source handed to its owner.

use super::*;

impl Supervisor {
    pub(super) async fn run_loop(
        &mut self,
        mut requests: Option<tokio::sync::mpsc::UnboundedReceiver<Request>>,
    ) -> Result<(), UpError> {
        let mut waiter = Waiter::default();
        // Whether the last pass only answered questions (then the loop's
        // descriptors are those of the last wait).
        let mut questions_only = false;
        loop {
            // What the last turn changed in the networks' membership.
            self.flush_hosts();
            if self.stack_down() {
                // Let the server send its last answers (`down`'s).
                tokio::time::sleep(Duration::from_millis(30)).await;
                return Ok(());
            }
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
            if let Some(w) = &self.watch {
                fds.push(libc::pollfd {
                    fd: w.fd(),
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
            let dns_sources = self.nets.dns.sources();
            let dns_base = fds.len();
            for (fd, _) in &dns_sources {
                fds.push(libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let same_fds = questions_only && !fired;
            let (n, asked) =
                wait_ready(&mut fds, timeout, requests.as_mut(), &mut waiter, same_fds).await;
            questions_only = !asked.is_empty() && asked.iter().all(|r| r.command.reads_only());
            for r in asked {
                if self.on_request(r) {
                    event(
                        &self.stack(),
                        Kind::StackStopping,
                        "stopping the stack (down)",
                    );
                    self.begin_shutdown();
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
            for (i, (_, source)) in dns_sources.iter().enumerate() {
                if fds[dns_base + i].revents != 0 {
                    self.serve_dns(source);
                }
            }
            let base = 1 + usize::from(self.watch.is_some());
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
                        Kind::LogDropped,
                        format!(
                            "{name}: log lines dropped: writing {} failed (disk full?); the container runs on",
                            l.log.path().display()
                        ),
                    );
                } else if !l.log.dropping && l.log.announced {
                    l.log.announced = false;
                    event(
                        &stack,
                        Kind::LogDropped,
                        format!(
                            "{name}: {} log lines were dropped; {} is written again",
                            l.log.dropped,
                            l.log.path().display()
                        ),
                    );
                }
                if let Some(j) = l.log.journal() {
                    match (&j.failing, j.announced) {
                        (Some(e), false) => {
                            j.announced = true;
                            event(
                                &stack,
                                Kind::LogDropped,
                                format!(
                                    "{name}: the journal does not take its output ({e}); its log file still does"
                                ),
                            );
                        }
                        (None, true) => {
                            j.announced = false;
                            event(
                                &stack,
                                Kind::LogDropped,
                                format!(
                                    "{name}: {} lines did not reach the journal; it takes them again",
                                    j.dropped
                                ),
                            );
                        }
                        _ => {}
                    }
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
                    let stopping = self
                        .live
                        .get(name)
                        .is_some_and(|l| matches!(l.state, State::Stopping(_)));
                    if let Some(l) = self.live.get_mut(name) {
                        l.pid = None;
                        l.pidfd = None;
                    }
                    if stopping {
                        // Its stop's end: how it ended is not ours to know.
                        self.finish_stop(name, StopEnd::Adopted);
                        continue;
                    }
                    event(
                        &self.stack(),
                        Kind::Exited,
                        format!("{name}: ended (it was adopted, so its exit status is unknown)"),
                    );
                    self.after_exit(name, Exit::Code(255), ran);
                }
            }
            self.save_state();
            self.report_ready();
            if self.watch.is_some()
                && fds[1].revents != 0
                && self.watch.as_mut().is_some_and(|w| w.changed())
            {
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
                            crate::supervisor::pid1::stopped_by(sig);
                            event(&self.stack(), Kind::StackStopping, "stopping the stack");
                            self.begin_shutdown();
                        }
                        s if crate::supervisor::pid1::is_init()
                            && crate::supervisor::pid1::finish_of(s).is_some() =>
                        {
                            crate::supervisor::pid1::stopped_by(s);
                            event(
                                &self.stack(),
                                Kind::StackStopping,
                                format!("stopping the stack (signal {s})"),
                            );
                            self.begin_shutdown();
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
            // An applied generation's gate, after what this turn changed.
            self.check_gate();
        }
    }

    pub(super) fn on_timer(&mut self, t: Timer) {
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
            Timer::StopKill(name, deadline) => self.on_stop_timer(&name, deadline, false),
            Timer::StopGiveUp(name, deadline) => self.on_stop_timer(&name, deadline, true),
            Timer::Watchdog(every) => {
                sd_notify("WATCHDOG=1");
                self.timers.push(std::cmp::Reverse((
                    Instant::now() + every,
                    Timer::Watchdog(every),
                )));
            }
            Timer::Gate => self.gate_due(),
            Timer::HealthTimeout(name, pid) => {
                if self.children.check_of(pid) == Some(name.as_str()) {
                    // The health check process we started.
                    self.launcher.signal(pid, libc::SIGKILL);
                }
            }
        }
    }
}
