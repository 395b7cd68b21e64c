//! The ingest daemon over real sockets with real clients: reqwest and curl over HTTP,
//! logger and a rustls client over syslog, SIGKILL under load, a full queue.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::*;
use crate::support::{loggvakt, run, text, Workspace};

fn http_config(extra: &str) -> String {
    format!("[http]\nlisten = \"127.0.0.1:0\"\n[limits]\ngap_grace_secs = 0\n{extra}\n{}", sources_toml(""))
}

#[test]
fn fhir_create_batch_transaction_search_and_metadata() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let daemon = Daemon::start(&ws, &store, &http_config(""));
    let c = client();
    let (p1, p2) = (patient(1), patient(2));

    // One event: 201, Location and the sequence number; the same again: 200, stored once.
    let (status, body, headers) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &audit_event("ev-1", &p1, Some(1)));
    assert_eq!(status, 201, "{body}");
    let seq: u64 = headers["x-loggvakt-seq"].to_str().unwrap().parse().unwrap();
    assert_eq!(headers["location"].to_str().unwrap(), format!("AuditEvent/{seq}/_history/1"));
    let (status, body, _) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &audit_event("ev-1", &p1, Some(1)));
    assert_eq!(status, 200, "a resend is acknowledged again: {body}");
    assert_eq!(body["issue"][0]["code"], "duplicate");

    // A batch: the bad entry fails alone.
    let mut broken = audit_event("ev-bad", &p2, Some(4));
    broken["entity"][0]["what"]["identifier"]["value"] = json!("12345678901");
    let batch = bundle("batch", vec![audit_event("ev-2", &p2, Some(2)), audit_event("ev-3", &p1, Some(3)), broken.clone(), audit_event("ev-4", &p2, Some(5))]);
    let (status, body, _) = post(&c, &daemon.url("/fhir"), TOKEN_EPJ, &batch);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "batch-response");
    let statuses: Vec<&str> = body["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201 Created", "201 Created", "422 Unprocessable Entity", "201 Created"]);
    let diagnostics = body["entry"][2]["response"]["outcome"]["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("entity") && diagnostics.contains("quarantine"), "the field at fault is named: {diagnostics}");

    // A transaction with a bad entry stores nothing.
    let (status, body, _) = post(&c, &daemon.url("/fhir"), TOKEN_EPJ, &bundle("transaction", vec![audit_event("tx-1", &p1, None), broken]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "Bundle.entry[1].resource");
    let (status, body, _) = post(&c, &daemon.url("/fhir"), TOKEN_EPJ, &bundle("transaction", vec![audit_event("tx-2", &p1, None)]));
    assert_eq!((status, body["type"].as_str()), (200, Some("transaction-response")));

    // metadata
    let (status, cs) = get(&c, &daemon.url("/fhir/metadata"), "");
    assert_eq!(status, 200);
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert!(cs["rest"][0]["resource"][0]["searchParam"].as_array().unwrap().iter().any(|p| p["name"] == "patient"));

    // ITI-81: exactly that patient's events (ev-1, ev-3, tx-2), paged.
    let (status, page) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?patient=Patient/{p1}&date=ge2026-11-01&date=le2026-11-30&_count=2")), TOKEN_PORTAL);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["type"], "searchset");
    assert_eq!(page["total"], 3);
    let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").expect("a next page")["url"].as_str().unwrap().to_owned();
    let (_, page2) = get(&c, &next, TOKEN_PORTAL);
    let ids: HashSet<String> =
        [&page, &page2].iter().flat_map(|p| p["entry"].as_array().unwrap().clone()).map(|e| e["resource"]["extension"][0]["valueString"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, HashSet::from(["ev-1".to_owned(), "ev-3".to_owned(), "tx-2".to_owned()]));
    for e in page["entry"].as_array().unwrap() {
        assert_eq!(e["resource"]["entity"][0]["what"]["identifier"]["value"], p1.as_str());
    }
    // Read by the id the create answered with.
    let (status, read) = get(&c, &daemon.url(&format!("/fhir/AuditEvent/{seq}")), TOKEN_PORTAL);
    assert_eq!((status, read["extension"][0]["valueString"].as_str()), (200, Some("ev-1")));
    // Out of range dates find nothing; a source of another organisation sees none of it; one that may not search is refused.
    let (_, none) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?patient={p1}&date=lt2026-01-01")), TOKEN_PORTAL);
    assert_eq!(none["total"], 0);
    let (status, other) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?patient={p1}")), TOKEN_AUDITOR);
    assert_eq!((status, other["total"].as_u64()), (200, Some(0)), "tenants never see each other's events");
    let (status, _) = get(&c, &daemon.url(&format!("/fhir/AuditEvent/{seq}")), TOKEN_AUDITOR);
    assert_eq!(status, 404);
    let (status, refused) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?patient={p1}")), TOKEN_EPJ);
    assert_eq!(status, 403, "{refused}");
    let (status, bad) = get(&c, &daemon.url("/fhir/AuditEvent?subtype=read"), TOKEN_PORTAL);
    assert_eq!((status, bad["issue"][0]["expression"][0].as_str()), (400, Some("subtype")));

    // Operations.
    let metrics = c.get(daemon.url("/metrics")).send().unwrap().text().unwrap();
    for line in [
        "loggvakt_acknowledged_events_total 5",
        "loggvakt_duplicate_events_total 1",
        "loggvakt_fsync_seconds_count",
        "loggvakt_queue_depth_events 0",
        "loggvakt_source_lag_seconds{source=\"epj\"}",
    ] {
        assert!(metrics.contains(line), "metrics lack {line}:\n{metrics}");
    }
    assert_eq!(c.get(daemon.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(c.get(daemon.url("/readyz")).send().unwrap().text().unwrap(), "ready\n");

    daemon.stop();
    // The stop sealed everything under a signed checkpoint: nothing waits in the write-ahead journal.
    let wal: Vec<_> = std::fs::read_dir(store.join("wal")).unwrap().filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "wal")).collect();
    assert!(wal.is_empty(), "{wal:?}");
    verify_clean(&ws, &store);
    let events = stored_events(&ws, &store);
    let ids: Vec<&str> = events.iter().filter(|(_, e)| e.source_system != "loggvakt").map(|(_, e)| e.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-1", "ev-2", "ev-3", "ev-4", "tx-2"], "stored once each, in order");
    // Every search and read is itself in the journal, with the patient it exposed.
    let reads: Vec<_> = events.iter().filter(|(_, e)| e.source_system == "loggvakt" && e.action == "search").collect();
    assert!(reads.len() >= 5, "searches and reads are logged: {}", reads.len());
    assert!(reads.iter().any(|(_, e)| e.patient_id.as_deref() == Some(p1.as_str()) && e.user_local_id.as_deref() == Some("portal")));
    // Sequence number 4 was the quarantined entry: as an event it never arrived, a recorded gap.
    let gap = events.iter().find(|(_, e)| e.action_code.as_deref() == Some("source_gap")).expect("a gap event");
    assert_eq!(gap.1.event_id, "gap:epj:4-4");
    let quarantine = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(quarantine.contains("http:epj entry[2]"), "{quarantine}");
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().expect("curl runs");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn bad_input_gets_its_documented_error_and_is_kept_for_retry() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let daemon = Daemon::start(&ws, &store, &http_config("max_body_bytes = 20000\nheader_timeout_secs = 1"));
    let url = daemon.url("/fhir/AuditEvent");
    let auth = format!("Authorization: Bearer {TOKEN_EPJ}");
    let good = serde_json::to_string(&audit_event("curl-1", &patient(3), None)).unwrap();
    let fhir = "Content-Type: application/fhir+json";
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), good.clone()], 201, "stored durably"),
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), "{\"resourceType\": \"AuditEvent\", ".into()], 400, "truncated JSON"),
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), "{\"resourceType\":\"Observation\",\"id\":\"x\"}".into()], 400, "Observation"),
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), "x".repeat(30_000)], 413, "over the limit of 20000 bytes"),
        (vec!["-H".into(), fhir.into(), "--data-binary".into(), good.clone()], 401, "bearer token"),
        (
            vec!["-H".into(), fhir.into(), "-H".into(), "Authorization: Bearer not-a-configured-token-at-all".into(), "--data-binary".into(), good.clone()],
            401,
            "not that of any configured source",
        ),
        (vec!["-H".into(), "Content-Type: text/plain".into(), "-H".into(), auth.clone(), "--data-binary".into(), good.clone()], 415, "application/fhir+json"),
        (
            vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), good.replace("EPJ-Midtfjord", "Other-EPJ").replace("curl-1", "curl-2")],
            403,
            "may not send events recorded by 'Other-EPJ'",
        ),
        // A resend that a sender serialised again (indented) is the same event.
        (
            vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), serde_json::to_string_pretty(&audit_event("curl-1", &patient(3), None)).unwrap()],
            200,
            "already stored",
        ),
        // JSON that is not a resource at all is a 400, like any other bad structure.
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), "[[[".into()], 400, "\"structure\""),
        (vec!["-H".into(), fhir.into(), "-H".into(), auth.clone(), "--data-binary".into(), "null".into()], 400, "\"structure\""),
    ];
    for (args, expected, says) in &cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push(&url);
        let (status, body) = curl(&all);
        assert_eq!(status, *expected, "{args:?} → {body}");
        let outcome: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("an OperationOutcome: {body}"));
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert!(body.contains(says), "{expected} should say '{says}': {body}");
    }
    // A slow client that never finishes its request head is cut off.
    let mut slow = TcpStream::connect(daemon.http.unwrap()).unwrap();
    slow.write_all(b"POST /fhir/AuditEvent HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&rest));
    daemon.stop();
    verify_clean(&ws, &store);

    // What could not be mapped is kept; after a fix (the source may now send for the other
    // system), retry stores it through the same mapping.
    let list = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(list.contains("truncated JSON") && list.contains("Observation") && list.contains("Other-EPJ"), "{list}");
    assert!(!list.contains("over the limit"), "refused before reading: not quarantined");
    let id = list.lines().find(|l| l.contains("[pending]")).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
    let shown = loggvakt_ok(&["quarantine", "show", &id], &store, 0);
    assert!(shown.contains("\"raw\""), "{shown}");
    let fixed = ws.path("fixed.toml");
    std::fs::write(&fixed, http_config("").replace("systems = [\"EPJ-Midtfjord\"]", "systems = [\"EPJ-Midtfjord\", \"Other-EPJ\"]")).unwrap();
    let out = run(loggvakt().args(["quarantine", "retry", "--all", "--store"]).arg(&store).arg("--key").arg(&ws.key).arg("--config").arg(&fixed));
    assert_eq!(out.status.code(), Some(3), "four entries still fail: {}", text(&out));
    assert!(text(&out).contains("stored 1 event(s)"), "{}", text(&out));
    let events = stored_events(&ws, &store);
    assert_eq!(events.iter().filter(|(_, e)| e.event_id == "curl-2").count(), 1);
    let pending = loggvakt_ok(&["quarantine", "list", "--pending"], &store, 0);
    assert!(pending.contains("4 of 5"), "{pending}");
    verify_clean(&ws, &store);
}

#[test]
fn a_second_daemon_on_the_same_store_is_refused() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let first = Daemon::start(&ws, &store, &http_config(""));
    let second = Daemon::try_start(&ws, &store, &http_config(""));
    let error = second.err().expect("the second daemon must not start");
    assert!(error.contains("open by another writer"), "{error}");
    first.stop();
}

/// The DICOM sample on one line, with a distinct patient so each message is its own event.
fn atna_xml(patient: &str, user: &str) -> String {
    include_str!("../../samples/atna/dicom-patient-record-read.xml")
        .replace("13116900216", patient)
        .replace("kari.nordmann", user)
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("")
}

fn frame(seq: i64, body: &str) -> Vec<u8> {
    let message = format!("<85>1 2026-11-20T09:14:03.120+01:00 dips.ahus.no DIPS 4711 ITI-20 [meta sequenceId=\"{seq}\"] {body}");
    format!("{} {message}", message.len()).into_bytes()
}

#[test]
fn atna_syslog_from_logger_udp_and_a_tls_client() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let pki = pki(&ws.path("pki"));
    let config = format!(
        r#"
[http]
listen = "127.0.0.1:0"
[syslog]
tls_listen = "127.0.0.1:0"
tcp_listen = "127.0.0.1:0"
udp_listen = "127.0.0.1:0"
[tls]
cert = "{}"
key = "{}"
client_ca = "{}"
[limits]
gap_grace_secs = 0
[[source]]
name = "dips-tls"
tenant_orgnr = "983971636"
cert_sha256 = "{}"
systems = ["DIPS-AHUS"]
[[source]]
name = "local-syslog"
tenant_orgnr = "983971636"
addresses = ["127.0.0.1"]
[[source]]
name = "quiet"
tenant_orgnr = "983971636"
token = "quiet-token-0123456789"
heartbeat_secs = 1
[[source]]
name = "portal"
tenant_orgnr = "994598759"
token = "{TOKEN_PORTAL}"
search = "all"
"#,
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display(),
        pki.client_fingerprint
    );
    let daemon = Daemon::start(&ws, &store, &config);
    let tcp = daemon.syslog_tcp.unwrap();
    // The operator is told plain TCP acknowledges nothing, in the documented log shape: one
    // JSON object per line with ts, level, event and the event's fields.
    let logs = daemon.log_text();
    let warning = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["event"] == "syslog_plain_tcp_not_durable")
        .unwrap_or_else(|| panic!("no syslog_plain_tcp_not_durable line in the log:\n{logs}"));
    assert_eq!(warning["level"], "warn", "{warning}");
    assert!(warning["address"].is_string() && warning["ts"].is_string(), "the event's own fields and its time: {warning}");

    // logger (util-linux) as a real client, both TCP framings, and UDP.
    for (i, extra) in [(10u32, vec!["--tcp", "--octet-count"]), (11, vec!["--tcp"]), (12, vec!["--udp"])] {
        let port = if extra.contains(&"--udp") { daemon.syslog_udp.unwrap().port() } else { tcp.port() };
        let out = Command::new("logger")
            .args(["--rfc5424", "--size", "8192", "-n", "127.0.0.1", "-P", &port.to_string(), "--sd-id", "meta", "--sd-param", &format!("sequenceId=\"{i}\"")])
            .args(&extra)
            .arg(atna_xml(&patient(i), &format!("user{i}")))
            .output()
            .expect("logger runs");
        assert!(out.status.success(), "logger {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        // In order, so their sequence numbers arrive in order. (The searches are logged too,
        // with the patient: `source` keeps them out of the count.)
        eventually(20, &format!("logger {extra:?} delivered"), || {
            get(&client(), &daemon.url(&format!("/fhir/AuditEvent?patient={}&source=DIPS-AHUS", patient(i))), TOKEN_PORTAL).1["total"] == 1
        });
    }

    // A TLS client with a certificate: sequence 1, 2, then 5 (3 and 4 never come), and a
    // message with an external entity. Its close is answered only when all is durable.
    let config = tls_client(&pki, true);
    let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(daemon.syslog_tls.unwrap()).unwrap());
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE AuditMessage [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><AuditMessage>&x;</AuditMessage>";
    for (seq, body) in [(1, atna_xml(&patient(20), "tls1")), (2, atna_xml(&patient(21), "tls2")), (5, atna_xml(&patient(22), "tls5")), (6, xxe.to_owned())] {
        tls.write_all(&frame(seq, &body)).unwrap();
    }
    tls.flush().unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    // Right after the close: the three events are searchable (committed).
    let c = client();
    for i in [20, 21, 22] {
        let (_, found) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?patient={}&source=DIPS-AHUS", patient(i))), TOKEN_PORTAL);
        assert_eq!(found["total"], 1, "patient {i}: {found}");
    }

    // Bad TLS: no client certificate, and plain text to the TLS port; neither is read.
    let conn = rustls::ClientConnection::new(tls_client(&pki, false), "localhost".try_into().unwrap()).unwrap();
    let mut anonymous = rustls::StreamOwned::new(conn, TcpStream::connect(daemon.syslog_tls.unwrap()).unwrap());
    // The handshake fails on the server's side; what the client wrote is never read.
    let _ = anonymous.write_all(&frame(9, &atna_xml(&patient(30), "anon"))).and_then(|_| anonymous.flush());
    let _ = anonymous.read(&mut [0u8; 16]);
    let mut plain = TcpStream::connect(daemon.syslog_tls.unwrap()).unwrap();
    let _ = plain.write_all(&frame(9, &atna_xml(&patient(31), "plain")));

    // Gaps and silences are recorded (grace 0 and heartbeat 1 s here).
    eventually(20, "the gap and the silent source are recorded", || {
        let state = std::fs::read_to_string(store.join("sources/state.json")).unwrap_or_default();
        state.contains("\"gaps_recorded\": 1") && state.contains("\"silences_recorded\": 1")
    });
    let metrics = c.get(daemon.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("loggvakt_source_missing_events{source=\"dips-tls\"} 2"), "{metrics}");
    assert!(metrics.contains("loggvakt_refused_total{reason=\"tls_handshake\"} 2"), "{metrics}");
    daemon.stop();
    verify_clean(&ws, &store);

    let events = stored_events(&ws, &store);
    let atna: Vec<_> = events.iter().map(|(_, e)| e).filter(|e| e.source_format == "atna-dicom").collect();
    let users: HashSet<&str> = atna.iter().filter_map(|e| e.user_local_id.as_deref()).collect();
    assert_eq!(users, HashSet::from(["user10", "user11", "user12", "tls1", "tls2", "tls5"]));
    assert!(atna.iter().all(|e| e.tenant_orgnr == "983971636" && e.source_system == "DIPS-AHUS" && e.action == "read"));
    let tls5 = atna.iter().find(|e| e.user_local_id.as_deref() == Some("tls5")).unwrap();
    assert_eq!(tls5.source_seq, Some(5));
    let findings: HashMap<(&str, &str), &str> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.source_system == "loggvakt")
        .map(|e| ((e.user_local_id.as_deref().unwrap_or(""), e.action_code.as_deref().unwrap_or("")), e.reason_text.as_deref().unwrap_or("")))
        .collect();
    assert!(findings[&("dips-tls", "source_gap")].contains("3–4 (2 events)"), "{findings:?}");
    assert!(findings[&("quiet", "source_silent")].contains("has sent nothing since"), "{findings:?}");
    assert!(!findings.contains_key(&("local-syslog", "source_gap")), "in-order numbers are no gap: {findings:?}");
    let quarantine = loggvakt_ok(&["quarantine", "list"], &store, 0);
    assert!(quarantine.contains("syslog:dips-tls") && quarantine.contains("DOCTYPE"), "{quarantine}");
    let sources = loggvakt_ok(&["sources"], &store, 0);
    assert!(sources.lines().any(|l| l.starts_with("dips-tls") && l.contains("2 events missing")), "{sources}");
    assert!(sources.lines().any(|l| l.starts_with("quiet") && l.contains("SILENT")), "{sources}");
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    let ws = Workspace::new();
    let store = ws.path("store");
    // Small epochs: seals run beside the writer all through the load, and the kill lands
    // in the middle of one more often than not.
    let small_epochs = "[journal]\nmax_epoch_records = 300";
    let daemon = Daemon::start(&ws, &store, &http_config(small_epochs));
    let url = daemon.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, stop, acknowledged) = (url.clone(), stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let ids: Vec<String> = if w % 2 == 0 { vec![format!("k{w}-{n}")] } else { (0..20).map(|i| format!("k{w}-{n}-{i}")).collect() };
                    let events: Vec<Value> = ids.iter().map(|id| audit_event(id, &patient(n % 50), None)).collect();
                    let body = if ids.len() == 1 { events[0].clone() } else { bundle("batch", events) };
                    let path = if ids.len() == 1 { "/fhir/AuditEvent" } else { "/fhir" };
                    let Ok(response) = c
                        .post(format!("{url}{path}"))
                        .header("content-type", "application/fhir+json")
                        .header("authorization", format!("Bearer {TOKEN_EPJ}"))
                        .body(serde_json::to_vec(&body).unwrap())
                        .send()
                    else {
                        break; // the daemon is gone: this request was never acknowledged
                    };
                    let status = response.status().as_u16();
                    let Ok(bytes) = response.bytes() else { break };
                    if status == 201 || status == 200 {
                        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let all_ok =
                            ids.len() == 1 || answer["entry"].as_array().is_some_and(|e| e.iter().all(|e| e["response"]["status"].as_str().is_some_and(|s| s.starts_with('2'))));
                        assert!(all_ok, "{answer}");
                        acknowledged.lock().unwrap().extend(ids);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    daemon.kill();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 100, "the load ran: {} acknowledged", acknowledged.len());

    // After a restart (recovery), resending acknowledged events stores nothing twice.
    let daemon = Daemon::start(&ws, &store, &http_config(small_epochs));
    let c = client();
    let single = acknowledged.iter().find(|id| id.matches('-').count() == 1).expect("a single event was acknowledged");
    let n: u32 = single.rsplit('-').next().unwrap().parse().unwrap();
    let (status, body, _) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &audit_event(single, &patient(n % 50), None));
    assert_eq!(status, 200, "recognised as already stored after the crash: {body}");
    daemon.stop();
    verify_clean(&ws, &store);
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, e) in stored_events(&ws, &store) {
        *count.entry(e.event_id).or_default() += 1;
    }
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !count.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} acknowledged events lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert!(count.values().all(|n| *n == 1), "every event stored once");
}

#[test]
fn a_full_queue_answers_503_and_loses_nothing() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let daemon = Daemon::start(&ws, &store, &http_config("queue_events = 60\nretry_after_secs = 1\n[journal]\nmax_epoch_records = 500"));
    let url = daemon.url("/fhir");
    let busy = Arc::new(Mutex::new(0usize));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (url, busy) = (url.clone(), busy.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut ids = Vec::new();
                for n in 0..25 {
                    let batch: Vec<String> = (0..40).map(|i| format!("q{w}-{n}-{i}")).collect();
                    let body = bundle("batch", batch.iter().map(|id| audit_event(id, &patient(w), None)).collect());
                    loop {
                        let (status, answer, headers) = post(&c, &url, TOKEN_EPJ, &body);
                        if status == 503 {
                            assert_eq!(headers["retry-after"], "1");
                            assert!(answer["issue"][0]["diagnostics"].as_str().unwrap().contains("nothing was stored"));
                            *busy.lock().unwrap() += 1;
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        assert_eq!(status, 200, "{answer}");
                        break;
                    }
                    ids.extend(batch);
                }
                ids
            })
        })
        .collect();
    let ids: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let refused = *busy.lock().unwrap();
    let (status, body, _) = post(&client(), &url, TOKEN_EPJ, &bundle("batch", (0..61).map(|i| audit_event(&format!("big-{i}"), &patient(1), None)).collect()));
    assert_eq!(status, 413, "a Bundle larger than the whole queue: {body}");
    daemon.stop();
    assert!(refused > 0, "six clients sending 40-event Bundles into a queue of 60 are told to wait at least once");
    let stored: Vec<String> = stored_events(&ws, &store).into_iter().map(|(_, e)| e.event_id).collect();
    assert_eq!(stored.len(), ids.len(), "every event stored once, none lost");
    assert_eq!(stored.into_iter().collect::<HashSet<_>>(), ids.into_iter().collect::<HashSet<_>>());
    verify_clean(&ws, &store);
}

#[test]
fn the_example_configuration_loads() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/loggvakt.toml");
    let config = loggvakt_serve::Config::load(Some(&example), std::iter::empty()).expect("deploy/loggvakt.toml is valid");
    assert_eq!(config.sources.len(), 2);
    assert!(config.http.tls && config.syslog.tls_listen.is_some());
}

#[test]
fn https_knows_a_source_by_its_client_certificate() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let pki = pki(&ws.path("pki"));
    let config = format!("[http]\nlisten = \"127.0.0.1:0\"\ntls = true\n{}{}", pki.tls_section(), sources_toml(&format!("cert_sha256 = \"{}\"", pki.client_fingerprint)));
    let daemon = Daemon::start(&ws, &store, &config);
    let url = format!("https://localhost:{}/fhir/AuditEvent", daemon.http.unwrap().port());
    let resolve = format!("localhost:{}:127.0.0.1", daemon.http.unwrap().port());
    let body = serde_json::to_string(&audit_event("mtls-1", &patient(5), None)).unwrap();
    let ca = pki.ca.display().to_string();
    let (cert, key) = (pki.client_cert.display().to_string(), pki.client_key.display().to_string());
    let fhir = "Content-Type: application/fhir+json";
    let (status, answer) = curl(&["--resolve", &resolve, "--cacert", &ca, "--cert", &cert, "--key", &key, "-H", fhir, "--data-binary", &body, &url]);
    assert_eq!(status, 201, "the client certificate is the epj source: {answer}");
    let (status, answer) = curl(&["--resolve", &resolve, "--cacert", &ca, "-H", fhir, "--data-binary", &body, &url]);
    assert_eq!(status, 401, "no certificate, no token: {answer}");
    let (status, answer) = curl(&["--resolve", &resolve, "--cacert", &ca, "-H", fhir, "-H", &format!("Authorization: Bearer {TOKEN_EPJ}"), "--data-binary", &body, &url]);
    assert_eq!(status, 200, "a bearer token works over HTTPS too (and this is a resend): {answer}");
    let (status, _) = curl(&["-H", fhir, "--data-binary", &body, &url.replace("https://", "http://")]);
    assert_eq!(status, 0, "plain HTTP to the HTTPS port gets no HTTP answer");
    let (status, _) = curl(&["--resolve", &resolve, "-H", fhir, "--data-binary", &body, &url]);
    assert_eq!(status, 0, "a client that does not trust the server's CA does not talk to it");
    daemon.stop();
    let events = stored_events(&ws, &store);
    assert_eq!(events.iter().filter(|(_, e)| e.event_id == "mtls-1").count(), 1);
}

#[test]
fn sigterm_right_after_syslog_frames_over_tls_stores_every_frame_it_closed_cleanly_on() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let pki = pki(&ws.path("pki"));
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[syslog]\ntls_listen = \"127.0.0.1:0\"\n{}[[source]]\nname = \"dips-tls\"\ntenant_orgnr = \"983971636\"\ncert_sha256 = \"{}\"\n",
        pki.tls_section(),
        pki.client_fingerprint
    );
    // Enough that the daemon reads them in several parts (64 KiB a read), so the SIGTERM
    // comes while some are still in the socket buffer.
    const FRAMES: u32 = 400;
    let mut clean_closes = 0;
    for trial in 0..5u32 {
        let daemon = Daemon::start(&ws, &store, &config);
        let (address, client_config) = (daemon.syslog_tls.unwrap(), tls_client(&pki, true));
        let (written_tx, written) = std::sync::mpsc::channel();
        let sender = std::thread::spawn(move || {
            let conn = rustls::ClientConnection::new(client_config, "localhost".try_into().unwrap()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(address).unwrap());
            for i in 0..FRAMES {
                let n = trial * 1000 + i;
                tls.write_all(&frame(i64::from(n) + 1, &atna_xml(&patient(n), &format!("t{trial}-{i}")))).unwrap();
            }
            tls.flush().unwrap();
            written_tx.send(()).unwrap();
            // The daemon gets SIGTERM now; the sender says it is done and waits for the close.
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).is_ok()
        });
        written.recv().unwrap();
        daemon.stop();
        let clean = sender.join().unwrap();
        let prefix = format!("t{trial}-");
        let stored = stored_events(&ws, &store).into_iter().filter(|(_, e)| e.user_local_id.as_deref().is_some_and(|u| u.starts_with(&prefix))).count();
        if clean {
            clean_closes += 1;
            assert_eq!(stored, FRAMES as usize, "trial {trial}: the daemon closed cleanly, so every frame before the close is stored");
        }
    }
    assert!(clean_closes > 0, "at least one trial ends in a clean TLS close");
    verify_clean(&ws, &store);
}

#[test]
fn an_unfiltered_search_counts_and_pages_a_store_of_several_epochs_exactly() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let daemon = Daemon::start(&ws, &store, &http_config(""));
    let c = client();
    let search = |query: &str| {
        let (status, found) = get(&c, &daemon.url(&format!("/fhir/AuditEvent?_before=601&{query}")), TOKEN_PORTAL);
        assert_eq!(status, 200, "{found}");
        let seqs: Vec<u64> = found["entry"].as_array().expect("entries").iter().map(|e| e["resource"]["id"].as_str().expect("id").parse().expect("seq")).collect();
        (found["total"].as_u64().expect("total"), seqs)
    };
    // Unfiltered: later segments are counted from their manifests; filtered: every row read.
    assert_eq!(search("_count=7&date=ge2000-01-01"), (600, (1..=7).collect()), "filtered");
    assert_eq!(search("_count=7"), (600, (1..=7).collect()));
    assert_eq!(search("_count=10&_offset=595"), (600, (596..=600).collect()));
    assert_eq!(search("_count=7&date=ge2000-01-01").0, 600, "a filter that matches every row: the same total");
    daemon.stop();
}

#[test]
fn verify_on_a_live_store_under_load_reports_no_problem() {
    let ws = Workspace::new();
    let store = ws.path("store");
    // Small epochs, sealed every second: the checks keep meeting seals in progress.
    let config = http_config("[journal]\nmax_epoch_records = 60\nmax_epoch_age_secs = 1");
    let stop = Arc::new(AtomicBool::new(false));
    let mut checks = 0;
    for round in 0..2 {
        let daemon = Daemon::start(&ws, &store, &config);
        let url = daemon.url("/fhir");
        let sender = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let c = client();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let body = bundle("batch", (0..20).map(|i| audit_event(&format!("live-{round}-{n}-{i}"), &patient(n % 50), None)).collect());
                    let _ = post(&c, &url, TOKEN_EPJ, &body);
                    n += 1;
                }
            })
        };
        for _ in 0..15 {
            let out = ws.verify(&store, None);
            assert!(out.status.success(), "verify on a live store, check {checks}: {}", text(&out));
            checks += 1;
        }
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        stop.store(false, Ordering::Relaxed);
        if round == 0 {
            // A crash in the middle, and the checks go on after the restart.
            daemon.kill();
            let out = ws.verify(&store, None);
            assert!(out.status.success(), "verify right after kill -9, before the restart: {}", text(&out));
        } else {
            daemon.stop();
        }
    }
    assert_eq!(checks, 30);
    verify_clean(&ws, &store);
}

/// Four unfiltered searches at once over 200 000 events, while a source keeps sending: each
/// search holds at most its page window, so the daemon's memory stays within a bound that
/// does not grow with the store, and every event sent meanwhile is acknowledged.
#[test]
fn concurrent_unfiltered_searches_stay_within_a_memory_bound_while_events_are_acknowledged() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let files = ws.samples("big", 17, 200_000);
    let out = ws.ingest(&store, &files, &["--epoch-records", "100000"]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let daemon = Daemon::start(&ws, &store, &http_config(""));
    let c = client();
    let (_, first) = get(&c, &daemon.url("/fhir/AuditEvent?_count=1"), TOKEN_PORTAL);
    assert!(first["total"].as_u64().unwrap_or(0) >= 200_000, "{}", first["total"]);
    let before = daemon.resident_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), daemon.url("/fhir"));
        std::thread::spawn(move || {
            let c = client();
            let (mut sent, mut n) = (0, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let (status, body, _) = post(&c, &url, TOKEN_EPJ, &bundle("batch", (0..10).map(|i| audit_event(&format!("during-{n}-{i}"), &patient(n % 40), None)).collect()));
                assert_eq!(status, 200, "{body}");
                assert!(body["entry"].as_array().expect("entries").iter().all(|e| e["response"]["status"] == "201 Created"), "{body}");
                sent += 10;
                n += 1;
            }
            sent
        })
    };
    let searchers: Vec<_> = (0..4)
        .map(|_| {
            let url = daemon.url("/fhir/AuditEvent?_count=100");
            std::thread::spawn(move || {
                let c = client();
                for _ in 0..4 {
                    let (status, found) = get(&c, &url, TOKEN_PORTAL);
                    assert_eq!(status, 200, "{found}");
                    assert_eq!(found["entry"].as_array().map(Vec::len), Some(100));
                }
            })
        })
        .collect();
    let mut highest = before;
    while searchers.iter().any(|s| !s.is_finished()) {
        highest = highest.max(daemon.resident_bytes());
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in searchers {
        s.join().expect("searcher");
    }
    stop.store(true, Ordering::Relaxed);
    let sent = writer.join().expect("writer");
    assert!(sent > 0, "events were acknowledged while the searches ran");
    let grown = highest.saturating_sub(before);
    eprintln!("daemon resident memory: {} MiB before the searches, at most {} MiB during them", before >> 20, highest >> 20);
    // Measured in a debug build: +92 MiB (Parquet batches being read, the events sent
    // meanwhile). Searches used to hold every match: all 200 000 events, four times over.
    assert!(grown < 256 << 20, "four unfiltered searches over 200 000 events grew the daemon by {} MiB", grown >> 20);
    daemon.stop();
}

/// The admin channel is the daemon's own user's: the socket is owner-only, and it takes
/// only its documented requests (none of which appends a source's event), answering
/// anything else with a reason.
#[test]
fn the_admin_channel_is_owner_only_and_takes_only_its_requests() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    let store = ws.path("store");
    let daemon = Daemon::start(&ws, &store, &http_config(""));
    let socket = store.join("admin.sock");
    let mode = std::fs::metadata(&socket).expect("the daemon made its admin socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    let ask = |request: &str| -> Value {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("answer");
        serde_json::from_str(&line).expect("a JSON answer")
    };
    let answer = ask("hello\n");
    assert_eq!(answer["ok"], false);
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("not an admin request")), "{answer}");
    let forged = serde_json::json!({ "op": "append", "records": [audit_event("forged-1", &patient(1), None)] });
    let answer = ask(&format!("{forged}\n"));
    assert_eq!(answer["ok"], false, "no request appends arbitrary records: {answer}");
    let answer = ask("{\"op\":\"seal\"}\n");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["value"]["checkpoint_size"], 0, "an empty store has nothing to seal");
    daemon.stop();
    assert!(!socket.exists(), "a clean stop removes the socket");
    assert!(!stored_events(&ws, &store).iter().any(|(_, e)| e.event_id == "forged-1"));
}
