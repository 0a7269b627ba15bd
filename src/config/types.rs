//! Validated value types of the stack file. Each `parse` is the only way in,
//! so a value of one of these types is always valid.

use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration as StdDuration;

use serde::{Serialize, Serializer};

/// Names of stacks, containers, networks and volumes:
/// `[a-z0-9][a-z0-9-]*`, at most `max` characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub const STACK_MAX: usize = 31;
    pub const MAX: usize = 63;

    pub fn parse(s: &str, max: usize) -> Result<Name, String> {
        let ok_first = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if s.is_empty() {
            return Err("name must not be empty".into());
        }
        if !ok_first || !ok_rest {
            return Err(format!(
                "invalid name {s:?}: use lowercase letters, digits and '-', starting with a letter or digit"
            ));
        }
        if s.len() > max {
            return Err(format!(
                "name {s:?} is {} characters long; at most {max} are allowed",
                s.len()
            ));
        }
        Ok(Name(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A duration written as `"250ms"`, `"10s"`, `"5m"`, `"1h"` or a sum like `"1m30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!(
                "invalid duration {s:?}: expected a number and a unit, like \"250ms\", \"10s\", \"5m\" or \"1h\""
            )
        };
        let t = s.trim();
        if t == "0" {
            return Ok(Duration(StdDuration::ZERO));
        }
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let nanos_per: u128 = match &rest[..unit_len] {
                "ns" => 1,
                "us" | "µs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(nanos_per)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(|| format!("duration {s:?} is too long"))?;
        }
        // A year is plenty for any timeout or interval here.
        if total > 366 * 86_400_000_000_000 {
            return Err(format!("duration {s:?} is too long (at most 366d)"));
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
        let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| bad())?;
        Ok(Duration(StdDuration::new(secs, nanos)))
    }

    pub fn from_secs(s: u64) -> Duration {
        Duration(StdDuration::from_secs(s))
    }

    pub fn from_millis(ms: u64) -> Duration {
        Duration(StdDuration::from_millis(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        if n == 0 {
            return f.write_str("0s");
        }
        let units: [(u128, &str); 7] = [
            (86_400_000_000_000, "d"),
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        let mut rest = n;
        for (per, unit) in units {
            if rest >= per {
                write!(f, "{}{unit}", rest / per)?;
                rest %= per;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes: `"64M"`, `"1G"`, `"512k"` (powers of 1024) or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let bad = || {
            format!(
                "invalid size {s:?}: expected a number with an optional unit k, M, G or T, like \"64M\""
            )
        };
        let t = s.trim();
        let digits_end = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        if num.is_empty() {
            return Err(bad());
        }
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = if num.contains('.') {
            let x: f64 = num.parse().map_err(|_| bad())?;
            let b = x * mult as f64;
            if !b.is_finite() || b >= u64::MAX as f64 {
                return Err(format!("size {s:?} is too large"));
            }
            b.round() as u64
        } else {
            let n: u64 = num
                .parse()
                .map_err(|_| format!("size {s:?} is too large"))?;
            n.checked_mul(mult)
                .ok_or_else(|| format!("size {s:?} is too large"))?
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
            if b != 0 && b % (1u64 << shift) == 0 {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// An IP subnet whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            format!("invalid subnet {s:?}: expected ADDRESS/PREFIX, like \"10.89.0.0/24\"")
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("invalid subnet {s:?}: {a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("invalid subnet {s:?}: prefix must be 0..={max}"))?;
        let c = Cidr { addr, prefix };
        let net = c.network();
        if net != addr {
            return Err(format!(
                "invalid subnet {s:?}: host bits are set; did you mean \"{net}/{prefix}\"?"
            ));
        }
        if (addr.is_ipv4() && prefix > 30) || (addr.is_ipv6() && prefix > 126) {
            return Err(format!(
                "subnet {s:?} is too small to hold a gateway and a container"
            ));
        }
        Ok(c)
    }

    fn bits(ip: IpAddr) -> (u128, u32) {
        match ip {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    }

    fn addr_of(&self, b: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(b as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(b)),
        }
    }

    fn mask(&self) -> u128 {
        let (_, width) = Self::bits(self.addr);
        let host = width - u32::from(self.prefix);
        let all: u128 = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host).wrapping_sub(1))
        }
    }

    pub fn network(&self) -> IpAddr {
        let (b, _) = Self::bits(self.addr);
        self.addr_of(b & self.mask())
    }

    /// The last address (broadcast on IPv4).
    pub fn last(&self) -> IpAddr {
        let (b, width) = Self::bits(self.addr);
        let all: u128 = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        self.addr_of((b & self.mask()) | (all & !self.mask()))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let (b, _) = Self::bits(ip);
        b & self.mask() == Self::bits(self.addr).0 & self.mask()
    }

    /// Whether `ip` may be given to a container or gateway (not the network or broadcast address).
    pub fn is_host(&self, ip: IpAddr) -> bool {
        self.contains(ip) && ip != self.network() && (ip.is_ipv6() || ip != self.last())
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The first host address: the default gateway.
    pub fn first_host(&self) -> IpAddr {
        let (b, _) = Self::bits(self.network());
        self.addr_of(b + 1)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Linux signal names and numbers (x86_64, arm, aarch64, riscv share these).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// A signal, by name (`"SIGTERM"`, `"TERM"`) or number (`"15"`); `SIGRTMIN+N` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(15);
    pub const KILL: Signal = Signal(9);

    pub fn parse(s: &str) -> Result<Signal, String> {
        let up = s.trim().to_ascii_uppercase();
        if let Ok(n) = up.parse::<i32>() {
            return if (1..=64).contains(&n) {
                Ok(Signal(n))
            } else {
                Err(format!("invalid signal number {n}: must be 1..=64"))
            };
        }
        let full = if up.starts_with("SIG") {
            up.clone()
        } else {
            format!("SIG{up}")
        };
        if let Some(&(_, n)) = SIGNALS.iter().find(|(name, _)| *name == full) {
            return Ok(Signal(n));
        }
        if let Some(off) = full.strip_prefix("SIGRTMIN") {
            let k: i32 = if off.is_empty() {
                0
            } else {
                off.trim_start_matches('+')
                    .parse()
                    .map_err(|_| format!("invalid signal {s:?}"))?
            };
            if (0..=30).contains(&k) {
                return Ok(Signal(34 + k));
            }
        }
        let hint = did_you_mean(&full, SIGNALS.iter().map(|(n, _)| *n));
        Err(format!("unknown signal {s:?}{hint}"))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    pub fn name(self) -> String {
        match SIGNALS.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => (*name).to_string(),
            None if self.0 >= 34 => format!("SIGRTMIN+{}", self.0 - 34),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` or `udp`, as nftables and /proc spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `[host_ip:]host_port:container_port[/tcp|udp]`; an IPv6 host address goes in brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortSpec {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortSpec {
    pub fn parse(s: &str) -> Result<PortSpec, String> {
        let bad = |why: &str| {
            format!(
                "invalid port {s:?}: {why}; expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]"
            )
        };
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?}"))),
            None => (s, Proto::Tcp),
        };
        let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after.split_once("]:").ok_or_else(|| bad("unclosed '['"))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| bad(&format!("{ip:?} is not an IPv6 address")))?;
            (Some(IpAddr::V6(ip)), ports)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [h, c] => (None, &rest[..h.len() + 1 + c.len()]),
                [ip, _, _] => {
                    let addr: IpAddr = ip
                        .parse()
                        .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
                    (Some(addr), &rest[ip.len() + 1..])
                }
                _ => return Err(bad("both a host and a container port are needed")),
            }
        };
        let (h, c) = ports
            .split_once(':')
            .ok_or_else(|| bad("both a host and a container port are needed"))?;
        let port = |p: &str| -> Result<u16, String> {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port number (1-65535)")))
        };
        Ok(PortSpec {
            host_ip,
            host_port: port(h)?,
            container_port: port(c)?,
            proto,
        })
    }

    /// Whether two publications would claim the same host socket.
    pub fn clashes(&self, other: &PortSpec) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
                _ => true,
            }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        let p = self.proto.as_str();
        write!(f, "{}:{}/{p}", self.host_port, self.container_port)
    }
}

/// A path inside the container: absolute, normalised, no `..`.
pub fn container_path(s: &str) -> Result<PathBuf, String> {
    if s.contains('\0') {
        return Err(format!("path {s:?} contains a NUL byte"));
    }
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(format!("path {s:?} must be absolute inside the container"));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(format!("path {s:?} must not contain \"..\"")),
            Component::Prefix(_) => return Err(format!("invalid path {s:?}")),
        }
    }
    Ok(out)
}

/// A path on the host; relative paths are taken from the stack file's folder.
pub fn host_path(s: &str, base: &Path) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("path must not be empty".into());
    }
    if s.contains('\0') {
        return Err(format!("path {s:?} contains a NUL byte"));
    }
    let p = Path::new(s);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    Ok(out)
}

/// An RFC 1123 host name (labels of `[A-Za-z0-9-]`, at most 63 each, 253 in all).
pub fn hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid host name {s:?}: use letters, digits, '-' and '.', labels of at most 63 characters"
        ))
    }
}

/// A CPU list like `"0-1,3"`; returns the sorted CPUs.
pub fn cpuset(s: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("invalid cpuset {s:?}: expected a list like \"0-1,3\"");
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b || b >= 4096 {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Closest candidate to `word` (case-insensitive edit distance), as a
/// ready-to-append hint: `; did you mean "x"?` or the empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let w = word.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).clamp(1, 3);
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit && *d < w.chars().count())
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("; did you mean \"{c}\"?"),
        None => String::new(),
    }
}

/// Levenshtein distance, with a transposition counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Values parse themselves (`"90s".parse::<Duration>()`), with the very
/// words the stack file's errors use: every front door (the file, `run`'s
/// options, the CLI) takes them through the same parser.
macro_rules! from_str {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::parse(s)
            }
        }
    )*};
}
from_str!(Duration, ByteSize, Cidr, Signal, PortSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            Duration::parse("250ms").unwrap().0,
            StdDuration::from_millis(250)
        );
        assert_eq!(
            Duration::parse("1m30s").unwrap().0,
            StdDuration::from_secs(90)
        );
        assert_eq!(Duration::parse("0").unwrap().0, StdDuration::ZERO);
        assert_eq!(Duration::parse("1m30s").unwrap().to_string(), "1m30s");
        assert_eq!(Duration::from_millis(100).to_string(), "100ms");
        for bad in [
            "",
            "10",
            "s",
            "10 s",
            "5x",
            "-1s",
            "99999999999999999999999d",
            "400d",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("64M").unwrap().0, 64 << 20);
        assert_eq!(ByteSize::parse("512k").unwrap().0, 512 << 10);
        assert_eq!(ByteSize::parse("1G").unwrap().0, 1 << 30);
        assert_eq!(ByteSize::parse("1.5k").unwrap().0, 1536);
        assert_eq!(ByteSize(128 << 20).to_string(), "128M");
        assert_eq!(ByteSize(1000).to_string(), "1000");
        for bad in ["", "M", "12Q", "99999999999T", "1..2M"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.89.0.0/24").unwrap();
        assert!(c.contains("10.89.0.200".parse().unwrap()));
        assert!(!c.contains("10.89.1.1".parse().unwrap()));
        assert!(!c.is_host("10.89.0.255".parse().unwrap()));
        assert!(!c.is_host("10.89.0.0".parse().unwrap()));
        assert_eq!(c.first_host().to_string(), "10.89.0.1");
        assert!(c.overlaps(&Cidr::parse("10.89.0.0/16").unwrap()));
        assert!(!c.overlaps(&Cidr::parse("10.90.0.0/16").unwrap()));
        assert!(
            Cidr::parse("10.89.0.1/24")
                .unwrap_err()
                .contains("10.89.0.0/24")
        );
        assert!(Cidr::parse("10.89.0.0/33").is_err());
        assert!(Cidr::parse("10.89.0.0").is_err());
        let v6 = Cidr::parse("fd00:89::/64").unwrap();
        assert!(v6.contains("fd00:89::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").is_ok());
        assert!(Cidr::parse("::/0").is_ok());
    }

    #[test]
    fn signals() {
        assert_eq!(Signal::parse("SIGTERM").unwrap().number(), 15);
        assert_eq!(Signal::parse("hup").unwrap().number(), 1);
        assert_eq!(Signal::parse("9").unwrap().name(), "SIGKILL");
        assert_eq!(Signal::parse("SIGRTMIN+3").unwrap().number(), 37);
        assert!(
            Signal::parse("SIGTREM")
                .unwrap_err()
                .contains("did you mean \"SIGTERM\"")
        );
        assert!(Signal::parse("0").is_err());
    }

    #[test]
    fn caps() {
        assert_eq!(
            CapName::parse("net_admin").unwrap().as_str(),
            "CAP_NET_ADMIN"
        );
        assert!(CapName::parse("ALL").unwrap().is_all());
        assert!(
            CapName::parse("NET_ADMN")
                .unwrap_err()
                .contains("CAP_NET_ADMIN")
        );
        assert_eq!(DEFAULT_CAPABILITIES.len(), 14);
        // Found by the fuzzer: a multi-byte character in the first four bytes.
        assert!(CapName::parse("N\u{1F600}ET_ADMIN").is_err());
        assert!(CapName::parse("A\u{1F600}LL").is_err());
        assert!(CapName::parse("").is_err());
    }

    #[test]
    fn ports() {
        let p = PortSpec::parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:5353:53/udp");
        assert_eq!(
            PortSpec::parse("8080:80").unwrap().to_string(),
            "8080:80/tcp"
        );
        assert_eq!(
            PortSpec::parse("[::1]:8080:80").unwrap().to_string(),
            "[::1]:8080:80/tcp"
        );
        for bad in [
            "80",
            "0:80",
            "x:80",
            "1:2:3:4",
            "80:80/sctp",
            "1.2.3:80:80",
            "70000:80",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
        let a = PortSpec::parse("8080:80").unwrap();
        assert!(a.clashes(&PortSpec::parse("127.0.0.1:8080:81").unwrap()));
        assert!(!a.clashes(&PortSpec::parse("8080:80/udp").unwrap()));
        assert!(
            !PortSpec::parse("127.0.0.1:1:1")
                .unwrap()
                .clashes(&PortSpec::parse("127.0.0.2:1:1").unwrap())
        );
    }

    #[test]
    fn paths_names_hosts() {
        assert_eq!(container_path("/a/./b/").unwrap(), PathBuf::from("/a/b"));
        assert!(container_path("/a/../b").is_err());
        assert!(container_path("a").is_err());
        assert_eq!(
            host_path("x/../y", Path::new("/srv")).unwrap(),
            PathBuf::from("/srv/y")
        );
        assert!(Name::parse("web-1", Name::MAX).is_ok());
        assert!(Name::parse("Web", Name::MAX).is_err());
        assert!(Name::parse("-a", Name::MAX).is_err());
        assert!(Name::parse(&"a".repeat(32), Name::STACK_MAX).is_err());
        assert!(hostname("web.local").is_ok());
        assert!(hostname("-web").is_err());
        assert_eq!(cpuset("0-2,1,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(cpuset("2-1").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("imgae", ["image", "command"]),
            "; did you mean \"image\"?"
        );
        assert_eq!(did_you_mean("zzzzzz", ["image", "command"]), "");
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
