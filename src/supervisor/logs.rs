//! Container logs: the supervisor owns each container's stdout and stderr
//! pipes (so a restart loses no line) and writes one line per record with a
//! timestamp and the stream, rotating at `max_size` and keeping `max_files`.
//! A write that fails (a full disk) drops the line and counts it; it never
//! blocks the container.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::time::timestamp;

/// One record written to a container's log, for those following it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub container: String,
    /// The line as written: `TIMESTAMP STREAM text`.
    pub record: String,
}

static TAP: std::sync::OnceLock<tokio::sync::broadcast::Sender<LogLine>> =
    std::sync::OnceLock::new();

fn tap() -> &'static tokio::sync::broadcast::Sender<LogLine> {
    TAP.get_or_init(|| tokio::sync::broadcast::channel(1024).0)
}

/// Every container's log records from now on.
pub fn subscribe() -> tokio::sync::broadcast::Receiver<LogLine> {
    tap().subscribe()
}

/// One container's log file and its two pipes.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    /// Open while the container writes; closed when its pipes run dry
    /// (`parked`), so a quiet container costs the supervisor two
    /// descriptors, not three — every start forks the supervisor and
    /// closes all of them in the new process.
    file: Option<File>,
    parked: bool,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Lines dropped in the present (or last) episode of failed writes.
    pub dropped: u64,
    /// Whether the last write failed: an episode of drops is under way.
    pub dropping: bool,
    /// Whether the episode under way was reported (one event when it
    /// starts, one with its count when writing works again).
    pub announced: bool,
    /// When the file was last opened anew after it could not be (a
    /// rotation on a full disk): tried again once a second, so freeing
    /// space brings the log back.
    reopened: Option<std::time::Instant>,
    /// Read ends (stdout, stderr), polled by the supervisor.
    pub out_r: OwnedFd,
    pub err_r: OwnedFd,
    /// The pipes' paths: each run of the container gets ends of its own.
    fifos: [PathBuf; 2],
    partial: [Vec<u8>; 2],
    /// Records read but not written yet, and how many.
    batch: Vec<u8>,
    batch_lines: u64,
    /// Each line to the journal too (`logging.driver = "journald"`).
    journal: Option<JournalCopy>,
}

/// The journal's copy of a container's output, and how it fares.
#[derive(Debug)]
pub struct JournalCopy {
    out: crate::host::journal::Output,
    /// Why the last line could not be sent (an episode of drops is under
    /// way), and whether that episode was reported; lines dropped in it.
    pub failing: Option<String>,
    pub announced: bool,
    pub dropped: u64,
}

/// Reads of a pipe per [`Log::drain`] (64 KiB each).
pub const DRAIN_READS: usize = 4;

/// A named pipe for one stream, opened for reading. It is opened
/// read-write: the supervisor's end is then a writer too, so the pipe never
/// reports an end between two runs of the container (nothing else needs
/// to hold it open), and a new supervisor after a crash simply opens the
/// same pipe again and goes on reading. One descriptor per stream.
fn fifo(path: &Path) -> std::io::Result<OwnedFd> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .unwrap_or_default();
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    open_fifo(path, libc::O_RDWR | libc::O_NONBLOCK)
}

fn open_fifo(path: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .unwrap_or_default();
    // SAFETY: c is NUL-terminated.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A log file, appended to, readable by its owner's group (0640).
fn open_log(path: &Path) -> std::io::Result<File> {
    std::os::unix::fs::OpenOptionsExt::mode(
        File::options().create(true).append(true),
        super::private::LOG_MODE,
    )
    .open(path)
}

/// Moves `path` aside as `path.1`, each older `path.N` to `path.N+1`, and
/// drops `path.oldest` (with `oldest` 0, `path` itself): a log's rotation.
pub fn shift_rotations(path: &Path, oldest: u32) {
    let name = |i: u32| -> PathBuf {
        if i == 0 {
            path.to_path_buf()
        } else {
            PathBuf::from(format!("{}.{i}", path.display()))
        }
    };
    let _ = std::fs::remove_file(name(oldest));
    for i in (0..oldest).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
}

impl Log {
    pub fn open(path: PathBuf, max_size: u64, max_files: u32) -> std::io::Result<Log> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let fifo_path = |stream: &str| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            path.with_file_name(format!(".{name}.{stream}"))
        };
        let fifos = [fifo_path("stdout"), fifo_path("stderr")];
        let out_r = fifo(&fifos[0])?;
        let err_r = fifo(&fifos[1])?;
        // Made now, so that `logs` finds it before the first line.
        let size = open_log(&path)?.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Log {
            path,
            file: None,
            parked: true,
            size,
            max_size,
            max_files: max_files.max(1),
            dropped: 0,
            dropping: false,
            announced: false,
            reopened: None,
            out_r,
            err_r,
            fifos,
            partial: [Vec::new(), Vec::new()],
            batch: Vec::new(),
            batch_lines: 0,
            journal: None,
        })
    }

    /// Applies a container's `logging` (at its admission and when a reload
    /// changes it): the rotation from the next record on, the journal's
    /// copy on or off.
    pub fn configure(
        &mut self,
        max_size: u64,
        max_files: u32,
        journal: Option<crate::host::journal::Output>,
    ) {
        self.max_size = max_size;
        self.max_files = max_files.max(1);
        self.journal = journal.map(|out| JournalCopy {
            out,
            failing: None,
            announced: false,
            dropped: 0,
        });
    }

    /// The size the file rotates at, and the rotations kept.
    pub fn rotation(&self) -> (u64, u32) {
        (self.max_size, self.max_files)
    }

    /// The journal's copy, when the container's output goes there.
    pub fn journal(&mut self) -> Option<&mut JournalCopy> {
        self.journal.as_mut()
    }

    /// Ends to write to the pipes (stdout, stderr) for one run of the
    /// container. Read-write, so that a container whose supervisor is gone
    /// (a crash) never meets SIGPIPE: its writes wait in the pipe.
    pub fn writers(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        Ok((
            open_fifo(&self.fifos[0], libc::O_RDWR)?,
            open_fifo(&self.fifos[1], libc::O_RDWR)?,
        ))
    }

    /// Reads what is waiting on one pipe (0 = stdout, 1 = stderr) and writes
    /// whole lines: at most [`DRAIN_READS`] reads a call, so a container
    /// that writes flat out cannot hold the loop (the rest is read on its
    /// next turn). Returns false at end of file.
    pub fn drain(&mut self, stream: usize) -> bool {
        let fd = if stream == 0 {
            self.out_r.as_raw_fd()
        } else {
            self.err_r.as_raw_fd()
        };
        let mut buf = [0u8; 65536];
        for _ in 0..DRAIN_READS {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                return false;
            }
            if n < 0 {
                // Dry: the file is opened again with the next lines.
                if self.batch.is_empty() && self.file.take().is_some() {
                    self.parked = true;
                }
                return true;
            }
            let got = &buf[..n as usize];
            // One time for what one read brought: the lines arrived together.
            let stamp = timestamp(SystemTime::now());
            let mut start = 0;
            for (i, b) in got.iter().enumerate() {
                if *b == b'\n' {
                    let mut line = std::mem::take(&mut self.partial[stream]);
                    line.extend_from_slice(&got[start..i]);
                    self.record(stream, &stamp, &line);
                    start = i + 1;
                }
            }
            self.partial[stream].extend_from_slice(&got[start..]);
            if self.partial[stream].len() > 16384 {
                let line = std::mem::take(&mut self.partial[stream]);
                self.record(stream, &stamp, &line);
            }
            self.flush();
        }
        true
    }

    /// Adds one record to the batch written by [`Log::flush`], rotating
    /// first when it would not fit, and hands it to live followers.
    fn record(&mut self, stream: usize, stamp: &str, line: &[u8]) {
        let start = self.batch.len();
        self.batch.extend_from_slice(stamp.as_bytes());
        self.batch.extend_from_slice(if stream == 0 {
            b" stdout "
        } else {
            b" stderr "
        });
        self.batch.extend_from_slice(line);
        self.batch.push(b'\n');
        let len = (self.batch.len() - start) as u64;
        if self.size + start as u64 + len > self.max_size && self.size + start as u64 > 0 {
            let rec = self.batch.split_off(start);
            self.flush();
            self.rotate();
            self.batch = rec;
        }
        self.batch_lines += 1;
        if let Some(j) = self.journal.as_mut() {
            match j.out.send(stream, line) {
                Ok(()) => j.failing = None,
                Err(e) => {
                    if j.failing.is_none() && !j.announced {
                        j.dropped = 0;
                    }
                    j.dropped += 1;
                    j.failing = Some(e.to_string());
                }
            }
        }
        let tap = tap();
        if tap.receiver_count() > 0 {
            let container = self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rec = &self.batch[self.batch.len() - len as usize..self.batch.len() - 1];
            let _ = tap.send(LogLine {
                container,
                record: String::from_utf8_lossy(rec).into_owned(),
            });
        }
    }

    /// Writes the batch of records in one go; on failure its lines count
    /// as dropped.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if self.file.is_none()
            && (self.parked
                || self
                    .reopened
                    .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)))
        {
            if !std::mem::take(&mut self.parked) {
                self.reopened = Some(std::time::Instant::now());
            }
            self.file = open_log(&self.path).ok();
            self.size = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map_or(0, |m| m.len());
        }
        match self.file.as_mut().map(|f| f.write_all(&self.batch)) {
            Some(Ok(())) => {
                self.size += self.batch.len() as u64;
                self.dropping = false;
            }
            _ => {
                if !self.dropping && !self.announced {
                    self.dropped = 0;
                }
                self.dropped += self.batch_lines;
                self.dropping = true;
            }
        }
        self.batch.clear();
        self.batch_lines = 0;
    }

    fn rotate(&mut self) {
        self.file = None;
        shift_rotations(&self.path, self.max_files - 1);
        self.file = open_log(&self.path).ok();
        self.size = 0;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the named pipes (when the container leaves the stack).
    pub fn remove_pipes(&self) {
        for s in ["stdout", "stderr"] {
            let name = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::fs::remove_file(self.path.with_file_name(format!(".{name}.{s}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_log_that_lost_its_file_gets_it_back_and_counts_the_episode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = Log::open(path.clone(), 1 << 20, 2).unwrap();
        // As after a rotation that could not create the new file.
        log.file = None;
        log.parked = false;
        log.reopened = Some(std::time::Instant::now());
        log.record(0, "T", b"lost");
        log.flush();
        assert!(log.dropping && log.dropped == 1);
        log.reopened = Some(std::time::Instant::now() - Duration::from_secs(2));
        log.record(0, "T", b"back");
        log.flush();
        assert!(!log.dropping, "still dropping");
        assert_eq!(log.dropped, 1, "the episode's count");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(" stdout back") && !text.contains("lost"),
            "{text}"
        );
    }

    #[test]
    fn a_quiet_container_holds_no_open_log_file() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = Log::open(path.clone(), 1 << 20, 2).unwrap();
        assert!(path.exists() && log.file.is_none());
        let mut w = File::from(log.writers().unwrap().0);
        for line in ["one", "two"] {
            writeln!(w, "{line}").unwrap();
            assert!(log.drain(0));
            assert!(log.file.is_none(), "kept open after the pipe ran dry");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(" stdout one\n") && text.contains(" stdout two\n"),
            "{text}"
        );
        assert!(!log.dropping);
    }

    #[test]
    fn one_drain_reads_a_bounded_amount_from_a_flat_out_writer() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = Log::open(path.clone(), 1 << 30, 2).unwrap();
        let w = log.writers().unwrap().0;
        let writer = std::thread::spawn(move || {
            let mut f = File::from(w);
            let line = [b'x'; 999];
            for _ in 0..2048 {
                f.write_all(&line).unwrap();
                f.write_all(b"\n").unwrap();
            }
        });
        // Wait until the pipe is full: the writer is blocked on it.
        std::thread::sleep(Duration::from_millis(200));
        assert!(log.drain(0));
        let first = std::fs::metadata(&path).unwrap().len();
        assert!(
            first <= (DRAIN_READS as u64 * 65536) * 105 / 100,
            "one drain wrote {first} bytes"
        );
        let mut rounds = 1;
        while std::fs::metadata(&path).unwrap().len() < 2048 * 1000 && rounds < 10_000 {
            log.drain(0);
            rounds += 1;
        }
        writer.join().unwrap();
        log.drain(0);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2048);
        assert!(rounds > 1);
    }

    #[test]
    fn lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path().join("c.log"), 200, 3).unwrap();
        let w = log.writers().unwrap().0;
        for i in 0..20 {
            let line = format!("line {i}\n");
            // SAFETY: writing to our own pipe.
            unsafe { libc::write(w.as_raw_fd(), line.as_ptr().cast(), line.len()) };
            log.drain(0);
        }
        let mut all = String::new();
        for f in ["c.log.2", "c.log.1", "c.log"] {
            all.push_str(&std::fs::read_to_string(dir.path().join(f)).unwrap_or_default());
        }
        assert!(!dir.path().join("c.log.3").exists());
        let last: Vec<&str> = all
            .lines()
            .map(|l| l.split_once(" stdout ").unwrap().1)
            .collect();
        assert_eq!(last.last(), Some(&"line 19"));
        // Consecutive numbers, none lost inside what was kept.
        let nums: Vec<u32> = last.iter().map(|l| l[5..].parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    }
}
