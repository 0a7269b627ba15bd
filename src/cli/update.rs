//! `apply`, `history` and `rollback`: new versions of a running stack
//! behind a health gate, and its generations.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use rkstack::api::client::{Client, ClientError};
use rkstack::host::generations::Generation;

use super::ctl::percent_encode;

/// How `apply` is gated (`None`: the file's `[update]` says).
pub struct ApplyArgs<'a> {
    pub timeout: Option<&'a str>,
    pub stable: Option<&'a str>,
    pub no_rollback: bool,
}

/// The stack a file names (to find its supervisor), if it parses.
pub fn stack_of(file: &Path) -> Option<String> {
    rkstack::config::load(file).ok().map(|s| s.name.to_string())
}

/// `/v1/apply` with the gate's options.
fn apply_path(a: &ApplyArgs<'_>) -> String {
    let mut q = Vec::new();
    if let Some(t) = a.timeout {
        q.push(format!("timeout={}", percent_encode(t)));
    }
    if let Some(s) = a.stable {
        q.push(format!("stable={}", percent_encode(s)));
    }
    if a.no_rollback {
        q.push("rollback=false".to_string());
    }
    if q.is_empty() {
        "/v1/apply".to_string()
    } else {
        format!("/v1/apply?{}", q.join("&"))
    }
}

/// `rkstack apply FILE`: a stack file, or a bundle — taken into this
/// machine's store first (checked against the keys in `trusted`), or,
/// with `--host`, streamed to the remote supervisor, which checks it.
pub fn apply_file(
    g: &super::Global,
    file: &Path,
    trusted: &Path,
    a: &ApplyArgs<'_>,
) -> anyhow::Result<ExitCode> {
    use super::{EXIT_FAILED, bundle, with_client};
    if g.host.is_some() && bundle::is_bundle(file) {
        // A remote device: the bundle goes to it, checked there.
        let stack = rkstack::image::bundle::read_index(file)?.stack;
        return Ok(with_client(g, Some(&stack), |c| apply_upload(c, file, a)));
    }
    let (stack, text) = if bundle::is_bundle(file) {
        let (stack, text) = bundle::receive(&g.data_dir, trusted, file)?;
        (Some(stack), text)
    } else {
        let text = match rkstack::config::read_text(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rkstack: {e}");
                return Ok(ExitCode::from(EXIT_FAILED));
            }
        };
        (stack_of(file), text)
    };
    Ok(with_client(g, stack.as_deref(), |c| {
        apply(c, file, text, a)
    }))
}

/// Applies `text` (from `what`: a file, or a bundle already taken in).
pub fn apply(
    client: &Client,
    what: &Path,
    text: String,
    a: &ApplyArgs<'_>,
) -> Result<ExitCode, ClientError> {
    eprintln!(
        "rkstack: applying {}; waiting for its containers to be ready",
        what.display()
    );
    let v = client.call_with(
        "POST",
        &apply_path(a),
        "application/toml",
        text.into_bytes(),
    )?;
    committed(&v)
}

/// Uploads the bundle `file` to a (remote) supervisor, which takes it in
/// against its own trusted keys and applies it.
pub fn apply_upload(
    client: &Client,
    file: &Path,
    a: &ApplyArgs<'_>,
) -> Result<ExitCode, ClientError> {
    eprintln!(
        "rkstack: sending {}; the supervisor checks it, then waits for its containers to be ready",
        file.display()
    );
    let v = client.upload(&apply_path(a), rkstack::image::bundle::CONTENT_TYPE, file)?;
    committed(&v)
}

fn committed(v: &serde_json::Value) -> Result<ExitCode, ClientError> {
    writeln!(
        std::io::stdout(),
        "generation {}: {}",
        v["generation"],
        v["outcome"].as_str().unwrap_or_default()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn history(client: &Client, json: bool) -> Result<ExitCode, ClientError> {
    let v = client.call("GET", "/v1/generations", None)?;
    let list: Vec<Generation> = serde_json::from_value(v)
        .map_err(|e| ClientError::Http(format!("unexpected answer: {e}")))?;
    print_history(&list, json)?;
    Ok(ExitCode::SUCCESS)
}

/// The generations as a table (the running one marked `*`), or JSON lines.
pub fn print_history(list: &[Generation], json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        for g in list {
            writeln!(out, "{}", serde_json::to_string(g).unwrap_or_default())?;
        }
        return Ok(());
    }
    let current = list.iter().rev().find(|g| g.applied()).map(|g| g.number);
    let mut rows = vec![vec![
        "GEN".to_string(),
        "CREATED".into(),
        "REASON".into(),
        "OUTCOME".into(),
    ]];
    for g in list {
        let mark = if Some(g.number) == current { "*" } else { "" };
        rows.push(vec![
            format!("{}{mark}", g.number),
            g.created.clone(),
            g.reason.clone(),
            g.outcome.to_string(),
        ]);
    }
    write!(out, "{}", super::output::table(&rows))
}

pub fn rollback(client: &Client, to: Option<u64>) -> Result<ExitCode, ClientError> {
    let path = match to {
        Some(n) => format!("/v1/rollback?generation={n}"),
        None => "/v1/rollback".to_string(),
    };
    let v = client.call("POST", &path, None)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "generation {}: back to generation {}",
        v["generation"], v["to"]
    )?;
    write!(out, "{}", v["plan"].as_str().unwrap_or_default())?;
    Ok(ExitCode::SUCCESS)
}
