//! `COPY` and `ADD` into a step's root, and the folder `WORKDIR` makes.
//! The root is an image's (hostile: any of its folders may be a symlink
//! to `/etc`), so every path in it is resolved with
//! `openat2(RESOLVE_IN_ROOT)` and every file made with `*at` calls on the
//! folder found so; nothing written ever lands outside it. Sources are
//! read the same way from their own root (the context, or an earlier
//! stage's). As docker does: a folder's contents are copied, not the
//! folder; a destination ending in `/` (or several sources) is a folder;
//! missing folders are made (`0755`); files keep their mode and
//! modification time; owners are root's (`--chown` sets them, `COPY
//! --from` keeps the stage's); `ADD` unpacks a local tar archive (plain,
//! gzip or zstd).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use crate::image::build::context;
use crate::image::build::ignore::Ignore;
use crate::sandbox::rootfs::openat2_in_root;

/// Where files come from.
#[derive(Debug)]
pub struct Source<'a> {
    /// The context folder, or an earlier stage's root.
    pub root: &'a Path,
    /// What the context's ignore file leaves out (empty for a stage).
    pub ignore: &'a Ignore,
    /// Keep the files' owners (`COPY --from`); else root's.
    pub keep_owners: bool,
}

/// How files land.
#[derive(Debug, Clone, Copy, Default)]
pub struct Landing {
    /// `--chown`, resolved.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
    /// `ADD`: unpack archives.
    pub unpack: bool,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn nix_err(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// The path `p` (absolute inside the root) as components relative to it.
fn inside(p: &Path) -> PathBuf {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn open_root(dir: &Path) -> Result<OwnedFd, String> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_err(dir.display()))
}

/// A folder of the root, made (with its missing parents, `0755`, owned
/// by `owner` or root) where it is not.
fn make_dir(root: &OwnedFd, rel: &Path, owner: Option<(u32, u32)>) -> Result<OwnedFd, String> {
    let shown = Path::new("/").join(rel);
    let mut at = PathBuf::new();
    for part in rel.iter() {
        let parent = at.clone();
        at.push(part);
        match openat2_in_root(root.as_raw_fd(), &at, libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let dir = openat2_in_root(
                    root.as_raw_fd(),
                    &parent,
                    libc::O_RDONLY | libc::O_DIRECTORY,
                )
                .map_err(io_err(shown.display()))?;
                nix::sys::stat::mkdirat(&dir, part, Mode::from_bits_truncate(0o755)).map_err(
                    |e| match e {
                        nix::Error::EEXIST => format!(
                            "{}: {} is a link to nothing inside the image",
                            shown.display(),
                            Path::new("/").join(&at).display()
                        ),
                        e => format!("{}: {e}", shown.display()),
                    },
                )?;
                let (uid, gid) = owner.unwrap_or((0, 0));
                chown_at(&dir, part, uid, gid, &shown)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(format!(
                    "{}: {} is not a folder",
                    shown.display(),
                    Path::new("/").join(&at).display()
                ));
            }
            Err(e) => return Err(format!("{}: {e}", shown.display())),
        }
    }
    openat2_in_root(root.as_raw_fd(), rel, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(io_err(shown.display()))
}

/// `WORKDIR`: the folder made where it is not. Whether it was.
pub fn workdir(root: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Result<bool, String> {
    let r = open_root(root)?;
    let rel = inside(dir);
    if openat2_in_root(r.as_raw_fd(), &rel, libc::O_PATH | libc::O_DIRECTORY).is_ok() {
        return Ok(false);
    }
    make_dir(&r, &rel, owner)?;
    Ok(true)
}

/// Copies `paths` (relative to `src.root`, as [`context::resolve`] found
/// them) to `dest` (absolute inside `root`; a folder when it ends in `/`).
pub fn copy(
    src: &Source<'_>,
    paths: &[PathBuf],
    root: &Path,
    dest: &str,
    how: Landing,
) -> Result<(), String> {
    let from = open_root(src.root)?;
    let to = open_root(root)?;
    let dest_rel = inside(Path::new(dest));
    let dest_is_dir = dest.ends_with('/')
        || paths.len() > 1
        || openat2_in_root(to.as_raw_fd(), &dest_rel, libc::O_PATH | libc::O_DIRECTORY).is_ok();
    for p in paths {
        let m = stat_in(&from, p)?;
        if m.is_dir() {
            make_dir(&to, &dest_rel, how.owner)?;
            for entry in context::below(src.root, p, src.ignore).map_err(|e| e.to_string())? {
                let rel_in = entry.strip_prefix(p).unwrap_or(&entry);
                one(&from, &entry, &to, &dest_rel.join(rel_in), src, how)?;
            }
            continue;
        }
        if how.unpack && m.is_file() {
            let mut f = openat2_in_root(from.as_raw_fd(), p, libc::O_RDONLY | libc::O_NOFOLLOW)
                .map(std::fs::File::from)
                .map_err(io_err(p.display()))?;
            if let Some(kind) = archive_kind(&mut f).map_err(io_err(p.display()))? {
                let dir = make_dir(&to, &dest_rel, how.owner)?;
                return_unpacked(f, kind, &dir, p)?;
                continue;
            }
        }
        let target = if dest_is_dir {
            dest_rel.join(p.file_name().unwrap_or(OsStr::new("")))
        } else {
            dest_rel.clone()
        };
        if target.as_os_str().is_empty() {
            return Err(format!("{dest}: cannot copy a file over the root"));
        }
        one(&from, p, &to, &target, src, how)?;
    }
    Ok(())
}

fn stat_in(root: &OwnedFd, rel: &Path) -> Result<std::fs::Metadata, String> {
    let fd = openat2_in_root(root.as_raw_fd(), rel, libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(io_err(rel.display()))?;
    std::fs::File::from(fd)
        .metadata()
        .map_err(io_err(rel.display()))
}

/// One entry (not following it if it is a link) to `target`.
fn one(
    from: &OwnedFd,
    rel: &Path,
    to: &OwnedFd,
    target: &Path,
    src: &Source<'_>,
    how: Landing,
) -> Result<(), String> {
    let shown = Path::new("/").join(target);
    let m = stat_in(from, rel)?;
    let (name, parent) = match (target.file_name(), target.parent()) {
        (Some(n), Some(p)) => (n, p),
        _ => return Ok(()), // the destination folder itself
    };
    let dir = make_dir(to, parent, how.owner)?;
    let (uid, gid) = match how.owner {
        Some(o) => o,
        None if src.keep_owners => (m.uid(), m.gid()),
        None => (0, 0),
    };
    let mode = how.mode.unwrap_or(m.mode() & 0o7777);
    let existing =
        nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok();
    let existing_dir = existing.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR);
    if m.is_dir() {
        if !existing_dir {
            if existing.is_some() {
                unlink(&dir, name, false, &shown)?;
            }
            nix::sys::stat::mkdirat(&dir, name, Mode::from_bits_truncate(0o700))
                .map_err(nix_err(shown.display()))?;
        }
        let d = nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nix_err(shown.display()))?;
        return own(&d, uid, gid, mode, &shown);
    }
    if existing_dir {
        return Err(format!(
            "{}: a folder is there; a file cannot replace it",
            shown.display()
        ));
    }
    if existing.is_some() {
        unlink(&dir, name, false, &shown)?;
    }
    let times = [
        nix::sys::time::TimeSpec::new(m.atime(), m.atime_nsec()),
        nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec()),
    ];
    if m.file_type().is_symlink() {
        let link = nix::fcntl::readlinkat(from, rel).map_err(nix_err(rel.display()))?;
        nix::unistd::symlinkat(link.as_os_str(), &dir, name).map_err(nix_err(shown.display()))?;
        chown_at(&dir, name, uid, gid, &shown)?;
        return nix::sys::stat::utimensat(
            &dir,
            name,
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(nix_err(shown.display()));
    }
    if !m.is_file() {
        // Sockets, pipes and devices have no place in an image's files.
        return Ok(());
    }
    let mut input = openat2_in_root(from.as_raw_fd(), rel, libc::O_RDONLY | libc::O_NOFOLLOW)
        .map(std::fs::File::from)
        .map_err(io_err(rel.display()))?;
    let out = nix::fcntl::openat(
        &dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(nix_err(shown.display()))?;
    let mut out = std::fs::File::from(out);
    std::io::copy(&mut input, &mut out).map_err(io_err(shown.display()))?;
    own(&out, uid, gid, mode, &shown)?;
    nix::sys::stat::futimens(&out, &times[0], &times[1]).map_err(nix_err(shown.display()))
}

/// The owner of `name` in `dir`, not following it if it is a link.
fn chown_at(dir: &OwnedFd, name: &OsStr, uid: u32, gid: u32, shown: &Path) -> Result<(), String> {
    nix::unistd::fchownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(nix_err(shown.display()))
}

/// Owner, then mode (a change of owner clears set-id bits).
fn own(fd: &impl AsFd, uid: u32, gid: u32, mode: u32, shown: &Path) -> Result<(), String> {
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(nix_err(shown.display()))?;
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)).map_err(nix_err(shown.display()))
}

fn unlink(dir: &OwnedFd, name: &OsStr, is_dir: bool, shown: &Path) -> Result<(), String> {
    let flag = if is_dir {
        nix::unistd::UnlinkatFlags::RemoveDir
    } else {
        nix::unistd::UnlinkatFlags::NoRemoveDir
    };
    nix::unistd::unlinkat(dir, name, flag).map_err(nix_err(shown.display()))
}

/// How an archive `ADD` unpacks is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Tar,
    Gzip,
    Zstd,
}

/// What `f` is, read from its first bytes (then read again from its
/// start): a tar archive (plain, gzip, zstd) or not (`None`: copied as
/// a file). bzip2 and xz are refused, saying so.
fn archive_kind(f: &mut std::fs::File) -> std::io::Result<Option<Archive>> {
    use std::io::Seek;
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    head.truncate(n);
    f.rewind()?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Some(Archive::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Archive::Zstd)
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(std::io::Error::other(
            "ADD unpacks tar archives plain, gzip or zstd compressed; this one is bzip2 or xz (unpack it in a RUN step)",
        ));
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Archive::Tar)
    } else {
        None
    };
    Ok(kind)
}

/// Unpacks the archive `f` into the folder `dir` (resolved in the root).
fn return_unpacked(
    f: std::fs::File,
    kind: Archive,
    dir: &OwnedFd,
    shown: &Path,
) -> Result<(), String> {
    // The folder was found inside the root; its own path through /proc
    // leads nowhere else, whatever links the image holds.
    let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let opts = crate::image::unpack::Options {
        devices: false,
        owners: true,
    };
    let r = match kind {
        Archive::Tar => crate::image::unpack::unpack(f, &at, opts),
        Archive::Gzip => crate::image::unpack::unpack(flate2::read::GzDecoder::new(f), &at, opts),
        Archive::Zstd => match ruzstd::decoding::StreamingDecoder::new(f) {
            Ok(z) => crate::image::unpack::unpack(z, &at, opts),
            Err(e) => return Err(format!("{}: zstd: {e}", shown.display())),
        },
    };
    r.map(|_| ())
        .map_err(|e| format!("{}: {e}", shown.display()))
}

/// `--chown=USER[:GROUP]` as ids: numbers as they are, names looked up in
/// the root's `/etc/passwd` and `/etc/group` (a user alone: with the
/// user's group).
pub fn owner(root: &Path, spec: &str) -> Result<(u32, u32), String> {
    let r = open_root(root)?;
    let read = |file: &str| -> String {
        openat2_in_root(r.as_raw_fd(), Path::new(file), libc::O_RDONLY)
            .ok()
            .map(std::fs::File::from)
            .and_then(|mut f| {
                let mut s = String::new();
                f.by_ref()
                    .take(4 << 20)
                    .read_to_string(&mut s)
                    .ok()
                    .map(|_| s)
            })
            .unwrap_or_default()
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let find = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
            .find(|f| f.first().is_some_and(|n| n == name) && f.len() >= 4)
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            let f = find(&read("etc/passwd"), user).ok_or_else(|| {
                format!("--chown={spec}: no user {user} in the image's /etc/passwd")
            })?;
            let id = |i: usize| {
                f[i].parse::<u32>()
                    .map_err(|_| format!("--chown={spec}: /etc/passwd: bad entry for {user}"))
            };
            (id(2)?, id(3)?)
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find(&read("etc/group"), g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("--chown={spec}: no group {g} in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// `--chmod=MODE`: octal.
pub fn mode(spec: &str) -> Result<u32, String> {
    u32::from_str_radix(spec, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={spec}: expected an octal mode such as 0755"))
}
