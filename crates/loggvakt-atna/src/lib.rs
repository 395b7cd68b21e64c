//! # loggvakt-atna
//!
//! Owns the IHE ATNA (ITI-20) input: RFC 5424 syslog messages ([`syslog`]), the two TCP
//! framings of RFC 6587 ([`framing`]), and the audit message in its payload ([`audit`]),
//! in the DICOM PS3.15 A.5 schema or the older RFC 3881 spelling, mapped onto
//! [`loggvakt_model::AccessEvent`]. The mapping rules are in `docs/atna-mapping.md`.
//!
//! Must not: touch sockets or the store, or accept a document type definition. XML with a
//! DOCTYPE is refused outright, so no external entity is ever fetched and no entity is
//! ever expanded. Every failure names the element or attribute and why.

pub mod audit;
pub mod framing;
pub mod syslog;

pub use audit::{map_audit_message, AtnaError, AuditInput};
pub use framing::{FrameError, Framer};
pub use syslog::{parse_syslog, SyslogError, SyslogMessage};
