//! Bundles: one file that carries a stack file and every `docker://` image
//! it names, for devices on slow or no links. A bundle is a tar archive,
//! read and written as a stream (never held in memory):
//!
//! 1. `rkstack-bundle.json` — the index: the stack's name, the stack
//!    file's digest, each image reference with its manifest digest, and
//!    every blob (digest, size) the images are made of;
//! 2. `rkstack-bundle.json.minisig` — a minisign (Ed25519) signature of the
//!    index, when the bundle is signed;
//! 3. `stack.toml`;
//! 4. `blobs/sha256/HEX` — the blobs, each once (images share layers).
//!
//! The signature covers the index, and the index names every byte by its
//! digest, so a device checks the signature before it writes anything and
//! each blob as it streams into the store. A delta (`--since OLD`) leaves
//! out the blobs OLD carried: the device must have them already.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{Digest, Store};

pub const INDEX: &str = "rkstack-bundle.json";
pub const SIGNATURE: &str = "rkstack-bundle.json.minisig";
pub const STACK_FILE: &str = "stack.toml";
/// A bundle's content type, uploaded to the API.
pub const CONTENT_TYPE: &str = "application/vnd.rkstack.bundle";
const FORMAT: u32 = 1;
/// The largest index or signature read (the blob list of many images).
const MAX_META: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// What a bundle holds, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format: u32,
    pub stack: String,
    pub file_digest: String,
    /// Image reference (`docker://...`) → manifest digest.
    pub images: BTreeMap<String, String>,
    /// Every blob the images need, carried or (in a delta) not.
    pub blobs: Vec<Blob>,
    /// The digest of the index of the bundle this one is a delta from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The blobs a delta leaves out: the device must have them already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("signature: {0}")]
    Signature(String),
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let what = what.into();
    move |source| BundleError::Io { what, source }
}

fn invalid(what: impl Into<String>) -> BundleError {
    BundleError::Invalid(what.into())
}

/// Reads a bundle's index alone (its first entry).
pub fn read_index(path: &Path) -> Result<Index, BundleError> {
    let f = std::fs::File::open(path).map_err(io(path.display().to_string()))?;
    let mut ar = tar::Archive::new(f);
    let mut entries = ar.entries().map_err(io(path.display().to_string()))?;
    let first = entries
        .next()
        .ok_or_else(|| invalid(format!("{}: empty, not a bundle", path.display())))?
        .map_err(io(path.display().to_string()))?;
    let (name, bytes) = small_entry(first)?;
    if name != INDEX {
        return Err(invalid(format!(
            "{}: not an rkstack bundle (its first entry is {name:?})",
            path.display()
        )));
    }
    parse_index(&bytes)
}

fn parse_index(bytes: &[u8]) -> Result<Index, BundleError> {
    let index: Index =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("{INDEX}: {e}")))?;
    if index.format != FORMAT {
        return Err(invalid(format!(
            "bundle format {} (this rkstack reads format {FORMAT})",
            index.format
        )));
    }
    Ok(index)
}

/// An entry's path and its bytes, for the small ones (index, signature,
/// stack file).
fn small_entry<R: Read>(mut e: tar::Entry<'_, R>) -> Result<(String, Vec<u8>), BundleError> {
    let name = e
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(io("bundle entry"))?;
    if e.size() > MAX_META {
        return Err(invalid(format!(
            "{name}: larger than {} MiB",
            MAX_META >> 20
        )));
    }
    let mut bytes = Vec::with_capacity(e.size() as usize);
    e.read_to_end(&mut bytes).map_err(io(name.clone()))?;
    Ok((name, bytes))
}

/// How to sign a bundle: a minisign secret key file and its password
/// (`None` for an unencrypted key).
pub struct Signer {
    pub key: PathBuf,
    pub password: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key", &self.key).finish()
    }
}

/// Writes a bundle of `stack_text` (the stack named `stack`) and the
/// `docker://` images `images` names (reference → manifest digest) from
/// `store` to `out`; with `since`, the blobs that bundle listed are left
/// out. Signed with `signer` when given.
pub fn write(
    out: impl Write,
    store: &Store,
    stack: &str,
    stack_text: &str,
    images: BTreeMap<String, String>,
    since: Option<&Index>,
    signer: Option<&Signer>,
) -> Result<Index, BundleError> {
    let mut blobs = Vec::new();
    let mut seen = BTreeSet::new();
    for (reference, manifest) in &images {
        let d = Digest::parse(manifest)?;
        let record = store.reference(reference);
        let mut list: Vec<String> = record
            .filter(|r| &r.manifest == manifest)
            .map(|r| r.blobs)
            .unwrap_or_default();
        if list.is_empty() {
            list = store
                .blobs_of(&d)
                .into_iter()
                .map(|h| format!("sha256:{h}"))
                .collect();
        }
        for b in list {
            if !seen.insert(b.clone()) {
                continue;
            }
            let bd = Digest::parse(&b)?;
            let path = store.blob_path(&bd);
            let size = std::fs::metadata(&path)
                .map_err(|e| {
                    invalid(format!(
                        "{reference}: blob {b} is not in the store ({e}); pull the image again"
                    ))
                })?
                .len();
            blobs.push(Blob { digest: b, size });
        }
    }
    let skip: BTreeSet<String> = since
        .map(|s| s.blobs.iter().map(|b| b.digest.clone()).collect())
        .unwrap_or_default();
    let omitted = blobs
        .iter()
        .filter(|b| skip.contains(&b.digest))
        .map(|b| b.digest.clone())
        .collect();
    let index = Index {
        format: FORMAT,
        stack: stack.to_string(),
        file_digest: Digest::of(stack_text.as_bytes()).to_string(),
        images,
        blobs,
        since: since.map(index_digest),
        omitted,
    };
    let index_bytes = serde_json::to_vec_pretty(&index).map_err(|e| invalid(e.to_string()))?;
    let mut ar = tar::Builder::new(out);
    let add = |ar: &mut tar::Builder<_>, name: &str, size: u64, data: &mut dyn Read| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        ar.append_data(&mut h, name, data)
            .map_err(io(name.to_string()))
    };
    add(
        &mut ar,
        INDEX,
        index_bytes.len() as u64,
        &mut &index_bytes[..],
    )?;
    if let Some(s) = signer {
        let sig = sign(s, &index_bytes)?;
        add(&mut ar, SIGNATURE, sig.len() as u64, &mut sig.as_bytes())?;
    }
    add(
        &mut ar,
        STACK_FILE,
        stack_text.len() as u64,
        &mut stack_text.as_bytes(),
    )?;
    for b in &index.blobs {
        if skip.contains(&b.digest) {
            continue;
        }
        let d = Digest::parse(&b.digest)?;
        let path = store.blob_path(&d);
        let mut f = std::fs::File::open(&path).map_err(io(path.display().to_string()))?;
        add(
            &mut ar,
            &format!("blobs/sha256/{}", d.hex()),
            b.size,
            &mut f,
        )?;
    }
    ar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("bundle"))?;
    Ok(index)
}

/// The digest that names a bundle's index (what a delta's `since` says).
pub fn index_digest(i: &Index) -> String {
    Digest::of(&serde_json::to_vec_pretty(i).unwrap_or_default()).to_string()
}

fn sign(s: &Signer, data: &[u8]) -> Result<String, BundleError> {
    let text = std::fs::read_to_string(&s.key).map_err(io(s.key.display().to_string()))?;
    let bad = |e: minisign::PError| BundleError::Signature(format!("{}: {e}", s.key.display()));
    let boxed = minisign::SecretKeyBox::from_string(&text).map_err(bad)?;
    // An encrypted key (minisign -G) takes its password; rkstack keygen's is not.
    let sk = match &s.password {
        Some(p) => boxed.into_secret_key(Some(p.clone())),
        None => boxed.into_unencrypted_secret_key(),
    }
    .map_err(bad)?;
    let sig = minisign::sign(
        None,
        &sk,
        std::io::Cursor::new(data),
        Some("rkstack bundle"),
        None,
    )
    .map_err(|e| BundleError::Signature(e.to_string()))?;
    Ok(sig.to_string())
}

/// A new key pair, unencrypted (the secret key file is for its owner
/// alone): the public key box and the secret key box, as text.
pub fn keygen() -> Result<(String, String), BundleError> {
    let minisign::KeyPair { pk, sk } = minisign::KeyPair::generate_unencrypted_keypair()
        .map_err(|e| BundleError::Signature(e.to_string()))?;
    let pk = pk
        .to_box()
        .map_err(|e| BundleError::Signature(e.to_string()))?
        .to_string();
    let sk = sk
        .to_box(Some("rkstack bundle signing key"))
        .map_err(|e| BundleError::Signature(e.to_string()))?
        .to_string();
    Ok((pk, sk))
}

/// The public keys (minisign `.pub` files) in `dir`; none when it is
/// missing.
pub fn trusted_keys(dir: &Path) -> Result<Vec<(PathBuf, minisign::PublicKey)>, BundleError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(io(p.display().to_string()))?;
        let pk = minisign::PublicKeyBox::from_string(&text)
            .and_then(|b| b.into_public_key())
            .map_err(|e| BundleError::Signature(format!("{}: {e}", p.display())))?;
        out.push((p, pk));
    }
    Ok(out)
}

/// What a bundle brought: its stack file, and its index.
#[derive(Debug)]
pub struct Received {
    pub stack_text: String,
    pub index: Index,
}

/// Reads a bundle from `input` into `store`: the signature checked against
/// `keys` before anything is written (when there is any key, a bundle
/// must be signed by one of them), every blob checked against its digest
/// as it streams in, and every blob a delta left out found in the store.
/// The caller records the images under their references; nothing of the
/// stack changes here.
pub fn receive(
    input: impl Read,
    store: &Store,
    keys: &[(PathBuf, minisign::PublicKey)],
) -> Result<Received, BundleError> {
    let mut ar = tar::Archive::new(input);
    let mut index: Option<(Index, Vec<u8>)> = None;
    let mut signature: Option<String> = None;
    let mut stack_text: Option<String> = None;
    let mut listed: BTreeMap<String, u64> = BTreeMap::new();
    for e in ar.entries().map_err(io("bundle"))? {
        let mut e = e.map_err(io("bundle"))?;
        let name = e
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(io("bundle entry"))?;
        let Some((idx, idx_bytes)) = &index else {
            if name != INDEX {
                return Err(invalid(format!(
                    "not an rkstack bundle (its first entry is {name:?})"
                )));
            }
            let (_, bytes) = small_entry(e)?;
            let i = parse_index(&bytes)?;
            listed = i.blobs.iter().map(|b| (b.digest.clone(), b.size)).collect();
            index = Some((i, bytes));
            continue;
        };
        if stack_text.is_none() {
            let (_, bytes) = small_entry(e)?;
            if name == SIGNATURE && signature.is_none() {
                signature = Some(String::from_utf8_lossy(&bytes).into_owned());
                continue;
            }
            if name != STACK_FILE {
                return Err(invalid(format!("expected {STACK_FILE}, found {name:?}")));
            }
            // Nothing is written before the signature is known good, nor
            // for a delta whose base this device does not have.
            verify(signature.as_deref(), keys, idx_bytes)?;
            missing_base(idx, store)?;
            if Digest::of(&bytes).to_string() != idx.file_digest {
                return Err(invalid(format!(
                    "{STACK_FILE} does not match the digest the index gives it"
                )));
            }
            stack_text = Some(
                String::from_utf8(bytes)
                    .map_err(|_| invalid(format!("{STACK_FILE} is not UTF-8")))?,
            );
            continue;
        }
        let hex = name
            .strip_prefix("blobs/sha256/")
            .ok_or_else(|| invalid(format!("unexpected entry {name:?}")))?;
        let digest = format!("sha256:{hex}");
        let Some(size) = listed.get(&digest) else {
            return Err(invalid(format!("blob {digest} is not in the index")));
        };
        if e.size() != *size {
            return Err(invalid(format!(
                "blob {digest}: {} bytes, the index says {size}",
                e.size()
            )));
        }
        let d = Digest::parse(&digest)?;
        store.put(&d, &mut e).map_err(|err| {
            invalid(format!(
                "blob {digest}: {err} (the bundle is damaged or was altered)"
            ))
        })?;
    }
    let (index, _) = index.ok_or_else(|| invalid("an empty bundle"))?;
    let stack_text =
        stack_text.ok_or_else(|| invalid(format!("the bundle has no {STACK_FILE}")))?;
    let missing: Vec<&str> = index
        .blobs
        .iter()
        .filter(|b| Digest::parse(&b.digest).map_or(true, |d| !store.has(&d)))
        .map(|b| b.digest.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "the bundle lacks {} blob(s) its images need: {}",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(Received { stack_text, index })
}

/// Refuses a delta whose left-out blobs are not all on this device.
fn missing_base(index: &Index, store: &Store) -> Result<(), BundleError> {
    let missing: Vec<&str> = index
        .omitted
        .iter()
        .filter(|b| Digest::parse(b).map_or(true, |d| !store.has(&d)))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "{} blob(s) this delta left out are not on this device (apply the bundle it was made from first{}): {}",
        missing.len(),
        index
            .since
            .as_deref()
            .map(|s| format!(", index {s}"))
            .unwrap_or_default(),
        missing.join(", ")
    )))
}

/// Checks the index's signature: with trusted keys, one of them must have
/// made it; without, a bundle need not be signed.
fn verify(
    signature: Option<&str>,
    keys: &[(PathBuf, minisign::PublicKey)],
    data: &[u8],
) -> Result<(), BundleError> {
    if keys.is_empty() {
        return Ok(());
    }
    let sig = signature.ok_or_else(|| {
        BundleError::Signature(
            "the bundle is not signed, and this device trusts only signed bundles".into(),
        )
    })?;
    let sig = minisign::SignatureBox::from_string(sig)
        .map_err(|e| BundleError::Signature(format!("unreadable: {e}")))?;
    for (_, pk) in keys {
        if minisign::verify(pk, &sig, std::io::Cursor::new(data), true, false, false).is_ok() {
            return Ok(());
        }
    }
    Err(BundleError::Signature(format!(
        "no trusted key ({}) made it: the bundle was altered or signed by another key",
        keys.iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with one image (manifest, config, one layer) recorded as
    /// `docker://reg/app:1`; the manifest's digest.
    fn store_with_image(dir: &Path) -> (Store, String) {
        let store = Store::open(&dir.join("images")).unwrap_or_else(|e| panic!("{e}"));
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            store.put(&d, bytes).unwrap_or_else(|e| panic!("{e}"));
            d
        };
        let layer = put(b"not really a tar, but a blob");
        let config = put(br#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#);
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{config}","size":1}},"layers":[{{"digest":"{layer}","size":1,"mediaType":"application/vnd.oci.image.layer.v1.tar"}}]}}"#
        );
        let m = put(manifest.as_bytes());
        (store, m.to_string())
    }

    fn bundle_of(
        store: &Store,
        manifest: &str,
        signer: Option<&Signer>,
        since: Option<&Index>,
    ) -> (Vec<u8>, Index) {
        let mut out = Vec::new();
        let images = BTreeMap::from([("docker://reg/app:1".to_string(), manifest.to_string())]);
        let i = write(
            &mut out,
            store,
            "demo",
            "name = \"demo\"\n",
            images,
            since,
            signer,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (out, i)
    }

    fn keys(dir: &Path, name: &str) -> (Signer, Vec<(PathBuf, minisign::PublicKey)>) {
        let (pk, sk) = keygen().unwrap_or_else(|e| panic!("{e}"));
        let kd = dir.join(name);
        std::fs::create_dir_all(&kd).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(kd.join("k.pub"), pk).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(format!("{name}.key")), sk).unwrap_or_else(|e| panic!("{e}"));
        let signer = Signer {
            key: dir.join(format!("{name}.key")),
            password: None,
        };
        (signer, trusted_keys(&kd).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn a_signed_bundle_crosses_and_anything_else_is_refused_before_a_write() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, manifest) = store_with_image(tmp.path());
        let (signer, trusted) = keys(tmp.path(), "vendor");
        let (stranger, _) = keys(tmp.path(), "stranger");
        let (signed, index) = bundle_of(&store, &manifest, Some(&signer), None);
        assert_eq!(index.blobs.len(), 3);
        let device = |n: &str| {
            Store::open(&tmp.path().join(n).join("images")).unwrap_or_else(|e| panic!("{e}"))
        };
        // Signed by the trusted key: everything arrives.
        let d1 = device("d1");
        let got = receive(&signed[..], &d1, &trusted).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.stack_text, "name = \"demo\"\n");
        assert!(
            index
                .blobs
                .iter()
                .all(|b| d1.has(&Digest::parse(&b.digest).unwrap_or_else(|e| panic!("{e}"))))
        );
        // Unsigned, or signed by another key: refused, nothing written.
        let (unsigned, _) = bundle_of(&store, &manifest, None, None);
        let (foreign, _) = bundle_of(&store, &manifest, Some(&stranger), None);
        let d2 = device("d2");
        for (b, want) in [(&unsigned, "not signed"), (&foreign, "no trusted key")] {
            let e = receive(&b[..], &d2, &trusted)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{e}");
        }
        assert!(!d2.has(&Digest::parse(&manifest).unwrap_or_else(|e| panic!("{e}"))));
        // Without trusted keys, an unsigned bundle is taken.
        assert!(receive(&unsigned[..], &d2, &[]).is_ok());
        // Not a bundle at all.
        let e = receive(&b"plain text"[..], &device("d3"), &[])
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some());
    }

    #[test]
    fn a_delta_carries_only_what_is_new_and_needs_its_base() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (store, manifest) = store_with_image(tmp.path());
        let (full, base) = bundle_of(&store, &manifest, None, None);
        let (delta, index) = bundle_of(&store, &manifest, None, Some(&base));
        assert_eq!(index.omitted.len(), 3);
        assert!(delta.len() < full.len());
        let fresh = Store::open(&tmp.path().join("fresh/images")).unwrap_or_else(|e| panic!("{e}"));
        let e = receive(&delta[..], &fresh, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("3 blob(s) this delta left out are not on this device"),
            "{e}"
        );
        assert!(receive(&full[..], &fresh, &[]).is_ok());
        assert!(receive(&delta[..], &fresh, &[]).is_ok());
    }
}
