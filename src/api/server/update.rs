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
    let is_bundle = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(BUNDLE));
    if is_bundle {
        return apply_bundle(api, q, req).await;
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
            bundle: None,
        })
    })();
    match parsed {
        Ok(a) => answer(&api, Command::Apply(a)).await,
        Err(e) => e.into_response(),
    }
}

use crate::image::bundle::CONTENT_TYPE as BUNDLE;

/// A bundle in the body: streamed to a file beside the stack's logs (never
/// held in memory), then taken in and applied by the supervisor.
async fn apply_bundle(api: Api, q: ApplyQuery, req: HttpRequest) -> Response {
    use http_body_util::BodyExt;
    use std::io::Write;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = api
        .logs_dir
        .parent()
        .map(FsPath::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(format!(
        ".upload-{}-{}.rkb",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let written = async {
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::File::create(&path)?;
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(std::io::Error::other)?;
            if let Some(data) = frame.data_ref() {
                f.write_all(data)?;
            }
        }
        f.sync_all()
    }
    .await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return ControlError::bad_request(format!("bundle upload: {e}")).into_response();
    }
    let parsed = (|| {
        Ok::<_, ControlError>(crate::control::Apply {
            text: String::new(),
            timeout: duration(q.timeout.clone(), "timeout")?,
            stable: duration(q.stable.clone(), "stable")?,
            rollback: q.rollback,
            bundle: Some(path.clone()),
        })
    })();
    let answer = match parsed {
        Ok(a) => answer(&api, Command::Apply(a)).await,
        Err(e) => e.into_response(),
    };
    let _ = std::fs::remove_file(&path);
    answer
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
