//! The commands that talk to a running supervisor through its API: output
//! and exit codes only.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use rkstack::api::client::{Client, ClientError, Lines};
use rkstack::api::{ContainerInfo, ErrorKind};
use rkstack::control::{ContainerState, Exit};

use super::{EXIT_FAILED, EXIT_INVALID};

/// How a failed request ends the command: its message, and exit 2 for an
/// invalid stack file, 1 otherwise.
pub fn fail(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Api(a) if !a.problems.is_empty() => {
            eprintln!("rkstack: {}", a.error);
            for p in &a.problems {
                eprintln!("{p}");
            }
        }
        other => eprintln!("rkstack: {other}"),
    }
    match e {
        ClientError::Api(a) if a.kind == ErrorKind::InvalidStack => ExitCode::from(EXIT_INVALID),
        // `exec` of a command that is not there, or cannot be run: the
        // shell's (and docker's) 127 and 126.
        ClientError::Api(a) if a.kind == ErrorKind::CommandNotFound => ExitCode::from(127),
        ClientError::Api(a) if a.kind == ErrorKind::CommandNotExecutable => ExitCode::from(126),
        _ => ExitCode::from(EXIT_FAILED),
    }
}

pub fn connect(
    state_dir: &Path,
    stack: Option<&str>,
    socket: Option<&Path>,
) -> Result<Client, ClientError> {
    Client::new(rkstack::api::client::resolve(state_dir, stack, socket)?)
}

/// A size as every command prints one: `512 B`, `1.0 KiB`, `3.4 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Aligned columns, like `docker compose ps`.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn ps_rows(list: &[ContainerInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "NAME", "STATE", "PID", "RESTARTS", "HEALTH", "UPTIME", "IP", "MEMORY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let dash = || "-".to_string();
    for c in list {
        let state = if c.user_stopped && c.state == ContainerState::Stopped {
            "stopped (by user)".to_string()
        } else {
            match why(c) {
                Some(w) => format!("{} ({w})", c.state),
                None => c.state.to_string(),
            }
        };
        rows.push(vec![
            c.name.clone(),
            state,
            c.pid.map_or_else(dash, |p| p.to_string()),
            c.restarts.to_string(),
            c.health.map_or_else(dash, |h| h.to_string()),
            c.uptime_seconds.map_or_else(dash, human_duration),
            if c.ips.is_empty() {
                dash()
            } else {
                c.ips
                    .values()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            c.memory_bytes.map_or_else(dash, human_bytes),
        ]);
    }
    rows
}

/// Why a container is not running, in a few words: how its last run
/// ended (`oom`, `exit 2`, `signal 9`) or why it could not start.
fn why(c: &ContainerInfo) -> Option<String> {
    if !c.state.ended_badly() {
        return None;
    }
    let ended = c.last_exit.map(Exit::short);
    let error = c
        .error
        .as_deref()
        .filter(|e| e.starts_with("failed to start"));
    match (error, ended) {
        (Some(e), _) => {
            const MAX: usize = 48;
            let short: String = e.chars().take(MAX).collect();
            Some(if e.chars().count() > MAX {
                format!("{short}…")
            } else {
                short
            })
        }
        (None, Some(ended)) => Some(ended),
        (None, None) => None,
    }
}

pub fn ps(client: &Client, json: bool, quiet: bool) -> Result<ExitCode, ClientError> {
    let v = client.call("GET", "/v1/containers", None)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for c in v.as_array().into_iter().flatten() {
            if let Some(n) = c["name"].as_str() {
                writeln!(out, "{n}")?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )?;
    } else {
        let list: Vec<ContainerInfo> = serde_json::from_value(v)
            .map_err(|e| ClientError::Http(format!("unexpected answer: {e}")))?;
        write!(out, "{}", table(&ps_rows(&list)))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(client: &Client, name: &str) -> Result<ExitCode, ClientError> {
    let v = client.call("GET", &format!("/v1/containers/{name}"), None)?;
    writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn diff(client: &Client, name: &str) -> Result<ExitCode, ClientError> {
    let v = client.call("GET", &format!("/v1/containers/{name}/diff"), None)?;
    let mut out = std::io::stdout().lock();
    for c in v.as_array().into_iter().flatten() {
        writeln!(
            out,
            "{} {}",
            c["kind"].as_str().unwrap_or("?"),
            c["path"].as_str().unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `rkstack images`: read from the store itself (no supervisor needed).
pub fn images(data_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let root = data_dir.join("images");
    let refs = if root.is_dir() {
        rkstack::image::store::Store::open(&root)?.references()
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&refs)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        ["REFERENCE", "DIGEST", "SIZE", "IMPORTED"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &refs {
        rows.push(vec![
            r.reference.clone(),
            r.manifest.chars().take(19).collect(),
            human_bytes(r.size),
            r.imported.clone(),
        ]);
    }
    write!(out, "{}", table(&rows))?;
    Ok(ExitCode::SUCCESS)
}

/// `rkstack pull`: fetches an image into the store.
pub fn pull(
    data_dir: &Path,
    reference: &str,
    insecure: &[String],
    creds: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(r) = reference.strip_prefix("docker://") else {
        eprintln!("rkstack: {reference}: expected docker://[REGISTRY/]REPO[:TAG|@DIGEST]");
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    #[cfg(feature = "remote")]
    {
        let root = data_dir.join("images");
        let store = rkstack::image::store::Store::open(&root)?;
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        // On a terminal one line per blob, redrawn; otherwise a line per blob pulled.
        let progress = move |p: &rkstack::image::registry::Progress| {
            let short: String = p.digest.hex().chars().take(12).collect();
            let total = p
                .total
                .map(|t| format!(" of {}", human_bytes(t)))
                .unwrap_or_default();
            if terminal {
                eprint!(
                    "\r{short}: {}{total}{}",
                    human_bytes(p.done),
                    if p.finished { "\n" } else { "" }
                );
            } else if p.finished {
                eprintln!("pulled {} ({})", p.digest, human_bytes(p.done));
            }
        };
        match rkstack::image::registry::pull_with(
            &store,
            r,
            insecure,
            creds,
            Some(Box::new(progress)),
        ) {
            Ok(image) => {
                let r = rkstack::container::images::remember(&store, reference, &image, None)
                    .map_err(anyhow::Error::msg)?;
                writeln!(
                    std::io::stdout(),
                    "{reference}: {} ({})",
                    r.manifest,
                    human_bytes(r.size)
                )?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rkstack: {reference}: {e}");
                Ok(ExitCode::from(EXIT_FAILED))
            }
        }
    }
    #[cfg(not(feature = "remote"))]
    {
        let _ = (data_dir, r, insecure, creds);
        eprintln!("rkstack: this build cannot pull images (the `remote` feature)");
        Ok(ExitCode::from(EXIT_FAILED))
    }
}

/// `rkstack rmi`: forgets references no running stack declares, then
/// collects what no reference uses.
pub fn rmi(state_dir: &Path, data_dir: &Path, refs: &[String]) -> anyhow::Result<ExitCode> {
    let root = data_dir.join("images");
    if !root.is_dir() {
        eprintln!("rkstack: the store is empty ({})", root.display());
        return Ok(ExitCode::from(EXIT_FAILED));
    }
    let store = rkstack::image::store::Store::open(&root)?;
    let used = rkstack::host::stacks::images_in_use(state_dir);
    let mut failed = false;
    for r in refs {
        if let Some((stack, _)) = used.iter().find(|(_, i)| i == r) {
            eprintln!("rkstack: {r} is used by stack {stack}, which is running; not removed");
            failed = true;
        } else if store.forget(r) {
            writeln!(std::io::stdout(), "removed {r}")?;
        } else {
            eprintln!("rkstack: no image {r} in the store (see rkstack images)");
            failed = true;
        }
    }
    let (n, bytes) = store.collect();
    if n > 0 {
        writeln!(
            std::io::stdout(),
            "freed {} ({n} blobs and layers no image uses)",
            human_bytes(bytes)
        )?;
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn action(client: &Client, name: &str, what: &str) -> Result<ExitCode, ClientError> {
    let v = client.call("POST", &format!("/v1/containers/{name}/{what}"), None)?;
    let info: ContainerInfo = serde_json::from_value(v)
        .map_err(|e| ClientError::Http(format!("unexpected answer: {e}")))?;
    let pid = info.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    writeln!(std::io::stdout(), "{name}: {}{pid}", info.state)?;
    Ok(ExitCode::SUCCESS)
}

pub fn reload(client: &Client) -> Result<ExitCode, ClientError> {
    let v = client.call("POST", "/v1/reload", None)?;
    write!(
        std::io::stdout(),
        "{}",
        v["plan"].as_str().unwrap_or_default()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn plan(client: &Client, file: &Path, json: bool) -> Result<ExitCode, ClientError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let q = percent_encode(&file.display().to_string());
    let v = client.call("GET", &format!("/v1/plan?file={q}"), None)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v["ops"]).unwrap_or_default()
        )?;
    } else {
        write!(out, "{}", v["plan"].as_str().unwrap_or_default())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Query-string encoding of a value (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn down(client: &Client) -> Result<ExitCode, ClientError> {
    let v = client.call("POST", "/v1/down", None)?;
    let pid = v["pid"].as_i64().and_then(|p| i32::try_from(p).ok());
    // Wait until the supervisor has stopped everything and exited.
    if let Some(pid) = pid {
        // SAFETY: plain syscall; the descriptor is closed below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd >= 0 {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; waits for the process to end.
            unsafe {
                libc::poll(&mut p, 1, -1);
                libc::close(fd);
            }
        }
    }
    writeln!(std::io::stdout(), "stack stopped")?;
    Ok(ExitCode::SUCCESS)
}

pub fn logs(
    client: &Client,
    name: &str,
    follow: bool,
    tail: Option<usize>,
    timestamps: bool,
) -> Result<ExitCode, ClientError> {
    let mut q = Vec::new();
    if follow {
        q.push("follow=1".to_string());
    }
    if let Some(n) = tail {
        q.push(format!("tail={n}"));
    }
    let path = format!("/v1/containers/{name}/logs?{}", q.join("&"));
    let mut lines = Lines::default();
    let mut failed = None;
    let streamed = client.stream("GET", &path, None, &mut |chunk| {
        for record in lines.feed(chunk) {
            let r = if timestamps {
                writeln!(std::io::stdout(), "{record}")
            } else {
                // TIMESTAMP STREAM text
                let mut parts = record.splitn(3, ' ');
                let (_, stream, text) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
                if stream == Some("stderr") {
                    writeln!(std::io::stderr(), "{text}")
                } else {
                    writeln!(std::io::stdout(), "{text}")
                }
            };
            if let Err(e) = r {
                failed = Some(e);
                return false;
            }
        }
        true
    });
    match streamed {
        // Following, the end of the stack is the end of its log: the
        // supervisor closed the stream as it stopped.
        Err(ClientError::Http(_)) if follow => {}
        other => other?,
    }
    match failed {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn events(client: &Client, json: bool) -> Result<ExitCode, ClientError> {
    let mut lines = Lines::default();
    let mut ok = true;
    client.stream("GET", "/v1/events", None, &mut |chunk| {
        for line in lines.feed(chunk) {
            let text = if json {
                line
            } else {
                match serde_json::from_str::<rkstack::supervisor::events::Event>(&line) {
                    Ok(e) => format!(
                        "{}  {:<12} {}",
                        e.time,
                        e.container.as_deref().unwrap_or("-"),
                        e.message
                    ),
                    Err(_) => line,
                }
            };
            if writeln!(std::io::stdout(), "{text}").is_err() {
                ok = false;
                return false;
            }
        }
        true
    })?;
    let _ = ok;
    Ok(ExitCode::SUCCESS)
}

/// The terminal in raw mode while it lives (restored on drop).
struct Raw(Option<nix::sys::termios::Termios>);

impl Raw {
    fn enter() -> Raw {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Raw(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Raw(Some(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// The size of the terminal on stdout: (rows, cols).
fn window() -> (u16, u16) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_row > 0 {
        (ws.ws_row, ws.ws_col)
    } else {
        (24, 80)
    }
}

pub fn exec(client: &Client, name: &str, command: &[String]) -> Result<ExitCode, ClientError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        // Interactive: a terminal in the container, this one in raw mode.
        let (rows, cols) = window();
        // A terminal program needs to know the terminal: yours, as docker
        // and podman pass it on with -t.
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let body = serde_json::json!({
            "command": command,
            "rows": rows,
            "cols": cols,
            "env": [format!("TERM={term}")],
        });
        let raw = Raw::enter();
        let code = client.exec_tty(name, body);
        drop(raw);
        return code.map(|c| ExitCode::from(u8::try_from(c).unwrap_or(EXIT_FAILED)));
    }
    // Input from a pipe or file goes to the process.
    let stdin = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s)
    };
    let body = serde_json::json!({ "command": command, "stdin": stdin });
    let mut lines = Lines::default();
    let mut code = None;
    client.stream(
        "POST",
        &format!("/v1/containers/{name}/exec"),
        Some(body),
        &mut |chunk| {
            for line in lines.feed(chunk) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(c) = v["exit"].as_i64() {
                    code = Some(c);
                    continue;
                }
                let data = v["data"].as_str().unwrap_or_default();
                let _ = if v["stream"] == "stderr" {
                    std::io::stderr().write_all(data.as_bytes())
                } else {
                    let mut o = std::io::stdout();
                    o.write_all(data.as_bytes()).and_then(|_| o.flush())
                };
            }
            true
        },
    )?;
    Ok(match code {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(EXIT_FAILED)),
        None => {
            eprintln!("rkstack: the process's exit status did not arrive");
            ExitCode::from(EXIT_FAILED)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_is_an_aligned_table() {
        let c = ContainerInfo {
            name: "web".into(),
            state: ContainerState::Running,
            pid: Some(42),
            restarts: 1,
            health: Some(rkstack::control::Health::Healthy),
            uptime_seconds: Some(125),
            ips: [("back".to_string(), "10.0.0.2".parse().unwrap())].into(),
            memory_bytes: Some(3 << 20),
            cpu_seconds: None,
            pids: None,
            last_exit: None,
            error: None,
            user_stopped: false,
        };
        let text = table(&ps_rows(std::slice::from_ref(&c)));
        assert_eq!(
            text,
            "NAME   STATE     PID   RESTARTS   HEALTH    UPTIME   IP         MEMORY\n\
             web    running   42    1          healthy   2m5s     10.0.0.2   3.0 MiB\n"
        );
        // Why one is down, in the STATE column.
        let down = |state: ContainerState, last: Option<Exit>, error: Option<&str>| {
            let d = ContainerInfo {
                state,
                pid: None,
                last_exit: last,
                error: error.map(String::from),
                ..c.clone()
            };
            ps_rows(&[d])[1][1].clone()
        };
        assert_eq!(
            down(ContainerState::Exited, Some(Exit::Oom), None),
            "exited (oom)"
        );
        assert_eq!(
            down(ContainerState::Exited, Some(Exit::Code(2)), None),
            "exited (exit 2)"
        );
        assert_eq!(
            down(
                ContainerState::Backoff,
                Some(Exit::Code(127)),
                Some("failed to start: rootfs /x: not found")
            ),
            "backoff (failed to start: rootfs /x: not found)"
        );
        assert_eq!(percent_encode("/a b/c.toml"), "/a%20b/c.toml");
    }
}
