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
use loggvakt_fhir::{decode_message, Decoded};
use loggvakt_journal::PreparedRecord;
use loggvakt_model::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::http::App;
use crate::identity::Source;
use crate::log::log;
use crate::metrics::{Refusal, Transport};
use crate::writer::{now, quarantine_entry, Item};

/// Maps one syslog frame: its body is an ATNA audit message (XML), or a FHIR AuditEvent
/// (JSON), which some senders put in syslog too.
pub fn map_frame(app: &App, transport: Transport, source: &Source, frame: Bytes, at: Timestamp) -> Vec<Item> {
    let quarantine = |reason: String| {
        app.metrics.quarantined(transport, 1);
        vec![Item::Quarantine(quarantine_entry(transport, source, at, None, reason, &frame))]
    };
    let message = match parse_syslog(&frame) {
        Ok(m) => m,
        Err(e) => return quarantine(e.to_string()),
    };
    let body = message.body.trim_ascii();
    let events = match body.first() {
        Some(b'<') => {
            let input = AuditInput { xml: body, received_at: at, recorded_at: message.timestamp, source_seq: message.sequence_id(), default_tenant: Some(&source.tenant_orgnr) };
            match map_audit_message(&input) {
                Ok(events) => events,
                Err(e) => return quarantine(format!("ATNA audit message: {e}")),
            }
        }
        Some(b'{') => {
            let context = match app.context.read() {
                Ok(c) => c,
                Err(_) => return quarantine("context index unavailable".into()),
            };
            let mut events = Vec::new();
            for d in decode_message(body, &context, at, app.limits.max_syslog_message_bytes) {
                match d {
                    Decoded::Event { mut event, .. } => {
                        event.source_seq = event.source_seq.or(message.sequence_id());
                        events.push(event);
                    }
                    Decoded::Context { .. } => {}
                    Decoded::Rejected(r) => return quarantine(format!("FHIR AuditEvent in syslog: {}", r.reason)),
                }
            }
            events
        }
        _ => return quarantine("the syslog message body is neither an ATNA audit message (XML) nor a FHIR AuditEvent (JSON)".into()),
    };
    if let Some(e) = events.iter().find(|e| !source.may_send_for(&e.source_system)) {
        return quarantine(format!("source '{}' may not send events recorded by '{}'", source.name, e.source_system));
    }
    events.into_iter().map(|event| Item::Event { record: PreparedRecord::new(event), raw: frame.clone(), entry: None }).collect()
}

/// Serves one syslog stream until the peer closes, it idles out, or shutdown.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(app: Arc<App>, mut io: S, source: Arc<Source>, transport: Transport, mut shutdown: watch::Receiver<bool>) {
    let framer = Framer::new(app.limits.max_syslog_message_bytes);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let idle = Duration::from_secs(app.limits.idle_timeout_secs);
    let mut closing = false;
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
        tokio::select! {
            read = tokio::time::timeout(idle, io.read_buf(&mut buf)) => match read {
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
                Err(_) => {
                    app.metrics.refused(Refusal::Timeout);
                    log("info", "syslog_idle_closed", serde_json::json!({ "source": &*source.name, "idle_secs": idle.as_secs() }));
                    break;
                }
            },
            _ = shutdown.changed() => break,
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
