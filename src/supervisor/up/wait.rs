//! How the loop waits: poll(2) of its descriptors, or — with the API
//! running on the loop's thread — an epoll set of them awaited beside the
//! control requests, so the server runs while nothing else is ready.
//!
//! The loop's poll set is made each pass from raw descriptors of several
//! owners (the signalfd, the file watch, log pipes, pidfds, exec and pull
//! channels), so it stays an array of `libc::pollfd`: nix's `PollFd` would
//! need each owner borrowed for the whole pass, which the loop's `&mut self`
//! work in between does not allow.

use std::os::fd::AsRawFd;
use std::time::Duration;

use super::*;

/// poll(2) of `fds` for at most `timeout_ms` (negative: no limit): their
/// `revents` filled, and how many are ready (-1 on an error).
pub(super) fn poll_raw(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
    // SAFETY: fds is a valid array of pollfd for the call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}

/// The epoll set of the last wait, kept while the loop's descriptors stay
/// the same (a pass that only answered questions changes none).
#[derive(Default)]
pub(super) struct Waiter {
    cached: Option<(Vec<std::os::fd::RawFd>, tokio::io::unix::AsyncFd<Epoll>)>,
}

/// Waits until one of `fds` is ready, a control request comes, or
/// `timeout_ms` passes; fills the `revents` of `fds` like poll(2) and
/// returns poll's count with the requests received. Without a request
/// channel it is a plain poll(2). `same_fds`: the descriptors are those of
/// the last wait, unchanged (its epoll set may serve again).
pub(super) async fn wait_ready(
    fds: &mut [libc::pollfd],
    timeout_ms: i32,
    requests: Option<&mut tokio::sync::mpsc::UnboundedReceiver<Request>>,
    waiter: &mut Waiter,
    same_fds: bool,
) -> (i32, Vec<Request>) {
    let poll = poll_raw;
    let Some(rx) = requests else {
        return (poll(fds, timeout_ms), Vec::new());
    };
    let mut asked = Vec::new();
    let drain = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Request>, out: &mut Vec<Request>| {
        while let Ok(r) = rx.try_recv() {
            out.push(r);
        }
    };
    let n = poll(fds, 0);
    if n != 0 {
        // Something is ready already (a container that writes flat out
        // keeps its pipe so): the server still gets its turn, or requests
        // would wait until the loop ran out of work.
        tokio::task::yield_now().await;
    }
    drain(rx, &mut asked);
    if n != 0 || !asked.is_empty() {
        return (n, asked);
    }
    let key: Vec<std::os::fd::RawFd> = fds.iter().map(|p| p.fd).collect();
    let afd = match waiter.cached.take() {
        Some((k, afd)) if same_fds && k == key => Some(afd),
        // One epoll set of the loop's descriptors, awaited beside the requests.
        _ => Epoll::of(fds).ok().and_then(|ep| {
            // SAFETY: the Epoll owns its descriptor, open and unchanged for
            // as long as the AsyncFd that owns the Epoll.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(ep, tokio::io::Interest::READABLE)
            }
            .ok()
        }),
    };
    match &afd {
        Some(afd) => {
            tokio::select! {
                r = afd.readable() => {
                    // What is ready is read below; the next wait polls first.
                    if let Ok(mut guard) = r {
                        guard.clear_ready();
                    }
                }
                Some(r) = rx.recv() => asked.push(r),
                _ = tokio::time::sleep(Duration::from_millis(timeout_ms.max(0) as u64)) => {}
            }
        }
        None => {
            poll(fds, timeout_ms.min(50));
        }
    }
    waiter.cached = afd.map(|a| (key, a));
    let n = poll(fds, 0);
    drain(rx, &mut asked);
    (n, asked)
}

/// An epoll instance watching some descriptors for input.
struct Epoll(nix::sys::epoll::Epoll);

impl Epoll {
    fn of(fds: &[libc::pollfd]) -> nix::Result<Epoll> {
        use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags};
        let ep = nix::sys::epoll::Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for p in fds {
            // SAFETY: the loop's own descriptors, open for this wait (the
            // epoll set is dropped when they change).
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(p.fd) };
            ep.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, p.fd as u64))?;
        }
        Ok(Epoll(ep))
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.0.as_raw_fd()
    }
}
