//! A lock file held with `flock` for as long as a [`LockFile`] lives and
//! removed when it is dropped: `STATE/STACK.lock` of `rkstack up`,
//! `STATE/rootfs/NAME.lock` of `rkstack run`. A process that ends without
//! dropping it (killed) leaves the file, unlocked, for the next taker.

use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    /// Holds the lock for as long as it is open.
    _file: std::fs::File,
}

/// What [`LockFile::take`] found.
#[derive(Debug)]
pub enum Taken {
    Ours(LockFile),
    /// Held by another process; what it wrote in the file (its pid).
    Held(String),
}

impl LockFile {
    /// Takes the lock at `path` and writes `holder` in it. The file may be
    /// removed by its last holder between our open and our lock: then the
    /// one we locked is no longer at `path`, and the new one is taken.
    pub fn take(path: &Path, holder: &str) -> std::io::Result<Taken> {
        loop {
            let mut f = std::fs::File::options()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)?;
            // SAFETY: flock on a file we own; released when it is closed or
            // the process ends, however it ends.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let mut said = String::new();
                let _ = f.read_to_string(&mut said);
                return Ok(Taken::Held(said.trim().to_string()));
            }
            let ours = f.metadata()?;
            match std::fs::metadata(path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {
                    f.set_len(0)?;
                    f.rewind()?;
                    f.write_all(holder.as_bytes())?;
                    return Ok(Taken::Ours(LockFile {
                        path: path.to_path_buf(),
                        _file: f,
                    }));
                }
                _ => continue,
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still held: whoever opened it meanwhile finds it
        // replaced (see `take`) and takes a new one.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_held_alone_and_its_file_goes_with_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.lock");
        let Ok(Taken::Ours(first)) = LockFile::take(&path, "41") else {
            panic!("not taken");
        };
        match LockFile::take(&path, "42") {
            Ok(Taken::Held(pid)) => assert_eq!(pid, "41"),
            other => panic!("taken twice: {other:?}"),
        }
        drop(first);
        assert!(!path.exists(), "the lock file stayed");
        assert!(matches!(LockFile::take(&path, "43"), Ok(Taken::Ours(_))));
    }
}
