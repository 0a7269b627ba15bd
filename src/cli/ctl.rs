//! The commands that ask a running supervisor through its API: ps,
//! inspect, diff, stop/start/restart, reload, plan, down, logs, events;
//! and `ls` of the stacks running here.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use rkstack::api::client::{Client, ClientError, Lines};
use rkstack::api::{ContainerInfo, ErrorKind};
use rkstack::control::{ContainerState, Exit};

use super::output::{human_bytes, human_duration, table};
use super::{EXIT_FAILED, EXIT_INVALID, Global, with_client};

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

pub fn ps_rows(list: &[ContainerInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "NAME", "STATE", "PID", "RESTARTS", "HEALTH", "UPTIME", "IP", "MEMORY", "IMAGE",
            "PORTS",
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
            // New columns go last: scripts that read the others by position
            // keep working.
            if c.image.is_empty() {
                dash()
            } else {
                c.image.clone()
            },
            if c.ports.is_empty() {
                dash()
            } else {
                c.ports.join(",")
            },
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
    // Each container as it stops, as compose says them: the supervisor's
    // events after the request, until it has gone (its stream ends then).
    if let Some(after) = v["events_after"].as_u64() {
        let mut lines = Lines::default();
        let _ = client.stream(
            "GET",
            &format!("/v1/events?since={after}"),
            None,
            &mut |chunk| {
                for line in lines.feed(chunk) {
                    let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if e["kind"] == "stopped"
                        && let Some(name) = e["container"].as_str()
                    {
                        let _ = writeln!(std::io::stderr(), "{name}: stopped");
                    }
                }
                true
            },
        );
    }
    // Wait until the supervisor has stopped everything and exited.
    if let Some(pid) = pid {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::os::fd::{AsFd, FromRawFd, OwnedFd};
        // SAFETY: a plain syscall (nix has no pidfd_open).
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if raw >= 0 {
            // SAFETY: a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            // Readable when the process has ended.
            let _ = nix::poll::poll(&mut fds, PollTimeout::NONE);
        }
    }
    writeln!(std::io::stdout(), "stack stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// `rkstack logs [NAME...]`: one container's output as it was written, or
/// several (all of the stack's when none is named) with each line
/// prefixed by its container's name, aligned (`web | ...`), as compose
/// does. Their lines come in the order they arrive.
pub fn logs(
    client: &Client,
    names: &[String],
    follow: bool,
    tail: Option<usize>,
    since: Option<&str>,
    timestamps: bool,
) -> Result<ExitCode, ClientError> {
    let names: Vec<String> = if names.is_empty() {
        let v = client.call("GET", "/v1/containers", None)?;
        let list: Vec<ContainerInfo> = serde_json::from_value(v)
            .map_err(|e| ClientError::Http(format!("unexpected answer: {e}")))?;
        list.into_iter().map(|c| c.name).collect()
    } else {
        names.to_vec()
    };
    let mut q = Vec::new();
    if follow {
        q.push("follow=1".to_string());
    }
    if let Some(n) = tail {
        q.push(format!("tail={n}"));
    }
    if let Some(t) = since {
        q.push(format!("since={t}"));
    }
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!("/v1/containers/{n}/logs?{}", q.join("&")))
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let prefixes: Vec<String> = if names.len() > 1 {
        names.iter().map(|n| format!("{n:<width$} | ")).collect()
    } else {
        vec![String::new(); names.len()]
    };
    let mut lines: Vec<Lines> = names.iter().map(|_| Lines::default()).collect();
    let mut failed = None;
    let mut each = |i: usize, chunk: &[u8]| {
        for record in lines[i].feed(chunk) {
            let r = super::logs::print_record(&prefixes[i], &record, timestamps);
            if let Err(e) = r {
                failed = Some(e);
                return false;
            }
        }
        true
    };
    // One container's log is read on its own (its request's errors are
    // its own); several at once, as their lines come.
    let streamed = match paths.as_slice() {
        [one] => client.stream("GET", one, None, &mut |chunk| each(0, chunk)),
        many if follow => client.stream_many(many, &mut each),
        many => many
            .iter()
            .enumerate()
            .try_for_each(|(i, p)| client.stream("GET", p, None, &mut |chunk| each(i, chunk))),
    };
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

/// `rkstack ls`: the stacks running on this machine.
pub fn ls(g: &Global, json: bool) -> anyhow::Result<ExitCode> {
    let running = rkstack::host::stacks::running(&g.state_dir);
    let mut out = std::io::stdout().lock();
    if json {
        let v: Vec<serde_json::Value> = running
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "pid": r.pid,
                    "socket": g.state_dir.join(format!("{}.sock", r.name)),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let mut rows = vec![vec!["NAME".to_string(), "PID".into(), "SOCKET".into()]];
        for r in &running {
            rows.push(vec![
                r.name.clone(),
                r.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                g.state_dir
                    .join(format!("{}.sock", r.name))
                    .display()
                    .to_string(),
            ]);
        }
        write!(out, "{}", super::output::table(&rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `rkstack down`: stops the stack; with nothing running, exit 0.
pub fn down_stack(g: &Global) -> anyhow::Result<ExitCode> {
    // Nothing running is nothing to stop: exit 0, as compose does.
    if g.host.is_none() && g.socket.is_none() {
        let running = rkstack::host::stacks::running(&g.state_dir);
        let none = match g.stack.as_deref() {
            Some(name) => !running.iter().any(|r| r.name == name),
            None => running.is_empty(),
        };
        if none {
            eprintln!(
                "rkstack: {} running; nothing to stop",
                g.stack
                    .as_deref()
                    .map_or("no stack is".to_string(), |n| format!("stack {n} is not"))
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(with_client(g, None, down))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_is_an_aligned_table() {
        let c = ContainerInfo {
            name: "web".into(),
            image: "dir:/srv/web".into(),
            ports: vec!["8080:80/tcp".into()],
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
            "NAME   STATE     PID   RESTARTS   HEALTH    UPTIME   IP         MEMORY    IMAGE          PORTS\n\
             web    running   42    1          healthy   2m5s     10.0.0.2   3.0 MiB   dir:/srv/web   8080:80/tcp\n"
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
