//! Lifecycle events: each is one structured record (which container, what
//! happened), logged with `tracing` and kept in a bounded in-memory journal
//! that the control API serves (`GET /v1/events`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// What happened, for machines (`kind` in `events --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The plan `up` carries out first.
    Plan,
    Started,
    /// Ended, and stays so (its restart policy says no).
    Exited,
    /// Ended, and starts again after `after_ms`.
    Restarting,
    /// Its restart policy gave up on it (`start_limit`): it stays down.
    Failed,
    /// Its start failed (root, image, network, ...).
    StartFailed,
    /// Held back until its dependencies are ready, or its image pulled.
    Waiting,
    Healthy,
    Unhealthy,
    /// A health check could not be run.
    CheckFailed,
    /// A stop was asked for (by a user, a reload or the stack's stop).
    Stopping,
    /// Killed at the end of its `stop_timeout`, or not waited for longer.
    StopKilled,
    Stopped,
    /// A supervisor after a crash took it over, cleaned up after it, or
    /// kept it stopped or down.
    Adopted,
    /// Requests of a user: start, stop, restart.
    Requested,
    /// Limits written to a running container.
    Updated,
    Reloaded,
    ReloadRejected,
    /// A new generation is applied and watched (`apply`, a gated edit).
    ApplyStarted,
    /// Its containers became ready and stayed so: committed.
    ApplyCommitted,
    /// Its gate failed: the last committed generation came back (or, with
    /// rollback never, the failure is only recorded).
    ApplyRolledBack,
    Pulling,
    Pulled,
    PullFailed,
    /// Log lines dropped (a full disk), or written again.
    LogDropped,
    /// Bridges, forwarding, published ports and NAT.
    Network,
    /// The stack's stop, begun or done.
    StackStopping,
    StackStopped,
    /// Something that works, but not as the file asked, or that will not.
    Warning,
    /// Something that failed and left part of the stack undone.
    Error,
}

/// How loud an event is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Kind {
    pub fn level(self) -> Level {
        match self {
            Kind::Failed
            | Kind::StartFailed
            | Kind::ReloadRejected
            | Kind::ApplyRolledBack
            | Kind::PullFailed
            | Kind::Error => Level::Error,
            Kind::Restarting
            | Kind::Exited
            | Kind::Unhealthy
            | Kind::CheckFailed
            | Kind::StopKilled
            | Kind::LogDropped
            | Kind::Warning => Level::Warn,
            _ => Level::Info,
        }
    }
}

/// The facts of an event, as fields (each only where it applies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Facts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Killed by the out-of-memory killer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom: bool,
    /// When it starts again (restarting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// Why, in words (a failure's cause, what a health check said, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Facts {
    pub fn pid(pid: i32) -> Facts {
        Facts {
            pid: Some(pid),
            ..Facts::default()
        }
    }

    pub fn reason(why: impl Into<String>) -> Facts {
        Facts {
            reason: Some(why.into()),
            ..Facts::default()
        }
    }
}

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
    pub kind: Kind,
    #[serde(flatten)]
    pub facts: Facts,
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

/// Records and logs an event: `kind` and `facts` as fields, at the kind's
/// level. A message of the form `NAME: rest` where NAME is a container
/// name is attributed to that container.
pub fn record_as(stack: &str, kind: Kind, facts: Facts, message: String) {
    super::selflog::check();
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
    // Left out of the line when the event concerns no container.
    let c = container.as_deref();
    let k = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    // A clean exit that stays so is no warning.
    let level = match (kind, facts.exit_code) {
        (Kind::Exited | Kind::Stopped, Some(0)) => Level::Info,
        _ => kind.level(),
    };
    match level {
        Level::Info => tracing::info!(stack, container = c, kind = k, "{line}"),
        Level::Warn => tracing::warn!(stack, container = c, kind = k, "{line}"),
        Level::Error => tracing::error!(stack, container = c, kind = k, "{line}"),
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
        kind,
        facts,
        message: text,
    };
    j.events.push_back(e.clone());
    drop(j);
    let live = live();
    if live.receiver_count() > 0 {
        let _ = live.send(e);
    }
}

/// The number of the last event recorded (0 before the first): what a
/// client that wants what follows asks `since`.
pub fn last_seq() -> u64 {
    JOURNAL
        .lock()
        .map(|j| j.events.back().map_or(0, |e| e.seq))
        .unwrap_or(0)
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
        record_as(
            "demo",
            Kind::Started,
            Facts::pid(42),
            "web: started (pid 42)".into(),
        );
        record_as(
            "demo",
            Kind::Reloaded,
            Facts::default(),
            "reload (SIGHUP): nothing to do".into(),
        );
        let got = since(start);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].container.as_deref(), Some("web"));
        assert_eq!(got[0].message, "started (pid 42)");
        assert_eq!(got[1].container, None);
        assert_eq!(got[1].seq, got[0].seq + 1);
        for i in 0..KEEP + 10 {
            record_as("demo", Kind::Started, Facts::default(), format!("c: {i}"));
        }
        assert_eq!(since(0).len(), KEEP);
    }
}
