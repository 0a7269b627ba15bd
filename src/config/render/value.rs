//! A value in the stack file's terms, written as TOML (inline) or as JSON.

use std::fmt::Write as _;

/// A value in the file's terms; tables keep their order (a container's
/// networks are eth0, eth1, ... in the order written).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Value>),
    Table(Vec<(String, Value)>),
}

impl Value {
    pub(super) fn str(s: impl std::fmt::Display) -> Value {
        Value::Str(s.to_string())
    }

    pub(super) fn path(p: &std::path::Path) -> Value {
        Value::Str(p.display().to_string())
    }

    pub(super) fn strings<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> Value {
        Value::Array(items.into_iter().map(Value::str).collect())
    }

    pub(super) fn int(n: impl TryInto<i64>) -> Value {
        Value::Int(n.try_into().unwrap_or(i64::MAX))
    }

    pub(super) fn scalar_into(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&quote(s)),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            // `{:?}` keeps a `.0`, which both TOML and JSON read as a float.
            Value::Float(x) => {
                let _ = write!(out, "{x:?}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Array(_) | Value::Table(_) => {}
        }
    }

    /// As a TOML value on one line (tables inline).
    pub(super) fn toml_inline(&self, out: &mut String) {
        match self {
            Value::Table(entries) => {
                if entries.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push_str("{ ");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.toml_inline(out);
                }
                out.push_str(" }");
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.toml_inline(out);
                }
                out.push(']');
            }
            scalar => scalar.scalar_into(out),
        }
    }
}

/// Serialized in order (JSON: `check --json`, `inspect`'s `config`).
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Str(v) => ser.serialize_str(v),
            Value::Int(v) => ser.serialize_i64(*v),
            Value::Float(v) => ser.serialize_f64(*v),
            Value::Bool(v) => ser.serialize_bool(*v),
            Value::Array(items) => {
                let mut seq = ser.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Value::Table(entries) => {
                let mut map = ser.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A string as both JSON and TOML (basic string) read it.
pub(super) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A TOML key: bare where it can be.
pub(super) fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

/// Builds a table, leaving out the keys whose value is `None`.
#[derive(Default)]
pub(super) struct T(Vec<(String, Value)>);

impl T {
    pub(super) fn set(mut self, k: &str, v: Value) -> T {
        self.0.push((k.to_string(), v));
        self
    }

    pub(super) fn opt(self, k: &str, v: Option<Value>) -> T {
        match v {
            Some(v) => self.set(k, v),
            None => self,
        }
    }

    pub(super) fn done(self) -> Value {
        Value::Table(self.0)
    }
}
