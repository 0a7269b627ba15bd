//! The control API over TCP with TLS, as root against a real running
//! stack: a client certificate or a token is needed, plain TCP and TLS
//! without a way to check clients are refused.
#![cfg(feature = "remote")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::Command;

use common::stack::{API_BODY as BODY, Stack};
use common::*;

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// PEM files in `dir`; and a second CA the server does not trust.
fn make_certs(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), ca.pem()).unwrap();
        ca
    };
    let good = ca("ca");
    let other = ca("other-ca");
    let leaf = |file: &str, sans: Vec<String>, issuer: &CertifiedIssuer<'_, KeyPair>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans)
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    leaf("server", vec!["127.0.0.1".into()], &good);
    leaf("client", vec!["rkstack-client".into()], &good);
    leaf("stranger", vec!["stranger".into()], &other);
}

impl Stack {
    /// Starts with extra `up` arguments (for --listen).
    fn start_with(tag: &str, body: &str, up_args: &[String]) -> Stack {
        let mut s = Stack::new(tag, std::path::Path::new(rkstack()));
        s.write(body);
        s.spawn(up_args);
        s.wait_ready("db: ");
        s.wait_for(|s| s.events().contains("API over TLS on "), "listening");
        s
    }

    /// The address the TLS listener got.
    fn tls_addr(&self) -> String {
        let ev = self.events();
        let at = ev.find("API over TLS on ").unwrap() + "API over TLS on ".len();
        ev[at..].split_whitespace().next().unwrap().to_string()
    }
}

#[test]
fn the_api_over_tls_needs_a_client_certificate_or_a_token() {
    require_root!();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let p = |f: &str| certs.path().join(f).display().to_string();
    std::fs::write(certs.path().join("token"), "0123456789abcdef-secret\n").unwrap();
    std::fs::write(certs.path().join("wrong"), "0123456789abcdef-wrong\n").unwrap();

    // Plain TCP is refused, and so is TLS without a way to check clients.
    let probe = Stack::start_ready("tlsbad", BODY, "db: ");
    let out = probe.rk(&["up", "--listen", "tcp://127.0.0.1:0", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let file = probe.dir.path().join("stack.toml");
    let out = probe.rk(&[
        "up",
        "--listen",
        "http://127.0.0.1:0",
        file.to_str().unwrap(),
    ]);
    assert!(stderr(&out).contains("TLS only"), "{}", stderr(&out));
    let out = probe.rk(&[
        "up",
        "--listen",
        "tcp://127.0.0.1:0",
        "--tls-cert",
        &p("server.pem"),
        "--tls-key",
        &p("server.key"),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--client-ca"), "{}", stderr(&out));
    drop(probe);

    let listen = |how: &[&str]| -> Vec<String> {
        [
            "--listen",
            "tcp://127.0.0.1:0",
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
        ]
        .iter()
        .chain(how)
        .map(|s| s.to_string())
        .collect()
    };
    // Client certificates.
    let args = listen(&["--client-ca", &p("ca.pem")]);
    let s = Stack::start_with("tlscert", BODY, &args);
    let url = format!("https://{}", s.tls_addr());
    let remote = |extra: &[&str]| {
        let mut c = Command::new(rkstack());
        c.args(["--host", &url, "--ca", &p("ca.pem")])
            .args(extra)
            .args(["ps", "--json"]);
        c.output().unwrap()
    };
    let out = remote(&["--cert", &p("client.pem"), "--key", &p("client.key")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap()
            .len(),
        2
    );
    // A bundle goes to the remote device, streamed, and is applied there.
    let next = s.dir.path().join("next.toml");
    let body = std::fs::read_to_string(s.stack_file()).unwrap() + "# sent from afar\n";
    std::fs::write(&next, body).unwrap();
    let rkb = s.dir.path().join("next.rkb");
    let out = s.rk(&[
        "bundle",
        "-o",
        rkb.to_str().unwrap(),
        next.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new(rkstack())
        .args(["--host", &url, "--ca", &p("ca.pem")])
        .args(["--cert", &p("client.pem"), "--key", &p("client.key")])
        .args(["apply", "--stable", "0s", rkb.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out).contains("committed"), "{}", text(&out));
    assert!(
        std::fs::read_to_string(s.stack_file())
            .unwrap()
            .contains("# sent from afar")
    );
    // No certificate, or one from a CA the server does not trust: refused at the handshake.
    assert!(!remote(&[]).status.success());
    let out = remote(&["--cert", &p("stranger.pem"), "--key", &p("stranger.key")]);
    assert!(!out.status.success());
    // Plain HTTP to the TLS port gets no answer.
    let out = Command::new("curl")
        .args(["-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v1/health", s.tls_addr()))
        .output()
        .unwrap();
    assert_eq!(text(&out), "000");
    drop(s);

    // A bearer token.
    let args = listen(&["--token-file", &p("token")]);
    let s = Stack::start_with("tlstoken", BODY, &args);
    let url = format!("https://{}", s.tls_addr());
    let ps_with = |token: &str| {
        Command::new(rkstack())
            .args([
                "--host",
                &url,
                "--ca",
                &p("ca.pem"),
                "--token-file",
                token,
                "ps",
            ])
            .output()
            .unwrap()
    };
    let out = ps_with(&p("token"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out).contains("web"));
    let (code, body) = {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "--cacert", &p("ca.pem")])
            .args(["-H", "Authorization: Bearer 0123456789abcdef-wrong"])
            .arg(format!("{url}/v1/containers"))
            .output()
            .unwrap();
        let t = text(&out);
        let (b, c) = t.rsplit_once('\n').unwrap();
        (c.to_string(), b.to_string())
    };
    assert_eq!(code, "401", "{body}");
    assert!(body.contains(r#""kind":"unauthorized""#), "{body}");
    s.wait_for(
        |s| s.events().contains("no valid bearer token"),
        "the refusal is logged",
    );
    let out = ps_with(&p("wrong"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bearer token"), "{}", stderr(&out));
}
