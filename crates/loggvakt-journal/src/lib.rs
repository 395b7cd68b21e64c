//! # loggvakt-journal
//!
//! Owns the store on disk: the write-ahead journal, the hash chain, the Parquet segments,
//! the epoch manifests, the signed checkpoints and the quarantine. [`Journal`] is the one
//! writer; the verifier and analysers read the files through the functions here or
//! directly as Parquet. The layout and hashes are specified in `docs/format.md`.
//!
//! Must not: parse input formats, print to the terminal, or let anything but
//! [`Journal::append`] add a record. It never rewrites a sealed file; recovery only
//! removes files that a crash left uncommitted.

pub mod chain;
mod context;
mod fsutil;
mod idempotency;
pub mod layout;
pub mod manifest;
pub mod note;
pub mod own;
pub mod quarantine;
mod reader;
pub mod segment;
mod store;
#[doc(hidden)]
pub mod vectors;
pub mod wal;

use std::path::{Path, PathBuf};

pub use context::{read_context, KeptContext};
pub use note::{Checkpoint, SigningKey, VerifierKey};
pub use quarantine::{read_quarantine, read_quarantine_records, read_retries, QuarantineEntry, QuarantineRecord, RetryRecord};
pub use reader::{read_sealed_events, read_segment_events, visit_segment_events, SegmentRow};
pub use store::{writer_is_running, Appended, Journal, JournalOptions, PreparedRecord, Recovery, SealJob, SealReport};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("store {store} is open by another writer (only one process may write a store)")]
    Locked { store: PathBuf },
    #[error("key: {0}")]
    Key(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("parquet: {0}")]
    Parquet(String),
}

impl JournalError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        JournalError::Io { path: path.to_owned(), source }
    }
}
