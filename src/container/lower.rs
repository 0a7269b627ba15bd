//! From a validated container of the stack file to the sandbox's own
//! vocabulary: paths resolved, limits in cgroup terms, seccomp compiled.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::{Container, ImageRef, Mount, NetworkMode, Seccomp, User, UserNamespace};
use crate::sandbox::cgroup::{IoLimit, Limits};
use crate::sandbox::seccomp;
use crate::sandbox::spec::{
    ExecSpec, IdMaps, MountSpec, NetNs, RlimitSpec, Root, SandboxSpec, SeccompSpec, UserSpec,
};

#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("{name}: image {image} is not supported yet (use dir:PATH or host)")]
    Image { name: String, image: String },
    #[error("{name}: {what}")]
    Invalid { name: String, what: String },
    #[error("{name}: {source}")]
    Seccomp {
        name: String,
        #[source]
        source: seccomp::SeccompError,
    },
}

/// Where per-run files live on the host.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Data directory (volumes live under `DATA/volumes/STACK/NAME`).
    pub data_dir: PathBuf,
    pub stack: String,
    /// Volumes with a configured `path`.
    pub volume_paths: std::collections::BTreeMap<String, PathBuf>,
    /// The container's image layers, for an image from the store.
    pub image: Option<super::images::ImageFs>,
}

impl Paths {
    /// Where a named volume lives on the host.
    pub fn volume(&self, name: &str) -> PathBuf {
        self.volume_paths
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.data_dir.join("volumes").join(&self.stack).join(name))
    }
}

/// The sandbox spec of a container. `staging` is an empty directory the
/// caller made; `user_ns` is the range chosen for `user_namespace = "auto"`.
pub fn sandbox_spec(
    c: &Container,
    paths: &Paths,
    staging: &Path,
    auto_userns: Option<(u32, u32)>,
    cgroup_procs: Vec<PathBuf>,
    seccomp_cache: Option<&Path>,
) -> Result<SandboxSpec, LowerError> {
    let name = c.name.to_string();
    let root = match &c.image {
        ImageRef::Dir { path } => Root::Dir(path.clone()),
        ImageRef::Host => Root::Host,
        ImageRef::Squashfs { .. } | ImageRef::Erofs { .. } if paths.image.is_some() => {
            let fs = paths.image.as_ref().ok_or_else(|| LowerError::Invalid {
                name: name.clone(),
                what: "image not prepared".into(),
            })?;
            let Some((file, fstype)) = &fs.block else {
                return Err(LowerError::Invalid {
                    name,
                    what: "image not prepared".into(),
                });
            };
            Root::Image {
                file: file.clone(),
                fstype: fstype.to_string(),
                upper: fs.upper.clone(),
                verity: c.verity.as_ref().map(|v| crate::sandbox::spec::VeritySpec {
                    hash_file: v.hash_file.clone(),
                    root_hash: v.root_hash.clone(),
                }),
            }
        }
        ImageRef::Oci { .. }
        | ImageRef::Tar { .. }
        | ImageRef::Docker { .. }
        | ImageRef::Local { .. }
            if paths.image.is_some() =>
        {
            let fs = paths.image.as_ref().ok_or_else(|| LowerError::Invalid {
                name: name.clone(),
                what: "image not prepared".into(),
            })?;
            Root::Overlay {
                lowers: fs.lowers.clone(),
                upper: fs.upper.clone(),
            }
        }
        other => {
            return Err(LowerError::Image {
                name,
                image: other.to_string(),
            });
        }
    };
    let defaults = paths.image.as_ref().map(|i| &i.defaults);
    let command = super::argv::argv(
        c.entrypoint.as_deref(),
        c.command.as_deref(),
        defaults.map(|d| d.entrypoint.as_slice()),
        defaults.map(|d| d.cmd.as_slice()),
    )
    .ok_or_else(|| LowerError::Invalid {
        name: name.clone(),
        what: "no command (neither in the stack file nor in the image)".into(),
    })?;
    let mounts = c
        .mounts
        .iter()
        .map(|m| match m {
            Mount::Bind {
                source,
                target,
                read_only,
            } => MountSpec::Bind {
                source: source.clone(),
                target: target.clone(),
                read_only: *read_only,
            },
            Mount::Volume {
                source,
                target,
                read_only,
            } => MountSpec::Bind {
                source: paths.volume(source.as_str()),
                target: target.clone(),
                read_only: *read_only,
            },
            Mount::Tmpfs { target, size, mode } => MountSpec::Tmpfs {
                target: target.clone(),
                size: size.map(|s| s.0),
                mode: *mode,
            },
        })
        .collect();
    let user_ns = match &c.security.user_namespace {
        UserNamespace::Off => None,
        UserNamespace::Auto => auto_userns.map(|(start, count)| IdMaps {
            uid: vec![(0, start, count)],
            gid: vec![(0, start, count)],
        }),
        UserNamespace::Maps { uid, gid } => Some(IdMaps {
            uid: {
                if let Some(w) = crate::config::limits::identity_map_warning(uid) {
                    tracing::warn!(container = %c.name, "{}: {w}", c.name);
                }
                uid.iter().map(|m| (m.inside, m.outside, m.count)).collect()
            },
            gid: gid.iter().map(|m| (m.inside, m.outside, m.count)).collect(),
        }),
    };
    let Identity {
        capabilities,
        seccomp,
        user,
        env,
    } = identity(c, seccomp_cache)?;
    // The image's user, environment and working directory under the file's own.
    let user = match defaults.and_then(|d| d.user.as_deref()) {
        Some(u) if c.user.is_none() => image_user(u),
        _ => user,
    };
    let mut env = env;
    let mut workdir = c.workdir.clone();
    if let Some(d) = defaults {
        let set: Vec<String> = env
            .iter()
            .filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        for e in &d.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            if !set.iter().any(|k| k == key) || key == "HOME" && !c.env.contains_key("HOME") {
                env.retain(|x| x.split_once('=').is_none_or(|(k, _)| k != key));
                env.push(e.clone());
            }
        }
        if workdir == Path::new("/")
            && let Some(w) = &d.workdir
        {
            workdir = PathBuf::from(w);
        }
    }

    Ok(SandboxSpec {
        name,
        root,
        staging: staging.to_path_buf(),
        read_only: c.read_only,
        command,
        env,
        workdir,
        user,
        hostname: c.hostname.clone(),
        net: if c.network == NetworkMode::Host {
            NetNs::Host
        } else {
            NetNs::New
        },
        user_ns,
        mounts,
        masked_paths: c.security.masked_paths.clone(),
        devices: c.resources.devices.iter().map(|d| d.path.clone()).collect(),
        rlimits: rlimits(c),
        capabilities,
        no_new_privileges: c.security.no_new_privileges,
        seccomp,
        cgroup_procs,
        join_late: false,
        die_with_parent: false,
        discard_layer: false,
        hold_before_exec: false,
        apparmor: c
            .security
            .apparmor
            .clone()
            .filter(|_| lsm_enabled("apparmor")),
        selinux_label: c
            .security
            .selinux_label
            .clone()
            .filter(|_| lsm_enabled("selinux")),
    })
}

/// A process run inside a running container with its identity and security
/// profile (health checks, `exec`).
pub fn exec_spec(
    c: &Container,
    target: i32,
    command: Vec<String>,
    cgroup_procs: Vec<PathBuf>,
    seccomp_cache: Option<&Path>,
) -> Result<ExecSpec, LowerError> {
    let Identity {
        capabilities,
        seccomp,
        user,
        env,
    } = identity(c, seccomp_cache)?;
    Ok(ExecSpec {
        name: c.name.to_string(),
        target,
        command,
        env,
        workdir: c.workdir.clone(),
        user,
        user_ns: c.security.user_namespace != UserNamespace::Off,
        capabilities,
        no_new_privileges: c.security.no_new_privileges,
        seccomp,
        cgroup_procs,
        terminal: None,
        rlimits: rlimits(c),
    })
}

/// The container's resource limits: its file's, and `nofile` as rkstack
/// was given it where the file sets none (see [`super::nofile`]).
fn rlimits(c: &Container) -> Vec<RlimitSpec> {
    c.resources
        .rlimits
        .iter()
        .map(|(k, v)| RlimitSpec {
            name: k.clone(),
            soft: v.soft,
            hard: v.hard,
        })
        .chain(
            super::nofile::for_containers()
                .filter(|_| !c.resources.rlimits.contains_key("nofile"))
                .map(|(soft, hard)| RlimitSpec {
                    name: "nofile".into(),
                    soft: Some(soft),
                    hard: Some(hard),
                }),
        )
        .collect()
}

/// The user an image's config names (`uid[:gid]` or `name[:group]`).
pub fn image_user(s: &str) -> UserSpec {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    match (u.parse::<u32>(), g.map(|g| g.parse::<u32>())) {
        (Ok(uid), None) => UserSpec::Id { uid, gid: None },
        (Ok(uid), Some(Ok(gid))) => UserSpec::Id {
            uid,
            gid: Some(gid),
        },
        _ => UserSpec::Name {
            name: u.to_string(),
            group: g.map(String::from),
        },
    }
}

/// What every process of a container runs as: capabilities, seccomp
/// program, user, environment.
struct Identity {
    capabilities: Vec<String>,
    seccomp: SeccompSpec,
    user: UserSpec,
    env: Vec<String>,
}

fn identity(c: &Container, seccomp_cache: Option<&Path>) -> Result<Identity, LowerError> {
    let capabilities: Vec<String> = c
        .security
        .capabilities
        .iter()
        .map(|s| s.to_string())
        .collect();
    let seccomp = match &c.security.seccomp {
        Seccomp::Unconfined => SeccompSpec::Unconfined,
        profile => SeccompSpec::Bpf(
            super::seccomp_cache::compiled(profile, &capabilities, seccomp_cache).map_err(
                |source| LowerError::Seccomp {
                    name: c.name.to_string(),
                    source,
                },
            )?,
        ),
    };
    let user = match &c.user {
        None => UserSpec::Id {
            uid: 0,
            gid: Some(0),
        },
        Some(User::Id { uid, gid }) => UserSpec::Id {
            uid: *uid,
            gid: *gid,
        },
        Some(User::Name { name, group }) => UserSpec::Name {
            name: name.clone(),
            group: group.clone(),
        },
    };
    let mut env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !c.env.contains_key("HOSTNAME") {
        env.push(format!("HOSTNAME={}", c.hostname));
    }
    if !c.env.contains_key("HOME") {
        env.push("HOME=/root".into());
    }
    Ok(Identity {
        capabilities,
        seccomp,
        user,
        env,
    })
}

/// Whether the kernel runs this security module. Where it does not, a
/// configured profile is skipped (the caller warns).
pub fn lsm_enabled(name: &str) -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|l| l.trim().split(',').any(|m| m == name))
        .unwrap_or(false)
}

/// Warnings for settings this host cannot apply.
/// Whether `c`'s own seccomp profile compiles (its JSON, actions,
/// operators and architectures); `None` for the default profile or a file
/// not found here (`preflight` reports that on the device).
pub fn seccomp_problem(c: &Container) -> Option<String> {
    let Seccomp::Profile(p) = &c.security.seccomp else {
        return None;
    };
    if !p.exists() {
        return None;
    }
    seccomp::profile_file(p, &[])
        .err()
        .map(|e| format!("{}: seccomp profile {}: {e}", c.name, p.display()))
}

pub fn warnings(c: &Container) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(p) = &c.security.apparmor
        && !lsm_enabled("apparmor")
    {
        w.push(format!(
            "{}: AppArmor is not enabled in this kernel; profile {p} is not applied",
            c.name
        ));
    }
    if let Some(l) = &c.security.selinux_label
        && !lsm_enabled("selinux")
    {
        w.push(format!(
            "{}: SELinux is not enabled in this kernel; label {l} is not applied",
            c.name
        ));
    }
    w
}

/// The container's limits in cgroup terms (device numbers looked up on the host).
pub fn cgroup_limits(c: &Container) -> Result<Limits, LowerError> {
    let r = &c.resources;
    let mut io = Vec::new();
    for l in &r.io_limits {
        let (major, minor) = device_numbers(&l.device).map_err(|what| LowerError::Invalid {
            name: c.name.to_string(),
            what,
        })?;
        io.push(IoLimit {
            major,
            minor,
            read_bps: l.read_bps.map(|b| b.0),
            write_bps: l.write_bps.map(|b| b.0),
            read_iops: l.read_iops,
            write_iops: l.write_iops,
        });
    }
    Ok(Limits {
        memory: r.memory.map(|b| b.0),
        memory_low: r.memory_reservation.map(|b| b.0),
        cpus: r.cpus,
        cpu_weight: r.cpu_weight,
        cpuset: r
            .cpuset
            .as_ref()
            .map(|c| c.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
        pids: r.pids,
        io_weight: r.io_weight,
        io,
    })
}

/// v1 device-cgroup rules for the configured devices (`c 188:0 rw`).
pub fn device_rules(c: &Container) -> Result<Vec<String>, LowerError> {
    c.resources
        .devices
        .iter()
        .map(|d| {
            let meta = std::fs::metadata(&d.path).map_err(|e| LowerError::Invalid {
                name: c.name.to_string(),
                what: format!("device {}: {e}", d.path.display()),
            })?;
            let kind = if meta.file_type().is_block_device() {
                'b'
            } else if meta.file_type().is_char_device() {
                'c'
            } else {
                return Err(LowerError::Invalid {
                    name: c.name.to_string(),
                    what: format!("device {}: not a device node", d.path.display()),
                });
            };
            let (ma, mi) = split_dev(meta.rdev());
            Ok(format!("{kind} {ma}:{mi} {}", d.access))
        })
        .collect()
}

fn split_dev(rdev: u64) -> (u32, u32) {
    (libc::major(rdev), libc::minor(rdev))
}

fn device_numbers(p: &Path) -> Result<(u32, u32), String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("io limit device {}: {e}", p.display()))?;
    if !meta.file_type().is_block_device() {
        return Err(format!(
            "io limit device {} is not a block device",
            p.display()
        ));
    }
    Ok(split_dev(meta.rdev()))
}
