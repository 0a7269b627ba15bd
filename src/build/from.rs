//! A stage's state as the build goes (its config, its layers, its cache
//! key) and where it starts: `FROM scratch`, an earlier stage, an image
//! built and tagged here (`localhost/NAME[:TAG]`, or `NAME[:TAG]` when
//! the store has it so), or any image rkstack runs (`docker://`, `oci:`,
//! `tar:`), pulled or imported as a container's would be. A bare name the
//! store does not have is pulled from its registry, as podman does.

use std::path::{Path, PathBuf};

use crate::image::build::image::{Blob, Config};
use crate::image::oci;
use crate::image::store::{Digest, Store};

use super::cache;

/// A stage as far as it is built.
#[derive(Debug, Clone)]
pub struct State {
    pub config: Config,
    /// Its layers, bottom first.
    pub layers: Vec<Blob>,
    /// The cache key of the last step.
    pub key: String,
}

impl State {
    /// The unpacked folders of its layers, top first (unpacked now where
    /// they are not yet).
    pub fn lowers(&self, store: &Store, root: &Path) -> Result<Vec<PathBuf>, String> {
        self.layers
            .iter()
            .rev()
            .map(|b| {
                oci::layer_dir(store, root, &b.digest, &b.media_type).map_err(|e| e.to_string())
            })
            .collect()
    }
}

/// The state of an image whose manifest the store holds.
pub fn of_manifest(store: &Store, manifest: &Digest) -> Result<State, String> {
    let read = |d: &Digest| -> Result<serde_json::Value, String> {
        let p = store.blob_path(d);
        let text = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let m = read(manifest)?;
    let config_digest = Digest::parse(m["config"]["digest"].as_str().unwrap_or_default())
        .map_err(|e| format!("image {manifest}: {e}"))?;
    let config = read(&config_digest)?;
    let mut layers = Vec::new();
    for l in m["layers"].as_array().cloned().unwrap_or_default() {
        let digest = Digest::parse(l["digest"].as_str().unwrap_or_default())
            .map_err(|e| format!("image {manifest}: {e}"))?;
        layers.push(Blob {
            digest,
            size: l["size"].as_u64().unwrap_or(0),
            media_type: oci_media_type(l["mediaType"].as_str().unwrap_or_default()).into(),
        });
    }
    Ok(State {
        config: Config::from_base(&config),
        layers,
        key: cache::base(&manifest.to_string()),
    })
}

/// The OCI media type of a layer of either kind of manifest (docker's
/// gzip layers are OCI gzip layers under another name).
fn oci_media_type(t: &str) -> &'static str {
    if t.contains("zstd") {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else if t.ends_with("gzip") {
        crate::image::build::image::LAYER
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// Where `FROM image` starts, for an image (not `scratch`, not a stage).
pub fn image(
    store: &Store,
    data_dir: &Path,
    insecure: &[String],
    image: &str,
    progress: &mut dyn std::io::Write,
) -> Result<State, String> {
    let local = |name: &str| {
        crate::config::local_name(name)
            .ok()
            .and_then(|n| store.reference(&n))
    };
    let scheme = ["docker://", "oci:", "tar:"]
        .iter()
        .any(|s| image.starts_with(s));
    if !scheme {
        if let Some(r) = local(image) {
            let d = Digest::parse(&r.manifest).map_err(|e| e.to_string())?;
            return of_manifest(store, &d);
        }
        if image.starts_with("localhost/") {
            return Err(format!(
                "{image}: no such image here (built images are listed by rkstack images)"
            ));
        }
    }
    let reference = if scheme {
        image.to_string()
    } else {
        let _ = writeln!(progress, "  {image} is not here: pulling docker://{image}");
        format!("docker://{image}")
    };
    let c = base_container(&reference)?;
    let fs = crate::container::images::prepare(&c, data_dir, "build", insecure, true)?
        .ok_or_else(|| format!("{image}: not an image a build can start from"))?;
    let d = Digest::parse(&fs.manifest).map_err(|e| e.to_string())?;
    of_manifest(store, &d)
}

/// A read-only container of `image`, to prepare its image as `up` would.
fn base_container(image: &str) -> Result<crate::config::Container, String> {
    let quoted = serde_json::to_string(image).unwrap_or_default();
    let text = format!(
        "name = \"build\"\n[containers.base]\nimage = {quoted}\ncommand = [\"/bin/true\"]\nread_only = true\n"
    );
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let stack = crate::config::parse(&text, &cwd.join("Containerfile"))
        .map_err(|e| format!("FROM {image}: {e}"))?;
    stack
        .containers
        .into_values()
        .next()
        .ok_or_else(|| format!("FROM {image}: no container"))
}
