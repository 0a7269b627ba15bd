//! Published ports and NAT with nftables: one table per stack
//! (`ip rkstack_STACK`), replaced atomically by `nft -f -` whenever the
//! stack's containers or addresses change, and deleted by `down`, so
//! `nft list ruleset` shows exactly what rkstack did and nothing else is
//! touched.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::Subnet;

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// `None`: every local address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

/// One bridge network of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub subnet: Subnet,
    /// Masquerade what leaves it for elsewhere (`nat = true`).
    pub nat: bool,
    /// Nothing is forwarded into or out of it (`internal = true`).
    pub internal: bool,
}

pub fn table(stack: &str) -> String {
    format!("rkstack_{}", stack.replace('-', "_"))
}

/// The whole table of a stack, as an atomic replacement (IPv4 only).
pub fn ruleset(stack: &str, publish: &[Publish], bridges: &[Bridge]) -> String {
    let t = table(stack);
    let mut dnat = Vec::new();
    for p in publish.iter().filter(|p| p.container_ip.is_ipv4()) {
        let m = match p.host_ip {
            Some(ip) if ip.is_ipv4() => format!("ip daddr {ip}"),
            Some(_) => continue,
            None => "fib daddr type local".to_string(),
        };
        dnat.push(format!(
            "{m} {} dport {} dnat to {}:{}",
            p.proto, p.host_port, p.container_ip, p.container_port
        ));
    }
    let mut snat = Vec::new();
    for b in bridges.iter().filter(|b| b.subnet.addr.is_ipv4()) {
        // Connections from the host's own loopback to a published port.
        snat.push(format!(
            "ip saddr 127.0.0.0/8 ip daddr {} masquerade",
            b.subnet
        ));
        if b.nat {
            snat.push(format!(
                "ip saddr {} oifname != \"{}\" masquerade",
                b.subnet, b.name
            ));
        }
    }
    // Networks are apart: nothing is forwarded from one rkstack bridge to
    // another (of any stack), nor into or out of an internal one.
    let mut forward = Vec::new();
    for b in bridges {
        forward.push(format!(
            "iifname \"{n}\" oifname \"rkb*\" oifname != \"{n}\" drop",
            n = b.name
        ));
        if b.internal {
            forward.push(format!(
                "iifname \"{n}\" oifname != \"{n}\" drop",
                n = b.name
            ));
            forward.push(format!(
                "oifname \"{n}\" iifname != \"{n}\" drop",
                n = b.name
            ));
        }
    }
    let body = |rules: &[String]| {
        rules
            .iter()
            .map(|r| format!("    {r}\n"))
            .collect::<String>()
    };
    format!(
        "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{d}  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{d}  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{s}  }}\n  chain forward {{\n    type filter hook forward priority filter; policy accept;\n{f}  }}\n}}\n",
        d = body(&dnat),
        s = body(&snat),
        f = body(&forward)
    )
}

fn nft(input: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("failed")
                .trim()
        ))
    }
}

/// Replaces the stack's table; with no bridge and nothing to publish, removes it.
pub fn apply(stack: &str, publish: &[Publish], bridges: &[Bridge]) -> Result<(), String> {
    if publish.is_empty() && bridges.is_empty() {
        return remove(stack);
    }
    for b in bridges {
        // Lets connections from 127.0.0.1 be routed out to the bridge.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/route_localnet", b.name),
            "1",
        );
    }
    nft(&ruleset(stack, publish, bridges))
}

/// Turns IPv4 forwarding on (published ports reached from elsewhere and
/// NAT need it), as Docker does. True when it was off.
pub fn enable_forwarding() -> Result<bool, String> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let now = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if now.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(path, "1").map_err(|e| format!("{path}: {e}"))?;
    Ok(true)
}

pub fn remove(stack: &str) -> Result<(), String> {
    let t = table(stack);
    nft(&format!("add table ip {t}\ndelete table ip {t}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_gets_one_table_with_its_rules() {
        let p = Publish {
            proto: "tcp",
            host_ip: None,
            host_port: 8080,
            container_ip: "10.89.0.10".parse().unwrap(),
            container_port: 80,
        };
        let q = Publish {
            proto: "udp",
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 5353,
            container_ip: "10.89.0.10".parse().unwrap(),
            container_port: 53,
        };
        let b = Bridge {
            name: "rkb1".into(),
            subnet: Subnet {
                addr: "10.89.0.0".parse().unwrap(),
                prefix: 24,
            },
            nat: true,
            internal: false,
        };
        let i = Bridge {
            name: "rkb2".into(),
            subnet: Subnet {
                addr: "10.90.0.0".parse().unwrap(),
                prefix: 24,
            },
            nat: false,
            internal: true,
        };
        let r = ruleset("my-demo", &[p, q], &[b, i]);
        assert!(r.starts_with("add table ip rkstack_my_demo\ndelete table ip rkstack_my_demo\n"));
        assert!(r.contains("fib daddr type local tcp dport 8080 dnat to 10.89.0.10:80"));
        assert!(r.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.89.0.10:53"));
        assert!(r.contains("ip saddr 10.89.0.0/24 oifname != \"rkb1\" masquerade"));
        assert!(r.contains("ip saddr 127.0.0.0/8 ip daddr 10.89.0.0/24 masquerade"));
        assert!(r.contains("iifname \"rkb1\" oifname \"rkb*\" oifname != \"rkb1\" drop"));
        assert!(r.contains("iifname \"rkb2\" oifname != \"rkb2\" drop"));
        assert!(r.contains("oifname \"rkb2\" iifname != \"rkb2\" drop"));
        assert!(!r.contains("oifname != \"rkb1\" iifname"));
    }
}
