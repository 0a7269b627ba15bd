//! Unpacks one layer (a tar stream) into a directory, in the form
//! overlayfs stacks: whiteouts (`.wh.NAME`) become 0:0 character devices,
//! opaque directories (`.wh..wh..opq`) get `trusted.overlay.opaque=y`.
//! Safe against hostile archives: an entry with `..` in its path is
//! refused, absolute paths are taken relative to the layer, and every path
//! is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink written by an
//! earlier entry can never lead a later one outside the layer directory.

use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sandbox::rootfs::openat2_in_root;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {0:?} leads outside the layer (`..` in its path); the layer is refused")]
    Escape(String),
    #[error("layer entry {path:?}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the layer is not a valid tar archive: {0}")]
    Tar(#[source] std::io::Error),
}

/// What unpacking did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
    /// Entries not created (device nodes, when not allowed), by path.
    pub skipped: Vec<String>,
}

/// How to unpack.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Create device nodes found in the layer (else they are skipped).
    pub devices: bool,
    /// Give entries their owners from the archive (needs root).
    pub owners: bool,
}

/// A path of the archive as components inside the layer: leading `/` and
/// `.` dropped; `..` refused.
pub fn components(raw: &[u8]) -> Result<Vec<&OsStr>, UnpackError> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::Escape(
                    String::from_utf8_lossy(raw).into_owned(),
                ));
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

fn cstr(s: &OsStr) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

fn last_err(path: &str) -> UnpackError {
    UnpackError::Io {
        path: path.to_string(),
        source: std::io::Error::last_os_error(),
    }
}

/// The directory `parts` under the layer root, made (0755) where missing.
fn dir_of(root: &OwnedFd, parts: &[&OsStr], shown: &str) -> Result<OwnedFd, UnpackError> {
    let mut rel = PathBuf::new();
    for p in parts {
        rel.push(p);
        match openat2_in_root(root.as_raw_fd(), &rel, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = openat2_in_root(
                    root.as_raw_fd(),
                    rel.parent().unwrap_or(Path::new("")),
                    libc::O_PATH | libc::O_DIRECTORY,
                )
                .map_err(|source| UnpackError::Io {
                    path: shown.into(),
                    source,
                })?;
                let name = cstr(p);
                // SAFETY: a valid dirfd and NUL-terminated name.
                if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) } < 0 {
                    let e = std::io::Error::last_os_error();
                    let source = if e.raw_os_error() == Some(libc::EEXIST) {
                        // Something is there yet does not resolve: a symlink
                        // to nothing inside the layer. Not followed further.
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("{} is a symlink to nothing inside the layer", rel.display()),
                        )
                    } else {
                        e
                    };
                    return Err(UnpackError::Io {
                        path: shown.into(),
                        source,
                    });
                }
            }
            Err(source) => {
                return Err(UnpackError::Io {
                    path: shown.into(),
                    source,
                });
            }
        }
    }
    openat2_in_root(root.as_raw_fd(), &rel, libc::O_PATH | libc::O_DIRECTORY).map_err(|source| {
        UnpackError::Io {
            path: shown.into(),
            source,
        }
    })
}

/// Removes what is at `name` in `dir` (a directory only when `dirs_too`).
fn clear(dir: &OwnedFd, name: &CString, dirs_too: bool) {
    // SAFETY: a valid dirfd and NUL-terminated name.
    unsafe {
        if libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) < 0 && dirs_too {
            libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR);
        }
    }
}

/// Unpacks the tar stream `layer` into the directory `dest`.
pub fn unpack(layer: impl Read, dest: &Path, opts: Options) -> Result<Unpacked, UnpackError> {
    let root_path = dest.display().to_string();
    let c = CString::new(dest.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_err(&root_path));
    }
    // SAFETY: a new descriptor, ours.
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut archive = tar::Archive::new(layer);
    let mut done = Unpacked::default();
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let parts = components(&raw)?;
        let Some((name, parents)) = parts.split_last() else {
            continue; // the layer root itself
        };
        let dir = dir_of(&root, parents, &shown)?;
        let header = entry.header().clone();
        // Extended attributes (file capabilities, SELinux labels, ...) as
        // PAX records `SCHILY.xattr.NAME`.
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions() {
            Ok(Some(exts)) => exts
                .flatten()
                .filter_map(|e| {
                    let key = e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                    Some((key, e.value_bytes().to_vec()))
                })
                .collect(),
            _ => Vec::new(),
        };
        let kind = header.entry_type();
        done.entries += 1;
        // Whiteouts.
        if name.as_bytes() == b".wh..wh..opq" {
            set_opaque(&dir, &shown)?;
            continue;
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
            let n = cstr(OsStr::from_bytes(hidden));
            clear(&dir, &n, true);
            // SAFETY: a valid dirfd and NUL-terminated name; 0:0 char device.
            if unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), libc::S_IFCHR, 0) } < 0 {
                return Err(last_err(&shown));
            }
            continue;
        }
        let n = cstr(name);
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                // SAFETY: a valid dirfd and NUL-terminated name.
                if unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), mode) } < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(UnpackError::Io {
                            path: shown,
                            source: e,
                        });
                    }
                    // An existing non-directory gives way.
                    let is_dir = openat2_in_root(
                        root.as_raw_fd(),
                        &parts.iter().collect::<PathBuf>(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    )
                    .is_ok();
                    if !is_dir {
                        clear(&dir, &n, false);
                        // SAFETY: as above.
                        if unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), mode) } < 0 {
                            return Err(last_err(&shown));
                        }
                    }
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear(&dir, &n, false);
                // SAFETY: a valid dirfd and NUL-terminated name; O_NOFOLLOW|O_EXCL.
                let fd = unsafe {
                    libc::openat(
                        dir.as_raw_fd(),
                        n.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        mode,
                    )
                };
                if fd < 0 {
                    return Err(last_err(&shown));
                }
                // SAFETY: a new descriptor, ours.
                let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                done.bytes +=
                    std::io::copy(&mut entry, &mut file).map_err(|source| UnpackError::Io {
                        path: shown.clone(),
                        source,
                    })?;
                // The umask may have cut the mode.
                let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
            }
            tar::EntryType::Symlink => {
                let target = header
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let t = CString::new(target).unwrap_or_default();
                clear(&dir, &n, false);
                // SAFETY: NUL-terminated strings and a valid dirfd. The link's
                // text is not followed here; later entries resolve it in-root.
                if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } < 0 {
                    return Err(last_err(&shown));
                }
            }
            tar::EntryType::Link => {
                let target = header
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let tparts = components(&target)?;
                let Some((tname, tparents)) = tparts.split_last() else {
                    return Err(UnpackError::Escape(shown));
                };
                let tdir = dir_of(&root, tparents, &shown)?;
                let tn = cstr(tname);
                clear(&dir, &n, false);
                // SAFETY: valid dirfds and NUL-terminated names; the source is
                // not followed if it is a symlink (flags 0).
                if unsafe {
                    libc::linkat(
                        tdir.as_raw_fd(),
                        tn.as_ptr(),
                        dir.as_raw_fd(),
                        n.as_ptr(),
                        0,
                    )
                } < 0
                {
                    return Err(last_err(&shown));
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if kind != tar::EntryType::Fifo && !opts.devices {
                    done.skipped.push(shown);
                    continue;
                }
                let file_type = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                clear(&dir, &n, false);
                // SAFETY: a valid dirfd and NUL-terminated name.
                if unsafe { libc::mknodat(dir.as_raw_fd(), n.as_ptr(), file_type | mode, dev) } < 0
                {
                    return Err(last_err(&shown));
                }
            }
            _ => {
                done.skipped.push(shown);
                continue;
            }
        }
        if opts.owners {
            let (uid, gid) = (
                header.uid().unwrap_or(0) as libc::uid_t,
                header.gid().unwrap_or(0) as libc::gid_t,
            );
            // SAFETY: a valid dirfd and name; the entry itself, not a link's target.
            if unsafe {
                libc::fchownat(
                    dir.as_raw_fd(),
                    n.as_ptr(),
                    uid,
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            } < 0
            {
                return Err(last_err(&shown));
            }
        }
        // After chown, which would clear file capabilities.
        for (key, value) in &xattrs {
            let path =
                CString::new(format!("/proc/self/fd/{}/", dir.as_raw_fd())).unwrap_or_default();
            let mut full = path.into_bytes();
            full.extend_from_slice(n.as_bytes());
            let full = CString::new(full).unwrap_or_default();
            let k = CString::new(key.as_str()).unwrap_or_default();
            // SAFETY: NUL-terminated path and name, a value of its length;
            // l* does not follow a symlink entry.
            let r = unsafe {
                libc::lsetxattr(
                    full.as_ptr(),
                    k.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if r < 0 {
                // A filesystem without that namespace: the entry stays, without it.
                done.skipped.push(format!("{shown} (xattr {key})"));
            }
        }
    }
    Ok(done)
}

fn set_opaque(dir: &OwnedFd, shown: &str) -> Result<(), UnpackError> {
    let path = CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd())).unwrap_or_default();
    // SAFETY: NUL-terminated path, name and a value of the given length.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if r < 0 {
        return Err(last_err(shown));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry written by hand, so that hostile names get through.
    fn entry(out: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }

    fn finish(mut out: Vec<u8>) -> Vec<u8> {
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn a_plain_layer_unpacks_with_links() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        entry(&mut t, "etc/", tar::EntryType::Directory, "", b"");
        entry(
            &mut t,
            "etc/hostname",
            tar::EntryType::Regular,
            "",
            b"box\n",
        );
        entry(&mut t, "/bin/sh", tar::EntryType::Regular, "", b"#!");
        entry(&mut t, "./bin/ash", tar::EntryType::Link, "bin/sh", b"");
        entry(&mut t, "bin/dash", tar::EntryType::Symlink, "sh", b"");
        let done = unpack(&finish(t)[..], dir.path(), Options::default()).unwrap();
        assert_eq!(done.entries, 5);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("etc/hostname")).unwrap(),
            "box\n"
        );
        // The absolute /bin/sh landed inside the layer; missing parents were made.
        assert_eq!(std::fs::read(dir.path().join("bin/sh")).unwrap(), b"#!");
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::metadata(dir.path().join("bin/ash")).unwrap();
        assert_eq!(
            a.ino(),
            std::fs::metadata(dir.path().join("bin/sh")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("bin/dash")).unwrap(),
            Path::new("sh")
        );
    }

    #[test]
    fn hostile_entries_never_write_outside_the_layer() {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        // `..` in a path: the layer is refused, nothing written above it.
        let mut t = Vec::new();
        entry(&mut t, "../../escaped", tar::EntryType::Regular, "", b"x");
        let e = unpack(&finish(t)[..], &dest, Options::default()).unwrap_err();
        assert!(matches!(e, UnpackError::Escape(_)), "{e}");
        assert!(!outer.path().join("escaped").exists());
        // A symlink to a folder outside, then a file through it: refused
        // (inside the layer it leads to nothing), nothing written outside.
        let outside = outer.path().to_str().unwrap().to_string();
        let mut t = Vec::new();
        entry(&mut t, "evil", tar::EntryType::Symlink, &outside, b"");
        entry(&mut t, "evil/owned", tar::EntryType::Regular, "", b"x");
        let e = unpack(&finish(t)[..], &dest, Options::default()).unwrap_err();
        assert!(e.to_string().contains("evil/owned"), "{e}");
        assert!(!outer.path().join("owned").exists());
        // Climbing out by a relative or absolute symlink stops at the layer's root.
        let mut t = Vec::new();
        entry(&mut t, "up", tar::EntryType::Symlink, "../../../..", b"");
        entry(&mut t, "up/owned2", tar::EntryType::Regular, "", b"x");
        entry(&mut t, "abs", tar::EntryType::Symlink, "/", b"");
        entry(&mut t, "abs/owned3", tar::EntryType::Regular, "", b"x");
        unpack(&finish(t)[..], &dest, Options::default()).unwrap();
        assert!(dest.join("owned2").exists() && dest.join("owned3").exists());
        assert!(!outer.path().join("owned2").exists());
        assert!(!Path::new("/owned3").exists());
        // A hard link to a file outside: refused.
        let mut t = Vec::new();
        entry(
            &mut t,
            "passwd",
            tar::EntryType::Link,
            "../../etc/passwd",
            b"",
        );
        assert!(unpack(&finish(t)[..], &dest, Options::default()).is_err());
        // A hard link through a symlink that points outside resolves inside.
        let mut t = Vec::new();
        entry(&mut t, "p2", tar::EntryType::Link, "up/etc/passwd", b"");
        assert!(unpack(&finish(t)[..], &dest, Options::default()).is_err());
        assert!(!dest.join("p2").exists());
    }

    #[test]
    fn extended_attributes_come_along() {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: trusted.* xattrs need root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.trusted.rkstack", &b"yes"[..])])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(1);
        b.append_data(&mut h, "marked", &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        unpack(&bytes[..], dir.path(), Options::default()).unwrap();
        let p = CString::new(dir.path().join("marked").as_os_str().as_bytes()).unwrap();
        let mut v = [0u8; 8];
        // SAFETY: NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                c"trusted.rkstack".as_ptr(),
                v.as_mut_ptr().cast(),
                8,
            )
        };
        assert_eq!(&v[..n.max(0) as usize], b"yes");
    }

    #[test]
    fn whiteouts_become_what_overlayfs_reads() {
        // mknod of a whiteout and the trusted.* xattr need root.
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: whiteouts need root (CAP_MKNOD, trusted.* xattrs)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut t = Vec::new();
        entry(&mut t, "etc/.wh.gone", tar::EntryType::Regular, "", b"");
        entry(&mut t, "var/.wh..wh..opq", tar::EntryType::Regular, "", b"");
        let done = unpack(&finish(t)[..], dir.path(), Options::default()).unwrap();
        assert_eq!(done.entries, 2);
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::symlink_metadata(dir.path().join("etc/gone")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0);
        let mut v = [0u8; 4];
        let p = CString::new(dir.path().join("var").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::getxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                v.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!((n, v[0]), (1, b'y'));
    }
}
