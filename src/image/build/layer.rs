//! A build step's layer, made from its overlayfs upper folder as OCI wants
//! it and the same every time: entries sorted by path, times clamped to
//! `SOURCE_DATE_EPOCH`, no user or group names, a gzip header without a
//! time or a name. overlayfs' whiteouts (character device 0:0) become
//! `.wh.NAME` files, an opaque folder (`trusted.overlay.opaque=y`) gets a
//! `.wh..wh..opq` file, hard links stay links, and extended attributes
//! (but overlayfs' own) are kept as PAX records.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::image::store::{Digest, Store};

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The digest of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: Digest,
    /// The digest and size of the gzip-compressed blob.
    pub blob: Digest,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("layer of {path}: {source}")]
pub struct LayerError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |source| LayerError {
        path: path.to_path_buf(),
        source,
    }
}

/// A folder's entries sorted by the name they get in the layer (a
/// whiteout's is `.wh.NAME`), and whether each is a folder.
fn entries(root: &Path, rel: &Path) -> std::io::Result<Vec<(PathBuf, bool)>> {
    let mut entries: Vec<(Vec<u8>, PathBuf, bool)> = Vec::new();
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let n = e.file_name();
        let m = std::fs::symlink_metadata(e.path())?;
        let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
        let mut key = if whiteout {
            b".wh.".to_vec()
        } else {
            Vec::new()
        };
        key.extend_from_slice(n.as_encoded_bytes());
        entries.push((key, rel.join(&n), m.is_dir()));
    }
    entries.sort();
    Ok(entries.into_iter().map(|(_, p, d)| (p, d)).collect())
}

/// Every path under `root`, depth first, each folder right before what it
/// holds. Without recursion: a step may leave a tree of any depth.
fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![entries(root, Path::new(""))?.into_iter()];
    while let Some(top) = stack.last_mut() {
        match top.next() {
            Some((p, dir)) => {
                out.push(p.clone());
                if dir {
                    stack.push(entries(root, &p)?.into_iter());
                }
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(out)
}

fn cstr(path: &Path) -> std::ffi::CString {
    std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

/// Reads into a buffer of the size the kernel says it needs (`call`
/// with an empty buffer), again if it grew meanwhile; `None` if it cannot
/// be read (gone meanwhile, or not supported there).
fn sized(call: impl Fn(*mut libc::c_void, usize) -> isize) -> Option<Vec<u8>> {
    for _ in 0..4 {
        let want = call(std::ptr::null_mut(), 0);
        if want < 0 {
            return None;
        }
        if want == 0 {
            return Some(Vec::new());
        }
        let mut buf = vec![0u8; want as usize];
        let n = call(buf.as_mut_ptr().cast(), buf.len());
        if n >= 0 {
            buf.truncate(n as usize);
            return Some(buf);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
    }
    None
}

/// The extended attributes of `path` (not following a link), however
/// many and however large.
fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let c = cstr(path);
    // SAFETY: the buffer (or none, to ask the size) is valid for its
    // length; the path is NUL-terminated.
    let Some(names) = sized(|buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) })
    else {
        return out;
    };
    for name in names.split(|&b| b == 0).filter(|x| !x.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        if key.starts_with("trusted.overlay.") {
            continue;
        }
        let Ok(kc) = std::ffi::CString::new(name) else {
            continue;
        };
        // SAFETY: as above, for one attribute's value.
        let value = sized(|buf, len| unsafe { libc::lgetxattr(c.as_ptr(), kc.as_ptr(), buf, len) });
        if let Some(v) = value {
            out.insert(key, v);
        }
    }
    out
}

fn is_opaque(path: &Path) -> bool {
    let c = cstr(path);
    let mut v = [0u8; 2];
    // SAFETY: a two-byte buffer for the attribute's value.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

/// Writes what one sink gets to two: the hash of the tar and the gzip.
struct Tee<W: Write> {
    hash: sha2::Sha256,
    out: W,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Counts and hashes the compressed bytes on their way to a file.
struct Hashed<W: Write> {
    hash: sha2::Sha256,
    size: u64,
    out: W,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The layer of the upper folder `upper`, written into `store`; times
/// after `epoch` (seconds) become `epoch`.
pub fn write(upper: &Path, store: &Store, epoch: u64) -> Result<Layer, LayerError> {
    let tmp_dir = store.tmp_dir();
    let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
    let file = tmp.reopen().map_err(io(tmp.path()))?;
    let hashed = Hashed {
        hash: sha2::Sha256::new(),
        size: 0,
        out: std::io::BufWriter::new(file),
    };
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(hashed, flate2::Compression::default());
    let tee = Tee {
        hash: sha2::Sha256::new(),
        out: gz,
    };
    let mut ar = tar::Builder::new(tee);
    ar.mode(tar::HeaderMode::Deterministic);
    let mut links: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    for rel in walk(upper).map_err(io(upper))? {
        let full = upper.join(&rel);
        let m = std::fs::symlink_metadata(&full).map_err(io(&full))?;
        let ft = m.file_type();
        let mut h = tar::Header::new_ustar();
        h.set_uid(u64::from(m.uid()));
        h.set_gid(u64::from(m.gid()));
        h.set_mode(m.mode() & 0o7777);
        h.set_mtime((m.mtime().max(0) as u64).min(epoch));
        h.set_size(0);
        let name = rel
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if ft.is_char_device() && m.rdev() == 0 {
            // A whiteout: the lower file is deleted.
            let mut wh = std::ffi::OsString::from(".wh.");
            wh.push(&name);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            ar.append_data(&mut h, parent.join(wh), std::io::empty())
                .map_err(io(&full))?;
            continue;
        }
        let second_link = ft.is_file() && m.nlink() > 1 && links.contains_key(&(m.dev(), m.ino()));
        let x = if second_link {
            BTreeMap::new()
        } else {
            xattrs(&full)
        };
        if !x.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = x
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            ar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io(&full))?;
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            ar.append_data(&mut h, &rel, std::io::empty())
                .map_err(io(&full))?;
            if is_opaque(&full) {
                let mut o = tar::Header::new_ustar();
                o.set_entry_type(tar::EntryType::Regular);
                o.set_mode(0o644);
                o.set_mtime(0);
                o.set_size(0);
                ar.append_data(&mut o, rel.join(".wh..wh..opq"), std::io::empty())
                    .map_err(io(&full))?;
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&full).map_err(io(&full))?;
            h.set_entry_type(tar::EntryType::Symlink);
            ar.append_link(&mut h, &rel, &target).map_err(io(&full))?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                let key = (m.dev(), m.ino());
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    ar.append_link(&mut h, &rel, first).map_err(io(&full))?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            let f = std::fs::File::open(&full).map_err(io(&full))?;
            ar.append_data(&mut h, &rel, f).map_err(io(&full))?;
        } else {
            // FIFOs and device nodes a step made.
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                continue;
            };
            h.set_entry_type(kind);
            let _ = h.set_device_major(libc::major(m.rdev()));
            let _ = h.set_device_minor(libc::minor(m.rdev()));
            ar.append_data(&mut h, &rel, std::io::empty())
                .map_err(io(&full))?;
        }
    }
    let tee = ar.into_inner().map_err(io(upper))?;
    let diff_id = Digest::from_sha256(tee.hash.finalize().into());
    let mut hashed = tee.out.finish().map_err(io(upper))?;
    hashed.flush().map_err(io(upper))?;
    let Hashed { hash, size, out } = hashed;
    drop(out);
    let blob = Digest::from_sha256(hash.finalize().into());
    let f = std::fs::File::open(tmp.path()).map_err(io(tmp.path()))?;
    store.put(&blob, f).map_err(|e| LayerError {
        path: upper.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Layer {
        diff_id,
        blob,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list that grows between the size asked and the read is read
    /// again at its new size; nothing is cut at a fixed buffer.
    #[test]
    fn attributes_are_read_at_the_size_the_kernel_says() {
        let calls = std::cell::Cell::new(0usize);
        let grown = sized(|buf, len| {
            calls.set(calls.get() + 1);
            // 10 000 bytes when first asked; 12 000 by the time it is read.
            let size = if calls.get() == 1 { 10_000 } else { 12_000 };
            if buf.is_null() {
                return size as isize;
            }
            if len < size {
                // SAFETY: setting this thread's errno, as the kernel would.
                unsafe { *libc::__errno_location() = libc::ERANGE };
                return -1;
            }
            size as isize
        });
        assert_eq!(grown.map(|v| v.len()), Some(12_000));
        assert_eq!(calls.get(), 4);
        assert!(sized(|_, _| 0).is_some_and(|v| v.is_empty()));
        assert!(sized(|_, _| -1).is_none());
    }
}
