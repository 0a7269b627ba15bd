//! `up -d`: the supervisor forked into its own session, and the command
//! that started it waiting (at most `--wait-timeout`) to hear that the
//! stack is up, saying meanwhile what is still pending.

use std::process::ExitCode;

use super::EXIT_FAILED;
use rkstack::control::{ContainerInfo, ContainerState, Exit, Health};

pub enum Detached {
    Parent(ExitCode),
    Child(rkstack::supervisor::up::ReadyPipe),
}

/// `up -d`: forks the supervisor into its own session (its output going to
/// `log`); the parent waits to hear that the stack is up, or why not.
pub fn detach_supervisor(
    log: &std::path::Path,
    socket: &std::path::Path,
    wait: std::time::Duration,
) -> anyhow::Result<Detached> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both fds are new and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: still single-threaded here; the child carries on as the supervisor.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error().into()),
        0 => {
            drop(r);
            // SAFETY: detaching from the terminal; stdio to the log.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                libc::dup2(null, 0);
                libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&out), 1);
                libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&out), 2);
            }
            Ok(Detached::Child(rkstack::supervisor::up::ReadyPipe(w)))
        }
        pid => {
            drop(w);
            if wait.is_zero() {
                println!(
                    "supervisor started (pid {pid}, log {}); not waiting for the stack",
                    log.display()
                );
                return Ok(Detached::Parent(ExitCode::SUCCESS));
            }
            if !wait_readable(&r, wait, socket) {
                eprintln!(
                    "rkstack: the stack was not up within {} s{}; the supervisor keeps running (pid {pid}, log {}); `rkstack down` stops it",
                    wait.as_secs(),
                    pending(socket)
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default(),
                    log.display()
                );
                return Ok(Detached::Parent(ExitCode::from(EXIT_FAILED)));
            }
            let mut msg = String::new();
            // One message, written at once (far below PIPE_BUF), or none
            // when the supervisor ends without a word. Not "until EOF": the
            // supervisor keeps a copy of the pipe while it runs.
            let mut buf = [0u8; 4096];
            let mut f = std::fs::File::from(r);
            let n = loop {
                match f.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.unwrap_or(0),
                }
            };
            msg.push_str(&String::from_utf8_lossy(&buf[..n]));
            if msg == "ok" {
                println!("stack up (supervisor pid {pid}, log {})", log.display());
                Ok(Detached::Parent(ExitCode::SUCCESS))
            } else if let Some(e) = msg.strip_prefix(rkstack::supervisor::up::READY_EXITED) {
                eprintln!("rkstack: {e}");
                Ok(Detached::Parent(ExitCode::from(EXIT_FAILED)))
            } else if msg.is_empty() {
                eprintln!(
                    "rkstack: the supervisor exited before the stack was up; see {}",
                    log.display()
                );
                Ok(Detached::Parent(ExitCode::from(EXIT_FAILED)))
            } else {
                eprintln!(
                    "rkstack: {msg} (the supervisor keeps running as pid {pid}; log {})",
                    log.display()
                );
                Ok(Detached::Parent(ExitCode::from(EXIT_FAILED)))
            }
        }
    }
}

/// Waits until `r` is readable, at most `wait`; every 5 s says on stderr
/// which containers are still pending and why.
fn wait_readable(
    r: &std::os::fd::OwnedFd,
    wait: std::time::Duration,
    socket: &std::path::Path,
) -> bool {
    use std::os::fd::AsFd;
    let until = std::time::Instant::now() + wait;
    let mut next = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = std::time::Instant::now();
        if now >= until {
            return false;
        }
        let slice = until.min(next).saturating_duration_since(now);
        let timeout =
            nix::poll::PollTimeout::try_from(slice.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(nix::poll::PollTimeout::MAX);
        let mut fds = [nix::poll::PollFd::new(
            r.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, timeout).unwrap_or(0) > 0 {
            return true;
        }
        if std::time::Instant::now() >= next {
            if let Some(p) = pending(socket) {
                eprintln!("rkstack: waiting for {p}");
            }
            next += std::time::Duration::from_secs(5);
        }
    }
}

/// The containers not up yet, with why, asked of the supervisor's API.
fn pending(socket: &std::path::Path) -> Option<String> {
    let client = rkstack::api::client::Client::new(socket.to_path_buf()).ok()?;
    let list = client.call("GET", "/v1/containers", None).ok()?;
    let list: Vec<ContainerInfo> = serde_json::from_value(list).ok()?;
    let items: Vec<String> = list
        .iter()
        .filter_map(|c| {
            let up = (c.state == ContainerState::Running
                && matches!(c.health, None | Some(Health::Healthy)))
                || (c.state == ContainerState::Exited && c.last_exit == Some(Exit::Code(0)));
            if up {
                return None;
            }
            let mut why = c.state.to_string();
            if let Some(h) = c.health {
                why.push_str(&format!(", {h}"));
            }
            if let Some(e) = &c.error {
                why.push_str(&format!(": {e}"));
            }
            Some(format!("{} ({why})", c.name))
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}
