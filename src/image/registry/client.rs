//! One registry's client: requests with the credentials the registry asks
//! for (a bearer token from its realm, or Basic), redirects, blobs streamed
//! into the store with progress and resumption, on a runtime of this thread.

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::super::oci::ImageError;
use super::super::store::{Digest, Store};
use super::{OnProgress, Progress, Reference};

const NEEDS_CREDS: &str =
    "the registry wants credentials: give --creds USER:PASSWORD, or log in (~/.docker/config.json)";

pub(in crate::image) fn err(what: impl Into<String>) -> ImageError {
    ImageError::Layout {
        path: std::path::PathBuf::from("registry"),
        what: what.into(),
    }
}

/// One connection's worth of client.
pub(in crate::image) struct Client {
    host: String,
    insecure: bool,
    tls: std::sync::Arc<rustls::ClientConfig>,
    /// The Authorization header to send (`Bearer …` or `Basic …`).
    token: Option<String>,
    /// `USER:PASSWORD`, base64: for a Basic challenge or a token realm.
    basic: Option<String>,
    /// Ask for the rest of a blob from this byte on.
    range: Option<u64>,
    /// Told how each blob comes along.
    progress: Option<OnProgress>,
    /// The challenge the token answered: a request that meets another
    /// (a push after a pull's scope) asks for a new token once.
    answered: Option<String>,
}

/// How long a registry may stay silent: before it answers a request, or
/// in the middle of a blob.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// A small body (a manifest, a config, a token), read within [`STALL`].
pub(in crate::image) async fn read_body(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<Bytes, ImageError> {
    tokio::time::timeout(STALL, resp.into_body().collect())
        .await
        .map_err(|_| {
            err(format!(
                "the registry stopped sending for {} s",
                STALL.as_secs()
            ))
        })?
        .map(|b| b.to_bytes())
        .map_err(|e| err(e.to_string()))
}

impl Client {
    pub(super) async fn get(
        &mut self,
        path: &str,
        accept: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ImageError> {
        self.send("GET", path, &[("accept", accept.to_string())], Bytes::new())
            .await
    }

    /// One request, with the credentials the registry asks for (a token
    /// from its realm, or Basic), following a redirect.
    pub(in crate::image) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ImageError> {
        let host = self.host.clone();
        self.send_at(method, &host, path, headers, body).await
    }

    /// The registry's URL (`https://HOST[:PORT]`, or `http://`).
    pub(in crate::image) fn host_url(&self) -> String {
        self.host.clone()
    }

    /// [`Client::send`] to `host` (an upload URL may name another).
    pub(in crate::image) async fn send_at(
        &mut self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ImageError> {
        for _ in 0..4 {
            let resp = self
                .request(method, host, path, headers, body.clone())
                .await?;
            match resp.status().as_u16() {
                401 => {
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    if self.token.is_some() && self.answered.as_deref() == Some(challenge.as_str())
                    {
                        return Err(err("the registry refused the credentials (HTTP 401)"));
                    }
                    self.token = Some(if challenge.trim_start().starts_with("Basic") {
                        let basic = self.basic.clone().ok_or_else(|| err(NEEDS_CREDS))?;
                        format!("Basic {basic}")
                    } else {
                        format!("Bearer {}", self.fetch_token(&challenge).await?)
                    });
                    self.answered = Some(challenge);
                }
                307 | 302 | 301 if method == "GET" || method == "HEAD" => {
                    let to = resp
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let (host, path) =
                        split_url(&to).ok_or_else(|| err(format!("bad redirect to {to}")))?;
                    return self.request(method, &host, &path, headers, body).await;
                }
                _ => return Ok(resp),
            }
        }
        Err(err(format!("{path}: too many retries")))
    }

    async fn fetch_token(&mut self, challenge: &str) -> Result<String, ImageError> {
        let field = |name: &str| {
            challenge
                .split(',')
                .find_map(|p| {
                    p.trim()
                        .trim_start_matches("Bearer ")
                        .strip_prefix(&format!("{name}="))
                })
                .map(|v| v.trim_matches('"').to_string())
        };
        let realm = field("realm").ok_or_else(|| {
            err(format!(
                "an authentication challenge without a realm: {challenge}"
            ))
        })?;
        let mut q = Vec::new();
        for k in ["service", "scope"] {
            if let Some(v) = field(k) {
                q.push(format!("{k}={v}"));
            }
        }
        let url = format!("{realm}?{}", q.join("&"));
        let (host, path) =
            split_url(&url).ok_or_else(|| err(format!("bad token realm {realm}")))?;
        // The token request carries the credentials, when there are any.
        self.token = self.basic.as_ref().map(|b| format!("Basic {b}"));
        let resp = self
            .request(
                "GET",
                &host,
                &path,
                &[("accept", "application/json".to_string())],
                Bytes::new(),
            )
            .await;
        self.token = None;
        let resp = resp?;
        if resp.status().as_u16() == 401 {
            return Err(err(if self.basic.is_some() {
                "the registry refused the credentials"
            } else {
                NEEDS_CREDS
            }));
        }
        let body = read_body(resp).await?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| err(e.to_string()))?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(String::from)
            .ok_or_else(|| err("no token from the registry's realm"))
    }

    /// One request; a registry that does not answer within [`STALL`] is
    /// an error (a pull or push never hangs on a silent peer).
    async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ImageError> {
        tokio::time::timeout(STALL, self.request_now(method, host, path, headers, body))
            .await
            .map_err(|_| err(format!("{host}: no answer within {} s", STALL.as_secs())))?
    }

    async fn request_now(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ImageError> {
        let (scheme_host, tls) = match host.strip_prefix("http://") {
            Some(h) => (h.to_string(), false),
            None => (
                host.trim_start_matches("https://").to_string(),
                !self.insecure || host.starts_with("https://"),
            ),
        };
        let addr = if scheme_host.contains(':') {
            scheme_host.clone()
        } else {
            format!("{scheme_host}:{}", if tls { 443 } else { 80 })
        };
        let tcp = match super::super::registry_env::proxy(tls, &scheme_host).map_err(err)? {
            Some(p) => super::super::registry_env::tunnel(&p, &addr)
                .await
                .map_err(err)?,
            None => tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|e| err(format!("{addr}: {e}")))?,
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", scheme_host.clone())
            .header("user-agent", concat!("rkstack/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        if method != "GET" && method != "HEAD" {
            req = req.header("content-length", body.len().to_string());
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", t.as_str());
        }
        if let Some(from) = self.range {
            req = req.header("range", format!("bytes={from}-"));
        }
        let req = req.body(Full::new(body)).map_err(|e| err(e.to_string()))?;
        let name = scheme_host
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        if tls {
            let server =
                rustls_pki_types::ServerName::try_from(name).map_err(|e| err(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(server, tcp)
                .await
                .map_err(|e| {
                    err(format!(
                        "{addr}: TLS: {e} (a registry serving plain HTTP needs --insecure-registry {scheme_host})"
                    ))
                })?;
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| err(e.to_string()))?;
            tokio::spawn(conn);
            s.send_request(req).await.map_err(|e| err(e.to_string()))
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| err(e.to_string()))?;
            tokio::spawn(conn);
            s.send_request(req).await.map_err(|e| err(e.to_string()))
        }
    }

    /// A blob into the store, streamed and verified; nothing is kept on a
    /// mismatch. What an interrupted pull left is resumed (HTTP Range).
    pub(super) async fn blob(
        &mut self,
        store: &Store,
        repo: &str,
        d: &Digest,
    ) -> Result<(), ImageError> {
        if store.has(d) {
            return Ok(());
        }
        let Some(mut w) = store.writer(d, true)? else {
            return Ok(());
        };
        self.range = (w.offset() > 0).then(|| w.offset());
        let resp = self.get(&format!("/v2/{repo}/blobs/{d}"), "*/*").await;
        self.range = None;
        let resp = resp?;
        match resp.status().as_u16() {
            206 => {}
            200 if w.offset() > 0 => w.restart()?,
            200 => {}
            s => return Err(err(format!("blob {d}: HTTP {s}"))),
        }
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|n| n + w.offset());
        let mut body = resp.into_body();
        let mut told = 0u64;
        loop {
            let frame = tokio::time::timeout(STALL, body.frame())
                .await
                .map_err(|_| {
                    err(format!(
                        "blob {d}: nothing came for {} s (what came is kept for the next pull)",
                        STALL.as_secs()
                    ))
                })?;
            let Some(frame) = frame else { break };
            // A broken connection leaves what came for the next pull.
            let frame = frame.map_err(|e| err(format!("blob {d}: {e}")))?;
            if let Some(data) = frame.data_ref() {
                w.write(data)?;
                if let Some(p) = self.progress.as_mut()
                    && w.offset() >= told + (1 << 20)
                {
                    told = w.offset();
                    p(&Progress {
                        digest: d.clone(),
                        done: told,
                        total,
                        finished: false,
                    });
                }
            }
        }
        let size = w.finish()?;
        if let Some(p) = self.progress.as_mut() {
            p(&Progress {
                digest: d.clone(),
                done: size,
                total,
                finished: true,
            });
        }
        Ok(())
    }
}

pub(in crate::image) fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Some((format!("{scheme}://{host}"), path.to_string()))
}

impl Client {
    /// A client of the registry of `r`.
    pub(in crate::image) fn new(
        r: &Reference,
        insecure: &[String],
        creds: Option<&str>,
        progress: Option<OnProgress>,
    ) -> Result<Client, ImageError> {
        let basic = match creds {
            Some(c) => Some(base64(c.as_bytes())),
            None => super::super::registry_env::docker_config_auth(&r.registry),
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .with_root_certificates(super::super::registry_env::roots(&r.registry))
            .with_no_client_auth();
        let is_insecure = insecure.contains(&r.registry);
        Ok(Client {
            host: if is_insecure {
                format!("http://{}", r.registry)
            } else {
                format!("https://{}", r.registry)
            },
            insecure: is_insecure,
            tls: std::sync::Arc::new(tls),
            token: None,
            basic,
            range: None,
            progress,
            answered: None,
        })
    }
}

/// The runtime a pull or a push runs on: this thread alone.
pub(in crate::image) fn runtime() -> Result<tokio::runtime::Runtime, ImageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| err(e.to_string()))
}

/// Standard base64 (with padding).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
