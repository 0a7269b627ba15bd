//! The supervisor's descriptor limit. It holds several descriptors per
//! container (output pipes, logs, pidfds) and per API connection, so it
//! raises its soft `RLIMIT_NOFILE` to the hard limit when it starts, as
//! systemd and Go do: systemd's default soft limit of 1,024 is reached
//! near 200 containers. Containers get the soft limit rkstack itself was
//! given (programs that use select(2) break above 1,024), unless their
//! stack file sets `nofile`.

use std::sync::OnceLock;

/// The soft and hard limits rkstack was started with, once raised.
static GIVEN: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft limit to the hard one; remembers what was given.
pub fn raise() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let _ = GIVEN.set((lim.rlim_cur, lim.rlim_max));
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: a valid struct; raising the soft limit up to the hard one
        // needs no privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    }
}

/// What a container's `nofile` is when its file sets none: the soft and
/// hard limits rkstack was given, if it raised its own.
pub fn for_containers() -> Option<(u64, u64)> {
    GIVEN.get().copied().filter(|(soft, hard)| soft < hard)
}
