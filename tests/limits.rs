//! A container's limits against the real kernel, as root: memory, pids,
//! CPU, rlimits, and its groups on cgroup v1 and pure v2. Each test uses
//! its own name and rootfs and checks that nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use common::*;

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
