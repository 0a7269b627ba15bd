//! A lock file held for as long as a [`LockFile`] lives and removed when
//! it is dropped: `STATE/STACK.lock` of `rkstack up` (`rkstack run`'s
//! names are bytes of one file: [`super::namelock`]). A process that ends without
//! dropping it (killed) leaves the file, unlocked, for the next taker.
//!
//! The lock is a POSIX record lock (`fcntl(F_SETLK)`), not `flock`: it
//! belongs to the process, so a child the holder forks (a container's
//! init stage, a pull) never holds it, and it is free the moment the
//! holder is dead — a supervisor killed while it forks is followed by
//! the next one at once. Such a lock also lets go when its process closes
//! *any* descriptor of the file, so this process never opens a lock file
//! it holds: the ones it holds are listed here and answered from the list.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, fcntl};

#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    id: (u64, u64),
    /// Holds the lock for as long as it is open.
    _file: std::fs::File,
}

/// What [`LockFile::take`] found.
#[derive(Debug)]
pub enum Taken {
    Ours(LockFile),
    /// Held by another process (or by this one, through another
    /// [`LockFile`]); what it wrote in the file (its pid).
    Held(String),
}

/// The (device, inode) of every lock file this process holds, and what
/// it wrote in it.
static HELD: Mutex<Vec<((u64, u64), String)>> = Mutex::new(Vec::new());

/// What this process wrote in the lock file `id` it holds.
fn held_here(id: (u64, u64)) -> Option<String> {
    HELD.lock()
        .ok()
        .and_then(|h| h.iter().find(|(i, _)| *i == id).map(|(_, w)| w.clone()))
}

/// A file's (device, inode): which file a lock is on.
pub(super) fn id_of(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// A record lock request or test of `len` bytes from `start` (`len` 0:
/// to the end of the file, however long it grows).
pub(super) fn record(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    // SAFETY: flock is plain data; zero is a valid value of every field.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = kind as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = start;
    l.l_len = len;
    l
}

/// A lock request or test over the whole file.
fn whole(kind: libc::c_int) -> libc::flock {
    record(kind, 0, 0)
}

impl LockFile {
    /// Takes the lock at `path` and writes `holder` (a pid) in it.
    pub fn take(path: &Path, holder: &str) -> std::io::Result<Taken> {
        // The file may be removed by its last holder between our open and
        // our lock: then the one we locked is no longer at `path`, and the
        // new one is taken.
        loop {
            if let Some(said) = std::fs::metadata(path)
                .ok()
                .and_then(|m| held_here(id_of(&m)))
            {
                return Ok(Taken::Held(said));
            }
            let mut f = super::open_private(path)?;
            let ours = f.metadata()?;
            if let Some(said) = held_here(id_of(&ours)) {
                // Put there by this process between the look and the open:
                // closing this descriptor would let go of that lock.
                std::mem::forget(f);
                return Ok(Taken::Held(said));
            }
            match fcntl(f.as_fd(), FcntlArg::F_SETLK(&whole(libc::F_WRLCK))) {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
                    let mut said = String::new();
                    let _ = f.read_to_string(&mut said);
                    return Ok(Taken::Held(said.trim().to_string()));
                }
                Err(e) => return Err(e.into()),
            }
            match std::fs::metadata(path) {
                Ok(m) if id_of(&m) == id_of(&ours) => {
                    f.set_len(0)?;
                    f.rewind()?;
                    f.write_all(holder.as_bytes())?;
                    let id = id_of(&ours);
                    if let Ok(mut h) = HELD.lock() {
                        h.push((id, holder.to_string()));
                    }
                    return Ok(Taken::Ours(LockFile {
                        path: path.to_path_buf(),
                        id,
                        _file: f,
                    }));
                }
                _ => continue,
            }
        }
    }
}

/// Whether the lock file at `path` is held (by any process, this one
/// too), and the pid its holder wrote in it. `None`: free, or no file.
pub fn holder(path: &Path) -> Option<Option<i32>> {
    // Ours: answered from the list (reading the file would let go of it).
    let said = |s: String| s.trim().parse().ok();
    let m = std::fs::metadata(path).ok()?;
    if let Some(s) = held_here(id_of(&m)) {
        return Some(said(s));
    }
    let mut f = std::fs::File::open(path).ok()?;
    if let Some(s) = held_here(id_of(&f.metadata().ok()?)) {
        std::mem::forget(f);
        return Some(said(s));
    }
    // Would a read lock wait? Only for a holder's write lock.
    let mut probe = whole(libc::F_RDLCK);
    fcntl(f.as_fd(), FcntlArg::F_GETLK(&mut probe)).ok()?;
    if probe.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    Some(said(text).or((probe.l_pid > 0).then_some(probe.l_pid)))
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed while still held: whoever opened it meanwhile finds it
        // replaced (see `take`) and takes a new one.
        let _ = std::fs::remove_file(&self.path);
        if let Ok(mut h) = HELD.lock()
            && let Some(i) = h.iter().position(|(x, _)| *x == self.id)
        {
            h.swap_remove(i);
        }
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
        // Asking (a look at every stack, as `ps` in the supervisor does)
        // does not let go of it: another process still finds it held.
        assert_eq!(holder(&path), Some(Some(std::process::id() as i32)));
        assert!(matches!(LockFile::take(&path, "44"), Ok(Taken::Held(_))));
        assert_eq!(probe_from_another_process(&path), Some(false));
        drop(first);
        assert!(!path.exists(), "the lock file stayed");
        assert_eq!(holder(&path), None);
        assert!(matches!(LockFile::take(&path, "43"), Ok(Taken::Ours(_))));
    }

    /// Whether another process (this test binary, run again as
    /// [`lock_probe`]) can take the lock at `path`; `None` if it could not
    /// be asked.
    fn probe_from_another_process(path: &Path) -> Option<bool> {
        crate::host::probe_in_another_process(
            "host::lockfile::tests::lock_probe",
            &[("RKSTACK_LOCK_PROBE", path.as_os_str())],
        )
    }

    /// Not a test of its own: run by [`probe_from_another_process`].
    #[test]
    fn lock_probe() {
        let Some(path) = std::env::var_os("RKSTACK_LOCK_PROBE") else {
            return;
        };
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{e}"));
        let free = fcntl(f.as_fd(), FcntlArg::F_SETLK(&whole(libc::F_WRLCK))).is_ok();
        println!("probe: {}", if free { "free" } else { "held" });
    }

    /// A lock held by another process is seen as held; a child that
    /// process forked never holds it, and it is free as soon as that
    /// process is gone (here, while its child lives on).
    #[test]
    fn a_lock_belongs_to_its_process_and_not_to_the_children_it_forks() {
        use std::os::fd::{AsRawFd, OwnedFd};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.lock");
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let pipe = || nix::unistd::pipe().unwrap_or_else(|e| panic!("{e}"));
        let (said_r, said_w): (OwnedFd, OwnedFd) = pipe();
        let (go_r, go_w): (OwnedFd, OwnedFd) = pipe();
        let (fd, sw, gr) = (f.as_raw_fd(), said_w.as_raw_fd(), go_r.as_raw_fd());
        // SAFETY: the child runs only async-signal-safe calls (fcntl, fork,
        // write, read, pause, _exit) on descriptors opened before the fork.
        let holder_pid = unsafe { libc::fork() };
        if holder_pid == 0 {
            // SAFETY: as above.
            unsafe {
                let l = whole(libc::F_WRLCK);
                if libc::fcntl(fd, libc::F_SETLK, &l) != 0 {
                    libc::_exit(1);
                }
                let child = libc::fork();
                if child == 0 {
                    loop {
                        libc::pause();
                    }
                }
                libc::write(sw, (&raw const child).cast(), 4);
                let mut go = 0u8;
                libc::read(gr, (&raw mut go).cast(), 1);
                libc::_exit(0);
            }
        }
        assert!(holder_pid > 0, "fork");
        drop(said_w);
        let mut child = [0u8; 4];
        std::fs::File::from(said_r)
            .read_exact(&mut child)
            .unwrap_or_else(|e| panic!("{e}"));
        let child = i32::from_ne_bytes(child);
        let held = holder(&path);
        let taken = LockFile::take(&path, "1");
        // Let the holder end; its child lives on with the file open.
        std::fs::File::from(go_w)
            .write_all(b"g")
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: reaping the process this test forked.
        unsafe { libc::waitpid(holder_pid, std::ptr::null_mut(), 0) };
        let after = holder(&path);
        let retaken = LockFile::take(&path, "1");
        // SAFETY: ending the process this test's child forked, by its pid.
        unsafe { libc::kill(child, libc::SIGKILL) };
        assert_eq!(held, Some(Some(holder_pid)));
        assert!(matches!(taken, Ok(Taken::Held(_))), "{taken:?}");
        assert_eq!(after, None, "the holder's child holds the lock");
        assert!(matches!(retaken, Ok(Taken::Ours(_))), "{retaken:?}");
    }
}
