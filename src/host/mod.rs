//! The machine around rkstack, as `up`, `run` and the other commands all
//! need it: the stack lock, the stacks running here, their state files.

pub mod generations;
pub mod journal;
pub mod lockfile;
pub mod namelock;
pub mod stacks;
pub mod state_file;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

/// Opens (making it when missing) a file of the state folder that only
/// root may open: a lock file. Anyone who may open a lock file may also
/// lock it and so hold what it stands for (a stack, a name, a user
/// namespace range). A file an earlier version made open to others is
/// closed on the way.
pub fn open_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    let m = f.metadata()?;
    if m.permissions().mode() & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Runs `test` of this test binary in another process with `env` set, and
/// reads what it printed: `probe: free` (true) or `probe: held` (false);
/// `None` if it could not be asked.
#[cfg(test)]
pub(crate) fn probe_in_another_process(
    test: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> Option<bool> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture"])
        .envs(env.iter().copied())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("probe: free") {
        Some(true)
    } else if text.contains("probe: held") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_made_closed_and_an_open_one_is_closed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        let new = dir.path().join("new.lock");
        open_private(&new).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&new), Some(0o600));
        let old = dir.path().join("old.lock");
        std::fs::write(&old, "41").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        open_private(&old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&old), Some(0o600));
        assert_eq!(std::fs::read_to_string(&old).ok().as_deref(), Some("41"));
    }
}
