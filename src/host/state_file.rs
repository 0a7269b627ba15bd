//! `STATE_DIR/STACK/state.json`: what a running stack's supervisor keeps
//! on disk — what survives its crash (the containers it runs, the bridges
//! it made) and what other commands ask of it (the ports it publishes,
//! the images it uses). The one type every reader and the writer share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::{NetworkRecord, Record};

/// A state file is a few KiB per container; anything beyond this is not
/// one rkstack wrote.
pub const MAX_BYTES: u64 = 64 << 20;

/// The whole state file of one stack.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StateFile {
    pub stack: String,
    pub containers: BTreeMap<String, SavedContainer>,
    /// The networks whose bridges exist, with what they were made from.
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Host ports published now (other stacks check theirs against them).
    #[serde(default)]
    pub published: Vec<Published>,
    /// Images from the store its containers are declared with (`rmi`
    /// refuses to remove them while the stack runs).
    #[serde(default)]
    pub images: Vec<String>,
    /// Whether systemd started the supervisor in its `supervisor` leaf
    /// (`DelegateSubgroup=`): it can then start the next one beside the
    /// containers.
    #[serde(default)]
    pub placed_in_leaf: bool,
}

/// One container as its supervisor left it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SavedContainer {
    #[serde(default)]
    pub ips: BTreeMap<String, std::net::IpAddr>,
    pub pid: Option<i32>,
    pub starttime: Option<u64>,
    pub record: Record,
    pub restarts: u32,
    pub user_stopped: bool,
    /// When its present run started (Unix milliseconds): a supervisor that
    /// adopts it counts its uptime from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Why its restart policy gave up on it (`start_limit`): it stays down
    /// across a supervisor restart too.
    #[serde(default)]
    pub failed: Option<String>,
    /// The store's layers its running process is made of (folder names
    /// under `images/layers`): never collected while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

/// A host port a stack publishes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub proto: String,
    pub port: u16,
}

/// Why a state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{0}")]
    Read(#[from] crate::bounded::Refusal),
    #[error("{0}")]
    Parse(#[from] serde_json::Error),
}

impl StateFile {
    pub fn path(state_dir: &Path, stack: &str) -> PathBuf {
        state_dir.join(stack).join("state.json")
    }

    /// The stack's state file; `None` when it has none.
    pub fn read(state_dir: &Path, stack: &str) -> Result<Option<StateFile>, StateFileError> {
        let path = StateFile::path(state_dir, stack);
        let bytes = match crate::bounded::read_regular(&path, MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    /// The stack's state file, or an empty one when it has none or it
    /// cannot be read (for readers that only look).
    pub fn read_or_default(state_dir: &Path, stack: &str) -> StateFile {
        StateFile::read(state_dir, stack)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The text written to disk.
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// Writes a file atomically, for root alone: a temporary file, fsync,
/// rename, fsync of the folder.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    // State (the containers' specs, their environment among them) is
    // for root alone.
    let mut f = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_state_file_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StateFile::read(dir.path(), "web").unwrap().is_none());
        let s = StateFile {
            stack: "web".into(),
            published: vec![Published {
                proto: "tcp".into(),
                port: 8080,
            }],
            images: vec!["oci:/x".into()],
            ..Default::default()
        };
        write_atomic(
            &StateFile::path(dir.path(), "web"),
            s.to_text().unwrap().as_bytes(),
        )
        .unwrap();
        let back = StateFile::read(dir.path(), "web").unwrap().unwrap();
        assert_eq!(back.published, s.published);
        assert_eq!(back.images, s.images);
        std::fs::write(StateFile::path(dir.path(), "web"), "{").unwrap();
        assert!(StateFile::read(dir.path(), "web").is_err());
        assert!(
            StateFile::read_or_default(dir.path(), "web")
                .images
                .is_empty()
        );
    }
}
