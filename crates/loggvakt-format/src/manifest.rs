//! Epoch manifests (specified in `docs/format.md` §Manifests): which segments an epoch
//! wrote, their row counts and file hashes, and the chain heads before and after it.
//! A checkpoint signs the manifest's hash, so the signature covers every file.

use serde::{Deserialize, Serialize};

use crate::StoreError;

pub const MANIFEST_FORMAT: &str = "loggvakt-epoch-1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub path: String,
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// BLAKE3 of the file's bytes, hex.
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub store_id: String,
    pub epoch: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Chain head before the epoch's first record, hex.
    pub prev_head: String,
    /// Chain head after its last record, hex.
    pub head: String,
    pub sealed_at: String,
    pub segments: Vec<SegmentEntry>,
}

pub fn manifest_rel_path(epoch: u64) -> String {
    format!("manifests/epoch-{epoch:08}.json")
}

pub fn epoch_of_manifest_name(name: &str) -> Option<u64> {
    name.strip_prefix("epoch-")?.strip_suffix(".json")?.parse().ok()
}

impl Manifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
    pub fn parse(bytes: &[u8], path: &std::path::Path) -> Result<Self, StoreError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { path: path.to_owned(), detail: format!("manifest is not valid: {e}") })?;
        if m.format != MANIFEST_FORMAT {
            return Err(StoreError::Corrupt { path: path.to_owned(), detail: format!("manifest format '{}' is not {MANIFEST_FORMAT}", m.format) });
        }
        Ok(m)
    }
}

pub fn checkpoint_rel_path(size: u64) -> String {
    format!("checkpoints/{size:020}.note")
}

/// The size a checkpoint's file name gives (`<size:020>.note`).
pub fn size_of_checkpoint_name(name: &str) -> Option<u64> {
    name.strip_suffix(".note")?.parse().ok()
}
