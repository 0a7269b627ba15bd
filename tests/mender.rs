//! Delivery through Mender, for real: Debian's mender-client in standalone
//! mode (`mender install`, `commit`, `rollback`) with rkstack's update
//! module, artifacts made by contrib/mender/rkstack-artifact-gen. Each
//! mender command runs in a private mount namespace where /etc/mender and
//! the modules folder are the test's own, so the machine's configuration
//! is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::stack::Stack;
use common::*;

/// The test's Mender: its config, data and modules folders.
struct Mender {
    dir: tempfile::TempDir,
}

impl Mender {
    /// A device of type test-device, running artifact `base`, whose module
    /// rkstack-stack runs this build of rkstack on `s`'s folders.
    fn new(s: &Stack) -> Mender {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["etc", "data", "modules"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("etc/mender.conf"), "{}\n").unwrap();
        std::fs::write(d.join("etc/artifact_info"), "artifact_name=base\n").unwrap();
        std::fs::write(d.join("data/device_type"), "device_type=test-device\n").unwrap();
        // contrib's module, with this stack's folders and this build.
        let shim = std::fs::read_to_string(root().join("contrib/mender/rkstack-stack")).unwrap();
        assert!(shim.contains("exec rkstack mender-module \"$@\""), "{shim}");
        let shim = shim.replace(
            "exec rkstack mender-module",
            &format!(
                "exec {} --state-dir {} --data-dir {} mender-module",
                rkstack(),
                s.dir.path().join("state").display(),
                s.dir.path().join("data").display()
            ),
        );
        let module = d.join("modules/rkstack-stack");
        std::fs::write(&module, shim).unwrap();
        std::fs::set_permissions(&module, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Mender { dir }
    }

    /// `mender ARGS` in a mount namespace of its own.
    fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        let script = format!(
            "mount --bind {etc} /etc/mender && mount --bind {modules} /usr/share/mender/modules/v3 && \
             exec mender --no-syslog --data {data} \"$@\"",
            etc = d.join("etc").display(),
            modules = d.join("modules").display(),
            data = d.join("data").display()
        );
        Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                "mender",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    fn artifact(&self, name: &str, payload: &Path) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.mender"));
        let o = Command::new(root().join("contrib/mender/rkstack-artifact-gen"))
            .args(["-n", name, "-t", "test-device", "-o"])
            .arg(&out)
            .arg(payload)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        out
    }

    fn artifact_name(&self) -> String {
        String::from_utf8_lossy(&self.run(&["show-artifact"]).stdout)
            .trim()
            .to_string()
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
    let m = Mender::new(&s);
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
