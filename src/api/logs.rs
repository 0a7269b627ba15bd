//! A container's log served from its files with bounded memory: `tail`
//! found by reading the files backwards, records streamed in chunks a
//! client takes at its own pace (a client that stops reading holds one
//! small buffer, not the history), then followed live.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::supervisor::logs::{self, LogLine};

/// Bytes per chunk sent to a client.
const CHUNK: usize = 32 * 1024;
/// Chunks a client may have unread before the reader waits for it.
pub const QUEUE: usize = 4;
/// Bytes read at a time when looking for the start of the tail.
const BLOCK: u64 = 64 * 1024;

/// The files of `name`'s log, oldest first: every rotation (`NAME.log.N`,
/// the highest N oldest), then `NAME.log`.
pub fn files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let base = dir.join(format!("{name}.log"));
    let mut out: Vec<PathBuf> = (1..10_000)
        .map(|i| PathBuf::from(format!("{}.{i}", base.display())))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out.push(base);
    out
}

/// Where reading starts (file index, offset) for only the last `tail`
/// records of `files` to follow; the very start for `None`.
pub fn tail_start(files: &[PathBuf], tail: Option<usize>) -> (usize, u64) {
    let Some(want) = tail else {
        return (0, 0);
    };
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if want == 0 {
        let last = files.len().saturating_sub(1);
        return (last, files.get(last).map_or(0, size));
    }
    let mut found = 0usize;
    for (i, path) in files.iter().enumerate().rev() {
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        let len = size(path);
        let mut end = len;
        let mut buf = vec![0u8; BLOCK as usize];
        while end > 0 {
            let start = end.saturating_sub(BLOCK);
            let n = (end - start) as usize;
            if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut buf[..n]).is_err() {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate().rev() {
                let at = start + k as u64;
                // The newline that ends the file ends its last record.
                if *b == b'\n' && at + 1 < len {
                    found += 1;
                    if found == want {
                        return (i, at + 1);
                    }
                }
            }
            end = start;
        }
        // The file's first record.
        if len > 0 {
            found += 1;
            if found == want {
                return (i, 0);
            }
        }
    }
    (0, 0)
}

/// Whether a log record (`TIMESTAMP STREAM text`) was written at or after
/// `since`, a timestamp in the records' own form (they compare as text).
pub fn at_or_after(record: &[u8], since: &str) -> bool {
    record
        .get(..since.len())
        .is_some_and(|t| t >= since.as_bytes())
}

/// Sends the records of `files` from `start` on (those at or after
/// `since`, by their timestamps) to `tx`, a chunk at a time; the last one
/// sent. Stops when the client is gone.
pub async fn send_files(
    files: Vec<PathBuf>,
    start: (usize, u64),
    since: Option<String>,
    tx: &mpsc::Sender<Bytes>,
) -> Option<String> {
    let mut last: Option<String> = None;
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
    for (i, path) in files.iter().enumerate().skip(start.0) {
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        if i == start.0 && f.seek(SeekFrom::Start(start.1)).is_err() {
            continue;
        }
        let mut r = std::io::BufReader::with_capacity(CHUNK, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            let keep = since.as_deref().is_none_or(|s| at_or_after(&line, s));
            if !keep {
                continue;
            }
            chunk.extend_from_slice(&line);
            if chunk.len() >= CHUNK {
                last = last_record(&chunk).or(last);
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                // Waits while the client has QUEUE chunks unread.
                if tx.send(Bytes::from(full)).await.is_err() {
                    return last;
                }
            }
        }
    }
    if !chunk.is_empty() {
        last = last_record(&chunk).or(last);
        let _ = tx.send(Bytes::from(chunk)).await;
    }
    last
}

fn last_record(chunk: &[u8]) -> Option<String> {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let from = body.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    Some(String::from_utf8_lossy(&body[from..]).into_owned())
}

/// Sends `name`'s records as they are written, after `last` (what the
/// files gave), until the client is gone. A follower that lags behind the
/// broadcast loses lines rather than holding them.
pub async fn follow(
    mut live: broadcast::Receiver<LogLine>,
    name: String,
    last: Option<String>,
    tx: mpsc::Sender<Bytes>,
) {
    loop {
        match live.recv().await {
            Ok(LogLine { container, record }) => {
                if container != name || last.as_deref().is_some_and(|l| record.as_str() <= l) {
                    continue;
                }
                if tx.send(Bytes::from(record + "\n")).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Subscribes to the live records when `follow` (before the files are
/// read: nothing written in between is lost).
pub fn subscribe(follow: bool) -> Option<broadcast::Receiver<LogLine>> {
    follow.then(logs::subscribe)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    async fn read_all(dir: &Path, tail: Option<usize>, since: Option<&str>) -> Vec<String> {
        let files = files(dir, "web");
        let start = tail_start(&files, tail);
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let since = since.map(String::from);
        let sender = async move {
            send_files(files, start, since, &tx).await;
        };
        let mut got = Vec::new();
        let reader = async {
            while let Some(b) = rx.recv().await {
                got.extend(String::from_utf8_lossy(&b).lines().map(String::from));
            }
        };
        tokio::join!(sender, reader);
        got
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn records_come_from_every_rotation_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for i in 1..=12 {
            write(
                dir.path(),
                &format!("web.log.{i}"),
                &format!("2026-01-01T00:00:{:02}.000Z stdout r{}\n", 12 - i, 12 - i),
            );
        }
        write(
            dir.path(),
            "web.log",
            "2026-01-01T00:00:59.000Z stderr last\n",
        );
        let all = rt().block_on(read_all(dir.path(), None, None));
        assert_eq!(all.len(), 13, "{all:?}");
        assert!(all[0].ends_with(" r0") && all[12].ends_with(" last"));
        let since = rt().block_on(read_all(dir.path(), None, Some("2026-01-01T00:00:11")));
        assert_eq!(since.len(), 2, "{since:?}");
    }

    #[test]
    fn the_tail_is_found_from_the_end_across_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web.log.1", "a\nb\nc\n");
        write(dir.path(), "web.log", "d\ne\n");
        let tail = |n| rt().block_on(read_all(dir.path(), Some(n), None));
        assert_eq!(tail(0), Vec::<String>::new());
        assert_eq!(tail(1), ["e"]);
        assert_eq!(tail(2), ["d", "e"]);
        assert_eq!(tail(3), ["c", "d", "e"]);
        assert_eq!(tail(5), ["a", "b", "c", "d", "e"]);
        assert_eq!(tail(50), ["a", "b", "c", "d", "e"]);
        assert!(rt().block_on(read_all(dir.path(), None, None)).len() == 5);
    }

    #[test]
    fn a_long_file_is_tailed_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
        write(dir.path(), "web.log", &text);
        let files = files(dir.path(), "web");
        let (i, at) = tail_start(&files, Some(3));
        assert_eq!(i, 0);
        assert_eq!(
            &text[at as usize..],
            "line 199997\nline 199998\nline 199999\n"
        );
    }

    #[test]
    fn no_file_no_records() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            rt().block_on(read_all(dir.path(), Some(10), None))
                .is_empty()
        );
    }
}
