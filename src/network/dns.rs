//! The DNS messages of the stack's name server: a query read (strictly:
//! it comes from a container, which may be hostile) and the answers made to
//! it. Pure: the supervisor owns the sockets (`supervisor/up/dns.rs`).
//!
//! Only what a stub resolver sends is understood: one question, standard
//! query, names without compression. Anything else gets FORMERR or NOTIMP,
//! and what cannot even be read as a query (too short, an answer) gets
//! nothing.

use std::net::Ipv4Addr;

/// The fixed header's length.
const HEADER: usize = 12;
/// Longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// The largest UDP answer a resolver without EDNS takes.
const UDP_PLAIN: usize = 512;
/// An A record with its name as a pointer.
const RECORD: usize = 16;
/// Seconds a resolver may keep an answer: containers come and go.
const TTL: u32 = 5;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// Response codes rkstack answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// One question, as read from a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Lower case, without the root's trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Recursion desired (copied into the answer).
    rd: bool,
    /// The question section as sent (echoed in the answer).
    question: Vec<u8>,
}

/// What a datagram from a container is.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Query(Query),
    /// A query rkstack does not take: answer with this code (the header's
    /// id and flags echoed, no question).
    Reject {
        id: u16,
        rd: bool,
        rcode: Rcode,
    },
    /// Not a query at all: dropped without an answer.
    Ignore,
}

/// Reads one datagram a container sent.
pub fn parse(msg: &[u8]) -> Parsed {
    if msg.len() < HEADER {
        return Parsed::Ignore;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        // An answer sent to the server: never answered (no loops).
        return Parsed::Ignore;
    }
    let rd = flags & 0x0100 != 0;
    let reject = |rcode| Parsed::Reject { id, rd, rcode };
    if (flags >> 11) & 0xf != 0 {
        return reject(Rcode::NotImp);
    }
    if u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return reject(Rcode::FormErr);
    }
    let Some((name, end)) = read_name(msg, HEADER) else {
        return reject(Rcode::FormErr);
    };
    let Some(tail) = msg.get(end..end + 4) else {
        return reject(Rcode::FormErr);
    };
    Parsed::Query(Query {
        id,
        name,
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
        rd,
        question: msg[HEADER..end + 4].to_vec(),
    })
}

/// An uncompressed name at `at`: the name (lower case, dotted) and where
/// it ends. `None` for pointers, over-long labels or names, or a cut name.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut wire = 1;
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some((name, at));
        }
        if len > 63 {
            return None;
        }
        wire += len + 1;
        if wire > MAX_NAME {
            return None;
        }
        let label = msg.get(at..at + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        for &b in label {
            // Bytes that are not printable ASCII never name a container.
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            name.push(b.to_ascii_lowercase() as char);
        }
        at += len;
    }
}

impl Query {
    /// The answer: A records for `ips` when the question is for IN/A (as
    /// many as fit the 512 bytes every resolver takes over UDP); for
    /// another type of a known name, no records (NOERROR: the name exists).
    pub fn answer(&self, ips: &[Ipv4Addr]) -> Vec<u8> {
        let a = self.qclass == CLASS_IN && self.qtype == TYPE_A;
        let room = UDP_PLAIN.saturating_sub(HEADER + self.question.len()) / RECORD;
        let n = if a { ips.len().min(room) } else { 0 };
        let mut out = self.header(Rcode::NoError, n as u16);
        if a {
            for ip in &ips[..n] {
                // The name: a pointer to the question's (offset 12).
                out.extend_from_slice(&[0xc0, 0x0c]);
                out.extend_from_slice(&TYPE_A.to_be_bytes());
                out.extend_from_slice(&CLASS_IN.to_be_bytes());
                out.extend_from_slice(&TTL.to_be_bytes());
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&ip.octets());
            }
        }
        out
    }

    /// An answer with `rcode` and no records.
    pub fn fail(&self, rcode: Rcode) -> Vec<u8> {
        self.header(rcode, 0)
    }

    fn header(&self, rcode: Rcode, answers: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.question.len() + 16 * answers as usize);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&flags(self.rd, rcode).to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&answers.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&self.question);
        out
    }
}

/// An answer to a query that could not be read: header only.
pub fn reject(id: u16, rd: bool, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags(rd, rcode).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// QR, AA, RD as asked, RA, and the code.
fn flags(rd: bool, rcode: Rcode) -> u16 {
    0x8000 | 0x0400 | if rd { 0x0100 } else { 0 } | 0x0080 | rcode as u16
}

/// The id of a message (0 when it is too short to have one).
pub fn id_of(msg: &[u8]) -> u16 {
    match msg {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// `msg` with its id replaced (the forwarder's own ids upstream).
pub fn with_id(msg: &mut [u8], id: u16) {
    if let Some(h) = msg.get_mut(..2) {
        h.copy_from_slice(&id.to_be_bytes());
    }
}

/// Whether `msg` is an answer (the QR bit) with a full header.
pub fn is_answer(msg: &[u8]) -> bool {
    msg.len() >= HEADER && msg[2] & 0x80 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a stub resolver sends it.
    pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&0x0100u16.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name.split('.').filter(|l| !l.is_empty()) {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    fn parsed(m: &[u8]) -> Query {
        match parse(m) {
            Parsed::Query(q) => q,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_query_is_read_in_lower_case_and_answered_with_its_addresses() {
        let q = parsed(&query(0x1234, "Web.", TYPE_A));
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "web", TYPE_A));
        let ips = ["10.1.0.5".parse().unwrap(), "10.2.0.7".parse().unwrap()];
        let a = q.answer(&ips);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[2] & 0x80, 0x80, "an answer");
        assert_eq!(a[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 2, "two records");
        assert_eq!(&a[a.len() - 4..], &[10, 2, 0, 7]);
        assert!(is_answer(&a));
    }

    #[test]
    fn an_answer_never_outgrows_512_bytes() {
        let q = parsed(&query(1, "many", TYPE_A));
        let ips: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let a = q.answer(&ips);
        assert!(a.len() <= 512, "{}", a.len());
        let n = u16::from_be_bytes([a[6], a[7]]) as usize;
        assert_eq!(a.len(), 12 + (4 + 6) + n * 16);
        assert!(n >= 30);
    }

    #[test]
    fn another_type_of_a_known_name_has_no_records_and_no_error() {
        let q = parsed(&query(7, "db", TYPE_AAAA));
        let a = q.answer(&["10.1.0.5".parse().unwrap()]);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 0);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(q.fail(Rcode::NxDomain)[3] & 0x0f, 3);
    }

    #[test]
    fn what_is_not_a_plain_query_is_refused_or_dropped() {
        assert_eq!(parse(&[0; 5]), Parsed::Ignore);
        let mut answer = query(1, "a", TYPE_A);
        answer[2] |= 0x80;
        assert_eq!(parse(&answer), Parsed::Ignore);
        let mut two = query(2, "a", TYPE_A);
        two[5] = 2;
        assert!(matches!(
            parse(&two),
            Parsed::Reject {
                rcode: Rcode::FormErr,
                ..
            }
        ));
        let mut update = query(3, "a", TYPE_A);
        update[2] |= 5 << 3;
        assert!(matches!(
            parse(&update),
            Parsed::Reject {
                rcode: Rcode::NotImp,
                ..
            }
        ));
        // A compression pointer, a cut name, a label over 63, a name over 255.
        let mut pointer = query(4, "a", TYPE_A);
        pointer[12] = 0xc0;
        assert!(matches!(
            parse(&pointer),
            Parsed::Reject {
                rcode: Rcode::FormErr,
                ..
            }
        ));
        let cut = &query(5, "abcdef", TYPE_A)[..15];
        assert!(matches!(parse(cut), Parsed::Reject { .. }));
        assert!(matches!(
            parse(&query(6, &"x".repeat(64), TYPE_A)),
            Parsed::Reject { .. }
        ));
        let long = vec!["abcdefghij"; 30].join(".");
        assert!(matches!(
            parse(&query(7, &long, TYPE_A)),
            Parsed::Reject { .. }
        ));
        let r = reject(9, true, Rcode::FormErr);
        assert_eq!((r.len(), r[3] & 0x0f, id_of(&r)), (12, 1, 9));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..600 {
            let msg: Vec<u8> = (0..len % 80)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if let Parsed::Query(q) = parse(&msg) {
                let _ = q.answer(&["10.0.0.1".parse().unwrap()]);
            }
        }
    }

    #[test]
    fn ids_are_swapped_for_forwarding() {
        let mut m = query(0xabcd, "example.org", TYPE_A);
        with_id(&mut m, 0x0102);
        assert_eq!(id_of(&m), 0x0102);
        assert!(!is_answer(&m));
    }
}
