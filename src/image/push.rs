//! Pushes an image of the store to a registry (distribution API v2): each
//! blob the registry does not have yet — asked with `HEAD` first — is
//! mounted from another repository of the same registry that the store
//! knows holds it (where the registry offers it), or uploaded: in one
//! request when small, in chunks of [`CHUNK`] otherwise (never more than
//! a chunk in memory); then the manifest under its tag. Credentials and
//! TLS as for a pull.

use std::io::{Read, Seek, Write};

use axum::body::Bytes;

use super::oci::ImageError;
use super::registry::{Client, Reference, err, read_body, runtime, split_url};
use super::store::{Digest, Store};

/// Blobs up to this size go in one request; bigger ones in chunks of it.
pub const CHUNK: u64 = 8 << 20;

/// What a push did with one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The registry had it.
    Exists,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded in this many requests.
    Uploaded(u64),
}

/// The repositories of `registry` from which the store pulled images that
/// hold blob `d` (candidates for a cross-repository mount).
fn mount_sources(store: &Store, registry: &str, repo: &str, d: &Digest) -> Vec<String> {
    let mut out = Vec::new();
    for r in store.references() {
        let Some(rest) = r.reference.strip_prefix("docker://") else {
            continue;
        };
        let other = Reference::parse(rest);
        if other.registry == registry
            && other.repository != repo
            && r.blobs.iter().any(|b| *b == d.to_string())
            && !out.contains(&other.repository)
        {
            out.push(other.repository);
        }
    }
    out
}

/// `location` (a registry's upload URL, absolute or a path) with `query`
/// added: (host, path).
fn at(host: &str, location: &str, query: &str) -> Result<(String, String), ImageError> {
    let (h, p) = if location.starts_with('/') {
        (host.to_string(), location.to_string())
    } else {
        split_url(location).ok_or_else(|| err(format!("bad upload location {location}")))?
    };
    if query.is_empty() {
        return Ok((h, p));
    }
    let sep = if p.contains('?') { '&' } else { '?' };
    Ok((h, format!("{p}{sep}{query}")))
}

fn location(resp: &hyper::Response<hyper::body::Incoming>) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Pushes image `manifest` to `dest` (`REGISTRY/REPO[:TAG]`); `told` is
/// given a line per blob. The manifest's digest.
pub fn push(
    store: &Store,
    manifest: &Digest,
    dest: &str,
    insecure: &[String],
    creds: Option<&str>,
    told: &mut dyn Write,
) -> Result<Digest, ImageError> {
    let r = Reference::parse(dest);
    if r.reference.starts_with("sha256:") {
        return Err(err(format!("{dest}: push to a tag, not a digest")));
    }
    let text = std::fs::read(store.blob_path(manifest))
        .map_err(|e| err(format!("manifest {manifest}: {e}")))?;
    let m: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| err(format!("manifest {manifest}: {e}")))?;
    let media_type = m["mediaType"]
        .as_str()
        .unwrap_or(super::build::image::MANIFEST)
        .to_string();
    let mut blobs = Vec::new();
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten()) {
        blobs.push(Digest::parse(d["digest"].as_str().unwrap_or_default())?);
    }
    let mut client = Client::new(&r, insecure, creds, None)?;
    let rt = runtime()?;
    rt.block_on(async {
        for d in &blobs {
            let sent = blob(&mut client, store, &r, d).await?;
            let _ = writeln!(
                told,
                "{d}: {}",
                match sent {
                    Sent::Exists => "already there".to_string(),
                    Sent::Mounted => "mounted from another repository".to_string(),
                    Sent::Uploaded(n) =>
                        format!("uploaded ({n} request{})", if n == 1 { "" } else { "s" }),
                }
            );
        }
        let path = format!("/v2/{}/manifests/{}", r.repository, r.reference);
        let resp = client
            .send(
                "PUT",
                &path,
                &[("content-type", media_type)],
                Bytes::from(text),
            )
            .await?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 {
            let body = read_body(resp).await.unwrap_or_default();
            return Err(err(format!(
                "{dest}: the registry refused the manifest (HTTP {status}): {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(manifest.clone())
    })
}

/// One blob to the registry.
async fn blob(
    client: &mut Client,
    store: &Store,
    r: &Reference,
    d: &Digest,
) -> Result<Sent, ImageError> {
    let repo = &r.repository;
    let head = client
        .send("HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], Bytes::new())
        .await?;
    if head.status().is_success() {
        return Ok(Sent::Exists);
    }
    let mut upload = None;
    for from in mount_sources(store, &r.registry, repo, d) {
        let resp = client
            .send(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
                &[],
                Bytes::new(),
            )
            .await?;
        match resp.status().as_u16() {
            201 => return Ok(Sent::Mounted),
            // Not offered: an upload was started instead.
            202 => {
                upload = location(&resp);
                break;
            }
            _ => {}
        }
    }
    let start = match upload {
        Some(l) => l,
        None => {
            let resp = client
                .send(
                    "POST",
                    &format!("/v2/{repo}/blobs/uploads/"),
                    &[],
                    Bytes::new(),
                )
                .await?;
            if resp.status().as_u16() != 202 {
                return Err(err(format!(
                    "blob {d}: the registry refused an upload (HTTP {})",
                    resp.status()
                )));
            }
            location(&resp).ok_or_else(|| err(format!("blob {d}: no upload location")))?
        }
    };
    let path = store.blob_path(d);
    let mut f = std::fs::File::open(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let size = f
        .metadata()
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .len();
    let read = |f: &mut std::fs::File, n: u64| -> Result<Bytes, ImageError> {
        let mut buf = Vec::with_capacity(n as usize);
        Read::by_ref(f)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        Ok(Bytes::from(buf))
    };
    let octets = || ("content-type", "application/octet-stream".to_string());
    let host = client.host_url();
    let digest_q = format!("digest={d}");
    if size <= CHUNK {
        let body = read(&mut f, size)?;
        let (h, p) = at(&host, &start, &digest_q)?;
        let resp = client.send_at("PUT", &h, &p, &[octets()], body).await?;
        return finished(resp, d, 1).await;
    }
    let mut next = start;
    let mut offset = 0u64;
    let mut requests = 0u64;
    f.rewind().map_err(|e| err(e.to_string()))?;
    while offset < size {
        let n = CHUNK.min(size - offset);
        let body = read(&mut f, n)?;
        let (h, p) = at(&host, &next, "")?;
        let range = ("content-range", format!("{offset}-{}", offset + n - 1));
        let resp = client
            .send_at("PATCH", &h, &p, &[octets(), range], body)
            .await?;
        requests += 1;
        if resp.status().as_u16() != 202 {
            return Err(err(format!(
                "blob {d}: chunk at {offset}: HTTP {}",
                resp.status()
            )));
        }
        next = location(&resp).ok_or_else(|| err(format!("blob {d}: no upload location")))?;
        offset += n;
    }
    let (h, p) = at(&host, &next, &digest_q)?;
    let resp = client.send_at("PUT", &h, &p, &[], Bytes::new()).await?;
    finished(resp, d, requests + 1).await
}

async fn finished(
    resp: hyper::Response<hyper::body::Incoming>,
    d: &Digest,
    requests: u64,
) -> Result<Sent, ImageError> {
    let status = resp.status().as_u16();
    if status == 201 || status == 204 {
        return Ok(Sent::Uploaded(requests));
    }
    let body = read_body(resp).await.unwrap_or_default();
    Err(err(format!(
        "blob {d}: the registry did not take it (HTTP {status}): {}",
        String::from_utf8_lossy(&body).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_locations_get_their_query() {
        let host = "http://127.0.0.1:5000";
        assert_eq!(
            at(host, "/v2/a/blobs/uploads/1?_state=x", "digest=sha256:00").ok(),
            Some((
                host.to_string(),
                "/v2/a/blobs/uploads/1?_state=x&digest=sha256:00".to_string()
            ))
        );
        assert_eq!(
            at(host, "https://cdn.example/up/1", "digest=sha256:00").ok(),
            Some((
                "https://cdn.example".to_string(),
                "/up/1?digest=sha256:00".to_string()
            ))
        );
        assert_eq!(
            at(host, "/v2/a/blobs/uploads/1", "").ok(),
            Some((host.to_string(), "/v2/a/blobs/uploads/1".to_string()))
        );
    }
}
