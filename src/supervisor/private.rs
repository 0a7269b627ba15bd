//! The data and state trees are rkstack's, closed to other local users:
//! containers' writable layers (where a container's root can leave a
//! setuid-root file), unpacked image layers (device nodes, setuid files),
//! logs and state (environment values) live there. The data directory is
//! `0700` (Docker keeps its root `0710`); the state directory `0711`, so
//! members of the API's group can reach the socket inside, with every file
//! of its own `0600`. Processes of a container in a user namespace reach
//! what they need through handles the init stage opened as root.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

pub const DATA_MODE: u32 = 0o700;
pub const STATE_MODE: u32 = 0o711;
/// Logs: the owner writes, its group may read.
pub const LOG_MODE: u32 = 0o640;

/// Makes `dir` (and its parents) if missing, and gives it `mode` (also
/// where an older rkstack made it open to all).
pub fn private_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)?;
    }
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Both roots, for a command about to write under them (as root).
pub fn secure_roots(data_dir: &Path, state_dir: &Path) -> std::io::Result<()> {
    private_dir(data_dir, DATA_MODE)?;
    private_dir(state_dir, STATE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_made_closed_and_closed_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("a/data");
        private_dir(&data, DATA_MODE).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        private_dir(&data, DATA_MODE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&data), 0o700);
    }
}
