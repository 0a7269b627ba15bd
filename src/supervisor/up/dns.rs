//! The stack's name server: on each network's gateway, port 53, it answers
//! the names of the containers that share a network with the asker (their
//! name and aliases), and passes other names on to the host's resolvers —
//! except from an internal network, which gets no way out, not even by DNS.
//!
//! Containers find each other by asking it, so a container that starts or
//! stops changes no other container's files: a start costs the same with
//! one member or a thousand. Where a server cannot listen (the host serves
//! DNS on that address), its network's members get each other in
//! /etc/hosts instead, as before. Every datagram comes from a container
//! and may be hostile: it is read strictly, answered at once or dropped,
//! and a turn of the loop reads at most [`PER_TURN`] of them per socket.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use crate::network::dns::{self, Parsed, Rcode};
use crate::network::dns_relay::Relay;

use super::*;

/// Datagrams read from one socket in one turn of the loop.
const PER_TURN: usize = 64;
/// Questions waiting for the host's resolvers, at most.
const PENDING: usize = 1024;
/// How long an upstream answer is waited for.
const UPSTREAM_WAIT: Duration = Duration::from_secs(5);

/// A socket of the name server the loop polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DnsSource {
    /// The server of a network.
    Network(String),
    /// The socket that asks the host's resolvers (0: IPv4, 1: IPv6).
    Upstream(usize),
}

/// The name servers of the stack's networks.
pub(super) struct NameServers {
    /// network → (gateway, socket).
    servers: BTreeMap<String, (IpAddr, UdpSocket)>,
    /// Networks whose server could not listen, with the gateway tried.
    failed: BTreeMap<String, IpAddr>,
    upstream: [Option<UdpSocket>; 2],
    /// The host's resolvers, read when first needed.
    resolvers: Option<Vec<SocketAddr>>,
    relay: Relay<(String, SocketAddr)>,
    buf: Vec<u8>,
    /// Answer askers from outside the network's subnet too (the unit
    /// tests' servers listen on loopback).
    pub(super) any_asker: bool,
}

impl Default for NameServers {
    fn default() -> Self {
        NameServers {
            servers: BTreeMap::new(),
            failed: BTreeMap::new(),
            upstream: [None, None],
            resolvers: None,
            relay: Relay::new(PENDING, UPSTREAM_WAIT),
            buf: vec![0; 65_536],
            any_asker: false,
        }
    }
}

impl NameServers {
    /// The sockets to poll, with what each is.
    pub(super) fn sources(&self) -> Vec<(RawFd, DnsSource)> {
        let mut out: Vec<(RawFd, DnsSource)> = self
            .servers
            .iter()
            .map(|(n, (_, s))| (s.as_raw_fd(), DnsSource::Network(n.clone())))
            .collect();
        for (i, u) in self.upstream.iter().enumerate() {
            if let Some(u) = u {
                out.push((u.as_raw_fd(), DnsSource::Upstream(i)));
            }
        }
        out
    }

    /// Whether `network`'s members ask the server (else: /etc/hosts).
    pub(super) fn serves(&self, network: &str) -> Option<IpAddr> {
        self.servers.get(network).map(|(gw, _)| *gw)
    }
}

impl Supervisor {
    /// Servers follow the networks made: one on the gateway of each, none
    /// for a network gone; a server whose gateway changed listens anew.
    /// Called wherever the networks made change (made, removed, adopted).
    pub(super) fn sync_dns(&mut self) {
        let made: BTreeMap<String, IpAddr> = self
            .nets
            .records
            .keys()
            .filter_map(|n| {
                let gw = self.desired.networks.get(n.as_str())?.config.gateway?;
                Some((n.clone(), gw))
            })
            .collect();
        let dns = &mut self.nets.dns;
        dns.servers
            .retain(|n, (gw, _)| made.get(n.as_str()) == Some(gw));
        dns.failed.retain(|n, gw| made.get(n.as_str()) == Some(gw));
        let new: Vec<(String, IpAddr)> = made
            .into_iter()
            .filter(|(n, _)| !dns.servers.contains_key(n) && !dns.failed.contains_key(n))
            .collect();
        for (n, gw) in new {
            match self.net.name_server(gw) {
                Ok(s) => {
                    self.nets.dns.servers.insert(n, (gw, s));
                }
                Err(e) => {
                    event(
                        &self.stack(),
                        Kind::Warning,
                        format!(
                            "network {n}: the name server cannot listen on {gw}:53 ({e}); its containers find each other through /etc/hosts"
                        ),
                    );
                    self.nets.dns.failed.insert(n, gw);
                }
            }
        }
    }

    /// Reads and answers what `source` has (a bounded number of datagrams).
    pub(super) fn serve_dns(&mut self, source: &DnsSource) {
        // The buffer is lent out while the answers need `self`.
        let mut buf = std::mem::take(&mut self.nets.dns.buf);
        for _ in 0..PER_TURN {
            let dns = &self.nets.dns;
            let sock = match source {
                DnsSource::Network(n) => dns.servers.get(n).map(|(_, s)| s),
                DnsSource::Upstream(i) => dns.upstream[*i].as_ref(),
            };
            let Some(sock) = sock else { break };
            let (len, from) = match sock.recv_from(&mut buf) {
                Ok(got) => got,
                // WouldBlock: read all; other errors (ICMP errors of
                // earlier sends) are for the datagram, not the socket.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            match source {
                DnsSource::Network(n) => self.on_question(n, &buf[..len], from),
                DnsSource::Upstream(_) => self.on_upstream_answer(&mut buf[..len], from),
            }
        }
        self.nets.dns.buf = buf;
    }

    fn reply(&self, network: &str, to: SocketAddr, msg: &[u8]) {
        if let Some((_, s)) = self.nets.dns.servers.get(network) {
            // A full buffer or a gone asker: the resolver asks again.
            let _ = s.send_to(msg, to);
        }
    }

    fn on_question(&mut self, network: &str, msg: &[u8], from: SocketAddr) {
        // Only the network's own members ask its server: another stack's
        // container (or another network's) learns no names here.
        let member = self
            .desired
            .networks
            .get(network)
            .and_then(|n| n.config.subnet)
            .is_none_or(|s| s.contains(from.ip()));
        let q = match dns::parse(msg) {
            Parsed::Query(q) => q,
            Parsed::Reject { id, rd, rcode } => {
                return self.reply(network, from, &dns::reject(id, rd, rcode));
            }
            Parsed::Ignore => return,
        };
        if !member && !self.nets.dns.any_asker {
            return self.reply(network, from, &q.fail(Rcode::Refused));
        }
        if let Some(ips) = self.lookup(network, from.ip(), &q.name) {
            return self.reply(network, from, &q.answer(&ips));
        }
        let internal = self
            .desired
            .networks
            .get(network)
            .is_some_and(|n| n.config.internal);
        // A single label is a container's name or nothing: never sent out.
        if internal || !q.name.contains('.') {
            return self.reply(network, from, &q.fail(Rcode::NxDomain));
        }
        if !self.forward(network, msg, from) {
            self.reply(network, from, &q.fail(Rcode::ServFail));
        }
    }

    /// Passes a question on to the host's first resolver; false when there
    /// is none or it cannot be sent.
    fn forward(&mut self, network: &str, msg: &[u8], from: SocketAddr) -> bool {
        if self.nets.dns.resolvers.is_none() {
            self.nets.dns.resolvers = Some(self.net.resolvers());
        }
        let Some(&upstream) = self.nets.dns.resolvers.iter().flatten().next() else {
            return false;
        };
        let v6 = usize::from(upstream.is_ipv6());
        if self.nets.dns.upstream[v6].is_none() {
            match self.net.upstream_socket(v6 == 1) {
                Ok(s) => self.nets.dns.upstream[v6] = Some(s),
                Err(_) => return false,
            }
        }
        let dns = &mut self.nets.dns;
        let id = dns.relay.add(
            Instant::now(),
            (network.to_string(), from),
            dns::id_of(msg),
            upstream,
        );
        let mut out = msg.to_vec();
        dns::with_id(&mut out, id);
        dns.upstream[v6]
            .as_ref()
            .is_some_and(|s| s.send_to(&out, upstream).is_ok())
    }

    fn on_upstream_answer(&mut self, msg: &mut [u8], from: SocketAddr) {
        if !dns::is_answer(msg) {
            return;
        }
        let Some(((network, asker), id)) =
            self.nets
                .dns
                .relay
                .take(Instant::now(), dns::id_of(msg), from)
        else {
            return;
        };
        dns::with_id(msg, id);
        self.reply(&network, asker, msg);
    }

    /// The addresses of the running container called `name` (or with that
    /// alias) on a network it shares with the asker at `client` on
    /// `network`: the first such network, in the asker's order. An asker
    /// that is no member of the stack gets `network`'s members only.
    fn lookup(&self, network: &str, client: IpAddr, name: &str) -> Option<Vec<Ipv4Addr>> {
        let asker = self
            .live
            .iter()
            .find(|(_, l)| l.ips.get(network) == Some(&client))
            .map(|(n, _)| n.as_str());
        let nets: Vec<&str> = match asker.and_then(|a| self.desired.container(a)) {
            Some(c) => match &c.config.network {
                config::NetworkMode::Networks(atts) => {
                    atts.iter().map(|a| a.network.as_str()).collect()
                }
                _ => vec![network],
            },
            None => vec![network],
        };
        for net in nets {
            let mut found = Vec::new();
            for c in &self.desired.containers {
                let config::NetworkMode::Networks(atts) = &c.config.network else {
                    continue;
                };
                let Some(att) = atts.iter().find(|a| a.network.as_str() == net) else {
                    continue;
                };
                if !(c.name.eq_ignore_ascii_case(name)
                    || att.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
                {
                    continue;
                }
                let Some(l) = self.live.get(&c.name) else {
                    continue;
                };
                if l.state != State::Running && Some(c.name.as_str()) != asker {
                    continue;
                }
                if let Some(IpAddr::V4(ip)) = l.ips.get(net) {
                    found.push(*ip);
                }
            }
            if !found.is_empty() {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
impl NameServers {
    /// Where `network`'s server listens.
    pub(super) fn local_addr(&self, network: &str) -> Option<SocketAddr> {
        self.servers.get(network)?.1.local_addr().ok()
    }
}
