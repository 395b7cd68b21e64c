//! # loggvakt-journal
//!
//! Owns writing a store: appending and group commit into the write-ahead journal, sealing
//! epochs into segments, manifests and signed checkpoints, recovery after a crash, the
//! quarantine and the kept context. [`Journal`] is the one writer. The files themselves
//! (layout, hashes, encodings: `docs/format.md`) are `loggvakt-format`'s, which readers
//! use directly.
//!
//! Must not: parse input formats, print to the terminal, or let anything but
//! [`Journal::append`] add a record. It never rewrites a sealed file; recovery only
//! removes files that a crash left uncommitted.

mod append_log;
mod context;
mod idempotency;
pub mod publish;
pub mod quarantine;
mod store;

// The store's files as `docs/format.md` specifies them live in `loggvakt-format`; the writer
// builds on them, and they are re-exported so that `loggvakt_journal::chain` and the like
// keep working for the writer's users.
use loggvakt_format::fsutil;
#[doc(hidden)]
pub use loggvakt_format::vectors;
/// The store's error, shared with the format crate's readers.
pub use loggvakt_format::StoreError as JournalError;
pub use loggvakt_format::{chain, index, layout, manifest, note, own, patients, segment, wal};

pub use context::{read_context, KeptContext};
pub use loggvakt_format::note::{Checkpoint, SigningKey, VerifierKey};
pub use loggvakt_format::reader::{read_sealed_events, read_segment_events, visit_segment_events, SegmentRow};
pub use loggvakt_format::writer_is_running;
pub use quarantine::{read_quarantine, read_quarantine_records, read_retries, QuarantineEntry, QuarantineRecord, RetryRecord};
pub use store::{Appended, Journal, JournalOptions, PreparedRecord, Recovery, SealJob, SealReport};
