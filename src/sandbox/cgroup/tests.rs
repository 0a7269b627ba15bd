use super::*;
use std::collections::BTreeMap;

#[test]
fn a_subtree_lists_children_before_their_parents() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let top = dir.path().join("c");
    std::fs::create_dir_all(top.join("a/b")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(top.join("x")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(top.join("cgroup.procs"), "").unwrap_or_else(|e| panic!("{e}"));
    let order = subtree(&top);
    let at = |p: &Path| order.iter().position(|o| o == p).unwrap_or(usize::MAX);
    assert_eq!(order.len(), 4);
    assert!(at(&top.join("a/b")) < at(&top.join("a")));
    assert!(at(&top.join("a")) < at(&top));
    assert_eq!(order.last(), Some(&top));
}

const HYBRID: &str = "\
24 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

#[test]
fn hybrid_uses_v1_controllers() {
    let l = Layout::from_mountinfo(HYBRID).unwrap();
    let Layout::V1 { controllers } = &l else {
        panic!("{l:?}")
    };
    assert_eq!(
        controllers["memory"],
        PathBuf::from("/sys/fs/cgroup/memory")
    );
    assert_eq!(
        controllers["cpu"],
        PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
    );
    assert_eq!(controllers["cpuacct"], controllers["cpu"]);
    // The cgroup2 hierarchy is joined too.
    assert_eq!(
        controllers[UNIFIED],
        PathBuf::from("/sys/fs/cgroup/unified")
    );
    let cg = Cgroup::new(l, "rkstack/s/c");
    // cpu and cpuacct share one directory: listed once.
    assert_eq!(cg.dirs().len(), 4);
    assert!(cg.procs_files().contains(&PathBuf::from(
        "/sys/fs/cgroup/unified/rkstack/s/c/cgroup.procs"
    )));
}

#[test]
fn a_cgroup2_mount_of_a_subtree_is_not_the_unified_root() {
    // A bind mount of one group (root field not `/`) is no hierarchy root.
    let text = HYBRID.replace("0:27 / /sys/fs/cgroup/unified", "0:27 /x /mnt/x");
    let Layout::V1 { controllers } = Layout::from_mountinfo(&text).unwrap() else {
        panic!("not v1")
    };
    assert!(!controllers.contains_key(UNIFIED));
    // Pure v1: nothing more.
    let v1 = HYBRID.replace(" - cgroup2 cgroup2 rw,nsdelegate", " - tmpfs none rw");
    let Layout::V1 { controllers } = Layout::from_mountinfo(&v1).unwrap() else {
        panic!("not v1")
    };
    assert!(!controllers.contains_key(UNIFIED));
}

#[test]
fn pure_v2() {
    let text = "24 1 253:0 / / rw - ext4 /dev/vda rw\n30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        Layout::from_mountinfo(text).unwrap(),
        Layout::V2 {
            root: "/sys/fs/cgroup".into()
        }
    );
    assert!(Layout::from_mountinfo("24 1 253:0 / / rw - ext4 /dev/vda rw\n").is_err());
}

/// A scratch v2 tree where only some controllers are available.
fn scratch(controllers: &str) -> (tempfile::TempDir, Cgroup) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cgroup.controllers"), controllers).unwrap();
    std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
    let cg = Cgroup::new(
        Layout::V2 {
            root: dir.path().to_path_buf(),
        },
        "rkstack/s/c",
    );
    (dir, cg)
}

fn fake_files(cg: &Cgroup, files: &[&str]) {
    let d = &cg.dirs()[0].1;
    for f in files {
        std::fs::write(d.join(f), "").unwrap();
    }
}

#[test]
fn v2_writes_limits_and_enables_controllers() {
    let (dir, cg) = scratch("cpu memory pids");
    cg.create().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
        "+cpu +memory +pids"
    );
    fake_files(
        &cg,
        &[
            "memory.max",
            "memory.low",
            "pids.max",
            "cpu.max",
            "cpu.weight",
        ],
    );
    cg.apply(&Limits {
        memory: Some(32 << 20),
        cpus: Some(0.2),
        pids: Some(10),
        ..Limits::default()
    })
    .unwrap();
    let d = &cg.dirs()[0].1;
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read("memory.max"), "33554432");
    assert_eq!(read("cpu.max"), "20000 100000");
    assert_eq!(read("pids.max"), "10");
    assert_eq!(read("cpu.weight"), "100");
    assert_eq!(read("memory.low"), "0");
    // Taking a limit away writes the default back.
    cg.apply(&Limits::default()).unwrap();
    assert_eq!(read("memory.max"), "max");
    assert_eq!(read("cpu.max"), "max 100000");
}

#[test]
fn v2_missing_controller_is_a_clear_error_only_when_used() {
    let (_dir, cg) = scratch("memory pids");
    cg.create().unwrap();
    fake_files(&cg, &["memory.max", "pids.max"]);
    cg.apply(&Limits {
        memory: Some(1 << 20),
        ..Limits::default()
    })
    .unwrap();
    let e = cg
        .apply(&Limits {
            cpus: Some(0.5),
            ..Limits::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cgroup: the cpu controller is not available here (needed for cpus)"
    );
}

#[test]
fn v2_oom_events() {
    let (_dir, cg) = scratch("memory");
    cg.create().unwrap();
    std::fs::write(
        cg.dirs()[0].1.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .unwrap();
    assert_eq!(cg.events().oom_kills, 1);
}

#[test]
fn weight_to_shares() {
    let (_d, cg) = scratch("");
    let _ = cg;
    // 1 → 2, 100 → 2597 (about Docker's 2.5×1024), 10000 → 262144.
    let shares = |w: u32| 2 + (u64::from(w - 1) * 262_142) / 9_999;
    assert_eq!(shares(1), 2);
    assert_eq!(shares(10_000), 262_144);
}

#[test]
fn unset_limits_leave_files_that_hold_the_default_alone() {
    // Kernel files end in a newline; a write would leave none: what is
    // read back tells whether it was written.
    let (_dir, cg) = scratch("cpu memory pids");
    cg.create().unwrap();
    let d = cg.dirs()[0].1.clone();
    for (f, v) in [
        ("memory.max", "max\n"),
        ("memory.low", "0\n"),
        ("pids.max", "max\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.weight", "100\n"),
    ] {
        std::fs::write(d.join(f), v).unwrap();
    }
    cg.apply(&Limits::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.join("cpu.max")).unwrap(),
        "max 100000\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("memory.max")).unwrap(),
        "max\n"
    );

    // v1: the same, with its own defaults (unlimited memory reads as a
    // huge page-aligned number).
    let root = tempfile::tempdir().unwrap();
    let controllers: BTreeMap<String, PathBuf> = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| (c.to_string(), root.path().join(c)))
        .collect();
    let cg = Cgroup::new(Layout::V1 { controllers }, "rkstack/s/c");
    for (c, files) in [
        (
            "memory",
            &[("memory.limit_in_bytes", "9223372036854771712\n")][..],
        ),
        ("pids", &[("pids.max", "max\n")][..]),
        (
            "cpu",
            &[
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("cpu.shares", "1024\n"),
            ][..],
        ),
    ] {
        let dir = cg.dir_of(c).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in files {
            std::fs::write(dir.join(f), v).unwrap();
        }
    }
    cg.apply(&Limits::default()).unwrap();
    let read = |c: &str, f: &str| std::fs::read_to_string(cg.dir_of(c).unwrap().join(f)).unwrap();
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "-1\n");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        "9223372036854771712\n"
    );
    // A limit taken away is written back.
    std::fs::write(
        cg.dir_of("cpu").unwrap().join("cpu.cfs_quota_us"),
        "50000\n",
    )
    .unwrap();
    cg.apply(&Limits::default()).unwrap();
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "-1");
}

#[test]
fn a_containers_removal_keeps_the_one_off_parents_and_delegated_trees() {
    let v2 = || Layout::V2 {
        root: "/sys/fs/cgroup".into(),
    };
    // A stack's container: itself, the stack's folder and `rkstack/`
    // (each only when empty).
    assert_eq!(Cgroup::new(v2(), "rkstack/s/c").removable_depth(), 3);
    // A one-off container: itself; `rkstack/run/` stays.
    assert_eq!(Cgroup::new(v2(), "rkstack/run/c").removable_depth(), 1);
    // A delegated tree (a systemd service's own group): the leaf alone.
    assert_eq!(
        Cgroup::new(v2(), "system.slice/rk.service/s/c").removable_depth(),
        1
    );
}

#[test]
fn every_v1_hierarchy_is_joined_named_ones_too() {
    let text = format!(
        "{HYBRID}36 30 0:32 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n\
         37 30 0:33 / /sys/fs/cgroup/freezer rw,nosuid - cgroup cgroup rw,freezer\n\
         38 30 0:34 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid - cgroup cgroup rw,net_cls,net_prio\n"
    );
    let l = Layout::from_mountinfo(&text).unwrap();
    let dirs: Vec<PathBuf> = Cgroup::new(l, "rkstack/s/c")
        .dirs()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    for h in [
        "systemd",
        "freezer",
        "net_cls,net_prio",
        "memory",
        "cpu,cpuacct",
        "pids",
        "unified",
    ] {
        let want = Path::new("/sys/fs/cgroup").join(h).join("rkstack/s/c");
        assert!(dirs.contains(&want), "{want:?} not in {dirs:?}");
    }
    // Mount options are no hierarchies.
    assert_eq!(dirs.len(), 7, "{dirs:?}");
}

/// A scratch v1 layout with these hierarchies under a temporary root.
fn scratch_v1(names: &[&str]) -> (tempfile::TempDir, Cgroup) {
    let root = tempfile::tempdir().unwrap();
    let controllers: BTreeMap<String, PathBuf> = names
        .iter()
        .map(|c| (c.to_string(), root.path().join(c)))
        .collect();
    for d in controllers.values() {
        std::fs::create_dir_all(d).unwrap();
    }
    (root, Cgroup::new(Layout::V1 { controllers }, "rkstack/s/c"))
}

#[test]
fn a_new_group_gets_only_the_limits_that_are_set() {
    let (_root, cg) = scratch_v1(&["memory", "pids", "cpu"]);
    assert!(cg.create().unwrap(), "made now");
    assert!(!cg.create().unwrap(), "there already");
    // A new group holds the defaults: nothing is read or written for an
    // unset limit (a file that says otherwise stays as it is).
    std::fs::write(cg.dir_of("cpu").unwrap().join("cpu.shares"), "7\n").unwrap();
    cg.apply_new(&Limits {
        pids: Some(5),
        ..Limits::default()
    })
    .unwrap();
    let read = |c: &str, f: &str| std::fs::read_to_string(cg.dir_of(c).unwrap().join(f));
    assert_eq!(read("pids", "pids.max").unwrap(), "5");
    assert_eq!(read("cpu", "cpu.shares").unwrap(), "7\n");
    assert!(read("memory", "memory.limit_in_bytes").is_err());
    // On a running container, the unset one goes back to its default.
    cg.apply(&Limits::default()).unwrap();
    assert_eq!(read("cpu", "cpu.shares").unwrap(), "1024");
}

#[test]
fn a_v1_cpuset_is_filled_from_its_parents_even_one_left_empty() {
    let (root, cg) = scratch_v1(&["cpuset"]);
    let top = root.path().join("cpuset");
    std::fs::write(top.join("cpuset.cpus"), "0-1\n").unwrap();
    std::fs::write(top.join("cpuset.mems"), "0\n").unwrap();
    assert!(cg.create().unwrap(), "made now, its parents too");
    let leaf = cg.dir_of("cpuset").unwrap();
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&leaf, "cpuset.cpus"), "0-1");
    assert_eq!(read(&leaf, "cpuset.mems"), "0");
    // A supervisor killed between making `rkstack/s` and filling it.
    std::fs::remove_dir_all(&leaf).unwrap();
    let parent = top.join("rkstack/s");
    std::fs::write(parent.join("cpuset.cpus"), "").unwrap();
    std::fs::write(top.join("rkstack/cpuset.cpus"), "").unwrap();
    assert!(cg.create().unwrap());
    assert_eq!(read(&parent, "cpuset.cpus"), "0-1");
    assert_eq!(read(&leaf, "cpuset.cpus"), "0-1");
}

#[test]
fn an_empty_group_goes_at_once_with_the_parents_that_go_with_it() {
    let (root, cg) = scratch_v1(&["memory", "pids"]);
    cg.create().unwrap();
    // Another container of the stack keeps the stack's folder in pids.
    std::fs::create_dir(root.path().join("pids/rkstack/s/other")).unwrap();
    cg.destroy().unwrap();
    assert!(!root.path().join("memory/rkstack").exists());
    assert!(!root.path().join("pids/rkstack/s/c").exists());
    assert!(root.path().join("pids/rkstack/s/other").exists());
    // A group the container made inside its own goes too.
    cg.create().unwrap();
    std::fs::create_dir(cg.dir_of("memory").unwrap().join("sub")).unwrap();
    cg.destroy().unwrap();
    assert!(!root.path().join("memory/rkstack").exists());
}
