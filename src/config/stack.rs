//! The validated stack: what a stack file means, with every default applied.
//! Values of these types only come out of validation, so they are always valid.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::types::{ByteSize, CapName, Cidr, Duration, Name, PortSpec, Signal};

/// A whole stack file.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub name: Name,
    /// The file it was read from.
    pub file: PathBuf,
    pub networks: BTreeMap<Name, Network>,
    pub volumes: BTreeMap<Name, Volume>,
    /// Containers by name (defaults already merged in).
    pub containers: BTreeMap<Name, Container>,
    /// How a new version of this file is applied (`[update]`).
    pub update: Update,
}

/// `[update]`: the health gate of `apply` and, with `rollback = "auto"`,
/// of reloads of an edited file; how many generations are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Update {
    /// How long created and recreated containers have to become ready.
    pub timeout: Duration,
    /// How long they must then stay so.
    pub stable: Duration,
    /// `None`: `apply` rolls back a failure, a reload is not gated.
    pub rollback: Option<Rollback>,
    /// Generations kept.
    pub keep: u32,
}

/// What a failed health gate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rollback {
    /// Goes back to the last committed generation (reloads are gated too).
    Auto,
    /// Records the failure; the stack stays as it is.
    Never,
}

impl Rollback {
    pub fn as_str(self) -> &'static str {
        match self {
            Rollback::Auto => "auto",
            Rollback::Never => "never",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub name: Name,
    pub driver: Driver,
    /// Always set for bridge networks.
    pub subnet: Option<Cidr>,
    /// Always set for bridge networks.
    pub gateway: Option<IpAddr>,
    pub nat: bool,
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: Name,
    /// `None`: under the data directory (`DATA_DIR/volumes/STACK/NAME`).
    pub path: Option<PathBuf>,
}

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ImageRef {
    Dir {
        path: PathBuf,
    },
    Host,
    Tar {
        path: PathBuf,
    },
    Oci {
        layout: PathBuf,
        tag: Option<String>,
    },
    Docker {
        reference: String,
    },
    /// An image built here and named by `rkstack build -t`:
    /// `localhost/NAME:TAG`.
    Local {
        name: String,
    },
    Squashfs {
        path: PathBuf,
    },
    Erofs {
        path: PathBuf,
    },
}

impl ImageRef {
    /// Whether the image may carry its own Entrypoint/Cmd (so `command` may
    /// be omitted).
    pub fn has_config(&self) -> bool {
        matches!(
            self,
            ImageRef::Tar { .. }
                | ImageRef::Oci { .. }
                | ImageRef::Docker { .. }
                | ImageRef::Local { .. }
        )
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageRef::Dir { path } => write!(f, "dir:{}", path.display()),
            ImageRef::Host => f.write_str("host"),
            ImageRef::Tar { path } => write!(f, "tar:{}", path.display()),
            ImageRef::Oci { layout, tag: None } => write!(f, "oci:{}", layout.display()),
            ImageRef::Oci {
                layout,
                tag: Some(t),
            } => write!(f, "oci:{}:{t}", layout.display()),
            ImageRef::Docker { reference } => write!(f, "docker://{reference}"),
            ImageRef::Local { name } => f.write_str(name),
            ImageRef::Squashfs { path } => write!(f, "squashfs:{}", path.display()),
            ImageRef::Erofs { path } => write!(f, "erofs:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StartLimit {
    pub burst: u32,
    pub interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Started,
    Healthy,
    Completed,
}

/// `user = "uid[:gid]"` or a name looked up in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum User {
    Id { uid: u32, gid: Option<u32> },
    Name { name: String, group: Option<String> },
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own network namespace with loopback only.
    Loopback,
    /// The host's network namespace.
    Host,
    /// Joins these networks, in this order (eth0, eth1, ...).
    Networks(Vec<Attachment>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub network: Name,
    pub ip: Option<IpAddr>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
    Volume {
        source: Name,
        target: PathBuf,
        read_only: bool,
    },
    Tmpfs {
        target: PathBuf,
        size: Option<ByteSize>,
        mode: Option<u32>,
    },
}

impl Mount {
    pub fn target(&self) -> &std::path::Path {
        match self {
            Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    pub memory: Option<ByteSize>,
    pub memory_reservation: Option<ByteSize>,
    pub cpus: Option<f64>,
    pub cpu_weight: Option<u32>,
    pub cpuset: Option<Vec<u32>>,
    pub pids: Option<u64>,
    pub io_weight: Option<u32>,
    pub io_limits: Vec<IoLimit>,
    pub devices: Vec<Device>,
    pub rlimits: BTreeMap<String, Rlimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IoLimit {
    pub device: PathBuf,
    pub read_bps: Option<ByteSize>,
    pub write_bps: Option<ByteSize>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Device {
    pub path: PathBuf,
    /// Subset of `rwm`, in that order.
    pub access: String,
}

/// An rlimit; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

pub const RLIMIT_NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Security {
    /// The exact capability set the process gets (bounding = effective =
    /// permitted), in capability-number order.
    pub capabilities: Vec<&'static str>,
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    pub user_namespace: UserNamespace,
    /// Paths masked in addition to the default ones.
    pub masked_paths: Vec<PathBuf>,
    pub apparmor: Option<String>,
    pub selinux_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    Default,
    Unconfined,
    Profile(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserNamespace {
    Off,
    Auto,
    Maps { uid: Vec<IdMap>, gid: Vec<IdMap> },
}

/// `container_id:host_id:count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub command: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    /// What becoming unhealthy does (`on_failure`, podman's
    /// `--health-on-failure`); `None`: `restart`, or `none` where the
    /// restart policy is `no`.
    pub on_failure: Option<HealthAction>,
}

/// What a container that turned unhealthy gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthAction {
    /// Only its state (and the event) say so.
    None,
    /// Stopped and started again (its stop signal, then SIGKILL after
    /// `stop_timeout`).
    Restart,
    /// Stopped, and left stopped until `start`.
    Stop,
    /// SIGKILL; its restart policy decides what follows.
    Kill,
}

impl HealthAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthAction::None => "none",
            HealthAction::Restart => "restart",
            HealthAction::Stop => "stop",
            HealthAction::Kill => "kill",
        }
    }
}

impl Health {
    /// The action in effect: the one set, else `restart` unless the
    /// restart policy is `no`.
    pub fn action(&self, restart: &RestartPolicy) -> HealthAction {
        match (self.on_failure, restart) {
            (Some(a), _) => a,
            (None, RestartPolicy::No) => HealthAction::None,
            (None, _) => HealthAction::Restart,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Logging {
    pub driver: LogDriver,
    pub max_size: ByteSize,
    pub max_files: u32,
}

/// Where a container's output goes besides its log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    /// The log file only.
    File,
    /// The log file (so `rkstack logs` works, as docker's dual logging)
    /// and systemd's journal, one entry per line.
    Journald,
}

impl LogDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::File => "file",
            LogDriver::Journald => "journald",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Container {
    pub name: Name,
    pub image: ImageRef,
    pub pull_policy: PullPolicy,
    /// Replaces the image's Cmd (`None`: the image's Cmd, or nothing when
    /// `entrypoint` is set, as compose and docker do).
    pub command: Option<Vec<String>>,
    /// Replaces the image's Entrypoint; `Some([])` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub user: Option<User>,
    pub hostname: String,
    pub restart: RestartPolicy,
    pub restart_backoff: Backoff,
    pub start_limit: Option<StartLimit>,
    pub depends_on: BTreeMap<Name, Condition>,
    /// Dependencies with `restart = true`: a reload that recreates or
    /// restarts one of them restarts this container too (compose's
    /// `depends_on.X.restart`). Others leave it running.
    pub restart_with: std::collections::BTreeSet<Name>,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub read_only: bool,
    pub network: NetworkMode,
    pub ports: Vec<PortSpec>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    pub health: Option<Health>,
    pub logging: Logging,
    /// dm-verity for a `squashfs:`/`erofs:` image: the image is read
    /// through a verity device, refused when it does not match.
    pub verity: Option<Verity>,
    /// How its image is built, if it is.
    pub build: Option<Build>,
}

/// `build = "DIR"` or `build = { context, file, args, target }`: how the
/// container's `localhost/` image is built (`rkstack build`) when the
/// store does not have it as its context now says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    pub context: std::path::PathBuf,
    /// The Containerfile (default: the context's `Containerfile`, else
    /// `Dockerfile`).
    pub file: Option<std::path::PathBuf>,
    pub args: std::collections::BTreeMap<String, String>,
    pub target: Option<String>,
}

/// `verity = { root_hash = "...", hash_file = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verity {
    /// The hash tree's root, hex (as `veritysetup format` prints it).
    pub root_hash: String,
    /// The hash tree (`veritysetup format IMAGE HASH_FILE`); default: the
    /// image's path with `.verity` added.
    pub hash_file: std::path::PathBuf,
}

/// Defaults that apply where neither the container nor `[defaults]` set a key.
pub mod defaults {
    use super::*;

    pub fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
    pub const STOP_TIMEOUT_SECS: u64 = 10;
    /// The stack of `rkstack run`'s one-off containers: their cgroups are
    /// `rkstack/run/NAME` and their writable layers `DATA/run/containers/
    /// NAME`, so no stack file may take the name (a one-off container of
    /// a stack container's name would share its group and remove its layer).
    pub const ONE_OFF_STACK: &str = "run";
    pub const STOP_SIGNAL: Signal = Signal::TERM;
    pub const HEALTH_INTERVAL_SECS: u64 = 30;
    pub const HEALTH_TIMEOUT_SECS: u64 = 30;
    pub const HEALTH_RETRIES: u32 = 3;
    pub fn update() -> Update {
        Update {
            timeout: Duration(std::time::Duration::from_secs(120)),
            stable: Duration(std::time::Duration::from_secs(30)),
            rollback: None,
            keep: 10,
        }
    }
    pub fn logging() -> Logging {
        Logging {
            driver: LogDriver::File,
            max_size: ByteSize(10 << 20),
            max_files: 3,
        }
    }
    /// Capabilities the process keeps when `capabilities` is not set.
    pub fn capabilities() -> Vec<&'static str> {
        super::effective_capabilities(&[], &[])
    }
}

/// Applies `drop` then `add` to Docker's default set, as Docker does.
pub fn effective_capabilities(drop: &[CapName], add: &[CapName]) -> Vec<&'static str> {
    use crate::config::types::{CAPABILITIES, DEFAULT_CAPABILITIES};
    let bit = |name: &str| {
        CAPABILITIES
            .iter()
            .position(|c| *c == name)
            .map_or(0u64, |i| 1u64 << i)
    };
    let mut set: u64 = DEFAULT_CAPABILITIES
        .iter()
        .map(|c| bit(c))
        .fold(0, |a, b| a | b);
    for d in drop {
        match d {
            CapName::All => set = 0,
            CapName::Cap(i) => set &= !(1u64 << i),
        }
    }
    for a in add {
        match a {
            CapName::All => set = (1u64 << CAPABILITIES.len()) - 1,
            CapName::Cap(i) => set |= 1u64 << i,
        }
    }
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| set & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}
