//! A stack under `rkstack up`, with its own state and data folders, driven
//! through the CLI and the API socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::*;

pub struct Stack {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub name: String,
    pub fs: Rootfs,
    /// The rkstack binary that runs `up` (a copy, for tests that attack it).
    pub exe: PathBuf,
    /// Environment of `up`, beside the test's own.
    pub env: Vec<(String, String)>,
}

impl Stack {
    /// Brings `body` up (`ROOTFS` stands for a busybox rootfs) and waits
    /// until the API answers and an event names `ready`.
    pub fn start_ready(tag: &str, body: &str, ready: &str) -> Stack {
        let mut s = Stack::new(tag, Path::new(rkstack()));
        s.write(body);
        s.spawn(&[]);
        s.wait_ready(ready);
        s
    }

    /// A stack not started yet, to run with `exe`.
    pub fn new(tag: &str, exe: &Path) -> Stack {
        let fs = Rootfs::readable();
        for applet in [
            "hostname", "grep", "cat", "echo", "id", "mkfifo", "ln", "rm",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", fs.path().join("bin").join(applet));
        }
        Stack {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            name: unique(tag),
            fs,
            exe: exe.to_path_buf(),
            env: Vec::new(),
        }
    }

    pub fn write(&self, body: &str) {
        let text = format!(
            "name = \"{}\"\n[defaults]\nstop_timeout = \"300ms\"\nstop_signal = \"SIGKILL\"\n{}",
            self.name,
            body.replace("ROOTFS", &self.fs.path().display().to_string())
        );
        let tmp = self.dir.path().join(".stack.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("stack.toml")).unwrap();
    }

    /// `rkstack up` of the stack file (with `up_args`); returns at once.
    pub fn spawn(&mut self, up_args: &[String]) {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("events.log"))
            .unwrap();
        let mut c = Command::new(&self.exe);
        self.dirs(&mut c);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = c
            .arg("up")
            .args(up_args)
            .arg(self.dir.path().join("stack.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn wait_ready(&self, ready: &str) {
        self.wait_for(
            |s| s.socket().exists() && s.events().contains(ready),
            "the stack is up",
        );
    }

    /// Adds this stack's state and data folders to `c`.
    pub fn dirs(&self, c: &mut Command) {
        c.arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"));
    }

    /// `rkstack` (the tests' build) with this stack's state and data folders.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(rkstack());
        self.dirs(&mut c);
        c
    }

    pub fn rk(&self, args: &[&str]) -> Output {
        self.cli().args(args).output().unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join(format!("state/{}.sock", self.name))
    }

    /// A file under the stack's folder, as text (empty when missing).
    pub fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap_or_default()
    }

    /// Container `c`'s log file as it is now.
    pub fn log_of(&self, c: &str) -> String {
        self.file(&format!("data/{}/logs/{c}.log", self.name))
    }

    pub fn events(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("events.log")).unwrap_or_default()
    }

    pub fn wait_for(&self, what: impl Fn(&Stack) -> bool, why: &str) {
        wait_until(|| what(self), why, || self.events());
    }

    /// curl on the socket: (status, body).
    pub fn curl(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
            .arg(self.socket())
            .args(["-X", method, &format!("http://rkstack{path}")]);
        if let Some(b) = body {
            c.args(["-H", "content-type: application/json", "-d", b]);
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.rk(&["ps", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    pub fn container(&self, name: &str) -> serde_json::Value {
        self.ps().into_iter().find(|c| c["name"] == name).unwrap()
    }

    pub fn supervisor_pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling the rkstack this test started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        remove_cgroups(&self.name);
    }
}
