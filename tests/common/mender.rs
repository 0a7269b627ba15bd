//! Mender's client in standalone mode for tests: each command in a private
//! mount namespace where /etc/mender and the modules folder are the test's
//! own, so the machine's configuration is never touched.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::*;

/// The repository's root (contrib/ is there).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test's Mender: its config, data and modules folders.
pub struct Mender {
    pub dir: tempfile::TempDir,
    /// More environment for the client (and so the module).
    pub env: Vec<(String, String)>,
}

impl Mender {
    /// A device of type test-device, running artifact `base`, whose module
    /// rkstack-stack runs this build of rkstack on these folders.
    pub fn new(state_dir: &Path, data_dir: &Path) -> Mender {
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
                state_dir.display(),
                data_dir.display()
            ),
        );
        let module = d.join("modules/rkstack-stack");
        std::fs::write(&module, shim).unwrap();
        std::fs::set_permissions(&module, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Mender {
            dir,
            env: Vec::new(),
        }
    }

    /// `mender ARGS` in a mount namespace of its own.
    pub fn run(&self, args: &[&str]) -> Output {
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    pub fn artifact(&self, name: &str, payload: &Path) -> PathBuf {
        self.make_artifact(name, payload, None)
    }

    fn make_artifact(&self, name: &str, payload: &Path, key: Option<&Path>) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.mender"));
        let mut c = Command::new(root().join("contrib/mender/rkstack-artifact-gen"));
        c.args(["-n", name, "-t", "test-device"]);
        if let Some(k) = key {
            c.arg("-k").arg(k);
        }
        let o = c.arg("-o").arg(&out).arg(payload).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        out
    }

    /// From now on, artifacts must be signed by the key whose public half
    /// (PEM) is `public`.
    pub fn verify_with(&self, public: &Path) {
        let etc = self.dir.path().join("etc");
        std::fs::copy(public, etc.join("verify.pem")).unwrap();
        std::fs::write(
            etc.join("mender.conf"),
            "{\"ArtifactVerifyKey\": \"/etc/mender/verify.pem\"}\n",
        )
        .unwrap();
    }

    /// [`Mender::artifact`], signed with the private key `key` (PEM).
    pub fn signed_artifact(&self, name: &str, payload: &Path, key: &Path) -> PathBuf {
        self.make_artifact(name, payload, Some(key))
    }

    pub fn artifact_name(&self) -> String {
        String::from_utf8_lossy(&self.run(&["show-artifact"]).stdout)
            .trim()
            .to_string()
    }
}
