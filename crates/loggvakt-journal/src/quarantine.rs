//! The quarantine: input that could not be mapped, kept whole with the reason, outside the
//! chain. One NDJSON file per writer session under `quarantine/`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::append_log::AppendLog;
use crate::JournalError;

/// One quarantined message (or Bundle entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub received_at: String,
    /// Where it came from: a file path, or a source name for network input.
    pub input: String,
    /// 1-based line in the input, for line-oriented input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Bundle entry index, when one entry of a Bundle failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
    /// Bundle entry indexes, when several entries of one request failed: the request's
    /// bytes are kept once for all of them (so a Bundle of refused entries costs its own
    /// size, not its size times its entries), and `reason` sums up why each failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<usize>,
    pub reason: String,
    /// The raw bytes as text, when they are UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The raw bytes in base64, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
}

impl QuarantineEntry {
    pub fn with_raw(mut self, raw: &[u8]) -> Self {
        match std::str::from_utf8(raw) {
            Ok(text) => self.raw = Some(text.to_owned()),
            Err(_) => self.raw_base64 = Some(B64.encode(raw)),
        }
        self
    }
}

pub(crate) struct QuarantineWriter {
    log: AppendLog,
}

impl QuarantineWriter {
    pub fn new(store: &Path) -> Self {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        QuarantineWriter { log: AppendLog::new(store.join("quarantine").join(format!("{stamp}-{}.ndjson", std::process::id()))) }
    }

    pub fn append(&mut self, entry: &QuarantineEntry) -> Result<(), JournalError> {
        let line = serde_json::to_vec(entry).map_err(|e| JournalError::io(self.log.path(), std::io::Error::other(e)))?;
        self.log.append(&[&line, b"\n"])
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.log.sync()
    }
}

/// The file that records which quarantined entries were retried, and what came of it.
pub const RETRIED_FILE: &str = "retried.log";

/// A quarantined entry with its id: a short hash of the file it is in and its line there,
/// stable for as long as the store exists (quarantine files are only appended to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub id: String,
    pub entry: QuarantineEntry,
}

/// What a retry did with one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRecord {
    pub id: String,
    pub retried_at: String,
    /// Sequence numbers of the events it became (empty if they were already stored).
    pub stored: Vec<u64>,
    pub duplicates: usize,
}

fn record_id(file: &str, line: usize) -> String {
    let hash = blake3::hash(format!("{file}\n{line}").as_bytes());
    hash.to_hex()[..12].to_owned()
}

/// Reads every quarantined entry in a store, oldest file first.
pub fn read_quarantine(store: &Path) -> Result<Vec<QuarantineEntry>, JournalError> {
    Ok(read_quarantine_records(store)?.into_iter().map(|r| r.entry).collect())
}

/// Reads every quarantined entry with its id, oldest file first.
///
/// A line that does not parse (a write torn by a crash or a full disk, or damage) does not
/// stop the reading: it is returned as an entry whose reason says so and whose `raw` is the
/// line itself, so nothing in the quarantine is hidden and every command keeps working.
pub fn read_quarantine_records(store: &Path) -> Result<Vec<QuarantineRecord>, JournalError> {
    let dir = store.join("quarantine");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "ndjson")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(JournalError::io(&dir, e)),
    };
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| JournalError::io(&file, e))?;
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lines = bytes.split(|b| *b == b'\n').collect::<Vec<_>>();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            let entry = serde_json::from_slice(line).unwrap_or_else(|e| {
                let torn = i + 1 == lines.len(); // no newline after it: the write did not finish
                QuarantineEntry {
                    received_at: String::new(),
                    input: format!("quarantine/{name}"),
                    line: Some(i as u64 + 1),
                    entry: None,
                    entries: vec![],
                    reason: format!("{} quarantine line, kept as it is: {e}", if torn { "a torn" } else { "a damaged (perhaps torn by a crash or a full disk)" }),
                    raw: None,
                    raw_base64: None,
                }
                .with_raw(line)
            });
            out.push(QuarantineRecord { id: record_id(&name, i + 1), entry });
        }
    }
    Ok(out)
}

/// The retries done so far, by entry id (the last one wins).
pub fn read_retries(store: &Path) -> Result<std::collections::HashMap<String, RetryRecord>, JournalError> {
    let path = store.join("quarantine").join(RETRIED_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(JournalError::io(&path, e)),
    };
    let mut out = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let record: RetryRecord = serde_json::from_str(line).map_err(|e| JournalError::Corrupt { path: path.clone(), detail: format!("line {}: {e}", i + 1) })?;
        out.insert(record.id.clone(), record);
    }
    Ok(out)
}
