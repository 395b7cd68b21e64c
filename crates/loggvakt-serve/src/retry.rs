//! Reading quarantined input again, after a fix (a mapping change, a missing context
//! resource imported, a source's tenant configured). The entry's `input` says how it came:
//! `http:<source>` is FHIR JSON, `syslog:<source>` a whole syslog frame, anything else a
//! bulk file's line. The result goes through the same mapping and the same authorisation
//! ([`loggvakt_ingest::policy`]) as live input, with the context of the source that sent
//! it; nothing enters the chain unvalidated. Network input is retried only for a source
//! the configuration still has: without it, no one could say what that source may write.

use loggvakt_fhir::{decode_message, ContextIndex, Decoded};
use loggvakt_ingest::{KeptContexts, WritePolicy};
use loggvakt_journal::QuarantineEntry;
use loggvakt_model::{AccessEvent, Timestamp};

use crate::identity::Sources;

/// Why a quarantined entry still does not become events.
#[derive(Debug, thiserror::Error)]
pub enum StillRefused {
    #[error("the kept bytes are not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the entry kept no bytes")]
    NoBytes,
    #[error("received_at: {0}")]
    ReceivedAt(#[from] chrono::ParseError),
    #[error("it came from source '{0}', which the configuration does not have; pass the daemon's --config so that what the source may write is known")]
    UnknownSource(String),
    #[error(transparent)]
    Frame(#[from] crate::syslog::FrameRefusal),
    /// The mapping's reason, with the Bundle entry it is about.
    #[error("{}", match .entry { Some(i) if !.rejection.reason.starts_with("entry[") => format!("entry[{i}]: {}", .rejection.reason), _ => .rejection.reason.clone() })]
    Mapping { entry: Option<usize>, rejection: loggvakt_fhir::Rejection },
    #[error(transparent)]
    Forbidden(#[from] loggvakt_ingest::Forbidden),
    #[error("it holds no AuditEvent")]
    Empty,
}

/// The events a quarantined entry maps to now, or why it still does not.
pub fn remap(entry: &QuarantineEntry, contexts: &KeptContexts, sources: &Sources, max_bytes: usize) -> Result<Vec<AccessEvent>, StillRefused> {
    let raw: Vec<u8> = match (&entry.raw, &entry.raw_base64) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64)?
        }
        (None, None) => return Err(StillRefused::NoBytes),
    };
    let received_at = chrono::DateTime::parse_from_rfc3339(&entry.received_at).map(|t| Timestamp(t.timestamp_micros()))?;
    let (kind, source_name) = match entry.input.split_once(':') {
        Some((kind @ ("http" | "syslog"), name)) => (kind, name),
        _ => ("file", entry.input.as_str()),
    };
    let source = sources.by_name(source_name);
    let (policy, context): (WritePolicy, ContextIndex) = match (kind, source) {
        ("file", _) => (WritePolicy::operator("quarantine retry"), ContextIndex::new().with_base(contexts.operator.clone())),
        (_, Some(source)) => (source.policy.clone(), contexts.for_source(source_name).with_default_tenant(source.default_tenant.clone())),
        (_, None) => return Err(StillRefused::UnknownSource(source_name.to_owned())),
    };
    let context = &context;
    let events = match kind {
        "syslog" => crate::syslog::decode_frame(&raw, context, source.map(|s| s.tenant_orgnr.as_str()), received_at, max_bytes)?,
        _ => fhir_events(&raw, entry, context, received_at, max_bytes)?,
    };
    if let Some(forbidden) = events.iter().find_map(|e| policy.authorise_event(e).err()) {
        return Err(forbidden.into());
    }
    if events.is_empty() {
        return Err(StillRefused::Empty);
    }
    Ok(events)
}

/// The events of the quarantined message, or of just the Bundle entries it lists (the rest
/// of a batch was stored when it came).
fn fhir_events(raw: &[u8], quarantined: &QuarantineEntry, context: &ContextIndex, received_at: Timestamp, max_bytes: usize) -> Result<Vec<AccessEvent>, StillRefused> {
    let listed: std::collections::HashSet<usize> = quarantined.entries.iter().copied().collect();
    let wanted = |at: Option<usize>| match (quarantined.entry, listed.is_empty()) {
        (None, true) => true,
        (Some(one), _) => at == Some(one),
        (None, false) => at.is_some_and(|i| listed.contains(&i)),
    };
    let mut events = Vec::new();
    for decoded in decode_message(raw, context, received_at, max_bytes) {
        let (at, result) = match decoded {
            Decoded::Event { entry, event } => (entry, Ok(event)),
            Decoded::Context { .. } => continue,
            Decoded::Rejected(r) => (r.entry, Err(r)),
        };
        if !wanted(at) {
            continue;
        }
        events.push(result.map_err(|rejection| StillRefused::Mapping { entry: at, rejection })?);
    }
    Ok(events)
}

/// What retrying one entry came to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryLine {
    pub id: String,
    /// Sequence numbers of the events stored now.
    pub stored: Vec<u64>,
    pub duplicates: usize,
    /// Why some of its events were not stored (an id reused with other content).
    pub conflicts: Vec<String>,
    /// Why it still does not map, when it does not (nothing was stored then).
    pub still_fails: Option<String>,
}

/// One quarantined entry mapped again: its id, and its events or why it still fails.
pub struct Remapped {
    pub id: String,
    pub events: Result<Vec<AccessEvent>, StillRefused>,
}

/// Maps the chosen quarantined entries again (`ids`, or with `all` every entry not yet
/// retried successfully): the reading half of a retry, which needs no writer.
pub fn remap_chosen(store: &std::path::Path, sources: &Sources, ids: &[String], all: bool) -> Result<Vec<Remapped>, RetryError> {
    if ids.is_empty() && !all {
        return Err(RetryError::NothingChosen);
    }
    let contexts = loggvakt_ingest::load_contexts(store)?;
    let retries = loggvakt_journal::read_retries(store)?;
    let records = loggvakt_journal::read_quarantine_records(store)?;
    if let Some(unknown) = ids.iter().find(|id| !records.iter().any(|r| &r.id == *id)) {
        return Err(RetryError::UnknownId(unknown.clone()));
    }
    Ok(records
        .iter()
        .filter(|r| if all { !retries.contains_key(&r.id) } else { ids.contains(&r.id) })
        .map(|r| Remapped { id: r.id.clone(), events: remap(&r.entry, &contexts, sources, loggvakt_fhir::DEFAULT_MAX_MESSAGE_BYTES) })
        .collect())
}

/// The writing half of a retry, by whoever owns the journal (the daemon's writer, or
/// `quarantine retry` with the store opened locally): stores what now maps, commits, and
/// only then records the retry, so a retry record never names an event that is not durable.
pub fn store_remapped(journal: &mut loggvakt_journal::Journal, remapped: Vec<Remapped>) -> Result<Vec<RetryLine>, loggvakt_journal::JournalError> {
    use loggvakt_journal::Appended;
    let mut lines = Vec::with_capacity(remapped.len());
    for Remapped { id, events } in remapped {
        let mut line = RetryLine { id, stored: vec![], duplicates: 0, conflicts: vec![], still_fails: None };
        match events {
            Err(why) => line.still_fails = Some(why.to_string()),
            Ok(events) => {
                for event in events {
                    match journal.append(event)? {
                        Appended::Stored { seq } => line.stored.push(seq),
                        Appended::Duplicate => line.duplicates += 1,
                        conflict @ Appended::Conflict { .. } => line.conflicts.extend(conflict.conflict_reason()),
                    }
                }
                journal.commit()?;
                let retried_at = chrono::Utc::now().to_rfc3339();
                journal.record_retry(&loggvakt_journal::RetryRecord { id: line.id.clone(), retried_at, stored: line.stored.clone(), duplicates: line.duplicates })?;
            }
        }
        lines.push(line);
    }
    Ok(lines)
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("name the entries to retry (ids from 'loggvakt quarantine list'), or pass --all")]
    NothingChosen,
    #[error("no quarantined entry has id {0}")]
    UnknownId(String),
    #[error(transparent)]
    Journal(#[from] loggvakt_journal::JournalError),
    #[error(transparent)]
    Ingest(#[from] loggvakt_ingest::IngestError),
}
