//! The escapes of an isolation audit, performed for real against default
//! containers (root inside, no user namespace, the default capabilities
//! and seccomp profile): each test is the attack, and passes only where
//! rkstack holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::stack::Stack;
use common::*;

/// The process `exec` and health checks make enter the container: a root
/// inside that watches for it gets no handle to the host's rkstack binary
/// (CVE-2019-5736), nor its memory (another container's secret), nor its
/// descriptors, nor a ptrace of it — not even once the supervisor is gone.
#[test]
fn a_container_gets_nothing_of_the_process_that_enters_it() {
    require_root!();
    // The supervisor runs from a copy of the binary: a failed run of this
    // test may leave that copy written to, never the build's.
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("rkstack");
    std::fs::copy(rkstack(), &exe).unwrap();
    let before = std::fs::read(&exe).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut s = Stack::new("snoop", &exe);
    std::fs::copy(probe(), s.fs.path().join("probe")).unwrap();
    s.write(&format!(
        r#"
[containers.other]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
env = {{ TOKEN = "RKT_SECRET_0123456789" }}
[containers.snoop]
image = "dir:ROOTFS"
command = ["/probe", "snoop", "/out/result.json"]
mounts = [{{ type = "bind", source = "{}", target = "/out" }}]
health = {{ command = ["/bin/true"], interval = "50ms" }}
"#,
        out.path().display()
    ));
    s.spawn(&[]);
    s.wait_ready("snoop: started");
    for _ in 0..40 {
        let o = bounded(&s, &["exec", "snoop", "--", "/bin/true"]);
        assert!(o.status.success(), "exec: {}", stderr(&o));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The crash the README tells of: the supervisor killed, its
    // containers left running. The host's binary is no longer busy.
    let pid = s.supervisor_pid();
    // SAFETY: the rkstack this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = s.child.take().unwrap().wait();
    std::fs::write(s.fs.path().join("stop"), "").unwrap();
    let result = out.path().join("result.json");
    wait_until(|| result.exists(), "the probe's report", String::new);
    std::thread::sleep(Duration::from_millis(100));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    eprintln!("snoop report: {report}");
    for key in [
        "exe",
        "exe_writable",
        "mem",
        "secret",
        "fd_dirs",
        "fd_opened",
        "ptrace",
    ] {
        assert_eq!(report[key], 0, "{key}: {report}");
    }
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        before,
        "the binary was written"
    );
    remove_cgroups(&s.name);
}

/// `rkstack ARGS` of this stack, ended after 20 s (an attack may hang it).
fn bounded(s: &Stack, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("timeout");
    c.args(["-s", "KILL", "20", rkstack()]);
    s.dirs(&mut c);
    c.args(args).output().unwrap()
}

/// A container whose `/etc/passwd` is a FIFO and whose `/etc/group` is
/// `/dev/zero` (the exec'd process reads both) makes `exec` and its health
/// checks fail at once with the reason; the supervisor keeps answering and
/// stops as asked.
#[test]
fn a_containers_user_files_cannot_hold_the_supervisor() {
    require_root!();
    let mut s = Stack::new("passwdfifo", Path::new(rkstack()));
    s.write(
        r#"
[containers.hostile]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "rm /etc/passwd /etc/group; mkfifo /etc/passwd; ln -s /dev/zero /etc/group; touch /ready; exec sleep 1000"]
health = { command = ["/bin/true"], interval = "100ms" }
[containers.other]
image = "dir:ROOTFS"
command = ["/bin/sleep", "1000"]
"#,
    );
    s.spawn(&[]);
    let ready = s.fs.path().join("ready");
    s.wait_for(|_| ready.exists(), "the container replaced its user files");
    let t = Instant::now();
    let o = bounded(&s, &["exec", "hostile", "--", "/bin/true"]);
    assert!(!o.status.success(), "exec ran: {}", stderr(&o));
    assert!(
        stderr(&o).contains("/etc/passwd: a FIFO; refused"),
        "{}",
        stderr(&o)
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exec took {:?}",
        t.elapsed()
    );
    // Health checks fail the same way, and every other request answers.
    s.wait_for(
        |s| s.events().contains("a FIFO; refused"),
        "a health check refused",
    );
    let ps = bounded(&s, &["ps", "--json"]);
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
    let stop = bounded(&s, &["stop", "other"]);
    assert!(stop.status.success(), "stop: {}", stderr(&stop));
    stop_bounded(&mut s);
}

/// A container that stops (SIGSTOP) every process entering it before its
/// execve holds nothing: the exec fails after its deadline with the
/// reason, the stopped process is gone, and the supervisor answers.
#[test]
fn a_process_stopped_on_its_way_into_a_container_is_given_up() {
    require_root!();
    let out = tempfile::tempdir().unwrap();
    let mut s = Stack::new("stopper", Path::new(rkstack()));
    std::fs::copy(probe(), s.fs.path().join("probe")).unwrap();
    s.write(&format!(
        r#"
[containers.stopper]
image = "dir:ROOTFS"
command = ["/probe", "stopper", "/out/result.json"]
mounts = [{{ type = "bind", source = "{}", target = "/out" }}]
"#,
        out.path().display()
    ));
    s.spawn(&[]);
    s.wait_ready("stopper: started");
    // The probe scans /proc in a loop: some exec comes its way soon.
    let (mut o, mut t) = (None, Instant::now());
    for _ in 0..200 {
        t = Instant::now();
        let r = bounded(&s, &["exec", "stopper", "--", "/bin/true"]);
        if !r.status.success() {
            o = Some(r);
            break;
        }
    }
    let o = o.expect("no exec was stopped by the probe");
    assert!(
        stderr(&o).contains("no answer from the process entering the container"),
        "{}",
        stderr(&o)
    );
    assert!(
        t.elapsed() < Duration::from_secs(19),
        "exec took {:?}",
        t.elapsed()
    );
    let ps = bounded(&s, &["ps", "--json"]);
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
    std::fs::write(s.fs.path().join("stop"), "").unwrap();
    let result = out.path().join("result.json");
    wait_until(|| result.exists(), "the probe's report", String::new);
    let report = std::fs::read_to_string(&result).unwrap();
    assert!(!report.contains("\"stopped\":0"), "{report}");
    stop_bounded(&mut s);
}

/// Stops the supervisor with SIGTERM and fails if it is not gone in 20 s.
fn stop_bounded(s: &mut Stack) {
    let mut child = s.child.take().unwrap();
    // SAFETY: the rkstack this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the supervisor did not stop in 20 s\n{}", s.events());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_no_cgroups(&s.name);
}

/// `socket(AF_VSOCK)` (on a VM guest, a way to the hypervisor) is refused
/// through every door: the native call, and on x86_64 i386's direct
/// socket call and its socketcall; other families still work.
#[test]
fn no_vsock_socket_through_any_abi() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("vsock");
    let out = run(&name, &[], fs.path(), &["/probe"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = json(&out);
    assert_eq!(p["vsock"], libc::EPERM, "{p}");
    assert_eq!(p["inet"], 0, "{p}");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(p["vsock_i386"], libc::EPERM, "{p}");
        assert_eq!(p["vsock_socketcall"], libc::EPERM, "{p}");
        assert_eq!(p["inet_i386"], 0, "{p}");
    }
}
