//! The step cache. Every step has a key: the key of the step before it
//! (a stage's first is its base: `scratch`, an image's manifest digest, or
//! the key an earlier stage ended with) and what the step is — its kind,
//! its text after `ARG`/`ENV` expansion, and for `COPY`/`ADD` the digest
//! of the files it reads, for `RUN` the build arguments it runs with. A
//! step that changes files records under its key the layer it made (or
//! that it made none); the same key later is the same layer, without
//! running anything. Records live in `STORE/build-cache/`, one small file
//! each; a record whose layer the store no longer holds is a miss.

use std::path::PathBuf;

use sha2::Digest as _;

use crate::image::build::layer::Layer;
use crate::image::store::{Digest, Store};

/// The key of a stage's first step: what it is built on.
pub fn base(identity: &str) -> String {
    hash(&["base", identity])
}

/// The key of a step after `parent`.
pub fn key(parent: &str, kind: &str, text: &str, reads: &str) -> String {
    hash(&[parent, kind, text, reads])
}

fn hash(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    Digest::from_sha256(h.finalize().into()).hex().to_string()
}

fn path(store: &Store, key: &str) -> PathBuf {
    store.root().join("build-cache").join(format!("{key}.json"))
}

/// What a step made: `Some(layer)`, or `None` when it changed nothing.
pub type Made = Option<Layer>;

/// The step under `key`, if it ran before and its layer is still here.
pub fn lookup(store: &Store, key: &str) -> Option<Made> {
    let text = std::fs::read_to_string(path(store, key)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["empty"] == serde_json::Value::Bool(true) {
        return Some(None);
    }
    let blob = Digest::parse(v["blob"].as_str()?).ok()?;
    if !store.has(&blob) {
        return None;
    }
    Some(Some(Layer {
        diff_id: Digest::parse(v["diff_id"].as_str()?).ok()?,
        blob,
        size: v["size"].as_u64()?,
    }))
}

/// Records what the step under `key` made. A record that cannot be
/// written only costs a rebuild later.
pub fn record(store: &Store, key: &str, made: &Made) {
    let v = match made {
        None => serde_json::json!({ "empty": true }),
        Some(l) => serde_json::json!({
            "blob": l.blob.to_string(),
            "size": l.size,
            "diff_id": l.diff_id.to_string(),
        }),
    };
    let p = path(store, key);
    let Some(dir) = p.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
        use std::io::Write;
        if tmp.write_all(v.to_string().as_bytes()).is_ok() {
            let _ = tmp.persist(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_found_by_its_key_while_its_layer_is_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let from = base("sha256:00");
        let k = key(&from, "RUN", "make", "");
        assert_ne!(k, key(&from, "RUN", "make ", ""));
        assert_ne!(k, key(&base("scratch"), "RUN", "make", ""));
        // Parts never run into each other.
        assert_ne!(key(&from, "RUN", "ab", ""), key(&from, "RUN", "a", "b"));
        assert!(lookup(&store, &k).is_none());
        record(&store, &k, &None);
        assert_eq!(lookup(&store, &k), Some(None));
        let bytes = b"layer bytes";
        let blob = Digest::of(bytes);
        let layer = Layer {
            diff_id: Digest::of(b"tar"),
            blob: blob.clone(),
            size: bytes.len() as u64,
        };
        let k2 = key(&k, "COPY", "a /a", "sha256:11");
        record(&store, &k2, &Some(layer.clone()));
        // Its layer is not in the store: a miss.
        assert!(lookup(&store, &k2).is_none());
        store
            .put(&blob, &bytes[..])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lookup(&store, &k2), Some(Some(layer)));
    }
}
