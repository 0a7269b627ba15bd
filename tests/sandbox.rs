//! `rkstack run` against the real kernel, as root: namespaces, rootfs,
//! capabilities, seccomp, cgroups, exit status and clean-up. Each test uses
//! its own name and rootfs and checks that nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::*;

/// `rkstack run --name NAME ROOTFS -- /bin/sh -c SCRIPT`, to be spawned.
fn run_sh(name: &str, fs: &Rootfs, script: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(rkstack());
    cmd.args(["run", "--name", name])
        .arg(fs.path())
        .args(["--", "/bin/sh", "-c", script]);
    cmd
}

/// `run_sh` spawned, with its output read line by line.
fn spawn_sh(
    name: &str,
    fs: &Rootfs,
    script: &str,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = run_sh(name, fs, script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Docker's 14 default capabilities as a mask.
const DOCKER_DEFAULT_CAPS: u64 = 0xa80425fb;

#[test]
fn first_process_is_pid_1_with_its_own_namespaces_and_hostname() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("ns");
    let out = run(&name, &["--hostname", "probe-host"], fs.path(), &["/probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["pid"], 1);
    assert_eq!(v["hostname"], "probe-host");
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            v["ns"][ns].as_str().unwrap(),
            host.to_str().unwrap(),
            "{ns} namespace shared with the host"
        );
    }
    // The cgroup namespace makes the container's own cgroup its root.
    assert!(
        v["cgroup"]
            .as_str()
            .unwrap()
            .lines()
            .all(|l| l.ends_with(":/")),
        "{}",
        v["cgroup"]
    );
}

#[test]
fn default_capabilities_seccomp_and_no_new_privs() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(&unique("caps"), &[], fs.path(), &["/probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let st = v["status"].as_str().unwrap();
    for set in ["CapPrm:", "CapEff:", "CapBnd:"] {
        assert_eq!(cap(st, set), DOCKER_DEFAULT_CAPS, "{set}");
    }
    assert_eq!(cap(st, "CapInh:"), 0);
    assert_eq!(cap(st, "CapAmb:"), 0);
    assert_eq!(status_field(st, "NoNewPrivs:"), "1");
    assert_eq!(status_field(st, "Seccomp:"), "2");
    for call in [
        "keyctl",
        "add_key",
        "userfaultfd",
        "bpf",
        "unshare_user",
        "mount",
    ] {
        assert_eq!(v[call], libc::EPERM, "{call}");
    }
    assert_eq!(v["clone3"], libc::ENOSYS);
    assert_ne!(v["mknod_block"], 0, "mknod of a block device succeeded");
    assert_ne!(v["open_mem"], 0, "/dev/mem could be opened");
    assert_eq!(v["dev_null"], 0, "/dev/null cannot be opened");
}

#[test]
fn dropping_all_capabilities_leaves_none() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("capsnone"),
        &["--cap-drop", "ALL"],
        fs.path(),
        &["/probe"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let st = json(&out)["status"].as_str().unwrap().to_string();
    for set in ["CapPrm:", "CapEff:", "CapBnd:", "CapInh:", "CapAmb:"] {
        assert_eq!(cap(&st, set), 0, "{set}");
    }
}

#[test]
fn masked_and_read_only_paths_protect_the_host() {
    require_root!();
    let fs = Rootfs::new();
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let out = run(&unique("mask"), &[], fs.path(), &["/probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    // Masked: reads as empty (or does not exist on this kernel).
    for p in ["keys", "kcore"] {
        let s = v[p].as_str().unwrap();
        assert!(s.is_empty() || s == "ERR 2", "{p}: {s:?}");
    }
    for w in ["core_pattern", "sysrq", "uevent_helper"] {
        assert_ne!(v[w], 0, "writing {w} succeeded");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
    let mi = v["mountinfo"].as_str().unwrap();
    let line = |target: &str| {
        mi.lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .map(str::to_string)
    };
    assert!(
        line("/proc/sys")
            .unwrap()
            .split(' ')
            .nth(5)
            .unwrap()
            .starts_with("ro"),
        "/proc/sys not read-only"
    );
    assert!(
        line("/sys")
            .unwrap()
            .split(' ')
            .nth(5)
            .unwrap()
            .starts_with("ro"),
        "/sys not read-only"
    );
    // Mount propagation is private: no shared peer groups.
    assert!(!mi.contains("shared:"), "shared mounts inside:\n{mi}");
}

#[test]
fn read_only_rootfs_refuses_writes_and_tmpfs_takes_them() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("ro"),
        &["--read-only", "--tmpfs", "/scratch"],
        fs.path(),
        &["/probe"],
    );
    assert_eq!(json(&out)["root_write"], libc::EROFS);
    let out = run(
        &unique("ro"),
        &["--read-only", "--tmpfs", "/scratch"],
        fs.path(),
        &["/bin/sh", "-c", "touch /scratch/x && echo ok"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        stderr(&out)
    );
    let out = run(&unique("rw"), &[], fs.path(), &["/probe"]);
    assert_eq!(json(&out)["root_write"], 0);
}

#[test]
fn only_stdio_reaches_the_container_and_the_binary_stays_intact() {
    require_root!();
    let fs = Rootfs::new();
    let bin = std::fs::read(rkstack()).unwrap();
    // A leaked descriptor would show up here: open one without close-on-exec.
    let f = std::fs::File::open("/etc/hostname").unwrap();
    // SAFETY: clearing close-on-exec on our own fd.
    unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_SETFD, 0) };
    let out = run(&unique("fds"), &[], fs.path(), &["/probe"]);
    let v = json(&out);
    assert_eq!(v["fds"], serde_json::json!([0, 1, 2]));
    assert_ne!(v["open_exe_write"], 0);
    // A hostile container tries to write to every /proc/*/exe it can see.
    let out = run(
        &unique("exe"),
        &[],
        fs.path(),
        &[
            "/bin/sh",
            "-c",
            "for e in /proc/[0-9]*/exe; do echo x > $e; done 2>/dev/null; true",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        std::fs::read(rkstack()).unwrap() == bin,
        "the rkstack binary changed"
    );
    drop(f);
}

#[test]
fn user_namespace_auto_maps_root_to_an_unprivileged_range() {
    require_root!();
    let fs = Rootfs::new();
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let vol = format!("{}:/shared", shared.path().display());
    // The mapped root must be able to reach the rootfs.
    std::fs::set_permissions(
        fs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = run(
        &unique("userns"),
        &["--userns", "auto", "-v", &vol],
        fs.path(),
        &["/probe", "/shared/made-by-root"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let map: Vec<u64> = v["uid_map"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0);
    assert_ne!(map[1], 0, "uid_map is the identity");
    assert_eq!(map[2], 65536);
    assert_eq!(v["uid"], 0);
    assert_eq!(v["created"], 0);
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(shared.path().join("made-by-root")).unwrap(),
    );
    assert_eq!(
        u64::from(owner),
        map[1],
        "file made by container root is not owned by the mapped host uid"
    );
    let host_user_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(
        v["ns"]["user"].as_str().unwrap(),
        host_user_ns.to_str().unwrap()
    );
}

#[test]
fn memory_limit_oom_kills_and_is_reported_as_oom() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("oom"),
        &["--memory", "32M"],
        fs.path(),
        &["/probe", "hog"],
    );
    assert_eq!(out.status.code(), Some(137));
    assert!(stderr(&out).contains("out-of-memory"), "{}", stderr(&out));
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("pids"),
        &["--pids", "16"],
        fs.path(),
        &["/probe", "forkbomb"],
    );
    let v = json(&out);
    assert!(v["forks"].as_u64().unwrap() < 16, "{v}");
    assert_eq!(v["errno"], libc::EAGAIN);
}

#[test]
fn cpu_quota_holds_a_busy_loop_near_its_share() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("cpu"),
        &["--cpus", "0.2"],
        fs.path(),
        &["/probe", "spin", "1500"],
    );
    let cpu_ms = json(&out)["cpu_ms"].as_f64().unwrap();
    // 20% of 1.5 s is 300 ms; generous bounds for a busy machine.
    assert!(
        (100.0..=500.0).contains(&cpu_ms),
        "busy loop got {cpu_ms} ms of CPU in 1500 ms at cpus = 0.2"
    );
}

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
fn host_image_is_read_only_and_takes_mounts() {
    require_root!();
    let name = unique("host");
    let out = run(
        &name,
        &["--tmpfs", "/rkstack-test-www"],
        std::path::Path::new("host"),
        &[
            "/bin/sh",
            "-c",
            "touch /etc/rkstack-x 2>/dev/null && echo wrote; touch /rkstack-test-www/y && echo tmpfs-ok",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tmpfs-ok",
        "{}",
        stderr(&out)
    );
    assert!(
        !std::path::Path::new("/rkstack-test-www").exists(),
        "a mount point was made on the host"
    );
    assert!(!std::path::Path::new("/etc/rkstack-x").exists());
}

#[test]
fn sealed_reexec_path_isolates_the_same_way() {
    require_root!();
    // Multi-threaded callers (the supervisor) start containers through a
    // sealed in-memory copy of rkstack; force that path here.
    let fs = Rootfs::new();
    let bin = std::fs::read(rkstack()).unwrap();
    let env = [("RKSTACK_SPAWN", "reexec")];
    let out = run_env(
        &unique("reexec"),
        &env,
        &["--hostname", "sealed"],
        fs.path(),
        &["/probe"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["pid"], 1);
    assert_eq!(v["hostname"], "sealed");
    assert_eq!(v["fds"], serde_json::json!([0, 1, 2]));
    let st = v["status"].as_str().unwrap();
    assert_eq!(cap(st, "CapEff:"), DOCKER_DEFAULT_CAPS);
    assert_eq!(status_field(st, "Seccomp:"), "2");
    assert_eq!(v["clone3"], libc::ENOSYS);
    let out = run_env(
        &unique("reexec-exe"),
        &env,
        &[],
        fs.path(),
        &[
            "/bin/sh",
            "-c",
            "for e in /proc/[0-9]*/exe; do echo x > $e; done 2>/dev/null; true",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        std::fs::read(rkstack()).unwrap() == bin,
        "the rkstack binary changed"
    );
    let out = run_env(
        &unique("reexec-bad"),
        &env,
        &["-v", "/nonexistent-src:/data"],
        fs.path(),
        &["/bin/true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("mount /data: no such file or directory (source /nonexistent-src)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rlimits_can_be_lowered_and_raising_past_the_hard_limit_says_why() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("rlim"),
        &["--ulimit", "nofile=100:200"],
        fs.path(),
        &["/bin/sh", "-c", "ulimit -n; ulimit -Hn"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "100\n200\n",
        "{}",
        stderr(&out)
    );
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: hard is valid for writes.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) };
    if hard.rlim_max == libc::RLIM_INFINITY {
        common::skipped(
            "nofile-hard",
            "raising: this process has no hard nofile limit to exceed",
        );
        return;
    }
    let has_sys_resource = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    let over = format!("nofile=100:{}", hard.rlim_max + 1000);
    let out = run(
        &unique("rlim"),
        &["--ulimit", &over],
        fs.path(),
        &["/bin/true"],
    );
    if has_sys_resource {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("needs CAP_SYS_RESOURCE"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn device_nodes_cannot_be_made_or_used_even_with_every_capability() {
    require_root!();
    let fs = Rootfs::new();
    // The root and /dev are nodev: only the runtime's bound nodes open.
    let out = run(&unique("nodev"), &[], fs.path(), &["/probe"]);
    let v = json(&out);
    let mi = v["mountinfo"].as_str().unwrap();
    for target in ["/", "/dev"] {
        let line = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .unwrap();
        assert!(
            line.split(' ')
                .nth(5)
                .unwrap()
                .split(',')
                .any(|o| o == "nodev"),
            "{target} is not nodev: {line}"
        );
    }
    let script = "busybox mknod /tmp/blk b 8 0 2>/dev/null && echo made; busybox mknod /dev/chr c 1 1 2>/dev/null && echo made; busybox mkfifo /tmp/fifo && echo fifo; cat /dev/null && echo null";
    let out = run(
        &unique("mknod"),
        &["--cap-add", "ALL"],
        fs.path(),
        &["/bin/sh", "-c", script],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fifo\nnull\n",
        "{}",
        stderr(&out)
    );
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

#[test]
fn symlinks_in_the_image_never_lead_mounts_onto_the_host() {
    require_root!();
    let fs = Rootfs::new();
    let outside = std::env::temp_dir().join(unique("escape"));
    // /evil points at a host path; /evil/mnt would be made on the host if followed.
    std::os::unix::fs::symlink(&outside, fs.path().join("evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", fs.path().join("up")).unwrap();
    let out = run(
        &unique("symlink"),
        &["--tmpfs", "/evil/mnt", "--tmpfs", "/up/tmp/rkt-up-escape"],
        fs.path(),
        &[
            "/bin/sh",
            "-c",
            "touch /evil/mnt/x /up/tmp/rkt-up-escape/y && echo ok",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        stderr(&out)
    );
    assert!(
        !outside.exists(),
        "a mount point was made on the host at {}",
        outside.display()
    );
    assert!(
        !std::path::Path::new("/tmp/rkt-up-escape").exists(),
        "a mount point escaped through .."
    );
    // Both were made inside the rootfs instead.
    assert!(
        fs.path()
            .join(outside.strip_prefix("/").unwrap())
            .join("mnt")
            .is_dir()
    );
}

#[test]
fn user_by_name_gets_its_groups_and_the_workdir_is_inside() {
    require_root!();
    let fs = Rootfs::new();
    let out = run(
        &unique("user"),
        &["--user", "app", "-w", "/tmp"],
        fs.path(),
        &["/bin/sh", "-c", "id -u; id -g; id -G; pwd"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n1000\n1000 2000\n/tmp\n",
        "{}",
        stderr(&out)
    );
    let out = run(
        &unique("user"),
        &["--user", "nobody-here"],
        fs.path(),
        &["/bin/true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no user \"nobody-here\" in the container's /etc/passwd"),
        "{}",
        stderr(&out)
    );
}

/// On a pure cgroup v2 host the container's first process is born in its
/// group (`CLONE_INTO_CGROUP`) and the group goes with it. This host is v1:
/// the test hides that in a private mount namespace and mounts the cgroup2
/// hierarchy (where no controller is available) at /sys/fs/cgroup.
#[test]
fn on_pure_cgroup_v2_the_container_runs_in_its_own_group() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("v2born");
    let script = format!(
        r#"mount --make-rprivate / && umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || exit 99
g=/sys/fs/cgroup/rkstack/run/{name}
{rk} run --name {name} {fs} -- /bin/sh -c 'echo up > /tmp/ready; sleep 1' &
run=$!
i=0; while [ ! -e {fs}/tmp/ready ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done
for p in $(cat $g/cgroup.procs); do echo "member $p parent $(cut -d' ' -f4 /proc/$p/stat)"; done
echo "runner $run"
wait $run; echo "exit $?"
[ -e $g ] && echo "left $g"
rmdir $g /sys/fs/cgroup/rkstack/run /sys/fs/cgroup/rkstack 2>/dev/null
true"#,
        rk = rkstack(),
        fs = fs.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() != Some(99),
        "no cgroup2 here: {}",
        stderr(&out)
    );
    let runner = text
        .lines()
        .find_map(|l| l.strip_prefix("runner "))
        .unwrap_or_default();
    let members: Vec<&str> = text.lines().filter(|l| l.starts_with("member ")).collect();
    assert_eq!(members.len(), 1, "{text}{}", stderr(&out));
    assert!(
        members[0].ends_with(&format!(" parent {runner}")),
        "the group holds the container, a child of rkstack run: {text}"
    );
    assert!(text.contains("exit 0"), "{text}{}", stderr(&out));
    assert!(!text.contains("left "), "{text}");
}

#[test]
fn the_first_process_is_in_every_group_of_its_container_before_it_runs() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("groups");
    // The container's own view, taken first thing, and a wait for the test.
    let mut child = run_sh(
        &name,
        &fs,
        "cat /proc/self/cgroup > /tmp/seen; while [ ! -e /tmp/go ]; do sleep 0.05; done",
    )
    .spawn()
    .unwrap();
    let seen = fs.path().join("tmp/seen");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&seen).map_or(true, |m| m.len() == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let groups: Vec<(String, String)> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join("rkstack/run").join(&name))
        .chain(std::iter::once(
            std::path::Path::new("/sys/fs/cgroup/rkstack/run").join(&name),
        ))
        .filter(|d| d.is_dir())
        .map(|d| {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            (d.display().to_string(), procs.trim().to_string())
        })
        .collect();
    std::fs::write(fs.path().join("tmp/go"), "").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_clean(&name);
    if std::path::Path::new("/sys/fs/cgroup/memory/tasks").exists() {
        for c in ["memory", "pids", "devices"] {
            assert!(
                groups
                    .iter()
                    .any(|(d, _)| d.starts_with(&format!("/sys/fs/cgroup/{c}/"))),
                "no {c} group: {groups:?}"
            );
        }
    }
    // The same processes (the shell, maybe its `sleep`) in every group.
    let first = &groups.first().expect("no group of the container").1;
    assert!(
        first
            .lines()
            .next()
            .is_some_and(|p| p.parse::<i32>().is_ok()),
        "{groups:?}"
    );
    assert!(groups.iter().all(|(_, p)| p == first), "{groups:?}");
    // Inside, each group is the root of its cgroup namespace.
    let inside = std::fs::read_to_string(&seen).unwrap();
    assert!(inside.lines().all(|l| l.ends_with(":/")), "{inside}");
}

#[test]
fn the_default_device_nodes_are_the_hosts_and_work() {
    require_root!();
    let fs = Rootfs::new();
    let name = unique("devs");
    let script = "for d in null zero full random urandom tty; do stat -c \"$d %F %t:%T\" /dev/$d; done; \
         head -c 5 /dev/zero | wc -c; head -c 5 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; \
         echo x > /dev/full 2>/dev/null || echo full-refused; \
         grep -c ' /dev/null .*nosuid' /proc/self/mountinfo";
    let out = run(&name, &[], fs.path(), &["/bin/sh", "-c", script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let rdev = std::fs::metadata(format!("/dev/{d}")).unwrap().rdev();
        let want = format!(
            "{d} character special file {:x}:{:x}",
            libc::major(rdev),
            libc::minor(rdev)
        );
        assert!(text.lines().any(|l| l == want), "{want} not in:\n{text}");
    }
    let rest: Vec<&str> = text.lines().skip(6).collect();
    assert_eq!(rest, ["5", "5", "null-ok", "full-refused", "1"], "{text}");
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
