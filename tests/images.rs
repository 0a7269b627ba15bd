//! Images from an OCI layout or an archive, as root: layers unpacked once
//! and stacked with overlayfs, the image's command, environment and working
//! directory, whiteouts, copy-on-write apart per container, a tampered blob
//! refused. The store (rmi, prune, its folders) is in store.rs; registry pulls are in pulls.rs,
//! squashfs, erofs and dm-verity images in block_images.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::{Command, Stdio};

use common::oci::*;
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
