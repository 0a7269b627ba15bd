//! Interactive `exec` with a terminal. The request
//! `POST /v1/containers/{name}/exec` with `Connection: Upgrade` and
//! `Upgrade: rkstack-exec` (body: the usual JSON, plus `rows`/`cols`) is
//! answered `101 Switching Protocols`; then the connection carries the
//! session: the server sends frames of `[kind: u8][length: u32
//! big-endian][payload]` — kind 1 is terminal output, kind 3 the exit code
//! (`i32` big-endian, 128+N for signal N), the last frame. The client sends
//! raw input bytes, or, when its body said `"frames": true`, frames too:
//! kind 0 input, kind 2 the window's new size (rows, cols: `u16`
//! big-endian each), so full-screen programs follow the window. The
//! process gets a pseudo-terminal of the container's own devpts (see
//! `sandbox::pty`) as stdin, stdout and stderr, and as its controlling
//! terminal.

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` protocol name.
pub const PROTOCOL: &str = "rkstack-exec";
/// Client to server, with `"frames": true`: input bytes for the terminal.
pub const INPUT: u8 = 0;
pub const OUTPUT: u8 = 1;
/// Client to server: the window's size, rows and columns (`u16` each,
/// big-endian).
pub const RESIZE: u8 = 2;
pub const EXIT: u8 = 3;
/// The largest frame either side accepts.
const MAX_FRAME: usize = 1 << 20;

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
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

/// Carries a session between the upgraded connection `io` and the
/// terminal `master` until the process's output ends, then sends its exit
/// code from `exit`. With `framed`, the client's input comes in frames
/// too ([`INPUT`], [`RESIZE`]); otherwise it is raw bytes.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    master: OwnedFd,
    exit: tokio::sync::oneshot::Receiver<i32>,
    framed: bool,
) {
    // SAFETY: the AsyncFd owns the descriptor, open for as long as it lives.
    let Ok(master) = (unsafe { AsyncFd::register(master) }) else {
        return;
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut input = vec![0u8; 4096];
    let mut pending = Input::default();
    let mut output = vec![0u8; 16384];
    let mut input_open = true;
    loop {
        tokio::select! {
            // `read` is cancel-safe: a turn the other branch wins loses nothing.
            n = rd.read(&mut input), if input_open => match n {
                Ok(0) | Err(_) => input_open = false,
                Ok(n) if !framed => {
                    if write_all(&master, &input[..n]).await.is_err() {
                        break;
                    }
                }
                Ok(n) => {
                    pending.buf.extend_from_slice(&input[..n]);
                    let mut broke = false;
                    while let Some(step) = pending.next() {
                        match step {
                            Step::Input(data) => broke = write_all(&master, &data).await.is_err(),
                            Step::Resize(rows, cols) => resize(&master, rows, cols),
                            Step::Bad => broke = true,
                        }
                        if broke {
                            break;
                        }
                    }
                    if broke {
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

/// The window's new size, on the terminal: the process's foreground group
/// gets SIGWINCH from the kernel.
fn resize(master: &AsyncFd<OwnedFd>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize it is given.
    unsafe { libc::ioctl(master.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Framed input as it arrives: whole frames are taken out as they complete.
#[derive(Default)]
struct Input {
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum Step {
    Input(Vec<u8>),
    Resize(u16, u16),
    /// A frame longer than any client sends: the session ends.
    Bad,
}

impl Input {
    fn next(&mut self) -> Option<Step> {
        loop {
            let head = self.buf.get(..5)?;
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > MAX_FRAME {
                return Some(Step::Bad);
            }
            if self.buf.len() < 5 + len {
                return None;
            }
            let kind = self.buf[0];
            let payload: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
            match (kind, payload.len()) {
                (INPUT, _) => return Some(Step::Input(payload)),
                (RESIZE, 4) => {
                    return Some(Step::Resize(
                        u16::from_be_bytes([payload[0], payload[1]]),
                        u16::from_be_bytes([payload[2], payload[3]]),
                    ));
                }
                // Kinds a later client may send: skipped.
                _ => {}
            }
        }
    }
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

    #[test]
    fn framed_input_comes_out_whole_however_it_is_cut() {
        let mut bytes = frame(INPUT, b"ls\r");
        bytes.extend(frame(RESIZE, &[0, 50, 0, 132]));
        bytes.extend(frame(9, b"later kind"));
        bytes.extend(frame(INPUT, b"q"));
        let mut input = Input::default();
        let mut got = Vec::new();
        for b in bytes {
            input.buf.push(b);
            while let Some(s) = input.next() {
                got.push(s);
            }
        }
        assert_eq!(
            got,
            [
                Step::Input(b"ls\r".to_vec()),
                Step::Resize(50, 132),
                Step::Input(b"q".to_vec())
            ]
        );
        let mut input = Input::default();
        input.buf.extend([INPUT, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(input.next(), Some(Step::Bad));
    }

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
