//! `STATE/rootfs/.names`: one file that stands for every name of a one-off
//! container (`rkstack run`). The run of `NAME` holds a POSIX record lock
//! on one byte of it, at an offset taken from the name, for as long as it
//! runs; a second run of that name finds the byte locked and is refused.
//!
//! A file per name (`NAME.lock`, made and removed by each run) did the same
//! but cost ≈ 0.17–0.25 ms of every start where `/run` is on a journaled disk
//! (an inode made, written and freed); this file is made once and never
//! removed, and a lock on it touches no disk.
//!
//! As with [`super::lockfile`], the lock belongs to the process (a child it
//! forks never holds it; it is free the moment the process is dead), and
//! the process must never close another descriptor of the file while it
//! holds a byte: the one open descriptor and the bytes held are kept here.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

use super::lockfile::{id_of, record};

/// The open `.names` file of this process and the offsets it holds.
struct Open {
    id: (u64, u64),
    file: File,
    held: Vec<i64>,
}

static OPEN: Mutex<Vec<Open>> = Mutex::new(Vec::new());

/// The byte of `name`: FNV-1a, a hash that never changes between builds
/// (two versions of rkstack running at once during an upgrade agree), cut
/// to 62 bits so that the byte after it is still a valid file offset.
/// Two names on one byte would refuse each other; among a thousand
/// names running at once that happens once in 10¹³.
fn offset(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(h >> 2).unwrap_or(0)
}

/// Held while it lives: the name is this process's until it is dropped.
#[derive(Debug)]
pub struct NameLock {
    id: (u64, u64),
    at: i64,
}

impl NameLock {
    /// Takes `name` in the names file at `path` (made when missing).
    /// `None`: another process, or this one, holds it.
    pub fn take(path: &Path, name: &str) -> std::io::Result<Option<NameLock>> {
        let at = offset(name);
        let mut open = OPEN
            .lock()
            .map_err(|_| std::io::Error::other("lock list poisoned"))?;
        // The descriptor this process already has, if any: opening a
        // second one and closing it would let go of what the first holds.
        let here = std::fs::metadata(path)
            .ok()
            .map(|m| id_of(&m))
            .and_then(|id| open.iter().position(|o| o.id == id));
        let i = match here {
            Some(i) => i,
            None => {
                let file = super::open_private(path)?;
                let id = id_of(&file.metadata()?);
                if let Some(i) = open.iter().position(|o| o.id == id) {
                    // Ours after all (the look above failed): closing this
                    // descriptor would let go of the bytes held through it.
                    std::mem::forget(file);
                    i
                } else {
                    open.push(Open {
                        id,
                        file,
                        held: Vec::new(),
                    });
                    open.len() - 1
                }
            }
        };
        let o = &mut open[i];
        if o.held.contains(&at) {
            return Ok(None);
        }
        match fcntl(
            o.file.as_fd(),
            FcntlArg::F_SETLK(&record(libc::F_WRLCK, at, 1)),
        ) {
            Ok(_) => {
                o.held.push(at);
                Ok(Some(NameLock { id: o.id, at }))
            }
            Err(Errno::EAGAIN | Errno::EACCES) => {
                if o.held.is_empty() {
                    // Nothing held through it: closing it lets go of nothing.
                    open.swap_remove(i);
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for NameLock {
    fn drop(&mut self) {
        let Ok(mut open) = OPEN.lock() else { return };
        let Some(i) = open.iter().position(|o| o.id == self.id) else {
            return;
        };
        let o = &mut open[i];
        let _ = fcntl(
            o.file.as_fd(),
            FcntlArg::F_SETLK(&record(libc::F_UNLCK, self.at, 1)),
        );
        o.held.retain(|a| *a != self.at);
        if o.held.is_empty() {
            open.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_name_is_held_once_and_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(".names");
        let Ok(Some(web)) = NameLock::take(&path, "web") else {
            panic!("web not taken");
        };
        assert!(matches!(NameLock::take(&path, "web"), Ok(None)));
        let Ok(Some(db)) = NameLock::take(&path, "db") else {
            panic!("db not taken beside web");
        };
        // Another process sees web held and db held; nothing else.
        assert_eq!(probe(&path, "web"), Some(false));
        assert_eq!(probe(&path, "db"), Some(false));
        assert_eq!(probe(&path, "cache"), Some(true));
        drop(web);
        // Dropping web let go of web only (one descriptor, two bytes).
        assert_eq!(probe(&path, "web"), Some(true));
        assert_eq!(probe(&path, "db"), Some(false));
        drop(db);
        assert_eq!(probe(&path, "db"), Some(true));
        assert!(path.exists(), "the names file is never removed");
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "others could lock names");
        assert!(matches!(NameLock::take(&path, "web"), Ok(Some(_))));
    }

    #[test]
    fn offsets_are_fixed_and_fit_a_file() {
        // Fixed: every build agrees on a name's byte.
        assert_eq!(offset(""), (0xcbf2_9ce4_8422_2325u64 >> 2) as i64);
        assert_ne!(offset("web"), offset("db"));
        assert!(offset("\u{10ffff}".repeat(64).as_str()) >= 0);
    }

    /// Whether another process can take `name` in `path`.
    fn probe(path: &Path, name: &str) -> Option<bool> {
        crate::host::probe_in_another_process(
            "host::namelock::tests::name_probe",
            &[
                ("RKSTACK_NAME_PROBE", path.as_os_str()),
                ("RKSTACK_NAME_PROBE_NAME", name.as_ref()),
            ],
        )
    }

    /// Not a test of its own: run by [`probe`].
    #[test]
    fn name_probe() {
        let (Some(path), Ok(name)) = (
            std::env::var_os("RKSTACK_NAME_PROBE"),
            std::env::var("RKSTACK_NAME_PROBE_NAME"),
        ) else {
            return;
        };
        let taken = NameLock::take(Path::new(&path), &name).unwrap_or_else(|e| panic!("{e}"));
        println!("probe: {}", if taken.is_some() { "free" } else { "held" });
    }
}
