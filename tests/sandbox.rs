//! `rkstack run` against the real kernel, as root: the container's
//! isolation — namespaces, rootfs, capabilities, seccomp, masked paths,
//! devices, users. Each test uses its own name and rootfs and checks that
//! nothing is left behind. Limits are in limits.rs; the life of a `run`
//! (exit status, signals, errors, clean-up) in run.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::*;

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
