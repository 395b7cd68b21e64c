//! The trust boundary between sources, over real sockets: what a source may write, which
//! context its events may use, what refused input may cost, and how the commands that show
//! the quarantine treat what a sender wrote.

use serde_json::{json, Value};

use crate::daemon::*;
use crate::support::{loggvakt, run, text, Workspace};

const TOKEN_HOSPITAL: &str = "hospital-token-0123456789abcdef";
const TOKEN_CLINIC: &str = "clinic-token-0123456789abcdef";
const TOKEN_CLINIC_AUDITOR: &str = "clinic-auditor-token-0123456789";
/// The hospital trust the sample AuditEvents name, and a clinic that is another tenant.
const HOSPITAL: &str = "998877601";
const CLINIC: &str = "983971636";

/// Two sending sources for two organisations (neither with a `systems` list), the portal
/// that searches everything, and the clinic's auditor.
fn config(limits: &str) -> String {
    format!(
        r#"[http]
listen = "127.0.0.1:0"
[limits]
gap_grace_secs = 0
{limits}
[[source]]
name = "hospital"
tenant_orgnr = "{HOSPITAL}"
token = "{TOKEN_HOSPITAL}"
[[source]]
name = "clinic"
tenant_orgnr = "{CLINIC}"
token = "{TOKEN_CLINIC}"
[[source]]
name = "portal"
tenant_orgnr = "994598759"
token = "{TOKEN_PORTAL}"
search = "all"
[[source]]
name = "clinic-auditor"
tenant_orgnr = "{CLINIC}"
token = "{TOKEN_CLINIC_AUDITOR}"
search = "tenant"
"#
    )
}

/// The sample event, with its organisation agent naming `orgnr`.
fn event_for(id: &str, patient: &str, orgnr: &str) -> Value {
    let mut ae = audit_event(id, patient, None);
    ae["agent"][1]["who"]["identifier"]["value"] = Value::String(orgnr.to_owned());
    ae
}

/// The published-shape Bundle in `samples/fhir/batch-bundle.json`: an Organization, a
/// PractitionerRole, and AuditEvents that name their user only by a reference to the role.
fn sample_bundle() -> Value {
    serde_json::from_str(include_str!("../../samples/fhir/batch-bundle.json")).expect("sample Bundle")
}

fn diagnostics(outcome: &Value) -> String {
    outcome["issue"].as_array().into_iter().flatten().filter_map(|i| i["diagnostics"].as_str()).collect::<Vec<_>>().join(" | ")
}

#[test]
fn no_source_writes_or_changes_context_outside_its_organisations() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let daemon = Daemon::start(&ws, &store, &config(""));
    let (c, one, fhir) = (client(), daemon.url("/fhir/AuditEvent"), daemon.url("/fhir"));

    // Events: for its own organisation, yes; for another, no (and the other's auditor never sees it).
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &event_for("own-org", &patient(1), HOSPITAL));
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &event_for("other-org", &patient(2), CLINIC));
    assert_eq!(status, 403, "{body}");
    assert!(diagnostics(&body).contains(&format!("may not write for organisation '{CLINIC}'")), "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "AuditEvent.agent.who");

    // The store's own recording system is no source's to write, in any spelling, alone or in a Bundle.
    let mut forged_gap = event_for("gap:hospital:6-7", &patient(3), HOSPITAL);
    forged_gap["source"]["observer"] = json!({ "identifier": { "value": "loggvakt" }, "display": "loggvakt" });
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &forged_gap);
    assert_eq!(status, 403, "{body}");
    assert!(diagnostics(&body).contains("the store's own recording system"), "{body}");
    let mut forged_search = forged_gap.clone();
    forged_search["id"] = json!("read:portal:1");
    forged_search["source"]["observer"] = json!({ "display": "LoggVakt " });
    let (status, body, _) = post(&c, &fhir, TOKEN_HOSPITAL, &bundle("batch", vec![forged_search, event_for("batch-ok", &patient(4), HOSPITAL)]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"][0]["response"]["status"], "403 Forbidden", "{body}");
    assert_eq!(body["entry"][1]["response"]["status"], "201 Created", "{body}");

    // Context is per source: the hospital's PractitionerRole means nothing to the clinic.
    let mut context_only = sample_bundle();
    context_only["entry"].as_array_mut().expect("entries").truncate(2);
    let (status, body, _) = post(&c, &fhir, TOKEN_HOSPITAL, &context_only);
    assert_eq!(status, 200, "{body}");
    let by_reference = sample_bundle()["entry"][2]["resource"].clone();
    let (status, body, _) = post(&c, &one, TOKEN_CLINIC, &by_reference);
    assert_eq!(status, 422, "the clinic's namespace has no such role: {body}");
    assert_eq!(body["issue"][0]["expression"][0], "AuditEvent.agent[0].who.reference", "the element at fault, from the mapping itself");
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &by_reference);
    assert_eq!(status, 201, "the hospital's own role resolves: {body}");

    // The clinic re-posts an Organization with the hospital's id and its own orgnr: the
    // hospital's next events stay the hospital's.
    let hijack =
        bundle("batch", vec![json!({ "resourceType": "Organization", "id": "org-998877601", "identifier": [{ "system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": CLINIC }] })]);
    let (status, body, _) = post(&c, &fhir, TOKEN_CLINIC, &hijack);
    assert_eq!(status, 200, "{body}");
    let mut later = by_reference.clone();
    later["id"] = json!("after-hijack");
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &later);
    assert_eq!(status, 201, "{body}");

    // A refused transaction teaches nothing: its role is unknown afterwards.
    let mut transaction = sample_bundle();
    transaction["type"] = json!("transaction");
    transaction["entry"][1]["resource"]["id"] = json!("role-from-refused");
    transaction["entry"][3]["resource"] = json!({ "resourceType": "AuditEvent", "id": "broken" });
    let (status, body, _) = post(&c, &fhir, TOKEN_HOSPITAL, &transaction);
    assert_eq!(status, 400, "{body}");
    let mut uses_refused = by_reference.clone();
    uses_refused["id"] = json!("uses-refused-role");
    uses_refused["agent"][0]["who"]["reference"] = json!("PractitionerRole/role-from-refused");
    let (status, body, _) = post(&c, &one, TOKEN_HOSPITAL, &uses_refused);
    assert_eq!(status, 422, "context from a refused transaction is not learnt: {body}");

    // The clinic's auditor sees none of the hospital's events.
    let (status, found) = get(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_CLINIC_AUDITOR);
    assert_eq!(status, 200);
    assert!(found["entry"].as_array().into_iter().flatten().all(|e| e["resource"]["source"]["observer"]["display"] == "loggvakt"), "{found}");

    // A search without a patient is recorded for every patient whose events it shows.
    let (status, found) = get(&c, &daemon.url("/fhir/AuditEvent?source=EPJ-Midtfjord"), TOKEN_PORTAL);
    assert_eq!(status, 200, "{found}");
    assert!(found["total"].as_u64().unwrap_or(0) >= 2, "{found}");
    for p in [patient(1), patient(4)] {
        let (_, logged) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?source=loggvakt&patient={p}")), TOKEN_PORTAL);
        assert!(logged["total"].as_u64().unwrap_or(0) >= 1, "the unfiltered search is in patient {p}'s log: {logged}");
    }
    let (status, deep) = get(&c, &daemon.url("/fhir/AuditEvent?_offset=20000"), TOKEN_PORTAL);
    assert_eq!(status, 400, "past the deepest page: {deep}");
    daemon.stop();
    verify_clean(&ws, &store);

    let events = stored_events(&ws, &store);
    let ids: Vec<&str> = events.iter().map(|(_, e)| e.event_id.as_str()).collect();
    for refused in ["other-org", "gap:hospital:6-7", "read:portal:1", "uses-refused-role"] {
        assert!(!ids.contains(&refused), "{refused} is not stored: {ids:?}");
    }
    for stored in ["own-org", "batch-ok", "after-hijack"] {
        assert!(ids.contains(&stored), "{stored} is stored: {ids:?}");
    }
    assert!(events.iter().filter(|(_, e)| e.source_system != "loggvakt").all(|(_, e)| e.tenant_orgnr == HOSPITAL), "only the hospital's events");
    let hijacked = events.iter().find(|(_, e)| e.event_id == "after-hijack").expect("stored");
    assert_eq!(hijacked.1.tenant_orgnr, HOSPITAL);
}

#[test]
fn refused_input_costs_its_own_size_and_a_budget() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let entries: Vec<Value> = (0..10_000).map(|i| json!({ "resourceType": "AuditEvent", "id": format!("bad-{i}") })).collect();
    let bad = bundle("batch", entries);
    let size = serde_json::to_vec(&bad).expect("json").len() as u64;
    // Room for one such Bundle in the quarantine this hour, not two; two context resources per source.
    let daemon = Daemon::start(&ws, &store, &config(&format!("quarantine_bytes_per_hour = {}\ncontext_resources_per_source = 2", size * 3 / 2)));
    let (c, fhir) = (client(), daemon.url("/fhir"));
    let (status, body, _) = post(&c, &fhir, TOKEN_HOSPITAL, &bad);
    assert_eq!(status, 200, "{}", &body.to_string()[..300.min(body.to_string().len())]);
    assert_eq!(body["entry"].as_array().map(Vec::len), Some(10_000));
    assert!(body["entry"].as_array().expect("entries").iter().all(|e| e["response"]["status"] == "422 Unprocessable Entity"));
    let kept: u64 = std::fs::read_dir(store.join("quarantine")).expect("quarantine dir").map(|e| e.expect("entry").metadata().expect("metadata").len()).sum();
    assert!(kept < 2 * size, "a {size}-byte Bundle of 10 000 bad entries keeps {kept} bytes");

    let (status, body, headers) = post(&c, &fhir, TOKEN_HOSPITAL, &bad);
    assert_eq!(status, 429, "the budget is spent: {body}");
    assert!(headers.contains_key("retry-after"));
    assert!(diagnostics(&body).contains("quarantine_bytes_per_hour"), "{body}");
    let (status, body, _) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_CLINIC, &json!({ "resourceType": "AuditEvent", "id": "x" }));
    assert_eq!(status, 422, "another source's budget is its own: {body}");

    let three = bundle(
        "batch",
        (0..3)
            .map(|i| json!({ "resourceType": "Organization", "id": format!("o{i}"), "identifier": [{ "system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": HOSPITAL }] }))
            .collect(),
    );
    let (status, body, _) = post(&c, &fhir, TOKEN_HOSPITAL, &three);
    assert_eq!(status, 429, "over the context limit: {body}");
    assert!(diagnostics(&body).contains("context_resources_per_source"), "{body}");
    daemon.stop();

    // The quarantine lists the Bundle once; retry without the configuration refuses to
    // guess what the source may write; a torn last line breaks nothing.
    let list = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(list.contains("10000 entries") && list.contains("entries (0-9999)"), "{}", &list[..list.len().min(2000)]);
    let out = run(loggvakt().args(["quarantine", "retry", "--all", "--store"]).arg(&store).arg("--key").arg(&ws.key));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("pass the daemon's --config"), "{}", text(&out));
    let file = std::fs::read_dir(store.join("quarantine"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .expect("a quarantine file");
    let mut torn = std::fs::read(&file).expect("read");
    torn.extend_from_slice(br#"{"received_at":"2026-12-01T10:00:00Z","input":"http:hosp"#);
    std::fs::write(&file, torn).expect("write");
    let list = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(list.contains("a torn quarantine line"), "{}", &list[list.len().saturating_sub(2000)..]);
}

#[test]
fn what_a_sender_wrote_cannot_run_in_a_terminal() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let input = ws.path("hostile.ndjson");
    std::fs::write(&input, "{\"resourceType\":\"\\u001b[2J\\u001b[31mEvil\\nFake line\",\"id\":\"x\"}\n").expect("write");
    let out = ws.ingest(&store, &[input], &[]);
    assert_eq!(out.status.code(), Some(3), "quarantined: {}", text(&out));
    let list = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(!list.contains('\u{1b}'), "no escape reaches the terminal: {list:?}");
    assert!(list.contains("\\u{1b}[2J") && !list.contains("\nFake line"), "{list:?}");
}

#[test]
fn bulk_ingest_writes_only_for_the_tenants_named_and_never_as_loggvakt() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let input = ws.path("events.ndjson");
    let mut own = event_for("as-loggvakt", &patient(5), HOSPITAL);
    own["source"]["observer"] = json!({ "display": "loggvakt" });
    let lines = [event_for("hospital-1", &patient(6), HOSPITAL), event_for("clinic-1", &patient(7), CLINIC), own];
    std::fs::write(&input, lines.iter().map(|l| l.to_string() + "\n").collect::<String>()).expect("write");
    let out = ws.ingest(&store, &[input], &["--tenant", HOSPITAL]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let list = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(list.contains(&format!("may not write for organisation '{CLINIC}'")) && list.contains("own recording system"), "{list}");
    let ids: Vec<String> = stored_events(&ws, &store).into_iter().map(|(_, e)| e.event_id).collect();
    assert_eq!(ids, vec!["hospital-1".to_owned()]);
}
