//! Stopping a container without holding the loop: its stop signal, a
//! timer for SIGKILL at its `stop_timeout`, and the stop finished when the
//! container ends (or ten seconds after the SIGKILL). Whatever waits for it
//! (a restart, a request's answer, the rest of a plan) runs then.

use std::cmp::Reverse;

use super::*;

/// How a stopped container's process came to its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum StopEnd {
    /// It exited (or was killed) as its wait status says.
    Exited(Exit),
    /// It was adopted from a previous supervisor: not our child, so it is
    /// known to have ended (its pidfd) but not how.
    Adopted,
    /// It was still there after SIGKILL and is no longer waited for.
    GaveUp,
}

impl Supervisor {
    /// Begins stopping `name`: its stop signal now, SIGKILL when its
    /// `stop_timeout` is over. Whether it is being stopped (false: it was
    /// not running, and is stopped now).
    pub(super) fn stop(&mut self, name: &str) -> bool {
        let Some(l) = self.live.get_mut(name) else {
            return false;
        };
        l.user_stopped = true;
        match l.state {
            State::Stopping(_) => return true,
            State::Backoff(_) | State::Waiting | State::Pulling => l.state = State::Stopped,
            _ => {}
        }
        let Some(pid) = l.pid else {
            return false;
        };
        let c = &l.spec.config;
        let deadline = Instant::now() + c.stop_timeout.0;
        self.launcher.signal(pid, c.stop_signal.number());
        l.state = State::Stopping(deadline);
        self.timers.push(Reverse((
            deadline,
            Timer::StopKill(name.to_string(), deadline),
        )));
        // It leaves the other containers' hosts files and its ports now.
        self.hosts_changed();
        true
    }

    /// [`Supervisor::stop`], then `then` once the stop has finished (at
    /// once when `name` was not running).
    pub(super) fn stop_then(&mut self, name: &str, then: Then) {
        if self.stop(name) {
            self.after_stop.push((name.to_string(), then));
        } else {
            self.run_then(name, then);
        }
    }

    /// Adds `then` to what waits for `name`'s stop; false when it is not
    /// being stopped (nothing was added).
    pub(super) fn when_stopped(&mut self, name: &str, then: Then) -> Result<(), Then> {
        if self
            .live
            .get(name)
            .is_some_and(|l| matches!(l.state, State::Stopping(_)))
        {
            self.after_stop.push((name.to_string(), then));
            Ok(())
        } else {
            Err(then)
        }
    }

    fn run_then(&mut self, name: &str, then: Then) {
        let planned = self
            .queue
            .iter()
            .any(|o| o.name == name && (o.target, o.action) == (Target::Container, Action::Start));
        match then {
            // The plan under way starts it, as its file now says.
            Then::StartByUser | Then::RestartUnhealthy if planned => {}
            Then::StartByUser => self.start_by_user(name),
            Then::RestartUnhealthy => {
                if let Some(l) = self.live.get_mut(name) {
                    l.user_stopped = false;
                    l.restarts += 1;
                }
                self.start(name);
            }
            Then::Reply(tx) => {
                let _ = tx.send(self.one(name));
            }
        }
    }

    /// A stop's timers: at the deadline SIGKILL, ten seconds later the
    /// stop is over whether the process ended or not (one stuck in the
    /// kernel cannot hold the stack). Timers of an earlier stop do nothing.
    pub(super) fn on_stop_timer(&mut self, name: &str, deadline: Instant, give_up: bool) {
        let stack = self.stack();
        let Some(l) = self.live.get(name) else {
            return;
        };
        if l.state != State::Stopping(deadline) {
            return;
        }
        if give_up {
            event(
                &stack,
                Kind::StopKilled,
                format!("{name}: still there 10 s after SIGKILL; no longer waited for"),
            );
            self.finish_stop(name, StopEnd::GaveUp);
            return;
        }
        if let Some(pid) = l.pid {
            event(
                &stack,
                Kind::StopKilled,
                format!("{name}: did not stop within its stop_timeout; killing it"),
            );
            self.launcher.signal(pid, libc::SIGKILL);
        }
        self.timers.push(Reverse((
            Instant::now() + Duration::from_secs(10),
            Timer::StopGiveUp(name.to_string(), deadline),
        )));
    }

    /// A stopping container ended (`exit`), or was given up on (`None`):
    /// it is released, then what waited for it runs (starts before
    /// answers, so an answer tells what it is now), then the plan goes on.
    pub(super) fn finish_stop(&mut self, name: &str, end: StopEnd) {
        self.release(name, end);
        self.hosts_changed();
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.after_stop)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.after_stop = rest;
        let (replies, starts): (Vec<_>, Vec<_>) = mine
            .into_iter()
            .partition(|(_, t)| matches!(t, Then::Reply(_)));
        for (_, then) in starts.into_iter().chain(replies) {
            self.run_then(name, then);
        }
        self.run_queue();
        if self.shutting.is_some() {
            self.next_batch();
        }
    }

    /// What a stopped container leaves: its cgroup, its staging folder, its
    /// veths; its output is read to the end first.
    pub(super) fn release(&mut self, name: &str, end: StopEnd) {
        let stack = self.stack();
        let Some(l) = self.live.get_mut(name) else {
            return;
        };
        l.log.drain(0);
        l.log.drain(1);
        l.pid = None;
        l.pidfd = None;
        l.health = None;
        self.launcher.destroy(name);
        let _ = std::fs::remove_dir(&l.staging);
        l.state = State::Stopped;
        let (facts, text) = match end {
            StopEnd::Exited(e) => (exit_facts(e), format!("{name}: stopped ({e})")),
            StopEnd::Adopted => (Facts::default(), format!("{name}: stopped")),
            StopEnd::GaveUp => (
                Facts::default(),
                format!("{name}: stopped (it did not end)"),
            ),
        };
        event_with(&stack, Kind::Stopped, facts, text);
        self.detach(name);
    }

    pub(super) fn remove(&mut self, name: &str) {
        if let Some(l) = self.live.remove(name) {
            let stack = self.stack();
            self.nets.ended(&stack, name, l.ips.keys());
            self.launcher.destroy(name);
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
        crate::container::images::discard_layer(&self.opts.data_dir, &self.stack(), name);
    }
}
