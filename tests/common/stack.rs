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
    /// The stack file `up` is given, relative to `dir`.
    pub path: PathBuf,
    /// The `[defaults]` table every written stack file starts with.
    pub defaults: String,
}

/// Quick stops for tests: a short timeout and SIGKILL.
pub const QUICK_STOPS: &str = "stop_timeout = \"300ms\"\nstop_signal = \"SIGKILL\"\n";

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
        Stack::named(&unique(tag), exe)
    }

    /// [`Stack::new`] with the stack name `name` as it is.
    pub fn named(name: &str, exe: &Path) -> Stack {
        let fs = Rootfs::readable();
        for applet in [
            "hostname", "grep", "cat", "echo", "id", "mkfifo", "ln", "rm",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", fs.path().join("bin").join(applet));
        }
        Stack {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            name: name.to_string(),
            fs,
            exe: exe.to_path_buf(),
            env: Vec::new(),
            path: PathBuf::from("stack.toml"),
            defaults: QUICK_STOPS.to_string(),
        }
    }

    /// The stack file's path.
    pub fn stack_file(&self) -> PathBuf {
        self.dir.path().join(&self.path)
    }

    /// Writes the stack file the way editors do: a new file renamed over
    /// the old. `ROOTFS` in `body` stands for the busybox rootfs.
    pub fn write(&self, body: &str) {
        let text = format!(
            "name = \"{}\"\n[defaults]\n{}{}",
            self.name,
            self.defaults,
            body.replace("ROOTFS", &self.fs.path().display().to_string())
        );
        let tmp = self.stack_file().with_file_name(".stack.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.stack_file()).unwrap();
    }

    /// `rkstack up` of the stack file (with `up_args`); returns at once.
    pub fn spawn(&mut self, up_args: &[String]) {
        let child = self.up_command(up_args).spawn().unwrap();
        self.child = Some(child);
    }

    /// The `rkstack up` command [`Stack::spawn`] runs: stdout dropped,
    /// stderr appended to the events.
    pub fn up_command(&self, up_args: &[String]) -> Command {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("events.log"))
            .unwrap();
        let mut c = Command::new(&self.exe);
        self.dirs(&mut c);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.arg("up")
            .args(up_args)
            .arg(self.stack_file())
            .stdout(Stdio::null())
            .stderr(log);
        c
    }

    /// SIGTERM to `up`; waits for it and checks its cgroups are gone.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling the rkstack this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert_no_cgroups(&self.name);
        status
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

    /// Waits until the events hold `want` `n` times; returns the events.
    pub fn wait_count(&self, want: &str, n: usize) -> String {
        self.wait_for(|s| s.events().matches(want).count() >= n, want);
        self.events()
    }

    /// The pid of the last start of container `name`.
    pub fn pid(&self, name: &str) -> i32 {
        let marker = format!("{name}: started (pid ");
        let log = self.wait_count(&marker, 1);
        let at = log.rfind(&marker).unwrap() + marker.len();
        log[at..].split(')').next().unwrap().parse().unwrap()
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

/// `rkstack up` of the shared fixture, with SIGTERM as the stop signal
/// (the tests here check how containers are asked to stop).
impl Stack {
    pub fn start(stack: &str, body: &str) -> Stack {
        Stack::start_env(stack, body, &[])
    }

    pub fn start_env(stack: &str, body: &str, env: &[(&str, String)]) -> Stack {
        Stack::start_cmd(stack, body, |c| {
            c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        })
    }

    /// [`Stack::start`], with `adjust` applied to the `rkstack up` command.
    pub fn start_cmd(stack: &str, body: &str, adjust: impl FnOnce(&mut Command)) -> Stack {
        Stack::start_in(stack, body, PathBuf::from("stack.toml"), |_| {}, adjust)
    }

    /// [`Stack::start_cmd`] of the file at `path` (relative to its folder),
    /// after `layout` made what leads there.
    pub fn start_in(
        stack: &str,
        body: &str,
        path: PathBuf,
        layout: impl FnOnce(&Path),
        adjust: impl FnOnce(&mut Command),
    ) -> Stack {
        let mut up = Stack::named(stack, Path::new(rkstack()));
        up.defaults = "stop_timeout = \"300ms\"\n".to_string();
        up.path = path;
        layout(up.dir.path());
        up.write(body);
        let mut cmd = up.up_command(&[]);
        adjust(&mut cmd);
        up.child = Some(cmd.spawn().unwrap());
        up
    }
}

/// Two containers for the API tests: `web` ticking, restarted always;
/// `db` ready at once, with only CHOWN.
pub const API_BODY: &str = r#"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
restart = "always"
restart_backoff = { initial = "0" }
[containers.db]
image = "dir:ROOTFS"
hostname = "dbhost"
command = ["/bin/sh", "-c", "echo db-ready; exec /bin/sleep 1000"]
security = { capabilities = { drop = ["ALL"], add = ["CHOWN"] } }
"#;
