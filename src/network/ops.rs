//! The seam between the supervisor and the host's network: every bridge,
//! veth, route question, port question and nftables table `up` touches
//! goes through [`NetOps`]. [`LinuxNet`] does it for real (netlink,
//! `/proc`, `nft`); the supervisor's unit tests use an in-memory fake.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use super::Subnet;
use super::linux::Attach;
use super::nft::{Bridge, Publish};

pub trait NetOps {
    /// The host's IPv4 routes, with their interface.
    fn routes(&self) -> Vec<(String, Subnet)>;
    /// Makes the bridge (or keeps it) with `gateway`/`prefix` on it, up.
    fn ensure_bridge(&mut self, name: &str, gateway: IpAddr, prefix: u8) -> Result<(), String>;
    fn delete_link(&mut self, name: &str) -> Result<(), String>;
    fn link_exists(&self, name: &str) -> bool;
    /// A container's veth pair on a bridge, its address and route inside.
    fn attach(&mut self, a: &Attach<'_>) -> Result<(), String>;
    /// `(proto, port)` held by sockets of this host.
    fn ports_in_use(&self) -> BTreeSet<(&'static str, u16)>;
    /// Whether the stack's rules can be applied here (`nft` is there); why
    /// not, with what to install.
    fn rules_available(&self) -> Result<(), String>;
    /// Turns IPv4 forwarding on; true when it was off.
    fn enable_forwarding(&mut self) -> Result<bool, String>;
    /// Replaces the stack's nftables table (removes it when both are empty).
    fn apply_rules(
        &mut self,
        stack: &str,
        publish: &[Publish],
        bridges: &[Bridge],
    ) -> Result<(), String>;
    fn remove_rules(&mut self, stack: &str) -> Result<(), String>;
    /// A non-blocking UDP socket for the name server of a network, on its
    /// gateway's port 53.
    fn name_server(&mut self, gateway: IpAddr) -> std::io::Result<std::net::UdpSocket>;
    /// A non-blocking UDP socket to ask the host's resolvers from.
    fn upstream_socket(&mut self, v6: bool) -> std::io::Result<std::net::UdpSocket>;
    /// The host's resolvers (its /etc/resolv.conf, loopback ones included:
    /// the supervisor asks them from the host's network namespace).
    fn resolvers(&self) -> Vec<std::net::SocketAddr>;
    /// A socket bound to a published host port (`None`: every address),
    /// held while it is published so that no program of the host binds it
    /// and then silently gets none of its traffic (nftables sends that to
    /// the container first). Bound, not listening: it never answers.
    fn hold_port(
        &mut self,
        proto: &str,
        ip: Option<IpAddr>,
        port: u16,
    ) -> std::io::Result<std::os::fd::OwnedFd>;
}

/// A socket bound to `ip`:`port`, TCP or UDP, close-on-exec; without
/// `SO_REUSEADDR`, so nobody else may bind the port while it is open.
pub fn bound_socket(
    proto: &str,
    ip: Option<IpAddr>,
    port: u16,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
    let ip = ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let kind = if proto == "udp" {
        SockType::Datagram
    } else {
        SockType::Stream
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = nix::sys::socket::socket(family, kind, flags, None)?;
    match ip {
        IpAddr::V4(a) => nix::sys::socket::bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(std::net::SocketAddrV4::new(a, port)),
        )?,
        IpAddr::V6(a) => nix::sys::socket::bind(
            fd.as_raw_fd(),
            &SockaddrIn6::from(std::net::SocketAddrV6::new(a, port, 0, 0)),
        )?,
    }
    Ok(fd)
}

/// A non-blocking UDP socket bound to `addr`.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// [`NetOps`] on this host.
#[derive(Debug, Default)]
pub struct LinuxNet;

impl NetOps for LinuxNet {
    fn routes(&self) -> Vec<(String, Subnet)> {
        super::linux::ipv4_routes()
    }

    fn ensure_bridge(&mut self, name: &str, gateway: IpAddr, prefix: u8) -> Result<(), String> {
        super::linux::ensure_bridge(name, gateway, prefix).map_err(|e| e.to_string())
    }

    fn delete_link(&mut self, name: &str) -> Result<(), String> {
        super::linux::delete_link(name).map_err(|e| e.to_string())
    }

    fn link_exists(&self, name: &str) -> bool {
        super::linux::link_exists(name)
    }

    fn attach(&mut self, a: &Attach<'_>) -> Result<(), String> {
        super::linux::attach(a)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn ports_in_use(&self) -> BTreeSet<(&'static str, u16)> {
        super::linux::ports_in_use()
    }

    fn rules_available(&self) -> Result<(), String> {
        let found = std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p).any(|d| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(d.join("nft"))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        });
        if found {
            Ok(())
        } else {
            Err("the program nft was not found in PATH (Debian: apt-get install nftables)".into())
        }
    }

    fn enable_forwarding(&mut self) -> Result<bool, String> {
        super::nft::enable_forwarding()
    }

    fn apply_rules(
        &mut self,
        stack: &str,
        publish: &[Publish],
        bridges: &[Bridge],
    ) -> Result<(), String> {
        super::nft::apply(stack, publish, bridges)
    }

    fn remove_rules(&mut self, stack: &str) -> Result<(), String> {
        super::nft::remove(stack)
    }

    fn name_server(&mut self, gateway: IpAddr) -> std::io::Result<std::net::UdpSocket> {
        udp_socket((gateway, 53).into())
    }

    fn upstream_socket(&mut self, v6: bool) -> std::io::Result<std::net::UdpSocket> {
        let any: IpAddr = if v6 {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        udp_socket((any, 0).into())
    }

    fn hold_port(
        &mut self,
        proto: &str,
        ip: Option<IpAddr>,
        port: u16,
    ) -> std::io::Result<std::os::fd::OwnedFd> {
        bound_socket(proto, ip, port)
    }

    fn resolvers(&self) -> Vec<std::net::SocketAddr> {
        let text =
            crate::bounded::read_regular(std::path::Path::new("/etc/resolv.conf"), 64 * 1024)
                .unwrap_or_default();
        super::hosts::nameservers(&String::from_utf8_lossy(&text))
    }
}
