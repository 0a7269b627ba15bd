//! Links and addresses on the real kernel, through iproute2 in batch mode:
//! one `ip` process for the host side of a change and one inside the
//! container's network namespace (via nsenter). Bridges, veth pairs,
//! addresses, routes. Everything here is idempotent where it can be.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{what}: {detail}")]
    Ip { what: String, detail: String },
    #[error("{what}: cannot run {program}")]
    Spawn {
        what: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `ip -batch -` (inside the network namespace of `pid`, when given)
/// with these commands.
fn batch(what: &str, netns_of: Option<i32>, commands: &[String]) -> Result<(), NetError> {
    let mut cmd = match netns_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net")).arg("ip");
            c
        }
        None => Command::new("ip"),
    };
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let program = if netns_of.is_some() { "nsenter" } else { "ip" };
    let mut child = cmd.spawn().map_err(|source| NetError::Spawn {
        what: what.into(),
        program: program.into(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(commands.join("\n").as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let out = child.wait_with_output().map_err(|source| NetError::Spawn {
        what: what.into(),
        program: program.into(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let detail = String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .trim()
            .to_string();
        Err(NetError::Ip {
            what: what.into(),
            detail,
        })
    }
}

/// Whether a link of that name exists (in our network namespace).
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A bridge with its gateway address, up. Kept as it is if it exists.
pub fn ensure_bridge(name: &str, gateway: IpAddr, prefix: u8) -> Result<(), NetError> {
    let mut cmds = Vec::new();
    if !link_exists(name) {
        cmds.push(format!("link add name {name} type bridge"));
    }
    cmds.push(format!("addr replace {gateway}/{prefix} dev {name}"));
    cmds.push(format!("link set {name} up"));
    batch(&format!("bridge {name}"), None, &cmds)
}

/// Removes a link; one that is already gone is fine.
pub fn delete_link(name: &str) -> Result<(), NetError> {
    match batch(
        &format!("remove {name}"),
        None,
        &[format!("link del {name}")],
    ) {
        Err(NetError::Ip { detail, .. }) if detail.contains("Cannot find device") => Ok(()),
        other => other,
    }
}

/// One network of a container: a veth pair with the host end on `bridge`
/// and the other end, `inside`, in the container with `addr`; a default
/// route via `gateway` when given. The pair goes away with the container's
/// network namespace.
#[derive(Debug)]
pub struct Attach<'a> {
    pub pid: i32,
    pub bridge: &'a str,
    pub host_if: &'a str,
    pub inside: &'a str,
    pub addr: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
}

pub fn attach(a: &Attach<'_>) -> Result<(), NetError> {
    let host = [
        format!(
            "link add {} type veth peer name {} netns {}",
            a.host_if, a.inside, a.pid
        ),
        format!("link set {} master {}", a.host_if, a.bridge),
        format!("link set {} up", a.host_if),
    ];
    let what = format!("veth {}", a.host_if);
    match batch(&what, None, &host) {
        // The host end of a pair whose container just died can linger a
        // moment (the kernel removes it with the namespace): remove, retry.
        Err(NetError::Ip { detail, .. }) if detail.contains("File exists") => {
            delete_link(a.host_if)?;
            batch(&what, None, &host)?;
        }
        other => other?,
    }
    let mut inside = vec![
        format!("addr add {}/{} dev {}", a.addr, a.prefix, a.inside),
        format!("link set {} up", a.inside),
    ];
    if let Some(gw) = a.gateway {
        inside.push(format!("route add default via {gw} dev {}", a.inside));
    }
    batch(
        &format!("{} in the container", a.inside),
        Some(a.pid),
        &inside,
    )
}

/// The host's IPv4 routes (from /proc/net/route) with their interface.
pub fn ipv4_routes() -> Vec<(String, super::Subnet)> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dst), Some(mask)) = (f.first(), f.get(1), f.get(7)) else {
            continue;
        };
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(dst, 16), u32::from_str_radix(mask, 16))
        else {
            continue;
        };
        // The file shows each address as the hex of its bytes read as a
        // little-endian number: 10.89.0.0 is 0000590A.
        let addr = IpAddr::V4(std::net::Ipv4Addr::from(dst.to_le_bytes()));
        out.push((
            iface.to_string(),
            super::Subnet {
                addr,
                prefix: mask.count_ones() as u8,
            },
        ));
    }
    out
}

/// Ports held by sockets on this host (in our network namespace): TCP
/// sockets listening, UDP sockets bound. `(proto, port)`.
pub fn ports_in_use() -> std::collections::BTreeSet<(&'static str, u16)> {
    let mut out = std::collections::BTreeSet::new();
    for (file, proto, listen_only) in [
        ("tcp", "tcp", true),
        ("tcp6", "tcp", true),
        ("udp", "udp", false),
        ("udp6", "udp", false),
    ] {
        let text = std::fs::read_to_string(format!("/proc/net/{file}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            if listen_only && *state != "0A" {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                out.insert((proto, port));
            }
        }
    }
    out
}
