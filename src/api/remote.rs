//! The API over TCP, opt-in (`rkstack up --listen tcp://ADDR:PORT`): TLS
//! only (rustls), with a client certificate checked against `--client-ca`
//! and/or a bearer token from `--token-file`. Plain TCP is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::server::{Api, Auth};

/// What `up --listen` was given.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    pub listen: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// A checked TLS listening setup.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub config: Arc<rustls::ServerConfig>,
    pub token: Option<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `tcp://ADDR:PORT` (the only form: the API is never served in plain text).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let Some(rest) = s.strip_prefix("tcp://") else {
        return Err(format!(
            "--listen {s}: expected tcp://ADDR:PORT (served with TLS only; plain HTTP over TCP is refused)"
        ));
    };
    rest.parse().map_err(|_| {
        format!("--listen {s}: {rest} is not ADDR:PORT (like 0.0.0.0:8443 or [::1]:8443)")
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let out: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.is_empty() {
        return Err(format!(
            "{}: no certificate in it (PEM expected)",
            path.display()
        ));
    }
    Ok(out)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn token(path: &Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .to_string();
    if t.len() < 16 {
        return Err(format!(
            "{}: the token must be at least 16 characters long",
            path.display()
        ));
    }
    Ok(t)
}

fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// Checks the options and loads certificates, key, CA and token.
pub fn prepare(o: &ListenOptions) -> Result<Listen, String> {
    let addr = parse_listen(&o.listen)?;
    let (Some(cert), Some(key_path)) = (&o.cert, &o.key) else {
        return Err(
            "--listen needs --tls-cert and --tls-key: the API is served over TLS only".into(),
        );
    };
    if o.client_ca.is_none() && o.token_file.is_none() {
        return Err(
            "--listen needs --client-ca (client certificates) or --token-file (bearer token), or both"
                .into(),
        );
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &o.client_ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(cert)?, key(key_path)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key_path.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Listen {
        addr,
        config: Arc::new(config),
        token: o.token_file.as_deref().map(token).transpose()?,
    })
}

/// Serves the API on `listener` over TLS until the runtime ends.
pub async fn serve(listener: tokio::net::TcpListener, listen: Listen, api: Api) {
    let acceptor = tokio_rustls::TlsAcceptor::from(listen.config.clone());
    let auth = match listen.token {
        Some(t) => Auth::Token(t),
        None => Auth::Verified,
    };
    let slots = super::conns::Slots::default();
    let mut warned = None;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                super::conns::accept_failed("API over TLS", &e, &mut warned).await;
                continue;
            }
        };
        let Some(slot) = slots.take() else { continue };
        let acceptor = acceptor.clone();
        let app = super::server::router_with(api.clone(), auth.clone())
            .layer(axum::Extension(super::server::Remote(peer)));
        tokio::spawn(async move {
            // A handshake that never ends holds its slot no longer than an
            // idle connection would.
            let tls = match tokio::time::timeout(super::conns::idle_timeout(), acceptor.accept(tcp))
                .await
                .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
            {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("API over TLS: refused {peer}: {e}");
                    return;
                }
            };
            super::conns::serve(tls, app, slot);
        });
    }
}

/// How the CLI reaches a remote supervisor (`--host https://ADDR:PORT`).
#[derive(Debug, Clone)]
pub struct Remote {
    pub addr: String,
    pub name: ServerName<'static>,
    pub config: Arc<rustls::ClientConfig>,
    pub token: Option<String>,
}

/// The CLI's options for a remote supervisor.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    pub host: String,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

pub fn client(o: &RemoteOptions) -> Result<Remote, String> {
    let Some(rest) = o.host.strip_prefix("https://") else {
        return Err(format!("--host {}: expected https://ADDR:PORT", o.host));
    };
    let addr = rest.trim_end_matches('/').to_string();
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => return Err(format!("--host {}: the port is missing", o.host)),
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| format!("--host {}: {e}", o.host))?
        .to_owned();
    let Some(ca) = &o.ca else {
        return Err(
            "--host needs --ca: the certificate authority of the supervisor's certificate".into(),
        );
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca)?);
    let mut config = match (&o.cert, &o.key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certs(c)?, key(k)?)
            .map_err(|e| format!("{}: {e}", c.display()))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".into()),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Remote {
        addr,
        name,
        config: Arc::new(config),
        token: o.token_file.as_deref().map(token).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_with_tls_is_accepted() {
        assert_eq!(
            parse_listen("tcp://127.0.0.1:8443").unwrap(),
            "127.0.0.1:8443".parse::<SocketAddr>().unwrap()
        );
        assert!(
            parse_listen("http://127.0.0.1:80")
                .unwrap_err()
                .contains("TLS only")
        );
        assert!(parse_listen("tcp://nowhere").is_err());
        let o = ListenOptions {
            listen: "tcp://127.0.0.1:8443".into(),
            cert: None,
            key: None,
            client_ca: None,
            token_file: None,
        };
        assert!(prepare(&o).unwrap_err().contains("TLS only"));
    }
}
