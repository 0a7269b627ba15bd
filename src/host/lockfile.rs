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
    /// Takes the lock at `path` and writes `holder` (a pid) in it. Held by
    /// a process that is gone (killed), the lock is still held for a moment
    /// by a child it had just forked (a fork copies descriptors; the child
    /// closes them as soon as it runs, which on a loaded machine can take
    /// a while): then it is tried again for up to ten seconds before it
    /// counts as held.
    pub fn take(path: &Path, holder: &str) -> std::io::Result<Taken> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::try_take(path, holder)? {
                Taken::Held(pid)
                    if holder_gone(&pid, path) && std::time::Instant::now() < until =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                taken => return Ok(taken),
            }
        }
    }

    /// One attempt. The file may be removed by its last holder between our
    /// open and our lock: then the one we locked is no longer at `path`, and
    /// the new one is taken.
    fn try_take(path: &Path, holder: &str) -> std::io::Result<Taken> {
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

/// Whether the pid written in a lock file names no living process, or one
/// that does not have the file open (its pid was given to another process
/// since: on a busy machine pids come round again within seconds).
fn holder_gone(pid: &str, path: &Path) -> bool {
    let Ok(p) = pid.parse::<i32>() else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(p, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) else {
        // Not ours to look into: it may well be the holder.
        return false;
    };
    let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    !fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == want))
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
        // Held by a living process (this one): refused at once.
        let me = std::process::id().to_string();
        let Ok(Taken::Ours(first)) = LockFile::take(&path, &me) else {
            panic!("not taken");
        };
        match LockFile::take(&path, "42") {
            Ok(Taken::Held(pid)) => assert_eq!(pid, me),
            other => panic!("taken twice: {other:?}"),
        }
        drop(first);
        assert!(!path.exists(), "the lock file stayed");
        assert!(matches!(LockFile::take(&path, "43"), Ok(Taken::Ours(_))));
    }

    /// Takes the lock at a new path whose file says `recorded` while this
    /// test holds it for 200 ms more, then lets go.
    fn take_while_held_under(recorded: &str) -> std::io::Result<Taken> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.lock");
        std::fs::write(&path, recorded).unwrap_or_else(|e| panic!("{e}"));
        let held = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: flock on a file this test opened.
        let locked = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(locked, 0);
        let letgo = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let taken = LockFile::take(&path, "1");
        letgo.join().unwrap_or_else(|_| panic!("the holder thread"));
        taken
    }

    #[test]
    fn a_lock_left_held_by_a_dead_holders_child_is_waited_for() {
        // Held under a pid that names no process, as by the child a killed
        // supervisor had just forked, which lets go a moment later.
        let taken = take_while_held_under("2147483646");
        assert!(matches!(taken, Ok(Taken::Ours(_))), "{taken:?}");
    }

    #[test]
    fn a_recorded_pid_given_to_another_process_does_not_count_as_the_holder() {
        // The pid written is alive but is not the holder (as when the dead
        // holder's pid came round to a new process): the lock is waited for.
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let taken = take_while_held_under(&other.id().to_string());
        let _ = other.kill();
        let _ = other.wait();
        assert!(matches!(taken, Ok(Taken::Ours(_))), "{taken:?}");
    }
}
