//! The stack file: read, parse with spans, validate into [`Stack`].
//!
//! Every problem is collected and reported as `FILE:LINE:COL: message`.

mod keys;
pub mod limits;
pub mod render;
mod stack;
mod tree;
pub mod types;
mod validate;
pub use validate::local_name;

use std::fmt;
use std::path::{Path, PathBuf};

pub use stack::*;
pub use types::{ByteSize, Cidr, Duration, Name, PortSpec, Proto, Signal};

/// One problem in a stack file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Why a stack file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a directory, not a stack file", path.display())]
    IsDirectory { path: PathBuf },
    #[error("{}: permission denied", path.display())]
    PermissionDenied { path: PathBuf },
    /// Not something a stack file can be read from (a FIFO, a device,
    /// too large): why, in words.
    #[error("{}: {why}", path.display())]
    Refused { path: PathBuf, why: String },
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{col}: the file is not valid UTF-8 text", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        col: usize,
    },
    #[error("{}", render(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
}

fn render(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// Every located problem (one for read errors).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Invalid { diagnostics } => diagnostics.clone(),
            ConfigError::NotUtf8 { path, line, col } => vec![Diagnostic {
                file: path.clone(),
                line: *line,
                col: *col,
                message: "the file is not valid UTF-8 text".into(),
            }],
            other => vec![Diagnostic {
                file: PathBuf::new(),
                line: 0,
                col: 0,
                message: other.to_string(),
            }],
        }
    }
}

/// Largest stack file accepted; anything bigger is certainly a mistake.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads and validates a stack file. Only a regular file is read (opened
/// non-blocking, so a FIFO at the path answers at once; not a device such
/// as `/dev/zero`), and at most [`MAX_FILE_BYTES`] of it: the path may come
/// from an API caller, and the supervisor reading it must not wait or grow.
pub fn load(path: &Path) -> Result<Stack, ConfigError> {
    parse(&read_text(path)?, path)
}

/// The text of the stack file at `path`: a regular file, bounded in size,
/// UTF-8.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use crate::bounded::Refusal;
    let refuse = |why: String| ConfigError::Refused {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(ConfigError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let bytes = crate::bounded::read_regular(path, MAX_FILE_BYTES).map_err(|r| match r {
        Refusal::Io(_, e) => io_error(path, e),
        Refusal::NotRegular(what) => refuse(format!("{what}; a stack file must be a regular file")),
        Refusal::TooBig => refuse(format!(
            "larger than {} MiB, the most a stack file may be",
            MAX_FILE_BYTES >> 20
        )),
    })?;
    let src = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..good]).into_owned();
            let (line, col) = tree::LineIndex::new(&text).line_col(good);
            return Err(ConfigError::NotUtf8 {
                path: path.to_path_buf(),
                line,
                col,
            });
        }
    };
    Ok(src)
}

fn io_error(path: &Path, e: std::io::Error) -> ConfigError {
    let path = path.to_path_buf();
    match e.kind() {
        std::io::ErrorKind::NotFound => ConfigError::NotFound { path },
        std::io::ErrorKind::PermissionDenied => ConfigError::PermissionDenied { path },
        std::io::ErrorKind::IsADirectory => ConfigError::IsDirectory { path },
        _ => ConfigError::Read { path, source: e },
    }
}

/// Parses and validates stack file text; `file` names it in messages and
/// relative paths in it are taken from its folder.
pub fn parse(src: &str, file: &Path) -> Result<Stack, ConfigError> {
    let index = tree::LineIndex::new(src);
    let locate = |start: usize, message: String| {
        let (line, col) = index.line_col(start);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            message,
        }
    };
    let root = tree::parse(src).map_err(|errs| ConfigError::Invalid {
        diagnostics: errs
            .into_iter()
            .map(|e| locate(e.span.start, e.message))
            .collect(),
    })?;
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.is_absolute() {
        base
    } else {
        std::env::current_dir()
            .map(|c| c.join(&base))
            .unwrap_or(base)
    };
    validate::validate(root, file, &base).map_err(|ps| ConfigError::Invalid {
        diagnostics: ps
            .into_iter()
            .map(|p| locate(p.span.start, p.message))
            .collect(),
    })
}

impl Stack {
    /// One-line summary: `3 containers, 1 network`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut s = format!(
            "{}, {}",
            plural(self.containers.len(), "container"),
            plural(self.networks.len(), "network")
        );
        if !self.volumes.is_empty() {
            s.push_str(&format!(", {}", plural(self.volumes.len(), "volume")));
        }
        s
    }

    /// What a device must offer to run this stack, beyond rkstack itself
    /// and cgroups (programs and kernel features), in words.
    pub fn device_needs(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let cs = || self.containers.values();
        if cs().any(|c| !c.ports.is_empty()) || !self.networks.is_empty() {
            out.push("nftables (the nft program; nf_tables with nat, fib and masquerade) for ports, NAT and network separation");
            out.push("bridge and veth");
        }
        if cs().any(|c| {
            matches!(
                c.image,
                ImageRef::Oci { .. }
                    | ImageRef::Tar { .. }
                    | ImageRef::Docker { .. }
                    | ImageRef::Local { .. }
            )
        }) {
            out.push("overlayfs");
        }
        if cs().any(|c| matches!(c.image, ImageRef::Squashfs { .. })) {
            out.push("loop devices and squashfs");
        }
        if cs().any(|c| matches!(c.image, ImageRef::Erofs { .. })) {
            out.push("loop devices and erofs");
        }
        if cs().any(|c| c.verity.is_some()) {
            out.push("dm-verity (dm_verity)");
        }
        out
    }
}

#[cfg(test)]
mod tests;
