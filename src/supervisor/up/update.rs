//! Generations. Every version of the stack file the supervisor applies
//! (its start, a reload of an edit, an `apply`, a rollback) or refuses is
//! recorded (`host::generations`). A rollback brings back a generation's
//! file (written to the watched path, so file and stack never disagree)
//! and the very images it ran (pinned by digest). An `apply` — and, with
//! `[update] rollback = "auto"`, an edit — is watched by the health gate
//! (`gate.rs`) before it is committed.

use super::gate::{GateAsk, GateRun};
use super::*;
use crate::host::generations::{Gate, Generations, Outcome};

/// The stack's generations and the gate under way.
pub(super) struct Updates {
    pub(super) gens: Generations,
    pub(super) gate: Option<GateRun>,
    /// Containers that run exactly this image (a rollback's): container →
    /// manifest digest. Kept while that generation is the running one.
    pub(super) pins: BTreeMap<String, String>,
    /// An `apply` whose images are being pulled before anything changes.
    pub(super) staging: Option<super::staging::Staging>,
}

impl Updates {
    pub(super) fn open(data_dir: &Path, stack: &str, keep: u32) -> Updates {
        Updates {
            gens: Generations::open(&Generations::dir(data_dir, stack), keep as usize),
            gate: None,
            pins: BTreeMap::new(),
            staging: None,
        }
    }

    /// The pins of the running generation when it is `text` (a rollback's).
    pub(super) fn pins_for(&self, text: &str) -> BTreeMap<String, String> {
        match self.gens.current() {
            Some(g) if g.pinned && self.gens.text(g.number).is_ok_and(|t| t == text) => {
                g.images.clone()
            }
            _ => BTreeMap::new(),
        }
    }
}

impl Supervisor {
    /// At start: the running generation goes on when the file is its text
    /// (a gate it had is resumed); otherwise the file is a new generation.
    pub(super) fn first_generation(&mut self, text: &str) {
        // One being decided whose file is not the one here never ran (the
        // supervisor stopped between its record and its file).
        if let Some(g) = self.update.gens.current().cloned()
            && g.outcome == Outcome::Active
            && self.update.gens.text(g.number).ok().as_deref() != Some(text)
        {
            self.decide(
                g.number,
                Outcome::RolledBack("the supervisor stopped before it was applied".into()),
            );
        }
        let current = self.update.gens.current().cloned();
        if let Some(g) = &current
            && self.update.gens.text(g.number).is_ok_and(|t| t == text)
        {
            if let (Outcome::Active, Some(gate)) = (&g.outcome, &g.gate) {
                self.resume_gate(g.number, gate);
            }
            return;
        }
        self.record(text, "start", Outcome::Committed, None);
    }

    /// Records a generation of `text` (its images filled in as its
    /// containers start); failures to write are reported, never fatal.
    pub(super) fn record(
        &mut self,
        text: &str,
        reason: &str,
        outcome: Outcome,
        gate: Option<Gate>,
    ) -> u64 {
        // The running file's `[update] keep` (a reload may change it).
        self.update.gens.set_keep(self.desired.update.keep as usize);
        let pinned = !self.update.pins.is_empty();
        let images = self.update.pins.clone();
        match self
            .update
            .gens
            .record(text, reason, outcome, images, pinned, gate)
        {
            Ok(n) => n,
            Err(e) => {
                event(&self.stack(), Kind::Warning, format!("history: {e}"));
                0
            }
        }
    }

    pub(super) fn decide(&mut self, n: u64, outcome: Outcome) {
        if let Err(e) = self.update.gens.decide(n, outcome) {
            event(&self.stack(), Kind::Warning, format!("history: {e}"));
        }
    }

    /// A container of the running generation started on image `manifest`.
    pub(super) fn note_image(&mut self, name: &str, manifest: &str) {
        if !manifest.starts_with("sha256:") {
            return;
        }
        let Some(n) = self.update.gens.current().map(|g| g.number) else {
            return;
        };
        let r = self.update.gens.update(n, |g| {
            g.images.insert(name.to_string(), manifest.to_string());
        });
        if let Err(e) = r {
            event(&self.stack(), Kind::Warning, format!("history: {e}"));
        }
    }

    /// The text of the running generation, if it can be read.
    fn current_text(&self) -> Option<String> {
        let g = self.update.gens.current()?;
        self.update.gens.text(g.number).ok()
    }

    /// After a reload of the file as `text` carried out `plan`: a new
    /// generation when the text is new, gated when `[update] rollback =
    /// "auto"` says so.
    pub(super) fn reloaded_generation(&mut self, text: &str, why: &str, plan: &Plan) {
        if self.current_text().as_deref() == Some(text) {
            return;
        }
        // A new version of the file: its images are what the store names.
        self.update.pins.clear();
        let u = self.desired.update;
        let reason = format!("reload ({why})");
        if u.rollback != Some(config::Rollback::Auto) {
            self.record(text, &reason, Outcome::Committed, None);
            return;
        }
        let ask = GateAsk {
            timeout: u.timeout.0,
            stable: u.stable.0,
            rollback: true,
        };
        let n = self.record_gated(text, &reason, plan, &ask);
        self.open_gate(n, &reason, plan, ask, None);
    }

    /// An edit of the file that was refused: recorded once (an editor's
    /// saves of one broken text are one generation).
    pub(super) fn rejected_edit(&mut self, text: &str, why: &str, e: &ControlError) {
        let last = self.update.gens.list().last().map(|g| g.number);
        if last.and_then(|n| self.update.gens.text(n).ok()).as_deref() == Some(text) {
            return;
        }
        self.rejected_generation(text, &format!("reload ({why})"), e);
    }

    /// A file that was refused: recorded with its problems.
    pub(super) fn rejected_generation(&mut self, text: &str, reason: &str, e: &ControlError) {
        let mut problems = e.error.clone();
        for p in &e.problems {
            problems.push_str("; ");
            problems.push_str(p);
        }
        self.record(text, reason, Outcome::Rejected(problems), None);
    }

    /// Applies generation `target` again — its file and, pinned, the
    /// images it ran — as a new generation, committed.
    pub(super) fn go_back(&mut self, target: u64, reason: &str) -> Result<Plan, ControlError> {
        let g = self
            .update
            .gens
            .get(target)
            .cloned()
            .ok_or_else(|| ControlError::conflict(format!("no generation {target} is kept")))?;
        let text = self
            .update
            .gens
            .text(target)
            .map_err(|e| ControlError::internal(e.to_string()))?;
        let before = std::mem::replace(&mut self.update.pins, g.images.clone());
        let plan = match self.apply_text(&text) {
            Ok(p) => p,
            Err(e) => {
                self.update.pins = before;
                return Err(e);
            }
        };
        self.record(&text, reason, Outcome::Committed, None);
        Ok(plan)
    }

    /// Plans `text` against what runs and, when it can start here, writes
    /// it to the stack's file and carries the plan out.
    pub(super) fn apply_text(&mut self, text: &str) -> Result<Plan, ControlError> {
        let (desired, plan) = self.fitting(text)?;
        self.carry_out(text, desired, plan)
    }

    /// Writes `text` to the stack's file and carries out `plan` to
    /// `desired` (planned from it and checked, see [`Supervisor::fitting`]).
    pub(super) fn carry_out(
        &mut self,
        text: &str,
        desired: DesiredState,
        plan: Plan,
    ) -> Result<Plan, ControlError> {
        let file = self.opts.file.clone();
        replace_file(&file, text)
            .map_err(|e| ControlError::internal(format!("{}: {e}", file.display())))?;
        self.desired = desired;
        event(&self.stack(), Kind::Reloaded, format!("apply:\n{plan}"));
        self.execute(&plan);
        Ok(plan)
    }

    /// `rollback [GEN]`: back to GEN, by default to the last committed
    /// generation before the running one (a gate under way is ended as
    /// rolled back).
    pub(super) fn rollback(&mut self, to: Option<u64>) -> Result<Reply, ControlError> {
        if self.shutting.is_some() {
            return Err(ControlError::conflict("the stack is stopping"));
        }
        let current = self.update.gens.current().map(|g| g.number);
        let target = match to {
            Some(n) => {
                let g = self.update.gens.get(n).ok_or_else(|| {
                    ControlError::new(
                        crate::control::ErrorKind::NotFound,
                        format!("no generation {n} is kept (rkstack history lists them)"),
                    )
                })?;
                if !g.applied() && !matches!(g.outcome, Outcome::RolledBack(_)) {
                    return Err(ControlError::conflict(format!(
                        "generation {n} was never applied ({})",
                        g.outcome
                    )));
                }
                n
            }
            None => current
                .and_then(|c| self.update.gens.committed_before(c))
                .map(|g| g.number)
                .ok_or_else(|| {
                    ControlError::conflict("there is no committed generation before this one")
                })?,
        };
        if Some(target) == current && self.update.gate.is_none() {
            return Err(ControlError::conflict(format!(
                "generation {target} is the one running"
            )));
        }
        let gate = self.update.gate.take();
        if let Some(g) = &gate {
            self.decide(g.generation, Outcome::RolledBack("by request".into()));
        }
        match self.go_back(target, &format!("rollback to {target} (requested)")) {
            Ok(plan) => {
                if let Some(tx) = gate.and_then(|g| g.reply) {
                    let _ = tx.send(Err(ControlError::new(
                        crate::control::ErrorKind::RolledBack,
                        format!("rolled back to {target} by request"),
                    )));
                }
                event(
                    &self.stack(),
                    Kind::ApplyRolledBack,
                    format!("rolled back to generation {target} by request"),
                );
                Reply::json(&serde_json::json!({
                    "generation": self.update.gens.current().map(|g| g.number),
                    "to": target,
                    "plan": plan.to_string(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// `history`: the generations, oldest first.
    pub(super) fn generations(&self) -> Result<Reply, ControlError> {
        Reply::json(self.update.gens.list())
    }
}

/// Replaces the stack file with `text` atomically (its mode kept; a
/// symlink's target is replaced, so a deploy's link stays).
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if crate::bounded::read_regular(&path, crate::config::MAX_FILE_BYTES)
        .is_ok_and(|b| b == text.as_bytes())
    {
        return Ok(());
    }
    let mode = std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.rkstack-new"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
