//! Lifecycle events: each is one structured record (which container, what
//! happened), logged with `tracing` and kept in a bounded in-memory journal
//! that the control API serves (`GET /v1/events`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    /// Increases by one per event, so a client can ask for what it missed.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    pub stack: String,
    /// The container it concerns, if any.
    pub container: Option<String>,
    /// What happened, for people: `started (pid 42)`, `exited with status 1; restarting in 200 ms`.
    pub message: String,
}

/// How many events are kept (older ones are dropped first).
pub const KEEP: usize = 1000;

struct Journal {
    next: u64,
    events: VecDeque<Event>,
}

static JOURNAL: Mutex<Journal> = Mutex::new(Journal {
    next: 1,
    events: VecDeque::new(),
});

static LIVE: std::sync::OnceLock<tokio::sync::broadcast::Sender<Event>> =
    std::sync::OnceLock::new();

fn live() -> &'static tokio::sync::broadcast::Sender<Event> {
    LIVE.get_or_init(|| tokio::sync::broadcast::channel(256).0)
}

/// Events from now on, as they are recorded.
pub fn subscribe() -> tokio::sync::broadcast::Receiver<Event> {
    live().subscribe()
}

/// Records and logs an event. A message of the form `NAME: rest` where NAME
/// is a container name is attributed to that container.
pub fn record(stack: &str, message: String) {
    let (container, text) = match message.split_once(": ") {
        Some((c, rest))
            if !c.is_empty()
                && c.len() <= 63
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') =>
        {
            (Some(c.to_string()), rest.to_string())
        }
        _ => (None, message.clone()),
    };
    // The log line keeps the whole message (`web: started (pid 42)`), so it
    // reads on its own; the fields are there for machines.
    let line = message.trim_end();
    match &container {
        Some(c) => tracing::info!(stack, container = c.as_str(), "{line}"),
        None => tracing::info!(stack, "{line}"),
    }
    let Ok(mut j) = JOURNAL.lock() else { return };
    let seq = j.next;
    j.next += 1;
    if j.events.len() >= KEEP {
        j.events.pop_front();
    }
    let e = Event {
        seq,
        time: crate::time::timestamp(SystemTime::now()),
        stack: stack.to_string(),
        container,
        message: text,
    };
    j.events.push_back(e.clone());
    drop(j);
    let live = live();
    if live.receiver_count() > 0 {
        let _ = live.send(e);
    }
}

/// Events after `seq` (all kept ones for 0), oldest first.
pub fn since(seq: u64) -> Vec<Event> {
    JOURNAL
        .lock()
        .map(|j| j.events.iter().filter(|e| e.seq > seq).cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_attributed_numbered_and_bounded() {
        let start = since(0).last().map_or(0, |e| e.seq);
        record("demo", "web: started (pid 42)".into());
        record("demo", "reload (SIGHUP): nothing to do".into());
        let got = since(start);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].container.as_deref(), Some("web"));
        assert_eq!(got[0].message, "started (pid 42)");
        assert_eq!(got[1].container, None);
        assert_eq!(got[1].seq, got[0].seq + 1);
        for i in 0..KEEP + 10 {
            record("demo", format!("c: {i}"));
        }
        assert_eq!(since(0).len(), KEEP);
    }
}
