//! The CLI's side of the API: HTTP/1.1 over the stack's unix socket
//! (hyper), one request per connection, blocking for the caller.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{ControlError, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no stack named {stack} is running (looked in {dir})")]
    NotRunning { stack: String, dir: String },
    #[error("no stack is running (looked in {0})")]
    NoneRunning(String),
    #[error("several stacks are running ({0}); say which with --stack NAME")]
    Several(String),
    #[error("{path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor's answer broke off: {0}")]
    Http(String),
    #[error("{0}")]
    Api(ControlError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The socket to talk to: `--socket`, or `--stack`'s, or the one stack running.
pub fn resolve(
    state_dir: &Path,
    stack: Option<&str>,
    socket: Option<&Path>,
) -> Result<PathBuf, ClientError> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    let running = crate::host::stacks::running(state_dir);
    let dir = state_dir.display().to_string();
    match stack {
        Some(name) => {
            if running.iter().any(|r| r.name == name) {
                Ok(state_dir.join(format!("{name}.sock")))
            } else {
                Err(ClientError::NotRunning {
                    stack: name.to_string(),
                    dir,
                })
            }
        }
        None => match running.as_slice() {
            [] => Err(ClientError::NoneRunning(dir)),
            [one] => Ok(state_dir.join(format!("{}.sock", one.name))),
            many => Err(ClientError::Several(
                many.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        },
    }
}

#[derive(Debug)]
enum Transport {
    Unix(PathBuf),
    #[cfg(feature = "remote")]
    Tls(super::remote::Remote),
}

/// A client of one supervisor.
#[derive(Debug)]
pub struct Client {
    transport: Transport,
    rt: tokio::runtime::Runtime,
}

/// A request's body: bytes at hand, or a file streamed (a bundle).
type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

type Sender = hyper::client::conn::http1::SendRequest<Body>;

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A file sent as it is read, 256 KiB at a time: never in memory whole.
struct FileBody(std::fs::File);

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use std::io::Read;
        let mut buf = vec![0u8; 256 << 10];
        std::task::Poll::Ready(match self.0.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(http_body::Frame::data(Bytes::from(buf))))
            }
            Err(e) => Some(Err(e)),
        })
    }
}

fn broke(e: impl std::fmt::Display) -> ClientError {
    ClientError::Http(e.to_string())
}

impl Client {
    /// A client of the supervisor on this unix socket.
    pub fn new(socket: PathBuf) -> Result<Client, ClientError> {
        Client::with(Transport::Unix(socket))
    }

    /// A client of a remote supervisor, over TLS.
    #[cfg(feature = "remote")]
    pub fn remote(r: super::remote::Remote) -> Result<Client, ClientError> {
        Client::with(Transport::Tls(r))
    }

    fn with(transport: Transport) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Client { transport, rt })
    }

    /// A connection, ready for one request; the token to send, if any.
    async fn connect(&self) -> Result<(Sender, Option<&str>), ClientError> {
        match &self.transport {
            Transport::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|source| ClientError::Connect {
                        path: path.display().to_string(),
                        source,
                    })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(broke)?;
                tokio::spawn(conn.with_upgrades());
                Ok((sender, None))
            }
            #[cfg(feature = "remote")]
            Transport::Tls(r) => {
                let connect = |source| ClientError::Connect {
                    path: r.addr.clone(),
                    source,
                };
                let tcp = tokio::net::TcpStream::connect(&r.addr)
                    .await
                    .map_err(connect)?;
                let tls = tokio_rustls::TlsConnector::from(r.config.clone())
                    .connect(r.name.clone(), tcp)
                    .await
                    .map_err(connect)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(broke)?;
                tokio::spawn(conn.with_upgrades());
                Ok((sender, r.token.as_deref()))
            }
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let body = body.map(|b| {
            (
                "application/json",
                serde_json::to_vec(b).unwrap_or_default(),
            )
        });
        self.send_bytes(method, path, body).await
    }

    /// A request with a body of its own type (a stack file for `apply`).
    async fn send_bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let (mut sender, token) = self.connect().await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "rkstack");
        let bytes = match body {
            Some((kind, b)) => {
                req = req.header("content-type", kind);
                b
            }
            None => Vec::new(),
        };
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(full(bytes))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(error_of(resp).await)
    }

    /// An interactive `exec` on a terminal (see [`super::tty`]): input from
    /// this process's stdin, output to its stdout, the window's size from
    /// `window` (looked at four times a second, sent when it changed); the
    /// exit code.
    pub fn exec_tty(
        &self,
        name: &str,
        mut body: serde_json::Value,
        window: fn() -> (u16, u16),
    ) -> Result<i32, ClientError> {
        use tokio::io::AsyncWriteExt;
        body["frames"] = serde_json::Value::Bool(true);
        self.rt.block_on(async {
            let (mut sender, token) = self.connect().await?;
            let mut req = hyper::Request::builder()
                .method("POST")
                .uri(format!("/v1/containers/{name}/exec"))
                .header("host", "rkstack")
                .header("content-type", "application/json")
                .header("connection", "upgrade")
                .header("upgrade", super::tty::PROTOCOL);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req
                .body(full(serde_json::to_vec(&body).unwrap_or_default()))
                .map_err(broke)?;
            let resp = sender.send_request(req).await.map_err(broke)?;
            if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                return Err(error_of(resp).await);
            }
            let io = TokioIo::new(hyper::upgrade::on(resp).await.map_err(broke)?);
            let (mut rd, mut wr) = tokio::io::split(io);
            // Input: a thread reads stdin (blocking), a task sends it and
            // the window's size; this loop only reads frames (a read that
            // is never cut off half-way).
            let (tx, mut input) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 1024];
                loop {
                    match std::io::stdin().read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            let sending = tokio::spawn(async move {
                let mut size = window();
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
                loop {
                    let bytes = tokio::select! {
                        chunk = input.recv() => match chunk {
                            Some(c) => super::tty::frame(super::tty::INPUT, &c),
                            None => return,
                        },
                        _ = tick.tick() => {
                            let now = window();
                            if now == size {
                                continue;
                            }
                            size = now;
                            let mut p = now.0.to_be_bytes().to_vec();
                            p.extend(now.1.to_be_bytes());
                            super::tty::frame(super::tty::RESIZE, &p)
                        }
                    };
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
            let end = loop {
                match super::tty::read_frame(&mut rd).await {
                    Ok(Some((super::tty::OUTPUT, data))) => {
                        use std::io::Write;
                        let mut out = std::io::stdout();
                        if let Err(e) = out.write_all(&data).and_then(|_| out.flush()) {
                            break Err(e.into());
                        }
                    }
                    Ok(Some((super::tty::EXIT, p))) if p.len() == 4 => {
                        break Ok(i32::from_be_bytes([p[0], p[1], p[2], p[3]]));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break Err(broke("the session ended without an exit status")),
                    Err(e) => break Err(e.into()),
                }
            };
            sending.abort();
            end
        })
    }
}

/// The error a failed answer carries.
async fn error_of(resp: hyper::Response<hyper::body::Incoming>) -> ClientError {
    {
        let status = resp.status().as_u16();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return broke(e),
        };
        let err: ControlError = serde_json::from_slice(&body).unwrap_or_else(|_| {
            ControlError::new(
                ErrorKind::Http,
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            )
        });
        ClientError::Api(err)
    }
}

impl Client {
    /// One request; the whole JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = body.map(|b| {
            (
                "application/json",
                serde_json::to_vec(&b).unwrap_or_default(),
            )
        });
        self.call_bytes(method, path, body)
    }

    /// A POST of the file at `file` (type `content_type`), streamed; the
    /// JSON answer.
    pub fn upload(
        &self,
        path: &str,
        content_type: &str,
        file: &Path,
    ) -> Result<serde_json::Value, ClientError> {
        let f = std::fs::File::open(file)
            .map_err(|e| ClientError::Http(format!("{}: {e}", file.display())))?;
        self.rt.block_on(async {
            let (mut sender, token) = self.connect().await?;
            let mut req = hyper::Request::builder()
                .method("POST")
                .uri(path)
                .header("host", "rkstack")
                .header("content-type", content_type);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let req = req.body(FileBody(f).boxed_unsync()).map_err(broke)?;
            let resp = sender.send_request(req).await.map_err(broke)?;
            if !resp.status().is_success() {
                return Err(error_of(resp).await);
            }
            let bytes = resp.into_body().collect().await.map_err(broke)?.to_bytes();
            serde_json::from_slice(&bytes).map_err(|e| broke(format!("unexpected answer: {e}")))
        })
    }

    /// One request with `body` of type `content_type`; the JSON answer.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_bytes(method, path, Some((content_type, body)))
    }

    fn call_bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<serde_json::Value, ClientError> {
        self.rt.block_on(async {
            let resp = self.send_bytes(method, path, body).await?;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            if bytes.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_slice(&bytes).or_else(|_| {
                Ok(serde_json::Value::String(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ))
            })
        })
    }

    /// One request whose answer is a stream: `each` gets every chunk as it
    /// comes, until the stream ends or `each` says stop (false).
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        each: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        self.rt.block_on(async {
            let resp = self.send(method, path, body.as_ref()).await?;
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ClientError::Http(e.to_string()))?;
                if let Some(data) = frame.data_ref()
                    && !each(data)
                {
                    break;
                }
            }
            Ok(())
        })
    }
}

impl Client {
    /// Several streaming requests at once (`GET` of each path): `each`
    /// gets every chunk with the index of its path, as chunks come from
    /// any of them, until all have ended or `each` says stop (false).
    pub fn stream_many(
        &self,
        paths: &[String],
        each: &mut dyn FnMut(usize, &[u8]) -> bool,
    ) -> Result<(), ClientError> {
        self.rt.block_on(async {
            let (tx, mut rx) =
                tokio::sync::mpsc::channel::<(usize, Result<Bytes, ClientError>)>(16);
            let streams: Vec<_> = paths
                .iter()
                .enumerate()
                .map(|(i, path)| {
                    let tx = tx.clone();
                    async move {
                        let resp = match self.send("GET", path, None).await {
                            Ok(r) => r,
                            Err(e) => {
                                let _ = tx.send((i, Err(e))).await;
                                return;
                            }
                        };
                        let mut body = resp.into_body();
                        while let Some(frame) = body.frame().await {
                            let item = match frame {
                                Ok(f) => match f.into_data() {
                                    Ok(data) => Ok(data),
                                    Err(_) => continue,
                                },
                                Err(e) => Err(ClientError::Http(e.to_string())),
                            };
                            let failed = item.is_err();
                            if tx.send((i, item)).await.is_err() || failed {
                                return;
                            }
                        }
                    }
                })
                .collect();
            drop(tx);
            let all = futures_util::future::join_all(streams);
            let read = async {
                while let Some((i, item)) = rx.recv().await {
                    if !each(i, &item?) {
                        return Ok(());
                    }
                }
                Ok(())
            };
            tokio::pin!(all);
            tokio::select! {
                r = read => r,
                _ = &mut all => {
                    // Every stream ended: what they sent is still queued.
                    while let Ok((i, item)) = rx.try_recv() {
                        if !each(i, &item?) {
                            break;
                        }
                    }
                    Ok(())
                }
            }
        })
    }
}

/// Splits a byte stream into lines across chunks.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The whole lines completed by `chunk` (without their newline).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_whole_across_chunks() {
        let mut l = Lines::default();
        assert!(l.feed(b"ab").is_empty());
        assert_eq!(l.feed(b"c\nde\nf"), vec!["abc", "de"]);
        assert_eq!(l.feed(b"\n"), vec!["f"]);
    }

    #[test]
    fn the_socket_is_the_one_asked_for_or_the_only_running_stack() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(dir.path(), None, Some(Path::new("/x.sock"))).unwrap(),
            PathBuf::from("/x.sock")
        );
        let e = resolve(dir.path(), Some("web"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no stack named web is running (looked in {})",
                dir.path().display()
            )
        );
        assert!(matches!(
            resolve(dir.path(), None, None),
            Err(ClientError::NoneRunning(_))
        ));
    }
}
