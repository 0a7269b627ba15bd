//! A container's mounts, resources and security in the file's own keys.

use super::super::stack::*;
use super::super::types::CAPABILITIES;
use super::value::{T, Value};

pub(super) fn mount(m: &Mount) -> Value {
    match m {
        Mount::Bind {
            source,
            target,
            read_only,
        } => T::default()
            .set("type", Value::str("bind"))
            .set("source", Value::path(source))
            .set("target", Value::path(target))
            .set("read_only", Value::Bool(*read_only)),
        Mount::Volume {
            source,
            target,
            read_only,
        } => T::default()
            .set("type", Value::str("volume"))
            .set("source", Value::str(source))
            .set("target", Value::path(target))
            .set("read_only", Value::Bool(*read_only)),
        Mount::Tmpfs { target, size, mode } => T::default()
            .set("type", Value::str("tmpfs"))
            .set("target", Value::path(target))
            .opt("size", size.map(Value::str))
            .opt("mode", mode.map(|m| Value::str(format!("{m:o}")))),
    }
    .done()
}

pub(super) fn resources(r: &Resources) -> Value {
    let limit = |n: Option<u64>| n.map_or_else(|| Value::str("unlimited"), Value::int);
    T::default()
        .opt("memory", r.memory.map(Value::str))
        .opt("memory_reservation", r.memory_reservation.map(Value::str))
        .opt("cpus", r.cpus.map(Value::Float))
        .opt("cpu_weight", r.cpu_weight.map(Value::int))
        .opt(
            "cpuset",
            r.cpuset.as_ref().map(|cpus| {
                Value::str(
                    cpus.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                )
            }),
        )
        .opt("pids", r.pids.map(Value::int))
        .opt("io_weight", r.io_weight.map(Value::int))
        .set(
            "io_limits",
            Value::Array(
                r.io_limits
                    .iter()
                    .map(|l| {
                        T::default()
                            .set("device", Value::path(&l.device))
                            .opt("read_bps", l.read_bps.map(Value::str))
                            .opt("write_bps", l.write_bps.map(Value::str))
                            .opt("read_iops", l.read_iops.map(Value::int))
                            .opt("write_iops", l.write_iops.map(Value::int))
                            .done()
                    })
                    .collect(),
            ),
        )
        .set(
            "devices",
            Value::Array(
                r.devices
                    .iter()
                    .map(|d| {
                        T::default()
                            .set("path", Value::path(&d.path))
                            .set("access", Value::str(&d.access))
                            .done()
                    })
                    .collect(),
            ),
        )
        .set(
            "rlimits",
            Value::Table(
                r.rlimits
                    .iter()
                    .map(|(name, l)| {
                        (
                            name.clone(),
                            T::default()
                                .set("soft", limit(l.soft))
                                .set("hard", limit(l.hard))
                                .done(),
                        )
                    })
                    .collect(),
            ),
        )
        .done()
}

pub(super) fn security(s: &Security) -> Value {
    // The set as Docker's default with what was dropped and added.
    let default = defaults::capabilities();
    let short = |c: &&str| c.trim_start_matches("CAP_").to_string();
    let drop: Vec<String> = default
        .iter()
        .filter(|c| !s.capabilities.contains(c))
        .map(short)
        .collect();
    let add: Vec<String> = CAPABILITIES
        .iter()
        .filter(|c| s.capabilities.contains(c) && !default.contains(c))
        .map(short)
        .collect();
    let idmaps = |maps: &[IdMap]| {
        Value::strings(
            maps.iter()
                .map(|m| format!("{}:{}:{}", m.inside, m.outside, m.count)),
        )
    };
    T::default()
        .set(
            "capabilities",
            T::default()
                .set("drop", Value::strings(drop))
                .set("add", Value::strings(add))
                .done(),
        )
        .set(
            "seccomp",
            match &s.seccomp {
                Seccomp::Default => Value::str("default"),
                Seccomp::Unconfined => Value::str("unconfined"),
                Seccomp::Profile(p) => Value::path(p),
            },
        )
        .set("no_new_privileges", Value::Bool(s.no_new_privileges))
        .set(
            "user_namespace",
            match &s.user_namespace {
                UserNamespace::Off => Value::str("off"),
                UserNamespace::Auto => Value::str("auto"),
                UserNamespace::Maps { uid, gid } => T::default()
                    .set("uid", idmaps(uid))
                    .set("gid", idmaps(gid))
                    .done(),
            },
        )
        .set(
            "masked_paths",
            Value::Array(s.masked_paths.iter().map(|p| Value::path(p)).collect()),
        )
        .opt("apparmor", s.apparmor.as_ref().map(Value::str))
        .opt("selinux_label", s.selinux_label.as_ref().map(Value::str))
        .done()
}
