//! The image store, as root: `rmi` and `prune` spare what a running stack
//! declares or is made of and say what they freed; the data and state
//! trees are closed to host users.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;

use common::oci::*;
use common::*;

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
    // Opened, the stack's lock could be read-locked by a host user, which
    // would keep the next supervisor from starting.
    let lock = up.dir.path().join(format!("state/{}.lock", up.name));
    assert_eq!(mode(&lock), 0o600);
    let open = as_nobody(format!("exec 3<{}", lock.display()));
    assert!(
        !open.status.success(),
        "a host user opened the stack's lock"
    );
}
