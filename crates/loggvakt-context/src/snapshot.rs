//! Versioned snapshots: `STORE/context/snapshots/v000001/…`, each a complete set of
//! tables, and `CURRENT` naming the newest. A snapshot is written beside the others and
//! becomes current by one atomic rename, so a crash mid-import leaves the previous one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::parse::{is_indexed, reduce, Resolver, SUPPORTED};
use crate::pipeline;
use crate::runs::{Json, Merge, Merged, Record, RunWriter, RUN_BYTES};
use crate::tables::{Cell, TableBuilder};
use crate::ContextError;

/// Something in the input that was not taken as it stood: which file and line (or which
/// resource), which field, and why. Import goes on; problems are listed in the report and
/// kept in the snapshot's `problems.ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: Option<String>,
    pub line: Option<u64>,
    pub resource: Option<String>,
    pub path: String,
    pub reason: String,
}

/// What a snapshot holds, as `snapshot.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub version: u32,
    /// UTC, RFC 3339.
    pub imported_at: String,
    /// BLAKE3 over every resource's `Type/id` and content hash, in key order.
    pub digest: String,
    pub resources: usize,
    pub rows: BTreeMap<String, usize>,
    pub inputs: Vec<String>,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The outcome of one import.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub files: Vec<PathBuf>,
    pub lines_read: u64,
    /// Resources by type that were new or changed in this import.
    pub changed: BTreeMap<String, usize>,
    pub unchanged: usize,
    pub problems: Vec<Problem>,
    /// The snapshot now current; `created` says whether this import made it.
    pub snapshot: SnapshotInfo,
    pub created: bool,
}

fn snapshots_dir(store: &Path) -> PathBuf {
    store.join("context").join("snapshots")
}

/// The current snapshot of a store, if any import has happened.
pub fn current_snapshot(store: &Path) -> Result<Option<SnapshotInfo>, ContextError> {
    let dir = snapshots_dir(store);
    let current = dir.join("CURRENT");
    let name = match std::fs::read_to_string(&current) {
        Ok(n) => n.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ContextError::io(&current, e)),
    };
    named_snapshot(store, &name).map(Some)
}

/// The snapshot of that name (`v000003`), current or not: a review is rerun on the
/// snapshot it recorded.
pub fn named_snapshot(store: &Path, name: &str) -> Result<SnapshotInfo, ContextError> {
    let snapshot_dir = snapshots_dir(store).join(name);
    let info_path = snapshot_dir.join("snapshot.json");
    let text = std::fs::read_to_string(&info_path).map_err(|e| ContextError::io(&info_path, e))?;
    let mut info: SnapshotInfo = serde_json::from_str(&text).map_err(|e| ContextError::Corrupt { path: info_path.clone(), reason: e.to_string() })?;
    info.dir = snapshot_dir;
    Ok(info)
}

/// Input files: each file as given, each directory's `*.ndjson` and `*.json` in name order.
fn input_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ContextError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| ContextError::io(input, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("ndjson" | "json")))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(ContextError::NoInput(input.clone()));
            }
            files.extend(found);
        } else {
            // Opening it now gives a clear error for a missing file before anything is written.
            std::fs::File::open(input).map_err(|e| ContextError::io(input, e))?;
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// The version of the rules that derive the tables from the resources (keys, columns,
/// resource types read). It is part of the digest, so re-importing an unchanged export
/// after these rules changed rebuilds the tables instead of keeping stale ones.
const DERIVATION_VERSION: &str = "tables-3";

/// The snapshot digest, fed one resource at a time in key order: BLAKE3 over the
/// derivation version and every `Type/id` and content hash.
struct Digest(blake3::Hasher);

impl Digest {
    fn new() -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(DERIVATION_VERSION.as_bytes());
        hasher.update(&[0]);
        Digest(hasher)
    }

    fn add(&mut self, key: &str, hash: &str) {
        self.0.update(key.as_bytes());
        self.0.update(&[0]);
        self.0.update(hash.as_bytes());
        self.0.update(&[0]);
    }

    fn finish(self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// One line's resource (or a Bundle's entries) as records, and what was wrong with it.
fn take_resource(value: Value, file: &str, line: u64, into: &mut Vec<Record>, problems: &mut Vec<Problem>) {
    let problem = |path: &str, reason: String| Problem { file: Some(file.to_owned()), line: Some(line), resource: None, path: path.to_owned(), reason };
    let Some(resource_type) = value.get("resourceType").and_then(Value::as_str).map(str::to_owned) else {
        problems.push(problem("resourceType", "missing; each line must be one FHIR resource".into()));
        return;
    };
    if resource_type == "Bundle" {
        if let Some(Value::Array(entries)) = value.get("entry") {
            for entry in entries {
                if let Some(resource) = entry.get("resource") {
                    take_resource(resource.clone(), file, line, into, problems);
                }
            }
        }
        return;
    }
    if !SUPPORTED.contains(&resource_type.as_str()) {
        problems.push(problem("resourceType", format!("'{resource_type}' is not context; expected one of {}", SUPPORTED.join(", "))));
        return;
    }
    let Some(id) = value.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()) else {
        problems.push(problem(&format!("{resource_type}.id"), "missing; a context resource needs an id so later imports can replace it".into()));
        return;
    };
    let key = format!("{resource_type}/{id}");
    // serde_json orders object keys, so the same resource spelled differently hashes the same.
    // Written straight into bytes: through `Display` (`to_string`) the same text took 12 %
    // of the large region's import (perf), in the formatter's small writes.
    let json = match serde_json::to_string(&value) {
        Ok(json) => json,
        Err(e) => {
            problems.push(problem("", format!("cannot be written back as JSON: {e}")));
            return;
        }
    };
    let hash = blake3::hash(json.as_bytes()).to_hex().to_string();
    into.push(Record { key, hash, json });
}

/// Imports FHIR NDJSON files (or directories of them) into a new snapshot of `store`.
/// `now` is the import time recorded in the snapshot (RFC 3339).
///
/// Memory does not grow with the export: the input is sorted in runs of [`RUN_BYTES`]
/// spilled to the staging directory, and merged with the previous snapshot's resources
/// three times, in key order: to compute the digest from keys and hashes (and stop there
/// when nothing changed), to learn what references resolve to (organisations, the
/// population's and staff's identities, roles, rosters), and to write every table batch
/// by batch. Each resource's parsing runs on every core, its results taken in order.
pub fn import(store: &Path, inputs: &[PathBuf], now: &str) -> Result<ImportReport, ContextError> {
    import_with(store, inputs, now, RUN_BYTES)
}

/// [`import`] with the bytes of JSON each sorted run holds (the input's share of the
/// import's memory); smaller runs mean more of them to merge, and the same snapshot.
pub fn import_with(store: &Path, inputs: &[PathBuf], now: &str, run_bytes: usize) -> Result<ImportReport, ContextError> {
    let files = input_files(inputs)?;
    let dir = snapshots_dir(store);
    std::fs::create_dir_all(&dir).map_err(|e| ContextError::io(&dir, e))?;
    // One importer at a time; the lock goes with the process.
    let lock_path = dir.join(".lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| ContextError::io(&lock_path, e))?;
    lock.lock().map_err(|e| ContextError::io(&lock_path, e))?;

    let previous = current_snapshot(store)?;
    let version = previous_version(&dir)? + 1;
    let name = format!("v{version:06}");
    let staging = dir.join(format!("{name}.tmp"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| ContextError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| ContextError::io(&staging, e))?;
    let result = import_into(&staging, &files, previous.as_ref(), now, run_bytes.max(1));
    let runs = staging.join("runs");
    if runs.exists() {
        std::fs::remove_dir_all(&runs).map_err(|e| ContextError::io(&runs, e))?;
    }
    let (mut report, info) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let Some(mut info) = info else {
        std::fs::remove_dir_all(&staging).map_err(|e| ContextError::io(&staging, e))?;
        return Ok(report);
    };
    info.version = version;
    info.dir = dir.join(&name);
    let json = serde_json::to_vec_pretty(&info).map_err(|e| ContextError::Corrupt { path: staging.clone(), reason: e.to_string() })?;
    write_synced(&staging.join("snapshot.json"), &json)?;
    sync_dir(&staging)?;
    std::fs::rename(&staging, &info.dir).map_err(|e| ContextError::io(&info.dir, e))?;
    write_synced(&dir.join("CURRENT.tmp"), format!("{name}\n").as_bytes())?;
    std::fs::rename(dir.join("CURRENT.tmp"), dir.join("CURRENT")).map_err(|e| ContextError::io(&dir, e))?;
    sync_dir(&dir)?;
    report.snapshot = info;
    report.created = true;
    Ok(report)
}

/// Reads the input and, when it changes the merged set of resources, writes the new
/// snapshot's files into `staging` (all but `snapshot.json`); `None` when nothing changed,
/// with the report naming the previous snapshot.
fn import_into(staging: &Path, files: &[PathBuf], previous: Option<&SnapshotInfo>, now: &str, run_bytes: usize) -> Result<(ImportReport, Option<SnapshotInfo>), ContextError> {
    let mut runs = RunWriter::new(&staging.join("runs"), run_bytes)?;
    let mut problems = Vec::new();
    let mut lines_read = 0u64;
    for path in files {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| ContextError::io(path, e))?;
        let mut lines = BufReader::new(file).split(b'\n').enumerate();
        pipeline::in_order(
            || {
                let (mut chunk, mut bytes) = (Vec::with_capacity(pipeline::CHUNK_ITEMS), 0);
                while chunk.len() < pipeline::CHUNK_ITEMS && bytes < pipeline::CHUNK_BYTES {
                    let Some((i, line)) = lines.next() else { break };
                    let line = line.map_err(|e| ContextError::io(path, e))?;
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        lines_read += 1;
                        bytes += line.len();
                        chunk.push((i as u64 + 1, line));
                    }
                }
                Ok(chunk)
            },
            |(number, line)| {
                let (mut records, mut found) = (Vec::new(), Vec::new());
                match serde_json::from_slice::<Value>(line) {
                    Ok(value) => take_resource(value, &name, *number, &mut records, &mut found),
                    Err(e) => found.push(Problem { file: Some(name.clone()), line: Some(*number), resource: None, path: String::new(), reason: format!("not JSON: {e}") }),
                }
                (records, found)
            },
            |_, (records, found)| {
                problems.extend(found);
                records.into_iter().try_for_each(|record| runs.push(record))
            },
        )?;
    }
    let runs = runs.finish()?;
    let previous_resources = previous.map(|p| p.dir.join("resources.parquet"));
    let merged = |json: Json| Merge::open(previous_resources.as_deref(), &runs, json);

    // Pass 1: what changed, and the digest.
    let (mut changed, mut unchanged, mut resource_count) = (BTreeMap::<String, usize>::new(), 0usize, 0usize);
    let mut digest = Digest::new();
    let mut merge = merged(Json::Nothing)?;
    while let Some(m) = merge.next()? {
        digest.add(&m.record.key, &m.record.hash);
        resource_count += 1;
        if m.from_input {
            if m.previous_hash.as_deref() == Some(m.record.hash.as_str()) {
                unchanged += 1;
            } else {
                *changed.entry(type_of(&m.record.key).to_owned()).or_default() += 1;
            }
        }
    }
    let digest = digest.finish();
    let mut report = ImportReport {
        files: files.to_vec(),
        lines_read,
        changed,
        unchanged,
        problems: Vec::new(),
        snapshot: previous.cloned().unwrap_or_else(|| empty_info(now)),
        created: false,
    };
    if let Some(previous) = previous.filter(|p| p.digest == digest) {
        report.problems = problems;
        report.snapshot = previous.clone();
        return Ok((report, None));
    }

    // Pass 2: what references resolve to.
    let mut resolver = Resolver::streaming_into(staging)?;
    let mut merge = merged(Json::Of(|key| is_indexed(type_of(key))))?;
    pipeline::in_order(
        || merge.chunk(),
        |m| {
            // Only the indexed types carry their JSON in this pass.
            let resource_type = Some(type_of(&m.record.key)).filter(|t| is_indexed(t))?;
            let value = serde_json::from_str::<Value>(&m.record.json).ok()?;
            Some(reduce(resource_type, m.record.key.clone(), &value))
        },
        |_, reduced| {
            if let Some(resource) = reduced {
                resolver.learn(resource);
            }
            Ok(())
        },
    )?;
    resolver.settle();

    // Pass 3: every table, written as it is made.
    let raw_path = staging.join("resources.parquet");
    let mut raw = TableBuilder::streaming("resources", &raw_path)?;
    let mut merge = merged(Json::Every)?;
    pipeline::in_order(
        || merge.chunk(),
        |m| serde_json::from_str::<Value>(&m.record.json).map(|value| reduce(type_of(&m.record.key), m.record.key.clone(), &value)),
        |Merged { record, .. }, reduced| {
            let (resource_type, id) = record.key.split_once('/').unwrap_or((record.key.as_str(), ""));
            raw.push(&[Cell::Text(Some(resource_type)), Cell::Text(Some(id)), Cell::Text(Some(&record.hash)), Cell::Text(Some(&record.json))]);
            match reduced {
                Ok(resource) => resolver.emit(resource),
                Err(e) => {
                    problems.push(Problem { file: None, line: None, resource: Some(record.key.clone()), path: String::new(), reason: format!("kept resource is not JSON: {e}") })
                }
            }
            Ok(())
        },
    )?;
    let mut rows = BTreeMap::new();
    rows.insert("resources".to_owned(), raw.close()?);
    let (tables, resource_problems) = resolver.finish();
    problems.extend(resource_problems.into_iter().map(|p| Problem { file: None, line: None, resource: Some(p.resource), path: p.path, reason: p.reason }));
    for table in tables {
        let name = table.name;
        rows.insert(name.to_owned(), table.close()?);
    }
    let mut problems_file = Vec::new();
    for p in &problems {
        let _ = serde_json::to_writer(&mut problems_file, p);
        problems_file.push(b'\n');
    }
    write_synced(&staging.join("problems.ndjson"), &problems_file)?;
    report.problems = problems;
    let info = SnapshotInfo {
        version: 0,
        imported_at: now.to_owned(),
        digest,
        resources: resource_count,
        rows,
        inputs: files.iter().map(|f| f.display().to_string()).collect(),
        dir: PathBuf::new(),
    };
    Ok((report, Some(info)))
}

/// The resource type of a `Type/id` key.
fn type_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(t, _)| t)
}

/// A placeholder for the report of an import that made no snapshot and had none before
/// (never returned: an empty first import still makes a snapshot).
fn empty_info(now: &str) -> SnapshotInfo {
    SnapshotInfo { version: 0, imported_at: now.to_owned(), digest: String::new(), resources: 0, rows: BTreeMap::new(), inputs: Vec::new(), dir: PathBuf::new() }
}

fn previous_version(dir: &Path) -> Result<u32, ContextError> {
    let mut highest = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| ContextError::io(dir, e))?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix('v').filter(|n| !n.contains('.')).and_then(|n| n.parse::<u32>().ok()) {
            highest = highest.max(n);
        }
    }
    Ok(highest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ContextError> {
    let mut f = std::fs::File::create(path).map_err(|e| ContextError::io(path, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| ContextError::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), ContextError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ContextError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13097248022"}],"name":[{"family":"Kvammen","given":["Ola"]}],"address":[{"use":"home","line":["Storgata 3","H0101"],"postalCode":"7010","period":{"start":"2020-01-01"}}]}"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn importing_the_same_files_again_makes_no_new_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let file = write(dir.path(), "Patient.ndjson", &format!("{PATIENT}\n"));
        let first = import(&store, std::slice::from_ref(&file), "2026-11-22T00:00:00Z").unwrap();
        assert!(first.created);
        assert_eq!(first.snapshot.version, 1);
        assert_eq!(first.snapshot.rows["person"], 1);
        assert_eq!(first.snapshot.rows["person_address"], 1);
        let again = import(&store, &[file], "2026-11-23T00:00:00Z").unwrap();
        assert!(!again.created);
        assert_eq!(again.snapshot.version, 1);
        assert_eq!(current_snapshot(&store).unwrap().unwrap().version, 1);
    }

    #[test]
    fn a_changed_resource_replaces_the_old_one_in_a_new_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let first = write(dir.path(), "a.ndjson", &format!("{PATIENT}\n"));
        import(&store, &[first], "2026-11-22T00:00:00Z").unwrap();
        let moved = PATIENT.replace("Storgata 3", "Kirkegata 9");
        let second = write(dir.path(), "b.ndjson", &format!("{moved}\n"));
        let report = import(&store, &[second], "2026-11-23T00:00:00Z").unwrap();
        assert!(report.created);
        assert_eq!(report.snapshot.version, 2);
        assert_eq!(report.snapshot.resources, 1, "same Type/id: replaced, not added");
        assert_eq!(report.changed["Patient"], 1);
    }

    /// Every file of a store's current snapshot, by name.
    fn snapshot_files(store: &Path) -> BTreeMap<String, Vec<u8>> {
        let dir = current_snapshot(store).unwrap().unwrap().dir;
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())).collect()
    }

    #[test]
    fn the_snapshot_does_not_depend_on_the_number_of_threads_and_a_later_line_wins_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        // Several chunks of lines: patients, their encounters, lines that are not JSON, and
        // the first patient again near the end with another address.
        let mut text = String::new();
        let lines = 3 * crate::pipeline::CHUNK_ITEMS + 17;
        for i in 0..lines {
            match i % 5 {
                0 => text.push_str("not json\n"),
                1 | 2 => text.push_str(&PATIENT.replace("\"p1\"", &format!("\"p{i}\"")).replace("Storgata 3", &format!("Storgata {i}"))),
                _ => text.push_str(&format!(r#"{{"resourceType":"Encounter","id":"e{i}","subject":{{"reference":"Patient/p{}"}},"period":{{"start":"2026-11-01"}}}}"#, i - 1)),
            }
            if i % 5 != 0 {
                text.push('\n');
            }
        }
        text.push_str(&format!("{}\n", PATIENT.replace("Storgata 3", "Kirkegata 9")));
        let file = write(dir.path(), "export.ndjson", &text);
        let import_on = |threads: usize, store: &Path| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| import_with(store, std::slice::from_ref(&file), "2026-11-22T00:00:00Z", 64 << 10)).unwrap()
        };
        let (one, three) = (dir.path().join("one"), dir.path().join("three"));
        let report = import_on(1, &one);
        import_on(3, &three);
        assert_eq!(snapshot_files(&one), snapshot_files(&three), "the same snapshot, file for file");
        let lines_not_json: Vec<u64> = report.problems.iter().filter(|p| p.reason.starts_with("not JSON")).filter_map(|p| p.line).collect();
        assert_eq!(lines_not_json, (0..lines as u64).filter(|i| i % 5 == 0).map(|i| i + 1).collect::<Vec<_>>(), "problems in line order");
        let resources = std::fs::File::open(current_snapshot(&three).unwrap().unwrap().dir.join("resources.parquet")).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(resources, 8192).unwrap();
        let mut p1 = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |n: &str| batch.column_by_name(n).unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap().clone();
            let (types, ids, json) = (column("resource_type"), column("id"), column("json"));
            p1.extend((0..batch.num_rows()).filter(|&r| types.value(r) == "Patient" && ids.value(r) == "p1").map(|r| json.value(r).to_owned()));
        }
        assert_eq!(p1.len(), 1);
        assert!(p1[0].contains("Kirkegata 9"), "the last line of Patient/p1 wins: {}", p1[0]);
    }

    #[test]
    fn a_missing_reference_is_reported_and_the_rest_imported() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let encounter = r#"{"resourceType":"Encounter","id":"e1","subject":{"reference":"Patient/nobody"},"period":{"start":"2026-11-01"}}"#;
        let file = write(dir.path(), "mixed.ndjson", &format!("{PATIENT}\n{encounter}\nnot json\n{{\"resourceType\":\"Observation\",\"id\":\"o\"}}\n"));
        let report = import(&store, &[file], "2026-11-22T00:00:00Z").unwrap();
        assert_eq!(report.snapshot.rows["person"], 1);
        assert_eq!(report.snapshot.rows["care"], 0);
        let reasons: Vec<String> = report.problems.iter().map(|p| format!("{:?}:{:?}:{}:{}", p.line, p.resource, p.path, p.reason)).collect();
        assert!(reasons.iter().any(|r| r.contains("Encounter/e1") && r.contains("Patient/nobody")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.starts_with("Some(3)") && r.contains("not JSON")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.starts_with("Some(4)") && r.contains("'Observation' is not context")), "{reasons:?}");
    }
}
