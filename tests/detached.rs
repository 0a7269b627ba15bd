//! `rkstack up -d`, as root: it returns once the stack is up or failed,
//! gives up after its wait timeout saying what is pending, and refuses a
//! stack whose host paths are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
/// Stops a detached supervisor by the pid it reported, and waits for it.
fn stop_detached(pid: i32, stack: &str) {
    // SAFETY: signalling the supervisor this test started (it reported its pid).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "detached supervisor did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_no_cgroups(stack);
}

fn reported_pid(text: &str) -> Option<i32> {
    let at = text.find("pid ")? + 4;
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The detached supervisor an `up -d` reported: [`Detached::stop`] stops it
/// and checks nothing was left; dropped without that (a failed assertion),
/// it is ended anyway, with its cgroups.
struct Detached {
    pid: Option<i32>,
    stack: String,
}

impl Detached {
    fn of(out: &std::process::Output, stack: &str) -> Detached {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Detached {
            pid: reported_pid(&said),
            stack: stack.to_string(),
        }
    }

    fn pid(&self) -> i32 {
        self.pid.expect("up -d reported no supervisor pid")
    }

    fn stop(mut self) {
        if let Some(pid) = self.pid.take() {
            stop_detached(pid, &self.stack);
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        // SAFETY: signalling the supervisor this test started (it reported its pid).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        remove_cgroups(&self.stack);
    }
}

#[test]
fn up_detached_returns_once_the_stack_is_up_or_failed() {
    require_root!();
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let run_d = |stack: &str, body: &str| {
        let file = dir.path().join(format!("{stack}.toml"));
        std::fs::write(
            &file,
            format!(
                "name = \"{stack}\"\n[defaults]\nstop_timeout = \"300ms\"\n{}",
                body.replace("ROOTFS", &fs.path().display().to_string())
            ),
        )
        .unwrap();
        Command::new(rkstack())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["up", "-d"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let ok = unique("dok");
    let out = run_d(
        &ok,
        r#"
[containers.db]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 0.5; touch /tmp/ok; exec sleep 1000"]
health = { command = ["/bin/sh", "-c", "test -f /tmp/ok"], interval = "100ms", start_period = "5s" }
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
depends_on = { db = "healthy" }
"#,
    );
    let sup = Detached::of(&out, &ok);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("stack up (supervisor pid "), "{text}");
    let log =
        std::fs::read_to_string(dir.path().join("data").join(&ok).join("supervisor.log")).unwrap();
    assert!(
        log.contains("web: started (pid "),
        "returned before web was up:\n{log}"
    );
    // A log file says when: each event line starts with its time.
    let started = log.lines().find(|l| l.contains("web: started")).unwrap();
    assert!(
        started.starts_with("20") && started.contains('T'),
        "no timestamp: {started}"
    );
    sup.stop();

    let bad = unique("dbad");
    let out = run_d(
        &bad,
        "[containers.broken]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/nothere\"]\n",
    );
    let sup = Detached::of(&out, &bad);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed: broken: failed to start:")
            && err.contains("exec: no such file or directory (/bin/nothere)"),
        "{err}"
    );
    sup.stop();
}

/// `up -d` gives up waiting after `--wait-timeout`, says what is still
/// pending and why, and leaves the supervisor running; `--wait-timeout 0`
/// does not wait at all.
#[test]
fn up_detached_gives_up_after_its_wait_timeout_and_says_what_is_pending() {
    require_root!();
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("dwait");
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{stack}\"\n[defaults]\nstop_timeout = \"300ms\"\n\
             [containers.db]\nimage = \"dir:{r}\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
             health = {{ command = [\"/bin/false\"], interval = \"200ms\" }}\n\
             [containers.web]\nimage = \"dir:{r}\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
             depends_on = {{ db = \"healthy\" }}\n",
            r = fs.path().display()
        ),
    )
    .unwrap();
    let up = |wait: &str| {
        Command::new(rkstack())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["up", "-d", "--wait-timeout", wait])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = up("7s");
    let sup = Detached::of(&out, &stack);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the stack was not up within 7 s"), "{err}");
    assert!(err.contains("web (waiting)"), "{err}");
    assert!(err.contains("db (running, "), "{err}");
    assert!(err.contains("rkstack: waiting for "), "no progress: {err}");
    assert!(err.contains("`rkstack down` stops it"), "{err}");
    assert!(alive(sup.pid()), "the supervisor should keep running");
    sup.stop();
    let out = up("0");
    let sup = Detached::of(&out, &stack);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("not waiting for the stack"), "{text}");
    sup.stop();
}

/// A stack whose rootfs or bind source is missing is refused by `up`
/// before anything starts, instead of leaving a supervisor that retries.
#[test]
fn up_refuses_a_stack_whose_host_paths_are_missing() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("nopath");
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"dir:/nonexistent-rkt-root\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
             mounts = [\"/nonexistent-rkt-source:/x\"]\n"
        ),
    )
    .unwrap();
    let out = Command::new(rkstack())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["up", "-d", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start here"), "{err}");
    assert!(err.contains("a: rootfs /nonexistent-rkt-root"), "{err}");
    assert!(
        err.contains("a: bind source /nonexistent-rkt-source"),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    assert!(
        rkstack_running(&dir.path().join("state")).is_empty(),
        "a supervisor was left running"
    );
}

/// The stacks whose supervisor holds its lock under `state`.
fn rkstack_running(state: &Path) -> Vec<String> {
    let out = Command::new(rkstack())
        .arg("--state-dir")
        .arg(state)
        .args(["ls", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(String::from))
        .collect()
}
