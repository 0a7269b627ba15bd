//! The API's HTTP side (axum). Handlers turn requests into [`Command`]s for
//! the supervisor's event loop and its answers into responses; streams
//! (logs, events, exec output) are served here from the supervisor's
//! broadcasts and files, without holding up the loop.
//!
//! `auth.rs` decides who may call; `exec.rs` holds `POST .../exec`: its
//! streamed and interactive forms; `update.rs` apply, rollback and the
//! generations.

mod auth;
mod exec;
mod update;

use std::os::fd::OwnedFd;
use std::path::{Path as FsPath, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, Request as HttpRequest, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Command, ControlError, ErrorKind, Exec, Reply, Request};
use crate::supervisor::events::{self, Event};

use auth::check;
pub use auth::{Auth, Peer, Remote};
use exec::exec;
pub use exec::exit_code;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    pub tx: mpsc::UnboundedSender<Request>,
    /// `DATA/STACK/logs`: `NAME.log` and its rotations.
    pub logs_dir: PathBuf,
    /// The stack's file: `apply` replaces it, so only a caller who may
    /// write it may apply.
    pub stack_file: PathBuf,
}

/// The HTTP status of each kind of failure: the only place one is chosen.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict | ErrorKind::RolledBack | ErrorKind::ApplyFailed => {
            StatusCode::CONFLICT
        }
        ErrorKind::InvalidStack => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::CommandNotFound
        | ErrorKind::CommandNotExecutable
        | ErrorKind::ExecFailed
        | ErrorKind::Internal
        | ErrorKind::Http
        | ErrorKind::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (status_of(self.kind), Json(self)).into_response()
    }
}

/// Every route the API serves (method, path), as the OpenAPI file lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/containers"),
    ("get", "/v1/containers/{name}"),
    ("post", "/v1/containers/{name}/stop"),
    ("post", "/v1/containers/{name}/start"),
    ("post", "/v1/containers/{name}/restart"),
    ("get", "/v1/containers/{name}/logs"),
    ("post", "/v1/containers/{name}/exec"),
    ("get", "/v1/containers/{name}/diff"),
    ("get", "/v1/events"),
    ("post", "/v1/reload"),
    ("get", "/v1/plan"),
    ("post", "/v1/down"),
    ("post", "/v1/apply"),
    ("get", "/v1/generations"),
    ("post", "/v1/rollback"),
    ("get", "/metrics"),
];

/// The routes, for callers on the unix socket.
pub fn router(api: Api) -> Router {
    router_with(api, Auth::Peer)
}

/// The routes, with callers let in by `auth`.
pub fn router_with(api: Api, auth: Auth) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/containers", get(list))
        .route("/v1/containers/{name}", get(inspect))
        .route("/v1/containers/{name}/stop", post(stop))
        .route("/v1/containers/{name}/start", post(start))
        .route("/v1/containers/{name}/restart", post(restart))
        .route("/v1/containers/{name}/logs", get(logs_route))
        .route("/v1/containers/{name}/exec", post(exec))
        .route("/v1/containers/{name}/diff", get(diff))
        .route("/v1/events", get(events_route))
        .route("/v1/reload", post(reload))
        .route("/v1/plan", get(plan))
        .route("/v1/down", post(down))
        .route("/v1/apply", post(update::apply))
        .route("/v1/generations", get(update::generations))
        .route("/v1/rollback", post(update::rollback))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ControlError::new(ErrorKind::NotFound, "no such route (see api/openapi.yaml)")
        })
        .method_not_allowed_fallback(|| async {
            ControlError::new(
                ErrorKind::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(auth, check))
        .with_state(api)
}

/// Serves the API on `listener` until the runtime ends (see
/// [`super::conns`] for the limits on its connections).
pub async fn serve(listener: UnixListener, api: Api) {
    let app = router(api);
    let slots = super::conns::Slots::default();
    let mut warned = None;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                super::conns::accept_failed("API", &e, &mut warned).await;
                continue;
            }
        };
        // Over the limit: closed at once.
        let Some(slot) = slots.take() else { continue };
        let peer = match stream.peer_cred() {
            Ok(c) => Peer {
                uid: Some(c.uid()),
                gid: Some(c.gid()),
                pid: c.pid(),
            },
            Err(_) => Peer {
                uid: None,
                gid: None,
                pid: None,
            },
        };
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        super::conns::serve(stream, app, slot);
    }
}

/// Binds the stack's socket: a stale one (its supervisor died) is replaced,
/// a live one means the stack runs already. Mode 0660, group `rkstack`
/// where it exists. A std listener: [`control`] hands it to the runtime.
pub fn bind(path: &FsPath) -> std::io::Result<std::os::unix::net::UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{}: the stack is already running", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let gid = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|t| super::peer::group_gid(&t, super::peer::GROUP));
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, Some(0), Some(gid))?;
    }
    Ok(listener)
}

/// The supervisor's control channel fed by an API server on `listener`
/// (and over TLS on `tls`, when given).
pub fn control(
    listener: std::os::unix::net::UnixListener,
    logs_dir: PathBuf,
    stack_file: PathBuf,
    #[cfg(feature = "remote")] tls: Option<(std::net::TcpListener, super::remote::Listen)>,
) -> crate::supervisor::up::Control {
    let (tx, requests) = mpsc::unbounded_channel();
    let api = Api {
        tx,
        logs_dir,
        stack_file,
    };
    #[cfg(feature = "remote")]
    let remote = {
        let api = api.clone();
        async move {
            if let Some((l, listen)) = tls {
                match tokio::net::TcpListener::from_std(l) {
                    Ok(l) => super::remote::serve(l, listen, api).await,
                    Err(e) => tracing::error!("API over TLS: {e}"),
                }
            }
        }
    };
    #[cfg(not(feature = "remote"))]
    let remote = async {};
    let server = Box::pin(async move {
        let local = async move {
            match UnixListener::from_std(listener) {
                Ok(l) => serve(l, api).await,
                Err(e) => tracing::error!("API socket: {e}"),
            }
        };
        tokio::join!(local, remote);
    });
    crate::supervisor::up::Control { requests, server }
}

/// A query string, or 400 with the reason as an API error.
struct Q<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ControlError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Q(q))
            .map_err(|e| ControlError::bad_request(e.body_text()))
    }
}

async fn ask(api: &Api, command: Command) -> Result<Reply, ControlError> {
    let (reply, rx) = oneshot::channel();
    api.tx
        .send(Request { command, reply })
        .map_err(|_| ControlError::unavailable("the supervisor is shutting down"))?;
    rx.await
        .map_err(|_| ControlError::unavailable("the supervisor is shutting down"))?
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(bytes) => {
                ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            Reply::Metrics(m) => (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                super::metrics::render(&m),
            )
                .into_response(),
        }
    }
}

async fn answer(api: &Api, command: Command) -> Response {
    match ask(api, command).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn health(State(api): State<Api>) -> Response {
    answer(&api, Command::Health).await
}

async fn list(State(api): State<Api>) -> Response {
    answer(&api, Command::List).await
}

async fn inspect(State(api): State<Api>, Path(name): Path<String>) -> Response {
    answer(&api, Command::Inspect(name)).await
}

async fn stop(State(api): State<Api>, Path(name): Path<String>) -> Response {
    answer(&api, Command::Stop(name)).await
}

async fn start(State(api): State<Api>, Path(name): Path<String>) -> Response {
    answer(&api, Command::Start(name)).await
}

async fn restart(State(api): State<Api>, Path(name): Path<String>) -> Response {
    answer(&api, Command::Restart(name)).await
}

async fn diff(State(api): State<Api>, Path(name): Path<String>) -> Response {
    answer(&api, Command::Diff(name)).await
}

async fn reload(State(api): State<Api>) -> Response {
    answer(&api, Command::Reload).await
}

#[derive(Debug, Deserialize)]
struct PlanQuery {
    file: Option<PathBuf>,
}

async fn plan(
    State(api): State<Api>,
    peer: Option<axum::Extension<ConnectInfo<Peer>>>,
    Q(q): Q<PlanQuery>,
) -> Response {
    // A file is read by the supervisor (root) for a caller who may not be:
    // only one the caller could read itself (its errors quote it).
    if let (Some(file), Some(axum::Extension(ConnectInfo(p)))) = (&q.file, peer) {
        let caller =
            super::peer::Caller::of(p.uid.unwrap_or(u32::MAX), p.gid.unwrap_or(u32::MAX), p.pid);
        if !caller.may_read(file) {
            return ControlError::forbidden(format!(
                "{}: not readable by uid {} (the plan reads a file with the caller's rights)",
                file.display(),
                caller.uid
            ))
            .into_response();
        }
    }
    answer(&api, Command::Plan(q.file)).await
}

async fn down(State(api): State<Api>) -> Response {
    match ask(&api, Command::Down).await {
        Ok(r) => (StatusCode::ACCEPTED, r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    answer(&api, Command::Metrics).await
}

/// `1`, `true`, `yes` or an empty value.
fn truthy(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| matches!(v, "" | "1" | "true" | "yes"))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    follow: Option<String>,
    tail: Option<usize>,
    /// RFC 3339 (as the log lines' own timestamps): lines from then on.
    since: Option<String>,
}

fn ndjson_or_text(content_type: &'static str, rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn logs_route(
    State(api): State<Api>,
    Path(name): Path<String>,
    Q(q): Q<LogsQuery>,
) -> Response {
    if let Err(e) = ask(&api, Command::Inspect(name.clone())).await {
        return e.into_response();
    }
    let live = super::logs::subscribe(truthy(&q.follow));
    let files = super::logs::files(&api.logs_dir, &name);
    // Found by reading backwards from the end: the files are not read whole.
    let start = super::logs::tail_start(&files, q.tail);
    let (tx, rx) = mpsc::channel::<Bytes>(super::logs::QUEUE);
    tokio::spawn(async move {
        let last = super::logs::send_files(files, start, q.since, &tx).await;
        if let Some(live) = live {
            super::logs::follow(live, name, last, tx).await;
        }
    });
    ndjson_or_text("text/plain; charset=utf-8", rx)
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// Also the kept events after this sequence number (0: all kept).
    since: Option<u64>,
}

async fn events_route(Q(q): Q<EventsQuery>) -> Response {
    let mut live = events::subscribe();
    let backlog = q.since.map(events::since).unwrap_or_default();
    let mut seen = backlog.last().map_or(q.since.unwrap_or(0), |e| e.seq);
    if q.since.is_none() {
        seen = events::since(0).last().map_or(0, |e| e.seq);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let line = |e: &Event| {
        let mut v = serde_json::to_vec(e).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    };
    tokio::spawn(async move {
        for e in &backlog {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        loop {
            match live.recv().await {
                Ok(e) if e.seq > seen => {
                    seen = e.seq;
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    ndjson_or_text("application/x-ndjson", rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A stand-in for the event loop: answers every command at once.
    fn fake() -> Api {
        let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let answer = match r.command {
                    Command::Inspect(n)
                    | Command::Stop(n)
                    | Command::Start(n)
                    | Command::Restart(n)
                        if n == "nope" =>
                    {
                        Err(ControlError::no_container(&n))
                    }
                    Command::Reload => Err(ControlError::invalid(
                        "s.toml is not a valid stack file",
                        vec!["s.toml:3:9: bad".into()],
                    )),
                    Command::Metrics => Ok(Reply::Metrics(Box::new(crate::control::Metrics {
                        stack: "web".into(),
                        containers: Vec::new(),
                        reloads: 1,
                        last_reload_ok: true,
                    }))),
                    Command::Exec(e) => {
                        let _ = e.exit.send(3 << 8);
                        Reply::json(&serde_json::json!({ "pid": 1 }))
                    }
                    _ => Reply::json(&serde_json::json!({ "name": "web" })),
                };
                let _ = r.reply.send(answer);
            }
        });
        Api {
            tx,
            logs_dir: std::env::temp_dir().join("rkstack-no-logs"),
            stack_file: std::env::temp_dir().join("rkstack-no-stack.toml"),
        }
    }

    async fn call(method: &str, uri: &str, body: &str) -> (u16, String) {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = router_with(fake(), Auth::Verified)
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn openapi_routes() -> Vec<(String, String)> {
        let text = include_str!("../../../api/openapi.yaml");
        let mut out = Vec::new();
        let mut path = None;
        let mut in_paths = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                in_paths = line == "paths:";
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line.strip_prefix("  /") {
                path = Some(format!("/{}", p.trim_end_matches(':')));
            } else if let (Some(m), Some(p)) = (
                line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')),
                &path,
            ) && ["get", "post", "put", "delete", "patch"].contains(&m)
            {
                out.push((m.to_string(), p.clone()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_openapi_file_describes_exactly_the_routes_served() {
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(openapi_routes(), served);
    }

    #[tokio::test]
    async fn every_route_answers_and_errors_are_json() {
        for (method, path) in ROUTES {
            let uri = path.replace("{name}", "web");
            let body = if uri.ends_with("/exec") {
                r#"{"command":["true"]}"#
            } else {
                ""
            };
            let uri = if uri.ends_with("/events") || uri.ends_with("/logs") {
                // Streams: ask for what is kept only, so the answer ends.
                continue;
            } else {
                uri
            };
            let (status, text) = call(&method.to_uppercase(), &uri, body).await;
            let expected = match *path {
                "/v1/reload" => 422,
                "/v1/down" => 202,
                _ => 200,
            };
            assert_eq!(status, expected, "{method} {uri}: {text}");
        }
        let (s, t) = call("GET", "/v1/nothing", "").await;
        assert_eq!(s, 404);
        assert!(t.contains(r#""kind":"not_found""#), "{t}");
        let (s, t) = call("DELETE", "/v1/containers", "").await;
        assert_eq!(s, 405, "{t}");
        assert!(t.contains("method_not_allowed"));
        let (s, t) = call("GET", "/v1/containers/nope", "").await;
        assert_eq!(s, 404);
        assert!(t.contains("no container named nope"), "{t}");
        let (s, t) = call("POST", "/v1/containers/web/exec", "{not json").await;
        assert_eq!(s, 400, "{t}");
        assert!(t.contains(r#""kind":"bad_request""#), "{t}");
        let (s, _) = call("POST", "/v1/containers/web/exec", r#"{"command":[]}"#).await;
        assert_eq!(s, 400);
        let (s, t) = call("POST", "/v1/reload", "").await;
        assert_eq!(s, 422);
        assert!(t.contains(r#""problems":["s.toml:3:9: bad"]"#), "{t}");
        let (_, t) = call("POST", "/v1/containers/web/exec", r#"{"command":["x"]}"#).await;
        assert!(t.trim_end().ends_with(r#"{"exit":3}"#), "{t}");
        let (s, t) = call("GET", "/metrics", "").await;
        assert_eq!(s, 200);
        assert!(
            t.contains("\nrkstack_reloads_total{stack=\"web\"} 1\n"),
            "{t}"
        );
        let (s, _) = call("GET", "/v1/events?since=x", "").await;
        assert_eq!(s, 400);
    }
}
