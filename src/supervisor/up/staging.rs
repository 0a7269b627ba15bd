//! `apply`'s way in: a version's images pulled, or its bundle taken in,
//! before anything changes (a failure changes nothing), then the version
//! checked, recorded, written to the stack's file, carried out and gated
//! (see [`super::update`]).

use super::gate::GateAsk;
use super::*;
use crate::host::generations::Outcome;

/// A bundle being taken in by a child `rkstack __receive-bundle`.
pub(super) struct ReceiveJob {
    /// Where the child writes the bundle's stack file.
    out: PathBuf,
    /// The child's output, read for the error when it fails.
    log: PathBuf,
}

/// An `apply` waiting for its images: pulled first, so that a pull that
/// fails changes nothing.
pub(super) struct Staging {
    apply: crate::control::Apply,
    reply: tokio::sync::oneshot::Sender<Result<Reply, ControlError>>,
    /// The images still being pulled.
    pending: std::collections::BTreeSet<String>,
}

impl Supervisor {
    /// `apply`: the text validated, recorded, written to the file, planned
    /// and carried out, then gated; `reply` hears the outcome.
    pub(super) fn apply(
        &mut self,
        a: crate::control::Apply,
        reply: tokio::sync::oneshot::Sender<Result<Reply, ControlError>>,
    ) {
        if let Some(g) = &self.update.gate {
            let _ = reply.send(Err(ControlError::conflict(format!(
                "generation {} is still being applied; wait for it, or rkstack rollback",
                g.generation
            ))));
            return;
        }
        if self.update.staging.is_some() {
            let _ = reply.send(Err(ControlError::conflict(
                "another apply is pulling its images; wait for it",
            )));
            return;
        }
        if self.shutting.is_some() {
            let _ = reply.send(Err(ControlError::conflict("the stack is stopping")));
            return;
        }
        if let Some(bundle) = a.bundle.clone() {
            self.receive_bundle(a, reply, &bundle);
            return;
        }
        // A new version: its images are what the store names now.
        let pins = std::mem::take(&mut self.update.pins);
        let (desired, plan) = match self.fitting(&a.text) {
            Ok(d) => d,
            Err(e) => {
                self.update.pins = pins;
                self.rejected_generation(&a.text, "apply", &e);
                let _ = reply.send(Err(e));
                return;
            }
        };
        // Its images first: a pull that fails must change nothing.
        // (image, how it is built if it is), for each image to fetch.
        let needed: std::collections::BTreeMap<String, Option<config::Build>> = plan
            .ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .filter_map(|o| desired.container(&o.name))
            .filter_map(|c| {
                // What the store lacks (an `always` image is pulled again
                // at its start, as every created container's is).
                let mut c = c.config.clone();
                if c.pull_policy == config::PullPolicy::Always {
                    c.pull_policy = config::PullPolicy::Missing;
                }
                crate::container::images::pull_needed(&c, &self.opts.data_dir, false)
                    .map(|i| (i, c.build.clone()))
            })
            .collect();
        if !needed.is_empty() {
            self.update.pins = pins;
            self.stage(a, reply, needed);
            return;
        }
        let u = desired.update;
        let ask = GateAsk {
            timeout: a.timeout.unwrap_or(u.timeout.0),
            stable: a.stable.unwrap_or(u.stable.0),
            rollback: a
                .rollback
                .unwrap_or(u.rollback != Some(config::Rollback::Never)),
        };
        let n = self.record_gated(&a.text, "apply", &plan, &ask);
        // Planned and checked above; nothing has run since.
        match self.carry_out(&a.text, desired, plan) {
            Ok(plan) => self.open_gate(n, "apply", &plan, ask, Some(reply)),
            Err(e) => {
                self.update.pins = pins;
                self.decide(n, Outcome::Rejected(e.to_string()));
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Pulls `images` for an apply, which goes on once they are all in
    /// the store.
    fn stage(
        &mut self,
        a: crate::control::Apply,
        reply: tokio::sync::oneshot::Sender<Result<Reply, ControlError>>,
        images: std::collections::BTreeMap<String, Option<config::Build>>,
    ) {
        let stack = self.stack();
        for (image, build) in &images {
            if self.children.pulling(image) {
                continue;
            }
            match self.spawn_pull(image, build.as_ref()) {
                Ok((pid, log)) => {
                    event(
                        &stack,
                        Kind::Pulling,
                        format!("apply: pulling {image} (pid {pid}) before anything changes"),
                    );
                    self.children.insert(
                        pid,
                        Child::Pull(super::pulls::PullJob {
                            image: image.clone(),
                            log,
                            since: Instant::now(),
                        }),
                    );
                }
                Err(e) => {
                    let e =
                        ControlError::conflict(format!("pull {image}: {e}; nothing was changed"));
                    self.rejected_generation(&a.text, "apply", &e);
                    let _ = reply.send(Err(e));
                    return;
                }
            }
        }
        self.update.staging = Some(Staging {
            apply: a,
            reply,
            pending: images.into_keys().collect(),
        });
    }

    /// A pull ended (`failed`: why): an apply waiting for it goes on once
    /// it has all its images, or is refused with nothing changed.
    pub(super) fn staged(&mut self, image: &str, failed: Option<&str>) {
        let Some(st) = self.update.staging.as_mut() else {
            return;
        };
        if !st.pending.remove(image) {
            return;
        }
        if let Some(why) = failed {
            if let Some(st) = self.update.staging.take() {
                let e = ControlError::conflict(format!(
                    "pull of {image} failed: {why}; nothing was changed"
                ));
                self.rejected_generation(&st.apply.text, "apply", &e);
                let _ = st.reply.send(Err(e));
            }
            return;
        }
        if st.pending.is_empty()
            && let Some(st) = self.update.staging.take()
        {
            self.apply(st.apply, st.reply);
        }
    }

    /// Takes `bundle` in (its signature, its blobs, its images recorded)
    /// in a child process — hashing a large bundle must not hold the loop
    /// — and applies its stack file once that is done.
    fn receive_bundle(
        &mut self,
        a: crate::control::Apply,
        reply: tokio::sync::oneshot::Sender<Result<Reply, ControlError>>,
        bundle: &Path,
    ) {
        let out = bundle.with_extension("toml");
        let trusted = self.opts.trusted_keys.display().to_string();
        let args = [
            "__receive-bundle",
            "--trusted-keys",
            &trusted,
            &bundle.display().to_string(),
            &out.display().to_string(),
        ];
        match self.spawn_rkstack(&bundle.display().to_string(), &args) {
            Ok((pid, log)) => {
                event(
                    &self.stack(),
                    Kind::Pulling,
                    format!("apply: taking in bundle {} (pid {pid})", bundle.display()),
                );
                self.children
                    .insert(pid, Child::Receive(ReceiveJob { out, log }));
                self.update.staging = Some(Staging {
                    apply: a,
                    reply,
                    pending: Default::default(),
                });
            }
            Err(e) => {
                let _ = reply.send(Err(ControlError::internal(format!("bundle: {e}"))));
            }
        }
    }

    /// The bundle of the apply waiting is in: its stack file is applied,
    /// or the apply refused with why (nothing of the stack changed).
    pub(super) fn on_received(&mut self, job: ReceiveJob, exit: crate::control::Exit) {
        let output = std::fs::read_to_string(&job.log).unwrap_or_default();
        let _ = std::fs::remove_file(&job.log);
        let text = std::fs::read_to_string(&job.out);
        let _ = std::fs::remove_file(&job.out);
        let Some(st) = self.update.staging.take() else {
            return;
        };
        match (exit, text) {
            (crate::control::Exit::Code(0), Ok(text)) => {
                let a = crate::control::Apply {
                    text,
                    bundle: None,
                    ..st.apply
                };
                self.apply(a, st.reply);
            }
            (exit, _) => {
                let why = super::pulls::last_words(&output, exit);
                let kind = if why.contains("signature") {
                    crate::control::ErrorKind::Forbidden
                } else {
                    crate::control::ErrorKind::BadRequest
                };
                let _ = st.reply.send(Err(ControlError::new(kind, why)));
            }
        }
    }

    /// The stack stops: an apply waiting for its images is not carried out.
    pub(super) fn end_staging(&mut self) {
        if let Some(st) = self.update.staging.take() {
            let _ = st.reply.send(Err(ControlError::unavailable(
                "the stack is stopping; the apply was not carried out",
            )));
        }
    }
}
