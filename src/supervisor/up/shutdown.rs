//! The stack's shutdown: every container stopped, dependents first, a
//! dependency level at a time, through the loop (which answers requests
//! meanwhile); then its networks, rules and state go.

use super::*;

/// How long `down` waits for the kernel to remove the stack's veths.
const VETHS_GONE: Duration = Duration::from_secs(10);

impl Supervisor {
    /// The order to stop in: containers no longer in the file first, then
    /// the dependency levels, deepest first (a batch stops together).
    fn stop_batches(&self) -> Vec<Vec<String>> {
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
        let deepest = level.values().copied().max().unwrap_or(0);
        let mut batches = vec![others];
        for l in (0..=deepest).rev() {
            batches.push(
                order
                    .iter()
                    .filter(|n| level.get(*n) == Some(&l))
                    .cloned()
                    .collect(),
            );
        }
        batches
    }

    /// Begins stopping the stack: no plan, reload or start any more; the
    /// first batch gets its stop signals. The loop ends once all stopped.
    pub(super) fn begin_shutdown(&mut self) {
        if self.shutting.is_some() {
            return;
        }
        sd_notify("STOPPING=1");
        self.queue.clear();
        // Reloads and answers waiting for a plan: the server tells their
        // callers that the supervisor is going away.
        self.when_idle.clear();
        self.after_stop.retain(|(_, t)| matches!(t, Then::Reply(_)));
        self.end_pulls();
        self.shutting = Some(self.stop_batches().into());
        self.next_batch();
    }

    /// Stops the next batch once the one before it has stopped.
    pub(super) fn next_batch(&mut self) {
        loop {
            let Some(batch) = self.shutting.as_ref().and_then(|b| b.front()).cloned() else {
                return;
            };
            let mut waiting = false;
            for name in &batch {
                waiting |= self.stop(name);
            }
            if waiting {
                return;
            }
            if let Some(b) = self.shutting.as_mut() {
                b.pop_front();
            }
        }
    }

    /// Whether the stack is stopping and every container has stopped.
    pub(super) fn stack_down(&self) -> bool {
        self.shutting.as_ref().is_some_and(|b| b.is_empty())
    }

    /// After the loop: what is still running (the loop ended early, on an
    /// error) is stopped here, waiting; then the stack's containers,
    /// networks, rules and state go.
    pub(super) fn shutdown(&mut self) {
        if self.shutting.is_none() {
            sd_notify("STOPPING=1");
        }
        self.end_pulls();
        for batch in self.stop_batches() {
            self.stop_many(&batch);
        }
        for name in self.live.keys().cloned().collect::<Vec<_>>() {
            self.remove(&name);
        }
        let veths = self.veth_names();
        for net in std::mem::take(&mut self.nets.records).into_keys() {
            let bridge = crate::network::names::bridge(&self.stack(), &net);
            if let Err(e) = self.net.delete_link(&bridge) {
                event(&self.stack(), Kind::Error, format!("network {net}: {e}"));
            }
        }
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("etc"));
        if self.nets.rules.take().is_some()
            && let Err(e) = self.net.remove_rules(&self.stack())
        {
            event(&self.stack(), Kind::Error, format!("ports and nat: {e}"));
        }
        self.wait_veths_gone(veths);
        // Stopped on purpose: nothing is left to adopt.
        let _ = std::fs::remove_file(self.state_path());
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()).join("rootfs"));
        let _ = std::fs::remove_dir(self.opts.state_dir.join(self.stack()));
        event(&self.stack(), Kind::StackStopped, "stack stopped");
    }

    /// Every name the host end of a container's veth may have (its own and
    /// the alternates used while an earlier instance's end was going), and
    /// those of the containers ended before, on networks gone since.
    fn veth_names(&self) -> Vec<String> {
        let stack = self.stack();
        let mut containers: std::collections::BTreeSet<&str> =
            self.live.keys().map(String::as_str).collect();
        containers.extend(self.desired.containers.iter().map(|c| c.name.as_str()));
        let mut out: Vec<String> = self.nets.ended_veths.iter().cloned().collect();
        for c in containers {
            for net in self.nets.records.keys() {
                let own = crate::network::names::veth_host(&stack, c, net);
                out.extend(crate::network::names::veth_host_names(&own));
            }
        }
        out
    }

    /// Waits (bounded) until the kernel has removed the host ends of the
    /// stopped containers' veths. They go with each container's network
    /// namespace, which the kernel dismantles some time after its last
    /// process ended (longer on a busy machine): `down` returns once
    /// nothing of the stack is left on the host.
    fn wait_veths_gone(&self, names: Vec<String>) {
        let mut left: Vec<String> = names
            .into_iter()
            .filter(|n| self.net.link_exists(n))
            .collect();
        let deadline = Instant::now() + VETHS_GONE;
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left.retain(|n| self.net.link_exists(n));
        }
        if !left.is_empty() {
            event(
                &self.stack(),
                Kind::Warning,
                format!(
                    "the kernel has not yet removed {} (it goes with its container's network namespace)",
                    left.join(", ")
                ),
            );
        }
    }

    /// Stops containers together and waits for them (none of them depends
    /// on another): each gets its stop signal at once, each is given its
    /// `stop_timeout`, then SIGKILL; their cgroups go afterwards. Only for
    /// the shutdown, when the loop has ended.
    pub(super) fn stop_many(&mut self, names: &[String]) {
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
            // One being stopped already keeps its deadline.
            let deadline = match l.state {
                State::Stopping(d) => d,
                _ => {
                    let (sig, timeout) = (c.stop_signal.number(), c.stop_timeout.0);
                    self.launcher.signal(pid, sig);
                    start + timeout
                }
            };
            waiting.push((
                name.clone(),
                pid,
                deadline,
                l.pidfd.as_ref().map(|p| p.as_raw_fd()),
                false,
            ));
        }
        let mut ended: Vec<(String, StopEnd)> = Vec::new();
        let only_chld = sigset(&[libc::SIGCHLD]);
        let mut killed = false;
        let launcher = &mut self.launcher;
        while !waiting.is_empty() {
            let now = Instant::now();
            waiting.retain_mut(|(name, pid, deadline, pidfd, sent_kill)| {
                let mut status = 0;
                let done = match pidfd {
                    Some(fd) => {
                        let mut p = [libc::pollfd {
                            fd: *fd,
                            events: libc::POLLIN,
                            revents: 0,
                        }];
                        super::wait::poll_raw(&mut p, 0) > 0
                    }
                    // SAFETY: status valid for writes.
                    None => unsafe { libc::waitpid(*pid, &mut status, libc::WNOHANG) == *pid },
                };
                if done {
                    ended.push((
                        name.clone(),
                        if pidfd.is_some() {
                            StopEnd::Adopted
                        } else {
                            StopEnd::Exited(decode(status))
                        },
                    ));
                    return false;
                }
                if now >= *deadline && !*sent_kill {
                    event(
                        &stack,
                        Kind::StopKilled,
                        format!("{name}: did not stop within its stop_timeout; killing it"),
                    );
                    launcher.signal(*pid, libc::SIGKILL);
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
        for (name, end) in ended {
            self.release(&name, end);
        }
        self.refresh_hosts();
        // Other children may have ended meanwhile; their SIGCHLD was taken here.
        self.reap();
    }
}
