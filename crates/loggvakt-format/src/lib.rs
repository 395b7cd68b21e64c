//! # loggvakt-format
//!
//! Owns exactly what `docs/format.md` specifies, for every process that reads or writes a
//! store: the layout of the directory (`layout`), the hash chain (`chain`, the one module
//! that knows how records are committed to: a Merkle tree later changes it and the
//! verifier), segments (`segment`: schema, writing, reading; `reader`), manifests,
//! checkpoint notes and keys (`note`), write-ahead frames (`wal`), the derived indexes
//! (`index`: epochs; `patients`: each patient's events), and the store's own records
//! (`own`: what loggvakt itself appends and what a verifier reads of them).
//!
//! Must not: decide when to seal, recover, lock for writing or hold state between calls
//! (the writer, `loggvakt-journal`, does); parse input formats; print. The verifier
//! depends on this crate and never on the writer.

pub mod chain;
#[doc(hidden)]
pub mod fsutil;
pub mod index;
pub mod layout;
pub mod manifest;
pub mod note;
pub mod own;
pub mod patients;
pub mod reader;
pub mod segment;
#[doc(hidden)]
pub mod vectors;
pub mod wal;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub use layout::LOCK_FILE;
pub use note::{Checkpoint, SigningKey, VerifierKey};
pub use reader::{read_sealed_events, read_segment_events, visit_segment_events, SegmentRow};

/// Why a store's file could not be read or written as specified.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    #[error(transparent)]
    Storage(#[from] loggvakt_storage::StorageError),
}

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io { path: path.to_owned(), source }
    }
}

/// Does a writer (the daemon, an ingest) hold the store now (`.lock`, §2)? Readers use it
/// to tell a seal in progress from files left behind. Takes and drops a shared lock for
/// an instant; never blocks.
pub fn writer_is_running(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else { return false };
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0
}
