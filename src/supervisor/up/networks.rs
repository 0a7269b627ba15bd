//! The stack's networks as its containers see them: addresses (IPAM),
//! hosts files, published ports and NAT, veths removed with their container.

use super::*;

/// One network of a container about to start.
pub(super) struct NetPlan {
    pub(super) network: String,
    pub(super) bridge: String,
    pub(super) host_if: String,
    pub(super) inside: String,
    pub(super) ip: std::net::IpAddr,
    pub(super) prefix: u8,
    pub(super) gateway: Option<std::net::IpAddr>,
    /// The bridge's address (the network's gateway).
    pub(super) bridge_ip: std::net::IpAddr,
}

/// The stack's networks as they are now: what was made, the rules
/// applied, the ports published, and addresses to give back.
#[derive(Default)]
pub(super) struct Networks {
    /// Networks made, as the plan sees them.
    pub(super) records: BTreeMap<String, plan::NetworkRecord>,
    /// The nftables rules last applied (ports and NAT), to apply only changes.
    pub(super) rules: Option<String>,
    /// Addresses of containers that ended while no supervisor ran: they
    /// get them back when they start again (network → address).
    pub(super) past_ips: BTreeMap<String, BTreeMap<String, std::net::IpAddr>>,
    /// Host ports in the nftables table now.
    pub(super) published: Vec<crate::host::state_file::Published>,
    /// Members of a network came or went since the hosts files were written.
    pub(super) hosts_dirty: bool,
    /// Hosts files written (the cost of membership changes, for tests).
    pub(super) hosts_writes: std::cell::Cell<u64>,
    /// The name server of each network.
    pub(super) dns: super::dns::NameServers,
    /// Sockets bound to the published host ports (proto, address, port).
    pub(super) held: BTreeMap<HeldPort, std::os::fd::OwnedFd>,
    /// Ports that could not be held (reported once, not tried every turn).
    pub(super) not_held: std::collections::BTreeSet<HeldPort>,
    /// Every name the host ends of the veths of containers this supervisor
    /// ended may have (also on networks it has removed since): the kernel
    /// removes them some time after each one's network namespace, and the
    /// stack's shutdown waits for them too.
    pub(super) ended_veths: std::collections::BTreeSet<String>,
}

impl Networks {
    /// Notes the veths of `container`, ended, on `networks`.
    pub(super) fn ended<'a>(
        &mut self,
        stack: &str,
        container: &str,
        networks: impl Iterator<Item = &'a String>,
    ) {
        for net in networks {
            let own = crate::network::names::veth_host(stack, container, net);
            self.ended_veths
                .extend(crate::network::names::veth_host_names(&own));
        }
    }
}

/// A published host port: protocol, address (`None`: all), port.
pub(super) type HeldPort = (&'static str, Option<std::net::IpAddr>, u16);

impl Supervisor {
    /// The networks `name` joins, with its address on each (IPAM over every
    /// member of the network; a previous address is kept while valid).
    pub(super) fn network_plan(&self, name: &str) -> Result<Vec<NetPlan>, String> {
        let Some(c) = self.desired.container(name) else {
            return Ok(Vec::new());
        };
        let config::NetworkMode::Networks(atts) = &c.config.network else {
            return Ok(Vec::new());
        };
        let stack = self.stack();
        let mut out = Vec::new();
        for (i, att) in atts.iter().enumerate() {
            let Some(n) = self.desired.networks.get(att.network.as_str()) else {
                continue;
            };
            let (Some(cidr), Some(gw)) = (n.config.subnet, n.config.gateway) else {
                continue;
            };
            if !self.nets.records.contains_key(att.network.as_str()) {
                return Err(format!("network {} is not up (see why above)", att.network));
            }
            let subnet = crate::network::Subnet {
                addr: cidr.addr,
                prefix: cidr.prefix,
            };
            // Every member's address is worked out (that keeps them stable
            // whatever order they start in); borrowed names, no copies.
            let mut members: BTreeMap<&str, Option<std::net::IpAddr>> = BTreeMap::new();
            let mut previous: BTreeMap<&str, std::net::IpAddr> = BTreeMap::new();
            for other in &self.desired.containers {
                if let config::NetworkMode::Networks(oa) = &other.config.network
                    && let Some(a) = oa.iter().find(|a| a.network == att.network)
                {
                    members.insert(other.name.as_str(), a.ip);
                    if let Some(ip) = self
                        .live
                        .get(&other.name)
                        .map(|l| &l.ips)
                        .filter(|ips| !ips.is_empty())
                        .or_else(|| self.nets.past_ips.get(&other.name))
                        .and_then(|ips| ips.get(att.network.as_str()))
                    {
                        previous.insert(other.name.as_str(), *ip);
                    }
                }
            }
            let req = crate::network::ipam::Request {
                network: att.network.as_str(),
                subnet,
                gateway: gw,
                members: &members,
                previous: &previous,
            };
            let ips = crate::network::ipam::assign(&req).map_err(|e| e.to_string())?;
            let Some(ip) = ips.get(name).copied() else {
                continue;
            };
            out.push(NetPlan {
                network: att.network.to_string(),
                bridge: crate::network::names::bridge(&stack, att.network.as_str()),
                host_if: crate::network::names::veth_host(&stack, name, att.network.as_str()),
                inside: crate::network::names::inside(out.len()),
                ip,
                prefix: cidr.prefix,
                // The first network gives the default route, unless it is internal.
                gateway: (i == 0 && !n.config.internal).then_some(gw),
                bridge_ip: gw,
            });
        }
        Ok(out)
    }

    /// Writes `name`'s /etc/hosts and /etc/resolv.conf (bind-mounted into it);
    /// rewriting them in place later changes what the running container sees.
    pub(super) fn write_etc(&self, name: &str) -> Result<(PathBuf, PathBuf), String> {
        let dir = self
            .opts
            .state_dir
            .join(self.stack())
            .join("etc")
            .join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let hosts = dir.join("hosts");
        let resolv = dir.join("resolv.conf");
        std::fs::write(&hosts, self.hosts_of(name))
            .map_err(|e| format!("{}: {e}", hosts.display()))?;
        self.nets.hosts_writes.set(self.nets.hosts_writes.get() + 1);
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let text = match self
            .first_network(name)
            .and_then(|n| self.nets.dns.serves(n))
        {
            Some(server) => crate::network::hosts::resolv_conf_served(server, &host_resolv),
            None => crate::network::hosts::resolv_conf(&host_resolv),
        };
        std::fs::write(&resolv, text).map_err(|e| format!("{}: {e}", resolv.display()))?;
        Ok((hosts, resolv))
    }

    /// The first network `name` joins.
    fn first_network(&self, name: &str) -> Option<&str> {
        match &self.desired.container(name)?.config.network {
            config::NetworkMode::Networks(atts) => atts.first().map(|a| a.network.as_str()),
            _ => None,
        }
    }

    /// Whether `name`'s /etc/hosts lists peers (some network of its has no
    /// name server), so that it follows membership changes.
    fn hosts_follow_peers(&self, name: &str) -> bool {
        match self.desired.container(name).map(|c| &c.config.network) {
            Some(config::NetworkMode::Networks(atts)) => atts
                .iter()
                .any(|a| self.nets.dns.serves(a.network.as_str()).is_none()),
            _ => false,
        }
    }

    /// `name`'s /etc/hosts: itself, and the members of each network of its
    /// that has no name server.
    pub(super) fn hosts_of(&self, name: &str) -> String {
        let Some(c) = self.desired.container(name) else {
            return String::new();
        };
        let config::NetworkMode::Networks(atts) = &c.config.network else {
            return String::new();
        };
        let mut networks = Vec::new();
        for att in atts {
            let served = self.nets.dns.serves(att.network.as_str()).is_some();
            let mut peers = Vec::new();
            for other in &self.desired.containers {
                if served && other.name != name {
                    continue;
                }
                let config::NetworkMode::Networks(oa) = &other.config.network else {
                    continue;
                };
                let Some(a) = oa.iter().find(|a| a.network == att.network) else {
                    continue;
                };
                let Some(l) = self.live.get(&other.name) else {
                    continue;
                };
                let Some(ip) = l.ips.get(att.network.as_str()) else {
                    continue;
                };
                if other.name != name && l.state != State::Running {
                    continue;
                }
                peers.push(crate::network::hosts::Peer {
                    name: other.name.clone(),
                    aliases: a.aliases.clone(),
                    ip: *ip,
                });
            }
            networks.push(peers);
        }
        crate::network::hosts::hosts_file(name, &c.config.hostname, &networks)
    }

    /// Removes the host ends of a stopped container's veths at once: the
    /// kernel would only do it some time after its network namespace is gone.
    pub(super) fn detach(&mut self, name: &str) {
        let Some(l) = self.live.get(name) else { return };
        let stack = self.stack();
        for net in l.ips.keys() {
            let own = crate::network::names::veth_host(&stack, name, net);
            for n in crate::network::names::veth_host_names(&own) {
                let _ = self.net.delete_link(&n);
            }
        }
    }

    /// Before a plan changes anything: nftables must be there when the
    /// stack has ports or networks, and the host ports it will publish must
    /// not be held by a socket of this host (those rkstack already publishes
    /// for this stack are its own).
    pub(super) fn check_ports(&self, desired: &DesiredState, plan: &Plan) -> Result<(), String> {
        // Published ports, NAT and the isolation of bridges are nftables
        // rules: without nft they would silently be missing.
        let needs: Vec<&str> = desired
            .containers
            .iter()
            .filter(|c| !c.config.ports.is_empty())
            .map(|c| c.name.as_str())
            .chain(
                desired
                    .networks
                    .values()
                    .filter(|n| n.config.subnet.is_some())
                    .map(|n| n.name.as_str()),
            )
            .collect();
        if !needs.is_empty()
            && let Err(why) = self.net.rules_available()
        {
            return Err(format!(
                "published ports, NAT and the separation of networks need nftables ({} use them): {why}",
                needs.join(", ")
            ));
        }
        let starting: Vec<&str> = plan
            .ops
            .iter()
            .filter(|o| o.target == Target::Container && o.action == Action::Start)
            .map(|o| o.name.as_str())
            .collect();
        if starting.is_empty() {
            return Ok(());
        }
        // The ports this stack holds show up as held too: they are its own.
        let ours: std::collections::BTreeSet<(&str, u16)> = self
            .desired
            .containers
            .iter()
            .filter(|c| {
                self.live
                    .get(&c.name)
                    .is_some_and(|l| l.state == State::Running)
            })
            .flat_map(|c| {
                c.config
                    .ports
                    .iter()
                    .map(|p| (p.proto.as_str(), p.host_port))
            })
            .chain(
                self.nets
                    .held
                    .keys()
                    .map(|(proto, _, port)| (*proto, *port)),
            )
            .collect();
        let held = self.net.ports_in_use();
        let others = crate::host::stacks::published_by_others(&self.opts.state_dir, &desired.stack);
        let mut problems = Vec::new();
        for c in desired
            .containers
            .iter()
            .filter(|c| starting.contains(&c.name.as_str()))
        {
            for p in &c.config.ports {
                let key = (p.proto.as_str(), p.host_port);
                if let Some((other, _)) = others
                    .iter()
                    .find(|(_, o)| o.proto == key.0 && o.port == key.1)
                {
                    problems.push(format!(
                        "{}: host port {}/{} is already published by stack {other}",
                        c.name, p.host_port, key.0
                    ));
                } else if held.contains(&key) && !ours.contains(&key) {
                    problems.push(format!(
                        "{}: host port {}/{} is already in use on this host",
                        c.name, p.host_port, key.0
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Published ports of the running containers and NAT of the networks,
    /// applied to the stack's nftables table when they changed.
    pub(super) fn apply_ports(&mut self) {
        let stack = self.stack();
        let mut publish = Vec::new();
        let mut hold = std::collections::BTreeSet::new();
        for c in &self.desired.containers {
            let config::NetworkMode::Networks(atts) = &c.config.network else {
                continue;
            };
            let live = self.live.get(&c.name);
            // Held while the container is meant to run, restarts included.
            if live.is_some_and(|l| {
                matches!(
                    l.state,
                    State::Running | State::Backoff(_) | State::Stopping(_) | State::Pulling
                )
            }) {
                hold.extend(
                    c.config
                        .ports
                        .iter()
                        .map(|p| (p.proto.as_str(), p.host_ip, p.host_port)),
                );
            }
            let Some(l) = live.filter(|l| l.state == State::Running) else {
                continue;
            };
            // Ports go to the address on its first bridge network that is not internal.
            let Some(ip) = atts
                .iter()
                .filter(|a| {
                    self.desired
                        .networks
                        .get(a.network.as_str())
                        .is_some_and(|n| !n.config.internal)
                })
                .find_map(|a| l.ips.get(a.network.as_str()))
            else {
                continue;
            };
            for p in &c.config.ports {
                publish.push(crate::network::Publish {
                    proto: p.proto.as_str(),
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_ip: *ip,
                    container_port: p.container_port,
                });
            }
        }
        let bridges: Vec<crate::network::Bridge> = self
            .desired
            .networks
            .values()
            .filter(|n| self.nets.records.contains_key(&n.name))
            .filter_map(|n| {
                n.config.subnet.map(|s| crate::network::Bridge {
                    name: crate::network::names::bridge(&stack, &n.name),
                    subnet: crate::network::Subnet {
                        addr: s.addr,
                        prefix: s.prefix,
                    },
                    nat: n.config.nat,
                    internal: n.config.internal,
                })
            })
            .collect();
        let wanted = !publish.is_empty() || !bridges.is_empty();
        if !publish.is_empty() || bridges.iter().any(|b| b.nat) {
            match self.net.enable_forwarding() {
                Ok(true) => event(
                    &stack,
                    Kind::Network,
                    "IPv4 forwarding turned on (net.ipv4.ip_forward = 1) for published ports and NAT",
                ),
                Ok(false) => {}
                Err(e) => event(
                    &stack,
                    Kind::Error,
                    format!("IPv4 forwarding could not be turned on: {e}"),
                ),
            }
        }
        self.hold_ports(hold);
        let rules = crate::network::ruleset(&stack, &publish, &bridges);
        if (!wanted && self.nets.rules.is_none())
            || self.nets.rules.as_deref() == Some(rules.as_str())
        {
            return;
        }
        let result = if wanted {
            self.net.apply_rules(&stack, &publish, &bridges)
        } else {
            self.net.remove_rules(&stack)
        };
        match result {
            Ok(()) => {
                self.nets.rules = wanted.then_some(rules);
                let mut published: Vec<_> = publish
                    .iter()
                    .map(|p| crate::host::stacks::Published {
                        proto: p.proto.to_string(),
                        port: p.host_port,
                    })
                    .collect();
                published.sort();
                published.dedup();
                self.nets.published = published;
            }
            Err(e) => event(
                &stack,
                Kind::Error,
                format!("ports and nat not applied: {e}"),
            ),
        }
    }

    /// Holds a bound socket on each of `wanted` (see
    /// [`crate::network::NetOps::hold_port`]) and lets go of the others.
    fn hold_ports(&mut self, wanted: std::collections::BTreeSet<HeldPort>) {
        self.nets.held.retain(|k, _| wanted.contains(k));
        self.nets.not_held.retain(|k| wanted.contains(k));
        for k in wanted {
            if self.nets.held.contains_key(&k) || self.nets.not_held.contains(&k) {
                continue;
            }
            let (proto, ip, port) = k;
            match self.net.hold_port(proto, ip, port) {
                Ok(fd) => {
                    self.nets.held.insert(k, fd);
                }
                Err(e) => {
                    let at = ip.map_or_else(|| "*".to_string(), |ip| ip.to_string());
                    event(
                        &self.stack(),
                        Kind::Warning,
                        format!(
                            "host port {at}:{port}/{proto} could not be reserved ({e}): a program of the host may bind it and get none of its traffic"
                        ),
                    );
                    self.nets.not_held.insert(k);
                }
            }
        }
    }

    /// Rewrites every running container's /etc/hosts (members came or went).
    /// Members of a network came or went: the hosts files and published
    /// ports follow once the loop's present turn is done (a burst of
    /// starts rewrites each file once, not once per start).
    pub(super) fn hosts_changed(&mut self) {
        self.nets.hosts_dirty = true;
    }

    /// [`Supervisor::refresh_hosts`] if members came or went.
    pub(super) fn flush_hosts(&mut self) {
        if std::mem::take(&mut self.nets.hosts_dirty) {
            self.refresh_hosts();
        }
    }

    pub(super) fn refresh_hosts(&mut self) {
        self.apply_ports();
        for (name, l) in &self.live {
            if l.state != State::Running || l.ips.is_empty() || !self.hosts_follow_peers(name) {
                continue;
            }
            let path = self
                .opts
                .state_dir
                .join(self.stack())
                .join("etc")
                .join(name)
                .join("hosts");
            let text = self.hosts_of(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                // In place: the container sees the same file, with new contents.
                let _ = std::fs::write(&path, text);
                self.nets.hosts_writes.set(self.nets.hosts_writes.get() + 1);
            }
        }
    }

    /// Makes a network's bridge (unless its subnet collides with a route
    /// of the host) and records it.
    pub(super) fn create_network(&mut self, name: &str) {
        let Some(n) = self.desired.networks.get(name).cloned() else {
            return;
        };
        if let (Some(subnet), Some(gw)) = (n.config.subnet, n.config.gateway) {
            let bridge = crate::network::names::bridge(&self.stack(), name);
            // A subnet the host already routes elsewhere would cut it off.
            let ours = [(
                name.to_string(),
                crate::network::Subnet {
                    addr: subnet.addr,
                    prefix: subnet.prefix,
                },
            )];
            let routes: Vec<crate::network::Subnet> = self
                .net
                .routes()
                .into_iter()
                .filter(|(iface, _)| *iface != bridge)
                .map(|(_, r)| r)
                .collect();
            if let Some((_, r)) = crate::network::ipam::host_overlaps(&ours, &routes).first() {
                event(
                    &self.stack(),
                    Kind::Error,
                    format!(
                        "network {}: not made: {subnet} overlaps the host's route to {r}; choose another subnet",
                        name
                    ),
                );
                return;
            }
            match self.net.ensure_bridge(&bridge, gw, subnet.prefix) {
                Ok(()) => event(
                    &self.stack(),
                    Kind::Network,
                    format!(
                        "network {}: bridge {bridge} up ({subnet}, gateway {gw})",
                        name
                    ),
                ),
                Err(e) => event(
                    &self.stack(),
                    Kind::Error,
                    format!("network {}: cannot be made: {e}", name),
                ),
            }
        }
        self.nets.records.insert(name.to_string(), n.record());
        self.sync_dns();
    }

    /// Removes a network's bridge and its record.
    pub(super) fn remove_network(&mut self, name: &str) {
        let bridge = crate::network::names::bridge(&self.stack(), name);
        if let Err(e) = self.net.delete_link(&bridge) {
            event(&self.stack(), Kind::Error, format!("network {}: {e}", name));
        }
        self.nets.records.remove(name);
        self.sync_dns();
    }
}
