//! The detached supervisor's own log (`DATA/STACK/supervisor.log`, its
//! stdout and stderr since `up -d`): rotated as the containers' logs are,
//! so a supervisor that runs for months does not fill the disk with it.

use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The size at which the log is rotated.
pub const MAX_BYTES: u64 = 10 << 20;
/// Rotated files kept (`supervisor.log.1` the newest).
pub const KEEP: u32 = 3;

static LOG: OnceLock<PathBuf> = OnceLock::new();

/// From now on, stdout and stderr (which `up -d` pointed at `path`) are
/// rotated at [`MAX_BYTES`].
pub fn rotate_at(path: PathBuf) {
    let _ = LOG.set(path);
}

/// Rotates the log when it has grown past [`MAX_BYTES`] (called before each
/// event is written: one `fstat`).
pub fn check() {
    if let Some(path) = LOG.get() {
        let _ = rotate_if_over(path, &[1, 2], MAX_BYTES, KEEP);
    }
}

/// When the file `fds[0]` writes to is at least `max` bytes: `path`
/// becomes `path.1` (older ones shifted, `keep` kept), and every fd of
/// `fds` writes to a new `path`. Whether it rotated.
fn rotate_if_over(path: &Path, fds: &[RawFd], max: u64, keep: u32) -> std::io::Result<bool> {
    let Some(&first) = fds.first() else {
        return Ok(false);
    };
    let size = nix::sys::stat::fstat(unsafe_borrow(first))
        .map(|s| s.st_size as u64)
        .map_err(std::io::Error::from)?;
    if size < max {
        return Ok(false);
    }
    super::logs::shift_rotations(path, keep.max(1));
    let new = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::File::options().create(true).append(true),
        super::private::LOG_MODE,
    )
    .open(path)?;
    for &fd in fds {
        // SAFETY: dup2 onto a descriptor this process writes its log to.
        if unsafe { libc::dup2(new.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(true)
}

/// A borrowed view of a descriptor this process holds open for its life
/// (stdout, stderr, or a test's file).
fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the callers pass descriptors that stay open (stdout, stderr)
    // or that they hold for the call.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_full_log_moves_aside_and_writing_goes_on_in_a_new_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("supervisor.log");
        let mut f = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let fd = f.as_raw_fd();
        for round in 0..5 {
            writeln!(f, "round {round} {}", "x".repeat(100)).unwrap_or_else(|e| panic!("{e}"));
            assert!(rotate_if_over(&path, &[fd], 50, 2).unwrap_or(false));
        }
        writeln!(f, "after").unwrap_or_else(|e| panic!("{e}"));
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(path.clone()), "after\n");
        assert!(read(dir.path().join("supervisor.log.1")).starts_with("round 4"));
        assert!(read(dir.path().join("supervisor.log.2")).starts_with("round 3"));
        assert!(
            !dir.path().join("supervisor.log.3").exists(),
            "kept more than 2"
        );
        // Under the size: left alone.
        assert!(!rotate_if_over(&path, &[fd], 50, 2).unwrap_or(true));
    }
}
