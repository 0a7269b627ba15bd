//! The life of `rkstack run` against the real kernel, as root: exit
//! status and signals, errors, clean-up when rkstack is killed, one-off
//! containers side by side. Each test uses its own name and rootfs and
//! checks that nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::*;

#[test]
fn exit_codes_and_signals_propagate() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("exit"),
        &[],
        fs.path(),
        &["/bin/sh", "-c", "exit 7"],
    );
    assert_eq!(out.status.code(), Some(7));
    // A grandchild killed by a signal: its shell reports 128+9.
    let out = run(
        &unique("sig"),
        &[],
        fs.path(),
        &["/bin/sh", "-c", "sleep 30 & kill -9 $!; wait $!"],
    );
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn sigterm_to_rkstack_reaches_the_container() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("term");
    let (mut child, mut lines) = spawn_sh(
        &name,
        &fs,
        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done",
    );
    let pid = child.id() as i32;
    let line = lines.next().map(|l| l.unwrap_or_default());
    assert_eq!(line.as_deref(), Some("ready"));
    // SAFETY: signalling the rkstack process this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    assert_clean(&name);
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    require_root!();
    let fs = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let bad_profile = dir.path().join("bad.json");
    std::fs::write(&bad_profile, "{\"defaultAction\": \"SCMP_ACT_EXPLODE\"}").unwrap();
    let missing_profile = dir.path().join("missing.json");
    let cases: Vec<(Vec<String>, String, Vec<&str>, &str)> = vec![
        (
            vec![],
            "/nonexistent-rootfs".into(),
            vec!["/bin/true"],
            "rootfs: no such file or directory (/nonexistent-rootfs)",
        ),
        (
            vec![],
            fs.path().display().to_string(),
            vec!["/bin/nothere"],
            "exec: no such file or directory (/bin/nothere)",
        ),
        (
            vec!["-v".into(), "/nonexistent-src:/data".into()],
            fs.path().display().to_string(),
            vec!["/bin/true"],
            "mount /data: no such file or directory (source /nonexistent-src)",
        ),
        (
            vec!["--seccomp".into(), missing_profile.display().to_string()],
            fs.path().display().to_string(),
            vec!["/bin/true"],
            "cannot read it",
        ),
        (
            vec!["--seccomp".into(), bad_profile.display().to_string()],
            fs.path().display().to_string(),
            vec!["/bin/true"],
            "unknown defaultAction",
        ),
    ];
    for (opts, rootfs, cmd, want) in cases {
        let name = unique("bad");
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        let out = run(&name, &opts, std::path::Path::new(&rootfs), &cmd);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn killing_rkstack_run_takes_the_container_with_it() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("orphan");
    let marker = fs.path().join("tmp/pid");
    let mut child = run_sh(&name, &fs, "sleep 60 & echo $! > /tmp/pid; wait")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The container's pid 1 on the host: the child of rkstack in the container's cgroup.
    // Any hierarchy will do (v1: one per controller; v2: the one).
    let procs: String = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| {
            h.path()
                .join("rkstack/run")
                .join(&name)
                .join("cgroup.procs")
        })
        .chain(std::iter::once(std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/rkstack/run/{name}/cgroup.procs"
        ))))
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .filter(|t| !t.trim().is_empty())
        })
        .unwrap_or_default();
    let pids: Vec<i32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(!pids.is_empty(), "container processes not found");
    child.kill().unwrap();
    child.wait().unwrap();
    // Everything in the container goes (its init first, then the kernel kills the rest of its pid namespace).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let alive = |p: i32| {
        std::path::Path::new(&format!("/proc/{p}")).exists()
            && !std::fs::read_to_string(format!("/proc/{p}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !pids.iter().any(|p| alive(*p)),
        "container outlived rkstack run"
    );
    // rkstack was killed, so its clean-up is ours (`rkstack/run/` stays
    // by design); its name is free with it (a record lock).
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join("rkstack/run").join(&name));
    }
    if let Ok(entries) = std::fs::read_dir("/run/rkstack/rootfs") {
        for e in entries.flatten().filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        }) {
            let _ = std::fs::remove_dir(e.path());
        }
    }
    assert_clean(&name);
}

/// One-off containers mount their roots on one mount point, each in its
/// own mount namespace: two at once each see their own, and the host's
/// mount point stays empty.
#[test]
fn one_off_containers_at_once_each_see_their_own_root() {
    require_root!();
    let (a, b) = (Rootfs::new(), Rootfs::new());
    std::fs::write(a.path().join("etc/which"), "A\n").unwrap();
    std::fs::write(b.path().join("etc/which"), "B\n").unwrap();
    let (na, nb) = (unique("roota"), unique("rootb"));
    // `a` holds its root until the test writes /etc/go into it.
    let (mut first, mut lines) = spawn_sh(
        &na,
        &a,
        "cat /etc/which; while [ ! -e /etc/go ]; do sleep 0.05; done; cat /etc/which",
    );
    let started = lines.next().map(|l| l.unwrap_or_default());
    let second = run_sh(&nb, &b, "cat /etc/which").output().unwrap();
    std::fs::write(a.path().join("etc/go"), "").unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = first.wait().unwrap();
    assert!(status.success());
    assert_eq!(started.as_deref(), Some("A"));
    assert_eq!(rest, ["A"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(String::from_utf8_lossy(&second.stdout), "B\n");
    let shared = std::path::Path::new("/run/rkstack/rootfs/.root");
    if shared.exists() {
        assert_eq!(std::fs::read_dir(shared).unwrap().count(), 0);
    }
    assert_clean(&na);
    assert_clean(&nb);
}
