//! The control API: HTTP/1.1 + JSON on the stack's unix socket
//! (`STATE/STACK.sock`). `server` runs on the supervisor's own thread (a
//! current-thread tokio runtime that the event loop drives), so the
//! supervisor stays single-threaded; each request becomes a control
//! [`Command`] handed to the event loop with a reply channel — the same
//! vocabulary the stack file and signals produce. `client` is the CLI's side.

pub mod client;
pub mod conns;
pub mod logs;
pub mod metrics;
pub mod peer;
#[cfg(feature = "remote")]
pub mod remote;
pub mod server;
pub mod tty;

pub use crate::control::{Command, ContainerInfo, ControlError, ErrorKind, Exec, Reply, Request};
