//! What the sandbox is asked to run: its own vocabulary, independent of the
//! stack file. It crosses to the `__init` stage as JSON.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything needed to start one isolated process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// For messages: `web: mount /data: …`.
    pub name: String,
    pub root: Root,
    /// An empty host directory the new root is assembled on (inside the
    /// container's own mount namespace, so the host never sees the mounts).
    pub staging: PathBuf,
    pub read_only: bool,
    pub command: Vec<String>,
    /// `KEY=VALUE` pairs, exactly the environment the process gets.
    pub env: Vec<String>,
    pub workdir: PathBuf,
    pub user: UserSpec,
    pub hostname: String,
    pub net: NetNs,
    pub user_ns: Option<IdMaps>,
    pub mounts: Vec<MountSpec>,
    /// Extra paths masked besides the default ones.
    pub masked_paths: Vec<PathBuf>,
    pub devices: Vec<PathBuf>,
    pub rlimits: Vec<RlimitSpec>,
    /// Capability names (`CAP_…`): bounding = permitted = effective for root.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: SeccompSpec,
    /// `cgroup.procs` files the process is written to before it starts.
    pub cgroup_procs: Vec<PathBuf>,
    /// The cgroup v1 groups among `cgroup_procs` do not exist yet when the
    /// process is cloned: the runtime makes them in its `prepare` (see
    /// [`crate::sandbox::spawn_prepared`]) while the process builds its
    /// root, and the process joins them after, before its cgroup namespace
    /// and anything of the container (`rkstack run`).
    #[serde(default)]
    pub join_late: bool,
    /// Killed when the runtime process dies (`rkstack run`); a supervised
    /// container outlives a supervisor crash instead.
    pub die_with_parent: bool,
    /// The writable layer is thrown away after this run (`rkstack run`):
    /// overlayfs mounts it `volatile`, so its teardown does not sync the
    /// whole filesystem below it (and calls to fsync inside are not
    /// forced to disk). A supervised container's layer outlives it and is
    /// mounted normally.
    #[serde(default)]
    pub discard_layer: bool,
    /// AppArmor profile to exec into (only where AppArmor is enabled).
    pub apparmor: Option<String>,
    /// SELinux label to exec with (only where SELinux is enabled).
    pub selinux_label: Option<String>,
    /// Stop after the process is in its namespaces and cgroup and before it
    /// runs anything of the container, until the runtime says go on (set by
    /// [`crate::sandbox::spawn_prepared`]).
    #[serde(default)]
    pub hold_before_exec: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Root {
    /// A directory used as the root filesystem.
    Dir(PathBuf),
    /// The host's own root filesystem, read-only, under a private writable
    /// layer that only holds mount points.
    Host,
    /// Image layers stacked by overlayfs (`lowers` top first), with the
    /// container's own writable layer (`upper`, `work`) unless it is
    /// read-only.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: Option<(PathBuf, PathBuf)>,
    },
    /// A filesystem image (`squashfs`, `erofs`) mounted read-only from a
    /// loop device inside the container's mount namespace (so it goes with
    /// it), under the container's writable layer unless it is read-only.
    Image {
        file: PathBuf,
        fstype: String,
        upper: Option<(PathBuf, PathBuf)>,
        /// Read through dm-verity: refused unless it matches.
        verity: Option<VeritySpec>,
    },
}

/// A dm-verity check of a filesystem image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VeritySpec {
    /// The hash tree, with its superblock (`veritysetup format`).
    pub hash_file: PathBuf,
    /// The expected root hash, hex.
    pub root_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetNs {
    /// A new network namespace with loopback up.
    New,
    /// The host's network namespace.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMaps {
    /// `(inside, outside, count)`.
    pub uid: Vec<(u32, u32, u32)>,
    pub gid: Vec<(u32, u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserSpec {
    Id {
        uid: u32,
        gid: Option<u32>,
    },
    /// Looked up in the container's `/etc/passwd` and `/etc/group`.
    Name {
        name: String,
        group: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
    Tmpfs {
        target: PathBuf,
        size: Option<u64>,
        mode: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSpec {
    pub name: String,
    /// `None`: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompSpec {
    /// The built-in profile (Docker's default, in effect).
    Default,
    Unconfined,
    /// A profile already read and compiled to a BPF program by the parent,
    /// so a bad profile fails before anything is started.
    Bpf(Vec<u8>),
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    pub rows: u16,
    pub cols: u16,
}

/// A process to run inside a running container (health checks, `exec`):
/// its namespaces, cgroup and security profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub name: String,
    /// Host pid of the container's first process.
    pub target: i32,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub workdir: PathBuf,
    pub user: UserSpec,
    /// Whether the container has its own user namespace (then it is joined too).
    pub user_ns: bool,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: SeccompSpec,
    pub cgroup_procs: Vec<PathBuf>,
    /// A terminal of the container's devpts, this size: its stdin is then
    /// a unix socket the terminal's master is sent back on (see
    /// [`crate::sandbox::pty`]).
    #[serde(default)]
    pub terminal: Option<TermSize>,
    /// The container's resource limits, as its first process got them.
    #[serde(default)]
    pub rlimits: Vec<RlimitSpec>,
}
