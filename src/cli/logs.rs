//! `rkstack logs` when no supervisor of the stack runs (after `down`):
//! the containers' log files read where they are, with the same `--tail`,
//! `--since` and prefixes as through the API; and `--since` itself.

use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::EXIT_FAILED;

/// `--since`: a duration back from now (`10m`, `90s`, `2h`) or an RFC 3339
/// UTC time (`2026-11-30T18:00:00Z`, milliseconds optional), as a
/// timestamp in the log records' own form (they compare as text).
pub fn since_arg(s: &str) -> Result<String, String> {
    if let Ok(d) = rkstack::config::Duration::parse(s) {
        let at = std::time::SystemTime::now()
            .checked_sub(d.0)
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        return Ok(rkstack::time::timestamp(at));
    }
    let shape = |t: &str| {
        t.len() == 20
            && t.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'Z',
                _ => b.is_ascii_digit(),
            })
    };
    match s.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((secs, ms))
            if shape(&format!("{secs}Z"))
                && ms.len() == 3
                && ms.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(s.to_string())
        }
        None if shape(s) => Ok(format!("{}.000Z", &s[..19])),
        _ => Err(format!(
            "{s:?}: a duration back from now (10m, 90s, 2h) or a UTC time (2026-11-30T18:00:00Z)"
        )),
    }
}

/// Prints one record: whole with `timestamps`, else its text on stdout or
/// stderr as it was written; `prefix` before it.
pub fn print_record(prefix: &str, record: &str, timestamps: bool) -> std::io::Result<()> {
    if timestamps {
        return writeln!(std::io::stdout(), "{prefix}{record}");
    }
    // TIMESTAMP STREAM text
    let mut parts = record.splitn(3, ' ');
    let (_, stream, text) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    if stream == Some("stderr") {
        writeln!(std::io::stderr(), "{prefix}{text}")
    } else {
        writeln!(std::io::stdout(), "{prefix}{text}")
    }
}

/// The containers with a log in `dir` (`NAME.log`), by name.
fn names_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".log")
                .filter(|s| !s.starts_with('.') && !s.is_empty())
                .map(String::from)
        })
        .collect();
    out.sort();
    out
}

/// The logs folder of the stack `stack`, or of the only stack with one
/// under `data_dir`.
fn logs_dir(data_dir: &Path, stack: Option<&str>) -> Result<PathBuf, String> {
    if let Some(s) = stack {
        let d = data_dir.join(s).join("logs");
        return if d.is_dir() {
            Ok(d)
        } else {
            Err(format!("stack {s} has no logs in {}", data_dir.display()))
        };
    }
    let found: Vec<String> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("logs").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match found.as_slice() {
        [one] => Ok(data_dir.join(one).join("logs")),
        [] => Err(format!(
            "no stack is running and none has logs in {}",
            data_dir.display()
        )),
        many => Err(format!(
            "no stack is running and several have logs ({}): say which with --stack",
            many.join(", ")
        )),
    }
}

/// `rkstack logs` of a stack that is not running: its files as they are.
pub fn from_disk(
    data_dir: &Path,
    stack: Option<&str>,
    names: &[String],
    tail: Option<usize>,
    since: Option<&str>,
    timestamps: bool,
) -> anyhow::Result<ExitCode> {
    let dir = match logs_dir(data_dir, stack) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rkstack: {e}");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let names = if names.is_empty() {
        names_in(&dir)
    } else {
        names.to_vec()
    };
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for name in &names {
        let files = rkstack::api::logs::files(&dir, name);
        if !files.iter().any(|f| f.exists()) {
            eprintln!("rkstack: no log of {name} in {}", dir.display());
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        let prefix = if names.len() > 1 {
            format!("{name:<width$} | ")
        } else {
            String::new()
        };
        let start = rkstack::api::logs::tail_start(&files, tail);
        for (i, path) in files.iter().enumerate().skip(start.0) {
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            if i == start.0 {
                f.seek(SeekFrom::Start(start.1))?;
            }
            for line in std::io::BufReader::new(f).split(b'\n') {
                let line = String::from_utf8_lossy(&line?).into_owned();
                if since.is_some_and(|s| !rkstack::api::logs::at_or_after(line.as_bytes(), s)) {
                    continue;
                }
                match print_record(&prefix, &line, timestamps) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        return Ok(ExitCode::SUCCESS);
                    }
                    other => other?,
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_utc_time() {
        assert_eq!(
            since_arg("2026-11-30T18:00:00Z").as_deref(),
            Ok("2026-11-30T18:00:00.000Z")
        );
        assert_eq!(
            since_arg("2026-11-30T18:00:00.250Z").as_deref(),
            Ok("2026-11-30T18:00:00.250Z")
        );
        let ten_min = since_arg("10m").unwrap_or_default();
        let now = rkstack::time::timestamp(std::time::SystemTime::now());
        assert!(
            ten_min.len() == now.len() && ten_min < now,
            "{ten_min} {now}"
        );
        for bad in [
            "yesterday",
            "2026-11-30 18:00:00",
            "2026-11-30T18:00:00+01:00",
            "-5m",
        ] {
            assert!(since_arg(bad).is_err(), "{bad}");
        }
    }
}
