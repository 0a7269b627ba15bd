//! What the host says about reaching registries, read as docker and podman
//! read it: the CA bundle (`SSL_CERT_FILE`) and per-registry CA folders
//! (`/etc/containers/certs.d/HOST[:PORT]/*.crt`, `/etc/docker/certs.d/…`),
//! the proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, upper or lower case)
//! and the credentials of the Docker client's config (`auths`,
//! `credHelpers`, `credsStore`, with `docker-credential-NAME get`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where per-registry CA folders are looked for.
const CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// How long a credential helper may take.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The CAs a connection to `registry` (`HOST[:PORT]`) trusts: the bundle
/// `SSL_CERT_FILE` names (else the system's), and that registry's
/// `certs.d` folder's `*.crt` files.
pub fn roots(registry: &str) -> rustls::RootCertStore {
    let mut files: Vec<PathBuf> = match std::env::var_os("SSL_CERT_FILE") {
        Some(f) => vec![PathBuf::from(f)],
        None => vec![
            PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            PathBuf::from("/etc/pki/tls/certs/ca-bundle.crt"),
        ],
    };
    files.extend(registry_cas(&CERTS_D.map(Path::new), registry));
    let mut roots = rustls::RootCertStore::empty();
    for f in files {
        add_pem(&mut roots, &f);
    }
    roots
}

/// The `*.crt` files of `registry`'s folder under each of `dirs`. The
/// folder is named as the registry is written (`HOST` or `HOST:PORT`); a
/// name that could leave the folder is not looked up.
fn registry_cas(dirs: &[&Path], registry: &str) -> Vec<PathBuf> {
    if registry.is_empty() || registry.contains('/') || registry.starts_with('.') {
        return Vec::new();
    }
    let mut out: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d.join(registry))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    out.sort();
    out
}

fn add_pem(roots: &mut rustls::RootCertStore, file: &Path) {
    use rustls_pki_types::pem::PemObject;
    if let Ok(iter) = rustls_pki_types::CertificateDer::pem_file_iter(file) {
        for c in iter.flatten() {
            let _ = roots.add(c);
        }
    }
}

/// An HTTP proxy to tunnel through: its `host:port`, and its credentials
/// (base64 `USER:PASSWORD`) when its URL had them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub addr: String,
    pub auth: Option<String>,
}

/// The proxy for a connection to `host` (`HOST[:PORT]`), over TLS or not,
/// as the environment says: `HTTPS_PROXY` or `HTTP_PROXY` unless
/// `NO_PROXY` names the host.
pub fn proxy(tls: bool, host: &str) -> Result<Option<Proxy>, String> {
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let url = if tls {
        var(&["https_proxy", "HTTPS_PROXY"])
    } else {
        var(&["http_proxy", "HTTP_PROXY"])
    };
    let Some(url) = url else { return Ok(None) };
    if var(&["no_proxy", "NO_PROXY"]).is_some_and(|list| bypassed(&list, host)) {
        return Ok(None);
    }
    parse_proxy(&url).map(Some)
}

/// Whether `NO_PROXY`'s `list` names `host` (`HOST[:PORT]`): `*`, the host
/// itself, `HOST:PORT`, or a domain it is in (`example.com` or
/// `.example.com`).
fn bypassed(list: &str, host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let bare = e.trim_start_matches('.');
            e == "*" || e == host || bare == name || name.ends_with(&format!(".{bare}"))
        })
}

/// `http://[USER:PASSWORD@]HOST[:PORT][/]` (the scheme may be left out).
fn parse_proxy(url: &str) -> Result<Proxy, String> {
    let rest = match url.split_once("://") {
        Some(("http", r)) => r,
        Some((s, _)) => {
            return Err(format!(
                "proxy {url}: only http:// proxies are supported, not {s}://"
            ));
        }
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(super::registry::base64(a.as_bytes())), h),
        None => (None, rest),
    };
    if hostport.is_empty() || hostport.contains('/') {
        return Err(format!("proxy {url}: not http://HOST[:PORT]"));
    }
    let addr = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    Ok(Proxy { addr, auth })
}

/// A TCP stream to `target` (`HOST:PORT`) through `proxy`'s `CONNECT`.
pub async fn tunnel(proxy: &Proxy, target: &str) -> Result<tokio::net::TcpStream, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(&proxy.addr)
        .await
        .map_err(|e| format!("proxy {}: {e}", proxy.addr))?;
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = &proxy.auth {
        req.push_str(&format!("Proxy-Authorization: Basic {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("proxy {}: {e}", proxy.addr))?;
    // The answer's head, byte by byte: nothing of the tunnel is read.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(format!("proxy {}: an answer without an end", proxy.addr));
        }
        let b = s
            .read_u8()
            .await
            .map_err(|e| format!("proxy {}: {e}", proxy.addr))?;
        head.push(b);
    }
    let status = String::from_utf8_lossy(&head);
    let line = status.lines().next().unwrap_or_default();
    if line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("proxy {}: CONNECT {target}: {line}", proxy.addr));
    }
    Ok(s)
}

/// The credentials (base64 `USER:PASSWORD`) the Docker client's config
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) gives for
/// `registry`: its credential helper (`credHelpers`), its `auths` entry,
/// or the default store (`credsStore`), in that order, as docker does.
pub fn docker_config_auth(registry: &str) -> Option<String> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
    let mut names = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "registry-1.docker.io" {
        names.push("https://index.docker.io/v1/".to_string());
    }
    let helper = |field: &str| {
        names
            .iter()
            .find_map(|n| v[field].get(n.as_str()))
            .and_then(|h| h.as_str())
    };
    // What a helper is asked for: the registry, or Docker Hub's old name.
    let server = if registry == "registry-1.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    if let Some(h) = helper("credHelpers") {
        return helper_get(h, server);
    }
    if let Some(a) = names
        .iter()
        .find_map(|n| v["auths"].get(n.as_str()))
        .and_then(|a| a["auth"].as_str())
    {
        return Some(a.to_string());
    }
    v["credsStore"].as_str().and_then(|h| helper_get(h, server))
}

/// `docker-credential-NAME get` for `server`: its `Username:Secret`, as
/// base64 (nothing when it has none, fails or takes too long).
fn helper_get(name: &str, server: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let mut child = std::process::Command::new(format!("docker-credential-{name}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(server.as_bytes());
    }
    let deadline = std::time::Instant::now() + HELPER_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = Vec::new();
    child
        .stdout
        .take()?
        .take(64 * 1024)
        .read_to_end(&mut out)
        .ok()?;
    if !status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
    let user = v["Username"].as_str()?;
    let secret = v["Secret"].as_str()?;
    Some(super::registry::base64(
        format!("{user}:{secret}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_names_hosts_ports_and_domains() {
        let list = "localhost, .corp.example,registry.local:5000,10.0.0.1";
        for (host, bypass) in [
            ("localhost:5000", true),
            ("a.corp.example", true),
            ("corp.example", true),
            ("notcorp.example", false),
            ("registry.local:5000", true),
            ("registry.local:5001", false),
            ("10.0.0.1:443", true),
            ("docker.io", false),
        ] {
            assert_eq!(bypassed(list, host), bypass, "{host}");
        }
        assert!(bypassed("*", "anything:1"));
    }

    #[test]
    fn proxies_are_http_urls_with_optional_credentials() {
        assert_eq!(
            parse_proxy("http://u:p@proxy.corp:3128/"),
            Ok(Proxy {
                addr: "proxy.corp:3128".into(),
                auth: Some(super::super::registry::base64(b"u:p")),
            })
        );
        assert_eq!(
            parse_proxy("proxy.corp").map(|p| p.addr),
            Ok("proxy.corp:80".into())
        );
        assert!(parse_proxy("socks5://p:1080").is_err());
    }

    #[test]
    fn a_registrys_ca_folder_is_its_own_and_stays_inside() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let own = d.path().join("reg.example:5000");
        std::fs::create_dir_all(&own).unwrap_or_else(|e| panic!("{e}"));
        for f in ["ca.crt", "client.cert", "client.key"] {
            std::fs::write(own.join(f), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            registry_cas(&[d.path()], "reg.example:5000"),
            [own.join("ca.crt")]
        );
        assert!(registry_cas(&[d.path()], "reg.example").is_empty());
        assert!(registry_cas(&[d.path()], "../etc").is_empty());
    }
}
