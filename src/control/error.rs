//! Why a request was not done, in the request vocabulary's own words: a
//! kind and a message, no transport. `api/` alone gives each kind its
//! HTTP status; the CLI reads the kind back from the answer.

use serde::{Deserialize, Serialize};

/// What went wrong with a request, as a word a program can match on (the
/// `kind` of the API's error answers, listed in `api/openapi.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is malformed (a body, a parameter).
    BadRequest,
    /// No valid credential came with it.
    Unauthorized,
    /// The caller may not ask this.
    Forbidden,
    /// No such container (or route).
    NotFound,
    /// A route that does not take this method.
    MethodNotAllowed,
    /// The stack is not in a state that allows it (stopping, not running,
    /// a renamed stack, a port in use).
    Conflict,
    /// A stack file that does not validate; the problems say where.
    InvalidStack,
    /// `exec` of a command the container does not have (exit 127).
    CommandNotFound,
    /// `exec` of a file that cannot run (exit 126).
    CommandNotExecutable,
    /// `exec` failed otherwise.
    ExecFailed,
    /// An applied generation failed its health gate; the last committed
    /// one runs again (the error says why).
    RolledBack,
    /// An applied generation failed its health gate and was kept (no
    /// rollback asked for, or none possible).
    ApplyFailed,
    /// rkstack failed at something it should not have.
    Internal,
    /// The supervisor is going away.
    Unavailable,
    /// An answer that was not rkstack's (a proxy's page, a broken body).
    Http,
    /// A kind this build does not know (a newer supervisor's).
    #[serde(other)]
    Unknown,
}

/// A request's failure: `{ "error": ..., "kind": ..., "problems": [...] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ControlError {
    pub kind: ErrorKind,
    pub error: String,
    /// Each problem of an invalid stack file, as `FILE:LINE:COL: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ControlError {
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> ControlError {
        ControlError {
            kind,
            error: error.into(),
            problems: Vec::new(),
        }
    }

    pub fn no_container(name: &str) -> ControlError {
        ControlError::new(
            ErrorKind::NotFound,
            format!("no container named {name} in this stack"),
        )
    }

    pub fn bad_request(error: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::BadRequest, error)
    }

    pub fn forbidden(error: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Forbidden, error)
    }

    pub fn conflict(error: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Conflict, error)
    }

    /// A stack file that does not validate, with its problems.
    pub fn invalid(error: impl Into<String>, problems: Vec<String>) -> ControlError {
        ControlError {
            problems,
            ..ControlError::new(ErrorKind::InvalidStack, error)
        }
    }

    pub fn internal(error: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Internal, error)
    }

    pub fn unavailable(error: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Unavailable, error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_wire_form_names_the_kind_in_snake_case_and_keeps_unknown_ones_readable() {
        let e = ControlError::invalid("bad file", vec!["s.toml:1:1: x".into()]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "invalid_stack");
        assert_eq!(v["problems"][0], "s.toml:1:1: x");
        let newer: ControlError =
            serde_json::from_str(r#"{"kind":"quota_exceeded","error":"too many"}"#).unwrap();
        assert_eq!(newer.kind, ErrorKind::Unknown);
        assert_eq!(newer.to_string(), "too many");
    }
}
