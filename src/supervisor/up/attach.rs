//! `up --attach`: the containers' output on the supervisor's stdout as well,
//! each line after its container's name, as `docker compose up` shows it.
//! Written without ever waiting: a terminal that is slow or stopped (Ctrl-S)
//! or a pipe nobody reads must not hold the one-threaded loop, so lines it
//! cannot take are dropped and counted (their log files have them all).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use tokio::sync::broadcast;

use crate::supervisor::logs::LogLine;

/// Where the lines go: a description of stdout of our own, non-blocking
/// (opening `/proc/self/fd/1` makes a new one: the shell's is left as it
/// is), or stdout itself where that is a socket (journald's stream),
/// written with `MSG_DONTWAIT`.
enum Out {
    File(std::fs::File),
    Socket(OwnedFd),
}

impl Out {
    fn open() -> Option<Out> {
        let reopened = std::fs::File::options()
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/proc/self/fd/1");
        match reopened {
            Ok(f) => Some(Out::File(f)),
            // A socket cannot be opened again: sent to without waiting.
            Err(_) => {
                // SAFETY: dup of our own stdout.
                let fd = unsafe { libc::dup(1) };
                // SAFETY: a new descriptor that nothing else owns.
                (fd >= 0).then(|| Out::Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
            }
        }
    }

    /// Writes all of `bytes` or as much as goes at once; whether it all went.
    fn put(&mut self, bytes: &[u8]) -> bool {
        match self {
            Out::File(f) => f.write_all(bytes).is_ok(),
            Out::Socket(fd) => {
                // SAFETY: `bytes` is valid for its length.
                let n = unsafe {
                    libc::send(
                        fd.as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                n == bytes.len() as isize
            }
        }
    }
}

/// `name | text` for a log record (`TIMESTAMP STREAM text`), the names
/// padded to `width`.
pub(super) fn line(width: usize, l: &LogLine) -> String {
    let text = l.record.splitn(3, ' ').nth(2).unwrap_or("");
    format!("{:<width$} | {text}\n", l.container)
}

/// Prints every record `rx` brings until the stack stops.
pub(super) async fn print(mut rx: broadcast::Receiver<LogLine>, width: usize) {
    let Some(mut out) = Out::open() else { return };
    let mut dropped: u64 = 0;
    loop {
        let l = match rx.recv().await {
            Ok(l) => l,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                dropped += n;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if dropped > 0
            && out.put(
                format!("rkstack: {dropped} lines of output not shown here (stdout did not keep up; the logs have them)\n")
                    .as_bytes(),
            )
        {
            dropped = 0;
        }
        if !out.put(line(width, &l).as_bytes()) {
            dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_its_text_after_the_padded_name() {
        let l = LogLine {
            container: "db".into(),
            record: "2026-11-30T18:00:00.000Z stderr ready to serve".into(),
        };
        assert_eq!(line(4, &l), "db   | ready to serve\n");
    }
}
