//! The stack file's keys, table by table: the one list the validator
//! checks against (an unknown key is an error with a suggestion) and
//! `docs/stack-file.md` is kept equal to (`tests/docs.rs`).

pub(crate) const TOP_KEYS: &[&str] = &[
    "name",
    "defaults",
    "networks",
    "volumes",
    "containers",
    "update",
];
pub(crate) const UPDATE_KEYS: &[&str] = &["timeout", "stable", "rollback", "keep"];
pub(crate) const CONTAINER_KEYS: &[&str] = &[
    "image",
    "pull_policy",
    "command",
    "entrypoint",
    "env",
    "workdir",
    "user",
    "hostname",
    "restart",
    "restart_backoff",
    "start_limit",
    "depends_on",
    "stop_signal",
    "stop_timeout",
    "read_only",
    "networks",
    "ports",
    "mounts",
    "resources",
    "security",
    "health",
    "logging",
    "verity",
    "build",
];
pub(crate) const BUILD_KEYS: &[&str] = &["context", "file", "args", "target"];
pub(crate) const VERITY_KEYS: &[&str] = &["root_hash", "hash_file"];
pub(crate) const NETWORK_KEYS: &[&str] = &["driver", "subnet", "gateway", "nat", "internal"];
pub(crate) const VOLUME_KEYS: &[&str] = &["path"];
pub(crate) const RESOURCE_KEYS: &[&str] = &[
    "memory",
    "memory_reservation",
    "cpus",
    "cpu_weight",
    "cpuset",
    "pids",
    "io_weight",
    "io_limits",
    "devices",
    "rlimits",
];
pub(crate) const SECURITY_KEYS: &[&str] = &[
    "capabilities",
    "seccomp",
    "no_new_privileges",
    "user_namespace",
    "masked_paths",
    "apparmor",
    "selinux_label",
];
pub(crate) const HEALTH_KEYS: &[&str] = &[
    "command",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "on_failure",
];
pub(crate) const LOGGING_KEYS: &[&str] = &["driver", "max_size", "max_files"];
pub(crate) const BACKOFF_KEYS: &[&str] = &["initial", "max", "reset_after"];
pub(crate) const START_LIMIT_KEYS: &[&str] = &["burst", "interval"];
pub(crate) const MOUNT_KEYS: &[&str] = &["type", "source", "target", "read_only", "size", "mode"];
pub(crate) const IO_LIMIT_KEYS: &[&str] =
    &["device", "read_bps", "write_bps", "read_iops", "write_iops"];
pub(crate) const DEVICE_KEYS: &[&str] = &["path", "access"];
pub(crate) const CAP_KEYS: &[&str] = &["drop", "add"];
pub(crate) const ATTACH_KEYS: &[&str] = &["ip", "aliases"];
pub(crate) const USERNS_KEYS: &[&str] = &["uid", "gid"];
pub(crate) const RLIMIT_KEYS: &[&str] = &["soft", "hard"];
