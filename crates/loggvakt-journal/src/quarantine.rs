//! The quarantine: input that could not be mapped, kept whole with the reason, outside the
//! chain. One NDJSON file per writer session under `quarantine/`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::fsutil::AppendLog;
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

/// Reads every quarantined entry in a store, oldest file first.
pub fn read_quarantine(store: &Path) -> Result<Vec<QuarantineEntry>, JournalError> {
    let dir = store.join("quarantine");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "ndjson")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(JournalError::io(&dir, e)),
    };
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| JournalError::io(&file, e))?;
        for (i, line) in text.lines().enumerate() {
            let entry = serde_json::from_str(line).map_err(|e| JournalError::Corrupt { path: file.clone(), detail: format!("line {}: {e}", i + 1) })?;
            out.push(entry);
        }
    }
    Ok(out)
}
