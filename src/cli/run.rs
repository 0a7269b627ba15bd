//! `rkstack run`: one container in the foreground; its options become a
//! container of the stack format, validated with the same types the stack
//! file uses (one vocabulary).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rkstack::config::limits;
use rkstack::config::types::{self, CapName};
use rkstack::config::{
    ByteSize, Container, IdMap, ImageRef, Mount, Name, NetworkMode, PullPolicy, RLIMIT_NAMES,
    Resources, RestartPolicy, Rlimit, Seccomp, Security, UserNamespace, defaults,
    effective_capabilities,
};

use std::process::ExitCode;

use super::{EXIT_FAILED, EXIT_INVALID, Global, RunArgs};

/// `rkstack run`: exit with the container's status (128+N for a signal).
pub fn run(global: &Global, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let container = match container(args, &name) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("rkstack: {msg}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let opts = rkstack::container::run::RunOptions {
        insecure_registries: global.insecure_registries.clone(),
        state_dir: global.state_dir.clone(),
        data_dir: global.data_dir.clone(),
        stack: defaults::ONE_OFF_STACK.into(),
    };
    match rkstack::container::run::run(&container, &opts) {
        Ok(exit) => {
            if exit == rkstack::container::run::Exit::Oom {
                eprintln!(
                    "rkstack: {name}: killed by the out-of-memory killer (memory limit reached)"
                );
            }
            Ok(ExitCode::from(
                u8::try_from(exit.status()).unwrap_or(EXIT_FAILED),
            ))
        }
        Err(e) => {
            eprintln!("rkstack: {}", with_causes(&e));
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

/// An error and what caused it, on one line: `cgroup …: write "…":
/// Invalid argument (os error 22)`. A cause the message already says is
/// not said again.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

pub fn container(a: &RunArgs, name: &str) -> Result<Container, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let name = Name::parse(name, Name::MAX).map_err(|m| format!("--name: {m}"))?;
    let image = match a.rootfs.as_str() {
        "host" => ImageRef::Host,
        s if s.starts_with("dir:") => ImageRef::Dir {
            path: types::host_path(&s[4..], &cwd)?,
        },
        s if s.starts_with("oci:") => {
            let p = &s[4..];
            // oci:LAYOUT_DIR[:TAG]; a tag never holds '/'.
            let (dir, tag) = match p.rsplit_once(':') {
                Some((d, t)) if !t.is_empty() && !t.contains('/') => (d, Some(t.to_string())),
                _ => (p, None),
            };
            ImageRef::Oci {
                layout: types::host_path(dir, &cwd)?,
                tag,
            }
        }
        s if s.starts_with("tar:") => ImageRef::Tar {
            path: types::host_path(&s[4..], &cwd)?,
        },
        s if s.starts_with("squashfs:") => ImageRef::Squashfs {
            path: types::host_path(&s[9..], &cwd)?,
        },
        s if s.starts_with("erofs:") => ImageRef::Erofs {
            path: types::host_path(&s[6..], &cwd)?,
        },
        s if s.starts_with("localhost/") => ImageRef::Local {
            name: rkstack::config::local_name(s)?,
        },
        s if s.starts_with("docker://") => ImageRef::Docker {
            reference: s["docker://".len()..].to_string(),
        },
        s if s.contains("://") => {
            return Err(format!(
                "image {s}: expected a directory, dir:PATH, oci:DIR[:TAG], tar:PATH, docker://REF, squashfs:PATH, erofs:PATH or host"
            ));
        }
        s => ImageRef::Dir {
            path: types::host_path(s, &cwd)?,
        },
    };
    let mut env = BTreeMap::new();
    for e in &a.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| format!("-e {e}: expected KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("-e {e}: empty name"));
        }
        env.insert(k.to_string(), v.to_string());
    }
    let mut mounts = Vec::new();
    for v in &a.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => return Err(format!("-v {v}: expected SOURCE:TARGET[:ro]")),
        };
        let source = types::host_path(src, &cwd)?;
        mounts.push(Mount::Bind {
            // Resolved now; the start refuses a symlink that appears later.
            source: std::fs::canonicalize(&source).unwrap_or(source),
            target: types::container_path(dst).map_err(|m| format!("-v {v}: {m}"))?,
            read_only: ro,
        });
    }
    for t in &a.tmpfs {
        mounts.push(Mount::Tmpfs {
            target: types::container_path(t).map_err(|m| format!("--tmpfs {t}: {m}"))?,
            size: None,
            mode: None,
        });
    }
    for m in &mounts {
        limits::mount_target(m).map_err(|e| format!("{}: {e}", mount_flag(m)))?;
    }
    let caps = |list: &[String], flag: &str| -> Result<Vec<CapName>, String> {
        list.iter()
            .map(|c| CapName::parse(c).map_err(|m| format!("{flag}: {m}")))
            .collect()
    };
    let capabilities = effective_capabilities(
        &caps(&a.cap_drop, "--cap-drop")?,
        &caps(&a.cap_add, "--cap-add")?,
    );
    let seccomp = match a.seccomp.as_deref() {
        None | Some("default") => Seccomp::Default,
        Some("unconfined") => Seccomp::Unconfined,
        Some(p) => Seccomp::Profile(types::host_path(p, &cwd)?),
    };
    let user_namespace = match a.userns.as_deref() {
        None | Some("off") => UserNamespace::Off,
        Some("auto") => UserNamespace::Auto,
        Some(m) => {
            let parts: Vec<u32> = m
                .split(':')
                .map(|x| {
                    x.parse()
                        .map_err(|_| format!("--userns {m}: expected off, auto or IN:OUT:COUNT"))
                })
                .collect::<Result<_, _>>()?;
            let [inside, outside, count] = parts[..] else {
                return Err(format!("--userns {m}: expected off, auto or IN:OUT:COUNT"));
            };
            let map = IdMap {
                inside,
                outside,
                count,
            };
            UserNamespace::Maps {
                uid: vec![map],
                gid: vec![map],
            }
        }
    };
    let network = match a.network.as_deref() {
        None | Some("none") => NetworkMode::Loopback,
        Some("host") => NetworkMode::Host,
        Some(n) => {
            return Err(format!(
                "--network {n}: only none and host can be used with run"
            ));
        }
    };
    let user = a
        .user
        .as_deref()
        .map(limits::user)
        .transpose()
        .map_err(|m| format!("--user: {m}"))?;
    let mut rlimits = BTreeMap::new();
    for u in &a.ulimits {
        let bad = || format!("--ulimit {u}: expected NAME=SOFT[:HARD], like nofile=1024:2048");
        let (n, v) = u.split_once('=').ok_or_else(bad)?;
        if !RLIMIT_NAMES.contains(&n) {
            return Err(format!(
                "--ulimit {u}: unknown limit {n:?} (one of {})",
                RLIMIT_NAMES.join(", ")
            ));
        }
        let num = |x: &str| -> Result<Option<u64>, String> {
            match x {
                "unlimited" => Ok(None),
                _ => x.parse().map(Some).map_err(|_| bad()),
            }
        };
        let (soft, hard) = match v.split_once(':') {
            Some((s, h)) => (num(s)?, num(h)?),
            None => (num(v)?, num(v)?),
        };
        rlimits.insert(n.to_string(), Rlimit { soft, hard });
    }
    let resources = Resources {
        rlimits,
        memory: a
            .memory
            .as_deref()
            .map(|m| ByteSize::parse(m).and_then(limits::memory))
            .transpose()
            .map_err(|m| format!("--memory: {m}"))?,
        cpus: a
            .cpus
            .map(limits::cpus)
            .transpose()
            .map_err(|m| format!("--cpus: {m}"))?,
        pids: a
            .pids
            .map(limits::pids)
            .transpose()
            .map_err(|m| format!("--pids: {m}"))?,
        ..Resources::default()
    };
    Ok(Container {
        hostname: a.hostname.clone().unwrap_or_else(|| name.to_string()),
        name,
        image,
        pull_policy: PullPolicy::Missing,
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        env,
        workdir: a
            .workdir
            .as_deref()
            .map(types::container_path)
            .transpose()?
            .unwrap_or_else(|| PathBuf::from("/")),
        user,
        restart: RestartPolicy::No,
        restart_backoff: defaults::backoff(),
        start_limit: None,
        depends_on: BTreeMap::new(),
        restart_with: Default::default(),
        stop_signal: defaults::STOP_SIGNAL,
        stop_timeout: rkstack::config::Duration::from_secs(defaults::STOP_TIMEOUT_SECS),
        read_only: a.read_only,
        verity: None,
        build: None,
        network,
        ports: Vec::new(),
        mounts,
        resources,
        security: Security {
            capabilities,
            seccomp,
            no_new_privileges: true,
            user_namespace,
            masked_paths: Vec::new(),
            apparmor: None,
            selinux_label: None,
        },
        health: None,
        logging: defaults::logging(),
    })
}

/// The option a mount of `run` came from, for messages.
fn mount_flag(m: &Mount) -> String {
    match m {
        Mount::Tmpfs { target, .. } => format!("--tmpfs {}", target.display()),
        other => format!("-v {}", other.target().display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cgroup /x: write \"1\"")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_says_its_cause_once() {
        let e = Outer(std::io::Error::from_raw_os_error(libc::EINVAL));
        assert_eq!(
            with_causes(&e),
            "cgroup /x: write \"1\": Invalid argument (os error 22)"
        );
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(with_causes(&io), io.to_string());
    }
}
