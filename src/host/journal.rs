//! Logging straight to systemd's journal when rkstack runs as a service
//! whose stderr is the journal (`JOURNAL_STREAM` names it): each event is
//! one entry with its priority (so `journalctl -p warning` finds failures)
//! and its facts as fields — `STACK=`, `CONTAINER=`, `EVENT=` (the kind),
//! `CONTAINER_PID=`, `EXIT_CODE=`, `SIGNAL=`, `REASON=` — sent over the
//! journal's native datagram protocol. Where an entry cannot be sent (no
//! socket, too big), it goes to stderr as before.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The journal's native socket.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Whether stderr is the journal stream systemd set up for this process
/// (`JOURNAL_STREAM=DEV:INODE` of stderr).
pub fn stderr_is_journal() -> bool {
    let Ok(want) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    want == format!("{}:{}", st.st_dev, st.st_ino)
}

/// One field in the native protocol: `KEY=value\n`, or, for a value with a
/// newline, `KEY\n` + its length (64-bit little-endian) + value + `\n`.
pub fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    field_bytes(out, key, value.as_bytes());
}

/// [`field`] for a value that may not be UTF-8 (a container's output).
pub fn field_bytes(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A container's output sent to the journal (`logging.driver =
/// "journald"`): one entry per line with the fields docker's and podman's
/// journald drivers write — `CONTAINER_NAME=`, `SYSLOG_IDENTIFIER=` (the
/// container's name, so `journalctl -t web` finds it), `PRIORITY=` 6 for
/// stdout and 3 for stderr, `IMAGE_NAME=` — and rkstack's own `STACK=`
/// and `CONTAINER=`. Every container shares one socket, which never waits:
/// a line the journal does not take now is dropped there (the log file
/// still has it).
#[derive(Debug)]
pub struct Output {
    path: std::path::PathBuf,
    fields: Vec<u8>,
}

impl Output {
    /// Entries for `container` of `stack`, sent to the socket at `path`
    /// (see [`SOCKET`]).
    pub fn new(path: &Path, stack: &str, container: &str, image: &str) -> Output {
        let mut fields = Vec::with_capacity(128);
        field(&mut fields, "SYSLOG_IDENTIFIER", container);
        field(&mut fields, "CONTAINER_NAME", container);
        field(&mut fields, "IMAGE_NAME", image);
        field(&mut fields, "STACK", stack);
        field(&mut fields, "CONTAINER", container);
        Output {
            path: path.to_path_buf(),
            fields,
        }
    }

    /// Sends one line of stream 0 (stdout) or 1 (stderr).
    pub fn send(&self, stream: usize, line: &[u8]) -> std::io::Result<()> {
        static SOCK: std::sync::OnceLock<Option<UnixDatagram>> = std::sync::OnceLock::new();
        let sock = SOCK
            .get_or_init(|| {
                let s = UnixDatagram::unbound().ok()?;
                s.set_nonblocking(true).ok()?;
                Some(s)
            })
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no socket for the journal"))?;
        let mut entry = Vec::with_capacity(self.fields.len() + line.len() + 32);
        entry.extend_from_slice(&self.fields);
        field(&mut entry, "PRIORITY", if stream == 0 { "6" } else { "3" });
        field_bytes(&mut entry, "MESSAGE", line);
        // Unconnected: a journal that restarted is found at its path again.
        sock.send_to(&entry, &self.path).map(|_| ())
    }
}

/// syslog priorities of tracing's levels.
fn priority(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "3",
        tracing::Level::WARN => "4",
        tracing::Level::INFO => "6",
        _ => "7",
    }
}

/// The journal field an event's field goes to (`None`: into MESSAGE).
fn journal_key(name: &str) -> Option<&'static str> {
    Some(match name {
        "stack" => "STACK",
        "container" => "CONTAINER",
        "kind" => "EVENT",
        "pid" => "CONTAINER_PID",
        "exit_code" => "EXIT_CODE",
        "signal" => "SIGNAL",
        "oom" => "OOM",
        "after_ms" => "AFTER_MS",
        "reason" => "REASON",
        _ => return None,
    })
}

#[derive(Default)]
struct Entry {
    message: String,
    /// Other fields, as `key=value` after the message (as stderr shows them).
    rest: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Entry {
    fn record_str(&mut self, f: &Field, value: &str) {
        self.put(f, value.to_string());
    }

    fn record_debug(&mut self, f: &Field, value: &dyn std::fmt::Debug) {
        self.put(f, format!("{value:?}"));
    }
}

impl Entry {
    fn put(&mut self, f: &Field, value: String) {
        if f.name() == "message" {
            self.message = value;
        } else if let Some(k) = journal_key(f.name()) {
            self.fields.push((k, value));
        } else {
            let _ = write!(self.rest, " {}={value}", f.name());
        }
    }
}

/// A tracing layer that writes each event to the journal.
#[derive(Debug)]
pub struct JournalLayer {
    sock: UnixDatagram,
    identifier: String,
}

impl JournalLayer {
    /// Sending to the journal socket at `path` (see [`SOCKET`]).
    pub fn to(path: &Path) -> std::io::Result<JournalLayer> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        Ok(JournalLayer {
            sock,
            identifier: "rkstack".into(),
        })
    }

    /// The datagram of one event, with `message` as its MESSAGE.
    fn entry(&self, meta: &tracing::Metadata<'_>, e: &Entry, message: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        field(&mut out, "PRIORITY", priority(meta.level()));
        field(&mut out, "SYSLOG_IDENTIFIER", &self.identifier);
        for (k, v) in &e.fields {
            field(&mut out, k, v);
        }
        field(&mut out, "MESSAGE", message);
        out
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut e = Entry::default();
        event.record(&mut e);
        let message = format!("{}{}", e.message, e.rest);
        // Never waits: what the journal does not take goes to stderr.
        if self
            .sock
            .send(&self.entry(event.metadata(), &e, &message))
            .is_err()
        {
            eprintln!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn container_output_reaches_the_journal_line_by_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("journal.sock");
        let journal = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let out = Output::new(&path, "demo", "web", "dir:/srv/web");
        out.send(0, b"hello").unwrap_or_else(|e| panic!("{e}"));
        out.send(1, b"bad\xff").unwrap_or_else(|e| panic!("{e}"));
        let mut buf = vec![0u8; 4096];
        let n = journal.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        for want in [
            "SYSLOG_IDENTIFIER=web\n",
            "CONTAINER_NAME=web\n",
            "IMAGE_NAME=dir:/srv/web\n",
            "STACK=demo\n",
            "CONTAINER=web\n",
            "PRIORITY=6\n",
            "MESSAGE=hello\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in {text:?}");
        }
        let n = journal.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert!(buf[..n].ends_with(b"PRIORITY=3\nMESSAGE=bad\xff\n"));
        // No journal there: an error, at once.
        drop(journal);
        let _ = std::fs::remove_file(&path);
        assert!(out.send(0, b"lost").is_err());
    }

    #[test]
    fn events_reach_the_journal_with_their_priority_and_fields() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("journal.sock");
        let journal = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let layer = JournalLayer::to(&path).unwrap_or_else(|e| panic!("{e}"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                stack = "demo",
                container = "web",
                kind = "restarting",
                pid = 42,
                "web: exited; restarting in 200 ms"
            );
            tracing::info!(stack = "demo", "plan:\nstart web");
        });
        let mut buf = vec![0u8; 4096];
        let n = journal.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        for want in [
            "PRIORITY=4\n",
            "SYSLOG_IDENTIFIER=rkstack\n",
            "STACK=demo\n",
            "CONTAINER=web\n",
            "EVENT=restarting\n",
            "CONTAINER_PID=42\n",
            "MESSAGE=web: exited; restarting in 200 ms\n",
        ] {
            assert!(text.contains(want), "{want:?} in {text:?}");
        }
        // A message with a newline: its length before it.
        let n = journal.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&15u64.to_le_bytes());
        want.extend_from_slice(b"plan:\nstart web\n");
        assert!(buf[..n].ends_with(&want), "{:?}", &buf[..n]);
        assert!(String::from_utf8_lossy(&buf[..n]).contains("PRIORITY=6\n"));
    }
}
