//! Rules for values that parse but cannot work (a memory limit no process
//! starts under, zero pids or CPUs, a user id out of range, a user
//! namespace that maps root to the host's root): one place, so the stack
//! file and `rkstack run` refuse (or warn about) them with the same words.

use std::path::Path;

use super::stack::{IdMap, Mount, User};
use super::types::ByteSize;

/// The smallest memory limit accepted (Docker's): below it the runtime's
/// own start of the container can be OOM-killed before the command runs.
pub const MIN_MEMORY: u64 = 6 << 20;
/// The range of `cpus`.
pub const CPUS: std::ops::RangeInclusive<f64> = 0.01..=4096.0;

pub fn memory(s: ByteSize) -> Result<ByteSize, String> {
    if s.0 < MIN_MEMORY {
        return Err(format!(
            "memory limit {s} is below 6M, the least a container can start in"
        ));
    }
    Ok(s)
}

pub fn cpus(x: f64) -> Result<f64, String> {
    if CPUS.contains(&x) {
        Ok(x)
    } else {
        Err(format!("cpus {x} is out of range (0.01..=4096)"))
    }
}

pub fn pids(n: u64) -> Result<u64, String> {
    match n {
        0 => Err("pids 0 would let no process start; at least 1".into()),
        n if n > u64::from(u32::MAX) => Err(format!("pids {n} is out of range (1..=4294967295)")),
        n => Ok(n),
    }
}

/// `uid[:gid]` or `name[:group]`. A part made of digits is an id, and must
/// be one (0..=4294967294; 4294967295 is "no id").
pub fn user(s: &str) -> Result<User, String> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.len() <= 32
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if !valid_name(u) || g.is_some_and(|g| !valid_name(g)) {
        return Err(format!(
            "invalid user {s:?}: expected uid[:gid] or a user name"
        ));
    }
    let id = |part: &str, what: &str| -> Result<Option<u32>, String> {
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        match part.parse::<u32>() {
            Ok(n) if n < u32::MAX => Ok(Some(n)),
            _ => Err(format!(
                "invalid user {s:?}: {what} {part} is out of range (0..=4294967294)"
            )),
        }
    };
    match (id(u, "uid")?, g.map(|g| id(g, "gid")).transpose()?) {
        (Some(uid), None) => Ok(User::Id { uid, gid: None }),
        (Some(uid), Some(Some(gid))) => Ok(User::Id {
            uid,
            gid: Some(gid),
        }),
        _ => Ok(User::Name {
            name: u.to_string(),
            group: g.map(str::to_string),
        }),
    }
}

/// A mount's target may not be, or lie under, what rkstack mounts itself:
/// it would be hidden under the system mount (or replace the root), with
/// its mount point made in the rootfs for nothing. The one exception is
/// the format's own: a tmpfs at `/dev/shm` replaces rkstack's (to set its
/// size).
pub fn mount_target(m: &Mount) -> Result<(), String> {
    let t = m.target();
    if t == Path::new("/") {
        return Err("a mount cannot target / (the container's root comes from image)".into());
    }
    if matches!(m, Mount::Tmpfs { .. }) && t == Path::new("/dev/shm") {
        return Ok(());
    }
    for (system, what) in [
        ("/proc", "rkstack mounts the container's own /proc there"),
        ("/sys", "rkstack mounts /sys there"),
        (
            "/dev",
            "rkstack makes /dev itself (device nodes come from devices = [...]; \
             only a tmpfs at /dev/shm may replace its own)",
        ),
    ] {
        if t.starts_with(system) {
            return Err(format!("a mount cannot target {}: {what}", t.display()));
        }
    }
    Ok(())
}

/// A warning when a user namespace's maps give the container's root the
/// host's root (an identity map of id 0): it isolates nothing.
pub fn identity_map_warning(uid: &[IdMap]) -> Option<String> {
    uid.iter()
        .any(|m| m.inside == 0 && m.outside == 0 && m.count > 0)
        .then(|| {
            "its user namespace maps root inside to the host's root (0:0): \
             root in the container is root on the host; map 0 to an unused \
             range (e.g. 0:100000:65536) or use \"auto\""
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_cannot_work_are_refused_with_the_reason() {
        assert!(memory(ByteSize(4096)).is_err_and(|e| e.contains("below 6M")));
        assert!(memory(ByteSize((6 << 20) - 1)).is_err());
        assert!(memory(ByteSize(6 << 20)).is_ok());
        assert!(pids(0).is_err_and(|e| e.contains("at least 1")));
        assert!(pids(1).is_ok());
        assert!(cpus(0.0).is_err_and(|e| e.contains("out of range")));
        assert!(cpus(0.01).is_ok());
    }

    #[test]
    fn user_ids_out_of_range_are_not_taken_for_names() {
        let e = user("0:99999999999").err().unwrap_or_default();
        assert!(e.contains("gid 99999999999 is out of range"), "{e}");
        let e = user("4294967295").err().unwrap_or_default();
        assert!(e.contains("uid 4294967295 is out of range"), "{e}");
        assert_eq!(
            user("1000:100").ok(),
            Some(User::Id {
                uid: 1000,
                gid: Some(100)
            })
        );
        assert_eq!(
            user("app:staff").ok(),
            Some(User::Name {
                name: "app".into(),
                group: Some("staff".into())
            })
        );
    }

    #[test]
    fn mounts_over_the_runtimes_own_are_refused() {
        let bind = |t: &str| Mount::Bind {
            source: "/srv".into(),
            target: t.into(),
            read_only: false,
        };
        let tmpfs = |t: &str| Mount::Tmpfs {
            target: t.into(),
            size: None,
            mode: None,
        };
        for t in [
            "/",
            "/proc",
            "/proc/self/attr",
            "/proc/sys/kernel",
            "/sys",
            "/dev",
            "/dev/shm",
        ] {
            assert!(mount_target(&bind(t)).is_err(), "{t}");
        }
        assert!(mount_target(&tmpfs("/dev/shm")).is_ok());
        assert!(mount_target(&tmpfs("/dev/mqueue")).is_err());
        assert!(mount_target(&bind("/procfs")).is_ok());
        assert!(mount_target(&bind("/srv/dev")).is_ok());
    }

    #[test]
    fn an_identity_map_of_root_is_warned_about() {
        let m = |inside, outside, count| IdMap {
            inside,
            outside,
            count,
        };
        assert!(identity_map_warning(&[m(0, 0, 65536)]).is_some());
        assert!(identity_map_warning(&[m(0, 100_000, 65536)]).is_none());
    }
}
