//! Bad input gets a precise quarantine reason, the good lines around it are stored, and
//! the store stays valid.

use std::path::{Path, PathBuf};

use crate::support::*;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(rel)
}

/// A file of: good line, `bad` line, good line.
fn sandwich(ws: &Workspace, bad: &[u8]) -> PathBuf {
    let good = std::fs::read(data("good-two-events.ndjson")).expect("fixture");
    let mut lines = good.split(|b| *b == b'\n');
    let (first, second) = (lines.next().expect("line 1"), lines.next().expect("line 2"));
    let mut bytes = first.to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(bad.strip_suffix(b"\n").unwrap_or(bad));
    bytes.push(b'\n');
    bytes.extend_from_slice(second);
    bytes.push(b'\n');
    let path = ws.path("input.ndjson");
    std::fs::write(&path, bytes).expect("write input");
    path
}

/// Ingests the sandwich; asserts exit 3, two stored, line 2 quarantined for `reason`, store intact.
fn assert_quarantined(bad: &[u8], reason_parts: &[&str]) {
    let ws = Workspace::new();
    let input = sandwich(&ws, bad);
    let store = ws.path("store");
    let out = ws.ingest(&store, std::slice::from_ref(&input), &[]);
    let summary = text(&out);
    assert_eq!(out.status.code(), Some(3), "exit 3 says some input was quarantined:\n{summary}");
    assert!(summary.contains("2 events stored") && summary.contains("1 quarantined"), "{summary}");
    let quarantined = loggvakt_journal::read_quarantine(&store).expect("quarantine");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let q = &quarantined[0];
    assert_eq!(q.line, Some(2));
    assert_eq!(q.input, input.display().to_string());
    for part in reason_parts {
        assert!(q.reason.contains(part), "reason '{}' should mention '{part}'", q.reason);
    }
    let kept = q.raw.as_ref().map(|r| r.len()).or_else(|| q.raw_base64.as_ref().map(|b| b.len() * 3 / 4)).unwrap_or(0);
    assert!(kept + 2 >= bad.len().min(loggvakt_ingest::KEPT_PREFIX), "the raw bytes are kept ({kept} of {})", bad.len());
    let events = loggvakt_journal::read_sealed_events(&store).expect("events");
    assert_eq!(events.iter().map(|(_, e)| e.event_id.as_str()).collect::<Vec<_>>(), ["good-r4-1", "good-r5-2"]);
    let verified = ws.verify(&store, None);
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn truncated_json_is_quarantined() {
    assert_quarantined(&std::fs::read(data("bad/truncated-json.ndjson")).expect("fixture"), &["truncated JSON", "column"]);
}

#[test]
fn a_resource_that_is_not_an_audit_event_is_quarantined() {
    assert_quarantined(&std::fs::read(data("bad/wrong-resource-type.ndjson")).expect("fixture"), &["resourceType is 'Observation'", "expected AuditEvent"]);
}

#[test]
fn an_invalid_fodselsnummer_is_quarantined_with_the_failing_check_digit() {
    assert_quarantined(
        &std::fs::read(data("bad/invalid-fodselsnummer.ndjson")).expect("fixture"),
        &["AuditEvent.entity[0].what.identifier.value", "'15038510191'", "check digit 2"],
    );
}

#[test]
fn a_timestamp_without_a_zone_is_quarantined() {
    assert_quarantined(&std::fs::read(data("bad/timestamp-without-zone.ndjson")).expect("fixture"), &["AuditEvent.period.start", "has no time zone"]);
}

#[test]
fn a_fifty_megabyte_line_is_quarantined_whole() {
    let mut line = br#"{"resourceType":"AuditEvent","id":"huge","recorded":"2026-11-18T10:00:00Z","extension":[{"url":"x","valueString":""#.to_vec();
    line.resize(50 * 1024 * 1024, b'a');
    line.extend_from_slice(br#""}]}"#);
    let size = format!("message is {} bytes", line.len());
    assert_quarantined(&line, &[&size, "over the limit"]);
}

#[test]
fn non_utf8_bytes_are_quarantined_and_kept_as_base64() {
    let good = std::fs::read(data("good-two-events.ndjson")).expect("fixture");
    let mut line = good.split(|b| *b == b'\n').next().expect("line").to_vec();
    let at = line.windows(6).position(|w| w == b"Haugen").expect("a name to damage");
    line[at + 1] = 0xff;
    let offset = at + 1;
    assert_quarantined(&line, &["not UTF-8", &format!("offset {offset}"), "0xff"]);
}

#[test]
fn events_without_a_patient_are_kept_without_one() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let out = ws.ingest(&store, &[data("no-patient.ndjson")], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let events = loggvakt_journal::read_sealed_events(&store).expect("events");
    assert_eq!(events.len(), 2);
    for (_, e) in &events {
        assert_eq!(e.patient_id, None, "{} has no patient", e.event_id);
        assert_eq!(e.tenant_orgnr, "998877601");
    }
    let search = events.iter().find(|(_, e)| e.event_id == "search-by-name-1").expect("search kept");
    assert_eq!(search.1.action, "search");
    assert_eq!(search.1.document_id.as_deref(), Some("Patient?name=Hansen&birthdate=1985-03-15"));
    let login = events.iter().find(|(_, e)| e.event_id == "login-1").expect("login kept");
    assert_eq!(login.1.action, "login");
}
