//! Interactive `exec` with a terminal. The request
//! `POST /v1/containers/{name}/exec` with `Connection: Upgrade` and
//! `Upgrade: rkstack-exec` (body: the usual JSON, plus `rows`/`cols`) is
//! answered `101 Switching Protocols`; then the connection carries the
//! session: the client sends raw input bytes, the server sends frames of
//! `[kind: u8][length: u32 big-endian][payload]` — kind 1 is terminal
//! output, kind 3 the exit code (`i32` big-endian, 128+N for signal N),
//! the last frame. The process gets a pseudo-terminal as stdin, stdout and
//! stderr, and it as its controlling terminal.

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` protocol name.
pub const PROTOCOL: &str = "rkstack-exec";
pub const OUTPUT: u8 = 1;
pub const EXIT: u8 = 3;

/// One frame's bytes.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one frame; `None` at the end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > 1 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// A pseudo-terminal: the master, and the slave for the process.
pub fn open(rows: u16, cols: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let size = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).map_err(std::io::Error::from)?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(std::io::Error::from)?;
    }
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    Ok((pty.master, pty.slave))
}

/// Carries a session between the upgraded connection `io` and the
/// terminal `master` until the process's output ends, then sends its exit
/// code from `exit`.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    master: OwnedFd,
    exit: tokio::sync::oneshot::Receiver<i32>,
) {
    // SAFETY: the AsyncFd owns the descriptor, open for as long as it lives.
    let Ok(master) = (unsafe { AsyncFd::register(master) }) else {
        return;
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut input = vec![0u8; 4096];
    let mut output = vec![0u8; 16384];
    let mut input_open = true;
    loop {
        tokio::select! {
            n = rd.read(&mut input), if input_open => match n {
                Ok(0) | Err(_) => input_open = false,
                Ok(n) => {
                    if write_all(&master, &input[..n]).await.is_err() {
                        break;
                    }
                }
            },
            ready = master.readable() => {
                let Ok(mut guard) = ready else { break };
                match guard.try_io(|fd| {
                    // SAFETY: reading into a buffer valid for its length.
                    let n = unsafe { libc::read(fd.as_raw_fd(), output.as_mut_ptr().cast(), output.len()) };
                    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
                }) {
                    Ok(Ok(0)) | Ok(Err(_)) => break, // EIO: the process and its children are gone
                    Ok(Ok(n)) => {
                        if wr.write_all(&frame(OUTPUT, &output[..n])).await.is_err() {
                            break;
                        }
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    }
    let code = exit.await.map(super::server::exit_code).unwrap_or(255);
    let _ = wr.write_all(&frame(EXIT, &code.to_be_bytes())).await;
    let _ = wr.shutdown().await;
}

async fn write_all(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| {
            // SAFETY: writing from a buffer valid for its length.
            let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_read_back_as_written() {
        let mut bytes = frame(OUTPUT, b"hello");
        bytes.extend(frame(EXIT, &7i32.to_be_bytes()));
        let mut r = &bytes[..];
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some((OUTPUT, b"hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some((EXIT, 7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }
}
