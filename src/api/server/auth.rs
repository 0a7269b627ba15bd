//! Who may call the API: on the unix socket the peer's credentials (root
//! or the `rkstack` group), over TLS a verified client certificate or a
//! bearer token compared in constant time.

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request as HttpRequest, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::super::{ControlError, ErrorKind};

/// The peer of a connection, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
}

/// Who may call: what the transport established.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The unix socket: the peer's credentials decide (root or the group).
    Peer,
    /// TCP with TLS: a bearer token is required (and a client certificate
    /// too, when the server asks for one at the handshake).
    Token(String),
    /// TCP with TLS: the client certificate was verified at the handshake.
    Verified,
}

/// The remote address of a TCP client (for the log).
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub std::net::SocketAddr);

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) async fn check(State(auth): State<Auth>, req: HttpRequest, next: Next) -> Response {
    match &auth {
        Auth::Verified => {}
        Auth::Token(token) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
                let from = req.extensions().get::<Remote>().map(|r| r.0.to_string());
                tracing::warn!(
                    "API request refused: no valid bearer token (from {})",
                    from.as_deref().unwrap_or("?")
                );
                return ControlError::new(
                    ErrorKind::Unauthorized,
                    "a valid bearer token is required",
                )
                .into_response();
            }
        }
        Auth::Peer => {
            let peer = req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0);
            let ok = match peer {
                Some(Peer {
                    uid: Some(uid),
                    gid: Some(gid),
                    pid,
                }) => super::super::peer::allowed_peer(uid, gid, pid),
                _ => false,
            };
            if !ok {
                tracing::warn!(
                    ?peer,
                    "API request refused: not root nor in the rkstack group"
                );
                return ControlError::forbidden(format!(
                    "only root and members of the {} group may use this API",
                    super::super::peer::GROUP
                ))
                .into_response();
            }
        }
    }
    next.run(req).await
}
