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
use loggvakt_journal::{Appended, Journal, JournalError, PreparedRecord, QuarantineEntry};
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
            let items = prepare(decode_message(&whole, &self.context, Timestamp::now(), self.options.max_message_bytes.max(whole.len().min(1 << 30))));
            self.learn_context(items.iter());
            self.apply(path, Some(1), &whole, items)?;
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
        let received_at = Timestamp::now();
        let max = self.options.max_message_bytes;
        let decode = |raw: &[u8], context: &ContextIndex| prepare(decode_message(raw, context, received_at, max));
        let context = &self.context;
        let mut items: Vec<Vec<Item>> = lines.par_iter().map(|(_, raw)| decode(raw, context)).collect();
        // Context resources in the chunk count as sent before the chunk's AuditEvents, so
        // lines that failed only for want of one are decoded again once it is known.
        if self.learn_context(items.iter().flatten()) {
            let context = &self.context;
            let retried: Vec<(usize, Vec<Item>)> = items
                .iter()
                .enumerate()
                .filter(|(_, line_items)| line_items.iter().any(|i| matches!(i, Item::Rejected(r) if r.unresolved_reference)))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|i| (i, decode(lines[i].1, context)))
                .collect();
            for (i, line_items) in retried {
                items[i] = line_items;
            }
        }
        for ((line, raw), line_items) in lines.iter().zip(items) {
            self.summary.messages += 1;
            self.apply(path, Some(*line), raw, line_items)?;
        }
        Ok(last)
    }

    /// Adds the context resources among `items` to the index; true if there were any.
    fn learn_context<'a>(&mut self, items: impl Iterator<Item = &'a Item>) -> bool {
        let mut learned = false;
        for item in items {
            if let Item::Context(resource) = item {
                // A resource that does not parse was rejected already; one that does is kept.
                let _ = self.context.insert(resource);
                learned = true;
            }
        }
        learned
    }

    fn apply(&mut self, path: &Path, line: Option<u64>, raw: &[u8], items: Vec<Item>) -> Result<(), IngestError> {
        for item in items {
            match item {
                Item::Event { entry, record } => {
                    match self.journal.append_prepared(record)? {
                        Appended::Stored { .. } => self.summary.stored += 1,
                        Appended::Duplicate => self.summary.duplicates += 1,
                        Appended::Conflict { source_system, event_id } => {
                            let reason = format!("event id '{event_id}' from source '{source_system}' is already stored with different content; a source must not reuse an id");
                            self.quarantine(path, line, entry, reason, raw)?;
                        }
                    }
                }
                Item::Context(resource) => {
                    self.journal.keep_context(&resource.raw)?;
                    self.summary.context_resources += 1;
                }
                Item::Rejected(Rejection { entry, reason, raw: entry_raw, .. }) => {
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

/// A decoded message, with events already encoded and hashed (on the mapping threads).
enum Item {
    Event { entry: Option<usize>, record: PreparedRecord },
    Context(ContextResource),
    Rejected(Rejection),
}

fn prepare(decoded: Vec<Decoded>) -> Vec<Item> {
    decoded
        .into_iter()
        .map(|d| match d {
            Decoded::Event { entry, event } => Item::Event { entry, record: PreparedRecord::new(event) },
            Decoded::Context { resource, .. } => Item::Context(resource),
            Decoded::Rejected(r) => Item::Rejected(r),
        })
        .collect()
}
