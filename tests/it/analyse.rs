//! The analyser end to end: a generated region is ingested and its context imported, the
//! detectors run, and the queues are held to the issue's minimums against the injected
//! ground truth.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::duckdb::duckdb;
use crate::support::*;

pub(crate) const FROM: &str = "2026-11-16";
pub(crate) const TO: &str = "2026-11-22";

/// One region (seed 11, small scale), ingested, with context imported and detect run once;
/// shared by the tests that only read its outputs.
struct Reviewed {
    ws: Workspace,
    store: PathBuf,
    context: PathBuf,
    review: PathBuf,
    labels: PathBuf,
    detect_output: String,
}

/// A messy sample region of `seed` (every confounder on, 12 weeks of history) ingested
/// and its context imported, in `seed-N/` of the workspace: (store, context dir, labels).
pub(crate) fn prepare(ws: &Workspace, seed: u64) -> (PathBuf, PathBuf, PathBuf) {
    let input = ws.path(&format!("seed-{seed}/region"));
    let out = run(loggvakt().args(["samples", "--scale", "small", "--seed", &seed.to_string()]).arg("--out").arg(&input));
    assert!(out.status.success(), "samples: {}", text(&out));
    let store = ws.path(&format!("seed-{seed}/store"));
    let context = input.join("context");
    let files: Vec<PathBuf> =
        ["Organization", "Practitioner", "PractitionerRole"].iter().map(|t| context.join(format!("{t}.ndjson"))).chain([input.join("AuditEvent.ndjson")]).collect();
    let out = ws.ingest(&store, &files, &[]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let out = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(&context));
    assert!(out.status.success(), "context import: {}", text(&out));
    (store, context, input.join("labels.csv"))
}

pub(crate) fn detect(ws: &Workspace, store: &Path, out_dir: &Path, extra: &[&str]) -> std::process::Output {
    run(loggvakt().args(["detect", "--from", FROM, "--to", TO, "--store"]).arg(store).arg("--key").arg(&ws.key).arg("--out").arg(out_dir).args(extra))
}

/// A private copy of the shared store, for a test that runs detect (which takes the
/// journal's writer lock and logs the run).
fn store_copy(r: &Reviewed, name: &str) -> PathBuf {
    let copy = r.ws.path(name);
    copy_dir(&r.store, &copy);
    copy
}

fn reviewed() -> &'static Reviewed {
    static CELL: OnceLock<Reviewed> = OnceLock::new();
    CELL.get_or_init(|| {
        let ws = Workspace::new();
        let (store, context, labels) = prepare(&ws, 11);
        let review = ws.path("review");
        let out = detect(&ws, &store, &review, &[]);
        assert!(out.status.success(), "detect: {}", text(&out));
        Reviewed { detect_output: text(&out), ws, store, context, review, labels }
    })
}

fn evaluation(r: &Reviewed) -> Value {
    evaluate(&r.review, &r.labels)
}

fn evaluate(review: &Path, labels: &Path) -> Value {
    let out = run(loggvakt().args(["eval", "--json", "--queues"]).arg(review).arg("--labels").arg(labels));
    assert!(out.status.success(), "eval: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("eval --json prints JSON")
}

fn store_rows(store: &Path, select: &str, filter: &str) -> Vec<Vec<String>> {
    let sql = format!(
        "SELECT {select} FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true, hive_types={{'tenant': VARCHAR, 'date': VARCHAR}}) WHERE source_system <> 'loggvakt' AND {filter}",
        store.display()
    );
    duckdb(&sql).lines().filter(|l| !l.is_empty()).map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

fn csv_column(path: &Path, column: usize) -> Vec<String> {
    loggvakt_analyse::csv::read(&std::fs::read_to_string(path).expect("csv")).into_iter().skip(1).filter_map(|row| row.into_iter().nth(column)).collect()
}

pub(crate) fn queues(review: &Path) -> Vec<Value> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(review).expect("review dir").map(|e| e.expect("entry").path()).filter(|p| p.join("queue.json").is_file()).collect();
    dirs.sort();
    dirs.iter().map(|d| serde_json::from_slice(&std::fs::read(d.join("queue.json")).expect("queue.json")).expect("queue JSON")).collect()
}

/// Three messy regions that no tuning used (tuning used seeds 1–4; the holdout reported in
/// docs/quality.md is 101–108), each reviewed at the default weekly capacity and scored:
/// `loggvakt eval --json` of each.
fn untuned_regions() -> &'static [Value] {
    static CELL: OnceLock<Vec<Value>> = OnceLock::new();
    CELL.get_or_init(|| {
        let ws = Workspace::new();
        [201, 202, 203]
            .into_iter()
            .map(|seed| {
                let (store, _, labels) = prepare(&ws, seed);
                let review = ws.path(&format!("seed-{seed}/review"));
                let out = detect(&ws, &store, &review, &[]);
                assert!(out.status.success(), "detect: {}", text(&out));
                evaluate(&review, &labels)
            })
            .collect()
    })
}

/// Every class is injected in every region, and found by its own detector in at least two
/// of the three. One case per class per region: a single case can be hidden by chance (a
/// snooper in a laboratory whose target is in care on a ward is explained by the unit's
/// way of working, docs/quality.md), so the pooled rate is what is held to the mark.
#[test]
fn every_injected_snooping_class_is_found_by_its_detector() {
    let regions = untuned_regions();
    let mut found: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
    for e in regions {
        let classes = e["classes"].as_array().expect("classes");
        assert_eq!(classes.len(), loggvakt_samples::region::SNOOPING_CLASSES.len(), "{classes:?}");
        for c in classes {
            let entry = found.entry(c["class"].as_str().expect("class").to_owned()).or_default();
            entry.0 += u64::from(c["detected_cases"].as_u64() >= Some(1));
            entry.1 += c["injected_cases"].as_u64().unwrap_or(0);
        }
    }
    for (class, (regions_found, injected)) in &found {
        assert!(*injected >= 3, "{class} injected in every region");
        assert!(*regions_found >= 2, "{class} found by its detector in {regions_found} of 3 regions");
    }
    let detected: u64 = found.values().map(|(f, _)| f).sum();
    let injected: u64 = found.values().map(|(_, i)| i).sum();
    assert!(detected * 10 >= injected * 9, "{detected} of {injected} injected cases found by their own detector");
}

/// The issue's minimums on the untuned regions: queue precision at the default weekly
/// capacity ≥ 0.6 and case recall ≥ 0.9, pooled over three regions, and ≥ 95 % of each
/// region's legitimate accesses explained.
#[test]
fn queues_hold_up_on_messy_regions_that_no_tuning_used() {
    let (mut cases, mut true_cases, mut injected, mut queued) = (0, 0, 0, 0);
    let mut summary = Vec::new();
    for e in untuned_regions() {
        for q in e["queues"].as_array().expect("queues") {
            assert!(q["capacity"].as_u64() == Some(25), "the default weekly capacity: {q}");
            cases += q["cases"].as_u64().unwrap_or(0);
            true_cases += q["true_cases"].as_u64().unwrap_or(0);
        }
        for c in e["classes"].as_array().expect("classes") {
            injected += c["injected_cases"].as_u64().unwrap_or(0);
            queued += c["queued_cases"].as_u64().unwrap_or(0);
        }
        let explained = e["legitimate_explained_share"].as_f64().expect("explained share");
        assert!(explained >= 0.95, "legitimate accesses explained {explained} < 0.95");
        summary.push(format!("precision {:.2}, recall {:.2}", e["queue_precision"], e["queue_recall"]));
    }
    let precision = true_cases as f64 / cases.max(1) as f64;
    let recall = queued as f64 / injected.max(1) as f64;
    assert!(precision >= 0.6, "queue precision at capacity {precision:.2} < 0.6 ({summary:?})");
    assert!(recall >= 0.9, "case recall {recall:.2} < 0.9 ({summary:?})");
}

#[test]
fn an_event_without_a_unit_takes_the_unit_of_the_role_valid_at_the_time() {
    let r = reviewed();
    let period = format!("date >= '{FROM}' AND date <= '{TO}' AND patient_id IS NOT NULL");
    let counts = store_rows(&r.store, "count(*), count(unit_id)", &period);
    let (events, with_unit): (u64, u64) = (counts[0][0].parse().expect("count"), counts[0][1].parse().expect("count"));
    assert!(with_unit * 10 < events * 8, "the sample leaves the unit out of many events: {with_unit} of {events} have one");
    let (mut accesses, mut without_unit) = (0, 0);
    for q in queues(&r.review) {
        for c in q["coverage"].as_array().expect("coverage") {
            accesses += c["accesses"].as_u64().unwrap_or(0);
            if c["unit_id"].is_null() {
                without_unit += c["accesses"].as_u64().unwrap_or(0);
            }
        }
        for case in q["cases"].as_array().expect("cases") {
            // Someone whose every role had ended has no role to take a unit from.
            let left = case["detectors"].as_array().expect("detectors").iter().any(|d| d["id"] == "after_employment");
            assert!(left || case["accessor"]["unit_name"].is_string(), "a queued accessor is shown with a unit: {}", case["accessor"]);
        }
    }
    assert_eq!(accesses, events, "coverage counts every access of the period");
    assert!(without_unit * 100 <= accesses, "{without_unit} of {accesses} accesses still have no unit");
}

#[test]
fn staff_known_only_by_hpr_number_are_resolved_and_their_work_explained() {
    let r = reviewed();
    let practitioners = std::fs::read_to_string(r.context.join("Practitioner.ndjson")).expect("Practitioner.ndjson");
    let hpr_only: std::collections::HashSet<String> = practitioners
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|p| {
            let ids = p["identifier"].as_array()?.clone();
            // A fødselsnummer or a D-number.
            let has_person = ids.iter().any(|i| i["system"] == "urn:oid:2.16.578.1.12.4.1.4.1" || i["system"] == "urn:oid:2.16.578.1.12.4.1.4.2");
            (!has_person).then(|| ids.iter().find(|i| i["system"] == "urn:oid:2.16.578.1.12.4.1.4.4")?["value"].as_str().map(str::to_owned))?
        })
        .collect();
    assert!(!hpr_only.is_empty(), "the sample has staff known by HPR number alone");
    let mut unexplained = std::collections::HashSet::new();
    for q in queues(&r.review) {
        unexplained.extend(csv_column(&r.review.join(q["orgnr"].as_str().expect("orgnr")).join("unexplained.csv"), 0));
    }
    let theirs: Vec<Vec<String>> = store_rows(&r.store, "event_id, user_hpr, unit_id IS NULL", &format!("date >= '{FROM}' AND date <= '{TO}' AND patient_id IS NOT NULL"))
        .into_iter()
        .filter(|row| hpr_only.contains(&row[1]))
        .collect();
    let without_unit = theirs.iter().filter(|row| row[2] == "True").count();
    assert!(theirs.len() >= 50 && without_unit >= 10, "{} accesses by HPR-only staff, {without_unit} without a unit", theirs.len());
    let explained = theirs.iter().filter(|row| !unexplained.contains(&row[0])).count();
    assert!(explained * 10 >= theirs.len() * 9, "{explained} of {} accesses by HPR-only staff explained", theirs.len());
}

#[test]
fn orders_results_and_peers_explain_work_that_leaves_no_encounter() {
    let e = evaluation(reviewed());
    let explained_by = |by: &str, kinds: &[&str]| -> u64 {
        e["explanations"]
            .as_array()
            .expect("explanations")
            .iter()
            .filter(|x| x["by"] == by && (kinds.is_empty() || kinds.iter().any(|k| x["kind"] == *k)))
            .map(|x| x["accesses"].as_u64().unwrap_or(0))
            .sum()
    };
    let orders = ["service_request", "diagnostic_report", "medication_request"];
    assert!(explained_by("unit", &orders) + explained_by("participant", &orders) > 0, "orders and results explain service work: {}", e["explanations"]);
    assert!(explained_by("service", &[]) > 0, "peers explain what has no record: {}", e["explanations"]);
    let share: f64 = e["explanations"].as_array().expect("explanations").iter().map(|x| x["share"].as_f64().unwrap_or(0.0)).sum();
    assert!((share - e["explained_share"].as_f64().expect("share")).abs() < 1e-9, "the kinds add up to the explained share");
}

/// Ingests `events` (AuditEvent JSON, one per line), imports `dir/context.ndjson`, reviews
/// the week and returns the review directory and `orgnr`'s flags.csv.
fn review_hand_made(ws: &Workspace, dir: &Path, events: &[String], orgnr: &str) -> (PathBuf, String) {
    std::fs::write(dir.join("events.ndjson"), events.join("\n") + "\n").expect("write events");
    let store = ws.path("store");
    let out = ws.ingest(&store, &[dir.join("events.ndjson")], &[]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let out = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(dir.join("context.ndjson")));
    assert!(out.status.success(), "context import: {}", text(&out));
    let review = ws.path("review");
    let out = detect(ws, &store, &review, &[]);
    assert!(out.status.success(), "detect: {}", text(&out));
    let flags = std::fs::read_to_string(review.join(orgnr).join("flags.csv")).expect("flags.csv");
    (review, flags)
}

/// In an emergency unit everyone breaks the glass for emergencies: a doctor who does it far
/// more often than the others, with the unit's usual reason, is flagged at half the
/// strength of one who does it as often without stating one.
#[test]
fn frequent_break_the_glass_is_weighed_against_the_reasons_the_unit_gives() {
    let ws = Workspace::new();
    let (orgnr, resh) = ("979552033", "4992551");
    let doctors: Vec<String> = (1..=6).map(|i| format!("90001{i:02}")).collect();
    let mut context = vec![
        format!(r#"{{"resourceType":"Organization","id":"org","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{orgnr}"}}],"name":"Sykehuset"}}"#),
        format!(
            r#"{{"resourceType":"Organization","id":"ed","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{resh}"}}],"name":"Akuttmottak","partOf":{{"reference":"Organization/org"}}}}"#
        ),
    ];
    for hpr in &doctors {
        context.push(format!(r#"{{"resourceType":"Practitioner","id":"pr-{hpr}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{hpr}"}}]}}"#));
        context.push(format!(
            r#"{{"resourceType":"PractitionerRole","id":"role-{hpr}","practitioner":{{"reference":"Practitioner/pr-{hpr}"}},"organization":{{"reference":"Organization/ed"}},"code":[{{"coding":[{{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"LEGE"}}]}}],"period":{{"start":"2015-01-01"}}}}"#
        ));
    }
    let dir = ws.path("registers");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("context.ndjson"), context.join("\n") + "\n").expect("write context");
    let event = |id: &str, hpr: &str, patient: &str, code: &str, minute: usize| {
        format!(
            r#"{{"resourceType":"AuditEvent","id":"{id}","type":{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110110"}},"action":"R","period":{{"start":"2026-11-17T{:02}:{:02}:00Z","end":"2026-11-17T{:02}:{:02}:00Z"}},"recorded":"2026-11-17T20:00:00Z","outcome":"0","purposeOfEvent":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"{code}"}}]}}],"agent":[{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}}]}},"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{hpr}"}}}},"requestor":true,"location":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{resh}"}}}}}},{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/provenance-participant-type","code":"custodian"}}]}},"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{orgnr}"}}}},"requestor":false}}],"source":{{"observer":{{"display":"EPJ-Sykehuset"}}}},"entity":[{{"what":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{patient}"}}}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}}}]}}"#,
            6 + minute / 60,
            minute % 60,
            6 + minute / 60,
            minute % 60
        )
    };
    let mut patients = (100..999).filter_map(|n| loggvakt_model::ids::complete_person_id(&format!("010180{n:03}")));
    let mut events = Vec::new();
    // Four colleagues break the glass twice each, for emergencies; doctor 5 twelve times for
    // emergencies; doctor 6 twelve times without a reason.
    for (d, hpr) in doctors.iter().enumerate() {
        let (times, code) = match d {
            4 => (12, "ETREAT"),
            5 => (12, "BTG"),
            _ => (2, "BLAALYS"),
        };
        for k in 0..times {
            let patient = patients.next().expect("a person id");
            events.push(event(&format!("ev-{hpr}-{k}"), hpr, &patient, code, events.len() * 5));
        }
    }
    let (_, flags) = review_hand_made(&ws, &dir, &events, orgnr);
    let strength = |hpr: &str| -> Vec<f64> {
        flags
            .lines()
            .filter_map(|l| l.strip_prefix("btg_frequency,"))
            .filter(|rest| rest.starts_with(&format!("ev-{hpr}-")))
            .filter_map(|rest| rest.split(',').nth(2)?.parse().ok())
            .collect()
    };
    assert_eq!(strength(&doctors[5]), vec![1.0; 12], "no reason given, which the unit seldom does: {flags}");
    assert_eq!(strength(&doctors[4]), vec![0.5; 12], "the unit's usual reason: {flags}");
    assert!(strength(&doctors[0]).is_empty(), "as often as the others: {flags}");
}

/// The messy region's rosters explain on-call cover of other units (`duty`), its
/// patients known by D-number are looked up like any other, and the events its sources
/// sent twice are stored once.
#[test]
fn rosters_d_numbers_and_resent_events_are_handled_in_the_messy_region() {
    let r = reviewed();
    let e = evaluation(r);
    let duty: u64 = e["explanations"].as_array().expect("explanations").iter().filter(|x| x["by"] == "duty").map(|x| x["accesses"].as_u64().unwrap_or(0)).sum();
    assert!(duty > 0, "rosters explain on-call cover: {}", e["explanations"]);
    let period = format!("date >= '{FROM}' AND date <= '{TO}'");
    let mut unexplained = std::collections::HashSet::new();
    for q in queues(&r.review) {
        unexplained.extend(csv_column(&r.review.join(q["orgnr"].as_str().expect("orgnr")).join("unexplained.csv"), 0));
    }
    let dnr = store_rows(&r.store, "event_id", &format!("{period} AND patient_id_kind = 'dnr'"));
    assert!(dnr.len() >= 50, "the sample has accesses to patients known by D-number: {}", dnr.len());
    let explained = dnr.iter().filter(|row| !unexplained.contains(&row[0])).count();
    assert!(explained * 10 >= dnr.len() * 9, "{explained} of {} accesses to D-number patients explained", dnr.len());
    let sent = std::fs::read_to_string(r.context.parent().expect("region dir").join("AuditEvent.ndjson")).expect("AuditEvent.ndjson");
    let ids: Vec<String> = sent.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| v["id"].as_str().map(str::to_owned)).collect();
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert!(ids.len() > distinct.len(), "some events were sent twice");
    let stored = store_rows(&r.store, "count(*), count(DISTINCT event_id)", "TRUE");
    assert_eq!(stored[0][0], stored[0][1], "each event stored once");
    assert_eq!(stored[0][1], distinct.len().to_string(), "every event sent is stored");
}

/// One register writes the employee's home without its house letter ("Storgata 12,
/// H0203"), the other with it: a person living there is not the employee's neighbour.
/// Another apartment of the building and a house two numbers on, spelled "Storgt.", are.
#[test]
fn neighbours_are_matched_across_spellings_and_never_in_ones_own_home() {
    let ws = Workspace::new();
    let (orgnr, resh, hpr) = ("979552033", "4992550", "9000001");
    let (employee, housemate, upstairs, down_the_street, elsewhere) = ("01018010018", "02028110068", "03038210008", "04048310058", "05058410189");
    let address = |lines: &str| format!(r#""address":[{{"use":"home","line":[{lines}],"postalCode":"7010","city":"Midtfjord","period":{{"start":"2015-01-01"}}}}]"#);
    let patient = |id: &str, fnr: &str, lines: &str| {
        format!(
            r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{fnr}"}}],"name":[{{"family":"Prøve{id}","given":["Kari"]}}],{}}}"#,
            address(lines)
        )
    };
    let context = [
        format!(r#"{{"resourceType":"Organization","id":"org","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{orgnr}"}}],"name":"Nordvik kommune"}}"#),
        format!(r#"{{"resourceType":"Organization","id":"unit","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{resh}"}}],"name":"Helsestasjon","partOf":{{"reference":"Organization/org"}}}}"#),
        format!(
            r#"{{"resourceType":"Practitioner","id":"pr","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{hpr}"}},{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{employee}"}}],{}}}"#,
            address(r#""Storgata 12","H0203""#)
        ),
        r#"{"resourceType":"PractitionerRole","id":"role","practitioner":{"reference":"Practitioner/pr"},"organization":{"reference":"Organization/unit"},"period":{"start":"2015-01-01"}}"#.to_owned(),
        patient("employee", employee, r#""Storgata 12 B","H0203""#),
        patient("housemate", housemate, r#""Storgata 12 B","H0203""#),
        patient("upstairs", upstairs, r#""STORGATA 12B, leil. 305""#),
        patient("street", down_the_street, r#""Storgt. 14""#),
        patient("elsewhere", elsewhere, r#""Kirkegata 12 B","H0305""#),
    ];
    let dir = ws.path("registers");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("context.ndjson"), context.join("\n") + "\n").expect("write context");
    let event = |id: &str, fnr: &str| {
        format!(
            r#"{{"resourceType":"AuditEvent","id":"{id}","type":{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110110","display":"Patient Record"}},"action":"R","period":{{"start":"2026-11-17T10:00:00Z","end":"2026-11-17T10:00:00Z"}},"recorded":"2026-11-17T10:00:01Z","outcome":"0","purposeOfEvent":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}}]}}],"agent":[{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}}]}},"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{hpr}"}}}},"requestor":true,"location":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{resh}"}}}}}},{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/provenance-participant-type","code":"custodian"}}]}},"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{orgnr}"}}}},"requestor":false}}],"source":{{"observer":{{"display":"EPJ-Nordvik"}}}},"entity":[{{"what":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{fnr}"}}}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}}}]}}"#
        )
    };
    let mut events: Vec<String> =
        [("ev-housemate", housemate), ("ev-upstairs", upstairs), ("ev-street", down_the_street), ("ev-elsewhere", elsewhere)].iter().map(|(id, fnr)| event(id, fnr)).collect();
    // A patient known only by a hospital's own number: stored, counted, judged by no rule.
    events.push(event("ev-foreign", "MRN-4711").replace(r#""system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"MRN-4711""#, r#""system":"urn:oid:1.2.3.4.5","value":"MRN-4711""#));
    let (review, flags) = review_hand_made(&ws, &dir, &events, orgnr);
    let neighbour: std::collections::BTreeMap<&str, f64> = flags
        .lines()
        .filter_map(|l| l.strip_prefix("neighbour,"))
        .filter_map(|rest| {
            let cols: Vec<&str> = rest.split(',').collect();
            Some((cols[0], cols.get(2)?.parse().ok()?))
        })
        .collect();
    assert_eq!(neighbour.get("ev-upstairs").copied(), Some(1.0), "another apartment in the same building: {flags}");
    assert_eq!(neighbour.get("ev-street").copied(), Some(0.6), "a house two numbers on, street type abbreviated: {flags}");
    assert!(!neighbour.contains_key("ev-housemate"), "the employee's own home, written without its letter by one register: {flags}");
    assert!(!neighbour.contains_key("ev-elsewhere"), "another street: {flags}");
    assert!(!flags.contains("ev-foreign"), "no rule judges a patient it cannot look up: {flags}");
    let queue: Value = serde_json::from_slice(&std::fs::read(review.join(orgnr).join("queue.json")).expect("queue.json")).expect("JSON");
    assert_eq!(queue["unidentified_patient_accesses"], 1, "but the organisation is told of it");
    let html = std::fs::read_to_string(review.join(orgnr).join("report.html")).expect("report.html");
    assert!(html.contains("uten norsk identitetsnummer") && html.contains("review them in the source system"), "in plain words");
}

#[test]
fn each_queue_holds_only_its_own_organisations_accesses_and_respects_capacity() {
    let r = reviewed();
    let rows = duckdb(&format!("SELECT event_id, CAST(tenant AS VARCHAR) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true)", r.store.display()));
    let tenant_of: std::collections::HashMap<&str, &str> = rows.lines().filter_map(|l| l.split_once('|')).collect();
    let queues = queues(&r.review);
    assert!(queues.len() >= 4, "one queue per organisation with accesses");
    let mut cases = 0;
    for q in &queues {
        let org = q["orgnr"].as_str().expect("orgnr");
        let list = q["cases"].as_array().expect("cases");
        assert!(list.len() <= 25, "default capacity is 25 cases");
        for case in list {
            cases += 1;
            for a in case["accesses"].as_array().expect("accesses") {
                let id = a["event_id"].as_str().expect("event id");
                assert_eq!(tenant_of.get(id).copied(), Some(org), "{id} in {org}'s queue");
            }
        }
        for a in q["quality_sample"].as_array().expect("sample") {
            assert_eq!(tenant_of.get(a["event_id"].as_str().unwrap_or("")).copied(), Some(org));
        }
    }
    assert!(cases > 10, "cases were queued");
}

#[test]
fn cases_are_ranked_and_every_flag_says_why_in_both_languages() {
    let queues = queues(&reviewed().review);
    for q in &queues {
        let scores: Vec<f64> = q["cases"].as_array().expect("cases").iter().map(|c| c["score"].as_f64().expect("score")).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked by score: {scores:?}");
        for case in q["cases"].as_array().expect("cases") {
            for a in case["accesses"].as_array().expect("accesses") {
                let nb = a["reasons_nb"].as_array().expect("nb");
                let en = a["reasons_en"].as_array().expect("en");
                assert!(!nb.is_empty() && nb.len() == en.len());
                for reason in nb.iter().chain(en) {
                    let reason = reason.as_str().expect("text");
                    assert!(!reason.contains('{') && !reason.contains(" – "), "every template field filled: {reason}");
                }
            }
        }
    }
}

#[test]
fn the_html_report_is_self_contained_bilingual_and_has_charts() {
    let r = reviewed();
    let q = &queues(&r.review)[0];
    let html = std::fs::read_to_string(r.review.join(q["orgnr"].as_str().expect("orgnr")).join("report.html")).expect("report");
    assert!(html.contains("<html lang=nb>") && html.contains("lang=en"), "bokmål with English alongside");
    assert!(html.contains("<svg role=\"img\""), "charts");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "nothing fetched from elsewhere");
    for case in q["cases"].as_array().expect("cases") {
        assert!(html.contains(case["case_id"].as_str().expect("id")));
    }
    assert!(html.contains("Hva forklarer tilgangene") && html.contains("took part in the care"), "what explains the accesses, in words");
}

#[test]
fn the_review_run_is_logged_in_the_journal_and_the_store_still_verifies() {
    let r = reviewed();
    assert!(r.detect_output.contains("this review was logged in the journal"), "{}", r.detect_output);
    let logged = duckdb(&format!(
        "SELECT count(*), count(DISTINCT CAST(tenant AS VARCHAR)), min(action) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true) WHERE source_system = 'loggvakt'",
        r.store.display()
    ));
    let parts: Vec<&str> = logged.split('|').collect();
    assert!(parts[0].parse::<u64>().unwrap_or(0) >= 5, "review events: {logged}");
    assert_eq!(parts[2], "list_exposure");
    let verified = r.ws.verify(&r.store, None);
    assert!(verified.status.success(), "{}", text(&verified));
}

/// A review names what it read (the checkpoint and the context snapshot with its files'
/// digest) in its outputs and in its signed record; changing that context afterwards, say
/// adding a care record that "explains" an access, is caught by `verify`.
#[test]
fn a_review_names_its_checkpoint_and_context_and_an_edited_context_is_caught() {
    let r = reviewed();
    let q = &queues(&r.review)[0];
    let basis = &q["basis"];
    assert!(basis["checkpoint_size"].as_u64().unwrap_or(0) > 0 && basis["checkpoint_head"].as_str().is_some_and(|h| h.len() == 64), "{basis}");
    let snapshot = basis["context_snapshot"].as_str().expect("snapshot").to_owned();
    assert!(snapshot.starts_with('v') && basis["context_files_blake3"].as_str().is_some_and(|d| d.len() == 64), "{basis}");
    let html = std::fs::read_to_string(r.review.join(q["orgnr"].as_str().expect("orgnr")).join("report.html")).expect("report.html");
    assert!(html.contains("Grunnlag:") && html.contains(&snapshot), "the report names its basis too");
    // And every CSV row, so a file that travels alone still says what it rests on.
    let org_dir = r.review.join(q["orgnr"].as_str().expect("orgnr"));
    let size = basis["checkpoint_size"].as_u64().expect("size").to_string();
    for file in ["queue.csv", "flags.csv"] {
        let rows = loggvakt_analyse::csv::read(&std::fs::read_to_string(org_dir.join(file)).expect("csv"));
        assert_eq!(rows[0][rows[0].len() - 2..], ["checkpoint_size", "context_snapshot"], "{file}");
        assert!(rows.len() > 1 && rows[1..].iter().all(|row| row[row.len() - 2..] == [size.clone(), snapshot.clone()]), "{file}: every row names the basis");
    }
    // flags.csv in detector and access order, whatever order the engine found them in, so
    // two runs on one basis give the same file.
    let flags = loggvakt_analyse::csv::read(&std::fs::read_to_string(org_dir.join("flags.csv")).expect("csv"));
    let order: Vec<(String, i64)> = flags[1..].iter().map(|row| (row[0].clone(), row[2].parse().expect("seq"))).collect();
    let mut seen = Vec::new();
    for pair in order.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[0].1 < pair[1].1, "{} flags in seq order: {pair:?}", pair[0].0);
        } else {
            assert!(!seen.contains(&pair[1].0), "each detector's flags together: {pair:?}");
            seen.push(pair[0].0.clone());
        }
    }
    let store = store_copy(r, "edited-context");
    let dir = store.join("context/snapshots").join(&snapshot);
    let victim = std::fs::read_dir(&dir).expect("snapshot dir").map(|e| e.expect("entry").path()).find(|p| p.extension().is_some_and(|x| x == "parquet")).expect("a table");
    let mut bytes = std::fs::read(&victim).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, bytes).expect("write");
    let out = r.ws.verify(&store, None);
    assert_reports(&out, &["[modified context]", &snapshot]);
}

#[test]
fn a_new_detector_is_a_new_sql_file_and_nothing_else() {
    let ws = Workspace::new();
    let (store, _, _) = prepare(&ws, 5);
    let detectors = ws.path("my-detectors");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../detectors"), &detectors);
    std::fs::write(
        detectors.join("printing.sql"),
        "-- id: printing\n-- version: 1\n-- severity: 2\n-- title.nb: Utskrift\n-- title.en: Printing\n\
-- explain.nb: {accessor} endret journalen ({action}).\n-- explain.en: {accessor} changed the record ({action}).\n\
SELECT seq, 0.5 AS strength, action FROM access_explained WHERE action = 'update'\n",
    )
    .expect("write detector");
    let review = ws.path("review");
    let out = detect(&ws, &store, &review, &["--detectors", detectors.to_str().expect("utf-8 path"), "--param", "no_care.full_at=2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("printing"), "the new detector ran: {}", text(&out));
    let flagged: usize = queues(&review)
        .iter()
        .map(|q| q["detectors"].as_array().expect("stats").iter().filter(|d| d["id"] == "printing").map(|d| d["flagged_accesses"].as_u64().unwrap_or(0) as usize).sum::<usize>())
        .sum();
    assert!(flagged > 0, "updates flagged by the new detector");
}

/// A week in which nothing was opened is reviewed, not refused: no accesses, no cases.
#[test]
fn a_week_without_accesses_gives_empty_queues() {
    let r = reviewed();
    let store = store_copy(r, "store-empty-week");
    let out = run(loggvakt()
        .args(["detect", "--from", "2025-01-06", "--to", "2025-01-12", "--store"])
        .arg(&store)
        .arg("--key")
        .arg(&r.ws.key)
        .arg("--out")
        .arg(r.ws.path("review-empty-week")));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("checked 0 accesses"), "{}", text(&out));
}

#[test]
fn broken_detectors_and_missing_context_are_explained() {
    let r = reviewed();
    let dir = r.ws.path("broken-detectors");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("bad.sql"), "-- id: bad\n-- version: 1\n-- title.nb: x\nSELECT 1").expect("write");
    let out = detect(&r.ws, &r.store, &r.ws.path("review-broken"), &["--detectors", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bad.sql") && text(&out).contains("no 'severity:' line"), "{}", text(&out));

    std::fs::write(
        dir.join("bad.sql"),
        "-- id: bad\n-- version: 1\n-- severity: 2\n-- title.nb: x\n-- title.en: x\n-- explain.nb: x\n-- explain.en: x\nSELECT seq, 1.0 AS strength FROM no_such_table",
    )
    .expect("write");
    let store = store_copy(r, "store-broken");
    let out = detect(&r.ws, &store, &r.ws.path("review-broken"), &["--detectors", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("bad.sql") && text(&out).contains("no_such_table"), "{}", text(&out));

    // A snapshot imported before a table existed (rosters) says how to rebuild it.
    let old = store_copy(r, "store-old-context");
    let current = std::fs::read_to_string(old.join("context/snapshots/CURRENT")).expect("CURRENT");
    std::fs::remove_file(old.join("context/snapshots").join(current.trim()).join("duty.parquet")).expect("remove duty.parquet");
    let out = detect(&r.ws, &old, &r.ws.path("review-old-context"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no table duty") && text(&out).contains("context import' again"), "{}", text(&out));

    let ws = Workspace::new();
    let store = ws.path("store");
    let files = ws.samples("input", 3, 50);
    assert!(ws.ingest(&store, &files, &[]).status.success());
    let out = detect(&ws, &store, &ws.path("review"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("loggvakt context import"), "says what to do: {}", text(&out));
}

#[test]
fn context_import_is_idempotent_and_reports_what_it_could_not_resolve() {
    let ws = Workspace::new();
    let (store, context, _) = prepare(&ws, 3);
    let again = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(&context));
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("nothing changed: snapshot v000001"), "{}", text(&again));

    let extra = ws.path("late.ndjson");
    std::fs::write(
        &extra,
        "{\"resourceType\":\"Encounter\",\"id\":\"late-1\",\"subject\":{\"reference\":\"Patient/not-exported\"},\"period\":{\"start\":\"2026-11-16\"}}\n{\"resourceType\":\"Patient\"}\n",
    )
    .expect("write");
    let out = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(&extra));
    assert!(out.status.success(), "a missing reference is not fatal: {}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("snapshot v000002"), "{shown}");
    assert!(shown.contains("Encounter/late-1") && shown.contains("Patient/not-exported"), "{shown}");
    assert!(shown.contains("late.ndjson:2") && shown.contains("Patient.id"), "{shown}");
    // Imported with neither a daemon nor a key: the journal does not vouch for it yet, and
    // verify says so rather than trusting it.
    assert!(shown.contains("v000002 is not recorded in the journal yet"), "{shown}");
    let out = ws.verify(&store, None);
    assert!(out.status.success() && text(&out).contains("current context snapshot v000002 is not recorded"), "{}", text(&out));
    // With the key, the next snapshot is recorded when it becomes current.
    std::fs::write(&extra, "{\"resourceType\":\"Encounter\",\"id\":\"late-2\",\"subject\":{\"reference\":\"Patient/not-exported\"}}\n").expect("write");
    let out = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg("--key").arg(&ws.key).arg(&extra));
    assert!(out.status.success() && text(&out).contains("snapshot v000003 recorded in the journal"), "{}", text(&out));
    let out = ws.verify(&store, None);
    assert!(out.status.success() && !text(&out).contains("not recorded"), "{}", text(&out));
}

#[test]
fn one_organisation_can_be_reviewed_alone_with_its_own_capacity() {
    let r = reviewed();
    let hospital = queues(&r.review).into_iter().max_by_key(|q| q["accesses"].as_u64()).expect("a queue");
    let org = hospital["orgnr"].as_str().expect("orgnr").to_owned();
    let out_dir = r.ws.path("review-one");
    let store = store_copy(r, "store-one");
    let out = detect(&r.ws, &store, &out_dir, &["--org", &org, "--capacity", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let only = queues(&out_dir);
    assert_eq!(only.len(), 1, "only {org}");
    assert_eq!(only[0]["orgnr"], org.as_str());
    assert_eq!(only[0]["cases"].as_array().map(Vec::len), Some(3));
    assert!(only[0]["cases_over_capacity"].as_u64() > Some(0));
}

#[test]
fn duckdb_runs_the_same_detector_sql_and_finds_the_same_flags() {
    let r = reviewed();
    let snapshot = loggvakt_context::current_snapshot(&r.store).expect("snapshot").expect("context imported");
    let period = loggvakt_analyse::Period { from: FROM.parse().expect("date"), to: TO.parse().expect("date") };
    let script = loggvakt_analyse::portable::duckdb_script(&r.store, &snapshot.dir, &loggvakt_analyse::Settings::default(), period, Some("2GiB")).expect("script");
    assert!(script.contains("SET memory_limit='2GiB'"), "the limit is passed on");
    let path = r.ws.path("duckdb-detect.py");
    std::fs::write(&path, script).expect("write script");
    let out = std::process::Command::new(std::env::var("LOGGVAKT_PYTHON").unwrap_or_else(|_| "python3".into())).arg(&path).output().expect("python runs");
    assert!(out.status.success(), "DuckDB ran the detector SQL: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.lines().find_map(|l| l.strip_prefix("DUCKDB=")).expect("result line")).expect("JSON");
    let mut ours: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for q in queues(&r.review) {
        let flags = std::fs::read_to_string(r.review.join(q["orgnr"].as_str().expect("orgnr")).join("flags.csv")).expect("flags.csv");
        for line in flags.lines().skip(1) {
            *ours.entry(line.split(',').next().unwrap_or("").to_owned()).or_default() += 1;
        }
    }
    let detectors = json["rows"].as_object().expect("rows per detector");
    assert_eq!(detectors.len(), loggvakt_analyse::load_detectors(None).expect("built-in").len());
    // Each phase is reported as it ends, so a run stopped part-way says how far it got.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for phase in detectors.keys().map(String::as_str).chain(["access", "access_links"]) {
        assert!(stderr.lines().any(|l| l.strip_prefix("PHASE ").and_then(|l| l.rsplit_once(' ')).is_some_and(|(name, _)| name == phase)), "no PHASE line for {phase}: {stderr}");
    }
    for (id, rows) in detectors {
        assert!(stderr.lines().any(|l| l == format!("ROWS {id} {rows}")), "no ROWS line for {id}: {stderr}");
    }
    for (id, rows) in detectors {
        assert_eq!(rows.as_u64(), Some(ours.get(id).copied().unwrap_or(0)), "{id}: DuckDB and DataFusion disagree");
    }
}

/// A daemon owns the store and takes events for the review period all along (it is killed
/// with -9 and restarted in between). Beside it, without the signing key: `detect` reviews a
/// view pinned to the checkpoint it had the daemon seal, and its records are in the journal;
/// a context import is recorded through the daemon; rerunning the review from the basis it
/// recorded, after more events and a new snapshot, gives the same queues; `quarantine retry`
/// stores, through the daemon, what the restarted daemon's sources now allow.
#[test]
fn detect_retry_and_context_import_run_beside_a_loaded_daemon() {
    use crate::daemon::{audit_event, client, post, sources_toml, Daemon, TOKEN_EPJ};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let r = reviewed();
    let store = store_copy(r, "beside-daemon");
    let config = format!("[http]\nlisten = \"127.0.0.1:0\"\n[limits]\ngap_grace_secs = 0\n[journal]\nmax_epoch_age_secs = 1\n{}", sources_toml(""));
    let fixed = config.replace("systems = [\"EPJ-Midtfjord\"]", "systems = [\"EPJ-Midtfjord\", \"Other-EPJ\"]");
    // Accesses inside the review period, so that a review not pinned to its checkpoint
    // would see a different number of them.
    let in_period = |id: String, n: u32| {
        let mut ae = audit_event(&id, &crate::daemon::patient(n % 30), None);
        ae["recorded"] = Value::String("2026-11-18T10:15:00+01:00".into());
        ae
    };
    let load = |url: String, stop: Arc<AtomicBool>, round: u32| {
        std::thread::spawn(move || {
            let c = client();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let body = crate::daemon::bundle("batch", (0..10).map(|i| in_period(format!("beside-{round}-{n}-{i}"), n + i)).collect());
                let _ = post(&c, &url, TOKEN_EPJ, &body);
                n += 1;
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));

    let daemon = Daemon::start(&r.ws, &store, &config);
    let sender = load(daemon.url("/fhir"), stop.clone(), 0);
    let other: Value = serde_json::from_str(&serde_json::to_string(&in_period("other-system-1".into(), 1)).unwrap().replace("EPJ-Midtfjord", "Other-EPJ")).unwrap();
    let (status, body, _) = post(&client(), &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &other);
    assert_eq!(status, 403, "another system's event is refused and kept: {body}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    stop.store(false, Ordering::Relaxed);
    daemon.kill();

    let daemon = Daemon::start(&r.ws, &store, &fixed);
    let sender = load(daemon.url("/fhir"), stop.clone(), 1);
    let no_key = |cmd: &mut std::process::Command| run(cmd.env_remove("LOGGVAKT_SIGNING_KEY"));

    let first = r.ws.path("beside-first");
    let out = no_key(loggvakt().args(["detect", "--from", FROM, "--to", TO, "--store"]).arg(&store).arg("--out").arg(&first));
    assert!(out.status.success(), "detect beside the daemon, without a key: {}", text(&out));
    assert!(text(&out).contains("admin channel"), "{}", text(&out));
    let queues_first = queues(&first);
    let basis = queues_first[0]["basis"].clone();
    let size = basis["checkpoint_size"].as_u64().expect("the review names its checkpoint");
    let snapshot = basis["context_snapshot"].as_str().expect("and its context snapshot").to_owned();
    assert!(std::fs::read_to_string(store.join(format!("checkpoints/{size:020}.note"))).is_ok(), "the named checkpoint exists");

    let extra = r.ws.path("beside-late.ndjson");
    std::fs::write(&extra, "{\"resourceType\":\"Encounter\",\"id\":\"beside-late-1\",\"status\":\"finished\",\"subject\":{\"reference\":\"Patient/not-exported\"}}\n").unwrap();
    let out = no_key(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(&extra));
    assert!(out.status.success() && text(&out).contains("recorded in the journal"), "context import beside the daemon: {}", text(&out));

    std::thread::sleep(std::time::Duration::from_millis(1500));
    let again = r.ws.path("beside-again");
    let out = no_key(loggvakt().args(["detect", "--from", FROM, "--to", TO, "--store"]).arg(&store).arg("--out").arg(&again).args([
        "--at-checkpoint",
        &size.to_string(),
        "--context-snapshot",
        &snapshot,
    ]));
    assert!(out.status.success(), "rerun from the recorded basis: {}", text(&out));
    let queues_again = queues(&again);
    assert_eq!(queues_again.len(), queues_first.len());
    for (a, b) in queues_first.iter().zip(&queues_again) {
        assert_eq!((&a["orgnr"], &a["accesses"], &a["explained"], &a["basis"]), (&b["orgnr"], &b["accesses"], &b["explained"], &b["basis"]));
        assert_eq!(a["cases"], b["cases"], "the same queue for {}", a["orgnr"]);
    }

    let out = no_key(loggvakt().args(["quarantine", "retry", "--all", "--store"]).arg(&store));
    assert!(text(&out).contains("stored 1 event(s)"), "retry through the daemon, with its sources: {}", text(&out));

    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    daemon.stop();
    crate::daemon::verify_clean(&r.ws, &store);
    let own = |part: &str| {
        let sql = format!(
            "SELECT count(*) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true, hive_types={{'tenant': VARCHAR, 'date': VARCHAR}}) WHERE source_system = 'loggvakt' AND record_part = '{part}'",
            store.display()
        );
        duckdb(&sql).trim().parse::<u64>().expect("a count")
    };
    let before = {
        let sql = format!("SELECT count(*) FROM read_parquet('{}/data/**/*.parquet') WHERE record_part = 'access-log-review'", r.store.display());
        duckdb(&sql).trim().parse::<u64>().expect("a count")
    };
    assert!(own("access-log-review") >= before + 2 * queues_first.len() as u64, "both reviews are in the journal");
    assert_eq!(own("context-snapshot"), 1, "the import beside the daemon is recorded");
    assert_eq!(store_rows(&store, "event_id", "event_id = 'other-system-1'").len(), 1, "the retried event is stored");
}

/// Detection has a memory budget: under a small `--memory-limit` the joins and
/// aggregations spill to disk and the queues are the same; a limit no query can work in
/// stops with an error that names what could not fit, not with the kernel's OOM killer.
#[test]
fn a_small_memory_limit_gives_the_same_queues_and_too_small_a_limit_a_clear_error() {
    let r = reviewed();
    let store = store_copy(r, "store-memory-limit");
    let same_queues_as_without = |review: &Path, how: &str| {
        let (unlimited, limited) = (queues(&r.review), queues(review));
        assert_eq!(limited.len(), unlimited.len());
        for (a, b) in unlimited.iter().zip(&limited) {
            assert_eq!((&a["orgnr"], &a["accesses"], &a["explained"]), (&b["orgnr"], &b["accesses"], &b["explained"]));
            assert_eq!(a["cases"], b["cases"], "the same queue for {} {how}", a["orgnr"]);
        }
    };
    let limited = r.ws.path("review-limited");
    let out = detect(&r.ws, &store, &limited, &["--memory-limit", "96M"]);
    assert!(out.status.success(), "{}", text(&out));
    // Each step reports the most the pool held, within the limit.
    let peaks: Vec<u64> = text(&out).lines().filter_map(|l| l.strip_suffix(" MiB at most")?.split_whitespace().last()?.parse().ok()).collect();
    assert!(peaks.len() > 20 && peaks.iter().all(|p| *p <= 96) && peaks.iter().any(|p| *p > 0), "a peak per step: {peaks:?}");
    assert!(!r.detect_output.contains("view access_links in "), "in one piece when it fits: {}", r.detect_output);
    same_queues_as_without(&limited, "within 96 MiB");
    // In parts of at most 4000 accesses (a region's week under a limit takes a dozen), the
    // links of accesses to care are computed a share of the patients at a time; the parts
    // add up to the whole, to the same queues.
    let settings = r.ws.path("settings-parts.json");
    std::fs::write(&settings, r#"{"max_rows_per_part": 4000}"#).expect("settings");
    let parted = r.ws.path("review-parted");
    let out = detect(&r.ws, &store, &parted, &["--settings", settings.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    let parts = said.lines().find_map(|l| l.trim().strip_prefix("view access_links in ")).and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok());
    assert!(parts.is_some_and(|n| n >= 3), "access_explained computed in parts: {said}");
    same_queues_as_without(&parted, "in parts");
    let out = detect(&r.ws, &store, &r.ws.path("review-tiny"), &["--memory-limit", "64K"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    // The first query that cannot fit is named (here the listing of organisations), with
    // the limit and the way out.
    assert!(
        said.contains("listing organisations needs more memory than the limit of 64 KiB") && said.contains("raise --memory-limit"),
        "names the query, the limit and the way out: {said}"
    );
}

/// Under a small memory limit the export is sorted in many runs on disk and merged: the
/// snapshot is the same, file for file, as with the default, and importing it again the
/// same way is a no-op. A later export replaces what it changes, in the merge with the
/// snapshot before it.
#[test]
fn context_import_under_a_small_memory_limit_makes_the_same_snapshot() {
    let ws = Workspace::new();
    let (store, context, _) = prepare(&ws, 12);
    let small = ws.path("small-limit-store");
    let out = run(loggvakt().args(["context", "import", "--memory-limit", "256K", "--store"]).arg(&small).arg(&context));
    assert!(out.status.success(), "{}", text(&out));
    let runs_seen = std::fs::read_dir(small.join("context/snapshots")).expect("snapshots").flatten().any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
    assert!(!runs_seen, "the runs and the staging directory are gone");
    let snapshot = |store: &Path| store.join("context/snapshots/v000001");
    let info = |store: &Path| -> Value { serde_json::from_slice(&std::fs::read(snapshot(store).join("snapshot.json")).expect("snapshot.json")).expect("JSON") };
    let (a, b) = (info(&store), info(&small));
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["rows"], b["rows"]);
    assert!(a["rows"]["duty"].as_u64() > Some(0) && a["rows"]["care"].as_u64() > Some(1000), "{}", a["rows"]);
    for (table, _) in loggvakt_context::TABLES {
        let file = format!("{table}.parquet");
        let (x, y) = (std::fs::read(snapshot(&store).join(&file)).expect("table"), std::fs::read(snapshot(&small).join(&file)).expect("table"));
        assert!(x == y, "{file} differs between the two imports");
    }
    let again = run(loggvakt().args(["context", "import", "--memory-limit", "256K", "--store"]).arg(&small).arg(&context));
    assert!(text(&again).contains("nothing changed: snapshot v000001"), "{}", text(&again));

    // One patient moves, one is new: a second snapshot with both, the rest kept.
    let patients = std::fs::read_to_string(context.join("Patient.ndjson")).expect("Patient.ndjson");
    let first: Value = serde_json::from_str(patients.lines().next().expect("a patient")).expect("JSON");
    let mut moved = first.clone();
    moved["address"] = serde_json::json!([{"use": "home", "line": ["Kirkegata 99"], "postalCode": "7010", "city": "Midtfjord", "period": {"start": "2026-01-01"}}]);
    let mut new = moved.clone();
    new["id"] = Value::from("new-patient");
    let change = ws.path("change.ndjson");
    std::fs::write(&change, format!("{moved}\n{new}\n")).expect("write");
    let out = run(loggvakt().args(["context", "import", "--memory-limit", "256K", "--store"]).arg(&small).arg(&change));
    assert!(out.status.success(), "{}", text(&out));
    let c = serde_json::from_slice::<Value>(&std::fs::read(small.join("context/snapshots/v000002/snapshot.json")).expect("v2")).expect("JSON");
    assert_eq!(c["resources"].as_u64(), a["resources"].as_u64().map(|n| n + 1), "one added, one replaced");
    let resources = small.join("context/snapshots/v000002/resources.parquet");
    let kept = duckdb(&format!("SELECT count(*) FROM read_parquet('{}') WHERE json LIKE '%Kirkegata 99%'", resources.display()));
    assert_eq!(kept.trim(), "2", "the moved patient and the new one carry the new address");
}

/// A register larger than one record batch (64 Ki rows) is imported whole: every resource
/// in the snapshot, each table readable by DuckDB with all its rows.
#[test]
fn a_register_larger_than_one_record_batch_is_imported_whole() {
    let ws = Workspace::new();
    let store = ws.path("big-register");
    std::fs::create_dir_all(&store).expect("store dir");
    let export = ws.path("Patient.ndjson");
    let n = 70_000u32;
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "{{\"resourceType\":\"Patient\",\"id\":\"p{i}\",\"identifier\":[{{\"system\":\"urn:oid:2.16.578.1.12.4.1.4.1\",\"value\":\"{}\"}}],\"name\":[{{\"family\":\"Hansen\",\"given\":[\"Kari\"]}}]}}\n",
                crate::daemon::patient(i)
            )
        })
        .collect();
    std::fs::write(&export, lines).expect("write export");
    let out = run(loggvakt().args(["context", "import", "--store"]).arg(&store).arg(&export));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("snapshot v000001 written ({n} resources)")), "{}", text(&out));
    let resources = store.join("context/snapshots/v000001/resources.parquet");
    let count = duckdb(&format!("SELECT count(*), count(DISTINCT id) FROM read_parquet('{}')", resources.display()));
    assert_eq!(count.trim(), format!("{n}|{n}"), "every resource once, across the batches");
}
