//! `rkstack up` as root against the real kernel: restarts and backoff, the
//! start limit, hot reload that touches only what changed, invalid edits,
//! logs across restarts, sd_notify, and an orderly stop that leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;

/// `rkstack up` of the shared fixture, with SIGTERM as the stop signal
/// (the tests here check how containers are asked to stop).
impl Stack {
    fn start(stack: &str, body: &str) -> Stack {
        Stack::start_env(stack, body, &[])
    }

    fn start_env(stack: &str, body: &str, env: &[(&str, String)]) -> Stack {
        Stack::start_cmd(stack, body, |c| {
            c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        })
    }

    /// [`Stack::start`], with `adjust` applied to the `rkstack up` command.
    fn start_cmd(stack: &str, body: &str, adjust: impl FnOnce(&mut Command)) -> Stack {
        Stack::start_in(stack, body, PathBuf::from("stack.toml"), |_| {}, adjust)
    }

    /// [`Stack::start_cmd`] of the file at `path` (relative to its folder),
    /// after `layout` made what leads there.
    fn start_in(
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

/// The container an event line is about (its `container="..."` field).
fn container_of(line: &str) -> &str {
    let at = line.find("container=\"").map(|i| i + 11).unwrap_or(0);
    line[at..].split('"').next().unwrap_or("")
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn killed_container_comes_back_and_a_crash_loop_gives_up() {
    require_root!();
    let stack = unique("rs");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.steady]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
restart = "always"
restart_backoff = { initial = "50ms", max = "1s" }
[containers.flaky]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "exit 1"]
restart = "on-failure"
restart_backoff = { initial = "50ms", max = "1s" }
start_limit = { burst = 3, interval = "60s" }
"#,
    );
    let first = up.pid("steady");
    // SAFETY: killing the container process this test's stack started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let log = up.wait_count("steady: started (pid ", 2);
    assert!(
        log.contains("steady: killed by signal 9; restarting in 50 ms"),
        "{log}"
    );
    let second = up.pid("steady");
    assert_ne!(first, second);
    assert!(alive(second));
    let log = up.wait_count("flaky: failed:", 1);
    assert!(
        log.contains("restarting in 50 ms") && log.contains("restarting in 100 ms"),
        "backoff did not grow:\n{log}"
    );
    assert!(log.contains("flaky: failed: exited with status 1; started 3 times within 1m (start_limit burst 3); it stays down"), "{log}");
    assert_eq!(up.stop().code(), Some(0));
    assert!(!alive(second));
}

/// A process entering a container that is killed by a real-time signal
/// (which nix's wait status cannot name) ends its `exec` with 128 + that
/// signal, as a shell reports it, and the supervisor carries on.
#[test]
fn an_exec_killed_by_a_real_time_signal_ends_with_its_status() {
    require_root!();
    let stack = unique("rt");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.c]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
"#,
    );
    up.wait_count("c: started (pid ", 1);
    let signal = libc::SIGRTMIN() + 5;
    let exec = |script: &str| {
        Command::new(rkstack())
            .arg("--data-dir")
            .arg(up.dir.path().join("data"))
            .arg("--state-dir")
            .arg(up.dir.path().join("state"))
            .args(["exec", "c", "--", "/bin/sh", "-c", script])
            .output()
            .unwrap()
    };
    let out = exec(&format!("kill -{signal} $$"));
    assert_eq!(
        out.status.code(),
        Some(128 + signal),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exec("true").status.success());
    assert_eq!(up.stop().code(), Some(0));
}

/// `up --attach` of `body`, its stdout to `stdout`.
fn start_attached(tag: &str, body: &str, stdout: Stdio) -> Stack {
    Stack::start_cmd(&unique(tag), body, |c| {
        c.arg("--attach").stdout(stdout);
    })
}

/// `up --attach` shows the containers' output on its stdout, each line
/// after its container's name, as docker compose up does.
#[test]
fn up_attach_prints_the_containers_output_prefixed() {
    require_root!();
    let out = tempfile::NamedTempFile::new().unwrap();
    let file = out.reopen().unwrap();
    let mut up = start_attached(
        "att",
        r#"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "echo hello from a; echo to stderr >&2; sleep 1000"]
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "echo hello from web; sleep 1000"]
"#,
        Stdio::from(file),
    );
    let text = || std::fs::read_to_string(out.path()).unwrap_or_default();
    up.wait_for(|_| text().lines().count() >= 3, "three lines on stdout");
    let got = text();
    for want in [
        "a   | hello from a\n",
        "a   | to stderr\n",
        "web | hello from web\n",
    ] {
        assert!(got.contains(want), "{want:?} in\n{got}");
    }
    assert_eq!(up.stop().code(), Some(0));
}

/// A stdout nobody reads (a full pipe) does not hold the supervisor: a
/// container writing flat out, and `ps` still answers.
#[test]
fn up_attach_to_a_pipe_nobody_reads_never_blocks_the_supervisor() {
    require_root!();
    let (unread, w) = nix::unistd::pipe().unwrap();
    let mut up = start_attached(
        "attfull",
        r#"
[containers.loud]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "while :; do echo 0123456789012345678901234567890123456789; done"]
"#,
        Stdio::from(w),
    );
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let out = up.rk(&["ps"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("loud"));
    }
    assert_eq!(up.stop().code(), Some(0));
    drop(unread);
}

/// An `exec` the OOM killer ends is said to be one (its status, 137, is
/// all the caller sees), and the container goes on.
#[test]
fn an_exec_killed_by_the_oom_killer_is_reported() {
    require_root!();
    let mut up = Stack::start(
        &unique("xoom"),
        r#"
[containers.c]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
resources = { memory = "24M" }
"#,
    );
    let pid = up.pid("c");
    // The probe allocates until it is stopped.
    let out = up.rk(&["exec", "c", "--", "/probe", "hog"]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    up.wait_for(
        |u| u.events().contains("c: exec (pid "),
        "the exec's OOM kill in the log",
    );
    assert!(
        up.events().contains("killed by the OOM killer"),
        "{}",
        up.events()
    );
    assert!(alive(pid), "the container went with its exec");
    assert_eq!(up.stop().code(), Some(0));
}

#[test]
fn reload_touches_only_what_changed_and_rejects_bad_edits() {
    require_root!();
    let stack = unique("rl");
    let body = |cmd_b: &str, mem_a: &str| {
        format!(
            r#"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
resources = {{ memory = "{mem_a}" }}
[containers.b]
image = "dir:ROOTFS"
command = {cmd_b}
"#
        )
    };
    let up = Stack::start(&stack, &body(r#"["/bin/sleep", "1001"]"#, "64M"));
    let (a, b) = (up.pid("a"), up.pid("b"));

    // Only b's command changes: only b gets a new process.
    up.write(&body(r#"["/bin/sleep", "1002"]"#, "64M"));
    up.wait_count("b: started (pid ", 2);
    let b2 = up.pid("b");
    assert_ne!(b, b2);
    assert_eq!(up.pid("a"), a);
    assert!(alive(a) && alive(b2) && !alive(b));

    // Only a's memory limit changes: applied in place, same pid.
    up.write(&body(r#"["/bin/sleep", "1002"]"#, "128M"));
    let log = up.wait_count("a: memory limit 64M → 128M: applied in place", 1);
    assert_eq!(up.pid("a"), a, "{log}");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/rkstack/{stack}/a/memory.limit_in_bytes"
    ))
    .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/rkstack/{stack}/a/memory.max")))
    .unwrap();
    assert_eq!(limit.trim(), (128u64 << 20).to_string());

    // Invalid edits change nothing and are reported with line:col.
    for bad in [
        "[containers.a\n",
        "[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\ncolour = 1\n",
        "[containers.a]\nimage = \"host\"\ncommand = [\"x\"]\ndepends_on = [\"a\"]\n",
    ] {
        let before = up.events().matches("rejected").count();
        up.write(bad);
        let log = up.wait_count("rejected", before + 1);
        assert!(log.contains("stack.toml:"), "{log}");
        assert!(alive(a) && alive(b2));
    }
    assert!(!up.events().contains("a: stopped"));

    // Adding and removing containers.
    up.write(
        r#"
[containers.a]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
resources = { memory = "128M" }
[containers.c]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1003"]
"#,
    );
    up.wait_count("c: started (pid ", 1);
    up.wait_count("b: stopped", 1);
    assert!(alive(a) && !alive(b2));
}

#[test]
fn logs_keep_every_line_across_restarts() {
    require_root!();
    let stack = unique("lg");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.talker]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "r=$(cat /proc/sys/kernel/random/uuid); i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo \"$r $i\"; done; echo done >&2"]
restart = "always"
restart_backoff = { initial = "10ms", max = "10ms" }
"#,
    );
    up.wait_count("talker: started (pid ", 6);
    assert_eq!(up.stop().code(), Some(0));
    let log = std::fs::read_to_string(
        up.dir
            .path()
            .join("data")
            .join(&stack)
            .join("logs/talker.log"),
    )
    .unwrap();
    let mut runs: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for line in log.lines() {
        let (_, rest) = line.split_once(' ').unwrap();
        if let Some(rest) = rest.strip_prefix("stdout ") {
            let (who, n) = rest.split_once(' ').unwrap();
            runs.entry(who.to_string())
                .or_default()
                .push(n.parse().unwrap());
        }
    }
    let complete = runs
        .values()
        .filter(|v| v.len() == 2000 && v.iter().enumerate().all(|(i, n)| *n as usize == i + 1))
        .count();
    assert!(
        complete >= 5,
        "fewer than 5 complete runs without gaps: {:?}",
        runs.values().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(log.contains(" stderr done"));
}

#[test]
fn sd_notify_reports_ready_reloading_ready_stopping() {
    require_root!();
    let stack = unique("sd");
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = "[containers.a]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n";
    let mut up = Stack::start_env(
        &stack,
        body,
        &[("NOTIFY_SOCKET", sock_path.display().to_string())],
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().starts_with("READY=1"));
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(up.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    assert!(next().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(next().starts_with("READY=1"));
    assert_eq!(up.stop().code(), Some(0));
    assert_eq!(next(), "STOPPING=1");
    // With a watchdog period set, the event loop pings at half of it.
    let stack = unique("wd");
    let mut up = Stack::start_env(
        &stack,
        body,
        &[
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "200000".into()),
        ],
    );
    let mut pings = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pings < 3 && Instant::now() < deadline {
        let n = sock.recv(&mut buf).unwrap();
        pings += usize::from(&buf[..n] == b"WATCHDOG=1");
    }
    assert_eq!(pings, 3, "no watchdog pings");
    assert_eq!(up.stop().code(), Some(0));
}

#[test]
fn stop_runs_in_reverse_dependency_order() {
    require_root!();
    let stack = unique("ord");
    let mut up = Stack::start(
        &stack,
        r#"
[containers.db]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
stop_signal = "SIGKILL"
[containers.app]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
depends_on = ["db"]
stop_signal = "SIGKILL"
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
depends_on = ["app"]
stop_signal = "SIGKILL"
"#,
    );
    let log = up.wait_count(": started (pid ", 3);
    let starts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": started"))
        .map(container_of)
        .collect();
    assert_eq!(starts, ["db", "app", "web"]);
    assert_eq!(up.stop().code(), Some(0));
    let log = up.events();
    let stops: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": stopped"))
        .map(container_of)
        .collect();
    assert_eq!(stops, ["web", "app", "db"]);
    let _ = Path::new("");
}

#[test]
fn healthy_dependency_gates_start_and_unhealthy_restarts() {
    require_root!();
    let stack = unique("hc");
    let up = Stack::start(
        &stack,
        r#"
[containers.db]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "sleep 1; touch /tmp/ready; sleep 1000"]
health = { command = ["/bin/sh", "-c", "test -f /tmp/ready"], interval = "100ms", retries = 2, start_period = "5s" }
[containers.web]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
depends_on = { db = "healthy" }
[containers.sick]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
restart = "always"
health = { command = ["/bin/sh", "-c", "exit 1"], interval = "100ms", retries = 2 }
"#,
    );
    let log = up.wait_count("web: started (pid ", 1);
    let at = |s: &str| {
        log.find(s)
            .unwrap_or_else(|| panic!("{s:?} missing:\n{log}"))
    };
    assert!(at("web: waiting for db (healthy)") < at("db: healthy"));
    assert!(at("db: healthy") < at("web: started"));
    assert!(
        !log.contains("db: unhealthy"),
        "failures in start_period counted:\n{log}"
    );
    // The check runs inside the container: it sees the container's /tmp.
    let log = up.wait_count("sick: restarting: unhealthy", 1);
    assert!(log.contains("sick: unhealthy"), "{log}");
    up.wait_count("sick: started (pid ", 2);
}

fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

fn zombies_of(pid: i32) -> Vec<i32> {
    children(pid)
        .into_iter()
        .filter(|c| {
            std::fs::read_to_string(format!("/proc/{c}/stat")).is_ok_and(|s| s.contains(") Z "))
        })
        .collect()
}

#[test]
fn as_pid_1_it_reaps_orphans_and_stops_on_sigterm() {
    require_root!();
    let stack = unique("p1");
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            fs.path().display()
        ),
    )
    .unwrap();
    let events = dir.path().join("events.log");
    // The shell leaves a burst of double-forked orphans, then becomes rkstack:
    // the orphans are re-parented to it (PID 1) and must be reaped.
    let script = format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.3 &); done; exec {} --data-dir {} up {}",
        rkstack(),
        dir.path().join("data").display(),
        file.display()
    );
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", &script])
        .stderr(std::fs::File::create(&events).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&events)
        .unwrap_or_default()
        .contains("a: started (pid ")
    {
        assert!(
            Instant::now() < deadline,
            "not started: {}",
            std::fs::read_to_string(&events).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid1 = *children(unshare.id() as i32)
        .first()
        .expect("rkstack as PID 1");
    assert!(
        std::fs::read_to_string(format!("/proc/{pid1}/status"))
            .unwrap()
            .contains("NSpid:\t")
    );
    let nspid = std::fs::read_to_string(format!("/proc/{pid1}/status")).unwrap();
    assert!(
        nspid
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "not PID 1: {nspid}"
    );
    // The orphans have ended by now; none may be left a zombie.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(zombies_of(pid1), Vec::<i32>::new(), "zombies under PID 1");
    // SAFETY: signalling the rkstack this test started (as PID 1 of its namespace).
    unsafe { libc::kill(pid1, libc::SIGTERM) };
    let status = unshare.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&events).unwrap_or_default()
    );
    assert!(
        std::fs::read_to_string(&events)
            .unwrap()
            .contains("stack stopped")
    );
    assert_no_cgroups(&stack);
}

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

#[test]
fn a_vanished_log_reader_does_not_take_the_supervisor_down() {
    require_root!();
    let stack = unique("pipe");
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!("name = \"{stack}\"\n[containers.a]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n", fs.path().display()),
    )
    .unwrap();
    let mut child = Command::new(rkstack())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("up")
        .arg(&file)
        .env("WATCHDOG_USEC", "100000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut first = [0u8; 64];
    let _ = err.read(&mut first).unwrap();
    drop(err);
    // The next events (and watchdog ticks) meet a closed pipe.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the supervisor died when its stderr went away"
    );
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_no_cgroups(&stack);
}

/// A small tmpfs mounted for one test, unmounted even if the test fails.
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(at: PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success());
        SmallFs(at)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_drops_log_lines_but_never_blocks_the_container() {
    require_root!();
    let stack = unique("full");
    let mut up = Stack::start(
        &stack,
        "[containers.x]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    up.pid("x");
    assert_eq!(up.stop().code(), Some(0));
    // Again, with the data folder (where logs go) on a 256 KiB filesystem.
    let data = up.dir.path().join("data");
    let _fs = SmallFs::new(data.clone(), "256k");
    up.child = Some(up.up_command(&[]).spawn().unwrap());
    up.write(
        r#"
[containers.chatty]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); echo line $i padding padding padding padding; done; echo finished > /tmp/done; sleep 1000"]
health = { command = ["/bin/sh", "-c", "test -f /tmp/done"], interval = "100ms" }
logging = { max_size = "1M", max_files = 1 }
"#,
    );
    let log = up.wait_count("chatty: healthy", 1);
    // One event for the whole episode, not one per pass of the loop.
    assert_eq!(
        log.matches("chatty: log lines dropped: writing").count(),
        1,
        "drops not reported once:\n{log}"
    );
    assert_eq!(up.stop().code(), Some(0));
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

/// Started with systemd's default soft limit of 1,024 descriptors, the
/// supervisor raises its own to the hard limit; its containers keep the
/// 1,024 they would have had.
#[test]
fn the_supervisor_raises_its_descriptor_limit_and_its_containers_keep_theirs() {
    require_root!();
    use std::os::unix::process::CommandExt;
    let stack = unique("nofile");
    let up = Stack::start_cmd(
        &stack,
        "[containers.c]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
        |c| {
            // SAFETY: only setrlimit between fork and exec.
            unsafe {
                c.pre_exec(|| {
                    let mut l = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
                    l.rlim_cur = 1024;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &l);
                    Ok(())
                });
            }
        },
    );
    let pid = up.pid("c");
    let limits = |p: i32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{p}/limits")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[3].to_string(), f[4].to_string())
    };
    let (soft, hard) = limits(up.child.as_ref().unwrap().id() as i32);
    assert_eq!(
        soft, hard,
        "the supervisor kept a soft limit below its hard one"
    );
    assert_ne!(soft, "1024");
    assert_eq!(limits(pid), ("1024".to_string(), hard.clone()));
    // A process entering it gets the container's limits, not rkstack's.
    let out = Command::new(rkstack())
        .arg("--data-dir")
        .arg(up.dir.path().join("data"))
        .arg("--state-dir")
        .arg(up.dir.path().join("state"))
        .args(["exec", "c", "--", "/bin/sh", "-c", "ulimit -n; ulimit -Hn"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("1024\n{hard}\n")
    );
}

/// An edit whose new version of a container cannot start here (a
/// mistyped `dir:` path, a missing bind source) is refused before the
/// running container is stopped: it keeps running, the same process.
#[test]
fn a_reload_whose_container_cannot_start_leaves_the_running_one_alone() {
    require_root!();
    let stack = unique("typo");
    let up = Stack::start(
        &stack,
        "[containers.web]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    let pid = up.pid("web");
    up.write(
        "[containers.web]\nimage = \"dir:ROOTFS-typo\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    let log = up.wait_count("the new stack cannot start here; nothing was changed", 1);
    assert!(
        log.contains("web: rootfs ") && log.contains("-typo"),
        "{log}"
    );
    up.write(
        "[containers.web]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
         mounts = [\"/nonexistent-rkt-source:/x\"]\n",
    );
    let log = up.wait_count("the new stack cannot start here; nothing was changed", 2);
    assert!(
        log.contains("web: bind source /nonexistent-rkt-source"),
        "{log}"
    );
    assert!(alive(pid), "the running container was stopped\n{log}");
    assert_eq!(up.pid("web"), pid, "{log}");
    assert!(!log.contains("web: stopped"), "{log}");
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

/// Deploys that do not edit the file: a `current -> releases/N` symlink
/// swapped, then the whole folder the link names replaced. Each is a
/// reload of what changed, as an edit would be.
#[test]
fn a_swapped_release_symlink_or_a_replaced_folder_reloads_the_stack() {
    require_root!();
    let stack = unique("swap");
    let body = |v: &str| {
        format!(
            "[containers.a]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\nenv = {{ V = \"{v}\" }}\n"
        )
    };
    let up = Stack::start_in(
        &stack,
        &body("1"),
        PathBuf::from("current/stack.toml"),
        |d| {
            std::fs::create_dir_all(d.join("releases/1")).unwrap();
            std::os::unix::fs::symlink("releases/1", d.join("current")).unwrap();
        },
        |_| {},
    );
    let a1 = up.pid("a");
    let d = up.dir.path().to_path_buf();
    // Release 2 is unpacked beside, then `current` is swapped to it.
    std::fs::create_dir_all(d.join("releases/2")).unwrap();
    let v1 = std::fs::read_to_string(d.join("releases/1/stack.toml")).unwrap();
    std::fs::write(
        d.join("releases/2/stack.toml"),
        v1.replace("V = \"1\"", "V = \"2\""),
    )
    .unwrap();
    std::os::unix::fs::symlink("releases/2", d.join("current.new")).unwrap();
    std::fs::rename(d.join("current.new"), d.join("current")).unwrap();
    up.wait_count("a: started (pid ", 2);
    let a2 = up.pid("a");
    assert_ne!(a1, a2);
    // The release folder itself replaced under the link.
    std::fs::create_dir_all(d.join("releases/2.new")).unwrap();
    std::fs::write(
        d.join("releases/2.new/stack.toml"),
        v1.replace("V = \"1\"", "V = \"3\""),
    )
    .unwrap();
    std::fs::rename(d.join("releases/2"), d.join("releases/2.old")).unwrap();
    std::fs::rename(d.join("releases/2.new"), d.join("releases/2")).unwrap();
    let log = up.wait_count("a: started (pid ", 3);
    assert_ne!(up.pid("a"), a2, "{log}");
    assert_eq!(log.matches("reload (file changed)").count(), 2, "{log}");
}

/// What a container costs the supervisor in descriptors: its two log
/// pipes (one end each) and its log file; the pipes' other ends are opened
/// for each run and handed over.
#[test]
fn each_container_holds_three_descriptors_of_the_supervisor() {
    require_root!();
    let stack = unique("fds");
    let body: String = (0..20)
        .map(|i| format!("[containers.c{i}]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n"))
        .collect();
    let up = Stack::start(&stack, &body);
    up.wait_count(": started (pid ", 20);
    let sup = up.child.as_ref().unwrap().id();
    let fds = std::fs::read_dir(format!("/proc/{sup}/fd"))
        .unwrap()
        .count();
    // The loop's own (signalfd, inotify, epoll, the lock, stdio, the
    // socket and the runtime's) are fewer than 25.
    assert!(fds <= 3 * 20 + 25, "{fds} descriptors for 20 containers");
}

/// The supervisor stays one thread with containers running and the API
/// answering: the init stage of a new container is forked from it.
#[test]
fn a_running_supervisor_has_exactly_one_thread() {
    require_root!();
    let stack = unique("one");
    let up = Stack::start(
        &stack,
        "[containers.a]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
         health = { command = [\"/bin/true\"], interval = \"1s\" }\n",
    );
    up.wait_count("a: healthy", 1);
    let sup = up.child.as_ref().unwrap().id();
    let threads = std::fs::read_to_string(format!("/proc/{sup}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|t| t.trim().to_string()))
        .unwrap();
    assert_eq!(threads, "1");
}

/// Without `nft`, a stack that publishes a port is refused before anything
/// starts (exit 1, what is missing and the package), instead of running
/// with its ports silently missing.
#[test]
fn without_nft_a_stack_with_ports_is_refused_before_anything_starts() {
    require_root!();
    let fs = Rootfs::readable();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("nonft");
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"{stack}\"\n[networks.n]\nsubnet = \"10.127.3.0/24\"\n[containers.a]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nnetworks = [\"n\"]\nports = [\"127.0.0.1:18081:80\"]\n",
            fs.path().display()
        ),
    )
    .unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(rkstack())
        .env("PATH", empty.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["up", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("need nftables") && err.contains("apt-get install nftables"),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    assert!(!err.contains("a: started"), "{err}");
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
