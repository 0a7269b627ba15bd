//! `rkstack mender-module STATE FILES_DIR`: Mender's update module
//! protocol (version 3) for the payload type `rkstack-stack`, so that a
//! fleet's Mender server (or `mender install` standalone) delivers stacks:
//! the payload is a stack file or a bundle, applied behind rkstack's
//! health gate. `contrib/mender/rkstack-stack` is the module's shim.
//!
//! - `ArtifactInstall`: the generation running now is noted (in the
//!   module's `tmp/`), then `apply`: exit 0 once the new generation is
//!   committed; a failure has already brought the old one back.
//! - `ArtifactCommit`: nothing more to do (the gate committed it).
//! - `ArtifactRollback`: back to the noted generation, unless it runs.
//! - `NeedsArtifactReboot`: `No`; `SupportsRollback`: `Yes`.
//! - Every other state (Download, ArtifactFailure, Cleanup, ...): nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{EXIT_FAILED, Global, bundle, update, with_client};

/// Where ArtifactInstall notes the generation it replaced.
const PREVIOUS: &str = "rkstack-previous-generation";
/// Where ArtifactInstall notes that the gate failed and rolled back.
const ROLLED_BACK: &str = "rkstack-rolled-back";

pub fn module(g: &Global, state: &str, files: &Path) -> anyhow::Result<ExitCode> {
    match state {
        "NeedsArtifactReboot" => {
            writeln!(std::io::stdout(), "No")?;
            Ok(ExitCode::SUCCESS)
        }
        "SupportsRollback" => {
            writeln!(std::io::stdout(), "Yes")?;
            Ok(ExitCode::SUCCESS)
        }
        "ArtifactInstall" => install(g, files),
        "ArtifactRollback" => rollback(g, files),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The payload: the one file Mender stored under `files/`.
fn payload(files: &Path) -> anyhow::Result<PathBuf> {
    let dir = files.join("files");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => anyhow::bail!(
            "{}: {n} payload files; an rkstack-stack artifact carries one (a stack file or a bundle)",
            dir.display()
        ),
    }
}

/// The stack a payload is for (its name).
fn stack_of(file: &Path) -> anyhow::Result<String> {
    if bundle::is_bundle(file) {
        return Ok(rkstack::image::bundle::read_index(file)?.stack);
    }
    update::stack_of(file)
        .ok_or_else(|| anyhow::anyhow!("{}: not a valid stack file", file.display()))
}

/// The running generation of `stack`, asked of its supervisor.
fn current(g: &Global, stack: &str) -> Option<u64> {
    let mut out = None;
    let code = with_client(g, Some(stack), |c| {
        let v = c.call("GET", "/v1/generations", None)?;
        out = v.as_array().and_then(|list| {
            list.iter()
                .rev()
                .find(|x| {
                    matches!(
                        x["outcome"]["state"].as_str(),
                        Some("active" | "committed" | "failed")
                    )
                })
                .and_then(|x| x["number"].as_u64())
        });
        Ok(ExitCode::SUCCESS)
    });
    (code == ExitCode::SUCCESS).then_some(out).flatten()
}

fn install(g: &Global, files: &Path) -> anyhow::Result<ExitCode> {
    let file = payload(files)?;
    let stack = stack_of(&file)?;
    let tmp = files.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    if let Some(n) = current(g, &stack) {
        std::fs::write(tmp.join(PREVIOUS), format!("{stack} {n}\n"))?;
    }
    // Mender's environment may name another folder of trusted keys.
    let trusted = std::env::var_os("RKSTACK_TRUSTED_KEYS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/rkstack/trusted.d"));
    let a = update::ApplyArgs {
        timeout: None,
        stable: None,
        no_rollback: false,
    };
    let code = update::apply_file(g, &file, &trusted, &a)?;
    if code != ExitCode::SUCCESS {
        // The gate brought the old generation back already (or nothing
        // changed): ArtifactRollback has nothing left to do.
        std::fs::write(tmp.join(ROLLED_BACK), "")?;
    }
    Ok(code)
}

fn rollback(g: &Global, files: &Path) -> anyhow::Result<ExitCode> {
    if files.join("tmp").join(ROLLED_BACK).exists() {
        return Ok(ExitCode::SUCCESS);
    }
    let noted = std::fs::read_to_string(files.join("tmp").join(PREVIOUS)).unwrap_or_default();
    let mut words = noted.split_whitespace();
    let (Some(stack), Some(n)) = (
        words.next(),
        words.next().and_then(|n| n.parse::<u64>().ok()),
    ) else {
        // Installed nothing (it failed before it noted anything).
        return Ok(ExitCode::SUCCESS);
    };
    if current(g, stack) == Some(n) {
        return Ok(ExitCode::SUCCESS);
    }
    let code = with_client(g, Some(stack), |c| update::rollback(c, Some(n)));
    if code != ExitCode::SUCCESS {
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    Ok(code)
}
