//! The appliance scenarios, booted in qemu (tests/appliance/run.sh), all on
//! pure cgroup v2: rkstack as PID 1 of an initramfs image (x86_64, and
//! aarch64 cross-built and emulated), and as rkstack@demo.service under
//! systemd 257 (Debian trixie) and 252 (bookworm). Each builds its image from Debian packages (cached under
//! target/appliance) and checks what the probe inside printed on the
//! serial console; a failure prints the console's tail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::Command;

/// Runs one scenario; its output, or why it failed.
fn scenario(args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/appliance/run.sh");
    let out = Command::new(script).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("scenario {}:\n{text}", args.join(" ")))
    }
}

/// The VMs boot one after the other: each takes both cores of a CI machine.
#[test]
fn appliances_pid_1_and_under_systemd_on_cgroup_v2() {
    require_root!();
    let mut failed = Vec::new();
    // The systemd images' Debian bases are made (debootstrap: mostly
    // download and unpacking) while the PID-1 images build and boot.
    let bases = std::thread::spawn(|| {
        for suite in ["trixie", "bookworm"] {
            // A failure here is reported by its scenario, which tries again.
            let _ = scenario(&["base", suite]);
        }
    });
    let mut scenarios = vec![&["pid1"][..]];
    // The arm64 image needs the aarch64 std from rustup and Debian's cross
    // tools (scripts/test.sh adds them where it can).
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let has = |p: &str| std::path::Path::new(p).exists();
    if targets.contains("aarch64-unknown-linux-gnu")
        && has("/usr/bin/aarch64-linux-gnu-gcc")
        && has("/usr/lib/aarch64-linux-gnu/libseccomp.a")
        && has("/usr/bin/qemu-system-aarch64")
    {
        scenarios.push(&["pid1", "arm64"][..]);
    } else {
        common::skipped(
            "arm64",
            "pid1 arm64 not run (needs rustup's aarch64-unknown-linux-gnu, gcc-aarch64-linux-gnu, libseccomp-dev:arm64, qemu-system-arm; see scripts/test.sh)",
        );
    }
    let mut run = |args: &[&str]| match scenario(args) {
        Ok(text) => eprintln!("{text}"),
        Err(e) => failed.push(e),
    };
    for args in scenarios {
        run(args);
    }
    let _ = bases.join();
    for args in [&["systemd", "trixie"][..], &["systemd", "bookworm"][..]] {
        run(args);
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
