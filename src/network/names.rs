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

/// The host end of a container's veth on a network: `rkv` + 10 hex digits.
pub fn veth_host(stack: &str, container: &str, network: &str) -> String {
    format!("rkv{}", short_hash(&[stack, container, network], 10))
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
}
