//! The FHIR examples in samples/fhir/ map to the fields a privacy officer needs, and
//! ingest is idempotent and single-writer.

use std::path::{Path, PathBuf};

use crate::support::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/fhir").join(name)
}

fn ingest_examples(ws: &Workspace) -> (PathBuf, Vec<loggvakt_model::AccessEvent>) {
    let store = ws.path("store");
    let files = [example("r4-read-break-the-glass.json"), example("r5-search-contained-role.json"), example("batch-bundle.json")];
    let out = ws.ingest(&store, &files, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let events = loggvakt_journal::read_sealed_events(&store).expect("events").into_iter().map(|(_, e)| e).collect();
    (store, events)
}

#[test]
fn an_r4_break_the_glass_read_maps_every_field() {
    let ws = Workspace::new();
    let (_, events) = ingest_examples(&ws);
    let e = events.iter().find(|e| e.event_id == "7d1f3c2e-5b8a-4f0e-9c61-2a4b8e9d0f11").expect("R4 event");
    assert_eq!(e.source_format, "fhir-r4");
    assert_eq!(e.tenant_orgnr, "998877601");
    assert_eq!(e.user_person_id.as_deref(), Some("02079110046"));
    assert_eq!(e.user_local_id.as_deref(), Some("ihaugen"));
    assert_eq!(e.user_name.as_deref(), Some("Ingrid Haugen"));
    assert_eq!(e.unit_id.as_deref(), Some("4001234"));
    assert_eq!(e.unit_name.as_deref(), Some("Akuttmottak"));
    assert_eq!(e.role_code.as_deref(), Some("LEGE"));
    assert_eq!(e.patient_id.as_deref(), Some("15038510190"));
    assert_eq!(e.patient_id_kind.as_deref(), Some("fnr"));
    assert_eq!(e.record_part.as_deref(), Some("MedicationStatement"));
    assert_eq!(e.document_id.as_deref(), Some("MedicationStatement/ms-88412"));
    assert_eq!(e.sensitivity.as_deref(), Some("N"));
    assert_eq!(e.data_owner_org.as_deref(), Some("912345602"));
    assert_eq!(e.action, "read");
    assert_eq!(e.action_code.as_deref(), Some("R/read"));
    assert_eq!(e.basis, "self_authorisation");
    assert_eq!(e.purpose_code.as_deref(), Some("BTG"));
    assert_eq!(e.reason_text.as_deref(), Some("Pasient bevisstløs i akuttmottak, trenger medisinliste"));
    assert_eq!(e.outcome, "granted");
    assert_eq!(e.source_system, "EPJ-Midtfjord");
    assert_eq!(e.occurred_at.to_rfc3339(), "2026-11-16T01:14:07.412Z");
    let raw = std::fs::read(example("r4-read-break-the-glass.json")).expect("example");
    assert_eq!(e.source_digest, loggvakt_fhir::source_digest(&raw), "the digest is of the original bytes");
}

#[test]
fn an_r5_event_finds_its_user_and_tenant_through_a_contained_role() {
    let ws = Workspace::new();
    let (_, events) = ingest_examples(&ws);
    let e = events.iter().find(|e| e.event_id == "c3a9e2f4-1d7b-4c58-8e02-6f5a1b3c9d27").expect("R5 event");
    assert_eq!(e.source_format, "fhir-r5");
    assert_eq!(e.tenant_orgnr, "987654309");
    assert_eq!(e.user_hpr.as_deref(), Some("9144889"));
    assert_eq!(e.user_person_id.as_deref(), Some("24117210029"));
    assert_eq!(e.user_name.as_deref(), Some("Knut Solberg"));
    assert_eq!(e.role_code.as_deref(), Some("SYKEPLEIER"));
    assert_eq!(e.patient_id.as_deref(), Some("30066010186"));
    assert_eq!(e.action, "search");
    assert_eq!(e.basis, "normal");
    assert_eq!(e.purpose_code.as_deref(), Some("TREAT"));
}

#[test]
fn a_batch_bundle_maps_each_entry_and_uses_its_own_context() {
    let ws = Workspace::new();
    let (store, events) = ingest_examples(&ws);
    let export = events.iter().find(|e| e.event_id == "0b6f5e1a-8c44-4d2b-a7e9-3f1c0d2b4a55").expect("export event");
    assert_eq!(export.action, "print_export");
    assert_eq!(export.tenant_orgnr, "998877601");
    assert_eq!(export.user_hpr.as_deref(), Some("5512345"));
    assert_eq!(export.role_code.as_deref(), Some("HELSESEKRETAER"));
    assert_eq!(export.basis, "normal");
    let login = events.iter().find(|e| e.event_id == "5e2d7c90-3b1f-4a86-b0d4-9c8e7f6a5b43").expect("login event");
    assert_eq!(login.action, "login");
    assert_eq!(login.patient_id, None);
    assert_eq!(login.tenant_orgnr, "998877601");
    assert_eq!(loggvakt_journal::read_context(&store).expect("context").len(), 2, "Organization and PractitionerRole kept");
}

#[test]
fn a_role_imported_in_an_earlier_run_resolves_a_later_event() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let files = ws.samples("input", 5, 400);
    assert!(ws.ingest(&store, &files[..1], &[]).status.success(), "context first, alone");
    let out = ws.ingest(&store, &files[1..], &[]);
    let summary = text(&out);
    assert!(out.status.success(), "events referring to earlier PractitionerRoles all map: {summary}");
    assert!(summary.contains("400 events stored"), "{summary}");
}

#[test]
fn ingesting_the_same_file_twice_stores_each_event_once() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let files = ws.samples("input", 3, 300);
    assert!(ws.ingest(&store, &files, &[]).status.success());
    let out = ws.ingest(&store, &files, &[]);
    let summary = text(&out);
    assert!(out.status.success(), "{summary}");
    assert!(summary.contains("0 events stored") && summary.contains("300 duplicates skipped"), "{summary}");
    assert_eq!(loggvakt_journal::read_sealed_events(&store).expect("events").len(), 300);
}

#[test]
fn a_second_writer_is_refused() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let key = loggvakt_journal::SigningKey::parse(&std::fs::read_to_string(&ws.key).expect("key")).expect("parse key");
    let (_writer, _) = loggvakt_journal::Journal::open(&store, key, Default::default()).expect("first writer");
    let out = ws.ingest(&store, &[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/no-patient.ndjson")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is open by another writer"), "{}", text(&out));
}

#[test]
fn segments_carry_page_indexes_and_statistics_for_patient_and_time_lookups() {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};

    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let segment = &manifests(&store)[0].segments[0];
    let file = std::fs::File::open(store.join(&segment.path)).expect("segment");
    let reader = SerializedFileReader::new_with_options(file, ReadOptionsBuilder::new().with_page_index().build()).expect("parquet");
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let column = |name: &str| (0..schema.num_columns()).find(|&i| schema.column(i).name() == name).expect("column");
    let (patient, occurred) = (column("patient_id"), column("occurred_at"));
    let column_index = metadata.column_index().expect("a column index is written");
    let offset_index = metadata.offset_index().expect("an offset index is written");
    assert!(!offset_index[0][patient].page_locations().is_empty());
    for c in [patient, occurred] {
        assert!(!matches!(column_index[0][c], parquet::file::page_index::column_index::ColumnIndexMetaData::NONE), "page min/max for column {c}");
        let stats = metadata.row_group(0).column(c).statistics().expect("row-group statistics");
        assert!(stats.min_bytes_opt().is_some() && stats.max_bytes_opt().is_some());
    }
}

#[test]
fn ingest_without_a_key_says_how_to_make_one_and_touches_nothing() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let out = run(loggvakt()
        .env_remove("LOGGVAKT_SIGNING_KEY")
        .arg("ingest")
        .arg("--store")
        .arg(&store)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/no-patient.ndjson")));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("loggvakt keygen"), "{}", text(&out));
    assert!(!store.exists(), "no store is created without a key");
}
