//! # loggvakt-analyse
//!
//! Owns the snooping analysis: detectors as SQL files (`detectors/`, header + query) and
//! shared views (`queries/`) run by Apache DataFusion over the journal's Parquet segments
//! and the context snapshot; the explanation of accesses by care evidence; the grouping of
//! flags into cases, their ranking and the per-organisation review queues; the reports
//! (JSON, CSV, HTML); and the evaluation against ground-truth labels.
//!
//! Must not: write the journal (a review run is logged by the caller through the journal's
//! own append API), print to the terminal, or put two organisations' data in one output.
//! Detector logic lives in SQL, not here: adding a detector is adding a file.

pub mod csv;
pub mod detector;
pub mod engine;
pub mod eval;
mod kept;
mod parts;
pub mod pinned;
mod pool;
pub mod portable;
pub mod queue;
pub mod report;
pub mod settings;

pub use detector::{load_detectors, load_sql, Detector, SqlFile};
pub use engine::{analyse, analyse_async, check_params, Analysis, Job, Period, Progress};
pub use parts::PartFunction;
pub use pinned::{PinnedSegments, ReadFrom};
pub use queue::{build_queues, Notice, Queue, ReviewBasis};
pub use settings::Settings;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{origin}{}: {reason}", if *line > 0 { format!(" line {line}") } else { String::new() })]
    Definition { origin: String, line: usize, reason: String },
    #[error("{context}: {reason}")]
    Query { context: String, reason: String },
    #[error("{} has no sealed events (no data/ directory); ingest some first", .0.display())]
    NoEvents(PathBuf),
    #[error("{} has no context; import population, staff and care evidence first with 'loggvakt context import --store {} FILES'", .0.display(), .0.display())]
    NoContext(PathBuf),
    #[error("context snapshot {} has no table {table}: it was imported by an older loggvakt; run 'loggvakt context import' again with the same files (it rebuilds the tables)", .dir.display())]
    OldContext { dir: PathBuf, table: &'static str },
    #[error(transparent)]
    Context(#[from] loggvakt_context::ContextError),
    #[error("{context} needs more memory than the limit of {} allows ({reason}); raise --memory-limit, or review one organisation at a time (--org)", bytes_text(*.limit))]
    MemoryLimit { context: String, limit: usize, reason: String },
    #[error("parameter {name}={value}: the value must be a number or a plain word (letters, digits, _ . : + -), as it is written into the detectors' SQL")]
    Parameter { name: String, value: String },
}

/// `64 KiB`, `96 MiB`, `8.0 GiB`: a size as people read it.
fn bytes_text(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

impl AnalyseError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AnalyseError::Io { path: path.to_owned(), source }
    }
}
