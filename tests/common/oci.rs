//! OCI layouts built for tests (a busybox base layer and a second one
//! with a whiteout and a new file) and a registry on loopback to push them
//! to (Debian's docker-registry, skopeo).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;

pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn blob(layout: &Path, bytes: &[u8]) -> String {
    let hex = sha(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    format!("sha256:{hex}")
}

pub fn tar_of(files: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(
            if *kind == tar::EntryType::Directory || path.starts_with("bin/busybox") {
                0o755
            } else {
                0o644
            },
        );
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An OCI layout with one image, tagged v1: busybox in a gzip layer, and
/// a second layer that deletes /etc/old-file and adds /etc/new-file.
pub fn layout(dir: &Path) {
    layout_with(dir, b"from layer 2\n");
}

/// [`layout`], with `new_file` as the second layer's /etc/new-file.
/// The base layer (busybox, /etc/old-file), uncompressed, and the second
/// (whiteout of old-file, /etc/new-file).
pub fn layer_tars(new_file: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let busybox = std::fs::read(busybox()).unwrap();
    let d = tar::EntryType::Directory;
    let f = tar::EntryType::Regular;
    let l = tar::EntryType::Symlink;
    let mut files: Vec<(&str, tar::EntryType, &str, &[u8])> = vec![
        ("bin", d, "", b""),
        ("bin/busybox", f, "", &busybox),
        ("etc", d, "", b""),
        ("etc/passwd", f, "", b"root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/old-file", f, "", b"old\n"),
        ("tmp", d, "", b""),
        ("proc", d, "", b""),
        ("dev", d, "", b""),
        ("sys", d, "", b""),
    ];
    for applet in [
        "sh", "cat", "ls", "touch", "sleep", "echo", "pwd", "rm", "id",
    ] {
        files.push((
            Box::leak(format!("bin/{applet}").into_boxed_str()),
            l,
            "busybox",
            b"",
        ));
    }
    let base = tar_of(&files);
    let top = tar_of(&[
        ("etc/.wh.old-file", f, "", b""),
        ("etc/new-file", f, "", new_file),
    ]);
    (base, top)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn layout_with(dir: &Path, new_file: &[u8]) {
    layout_config(
        dir,
        new_file,
        serde_json::json!({
            "Cmd": ["/bin/sh", "-c", "echo from-image-cmd; sleep 1000"],
            "Env": ["PATH=/bin", "FROM_IMAGE=yes"],
            "WorkingDir": "/tmp"
        }),
    );
}

/// [`layout_with`], with `image_config` as the image's `config`.
pub fn layout_config(dir: &Path, new_file: &[u8], image_config: serde_json::Value) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (base, layer2) = layer_tars(new_file);
    let layer1 = gzip(&base);
    let l1 = blob(dir, &layer1);
    let l2 = blob(dir, &layer2);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": []}
    })
    .to_string();
    let c = blob(dir, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1, "size": layer1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l2, "size": layer2.len()}
        ]
    })
    .to_string();
    let m = blob(dir, manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"}
        }]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// An image whose Entrypoint is `/bin/echo EP` and Cmd `default`:
/// `command` replaces the Cmd only, `entrypoint` the Entrypoint (and drops
/// the Cmd), an empty entrypoint clears it — in the stack file and in
/// `run` alike, as docker and compose do.
/// A registry on loopback (Debian's docker-registry), ended on drop.
pub struct Registry {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Certificates of a TLS registry (see [`Registry::start_tls`]).
    pub certs: Option<tempfile::TempDir>,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_auth("")
    }

    /// With `auth` (YAML under `auth:`) when not empty.
    pub fn start_auth(auth: &str) -> Registry {
        Registry::start_http(auth, "")
    }

    /// [`Registry::start_auth`], with more YAML under `http:`.
    pub fn start_http(auth: &str, http: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{http}log:\n  level: error\n{}",
                dir.path().join("data").display(),
                auth.replace("DIR", &dir.path().display().to_string())
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            port,
            dir,
            certs: None,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Over TLS with a certificate for 127.0.0.1 from a CA made here
    /// (`ca.pem` in [`Registry::certs`]), and the htpasswd user `alice:pw`.
    pub fn start_tls() -> Registry {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let certs = tempfile::tempdir().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "rkstack test CA");
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let c = |f: &str| certs.path().join(f).display().to_string();
        std::fs::write(c("server.pem"), cert.pem()).unwrap();
        std::fs::write(c("server.key"), key.serialize_pem()).unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "alice", "pw"])
            .output()
            .unwrap();
        std::fs::write(c("htpasswd"), &htpasswd.stdout).unwrap();
        std::fs::write(c("ca.pem"), ca.pem()).unwrap();
        let mut reg = Registry::start_http(
            &format!(
                "auth:\n  htpasswd:\n    realm: rkstack-test\n    path: {}\n",
                c("htpasswd")
            ),
            &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                c("server.pem"),
                c("server.key")
            ),
        );
        reg.certs = Some(certs);
        reg
    }

    /// Builds the test layout in `work` and pushes it as demo:v1 with
    /// `creds` (`USER:PASSWORD`); the image's reference.
    pub fn push_with_creds(&self, work: &Path, creds: &str) -> String {
        let l = work.join("layout");
        layout(&l);
        let image = format!("docker://{}/demo:v1", self.host());
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
            ])
            .arg(format!("oci:{}:v1", l.display()))
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
        image
    }

    /// Builds the test layout at `l` (its second layer's /etc/new-file
    /// holding `content`) and pushes it as demo:v1.
    pub fn push(&self, l: &Path, content: &[u8]) {
        let _ = std::fs::remove_dir_all(l);
        layout_with(l, content);
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", l.display()))
            .arg(format!("docker://{}/demo:v1", self.host()))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rkstack up` of `work/stack.toml` (state and data under `work`) until
/// container `a` has written "first" to its log; the supervisor, the log
/// and the events file.
pub fn up_until_first(
    work: &Path,
    stack: &str,
    extra: &[&str],
) -> (Stopped, std::path::PathBuf, std::path::PathBuf) {
    let events = work.join("events.log");
    let up = Stopped(
        rk_cmd(work)
            .args(extra)
            .arg("up")
            .arg(work.join("stack.toml"))
            .stderr(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = work.join(format!("data/{stack}/logs/a.log"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_until(
        || read(&log).contains("first"),
        "a runs the first image",
        || read(&events),
    );
    (up, log, events)
}

/// A stack of `body` under `rkstack up`, `LAYOUT` standing for an OCI
/// layout made for it (see [`layout`]).
pub fn up_with_layout(tag: &str, body: &str) -> super::stack::Stack {
    let mut s = super::stack::Stack::new(tag, Path::new(rkstack()));
    let l = s.dir.path().join("layout");
    layout(&l);
    s.write(&body.replace("LAYOUT", &l.display().to_string()));
    s.spawn(&[]);
    s
}
