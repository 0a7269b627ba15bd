//! The control API and the CLI commands that use it, as root against a real
//! running stack: every route, curl as the README shows it, exec inside the
//! container, logs -f and events as streams, a refused caller, bad input,
//! and a user's stop that survives a supervisor restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::stack::{API_BODY as BODY, Stack};
use common::*;

/// Runs `cmd` with `input` on its stdin; its output.
fn fed(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_route_answers_on_a_running_stack() {
    require_root!();
    let mut s = Stack::start_ready("api", BODY, "db: ");
    let (code, body) = s.curl("GET", "/v1/health", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""status":"ok""#), "{body}");

    // ps, human and JSON.
    let out = s.rk(&["ps"]);
    let table = text(&out);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web") && l.contains("running") && l.contains(" dir:/")),
        "{table}"
    );
    let header = table.lines().next().unwrap();
    assert!(
        header.contains(" MEMORY ") && header.contains(" IMAGE ") && header.ends_with(" PORTS"),
        "{table}"
    );
    assert_eq!(s.ps().len(), 2);
    let (code, body) = s.curl("GET", "/v1/containers", None);
    assert_eq!(code, 200);
    assert!(body.contains(r#""name":"db""#));

    // inspect: the effective configuration and what the cgroup uses.
    let out = s.rk(&["inspect", "db"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["hostname"], "dbhost");
    assert!(v["memory_bytes"].as_u64().is_some(), "{v}");
    assert!(v["spec_hash"].as_str().unwrap().starts_with("v1:"));

    // exec runs inside the container: its hostname, PID namespace, capabilities.
    let out = s.rk(&["exec", "db", "--", "hostname"]);
    assert_eq!(text(&out).trim(), "dbhost", "{}", stderr(&out));
    let out = s.rk(&["exec", "db", "--", "cat", "/proc/1/cmdline"]);
    assert_eq!(text(&out), "/bin/sleep\u{0}1000\u{0}");
    let db_pid = s.container("db")["pid"].as_i64().unwrap();
    let host_status = std::fs::read_to_string(format!("/proc/{db_pid}/status")).unwrap();
    let out = s.rk(&["exec", "db", "--", "grep", "CapEff", "/proc/self/status"]);
    let inside = text(&out);
    assert_eq!(
        inside.split_whitespace().nth(1),
        Some(status_field(&host_status, "CapEff")),
        "{inside}"
    );
    // Its exit status and stdin.
    let out = fed(
        s.cli()
            .args(["exec", "db", "--", "/bin/sh", "-c", "cat; exit 7"]),
        b"from-stdin",
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out), "from-stdin");
    // A command that is not there, or not a program: 127 and 126, as the
    // shell and docker say.
    let out = s.rk(&["exec", "db", "--", "/bin/nothere"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = s.rk(&["exec", "db", "--", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));

    // logs: the tail, then -f as lines are written.
    s.wait_for(
        |s| text(&s.rk(&["logs", "web"])).lines().count() >= 3,
        "ticks",
    );
    let out = s.rk(&["logs", "--tail", "1", "web"]);
    assert_eq!(text(&out).lines().count(), 1);
    assert!(text(&out).starts_with("tick "));
    let mut follow = s
        .cli()
        .args(["logs", "-f", "--tail", "0", "web"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(first.starts_with("tick ") && second.starts_with("tick ") && first != second);
    follow.kill().unwrap();
    follow.wait().unwrap();
    // Without a name: every container's, each line after its name, as
    // compose shows them; and followed, lines of both as they come.
    let all = text(&s.rk(&["logs"]));
    assert!(all.lines().any(|l| l.starts_with("web | tick ")), "{all}");
    assert!(all.lines().any(|l| l == "db  | db-ready"), "{all}");
    let mut follow = s
        .cli()
        .args(["logs", "-f", "--tail", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut web_seen, mut db_seen) = (0, false);
    for line in BufReader::new(follow.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        web_seen += usize::from(line.starts_with("web | tick "));
        db_seen |= line == "db  | db-ready";
        if web_seen >= 2 && db_seen {
            break;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();

    // events: a kill, the exit, the restart, in that order.
    let mut events = s
        .cli()
        .args(["events", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let web = s.container("web")["pid"].as_i64().unwrap() as i32;
    // SAFETY: killing a container process this test's stack started.
    unsafe { libc::kill(web, libc::SIGKILL) };
    let mut seen = Vec::new();
    for line in BufReader::new(events.stdout.take().unwrap()).lines() {
        let e: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if e["container"] == "web" {
            seen.push(e["message"].as_str().unwrap().to_string());
        }
        if seen.iter().any(|m| m.starts_with("started")) {
            break;
        }
    }
    events.kill().unwrap();
    events.wait().unwrap();
    assert!(
        seen[0].starts_with("killed by signal 9; restarting"),
        "{seen:?}"
    );
    assert!(seen.last().unwrap().starts_with("started (pid"), "{seen:?}");

    // stop holds it stopped; start brings it back; restart gives a new process.
    let out = s.rk(&["stop", "db"]);
    assert_eq!(text(&out).trim(), "db: stopped", "{}", stderr(&out));
    assert!(text(&s.rk(&["ps"])).contains("stopped (by user)"));
    let out = s.rk(&["start", "db"]);
    assert!(
        text(&out).starts_with("db: running (pid "),
        "{}",
        text(&out)
    );
    let before = s.container("db")["pid"].clone();
    let (code, body) = s.curl("POST", "/v1/containers/db/restart", None);
    assert_eq!(code, 200, "{body}");
    assert_ne!(s.container("db")["pid"], before);

    // Bad input: clear errors, nothing changes.
    let (code, body) = s.curl("GET", "/v1/containers/nope", None);
    assert_eq!(code, 404);
    assert!(body.contains(r#""kind":"not_found""#));
    let out = s.rk(&["logs", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no container named nope"));
    let (code, _) = s.curl("GET", "/v1/nowhere", None);
    assert_eq!(code, 404);
    let (code, body) = s.curl("POST", "/v1/containers/db/exec", Some("{\"command\": "));
    assert_eq!(code, 400, "{body}");
    let web_pid = s.container("web")["pid"].clone();
    std::fs::write(
        s.dir.path().join("stack.toml"),
        format!("name = \"{}\"\n[containers.web]\nimage = 3\n", s.name),
    )
    .unwrap();
    let (code, body) = s.curl("POST", "/v1/reload", None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("stack.toml:3:9"), "{body}");
    let out = s.rk(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("stack.toml:3:9"), "{}", stderr(&out));
    assert_eq!(
        s.container("web")["pid"],
        web_pid,
        "the old stack did not run on"
    );
    s.write(BODY);

    // plan against what runs, and the metrics.
    let out = s.rk(&["plan", s.dir.path().join("stack.toml").to_str().unwrap()]);
    assert!(
        text(&out).contains("nothing to do"),
        "{}{}",
        text(&out),
        stderr(&out)
    );
    let (code, body) = s.curl("GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!(
            "rkstack_container_up{{stack=\"{}\",container=\"web\"}} 1",
            s.name
        )),
        "{body}"
    );
    assert!(body.contains("rkstack_reloads_total"));

    // ls: the stack, its supervisor and its socket.
    let out = s.rk(&["ls"]);
    let listed = text(&out);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&s.name) && l.contains(&s.supervisor_pid().to_string())),
        "{listed}"
    );

    // down: everything stops, the supervisor ends, nothing is left; a
    // follower of a log ends with it, successfully.
    let follower = s
        .cli()
        .args(["logs", "-f", "web"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = s.rk(&["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Each container is said as it stops, as compose does.
    for c in ["web", "db"] {
        assert!(
            stderr(&out).contains(&format!("{c}: stopped")),
            "{}",
            stderr(&out)
        );
    }
    let ended = follower.wait_with_output().unwrap();
    assert!(ended.status.success(), "logs -f: {}", stderr(&ended));
    let status = s.child.take().unwrap().wait().unwrap();
    assert!(status.success());
    assert!(!s.socket().exists());
    assert_no_cgroups(&s.name);
    let out = s.rk(&["ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no stack is running"),
        "{}",
        stderr(&out)
    );
    // A second down has nothing to stop: fine, as compose's is.
    let out = s.rk(&["down"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to stop"), "{}", stderr(&out));
}

#[test]
fn a_caller_neither_root_nor_in_the_group_is_refused() {
    require_root!();
    let s = Stack::start_ready("peer", BODY, "db: ");
    let as_nobody = |s: &Stack| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "curl",
                "-s",
            ])
            .args(["-w", "\n%{http_code}", "--unix-socket"])
            .arg(s.socket())
            .arg("http://rkstack/v1/health")
            .output()
            .unwrap()
    };
    // The socket's mode keeps others out at connect already (curl: 7).
    assert_eq!(as_nobody(&s).status.code(), Some(7));
    // Opened up, the peer check answers 403.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&s);
    let body = text(&out);
    assert!(body.ends_with("\n403"), "{body}");
    assert!(body.contains(r#""kind":"forbidden""#), "{body}");
    assert!(s.events().contains("API request refused"), "{}", s.events());
}

#[test]
fn a_users_stop_survives_a_supervisor_restart() {
    require_root!();
    let mut s = Stack::start_ready("keepstop", BODY, "db: ");
    assert!(s.rk(&["stop", "db"]).status.success());
    let sup = s.supervisor_pid();
    // SAFETY: killing the rkstack this test started.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    s.child.take().unwrap().wait().unwrap();
    let web = s.container_after_restart(&mut |s| s.spawn(&[]));
    assert!(
        s.events().contains("db: stays stopped (stopped by a user)"),
        "{}",
        s.events()
    );
    assert_eq!(s.container("db")["state"], "stopped");
    assert_eq!(s.container("web")["pid"], web, "web was not adopted");
    let out = s.rk(&["start", "db"]);
    assert!(
        text(&out).starts_with("db: running"),
        "{}{}",
        text(&out),
        stderr(&out)
    );
}

impl Stack {
    /// web's pid before `restart` runs, checked to be running after it.
    fn container_after_restart(
        &mut self,
        restart: &mut dyn FnMut(&mut Stack),
    ) -> serde_json::Value {
        let state = std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("state/{}/state.json", self.name)),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&state).unwrap();
        let web = v["containers"]["web"]["pid"].clone();
        restart(self);
        self.wait_for(|s| s.events().contains("web: adopted"), "web adopted");
        web
    }
}

#[test]
fn exec_on_a_terminal_is_interactive() {
    require_root!();
    let body = "[containers.db]\nimage = \"dir:ROOTFS\"\nuser = \"1000:1000\"\n\
                command = [\"/bin/sleep\", \"1000\"]\n";
    let s = Stack::start_ready("tty", body, "db: ");
    // `script` gives the CLI a terminal, as a user's shell would.
    let cmd = format!(
        "{} --state-dir {} exec db -- /bin/sh",
        rkstack(),
        s.dir.path().join("state").display()
    );
    let out = fed(
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("TERM", "vt220"),
        b"[ -t 0 ] && [ -t 1 ] && echo on-a-$((6*7))-terminal\necho term-is-$TERM\n\
          t=$(tty) && [ -c \"$t\" ] && echo \"own-tty-$t-$(stat -c %u $t)\"\n\
          grep -c devpts /proc/self/mountinfo | sed s/^/devpts-mounts-/\nexit 4\n",
    );
    let text = text(&out);
    assert!(text.contains("on-a-42-terminal"), "{text}");
    // The terminal is the container's own: `tty` names it, the file is
    // there and the process owns it; only the container's devpts exists.
    assert!(text.contains("own-tty-/dev/pts/0-1000"), "{text}");
    assert!(text.contains("devpts-mounts-1"), "{text}");
    assert!(text.contains("term-is-vt220"), "TERM not passed on: {text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
}

/// An interactive session with framed input follows the window: a resize
/// frame sets the terminal's size and the shell gets SIGWINCH.
#[test]
fn a_terminal_session_follows_the_window_size() {
    use std::io::{Read, Write};
    require_root!();
    let s = Stack::start_ready("ttysize", BODY, "db: ");
    let mut c = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = r#"{"command":["/bin/sh"],"rows":24,"cols":80,"frames":true}"#;
    write!(
        c,
        "POST /v1/containers/db/exec HTTP/1.1\r\nHost: rkstack\r\nConnection: upgrade\r\n\
         Upgrade: rkstack-exec\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let frame = |kind: u8, payload: &[u8]| {
        let mut f = vec![kind];
        f.extend((payload.len() as u32).to_be_bytes());
        f.extend(payload);
        f
    };
    // Everything the server sent so far, frames and all, until `want` shows.
    let mut seen = Vec::new();
    let mut read_until = |c: &mut std::os::unix::net::UnixStream, want: &str| {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(want) {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "ended: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    };
    read_until(&mut c, "101 Switching Protocols");
    c.write_all(&frame(0, b"stty size | sed s/^/size-/\n"))
        .unwrap();
    read_until(&mut c, "size-24 80");
    // A program in the foreground waits for SIGWINCH (what it prints is
    // computed, so the terminal's echo of the typed line never matches).
    c.write_all(&frame(
        0,
        b"sh -c 'trap \"echo got-$((6*7)); exit 0\" WINCH; echo wait-$((2*3)); while :; do sleep 0.1; done'\n",
    ))
    .unwrap();
    read_until(&mut c, "wait-6");
    c.write_all(&frame(2, &[0, 50, 0, 132])).unwrap();
    read_until(&mut c, "got-42");
    c.write_all(&frame(0, b"stty size | sed s/^/size-/\n"))
        .unwrap();
    read_until(&mut c, "size-50 132");
    c.write_all(&frame(0, b"exit 3\n")).unwrap();
    read_until(&mut c, "\x03\x00\x00\x00\x04\x00\x00\x00\x03");
}

/// `plan?file=` of `/dev/zero`, of a FIFO and of an oversized file is
/// refused at once with the reason; the supervisor neither waits nor
/// grows, and answers the next request. `check` says the same.
#[test]
fn a_plan_of_a_device_a_fifo_or_a_huge_file_is_refused_at_once() {
    require_root!();
    let s = Stack::start_ready("planread", BODY, "db: ");
    let fifo = s.dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let huge = s.dir.path().join("huge.toml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let rss = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = rss(s.supervisor_pid());
    for (path, said) in [
        (
            "/dev/zero".to_string(),
            "a device; a stack file must be a regular file",
        ),
        (
            fifo.display().to_string(),
            "a FIFO; a stack file must be a regular file",
        ),
        (huge.display().to_string(), "larger than 16 MiB"),
    ] {
        let t = std::time::Instant::now();
        let (code, body) = s.curl("GET", &format!("/v1/plan?file={path}"), None);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{path}: {:?}",
            t.elapsed()
        );
        assert!((400..500).contains(&code), "{path}: {code} {body}");
        assert!(body.contains(said), "{path}: {body}");
        let out = s.rk(&["check", &path]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert!(stderr(&out).contains(said), "{path}: {}", stderr(&out));
    }
    assert!(
        rss(s.supervisor_pid()) < before + 20 * 1024,
        "the supervisor grew from {before} kB to {} kB",
        rss(s.supervisor_pid())
    );
    assert_eq!(s.curl("GET", "/v1/health", None).0, 200);
}

/// A container that ignores its stop signal is killed at its `stop_timeout`;
/// meanwhile the API answers, shows it `stopping`, and restarts another
/// container. The `stop` command returns once it has stopped.
#[test]
fn a_long_stop_holds_neither_the_api_nor_the_other_containers() {
    require_root!();
    const SLOW: &str = r#"
[containers.slow]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
stop_signal = "SIGTERM"
stop_timeout = "8s"
[containers.other]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
"#;
    let s = Stack::start_ready("slowstop", SLOW, "slow: started");
    s.wait_for(|s| s.events().contains("other: started"), "other started");
    let mut stop = s
        .cli()
        .args(["stop", "slow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.wait_for(
        |s| s.container("slow")["state"] == "stopping",
        "slow shown stopping",
    );
    let before = s.container("other")["pid"].clone();
    let out = s.rk(&["restart", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = s.container("other");
    assert_eq!(after["state"], "running", "{after}");
    assert_ne!(after["pid"], before, "other was not restarted");
    // Eight seconds of stop_timeout are far from over.
    assert!(
        stop.try_wait().unwrap().is_none(),
        "`stop` returned before slow ended:\n{}",
        s.events()
    );
    assert_eq!(s.container("slow")["state"], "stopping");
    let out = stop.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text(&out).starts_with("slow: stopped"), "{}", text(&out));
    assert!(
        s.events()
            .contains("slow: did not stop within its stop_timeout; killing it"),
        "{}",
        s.events()
    );
}

/// Ten clients ask for a 40 MB log and never read: the supervisor's memory
/// stays bounded (each holds a small buffer, not the history), `ps` still
/// answers, and `logs --tail` reads only the end.
#[test]
fn log_readers_that_never_read_do_not_grow_the_supervisor() {
    require_root!();
    use std::io::Write;
    const BIG: &str = r#"
[containers.chatty]
image = "dir:ROOTFS"
command = ["/bin/busybox", "sh", "-c", "/bin/busybox seq 1 1000000; echo done; exec /bin/busybox sleep 1000"]
logging = { max_size = "200M", max_files = 2 }
"#;
    let s = Stack::start_ready("biglog", BIG, "chatty: started");
    let log = s
        .dir
        .path()
        .join(format!("data/{}/logs/chatty.log", s.name));
    s.wait_for(
        |_| {
            std::fs::read_to_string(&log)
                .map(|t| t.ends_with("done\n"))
                .unwrap_or(false)
        },
        "the container wrote its million lines",
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 30_000_000, "{size}");
    let rss = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let sup = s.supervisor_pid();
    let before = rss(sup);
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut c = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
        c.write_all(b"GET /v1/containers/chatty/logs HTTP/1.1\r\nHost: rkstack\r\n\r\n")
            .unwrap();
        idle.push(c);
    }
    // The supervisor answers others while they hang.
    let out = s.rk(&["logs", "--tail", "3", "chatty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = text(&out)
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(lines, ["999999", "1000000", "done"], "{}", text(&out));
    assert_eq!(s.container("chatty")["state"], "running");
    std::thread::sleep(Duration::from_millis(500));
    let after = rss(sup);
    assert!(
        after < before + 30 * 1024,
        "supervisor RSS {before} KiB -> {after} KiB with 10 idle log readers of a {size}-byte log"
    );
    drop(idle);
}

/// Idle connections and a client that sends its headers a byte at a time
/// are closed by the server after its idle timeout (1 s here), and the
/// supervisor's descriptors come back to where they were; one over the
/// limit of connections is closed at once, and the API still answers.
#[test]
fn idle_and_slow_api_clients_are_closed() {
    require_root!();
    use std::io::{Read, Write};
    let mut s = Stack::new("idle", std::path::Path::new(rkstack()));
    s.env.push(("RKSTACK_API_IDLE_SECS".into(), "1".into()));
    s.write(BODY);
    s.spawn(&[]);
    s.wait_ready("db: ");
    let fds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let sup = s.supervisor_pid();
    let before = fds(sup);
    let mut idle: Vec<std::os::unix::net::UnixStream> = (0..100)
        .map(|_| std::os::unix::net::UnixStream::connect(s.socket()).unwrap())
        .collect();
    let mut slow = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHo").unwrap();
    // A kept-alive connection that asked once and then says nothing.
    let mut kept = std::os::unix::net::UnixStream::connect(s.socket()).unwrap();
    kept.write_all(b"GET /v1/health HTTP/1.1\r\nHost: rkstack\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(300));
    assert!(fds(sup) > before + 100, "the connections are open");
    let closed = |c: &mut std::os::unix::net::UnixStream| {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    };
    assert!(closed(&mut slow), "the slow client was not closed");
    assert!(
        closed(&mut kept),
        "the idle kept-alive connection was not closed"
    );
    for c in idle.iter_mut().take(5) {
        assert!(closed(c), "an idle connection was not closed");
    }
    // (A few come and go with the loop's own work: web restarts.)
    s.wait_for(|_| fds(sup) <= before + 8, "the descriptors come back");
    drop(idle);
    assert_eq!(s.curl("GET", "/v1/health", None).0, 200);
}
