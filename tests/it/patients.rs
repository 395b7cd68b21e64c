//! The patient index (`docs/format.md` §6, "Patient index"): a patient's rows found through it
//! are exactly the rows a full scan finds, after merges, after a rebuild, on a store written
//! before it existed; and the verifier catches a run that hides an access.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use loggvakt_journal::patients;

use crate::support::*;

/// Every patient's sequence numbers, by reading every segment.
fn by_full_scan(store: &Path) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (seq, event) in loggvakt_journal::read_sealed_events(store).expect("read the store") {
        if let Some(patient) = event.patient_id {
            out.entry(patient).or_default().insert(seq);
        }
    }
    out
}

/// One patient's sequence numbers, through the index (records of another patient with the
/// same 64-bit key are dropped, as every reader does).
fn by_index(store: &Path, patient: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    patients::lookup(store, patient, |seq, record| {
        let event = loggvakt_model::AccessEvent::decode_record(record).expect("a record");
        if event.patient_id.as_deref() == Some(patient) {
            assert!(out.insert(seq), "seq {seq} found twice for {patient}");
        }
        Ok(())
    })
    .expect("lookup");
    out
}

fn assert_index_matches_scan(store: &Path) {
    let expected = by_full_scan(store);
    assert!(expected.len() > 100, "a region with many patients: {}", expected.len());
    for (patient, seqs) in &expected {
        assert_eq!(&by_index(store, patient), seqs, "patient {patient}");
    }
    let last_epoch = manifests(store).last().map(|m| m.epoch).unwrap();
    assert_eq!(patients::lookup(store, "no-such-patient", |_, _| Ok(())).unwrap(), last_epoch, "every sealed epoch is indexed");
}

fn runs(store: &Path) -> Vec<(u64, u64)> {
    patients::list_runs(store).unwrap().iter().map(|r| (r.first_epoch, r.last_epoch)).collect()
}

#[test]
fn a_patients_rows_through_the_index_are_exactly_those_a_full_scan_finds() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let files = ws.samples("input", 31, 2400);
    // 100-record epochs: 24+ seals, so runs are merged (8 epochs into one) as the seals go.
    let out = ws.ingest(&store, &files, &["--epoch-records", "100", "--chunk-bytes", "16384"]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let epochs = manifests(&store).len() as u64;
    assert!(epochs >= 20, "{epochs} epochs");
    let r = runs(&store);
    assert!(r.iter().any(|(first, last)| last - first + 1 == 8), "merged runs: {r:?}");
    assert!(r.len() < 16, "merged as it went: {r:?}");
    assert_index_matches_scan(&store);
    let verified = ws.verify(&store, None);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("patient index:"), "verify checks it: {}", text(&verified));

    // A store written before the index existed (or whose index was lost) is indexed when
    // the writer next opens it, and gives the same rows.
    std::fs::remove_dir_all(store.join(patients::PATIENT_INDEX_DIR)).unwrap();
    let more = ws.samples("more", 32, 300);
    let out = ws.ingest(&store, &more[1..], &["--epoch-records", "100", "--chunk-bytes", "16384"]);
    assert!(out.status.success(), "ingest again: {}", text(&out));
    assert!(manifests(&store).len() as u64 > epochs);
    assert_index_matches_scan(&store);
}

#[test]
fn verify_catches_a_run_that_hides_a_patients_access() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let run = patients::list_runs(&store).unwrap()[0];
    let path = store.join(patients::PATIENT_INDEX_DIR).join(run.file_name());
    // Rewrite the run without one event, as someone who knows the format would: its footer
    // is right, the segments say otherwise.
    let mut entries = Vec::new();
    for m in manifests(&store).iter().filter(|m| m.epoch >= run.first_epoch && m.epoch <= run.last_epoch) {
        for segment in &m.segments {
            patients::segment_entries(&store, &segment.path, &mut entries).unwrap();
        }
    }
    entries.remove(entries.len() / 2);
    patients::write_run(&store, run, &mut entries).unwrap();
    assert_reports(&ws.verify(&store, None), &["modified index", "patient index", "holds", "its segments give", &run.file_name()]);

    // Damage a byte without fixing the footer: caught by the footer.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert_reports(&ws.verify(&store, None), &["patient index", "footer hash"]);
}
