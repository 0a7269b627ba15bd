//! The request vocabulary: what the API, the CLI (through it) or anything
//! else may ask of a running supervisor, each with the channel its answer
//! goes back on, what the answers are made of and how a request fails.
//! No transport and no OS here: the supervisor's event loop receives these
//! beside child exits, signals and file changes; `api/` alone turns HTTP
//! into them and them into HTTP (statuses included).

mod error;
mod model;

pub use error::{ControlError, ErrorKind};
pub use model::{ContainerInfo, ContainerMetrics, ContainerState, Exit, Health, Metrics};

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
    /// A new version of the stack file, applied behind a health gate.
    Apply(Apply),
    /// Back to a generation (the last committed before the running one
    /// when `None`).
    Rollback(Option<u64>),
    /// The stack's generations.
    Generations,
}

/// `apply`: the file's text and how it is gated (`None`: the file's
/// `[update]` says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub text: String,
    pub timeout: Option<std::time::Duration>,
    pub stable: Option<std::time::Duration>,
    /// `Some(false)`: a failure is recorded, not rolled back.
    pub rollback: Option<bool>,
    /// A bundle (uploaded to this file) to take in first: `text` is then
    /// its stack file once it is checked and its images are in the store.
    pub bundle: Option<PathBuf>,
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
                | Command::Generations
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
    /// A terminal of the container's own (rows, cols): stdin is then a
    /// unix socket its master is sent back on, and the process gets the
    /// terminal as stdin, stdout, stderr and controlling terminal.
    pub terminal: Option<(u16, u16)>,
    /// Its wait status when it ends.
    pub exit: oneshot::Sender<i32>,
}

/// A command with the channel its answer goes back on.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Reply, ControlError>>,
}

/// An answer: JSON text, or the figures of the metrics (`api/` writes
/// their text).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Json(Vec<u8>),
    Metrics(Box<Metrics>),
}

impl Reply {
    /// `v` as JSON.
    pub fn json<T: Serialize + ?Sized>(v: &T) -> Result<Reply, ControlError> {
        serde_json::to_vec(v)
            .map(Reply::Json)
            .map_err(|e| ControlError::internal(e.to_string()))
    }
}
