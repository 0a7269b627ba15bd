//! `user_namespace = "auto"`: a private range of 65,536 host ids per
//! container, never shared by two running containers. A range is held by an
//! exclusive lock on its file under the state directory, so the claim dies
//! with the process that holds it, whatever way it ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The first host id handed out, and the size of each range.
pub const BASE: u32 = 1 << 20;
pub const SIZE: u32 = 65_536;
/// Ranges available (up to about 2^31 host ids).
pub const RANGES: u32 = 32_000;

/// A claimed range; released when dropped.
#[derive(Debug)]
pub struct Claim {
    pub start: u32,
    pub count: u32,
    _lock: File,
}

pub fn claim(state_dir: &Path) -> std::io::Result<Claim> {
    let dir = state_dir.join("userns");
    std::fs::create_dir_all(&dir)?;
    for i in 0..RANGES {
        let f = crate::host::open_private(&dir.join(format!("{i}.lock")))?;
        // SAFETY: flock on a file we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Claim {
                start: BASE + i * SIZE,
                count: SIZE,
                _lock: f,
            });
        }
    }
    Err(std::io::Error::other(
        "every user namespace range is in use",
    ))
}
