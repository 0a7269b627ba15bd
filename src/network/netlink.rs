//! A small synchronous rtnetlink client: the handful of requests rkstack
//! needs (links, addresses, a default route), each answered by the kernel
//! in microseconds, instead of an `ip` process per change. Messages are
//! built by [`Msg`] (pure, unit-tested); [`Netlink`] sends them on a
//! `NETLINK_ROUTE` socket of the caller's network namespace or of a
//! container's ([`Netlink::open_in`]).

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// Values of the kernel's uapi headers (linux/netlink.h, rtnetlink.h,
// if_link.h, veth.h); part of its stable ABI.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 0x1;
const HEADER: usize = 16;

/// One request being built: a netlink header, a fixed part, attributes.
#[derive(Debug)]
pub struct Msg {
    buf: Vec<u8>,
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; HEADER];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg { buf }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(mut self, index: u32, flags: u32, change: u32) -> Self {
        ifinfo(&mut self.buf, index, flags, change);
        self
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        pad(&mut self.buf);
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.attr(kind, &b)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Opens a nested attribute; [`Msg::end`] closes it.
    fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// The finished bytes, with length and sequence number.
    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfo(buf: &mut Vec<u8>, index: u32, flags: u32, change: u32) {
    buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC, pad, type
    buf.extend_from_slice(&index.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&change.to_ne_bytes());
}

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A link by name (its index in the answer).
pub fn get_link(name: &str) -> Msg {
    let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name);
    m
}

/// A new link of `kind` (`bridge`), down.
pub fn new_link(name: &str, kind: &str) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name);
    let info = m.begin(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, kind);
    m.end(info);
    m
}

/// A veth pair: `host` here, `peer` (with MAC address `mac`) created
/// directly in the network namespace of process `pid`.
pub fn new_veth(host: &str, peer: &str, pid: u32, mac: [u8; 6]) -> Msg {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, host);
    let info = m.begin(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "veth");
    let data = m.begin(IFLA_INFO_DATA);
    let p = m.begin(VETH_INFO_PEER);
    ifinfo(&mut m.buf, 0, 0, 0);
    m.attr_str(IFLA_IFNAME, peer);
    m.attr(IFLA_ADDRESS, &mac);
    m.attr_u32(IFLA_NET_NS_PID, pid);
    m.end(p);
    m.end(data);
    m.end(info);
    m
}

/// Link `index` up, enslaved to `master` when given.
pub fn set_up(index: u32, master: Option<u32>) -> Msg {
    let mut m = Msg::new(RTM_SETLINK, 0).ifinfo(index, IFF_UP, IFF_UP);
    if let Some(master) = master {
        m.attr_u32(IFLA_MASTER, master);
    }
    m
}

/// Link `index` gets MAC address `mac`.
pub fn set_mac(index: u32, mac: [u8; 6]) -> Msg {
    let mut m = Msg::new(RTM_SETLINK, 0).ifinfo(index, 0, 0);
    m.attr(IFLA_ADDRESS, &mac);
    m
}

/// Removes a link by name.
pub fn del_link(name: &str) -> Msg {
    let mut m = Msg::new(RTM_DELLINK, 0).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name);
    m
}

/// `addr/prefix` on link `index` (replacing the same address).
pub fn add_addr(index: u32, addr: IpAddr, prefix: u8) -> Msg {
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
    m.buf
        .extend_from_slice(&[family(addr), prefix, 0, RT_SCOPE_UNIVERSE]);
    m.buf.extend_from_slice(&index.to_ne_bytes());
    m.attr(IFA_LOCAL, &octets(addr));
    m.attr(IFA_ADDRESS, &octets(addr));
    m
}

/// The default route via `gateway` on link `index`.
pub fn default_route(gateway: IpAddr, index: u32) -> Msg {
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
    m.buf.extend_from_slice(&[
        family(gateway),
        0, // dst_len: default
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ]);
    m.buf.extend_from_slice(&0u32.to_ne_bytes());
    m.attr(RTA_GATEWAY, &octets(gateway));
    m.attr_u32(RTA_OIF, index);
    m
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

    /// A socket in the network namespace of process `pid` (a socket stays
    /// in the namespace it was made in): this thread enters it, opens the
    /// socket, and returns to its own namespace.
    pub fn open_in(pid: i32) -> io::Result<Self> {
        use nix::sched::{CloneFlags, setns};
        let own = File::open("/proc/thread-self/ns/net")?;
        let target = File::open(format!("/proc/{pid}/ns/net"))?;
        setns(&target, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let sock = Netlink::open();
        if let Err(e) = setns(&own, CloneFlags::CLONE_NEWNET) {
            // Going on in a container's network namespace would put the
            // host's links out of reach; there is no sane way forward.
            tracing::error!("cannot return to the supervisor's network namespace: {e}");
            std::process::abort();
        }
        sock
    }

    /// Sends `msg` and waits for its acknowledgement; returns the payloads
    /// of the answers that came before it.
    pub fn request(&mut self, msg: Msg) -> io::Result<Vec<Vec<u8>>> {
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
            while rest.len() >= HEADER {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let their_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < HEADER || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink answer",
                    ));
                }
                let payload = &rest[HEADER..len];
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
                if their_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EBADMSG);
                        return if code == 0 {
                            Ok(answers)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    NLMSG_DONE => return Ok(answers),
                    _ => answers.push(payload.to_vec()),
                }
            }
        }
    }

    /// The index of link `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        match self.request(get_link(name)) {
            Ok(answers) => Ok(answers.first().and_then(|p| {
                p.get(4..8)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            })),
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
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn a_message_carries_its_length_sequence_and_ack_flag() {
        let bytes = get_link("rkb0123456789").finish(7);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
            bytes.len()
        );
        assert_eq!(u16_at(&bytes, 4), RTM_GETLINK);
        assert_eq!(u16_at(&bytes, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(
            u32::from_ne_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            7
        );
        // ifinfomsg, then IFLA_IFNAME with its NUL: 4 + 14 bytes, padded to 20.
        let attr = HEADER + 16;
        assert_eq!(u16_at(&bytes, attr), 18);
        assert_eq!(u16_at(&bytes, attr + 2), IFLA_IFNAME);
        assert_eq!(&bytes[attr + 4..attr + 17], b"rkb0123456789");
        assert_eq!(bytes.len(), attr + 20);
    }

    #[test]
    fn nested_attributes_enclose_what_was_written_inside() {
        let mac = [2, 0x6b, 10, 1, 2, 3];
        let bytes = new_veth("rkv1", "eth0", 42, mac).finish(1);
        // After the header, ifinfomsg and IFLA_IFNAME "rkv1\0" (4+5 → 12):
        let info = HEADER + 16 + 12;
        assert_eq!(u16_at(&bytes, info + 2), IFLA_LINKINFO | NLA_F_NESTED);
        assert_eq!(info + u16_at(&bytes, info) as usize, bytes.len());
        // The peer's netns pid is the last attribute.
        let n = bytes.len();
        assert_eq!(u16_at(&bytes, n - 8), 8);
        assert_eq!(u16_at(&bytes, n - 6), IFLA_NET_NS_PID);
        assert_eq!(&bytes[n - 4..], &42u32.to_ne_bytes());
        // Before it, the peer's MAC (6 bytes, padded to 8).
        assert_eq!(u16_at(&bytes, n - 20), 10);
        assert_eq!(u16_at(&bytes, n - 18), IFLA_ADDRESS);
        assert_eq!(&bytes[n - 16..n - 10], &mac);
    }

    #[test]
    fn an_address_and_a_route_carry_their_family_and_bytes() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let bytes = add_addr(5, ip, 24).finish(1);
        assert_eq!(bytes[HEADER], libc::AF_INET as u8);
        assert_eq!(bytes[HEADER + 1], 24);
        assert_eq!(&bytes[HEADER + 4..HEADER + 8], &5u32.to_ne_bytes());
        assert_eq!(&bytes[HEADER + 12..HEADER + 16], &[10, 1, 2, 3]);
        let r = default_route(ip, 9).finish(1);
        assert_eq!(r[HEADER + 4], RT_TABLE_MAIN);
        assert_eq!(&r[r.len() - 4..], &9u32.to_ne_bytes());
    }
}
