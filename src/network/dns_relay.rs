//! Questions the stack's name server passes on to the host's resolvers:
//! who asked, under which id, and where the question went. Pure and
//! bounded: at most `cap` questions wait, none longer than `ttl`.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One question on its way upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending<K> {
    to: K,
    client_id: u16,
    upstream: SocketAddr,
    at: Instant,
}

/// The questions waiting for an upstream answer, by the id rkstack gave
/// them (random, so an answer cannot be forged by guessing the next one).
#[derive(Debug)]
pub struct Relay<K> {
    pending: HashMap<u16, Pending<K>>,
    order: VecDeque<(u16, Instant)>,
    random: std::hash::RandomState,
    counter: u64,
    cap: usize,
    ttl: Duration,
}

impl<K: Clone> Relay<K> {
    pub fn new(cap: usize, ttl: Duration) -> Relay<K> {
        Relay {
            pending: HashMap::new(),
            order: VecDeque::new(),
            random: std::hash::RandomState::new(),
            counter: 0,
            cap: cap.max(1),
            ttl,
        }
    }

    /// Records a question from `to` (with its id) sent to `upstream`;
    /// returns the id to send it under. The oldest question is forgotten
    /// when `cap` are waiting.
    pub fn add(&mut self, now: Instant, to: K, client_id: u16, upstream: SocketAddr) -> u16 {
        self.expire(now);
        while self.pending.len() >= self.cap {
            match self.order.pop_front() {
                Some((id, at)) => {
                    if self.pending.get(&id).is_some_and(|p| p.at == at) {
                        self.pending.remove(&id);
                    }
                }
                None => break,
            }
        }
        let id = loop {
            self.counter += 1;
            let id = self.random.hash_one(self.counter) as u16;
            if !self.pending.contains_key(&id) {
                break id;
            }
        };
        self.pending.insert(
            id,
            Pending {
                to,
                client_id,
                upstream,
                at: now,
            },
        );
        self.order.push_back((id, now));
        id
    }

    /// The asker of the question answered under `id` by `from`, and its
    /// own id; `None` for an answer nobody waits for (late, forged, or from
    /// another address).
    pub fn take(&mut self, now: Instant, id: u16, from: SocketAddr) -> Option<(K, u16)> {
        self.expire(now);
        match self.pending.get(&id) {
            Some(p) if p.upstream == from => {
                let p = self.pending.remove(&id)?;
                Some((p.to, p.client_id))
            }
            _ => None,
        }
    }

    /// How many questions wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_duration_since(at) < self.ttl && self.pending.contains_key(&id) {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&id).is_some_and(|p| p.at == at) {
                self.pending.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_answer_goes_back_to_its_asker_under_its_own_id_once() {
        let now = Instant::now();
        let mut r = Relay::new(8, Duration::from_secs(5));
        let up = addr("192.0.2.53:53");
        let id = r.add(now, "client-a", 0x1111, up);
        let other = r.add(now, "client-b", 0x2222, up);
        assert_ne!(id, other);
        assert_eq!(
            r.take(now, id, addr("192.0.2.54:53")),
            None,
            "from elsewhere"
        );
        assert_eq!(r.take(now, id, up), Some(("client-a", 0x1111)));
        assert_eq!(r.take(now, id, up), None, "answered already");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn questions_expire_and_the_table_stays_bounded() {
        let now = Instant::now();
        let mut r = Relay::new(3, Duration::from_secs(5));
        let up = addr("192.0.2.53:53");
        let first = r.add(now, 1, 1, up);
        for i in 0..10 {
            r.add(now, i, i as u16, up);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.take(now, first, up), None, "the oldest went");
        let late = r.add(now, 99, 9, up);
        assert_eq!(r.take(now + Duration::from_secs(6), late, up), None);
        assert!(r.is_empty());
    }
}
