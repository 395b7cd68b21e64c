//! Context resources kept beside the journal (outside the chain), so that input may refer
//! to a PractitionerRole or Organization sent in an earlier file: `context/resources.ndjson`.

use std::path::Path;

use crate::fsutil::AppendLog;
use crate::JournalError;

const CONTEXT_FILE: &str = "context/resources.ndjson";

pub(crate) struct ContextFile {
    log: AppendLog,
}

impl ContextFile {
    pub fn new(store: &Path) -> Self {
        ContextFile { log: AppendLog::new(store.join(CONTEXT_FILE)) }
    }

    pub fn append(&mut self, raw: &[u8]) -> Result<(), JournalError> {
        if raw.contains(&b'\n') {
            // Keep one resource per line; JSON allows the newlines to be dropped.
            let invalid = |e| JournalError::io(self.log.path(), std::io::Error::other(e));
            let compact: serde_json::Value = serde_json::from_slice(raw).map_err(invalid)?;
            let line = serde_json::to_vec(&compact).map_err(invalid)?;
            return self.log.append(&[&line, b"\n"]);
        }
        self.log.append(&[raw, b"\n"])
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.log.sync()
    }
}

/// Every kept context resource, oldest first (later lines supersede earlier ones).
pub fn read_context(store: &Path) -> Result<Vec<Vec<u8>>, JournalError> {
    let path = store.join(CONTEXT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(JournalError::io(&path, e)),
    }
}
