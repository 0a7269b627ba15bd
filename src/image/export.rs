//! An image of the store written out as an OCI image layout (a folder:
//! `oci-layout`, `index.json`, `blobs/sha256/...`) or as the same layout
//! in a tar archive, which `oci:` and `tar:` images (and skopeo, podman,
//! docker's `load`) read. The archive is the same bytes for the same
//! image: entries sorted, no times, no owners.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::build::image::MANIFEST;
use super::store::{Digest, Store};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ExportError {
    path: PathBuf,
    message: String,
}

fn fail(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |e| ExportError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The blobs of image `manifest` (manifest, config, layers) with sizes.
fn blobs(store: &Store, manifest: &Digest) -> Result<Vec<(Digest, u64)>, ExportError> {
    let path = store.blob_path(manifest);
    let text = std::fs::read(&path).map_err(fail(&path))?;
    let m: Value = serde_json::from_slice(&text).map_err(|e| ExportError {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut out = vec![(manifest.clone(), text.len() as u64)];
    let described =
        std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
    for d in described {
        let digest =
            Digest::parse(d["digest"].as_str().unwrap_or_default()).map_err(|e| ExportError {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let size = std::fs::metadata(store.blob_path(&digest))
            .map_err(fail(&store.blob_path(&digest)))?
            .len();
        out.push((digest, size));
    }
    Ok(out)
}

/// `index.json` naming `manifest` (with `tag`, if any) beside what
/// `old` (a layout's index being updated) named under other tags.
fn index(manifest: &Digest, size: u64, tag: Option<&str>, old: Option<Value>) -> Value {
    let name_key = "org.opencontainers.image.ref.name";
    let mut manifests: Vec<Value> = old
        .and_then(|o| o["manifests"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| match tag {
            Some(t) => e["annotations"][name_key].as_str() != Some(t),
            None => e["digest"].as_str() != Some(&manifest.to_string()),
        })
        .collect();
    let mut entry = json!({ "mediaType": MANIFEST, "digest": manifest.to_string(), "size": size });
    if let Some(t) = tag {
        entry["annotations"] = json!({ name_key: t });
    }
    manifests.push(entry);
    json!({ "schemaVersion": 2, "manifests": manifests })
}

const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes image `manifest` into the OCI layout `dir` (made if needed; an
/// existing layout keeps its other images), named `tag`.
pub fn to_layout(
    store: &Store,
    manifest: &Digest,
    dir: &Path,
    tag: Option<&str>,
) -> Result<(), ExportError> {
    let all = blobs(store, manifest)?;
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir).map_err(fail(&blob_dir))?;
    for (d, _) in &all {
        let to = blob_dir.join(d.hex());
        if !to.exists() {
            let tmp = blob_dir.join(format!(".{}.tmp", d.hex()));
            std::fs::copy(store.blob_path(d), &tmp).map_err(fail(&tmp))?;
            std::fs::rename(&tmp, &to).map_err(fail(&to))?;
        }
    }
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, LAYOUT).map_err(fail(&layout))?;
    let index_path = dir.join("index.json");
    let old = std::fs::read(&index_path)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok());
    let text = serde_json::to_vec(&index(manifest, all[0].1, tag, old)).unwrap_or_default();
    let tmp = dir.join(".index.json.tmp");
    std::fs::write(&tmp, text).map_err(fail(&tmp))?;
    std::fs::rename(&tmp, &index_path).map_err(fail(&index_path))
}

/// Writes image `manifest` as an OCI layout in the tar archive `file`.
pub fn to_tar(
    store: &Store,
    manifest: &Digest,
    file: &Path,
    tag: Option<&str>,
) -> Result<(), ExportError> {
    let all = blobs(store, manifest)?;
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(fail(parent))?;
    {
        let mut ar = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
        ar.mode(tar::HeaderMode::Deterministic);
        let header = |size: u64, dir: bool| {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(if dir { 0o755 } else { 0o644 });
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_mtime(0);
            h
        };
        let mut add = |name: &str, size: u64, data: &mut dyn std::io::Read, dir: bool| {
            let mut h = header(size, dir);
            ar.append_data(&mut h, name, data).map_err(fail(file))
        };
        let index = serde_json::to_vec(&index(manifest, all[0].1, tag, None)).unwrap_or_default();
        add("blobs/", 0, &mut std::io::empty(), true)?;
        add("blobs/sha256/", 0, &mut std::io::empty(), true)?;
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| a.0.hex().cmp(b.0.hex()));
        sorted.dedup();
        for (d, size) in &sorted {
            let p = store.blob_path(d);
            let mut f = std::fs::File::open(&p).map_err(fail(&p))?;
            add(&format!("blobs/sha256/{}", d.hex()), *size, &mut f, false)?;
        }
        add("index.json", index.len() as u64, &mut &index[..], false)?;
        add("oci-layout", LAYOUT.len() as u64, &mut &LAYOUT[..], false)?;
        let mut w = ar.into_inner().map_err(fail(file))?;
        w.flush().map_err(fail(file))?;
    }
    tmp.persist(file).map_err(|e| ExportError {
        path: file.to_path_buf(),
        message: e.error.to_string(),
    })?;
    Ok(())
}
