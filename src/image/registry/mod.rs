//! Pulls from an OCI/Docker registry (distribution API v2): the manifest
//! for this host's platform, its config and layers, each streamed into the
//! store and kept only when it has its digest. HTTPS with the system's
//! certificate authorities; plain HTTP only for a registry named with
//! `--insecure-registry`. Anonymous access (bearer tokens from the
//! registry's realm when it asks).

mod client;

pub use client::base64;
pub(super) use client::{Client, err, read_body, runtime, split_url};

use super::oci::{self, Image, ImageError};
use super::store::{Digest, Store};

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `[REGISTRY/]REPO[:TAG|@DIGEST]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl Reference {
    pub fn parse(r: &str) -> Reference {
        let (first, rest) = r.split_once('/').unwrap_or(("", r));
        let (registry, path) = if first.contains('.') || first.contains(':') || first == "localhost"
        {
            (first.to_string(), rest.to_string())
        } else {
            ("registry-1.docker.io".to_string(), r.to_string())
        };
        let path = if registry == "registry-1.docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let (repository, reference) = match path.split_once('@') {
            Some((repo, digest)) => (repo.to_string(), digest.to_string()),
            None => match path.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
                _ => (path.clone(), "latest".to_string()),
            },
        };
        Reference {
            registry,
            repository,
            reference,
        }
    }
}

/// What is told how a pull comes along.
pub type OnProgress = Box<dyn FnMut(&Progress)>;

/// How a blob of a pull comes along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub digest: Digest,
    pub done: u64,
    /// From the registry's Content-Length, when it sent one.
    pub total: Option<u64>,
    pub finished: bool,
}

/// Pulls `reference` (`[REGISTRY/]REPO[:TAG|@DIGEST]`) into the store.
/// `insecure`: registries (HOST[:PORT]) reached over plain HTTP.
pub fn pull(
    store: &Store,
    reference: &str,
    insecure: &[String],
    creds: Option<&str>,
) -> Result<Image, ImageError> {
    pull_with(store, reference, insecure, creds, None)
}

/// [`pull`], telling `progress` how each blob comes along.
pub fn pull_with(
    store: &Store,
    reference: &str,
    insecure: &[String],
    creds: Option<&str>,
    progress: Option<OnProgress>,
) -> Result<Image, ImageError> {
    let r = Reference::parse(reference);
    let mut client = Client::new(&r, insecure, creds, progress)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let repo = r.repository.clone();
        let mut want = r.reference.clone();
        // The manifest (through a multi-platform index to this host's).
        let mut manifest_digest;
        let mut manifest;
        let mut hops = 0;
        loop {
            let resp = client
                .get(&format!("/v2/{repo}/manifests/{want}"), ACCEPT)
                .await?;
            if !resp.status().is_success() {
                return Err(err(format!(
                    "{reference}: manifest {want}: HTTP {}",
                    resp.status()
                )));
            }
            let body = read_body(resp).await?;
            manifest_digest = Digest::of(&body);
            if want.starts_with("sha256:") && want != manifest_digest.to_string() {
                return Err(err(format!(
                    "{reference}: the manifest has digest {manifest_digest}, not {want}"
                )));
            }
            store.put(&manifest_digest, &body[..])?;
            manifest = serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| err(e.to_string()))?;
            let Some(list) = manifest["manifests"].as_array() else {
                break;
            };
            let chosen = list
                .iter()
                .find(|m| {
                    m["platform"]["os"].as_str() == Some("linux")
                        && m["platform"]["architecture"].as_str() == Some(oci::host_arch())
                })
                .and_then(|m| m["digest"].as_str())
                .ok_or_else(|| {
                    err(format!(
                        "{reference}: no image for linux/{}",
                        oci::host_arch()
                    ))
                })?;
            want = chosen.to_string();
            hops += 1;
            if hops > 3 {
                return Err(err("index nesting too deep"));
            }
        }
        let config_digest =
            Digest::parse(manifest["config"]["digest"].as_str().unwrap_or_default())?;
        client.blob(store, &repo, &config_digest).await?;
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let d = Digest::parse(l["digest"].as_str().unwrap_or_default())?;
            client.blob(store, &repo, &d).await?;
            layers.push((d, l["mediaType"].as_str().unwrap_or_default().to_string()));
        }
        let config = oci::read_json(&store.blob_path(&config_digest))?;
        let mut blobs = vec![manifest_digest.clone(), config_digest];
        blobs.extend(layers.iter().map(|(d, _)| d.clone()));
        Ok(Image {
            manifest: manifest_digest,
            layers,
            blobs,
            defaults: oci::defaults_of(&config),
        })
    })
}

/// An image whose manifest is in the store (see [`oci::from_store`]).
pub fn from_store(store: &Store, manifest: &Digest) -> Result<Image, ImageError> {
    oci::from_store(store, manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_base64_as_http_wants_them() {
        assert_eq!(base64(b"alice:s3cret"), "YWxpY2U6czNjcmV0");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn references_split_like_docker_does() {
        let r = Reference::parse("127.0.0.1:5000/demo/app:v1");
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "demo/app", "v1")
        );
        let r = Reference::parse("busybox");
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("registry-1.docker.io", "library/busybox", "latest")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/x@{d}"));
        assert_eq!(r.reference, d);
        assert_eq!(
            split_url("https://auth.example/token?x=1"),
            Some(("https://auth.example".into(), "/token?x=1".into()))
        );
    }
}
