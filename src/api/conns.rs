//! The connections of the API's servers (unix socket and TLS): at most
//! [`MAX_CONNS`] at a time (more are closed at once), a connection idle
//! or sending its headers slowly closed after [`idle_timeout`], and an
//! accept that fails (descriptors ran out) waited out instead of spun on.
//! A flood of idle clients can then neither hold the supervisor's
//! descriptors nor its memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections served at once, per server.
pub const MAX_CONNS: usize = 256;

/// How long a connection may wait for its next request's headers (idle
/// keep-alive included): `RKSTACK_API_IDLE_SECS`, default 30.
pub fn idle_timeout() -> Duration {
    let secs = std::env::var("RKSTACK_API_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// The connection slots of one server.
#[derive(Debug, Clone)]
pub struct Slots(Arc<Semaphore>);

impl Default for Slots {
    fn default() -> Self {
        Slots(Arc::new(Semaphore::new(MAX_CONNS)))
    }
}

impl Slots {
    /// A slot for a new connection, if one is free.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// After a failed accept: a pause (the connection waits in the backlog),
/// and a warning at most once a minute.
pub async fn accept_failed(
    server: &str,
    e: &std::io::Error,
    last: &mut Option<std::time::Instant>,
) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        tracing::warn!("{server}: accept: {e}; retrying");
        *last = Some(std::time::Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serves one connection with `app` in a task of its own, holding `slot`
/// until it closes.
pub fn serve<I>(io: I, app: axum::Router, slot: OwnedSemaphorePermit)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _slot = slot;
        let svc = hyper_util::service::TowerToHyperService::new(app);
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(idle_timeout())
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
            .with_upgrades()
            .await;
    });
}
