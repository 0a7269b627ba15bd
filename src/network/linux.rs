//! Links and addresses on the real kernel, through rtnetlink (one socket
//! in the supervisor's network namespace for the host side, one made inside
//! the container's for its side). Bridges, veth pairs, addresses, routes.
//! Everything here is idempotent where it can be.

use std::net::IpAddr;

use super::netlink::{self, Netlink};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct NetError {
    what: String,
    #[source]
    source: std::io::Error,
}

fn ctx(what: impl Fn() -> String) -> impl FnOnce(std::io::Error) -> NetError {
    move |source| NetError {
        what: what(),
        source,
    }
}

/// Whether a link of that name exists (in our network namespace).
pub fn link_exists(name: &str) -> bool {
    Netlink::open()
        .and_then(|mut nl| nl.link_index(name))
        .is_ok_and(|i| i.is_some())
}

/// The discard port (RFC 863): what [`attach`] sends there is dropped.
const DISCARD: u16 = 9;

/// A bridge with its gateway address, up. Kept as it is if it exists.
pub fn ensure_bridge(name: &str, gateway: IpAddr, prefix: u8) -> Result<(), NetError> {
    let what = || format!("bridge {name}");
    let mut nl = Netlink::open().map_err(ctx(what))?;
    let index = match nl.link_index(name).map_err(ctx(what))? {
        Some(i) => i,
        None => {
            nl.request(netlink::new_bridge(name)).map_err(ctx(what))?;
            nl.index_of(name).map_err(ctx(what))?
        }
    };
    // A MAC of its own: otherwise the bridge takes its lowest port's, and
    // changes it as containers come and go.
    nl.request(netlink::set_mac(index, super::names::mac(gateway)))
        .map_err(ctx(what))?;
    nl.request(netlink::add_addr(index, gateway, prefix))
        .map_err(ctx(|| format!("bridge {name}: address {gateway}/{prefix}")))?;
    nl.request(netlink::set_up(index, None))
        .map_err(ctx(what))?;
    Ok(())
}

/// Removes a link; one that is already gone is fine.
pub fn delete_link(name: &str) -> Result<(), NetError> {
    let what = || format!("remove {name}");
    let mut nl = Netlink::open().map_err(ctx(what))?;
    match nl.request(netlink::del_link(name)) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other.map(|_| ()).map_err(ctx(what)),
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
    /// The bridge's own address (the network's gateway, whether or not the
    /// container routes through it): asked for at once, see [`attach`].
    pub bridge_ip: IpAddr,
}

/// Makes the pair and returns the name its host end got (see
/// [`super::names::veth_host_names`]).
pub fn attach(a: &Attach<'_>) -> Result<String, NetError> {
    let mut nl = Netlink::open().map_err(ctx(|| format!("veth {}", a.host_if)))?;
    let bridge = nl
        .index_of(a.bridge)
        .map_err(ctx(|| format!("bridge {}", a.bridge)))?;
    let pid = a.pid.unsigned_abs();
    let names = super::names::veth_host_names(a.host_if);
    let mac = super::names::mac(a.addr);
    let mut made = None;
    for name in &names {
        match nl.request(netlink::new_veth(name, a.inside, pid, mac)) {
            Ok(_) => {
                made = Some(name.clone());
                break;
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(ctx(|| format!("veth {name}"))(e)),
        }
    }
    let host_if = match made {
        Some(n) => n,
        None => {
            // Every name still held: wait for the kernel by removing one.
            delete_link(a.host_if)?;
            nl.request(netlink::new_veth(a.host_if, a.inside, pid, mac))
                .map_err(ctx(|| format!("veth {}", a.host_if)))?;
            a.host_if.to_string()
        }
    };
    let what = || format!("veth {host_if}");
    let host = nl.index_of(&host_if).map_err(ctx(what))?;
    // A bridge port needs no IPv6 of its own. Left on, every new port adds
    // its multicast route to one IPv6 table (the kernel walks all the ports'
    // routes to add one) and floods its address detection and MLD reports
    // to every other port: starts that grow with the bridge. Best effort: a
    // kernel without IPv6 has nothing to quiet.
    let sysctl = format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6");
    if std::fs::write(&sysctl, b"1").is_err() {
        let _ = nl.request(netlink::no_ipv6_link_local(host));
    }
    nl.request(netlink::set_up(host, Some(bridge)))
        .map_err(ctx(what))?;

    let inside = || format!("{} in the container", a.inside);
    // One visit to its namespace for both sockets.
    let (mut inner, udp) = netlink::in_netns_of(a.pid, || {
        let unspecified: IpAddr = match a.addr {
            IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        Ok((
            Netlink::open()?,
            std::net::UdpSocket::bind((unspecified, 0)),
        ))
    })
    .map_err(ctx(inside))?;
    let index = inner.index_of(a.inside).map_err(ctx(inside))?;
    if a.addr.is_ipv4() {
        let _ = inner.request(netlink::no_ipv6_link_local(index));
    }
    inner
        .request(netlink::add_addr(index, a.addr, a.prefix))
        .map_err(ctx(|| {
            format!("{}: address {}/{}", a.inside, a.addr, a.prefix)
        }))?;
    inner
        .request(netlink::set_up(index, None))
        .map_err(ctx(inside))?;
    if let Some(gw) = a.gateway {
        inner
            .request(netlink::default_route(gw, index))
            .map_err(ctx(|| format!("{}: default route via {gw}", a.inside)))?;
    }
    // The container announces itself: one empty datagram to the bridge's
    // discard port makes its kernel ask for the bridge's MAC, and that ARP
    // request carries the container's address and MAC, which the host and
    // the other members take in at once (a neighbour that knew the address
    // at another MAC would otherwise keep it for half a minute). The kernel
    // repeats the request while the new port does not forward yet. (A
    // packet socket sending a gratuitous ARP by hand costs an RCU grace
    // period to close: ~10 ms a start.)
    if let Ok(sock) = udp {
        let _ = sock.set_nonblocking(true);
        let _ = sock.send_to(&[], (a.bridge_ip, DISCARD));
    }
    Ok(host_if)
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
