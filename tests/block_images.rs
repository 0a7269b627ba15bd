//! Filesystem images, as root: squashfs and erofs files on loop devices
//! (which go with their container), one replaced under a running stack,
//! and dm-verity images that run only as their root hash says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::oci::*;
use common::*;

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
