//! Images from an OCI layout, as root: layers unpacked once and stacked
//! with overlayfs, the image's command, environment and working directory,
//! whiteouts, copy-on-write apart per container, and a tampered blob
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::oci::*;
use common::stack::Stack;
use common::*;

#[test]
fn entrypoint_and_command_replace_what_the_image_says_as_docker_does() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("layout");
    layout_config(
        &l,
        b"x\n",
        serde_json::json!({"Entrypoint": ["/bin/echo", "EP"], "Cmd": ["default"], "Env": ["PATH=/bin"]}),
    );
    let image = format!("oci:{}:v1", l.display());
    let out = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(out(rk_run(dir.path(), &[&image])), "EP default");
    assert_eq!(
        out(rk_run(dir.path(), &[&image, "--", "hello"])),
        "EP hello"
    );
    assert_eq!(
        out(rk_run(
            dir.path(),
            &["--entrypoint", "/bin/echo", &image, "--", "mine"]
        )),
        "mine"
    );
    assert_eq!(
        out(rk_run(
            dir.path(),
            &["--entrypoint", "", &image, "--", "/bin/echo", "bare"]
        )),
        "bare"
    );
    // The stack file, through check's effective form: the same keys.
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"ep\"\n[containers.a]\nimage = \"{image}\"\ncommand = [\"hello\"]\n\
             [containers.b]\nimage = \"{image}\"\nentrypoint = [\"/bin/sh\", \"-c\"]\ncommand = [\"echo b\"]\n"
        ),
    )
    .unwrap();
    let o = rk_in(dir.path(), &["check", "--json", file.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["containers"]["b"]["entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert!(v["containers"]["a"].get("entrypoint").is_none(), "{v}");
}

/// `rkstack run ARGS` with state and data under `dir`.
fn rk_run(dir: &Path, args: &[&str]) -> std::process::Output {
    rk_in(dir, &[&["run"], args].concat())
}

/// `rkstack ARGS` with state and data under `dir`.
fn rk_in(dir: &Path, args: &[&str]) -> std::process::Output {
    rk_cmd(dir).args(args).output().unwrap()
}

/// A stack of `body` under `rkstack up`, `LAYOUT` standing for an OCI
/// layout made for it (see [`layout`]).
fn up_with_layout(tag: &str, body: &str) -> Stack {
    let mut s = Stack::new(tag, Path::new(rkstack()));
    let l = s.dir.path().join("layout");
    layout(&l);
    s.write(&body.replace("LAYOUT", &l.display().to_string()));
    s.spawn(&[]);
    s
}

#[test]
fn containers_run_from_an_oci_layout_each_on_its_own_writable_layer() {
    require_root!();
    let body = r#"
[containers.a]
image = "oci:LAYOUT:v1"
[containers.b]
image = "oci:LAYOUT:v1"
command = ["/bin/sh", "-c", "cat /etc/new-file; ls /etc/old-file || echo old-gone; echo env-$FROM_IMAGE; pwd; touch /made-by-b && rm /etc/passwd && echo made; sleep 1000"]
[containers.c]
image = "oci:LAYOUT:v1"
command = ["/bin/sh", "-c", "sleep 0.5; ls /made-by-b || echo absent-in-c; sleep 1000"]
depends_on = ["b"]
"#;
    let up = up_with_layout("oci", body);
    up.wait_for(
        |u| u.log_of("a").contains("from-image-cmd"),
        "the image's command",
    );
    up.wait_for(|u| u.log_of("b").contains("made"), "b ran");
    let b = up.log_of("b");
    assert!(b.contains("from layer 2"), "{b}");
    assert!(
        b.contains("old-gone"),
        "the whiteout did not hide old-file:\n{b}"
    );
    assert!(b.contains("env-yes"), "{b}");
    assert!(b.contains("stdout /tmp"), "the image's WorkingDir:\n{b}");
    up.wait_for(
        |u| u.log_of("c").contains("absent-in-c"),
        "c does not see b's file",
    );
    // b's file is in b's own upper layer; the layers were unpacked once for all three.
    let data = up.dir.path().join("data");
    assert!(
        data.join(&up.name)
            .join("containers/b/upper/made-by-b")
            .exists()
    );
    assert_eq!(
        std::fs::read_dir(data.join("images/layers"))
            .unwrap()
            .count(),
        2
    );

    // What b changed, as `docker diff` shows it; the store lists the image.
    let rk = |args: &[&str]| rk_in(up.dir.path(), args);
    let out = rk(&["diff", "b"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "C /etc\nD /etc/passwd\nA /made-by-b\n",
        "{}",
        stderr(&out)
    );
    let out = rk(&["diff", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let out = rk(&["images"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("REFERENCE"), "{text}");
    assert!(text.contains(":v1") && text.contains("sha256:"), "{text}");

    // The same tag now names another image: a reload recreates the
    // containers that use it, each with a fresh writable layer.
    let a = up.log_of("a").matches("from-image-cmd").count();
    let upper_marker = data
        .join(&up.name)
        .join("containers/b/upper/old-run-marker");
    std::fs::write(&upper_marker, "x").unwrap();
    for i in 0..500 {
        std::fs::write(upper_marker.with_file_name(format!("many-{i}")), "x").unwrap();
    }
    // What a removal cut short by a crash left: removed with the next one.
    let trash = data.join(&up.name).join("containers/.trash");
    std::fs::create_dir_all(trash.join("b-1/upper/deep")).unwrap();
    let l = up.dir.path().join("layout");
    std::fs::remove_dir_all(&l).unwrap();
    layout_with(&l, b"from layer 2, second edition\n");
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(up.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    up.wait_for(
        |u| u.log_of("b").contains("second edition"),
        "b recreated on the new image",
    );
    let events = up.file("events.log");
    assert!(events.contains("recreate: image changed"), "{events}");
    up.wait_for(
        |u| u.log_of("a").matches("from-image-cmd").count() > a,
        "a recreated",
    );
    assert!(
        !upper_marker.exists(),
        "the old writable layer was kept across a recreate"
    );
    // Removed in the background, and all of it.
    up.wait_for(
        |_| std::fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_none()),
        "the old layers removed",
    );
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_of_it_kept() {
    require_root!();
    // A layout whose second layer is changed after its digest was taken.
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("layout");
    layout(&l);
    // Whole, it runs (and a one-off container leaves no writable layer).
    let run = |args: &[&str]| rk_run(dir.path(), args);
    let image = format!("oci:{}:v1", l.display());
    let out = run(&[&image, "--", "/bin/cat", "/etc/new-file"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from layer 2\n",
        "{}",
        stderr(&out)
    );
    let out = run(&[&format!("oci:{}:v9", l.display()), "--", "/bin/true"]);
    assert!(
        stderr(&out).contains("no image tagged v9 (tags: v1)"),
        "{}",
        stderr(&out)
    );
    // (The folder of one-off layers stays, empty, for the next run.)
    assert!(
        std::fs::read_dir(dir.path().join("data/run/containers"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "a container's layer was left behind"
    );
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(l.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l.join("blobs/sha256").join(&m)).unwrap()).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::write(l.join("blobs/sha256").join(&layer), b"not the layer").unwrap();
    let out = run(&[&image, "--", "/bin/true"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing was kept"), "{err}");
    assert!(
        !dir.path()
            .join(format!("data/images/blobs/sha256/{layer}"))
            .exists()
    );
}

#[test]
fn docker_archives_and_rootfs_tarballs_run() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = layer_tars(b"from layer 2\n");
    let id = |b: &[u8]| format!("sha256:{}", sha(b));
    // An archive of `top` over `base` whose config names `said` as its top.
    let archive = |top: &[u8], said: &[u8], file: &str| {
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/cat", "/etc/new-file"], "Env": ["PATH=/bin"], "User": "1000:1000"},
            "rootfs": {"type": "layers", "diff_ids": [id(&base), id(said)]}
        })
        .to_string();
        let manifest = serde_json::json!([{
            "Config": "config.json", "RepoTags": ["demo:v1"],
            "Layers": ["l1/layer.tar", "l2/layer.tar"]
        }])
        .to_string();
        let f = tar::EntryType::Regular;
        let d = tar::EntryType::Directory;
        let t = tar_of(&[
            ("manifest.json", f, "", manifest.as_bytes()),
            ("config.json", f, "", config.as_bytes()),
            ("l1", d, "", b""),
            ("l1/layer.tar", f, "", &base),
            ("l2", d, "", b""),
            ("l2/layer.tar", f, "", top),
        ]);
        std::fs::write(dir.path().join(file), t).unwrap();
    };
    archive(&top, &top, "saved.tar");
    std::fs::write(dir.path().join("rootfs.tgz"), gzip(&base)).unwrap();
    let run = |args: &[&str]| rk_run(dir.path(), args);
    let saved = format!("tar:{}", dir.path().join("saved.tar").display());
    // docker save's image, with its own command.
    let out = run(&[
        &saved,
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/new-file; ls /etc/old-file || echo old-gone; echo uid-$(id -u)",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The image's User applies (the file sets none).
    assert!(text.contains("uid-1000"), "{text}");
    assert!(
        text.contains("from layer 2") && text.contains("old-gone"),
        "{text}{}",
        stderr(&out)
    );
    // Later starts take the image from the store's record of it, not from
    // the archive (not hashed again): the record holds the layers and what
    // the config sets.
    let out = rk_in(dir.path(), &["images", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records[0]["layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(records[0]["defaults"]["user"], "1000:1000");
    let cat = ["--", "/bin/cat", "/etc/new-file"];
    let out = run(&[&[saved.as_str()][..], &cat].concat());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from layer 2\n");
    // The archive replaced by another image: that one runs.
    let (_, top2) = layer_tars(b"from a new archive\n");
    archive(&top2, &top2, "saved.tar");
    let out = run(&[&[saved.as_str()][..], &cat].concat());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from a new archive\n",
        "{}",
        stderr(&out)
    );
    // A plain root filesystem tarball.
    let rootfs = format!("tar:{}", dir.path().join("rootfs.tgz").display());
    let out = run(&[&rootfs, "--", "/bin/cat", "/etc/old-file"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "old\n",
        "{}",
        stderr(&out)
    );
    // A layer that is not what the config's diff_ids say: refused, nothing kept.
    archive(b"tampered", &top, "bad.tar");
    let bad = format!("tar:{}", dir.path().join("bad.tar").display());
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let out = run(&[&bad, "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing was kept"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_one_off_container_has_its_name_alone_and_a_fresh_layer() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    layout(&dir.path().join("layout"));
    let image = format!("oci:{}:v1", dir.path().join("layout").display());
    let name = unique("once");
    // What a `run` killed with SIGKILL leaves: its writable layer, with
    // overlayfs' mark of a volatile mount in its work folder.
    let layer = dir.path().join("data/run/containers").join(&name);
    std::fs::create_dir_all(layer.join("upper")).unwrap();
    std::fs::create_dir_all(layer.join("work/incompat/volatile")).unwrap();
    std::fs::write(layer.join("upper/left-behind"), "x").unwrap();

    let first = rk_cmd(dir.path())
        .args(["run", "--name", &name, &image, "--"])
        .args([
            "/bin/sh",
            "-c",
            "ls /left-behind 2>/dev/null || echo fresh; grep ' / overlay' /proc/mounts; \
             echo mine > /mine; sleep 2; cat /mine",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        || layer.join("upper/mine").exists(),
        "the first container wrote its file",
        String::new,
    );
    // A second one of that name is refused, and does not touch the first.
    let out = rk_run(dir.path(), &["--name", &name, &image, "--", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    let out = first.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.starts_with("fresh\n"),
        "the stale layer was reused:\n{text}"
    );
    assert!(text.ends_with("mine\n"), "{text}");
    // Its layer is thrown away at the end, so it is mounted without syncs.
    assert!(text.contains("volatile"), "{text}");
    assert!(!layer.exists(), "the writable layer stayed");
    // The name is free again.
    let out = rk_run(
        dir.path(),
        &["--name", &name, &image, "--", "/bin/sh", "-c", "exit 0"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_read_only_image_container_makes_its_mount_points_outside_the_store() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    layout(&dir.path().join("layout"));
    let image = format!("oci:{}:v1", dir.path().join("layout").display());
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("x"), "from the host\n").unwrap();
    let volume = format!("{}:/not/in/image", shared.display());
    let out = rk_run(
        dir.path(),
        &[
            "--read-only",
            "-v",
            &volume,
            &image,
            "--",
            "/bin/sh",
            "-c",
            "cat /not/in/image/x; touch /new || echo refused",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from the host\nrefused\n",
        "{}",
        stderr(&out)
    );
    // The unpacked layers are as the image made them.
    for layer in std::fs::read_dir(dir.path().join("data/images/layers")).unwrap() {
        let layer = layer.unwrap().path();
        assert!(
            !layer.join("not").exists(),
            "{} was written",
            layer.display()
        );
    }
    let out = rk_run(
        dir.path(),
        &[
            "--read-only",
            &image,
            "--",
            "/bin/sh",
            "-c",
            "ls /not || echo absent",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("absent"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rmi_spares_what_a_running_stack_declares_and_collects_the_rest() {
    require_root!();
    let mut up = up_with_layout(
        "rmi",
        "[containers.a]\nimage = \"oci:LAYOUT:v1\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    up.wait_for(|u| u.file("events.log").contains("a: started"), "a runs");
    let reference = format!("oci:{}:v1", up.dir.path().join("layout").display());
    let rk = |args: &[&str]| rk_in(up.dir.path(), args);
    let out = rk(&["rmi", &reference]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("which is running; not removed"),
        "{}",
        stderr(&out)
    );
    let images = up.dir.path().join("data/images");
    assert_eq!(std::fs::read_dir(images.join("layers")).unwrap().count(), 2);
    // The stack stops: now it goes, with every blob and layer of it.
    let mut child = up.child.take().unwrap();
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let out = rk(&["rmi", &reference]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The stack's kept generation ran it: its bytes stay for a rollback.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("its layers stay: a kept generation ran it"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(images.join("layers")).unwrap().count(), 2);
    // Forgetting the stopped stack's generations lets them go.
    let out = rk(&["prune", "--generations"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("freed"));
    assert_eq!(std::fs::read_dir(images.join("layers")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(images.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let out = rk(&["images"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = rk(&["rmi", "oci:/nowhere:v1"]);
    assert!(
        stderr(&out).contains("no image oci:/nowhere:v1"),
        "{}",
        stderr(&out)
    );
}

/// The bytes of the files under `dir`, each inode once.
fn tree_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

#[test]
fn prune_keeps_the_layers_a_running_container_is_made_of_and_says_what_it_freed() {
    require_root!();
    let mut up = up_with_layout(
        "prune",
        "[containers.a]\nimage = \"oci:LAYOUT:v1\"\ncommand = [\"/bin/sleep\", \"1000\"]\n",
    );
    up.wait_for(|u| u.file("events.log").contains("a: started"), "a runs");
    let rk = |args: &[&str]| rk_in(up.dir.path(), args);
    let images = up.dir.path().join("data/images");
    let layers = || std::fs::read_dir(images.join("layers")).unwrap().count();
    assert_eq!(layers(), 2);
    // The layout is rewritten and a one-off container runs its new image:
    // the reference now names other layers, while `a` runs on the old.
    let layout = up.dir.path().join("layout");
    std::fs::remove_dir_all(&layout).unwrap();
    layout_with(&layout, b"version two\n");
    let reference = format!("oci:{}:v1", layout.display());
    let out = rk(&[
        "run", "--name", "once", &reference, "--", "/bin/sh", "-c", "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layers(), 3, "the base is shared, the second layer is new");
    let out = rk(&["prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layers(), 3, "a layer under a running container was removed");
    // Its stack stops: what nothing uses goes, and the figure is the bytes
    // that left the store.
    let mut child = up.child.take().unwrap();
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let before = tree_bytes(&images.join("layers")) + tree_bytes(&images.join("blobs"));
    let out = rk(&["prune", "--generations"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(layers(), 2);
    let after = tree_bytes(&images.join("layers")) + tree_bytes(&images.join("blobs"));
    let said = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let human = |n: u64| {
        let mut v = n as f64;
        let mut u = 0;
        let units = ["B", "KiB", "MiB", "GiB"];
        while v >= 1024.0 && u + 1 < units.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            format!("{n} B")
        } else {
            format!("{v:.1} {}", units[u])
        }
    };
    assert!(
        said.starts_with(&format!("freed {} (", human(before - after))),
        "{said} (before {before}, after {after})"
    );
    // Nothing left to free: it says so.
    let out = rk(&["prune"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("freed 0 B (0 blobs"));
}

/// Loop devices whose backing file is `file`.
fn loops_of(file: &Path) -> usize {
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| b.trim() == file.to_str().unwrap())
        })
        .count()
}

#[test]
fn squashfs_and_erofs_images_run_and_their_loop_devices_go() {
    require_root!();
    let fs = image_rootfs();
    let dir = tempfile::tempdir().unwrap();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap();
    let mut tried = 0;
    for (fstype, file, make) in [
        (
            "squashfs",
            "img.sqfs",
            vec!["mksquashfs", "SRC", "DST", "-quiet", "-noappend"],
        ),
        ("erofs", "img.erofs", vec!["mkfs.erofs", "DST", "SRC"]),
    ] {
        if !filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some(fstype))
        {
            eprintln!("skipped {fstype}: this kernel has no {fstype} filesystem");
            continue;
        }
        tried += 1;
        let img = dir.path().join(file);
        let args: Vec<String> = make[1..]
            .iter()
            .map(|a| match *a {
                "SRC" => fs.path().display().to_string(),
                "DST" => img.display().to_string(),
                other => other.to_string(),
            })
            .collect();
        let out = Command::new(make[0]).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let image = format!("{fstype}:{}", img.display());
        // Writable: the container's own layer over the image.
        let out = rk_run(
            dir.path(),
            &[
                &image,
                "--",
                "/bin/sh",
                "-c",
                "cat /etc/group; touch /new && echo wrote",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("extra:x:2000") && text.contains("wrote"),
            "{fstype}: {text}{}",
            stderr(&out)
        );
        // Read-only: the image itself (mount points it lacks made beside it).
        let volume = format!("{}:/not/in/image", fs.path().join("etc").display());
        let out = rk_run(
            dir.path(),
            &[
                "--read-only",
                "-v",
                &volume,
                &image,
                "--",
                "/bin/sh",
                "-c",
                "ls /not/in/image/group && touch /new || echo refused",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/not/in/image/group\nrefused\n",
            "{fstype}: {}",
            stderr(&out)
        );
        // The loop device went with the container's mount.
        let deadline = Instant::now() + Duration::from_secs(5);
        while loops_of(&img) > 0 {
            assert!(
                Instant::now() < deadline,
                "{fstype}: a loop device was left behind"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    eprintln!("{tried} of 2 image filesystems tried");
}

/// The busybox rootfs with the mount points a read-only image must have.
fn image_rootfs() -> Rootfs {
    let fs = Rootfs::readable();
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir_all(fs.path().join(d)).unwrap();
    }
    fs
}

#[test]
fn images_are_pulled_from_a_registry_by_tag_and_digest_and_verified() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    reg.push(&work.path().join("layout"), b"from layer 2\n");
    let rk = |data: &str, args: &[&str]| {
        Command::new(rkstack())
            .arg("--state-dir")
            .arg(work.path().join("state"))
            .arg("--data-dir")
            .arg(work.path().join(data))
            .args(["--insecure-registry", &reg.host()])
            .args(args)
            .output()
            .unwrap()
    };
    let by_tag = format!("docker://{}/demo:v1", reg.host());
    // Pulled at run (pull_policy missing), then run from the store.
    let out = rk("d1", &["run", &by_tag, "--", "/bin/cat", "/etc/new-file"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from layer 2\n",
        "{}",
        stderr(&out)
    );
    let out = rk("d1", &["images"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&by_tag));
    // By digest.
    let out = rk("d1", &["pull", &by_tag]);
    let digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let out = rk(
        "d2",
        &["pull", &format!("docker://{}/demo@{digest}", reg.host())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Not on a terminal: a plain line per blob pulled (config and two layers).
    assert_eq!(
        stderr(&out).matches("pulled sha256:").count(),
        3,
        "{}",
        stderr(&out)
    );
    // Bad input: an unknown tag, a registry that is down.
    let out = rk(
        "d2",
        &["pull", &format!("docker://{}/demo:nope", reg.host())],
    );
    assert!(
        stderr(&out).contains("manifest nope: HTTP 404"),
        "{}",
        stderr(&out)
    );
    let out = rk("d2", &["pull", "docker://127.0.0.1:9/demo:v1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
    // A blob changed in the registry's storage: refused, nothing kept.
    let layers = reg.dir.path().join("data/docker/registry/v2/blobs/sha256");
    let biggest = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .flat_map(|sub| std::fs::read_dir(sub.path()).unwrap().flatten())
        .map(|b| b.path().join("data"))
        .max_by_key(|d| std::fs::metadata(d).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    // An interrupted pull left half of the busybox layer: the next one
    // goes on from there and ends with the whole, verified blob.
    let hex = biggest
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let whole = std::fs::read(&biggest).unwrap();
    let tmp = work.path().join("d4/images/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let partial = tmp.join(format!("{hex}.partial"));
    std::fs::write(&partial, &whole[..whole.len() / 2]).unwrap();
    let out = rk("d4", &["pull", &by_tag]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!partial.exists());
    let stored = work.path().join(format!("d4/images/blobs/sha256/{hex}"));
    assert_eq!(std::fs::read(&stored).unwrap(), whole);
    // The pull really goes on from the partial (a Range request): a partial
    // that is not the blob's beginning makes a blob with the wrong digest,
    // which is refused and dropped, and the next pull starts afresh.
    let tmp = work.path().join("d5/images/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(
        tmp.join(format!("{hex}.partial")),
        vec![0u8; whole.len() / 2],
    )
    .unwrap();
    let out = rk("d5", &["pull", &by_tag]);
    assert!(
        stderr(&out).contains("nothing was kept"),
        "{}",
        stderr(&out)
    );
    assert!(rk("d5", &["pull", &by_tag]).status.success());
    // The biggest blob (the busybox layer) gets one byte changed.
    let mut bytes = std::fs::read(&biggest).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();
    let out = rk("d3", &["pull", &by_tag]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing was kept"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_registry_that_wants_credentials_gets_them_from_creds_or_the_docker_config() {
    require_root!();
    let reg = Registry::start_auth(
        "auth:\n  htpasswd:\n    realm: rkstack-test\n    path: DIR/htpasswd\n",
    );
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret-pass"])
        .output()
        .unwrap();
    std::fs::write(reg.dir.path().join("htpasswd"), &out.stdout).unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = reg.push_with_creds(work.path(), "alice:s3cret-pass");
    let pull = |data: &str, extra: &[&str], docker_config: Option<&Path>| {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(work.path().join(data))
            .args(["--insecure-registry", &reg.host(), "pull"])
            .args(extra)
            .arg(&image)
            .env(
                "DOCKER_CONFIG",
                docker_config.unwrap_or(&work.path().join("no-config")),
            );
        c.output().unwrap()
    };
    let out = pull("d1", &[], None);
    assert!(
        stderr(&out).contains("the registry wants credentials"),
        "{}",
        stderr(&out)
    );
    let out = pull("d1", &["--creds", "alice:wrong"], None);
    assert!(
        stderr(&out).contains("refused the credentials"),
        "{}",
        stderr(&out)
    );
    let out = pull("d1", &["--creds", "alice:s3cret-pass"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = work.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"YWxpY2U6czNjcmV0LXBhc3M=\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    let out = pull("d2", &[], Some(&config));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A `CONNECT` proxy on loopback for the test: it tunnels to whatever it
/// is asked and counts the tunnels. Ends with the test process.
fn connect_proxy() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let Ok(up) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut c = client;
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let mut up = up;
                let _ = std::io::copy(&mut r, &mut up);
                let _ = up.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, count)
}

/// Registry habits of docker and podman: the CA from `SSL_CERT_FILE` or
/// the registry's `certs.d` folder, `HTTPS_PROXY` (and `NO_PROXY`), and
/// credentials from a `docker-credential-*` helper.
#[test]
fn pulls_follow_the_hosts_cas_proxy_and_credential_helpers() {
    require_root!();
    let reg = Registry::start_tls();
    let certs = reg.certs.as_ref().unwrap().path().to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let image = reg.push_with_creds(work.path(), "alice:pw");
    // A credential helper, and a Docker config that names it for this registry.
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-rktest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho \"$server\" > \"$(dirname \"$0\")/asked\"\n\
         echo '{\"ServerURL\":\"x\",\"Username\":\"alice\",\"Secret\":\"pw\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = work.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!("{{\"credHelpers\":{{\"{}\":\"rktest\"}}}}", reg.host()),
    )
    .unwrap();
    let (proxy, tunnels) = connect_proxy();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pull = |data: &str, env: &[(&str, String)]| {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(work.path().join(data))
            .arg("pull")
            .arg(&image)
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path)
            .env_remove("SSL_CERT_FILE");
        for k in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // The test's CA is nobody's: refused.
    let out = pull("d0", &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS"), "{}", stderr(&out));
    // Trusted through SSL_CERT_FILE, through the proxy, with the helper's
    // credentials (it was asked for this registry).
    let ca = certs.join("ca.pem").display().to_string();
    let via = format!("http://127.0.0.1:{proxy}");
    let out = pull(
        "d1",
        &[("SSL_CERT_FILE", ca.clone()), ("HTTPS_PROXY", via.clone())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no tunnel"
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("asked")).unwrap().trim(),
        reg.host()
    );
    // NO_PROXY names it: straight there.
    let before = tunnels.load(std::sync::atomic::Ordering::SeqCst);
    let out = pull(
        "d2",
        &[
            ("SSL_CERT_FILE", ca.clone()),
            ("HTTPS_PROXY", via),
            ("NO_PROXY", "example.org,127.0.0.1".into()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), before);
    // Trusted through the registry's certs.d folder, in a mount namespace
    // of the test's own (the host's folder is left as it is).
    let etc = ["/etc/containers", "/etc/docker"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .expect("/etc/containers or /etc/docker (skopeo, docker-registry)");
    let script = format!(
        "mount -t tmpfs rktest {etc} && mkdir -p '{etc}/certs.d/{host}' && cp '{ca}' '{etc}/certs.d/{host}/ca.crt' && exec \"$@\"",
        host = reg.host()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(rkstack())
        .arg("--data-dir")
        .arg(work.path().join("d3"))
        .arg("pull")
        .arg(&image)
        .env("DOCKER_CONFIG", &config)
        .env("PATH", &path)
        .env_remove("SSL_CERT_FILE")
        .env_remove("HTTPS_PROXY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_new_pull_of_a_tag_recreates_the_containers_that_use_it_at_reload() {
    require_root!();
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let push = |content: &[u8]| reg.push(&work.path().join("layout"), content);
    push(b"first\n");
    let stack = unique("repull");
    std::fs::write(
        work.path().join("stack.toml"),
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"docker://{h}/demo:v1\"\ncommand = [\"/bin/sh\", \"-c\", \"cat /etc/new-file; sleep 1000\"]\nstop_signal = \"SIGKILL\"\n[containers.other]\nimage = \"oci:{l}:v1\"\ncommand = [\"/bin/sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n",
            h = reg.host(),
            l = work.path().join("fixed").display()
        ),
    )
    .unwrap();
    layout(&work.path().join("fixed"));
    let rk = || {
        let mut c = rk_cmd(work.path());
        c.args(["--insecure-registry", &reg.host()]);
        c
    };
    let (up, log, events) =
        up_until_first(work.path(), &stack, &["--insecure-registry", &reg.host()]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    // The pull that started a is not a change.
    let out = rk().arg("reload").output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!plan.contains("recreate"), "{plan}{}", stderr(&out));
    // A new image under the same tag, pulled: the next reload recreates a, not other.
    push(b"second\n");
    let out = rk()
        .args(["pull", &format!("docker://{}/demo:v1", reg.host())])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rk().arg("reload").output().unwrap();
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        plan.contains("recreate: image changed"),
        "{plan}{}",
        stderr(&out)
    );
    assert!(!plan.contains("other  recreate"), "{plan}");
    wait_until(
        || read(&log).contains("second"),
        "a runs the new image",
        || read(&events),
    );
    // A pulled image a running stack uses is not removed, whatever its kind.
    let out = rk()
        .args(["rmi", &format!("docker://{}/demo:v1", reg.host())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("is used by stack {stack}")),
        "{}",
        stderr(&out)
    );
    drop(up);
}

#[test]
fn a_replaced_squashfs_file_recreates_its_container_at_reload() {
    require_root!();
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("squashfs")
    {
        eprintln!("skipped: this kernel has no squashfs filesystem");
        return;
    }
    let fs = image_rootfs();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("app.sqfs");
    let make = |marker: &str| {
        std::fs::write(fs.path().join("etc/marker"), marker).unwrap();
        let tmp = work.path().join("new.sqfs");
        let out = Command::new("mksquashfs")
            .arg(fs.path())
            .arg(&tmp)
            .args(["-quiet", "-noappend"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::rename(&tmp, &img).unwrap();
    };
    make("first\n");
    let stack = unique("sqfs");
    std::fs::write(
        work.path().join("stack.toml"),
        format!(
            "name = \"{stack}\"\n[containers.a]\nimage = \"squashfs:{}\"\ncommand = [\"/bin/sh\", \"-c\", \"cat /etc/marker; sleep 1000\"]\nstop_signal = \"SIGKILL\"\n",
            img.display()
        ),
    )
    .unwrap();
    let (up, log, events) = up_until_first(work.path(), &stack, &[]);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    make("second\n");
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGHUP) };
    wait_until(
        || read(&log).contains("second"),
        "a runs the new image",
        || read(&events),
    );
    assert!(
        read(&events).contains("recreate: image changed"),
        "{}",
        read(&events)
    );
    drop(up);
    wait_until(|| loops_of(&img) == 0, "the loop device goes", String::new);
}

#[test]
fn zstd_layers_unpack() {
    require_root!();
    let work = tempfile::tempdir().unwrap();
    let l = work.path().join("layout");
    std::fs::create_dir_all(l.join("blobs/sha256")).unwrap();
    std::fs::write(l.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let (base, _) = layer_tars(b"");
    let plain = work.path().join("layer.tar");
    std::fs::write(&plain, &base).unwrap();
    let out = Command::new("zstd")
        .args(["-q", "-f"])
        .arg(&plain)
        .arg("-o")
        .arg(work.path().join("layer.tar.zst"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let layer = std::fs::read(work.path().join("layer.tar.zst")).unwrap();
    let ld = blob(&l, &layer);
    let config = r#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = blob(&l, config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": ld, "size": layer.len()}]
    })
    .to_string();
    let md = blob(&l, manifest.as_bytes());
    std::fs::write(
        l.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len()}]})
        .to_string(),
    )
    .unwrap();
    let out = rk_run(
        work.path(),
        &[
            &format!("oci:{}", l.display()),
            "--",
            "/bin/cat",
            "/etc/old-file",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "old\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_pull_runs_in_the_background_while_the_stack_answers() {
    require_root!();
    // A registry that takes connections and never answers, and one that is not there.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let work = tempfile::tempdir().unwrap();
    layout(&work.path().join("layout"));
    let stack = unique("bgpull");
    std::fs::write(
        work.path().join("stack.toml"),
        format!(
            "name = \"{stack}\"\n[defaults]\nstop_signal = \"SIGKILL\"\ncommand = [\"/bin/sleep\", \"1000\"]\n\
             [containers.a]\nimage = \"docker://{slow}/slow:v1\"\n\
             [containers.b]\nimage = \"oci:{l}:v1\"\n\
             [containers.c]\nimage = \"docker://{gone}/none:v1\"\nrestart = \"no\"\n",
            l = work.path().join("layout").display()
        ),
    )
    .unwrap();
    let events = work.path().join("events.log");
    let mut up = Stopped(
        rk_cmd(work.path())
            .args(["--insecure-registry", &slow, "--insecure-registry", &gone])
            .arg("up")
            .arg(work.path().join("stack.toml"))
            .stderr(std::fs::File::create(&events).unwrap())
            .spawn()
            .unwrap(),
    );
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let ps = || -> Vec<serde_json::Value> {
        let out = rk_in(work.path(), &["ps", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let state = |list: &[serde_json::Value], n: &str| {
        list.iter()
            .find(|c| c["name"] == n)
            .map(|c| c["state"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    // While a's pull hangs, b runs, the API answers, and c's failed pull is
    // a failed start with the registry's error.
    wait_until(
        || {
            let l = ps();
            state(&l, "a") == "pulling" && state(&l, "b") == "running" && state(&l, "c") == "exited"
        },
        "a pulling, b running, c's pull failed",
        read,
    );
    let c = ps().into_iter().find(|c| c["name"] == "c").unwrap();
    assert!(
        c["error"].as_str().unwrap_or_default().contains("refused"),
        "{c}"
    );
    // The pull process, as the event names it.
    let log = read();
    let pid: i32 = log
        .split("pulling docker://")
        .nth(1)
        .and_then(|t| t.split("(pid ").nth(1))
        .and_then(|t| t.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pull pid in:\n{log}"));
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let out = rk_in(work.path(), &["stop", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(state(&ps(), "a"), "stopped");
    // Stopping the stack ends the pull it started.
    // SAFETY: signalling the rkstack this test started.
    unsafe { libc::kill(up.0.id() as i32, libc::SIGTERM) };
    let _ = up.0.wait();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the pull outlived its stack:\n{}",
        read()
    );
    remove_cgroups(&stack);
}

#[test]
fn a_verity_image_runs_only_as_its_root_hash_says() {
    require_root!();
    let fs = image_rootfs();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("app.sqfs");
    let out = Command::new("mksquashfs")
        .arg(fs.path())
        .arg(&img)
        .args(["-quiet", "-noappend"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The hash tree beside the image (the default place: IMAGE.verity).
    let out = Command::new("veritysetup")
        .arg("format")
        .arg(&img)
        .arg(work.path().join("app.sqfs.verity"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let root_hash = text
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no root hash in:\n{text}"));
    let up = up_with_layout(
        "verity",
        &format!(
            "[containers.good]\nimage = \"squashfs:{img}\"\nverity = {{ root_hash = \"{root_hash}\" }}\n\
             command = [\"/bin/sh\", \"-c\", \"echo verified; sleep 1000\"]\nread_only = true\n\
             [containers.bad]\nimage = \"squashfs:{img}\"\nverity = {{ root_hash = \"{zeros}\" }}\n\
             command = [\"/bin/sh\", \"-c\", \"echo ran\"]\nread_only = true\n",
            img = img.display(),
            zeros = "0".repeat(root_hash.len()),
        ),
    );
    let ps = || -> Vec<serde_json::Value> {
        serde_json::from_slice(&rk_in(up.dir.path(), &["ps", "--json"]).stdout).unwrap_or_default()
    };
    let error_of = |n: &str| {
        ps().into_iter()
            .find(|c| c["name"] == n)
            .and_then(|c| c["error"].as_str().map(String::from))
            .unwrap_or_default()
    };
    if Path::new("/dev/mapper/control").exists() {
        up.wait_for(|u| u.log_of("good").contains("verified"), "good runs");
        up.wait_for(
            |_| error_of("bad").contains("does not match its verity root hash"),
            "bad refused",
        );
        assert!(!up.log_of("bad").contains("ran"));
    } else {
        // This kernel cannot verify: both are refused, saying why.
        eprintln!("this kernel has no device-mapper: checking that verity images are refused");
        for n in ["good", "bad"] {
            up.wait_for(|_| error_of(n).contains("no device-mapper"), n);
            assert!(up.log_of(n).is_empty(), "{n} ran unverified");
        }
    }
}

#[test]
fn an_image_container_runs_in_its_own_user_namespace() {
    require_root!();
    let body = r#"
[containers.u]
image = "oci:LAYOUT:v1"
command = ["/bin/sh", "-c", "cat /etc/new-file; id -u; ls -ln /etc/new-file; echo x >> /etc/new-file && echo appended || echo append-failed; touch /written && echo wrote; sleep 1000"]
[containers.u.security]
user_namespace = "auto"
"#;
    let up = up_with_layout("userns-img", body);
    wait_until(
        || up.log_of("u").contains("wrote"),
        "u ran and wrote",
        || {
            let out = rk_in(up.dir.path(), &["ps", "--json"]);
            let list: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            let pid = list.first().and_then(|c| c["pid"].as_i64()).unwrap_or(0);
            format!(
                "{}\nu's log:\n{}\nmounts:\n{}",
                up.file("events.log"),
                up.log_of("u"),
                std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default()
            )
        },
    );
    let log = up.log_of("u");
    assert!(log.contains("from layer 2"), "{log}");
    // Root inside, someone else outside.
    let pid: i32 = {
        let out = rk_in(up.dir.path(), &["ps", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        list[0]["pid"].as_i64().unwrap() as i32
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap();
    assert_ne!(uid, "0", "{status}");
    assert!(log.lines().any(|l| l.ends_with(" stdout 0")), "{log}");
    // Its writes are in its own layer, owned by its id range on the host.
    let written = up
        .dir
        .path()
        .join(format!("data/{}/containers/u/upper/written", up.name));
    let meta = std::fs::metadata(&written).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta).to_string(),
        uid,
        "{}",
        written.display()
    );
}

/// A container's root leaves a setuid-root program in its writable
/// layer; an unprivileged user of the host cannot run it (nor read the
/// image store, the logs or the state): the data directory is rkstack's
/// alone, logs 0640, state files 0600.
#[test]
fn the_data_and_state_trees_are_closed_to_host_users() {
    require_root!();
    let probe_dir = tempfile::tempdir().unwrap();
    std::fs::copy(probe(), probe_dir.path().join("probe")).unwrap();
    let body = format!(
        r#"
[containers.c]
image = "oci:LAYOUT:v1"
command = ["/bin/sh", "-c", "cp /p/probe /suid && chmod 4755 /suid && touch /ready; echo planted; exec sleep 1000"]
mounts = [{{ type = "bind", source = "{}", target = "/p", read_only = true }}]
"#,
        probe_dir.path().display()
    );
    let up = up_with_layout("private", &body);
    // Where a host user could reach it, were the data directory open.
    std::fs::set_permissions(
        up.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data = up.dir.path().join("data");
    let upper = data.join(format!("{}/containers/c/upper", up.name));
    let state = up.dir.path().join(format!("state/{}/state.json", up.name));
    // The state is saved once the start-up plan is done, maybe after the
    // container got this far.
    up.wait_for(
        |_| upper.join("ready").exists() && state.exists(),
        "the container planted its program",
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode(&upper.join("suid")) & 0o4000, 0o4000, "not setuid");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&up.dir.path().join("state")), 0o711);
    assert_eq!(mode(&data.join(format!("{}/logs/c.log", up.name))), 0o640);
    assert_eq!(
        mode(&up.dir.path().join(format!("state/{}/state.json", up.name))),
        0o600
    );
    let layers = std::fs::read_dir(data.join("images/layers"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    // A shell of the unprivileged user (setpriv itself reaches its
    // program before it drops its ids, so the shell does the reaching).
    let as_nobody = |script: String| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["/bin/sh", "-c", &script])
            .output()
            .unwrap()
    };
    let run = as_nobody(format!("exec {} euid", upper.join("suid").display()));
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        !said.contains("euid 0") && !run.status.success(),
        "a host user ran the container's program: {said}"
    );
    let cat = as_nobody(format!("cat {}", layers.join("bin/busybox").display()));
    assert!(!cat.status.success(), "a host user read the image store");
}
