//! Images pulled from a registry on loopback, as root: by tag and digest,
//! verified, with credentials, through the host's CAs, proxy and credential
//! helpers, in the background of a running stack, and a new pull of a tag
//! recreating its containers at reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::oci::*;
use common::*;

#[test]
fn images_are_pulled_from_a_registry_by_tag_and_digest_and_verified() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    reg.push(&work.path().join("layout"), b"from layer 2\n");
    let rk = |data: &str, args: &[&str]| {
        Command::new(rkstack())
            .arg("--state-dir")
            .arg(work.path().join("state"))
            .arg("--data-dir")
            .arg(work.path().join(data))
            .args(["--insecure-registry", &reg.host()])
            .args(args)
            .output()
            .unwrap()
    };
    let by_tag = format!("docker://{}/demo:v1", reg.host());
    // Pulled at run (pull_policy missing), then run from the store.
    let out = rk("d1", &["run", &by_tag, "--", "/bin/cat", "/etc/new-file"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from layer 2\n",
        "{}",
        stderr(&out)
    );
    let out = rk("d1", &["images"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&by_tag));
    // By digest.
    let out = rk("d1", &["pull", &by_tag]);
    let digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let out = rk(
        "d2",
        &["pull", &format!("docker://{}/demo@{digest}", reg.host())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Not on a terminal: a plain line per blob pulled (config and two layers).
    assert_eq!(
        stderr(&out).matches("pulled sha256:").count(),
        3,
        "{}",
        stderr(&out)
    );
    // Bad input: an unknown tag, a registry that is down.
    let out = rk(
        "d2",
        &["pull", &format!("docker://{}/demo:nope", reg.host())],
    );
    assert!(
        stderr(&out).contains("manifest nope: HTTP 404"),
        "{}",
        stderr(&out)
    );
    let out = rk("d2", &["pull", "docker://127.0.0.1:9/demo:v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
    // A blob changed in the registry's storage: refused, nothing kept.
    let layers = reg.dir.path().join("data/docker/registry/v2/blobs/sha256");
    let biggest = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .flat_map(|sub| std::fs::read_dir(sub.path()).unwrap().flatten())
        .map(|b| b.path().join("data"))
        .max_by_key(|d| std::fs::metadata(d).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    // An interrupted pull left half of the busybox layer: the next one
    // goes on from there and ends with the whole, verified blob.
    let hex = biggest
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let whole = std::fs::read(&biggest).unwrap();
    let tmp = work.path().join("d4/images/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let partial = tmp.join(format!("{hex}.partial"));
    std::fs::write(&partial, &whole[..whole.len() / 2]).unwrap();
    let out = rk("d4", &["pull", &by_tag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!partial.exists());
    let stored = work.path().join(format!("d4/images/blobs/sha256/{hex}"));
    assert_eq!(std::fs::read(&stored).unwrap(), whole);
    // The pull really goes on from the partial (a Range request): a partial
    // that is not the blob's beginning makes a blob with the wrong digest,
    // which is refused and dropped, and the next pull starts afresh.
    let tmp = work.path().join("d5/images/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join(format!("{hex}.partial")),
        vec![0u8; whole.len() / 2],
    )
    .unwrap();
    let out = rk("d5", &["pull", &by_tag]);
    assert!(
        stderr(&out).contains("nothing was kept"),
        "{}",
        stderr(&out)
    );
    assert!(rk("d5", &["pull", &by_tag]).status.success());
    // The biggest blob (the busybox layer) gets one byte changed.
    let mut bytes = std::fs::read(&biggest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    let out = rk("d3", &["pull", &by_tag]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing was kept"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_registry_that_wants_credentials_gets_them_from_creds_or_the_docker_config() {
    require_root!();
    let reg = Registry::start_auth(
        "auth:\n  htpasswd:\n    realm: rkstack-test\n    path: DIR/htpasswd\n",
    );
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret-pass"])
        .output()
        .unwrap();
    std::fs::write(reg.dir.path().join("htpasswd"), &out.stdout).unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = reg.push_with_creds(work.path(), "alice:s3cret-pass");
    let pull = |data: &str, extra: &[&str], docker_config: Option<&Path>| {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(work.path().join(data))
            .args(["--insecure-registry", &reg.host(), "pull"])
            .args(extra)
            .arg(&image)
            .env(
                "DOCKER_CONFIG",
                docker_config.unwrap_or(&work.path().join("no-config")),
            );
        c.output().unwrap()
    };
    let out = pull("d1", &[], None);
    assert!(
        stderr(&out).contains("the registry wants credentials"),
        "{}",
        stderr(&out)
    );
    let out = pull("d1", &["--creds", "alice:wrong"], None);
    assert!(
        stderr(&out).contains("refused the credentials"),
        "{}",
        stderr(&out)
    );
    let out = pull("d1", &["--creds", "alice:s3cret-pass"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = work.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"YWxpY2U6czNjcmV0LXBhc3M=\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    let out = pull("d2", &[], Some(&config));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A `CONNECT` proxy on loopback for the test: it tunnels to whatever it
/// is asked and counts the tunnels. Ends with the test process.
fn connect_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let Ok(up) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut c = client;
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let mut up = up;
                let _ = std::io::copy(&mut r, &mut up);
                let _ = up.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, count)
}

/// Registry habits of docker and podman: the CA from `SSL_CERT_FILE` or
/// the registry's `certs.d` folder, `HTTPS_PROXY` (and `NO_PROXY`), and
/// credentials from a `docker-credential-*` helper.
#[test]
fn pulls_follow_the_hosts_cas_proxy_and_credential_helpers() {
    require_root!();
    let reg = Registry::start_tls();
    let certs = reg.certs.as_ref().unwrap().path().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let image = reg.push_with_creds(work.path(), "alice:pw");
    // A credential helper, and a Docker config that names it for this registry.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-rktest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho \"$server\" > \"$(dirname \"$0\")/asked\"\n\
         echo '{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"pw\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = work.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!("{{\"credHelpers\":{{\"{}\":\"rktest\"}}}}", reg.host()),
    )
    .unwrap();
    let (proxy, tunnels) = connect_proxy();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pull = |data: &str, env: &[(&str, String)]| {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(work.path().join(data))
            .arg("pull")
            .arg(&image)
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path)
            .env_remove("SSL_CERT_FILE");
        for k in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // The test's CA is nobody's: refused.
    let out = pull("d0", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
    // Trusted through SSL_CERT_FILE, through the proxy, with the helper's
    // credentials (it was asked for this registry).
    let ca = certs.join("ca.pem").display().to_string();
    let via = format!("http://127.0.0.1:{proxy}");
    let out = pull(
        "d1",
        &[("SSL_CERT_FILE", ca.clone()), ("HTTPS_PROXY", via.clone())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no tunnel"
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("asked")).unwrap().trim(),
        reg.host()
    );
    // NO_PROXY names it: straight there.
    let before = tunnels.load(std::sync::atomic::Ordering::SeqCst);
    let out = pull(
        "d2",
        &[
            ("SSL_CERT_FILE", ca.clone()),
            ("HTTPS_PROXY", via),
            ("NO_PROXY", "example.org,127.0.0.1".into()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), before);
    // Trusted through the registry's certs.d folder, in a mount namespace
    // of the test's own (the host's folder is left as it is).
    let etc = ["/etc/containers", "/etc/docker"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .expect("/etc/containers or /etc/docker (skopeo, docker-registry)");
    let script = format!(
        "mount -t tmpfs rktest {etc} && mkdir -p '{etc}/certs.d/{host}' && cp '{ca}' '{etc}/certs.d/{host}/ca.crt' && exec \"$@\"",
        host = reg.host()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(rkstack())
        .arg("--data-dir")
        .arg(work.path().join("d3"))
        .arg("pull")
        .arg(&image)
        .env("DOCKER_CONFIG", &config)
        .env("PATH", &path)
        .env_remove("SSL_CERT_FILE")
        .env_remove("HTTPS_PROXY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_new_pull_of_a_tag_recreates_the_containers_that_use_it_at_reload() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let push = |content: &[u8]| reg.push(&work.path().join("layout"), content);
    push(b"first\n");
    let stack = unique("repull");
    std::fs::write(
        work.path().join("stack.toml"),
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"docker://{h}/demo:v1\"\ncommand = [\"/bin/sh\", \"-c\", \"cat /etc/new-file; sleep 1000\"]\nstop_signal = \"SIGKILL\"\n[containers.other]\nimage = \"oci:{l}:v1\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            h = reg.host(),
            l = work.path().join("fixed").display()
        ),
    )
    .unwrap();
    layout(&work.path().join("fixed"));
    let rk = || {
        let mut c = rk_cmd(work.path());
        c.args(["--insecure-registry", &reg.host()]);
        c
    };
    let (up, log, events) =
        up_until_first(work.path(), &stack, &["--insecure-registry", &reg.host()]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    // The pull that started a is not a change.
    let out = rk().arg("reload").output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!plan.contains("recreate"), "{plan}{}", stderr(&out));
    // A new image under the same tag, pulled: the next reload recreates a, not other.
    push(b"second\n");
    let out = rk()
        .args(["pull", &format!("docker://{}/demo:v1", reg.host())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rk().arg("reload").output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        plan.contains("recreate: image changed"),
        "{plan}{}",
        stderr(&out)
    );
    assert!(!plan.contains("other  recreate"), "{plan}");
    wait_until(
        || read(&log).contains("second"),
        "a runs the new image",
        || read(&events),
    );
    // A pulled image a running stack uses is not removed, whatever its kind.
    let out = rk()
        .args(["rmi", &format!("docker://{}/demo:v1", reg.host())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("is used by stack {stack}")),
        "{}",
        stderr(&out)
    );
    drop(up);
}

#[test]
fn a_pull_runs_in_the_background_while_the_stack_answers() {
    require_root!();
    // A registry that takes connections and never answers, and one that is not there.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let work = tempfile::tempdir().unwrap();
    layout(&work.path().join("layout"));
    let stack = unique("bgpull");
    std::fs::write(
        work.path().join("stack.toml"),
        format!(
            "name = \"{stack}\"\n[defaults]\nstop_signal = \"SIGKILL\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
             [containers.a]\nimage = \"docker://{slow}/slow:v1\"\n\
             [containers.b]\nimage = \"oci:{l}:v1\"\n\
             [containers.c]\nimage = \"docker://{gone}/none:v1\"\nrestart = \"no\"\n",
            l = work.path().join("layout").display()
        ),
    )
    .unwrap();
    let events = work.path().join("events.log");
    let mut up = Stopped(
        rk_cmd(work.path())
            .args(["--insecure-registry", &slow, "--insecure-registry", &gone])
            .arg("up")
            .arg(work.path().join("stack.toml"))
            .stderr(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let ps = || -> Vec<serde_json::Value> {
        let out = rk_in(work.path(), &["ps", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let state = |list: &[serde_json::Value], n: &str| {
        list.iter()
            .find(|c| c["name"] == n)
            .map(|c| c["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    // While a's pull hangs, b runs, the API answers, and c's failed pull is
    // a failed start with the registry's error.
    wait_until(
        || {
            let l = ps();
            state(&l, "a") == "pulling" && state(&l, "b") == "running" && state(&l, "c") == "exited"
        },
        "a pulling, b running, c's pull failed",
        read,
    );
    let c = ps().into_iter().find(|c| c["name"] == "c").unwrap();
    assert!(
        c["error"].as_str().unwrap_or_default().contains("refused"),
        "{c}"
    );
    // The pull process, as the event names it.
    let log = read();
    let pid: i32 = log
        .split("pulling docker://")
        .nth(1)
        .and_then(|t| t.split("(pid ").nth(1))
        .and_then(|t| t.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pull pid in:\n{log}"));
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let out = rk_in(work.path(), &["stop", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state(&ps(), "a"), "stopped");
    // Stopping the stack ends the pull it started.
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGTERM) };
    let _ = up.0.wait();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the pull outlived its stack:\n{}",
        read()
    );
    remove_cgroups(&stack);
}
