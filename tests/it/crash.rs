//! kill -9 at random points while ingesting: every acknowledged event is present exactly
//! once after restart, and the store verifies.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

/// Event ids on each line of an NDJSON file (a Bundle line has several).
fn ids_by_line(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("input");
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("generated JSON");
            match v["resourceType"].as_str() {
                Some("Bundle") => v["entry"].as_array().expect("entries").iter().map(|e| e["resource"]["id"].as_str().expect("id").to_owned()).collect(),
                _ => vec![v["id"].as_str().expect("id").to_owned()],
            }
        })
        .collect()
}

/// Runs ingest, kills it with SIGKILL after `after`, and returns the highest line of
/// `events` it had reported durable.
fn ingest_and_kill(ws: &Workspace, store: &Path, files: &[PathBuf], events: &Path, after: Duration) -> u64 {
    let mut child = loggvakt()
        .arg("ingest")
        .arg("--store")
        .arg(store)
        .arg("--key")
        .arg(&ws.key)
        .args(["--report-durable", "--chunk-bytes", "16384", "--epoch-records", "500"])
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ingest");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>());
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL on Unix
    child.wait().expect("reap");
    let events_name = events.display().to_string();
    reader
        .join()
        .expect("reader")
        .iter()
        .filter_map(|l| l.strip_prefix("durable "))
        .filter_map(|l| {
            let mut parts = l.rsplitn(3, ' ');
            let (_seq, line, file) = (parts.next()?, parts.next()?, parts.next()?);
            (file == events_name).then(|| line.parse::<u64>().ok()).flatten()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn acknowledged_events_survive_sigkill_exactly_once() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    println!("crash test seed {seed} (kill points vary per run)");
    let mut rng = loggvakt_samples::Rng::new(seed);
    let ws = Workspace::new();
    let store = ws.path("store");
    let empty = ws.path("empty.ndjson");
    std::fs::write(&empty, "").expect("empty input");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut kills = 0;
    for round in 0..8u64 {
        let files = ws.samples(&format!("round-{round}"), 100 + round, 1500);
        let lines = ids_by_line(&files[1]);
        let after = Duration::from_millis(30 + rng.below(900));
        let acked_line = ingest_and_kill(&ws, &store, &files, &files[1], after);
        kills += 1;
        acknowledged.extend(lines.iter().take(acked_line as usize).flatten().cloned());

        // Restart: opening the store recovers it; nothing new is ingested.
        let out = ws.ingest(&store, std::slice::from_ref(&empty), &[]);
        assert!(out.status.success(), "round {round}: restart after kill -9 at {after:?}: {}", text(&out));
        let verified = ws.verify(&store, None);
        assert!(verified.status.success(), "round {round}: verify after kill -9 at {after:?}: {}", text(&verified));
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (_, e) in loggvakt_journal::read_sealed_events(&store).expect("events") {
            *counts.entry(e.event_id).or_default() += 1;
        }
        for id in &acknowledged {
            assert_eq!(counts.get(id), Some(&1), "round {round}: acknowledged event {id} must be present exactly once (killed at {after:?})");
        }
        assert!(counts.values().all(|&c| c == 1), "round {round}: no event is stored twice");
    }
    assert_eq!(kills, 8);
    assert!(!acknowledged.is_empty(), "some rounds acknowledged events before being killed");
}
