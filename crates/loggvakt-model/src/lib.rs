//! # loggvakt-model
//!
//! Owns the access-event model: the [`AccessEvent`] fields (as of the time of access),
//! their Arrow schema, their canonical byte encoding (the input of every hash), and the
//! Norwegian identifiers an event carries.
//!
//! Must not: read or write files, know any input format (FHIR, syslog), or hash.
//! Everything here is a pure function of an event, so the journal, the verifier and any
//! outside implementation of `docs/format.md` agree byte for byte.

pub mod canonical;
pub mod codes;
mod event;
mod field;
pub mod ids;

pub use canonical::{CanonicalError, CANONICAL_VERSION};
pub use event::{event_schema, AccessEvent, EventColumns, FieldSpec, FIELDS};
pub use field::{Digest16, FieldValue, Timestamp};

/// A column read from a file is missing or of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    #[error("column '{column}' is missing")]
    Missing { column: &'static str },
    #[error("column '{column}' has type {found}, expected {expected}")]
    Type { column: &'static str, expected: String, found: String },
    #[error("column '{column}' is required but holds {count} nulls")]
    UnexpectedNull { column: &'static str, count: usize },
}
