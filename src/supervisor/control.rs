//! Control requests: what the API (or anything else) may ask of a running
//! supervisor, each with the channel its answer goes back on. The
//! supervisor's event loop receives them beside child exits, signals and
//! file changes; `api/` turns HTTP into these and these into HTTP.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::oneshot;

/// What a request asks of the supervisor.
#[derive(Debug)]
pub enum Command {
    Health,
    List,
    Inspect(String),
    Stop(String),
    Start(String),
    Restart(String),
    Reload,
    /// The plan for this file (the stack's own file when `None`) against
    /// what runs.
    Plan(Option<PathBuf>),
    Down,
    Metrics,
    Exec(Exec),
    /// What a container changed in its writable layer.
    Diff(String),
}

impl Command {
    /// Whether it only asks and changes nothing.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Health
                | Command::List
                | Command::Inspect(_)
                | Command::Plan(_)
                | Command::Metrics
                | Command::Diff(_)
        )
    }
}

/// A process to run inside a running container.
#[derive(Debug)]
pub struct Exec {
    pub container: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    /// stdin, stdout, stderr of the process.
    pub stdio: [OwnedFd; 3],
    /// stdin is a terminal, to become its controlling terminal.
    pub terminal: bool,
    /// Its wait status when it ends.
    pub exit: oneshot::Sender<i32>,
}

/// A command with the channel its answer goes back on.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Reply, ApiError>>,
}

/// An answer, ready to send: JSON text, or plain text (metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Json(Vec<u8>),
    Text(String),
}

impl Reply {
    /// `v` as JSON.
    pub fn json<T: Serialize + ?Sized>(v: &T) -> Result<Reply, ApiError> {
        serde_json::to_vec(v)
            .map(Reply::Json)
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// An error as the API reports it: `{ "error": ..., "kind": ... }` with an
/// HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub error: String,
    pub kind: String,
    /// Each problem of an invalid stack file, as `FILE:LINE:COL: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, kind: &str, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            kind: kind.into(),
            problems: Vec::new(),
        }
    }

    pub fn no_container(name: &str) -> ApiError {
        ApiError::new(
            404,
            "not_found",
            format!("no container named {name} in this stack"),
        )
    }

    pub fn bad_request(error: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", error)
    }

    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(409, "conflict", error)
    }

    /// A stack file that does not validate (422), with its problems.
    pub fn invalid(error: impl Into<String>, problems: Vec<String>) -> ApiError {
        ApiError {
            problems,
            ..ApiError::new(422, "invalid_stack", error)
        }
    }

    pub fn internal(error: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", error)
    }

    pub fn unavailable(error: impl Into<String>) -> ApiError {
        ApiError::new(503, "unavailable", error)
    }
}

/// One container as `GET /v1/containers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    /// `waiting | running | backoff | exited | failed | stopped`.
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    /// `starting | healthy | unhealthy`, for containers with a health check.
    pub health: Option<String>,
    /// Seconds since this run started.
    pub uptime_seconds: Option<u64>,
    /// Its address on each network.
    pub ips: std::collections::BTreeMap<String, std::net::IpAddr>,
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub pids: Option<u64>,
    /// How its last run ended: `exited 1`, `killed by SIGKILL`, ...
    pub last_exit: Option<String>,
    /// Why it is failed or could not start.
    pub error: Option<String>,
    /// Held stopped by a user's `stop`.
    pub user_stopped: bool,
}
