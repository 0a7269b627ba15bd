//! The build context as `COPY` and `ADD` see it: a source names a path in
//! the context (or, with `*`, `?`, `[..]` or `**`, every path matching
//! it), cleaned so that it never leaves the context (`..` stops at its
//! root), minus what the ignore file leaves out. Links are never
//! followed: a link in the context is copied as a link. Every path is
//! found inside the context's own root (`openat2(RESOLVE_IN_ROOT)`), as
//! if it were `/`: the root of an earlier stage is an image's, and a link
//! of its (`/e -> /etc`) leads to its own `/etc`, never to the host's —
//! neither for what is read nor for the names listed. The digest of
//! what a step reads (names, kinds, modes, sizes, contents, link targets)
//! keys its cache.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::ignore::{Ignore, clean, matches};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{0}: no such file in the build context")]
    Missing(String),
    #[error("{0}: every file it names is left out by the ignore file")]
    Ignored(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The context (or a stage's root), opened to find paths inside it.
fn open_root(context: &Path) -> Result<OwnedFd, ContextError> {
    nix::fcntl::open(
        context,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ContextError::Io {
        path: context.to_path_buf(),
        source: e.into(),
    })
}

/// `rel`, found inside `root` (its own last link not followed).
fn open_in(root: &OwnedFd, rel: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    crate::sandbox::rootfs::openat2_in_root(root.as_raw_fd(), rel, flags | libc::O_NOFOLLOW)
}

/// What `rel` is, found inside `root` (a link is a link).
fn metadata_in(root: &OwnedFd, rel: &Path) -> std::io::Result<std::fs::Metadata> {
    std::fs::File::from(open_in(root, rel, libc::O_PATH)?).metadata()
}

fn wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Every path under `start` (relative to `context`, found inside it),
/// without following links; what `ignore` leaves out is not listed (nor,
/// without exceptions, looked in).
fn walk(
    context: &Path,
    root: &OwnedFd,
    start: &Path,
    ignore: &Ignore,
) -> Result<Vec<PathBuf>, ContextError> {
    let shown = |rel: &Path| context.join(start).join(rel);
    let top = open_in(root, start, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(io(&shown(Path::new(""))))?;
    // The folder found inside the root, read through its descriptor;
    // below it, only folders that are no links are entered.
    let base = PathBuf::from(format!("/proc/self/fd/{}", top.as_raw_fd()));
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = base.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&shown(&rel)))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(&shown(&rel)))?;
        names.sort();
        for n in names {
            let p = rel.join(&n);
            let named = start.join(&p);
            let excluded = ignore.excludes(&named.to_string_lossy());
            let m = std::fs::symlink_metadata(base.join(&p)).map_err(io(&shown(&p)))?;
            if !excluded {
                out.push(named);
            }
            if m.is_dir() && (!excluded || ignore.has_exceptions()) {
                todo.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The paths (relative to the context) `source` names.
pub fn resolve(
    context: &Path,
    source: &str,
    ignore: &Ignore,
) -> Result<Vec<PathBuf>, ContextError> {
    let parts = clean(source);
    let root = open_root(context)?;
    if !wild(source) {
        let rel: PathBuf = parts.iter().collect();
        metadata_in(&root, &rel).map_err(|_| ContextError::Missing(source.to_string()))?;
        if !parts.is_empty() && ignore.excludes(&rel.to_string_lossy()) {
            return Err(ContextError::Ignored(source.to_string()));
        }
        return Ok(vec![rel]);
    }
    let found: Vec<PathBuf> = walk(context, &root, Path::new(""), ignore)?
        .into_iter()
        .filter(|p| {
            let names: Vec<String> = p.iter().map(|n| n.to_string_lossy().into_owned()).collect();
            matches(&parts, &names)
        })
        .collect();
    if found.is_empty() {
        return Err(ContextError::Missing(source.to_string()));
    }
    Ok(found)
}

/// The Containerfile of `context` when none is named: `Containerfile`,
/// else `Dockerfile`.
pub fn default_file(context: &Path) -> PathBuf {
    let c = context.join("Containerfile");
    if c.exists() {
        c
    } else {
        context.join("Dockerfile")
    }
}

/// The largest Containerfile read.
pub const MAX_CONTAINERFILE: u64 = 1 << 20;

/// The bytes of a Containerfile: a regular file (opened non-blocking: a
/// FIFO put there answers at once), at most [`MAX_CONTAINERFILE`].
pub fn read_containerfile(file: &Path) -> Result<Vec<u8>, String> {
    crate::bounded::read_regular(file, MAX_CONTAINERFILE).map_err(|r| match r {
        crate::bounded::Refusal::TooBig => {
            format!("larger than {} KiB", MAX_CONTAINERFILE >> 10)
        }
        r => r.to_string(),
    })
}

/// The context's ignore file: `.containerignore`, else `.dockerignore`.
pub fn ignore_of(context: &Path) -> Ignore {
    for name in [".containerignore", ".dockerignore"] {
        if let Ok(text) = std::fs::read_to_string(context.join(name)) {
            return Ignore::parse(&text);
        }
    }
    Ignore::default()
}

/// The digest of everything a build reads before it runs a step: the
/// Containerfile, the arguments and target, and every file of the context
/// the ignore file lets in. The same inputs give the same image (from
/// the same base), so a stack's built image is out of date exactly when
/// this changed since it was built.
pub fn inputs(
    context: &Path,
    file: Option<&Path>,
    args: &std::collections::BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<String, ContextError> {
    let file = file.map_or_else(|| default_file(context), Path::to_path_buf);
    let text = read_containerfile(&file).map_err(|m| ContextError::Io {
        path: file.clone(),
        source: std::io::Error::other(m),
    })?;
    let files = digest(context, &[PathBuf::new()], &ignore_of(context))?;
    let mut h = sha2::Sha256::new();
    for part in [
        &text[..],
        files.as_bytes(),
        target.unwrap_or_default().as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (k, v) in args {
        h.update(format!("{}={k}={v}\n", k.len()).as_bytes());
    }
    Ok(format!(
        "build:sha256:{}",
        crate::image::store::Digest::from_sha256(h.finalize().into()).hex()
    ))
}

/// Everything below the folder `dir` (relative to `context`) that the
/// ignore file lets in, sorted, parents before what they hold; links are
/// listed, never followed.
pub fn below(context: &Path, dir: &Path, ignore: &Ignore) -> Result<Vec<PathBuf>, ContextError> {
    walk(context, &open_root(context)?, dir, ignore)
}

/// The digest of what a step reads: each path (and, for a folder, what it
/// holds that the ignore file lets in), its kind, mode, owner, size,
/// content or link target.
pub fn digest(context: &Path, paths: &[PathBuf], ignore: &Ignore) -> Result<String, ContextError> {
    let mut h = sha2::Sha256::new();
    let root = open_root(context)?;
    let all = walk_from(context, &root, paths, ignore)?;
    for rel in all {
        let full = context.join(&rel);
        let m = metadata_in(&root, &rel).map_err(io(&full))?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(format!("{:o} {} {} {}", m.mode(), m.uid(), m.gid(), m.len()).as_bytes());
        if m.file_type().is_symlink() {
            let link = open_in(&root, &rel, libc::O_PATH).map_err(io(&full))?;
            let t = nix::fcntl::readlinkat(&link, "").map_err(|e| ContextError::Io {
                path: full.clone(),
                source: e.into(),
            })?;
            h.update(t.as_encoded_bytes());
        } else if m.is_file() {
            use std::io::Read;
            // Non-blocking: a FIFO swapped in since the look answers at
            // once, and only what is still a regular file is read.
            let mut f = std::fs::File::from(
                open_in(&root, &rel, libc::O_RDONLY | libc::O_NONBLOCK).map_err(io(&full))?,
            );
            if !f.metadata().map_err(io(&full))?.is_file() {
                h.update([0]);
                continue;
            }
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = f.read(&mut buf).map_err(io(&full))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update([0]);
    }
    Ok(format!(
        "sha256:{}",
        crate::image::store::Digest::from_sha256(h.finalize().into()).hex()
    ))
}

/// `paths` and, below each folder among them, what the ignore file lets
/// in; sorted.
fn walk_from(
    context: &Path,
    root: &OwnedFd,
    paths: &[PathBuf],
    ignore: &Ignore,
) -> Result<Vec<PathBuf>, ContextError> {
    let mut out = Vec::new();
    for p in paths {
        out.push(p.clone());
        if metadata_in(root, p).map_err(io(&context.join(p)))?.is_dir() {
            out.extend(walk(context, root, p, ignore)?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (p, c) in [
            ("app/main.py", "print(1)\n"),
            ("app/util.py", "x = 1\n"),
            ("app/cache/x.pyc", "bytes"),
            ("README.md", "hi\n"),
            ("notes.md", "secret\n"),
        ] {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap_or(d.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(f, c).unwrap_or_else(|e| panic!("{e}"));
        }
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("app/link"))
            .unwrap_or_else(|e| panic!("{e}"));
        d
    }

    #[test]
    fn sources_are_found_inside_the_context_and_the_ignore_file_holds() {
        let d = context();
        let ig = Ignore::parse("notes.md\n**/cache\n");
        let r = |s: &str| resolve(d.path(), s, &ig).map_err(|e| e.to_string());
        assert_eq!(
            r("app/main.py").unwrap_or_default(),
            [PathBuf::from("app/main.py")]
        );
        assert_eq!(
            r("../../app/./main.py").unwrap_or_default(),
            [PathBuf::from("app/main.py")]
        );
        assert_eq!(
            r("app/*.py").unwrap_or_default(),
            [PathBuf::from("app/main.py"), PathBuf::from("app/util.py")]
        );
        assert_eq!(r("*.md").unwrap_or_default(), [PathBuf::from("README.md")]);
        assert_eq!(
            r("nope").err().unwrap_or_default(),
            "nope: no such file in the build context"
        );
        assert_eq!(
            r("notes.md").err().unwrap_or_default(),
            "notes.md: every file it names is left out by the ignore file"
        );
        // A link is a path of the context; its target is not.
        assert_eq!(
            r("app/link").unwrap_or_default(),
            [PathBuf::from("app/link")]
        );
        assert!(r("app/link/x").is_err());
    }

    #[test]
    fn the_digest_changes_with_what_is_read_and_nothing_else() {
        let d = context();
        let ig = Ignore::parse("**/cache\n");
        let app = vec![PathBuf::from("app")];
        let one = digest(d.path(), &app, &ig).unwrap_or_else(|e| panic!("{e}"));
        // Outside what is read, or left out: the same.
        std::fs::write(d.path().join("README.md"), "changed").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("app/cache/x.pyc"), "changed")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(digest(d.path(), &app, &ig).unwrap_or_default(), one);
        // A file read changes: another digest.
        std::fs::write(d.path().join("app/util.py"), "x = 2\n").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(digest(d.path(), &app, &ig).unwrap_or_default(), one);
    }

    /// The supervisor takes this digest for a stack's `build`: a FIFO put
    /// in place of the Containerfile (a container may write the context)
    /// is refused at once, never waited on.
    #[test]
    fn a_fifo_for_a_containerfile_is_refused_at_once() {
        let d = context();
        let file = d.path().join("Containerfile");
        nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = inputs(d.path(), None, &Default::default(), None);
        assert!(
            r.as_ref().is_err_and(|e| e.to_string().contains("a FIFO")),
            "{r:?}"
        );
    }
}
