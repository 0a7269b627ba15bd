//! The stack's name server as the supervisor runs it (sockets on loopback
//! in place of the gateways): names of the stack answered, membership
//! changes that rewrite no other container's files, other names passed to
//! the host's resolver and back, and none from an internal network.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::super::dns::DnsSource;
use super::*;
use crate::network::dns::{TYPE_A, parse};

const NET: &str = "[networks.front]\nsubnet = \"10.88.0.0/24\"\n\
    [containers.web]\nnetworks = { front = { aliases = [\"www\"] } }\n\
    [containers.db]\nnetworks = [\"front\"]\n";

/// H with name servers that listen (on loopback).
fn served(body: &str) -> H {
    let mut h = listening(body);
    h.up();
    h
}

/// H whose name servers will listen (on loopback, so askers from there
/// are taken as members).
fn listening(body: &str) -> H {
    let mut h = H::new(body);
    h.net.borrow_mut().name_servers = true;
    h.sup.nets.dns.any_asker = true;
    h
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// Asks `name` of the network's server; its answer.
fn ask(h: &mut H, network: &str, client: &UdpSocket, id: u16, name: &str) -> Vec<u8> {
    let server = h.sup.nets.dns.local_addr(network).unwrap();
    client.send_to(&query(id, name), server).unwrap();
    h.sup.serve_dns(&DnsSource::Network(network.into()));
    let mut buf = [0u8; 512];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn rcode(a: &[u8]) -> u8 {
    a[3] & 0x0f
}

/// The addresses of an answer's A records.
fn addresses(a: &[u8]) -> Vec<std::net::IpAddr> {
    let n = u16::from_be_bytes([a[6], a[7]]) as usize;
    (0..n)
        .map(|i| {
            let at = a.len() - (n - i) * 16 + 12;
            std::net::IpAddr::from([a[at], a[at + 1], a[at + 2], a[at + 3]])
        })
        .collect()
}

#[test]
fn containers_are_found_by_name_and_alias_and_only_while_running() {
    let mut h = served(NET);
    let client = socket();
    let web = h.sup.live["web"].ips["front"];
    let a = ask(&mut h, "front", &client, 7, "WWW");
    assert_eq!((u16::from_be_bytes([a[0], a[1]]), rcode(&a)), (7, 0));
    assert_eq!(addresses(&a), vec![web]);
    assert_eq!(addresses(&ask(&mut h, "front", &client, 8, "db")).len(), 1);
    assert_eq!(rcode(&ask(&mut h, "front", &client, 9, "nobody")), 3);
    h.sup.stop("web");
    assert_eq!(rcode(&ask(&mut h, "front", &client, 10, "web")), 3);
}

#[test]
fn a_start_or_stop_rewrites_no_other_containers_files() {
    let mut h = served(NET);
    h.sup.flush_hosts();
    let before = h.sup.nets.hosts_writes.get();
    let more = format!("{NET}[containers.cache]\nnetworks = [\"front\"]\n");
    h.edit(&more).unwrap();
    h.sup.stop("db");
    h.sup.flush_hosts();
    assert_eq!(
        h.sup.nets.hosts_writes.get() - before,
        1,
        "only the new container's own file"
    );
    let hosts = h.sup.hosts_of("web");
    assert!(!hosts.contains("cache") && hosts.contains("web"), "{hosts}");
}

#[test]
fn where_no_server_can_listen_the_hosts_files_list_the_peers() {
    let mut h = H::new(NET);
    h.up();
    assert!(h.sup.nets.dns.local_addr("front").is_none());
    assert!(h.sup.hosts_of("web").contains("\tdb"));
    assert!(
        h.events_since(0)
            .iter()
            .any(|e| e.contains("cannot listen") && e.contains("/etc/hosts")),
        "{:?}",
        h.events_since(0)
    );
}

#[test]
fn other_names_go_to_the_hosts_resolver_and_its_answer_comes_back() {
    let upstream = socket();
    let at: SocketAddr = upstream.local_addr().unwrap();
    let mut h = listening(NET);
    h.net.borrow_mut().resolvers = vec![at];
    h.up();
    let client = socket();
    let server = h.sup.nets.dns.local_addr("front").unwrap();
    client
        .send_to(&query(0x4242, "example.org"), server)
        .unwrap();
    h.sup.serve_dns(&DnsSource::Network("front".into()));
    let mut buf = [0u8; 512];
    let (n, from) = upstream.recv_from(&mut buf).unwrap();
    let mut asked = buf[..n].to_vec();
    let crate::network::dns::Parsed::Query(q) = parse(&asked) else {
        panic!("not a query");
    };
    assert_eq!(q.name, "example.org");
    // The resolver answers (an empty answer will do), and a forged one
    // from elsewhere is dropped.
    asked[2] |= 0x80;
    socket().send_to(&asked, from).unwrap();
    upstream.send_to(&asked, from).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    h.sup.serve_dns(&DnsSource::Upstream(0));
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), 0x4242);
    assert!(n >= 12);
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(client.recv_from(&mut buf).is_err(), "answered once");
}

#[test]
fn an_internal_network_gets_no_answer_from_outside_and_single_labels_stay_in() {
    let upstream = socket();
    upstream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let body = NET.replace(
        "subnet = \"10.88.0.0/24\"\n",
        "subnet = \"10.88.0.0/24\"\ninternal = true\n",
    );
    let mut h = listening(&body);
    h.net.borrow_mut().resolvers = vec![upstream.local_addr().unwrap()];
    h.up();
    let client = socket();
    assert_eq!(rcode(&ask(&mut h, "front", &client, 1, "example.org")), 3);
    let mut buf = [0u8; 512];
    assert!(upstream.recv_from(&mut buf).is_err(), "nothing went out");
    // Nor does a bare name from a network that may reach out.
    let mut h2 = listening(NET);
    h2.net.borrow_mut().resolvers = vec![upstream.local_addr().unwrap()];
    h2.up();
    assert_eq!(rcode(&ask(&mut h2, "front", &client, 2, "printer")), 3);
    assert!(upstream.recv_from(&mut buf).is_err());
}

#[test]
fn garbage_from_a_container_is_answered_or_dropped_and_the_server_goes_on() {
    let mut h = served(NET);
    let client = socket();
    let server = h.sup.nets.dns.local_addr("front").unwrap();
    for junk in [&b""[..], &[0u8; 3], &[0xff; 40], &query(5, "a")[..14]] {
        client.send_to(junk, server).unwrap();
    }
    h.sup.serve_dns(&DnsSource::Network("front".into()));
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 512];
    while client.recv_from(&mut buf).is_ok() {}
    assert_eq!(addresses(&ask(&mut h, "front", &client, 6, "db")).len(), 1);
}

#[test]
fn an_asker_from_outside_the_network_learns_no_names() {
    let mut h = H::new(NET);
    h.net.borrow_mut().name_servers = true;
    h.up();
    // From loopback, which is not in 10.88.0.0/24.
    let a = ask(&mut h, "front", &socket(), 3, "db");
    assert_eq!(rcode(&a), 5, "REFUSED");
    assert!(addresses(&a).is_empty());
}
