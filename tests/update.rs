//! Generations, `apply` behind a health gate and `rollback`, as root on a
//! real running stack: a good version is committed with the unchanged
//! container keeping its process, a bad one rolled back by itself, the file
//! always holding what runs, `history` telling the story, and a supervisor
//! killed in the middle of a gate finishing the decision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;

/// The stack at version `v`: `db` never changes; `web` carries `v` and,
/// when `web_fails`, exits after a moment.
fn version(v: u32, web_fails: bool) -> String {
    let web = if web_fails {
        "[\"/bin/sh\", \"-c\", \"sleep 0.3; exit 3\"]".to_string()
    } else {
        "[\"/bin/sleep\", \"1000\"]".to_string()
    };
    format!(
        r#"
[containers.db]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
[containers.web]
image = "dir:ROOTFS"
env = {{ VERSION = "{v}" }}
command = {web}
depends_on = ["db"]
restart = "on-failure"
"#
    )
}

/// Writes `body` as a stack file beside the stack's own (not watched).
fn candidate(s: &Stack, name: &str, body: &str) -> std::path::PathBuf {
    let path = s.dir.path().join(name);
    let text = format!(
        "name = \"{}\"\n[defaults]\n{}{}",
        s.name,
        s.defaults,
        body.replace("ROOTFS", &s.fs.path().display().to_string())
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn apply(s: &Stack, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--timeout", "10s", "--stable", "1s"];
    args.extend_from_slice(extra);
    let file = file.display().to_string();
    args.push(&file);
    s.rk(&args)
}

#[test]
fn a_good_version_is_committed_and_a_bad_one_rolls_back_by_itself() {
    require_root!();
    let s = Stack::start_ready("apply", &version(1, false), "web: started");
    let db = s.pid("db");
    let v2 = candidate(&s, "v2.toml", &version(2, false));
    let out = apply(&s, &v2, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out).contains("committed"), "{}", text(&out));
    assert_eq!(s.pid("db"), db, "db did not change and kept its process");
    let web2 = s.pid("web");
    assert!(
        std::fs::read_to_string(s.stack_file())
            .unwrap()
            .contains("VERSION = \"2\"")
    );

    // v3's web exits: the gate fails, v2 comes back by itself.
    let v3 = candidate(&s, "v3.toml", &version(3, true));
    let t = Instant::now();
    let out = apply(&s, &v3, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rolled back to 2: web"),
        "{}",
        stderr(&out)
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(s.pid("db"), db);
    assert_ne!(s.pid("web"), web2, "web of v2 runs again, a new process");
    let file = std::fs::read_to_string(s.stack_file()).unwrap();
    assert!(file.contains("VERSION = \"2\""), "{file}");
    let web = s.container("web");
    assert_eq!(web["state"], "running");

    // An invalid file: exit 2, nothing changed.
    let bad = candidate(&s, "bad.toml", "[containers.web]\nmemory = 5\n");
    let out = apply(&s, &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let h = s.rk(&["history"]);
    assert!(h.status.success(), "{}", stderr(&h));
    let h = text(&h);
    let lines: Vec<&str> = h.lines().skip(1).collect();
    assert_eq!(lines.len(), 5, "{h}");
    assert!(
        lines[0].starts_with("1 ") && lines[0].contains("start") && lines[0].ends_with("committed"),
        "{h}"
    );
    assert!(
        lines[1].starts_with("2 ") && lines[1].contains("apply"),
        "{h}"
    );
    assert!(lines[2].contains("rolled-back: web"), "{h}");
    assert!(
        lines[3].starts_with("4* ") && lines[3].contains("rollback to 2"),
        "{h}"
    );
    assert!(lines[4].contains("rejected: "), "{h}");

    // rollback by hand: to 1.
    let out = s.rk(&["rollback", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.wait_for(
        |s| {
            s.container("web")["state"] == "running"
                && std::fs::read_to_string(s.stack_file())
                    .unwrap()
                    .contains("VERSION = \"1\"")
        },
        "web of v1 running",
    );
    assert_eq!(s.pid("db"), db);
}

#[test]
fn a_supervisor_killed_during_a_gate_finishes_the_decision() {
    require_root!();
    let mut s = Stack::start_ready("gatecrash", &version(1, false), "web: started");
    let db = s.pid("db");
    let v2 = candidate(&s, "v2.toml", &version(2, false));
    // A long stable time: the supervisor is killed while it waits.
    let mut apply = s.cli();
    apply.args(["apply", "--stable", "3s"]).arg(&v2);
    let mut pending = apply.stdout(std::process::Stdio::piped()).spawn().unwrap();
    s.wait_for(
        |s| s.events().contains("generation 2 (apply): waiting for web"),
        "the gate is open",
    );
    let sup = s.supervisor_pid();
    // SAFETY: the rkstack this test started.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    let _ = s.child.take().map(|mut c| c.wait());
    let _ = pending.wait();
    s.spawn(&[]);
    s.wait_for(
        |s| {
            s.events()
                .contains("generation 2: its health gate is resumed")
        },
        "the gate resumed",
    );
    s.wait_for(
        |s| s.events().contains("generation 2: committed"),
        "committed after the restart",
    );
    assert_eq!(s.pid("db"), db, "adopted, not restarted");
    let h = text(&s.rk(&["history", "--json"]));
    let last: serde_json::Value = serde_json::from_str(h.lines().last().unwrap()).unwrap();
    assert_eq!(last["number"], 2);
    assert_eq!(last["outcome"]["state"], "committed");
    s.stop();
}
