//! What the stack file's path names, watched: its folder (editors save by
//! rename), the folder above (the whole folder replaced by a deploy), the
//! folders of every symlink on the way (`current -> releases/N` swapped)
//! and the folder the file really is in. Any event there makes the path
//! resolved and stat'ed again; only a change of what it names (another
//! file, or new contents) counts, and the watches follow the new path.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// What the path names now: where it resolves and that file's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    real: Option<PathBuf>,
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    size: u64,
}

fn seen(file: &Path) -> Seen {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(file).ok();
    match std::fs::metadata(file) {
        Ok(m) => Seen {
            real,
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            size: m.size(),
        },
        Err(_) => Seen {
            real,
            dev: 0,
            ino: 0,
            mtime: (0, 0),
            size: 0,
        },
    }
}

/// The folders to watch for `file` (absolute): its own, the one above,
/// the folder of every symlink on its way, the one it really is in.
pub fn folders(file: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: Option<&Path>| {
        if let Some(p) = p.filter(|p| !p.as_os_str().is_empty())
            && !out.iter().any(|o| o == p)
        {
            out.push(p.to_path_buf());
        }
    };
    let parent = file.parent();
    add(parent);
    add(parent.and_then(Path::parent));
    let mut prefix = PathBuf::new();
    for c in file.components() {
        prefix.push(c);
        if std::fs::symlink_metadata(&prefix).is_ok_and(|m| m.file_type().is_symlink()) {
            add(prefix.parent());
        }
    }
    let real = std::fs::canonicalize(file).ok();
    add(real.as_deref().and_then(Path::parent));
    out
}

pub struct FileWatch {
    file: PathBuf,
    inotify: Inotify,
    watched: Vec<PathBuf>,
    seen: Seen,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("file", &self.file)
            .field("watched", &self.watched)
            .finish()
    }
}

impl FileWatch {
    /// Watches `file`; `None` where inotify cannot be had (reloads then
    /// come by SIGHUP or the API only).
    pub fn new(file: &Path) -> Option<FileWatch> {
        let file = std::path::absolute(file).ok()?;
        let (inotify, watched) = arm(&file)?;
        (!watched.is_empty()).then(|| FileWatch {
            seen: seen(&file),
            file,
            inotify,
            watched,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Reads the pending events; whether what the path names changed.
    pub fn changed(&mut self) -> bool {
        // Drained whatever they were: each only says "look again".
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
        let now = seen(&self.file);
        if now == self.seen {
            return false;
        }
        self.seen = now;
        // The inodes behind the path may be others now: new watches (a new
        // inotify instance; the old watches go with the old one).
        if let Some((inotify, watched)) = arm(&self.file) {
            self.inotify = inotify;
            self.watched = watched;
        }
        true
    }
}

/// An inotify instance watching the folders `file` needs now, and which
/// of them could be watched.
fn arm(file: &Path) -> Option<(Inotify, Vec<PathBuf>)> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
    let mask = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF;
    let watched = folders(file)
        .into_iter()
        .filter(|d| inotify.add_watch(d, mask).is_ok())
        .collect();
    Some((inotify, watched))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ready(w: &FileWatch) -> bool {
        let mut p = [libc::pollfd {
            fd: w.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        super::super::wait::poll_raw(&mut p, 1000) > 0
    }

    #[test]
    fn a_save_by_rename_is_a_change_and_a_touch_elsewhere_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stack.toml");
        std::fs::write(&file, "a").unwrap();
        let mut w = FileWatch::new(&file).unwrap();
        std::fs::write(dir.path().join("other"), "x").unwrap();
        assert!(ready(&w));
        assert!(!w.changed(), "another file of the folder");
        std::fs::write(dir.path().join(".swp"), "b").unwrap();
        std::fs::rename(dir.path().join(".swp"), &file).unwrap();
        assert!(ready(&w));
        assert!(w.changed());
    }

    #[test]
    fn a_swapped_symlink_on_the_way_is_a_change_and_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for r in ["r1", "r2"] {
            std::fs::create_dir_all(d.join("releases").join(r)).unwrap();
            std::fs::write(d.join("releases").join(r).join("stack.toml"), r).unwrap();
        }
        std::os::unix::fs::symlink("releases/r1", d.join("current")).unwrap();
        let file = d.join("current/stack.toml");
        let mut w = FileWatch::new(&file).unwrap();
        std::os::unix::fs::symlink("releases/r2", d.join("current.new")).unwrap();
        std::fs::rename(d.join("current.new"), d.join("current")).unwrap();
        assert!(ready(&w));
        assert!(w.changed());
        // Now r2's folder is watched: an edit there is seen.
        std::fs::write(d.join("releases/r2/stack.toml"), "r2, edited").unwrap();
        assert!(ready(&w));
        assert!(w.changed());
    }

    #[test]
    fn a_replaced_folder_is_a_change_and_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("app")).unwrap();
        std::fs::write(d.join("app/stack.toml"), "1").unwrap();
        let mut w = FileWatch::new(&d.join("app/stack.toml")).unwrap();
        std::fs::create_dir_all(d.join("app.new")).unwrap();
        std::fs::write(d.join("app.new/stack.toml"), "2").unwrap();
        std::fs::rename(d.join("app"), d.join("app.old")).unwrap();
        std::fs::rename(d.join("app.new"), d.join("app")).unwrap();
        assert!(ready(&w));
        assert!(w.changed());
        std::fs::write(d.join("app/stack.toml"), "3").unwrap();
        assert!(ready(&w));
        assert!(w.changed(), "the new folder is watched");
    }
}
