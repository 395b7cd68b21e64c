//! # loggvakt-context
//!
//! Owns the analyser's context: FHIR R4 resources from bulk NDJSON (`Patient`,
//! `RelatedPerson`, `Practitioner`, `PractitionerRole`, `Organization`, `Encounter`,
//! `EpisodeOfCare`, `Appointment`, and the orders, results and teams that are care
//! evidence too: `ServiceRequest`, `MedicationRequest`, `MedicationDispense`,
//! `DiagnosticReport`, `ImagingStudy`, `CareTeam`; and rosters: `Schedule`, `Slot`,
//! `Location`, `HealthcareService`) turned into flat tables with validity periods, kept as
//! versioned Parquet snapshots beside the journal in `STORE/context/snapshots/`.
//!
//! An import's memory does not grow with the export: the input is sorted in bounded runs
//! on disk and merged with the previous snapshot in key order (`runs`), and the tables are
//! written batch by batch while references are resolved against an index of identities
//! (`parse::Resolver`), never a map of every resource. The work on each resource (parse,
//! canonicalise, hash, reduce to table fields) runs on every core a chunk at a time and is
//! taken in order (`pipeline`), so the snapshot does not depend on the number of cores.
//!
//! Each import merges the new resources into the newest snapshot by `Type/id` (a later
//! line replaces an earlier one) and writes a new snapshot only when something changed, so
//! importing the same files again is a no-op. References may point into other files or
//! earlier imports; a reference that resolves nowhere is reported, not fatal. Normalised
//! keys (surname, street, house, building, dwelling; street types and apartments in one
//! spelling) are computed here, once, so the detector SQL
//! needs no user-defined functions and runs unchanged on DuckDB.
//!
//! Must not: write the journal, read access events, or print to the terminal.

mod normalise;
mod parse;
mod pipeline;
mod runs;
mod snapshot;
mod tables;

pub use normalise::{address_keys, name_key, AddressKeys};
pub use runs::RUN_BYTES;
pub use snapshot::{current_snapshot, import, import_with, named_snapshot, ImportReport, Problem, SnapshotInfo};
pub use tables::TABLES;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no FHIR NDJSON files (*.ndjson, *.json) found in {0}")]
    NoInput(PathBuf),
}

impl ContextError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ContextError::Io { path: path.to_owned(), source }
    }
}
