//! The resources of an import in key order, without holding them: read in chunks of
//! bounded size, each sorted by `Type/id` and spilled to a run file, then merged with the
//! previous snapshot's resources (which are stored in key order), the newest version of
//! each key winning. An import so holds one chunk of JSON at a time, whatever the size of
//! the export (a 3 M-person register is 4.9 GB of NDJSON; held whole, with its parsed
//! form, it took 19.9 GB).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow_array::{Array, StringArray};

use crate::ContextError;

/// One resource: `Type/id`, BLAKE3 of its JSON (hex), and the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: String,
    pub hash: String,
    pub json: String,
}

/// Bytes of JSON per run: the import's memory for the input, whatever its size. 256 MiB
/// keeps a 4.9 GB export to some twenty runs, each merged through one buffered reader.
pub const RUN_BYTES: usize = 256 << 20;

/// Collects records and spills them as sorted runs of at most `limit` bytes.
pub(crate) struct RunWriter {
    dir: PathBuf,
    limit: usize,
    buffer: Vec<Record>,
    bytes: usize,
    runs: Vec<PathBuf>,
}

impl RunWriter {
    pub fn new(dir: &Path, limit: usize) -> Result<Self, ContextError> {
        std::fs::create_dir_all(dir).map_err(|e| ContextError::io(dir, e))?;
        Ok(RunWriter { dir: dir.to_owned(), limit, buffer: Vec::new(), bytes: 0, runs: Vec::new() })
    }

    pub fn push(&mut self, record: Record) -> Result<(), ContextError> {
        self.bytes += record.key.len() + record.hash.len() + record.json.len();
        self.buffer.push(record);
        if self.bytes >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the buffer as one run: sorted by key, and of several versions of a key in
    /// the buffer only the last read (a later line replaces an earlier one).
    fn spill(&mut self) -> Result<(), ContextError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.buffer);
        self.bytes = 0;
        // Stable: equal keys stay in reading order, so the last of each group is the newest.
        records.sort_by(|a, b| a.key.cmp(&b.key));
        let path = self.dir.join(format!("run-{:05}", self.runs.len()));
        let file = File::create(&path).map_err(|e| ContextError::io(&path, e))?;
        let mut out = BufWriter::new(file);
        let mut records = records.into_iter().peekable();
        while let Some(record) = records.next() {
            if records.peek().is_some_and(|next| next.key == record.key) {
                continue;
            }
            for field in [&record.key, &record.hash, &record.json] {
                let len = u32::try_from(field.len()).map_err(|_| ContextError::Corrupt { path: path.clone(), reason: format!("{}: a resource over 4 GiB", record.key) })?;
                out.write_all(&len.to_le_bytes()).and_then(|()| out.write_all(field.as_bytes())).map_err(|e| ContextError::io(&path, e))?;
            }
        }
        out.flush().map_err(|e| ContextError::io(&path, e))?;
        self.runs.push(path);
        Ok(())
    }

    /// The runs, oldest first.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, ContextError> {
        self.spill()?;
        Ok(self.runs)
    }
}

/// Which records of a merge carry their JSON: a pass that needs only keys and hashes
/// (the digest) reads none, the pass that learns references only the types it indexes.
/// A record whose JSON is not wanted has an empty `json`; the bytes are skipped, not read.
/// Re-importing the unchanged Helse Sør-Øst register (14.3 M resources, 4.9 GB), which
/// stops after the digest, took 69 s reading every record's JSON and 50 s skipping it
/// (with the parallel parse, `pipeline`).
#[derive(Clone, Copy)]
pub(crate) enum Json {
    Every,
    Of(fn(&str) -> bool),
    Nothing,
}

impl Json {
    fn wanted(self, key: &str) -> bool {
        match self {
            Json::Every => true,
            Json::Of(wanted) => wanted(key),
            Json::Nothing => false,
        }
    }
}

/// A source of records in key order.
trait Source {
    fn next_record(&mut self, json: Json) -> Result<Option<Record>, ContextError>;
}

struct RunReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl RunReader {
    /// The next field's length, or `None` at the end of the run.
    fn length(&mut self) -> Result<Option<usize>, ContextError> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => Ok(Some(u32::from_le_bytes(len) as usize)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(ContextError::io(&self.path, e)),
        }
    }

    /// The next field, read (`Some`) or skipped (an empty string).
    fn field(&mut self, read: bool) -> Result<Option<String>, ContextError> {
        let Some(len) = self.length()? else { return Ok(None) };
        if !read {
            let skip = i64::try_from(len).unwrap_or(i64::MAX);
            self.input.seek_relative(skip).map_err(|e| ContextError::io(&self.path, e))?;
            return Ok(Some(String::new()));
        }
        let mut bytes = vec![0u8; len];
        self.input.read_exact(&mut bytes).map_err(|e| ContextError::io(&self.path, e))?;
        String::from_utf8(bytes).map(Some).map_err(|e| ContextError::Corrupt { path: self.path.clone(), reason: e.to_string() })
    }
}

impl Source for RunReader {
    fn next_record(&mut self, json: Json) -> Result<Option<Record>, ContextError> {
        let Some(key) = self.field(true)? else { return Ok(None) };
        let hash = self.field(true)?;
        let text = match hash {
            Some(_) => self.field(json.wanted(&key))?,
            None => None,
        };
        let (Some(hash), Some(json)) = (hash, text) else {
            return Err(ContextError::Corrupt { path: self.path.clone(), reason: format!("run ends inside the record of {key}") });
        };
        Ok(Some(Record { key, hash, json }))
    }
}

/// A snapshot's `resources.parquet`, read batch by batch; it must be in key order (every
/// snapshot is written so), which is checked.
struct SnapshotResources {
    path: PathBuf,
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    batch: Vec<Record>,
    last: Option<String>,
}

impl SnapshotResources {
    /// Opens the resources; without the `json` column when no record's JSON is wanted.
    fn open(path: &Path, json: Json) -> Result<Self, ContextError> {
        let file = File::open(path).map_err(|e| ContextError::io(path, e))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| {
                let columns: &[&str] = match json {
                    Json::Nothing => &["resource_type", "id", "content_hash"],
                    Json::Every | Json::Of(_) => &["resource_type", "id", "content_hash", "json"],
                };
                let mask = parquet::arrow::ProjectionMask::columns(b.parquet_schema(), columns.iter().copied());
                b.with_projection(mask).with_batch_size(4096).build()
            })
            .map_err(|source| ContextError::Parquet { path: path.to_owned(), source })?;
        Ok(SnapshotResources { path: path.to_owned(), reader, batch: Vec::new(), last: None })
    }
}

impl Source for SnapshotResources {
    fn next_record(&mut self, json: Json) -> Result<Option<Record>, ContextError> {
        while self.batch.is_empty() {
            let Some(batch) = self.reader.next() else { return Ok(None) };
            let batch = batch.map_err(|e| ContextError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
            let column = |name: &str| -> Result<&StringArray, ContextError> {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| ContextError::Corrupt { path: self.path.clone(), reason: format!("column {name} missing or not text") })
            };
            let (types, ids, hashes) = (column("resource_type")?, column("id")?, column("content_hash")?);
            let texts = match json {
                Json::Nothing => None,
                Json::Every | Json::Of(_) => Some(column("json")?),
            };
            let mut records: Vec<Record> = (0..batch.num_rows())
                .filter(|&row| !types.is_null(row) && !ids.is_null(row))
                .map(|row| {
                    let key = format!("{}/{}", types.value(row), ids.value(row));
                    let text = texts.filter(|_| json.wanted(&key)).map_or_else(String::new, |t| t.value(row).to_owned());
                    Record { key, hash: hashes.value(row).to_owned(), json: text }
                })
                .collect();
            records.reverse();
            self.batch = records;
        }
        let record = self.batch.pop();
        if let Some(r) = &record {
            if self.last.as_ref().is_some_and(|last| *last >= r.key) {
                return Err(ContextError::Corrupt { path: self.path.clone(), reason: format!("resources out of key order at {}", r.key) });
            }
            self.last = Some(r.key.clone());
        }
        Ok(record)
    }
}

/// One key of the merge: its newest version, whether that came from this import's input,
/// and the previous snapshot's hash of it, if it had the key.
pub(crate) struct Merged {
    pub record: Record,
    pub from_input: bool,
    pub previous_hash: Option<String>,
}

/// Merges the previous snapshot's resources (if any) with this import's runs, in key order.
pub(crate) struct Merge {
    /// Source 0 is the previous snapshot (or nothing); the runs follow, oldest first.
    sources: Vec<Box<dyn Source + Send>>,
    heads: Vec<Option<Record>>,
    heap: BinaryHeap<Reverse<(String, usize)>>,
    has_previous: bool,
    json: Json,
}

impl Merge {
    /// Opens the merge; `json` says which records carry their JSON.
    pub fn open(previous: Option<&Path>, runs: &[PathBuf], json: Json) -> Result<Self, ContextError> {
        let mut sources: Vec<Box<dyn Source + Send>> = Vec::new();
        let has_previous = previous.is_some();
        if let Some(path) = previous {
            sources.push(Box::new(SnapshotResources::open(path, json)?));
        }
        for path in runs {
            let file = File::open(path).map_err(|e| ContextError::io(path, e))?;
            sources.push(Box::new(RunReader { path: path.clone(), input: BufReader::with_capacity(1 << 20, file) }));
        }
        let mut merge = Merge { heads: (0..sources.len()).map(|_| None).collect(), sources, heap: BinaryHeap::new(), has_previous, json };
        for i in 0..merge.sources.len() {
            merge.advance(i)?;
        }
        Ok(merge)
    }

    fn advance(&mut self, source: usize) -> Result<(), ContextError> {
        let next = self.sources[source].next_record(self.json)?;
        if let Some(r) = &next {
            self.heap.push(Reverse((r.key.clone(), source)));
        }
        self.heads[source] = next;
        Ok(())
    }

    /// The next keys of the merge, a chunk for [`crate::pipeline::in_order`]: at most
    /// [`crate::pipeline::CHUNK_ITEMS`] records and about [`crate::pipeline::CHUNK_BYTES`] of JSON; empty
    /// at the end.
    pub fn chunk(&mut self) -> Result<Vec<Merged>, ContextError> {
        let (mut chunk, mut bytes) = (Vec::new(), 0);
        while chunk.len() < crate::pipeline::CHUNK_ITEMS && bytes < crate::pipeline::CHUNK_BYTES {
            let Some(m) = self.next()? else { break };
            bytes += m.record.json.len();
            chunk.push(m);
        }
        Ok(chunk)
    }

    pub fn next(&mut self) -> Result<Option<Merged>, ContextError> {
        let Some(Reverse((key, first))) = self.heap.pop() else { return Ok(None) };
        let mut newest = first;
        let mut versions = vec![first];
        while let Some(Reverse((k, s))) = self.heap.peek() {
            if *k != key {
                break;
            }
            newest = newest.max(*s);
            versions.push(*s);
            self.heap.pop();
        }
        let previous_hash = (self.has_previous && versions.contains(&0)).then(|| self.heads[0].as_ref().map(|r| r.hash.clone())).flatten();
        let record = self.heads[newest].take();
        for s in versions {
            self.advance(s)?;
        }
        let from_input = !(self.has_previous && newest == 0);
        Ok(record.map(|record| Merged { record, from_input, previous_hash }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, json: &str) -> Record {
        Record { key: key.to_owned(), hash: blake3::hash(json.as_bytes()).to_hex().to_string(), json: json.to_owned() }
    }

    #[test]
    fn runs_merge_in_key_order_and_the_newest_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        // A limit so small that every record spills on its own, plus one run of two.
        let mut w = RunWriter::new(&dir.path().join("runs"), 1).unwrap();
        for (key, json) in [("Patient/b", "b1"), ("Patient/a", "a1"), ("Patient/b", "b2"), ("Encounter/z", "z1")] {
            w.push(record(key, json)).unwrap();
        }
        let runs = w.finish().unwrap();
        assert_eq!(runs.len(), 4);
        let mut m = Merge::open(None, &runs, Json::Every).unwrap();
        let mut seen = Vec::new();
        while let Some(x) = m.next().unwrap() {
            assert!(x.from_input && x.previous_hash.is_none());
            seen.push((x.record.key, x.record.json));
        }
        let expected = [("Encounter/z", "z1"), ("Patient/a", "a1"), ("Patient/b", "b2")];
        assert_eq!(seen, expected.map(|(k, j)| (k.to_owned(), j.to_owned())));

        let mut w = RunWriter::new(&dir.path().join("one"), usize::MAX).unwrap();
        for (key, json) in [("Patient/b", "b1"), ("Patient/b", "b2"), ("Patient/a", "a1")] {
            w.push(record(key, json)).unwrap();
        }
        let runs = w.finish().unwrap();
        let mut m = Merge::open(None, &runs, Json::Every).unwrap();
        let first = m.next().unwrap().unwrap().record;
        let second = m.next().unwrap().unwrap().record;
        assert_eq!((first.key.as_str(), second.json.as_str()), ("Patient/a", "b2"), "within one run, the later line wins");
        assert!(m.next().unwrap().is_none());
    }

    /// Every key and hash of a merge, with the JSON each record carried.
    fn merged(previous: Option<&Path>, runs: &[PathBuf], json: Json) -> Vec<(String, String, String)> {
        let mut m = Merge::open(previous, runs, json).unwrap();
        let mut seen = Vec::new();
        while let Some(x) = m.next().unwrap() {
            seen.push((x.record.key, x.record.hash, x.record.json));
        }
        seen
    }

    #[test]
    fn a_merge_skips_the_json_it_is_not_asked_for_and_keeps_keys_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let input = [("Patient/b", "{\"b\":1}"), ("Encounter/a", "{\"a\":2}"), ("Patient/c", "{\"c\":3}")];
        // The previous snapshot's resources, as an import writes them.
        let snapshot = dir.path().join("resources.parquet");
        let mut table = crate::tables::TableBuilder::streaming("resources", &snapshot).unwrap();
        for (key, json) in [("Encounter/a", "{\"old\":0}"), ("Patient/z", "{\"z\":9}")] {
            let (t, id) = key.split_once('/').unwrap();
            let hash = blake3::hash(json.as_bytes()).to_hex().to_string();
            use crate::tables::Cell;
            table.push(&[Cell::Text(Some(t)), Cell::Text(Some(id)), Cell::Text(Some(&hash)), Cell::Text(Some(json))]);
        }
        table.close().unwrap();
        let mut w = RunWriter::new(&dir.path().join("runs"), 8).unwrap();
        for (key, json) in input {
            w.push(record(key, json)).unwrap();
        }
        let runs = w.finish().unwrap();

        let every = merged(Some(&snapshot), &runs, Json::Every);
        let keys: Vec<&str> = every.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["Encounter/a", "Patient/b", "Patient/c", "Patient/z"]);
        assert_eq!(every[0].2, "{\"a\":2}", "the input's version replaces the snapshot's");
        let nothing = merged(Some(&snapshot), &runs, Json::Nothing);
        let patients = merged(Some(&snapshot), &runs, Json::Of(|key| key.starts_with("Patient/")));
        for (i, (key, hash, json)) in every.iter().enumerate() {
            assert_eq!((&nothing[i].0, &nothing[i].1, nothing[i].2.as_str()), (key, hash, ""), "{key}");
            let expected = if key.starts_with("Patient/") { json.as_str() } else { "" };
            assert_eq!((&patients[i].0, &patients[i].1, patients[i].2.as_str()), (key, hash, expected), "{key}");
        }
    }
}
