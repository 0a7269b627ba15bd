//! `user = "name[:group]"` looked up in the container's own `/etc/passwd` and
//! `/etc/group` (after pivot_root, so the lookup cannot leave the rootfs).

use std::path::Path;

use super::channel::StepError;
use super::rootfs::errno_err;
use super::spec::UserSpec;

/// The most of `/etc/passwd` or `/etc/group` that is read: they are the
/// container's files, so their size is the container's to choose.
pub const MAX_USER_FILE: u64 = 4 << 20;

/// `(uid, gid, supplementary groups)`.
pub fn resolve(user: &UserSpec) -> Result<(u32, u32, Vec<u32>), StepError> {
    let passwd = read_bounded(Path::new("/etc/passwd"))?;
    let group = read_bounded(Path::new("/etc/group"))?;
    let (uid, gid, name) = match user {
        UserSpec::Id { uid, gid } => {
            let entry = passwd_by(&passwd, |f| f[2] == uid.to_string());
            let default_gid = entry
                .as_ref()
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(*uid);
            (
                *uid,
                gid.unwrap_or(default_gid),
                entry.map(|f| f[0].clone()),
            )
        }
        UserSpec::Name { name, group: g } => {
            let f = passwd_by(&passwd, |f| f[0] == *name).ok_or_else(|| {
                errno_err(
                    "user",
                    libc::ENOENT,
                    format!("no user {name:?} in the container's /etc/passwd"),
                )
            })?;
            let uid = f[2]
                .parse()
                .map_err(|_| errno_err("user", libc::EINVAL, format!("bad uid for {name}")))?;
            let mut gid = f[3]
                .parse()
                .map_err(|_| errno_err("user", libc::EINVAL, format!("bad gid for {name}")))?;
            if let Some(g) = g {
                gid = match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => group_by(&group, |f| f[0] == *g)
                        .and_then(|f| f[2].parse().ok())
                        .ok_or_else(|| {
                            errno_err(
                                "user",
                                libc::ENOENT,
                                format!("no group {g:?} in the container's /etc/group"),
                            )
                        })?,
                };
            }
            (uid, gid, Some(name.clone()))
        }
    };
    // Supplementary groups: every group listing the user by name.
    let mut groups = vec![gid];
    if let Some(n) = name {
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4
                && f[3].split(',').any(|m| m == n)
                && let Ok(g) = f[2].parse::<u32>()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok((uid, gid, groups))
}

fn passwd_by(text: &str, pred: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
    text.lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && pred(f))
}

fn group_by(text: &str, pred: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
    text.lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && pred(f))
}

/// A file of the container's, read so that nothing it controls can block
/// or exhaust the reader: opened non-blocking (a FIFO does not wait for a
/// writer), only a regular file is read (not `/dev/zero`, a FIFO or a
/// socket), and at most [`MAX_USER_FILE`] bytes. A missing file reads as
/// empty.
pub fn read_bounded(path: &Path) -> Result<String, StepError> {
    use crate::bounded::Refusal;
    let refuse = |errno: i32, why: String| {
        errno_err(
            "user",
            errno,
            format!("the container's {}: {why}", path.display()),
        )
    };
    let bytes = match crate::bounded::read_regular(path, MAX_USER_FILE) {
        Ok(b) => b,
        Err(Refusal::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(String::new());
        }
        Err(Refusal::Io(what, e)) => {
            return Err(refuse(
                e.raw_os_error().unwrap_or(libc::EINVAL),
                what.into(),
            ));
        }
        Err(Refusal::NotRegular(what)) => {
            return Err(refuse(libc::EINVAL, format!("{what}; refused")));
        }
        Err(Refusal::TooBig) => {
            return Err(refuse(
                libc::EFBIG,
                format!("larger than {} MiB; refused", MAX_USER_FILE >> 20),
            ));
        }
    };
    String::from_utf8(bytes).map_err(|_| refuse(libc::EINVAL, "unreadable".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("passwd");
        assert_eq!(read_bounded(&missing).ok(), Some(String::new()));
        std::fs::write(&missing, "root:x:0:0::/:/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_bounded(&missing).is_ok_and(|t| t.starts_with("root:")));
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = read_bounded(&fifo)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("a FIFO; refused"), "{e}");
        let e = read_bounded(Path::new("/dev/zero"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("a device; refused"), "{e}");
        let big = dir.path().join("big");
        let f = std::fs::File::create(&big).unwrap_or_else(|e| panic!("{e}"));
        f.set_len(MAX_USER_FILE + 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = read_bounded(&big)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("larger than 4 MiB"), "{e}");
    }
}
