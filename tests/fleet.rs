//! Updating stacks across devices, as root and for real: `apply` staging a
//! version's images and a rollback running the very image its generation
//! ran; signed bundles and deltas reaching a device with no registry; and
//! a simulated fleet — devices each in mount and network namespaces of
//! their own, each with its stack and its Mender client — rolled out to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;

use common::oci::*;
use common::*;

/// `apply` pulls a new version's images before anything changes (a pull
/// that fails changes nothing), and a rollback runs the very image its
/// generation ran, by digest, though the tag names another one since.
#[test]
fn apply_stages_its_images_and_a_rollback_runs_the_same_bytes() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let push = |content: &[u8]| reg.push(&work.path().join("layout"), content);
    push(b"first\n");
    let stack = unique("pinned");
    let fs = Rootfs::readable();
    let version = |a_cmd: &str, image: &str| {
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"docker://{h}/{image}\"\ncommand = [\"/bin/sh\", \"-c\", \"{a_cmd}\"]\nstop_signal = \"SIGKILL\"\n[containers.other]\nimage = \"dir:{l}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            h = reg.host(),
            l = fs.path().display()
        )
    };
    std::fs::write(
        work.path().join("stack.toml"),
        version("cat /etc/new-file; sleep 1000", "demo:v1"),
    )
    .unwrap();
    let rk = || {
        let mut c = rk_cmd(work.path());
        c.args(["--insecure-registry", &reg.host()]);
        c
    };
    let (up, log, events) =
        up_until_first(work.path(), &stack, &["--insecure-registry", &reg.host()]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let pid_of = |name: &str| -> serde_json::Value {
        let out = rk().args(["ps", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .find(|c| c["name"] == name)
                    .map(|c| c["pid"].clone())
            })
            .unwrap_or_default()
    };
    let (a1, other) = (pid_of("a"), pid_of("other"));
    let candidate = work.path().join("next.toml");
    // An image that is not there: refused before anything stops.
    std::fs::write(&candidate, version("sleep 1000", "nothing:v9")).unwrap();
    let out = rk()
        .args(["apply", "--timeout", "20s", "--stable", "0s"])
        .arg(&candidate)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pull of docker://") && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pid_of("a"), a1, "a was not touched");
    // The tag now names another image; a version that runs it and fails
    // is rolled back to generation 1, which runs the first image again.
    push(b"second\n");
    let out = rk()
        .args(["pull", &format!("docker://{}/demo:v1", reg.host())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&candidate, version("cat /etc/new-file; exit 3", "demo:v1")).unwrap();
    let out = rk()
        .args(["apply", "--timeout", "20s", "--stable", "2s"])
        .arg(&candidate)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rolled back to 1"),
        "{}",
        stderr(&out)
    );
    wait_until(
        || read(&log).contains("second"),
        "the failed version ran the new image",
        || read(&events),
    );
    wait_until(
        || {
            read(&log)
                .lines()
                .last()
                .is_some_and(|l| l.ends_with(" first"))
        },
        "the rolled-back a runs the first image again",
        || format!("{}\n{}", read(&log), read(&events)),
    );
    assert_eq!(pid_of("other"), other, "other never changed");
    let h = rk().args(["history", "--json"]).output().unwrap();
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&h.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["pinned"], true);
    assert!(
        last["images"]["a"]
            .as_str()
            .unwrap_or("")
            .starts_with("sha256:")
    );
    drop(up);
}

/// Bundles carry a stack and its images to a device with no registry:
/// signed ones from a trusted key are applied; unsigned, foreign-signed
/// and altered ones are refused with nothing changed; a delta carries only
/// what the device lacks and is refused where its base is missing.
#[test]
fn signed_bundles_and_deltas_reach_a_device_offline() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let build = |args: &[&str]| {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(w.join("build"))
            .args(["--insecure-registry", &reg.host()])
            .args(args);
        c.output().unwrap()
    };
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(build(&[
        "keygen",
        "-o",
        &w.join("vendor").display().to_string(),
    ]));
    ok(build(&[
        "keygen",
        "-o",
        &w.join("stranger").display().to_string(),
    ]));
    let trusted = w.join("trusted.d");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::copy(w.join("vendor.pub"), trusted.join("vendor.pub")).unwrap();
    let stack = unique("bundle");
    let fs = Rootfs::readable();
    let host = reg.host();
    let text = |with_a: bool| {
        let mut t = format!(
            "name = \"{stack}\"\n[containers.other]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            fs.path().display()
        );
        if with_a {
            t.push_str(&format!(
                "[containers.a]\nimage = \"docker://{host}/demo:v1\"\ncommand = [\"/bin/sh\", \"-c\", \"cat /etc/new-file; sleep 1000\"]\nstop_signal = \"SIGKILL\"\n"
            ));
        }
        t
    };
    let file = |name: &str, body: String| {
        let p = w.join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let (v1, v2) = (
        file("v1.toml", text(true)),
        file("v2.toml", text(true) + "# v2\n"),
    );
    let pull = || {
        ok(build(&[
            "pull",
            &format!("docker://{}/demo:v1", reg.host()),
        ]))
    };
    let key = w.join("vendor.key").display().to_string();
    reg.push(&w.join("layout"), b"first\n");
    pull();
    let b1 = w.join("v1.rkb").display().to_string();
    ok(build(&["bundle", "--sign", &key, "-o", &b1, &v1]));
    let unsigned = w.join("unsigned.rkb").display().to_string();
    ok(build(&["bundle", "-o", &unsigned, &v1]));
    let foreign = w.join("foreign.rkb").display().to_string();
    let stranger = w.join("stranger.key").display().to_string();
    ok(build(&["bundle", "--sign", &stranger, "-o", &foreign, &v1]));
    reg.push(&w.join("layout"), b"second\n");
    pull();
    let b2 = w.join("v2.rkb").display().to_string();
    let d2 = w.join("v2-delta.rkb").display().to_string();
    ok(build(&["bundle", "--sign", &key, "-o", &b2, &v2]));
    let said = ok(build(&[
        "bundle", "--sign", &key, "--since", &b1, "-o", &d2, &v2,
    ]));
    assert!(said.contains("(a delta)"), "{said}");
    let (full, delta) = (
        std::fs::metadata(&b2).unwrap().len(),
        std::fs::metadata(&d2).unwrap().len(),
    );
    eprintln!("bundle v2: {full} bytes; its delta from v1: {delta} bytes");
    assert!(delta * 4 < full, "{delta} of {full}");
    // The registry goes: the device has only the bundles.
    drop(reg);

    let device = w.join("device");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("stack.toml"), text(false)).unwrap();
    let events = device.join("events.log");
    let _up = Stopped(
        rk_cmd(&device)
            .arg("up")
            .arg("--trusted-keys")
            .arg(&trusted)
            .arg(device.join("stack.toml"))
            .stderr(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_until(
        || read(&events).contains("other: started"),
        "the device runs",
        || read(&events),
    );
    let apply = |bundle: &str| {
        rk_cmd(&device)
            .args([
                "apply",
                "--timeout",
                "20s",
                "--stable",
                "0s",
                "--trusted-keys",
            ])
            .arg(&trusted)
            .arg(bundle)
            .output()
            .unwrap()
    };
    for (bad, why) in [
        (&unsigned, "the bundle is not signed"),
        (&foreign, "no trusted key"),
    ] {
        let out = apply(bad);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was changed"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!read(&device.join("stack.toml")).contains("demo"));
    // A delta whose base the device lacks.
    let out = apply(&d2);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("left out are not on this device"),
        "{}",
        stderr(&out)
    );
    let blobs = device.join("data/images/blobs/sha256");
    assert_eq!(
        std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0),
        0,
        "the refused delta wrote nothing"
    );
    // An altered bundle: a byte in the middle of its base layer (busybox,
    // most of the file), which the device does not have.
    let altered = w.join("altered.rkb");
    let mut bytes = std::fs::read(&b2).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&altered, &bytes).unwrap();
    let out = apply(&altered.display().to_string());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("damaged or was altered"),
        "{}",
        stderr(&out)
    );
    // The real ones: v1 uploaded through the API (as a remote manager
    // would: streamed, checked against the supervisor's keys), then v2 as
    // a delta with the CLI.
    let upload = |bundle: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--unix-socket"])
            .arg(device.join(format!("state/{stack}.sock")))
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/vnd.rkstack.bundle",
                "--data-binary",
                &format!("@{bundle}"),
                "-w",
                "\n%{http_code}",
                "http://rkstack/v1/apply?stable=0s",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = upload(&foreign);
    assert!(
        said.ends_with("403") && said.contains("no trusted key"),
        "{said}"
    );
    let said = upload(&b1);
    assert!(
        said.ends_with("200") && said.contains("committed"),
        "{said}"
    );
    let log = device.join(format!("data/{stack}/logs/a.log"));
    wait_until(
        || read(&log).contains("first"),
        "a runs v1's image",
        || read(&events),
    );
    let out = apply(&d2);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        || read(&log).contains("second"),
        "a runs v2's image",
        || read(&events),
    );
    assert!(read(&device.join("stack.toml")).contains("# v2"));
}

/// The cgroup hierarchies mounted under /sys/fs/cgroup (v1 and v2).
fn hierarchies() -> Vec<std::path::PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split_whitespace().nth(4)?;
            (matches!(fstype, "cgroup" | "cgroup2") && point.starts_with("/sys/fs/cgroup/"))
                .then(|| std::path::PathBuf::from(point))
        })
        .collect()
}

/// A cgroup of each hierarchy that a device takes as its root (bound over
/// the hierarchy in its mount namespace): devices on one machine keep
/// apart the cgroups their stacks, all of one name, make. Removed on drop.
struct CgroupRoot {
    dirs: Vec<std::path::PathBuf>,
}

impl CgroupRoot {
    fn new(name: &str) -> CgroupRoot {
        let dirs: Vec<_> = hierarchies().iter().map(|h| h.join(name)).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
            // A new cpuset has no cpus or memory nodes until given them.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let (Some(parent), true) = (d.parent(), d.join(f).exists()) {
                    let v = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                    let _ = std::fs::write(d.join(f), v.trim());
                }
            }
        }
        CgroupRoot { dirs }
    }

    /// Shell commands that bind each cgroup over its hierarchy.
    fn binds(&self) -> String {
        self.dirs
            .iter()
            .filter_map(|d| {
                Some(format!(
                    "mount --bind {} {} && ",
                    d.display(),
                    d.parent()?.display()
                ))
            })
            .collect()
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        for d in &self.dirs {
            // What a stack left (none, when its supervisor stopped well),
            // deepest first, then the root itself.
            let mut all = vec![d.clone()];
            let mut i = 0;
            while i < all.len() {
                for e in std::fs::read_dir(&all[i]).into_iter().flatten().flatten() {
                    if e.path().is_dir() {
                        all.push(e.path());
                    }
                }
                i += 1;
            }
            for x in all.iter().rev() {
                let _ = std::fs::remove_dir(x);
            }
        }
    }
}

/// One simulated device: its folders, its supervisor (in mount and network
/// namespaces of its own) and its Mender client.
struct Device {
    dir: tempfile::TempDir,
    _up: Stopped,
    mender: common::mender::Mender,
}

impl Device {
    fn rk(&self, args: &[&str]) -> std::process::Output {
        rk_cmd(self.dir.path()).args(args).output().unwrap()
    }

    fn pid(&self, name: &str) -> Option<i64> {
        let out = self.rk(&["ps", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()?
            .iter()
            .find(|c| c["name"] == name && c["state"] == "running")?["pid"]
            .as_i64()
    }

    fn log(&self, stack: &str, name: &str) -> String {
        std::fs::read_to_string(
            self.dir
                .path()
                .join(format!("data/{stack}/logs/{name}.log")),
        )
        .unwrap_or_default()
    }
}

/// What one rollout took on each device.
struct Rollout {
    seconds: Vec<f64>,
    ok: usize,
}

/// `mender install ART` (and `commit` when it succeeds) on every device,
/// `PARALLEL` at a time.
fn roll_out(devices: &[Device], art: &Path) -> Rollout {
    const PARALLEL: usize = 5;
    let mut seconds = Vec::new();
    let mut ok = 0;
    for chunk in devices.chunks(PARALLEL) {
        let results: Vec<(f64, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|d| {
                    s.spawn(move || {
                        let t = std::time::Instant::now();
                        let out = d.mender.run(&["install", &art.display().to_string()]);
                        let good =
                            out.status.success() && d.mender.run(&["commit"]).status.success();
                        if std::env::var_os("FLEET_DEBUG").is_some() && !good {
                            eprintln!("{}", stderr(&out));
                        }
                        (t.elapsed().as_secs_f64(), good)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, good) in results {
            seconds.push(t);
            ok += usize::from(good);
        }
    }
    Rollout { seconds, ok }
}

fn report(what: &str, r: &Rollout, bytes: u64) {
    let n = r.seconds.len().max(1) as f64;
    let mean = r.seconds.iter().sum::<f64>() / n;
    let max = r.seconds.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "fleet: {what}: {} of {} devices committed; {mean:.2} s per device (max {max:.2} s); {bytes} bytes moved per device",
        r.ok,
        r.seconds.len()
    );
}

/// A fleet of devices (`FLEET_DEVICES`, default 20) rolled out to through
/// Mender with signed bundles: v2 is committed everywhere; v3 never becomes
/// healthy and every device rolls back to v2 by itself, its unchanged
/// container untouched; v4 goes out as a delta. `history` tells the story.
#[test]
fn a_simulated_fleet_rolls_out_rolls_back_and_takes_deltas() {
    require_root!();
    let n: usize = std::env::var("FLEET_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let build = |args: &[&str]| {
        let out = Command::new(rkstack())
            .arg("--data-dir")
            .arg(w.join("build"))
            .args(["--insecure-registry", &reg.host()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    let key = w.join("vendor");
    build(&["keygen", "-o", &key.display().to_string()]);
    let trusted = w.join("trusted.d");
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::copy(w.join("vendor.pub"), trusted.join("vendor.pub")).unwrap();
    let stack = unique("fleet");
    let fs = Rootfs::readable();
    let host = reg.host();
    let version = |web: Option<&str>| {
        let mut t = format!(
            "name = \"{stack}\"\n[update]\nstable = \"1s\"\ntimeout = \"15s\"\n\
             [containers.db]\nimage = \"dir:{}\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            fs.path().display()
        );
        if let Some(cmd) = web {
            t.push_str(&format!(
                "[containers.web]\nimage = \"docker://{host}/demo:v1\"\ncommand = [\"/bin/sh\", \"-c\", \"{cmd}\"]\nstop_signal = \"SIGKILL\"\n"
            ));
        }
        t
    };
    let write = |name: &str, text: String| {
        let p = w.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let sign = |stack_file: &Path, out: &str, since: Option<&str>| {
        let mut args = vec![
            "bundle".to_string(),
            "--sign".into(),
            key.with_extension("key").display().to_string(),
            "-o".into(),
            w.join(out).display().to_string(),
        ];
        if let Some(s) = since {
            args.extend(["--since".into(), w.join(s).display().to_string()]);
        }
        args.push(stack_file.display().to_string());
        build(&args.iter().map(String::as_str).collect::<Vec<_>>());
        w.join(out)
    };
    let pull = || build(&["pull", &format!("docker://{host}/demo:v1")]);
    reg.push(&w.join("layout"), b"first\n");
    pull();
    let v2 = sign(
        &write("v2.toml", version(Some("cat /etc/new-file; sleep 1000"))),
        "v2.rkb",
        None,
    );
    // v3's web runs, but its health check never passes.
    let v3_text = version(Some("sleep 1000"))
        + "health = { command = [\"/bin/false\"], interval = \"200ms\", retries = 1 }\n";
    let v3 = sign(&write("v3.toml", v3_text), "v3.rkb", Some("v2.rkb"));
    reg.push(&w.join("layout"), b"second\n");
    pull();
    let v4_file = write(
        "v4.toml",
        version(Some("cat /etc/new-file; sleep 1000")) + "# v4\n",
    );
    let v4_full = sign(&v4_file, "v4-full.rkb", None);
    let v4 = sign(&v4_file, "v4.rkb", Some("v2.rkb"));
    drop(reg);
    let m0 = common::mender::Mender::new(&w.join("x"), &w.join("x"));
    let art = |name: &str, payload: &Path| m0.artifact(name, payload);
    let (a2, a3, a4, a4_full) = (
        art("app-v2", &v2),
        art("app-v3", &v3),
        art("app-v4", &v4),
        art("app-v4-full", &v4_full),
    );
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();

    // The devices: v1 is db alone.
    let roots: Vec<CgroupRoot> = (0..n)
        .map(|i| CgroupRoot::new(&format!("{stack}-d{i}")))
        .collect();
    let devices: Vec<Device> = roots
        .iter()
        .map(|root| {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::write(d.join("stack.toml"), version(None)).unwrap();
            let events = std::fs::File::create(d.join("events.log")).unwrap();
            let script = format!(
                "{}exec {} --state-dir {} --data-dir {} up {}",
                root.binds(),
                rkstack(),
                d.join("state").display(),
                d.join("data").display(),
                d.join("stack.toml").display()
            );
            let mut c = Command::new("unshare");
            c.args(["-m", "-n", "--propagation", "private", "sh", "-c", &script])
                .stderr(events);
            let up = Stopped(c.spawn().unwrap());
            let mut mender = common::mender::Mender::new(&d.join("state"), &d.join("data"));
            mender
                .env
                .push(("RKSTACK_TRUSTED_KEYS".into(), trusted.display().to_string()));
            Device {
                dir,
                _up: up,
                mender,
            }
        })
        .collect();
    for d in &devices {
        wait_until(
            || d.pid("db").is_some(),
            "the device runs db",
            || std::fs::read_to_string(d.dir.path().join("events.log")).unwrap_or_default(),
        );
    }
    let dbs: Vec<Option<i64>> = devices.iter().map(|d| d.pid("db")).collect();

    let r2 = roll_out(&devices, &a2);
    report("v2 (full bundle)", &r2, size(&a2));
    assert_eq!(r2.ok, n);
    let r3 = roll_out(&devices, &a3);
    report("v3 (never healthy: rolled back)", &r3, size(&a3));
    assert_eq!(r3.ok, 0);
    for d in &devices {
        assert_eq!(d.mender.artifact_name(), "app-v2");
        wait_until(
            || d.pid("web").is_some(),
            "v2's web runs again",
            String::new,
        );
    }
    let r4 = roll_out(&devices, &a4);
    report("v4 (delta from v2)", &r4, size(&a4));
    eprintln!(
        "fleet: the v4 artifact as a full bundle would have been {} bytes per device",
        size(&a4_full)
    );
    assert_eq!(r4.ok, n);
    assert!(size(&a4) * 4 < size(&a4_full));
    for (d, db) in devices.iter().zip(&dbs) {
        assert_eq!(d.mender.artifact_name(), "app-v4");
        assert_eq!(
            &d.pid("db"),
            db,
            "db never changed, so it was never restarted"
        );
        wait_until(
            || d.log(&stack, "web").contains("second"),
            "v4's web runs",
            String::new,
        );
    }
    // The store keeps what every kept generation ran: v2's image stays
    // through a collection, ready for a rollback.
    let d0 = &devices[0];
    let list = String::from_utf8_lossy(&d0.rk(&["history", "--json"]).stdout).into_owned();
    let v2_image = list
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|g| g["number"] == 2)
        .and_then(|g| g["images"]["web"].as_str().map(String::from))
        .expect("generation 2 records web's image");
    let out = d0.rk(&["prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hex = v2_image.trim_start_matches("sha256:");
    assert!(
        d0.dir
            .path()
            .join("data/images/blobs/sha256")
            .join(hex)
            .exists(),
        "v2's manifest was collected"
    );
    let h = String::from_utf8_lossy(&devices[0].rk(&["history"]).stdout).into_owned();
    eprintln!("{h}");
    let lines: Vec<&str> = h.lines().skip(1).collect();
    assert_eq!(lines.len(), 5, "{h}");
    assert!(
        lines[0].contains("start") && lines[0].ends_with("committed"),
        "{h}"
    );
    assert!(
        lines[1].contains("apply") && lines[1].ends_with("committed"),
        "{h}"
    );
    assert!(lines[2].contains("rolled-back: web is unhealthy"), "{h}");
    assert!(lines[3].contains("rollback to 2"), "{h}");
    assert!(
        lines[4].starts_with("5*") && lines[4].ends_with("committed"),
        "{h}"
    );
}
