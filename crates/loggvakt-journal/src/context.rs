//! Context resources kept beside the journal (outside the chain), so that input may refer
//! to a PractitionerRole or Organization sent in an earlier file: `context/resources.ndjson`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::JournalError;

const CONTEXT_FILE: &str = "context/resources.ndjson";

pub(crate) struct ContextFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl ContextFile {
    pub fn new(store: &Path) -> Self {
        ContextFile { path: store.join(CONTEXT_FILE), out: None }
    }

    pub fn append(&mut self, raw: &[u8]) -> Result<(), JournalError> {
        if raw.contains(&b'\n') {
            // Keep one resource per line; JSON allows the newlines to be dropped.
            let compact: serde_json::Value = serde_json::from_slice(raw).map_err(|e| JournalError::io(&self.path, std::io::Error::other(e)))?;
            let line = serde_json::to_vec(&compact).map_err(|e| JournalError::io(&self.path, std::io::Error::other(e)))?;
            return self.append(&line);
        }
        if self.out.is_none() {
            if let Some(parent) = self.path.parent() {
                crate::fsutil::create_dir_durable(parent)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| JournalError::io(&self.path, e))?;
            self.out = Some(BufWriter::new(file));
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(raw).and_then(|_| out.write_all(b"\n")).map_err(|e| JournalError::io(&self.path, e))?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        if let Some(out) = self.out.as_mut() {
            out.flush().and_then(|_| out.get_ref().sync_data()).map_err(|e| JournalError::io(&self.path, e))?;
        }
        Ok(())
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
