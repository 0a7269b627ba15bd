//! The plan executor: carries out the planner's ops in their order and
//! makes no decisions of its own. A stop holds the ops after it (not the
//! loop) until the container has ended.

use super::*;

impl Supervisor {
    /// Carries out a plan, op by op, in its order. No decisions here.
    pub(super) fn execute(&mut self, plan: &Plan) {
        // The images the stack now declares are on record before anything
        // of it starts: an `rmi` (or a pull's clean-up) in between would
        // otherwise see the stack running without them.
        self.save_state();
        self.queue.extend(plan.ops.iter().cloned());
        self.run_queue();
    }

    /// Whether a plan is being carried out (waiting for a stop).
    pub(super) fn busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Works through the queued ops until one waits for a stop (its end
    /// calls this again); once they are done, what waited for that.
    pub(super) fn run_queue(&mut self) {
        if self.in_queue {
            return;
        }
        self.in_queue = true;
        loop {
            while let Some(op) = self.queue.front().cloned() {
                if (op.target, op.action) == (Target::Container, Action::Stop) {
                    if self.stop(&op.name) {
                        self.in_queue = false;
                        return;
                    }
                    if op.why == plan::Why::Removed {
                        self.remove(&op.name);
                    }
                }
                self.queue.pop_front();
                self.execute_op(&op);
            }
            // Networks may have gone or changed without any container event.
            self.apply_ports();
            let idle = std::mem::take(&mut self.when_idle);
            if idle.is_empty() {
                break;
            }
            for i in idle {
                match i {
                    Idle::Reply(tx, answer) => {
                        let _ = tx.send(answer);
                    }
                    Idle::Reload { why, reply } => self.reload_for(&why, reply),
                }
            }
        }
        self.in_queue = false;
    }

    fn execute_op(&mut self, op: &plan::Op) {
        match (op.target, op.action) {
            (Target::Container, Action::Start) => {
                let Some(spec) = self.desired.container(&op.name).cloned() else {
                    return;
                };
                if op.why == plan::Why::Recreate {
                    // A new container: a fresh writable layer (a restart keeps it).
                    crate::container::images::discard_layer(
                        &self.opts.data_dir,
                        &self.stack(),
                        &op.name,
                    );
                }
                match self.live.get_mut(&op.name) {
                    Some(l) => {
                        l.spec = spec;
                        l.user_stopped = false;
                        l.history = History::default();
                        // Created anew: its image is fetched (or built)
                        // again as for any new container.
                        if op.why == plan::Why::Recreate {
                            l.pulled = false;
                        }
                    }
                    None => match self.admit(spec) {
                        Ok(l) => {
                            self.live.insert(op.name.clone(), l);
                        }
                        Err(e) => {
                            event(
                                &self.stack(),
                                Kind::StartFailed,
                                format!("{}: cannot be set up: {e}", op.name),
                            );
                            return;
                        }
                    },
                }
                self.start_when_ready(&op.name);
            }
            (Target::Container, Action::Update) => {
                let Some(spec) = self.desired.container(&op.name).cloned() else {
                    return;
                };
                if let Some(l) = self.live.get_mut(&op.name) {
                    match lower::cgroup_limits(&spec.config)
                        .map_err(|e| e.to_string())
                        .and_then(|lim| self.launcher.update_limits(&op.name, &lim))
                    {
                        Ok(()) => {
                            l.record.limits = spec.limits.clone();
                            if spec.config.logging != l.spec.config.logging {
                                super::lifecycle::configure_log(
                                    &mut l.log,
                                    &self.desired.stack,
                                    &spec.config,
                                );
                            }
                            l.spec = spec;
                            event(
                                &self.desired.stack,
                                Kind::Updated,
                                format!("{}: {}", op.name, op.cause),
                            );
                        }
                        Err(e) => event(
                            &self.desired.stack,
                            Kind::Error,
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
                    if spec.config.logging != l.spec.config.logging {
                        super::lifecycle::configure_log(
                            &mut l.log,
                            &self.desired.stack,
                            &spec.config,
                        );
                    }
                    l.spec = spec;
                }
            }
            (Target::Network, Action::Create) => self.create_network(&op.name),
            (Target::Network, Action::Remove) => self.remove_network(&op.name),
            _ => {}
        }
    }
}
