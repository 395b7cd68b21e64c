//! # loggvakt-ingest
//!
//! Owns bulk ingest of files: FHIR AuditEvent JSON as single resources, Bundles, or NDJSON
//! as a bulk export writes it. Lines are mapped in parallel, then appended in input order;
//! what cannot be mapped is quarantined with file, line, entry and reason; a chunk is
//! reported durable only after the journal's `commit` returns. Also owns the one
//! authorisation step every intake path calls ([`policy`]) and the kept context by
//! namespace ([`load_contexts`]).
//!
//! Must not: write the store except through [`loggvakt_journal::Journal`], print, or stop
//! at a bad record: one bad line never costs the good lines around it.

pub mod lines;
pub mod policy;

use std::fs::File;
use std::path::{Path, PathBuf};

use loggvakt_fhir::{decode_message, ContextIndex, ContextResource, Decoded, Rejection};
use loggvakt_journal::{Appended, Journal, JournalError, PreparedRecord, QuarantineEntry};
use loggvakt_model::Timestamp;
use rayon::prelude::*;

use lines::{LineChunker, Piece};
pub use lines::{HARD_LINE_CAP, KEPT_PREFIX};
pub use policy::{Forbidden, WritePolicy, OWN_SYSTEM};

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
    /// Who the files are written for: an operator's import may write for any organisation,
    /// never for the store's own system; `--tenant` narrows it.
    pub policy: WritePolicy,
    /// The organisation of events that name none (`--default-tenant`).
    pub default_tenant: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { max_message_bytes: loggvakt_fhir::DEFAULT_MAX_MESSAGE_BYTES, chunk_bytes: 8 << 20, policy: WritePolicy::operator("bulk ingest"), default_tenant: None }
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

/// The context a store kept, by namespace: what operators imported with `loggvakt ingest`,
/// and what each daemon source sent (which only that source's events may refer to).
#[derive(Debug, Default)]
pub struct KeptContexts {
    /// Shared by every source's index, not copied into each.
    pub operator: std::sync::Arc<ContextIndex>,
    pub by_source: std::collections::HashMap<String, ContextIndex>,
}

impl KeptContexts {
    /// What `source`'s events may refer to: its own resources, then the operator's imports.
    pub fn for_source(&self, source: &str) -> ContextIndex {
        self.by_source.get(source).cloned().unwrap_or_default().with_base(self.operator.clone())
    }
}

/// Loads the context resources a store kept from earlier input, by namespace.
pub fn load_contexts(store: &Path) -> Result<KeptContexts, IngestError> {
    let mut operator = ContextIndex::new();
    let mut by_source: std::collections::HashMap<String, ContextIndex> = std::collections::HashMap::new();
    for line in loggvakt_journal::read_context(store)? {
        let index = match line.source {
            Some(source) => by_source.entry(source).or_default(),
            None => &mut operator,
        };
        // Kept resources were valid when kept; one that no longer parses is skipped, not fatal.
        let _ = index.insert_raw(&line.raw);
    }
    Ok(KeptContexts { operator: std::sync::Arc::new(operator), by_source })
}

/// The context an operator's import may refer to: earlier imports, not daemon sources'.
pub fn load_context(store: &Path) -> Result<ContextIndex, IngestError> {
    let operator = load_contexts(store)?.operator;
    Ok(std::sync::Arc::try_unwrap(operator).unwrap_or_else(|shared| (*shared).clone()))
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
}

/// Decoded input on its way to the journal: one chunk of lines (or one whole file), which
/// becomes durable as a unit.
struct Batch {
    path: PathBuf,
    data: Vec<u8>,
    /// (line number, byte range in `data`, what the line decoded to)
    lines: Vec<(u64, std::ops::Range<usize>, Vec<Item>)>,
    /// Durable through this line of `path` once applied and committed.
    last_line: u64,
    bytes: u64,
    /// A file was opened (counted when its first batch is applied).
    opens_file: bool,
}

impl<'j, O: IngestObserver + Send> Ingest<'j, O> {
    pub fn new(journal: &'j mut Journal, options: IngestOptions, observer: O) -> Result<Self, IngestError> {
        let context = load_context(journal.store_dir())?.with_default_tenant(options.default_tenant.clone());
        Ok(Ingest { journal, context, options, observer })
    }

    /// Ingests every file, then seals what is pending.
    ///
    /// Decoding (on the rayon pool, driven from this thread) and journal writing (append,
    /// fsync, seal, on a thread of its own) overlap: while one chunk is being made durable
    /// the next is being mapped. At most two decoded chunks wait, so memory stays bounded.
    pub fn run(self, paths: &[PathBuf]) -> Result<IngestSummary, IngestError> {
        let Ingest { journal, mut context, options, observer } = self;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
            let policy = &options.policy;
            let writer = scope.spawn(move || {
                let mut writer = Writer { journal, observer, summary: IngestSummary::default(), policy };
                for batch in rx {
                    writer.batch(batch)?;
                }
                if writer.journal.seal()?.is_some() {
                    writer.summary.epochs_sealed += 1;
                }
                writer.summary.durable_seq = writer.journal.durable_seq();
                Ok::<_, IngestError>(writer.summary)
            });
            let mut decoder = Decoder { context: &mut context, options: &options, tx };
            let decoded = paths.iter().try_for_each(|path| decoder.file(path));
            drop(decoder);
            let written = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // A writer error is the cause when both failed (the decoder then only saw a closed channel).
            let summary = written?;
            decoded?;
            Ok(summary)
        })
    }
}

struct Decoder<'a> {
    context: &'a mut ContextIndex,
    options: &'a IngestOptions,
    tx: std::sync::mpsc::SyncSender<Batch>,
}

impl Decoder<'_> {
    fn send(&self, batch: Batch) -> Result<(), IngestError> {
        // A closed channel means the writer stopped on an error, which `run` reports.
        self.tx.send(batch).map_err(|_| IngestError::Input { path: PathBuf::new(), source: std::io::Error::other("journal writer stopped") })
    }

    fn file(&mut self, path: &Path) -> Result<(), IngestError> {
        let io = |source| IngestError::Input { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        let mut chunker = LineChunker::new(file, self.options.chunk_bytes);
        let mut line_oriented = None;
        let mut whole = Vec::new();
        let mut opens_file = true;
        let mut batch = |data: Vec<u8>, lines, last_line, bytes| {
            let b = Batch { path: path.to_owned(), data, lines, last_line, bytes, opens_file };
            opens_file = false;
            b
        };
        while let Some(piece) = chunker.next_piece().map_err(io)? {
            match piece {
                Piece::Oversized { line, offset, length, prefix } => {
                    let reason = format!(
                        "line is {length} bytes, over the {} byte hard limit; its first {} bytes are kept here, the whole line is at byte offset {offset} of the input",
                        HARD_LINE_CAP, KEPT_PREFIX
                    );
                    let rejected = Item::Rejected(Rejection::structure(reason));
                    let range = 0..prefix.len();
                    self.send(batch(prefix, vec![(line, range, vec![rejected])], line, length + 1))?;
                }
                Piece::Lines { data, first_line } => {
                    let oriented = *line_oriented.get_or_insert_with(|| is_line_oriented(path, &data));
                    if oriented {
                        let (lines, last) = self.lines(&data, first_line);
                        let bytes = data.len() as u64;
                        self.send(batch(data, lines, last, bytes))?;
                    } else {
                        whole.extend_from_slice(&data);
                    }
                }
            }
        }
        if line_oriented == Some(false) {
            let max = self.options.max_message_bytes.max(whole.len().min(1 << 30));
            let items = prepare(decode_message(&whole, self.context, Timestamp::now(), max));
            learn_context(self.context, items.iter());
            let (range, bytes) = (0..whole.len(), whole.len() as u64);
            self.send(batch(whole, vec![(1, range, items)], 1, bytes))?;
        } else if line_oriented.is_none() {
            self.send(batch(Vec::new(), vec![], 0, 0))?; // an empty file still counts as read
        }
        Ok(())
    }

    /// Maps a chunk of lines in parallel; returns them in order with the last line number.
    #[allow(clippy::type_complexity)]
    fn lines(&mut self, data: &[u8], first_line: u64) -> (Vec<(u64, std::ops::Range<usize>, Vec<Item>)>, u64) {
        let mut lines: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
        let mut start = 0;
        let mut newlines = 0u64;
        for (i, end) in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())).enumerate() {
            newlines = i as u64; // the last piece follows the last newline
            let line = &data[start..end];
            let trimmed = line.strip_suffix(b"\r").map_or(end, |l| start + l.len());
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push((first_line + i as u64, start..trimmed));
            }
            start = end + 1;
        }
        let last = first_line + newlines.saturating_sub(u64::from(data.ends_with(b"\n")));
        let received_at = Timestamp::now();
        let max = self.options.max_message_bytes;
        let decode = |raw: &[u8], context: &ContextIndex| prepare(decode_message(raw, context, received_at, max));
        let context = &*self.context;
        let mut items: Vec<Vec<Item>> = lines.par_iter().map(|(_, range)| decode(&data[range.clone()], context)).collect();
        // Context resources in the chunk count as sent before the chunk's AuditEvents, so
        // lines that failed only for want of one are decoded again once it is known.
        if learn_context(self.context, items.iter().flatten()) {
            let context = &*self.context;
            let retried: Vec<(usize, Vec<Item>)> = items
                .iter()
                .enumerate()
                .filter(|(_, line_items)| line_items.iter().any(|i| matches!(i, Item::Rejected(r) if r.unresolved_reference)))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|i| (i, decode(&data[lines[i].1.clone()], context)))
                .collect();
            for (i, line_items) in retried {
                items[i] = line_items;
            }
        }
        let lines = lines.into_iter().zip(items).map(|((line, range), items)| (line, range, items)).collect();
        (lines, last)
    }
}

/// Adds the context resources among `items` to the index; true if there were any.
fn learn_context<'a>(context: &mut ContextIndex, items: impl Iterator<Item = &'a Item>) -> bool {
    let mut learned = false;
    for item in items {
        if let Item::Context(resource) = item {
            context.insert(resource);
            learned = true;
        }
    }
    learned
}

/// The journal side of ingest: applies decoded batches in order and makes them durable.
struct Writer<'j, O: IngestObserver> {
    journal: &'j mut Journal,
    observer: O,
    summary: IngestSummary,
    policy: &'j WritePolicy,
}

impl<O: IngestObserver> Writer<'_, O> {
    fn batch(&mut self, batch: Batch) -> Result<(), IngestError> {
        if batch.opens_file {
            self.summary.files += 1;
        }
        self.summary.bytes += batch.bytes;
        self.observer.bytes_read(batch.bytes);
        if batch.lines.is_empty() && batch.last_line == 0 {
            return Ok(());
        }
        for (line, range, items) in batch.lines {
            self.summary.messages += 1;
            self.apply(&batch.path, Some(line), &batch.data[range], items)?;
        }
        self.commit(&batch.path, batch.last_line)
    }

    fn apply(&mut self, path: &Path, line: Option<u64>, raw: &[u8], items: Vec<Item>) -> Result<(), IngestError> {
        for item in items {
            match item {
                Item::Event { entry, record } if self.policy.authorise_event(record.event()).is_err() => {
                    let reason = self.policy.authorise_event(record.event()).err().map(|e| e.to_string()).unwrap_or_default();
                    self.quarantine(path, line, entry, reason, raw)?;
                }
                Item::Event { entry, record } => match self.journal.append_prepared(record)? {
                    Appended::Stored { .. } => self.summary.stored += 1,
                    Appended::Duplicate => self.summary.duplicates += 1,
                    conflict @ Appended::Conflict { .. } => {
                        let reason = conflict.conflict_reason().unwrap_or_default();
                        self.quarantine(path, line, entry, reason, raw)?;
                    }
                },
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
        let entry =
            QuarantineEntry { received_at: Timestamp::now().to_rfc3339(), input: path.display().to_string(), line, entry, entries: vec![], reason, raw: None, raw_base64: None }
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
#[allow(clippy::large_enum_variant)] // events are the common case
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
