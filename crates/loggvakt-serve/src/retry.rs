//! Reading quarantined input again, after a fix (a mapping change, a missing context
//! resource imported, a source's tenant configured). The entry's `input` says how it came:
//! `http:<source>` is FHIR JSON, `syslog:<source>` a whole syslog frame, anything else a
//! bulk file's line. The result goes through the same mapping as live input; nothing enters
//! the chain unvalidated.

use loggvakt_atna::{map_audit_message, parse_syslog, AuditInput};
use loggvakt_fhir::{decode_message, ContextIndex, Decoded};
use loggvakt_journal::QuarantineEntry;
use loggvakt_model::{AccessEvent, Timestamp};

use crate::identity::Sources;

/// The events a quarantined entry maps to now, or why it still does not.
pub fn remap(entry: &QuarantineEntry, context: &ContextIndex, sources: &Sources, max_bytes: usize) -> Result<Vec<AccessEvent>, String> {
    let raw: Vec<u8> = match (&entry.raw, &entry.raw_base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("the kept bytes are not valid base64: {e}"))?
        }
        (None, None) => return Err("the entry kept no bytes".into()),
    };
    let received_at = chrono::DateTime::parse_from_rfc3339(&entry.received_at).map(|t| Timestamp(t.timestamp_micros())).map_err(|e| format!("received_at: {e}"))?;
    let (kind, source_name) = entry.input.split_once(':').unwrap_or(("file", entry.input.as_str()));
    let source = sources.by_name(source_name);
    let events = match kind {
        "syslog" => {
            let message = parse_syslog(&raw).map_err(|e| e.to_string())?;
            let body = message.body.trim_ascii();
            if body.first() == Some(&b'<') {
                let input = AuditInput {
                    xml: body,
                    received_at,
                    recorded_at: message.timestamp,
                    source_seq: message.sequence_id(),
                    default_tenant: source.map(|s| s.tenant_orgnr.as_str()),
                };
                map_audit_message(&input).map_err(|e| format!("ATNA audit message: {e}"))?
            } else {
                let mut events = fhir_events(body, None, context, received_at, max_bytes)?;
                for e in &mut events {
                    e.source_seq = e.source_seq.or(message.sequence_id());
                }
                events
            }
        }
        _ => fhir_events(&raw, entry.entry, context, received_at, max_bytes)?,
    };
    if let Some(source) = source {
        if let Some(e) = events.iter().find(|e| !source.may_send_for(&e.source_system)) {
            return Err(format!("source '{}' may not send events recorded by '{}'", source.name, e.source_system));
        }
    }
    if events.is_empty() {
        return Err("it holds no AuditEvent".into());
    }
    Ok(events)
}

fn fhir_events(raw: &[u8], entry: Option<usize>, context: &ContextIndex, received_at: Timestamp, max_bytes: usize) -> Result<Vec<AccessEvent>, String> {
    let mut events = Vec::new();
    for decoded in decode_message(raw, context, received_at, max_bytes) {
        let (at, result) = match decoded {
            Decoded::Event { entry, event } => (entry, Ok(event)),
            Decoded::Context { .. } => continue,
            Decoded::Rejected(r) => (r.entry, Err(r.reason)),
        };
        // A Bundle entry was quarantined alone; the rest of its Bundle is stored already.
        if entry.is_some() && at != entry {
            continue;
        }
        events.push(result?);
    }
    Ok(events)
}
