//! A small synchronous rtnetlink client: the handful of requests rkstack
//! needs (links, addresses, a default route), each answered by the kernel
//! in microseconds, instead of an `ip` process per change. Messages are
//! netlink-packet-route's, built by the functions here (pure,
//! unit-tested); [`Netlink`] sends them on a `NETLINK_ROUTE` socket of the
//! caller's network namespace or of a container's ([`in_netns_of`]),
//! and parses the answers with the same crate.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    DecodeError, ErrorBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, LinkMessageBuffer,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// `RTM_NEWLINK`, the type of the answer to a `RTM_GETLINK` (uapi
/// rtnetlink.h).
const RTM_NEWLINK: u16 = 16;

/// One request: a message of the route family and its header flags
/// (`NLM_F_REQUEST | NLM_F_ACK` are added when it is sent).
#[derive(Debug)]
pub struct Msg {
    inner: RouteNetlinkMessage,
    flags: u16,
}

impl Msg {
    fn new(inner: RouteNetlinkMessage, flags: u16) -> Msg {
        Msg { inner, flags }
    }

    /// The bytes to send, with length and sequence number.
    fn finish(self, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = self.flags | NLM_F_REQUEST | NLM_F_ACK;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(self.inner));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    m
}

/// A link by name (its index in the answer).
pub fn get_link(name: &str) -> Msg {
    Msg::new(
        RouteNetlinkMessage::GetLink(link(0, vec![LinkAttribute::IfName(name.into())])),
        0,
    )
}

/// A new bridge, down.
pub fn new_bridge(name: &str) -> Msg {
    Msg::new(
        RouteNetlinkMessage::NewLink(link(
            0,
            vec![
                LinkAttribute::IfName(name.into()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
        )),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// A veth pair: `host` here, `peer` (with MAC address `mac`) created
/// directly in the network namespace of process `pid`.
pub fn new_veth(host: &str, peer: &str, pid: u32, mac: [u8; 6]) -> Msg {
    let peer = link(
        0,
        vec![
            LinkAttribute::IfName(peer.into()),
            LinkAttribute::Address(mac.to_vec()),
            LinkAttribute::NetNsPid(pid),
        ],
    );
    Msg::new(
        RouteNetlinkMessage::NewLink(link(
            0,
            vec![
                LinkAttribute::IfName(host.into()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
                ]),
            ],
        )),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// No IPv6 address of its own for link `index` (`addrgenmode none`): a
/// bridge port or an IPv4-only container end then sends no duplicate
/// address detection, router solicitation or MLD report, which the bridge
/// would flood to every other port — a cost per start that grows with the
/// number of containers on the bridge.
pub fn no_ipv6_link_local(index: u32) -> Msg {
    Msg::new(
        RouteNetlinkMessage::SetLink(link(
            index,
            vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )])],
        )),
        0,
    )
}

/// Link `index` up, enslaved to `master` when given.
pub fn set_up(index: u32, master: Option<u32>) -> Msg {
    let mut m = link(
        index,
        master.map(LinkAttribute::Controller).into_iter().collect(),
    );
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    Msg::new(RouteNetlinkMessage::SetLink(m), 0)
}

/// Link `index` gets MAC address `mac`.
pub fn set_mac(index: u32, mac: [u8; 6]) -> Msg {
    Msg::new(
        RouteNetlinkMessage::SetLink(link(index, vec![LinkAttribute::Address(mac.to_vec())])),
        0,
    )
}

/// Removes a link by name.
pub fn del_link(name: &str) -> Msg {
    Msg::new(
        RouteNetlinkMessage::DelLink(link(0, vec![LinkAttribute::IfName(name.into())])),
        0,
    )
}

/// `addr/prefix` on link `index` (replacing the same address).
pub fn add_addr(index: u32, addr: IpAddr, prefix: u8) -> Msg {
    let mut m = AddressMessage::default();
    m.header.family = family(addr);
    m.header.prefix_len = prefix;
    m.header.scope = AddressScope::Universe;
    m.header.index = index;
    m.attributes = vec![
        AddressAttribute::Local(addr),
        AddressAttribute::Address(addr),
    ];
    Msg::new(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// The default route via `gateway` on link `index`.
pub fn default_route(gateway: IpAddr, index: u32) -> Msg {
    let mut m = RouteMessage::default();
    m.header.address_family = family(gateway);
    m.header.destination_prefix_length = 0;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes = vec![
        RouteAttribute::Gateway(gateway.into()),
        RouteAttribute::Oif(index),
    ];
    Msg::new(
        RouteNetlinkMessage::NewRoute(m),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Runs `make` (which opens a socket: a socket stays in the namespace it
/// was made in) inside the network namespace of process `pid`: this thread
/// enters it and returns to its own namespace.
pub fn in_netns_of<T>(pid: i32, make: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    use nix::sched::{CloneFlags, setns};
    let own = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(format!("/proc/{pid}/ns/net"))?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let made = make();
    if let Err(e) = setns(&own, CloneFlags::CLONE_NEWNET) {
        // Going on in a container's network namespace would put the
        // host's links out of reach; there is no sane way forward.
        tracing::error!("cannot return to the supervisor's network namespace: {e}");
        std::process::abort();
    }
    made
}

/// A `NETLINK_ROUTE` socket.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in the caller's network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Never wait on the kernel for long: an answer is immediate.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval for the given length.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends `msg` and waits for its acknowledgement; returns the answers
    /// that came before it: their message type and payload.
    pub fn request(&mut self, msg: Msg) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // SAFETY: `bytes` is a valid buffer for its length; the kernel
        // is the destination of an unconnected netlink socket by default.
        let sent =
            unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut rest = &buf[..n as usize];
            while !rest.is_empty() {
                // The answers are read through the crates' buffer views,
                // not parsed whole: parsing every kind of route message
                // would add its whole parser to the binary (≈0.5 MiB) for
                // an error code and a link index.
                let bad =
                    |e: DecodeError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                let answer = NetlinkBuffer::new_checked(rest).map_err(bad)?;
                let len = answer.length() as usize;
                let (kind, their_seq) = (answer.message_type(), answer.sequence_number());
                let payload = answer.payload().to_vec();
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if their_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        return match ErrorBuffer::new_checked(&payload[..]).map_err(bad)?.code() {
                            None => Ok(answers),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NLMSG_DONE => return Ok(answers),
                    _ => answers.push((kind, payload)),
                }
            }
        }
    }

    /// The index of link `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        match self.request(get_link(name)) {
            Ok(answers) => Ok(answers
                .iter()
                .filter(|(kind, _)| *kind == RTM_NEWLINK)
                .find_map(|(_, p)| LinkMessageBuffer::new_checked(&p[..]).ok())
                .map(|l| l.link_index())),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of link `name`, which must exist.
    pub fn index_of(&mut self, name: &str) -> io::Result<u32> {
        self.link_index(name)?
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parsed(m: Msg, seq: u32) -> NetlinkMessage<RouteNetlinkMessage> {
        let bytes = m.finish(seq);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        NetlinkMessage::deserialize(&bytes).unwrap()
    }

    #[test]
    fn a_request_carries_its_sequence_and_asks_for_an_ack() {
        let m = parsed(get_link("rkb0123456789"), 7);
        assert_eq!(m.header.sequence_number, 7);
        assert_eq!(m.header.flags, NLM_F_REQUEST | NLM_F_ACK);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(l)) = m.payload else {
            panic!("not a GETLINK: {m:?}");
        };
        assert_eq!(
            l.attributes,
            vec![LinkAttribute::IfName("rkb0123456789".into())]
        );
    }

    #[test]
    fn a_veth_is_made_with_its_peer_in_the_containers_namespace() {
        let mac = [2, 0x6b, 10, 1, 2, 3];
        let m = parsed(new_veth("rkv1", "eth0", 42, mac), 1);
        assert_eq!(
            m.header.flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = m.payload else {
            panic!("not a NEWLINK: {m:?}");
        };
        assert!(l.attributes.contains(&LinkAttribute::IfName("rkv1".into())));
        let info = l
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else {
            panic!("no peer: {info:?}");
        };
        assert!(peer.attributes.contains(&LinkAttribute::NetNsPid(42)));
        assert!(
            peer.attributes
                .contains(&LinkAttribute::Address(mac.to_vec()))
        );
        assert!(
            peer.attributes
                .contains(&LinkAttribute::IfName("eth0".into()))
        );
    }

    #[test]
    fn an_address_and_a_route_carry_their_family_and_bytes() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) =
            parsed(add_addr(5, ip, 24), 1).payload
        else {
            panic!("not NEWADDR");
        };
        assert_eq!(a.header.family, AddressFamily::Inet);
        assert_eq!((a.header.prefix_len, a.header.index), (24, 5));
        assert!(a.attributes.contains(&AddressAttribute::Local(ip)));
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) =
            parsed(default_route(ip, 9), 1).payload
        else {
            panic!("not NEWROUTE");
        };
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(r.attributes.contains(&RouteAttribute::Oif(9)));
        let up = parsed(set_up(3, Some(7)), 1);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(l)) = up.payload else {
            panic!("not SETLINK");
        };
        assert_eq!(l.header.flags, LinkFlags::Up);
        assert!(l.attributes.contains(&LinkAttribute::Controller(7)));
    }
}
