//! A stack's generations: every version of its stack file the supervisor
//! applied (its start, a reload of an edited file, an `apply`, a rollback)
//! or refused, numbered, under `DATA_DIR/STACK/generations/N/`: the file as
//! applied (`stack.toml`) and its record (`generation.json`) — when, why,
//! the image each container ran (manifest digests, so that a rollback runs
//! the same bytes and the store keeps them) and the outcome. The last
//! `keep` are kept (never the one running now or one being decided).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a generation fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// Applied; its containers are being watched before it is committed.
    Active,
    /// Applied and kept (past the health gate where there was one).
    Committed,
    /// Applied, then replaced by the one before it: why.
    RolledBack(String),
    /// Never applied: its problems.
    Rejected(String),
    /// Applied; its gate failed and it was kept (`rollback = "never"`).
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Active => write!(f, "active"),
            Outcome::Committed => write!(f, "committed"),
            Outcome::RolledBack(why) => write!(f, "rolled-back: {why}"),
            Outcome::Rejected(why) => write!(f, "rejected: {why}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A health gate under way, kept with its generation so a supervisor that
/// restarts in between finishes the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// How long the gated containers have to become ready (a supervisor
    /// that resumes the gate gives them this long again).
    pub timeout_ms: u64,
    /// How long they must then stay ready.
    pub stable_ms: u64,
    /// Whether a failure goes back to `previous` (else it is only recorded).
    pub rollback: bool,
    /// The generation to go back to.
    pub previous: Option<u64>,
    /// The containers created or recreated by it.
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u64,
    /// When it was made (UTC, RFC 3339).
    pub created: String,
    /// What made it: `start`, `reload (file changed)`, `apply`, `rollback to 3`.
    pub reason: String,
    pub outcome: Outcome,
    /// When the outcome was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<String>,
    /// Each container's image as it ran (manifest digest), where it has one.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Whether its containers run exactly `images` (a rollback), not what
    /// their references name in the store now.
    #[serde(default)]
    pub pinned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

impl Generation {
    /// Whether it is (or was, until a later one) what ran: applied and not
    /// rolled back.
    pub fn applied(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Active | Outcome::Committed | Outcome::Failed(_)
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("generation {what}: {source}")]
pub struct GenerationError {
    what: String,
    #[source]
    source: std::io::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GenerationError {
    let what = what.into();
    move |source| GenerationError { what, source }
}

/// The largest stack file kept (the validator's own limit is lower).
const MAX_FILE: u64 = 16 << 20;

/// The generations of one stack, as on disk.
#[derive(Debug)]
pub struct Generations {
    dir: PathBuf,
    list: Vec<Generation>,
    keep: usize,
    /// The highest number on disk, read or not: numbers are never reused.
    highest: u64,
}

impl Generations {
    /// `DATA_DIR/STACK/generations`.
    pub fn dir(data_dir: &Path, stack: &str) -> PathBuf {
        data_dir.join(stack).join("generations")
    }

    /// Those under `dir` (none yet: an empty list). A record that cannot
    /// be read is left out, not fatal: history must never stop a stack.
    pub fn open(dir: &Path, keep: usize) -> Generations {
        let mut list = Vec::new();
        let mut highest = 0;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                highest = highest.max(n);
                let record =
                    crate::bounded::read_regular(&e.path().join("generation.json"), 1 << 20)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Generation>(&b).ok())
                        .filter(|g| g.number == n);
                list.extend(record);
            }
        }
        list.sort_by_key(|g| g.number);
        Generations {
            dir: dir.to_path_buf(),
            list,
            keep: keep.max(1),
            highest,
        }
    }

    pub fn set_keep(&mut self, keep: usize) {
        self.keep = keep.max(1);
    }

    pub fn list(&self) -> &[Generation] {
        &self.list
    }

    pub fn get(&self, n: u64) -> Option<&Generation> {
        self.list.iter().find(|g| g.number == n)
    }

    /// The one running now: the last applied.
    pub fn current(&self) -> Option<&Generation> {
        self.list.iter().rev().find(|g| g.applied())
    }

    /// The last committed one before `n`.
    pub fn committed_before(&self, n: u64) -> Option<&Generation> {
        self.list
            .iter()
            .rev()
            .find(|g| g.number < n && g.outcome == Outcome::Committed)
    }

    /// Generation `n`'s stack file.
    pub fn text(&self, n: u64) -> Result<String, GenerationError> {
        let path = self.dir.join(n.to_string()).join("stack.toml");
        let bytes = crate::bounded::read_regular(&path, MAX_FILE).map_err(|e| {
            err(format!("{n}: {}", path.display()))(std::io::Error::other(e.to_string()))
        })?;
        String::from_utf8(bytes).map_err(|e| err(n.to_string())(std::io::Error::other(e)))
    }

    /// Records a new generation of `text`; returns its number. Older ones
    /// beyond `keep` go (never the current one, nor one being decided).
    pub fn record(
        &mut self,
        text: &str,
        reason: &str,
        outcome: Outcome,
        images: BTreeMap<String, String>,
        pinned: bool,
        gate: Option<Gate>,
    ) -> Result<u64, GenerationError> {
        let number = self.highest.max(self.list.last().map_or(0, |g| g.number)) + 1;
        self.highest = number;
        let g = Generation {
            number,
            created: crate::time::timestamp(std::time::SystemTime::now()),
            reason: reason.to_string(),
            decided: (outcome != Outcome::Active)
                .then(|| crate::time::timestamp(std::time::SystemTime::now())),
            outcome,
            images,
            pinned,
            gate,
        };
        let dir = self.dir.join(number.to_string());
        let tmp = self.dir.join(format!(".{number}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(err(format!("{number}: {}", tmp.display())))?;
        super::state_file::write_atomic(&tmp.join("stack.toml"), text.as_bytes())
            .map_err(err(format!("{number}: stack.toml")))?;
        write_record(&tmp, &g)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(err(format!("{number}: {}", dir.display())))?;
        self.list.push(g);
        self.prune();
        Ok(number)
    }

    /// Changes generation `n`'s record with `change` and writes it.
    pub fn update(
        &mut self,
        n: u64,
        change: impl FnOnce(&mut Generation),
    ) -> Result<(), GenerationError> {
        let Some(g) = self.list.iter_mut().find(|g| g.number == n) else {
            return Ok(());
        };
        let before = g.clone();
        change(g);
        if *g == before {
            return Ok(());
        }
        write_record(&self.dir.join(n.to_string()), g)
    }

    /// Decides generation `n`: its outcome, the gate done with.
    pub fn decide(&mut self, n: u64, outcome: Outcome) -> Result<(), GenerationError> {
        self.update(n, |g| {
            g.outcome = outcome;
            g.gate = None;
            g.decided = Some(crate::time::timestamp(std::time::SystemTime::now()));
        })
    }

    /// The manifest digests any kept generation ran: the store keeps them.
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .list
            .iter()
            .flat_map(|g| g.images.values().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn prune(&mut self) {
        let current = self.current().map(|g| g.number);
        while self.list.len() > self.keep {
            let Some(i) = self
                .list
                .iter()
                .position(|g| Some(g.number) != current && g.outcome != Outcome::Active)
            else {
                return;
            };
            let g = self.list.remove(i);
            let _ = std::fs::remove_dir_all(self.dir.join(g.number.to_string()));
        }
    }
}

fn write_record(dir: &Path, g: &Generation) -> Result<(), GenerationError> {
    let text = serde_json::to_vec_pretty(g)
        .map_err(|e| err(g.number.to_string())(std::io::Error::other(e)))?;
    super::state_file::write_atomic(&dir.join("generation.json"), &text)
        .map_err(err(format!("{}: generation.json", g.number)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gens(dir: &Path, keep: usize) -> Generations {
        Generations::open(dir, keep)
    }

    /// Records `text` with no images, no gate.
    fn rec(g: &mut Generations, text: &str, reason: &str, outcome: Outcome) -> u64 {
        g.record(text, reason, outcome, BTreeMap::new(), false, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn generations_are_numbered_kept_and_read_back() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut g = gens(tmp.path(), 3);
        let one = rec(&mut g, "a = 1\n", "start", Outcome::Committed);
        let images = BTreeMap::from([("web".to_string(), "sha256:aa".to_string())]);
        let two = g
            .record("a = 2\n", "apply", Outcome::Active, images, false, None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((one, two), (1, 2));
        assert_eq!(g.current().map(|c| c.number), Some(2));
        assert_eq!(g.committed_before(2).map(|c| c.number), Some(1));
        g.decide(2, Outcome::RolledBack("web exited (code 1)".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.current().map(|c| c.number), Some(1));
        // Read back from disk as written.
        let again = gens(tmp.path(), 3);
        assert_eq!(again.list(), g.list());
        assert_eq!(again.text(2).unwrap_or_default(), "a = 2\n");
        assert_eq!(
            again.get(2).map(|c| c.outcome.to_string()).as_deref(),
            Some("rolled-back: web exited (code 1)")
        );
        assert_eq!(again.images(), ["sha256:aa"]);
    }

    #[test]
    fn only_the_last_are_kept_and_never_the_running_one() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut g = gens(tmp.path(), 2);
        rec(&mut g, "a = 1\n", "start", Outcome::Committed);
        for i in 2..=4 {
            rec(
                &mut g,
                &format!("a = {i}\n"),
                "reload",
                Outcome::Rejected("bad".into()),
            );
        }
        let numbers: Vec<u64> = g.list().iter().map(|x| x.number).collect();
        assert_eq!(numbers, [1, 4], "the running one stays");
        assert!(!tmp.path().join("2").exists() && !tmp.path().join("3").exists());
        // A record that cannot be read is left out, and numbering goes on.
        std::fs::write(tmp.path().join("4/generation.json"), "{").unwrap_or_else(|e| panic!("{e}"));
        let mut g = gens(tmp.path(), 2);
        assert_eq!(g.list().len(), 1);
        let n = rec(&mut g, "a = 5\n", "reload", Outcome::Committed);
        assert_eq!(n, 5, "numbers are never reused");
    }
}
