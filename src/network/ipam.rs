//! Address management: pure and deterministic. Static addresses are
//! honoured; a container keeps the address it had (persisted in the stack's
//! state) as long as it is still valid; new members get the lowest free
//! address; an address is free again when its container leaves.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// An IP subnet (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

impl Subnet {
    fn width(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn host_bits(&self) -> u32 {
        self.width() - u32::from(self.prefix)
    }

    fn ip(&self, b: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(b as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(b)),
        }
    }

    /// Number of addresses (capped, for huge IPv6 subnets).
    fn size(&self) -> u128 {
        1u128.checked_shl(self.host_bits()).unwrap_or(u128::MAX)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let shift = self.host_bits();
        if shift >= 128 {
            return true;
        }
        bits(ip) >> shift == bits(self.addr) >> shift
    }

    /// Usable for a host: inside, not the network address, not the IPv4 broadcast.
    pub fn usable(&self, ip: IpAddr) -> bool {
        let off = bits(ip).wrapping_sub(bits(self.addr));
        self.contains(ip) && off != 0 && (ip.is_ipv6() || off != self.size() - 1)
    }

    /// The n-th address of the subnet.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        (n < self.size()).then(|| self.ip(bits(self.addr) + n))
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("network {network}: {ip} for {container} is not a usable address of {subnet}")]
    NotUsable {
        network: String,
        container: String,
        ip: IpAddr,
        subnet: Subnet,
    },
    #[error("network {network}: {ip} is wanted by both {a} and {b}")]
    Taken {
        network: String,
        ip: IpAddr,
        a: String,
        b: String,
    },
    #[error("network {network}: no free address left in {subnet} for {container}")]
    Exhausted {
        network: String,
        subnet: Subnet,
        container: String,
    },
}

/// One network's members and what they ask for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub network: &'a str,
    pub subnet: Subnet,
    pub gateway: IpAddr,
    /// Members (container names) with their static address, if any.
    pub members: &'a BTreeMap<&'a str, Option<IpAddr>>,
    /// Addresses given out before (from the state file).
    pub previous: &'a BTreeMap<&'a str, IpAddr>,
}

/// Every member's address. Deterministic: the same request gives the same
/// answer, and a member keeps a previous address that is still valid.
pub fn assign<'a>(r: &Request<'a>) -> Result<BTreeMap<&'a str, IpAddr>, IpamError> {
    let mut taken: BTreeMap<IpAddr, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    // 1. Static addresses.
    for (c, ip) in r.members {
        let Some(ip) = ip else { continue };
        if !r.subnet.usable(*ip) || *ip == r.gateway {
            return Err(IpamError::NotUsable {
                network: r.network.into(),
                container: c.to_string(),
                ip: *ip,
                subnet: r.subnet,
            });
        }
        if let Some(other) = taken.insert(*ip, c) {
            return Err(IpamError::Taken {
                network: r.network.into(),
                ip: *ip,
                a: other.to_string(),
                b: c.to_string(),
            });
        }
        out.insert(*c, *ip);
    }
    // 2. Previous addresses still valid and not claimed statically.
    let unassigned: Vec<&str> = r
        .members
        .keys()
        .copied()
        .filter(|c| !out.contains_key(c))
        .collect();
    for c in unassigned {
        if let Some(ip) = r.previous.get(c)
            && r.subnet.usable(*ip)
            && *ip != r.gateway
            && !taken.contains_key(ip)
        {
            taken.insert(*ip, c);
            out.insert(c, *ip);
        }
    }
    // 3. The lowest free address for the rest, in name order.
    let mut next: u128 = 1;
    for &c in r.members.keys() {
        if out.contains_key(c) {
            continue;
        }
        loop {
            let Some(ip) = r.subnet.nth(next) else {
                return Err(IpamError::Exhausted {
                    network: r.network.into(),
                    subnet: r.subnet,
                    container: c.to_string(),
                });
            };
            next += 1;
            if r.subnet.usable(ip) && ip != r.gateway && !taken.contains_key(&ip) {
                taken.insert(ip, c);
                out.insert(c, ip);
                break;
            }
        }
    }
    Ok(out)
}

/// Subnets of `ours` that overlap a route the host already has (`routes`,
/// from the host's routing table) — a refused network, with which route.
pub fn host_overlaps<'a>(
    ours: &'a [(String, Subnet)],
    routes: &[Subnet],
) -> Vec<(&'a str, Subnet)> {
    let mut out = Vec::new();
    for (name, s) in ours {
        // A default route (prefix 0) overlaps everything and is fine.
        for r in routes.iter().filter(|r| r.prefix > 0) {
            if s.overlaps(r) {
                out.push((name.as_str(), *r));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        let (a, p) = s.split_once('/').unwrap();
        Subnet {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn members<'a>(list: &[(&'a str, Option<&str>)]) -> BTreeMap<&'a str, Option<IpAddr>> {
        list.iter().map(|(n, i)| (*n, i.map(ip))).collect()
    }

    fn req<'a>(
        m: &'a BTreeMap<&'a str, Option<IpAddr>>,
        prev: &'a BTreeMap<&'a str, IpAddr>,
        subnet: &str,
    ) -> Request<'a> {
        let subnet = net(subnet);
        Request {
            network: "backend",
            subnet,
            gateway: subnet.nth(1).unwrap(),
            members: m,
            previous: prev,
        }
    }

    #[test]
    fn statics_first_then_lowest_free_in_name_order() {
        let m = members(&[("web", None), ("db", Some("10.89.0.2")), ("api", None)]);
        let prev = BTreeMap::new();
        let got = assign(&req(&m, &prev, "10.89.0.0/24")).unwrap();
        assert_eq!(got["db"], ip("10.89.0.2"));
        assert_eq!(got["api"], ip("10.89.0.3"));
        assert_eq!(got["web"], ip("10.89.0.4"));
        // Deterministic.
        assert_eq!(assign(&req(&m, &prev, "10.89.0.0/24")).unwrap(), got);
    }

    #[test]
    fn addresses_are_stable_and_freed() {
        let prev: BTreeMap<&str, IpAddr> = [("web", ip("10.89.0.77"))].into();
        let m = members(&[("api", None), ("web", None)]);
        let got = assign(&req(&m, &prev, "10.89.0.0/24")).unwrap();
        assert_eq!(got["web"], ip("10.89.0.77"), "kept across restarts");
        assert_eq!(got["api"], ip("10.89.0.2"));
        // api leaves; a new member gets its address back.
        let m = members(&[("new", None), ("web", None)]);
        let got = assign(&req(&m, &prev, "10.89.0.0/24")).unwrap();
        assert_eq!(got["new"], ip("10.89.0.2"));
        // A previous address now taken statically by someone else is given up.
        let m = members(&[("db", Some("10.89.0.77")), ("web", None)]);
        let got = assign(&req(&m, &prev, "10.89.0.0/24")).unwrap();
        assert_eq!(got["db"], ip("10.89.0.77"));
        assert_eq!(got["web"], ip("10.89.0.2"));
        // A previous address outside a changed subnet is given up too.
        let m = members(&[("web", None)]);
        assert_eq!(
            assign(&req(&m, &prev, "10.90.0.0/24")).unwrap()["web"],
            ip("10.90.0.2")
        );
    }

    #[test]
    fn refuses_bad_statics_and_exhaustion() {
        let prev = BTreeMap::new();
        for bad in ["10.89.0.1", "10.89.0.0", "10.89.0.255", "10.90.0.5"] {
            let m = members(&[("x", Some(bad))]);
            assert!(
                matches!(
                    assign(&req(&m, &prev, "10.89.0.0/24")),
                    Err(IpamError::NotUsable { .. })
                ),
                "{bad}"
            );
        }
        let m = members(&[("a", Some("10.89.0.9")), ("b", Some("10.89.0.9"))]);
        assert_eq!(
            assign(&req(&m, &prev, "10.89.0.0/24"))
                .unwrap_err()
                .to_string(),
            "network backend: 10.89.0.9 is wanted by both a and b"
        );
        // A /30 holds a gateway and one container.
        let m = members(&[("a", None), ("b", None)]);
        let e = assign(&req(&m, &prev, "10.89.0.0/30")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network backend: no free address left in 10.89.0.0/30 for b"
        );
    }

    #[test]
    fn ipv6_subnets() {
        let m = members(&[("a", None), ("b", Some("fd00:89::99"))]);
        let prev = BTreeMap::new();
        let got = assign(&req(&m, &prev, "fd00:89::/64")).unwrap();
        assert_eq!(got["a"], ip("fd00:89::2"));
        assert_eq!(got["b"], ip("fd00:89::99"));
    }

    #[test]
    fn overlaps_with_host_routes() {
        let ours = vec![
            ("backend".to_string(), net("10.89.0.0/24")),
            ("front".to_string(), net("192.168.50.0/24")),
        ];
        let routes = vec![net("0.0.0.0/0"), net("10.0.0.0/8"), net("172.17.0.0/16")];
        let hits = host_overlaps(&ours, &routes);
        assert_eq!(hits, vec![("backend", net("10.0.0.0/8"))]);
    }
}
