//! Blobs by digest under `DATA/images/blobs/sha256/HEX`. A blob is written
//! to a temporary file while its digest is computed, and kept only when
//! the digest is the one expected: a mismatch leaves nothing behind.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A `sha256:HEX` content digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, StoreError> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| StoreError::BadDigest(s.to_string()))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(StoreError::BadDigest(s.to_string()));
        }
        Ok(Digest(hex.to_string()))
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(hex(&Sha256::digest(bytes)))
    }

    /// The digest a SHA-256 hasher fed elsewhere came to.
    pub fn from_sha256(sum: [u8; 32]) -> Digest {
        Digest(hex(&sum))
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)")]
    BadDigest(String),
    #[error("blob {expected}: its content has digest {got}; nothing was kept")]
    Mismatch { expected: Digest, got: Digest },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The store's folder. While a `Store` is open it holds a shared lock on
/// `.lock`: [`Store::collect`] takes it exclusively, so a pull or import
/// that has written blobs but not yet recorded its reference never loses
/// them to a collection running beside it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lock: std::sync::Arc<std::fs::File>,
}

fn flock(f: &std::fs::File, how: i32, path: &Path) -> Result<(), StoreError> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(f), how) } != 0 {
        return Err(io(path)(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Store {
    /// The store under `root` (`DATA/images`), made if missing.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for d in ["blobs/sha256", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let path = root.join(".lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        flock(&lock, libc::LOCK_SH, &path)?;
        Ok(Store {
            root: root.to_path_buf(),
            lock: std::sync::Arc::new(lock),
        })
    }

    /// Scratch space for blobs being made (emptied by a collection, which
    /// waits until no one has the store open).
    /// The store's own folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Writes a blob that must have digest `expected`; returns its size.
    /// One already stored is not written again.
    pub fn put(&self, expected: &Digest, mut from: impl Read) -> Result<u64, StoreError> {
        let dest = self.blob_path(expected);
        if dest.is_file() {
            return std::fs::metadata(&dest).map(|m| m.len()).map_err(io(&dest));
        }
        let Some(mut w) = self.writer(expected, false)? else {
            return std::fs::metadata(&dest).map(|m| m.len()).map_err(io(&dest));
        };
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = from.read(&mut buf).map_err(io(&dest))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        w.finish()
    }

    /// A writer for the blob `expected`, fed piece by piece; none when the
    /// blob is stored already (perhaps by another writer this one waited
    /// for: two pulls sharing a layer write it once). With `resume`, what an
    /// earlier interrupted write left (`tmp/HEX.partial`) is kept and
    /// [`BlobWriter::offset`] says how much of the blob it holds.
    pub fn writer(
        &self,
        expected: &Digest,
        resume: bool,
    ) -> Result<Option<BlobWriter>, StoreError> {
        use std::io::Seek;
        use std::os::unix::fs::MetadataExt;
        let partial = self
            .root
            .join("tmp")
            .join(format!("{}.partial", expected.hex()));
        let dest = self.blob_path(expected);
        let mut file = loop {
            if dest.is_file() {
                return Ok(None);
            }
            let file = std::fs::File::options()
                .create(true)
                .read(true)
                .write(true)
                .truncate(false)
                .open(&partial)
                .map_err(io(&partial))?;
            // One writer per blob, across processes: the lock is the partial
            // file's own; a writer that finished renamed it to the blob.
            flock(&file, libc::LOCK_EX, &partial)?;
            let ours = file.metadata().map_err(io(&partial))?.ino();
            match std::fs::metadata(&partial) {
                Ok(m) if m.ino() == ours => break file,
                // Renamed into the store (or dropped) while we waited: look again.
                _ => continue,
            }
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        if resume {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut buf).map_err(io(&partial))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
        } else {
            file.set_len(0).map_err(io(&partial))?;
            file.rewind().map_err(io(&partial))?;
        }
        Ok(Some(BlobWriter {
            dest,
            partial,
            expected: expected.clone(),
            file,
            hasher,
            size,
        }))
    }
}

/// A blob being written (see [`Store::writer`]).
#[derive(Debug)]
pub struct BlobWriter {
    dest: PathBuf,
    partial: PathBuf,
    expected: Digest,
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes of the blob written so far (kept from an earlier try included).
    pub fn offset(&self) -> u64 {
        self.size
    }

    /// Starts again from nothing (the source cannot resume).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        use std::io::Seek;
        self.file.set_len(0).map_err(io(&self.partial))?;
        self.file.rewind().map_err(io(&self.partial))?;
        self.hasher = Sha256::new();
        self.size = 0;
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.file.write_all(bytes).map_err(io(&self.partial))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Keeps the blob if it has the digest it must have; otherwise removes
    /// what was written and says so.
    pub fn finish(self) -> Result<u64, StoreError> {
        let got = Digest(hex(&self.hasher.finalize()));
        if got != self.expected {
            let _ = std::fs::remove_file(&self.partial);
            return Err(StoreError::Mismatch {
                expected: self.expected,
                got,
            });
        }
        self.file.sync_all().map_err(io(&self.partial))?;
        std::fs::rename(&self.partial, &self.dest).map_err(io(&self.dest))?;
        Ok(self.size)
    }
}

/// The bytes of the files under `dir` (links not followed, each inode
/// once: hard links inside a layer count once).
fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                todo.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_writers_of_one_blob_write_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::of(b"shared layer");
        let mut first = store.writer(&d, true).unwrap().unwrap();
        first.write(b"shared ").unwrap();
        let other = store.clone();
        let d2 = d.clone();
        // The second waits for the first, then finds the blob stored.
        let second = std::thread::spawn(move || other.writer(&d2, true).map(|w| w.is_none()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!second.is_finished());
        first.write(b"layer").unwrap();
        assert_eq!(first.finish().unwrap(), 12);
        assert!(second.join().unwrap().unwrap());
        assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), b"shared layer");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn one_reference_is_read_alone_and_as_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = |reference: &str, manifest: &str| RefRecord {
            reference: reference.into(),
            manifest: manifest.into(),
            size: 1,
            imported: "now".into(),
            blobs: vec![manifest.into()],
            ..RefRecord::default()
        };
        store.record(&rec("oci:/a:v1", "sha256:aa")).unwrap();
        store.record(&rec("oci:/b:v1", "sha256:bb")).unwrap();
        store.record(&rec("oci:/a:v1", "sha256:cc")).unwrap();
        assert_eq!(
            store.reference("oci:/a:v1"),
            Some(rec("oci:/a:v1", "sha256:cc"))
        );
        assert_eq!(
            store.reference("oci:/b:v1"),
            Some(rec("oci:/b:v1", "sha256:bb"))
        );
        assert_eq!(store.reference("oci:/c:v1"), None);
        assert_eq!(store.references().len(), 2);
        assert!(store.forget("oci:/a:v1"));
        assert_eq!(store.reference("oci:/a:v1"), None);
    }

    #[test]
    fn a_record_gives_back_its_image_only_when_it_holds_all_of_it() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let full = RefRecord {
            reference: "tar:/x.tar".into(),
            manifest: d('a'),
            blobs: vec![d('a'), d('b')],
            layers: vec![(d('b'), "application/vnd.oci.image.layer.v1.tar".into())],
            defaults: Some(super::super::oci::Defaults {
                cmd: vec!["/bin/sh".into()],
                ..Default::default()
            }),
            source: Some("file:1:2:3.4".into()),
            ..RefRecord::default()
        };
        let text = serde_json::to_vec(&full).unwrap();
        let back: RefRecord = serde_json::from_slice(&text).unwrap();
        let image = back.image().unwrap();
        assert_eq!(image.manifest.to_string(), d('a'));
        assert_eq!(image.layers[0].0.to_string(), d('b'));
        assert_eq!(image.defaults.cmd, ["/bin/sh"]);
        // A record of an older version (no layers) or a broken one: none.
        let old = RefRecord {
            layers: Vec::new(),
            ..full.clone()
        };
        assert!(old.image().is_none());
        let broken = RefRecord {
            blobs: vec!["sha256:zz".into()],
            ..full
        };
        assert!(broken.image().is_none());
    }

    #[test]
    fn a_blob_is_kept_only_under_its_own_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = Digest::of(b"layer bytes");
        assert_eq!(store.put(&good, &b"layer bytes"[..]).unwrap(), 11);
        assert!(store.has(&good));
        assert_eq!(
            std::fs::read(store.blob_path(&good)).unwrap(),
            b"layer bytes"
        );
        // Tampered content: an error, and nothing kept (not even a temporary file).
        let claimed = Digest::of(b"something else");
        let e = store.put(&claimed, &b"layer bytes!"[..]).unwrap_err();
        assert!(e.to_string().contains("nothing was kept"), "{e}");
        assert!(!store.has(&claimed));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(Digest::parse("sha256:xyz").is_err());
        assert!(Digest::parse("md5:0123").is_err());
        assert_eq!(Digest::parse(&good.to_string()).unwrap(), good);
    }
}

/// A reference as the store knows it: what it named when last imported.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefRecord {
    pub reference: String,
    pub manifest: String,
    /// Bytes of the manifest's layers (compressed, as stored).
    pub size: u64,
    /// RFC 3339, when it was imported.
    pub imported: String,
    /// Every blob it uses (what garbage collection keeps for it).
    #[serde(default)]
    pub blobs: Vec<String>,
    /// The image's layers, bottom first: `[digest, media type]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<(String, String)>,
    /// What its config sets for containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<super::oci::Defaults>,
    /// What it was read from, as it was then (an OCI layout's index.json,
    /// an archive: inode, size, modification time). While the source is so
    /// still, a start takes the layers and defaults above instead of
    /// reading (and, for an archive, hashing) the image again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl RefRecord {
    /// The image as recorded, if the record holds all of it (records of
    /// older versions have no layers) and is well formed.
    pub fn image(&self) -> Option<super::oci::Image> {
        if self.layers.is_empty() {
            return None;
        }
        let layers = self
            .layers
            .iter()
            .map(|(d, m)| Digest::parse(d).ok().map(|d| (d, m.clone())))
            .collect::<Option<Vec<_>>>()?;
        let blobs = self
            .blobs
            .iter()
            .map(|d| Digest::parse(d).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(super::oci::Image {
            manifest: Digest::parse(&self.manifest).ok()?,
            layers,
            blobs,
            defaults: self.defaults.clone()?,
        })
    }
}

impl Store {
    fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    /// Records what `r.reference` names now (one file per reference, so
    /// supervisors of different stacks never write the same file).
    pub fn record(&self, r: &RefRecord) -> Result<(), StoreError> {
        let dir = self.refs_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let name = Digest::of(r.reference.as_bytes());
        let path = dir.join(format!("{}.json", name.hex()));
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
        let text = serde_json::to_vec_pretty(r).unwrap_or_default();
        tmp.write_all(&text).map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Forgets a reference (its blobs stay until [`Store::collect`]).
    /// False when it was not there.
    pub fn forget(&self, reference: &str) -> bool {
        let name = Digest::of(reference.as_bytes());
        std::fs::remove_file(self.refs_dir().join(format!("{}.json", name.hex()))).is_ok()
    }

    /// Removes every blob and unpacked layer no recorded reference uses
    /// and no running container is made of (`running`: layer folder
    /// names), and scratch files. Returns (items removed, bytes freed, the
    /// unpacked layers' files counted). Waits for pulls and imports other
    /// processes have under way.
    /// The blobs (hex digests) image `manifest` is made of, where the
    /// store has it: the manifest, its config and its layers (whose
    /// unpacked folders bear the same names).
    pub fn blobs_of(&self, manifest: &Digest) -> Vec<String> {
        let hex = |d: &str| d.strip_prefix("sha256:").map(String::from);
        let Ok(m) = super::oci::read_json(&self.blob_path(manifest)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = hex(&manifest.to_string()).into_iter().collect();
        out.extend(m["config"]["digest"].as_str().and_then(hex));
        for l in m["layers"].as_array().into_iter().flatten() {
            out.extend(l["digest"].as_str().and_then(hex));
        }
        out
    }

    pub fn collect(&self, running: &std::collections::BTreeSet<String>) -> (usize, u64) {
        let path = self.root.join(".lock");
        if flock(&self.lock, libc::LOCK_EX, &path).is_err() {
            return (0, 0);
        }
        let done = self.collect_locked(running);
        let _ = flock(&self.lock, libc::LOCK_SH, &path);
        done
    }

    fn collect_locked(&self, running: &std::collections::BTreeSet<String>) -> (usize, u64) {
        let mut keep: std::collections::BTreeSet<String> = self
            .references()
            .into_iter()
            .flat_map(|r| r.blobs)
            .filter_map(|b| b.strip_prefix("sha256:").map(String::from))
            .collect();
        keep.extend(running.iter().cloned());
        let mut removed = 0;
        let mut freed = 0;
        for (dir, is_layer) in [
            (self.root.join("blobs/sha256"), false),
            (self.root.join("layers"), true),
        ] {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let size = if is_layer {
                    tree_size(&e.path())
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                };
                let gone = if is_layer {
                    std::fs::remove_dir_all(e.path()).is_ok()
                } else {
                    std::fs::remove_file(e.path()).is_ok()
                };
                if gone {
                    removed += 1;
                    freed += size;
                }
            }
        }
        for e in std::fs::read_dir(self.root.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
        }
        (removed, freed)
    }

    /// What `reference` names now, if it is recorded (one file read,
    /// however many images the store holds).
    pub fn reference(&self, reference: &str) -> Option<RefRecord> {
        let name = Digest::of(reference.as_bytes());
        let bytes = std::fs::read(self.refs_dir().join(format!("{}.json", name.hex()))).ok()?;
        serde_json::from_slice::<RefRecord>(&bytes)
            .ok()
            .filter(|r| r.reference == reference)
    }

    /// Every reference recorded, by reference.
    pub fn references(&self) -> Vec<RefRecord> {
        let mut out: Vec<RefRecord> = std::fs::read_dir(self.refs_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        out
    }
}
