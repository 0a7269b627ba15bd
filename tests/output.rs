//! Containers' output, as root: `up` attached prints it prefixed and never
//! blocks on a pipe nobody reads; logs keep every line across restarts,
//! outlive a vanished reader, and a full disk drops lines without blocking
//! the container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::stack::Stack;
use common::*;
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
