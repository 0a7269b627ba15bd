//! `tar:PATH` images: a docker-archive (`docker save`), an OCI archive (a
//! tar of an OCI layout) or a plain root filesystem tarball. The archive is
//! unpacked (with the same safe unpacker as layers) into a scratch folder
//! of the store, read from there, and removed.

use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::oci::{self, Defaults, Image, ImageError, layout_err, read_json};
use super::store::{Digest, Store};
use super::unpack;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn file_digest(path: &Path) -> Result<Digest, ImageError> {
    let mut f = std::fs::File::open(path).map_err(|e| layout_err(path, e.to_string()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| layout_err(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Digest::parse(&format!("sha256:{hex}"))?)
}

fn put_file(store: &Store, path: &Path, d: &Digest) -> Result<(), ImageError> {
    let f = std::fs::File::open(path).map_err(|e| layout_err(path, e.to_string()))?;
    store.put(d, f)?;
    Ok(())
}

/// Imports the archive at `path` (`tag` picks an image of an OCI archive).
pub fn import(
    store: &Store,
    root: &Path,
    path: &Path,
    tag: Option<&str>,
) -> Result<Image, ImageError> {
    let file = std::fs::File::open(path).map_err(|e| layout_err(path, e.to_string()))?;
    let mut magic = [0u8; 2];
    let gz = (&file)
        .read(&mut magic)
        .map(|n| n == 2 && magic == [0x1f, 0x8b])
        .unwrap_or(false);
    let tmp_root = root.join("tmp");
    std::fs::create_dir_all(&tmp_root).map_err(|e| layout_err(&tmp_root, e.to_string()))?;
    let scratch = tempfile::Builder::new()
        .prefix("archive-")
        .tempdir_in(&tmp_root)
        .map_err(|e| layout_err(&tmp_root, e.to_string()))?;
    let dir = scratch.path();
    // Is it an image archive at all? Only its top-level names matter here.
    let names = top_names(path, gz)?;
    let is_oci = names.iter().any(|n| n == "oci-layout");
    let is_docker = names.iter().any(|n| n == "manifest.json");
    if !is_oci && !is_docker {
        // A plain root filesystem: the tarball is the one layer.
        let d = file_digest(path)?;
        put_file(store, path, &d)?;
        return Ok(Image {
            manifest: d.clone(),
            blobs: vec![d.clone()],
            layers: vec![(
                d,
                if gz {
                    format!("{TAR}+gzip")
                } else {
                    TAR.into()
                },
            )],
            defaults: Defaults::default(),
        });
    }
    let f = std::fs::File::open(path).map_err(|e| layout_err(path, e.to_string()))?;
    let opts = unpack::Options::default();
    let result = if gz {
        unpack::unpack(flate2::read::GzDecoder::new(f), dir, opts)
    } else {
        unpack::unpack(f, dir, opts)
    };
    result.map_err(|e| layout_err(path, e.to_string()))?;
    if is_oci {
        return oci::import(store, dir, tag);
    }
    // docker save: manifest.json names the config and the layer tars; the
    // config's rootfs.diff_ids are the digests each layer must have.
    let manifest_path = dir.join("manifest.json");
    let manifest = read_json(&manifest_path)?;
    let entry = match (manifest.as_array().map(Vec::as_slice), tag) {
        (Some([one]), None) => one.clone(),
        (Some(list), Some(t)) => list
            .iter()
            .find(|m| {
                m["RepoTags"].as_array().is_some_and(|tags| {
                    tags.iter().any(|x| {
                        x.as_str()
                            .is_some_and(|x| x == t || x.ends_with(&format!(":{t}")))
                    })
                })
            })
            .cloned()
            .ok_or_else(|| layout_err(path, format!("no image tagged {t} in it")))?,
        (Some(_), None) => {
            return Err(layout_err(
                path,
                "several images in it: name one with tar:PATH:TAG",
            ));
        }
        (None, _) => return Err(layout_err(&manifest_path, "not a docker-archive manifest")),
    };
    let inside = |rel: &str| -> Result<std::path::PathBuf, ImageError> {
        let parts =
            unpack::components(rel.as_bytes()).map_err(|e| layout_err(path, e.to_string()))?;
        Ok(parts.iter().fold(dir.to_path_buf(), |p, c| p.join(c)))
    };
    let config_path = inside(entry["Config"].as_str().unwrap_or_default())?;
    let config = read_json(&config_path)?;
    let config_digest = file_digest(&config_path)?;
    put_file(store, &config_path, &config_digest)?;
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    let layer_files: Vec<&str> = entry["Layers"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
        .unwrap_or_default();
    if layer_files.len() != diff_ids.len() {
        return Err(layout_err(
            &config_path,
            format!(
                "{} layers but {} diff_ids",
                layer_files.len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (file, id) in layer_files.iter().zip(&diff_ids) {
        let expected = Digest::parse(id)?;
        let f = std::fs::File::open(inside(file)?).map_err(|e| layout_err(path, e.to_string()))?;
        // Verified against the config's diff_id: a mismatch keeps nothing.
        store.put(&expected, f)?;
        layers.push((expected, TAR.to_string()));
    }
    let mut blobs = vec![config_digest.clone()];
    blobs.extend(layers.iter().map(|(d, _)| d.clone()));
    Ok(Image {
        manifest: config_digest,
        layers,
        blobs,
        defaults: oci::defaults_of(&config),
    })
}

/// The first path component of every entry of a tar (gzip or not).
fn top_names(path: &Path, gz: bool) -> Result<Vec<String>, ImageError> {
    let f = std::fs::File::open(path).map_err(|e| layout_err(path, e.to_string()))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut a = tar::Archive::new(reader);
    let mut out = Vec::new();
    for e in a
        .entries()
        .map_err(|e| layout_err(path, format!("not a tar archive: {e}")))?
    {
        let e = e.map_err(|e| layout_err(path, format!("not a tar archive: {e}")))?;
        let raw = e.path_bytes().into_owned();
        if let Some(first) = raw
            .split(|b| *b == b'/')
            .find(|c| !c.is_empty() && *c != b".")
        {
            let n = String::from_utf8_lossy(first).into_owned();
            if !out.contains(&n) {
                out.push(n);
            }
        }
        if out.len() > 64 {
            break;
        }
    }
    Ok(out)
}
