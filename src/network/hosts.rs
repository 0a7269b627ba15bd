//! Name-based discovery: the `/etc/hosts` each container gets (itself and
//! every container of the networks it shares, by name and alias), and its
//! `/etc/resolv.conf` (the host's, minus resolvers on loopback, which do not
//! answer inside another network namespace).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// A container as others see it on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: IpAddr,
}

/// `/etc/hosts` for `me` (with its hostname), given the peers of every
/// network it joins (itself included). Each name appears once: its address
/// on the first network they share, in the order `me` joins them.
pub fn hosts_file(me: &str, hostname: &str, networks: &[Vec<Peer>]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut own = false;
    for peers in networks {
        for p in peers {
            if p.name == me {
                if !own {
                    let mut names = vec![hostname.to_string()];
                    if hostname != me {
                        names.push(me.to_string());
                    }
                    names.extend(p.aliases.iter().cloned());
                    out.push_str(&format!("{}\t{}\n", p.ip, names.join(" ")));
                    own = true;
                    for n in names {
                        seen.insert(n, ());
                    }
                }
                continue;
            }
            let names: Vec<String> = std::iter::once(p.name.clone())
                .chain(p.aliases.iter().cloned())
                .filter(|n| !seen.contains_key(n))
                .collect();
            if names.is_empty() {
                continue;
            }
            for n in &names {
                seen.insert(n.clone(), ());
            }
            out.push_str(&format!("{}\t{}\n", p.ip, names.join(" ")));
        }
    }
    if !own {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    out
}

/// The host's resolv.conf for a container: loopback nameservers dropped
/// (they live in the host's network namespace only).
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("nameserver") {
            let ip: Option<IpAddr> = addr.trim().split('%').next().and_then(|a| a.parse().ok());
            if ip.is_none_or(|ip| ip.is_loopback()) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str(
            "# rkstack: the host's resolvers are all on loopback, which containers cannot reach\n",
        );
    }
    out
}

/// resolv.conf of a container whose network has the stack's name server
/// at `server`: that alone as resolver, with the host's search domains and
/// options.
pub fn resolv_conf_served(server: IpAddr, host: &str) -> String {
    let mut out = format!("nameserver {server}\n");
    for line in host.lines() {
        let t = line.trim_start();
        if t.starts_with("search") || t.starts_with("domain") || t.starts_with("options") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The resolvers a resolv.conf names (port 53), in its order.
pub fn nameservers(text: &str) -> Vec<std::net::SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| (ip, 53).into())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: &str, ip: &str, aliases: &[&str]) -> Peer {
        Peer {
            name: n.into(),
            ip: ip.parse().unwrap(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn a_served_container_asks_the_stack_and_keeps_the_hosts_search_domains() {
        let host = "# made by hand\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lab.example\noptions edns0\n";
        assert_eq!(
            resolv_conf_served("10.7.0.1".parse().unwrap(), host),
            "nameserver 10.7.0.1\nsearch lab.example\noptions edns0\n"
        );
        let ns = nameservers(host);
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0].to_string(), "127.0.0.53:53");
        assert!(nameservers("nameserver fe80::1%eth0\nnameserver junk\n")[0].is_ipv6());
    }

    #[test]
    fn hosts_lists_itself_and_peers_by_name_and_alias() {
        let backend = vec![
            peer("db", "10.89.0.10", &["database"]),
            peer("web", "10.89.0.2", &["www"]),
        ];
        let front = vec![
            peer("web", "10.90.0.2", &[]),
            peer("proxy", "10.90.0.3", &[]),
        ];
        let h = hosts_file("web", "web", &[backend, front]);
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.89.0.10\tdb database\n10.89.0.2\tweb www\n10.90.0.3\tproxy\n"
        );
    }

    #[test]
    fn a_container_on_no_network_still_resolves_its_hostname() {
        assert!(hosts_file("solo", "solo.local", &[]).ends_with("127.0.1.1\tsolo.local\n"));
    }

    #[test]
    fn loopback_resolvers_are_dropped() {
        let host =
            "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\nnameserver ::1\n";
        assert_eq!(
            resolv_conf(host),
            "# generated\nnameserver 10.0.0.2\nsearch lan\n"
        );
        assert!(resolv_conf("nameserver 127.0.0.53\n").contains("all on loopback"));
    }
}
