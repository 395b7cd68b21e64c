//! The epoch index, `index/epochs.ndjson` (`docs/format.md` §6): every sealed epoch's
//! manifest as one line of compact JSON, in epoch order. Readers that need the list of
//! epochs and segments (ITI-81 searches, the analyser's views) read this one file instead
//! of one manifest file per epoch: a day of 30-second seals is ~2 900 manifests, a year a
//! million.
//!
//! It is derived: the writer appends an epoch's line after the epoch's checkpoint, and
//! when it opens a store it appends whatever a crash left out (reading only the tail of
//! the index and the manifests it lacks). A reader trusts a line no more than the manifest
//! it copies; `verify` compares the two.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{create_dir_durable, sync_dir};
use crate::manifest::Manifest;
use crate::StoreError;

/// The index's path, relative to the store.
pub const INDEX_FILE: &str = "index/epochs.ndjson";

pub fn index_path(store: &Path) -> PathBuf {
    store.join(INDEX_FILE)
}

/// One epoch's line: the manifest as compact JSON, newline-terminated.
pub fn line(manifest: &Manifest) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(manifest).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Appends the lines of sealed epochs, durably (the writer, after their checkpoints).
pub fn append(store: &Path, manifests: &[Manifest]) -> Result<(), StoreError> {
    if manifests.is_empty() {
        return Ok(());
    }
    let path = index_path(store);
    let dir = path.parent().unwrap_or(store);
    let created = !path.exists();
    create_dir_durable(dir)?;
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
    let bytes: Vec<u8> = manifests.iter().flat_map(line).collect();
    file.write_all(&bytes).and_then(|_| file.sync_data()).map_err(|e| StoreError::io(&path, e))?;
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The last whole line's epoch, and the length of the index up to the end of that line
/// (a torn line after it is a write a crash cut short). Reads only the tail of the file.
fn last_indexed(path: &Path) -> Result<Option<(u64, u64)>, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    // A manifest line is a few hundred bytes per segment; read back until a whole line.
    let mut window = 64 << 10;
    loop {
        let start = len.saturating_sub(window);
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(start)).and_then(|_| file.read_to_end(&mut tail)).map_err(|e| StoreError::io(path, e))?;
        // Whole lines end at a newline; the candidate last line starts after the one before.
        let ends: Vec<usize> = tail.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
        for (k, end) in ends.iter().enumerate().rev() {
            let begin = match k.checked_sub(1) {
                Some(prev) => ends[prev] + 1,
                None if start == 0 => 0,
                None => break,
            };
            if let Ok(m) = serde_json::from_slice::<Manifest>(&tail[begin..*end]) {
                return Ok(Some((m.epoch, start + *end as u64 + 1)));
            }
        }
        if start == 0 {
            return Ok(Some((0, 0)));
        }
        window *= 4;
    }
}

/// Brings the index up to `committed_epoch` after a crash or on a store written before the
/// index existed: cuts a torn tail, appends the lines of epochs it lacks (from their
/// manifests). Returns how many lines it appended.
pub fn repair(store: &Path, committed_epoch: u64) -> Result<u64, StoreError> {
    let path = index_path(store);
    let last = match last_indexed(&path)? {
        Some((epoch, whole_len)) => {
            let len = std::fs::metadata(&path).map_err(|e| StoreError::io(&path, e))?.len();
            if len > whole_len {
                let file = OpenOptions::new().write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
                file.set_len(whole_len).and_then(|_| file.sync_all()).map_err(|e| StoreError::io(&path, e))?;
            }
            epoch
        }
        None => 0,
    };
    if last >= committed_epoch {
        return Ok(0);
    }
    let mut missing = Vec::new();
    for (epoch, manifest_path) in crate::layout::list_manifests(store)? {
        if epoch > last && epoch <= committed_epoch {
            missing.push(crate::layout::read_manifest(&manifest_path)?.0);
        }
    }
    append(store, &missing)?;
    Ok(missing.len() as u64)
}

/// Every epoch's manifest in epoch order: the index's lines, then any manifest file of a
/// later epoch (sealed after the last line was written, or being sealed now). Reads one
/// file and the names in `manifests/`, plus the manifests the index lacks.
pub fn read_epochs(store: &Path) -> Result<Vec<Manifest>, StoreError> {
    let path = index_path(store);
    let mut out: Vec<Manifest> = Vec::new();
    match std::fs::read(&path) {
        Ok(bytes) => {
            for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                // A line being appended right now is not whole yet: it ends the index.
                let Ok(m) = serde_json::from_slice::<Manifest>(raw) else { break };
                if m.epoch != out.last().map_or(1, |p| p.epoch + 1) {
                    break;
                }
                out.push(m);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io(&path, e)),
    }
    let indexed = out.last().map_or(0, |m| m.epoch);
    for (_, path) in crate::layout::list_manifests(store)?.into_iter().filter(|(epoch, _)| *epoch > indexed) {
        match crate::layout::read_manifest(&path) {
            Ok((m, _)) => out.push(m),
            // Removed since the listing: a writer dropped a crash's leftover.
            Err(_) if !path.exists() => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|m| m.epoch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(epoch: u64) -> Manifest {
        Manifest {
            format: crate::manifest::MANIFEST_FORMAT.into(),
            store_id: "00".repeat(16),
            epoch,
            first_seq: epoch * 10 - 9,
            last_seq: epoch * 10,
            prev_head: "aa".repeat(32),
            head: "bb".repeat(32),
            sealed_at: "2026-12-01T00:00:00Z".into(),
            segments: vec![],
        }
    }

    fn write_manifest(store: &Path, m: &Manifest) {
        let path = store.join(crate::manifest::manifest_rel_path(m.epoch));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, m.to_bytes()).unwrap();
    }

    #[test]
    fn repair_cuts_a_torn_tail_and_appends_what_a_crash_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        for epoch in 1..=5 {
            write_manifest(store, &manifest(epoch));
        }
        append(store, &[manifest(1), manifest(2)]).unwrap();
        // A crash in the middle of epoch 3's line.
        let mut torn = line(&manifest(3));
        torn.truncate(torn.len() / 2);
        OpenOptions::new().append(true).open(index_path(store)).unwrap().write_all(&torn).unwrap();
        assert_eq!(repair(store, 4).unwrap(), 2, "epochs 3 and 4 appended; 5 has no checkpoint");
        let read = read_epochs(store).unwrap();
        assert_eq!(read.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5], "epoch 5 from its manifest file");
        let text = std::fs::read_to_string(index_path(store)).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| serde_json::from_str::<Manifest>(l).is_ok()), "no torn line left");
        assert_eq!(repair(store, 4).unwrap(), 0, "nothing more to do");
    }

    #[test]
    fn a_store_without_an_index_is_read_from_its_manifests_and_indexed_on_repair() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        for epoch in 1..=3 {
            write_manifest(store, &manifest(epoch));
        }
        assert_eq!(read_epochs(store).unwrap().len(), 3);
        assert_eq!(repair(store, 3).unwrap(), 3);
        assert_eq!(read_epochs(store).unwrap(), (1..=3).map(manifest).collect::<Vec<_>>());
    }
}
