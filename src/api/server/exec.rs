//! `POST /v1/containers/{name}/exec`: a process in a running container,
//! its output streamed as NDJSON, or (with `Upgrade: rkstack-exec`) an
//! interactive session on a terminal.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecBody {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    /// Given to the process on its stdin (then closed); none: /dev/null-like EOF.
    #[serde(default)]
    stdin: Option<String>,
    /// The terminal's size, for an interactive session.
    #[serde(default)]
    rows: Option<u16>,
    #[serde(default)]
    cols: Option<u16>,
    /// The client's input comes in frames (input, window size); see
    /// [`crate::api::tty`].
    #[serde(default)]
    frames: bool,
}

/// An interactive session on a pseudo-terminal (see [`super::tty`]).
pub(super) async fn exec_tty(
    api: Api,
    name: String,
    body: ExecBody,
    upgrade: hyper::upgrade::OnUpgrade,
) -> Response {
    // The terminal is made inside the container (see `sandbox::pty`): the
    // process entering it sends its master back on this socket.
    let made = (|| {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let null = || std::fs::OpenOptions::new().write(true).open("/dev/null");
        Ok::<_, std::io::Error>((
            ours,
            [OwnedFd::from(theirs), null()?.into(), null()?.into()],
        ))
    })();
    let (ours, stdio) = match made {
        Ok(p) => p,
        Err(e) => return ControlError::internal(format!("terminal: {e}")).into_response(),
    };
    let (exit_tx, exit_rx) = oneshot::channel();
    let framed = body.frames;
    let cmd = Command::Exec(Exec {
        container: name,
        command: body.command,
        env: body.env,
        stdio,
        terminal: Some((body.rows.unwrap_or(24), body.cols.unwrap_or(80))),
        exit: exit_tx,
    });
    if let Err(e) = ask(&api, cmd).await {
        return e.into_response();
    }
    // The process has exec'd: its terminal was sent before.
    let master = match crate::sandbox::pty::receive_master(std::os::fd::AsFd::as_fd(&ours)) {
        Ok(m) => m,
        Err(e) => return ControlError::internal(format!("terminal: {e}")).into_response(),
    };
    drop(ours);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => {
                crate::api::tty::serve(hyper_util::rt::TokioIo::new(io), master, exit_rx, framed)
                    .await
            }
            Err(e) => tracing::warn!("exec: the connection was not upgraded: {e}"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, crate::api::tty::PROTOCOL),
        ],
    )
        .into_response()
}

pub(super) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// A wait status as a shell reports it: the exit code, or 128 + signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

pub(super) async fn exec(
    State(api): State<Api>,
    Path(name): Path<String>,
    mut req: HttpRequest,
) -> Response {
    let interactive = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(crate::api::tty::PROTOCOL));
    let upgrade = interactive.then(|| hyper::upgrade::on(&mut req));
    let bytes = match axum::body::to_bytes(req.into_body(), 1 << 20).await {
        Ok(b) => b,
        Err(e) => return ControlError::bad_request(format!("body: {e}")).into_response(),
    };
    let body: ExecBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return ControlError::bad_request(format!("body: {e}")).into_response(),
    };
    if body.command.is_empty() {
        return ControlError::bad_request("command must not be empty").into_response();
    }
    if let Some(upgrade) = upgrade {
        return exec_tty(api, name, body, upgrade).await;
    }
    let pipes = (|| Ok::<_, std::io::Error>((pipe()?, pipe()?, pipe()?)))();
    let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = match pipes {
        Ok(p) => p,
        Err(e) => return ControlError::internal(format!("pipes: {e}")).into_response(),
    };
    let (exit_tx, exit_rx) = oneshot::channel();
    let cmd = Command::Exec(Exec {
        container: name,
        command: body.command,
        env: body.env,
        stdio: [in_r, out_w, err_w],
        terminal: None,
        exit: exit_tx,
    });
    if let Err(e) = ask(&api, cmd).await {
        return e.into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let frame = |v: serde_json::Value| {
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Bytes::from(b)
    };
    // stdin: written, then closed.
    let input = body.stdin.unwrap_or_default();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        if let Ok(mut w) = tokio::net::unix::pipe::Sender::from_owned_fd(in_w) {
            let _ = w.write_all(input.as_bytes()).await;
        }
    });
    let mut readers = Vec::new();
    for (stream, fd) in [("stdout", out_r), ("stderr", err_r)] {
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let Ok(mut r) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
                return;
            };
            let mut buf = vec![0u8; 16384];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let data = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let v = serde_json::json!({ "stream": stream, "data": data });
                        if tx.send(frame(v)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    tokio::spawn(async move {
        for r in readers {
            let _ = r.await;
        }
        let code = exit_rx.await.map(exit_code).unwrap_or(255);
        let _ = tx.send(frame(serde_json::json!({ "exit": code }))).await;
    });
    ndjson_or_text("application/x-ndjson", rx)
}
