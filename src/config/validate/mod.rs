//! Turns the spanned TOML tree into a [`Stack`], collecting every problem with
//! its location instead of stopping at the first. This file holds the
//! reading helpers every section uses; each section of the file is read in
//! its own file below.

mod attach;
mod build;
mod container;
mod cross;
mod image;
pub use image::local_name;
mod lifecycle;
mod mounts;
mod resources;
mod security;
mod stack;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::keys::*;
use crate::config::limits;
use crate::config::stack::*;
use crate::config::tree::{Entry, Kind, Node, Span, Table};
use crate::config::types::{
    self, ByteSize, CapName, Cidr, Duration, Name, PortSpec, Signal, did_you_mean,
};

/// A problem found in the file, at a byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub message: String,
}

/// Where the spans of cross-referenced values are, for errors found after
/// every container has been read.
#[derive(Default)]
struct Spans {
    key: Span,
    depends_on: BTreeMap<Name, Span>,
    /// Per attachment: the network name's span and the ip's span.
    networks: Vec<(Span, Option<Span>)>,
    /// Per alias, per attachment.
    aliases: Vec<Vec<Span>>,
    ports: Vec<Span>,
    mount_sources: Vec<Span>,
    health_key: Option<Span>,
}

struct Cx<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
    /// Byte range of the `[defaults]` table: problems inside it are named
    /// `defaults.KEY` rather than after the container they were merged into.
    defaults_extent: Option<Span>,
    /// `containers.NAME.` while a container is read.
    prefix: String,
}

/// Validates a parsed document. `base` is the stack file's folder (relative
/// host paths are taken from it).
pub fn validate(root: Node<'_>, file: &Path, base: &Path) -> Result<Stack, Vec<Problem>> {
    let mut cx = Cx {
        problems: Vec::new(),
        base,
        defaults_extent: None,
        prefix: String::new(),
    };
    let stack = cx.stack(root, file);
    let mut problems = cx.problems;
    problems.sort_by(|a, b| (a.span.start, &a.message).cmp(&(b.span.start, &b.message)));
    problems.dedup();
    match stack {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(problems),
    }
}

fn extent(node: &Node) -> Span {
    let mut s = node.span.clone();
    let mut widen = |o: &Span| {
        s.start = s.start.min(o.start);
        s.end = s.end.max(o.end);
    };
    match &node.kind {
        Kind::Table(t) => {
            for e in &t.entries {
                widen(&e.key_span);
                widen(&extent(&e.value));
            }
        }
        Kind::Array(items) => {
            for i in items {
                widen(&extent(i));
            }
        }
        _ => {}
    }
    s
}

impl Cx<'_> {
    fn err(&mut self, span: &Span, message: impl Into<String>) {
        self.problems.push(Problem {
            span: span.clone(),
            message: message.into(),
        });
    }

    /// The dotted name of a key of the current container (or of `[defaults]`).
    fn path(&self, span: &Span, key: &str) -> String {
        match &self.defaults_extent {
            Some(d) if !self.prefix.is_empty() && d.start <= span.start && span.end <= d.end => {
                format!("defaults.{key}")
            }
            _ => format!("{}{key}", self.prefix),
        }
    }

    fn err_key(&mut self, span: &Span, key: &str, msg: impl std::fmt::Display) {
        let p = self.path(span, key);
        self.err(span, format!("{p}: {msg}"));
    }

    fn type_err(&mut self, node: &Node, key: &str, expected: &str) {
        let found = node.kind.type_name();
        self.err_key(
            &node.span,
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    /// Reports keys not in `known` and returns the table.
    fn table<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        key: &str,
        known: &[&str],
    ) -> Option<&'n Table<'a>> {
        match &node.kind {
            Kind::Table(t) => {
                for e in &t.entries {
                    if !known.contains(&e.key.as_ref()) {
                        let hint = did_you_mean(&e.key, known.iter().copied());
                        let full = if key.is_empty() {
                            e.key.to_string()
                        } else {
                            format!("{key}.{}", e.key)
                        };
                        let p = self.path(&e.key_span, &full);
                        self.err(&e.key_span, format!("unknown key \"{p}\"{hint}"));
                    }
                }
                Some(t)
            }
            _ => {
                self.type_err(node, key, "a table");
                None
            }
        }
    }

    /// A table whose keys are names chosen by the user (containers, networks, ...).
    fn map<'n, 'a>(&mut self, node: &'n Node<'a>, key: &str) -> Option<&'n Table<'a>> {
        match &node.kind {
            Kind::Table(t) => Some(t),
            _ => {
                self.type_err(node, key, "a table");
                None
            }
        }
    }

    fn str<'n>(&mut self, node: &'n Node<'_>, key: &str) -> Option<&'n str> {
        match &node.kind {
            Kind::Str(s) => Some(s),
            _ => {
                self.type_err(node, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, key: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.type_err(node, key, "true or false");
                None
            }
        }
    }

    fn int(&mut self, node: &Node, key: &str, min: i64, max: i64) -> Option<i64> {
        match node.kind {
            Kind::Int(n) if (min..=max).contains(&n) => Some(n),
            Kind::Int(n) => {
                self.err_key(
                    &node.span,
                    key,
                    format!("{n} is out of range ({min}..={max})"),
                );
                None
            }
            _ => {
                self.type_err(node, key, "an integer");
                None
            }
        }
    }

    fn u32(&mut self, node: &Node, key: &str, min: u32, max: u32) -> Option<u32> {
        self.int(node, key, i64::from(min), i64::from(max))
            .and_then(|n| u32::try_from(n).ok())
    }

    fn parsed<T>(
        &mut self,
        node: &Node,
        key: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.str(node, key)?;
        match f(s) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err_key(&node.span, key, m);
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        self.parsed(node, key, Duration::parse)
    }

    fn size(&mut self, node: &Node, key: &str) -> Option<ByteSize> {
        match node.kind {
            Kind::Int(n) if n >= 0 => Some(ByteSize(n.unsigned_abs())),
            Kind::Int(_) => {
                self.err_key(&node.span, key, "a size must not be negative");
                None
            }
            Kind::Str(_) => self.parsed(node, key, ByteSize::parse),
            _ => {
                self.type_err(node, key, "a size like \"64M\" or a number of bytes");
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.str(node, key)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(s, names.iter().copied());
        self.err_key(
            &node.span,
            key,
            format!("expected one of {}, found \"{s}\"{hint}", names.join(", ")),
        );
        None
    }

    fn strings(&mut self, node: &Node, key: &str) -> Option<Vec<(String, Span)>> {
        match &node.kind {
            Kind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match &item.kind {
                        Kind::Str(s) => out.push((s.to_string(), item.span.clone())),
                        _ => {
                            self.type_err(item, &format!("{key}[{i}]"), "a string");
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.type_err(node, key, "an array of strings");
                None
            }
        }
    }

    /// A command: an array of strings, or one string split like a shell would.
    fn command(&mut self, node: &Node, key: &str) -> Option<Vec<String>> {
        let argv = match &node.kind {
            Kind::Str(s) => match split_words(s) {
                Ok(v) => v,
                Err(m) => {
                    self.err_key(&node.span, key, m);
                    return None;
                }
            },
            Kind::Array(_) => self
                .strings(node, key)?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            _ => {
                self.type_err(node, key, "an array of strings");
                return None;
            }
        };
        if argv.is_empty() || argv[0].is_empty() {
            self.err_key(&node.span, key, "the command must not be empty");
            return None;
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.err_key(&node.span, key, "the command must not contain NUL bytes");
            return None;
        }
        Some(argv)
    }

    /// `entrypoint`: like a command, or empty (`[]`, `""`) to clear the
    /// image's.
    fn entrypoint(&mut self, node: &Node, key: &str) -> Option<Vec<String>> {
        match &node.kind {
            Kind::Str(s) if s.trim().is_empty() => Some(Vec::new()),
            Kind::Array(items) if items.is_empty() => Some(Vec::new()),
            _ => self.command(node, key),
        }
    }

    fn container_path(&mut self, node: &Node, key: &str) -> Option<PathBuf> {
        self.parsed(node, key, types::container_path)
    }

    fn host_path(&mut self, node: &Node, key: &str) -> Option<PathBuf> {
        let base = self.base.to_path_buf();
        self.parsed(node, key, |s| types::host_path(s, &base))
    }

    /// A name given as the value (or key) `key` of the current container;
    /// the dotted path is only built when there is a problem to report.
    fn name(&mut self, s: &str, span: &Span, key: &str) -> Option<Name> {
        match Name::parse(s, Name::MAX) {
            Ok(n) => Some(n),
            Err(m) => {
                self.err_key(span, key, m);
                None
            }
        }
    }

    // ----------------------------------------------------------------- stack

    /// A value's own check, its error reported at the value.
    fn checked<T>(&mut self, v: &Node, key: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.err_key(&v.span, key, e)).ok()
    }

    fn mode(&mut self, v: &Node, key: &str) -> Option<u32> {
        match &v.kind {
            Kind::Int(n) if (0..=0o7777).contains(n) => u32::try_from(*n).ok(),
            Kind::Str(s) => match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
                Ok(m) if m <= 0o7777 => Some(m),
                _ => {
                    self.err_key(
                        &v.span,
                        key,
                        format!("invalid mode {s:?}: expected octal like \"1777\""),
                    );
                    None
                }
            },
            _ => {
                self.type_err(v, key, "an octal mode like \"1777\" or 0o1777");
                None
            }
        }
    }
}

/// Splits a command string into words, honouring single and double quotes
/// and backslash escapes, as a POSIX shell would (no expansion).
fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed ' in command {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(format!("unclosed \" in command {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed \" in command {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::security::{parse_idmap, ranges_overlap};
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            split_words("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
            ["a", "b c", "d\"e", "f g"]
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("").unwrap().is_empty());
    }

    #[test]
    fn idmaps() {
        assert_eq!(parse_idmap("0:100000:65536").unwrap().count, 65536);
        assert!(parse_idmap("0:100000:0").is_err());
        assert!(parse_idmap("0:4294967295:2").is_err());
        assert!(ranges_overlap(0, 10, 5, 10));
        assert!(!ranges_overlap(0, 10, 10, 10));
    }
}
