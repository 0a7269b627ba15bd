//! A validated stack written back in the stack file's own keys, with every
//! default applied and `[defaults]` merged into each container: what
//! `check --effective` prints as TOML (a stack file that validates to the
//! same stack), and what `check --json` and `inspect` print as JSON. Paths
//! are absolute, so the text works from any folder.

mod sections;
mod value;

use std::fmt::Write as _;

use super::stack::*;
use sections::{mount, resources, security};
pub use value::Value;
use value::{T, key};

/// The whole stack in the file's keys.
pub fn stack(s: &Stack) -> Value {
    let mut t = T::default().set("name", Value::str(&s.name));
    if !s.networks.is_empty() {
        t = t.set(
            "networks",
            Value::Table(
                s.networks
                    .iter()
                    .map(|(n, net)| (n.to_string(), network(net)))
                    .collect(),
            ),
        );
    }
    if !s.volumes.is_empty() {
        t = t.set(
            "volumes",
            Value::Table(
                s.volumes
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            T::default()
                                .opt("path", v.path.as_deref().map(Value::path))
                                .done(),
                        )
                    })
                    .collect(),
            ),
        );
    }
    let u = &s.update;
    t = t.set(
        "update",
        T::default()
            .set("timeout", Value::str(u.timeout))
            .set("stable", Value::str(u.stable))
            .opt("rollback", u.rollback.map(|r| Value::str(r.as_str())))
            .set("keep", Value::int(u.keep))
            .done(),
    );
    t.set(
        "containers",
        Value::Table(
            s.containers
                .iter()
                .map(|(n, c)| (n.to_string(), container(c)))
                .collect(),
        ),
    )
    .done()
}

fn network(n: &Network) -> Value {
    T::default()
        .set(
            "driver",
            Value::str(match n.driver {
                Driver::Bridge => "bridge",
                Driver::None => "none",
            }),
        )
        .opt("subnet", n.subnet.map(Value::str))
        .opt("gateway", n.gateway.map(Value::str))
        .set("nat", Value::Bool(n.nat))
        .set("internal", Value::Bool(n.internal))
        .done()
}

/// One container in the file's keys, every default written out.
pub fn container(c: &Container) -> Value {
    let mut t = T::default()
        .set("image", Value::str(&c.image))
        .set(
            "pull_policy",
            Value::str(match c.pull_policy {
                PullPolicy::Missing => "missing",
                PullPolicy::Always => "always",
                PullPolicy::Never => "never",
            }),
        )
        .opt(
            "verity",
            c.verity.as_ref().map(|v| {
                T::default()
                    .set("root_hash", Value::str(&v.root_hash))
                    .set("hash_file", Value::path(&v.hash_file))
                    .done()
            }),
        )
        .opt(
            "build",
            c.build.as_ref().map(|b| {
                T::default()
                    .set("context", Value::path(&b.context))
                    .opt("file", b.file.as_ref().map(|f| Value::path(f)))
                    .set(
                        "args",
                        Value::Table(
                            b.args
                                .iter()
                                .map(|(k, v)| (k.clone(), Value::str(v)))
                                .collect(),
                        ),
                    )
                    .opt("target", b.target.as_ref().map(Value::str))
                    .done()
            }),
        )
        .opt("entrypoint", c.entrypoint.as_ref().map(Value::strings))
        .opt("command", c.command.as_ref().map(Value::strings))
        .set(
            "env",
            Value::Table(
                c.env
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::str(v)))
                    .collect(),
            ),
        )
        .set("workdir", Value::path(&c.workdir))
        .opt(
            "user",
            c.user.as_ref().map(|u| match u {
                User::Id { uid, gid: None } => Value::str(uid),
                User::Id { uid, gid: Some(g) } => Value::str(format!("{uid}:{g}")),
                User::Name { name, group: None } => Value::str(name),
                User::Name {
                    name,
                    group: Some(g),
                } => Value::str(format!("{name}:{g}")),
            }),
        )
        .set("hostname", Value::str(&c.hostname))
        .set(
            "restart",
            Value::str(match c.restart {
                RestartPolicy::No => "no",
                RestartPolicy::OnFailure => "on-failure",
                RestartPolicy::Always => "always",
                RestartPolicy::UnlessStopped => "unless-stopped",
            }),
        )
        .set(
            "restart_backoff",
            T::default()
                .set("initial", Value::str(c.restart_backoff.initial))
                .set("max", Value::str(c.restart_backoff.max))
                .set("reset_after", Value::str(c.restart_backoff.reset_after))
                .done(),
        )
        .opt(
            "start_limit",
            c.start_limit.map(|s| {
                T::default()
                    .set("burst", Value::int(s.burst))
                    .set("interval", Value::str(s.interval))
                    .done()
            }),
        )
        .set(
            "depends_on",
            Value::Table(
                c.depends_on
                    .iter()
                    .map(|(n, cond)| {
                        let word = match cond {
                            Condition::Started => "started",
                            Condition::Healthy => "healthy",
                            Condition::Completed => "completed",
                        };
                        let v = if c.restart_with.contains(n) {
                            T::default()
                                .set("condition", Value::str(word))
                                .set("restart", Value::Bool(true))
                                .done()
                        } else {
                            Value::str(word)
                        };
                        (n.to_string(), v)
                    })
                    .collect(),
            ),
        )
        .set("stop_signal", Value::str(c.stop_signal))
        .set("stop_timeout", Value::str(c.stop_timeout))
        .set("read_only", Value::Bool(c.read_only));
    t = match &c.network {
        NetworkMode::Loopback => t,
        NetworkMode::Host => t.set("networks", Value::str("host")),
        NetworkMode::Networks(atts) => t.set(
            "networks",
            Value::Table(
                atts.iter()
                    .map(|a| {
                        (
                            a.network.to_string(),
                            T::default()
                                .opt("ip", a.ip.map(Value::str))
                                .set("aliases", Value::strings(&a.aliases))
                                .done(),
                        )
                    })
                    .collect(),
            ),
        ),
    };
    t.set("ports", Value::strings(&c.ports))
        .set("mounts", Value::Array(c.mounts.iter().map(mount).collect()))
        .set("resources", resources(&c.resources))
        .set("security", security(&c.security))
        .opt(
            "health",
            c.health.as_ref().map(|h| {
                T::default()
                    .set("command", Value::strings(&h.command))
                    .set("interval", Value::str(h.interval))
                    .set("timeout", Value::str(h.timeout))
                    .set("retries", Value::int(h.retries))
                    .set("start_period", Value::str(h.start_period))
                    .opt("on_failure", h.on_failure.map(|a| Value::str(a.as_str())))
                    .done()
            }),
        )
        .set(
            "logging",
            T::default()
                .set("driver", Value::str(c.logging.driver.as_str()))
                .set("max_size", Value::str(c.logging.max_size))
                .set("max_files", Value::int(c.logging.max_files))
                .done(),
        )
        .done()
}

/// The stack as a stack file: `name`, then `[networks.NAME]`,
/// `[volumes.NAME]`, `[update]` and `[containers.NAME]` tables whose
/// values are written inline.
pub fn to_toml(s: &Stack) -> String {
    let mut out = String::new();
    let Value::Table(top) = stack(s) else {
        return out;
    };
    for (k, v) in &top {
        match v {
            // A table of plain keys: one `[update]` table.
            Value::Table(fields) if k == "update" => {
                let _ = writeln!(out, "\n[{}]", key(k));
                for (fk, fv) in fields {
                    out.push_str(&key(fk));
                    out.push_str(" = ");
                    fv.toml_inline(&mut out);
                    out.push('\n');
                }
            }
            Value::Table(items) if k != "name" => {
                for (name, body) in items {
                    let _ = writeln!(out, "\n[{}.{}]", key(k), key(name));
                    if let Value::Table(fields) = body {
                        for (fk, fv) in fields {
                            out.push_str(&key(fk));
                            out.push_str(" = ");
                            fv.toml_inline(&mut out);
                            out.push('\n');
                        }
                    }
                }
            }
            other => {
                out.push_str(&key(k));
                out.push_str(" = ");
                other.toml_inline(&mut out);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Every example, written back in its own keys, is a stack file that
    /// validates to the same stack: the effective configuration can be
    /// fed back.
    #[test]
    fn every_example_reads_back_from_its_effective_form() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/stacks");
        let tmp = tempfile::tempdir().unwrap();
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let first = crate::config::load(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let text = to_toml(&first);
            let again = tmp.path().join("effective.toml");
            std::fs::write(&again, &text).unwrap();
            let second = crate::config::load(&again)
                .unwrap_or_else(|e| panic!("{path:?} as written back:\n{text}\n{e:?}"));
            assert_eq!(stack(&first), stack(&second), "{path:?}:\n{text}");
            assert_eq!(first.containers, second.containers, "{path:?}");
            n += 1;
        }
        assert!(n >= 5, "only {n} examples");
    }

    #[test]
    fn networks_keep_their_order_and_json_keeps_the_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("s.toml");
        std::fs::write(
            &file,
            "name = \"s\"\n[networks.zz]\nsubnet = \"10.89.2.0/24\"\n[networks.aa]\nsubnet = \"10.89.1.0/24\"\n[containers.c]\nimage = \"host\"\n\
             command = [\"/bin/true\"]\nnetworks = { zz = {}, aa = { ip = \"10.89.1.9\" } }\n\
             resources = { memory = \"64M\", cpus = 1.5, rlimits = { nofile = 1024 } }\n",
        )
        .unwrap();
        let s = crate::config::load(&file).unwrap();
        let text = to_toml(&s);
        assert!(
            text.contains(
                r#"networks = { zz = { aliases = [] }, aa = { ip = "10.89.1.9", aliases = [] } }"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"memory = "64M""#), "{text}");
        let json = serde_json::to_value(container(s.containers.values().next().unwrap())).unwrap();
        assert_eq!(json["resources"]["cpus"], 1.5);
        assert_eq!(json["resources"]["rlimits"]["nofile"]["soft"], 1024);
        assert_eq!(
            json["security"]["capabilities"]["drop"],
            serde_json::json!([])
        );
    }
}
