//! What is checked once every container is read: references between
//! containers, networks and volumes, addresses, ports and dependency cycles.

use super::*;
use crate::config::types::Proto;

impl Cx<'_> {
    pub(super) fn cross_check(
        &mut self,
        containers: &BTreeMap<Name, Container>,
        spans: &BTreeMap<Name, Spans>,
        networks: &BTreeMap<Name, (Network, Span, Span)>,
        volumes: &BTreeMap<Name, Volume>,
    ) {
        // Problems here are named by container; those that come from
        // [defaults] still point into it.
        let all_names: Vec<&str> = spans.keys().map(Name::as_str).collect();
        for (name, sp) in spans {
            self.prefix = format!("containers.{name}.");
            for (dep, span) in &sp.depends_on {
                if dep == name {
                    self.err_key(
                        span,
                        "depends_on",
                        format!("container \"{name}\" cannot depend on itself"),
                    );
                } else if !spans.contains_key(dep) {
                    let hint = did_you_mean(dep.as_str(), all_names.iter().copied());
                    self.err_key(
                        span,
                        "depends_on",
                        format!("no container named \"{dep}\"{hint}"),
                    );
                } else if let (Some(c), Some(t)) = (containers.get(name), containers.get(dep))
                    && c.depends_on.get(dep) == Some(&Condition::Healthy)
                    && t.health.is_none()
                {
                    self.err_key(
                        span,
                        "depends_on",
                        format!(
                            "waits for \"{dep}\" to be healthy, but \"{dep}\" has no [health] check"
                        ),
                    );
                }
            }
        }
        self.prefix.clear();
        self.cycles(spans);

        // Networks: references, addresses, names.
        let net_names: Vec<&str> = networks.keys().map(Name::as_str).collect();
        let mut ips: HashMap<(&Name, IpAddr), &Name> = HashMap::new();
        let mut dns: HashMap<(&Name, String), &Name> = HashMap::new();
        for (name, c) in containers {
            let sp = &spans[name];
            self.prefix = format!("containers.{name}.");
            if let NetworkMode::Networks(atts) = &c.network {
                for (i, a) in atts.iter().enumerate() {
                    let (nspan, ipspan) = &sp.networks[i];
                    let Some((net, _, _)) = networks.get(&a.network) else {
                        let hint = did_you_mean(a.network.as_str(), net_names.iter().copied());
                        self.err_key(
                            nspan,
                            "networks",
                            format!("no network named \"{}\" in [networks]{hint}", a.network),
                        );
                        continue;
                    };
                    if atts[..i].iter().any(|b| b.network == a.network) {
                        self.err_key(nspan, "networks", format!("joins \"{}\" twice", a.network));
                    }
                    for (j, alias) in std::iter::once(&name.to_string())
                        .chain(a.aliases.iter())
                        .enumerate()
                    {
                        if let Some(other) = dns.insert((&a.network, alias.clone()), name)
                            && other != name
                        {
                            let span = if j == 0 { nspan } else { &sp.aliases[i][j - 1] };
                            self.err_key(span, "networks", format!("name \"{alias}\" is already used by container \"{other}\" on network \"{}\"", a.network));
                        }
                    }
                    let Some(ip) = a.ip else { continue };
                    let ipspan = ipspan.clone().unwrap_or(nspan.clone());
                    match (net.driver, net.subnet, net.gateway) {
                        (Driver::Bridge, Some(subnet), Some(gw)) => {
                            if !subnet.contains(ip) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!(
                                        "{ip} is outside the subnet {subnet} of network \"{}\"",
                                        a.network
                                    ),
                                );
                            } else if !subnet.is_host(ip) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is the network or broadcast address of {subnet}"),
                                );
                            } else if ip == gw {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is the gateway of network \"{}\"", a.network),
                                );
                            } else if let Some(other) = ips.insert((&a.network, ip), name) {
                                self.err_key(
                                    &ipspan,
                                    "networks",
                                    format!("{ip} is already given to container \"{other}\""),
                                );
                            }
                        }
                        _ => self.err_key(
                            &ipspan,
                            "networks",
                            format!(
                                "network \"{}\" has no subnet to take an address from",
                                a.network
                            ),
                        ),
                    }
                }
            }
            // Ports need a bridge to reach.
            if !c.ports.is_empty() {
                let reachable = match &c.network {
                    NetworkMode::Networks(atts) => atts.iter().any(|a| {
                        networks
                            .get(&a.network)
                            .is_some_and(|(n, _, _)| n.driver == Driver::Bridge && !n.internal)
                    }),
                    _ => false,
                };
                if !reachable {
                    let why = match c.network {
                        NetworkMode::Host => {
                            "a container on the host's network uses the host's ports directly"
                        }
                        _ => "ports need a bridge network that is not internal",
                    };
                    self.err_key(&sp.ports[0], "ports", why);
                }
            }
            // Volumes.
            let mut vi = 0;
            for m in &c.mounts {
                if let Mount::Volume { source, .. } = m {
                    let span = sp.mount_sources.get(vi).cloned().unwrap_or(sp.key.clone());
                    vi += 1;
                    if !volumes.contains_key(source) {
                        let hint = did_you_mean(source.as_str(), volumes.keys().map(Name::as_str));
                        self.err_key(
                            &span,
                            "mounts",
                            format!("no volume named \"{source}\" in [volumes]{hint}"),
                        );
                    }
                }
            }
        }
        self.prefix.clear();

        // Host ports published twice.
        let mut seen: HashMap<(Proto, u16), Vec<(PortSpec, &Name)>> = HashMap::new();
        for (name, c) in containers {
            for (i, p) in c.ports.iter().enumerate() {
                let entry = seen.entry((p.proto, p.host_port)).or_default();
                if let Some((_, other)) = entry.iter().find(|(q, _)| q.clashes(p)) {
                    let span = spans[name].ports[i].clone();
                    let msg = format!(
                        "host port {} is already published by container \"{other}\"",
                        p.host_port
                    );
                    self.prefix = format!("containers.{name}.");
                    self.err_key(&span, "ports", msg);
                    self.prefix.clear();
                }
                entry.push((*p, name));
            }
        }

        // Overlapping subnets.
        let nets: Vec<_> = networks.values().collect();
        for (i, (a, _, aspan)) in nets.iter().enumerate() {
            for (b, _, _) in &nets[..i] {
                if let (Some(sa), Some(sb)) = (a.subnet, b.subnet)
                    && sa.overlaps(&sb)
                {
                    self.err(
                        aspan,
                        format!(
                            "networks.{}.subnet: {sa} overlaps {sb} of network \"{}\"",
                            a.name, b.name
                        ),
                    );
                }
            }
        }
    }

    /// Reports each dependency cycle once, naming it: `a → b → a`.
    pub(super) fn cycles(&mut self, spans: &BTreeMap<Name, Spans>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark: BTreeMap<&Name, Mark> = spans.keys().map(|k| (k, Mark::New)).collect();
        for start in spans.keys() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS keeping the path, so deep chains cannot overflow the stack.
            let mut path: Vec<(&Name, Vec<&Name>)> =
                vec![(start, spans[start].depends_on.keys().collect())];
            mark.insert(start, Mark::Active);
            while let Some((node, pending)) = path.last_mut() {
                let node = *node;
                match pending.pop() {
                    None => {
                        mark.insert(node, Mark::Done);
                        path.pop();
                    }
                    Some(next) => match mark.get(next) {
                        Some(Mark::New) => {
                            mark.insert(next, Mark::Active);
                            path.push((next, spans[next].depends_on.keys().collect()));
                        }
                        Some(Mark::Active) if next != node => {
                            let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let mut names: Vec<&str> =
                                path[from..].iter().map(|(n, _)| n.as_str()).collect();
                            names.push(next.as_str());
                            let span = spans[node]
                                .depends_on
                                .get(next)
                                .cloned()
                                .unwrap_or_default();
                            self.err(
                                &span,
                                format!(
                                    "containers.{node}.depends_on: dependency cycle: {}",
                                    names.join(" → ")
                                ),
                            );
                        }
                        _ => {}
                    },
                }
            }
        }
    }
}
