//! OCI image layouts (`oci:DIR[:TAG]`): the manifest (from a multi-arch
//! index, the host's platform) and its blobs are copied into the store,
//! each verified by its digest; layers are unpacked once, under
//! `DATA/images/layers/HEX`, and shared by every container using them.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::store::{Digest, Store, StoreError};
use super::unpack::{self, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {what}", path.display())]
    Layout { path: PathBuf, what: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: Digest,
        #[source]
        source: UnpackError,
    },
    #[error(
        "layer {digest}: media type {media_type}, but its content is not that (tar, tar+gzip and tar+zstd are supported)"
    )]
    MediaType { digest: Digest, media_type: String },
}

/// What an image's config sets for its containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Defaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Image {
    /// The manifest's digest: what identifies the image.
    pub manifest: Digest,
    /// Layers, bottom first, with their media types.
    pub layers: Vec<(Digest, String)>,
    /// Every blob of the store it uses (manifest, config, layers, indexes).
    pub blobs: Vec<Digest>,
    pub defaults: Defaults,
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(super) fn layout_err(path: &Path, what: impl Into<String>) -> ImageError {
    ImageError::Layout {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

pub(super) fn read_json(path: &Path) -> Result<serde_json::Value, ImageError> {
    let text = std::fs::read(path).map_err(|e| layout_err(path, e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| layout_err(path, format!("not valid JSON: {e}")))
}

/// The platform names of this host, as images spell them.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Copies a blob of the layout into the store (verified) unless it is
/// there already, and returns its path in the store.
fn take(store: &Store, layout: &Path, d: &Digest) -> Result<PathBuf, ImageError> {
    if store.has(d) {
        return Ok(store.blob_path(d));
    }
    let src = layout.join("blobs/sha256").join(d.hex());
    let f = std::fs::File::open(&src).map_err(|e| layout_err(&src, e.to_string()))?;
    store.put(d, f)?;
    Ok(store.blob_path(d))
}

fn digest_of(v: &serde_json::Value, path: &Path) -> Result<Digest, ImageError> {
    let s = v["digest"]
        .as_str()
        .ok_or_else(|| layout_err(path, "a descriptor without a digest"))?;
    Ok(Digest::parse(s)?)
}

/// The digest of the manifest `tag` (or the only image) of the layout at
/// `layout` selects for this host. Nothing is copied; the blobs read are
/// verified when imported.
pub fn resolve(layout: &Path, tag: Option<&str>) -> Result<Digest, ImageError> {
    choose(layout, tag, |d| {
        Ok(layout.join("blobs/sha256").join(d.hex()))
    })
}

fn choose(
    layout: &Path,
    tag: Option<&str>,
    blob: impl Fn(&Digest) -> Result<PathBuf, ImageError>,
) -> Result<Digest, ImageError> {
    let index_path = layout.join("index.json");
    if !layout.join("oci-layout").is_file() && !index_path.is_file() {
        return Err(layout_err(
            layout,
            "not an OCI image layout (no index.json)",
        ));
    }
    let index = read_json(&index_path)?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let chosen = match tag {
        Some(t) => manifests
            .iter()
            .find(|m| m["annotations"][REF_NAME].as_str() == Some(t))
            .ok_or_else(|| {
                let tags: Vec<&str> = manifests
                    .iter()
                    .filter_map(|m| m["annotations"][REF_NAME].as_str())
                    .collect();
                layout_err(
                    &index_path,
                    format!("no image tagged {t} (tags: {})", tags.join(", ")),
                )
            })?,
        None => match manifests.as_slice() {
            [one] => one,
            [] => return Err(layout_err(&index_path, "no image in it")),
            _ => {
                return Err(layout_err(
                    &index_path,
                    "several images in it: name one with oci:DIR:TAG",
                ));
            }
        },
    };
    let mut desc = chosen.clone();
    // A multi-platform index: the manifest for this host.
    for _ in 0..4 {
        let media = desc["mediaType"].as_str().unwrap_or_default();
        if media != INDEX && media != DOCKER_LIST {
            break;
        }
        let d = digest_of(&desc, &index_path)?;
        let sub = read_json(&blob(&d)?)?;
        let list = sub["manifests"].as_array().cloned().unwrap_or_default();
        desc = list
            .iter()
            .find(|m| {
                m["platform"]["os"].as_str() == Some("linux")
                    && m["platform"]["architecture"].as_str() == Some(host_arch())
            })
            .cloned()
            .ok_or_else(|| {
                layout_err(
                    &index_path,
                    format!("no image for linux/{} in index {d}", host_arch()),
                )
            })?;
    }
    digest_of(&desc, &index_path)
}

/// Imports the image `tag` (or the only one) of the OCI layout at `layout`.
pub fn import(store: &Store, layout: &Path, tag: Option<&str>) -> Result<Image, ImageError> {
    let indexes = std::cell::RefCell::new(Vec::new());
    let manifest_digest = choose(layout, tag, |d| {
        indexes.borrow_mut().push(d.clone());
        take(store, layout, d)
    })?;
    let manifest_path = take(store, layout, &manifest_digest)?;
    let manifest = read_json(&manifest_path)?;
    let config_digest = digest_of(&manifest["config"], &manifest_path)?;
    let config = read_json(&take(store, layout, &config_digest)?)?;
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let d = digest_of(&l, &manifest_path)?;
        take(store, layout, &d)?;
        layers.push((d, l["mediaType"].as_str().unwrap_or_default().to_string()));
    }
    let mut blobs = indexes.into_inner();
    blobs.push(manifest_digest.clone());
    blobs.push(config_digest);
    blobs.extend(layers.iter().map(|(d, _)| d.clone()));
    Ok(Image {
        manifest: manifest_digest,
        layers,
        blobs,
        defaults: defaults_of(&config),
    })
}

/// What an image config (OCI or Docker) sets for containers.
pub fn defaults_of(config: &serde_json::Value) -> Defaults {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let c = &config["config"];
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(String::from);
    Defaults {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"]),
        workdir: text(&c["WorkingDir"]),
        user: text(&c["User"]),
    }
}

/// The unpacked directory of a layer, unpacked now if it is not yet.
pub fn layer_dir(
    store: &Store,
    root: &Path,
    digest: &Digest,
    media_type: &str,
) -> Result<PathBuf, ImageError> {
    let dir = root.join("layers").join(digest.hex());
    if dir.is_dir() {
        return Ok(dir);
    }
    let blob = store.blob_path(digest);
    let mut f = std::fs::File::open(&blob).map_err(|e| layout_err(&blob, e.to_string()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).unwrap_or(0);
    let gz = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let zstd = n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd];
    if media_type.contains("zstd") && !zstd {
        return Err(ImageError::MediaType {
            digest: digest.clone(),
            media_type: media_type.into(),
        });
    }
    let f = std::fs::File::open(&blob).map_err(|e| layout_err(&blob, e.to_string()))?;
    let parent = root.join("layers");
    std::fs::create_dir_all(&parent).map_err(|e| layout_err(&parent, e.to_string()))?;
    // Unpacked beside, then renamed: a layer directory is whole or absent.
    let tmp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(&parent)
        .map_err(|e| layout_err(&parent, e.to_string()))?;
    let opts = unpack::Options {
        devices: true,
        owners: true,
    };
    let result = if gz {
        unpack::unpack(flate2::read::GzDecoder::new(f), tmp.path(), opts)
    } else if zstd {
        match ruzstd::decoding::StreamingDecoder::new(f) {
            Ok(z) => unpack::unpack(z, tmp.path(), opts),
            Err(e) => Err(unpack::UnpackError::Tar(std::io::Error::other(format!(
                "zstd: {e}"
            )))),
        }
    } else {
        unpack::unpack(f, tmp.path(), opts)
    };
    result.map_err(|source| ImageError::Unpack {
        digest: digest.clone(),
        source,
    })?;
    let kept = tmp.keep();
    // The layer's own root has the mode of a root directory.
    let _ = std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    if let Err(e) = std::fs::rename(&kept, &dir) {
        let _ = std::fs::remove_dir_all(&kept);
        if !dir.is_dir() {
            return Err(layout_err(&dir, e.to_string()));
        }
    }
    Ok(dir)
}

/// An image already pulled: from its manifest in the store.
pub fn from_store(store: &Store, manifest: &Digest) -> Result<Image, ImageError> {
    let m = read_json(&store.blob_path(manifest))?;
    let config_digest = Digest::parse(m["config"]["digest"].as_str().unwrap_or_default())?;
    let config = read_json(&store.blob_path(&config_digest))?;
    let mut layers = Vec::new();
    for l in m["layers"].as_array().cloned().unwrap_or_default() {
        let d = Digest::parse(l["digest"].as_str().unwrap_or_default())?;
        if !store.has(&d) {
            return Err(ImageError::Layout {
                path: store.blob_path(&d),
                what: format!("layer {d} is missing from the store"),
            });
        }
        layers.push((d, l["mediaType"].as_str().unwrap_or_default().to_string()));
    }
    let mut blobs = vec![manifest.clone(), config_digest];
    blobs.extend(layers.iter().map(|(d, _)| d.clone()));
    Ok(Image {
        manifest: manifest.clone(),
        layers,
        blobs,
        defaults: defaults_of(&config),
    })
}
