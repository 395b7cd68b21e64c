//! The write-ahead journal (specified in `docs/format.md` §Write-ahead journal).
//!
//! A file starts with `LGVKWAL1` and the 16-byte store id; then frames of
//! `u32le len ‖ u32le crc32(seq ‖ record) ‖ u64le seq ‖ record[len]`, where `record` is the
//! record encoding (canonical event ‖ source digest).
//! A frame counts as written once `sync` returns; only then is an event acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::sync_dir;
use crate::StoreError;

pub const WAL_MAGIC: &[u8; 8] = b"LGVKWAL1";
const HEADER_LEN: usize = 8 + 16;
const FRAME_HEADER: usize = 4 + 4 + 8;
/// A frame longer than this is corruption, not a record.
pub const MAX_FRAME: usize = 64 << 20;

pub fn wal_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join("wal").join(format!("{first_seq:020}.wal"))
}

/// The first sequence number a write-ahead file holds, from its name (the inverse of
/// [`wal_path`]).
pub fn wal_first_seq(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}

fn frame_crc(seq: u64, record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(record);
    h.finalize()
}

pub struct WalWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl WalWriter {
    pub fn create(path: PathBuf, store_id: &[u8; 16]) -> Result<Self, StoreError> {
        let file = OpenOptions::new().create_new(true).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(WAL_MAGIC).and_then(|_| out.write_all(store_id)).map_err(|e| StoreError::io(&path, e))?;
        let mut w = WalWriter { path, out };
        w.sync()?;
        if let Some(parent) = w.path.parent() {
            sync_dir(parent)?;
        }
        Ok(w)
    }

    /// Reopens an existing file (already cut to its last whole frame) for appending.
    pub fn append_to(path: PathBuf) -> Result<Self, StoreError> {
        let file = OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok(WalWriter { out: BufWriter::with_capacity(1 << 20, file), path })
    }

    pub fn append(&mut self, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        let mut header = [0u8; FRAME_HEADER];
        header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&frame_crc(seq, record).to_le_bytes());
        header[8..].copy_from_slice(&seq.to_le_bytes());
        self.out.write_all(&header).and_then(|_| self.out.write_all(record)).map_err(|e| StoreError::io(&self.path, e))
    }

    /// Flushes and fdatasyncs: everything appended before is durable when this returns.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.out.flush().map_err(|e| StoreError::io(&self.path, e))?;
        self.out.get_ref().sync_data().map_err(|e| StoreError::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a WAL file holds.
#[derive(Debug, Default)]
pub struct WalContents {
    pub records: Vec<(u64, Vec<u8>)>,
    /// Length of the file up to the end of the last whole, correct frame.
    pub valid_len: u64,
    /// Bytes after that: a write cut short by a crash, never acknowledged.
    pub torn_bytes: u64,
}

pub fn read_wal(path: &Path, store_id: &[u8; 16]) -> Result<WalContents, StoreError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| StoreError::io(path, e))?;
    if bytes.len() < HEADER_LEN {
        // Created but the header never reached the disk: nothing was acknowledged from it.
        return Ok(WalContents { records: vec![], valid_len: 0, torn_bytes: bytes.len() as u64 });
    }
    if &bytes[..8] != WAL_MAGIC {
        return Err(StoreError::Corrupt { path: path.to_owned(), detail: "not a loggvakt write-ahead journal (bad magic)".into() });
    }
    if &bytes[8..24] != store_id {
        return Err(StoreError::Corrupt { path: path.to_owned(), detail: "write-ahead journal belongs to another store".into() });
    }
    let mut out = WalContents::default();
    let mut at = HEADER_LEN;
    while let Some((seq, record, end)) = parse_frame(&bytes, at) {
        out.records.push((seq, record.to_vec()));
        at = end;
    }
    out.valid_len = at as u64;
    out.torn_bytes = (bytes.len() - at) as u64;
    if out.torn_bytes > 0 && later_frames_are_whole(&bytes, at) {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("frame at byte {at} is damaged but whole frames follow it: acknowledged records were altered on disk"),
        });
    }
    Ok(out)
}

fn parse_frame(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at + FRAME_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    if len > MAX_FRAME {
        return None;
    }
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let end = at + FRAME_HEADER + len;
    let record = bytes.get(at + FRAME_HEADER..end)?;
    (frame_crc(seq, record) == crc).then_some((seq, record, end))
}

/// A torn tail is the end of the file; a bad frame with good frames after it is damage.
fn later_frames_are_whole(bytes: &[u8], bad_at: usize) -> bool {
    let Some(header) = bytes.get(bad_at..bad_at + 4) else { return false };
    let len = u32::from_le_bytes(header.try_into().unwrap_or([0; 4])) as usize;
    let next = bad_at + FRAME_HEADER + len;
    len <= MAX_FRAME && next < bytes.len() && parse_frame(bytes, next).is_some()
}

/// Cuts a torn tail off so appends continue after the last whole frame.
pub fn cut_torn_tail(path: &Path, valid_len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| StoreError::io(path, e))?;
    file.set_len(valid_len).and_then(|_| file.sync_all()).map_err(|e| StoreError::io(path, e))
}
