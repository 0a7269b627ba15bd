//! Validated value types of the stack file. Each `parse` is the only way in,
//! so a value of one of these types is always valid.
//!
//! `units.rs` has durations and sizes, `net.rs` subnets and published
//! ports, `signal.rs` signal names, `caps.rs` capability names; the names,
//! paths and the suggestion of a close key are here.

mod caps;
mod net;
mod signal;
mod units;

use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration as StdDuration;

use serde::{Serialize, Serializer};

pub use caps::{CAPABILITIES, CapName, DEFAULT_CAPABILITIES};
pub use net::{Cidr, PortSpec, Proto};
pub use signal::Signal;
pub use units::{ByteSize, Duration};

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
