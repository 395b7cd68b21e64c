//! The access event: every field, once, in canonical order.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};

use crate::canonical::{CanonicalError, Reader, CANONICAL_VERSION};
use crate::field::{Digest16, FieldValue, Timestamp};
use crate::ColumnError;

/// Name and meaning of one event field, in canonical order.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub nullable: bool,
    pub doc: &'static str,
}

macro_rules! access_event {
    (
        canonical { $( #[doc = $doc:literal] $name:ident : $ty:ty ),* $(,)? }
        audit { #[doc = $adoc:literal] $aname:ident : $aty:ty $(,)? }
    ) => {
        /// One access to (or attempt on) a health record, as of the time of access.
        ///
        /// Codes (`action`, `basis`, `channel`, `outcome`, `patient_id_kind`) are the
        /// lower-case constants in [`crate::codes`].
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct AccessEvent {
            $( #[doc = $doc] pub $name: $ty, )*
            #[doc = $adoc] pub $aname: $aty,
        }

        /// The fields of [`AccessEvent`] in canonical order; the audit digest comes last
        /// and is not part of the canonical event encoding.
        pub const FIELDS: &[FieldSpec] = &[
            $( FieldSpec { name: stringify!($name), nullable: <$ty as FieldValue>::NULLABLE, doc: $doc }, )*
            FieldSpec { name: stringify!($aname), nullable: <$aty as FieldValue>::NULLABLE, doc: $adoc },
        ];

        impl AccessEvent {
            /// Appends the canonical encoding of the event to `out`: what the event says,
            /// independent of how the message spelled it (so without the source digest).
            pub fn encode_canonical(&self, out: &mut Vec<u8>) {
                out.push(CANONICAL_VERSION);
                $( self.$name.put(out); )*
            }

            /// Appends the record encoding: the canonical encoding, then the source digest.
            /// This is what the chain hashes and the write-ahead journal stores.
            pub fn encode_record(&self, out: &mut Vec<u8>) {
                self.encode_canonical(out);
                self.$aname.put(out);
            }

            /// Reads a record encoding back (canonical encoding + source digest).
            pub fn decode_record(bytes: &[u8]) -> Result<Self, CanonicalError> {
                let mut r = Reader::new(bytes)?;
                let event = AccessEvent {
                    $( $name: { r.enter(stringify!($name)); <$ty as FieldValue>::take(&mut r)? }, )*
                    $aname: { r.enter(stringify!($aname)); <$aty as FieldValue>::take(&mut r)? },
                };
                r.finish()?;
                Ok(event)
            }

            /// The Arrow fields of an event, in canonical order, the audit digest last.
            pub fn arrow_fields() -> Vec<Field> {
                vec![
                    $( Field::new(stringify!($name), <$ty as FieldValue>::data_type(), <$ty as FieldValue>::NULLABLE), )*
                    Field::new(stringify!($aname), <$aty as FieldValue>::data_type(), <$aty as FieldValue>::NULLABLE),
                ]
            }

            /// One Arrow column per field, in the order of [`AccessEvent::arrow_fields`].
            pub fn columns(events: &[AccessEvent]) -> Vec<ArrayRef> {
                vec![
                    $( <$ty as FieldValue>::build_array(events.iter().map(|e| &e.$name)), )*
                    <$aty as FieldValue>::build_array(events.iter().map(|e| &e.$aname)),
                ]
            }
        }

        /// The event columns of a record batch, downcast and checked once, so rows can be
        /// read or canonically encoded without per-cell type checks.
        pub struct EventColumns<'a> {
            $( $name: <$ty as FieldValue>::Column<'a>, )*
            $aname: <$aty as FieldValue>::Column<'a>,
        }

        impl<'a> EventColumns<'a> {
            /// Finds every event field by name; other columns in the batch are ignored.
            pub fn new(batch: &'a RecordBatch) -> Result<Self, ColumnError> {
                Ok(EventColumns {
                    $( $name: {
                        let array = batch.column_by_name(stringify!($name)).ok_or(ColumnError::Missing { column: stringify!($name) })?;
                        <$ty as FieldValue>::column(array, stringify!($name))?
                    }, )*
                    $aname: {
                        let array = batch.column_by_name(stringify!($aname)).ok_or(ColumnError::Missing { column: stringify!($aname) })?;
                        <$aty as FieldValue>::column(array, stringify!($aname))?
                    },
                })
            }

            pub fn event(&self, row: usize) -> AccessEvent {
                AccessEvent {
                    $( $name: <$ty as FieldValue>::get(self.$name, row), )*
                    $aname: <$aty as FieldValue>::get(self.$aname, row),
                }
            }

            /// Same bytes as `self.event(row).encode_record(out)`, without allocating.
            pub fn encode_record(&self, row: usize, out: &mut Vec<u8>) {
                out.push(CANONICAL_VERSION);
                $( <$ty as FieldValue>::put_cell(self.$name, row, out); )*
                <$aty as FieldValue>::put_cell(self.$aname, row, out);
            }

            pub fn occurred_at(&self, row: usize) -> Timestamp {
                <Timestamp as FieldValue>::get(self.occurred_at, row)
            }
            pub fn tenant_orgnr(&self, row: usize) -> &'a str {
                self.tenant_orgnr.value(row)
            }
            pub fn patient_id(&self, row: usize) -> Option<&'a str> {
                arrow_array::Array::is_valid(self.patient_id, row).then(|| self.patient_id.value(row))
            }
        }
    };
}

access_event! {
  canonical {
    /// The source's own id of the event (FHIR `AuditEvent.id`); with `source_system`, the idempotency key.
    event_id: String,
    /// The system that recorded the access (FHIR `source.observer`).
    source_system: String,
    /// The source's own sequence number, when it sends one; gaps in it reveal lost events.
    source_seq: Option<i64>,
    /// When the access happened (`period.start` / `occurredDateTime`, else `recorded`).
    occurred_at: Timestamp,
    /// When the source recorded it (`recorded`).
    recorded_at: Option<Timestamp>,
    /// When loggvakt received it.
    received_at: Timestamp,
    /// The tenant: organisation number of the accessing user's employer.
    tenant_orgnr: String,
    /// The user's fødselsnummer / D-nummer / H-nummer.
    user_person_id: Option<String>,
    /// The user's HPR number (health personnel register).
    user_hpr: Option<String>,
    /// The user's account in the source system.
    user_local_id: Option<String>,
    /// The user's name as the source gave it.
    user_name: Option<String>,
    /// The login unit or department (RESH id, or the source's unit code).
    unit_id: Option<String>,
    /// The unit's name.
    unit_name: Option<String>,
    /// The role (access template) the user acted in.
    role_code: Option<String>,
    /// The function or specialty code of that role.
    function_code: Option<String>,
    /// The patient's fødselsnummer / D-nummer / H-nummer; absent for log-ins and name searches.
    patient_id: Option<String>,
    /// `fnr`, `dnr` or `hnr`.
    patient_id_kind: Option<String>,
    /// The part of the record touched (resource type or record section).
    record_part: Option<String>,
    /// The document or resource touched.
    document_id: Option<String>,
    /// Security labels on what was touched (sorted, comma-separated), e.g. `R,V`.
    sensitivity: Option<String>,
    /// Organisation number of the organisation that owns the data touched.
    data_owner_org: Option<String>,
    /// What was done: see [`crate::codes::actions`].
    action: String,
    /// The source's own action or subtype code, kept for audit.
    action_code: Option<String>,
    /// `normal` (care relationship), `self_authorisation` (break the glass) or `unspecified`.
    basis: String,
    /// The decision template or purpose code, e.g. `TREAT`, `BTG`, `BLAALYS`.
    purpose_code: Option<String>,
    /// The user's stated reason (free text). Never shown to patients.
    reason_text: Option<String>,
    /// `desktop`, `mobile`, `downtime`, `emergency_account`, `integration` or `unspecified`.
    channel: String,
    /// `granted` or `denied`.
    outcome: String,
    /// The input format: `fhir-r4`, `fhir-r5`.
    source_format: String,
  }
  audit {
    /// BLAKE3 of the original message bytes, first 16 bytes; lets a mapping be audited later.
    source_digest: Digest16,
  }
}

/// The Arrow schema of the event fields alone.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(AccessEvent::arrow_fields()))
}
