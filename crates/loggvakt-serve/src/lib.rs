//! # loggvakt-serve
//!
//! Owns the ingest daemon (`loggvakt serve`): the FHIR REST API over HTTP(S), IHE ATNA
//! syslog over TLS, TCP and UDP, the source identities, the bounded queue, the writer
//! thread that group-commits into the journal, source completeness (gaps, silences),
//! metrics and health checks. `docs/ingest-api.md` is its outside contract.
//!
//! Durability promise: a 2xx answer (or, for syslog, reading past a message) comes only
//! after the writer's fsync covered the event. Must not: acknowledge before that, hold
//! more than the configured queue in memory, decide how input maps (the `loggvakt-fhir`
//! and `loggvakt-atna` crates do), or let anything into the chain but through the writer.

pub mod admin;
mod budget;
pub mod config;
mod context;
mod fhir_out;
mod http;
pub mod identity;
mod log;
pub mod metrics;
mod publish;
pub mod retry;
pub mod search;
mod syslog;
pub mod tracker;
mod unsealed;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use loggvakt_journal::{Journal, JournalError, JournalOptions, SigningKey};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use config::Config;
pub use writer::{SealedThrough, OWN_SYSTEM};

use crate::http::{App, Conn};
use crate::identity::{server_tls, sha256, Sources};
use crate::log::log;
use crate::metrics::{Metrics, Refusal, Transport};
use crate::writer::{WriterHandle, WriterOptions};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("the writer stopped: {0}")]
    Writer(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The addresses actually bound (a configured port 0 becomes a real one).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Listening {
    pub http: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_udp: Option<SocketAddr>,
}

/// How long connections get to finish their requests at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the daemon until SIGTERM or SIGINT (then drains, commits, seals and signs a
/// checkpoint), or until the writer fails (then exits with its error, so a supervisor
/// restarts it and recovery runs). `on_listening` is called once every socket is bound.
pub async fn run(store: PathBuf, key: SigningKey, config: Config, on_listening: impl FnOnce(&Listening)) -> Result<(), ServeError> {
    let options =
        JournalOptions { max_epoch_records: config.journal.max_epoch_records, max_epoch_age: Duration::from_secs(config.journal.max_epoch_age_secs), ..JournalOptions::default() };
    let (journal, recovery) = Journal::open(&store, key, options)?;
    log(
        "info",
        "store_opened",
        serde_json::json!({ "store": store.display().to_string(), "replayed": recovery.replayed, "torn_bytes": recovery.torn_bytes, "removed_uncommitted": recovery.removed_uncommitted.len(), "durable_seq": journal.durable_seq() }),
    );
    let kept = loggvakt_ingest::load_contexts(&store).map_err(|e| ServeError::Config(format!("context kept in the store: {e}")))?;
    let sources = Sources::from_config(&config.sources)?;
    let contexts = context::SourceContexts::new(&kept, &sources.all, config.limits.context_resources_per_source);
    drop(kept);
    let metrics = Arc::new(Metrics::default());
    let writer_options = WriterOptions { gap_grace: Duration::from_secs(config.limits.gap_grace_secs), sources: sources.all.clone() };
    let (writer, writer_thread) = WriterHandle::start(journal, config.limits.queue_events, writer_options, metrics.clone())?;
    let publisher = match &config.publish.to {
        Some(to) => Some(publish::PublishHandle::start(store.clone(), &config.publish, to, metrics.clone())?),
        None => None,
    };
    let app = Arc::new(App {
        writer: writer.clone(),
        sources,
        contexts,
        quarantine_budget: budget::QuarantineBudget::new(config.limits.quarantine_bytes_per_hour),
        searches: tokio::sync::Semaphore::new(config.limits.concurrent_searches.max(1)),
        search_pool: writer::low_priority_pool("search", config.limits.concurrent_searches).map_err(|e| ServeError::Config(format!("search threads: {e}")))?,
        limits: config.limits.clone(),
        metrics,
        store: store.clone(),
    });

    let (shutdown_tx, shutdown) = watch::channel(false);
    let connections = Arc::new(());
    let mut listening = Listening::default();
    let mut tasks = Vec::new();

    if let Some(address) = config.http.listen {
        let listener = bind(address).await?;
        listening.http = Some(listener.local_addr()?);
        let tls = match (&config.tls, config.http.tls) {
            (Some(t), true) => Some(TlsAcceptor::from(server_tls(t, false, true)?)),
            _ => None,
        };
        tasks.push(tokio::spawn(accept_loop(app.clone(), listener, tls, Transport::Http, shutdown.clone(), connections.clone())));
    }
    if let (Some(address), Some(tls)) = (config.syslog.tls_listen, &config.tls) {
        let listener = bind(address).await?;
        listening.syslog_tls = Some(listener.local_addr()?);
        let acceptor = TlsAcceptor::from(server_tls(tls, true, false)?);
        tasks.push(tokio::spawn(accept_loop(app.clone(), listener, Some(acceptor), Transport::SyslogTls, shutdown.clone(), connections.clone())));
    }
    if let Some(address) = config.syslog.tcp_listen {
        // Said at every start, so no operator relies on it unknowingly (docs/ingest-api.md).
        log(
            "warn",
            "syslog_plain_tcp_not_durable",
            serde_json::json!({ "address": address.to_string(), "why": "a plain TCP close carries no acknowledgement: a sender cannot tell a crash from success; senders that must not lose events use syslog over TLS" }),
        );
        let listener = bind(address).await?;
        listening.syslog_tcp = Some(listener.local_addr()?);
        tasks.push(tokio::spawn(accept_loop(app.clone(), listener, None, Transport::SyslogTcp, shutdown.clone(), connections.clone())));
    }
    if let Some(address) = config.syslog.udp_listen {
        let socket = UdpSocket::bind(address).await.map_err(|source| ServeError::Listen { address, source })?;
        listening.syslog_udp = Some(socket.local_addr()?);
        tasks.push(tokio::spawn(syslog::serve_udp(app.clone(), socket, shutdown.clone())));
    }
    // The admin channel (STORE/admin.sock): commands that append to the store while the
    // daemon owns it (detect, quarantine retry, context import) come through here.
    let admin_listener = admin::bind(&store).map_err(|e| ServeError::Config(format!("admin socket {}: {e}", admin::socket_path(&store).display())))?;
    tasks.push(tokio::spawn(admin::serve(app.clone(), admin_listener, shutdown.clone())));
    // The handlers are installed before anyone is told the daemon listens: a SIGTERM sent
    // right after "listening" must drain and seal, not kill the process unsealed.
    let signals = StopSignals::install();
    log("info", "listening", serde_json::to_value(&listening).unwrap_or_default());
    on_listening(&listening);

    let stop_reason = wait_for_stop(&writer, signals).await;
    log("info", "stopping", serde_json::json!({ "reason": &stop_reason }));
    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let started = Instant::now();
    while Arc::strong_count(&connections) > 1 && started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.shutdown();
    drop(app);
    let result = tokio::task::spawn_blocking(move || writer_thread.join()).await.map_err(|e| ServeError::Writer(e.to_string()))?;
    // After the last seal: the published copy gets every epoch the daemon sealed.
    if let Some(publisher) = publisher {
        let _ = tokio::task::spawn_blocking(move || publisher.finish()).await;
    }
    match result {
        Ok(Ok(())) if stop_reason.starts_with("signal") => {
            log("info", "stopped", serde_json::json!({}));
            Ok(())
        }
        Ok(Ok(())) => Err(ServeError::Writer(stop_reason)),
        Ok(Err(e)) => Err(ServeError::Writer(e.to_string())),
        Err(_) => Err(ServeError::Writer("the writer thread panicked".into())),
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address).await.map_err(|source| ServeError::Listen { address, source })
}

struct StopSignals(std::io::Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals(signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?))))
    }
}

async fn wait_for_stop(writer: &WriterHandle, signals: StopSignals) -> String {
    let Ok((mut term, mut int)) = signals.0 else {
        return "no signal handler could be installed".into();
    };
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => return "signal: SIGTERM".into(),
            _ = int.recv() => return "signal: SIGINT".into(),
            _ = check.tick() => if !writer.is_ready() { return "the store cannot take writes".into() },
        }
    }
}

async fn accept_loop(app: Arc<App>, listener: TcpListener, tls: Option<TlsAcceptor>, transport: Transport, mut shutdown: watch::Receiver<bool>, connections: Arc<()>) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    log("warn", "accept_failed", serde_json::json!({ "error": e.to_string() }));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, shutdown, token) = (app.clone(), tls.clone(), shutdown.clone(), connections.clone());
        tokio::spawn(async move {
            connection(app, stream, peer, tls, transport, shutdown).await;
            drop(token);
        });
    }
}

async fn connection(app: Arc<App>, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, transport: Transport, shutdown: watch::Receiver<bool>) {
    let Some(acceptor) = tls else {
        return match transport {
            Transport::Http => serve_http(app, stream, Conn { peer, tls: false, cert_source: None, unknown_cert: None }, shutdown).await,
            _ => match app.sources.by_address(peer.ip()).cloned() {
                Some(source) => syslog::serve_stream(app, stream, source, transport, shutdown).await,
                None => {
                    app.metrics.refused(Refusal::Unauthenticated);
                    log("warn", "syslog_unknown_source", serde_json::json!({ "peer": peer.to_string(), "transport": transport.label() }));
                }
            },
        };
    };
    let handshake = tokio::time::timeout(Duration::from_secs(app.limits.handshake_timeout_secs), acceptor.accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            app.metrics.refused(Refusal::TlsHandshake);
            log("warn", "tls_handshake_failed", serde_json::json!({ "peer": peer.to_string(), "transport": transport.label(), "error": e.to_string() }));
            return;
        }
        Err(_) => {
            app.metrics.refused(Refusal::Timeout);
            return;
        }
    };
    let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
    let cert_source = cert.as_deref().and_then(|der| app.sources.by_certificate(der).cloned());
    let unknown_cert = match (&cert, &cert_source) {
        (Some(der), None) => Some(sha256(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")),
        _ => None,
    };
    if transport == Transport::Http {
        return serve_http(app, stream, Conn { peer, tls: true, cert_source, unknown_cert }, shutdown).await;
    }
    match cert_source {
        Some(source) => syslog::serve_stream(app, stream, source, transport, shutdown).await,
        None => {
            app.metrics.refused(Refusal::Unauthenticated);
            log("warn", "syslog_unknown_certificate", serde_json::json!({ "peer": peer.to_string(), "sha256": unknown_cert }));
        }
    }
}

async fn serve_http<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(app: Arc<App>, io: I, conn: Conn, mut shutdown: watch::Receiver<bool>) {
    let conn = Arc::new(conn);
    let header_timeout = Duration::from_secs(app.limits.header_timeout_secs);
    let service = service_fn(move |req| http::handle(app.clone(), conn.clone(), req));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
