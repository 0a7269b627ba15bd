//! Reloads: the stack file read again, checked against the host, planned
//! against what runs; an invalid or unfit file changes nothing.

use super::*;

impl Supervisor {
    /// Re-reads the stack file. An invalid file changes nothing. While a
    /// plan waits for a stop, the reload comes after it (once).
    pub(super) fn reload(&mut self, why: &str) {
        self.reload_for(why, None);
    }

    /// A reload asked for by a request (`reply`), by the file or a signal
    /// (`None`), or left for when the last plan was done: the plan's JSON
    /// is sent once its ops are carried out.
    pub(super) fn reload_for(
        &mut self,
        why: &str,
        reply: Option<tokio::sync::oneshot::Sender<Result<Reply, ControlError>>>,
    ) {
        if self.busy() && self.shutting.is_none() {
            // One deferred reload of the file is enough; each request waits
            // for its own answer.
            let queued = reply.is_none()
                && self
                    .when_idle
                    .iter()
                    .any(|i| matches!(i, Idle::Reload { reply: None, .. }));
            if !queued {
                self.when_idle.push(Idle::Reload {
                    why: why.to_string(),
                    reply,
                });
            }
            return;
        }
        let result = self.try_reload(why);
        let Some(tx) = reply else {
            return;
        };
        let result = result.and_then(|plan| {
            Reply::json(&serde_json::json!({
                "changed": !plan.is_noop(),
                "plan": plan.to_string(),
                "ops": plan,
            }))
        });
        match result {
            Ok(answer) if self.busy() || self.in_queue => {
                self.when_idle.push(Idle::Reply(tx, Ok(answer)));
            }
            answer => {
                let _ = tx.send(answer);
            }
        }
    }

    /// [`Supervisor::reload`], with its outcome: the plan carried out, or why
    /// the file was rejected (the stack then runs on as it was).
    pub(super) fn try_reload(&mut self, why: &str) -> Result<Plan, ControlError> {
        if self.shutting.is_some() {
            return Err(ControlError::conflict("the stack is stopping"));
        }
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
                Kind::ReloadRejected,
                format!("reload ({why}) rejected, the stack keeps running as it was:\n{detail}"),
            );
        }
        self.notify_status("READY=1");
        result
    }

    /// `file` read as the desired state of this stack (bind sources pinned
    /// where they first resolved), with the plan from what runs to it; an
    /// invalid file or another stack's name is refused (`renamed`: the
    /// refusal's words).
    pub(super) fn plan_from(
        &mut self,
        file: &Path,
        renamed: impl FnOnce(&str) -> String,
    ) -> Result<(DesiredState, Plan), ControlError> {
        let text = config::read_text(file).map_err(|e| invalid(file, &e))?;
        self.plan_of(&text, file, renamed)
    }

    fn plan_of(
        &mut self,
        text: &str,
        file: &Path,
        renamed: impl FnOnce(&str) -> String,
    ) -> Result<(DesiredState, Plan), ControlError> {
        let mut stack = config::parse(text, file).map_err(|e| invalid(file, &e))?;
        self.pins.apply(&mut stack);
        if stack.name.as_str() != self.desired.stack {
            return Err(ControlError::conflict(renamed(stack.name.as_str())));
        }
        let mut ids = crate::container::images::ids(&stack, &self.opts.data_dir);
        // A rollback's containers run the images it pinned.
        ids.extend(self.update.pins.clone());
        Ok(plan::for_stack(stack, &ids, &self.observed()))
    }

    /// `text` as the new version of this stack's file: its desired state and
    /// the plan to it.
    pub(super) fn plan_text(
        &mut self,
        text: &str,
        file: &Path,
    ) -> Result<(DesiredState, Plan), ControlError> {
        self.plan_of(text, file, |name| {
            format!("the stack's name changed to {name}; restart rkstack to rename a stack")
        })
    }

    /// Whether `plan` to `desired` can be carried out here: its ports free,
    /// what its starts need from the host there. Checked before anything
    /// is stopped.
    pub(super) fn fit(&self, desired: &DesiredState, plan: &Plan) -> Result<(), ControlError> {
        self.check_ports(desired, plan)
            .map_err(ControlError::conflict)?;
        let problems: Vec<String> = plan
            .ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .filter_map(|o| desired.container(&o.name))
            .flat_map(|c| crate::supervisor::preflight::problems(&c.config))
            .collect();
        if !problems.is_empty() {
            return Err(ControlError::invalid(
                "the new stack cannot start here; nothing was changed",
                problems,
            ));
        }
        Ok(())
    }

    /// `text` planned as the stack's new file and checked to fit here
    /// ([`Supervisor::plan_text`], then [`Supervisor::fit`]).
    pub(super) fn fitting(&mut self, text: &str) -> Result<(DesiredState, Plan), ControlError> {
        let file = self.opts.file.clone();
        let (desired, plan) = self.plan_text(text, &file)?;
        self.fit(&desired, &plan)?;
        Ok((desired, plan))
    }

    pub(super) fn reload_plan(&mut self, why: &str) -> Result<Plan, ControlError> {
        let file = self.opts.file.clone();
        let text = config::read_text(&file).map_err(|e| invalid(&file, &e))?;
        let (desired, plan) = match self.fitting(&text) {
            Ok(p) => p,
            Err(e) => {
                self.rejected_edit(&text, why, &e);
                return Err(e);
            }
        };
        self.desired = desired;
        if plan.is_noop() {
            event(
                &self.stack(),
                Kind::Reloaded,
                format!("reload ({why}): nothing to do"),
            );
        } else {
            event(
                &self.stack(),
                Kind::Reloaded,
                format!("reload ({why}):\n{plan}"),
            );
        }
        // Also a plan of keeps: policy keys (restart, stop_signal, health
        // timing, ...) take effect through them without a restart.
        self.execute(&plan);
        self.reloaded_generation(&text, why, &plan);
        Ok(plan)
    }

    pub(super) fn observed(&self) -> ObservedState {
        ObservedState {
            containers: self
                .live
                .iter()
                .map(|(n, l)| (n.clone(), l.record.clone()))
                .collect(),
            networks: self.nets.records.clone(),
        }
    }
}

/// A stack file's error as a request's.
fn invalid(file: &Path, e: &config::ConfigError) -> ControlError {
    ControlError::invalid(
        format!("{} is not a valid stack file", file.display()),
        e.diagnostics().iter().map(|d| d.to_string()).collect(),
    )
}
