//! # loggvakt-fhir
//!
//! Owns the mapping from HL7 FHIR AuditEvent (R4 and R5 JSON) onto
//! [`loggvakt_model::AccessEvent`]: which agent is the user, which entity is the patient,
//! whose employee the user is (the tenant), and how actions, purposes and outcomes map.
//! It also reads the context resources an AuditEvent may point at (PractitionerRole,
//! Practitioner, Organization, Patient), contained or sent earlier.
//!
//! Must not: touch the store, decide durability, or drop anything silently. Every message
//! either maps to events or comes back as a [`Rejection`] that says where and why.
//! The mapping rules are listed in `docs/fhir-mapping.md`.

mod context;
mod map;
mod message;
mod resources;
mod time;

pub use context::{ContextIndex, ContextResource};
pub use map::MapError;
pub use message::{decode_message, Decoded, Rejection, DEFAULT_MAX_MESSAGE_BYTES};

/// The first 16 bytes of BLAKE3 over the original message bytes.
pub fn source_digest(raw: &[u8]) -> loggvakt_model::Digest16 {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(raw).as_bytes()[..16]);
    loggvakt_model::Digest16(out)
}
