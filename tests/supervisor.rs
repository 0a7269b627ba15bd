//! `rkstack up` as root against the real kernel: restarts and backoff, the
//! start limit, hot reload that touches only what changed, invalid edits,
//! sd_notify, health gating, PID 1 duties and an orderly stop that leaves
//! nothing. A supervisor's crash and restart are in adoption.rs, `up -d` in
//! detached.rs, containers' output and logs in output.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;
/// The container an event line is about (its `container="..."` field).
fn container_of(line: &str) -> &str {
    let at = line.find("container=\"").map(|i| i + 11).unwrap_or(0);
    line[at..].split('"').next().unwrap_or("")
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
