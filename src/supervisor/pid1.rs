//! rkstack as the machine's init (PID 1) of an appliance image: it mounts
//! what an init must (what is not mounted yet), takes the signals an init
//! gets to halt, power off or reboot, and never exits — the kernel panics
//! when its init does — but ends the machine as asked once the stack has
//! stopped.

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// Whether this process is the init of its machine: PID 1 of the initial
/// PID namespace (not PID 1 of a container or `unshare --pid`, which
/// mounts nothing and ends as any process does). Mounts /proc first when
/// PID 1 finds none, to tell. Decided once.
pub fn is_init() -> bool {
    static INIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INIT.get_or_init(|| {
        if std::process::id() != 1 {
            return false;
        }
        let ns = || std::fs::read_link("/proc/self/ns/pid").ok();
        let ns = ns().or_else(|| {
            let _ = std::fs::create_dir_all("/proc");
            let proc_ = c"proc";
            // SAFETY: NUL-terminated literals.
            unsafe {
                libc::mount(
                    proc_.as_ptr(),
                    c"/proc".as_ptr(),
                    proc_.as_ptr(),
                    NOSUID | NODEV | NOEXEC,
                    std::ptr::null(),
                )
            };
            ns()
        });
        // The initial PID namespace's inode number (PROC_PID_INIT_INO).
        ns.is_some_and(|l| l == Path::new("pid:[4026531836]"))
    })
}

/// A filesystem an init mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Basic {
    pub target: &'static str,
    pub fstype: &'static str,
    flags: u64,
    data: &'static str,
}

const NOSUID: u64 = libc::MS_NOSUID;
const NODEV: u64 = libc::MS_NODEV;
const NOEXEC: u64 = libc::MS_NOEXEC;

/// In mount order (a parent before what is mounted in it).
pub const BASICS: &[Basic] = &[
    Basic {
        target: "/proc",
        fstype: "proc",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    Basic {
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    Basic {
        target: "/dev",
        fstype: "devtmpfs",
        flags: NOSUID,
        data: "mode=0755",
    },
    Basic {
        target: "/dev/pts",
        fstype: "devpts",
        flags: NOSUID | NOEXEC,
        data: "mode=0620,ptmxmode=0666",
    },
    Basic {
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=1777",
    },
    Basic {
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=0755",
    },
    // cgroup2 by default: what production devices run.
    Basic {
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID | NODEV | NOEXEC,
        data: "nsdelegate",
    },
];

/// The basics a mountinfo text lacks (none mounted at their target).
pub fn missing(mountinfo: &str) -> Vec<Basic> {
    let mounted: Vec<std::path::PathBuf> =
        crate::sandbox::rootfs::mount_points(mountinfo).collect();
    BASICS
        .iter()
        .filter(|b| !mounted.iter().any(|m| m == Path::new(b.target)))
        .copied()
        .collect()
}

/// Mounts the basics not mounted yet; returns a line for each mounted or
/// failed (a failure is reported, not fatal: the stack may not need it).
pub fn mount_basics() -> Vec<String> {
    let mut out = Vec::new();
    // /proc first: mountinfo is read from it.
    let todo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => missing(&info),
        Err(_) => BASICS.to_vec(),
    };
    for b in todo {
        let _ = std::fs::create_dir_all(b.target);
        let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
        let (src, target, fstype, data) = (c(b.fstype), c(b.target), c(b.fstype), c(b.data));
        // SAFETY: NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                b.flags,
                if b.data.is_empty() {
                    std::ptr::null()
                } else {
                    data.as_ptr().cast()
                },
            )
        };
        if r == 0 {
            out.push(format!("mounted {} on {}", b.fstype, b.target));
        } else {
            out.push(format!(
                "could not mount {} on {}: {}",
                b.fstype,
                b.target,
                std::io::Error::last_os_error()
            ));
        }
    }
    out
}

/// What the machine does once the stack has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    PowerOff,
    Reboot,
    Halt,
}

/// The signals an init is sent to end the machine, beyond SIGTERM/SIGINT:
/// busybox's `halt`/`poweroff` (SIGUSR1/SIGUSR2), systemd's `systemctl
/// halt/poweroff/reboot` conventions (SIGRTMIN+3/+4/+5) and SIGPWR.
pub fn signals() -> Vec<i32> {
    let rt = libc::SIGRTMIN();
    vec![
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPWR,
        rt + 3,
        rt + 4,
        rt + 5,
    ]
}

/// What a signal to the init asks for; none for signals that do not end
/// the machine. SIGTERM powers off (what `kill 1` and most tools mean);
/// SIGINT is the kernel's Ctrl-Alt-Del: reboot.
pub fn finish_of(sig: i32) -> Option<Finish> {
    let rt = libc::SIGRTMIN();
    match sig {
        libc::SIGTERM | libc::SIGUSR2 | libc::SIGPWR => Some(Finish::PowerOff),
        libc::SIGINT => Some(Finish::Reboot),
        libc::SIGUSR1 => Some(Finish::Halt),
        s if s == rt + 3 => Some(Finish::Halt),
        s if s == rt + 4 => Some(Finish::PowerOff),
        s if s == rt + 5 => Some(Finish::Reboot),
        _ => None,
    }
}

static ASKED: AtomicI32 = AtomicI32::new(0);

/// Records the signal that stopped the stack (see [`finish`]).
pub fn stopped_by(sig: i32) {
    ASKED.store(sig, Ordering::Relaxed);
}

/// Ends the machine: what the signal that stopped the stack asked for
/// (power off when the stack stopped otherwise, e.g. by `rkstack down`).
/// Never returns.
pub fn finish() -> ! {
    let how = finish_of(ASKED.load(Ordering::Relaxed)).unwrap_or(Finish::PowerOff);
    end_machine(how)
}

fn end_machine(how: Finish) -> ! {
    let (cmd, what) = match how {
        Finish::PowerOff => (libc::RB_POWER_OFF, "powering off"),
        Finish::Reboot => (libc::RB_AUTOBOOT, "rebooting"),
        Finish::Halt => (libc::RB_HALT_SYSTEM, "halting"),
    };
    eprintln!("rkstack: {what}");
    // SAFETY: plain syscalls; every container has been stopped.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        libc::sync();
        libc::reboot(cmd);
    }
    // reboot(2) failed (no CAP_SYS_BOOT: a PID namespace's init); exiting
    // is what is left.
    std::process::exit(0)
}

/// After `up` failed as the init (a broken stack file, say): stays up,
/// reaping orphans, until asked to end the machine — exiting would panic
/// the kernel and hide the error scrolling on the console.
pub fn idle() -> ! {
    let mut all = vec![libc::SIGTERM, libc::SIGINT, libc::SIGCHLD, libc::SIGHUP];
    all.extend(signals());
    // SAFETY: a zeroed set filled by sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in &all {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    eprintln!("rkstack: the stack is not running; waiting to be powered off or rebooted");
    loop {
        let mut sig = 0;
        // SAFETY: set is valid and blocked.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        // SAFETY: reaping whatever ended.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        if let Some(how) = finish_of(sig) {
            end_machine(how);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_not_mounted_is_mounted() {
        let info = "\
1 0 0:2 / / rw - rootfs rootfs rw
20 1 0:20 / /proc rw,nosuid - proc proc rw
21 1 0:5 / /dev rw - devtmpfs devtmpfs rw
";
        let todo: Vec<&str> = missing(info).iter().map(|b| b.target).collect();
        assert_eq!(
            todo,
            ["/sys", "/dev/pts", "/dev/shm", "/run", "/sys/fs/cgroup"]
        );
        assert!(missing("").len() == BASICS.len());
    }

    #[test]
    fn signals_to_the_init_end_the_machine_as_the_usual_tools_mean() {
        let rt = libc::SIGRTMIN();
        assert_eq!(finish_of(libc::SIGTERM), Some(Finish::PowerOff));
        assert_eq!(finish_of(libc::SIGUSR2), Some(Finish::PowerOff));
        assert_eq!(finish_of(rt + 4), Some(Finish::PowerOff));
        assert_eq!(finish_of(libc::SIGINT), Some(Finish::Reboot));
        assert_eq!(finish_of(rt + 5), Some(Finish::Reboot));
        assert_eq!(finish_of(libc::SIGUSR1), Some(Finish::Halt));
        assert_eq!(finish_of(libc::SIGHUP), None);
        assert_eq!(finish_of(libc::SIGCHLD), None);
    }
}
