//! The typed channel between the runtime and its `__init` stage, and between
//! `__init` and the container's first process. One JSON message per
//! SOCK_SEQPACKET datagram; a receiver names what it expects.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::spec::{ExecSpec, SandboxSpec};

/// Largest message: a spec with a compiled seccomp program fits easily.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// runtime → `__init`: what to start.
    Start(Box<SandboxSpec>),
    /// runtime → `__init`: what to run inside a running container.
    Exec(Box<ExecSpec>),
    /// `__init` → runtime: the process runs (it has exec'd) with this host pid.
    Started { pid: i32 },
    /// `__init` → runtime: the process entering a running container was
    /// cloned with this host pid (it has not exec'd yet); what the runtime
    /// kills if the stage does not answer in time.
    Cloned { pid: i32 },
    /// `__init` → runtime: the process exists, in its namespaces and cgroup,
    /// and waits (asked for with `hold_before_exec`), e.g. for its network.
    Created { pid: i32 },
    /// runtime → `__init`: go on to exec.
    Continue,
    /// Any stage → its parent: a setup step failed.
    Failed(StepError),
}

/// A failure in the child, as data: which step, the errno, what it acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub step: String,
    pub errno: i32,
    pub detail: String,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.step)?;
        if self.errno != 0 {
            write!(f, ": {}", errno_text(self.errno))?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// `no such file or directory` for ENOENT: strerror, lowercased.
pub fn errno_text(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// A connected SOCK_SEQPACKET pair, close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two fds into the array we own.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn send(fd: BorrowedFd<'_>, msg: &Message) -> io::Result<()> {
    let buf = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if buf.len() > MAX_MESSAGE {
        return Err(io::Error::other("message too large"));
    }
    // SAFETY: buf is a valid slice for the duration of the call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message; `Ok(None)` at end of stream (the peer closed, for
/// the container's first process: it has exec'd or died).
pub fn recv(fd: BorrowedFd<'_>) -> io::Result<Option<Message>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut reset_seen = false;
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // A peer that exits with one of our messages still unread makes
            // the kernel report ECONNRESET once; what it sent before (its
            // failure, most often) is still queued behind that report.
            if e.raw_os_error() == Some(libc::ECONNRESET) && !reset_seen {
                reset_seen = true;
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(io::Error::other)?;
        return serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    }
}

/// What a process let go toward its exec says: nothing (its end of the
/// channel closed on exec: it runs) or how its set-up failed.
pub fn exec_outcome(fd: BorrowedFd<'_>) -> Result<(), StepError> {
    use super::rootfs::errno_err;
    match recv(fd) {
        Ok(None) => Ok(()),
        Ok(Some(Message::Failed(e))) => Err(e),
        Ok(Some(other)) => Err(errno_err("init", 0, format!("unexpected {other:?}"))),
        Err(e) => Err(errno_err(
            "init",
            e.raw_os_error().unwrap_or(0),
            "waiting for exec",
        )),
    }
}

/// Sends one raw byte (the "go on" signal).
pub fn poke(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: one byte from a static buffer.
    let n = unsafe {
        libc::send(
            fd.as_fd().as_raw_fd(),
            b"g".as_ptr().cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits for one raw byte; `false` if the peer closed first.
pub fn wait_poke(fd: impl AsFd) -> io::Result<bool> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: b is valid for one byte.
        let n = unsafe { libc::recv(fd.as_fd().as_raw_fd(), b.as_mut_ptr().cast(), 1, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n == 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_sent_before_the_peer_went_is_read_even_with_ours_unread() {
        let (stage, child) = pair().unwrap();
        // The stage's poke is still unread when the child fails and exits.
        poke(&stage).unwrap();
        let failed = Message::Failed(StepError {
            step: "mount /data".into(),
            errno: libc::ENOENT,
            detail: "source /nonexistent".into(),
        });
        send(child.as_fd(), &failed).unwrap();
        drop(child);
        match recv(stage.as_fd()).unwrap() {
            Some(Message::Failed(e)) => assert_eq!(e.step, "mount /data"),
            other => panic!("got {other:?}"),
        }
        assert!(recv(stage.as_fd()).unwrap().is_none());
    }
}
