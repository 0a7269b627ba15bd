//! Shared helpers of the root integration tests: skips, the probe, busybox
//! root filesystems, unique names, and checks that nothing is left behind.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

pub mod mender;
pub mod net;
pub mod oci;
pub mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns early (printing why) when the tests do not run as root.
#[macro_export]
macro_rules! require_root {
    () => {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            $crate::common::skipped("root", &format!("{} needs root", module_path!()));
            return;
        }
    };
}

/// Whether `RKSTACK_TEST_REQUIRE` (comma-separated features, or `all`)
/// names `feature`: a test that would skip for want of it fails instead.
pub fn required(feature: &str) -> bool {
    std::env::var("RKSTACK_TEST_REQUIRE").is_ok_and(|v| {
        v.split(',')
            .any(|f| f.trim() == feature || f.trim() == "all")
    })
}

/// A test that cannot run here says why (`SKIP feature: why`), or fails
/// where `RKSTACK_TEST_REQUIRE` says the feature must be there.
pub fn skipped(feature: &str, why: &str) {
    assert!(
        !required(feature),
        "{feature} is required here (RKSTACK_TEST_REQUIRE), but: {why}"
    );
    eprintln!("SKIP {feature}: {why}");
}

pub fn rkstack() -> &'static str {
    env!("CARGO_BIN_EXE_rkstack")
}

/// A name no other test (or run of the suite) uses: `rkt-PID-N`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "rkt-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The static probe binary, built once per test process.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let out = tmp().join(format!("probe-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run cc (install gcc and libc6-dev)");
        assert!(st.success(), "building the probe failed");
        out
    })
}

pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is not installed: scripts/test.sh installs busybox-static");
}

/// A busybox root filesystem with the probe at /probe, removed on drop.
pub struct Rootfs {
    pub dir: tempfile::TempDir,
}

impl Rootfs {
    pub fn new() -> Rootfs {
        let dir = tempfile::Builder::new()
            .prefix("rkt-rootfs-")
            .tempdir_in(tmp())
            .unwrap();
        let r = dir.path();
        for d in ["bin", "etc", "tmp", "data"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::copy(busybox(), r.join("bin/busybox")).unwrap();
        for applet in [
            "sh", "sleep", "cat", "echo", "touch", "true", "ls", "id", "trap", "kill", "stat",
        ] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        std::fs::copy(probe(), r.join("probe")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        Rootfs { dir }
    }

    /// A rootfs every user may enter (a user namespace's root, a supervisor's containers).
    pub fn readable() -> Rootfs {
        let fs = Rootfs::new();
        std::fs::set_permissions(
            fs.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        fs
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// No cgroup of this stack is left in any hierarchy.
pub fn assert_no_cgroups(stack: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("rkstack").join(stack);
        assert!(!d.exists(), "left behind: {}", d.display());
    }
}

/// Ends what is left of this stack's containers and removes its cgroups:
/// after a test that failed while its supervisor was killed (a crash test),
/// nothing stays behind. Every process killed is in the stack's own
/// cgroups, so one this test started.
pub fn remove_cgroups(stack: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let d = h.path().join("rkstack").join(stack);
        let Ok(containers) = std::fs::read_dir(&d) else {
            continue;
        };
        for c in containers.flatten().filter(|c| c.path().is_dir()) {
            let procs = c.path().join("cgroup.procs");
            for _ in 0..200 {
                let pids: Vec<i32> = std::fs::read_to_string(&procs)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for p in pids {
                    // SAFETY: a process in this test's stack's cgroup.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = std::fs::remove_dir(c.path());
        }
        let _ = std::fs::remove_dir(&d);
    }
}

/// Runs `rkstack run --name NAME ARGS... ROOTFS -- CMD...` and checks
/// afterwards that the container left nothing behind.
pub fn run(name: &str, opts: &[&str], rootfs: &Path, cmd: &[&str]) -> Output {
    run_env(name, &[], opts, rootfs, cmd)
}

/// [`run`] with extra environment variables for rkstack.
pub fn run_env(
    name: &str,
    env: &[(&str, &str)],
    opts: &[&str],
    rootfs: &Path,
    cmd: &[&str],
) -> Output {
    let out = Command::new(rkstack())
        .envs(env.iter().copied())
        .args(["run", "--name", name])
        .args(opts)
        .arg(rootfs)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    assert_clean(name);
    out
}

/// No cgroup directory, staging directory or mount of the container remains.
pub fn assert_clean(name: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("rkstack/run").join(name);
        assert!(!d.exists(), "left behind: {}", d.display());
        let d = h.path().join("rkstack").join(name);
        assert!(!d.exists(), "left behind: {}", d.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(name), "mount left behind for {name}");
    // The name is free again: no process holds its byte of the names file.
    let names = Path::new("/run/rkstack/rootfs/.names");
    if names.exists() {
        let free = rkstack::host::namelock::NameLock::take(names, name).unwrap();
        assert!(free.is_some(), "the name {name} is still held");
    }
    if let Ok(entries) = std::fs::read_dir("/run/rkstack/rootfs") {
        for e in entries.flatten() {
            assert!(
                !e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-")),
                "staging directory left behind: {}",
                e.path().display()
            );
        }
    }
}

pub fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "probe output is not JSON ({e}):\nstdout: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A capability set line of /proc/PID/status, as a number.
pub fn cap(status: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} missing"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

pub fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
}

/// Waits (20 s at most) until `done()`; on time-out, fails with `why` and
/// the events log `events()` returns.
pub fn wait_until(done: impl Fn() -> bool, why: &str, events: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {why}\nevents:\n{}",
            events()
        );
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// An `rkstack` command with its state and data under `dir`.
pub fn rk_cmd(dir: &Path) -> Command {
    let mut c = Command::new(rkstack());
    c.arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--data-dir")
        .arg(dir.join("data"));
    c
}

/// A child process stopped with SIGTERM when it goes out of scope (also
/// when the test fails).
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: signalling the process this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// `rkstack run --name NAME ROOTFS -- /bin/sh -c SCRIPT`, to be spawned.
pub fn run_sh(name: &str, fs: &Rootfs, script: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(rkstack());
    cmd.args(["run", "--name", name])
        .arg(fs.path())
        .args(["--", "/bin/sh", "-c", script]);
    cmd
}

/// `run_sh` spawned, with its output read line by line.
pub fn spawn_sh(
    name: &str,
    fs: &Rootfs,
    script: &str,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = run_sh(name, fs, script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// `rkstack run ARGS` with state and data under `dir`.
pub fn rk_run(dir: &Path, args: &[&str]) -> std::process::Output {
    rk_in(dir, &[&["run"], args].concat())
}

/// `rkstack ARGS` with state and data under `dir`.
pub fn rk_in(dir: &Path, args: &[&str]) -> std::process::Output {
    rk_cmd(dir).args(args).output().unwrap()
}

/// Whether `pid` is a living process (not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// What a command printed on its standard output.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
