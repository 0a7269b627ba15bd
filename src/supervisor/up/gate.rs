//! The health gate: an applied generation (an `apply`, or an edit with
//! `[update] rollback = "auto"`) is committed once the containers it
//! created or recreated run — healthy, where they have a check — for the
//! stable time within the timeout; otherwise the last committed generation
//! comes back ([`Supervisor::go_back`]). The gate is recorded with its
//! generation, so a supervisor that restarts meanwhile finishes it.

use super::*;
use crate::host::generations::{Gate, Outcome};

/// A health gate being decided.
pub(super) struct GateRun {
    pub(super) generation: u64,
    deadline: Instant,
    timeout: Duration,
    stable: Duration,
    rollback: bool,
    previous: Option<u64>,
    /// Each gated container and its restarts when the gate began.
    containers: Vec<(String, u32)>,
    /// Since when all of them are ready.
    ready_since: Option<Instant>,
    /// The `apply` waiting for the outcome.
    pub(super) reply: Option<tokio::sync::oneshot::Sender<Result<Reply, ControlError>>>,
    /// When the gate's timer is set to wake the loop.
    wake: Option<Instant>,
}

/// How a new generation is to be gated.
pub(super) struct GateAsk {
    pub(super) timeout: Duration,
    pub(super) stable: Duration,
    pub(super) rollback: bool,
}

/// Why a gated container is not ready, or failed.
enum Verdict {
    Ready,
    NotYet(String),
    Failed(String),
}

impl Supervisor {
    /// Takes up the gate of generation `n`, recorded by a supervisor that
    /// stopped before deciding it.
    pub(super) fn resume_gate(&mut self, n: u64, gate: &Gate) {
        event(
            &self.stack(),
            Kind::ApplyStarted,
            format!("generation {n}: its health gate is resumed after a supervisor restart"),
        );
        let timeout = Duration::from_millis(gate.timeout_ms);
        self.update.gate = Some(GateRun {
            generation: n,
            deadline: Instant::now() + timeout,
            timeout,
            stable: Duration::from_millis(gate.stable_ms),
            rollback: gate.rollback,
            previous: gate.previous,
            containers: gate.containers.iter().map(|c| (c.clone(), 0)).collect(),
            ready_since: None,
            reply: None,
            wake: None,
        });
        // Looked at in the loop's first turn: with every container
        // adopted and quiet, no other event may ever come to make one.
        self.wake_gate(Instant::now());
    }

    /// The containers a plan creates or recreates: those a gate watches.
    fn gated(plan: &Plan) -> Vec<String> {
        plan.ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .map(|o| o.name.clone())
            .collect()
    }

    /// Records a gated generation of `text`, before it is applied (a
    /// supervisor that restarts after it finds the gate and finishes it).
    pub(super) fn record_gated(
        &mut self,
        text: &str,
        reason: &str,
        plan: &Plan,
        ask: &GateAsk,
    ) -> u64 {
        let record = Gate {
            timeout_ms: ask.timeout.as_millis() as u64,
            stable_ms: ask.stable.as_millis() as u64,
            rollback: ask.rollback,
            previous: self.update.gens.current().map(|g| g.number),
            containers: Self::gated(plan),
        };
        self.record(text, reason, Outcome::Active, Some(record))
    }

    /// Watches generation `n`, applied by `plan`; `reply` hears the outcome.
    pub(super) fn open_gate(
        &mut self,
        n: u64,
        reason: &str,
        plan: &Plan,
        ask: GateAsk,
        reply: Option<tokio::sync::oneshot::Sender<Result<Reply, ControlError>>>,
    ) {
        let gated = Self::gated(plan);
        let previous = self
            .update
            .gens
            .get(n)
            .and_then(|g| g.gate.as_ref())
            .and_then(|g| g.previous);
        event(
            &self.stack(),
            Kind::ApplyStarted,
            format!(
                "generation {n} ({reason}): waiting for {} to be ready for {}, within {}",
                if gated.is_empty() {
                    "nothing".to_string()
                } else {
                    gated.join(", ")
                },
                crate::config::Duration(ask.stable),
                crate::config::Duration(ask.timeout)
            ),
        );
        let containers = gated
            .into_iter()
            .map(|c| {
                let r = self.live.get(&c).map_or(0, |l| l.restarts);
                (c, r)
            })
            .collect();
        self.update.gate = Some(GateRun {
            generation: n,
            deadline: Instant::now() + ask.timeout,
            timeout: ask.timeout,
            stable: ask.stable,
            rollback: ask.rollback,
            previous,
            containers,
            ready_since: None,
            reply,
            wake: None,
        });
        self.check_gate();
    }

    /// What the running generation is, as an answer.
    fn outcome_reply(&self) -> Result<Reply, ControlError> {
        let g = self.update.gens.current();
        Reply::json(&serde_json::json!({
            "generation": g.map(|g| g.number),
            "outcome": g.map(|g| g.outcome.to_string()),
        }))
    }

    fn verdict(&self, name: &str, restarts: u32) -> Verdict {
        let Some(l) = self.live.get(name) else {
            return Verdict::Failed(format!("{name} is gone"));
        };
        if l.restarts > restarts {
            return Verdict::Failed(format!(
                "{name} restarted{}",
                l.last_exit
                    .map(|e| format!(" after it {e}"))
                    .unwrap_or_default()
            ));
        }
        match &l.state {
            State::Running => match l.health {
                Some(Health::Unhealthy) => Verdict::Failed(format!("{name} is unhealthy")),
                Some(Health::Healthy) | None => Verdict::Ready,
                Some(_) => Verdict::NotYet(format!("{name} is not healthy yet")),
            },
            State::Exited(e) => Verdict::Failed(format!("{name} {e}")),
            State::Backoff(_) => Verdict::Failed(format!(
                "{name} {}",
                l.last_exit
                    .map(|e| e.to_string())
                    .or_else(|| l.last_error.clone())
                    .unwrap_or_else(|| "failed".into())
            )),
            State::Failed(why) => Verdict::Failed(format!("{name} failed: {why}")),
            State::Waiting => Verdict::NotYet(format!("{name} is waiting for its dependencies")),
            State::Pulling => Verdict::NotYet(format!("{name} is waiting for its image")),
            State::Stopping(_) | State::Stopped => Verdict::NotYet(format!("{name} is stopped")),
        }
    }

    /// Decides the gate when it can be: committed once every gated
    /// container has been ready for the stable time; failed when one fails
    /// or the timeout passes first. Run after every turn of the loop.
    pub(super) fn check_gate(&mut self) {
        let Some(gate) = &self.update.gate else {
            return;
        };
        let now = Instant::now();
        let mut failed = None;
        let mut waiting = Vec::new();
        for (name, restarts) in &gate.containers {
            match self.verdict(name, *restarts) {
                Verdict::Ready => {}
                Verdict::NotYet(why) => waiting.push(why),
                Verdict::Failed(why) => {
                    failed = Some(why);
                    break;
                }
            }
        }
        let (generation, stable, timeout) = (gate.generation, gate.stable, gate.timeout);
        if failed.is_none() && waiting.is_empty() {
            let Some(since) = self
                .update
                .gate
                .as_mut()
                .map(|g| *g.ready_since.get_or_insert(now))
            else {
                return;
            };
            if now.duration_since(since) >= stable {
                self.commit(generation);
            } else {
                self.wake_gate(since + stable);
            }
            return;
        }
        if let Some(g) = self.update.gate.as_mut() {
            g.ready_since = None;
        }
        let failed = failed.or_else(|| {
            (now >= self.update.gate.as_ref().map_or(now, |g| g.deadline)).then(|| {
                format!(
                    "not ready within {}: {}",
                    crate::config::Duration(timeout),
                    waiting.join(", ")
                )
            })
        });
        match failed {
            Some(why) => self.gate_failed(why),
            None => {
                if let Some(at) = self.update.gate.as_ref().map(|g| g.deadline) {
                    self.wake_gate(at);
                }
            }
        }
    }

    /// The gate's timer fired.
    pub(super) fn gate_due(&mut self) {
        if let Some(g) = self.update.gate.as_mut() {
            g.wake = None;
        }
        self.check_gate();
    }

    /// Makes the loop wake at `at` to look at the gate again (one timer).
    fn wake_gate(&mut self, at: Instant) {
        if let Some(g) = self.update.gate.as_mut()
            && g.wake != Some(at)
        {
            g.wake = Some(at);
            self.timers.push(std::cmp::Reverse((at, Timer::Gate)));
        }
    }

    fn commit(&mut self, generation: u64) {
        let Some(gate) = self.update.gate.take() else {
            return;
        };
        self.decide(generation, Outcome::Committed);
        event(
            &self.stack(),
            Kind::ApplyCommitted,
            format!("generation {generation}: committed"),
        );
        if let Some(tx) = gate.reply {
            let _ = tx.send(self.outcome_reply());
        }
    }

    fn gate_failed(&mut self, why: String) {
        let Some(gate) = self.update.gate.take() else {
            return;
        };
        let n = gate.generation;
        let target = gate.previous.filter(|_| gate.rollback).and_then(|p| {
            self.update
                .gens
                .committed_before(n)
                .map(|g| g.number)
                .or(Some(p))
        });
        let Some(target) = target else {
            self.decide(n, Outcome::Failed(why.clone()));
            let msg = format!("generation {n} failed its health gate and was kept: {why}");
            event(&self.stack(), Kind::ApplyRolledBack, msg.clone());
            if let Some(tx) = gate.reply {
                let _ = tx.send(Err(ControlError::new(
                    crate::control::ErrorKind::ApplyFailed,
                    msg,
                )));
            }
            return;
        };
        self.decide(n, Outcome::RolledBack(why.clone()));
        let result = self.go_back(target, &format!("rollback to {target} ({why})"));
        let msg = match &result {
            Ok(_) => format!("generation {n} rolled back to {target}: {why}"),
            Err(e) => {
                format!("generation {n} failed ({why}); going back to {target} failed too: {e}")
            }
        };
        event(&self.stack(), Kind::ApplyRolledBack, msg.clone());
        if let Some(tx) = gate.reply {
            let kind = if result.is_ok() {
                crate::control::ErrorKind::RolledBack
            } else {
                crate::control::ErrorKind::ApplyFailed
            };
            let _ = tx.send(Err(ControlError::new(kind, msg)));
        }
    }
}
