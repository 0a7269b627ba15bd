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

/// The store's folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store under `root` (`DATA/images`), made if missing.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        for d in ["blobs/sha256", "tmp"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
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
        let mut w = self.writer(expected, false)?;
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

    /// A writer for the blob `expected`, fed piece by piece. With `resume`,
    /// what an earlier interrupted write left (`tmp/HEX.partial`) is kept
    /// and [`BlobWriter::offset`] says how much of the blob it holds.
    pub fn writer(&self, expected: &Digest, resume: bool) -> Result<BlobWriter, StoreError> {
        let partial = self
            .root
            .join("tmp")
            .join(format!("{}.partial", expected.hex()));
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        if resume && partial.is_file() {
            let mut f = std::fs::File::open(&partial).map_err(io(&partial))?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).map_err(io(&partial))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
            }
        }
        let file = std::fs::File::options()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(&partial)
            .map_err(io(&partial))?;
        Ok(BlobWriter {
            dest: self.blob_path(expected),
            partial,
            expected: expected.clone(),
            file,
            hasher,
            size,
        })
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
        self.file.set_len(0).map_err(io(&self.partial))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

    /// Removes every blob and unpacked layer no recorded reference uses,
    /// and scratch files. Returns (items removed, bytes of blobs freed).
    pub fn collect(&self) -> (usize, u64) {
        let keep: std::collections::BTreeSet<String> = self
            .references()
            .into_iter()
            .flat_map(|r| r.blobs)
            .filter_map(|b| b.strip_prefix("sha256:").map(String::from))
            .collect();
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
                    0
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
