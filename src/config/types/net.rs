//! Subnets (`10.89.0.0/24`) and published ports (`[HOST_IP:]HOST:CONTAINER[/PROTO]`).

use super::*;

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
