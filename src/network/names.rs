//! Interface names: Linux allows 15 bytes. Bridges and host-side veth ends
//! are named from a hash of what they belong to, so a name says "rkstack"
//! (`rkb…`, `rkv…`), never collides in practice, and is the same after a
//! supervisor restart (which finds what it made by name).

use sha2::{Digest, Sha256};

/// The kernel's limit for interface names (IFNAMSIZ less the NUL).
pub const MAX: usize = 15;

fn short_hash(parts: &[&str], hex_len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .take(hex_len)
        .map(|n| char::from(b"0123456789abcdef"[usize::from(n)]))
        .collect()
}

/// The bridge of a stack's network: `rkb` + 10 hex digits.
pub fn bridge(stack: &str, network: &str) -> String {
    format!("rkb{}", short_hash(&[stack, network], 10))
}

/// The MAC address of an interface with address `ip`: locally
/// administered (`02:6b`) and then the address's last four bytes. A
/// container that restarts with its address keeps its MAC, so the
/// neighbours' ARP entries stay right (a new random MAC left a restarted
/// container unreachable until they expired); a bridge gets its gateway's,
/// so its MAC no longer follows its ports as they come and go.
pub fn mac(ip: std::net::IpAddr) -> [u8; 6] {
    let b = match ip {
        std::net::IpAddr::V4(a) => a.octets(),
        std::net::IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x6b, b[0], b[1], b[2], b[3]]
}

/// The host end of a container's veth on a network: `rkv` + 10 hex digits.
pub fn veth_host(stack: &str, container: &str, network: &str) -> String {
    format!("rkv{}", short_hash(&[stack, container, network], 10))
}

/// The names the host end of one veth may have: its own, then alternates
/// (the last hex digit replaced by `g`..`z`, so no other veth's own name)
/// used while the end of a pair whose container just died still holds the
/// name: the kernel frees it only some time after that container's network
/// namespace is gone, and removing it ourselves waits as long.
pub fn veth_host_names(own: &str) -> Vec<String> {
    let mut out = vec![own.to_string()];
    if let Some(stem) = own.get(..own.len().saturating_sub(1)) {
        out.extend(('g'..='z').map(|c| format!("{stem}{c}")));
    }
    out
}

/// Inside the container, the n-th network it joins is `eth{n}`.
pub fn inside(n: usize) -> String {
    format!("eth{n}")
}

/// Checks a name the user gives for an interface.
pub fn valid(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX {
        return Err(format!(
            "interface name {name:?} must be 1 to {MAX} bytes long"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "interface name {name:?} may not contain '/', ':' or spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_veth_names_stay_within_the_limit_and_apart_from_own_names() {
        let own = veth_host("s", "c", "n");
        let names = veth_host_names(&own);
        assert_eq!(names[0], own);
        assert_eq!(names.len(), 21);
        for n in &names[1..] {
            assert!(n.len() <= MAX && n.starts_with(&own[..12]));
            assert!(!n.ends_with(|c: char| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn names_fit_and_are_stable() {
        let b = bridge("demo", "backend");
        assert_eq!(b.len(), 13);
        assert!(b.starts_with("rkb"));
        assert_eq!(b, bridge("demo", "backend"));
        assert_ne!(b, bridge("demo", "front"));
        assert_ne!(b, bridge("demox", "backend"));
        // ("a", "bc") and ("ab", "c") are different networks.
        assert_ne!(bridge("a", "bc"), bridge("ab", "c"));
        let long = "a".repeat(63);
        assert!(veth_host(&long, &long, &long).len() <= MAX);
        assert_eq!(inside(1), "eth1");
    }

    #[test]
    fn user_names_are_checked() {
        assert!(valid("eth0").is_ok());
        assert!(
            valid("abcdefghijklmnop")
                .unwrap_err()
                .contains("1 to 15 bytes")
        );
        assert!(valid("a/b").is_err());
    }

    #[test]
    fn a_mac_follows_the_address_and_is_locally_administered() {
        let ip: std::net::IpAddr = "10.89.0.10".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mac(ip), [0x02, 0x6b, 10, 89, 0, 10]);
        let other: std::net::IpAddr = "10.89.0.11".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(mac(ip), mac(other));
        // Unicast (bit 0 clear), locally administered (bit 1 set).
        assert_eq!(mac(ip)[0] & 0b11, 0b10);
    }
}
