//! The stack's shutdown: every container stopped, dependents first, a
//! dependency level at a time, then its networks, rules and state.

use super::*;

impl Supervisor {
    /// Stops every container, dependents first: all containers of one
    /// dependency level at once, the deepest level first.
    pub(super) fn shutdown(&mut self) {
        // Nothing that waited for a stop or a plan is answered any more.
        self.queue.clear();
        self.after_stop.clear();
        self.when_idle.clear();
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
                    // SAFETY: signalling the container we started.
                    unsafe { libc::kill(pid, c.stop_signal.number()) };
                    start + c.stop_timeout.0
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
            self.release(&name, Some(decode(status)));
        }
        self.refresh_hosts();
        // Other children may have ended meanwhile; their SIGCHLD was taken here.
        self.reap();
    }
}
