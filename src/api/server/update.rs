//! `POST /v1/apply`, `GET /v1/generations`, `POST /v1/rollback`: new
//! versions of the stack behind a health gate, and its history.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApplyQuery {
    /// How long created and recreated containers have to become ready.
    timeout: Option<String>,
    /// How long they must then stay ready.
    stable: Option<String>,
    /// `false`: a failure is recorded and the stack kept as it is.
    rollback: Option<bool>,
}

fn duration(v: Option<String>, what: &str) -> Result<Option<std::time::Duration>, ControlError> {
    v.map(|s| {
        crate::config::Duration::parse(&s)
            .map(|d| d.0)
            .map_err(|e| ControlError::bad_request(format!("{what}: {e}")))
    })
    .transpose()
}

/// The body is the stack file itself. Answered once the new generation is
/// committed (200) or rolled back (409, kind `rolled_back`).
pub(super) async fn apply(
    State(api): State<Api>,
    peer: Option<axum::Extension<ConnectInfo<Peer>>>,
    Q(q): Q<ApplyQuery>,
    req: HttpRequest,
) -> Response {
    // It replaces the stack's file (and so what runs, as root): on the
    // unix socket, only for a caller who may write that file itself.
    if let Some(axum::Extension(ConnectInfo(p))) = peer {
        let caller = crate::api::peer::Caller::of(
            p.uid.unwrap_or(u32::MAX),
            p.gid.unwrap_or(u32::MAX),
            p.pid,
        );
        if !caller.may_write(&api.stack_file) {
            return ControlError::forbidden(format!(
                "apply replaces {}, which uid {} may not write",
                api.stack_file.display(),
                caller.uid
            ))
            .into_response();
        }
    }
    let limit = crate::config::MAX_FILE_BYTES as usize;
    let bytes = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => {
            return ControlError::bad_request(format!(
                "body: {e} (a stack file is at most {} MiB)",
                limit >> 20
            ))
            .into_response();
        }
    };
    let Ok(text) = String::from_utf8(bytes.to_vec()) else {
        return ControlError::bad_request("body: the stack file is not UTF-8").into_response();
    };
    let parsed = (|| {
        Ok::<_, ControlError>(crate::control::Apply {
            text,
            timeout: duration(q.timeout, "timeout")?,
            stable: duration(q.stable, "stable")?,
            rollback: q.rollback,
        })
    })();
    match parsed {
        Ok(a) => answer(&api, Command::Apply(a)).await,
        Err(e) => e.into_response(),
    }
}

pub(super) async fn generations(State(api): State<Api>) -> Response {
    answer(&api, Command::Generations).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackQuery {
    generation: Option<u64>,
}

pub(super) async fn rollback(State(api): State<Api>, Q(q): Q<RollbackQuery>) -> Response {
    answer(&api, Command::Rollback(q.generation)).await
}
