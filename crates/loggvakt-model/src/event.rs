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
            pub fn columns(events: &[&AccessEvent]) -> Vec<ArrayRef> {
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
            pub fn source_system(&self, row: usize) -> &'a str {
                self.source_system.value(row)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        // Any Unicode, including empty strings, quotes, NUL and multi-byte characters.
        prop_oneof![Just(String::new()), "\\PC{0,24}", "[a-z0-9æøå\"\\\\\u{0}-]{0,12}"]
    }

    fn event() -> impl Strategy<Value = AccessEvent> {
        (
            proptest::collection::vec(text(), 6),
            proptest::collection::vec(proptest::option::of(text()), 17),
            proptest::collection::vec(any::<i64>(), 3),
            (proptest::option::of(any::<i64>()), proptest::option::of(any::<i64>())),
            any::<[u8; 16]>(),
        )
            .prop_map(|(required, optional, times, (source_seq, recorded), digest)| {
                let mut r = required.into_iter();
                let mut o = optional.into_iter();
                let mut req = || r.next().unwrap_or_default();
                let mut opt = || o.next().flatten();
                AccessEvent {
                    event_id: req(),
                    source_system: req(),
                    source_seq,
                    occurred_at: Timestamp(times[0]),
                    recorded_at: recorded.map(Timestamp),
                    received_at: Timestamp(times[1].wrapping_add(times[2])),
                    tenant_orgnr: req(),
                    user_person_id: opt(),
                    user_hpr: opt(),
                    user_local_id: opt(),
                    user_name: opt(),
                    unit_id: opt(),
                    unit_name: opt(),
                    role_code: opt(),
                    function_code: opt(),
                    patient_id: opt(),
                    patient_id_kind: opt(),
                    record_part: opt(),
                    document_id: opt(),
                    sensitivity: opt(),
                    data_owner_org: opt(),
                    action: req(),
                    action_code: opt(),
                    basis: req(),
                    purpose_code: opt(),
                    reason_text: opt(),
                    channel: req(),
                    outcome: opt().unwrap_or_default(),
                    source_format: "fhir-r4".into(),
                    source_digest: Digest16(digest),
                }
            })
    }

    fn record(e: &AccessEvent) -> Vec<u8> {
        let mut out = Vec::new();
        e.encode_record(&mut out);
        out
    }

    proptest! {
        #[test]
        fn record_encoding_round_trips(e in event()) {
            let bytes = record(&e);
            let back = AccessEvent::decode_record(&bytes).expect("decodes");
            prop_assert_eq!(&back, &e);
            prop_assert_eq!(record(&back), bytes);
        }

        #[test]
        fn different_events_encode_differently(a in event(), b in event()) {
            prop_assume!(a != b);
            prop_assert_ne!(record(&a), record(&b));
        }

        #[test]
        fn arrow_columns_encode_the_same_bytes(events in proptest::collection::vec(event(), 1..8)) {
            let refs: Vec<&AccessEvent> = events.iter().collect();
            let batch = RecordBatch::try_new(event_schema(), AccessEvent::columns(&refs)).expect("batch");
            let columns = EventColumns::new(&batch).expect("columns");
            for (row, e) in events.iter().enumerate() {
                let mut from_columns = Vec::new();
                columns.encode_record(row, &mut from_columns);
                prop_assert_eq!(&from_columns, &record(e));
                prop_assert_eq!(&columns.event(row), e);
            }
        }

        #[test]
        fn every_truncation_is_an_error_not_a_panic(e in event(), cut in any::<prop::sample::Index>()) {
            let bytes = record(&e);
            let at = cut.index(bytes.len());
            prop_assert!(AccessEvent::decode_record(&bytes[..at]).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AccessEvent::decode_record(&bytes);
        }
    }

    #[test]
    fn the_canonical_encoding_excludes_the_source_digest() {
        let a = AccessEvent { source_digest: Digest16([1; 16]), ..Default::default() };
        let b = AccessEvent { source_digest: Digest16([2; 16]), ..Default::default() };
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        a.encode_canonical(&mut ca);
        b.encode_canonical(&mut cb);
        assert_eq!(ca, cb);
        assert_ne!(record(&a), record(&b));
    }
}
