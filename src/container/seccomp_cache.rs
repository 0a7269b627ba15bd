//! The compiled-seccomp cache: a profile compiled to BPF once per binary,
//! capability set and profile, kept in `STATE/seccomp/` (compiling the
//! default profile for three architectures costs milliseconds).

use std::path::Path;

use crate::config::Seccomp;
use crate::sandbox::seccomp;

/// Compiles a seccomp profile, or takes it from the cache: compiling the
/// default profile for three architectures costs milliseconds on every
/// start, the cached program a single read. The key covers everything the
/// program depends on: this binary (size and time), the profile (for a file,
/// its contents), the capabilities and the host architecture (and its
/// kernel's x32 ABI).
pub(super) fn compiled(
    profile: &Seccomp,
    caps: &[String],
    cache: Option<&Path>,
) -> Result<Vec<u8>, seccomp::SeccompError> {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::Mutex;
    static MEMO: Mutex<Option<HashMap<String, Vec<u8>>>> = Mutex::new(None);

    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(std::env::consts::ARCH);
    // The program covers x32 only where the kernel runs it.
    h.update([u8::from(seccomp::kernel_runs_x32())]);
    for c in caps {
        h.update(c.as_bytes());
        h.update([0]);
    }
    match profile {
        Seccomp::Profile(p) => {
            let text = std::fs::read(p).map_err(|source| seccomp::SeccompError::Read {
                path: p.display().to_string(),
                source,
            })?;
            h.update(b"file\0");
            h.update(&text);
        }
        _ => h.update(b"default-v1\0"),
    }
    if let Ok(exe) = std::fs::metadata("/proc/self/exe") {
        // A rebuilt binary may carry a different built-in profile.
        let mtime = exe
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(exe.len().to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    let key: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(p) = MEMO
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return Ok(p);
    }
    let file = cache.map(|d| d.join(format!("{key}.bpf")));
    if let Some(f) = &file
        && let Ok(p) = std::fs::read(f)
        && !p.is_empty()
        && p.len() % 8 == 0
    {
        return Ok(p);
    }
    let prog = match profile {
        Seccomp::Profile(p) => seccomp::profile_file(p, caps)?,
        _ => seccomp::default_profile(caps)?,
    };
    if let (Some(f), Some(dir)) = (&file, cache) {
        // Written atomically; a failure only costs the next start a compile.
        let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
        if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, &prog).is_ok() {
            let _ = std::fs::rename(&tmp, f);
        }
        prune_seccomp_cache(dir, SECCOMP_CACHE_AGE);
    }
    if let Ok(mut m) = MEMO.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, prog.clone());
    }
    Ok(prog)
}

/// How long an entry of the compiled-seccomp cache stays unwritten
/// before a compile removes it.
const SECCOMP_CACHE_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the cache's entries written longer than `age` ago. Each build
/// of the binary has keys of its own, so without this the folder (a
/// tmpfs on a device: memory) grew with every upgrade. Runs only after a
/// compile (a new binary, capability set or profile); an entry still in
/// use that goes is compiled again once.
fn prune_seccomp_cache(dir: &Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.ends_with(".bpf") || name.ends_with(".tmp")) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d > age);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_removes_entries_unwritten_for_a_day() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = dir.path().join("old.bpf");
        let fresh = dir.path().join("fresh.bpf");
        let other = dir.path().join("notes.txt");
        for f in [&old, &fresh, &other] {
            std::fs::write(f, [0u8; 8]).unwrap_or_else(|e| panic!("{e}"));
        }
        let two_days = std::time::Duration::from_secs(48 * 3600);
        for f in [&old, &other] {
            let file = std::fs::File::options()
                .write(true)
                .open(f)
                .unwrap_or_else(|e| panic!("{e}"));
            file.set_modified(std::time::SystemTime::now() - two_days)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        prune_seccomp_cache(dir.path(), SECCOMP_CACHE_AGE);
        assert!(!old.exists());
        assert!(fresh.exists());
        assert!(other.exists(), "only the cache's own files go");
    }
}
