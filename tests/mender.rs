//! Delivery through Mender, for real: Debian's mender-client in standalone
//! mode (`mender install`, `commit`, `rollback`) with rkstack's update
//! module, artifacts made by contrib/mender/rkstack-artifact-gen. Each
//! mender command runs in a private mount namespace where /etc/mender and
//! the modules folder are the test's own, so the machine's configuration
//! is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::PathBuf;

use common::mender::Mender;
use common::stack::Stack;
use common::*;

/// The stack with web printing `v` (or exiting 3 when `fails`).
fn version(v: &str, fails: bool) -> String {
    let cmd = if fails {
        "exit 3".to_string()
    } else {
        format!("echo {v}; sleep 1000")
    };
    format!(
        "[update]\nstable = \"1s\"\ntimeout = \"20s\"\n[containers.db]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
         [containers.web]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sh\", \"-c\", \"{cmd}\"]\n"
    )
}

/// A version's stack file beside the stack's own.
fn payload(s: &Stack, name: &str, body: &str) -> PathBuf {
    let p = s.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{}\"\n[defaults]\n{}{}",
            s.name,
            s.defaults,
            body.replace("ROOTFS", &s.fs.path().display().to_string())
        ),
    )
    .unwrap();
    p
}

#[test]
fn mender_installs_commits_and_rolls_back_stacks() {
    require_root!();
    let s = Stack::start_ready("mender", &version("v1", false), "web: started");
    let m = Mender::new(&s.dir.path().join("state"), &s.dir.path().join("data"));
    let db = s.pid("db");
    // v2: installed behind rkstack's gate, then committed.
    let a2 = m.artifact("app-v2", &payload(&s, "v2", &version("v2", false)));
    let out = m.run(&["install", &a2.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.wait_for(|s| s.log_of("web").contains("v2"), "v2's web runs");
    let out = m.run(&["commit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.artifact_name(), "app-v2");
    // v3 fails its gate: rkstack brings v2 back, Mender records the failure.
    let a3 = m.artifact("app-v3", &payload(&s, "v3", &version("v3", true)));
    let out = m.run(&["install", &a3.display().to_string()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rolled back to"), "{}", stderr(&out));
    assert_eq!(m.artifact_name(), "app-v2");
    s.wait_for(
        |s| s.container("web")["state"] == "running",
        "v2's web runs",
    );
    // v4 installs well, but Mender is told to roll back: v2 again.
    let a4 = m.artifact("app-v4", &payload(&s, "v4", &version("v4", false)));
    let out = m.run(&["install", &a4.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(s.stack_file())
            .unwrap()
            .contains("echo v4")
    );
    let out = m.run(&["rollback"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.artifact_name(), "app-v2");
    let file = std::fs::read_to_string(s.stack_file()).unwrap();
    assert!(file.contains("echo v2"), "{file}");
    assert_eq!(s.pid("db"), db, "db never changed");
    let h = String::from_utf8_lossy(&s.rk(&["history"]).stdout).into_owned();
    assert!(h.contains("rolled-back: web exited with status 3"), "{h}");
    assert!(
        h.contains("rollback to 2 (requested)") || h.contains("(requested)"),
        "{h}"
    );
}

/// Artifacts signed by rkstack-artifact-gen -k are installed where Mender
/// wants signed ones; unsigned ones are refused and nothing changes.
#[test]
fn mender_takes_only_signed_artifacts_when_asked_to() {
    require_root!();
    let s = Stack::start_ready("mendersig", &version("v1", false), "web: started");
    let m = Mender::new(&s.dir.path().join("state"), &s.dir.path().join("data"));
    let key = s.dir.path().join("artifact-key.pem");
    let public = s.dir.path().join("artifact-key.pub.pem");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        &key.display().to_string(),
    ]);
    run(&[
        "ec",
        "-in",
        &key.display().to_string(),
        "-pubout",
        "-out",
        &public.display().to_string(),
    ]);
    m.verify_with(&public);
    let web = s.pid("web");
    let unsigned = m.artifact("app-unsigned", &payload(&s, "u", &version("u", false)));
    let out = m.run(&["install", &unsigned.display().to_string()]);
    assert!(!out.status.success(), "an unsigned artifact was installed");
    assert_eq!(s.pid("web"), web, "nothing changed");
    let signed = m.signed_artifact("app-signed", &payload(&s, "s", &version("s", false)), &key);
    let out = m.run(&["install", &signed.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(m.run(&["commit"]).status.success());
    assert_eq!(m.artifact_name(), "app-signed");
    s.wait_for(
        |s| s.log_of("web").contains(" stdout s\n"),
        "the signed version runs",
    );
}
