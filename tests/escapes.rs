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

/// A container that hides its devpts under a tmpfs with a FIFO named
/// `ptmx` (it was given CAP_SYS_ADMIN) gets no terminal from it: an
/// interactive exec fails at once saying why, nothing waits on the FIFO,
/// and the supervisor answers.
#[test]
fn a_fake_ptmx_in_a_container_gives_no_terminal() {
    require_root!();
    let mut s = Stack::new("fakeptmx", Path::new(rkstack()));
    s.write(
        r#"
[containers.hostile]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "mount -t tmpfs none /dev/pts && mkfifo /dev/pts/ptmx && touch /ready; exec sleep 1000"]
security = { capabilities = { add = ["SYS_ADMIN"] }, seccomp = "unconfined" }
"#,
    );
    s.spawn(&[]);
    let ready = s.fs.path().join("ready");
    s.wait_for(|_| ready.exists(), "the container hid its devpts");
    let cmd = format!(
        "{} --state-dir {} --data-dir {} exec hostile -- /bin/sh",
        rkstack(),
        s.dir.path().join("state").display(),
        s.dir.path().join("data").display()
    );
    let t = Instant::now();
    let o = std::process::Command::new("timeout")
        .args(["-s", "KILL", "20", "script", "-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!o.status.success(), "exec ran: {text}");
    assert!(text.contains("not a devpts ptmx"), "{text}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exec took {:?}",
        t.elapsed()
    );
    let ps = bounded(&s, &["ps", "--json"]);
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
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
/// socket call, its socketcall and the x32 call; other families still work.
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
        // x32: refused where the kernel runs it, unknown where it does not
        // (the filter then leaves x32 out, and answers as the kernel would:
        // the probe is not killed for asking).
        let x32 = p["vsock_x32"].as_i64();
        assert!(
            x32 == Some(libc::EPERM.into()) || x32 == Some(libc::ENOSYS.into()),
            "{p}"
        );
    }
}

/// With the host's network the host's `/sys` is bound: every mount under
/// it (the cgroup hierarchies among them) is read-only, nosuid, nodev and
/// noexec, so the container can neither leave its limits nor make
/// cgroups in the host's tree.
#[test]
fn a_host_network_container_cannot_write_the_host_cgroup_tree() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("hostsys");
    let out = run(&name, &["--network", "host"], fs.path(), &["/probe"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = json(&out);
    let mut under_sys = 0;
    for line in p["mountinfo"].as_str().unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if !(f[4] == "/sys" || f[4].starts_with("/sys/")) {
            continue;
        }
        under_sys += 1;
        let opts: Vec<&str> = f[5].split(',').collect();
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.contains(&o), "{o} missing on {line}");
        }
    }
    assert!(
        under_sys > 1,
        "no submount of /sys seen:\n{}",
        p["mountinfo"]
    );
    // The attack itself: its own cgroup's limit, and a cgroup of its own
    // making in the host's root of each hierarchy.
    let esc = format!("{name}-esc");
    let script = format!(
        "for h in /sys/fs/cgroup/*/; do mkdir $h{esc} 2>/dev/null && echo MADE $h; \
         for f in $h/rkstack/run/{name}/pids.max $h/rkstack/run/{name}/memory.limit_in_bytes; do \
         [ -e $f ] && echo -1 > $f 2>/dev/null && echo WROTE $f; done; done; true"
    );
    let out = run(
        &name,
        &["--network", "host", "--pids", "64", "--memory", "64M"],
        fs.path(),
        &["/bin/sh", "-c", &script],
    );
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join(&esc));
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("MADE") && !said.contains("WROTE"), "{said}");
}

/// A `:ro` bind whose mount point sits in a volume another party flips
/// while containers start (the volume's `a` swapped, atomically and over
/// and over, between a directory holding `d` and a symlink to `.`, where
/// `d` is another bind): 100 starts, none with the bind read-write,
/// nothing written to the bind's source.
#[test]
fn a_read_only_bind_stays_read_only_while_its_mount_point_is_flipped() {
    require_root!();
    let fs = Rootfs::new();
    let vol = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let src_name = src
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(vol.path().join("a/d")).unwrap();
    std::fs::create_dir_all(vol.path().join("d")).unwrap();
    std::os::unix::fs::symlink(".", vol.path().join("t")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (a, t, stop) = (vol.path().join("a"), vol.path().join("t"), stop.clone());
        std::thread::spawn(move || {
            let (a, t) = (cstring(&a), cstring(&t));
            let mut flips = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths of this test's own folder.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        t.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                flips += u32::from(r == 0);
            }
            flips
        })
    };
    let volume = format!("{}:/v", vol.path().display());
    let over = format!("{}:/v/d", other.path().display());
    let bind = format!("{}:/v/a/d:ro", src.path().display());
    let script = "for p in /v/a/d /v/t/d /v/d; do touch $p/w 2>/dev/null; done; \
                  grep ' /v' /proc/self/mountinfo; true";
    let (mut started, mut rw) = (0, Vec::new());
    for i in 0..100 {
        let name = unique(&format!("flip{i}"));
        let out = run(
            &name,
            &["-v", &volume, "-v", &over, "-v", &bind],
            fs.path(),
            &["/bin/sh", "-c", script],
        );
        if !out.status.success() {
            continue;
        }
        started += 1;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() > 5 && f[3].ends_with(&src_name) && !f[5].split(',').any(|o| o == "ro") {
                rw.push(line.to_string());
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    let written: Vec<_> = std::fs::read_dir(src.path()).unwrap().flatten().collect();
    eprintln!("{started} of 100 started, {flips} flips");
    assert!(flips > 100, "the flipper did not run");
    assert!(rw.is_empty(), "read-write binds of the source: {rw:?}");
    assert!(written.is_empty(), "written to the source: {written:?}");
    assert!(started > 0, "no start succeeded");
}

fn cstring(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// Limits that cannot work are refused, by `run` and in the stack file
/// alike and in the same words, before anything starts; a user
/// namespace that maps root to the host's root is warned about.
#[test]
fn absurd_limits_are_refused_and_an_identity_user_namespace_is_warned_about() {
    require_root!();
    let fs = Rootfs::new();
    for (opts, said) in [
        (
            ["--memory", "4096"],
            "--memory: memory limit 4k is below 6M",
        ),
        (["--memory", "1M"], "--memory: memory limit 1M is below 6M"),
        (["--pids", "0"], "--pids: pids 0 would let no process start"),
        (["--cpus", "0"], "--cpus: cpus 0 is out of range"),
        (
            ["--user", "0:99999999999"],
            "gid 99999999999 is out of range",
        ),
    ] {
        let name = unique("absurd");
        let out = run(&name, &opts, fs.path(), &["/bin/true"]);
        assert!(!out.status.success(), "{opts:?} started");
        assert!(stderr(&out).contains(said), "{opts:?}: {}", stderr(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.toml");
    for (line, said) in [
        (
            "resources = { memory = 4096 }",
            "memory limit 4k is below 6M",
        ),
        (
            "resources = { pids = 0 }",
            "pids 0 would let no process start",
        ),
        ("resources = { cpus = 0 }", "cpus 0 is out of range"),
    ] {
        std::fs::write(
            &file,
            format!(
                "name = \"absurd\"\n[containers.c]\nimage = \"dir:{}\"\ncommand = [\"/bin/true\"]\n{line}\n",
                fs.path().display()
            ),
        )
        .unwrap();
        let out = check(&file);
        assert_eq!(out.status.code(), Some(2), "{line}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("stack.toml:5:") && stderr(&out).contains(said),
            "{line}: {}",
            stderr(&out)
        );
    }
    let name = unique("identity");
    let out = run(&name, &["--userns", "0:0:65536"], fs.path(), &["/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("maps root inside to the host's root"),
        "{}",
        stderr(&out)
    );
}

/// A container granted `SYS_ADMIN` mounts each of the host's cgroup v1
/// hierarchies (named ones too) and finds its own group as their root,
/// never the host's (whose `release_agent` the kernel runs as root on the
/// host), and makes a cgroup of its own below, with a process in it: when
/// it ends, nothing of either is left. And a stack's lock file goes with
/// its supervisor.
#[test]
fn nothing_a_container_made_in_its_cgroup_or_the_stack_lock_outlives_it() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("subcg");
    // Each v1 hierarchy by its mount options (`cpu,cpuacct`, `name=systemd`).
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let hierarchies: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - ")?.1.strip_prefix("cgroup "))
        .filter_map(|rest| rest.split(' ').nth(1))
        .map(|opts| {
            opts.split(',')
                .filter(|o| {
                    !["rw", "ro", "xattr", "nosuid", "nodev", "noexec", "relatime"].contains(o)
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let list = if hierarchies.is_empty() {
        "pids memory".to_string()
    } else {
        hierarchies.join(" ")
    };
    let script = format!(
        "i=0; for c in {list}; do i=$((i+1)); d=/tmp/cg$i; mkdir -p $d && \
         busybox mount -t cgroup -o $c none $d || continue; \
         [ -e $d/release_agent ] && echo HOST-ROOT $c; mkdir $d/sub || continue; \
         [ -e $d/sub/cpuset.cpus ] && cat $d/cpuset.cpus > $d/sub/cpuset.cpus && cat $d/cpuset.mems > $d/sub/cpuset.mems; \
         (sleep 1000 & echo $! > $d/sub/cgroup.procs) && echo MADE $c; done; \
         d=/tmp/cg2; mkdir -p $d && busybox mount -t cgroup2 none $d && \
         {{ [ -e $d/cgroup.type ] || echo HOST-ROOT cgroup2; mkdir $d/sub && \
         (sleep 1000 & echo $! > $d/sub/cgroup.procs) && echo MADE cgroup2; }}; true"
    );
    let hybrid = mountinfo.contains(" - cgroup2 ") && !hierarchies.is_empty();
    let script = script.as_str();
    // `run` checks that no cgroup, mount or staging folder of it is left.
    let out = run(
        &name,
        &["--cap-add", "SYS_ADMIN"],
        fs.path(),
        &["/bin/sh", "-c", script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("MADE pids") || said.contains("MADE memory"),
        "the container could not make its cgroup: {said}{}",
        stderr(&out)
    );
    assert!(!said.contains("HOST-ROOT"), "{said}");
    for h in &hierarchies {
        assert!(said.contains(&format!("MADE {h}")), "{h}: {said}");
    }
    if hybrid {
        // The cgroup2 hierarchy beside the v1 ones: its own group there too.
        assert!(said.contains("MADE cgroup2"), "{said}");
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let left = h.path().join("sub");
        assert!(
            !left.exists(),
            "left in the host's hierarchy: {}",
            left.display()
        );
    }
    let mut s = Stack::new("lock", Path::new(rkstack()));
    s.write("[containers.c]\nimage = \"dir:ROOTFS\"\ncommand = [\"/bin/sleep\", \"1000\"]\n");
    s.spawn(&[]);
    s.wait_ready("c: started");
    let lock = s.dir.path().join(format!("state/{}.lock", s.name));
    assert!(lock.exists(), "no lock file while it runs");
    stop_bounded(&mut s);
    assert!(
        !lock.exists(),
        "the stack's lock file stayed after it stopped"
    );
}

/// Mounts over the runtime's own (`/proc`, `/sys`, `/dev`, `/`) are
/// refused by `run` and `check`, before any mount point is made in the
/// rootfs; a tmpfs at `/dev/shm` (the format's own) replaces the
/// runtime's; a rootfs whose `/proc` is a symlink is refused.
#[test]
fn mounts_over_the_runtimes_own_are_refused() {
    require_root!();
    let fs = Rootfs::new();
    let src = tempfile::tempdir().unwrap();
    let before: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for dst in [
        "/proc",
        "/proc/self/attr",
        "/proc/sys/kernel",
        "/sys",
        "/dev",
        "/dev/shm",
        "/",
    ] {
        let v = format!("{}:{dst}", src.path().display());
        let out = run(&unique("dst"), &["-v", &v], fs.path(), &["/bin/true"]);
        assert!(!out.status.success(), "-v {v} started");
        assert!(
            stderr(&out).contains(&format!("a mount cannot target {dst}")),
            "-v {v}: {}",
            stderr(&out)
        );
    }
    let after: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "mount points were made in the rootfs");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"dst\"\n[containers.c]\nimage = \"dir:{}\"\ncommand = [\"/bin/true\"]\nmounts = [\"{}:/proc/sys\"]\n",
            fs.path().display(),
            src.path().display()
        ),
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stack.toml:5:")
            && stderr(&out).contains("a mount cannot target /proc/sys"),
        "{}",
        stderr(&out)
    );
    // The format's own: a tmpfs of the user's at /dev/shm (mode 755,
    // where the runtime's is 1777), on top.
    let out = run(
        &unique("shm"),
        &["--tmpfs", "/dev/shm"],
        fs.path(),
        &[
            "/bin/sh",
            "-c",
            "grep ' /dev/shm ' /proc/self/mountinfo | tail -n 1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shm = String::from_utf8_lossy(&out.stdout);
    assert!(shm.contains("mode=755"), "not the user's tmpfs: {shm}");
    // A rootfs whose /proc is a symlink.
    let bad = Rootfs::new();
    std::fs::create_dir(bad.path().join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("fakeproc", bad.path().join("proc")).unwrap();
    let out = run(&unique("procln"), &[], bad.path(), &["/bin/true"]);
    assert!(
        !out.status.success(),
        "a rootfs with /proc a symlink started"
    );
    assert!(
        stderr(&out).contains("the rootfs's /proc is a symlink; refused"),
        "{}",
        stderr(&out)
    );
}

/// A container that can write a folder swaps the bind source of another
/// container below it for a symlink to the host's `/etc`: the other
/// container's next start is refused, saying which path became a symlink,
/// and never sees the host's files.
#[test]
fn a_bind_source_swapped_for_a_symlink_is_refused() {
    require_root!();
    let vol = tempfile::tempdir().unwrap();
    std::fs::create_dir(vol.path().join("config")).unwrap();
    std::fs::write(vol.path().join("config/app.conf"), "mine\n").unwrap();
    let mut s = Stack::new("bindln", Path::new(rkstack()));
    s.write(&format!(
        r#"
[containers.writer]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "while [ ! -e /v/go ]; do sleep 0.05; done; rm -r /v/config; ln -s /etc /v/config; touch /v/done; exec sleep 1000"]
mounts = [{{ type = "bind", source = "{v}", target = "/v" }}]
[containers.reader]
image = "dir:ROOTFS"
command = ["/bin/sh", "-c", "cat /cfg/*; exec sleep 1000"]
mounts = [{{ type = "bind", source = "{v}/config", target = "/cfg", read_only = true }}]
restart = "always"
restart_backoff = {{ initial = "200ms" }}
"#,
        v = vol.path().display()
    ));
    s.spawn(&[]);
    s.wait_ready("reader: started");
    // It has read its file before the writer takes it away.
    s.wait_for(
        |s| s.log_of("reader").contains("mine"),
        "the reader read its config",
    );
    let first = s.container("reader")["pid"].as_i64().unwrap() as i32;
    std::fs::write(vol.path().join("go"), "").unwrap();
    let done = vol.path().join("done");
    s.wait_for(|_| done.exists(), "the writer swapped the source");
    // SAFETY: the reader's process, a container of this test's stack.
    unsafe { libc::kill(first, libc::SIGKILL) };
    s.wait_for(
        |s| {
            s.events().contains(
                "is a symlink (to /etc), which it was not when the stack file was read; refused",
            )
        },
        "the reader's restart refused",
    );
    let logs = s.rk(&["logs", "reader"]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("mine"), "{text}");
    assert!(
        !text.contains("root:"),
        "the host's /etc reached the container: {text}"
    );
    stop_bounded(&mut s);
}

/// `rkstack check FILE`.
fn check(file: &Path) -> std::process::Output {
    std::process::Command::new(rkstack())
        .arg("check")
        .arg(file)
        .output()
        .unwrap()
}
