//! The admin channel: how commands that must append to a store a daemon owns (`loggvakt
//! detect`'s review run, `quarantine retry`, a context import's record) reach the store's
//! one writer, without the signing key.
//!
//! A Unix socket, `STORE/admin.sock`, created mode 0600 by the daemon: only the daemon's own
//! user (and root) can connect, and each connection's peer credentials are checked again
//! (`SO_PEERCRED`), so a permissive umask or a copied socket file does not widen it. One
//! JSON request per connection, one JSON answer (`docs/ingest-api.md`, "Admin channel").
//! The channel writes only the store's own records, built by
//! [`loggvakt_journal::own`]; events of outside sources enter through their own listeners
//! and the write policy, never here (a retried entry goes through that same policy).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loggvakt_journal::own::{ContextSnapshot, ReviewRun};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::http::App;
use crate::log::log;
use crate::writer::SealedThrough;

/// The socket's name in the store directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// A request is a few kilobytes (a review run names the patients it exposed); anything
/// larger is refused before it is read whole.
const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn socket_path(store: &Path) -> PathBuf {
    store.join(SOCKET_NAME)
}

/// What a command asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Seal everything committed now; the answer names the covering checkpoint.
    Seal,
    /// Append a review run's records.
    RecordReview { run: ReviewRun },
    /// Append the record of a context snapshot that became current.
    RecordContextSnapshot { snapshot: ContextSnapshot },
    /// Map quarantined entries again with the daemon's sources and store what now maps.
    RetryQuarantine { ids: Vec<String>, all: bool },
}

/// The answer: `ok` with a value, or the reason it was not done.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// Binds the socket: a stale one (the daemon holds the writer lock, so no other daemon
/// can be using it) is replaced, and it is made owner-only before anyone is told it exists.
pub fn bind(store: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(store);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(app: Arc<App>, listener: UnixListener, mut shutdown: watch::Receiver<bool>) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    log("warn", "admin_accept_failed", serde_json::json!({ "error": e.to_string() }));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if uid != Some(own_uid) && uid != Some(0) {
            log("warn", "admin_refused", serde_json::json!({ "peer_uid": uid, "why": "only the daemon's own user and root may use the admin channel" }));
            continue;
        }
        tokio::spawn(connection(app.clone(), stream));
    }
    let _ = std::fs::remove_file(socket_path(&app.store));
}

async fn connection(app: Arc<App>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    // A client that connects and sends nothing is let go, not waited for.
    let read = tokio::time::timeout(REQUEST_TIMEOUT, tokio::io::BufReader::new(read).take(MAX_REQUEST_BYTES).read_until(b'\n', &mut line)).await;
    let read = read.map_err(|_| format!("no request within {} s", REQUEST_TIMEOUT.as_secs())).and_then(|r| r.map_err(|e| e.to_string()));
    let answer = match read.and_then(|_| serde_json::from_slice::<Request>(&line).map_err(|e| format!("not an admin request: {e}"))) {
        Ok(request) => {
            let op = serde_json::to_value(&request).ok().and_then(|v| v["op"].as_str().map(str::to_owned)).unwrap_or_default();
            let result = handle(&app, request).await.map_err(|e| e.to_string());
            log(if result.is_ok() { "info" } else { "warn" }, "admin_request", serde_json::json!({ "op": op, "error": result.as_ref().err() }));
            result
        }
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(value) => Answer { ok: true, error: None, value },
        Err(error) => Answer { ok: false, error: Some(error), value: serde_json::Value::Null },
    };
    let mut bytes = serde_json::to_vec(&answer).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
}

/// Why a request was not done (the answer's `error`).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Writer(#[from] crate::writer::SubmitError),
    #[error(transparent)]
    Retry(#[from] crate::retry::RetryError),
    #[error("the request's work stopped unfinished: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the answer could not be written: {0}")]
    Answer(#[from] serde_json::Error),
}

async fn handle(app: &Arc<App>, request: Request) -> Result<serde_json::Value, Failure> {
    let writer = &app.writer;
    match request {
        Request::Seal => Ok(serde_json::to_value(writer.seal_now().await?)?),
        Request::RecordReview { run } => {
            let job = Box::new(move |journal: &mut loggvakt_journal::Journal| {
                let records = loggvakt_journal::own::review_run(&run, crate::writer::now());
                let count = records.len();
                for record in records {
                    journal.append(record)?;
                }
                Ok(serde_json::json!({ "records": count }))
            });
            Ok(writer.run_admin(job).await?)
        }
        Request::RecordContextSnapshot { snapshot } => {
            let job = Box::new(move |journal: &mut loggvakt_journal::Journal| {
                journal.append(loggvakt_journal::own::context_snapshot(&snapshot, crate::writer::now()))?;
                Ok(serde_json::json!({ "records": 1 }))
            });
            Ok(writer.run_admin(job).await?)
        }
        Request::RetryQuarantine { ids, all } => {
            // Mapping reads the quarantine and the kept context: off the async threads.
            let (store, app2) = (app.store.clone(), app.clone());
            let remapped = tokio::task::spawn_blocking(move || crate::retry::remap_chosen(&store, &app2.sources, &ids, all)).await??;
            let job = Box::new(move |journal: &mut loggvakt_journal::Journal| {
                let lines = crate::retry::store_remapped(journal, remapped)?;
                Ok(serde_json::to_value(lines).unwrap_or_default())
            });
            Ok(writer.run_admin(job).await?)
        }
    }
}

/// Why a command could not use the admin channel.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin channel {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("admin channel {path}: the daemon's answer is not understood: {reason}")]
    Answer { path: PathBuf, reason: String },
    #[error("the daemon refused: {0}")]
    Refused(String),
}

/// A command's end of the admin channel (blocking; a command does one thing at a time).
pub struct AdminClient {
    path: PathBuf,
}

impl AdminClient {
    /// The channel of the daemon that owns `store`, if one answers there.
    pub fn connect(store: &Path) -> Option<AdminClient> {
        let path = socket_path(store);
        std::os::unix::net::UnixStream::connect(&path).ok().map(|_| AdminClient { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn call(&self, request: &Request) -> Result<serde_json::Value, AdminError> {
        let io = |source| AdminError::Io { path: self.path.clone(), source };
        let mut stream = std::os::unix::net::UnixStream::connect(&self.path).map_err(io)?;
        // A seal of a full epoch takes seconds; a retry of a large quarantine minutes.
        stream.set_read_timeout(Some(Duration::from_secs(3600))).map_err(io)?;
        let mut bytes = serde_json::to_vec(request).map_err(|e| AdminError::Answer { path: self.path.clone(), reason: e.to_string() })?;
        bytes.push(b'\n');
        stream.write_all(&bytes).map_err(io)?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).map_err(io)?;
        let answer: Answer = serde_json::from_str(&line).map_err(|e| AdminError::Answer { path: self.path.clone(), reason: format!("{e} (the daemon may have stopped)") })?;
        match answer {
            Answer { ok: true, value, .. } => Ok(value),
            Answer { error, .. } => Err(AdminError::Refused(error.unwrap_or_else(|| "no reason given".into()))),
        }
    }

    /// Seals what the daemon has committed; the size of the checkpoint that covers it.
    pub fn seal(&self) -> Result<u64, AdminError> {
        let value = self.call(&Request::Seal)?;
        serde_json::from_value::<SealedThrough>(value).map(|s| s.checkpoint_size).map_err(|e| AdminError::Answer { path: self.path.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_they_are_documented() {
        let seal: Request = serde_json::from_str(r#"{"op":"seal"}"#).unwrap();
        assert_eq!(seal, Request::Seal);
        let retry: Request = serde_json::from_str(r#"{"op":"retry_quarantine","ids":["q-1"],"all":false}"#).unwrap();
        assert_eq!(retry, Request::RetryQuarantine { ids: vec!["q-1".into()], all: false });
        assert!(serde_json::from_str::<Request>(r#"{"op":"append","records":[]}"#).is_err(), "no request appends arbitrary records");
    }
}
