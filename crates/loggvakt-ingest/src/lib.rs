//! # loggvakt-ingest
//!
//! Owns bulk ingest of files: FHIR AuditEvent JSON as single resources, Bundles, or NDJSON
//! as a bulk export writes it. Lines are mapped in parallel, then appended in input order;
//! what cannot be mapped is quarantined with file, line, entry and reason; a chunk is
//! reported durable only after the journal's `commit` returns.
//!
//! Must not: write the store except through [`loggvakt_journal::Journal`], print, or stop
//! at a bad record: one bad line never costs the good lines around it.

mod lines;

use std::fs::File;
use std::path::{Path, PathBuf};

use loggvakt_fhir::{decode_message, ContextIndex, ContextResource, Decoded, Rejection};
use loggvakt_journal::{Appended, Journal, JournalError, QuarantineEntry};
use loggvakt_model::Timestamp;
use rayon::prelude::*;

pub use lines::{HARD_LINE_CAP, KEPT_PREFIX};
use lines::{LineChunker, Piece};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub max_message_bytes: usize,
    /// Bytes of input mapped (in parallel) and committed together.
    pub chunk_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { max_message_bytes: loggvakt_fhir::DEFAULT_MAX_MESSAGE_BYTES, chunk_bytes: 8 << 20 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub files: u64,
    pub bytes: u64,
    pub messages: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub context_resources: u64,
    pub epochs_sealed: u64,
    pub durable_seq: u64,
}

/// Hears about progress. Every method has a default that does nothing.
pub trait IngestObserver {
    /// All lines of `file` up to `line` are stored durably or quarantined durably.
    fn durable(&mut self, _file: &Path, _line: u64, _summary: &IngestSummary) {}
    fn bytes_read(&mut self, _bytes: u64) {}
}

pub struct NoObserver;
impl IngestObserver for NoObserver {}

/// Loads the context resources a store kept from earlier input.
pub fn load_context(store: &Path) -> Result<ContextIndex, IngestError> {
    let mut index = ContextIndex::new();
    for raw in loggvakt_journal::read_context(store)? {
        if let Some(key) = context_key(&raw) {
            // Kept resources were valid when kept; one that no longer parses is skipped, not fatal.
            let _ = index.insert(&ContextResource { key, raw });
        }
    }
    Ok(index)
}

fn context_key(raw: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    Some(format!("{}/{}", v.get("resourceType")?.as_str()?, v.get("id")?.as_str()?))
}

fn is_line_oriented(path: &Path, head: &[u8]) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ndjson" | "jsonl") => true,
        Some("json") => false,
        // Unknown extension: NDJSON if the first line is a whole JSON value by itself.
        _ => {
            let first = head.split(|b| *b == b'\n').next().unwrap_or(head);
            serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok()
        }
    }
}

pub struct Ingest<'j, O: IngestObserver> {
    journal: &'j mut Journal,
    context: ContextIndex,
    options: IngestOptions,
    observer: O,
    summary: IngestSummary,
}

impl<'j, O: IngestObserver> Ingest<'j, O> {
    pub fn new(journal: &'j mut Journal, options: IngestOptions, observer: O) -> Result<Self, IngestError> {
        let context = load_context(journal.store_dir())?;
        Ok(Ingest { journal, context, options, observer, summary: IngestSummary::default() })
    }

    pub fn summary(&self) -> &IngestSummary {
        &self.summary
    }

    /// Ingests every file, then seals what is pending.
    pub fn run(mut self, paths: &[PathBuf]) -> Result<IngestSummary, IngestError> {
        for path in paths {
            self.file(path)?;
        }
        if self.journal.seal()?.is_some() {
            self.summary.epochs_sealed += 1;
        }
        self.summary.durable_seq = self.journal.durable_seq();
        Ok(self.summary)
    }

    fn file(&mut self, path: &Path) -> Result<(), IngestError> {
        let io = |source| IngestError::Input { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        self.summary.files += 1;
        let mut chunker = LineChunker::new(file, self.options.chunk_bytes);
        let mut line_oriented = None;
        let mut whole = Vec::new();
        while let Some(piece) = chunker.next_piece().map_err(io)? {
            match piece {
                Piece::Oversized { line, offset, length, prefix } => {
                    self.summary.bytes += length + 1;
                    self.observer.bytes_read(length + 1);
                    self.summary.messages += 1;
                    let reason = format!(
                        "line is {length} bytes, over the {} byte hard limit; its first {} bytes are kept here, the whole line is at byte offset {offset} of the input",
                        HARD_LINE_CAP, KEPT_PREFIX
                    );
                    self.quarantine(path, Some(line), None, reason, &prefix)?;
                    self.commit(path, line)?;
                }
                Piece::Lines { data, first_line } => {
                    self.summary.bytes += data.len() as u64;
                    self.observer.bytes_read(data.len() as u64);
                    let oriented = *line_oriented.get_or_insert_with(|| is_line_oriented(path, &data));
                    if oriented {
                        let last = self.lines(path, &data, first_line)?;
                        self.commit(path, last)?;
                    } else {
                        whole.extend_from_slice(&data);
                    }
                }
            }
        }
        if line_oriented == Some(false) {
            self.summary.messages += 1;
            let decoded = decode_message(&whole, &self.context, Timestamp::now(), self.options.max_message_bytes.max(whole.len().min(1 << 30)));
            self.apply(path, Some(1), &whole, decoded)?;
            self.commit(path, 1)?;
        }
        Ok(())
    }

    /// Maps a chunk of lines in parallel and applies them in order; returns the last line number.
    fn lines(&mut self, path: &Path, data: &[u8], first_line: u64) -> Result<u64, IngestError> {
        let lines: Vec<(u64, &[u8])> = data
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, l)| (first_line + i as u64, l.strip_suffix(b"\r").unwrap_or(l)))
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .collect();
        let last = first_line + memchr::memchr_iter(b'\n', data).count().saturating_sub(usize::from(data.ends_with(b"\n"))) as u64;
        // Context resources in the chunk first, so AuditEvents in it can refer to them.
        let context_lines: Vec<usize> = lines.iter().enumerate().filter(|(_, (_, l))| mentions_context_type(l)).map(|(i, _)| i).collect();
        let mut decoded_context = Vec::new();
        for &i in &context_lines {
            let (line, raw) = lines[i];
            let decoded = decode_message(raw, &self.context, Timestamp::now(), self.options.max_message_bytes);
            for d in &decoded {
                if let Decoded::Context { resource, .. } = d {
                    let _ = self.context.insert(resource);
                }
            }
            decoded_context.push((i, line, decoded));
        }
        let received_at = Timestamp::now();
        let context = &self.context;
        let max = self.options.max_message_bytes;
        let mut decoded: Vec<Option<Vec<Decoded>>> = lines
            .par_iter()
            .enumerate()
            .map(|(i, (_, raw))| if context_lines.binary_search(&i).is_ok() { None } else { Some(decode_message(raw, context, received_at, max)) })
            .collect();
        for (i, _, d) in decoded_context {
            decoded[i] = Some(d);
        }
        for ((line, raw), items) in lines.iter().zip(decoded) {
            self.summary.messages += 1;
            self.apply(path, Some(*line), raw, items.unwrap_or_default())?;
        }
        Ok(last)
    }

    fn apply(&mut self, path: &Path, line: Option<u64>, raw: &[u8], items: Vec<Decoded>) -> Result<(), IngestError> {
        for item in items {
            match item {
                Decoded::Event { entry, event } => {
                    let (source, id) = (event.source_system.clone(), event.event_id.clone());
                    match self.journal.append(event)? {
                        Appended::Stored { .. } => self.summary.stored += 1,
                        Appended::Duplicate => self.summary.duplicates += 1,
                        Appended::Conflict => {
                            let reason = format!("event id '{id}' from source '{source}' is already stored with different content; a source must not reuse an id");
                            self.quarantine(path, line, entry, reason, raw)?;
                        }
                    }
                }
                Decoded::Context { resource, .. } => {
                    let _ = self.context.insert(&resource);
                    self.journal.keep_context(&resource.raw)?;
                    self.summary.context_resources += 1;
                }
                Decoded::Rejected(Rejection { entry, reason, raw: entry_raw }) => {
                    self.quarantine(path, line, entry, reason, entry_raw.as_deref().unwrap_or(raw))?;
                }
            }
        }
        Ok(())
    }

    fn quarantine(&mut self, path: &Path, line: Option<u64>, entry: Option<usize>, reason: String, raw: &[u8]) -> Result<(), IngestError> {
        self.summary.quarantined += 1;
        let entry = QuarantineEntry {
            received_at: Timestamp::now().to_rfc3339(),
            input: path.display().to_string(),
            line,
            entry,
            reason,
            raw: None,
            raw_base64: None,
        }
        .with_raw(raw);
        self.journal.quarantine(&entry)?;
        Ok(())
    }

    fn commit(&mut self, path: &Path, line: u64) -> Result<(), IngestError> {
        self.summary.durable_seq = self.journal.commit()?;
        self.observer.durable(path, line, &self.summary);
        if self.journal.maybe_seal()?.is_some() {
            self.summary.epochs_sealed += 1;
        }
        Ok(())
    }
}

fn mentions_context_type(line: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 3] = [b"\"Practitioner", b"\"Organization\"", b"\"Patient\""];
    NEEDLES.iter().any(|n| memchr::memmem::find(line, n).is_some())
        && serde_json::from_slice::<ResourceTypeOnly>(line).is_ok_and(|h| matches!(h.resource_type.as_deref(), Some("Practitioner" | "PractitionerRole" | "Organization" | "Patient")))
}

#[derive(serde::Deserialize)]
struct ResourceTypeOnly {
    #[serde(rename = "resourceType")]
    resource_type: Option<String>,
}
