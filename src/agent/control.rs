//! The control socket: how CLI commands reach a running daemon (sled allows one process per store).
//!
//! A Unix stream socket beside the store, owner-only (0600). Each connection carries one request
//! as a JSON line; the daemon answers with any number of `progress` lines and then exactly one
//! `done` or `error` line. A CLI that finds no socket, or a socket nobody listens on, concludes no
//! daemon runs and opens the store itself.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::domain::UserKey;

/// Largest request line accepted; a request is a few hundred bytes, so anything bigger is garbage.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What a CLI asks the daemon to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Status,
    Sync {
        force_refresh: bool,
        door: Option<String>,
        /// `sync --confirm-removals`: apply the removals the mass-removal guard holds.
        #[serde(default)]
        confirm_removals: bool,
    },
    Revoke {
        key: UserKey,
    },
    /// `doorsync explain`: why this person is (not) on each door (or only `door`).
    Explain {
        key: UserKey,
        door: Option<String>,
    },
    ModifyUser {
        identity_id: String,
        name: Option<String>,
        ext_info: Option<String>,
    },
}

/// One line of the daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    Progress(Progress),
    Done { result: serde_json::Value },
    Error { message: String },
}

/// Progress of long work, streamed to the CLI while the daemon works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub message: String,
    pub done: u64,
    pub total: u64,
}

/// The daemon side: answers one request, sending progress on the way.
#[async_trait::async_trait]
pub(crate) trait ControlHandler: Send + Sync + 'static {
    async fn handle(&self, request: Request, progress: mpsc::Sender<Progress>) -> Result<serde_json::Value, String>;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("another doorsync daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the daemon closed the connection before answering")]
    NoAnswer,
    #[error("the daemon sent an unreadable answer: {0}")]
    BadAnswer(String),
    #[error("the daemon refused the request: {0}")]
    Refused(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ControlError + '_ {
    move |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the socket at `path`, owner-only. A stale socket left by a killed daemon is replaced;
/// a live one means another daemon owns the store.
pub(crate) async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    Ok(listener)
}

/// Serves one accepted connection: read the request line, run the handler, stream the replies.
pub(crate) async fn serve_connection(stream: UnixStream, handler: Arc<dyn ControlHandler>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES as u64);
    let mut line = String::new();
    let request = match reader.read_line(&mut line).await {
        Ok(0) => return,
        Ok(_) => serde_json::from_str::<Request>(&line).map_err(|e| format!("unreadable request: {e}")),
        Err(e) => Err(format!("reading request: {e}")),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            let _ = write_reply(&mut write, &Reply::Error { message }).await;
            return;
        }
    };
    tracing::info!(?request, "control request");
    let (tx, mut rx) = mpsc::channel::<Progress>(64);
    let work = handler.handle(request, tx);
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            Some(p) = rx.recv() => {
                // A CLI that went away must not stop the daemon's work; ignore write errors.
                let _ = write_reply(&mut write, &Reply::Progress(p)).await;
            }
        }
    };
    while let Ok(p) = rx.try_recv() {
        let _ = write_reply(&mut write, &Reply::Progress(p)).await;
    }
    let last = match result {
        Ok(result) => Reply::Done { result },
        Err(message) => Reply::Error { message },
    };
    let _ = write_reply(&mut write, &last).await;
}

async fn write_reply(write: &mut (impl AsyncWriteExt + Unpin), reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// Connects to a running daemon, or `Ok(None)` when none listens at `path`.
pub async fn connect(path: &Path) -> Result<Option<UnixStream>, ControlError> {
    match UnixStream::connect(path).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => Ok(None),
        Err(e) => Err(ControlError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Sends `request` over `stream` and waits for the final answer, passing progress to `on_progress`.
pub async fn call(
    stream: UnixStream,
    request: &Request,
    mut on_progress: impl FnMut(&Progress),
) -> Result<serde_json::Value, ControlError> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| ControlError::Io {
        path: PathBuf::from("<socket>"),
        source: e,
    })?;
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| ControlError::Io {
                path: PathBuf::from("<socket>"),
                source: e,
            })?
            .ok_or(ControlError::NoAnswer)?;
        match serde_json::from_str::<Reply>(&line).map_err(|e| ControlError::BadAnswer(e.to_string()))? {
            Reply::Progress(p) => on_progress(&p),
            Reply::Done { result } => return Ok(result),
            Reply::Error { message } => return Err(ControlError::Refused(message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Echo;

    #[async_trait::async_trait]
    impl ControlHandler for Echo {
        async fn handle(
            &self,
            request: Request,
            progress: mpsc::Sender<Progress>,
        ) -> Result<serde_json::Value, String> {
            match request {
                Request::Status => {
                    for done in 1..=3 {
                        let _ = progress
                            .send(Progress {
                                message: "step".into(),
                                done,
                                total: 3,
                            })
                            .await;
                    }
                    Ok(serde_json::json!({"users": 7}))
                }
                other => Err(format!("not here: {other:?}")),
            }
        }
    }

    async fn serve_once(listener: UnixListener) {
        let (stream, _) = listener.accept().await.unwrap();
        serve_connection(stream, Arc::new(Echo)).await;
    }

    #[tokio::test]
    async fn a_request_streams_progress_then_one_result_over_an_owner_only_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doorsync.sock");
        let listener = bind(&path).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let server = tokio::spawn(serve_once(listener));
        let stream = connect(&path).await.unwrap().expect("daemon listening");
        let mut seen = Vec::new();
        let result = call(stream, &Request::Status, |p| seen.push(p.done)).await.unwrap();
        assert_eq!(result, serde_json::json!({"users": 7}));
        assert_eq!(seen, vec![1, 2, 3]);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn handler_errors_reach_the_cli_as_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doorsync.sock");
        let server = tokio::spawn(serve_once(bind(&path).await.unwrap()));
        let stream = connect(&path).await.unwrap().unwrap();
        let err = call(
            stream,
            &Request::Sync {
                force_refresh: true,
                door: None,
                confirm_removals: false,
            },
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ControlError::Refused(m) if m.contains("not here")));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn no_daemon_means_no_connection_and_a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doorsync.sock");
        assert!(connect(&path).await.unwrap().is_none(), "no socket file: no daemon");
        drop(bind(&path).await.unwrap()); // a daemon that died without cleaning up
        assert!(path.exists());
        assert!(connect(&path).await.unwrap().is_none(), "stale socket: nobody listens");
        let _live = bind(&path).await.unwrap();
        assert!(matches!(bind(&path).await, Err(ControlError::AlreadyRunning(_))));
    }

    #[tokio::test]
    async fn garbage_on_the_socket_gets_an_error_line_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doorsync.sock");
        let server = tokio::spawn(serve_once(bind(&path).await.unwrap()));
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream.write_all(b"{not json\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let reply: Reply = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(matches!(reply, Reply::Error { message } if message.contains("unreadable request")));
        server.await.unwrap();
    }
}
