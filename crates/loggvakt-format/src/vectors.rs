//! The test vectors in `docs/format.md`, recomputed: if the encoding, a hash or the
//! checkpoint layout changes, this fails until the spec is updated with it.

use loggvakt_model::{AccessEvent, Digest16, Timestamp};

use crate::chain::{self, to_hex};
use crate::note::{Checkpoint, SigningKey};

/// The event of the vectors (also the writer's tests' fixed event).
pub fn vector_event() -> AccessEvent {
    AccessEvent {
        event_id: "7d1f3c2e-5b8a-4f0e-9c61-2a4b8e9d0f11".into(),
        source_system: "EPJ-Midtfjord".into(),
        source_seq: Some(42),
        occurred_at: Timestamp(1_794_791_647_412_000),
        recorded_at: Some(Timestamp(1_794_791_647_530_000)),
        received_at: Timestamp(1_794_791_648_000_000),
        tenant_orgnr: "998877601".into(),
        user_person_id: Some("02079110046".into()),
        user_hpr: None,
        user_local_id: Some("ihaugen".into()),
        user_name: Some("Ingrid Haugen".into()),
        unit_id: Some("4001234".into()),
        unit_name: Some("Akuttmottak".into()),
        role_code: Some("LEGE".into()),
        function_code: None,
        patient_id: Some("15038510190".into()),
        patient_id_kind: Some("fnr".into()),
        record_part: Some("MedicationStatement".into()),
        document_id: Some("MedicationStatement/ms-88412".into()),
        sensitivity: Some("N".into()),
        data_owner_org: Some("912345602".into()),
        action: "read".into(),
        action_code: Some("R/read".into()),
        basis: "self_authorisation".into(),
        purpose_code: Some("BTG".into()),
        reason_text: Some("Pasient bevisstløs".into()),
        channel: "unspecified".into(),
        outcome: "granted".into(),
        source_format: "fhir-r4".into(),
        source_digest: Digest16(*b"0123456789abcdef"),
    }
}

pub(crate) const STORE_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
pub(crate) const KEY_SEED: [u8; 32] = [7; 32];

/// `name: value` lines, as they appear in the spec's test-vector block.
pub fn vectors() -> Vec<(&'static str, String)> {
    let event = vector_event();
    let mut canonical = Vec::new();
    event.encode_canonical(&mut canonical);
    let mut record = Vec::new();
    event.encode_record(&mut record);
    let genesis = chain::genesis(&STORE_ID);
    let leaf1 = chain::leaf(&record);
    let head1 = chain::next_head(&genesis, 1, &leaf1);
    let key = SigningKey::from_seed("vector-key", KEY_SEED);
    let checkpoint = Checkpoint { origin: Checkpoint::origin_for(&STORE_ID), size: 1, head: head1, epoch: 1, manifest: Some([0xaa; 32]), time: "2026-11-16T01:14:08Z".into() };
    vec![
        ("canonical", to_hex(&canonical)),
        ("record", to_hex(&record)),
        ("genesis", to_hex(&genesis)),
        ("leaf(1)", to_hex(&leaf1)),
        ("head(1)", to_hex(&head1)),
        ("tag(1)", to_hex(&chain::tag(&head1))),
        ("verifier key", key.verifier().to_text()),
        ("signed checkpoint", checkpoint.sign(&key).replace('\n', "\\n")),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spec_lists_the_current_test_vectors() {
        let spec = include_str!("../../../docs/format.md");
        for (name, value) in super::vectors() {
            let line = format!("{name}: {value}");
            assert!(spec.contains(&line), "docs/format.md must contain the line\n{line}");
        }
    }

    #[test]
    fn the_spec_lists_the_vector_events_text_fields() {
        let spec = include_str!("../../../docs/format.md");
        let e = super::vector_event();
        let text = [
            ("event_id", Some(e.event_id.as_str())),
            ("source_system", Some(e.source_system.as_str())),
            ("tenant_orgnr", Some(e.tenant_orgnr.as_str())),
            ("user_person_id", e.user_person_id.as_deref()),
            ("user_local_id", e.user_local_id.as_deref()),
            ("unit_id", e.unit_id.as_deref()),
            ("role_code", e.role_code.as_deref()),
            ("patient_id", e.patient_id.as_deref()),
            ("document_id", e.document_id.as_deref()),
            ("action", Some(e.action.as_str())),
            ("action_code", e.action_code.as_deref()),
            ("basis", Some(e.basis.as_str())),
            ("purpose_code", e.purpose_code.as_deref()),
            ("channel", Some(e.channel.as_str())),
            ("outcome", Some(e.outcome.as_str())),
            ("source_format", Some(e.source_format.as_str())),
        ];
        for (name, value) in text {
            let line = match value {
                Some(v) => format!("`{name}` = `{v}`"),
                None => format!("`{name}` = —"),
            };
            assert!(spec.contains(&line), "docs/format.md must list the vector's {line}");
        }
        assert!(spec.contains("`user_hpr` = —") && spec.contains("`function_code` = —"));
    }

    #[test]
    fn the_spec_lists_the_fields_in_canonical_order() {
        let spec = include_str!("../../../docs/format.md");
        let listed: Vec<&str> = spec.lines().filter_map(|l| l.strip_prefix("| ").and_then(|l| l.split(" | `").nth(1)).and_then(|l| l.split('`').next())).collect();
        let fields: Vec<&str> = loggvakt_model::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(listed, fields);
    }
}
