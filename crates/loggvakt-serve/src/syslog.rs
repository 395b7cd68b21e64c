//! IHE ATNA (ITI-20) over syslog: RFC 5425 TLS, plain TCP (RFC 6587) and UDP (RFC 5426).
//!
//! A stream connection is read, every complete frame in the buffer is mapped and handed to
//! the writer as one submission, and the connection is not read again until that
//! submission is durable. A full queue so stops the reading (TCP flow control pushes back
//! on the sender), and when the sender closes, everything it sent is durable before our
//! side closes. Input that does not map is quarantined with the whole syslog frame.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use loggvakt_atna::{map_audit_message, parse_syslog, AuditInput, Framer};
use loggvakt_fhir::{decode_message, ContextIndex, Decoded};
use loggvakt_journal::PreparedRecord;
use loggvakt_model::{AccessEvent, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::http::App;
use crate::identity::Source;
use crate::log::log;
use crate::metrics::{Refusal, Transport};
use crate::writer::{now, quarantine_entry, Item};

/// Why a syslog frame holds no events to store.
#[derive(Debug, thiserror::Error)]
pub enum FrameRefusal {
    #[error(transparent)]
    Syslog(#[from] loggvakt_atna::SyslogError),
    #[error("ATNA audit message: {0}")]
    Atna(#[from] loggvakt_atna::AtnaError),
    #[error("FHIR AuditEvent in syslog: {}", .0.reason)]
    Fhir(loggvakt_fhir::Rejection),
    #[error("the syslog message body is neither an ATNA audit message (XML) nor a FHIR AuditEvent (JSON)")]
    UnknownBody,
}

/// The events of one syslog frame: its body is an ATNA audit message (XML), or a FHIR
/// AuditEvent (JSON), which some senders put in syslog too. Live input and `quarantine
/// retry` both read frames here. `default_tenant` is the organisation of an ATNA message
/// that names none (the source's `tenant_orgnr`).
pub fn decode_frame(frame: &[u8], context: &ContextIndex, default_tenant: Option<&str>, received_at: Timestamp, max_bytes: usize) -> Result<Vec<AccessEvent>, FrameRefusal> {
    let message = parse_syslog(frame)?;
    let body = message.body.trim_ascii();
    match body.first() {
        Some(b'<') => {
            let input = AuditInput { xml: body, received_at, recorded_at: message.timestamp, source_seq: message.sequence_id(), default_tenant };
            Ok(map_audit_message(&input)?)
        }
        Some(b'{') => {
            let mut events = Vec::new();
            for d in decode_message(body, context, received_at, max_bytes) {
                match d {
                    Decoded::Event { mut event, .. } => {
                        event.source_seq = event.source_seq.or(message.sequence_id());
                        events.push(event);
                    }
                    Decoded::Context { .. } => {}
                    Decoded::Rejected(r) => return Err(FrameRefusal::Fhir(r)),
                }
            }
            Ok(events)
        }
        _ => Err(FrameRefusal::UnknownBody),
    }
}

/// Maps and authorises one live syslog frame into what the writer is handed.
pub fn map_frame(app: &App, transport: Transport, source: &Source, frame: Bytes, at: Timestamp) -> Vec<Item> {
    let quarantine = |reason: String| {
        app.metrics.quarantined(transport, 1);
        vec![Item::Quarantine(quarantine_entry(transport, source, at, None, reason, &frame))]
    };
    let Some(context) = app.contexts.read(source) else {
        return quarantine("the source's context is unavailable".into());
    };
    let events = match decode_frame(&frame, &context, Some(&source.tenant_orgnr), at, app.limits.max_syslog_message_bytes) {
        Ok(events) => events,
        Err(refusal) => return quarantine(refusal.to_string()),
    };
    drop(context);
    if let Some(forbidden) = events.iter().find_map(|e| source.policy.authorise_event(e).err()) {
        app.metrics.refused(Refusal::Forbidden);
        return quarantine(forbidden.to_string());
    }
    events.into_iter().map(|event| Item::Event { record: PreparedRecord::new(event), raw: frame.clone(), entry: None }).collect()
}

/// At shutdown, a stream is read until its sender has sent nothing for this long...
const DRAIN_QUIET: Duration = Duration::from_millis(500);
/// ... but no longer than this (the daemon's whole drain is 10 s).
const DRAIN_MOST: Duration = Duration::from_secs(5);

/// Serves one syslog stream until the peer closes, it idles out, or shutdown.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(app: Arc<App>, mut io: S, source: Arc<Source>, transport: Transport, mut shutdown: watch::Receiver<bool>) {
    let framer = Framer::new(app.limits.max_syslog_message_bytes);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let idle = Duration::from_secs(app.limits.idle_timeout_secs);
    let mut closing = false;
    // At shutdown the connection is read on until the sender has been quiet for DRAIN_QUIET
    // (or DRAIN_MOST has passed): frames it sent before it saw the close are in the socket
    // buffer, and a close without storing them would look like success to the sender.
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        let at = now();
        let mut items = Vec::new();
        let mut frames = 0u64;
        loop {
            match framer.next_frame(&buf) {
                Ok(Some((start, end, used))) => {
                    let chunk = buf.split_to(used).freeze();
                    frames += 1;
                    items.extend(map_frame(&app, transport, &source, chunk.slice(start..end), at));
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: keep what was buffered, then close.
                    app.metrics.refused(Refusal::BadFraming);
                    app.metrics.quarantined(transport, 1);
                    log("warn", "syslog_framing", serde_json::json!({ "source": &*source.name, "error": e.to_string() }));
                    let held = buf.split().freeze();
                    items.push(Item::Quarantine(quarantine_entry(transport, &source, at, None, format!("{e}; the connection was closed"), &held)));
                    closing = true;
                    break;
                }
            }
        }
        app.metrics.received(transport, frames);
        // A read can hold more frames than the queue: hand them over in parts it can take.
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(app.writer.capacity()));
            let durable = match app.writer.submit(transport, source.clone(), std::mem::replace(&mut items, rest)).await {
                Ok(rx) => matches!(rx.await, Ok(Ok(_))),
                Err(e) => {
                    log("error", "syslog_not_stored", serde_json::json!({ "source": &*source.name, "error": e.to_string() }));
                    false
                }
            };
            if !durable {
                // Closing without a clean shutdown tells the sender its last messages may be lost.
                return;
            }
        }
        if closing {
            break;
        }
        if draining.is_some_and(|since| since.elapsed() >= DRAIN_MOST) {
            break;
        }
        let wait = if draining.is_some() { DRAIN_QUIET } else { idle };
        tokio::select! {
            read = tokio::time::timeout(wait, io.read_buf(&mut buf)) => match read {
                Ok(Ok(0)) => {
                    if !buf.is_empty() {
                        let held = buf.split().freeze();
                        let reason = format!("the connection closed in the middle of a frame ({} bytes)", held.len());
                        app.metrics.quarantined(transport, 1);
                        if let Ok(rx) = app.writer.submit(transport, source.clone(), vec![Item::Quarantine(quarantine_entry(transport, &source, now(), None, reason, &held))]).await {
                            let _ = rx.await;
                        }
                    }
                    break;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    log("info", "syslog_read_error", serde_json::json!({ "source": &*source.name, "error": e.to_string() }));
                    return;
                }
                Err(_) if draining.is_some() => break,
                Err(_) => {
                    app.metrics.refused(Refusal::Timeout);
                    log("info", "syslog_idle_closed", serde_json::json!({ "source": &*source.name, "idle_secs": idle.as_secs() }));
                    break;
                }
            },
            _ = shutdown.changed(), if draining.is_none() => {
                draining = Some(tokio::time::Instant::now());
            }
        }
    }
    let _ = io.shutdown().await;
}

/// UDP: one datagram, one message. There is no acknowledgement to give, so a datagram is
/// only waited for until the queue takes it; when the queue is full the socket is not read
/// and the kernel's buffer is the only slack (UDP's own limit, RFC 5426 §3.3).
pub async fn serve_udp(app: Arc<App>, socket: tokio::net::UdpSocket, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    log("warn", "udp_receive_error", serde_json::json!({ "error": e.to_string() }));
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(source) = app.sources.by_address(peer.ip()).cloned() else {
            app.metrics.refused(Refusal::Unauthenticated);
            log("warn", "udp_unknown_source", serde_json::json!({ "peer": peer.to_string() }));
            continue;
        };
        app.metrics.received(Transport::SyslogUdp, 1);
        let frame = Bytes::copy_from_slice(&buf[..n]);
        let items = map_frame(&app, Transport::SyslogUdp, &source, frame, now());
        if let Err(e) = app.writer.submit(Transport::SyslogUdp, source, items).await {
            log("error", "syslog_not_stored", serde_json::json!({ "error": e.to_string() }));
        }
    }
}
