//! Reading a file someone else may control (a caller of the API, a
//! container's root) so that it can neither block nor exhaust the reader:
//! opened non-blocking (a FIFO answers at once instead of waiting for a
//! writer), only a regular file is read (not `/dev/zero`, a FIFO or a
//! socket), and never more than a limit. Shared by the stack file's loader,
//! the init stage's `/etc/passwd` and `/etc/group`, and Containerfiles
//! (whose digest the supervisor takes for a stack's `build`).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug)]
pub enum Refusal {
    /// The open (`"cannot open"`), the stat (`"cannot stat"`) or the read
    /// (`"unreadable"`) failed.
    Io(&'static str, std::io::Error),
    /// Not a regular file: `"a FIFO"`, `"a device"`, `"a socket"`, ...
    NotRegular(&'static str),
    /// Larger than the limit.
    TooBig,
}

impl Refusal {
    /// The file is not there.
    pub fn not_found(&self) -> bool {
        matches!(self, Refusal::Io(_, e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Io(what, e) => write!(f, "{what}: {e}"),
            Refusal::NotRegular(what) => write!(f, "{what}, not a regular file"),
            Refusal::TooBig => f.write_str("larger than allowed"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The bytes of the regular file at `path`, at most `max` of them.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, Refusal> {
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Refusal::Io("cannot open", e))?;
    let meta = file.metadata().map_err(|e| Refusal::Io("cannot stat", e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(Refusal::NotRegular(if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        }));
    }
    if meta.len() > max {
        return Err(Refusal::TooBig);
    }
    // One byte more than allowed tells a file that grew since the stat.
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::Io("unreadable", e))?;
    if bytes.len() as u64 > max {
        return Err(Refusal::TooBig);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("f");
        std::fs::write(&f, "12345").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read_regular(&f, 5), Ok(b) if b == b"12345"));
        assert!(matches!(read_regular(&f, 4), Err(Refusal::TooBig)));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 5),
            Err(Refusal::NotRegular("a device"))
        ));
        assert!(matches!(
            read_regular(dir.path(), 5),
            Err(Refusal::NotRegular("a directory"))
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 5),
            Err(Refusal::Io("cannot open", e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
    }
}
