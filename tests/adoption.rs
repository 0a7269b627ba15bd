//! A supervisor killed and started again, as root: it adopts its
//! containers (or ends them, as the stop that was under way said), never
//! runs a container twice, keeps one given up on down, and a second
//! supervisor of the same stack is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;
#[test]
fn a_killed_supervisor_comes_back_and_adopts_its_containers() {
    require_root!();
    let stack = unique("ad");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.keep]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i; sleep 0.05 & wait; done"]
[containers.gone]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
stop_signal = "SIGKILL"
"#,
    );
    let keep = up.pid("keep");
    let gone = up.pid("gone");
    let state = up.dir.path().join("state").join(&stack).join("state.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("\"gone\"")
    {
        assert!(Instant::now() < deadline, "state.json not written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut old = up.child.take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    // Containers keep running while the supervisor is gone.
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(keep) && alive(gone));
    // One container dies meanwhile: the new supervisor must clean it up
    // (and, as its policy is "no", leave it down).
    // SAFETY: killing a container process this test's stack started.
    unsafe { libc::kill(gone, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    up.child = Some(up.up_command(&[]).spawn().unwrap());
    let log = up.wait_count(&format!("keep: adopted (pid {keep})"), 1);
    assert!(
        log.contains("gone: cleaned up after the previous supervisor"),
        "{log}"
    );
    assert!(
        !log.contains("keep: started (pid ") || log.matches("keep: started (pid ").count() == 1,
        "{log}"
    );
    // gone was started afresh by the plan (it is still in the file).
    up.wait_count("gone: started (pid ", 2);
    assert!(alive(keep));
    assert_eq!(up.stop().code(), Some(0));
    assert!(!alive(keep));
    assert!(!state.exists(), "state.json left after a clean stop");
    // The adopted container's clean stop is said as a stop, not as a kill
    // (how an adopted process ended is not known).
    let log = up.events();
    let stopped = log
        .lines()
        .find(|l| l.contains("keep: stopped"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!stopped.contains("keep: stopped ("), "{stopped}");
    // Every number the container printed is in its log, across the crash.
    let log = std::fs::read_to_string(
        up.dir
            .path()
            .join("data")
            .join(&stack)
            .join("logs/keep.log"),
    )
    .unwrap();
    let nums: Vec<u32> = log
        .lines()
        .filter_map(|l| l.split(" stdout ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert!(nums.len() > 5);
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "gap in the log: {nums:?}"
    );
}

#[test]
fn a_second_supervisor_of_the_same_stack_is_refused() {
    require_root!();
    let stack = unique("two");
    let mut up = Stack::start(
        &stack,
        "[containers.a]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    let pid = up.pid("a");
    let out = up.up_command(&[]).stderr(Stdio::piped()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "stack {stack} is already running (supervisor pid {})",
            up.child.as_ref().unwrap().id()
        )),
        "{err}"
    );
    assert!(
        alive(pid),
        "the second supervisor touched the first one's container"
    );
    assert_eq!(up.stop().code(), Some(0));
}

#[test]
fn after_a_crash_unit_stopped_keeps_the_containers_and_after_a_stop_ends_them() {
    require_root!();
    let stack = unique("us");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
"#,
    );
    let a = up.pid("a");
    // The supervisor crashes (as systemd's watchdog would have it).
    let mut old = up.child.take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    let unit_stopped = |result: &str| {
        let out = Command::new(rkstack())
            .arg("--state-dir")
            .arg(up.dir.path().join("state"))
            .args(["--stack", &stack, "unit-stopped"])
            .env("SERVICE_RESULT", result)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    // A failure: the next supervisor adopts what is left.
    let said = unit_stopped("signal");
    assert!(said.contains("stay for the next one to adopt"), "{said}");
    assert!(alive(a));
    // A stop that timed out: nothing may be left.
    let said = unit_stopped("timeout");
    assert!(said.contains("ended what it left: a"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(a) {
        assert!(Instant::now() < deadline, "a outlived unit-stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The supervisor killed (SIGKILL) again and again while it starts a
/// stack: each new one is let in at once (no child of the dead one holds
/// the stack's lock), and in the end every container runs once — never
/// two instances of one container in its cgroup.
#[test]
fn a_supervisor_killed_during_start_up_never_runs_a_container_twice() {
    require_root!();
    let stack = unique("dup");
    let body: String = (0..6)
        .map(|i| format!("[containers.c{i}]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n"))
        .collect();
    let mut up = Stack::start(&stack, &body);
    for round in 0..10 {
        // Killed right after some container of this round started.
        let before = up.events().matches(": started (pid ").count();
        let deadline = Instant::now() + Duration::from_secs(20);
        while up.events().matches(": started (pid ").count() == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: nothing started\n{}",
                up.events()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut old = up.child.take().unwrap();
        old.kill().unwrap();
        old.wait().unwrap();
        up.child = Some(up.up_command(&[]).spawn().unwrap());
    }
    let pids_of = |c: &str| -> Vec<String> {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/pids/rkstack/{stack}/{c}/cgroup.procs"
        ))
        .or_else(|_| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/rkstack/{stack}/{c}/cgroup.procs"))
        })
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..6).any(|i| pids_of(&format!("c{i}")).is_empty()) {
        assert!(
            Instant::now() < deadline,
            "not all running\n{}",
            up.events()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = up.events();
    assert!(!log.contains("already running"), "{log}");
    for i in 0..6 {
        let c = format!("c{i}");
        assert_eq!(pids_of(&c).len(), 1, "{c} runs {:?}\n{log}", pids_of(&c));
    }
    assert_eq!(up.stop().code(), Some(0));
}

/// A container its `start_limit` gave up on stays down when the
/// supervisor is killed and started again: no new round of starts.
#[test]
fn a_container_given_up_on_stays_down_across_a_supervisor_crash() {
    require_root!();
    let stack = unique("gaveup");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.flaky]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "exit 1"]
restart = "on-failure"
restart_backoff = { initial = "20ms", max = "100ms" }
start_limit = { burst = 3, interval = "60s" }
[containers.steady]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
"#,
    );
    up.wait_count("flaky: failed:", 1);
    let state = up.dir.path().join("state").join(&stack).join("state.json");
    wait_until(
        || {
            std::fs::read_to_string(&state)
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .is_some_and(|v| v["containers"]["flaky"]["failed"].is_string())
        },
        "the failure saved",
        || {
            format!(
                "{}\n{}",
                up.events(),
                std::fs::read_to_string(&state).unwrap_or_default()
            )
        },
    );
    let mut old = up.child.take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    up.child = Some(up.up_command(&[]).spawn().unwrap());
    up.wait_count("flaky: stays down (failed before this supervisor", 1);
    up.wait_count("steady: adopted", 1);
    std::thread::sleep(Duration::from_millis(500));
    let log = up.events();
    assert_eq!(log.matches("flaky: started (pid ").count(), 3, "{log}");
    assert_eq!(up.stop().code(), Some(0));
}
