//! Capability names, Docker's default set, and `ALL`.

use super::*;

/// Every capability Linux knows (up to 6.x), in number order.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (14).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A capability name as written in the file (`NET_ADMIN` or `CAP_NET_ADMIN`, any case), or `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapName {
    All,
    /// Index into [`CAPABILITIES`] (the capability's number).
    Cap(u8),
}

impl CapName {
    pub fn parse(s: &str) -> Result<CapName, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("ALL") {
            return Ok(CapName::All);
        }
        // `get` rather than slicing: the first bytes may be inside a multi-byte character.
        let bare = match t.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("CAP_") => t.get(4..).unwrap_or(""),
            _ => t,
        };
        match CAPABILITIES
            .iter()
            .position(|c| c.get(4..).is_some_and(|n| n.eq_ignore_ascii_case(bare)))
        {
            Some(i) => Ok(CapName::Cap(i as u8)),
            None => {
                let full = format!("CAP_{}", bare.to_ascii_uppercase());
                let hint = did_you_mean(&full, CAPABILITIES.iter().copied());
                Err(format!("unknown capability {s:?}{hint}"))
            }
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, CapName::All)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CapName::All => "ALL",
            CapName::Cap(i) => CAPABILITIES.get(usize::from(*i)).copied().unwrap_or("ALL"),
        }
    }
}
