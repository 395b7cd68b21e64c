//! Context resources kept beside the journal (outside the chain), so that input may refer
//! to a PractitionerRole or Organization sent in an earlier file: `context/resources.ndjson`.
//!
//! A line is either a resource as an operator's bulk import sent it, or, for a resource a
//! daemon source sent, `{"source":"<name>","resource":{...}}`: each source's context is its
//! own namespace, so one source cannot change what another source's references mean.

use std::path::Path;

use crate::append_log::AppendLog;
use crate::JournalError;

const CONTEXT_FILE: &str = "context/resources.ndjson";

pub(crate) struct ContextFile {
    log: AppendLog,
}

impl ContextFile {
    pub fn new(store: &Path) -> Self {
        ContextFile { log: AppendLog::new(store.join(CONTEXT_FILE)) }
    }

    pub fn append(&mut self, source: Option<&str>, raw: &[u8]) -> Result<(), JournalError> {
        if let Some(source) = source {
            let invalid = |e| JournalError::io(self.log.path(), std::io::Error::other(e));
            let resource: &serde_json::value::RawValue = serde_json::from_slice(raw).map_err(invalid)?;
            let line = serde_json::to_vec(&KeptLine { source: source.to_owned(), resource: compact(resource).map_err(invalid)? }).map_err(invalid)?;
            return self.log.append(&[&line, b"\n"]);
        }
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

#[derive(serde::Serialize, serde::Deserialize)]
struct KeptLine {
    source: String,
    resource: Box<serde_json::value::RawValue>,
}

/// The resource on one line. JSON strings cannot hold a raw line break, so every CR and LF
/// in valid JSON is whitespace between tokens, and leaving them out changes nothing else
/// (the key order included).
fn compact(resource: &serde_json::value::RawValue) -> Result<Box<serde_json::value::RawValue>, serde_json::Error> {
    if !resource.get().contains(['\n', '\r']) {
        return Ok(resource.to_owned());
    }
    serde_json::value::RawValue::from_string(resource.get().replace(['\n', '\r'], ""))
}

/// A kept context resource and the daemon source that sent it (`None`: an operator's import).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptContext {
    pub source: Option<String>,
    pub raw: Vec<u8>,
}

/// Every kept context resource, oldest first (later lines supersede earlier ones).
pub fn read_context(store: &Path) -> Result<Vec<KeptContext>, JournalError> {
    let path = store.join(CONTEXT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(JournalError::io(&path, e)),
    };
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        // A wrapped line starts as our own serialiser writes it; a FHIR resource never does.
        if line.starts_with(br#"{"source":"#) {
            if let Ok(kept) = serde_json::from_slice::<KeptLine>(line) {
                out.push(KeptContext { source: Some(kept.source), raw: kept.resource.get().as_bytes().to_vec() });
                continue;
            }
        }
        out.push(KeptContext { source: None, raw: line.to_vec() });
    }
    Ok(out)
}
