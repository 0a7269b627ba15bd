//! The appliance scenarios, booted in qemu (tests/appliance/run.sh): rkstack
//! as PID 1 of an initramfs image on pure cgroup v2. Each builds its image
//! from Debian packages (cached under target/appliance) and checks what the
//! probe inside printed on the serial console; a failure prints the
//! console's tail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::process::Command;

fn scenario(name: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/appliance/run.sh");
    let out = Command::new(script).arg(name).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "scenario {name} failed:\n{text}");
}

#[test]
fn rkstack_as_pid_1_of_a_vm_on_cgroup_v2() {
    require_root!();
    scenario("pid1");
}
