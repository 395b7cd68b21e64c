//! The patient index, `index/patients/` (`docs/format.md` §6, "Patient index"): every sealed
//! event that names a patient, again, sorted by patient, so one patient's accesses are read
//! from a few compressed blocks instead of every segment of the store (a patient's ITI-81
//! search over 25 M events read all of them: 16-22 s). It is a covering index: a lookup
//! reads no segment. An index of places in the segments instead (patient, segment, rows)
//! was tried first and measured at 54 ms p50 / 238 ms p99 on the HSØ week, most of it
//! opening Parquet column chunks (benches/RESULTS.md).
//!
//! Like the epoch index it is derived: nothing a verifier relies on, and it can be rebuilt
//! from the segments at any time (`repair`). `verify_runs` compares each run with what
//! the verifier summed of its epochs' segments while checking the chain, since a run that
//! lost an entry would hide an access from a patient; readers compare the patient identifier of every record they
//! read, so a 64-bit key collision can never show another patient's access.
//!
//! Layout: sorted runs, each covering a contiguous range of epochs, merged in a base-8 tier
//! (like a counter): a seal writes a run for its epoch, eight runs of equal width become
//! one. A year of 30-second seals (a million epochs) is then at most ~50 runs, each entry is
//! rewritten about 7 times in its life, and a lookup binary-searches every run's block
//! index and decompresses a block or two of each.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use loggvakt_model::{AccessEvent, EventColumns};

use crate::fsutil::{create_dir_durable, sync_dir};
use crate::manifest::Manifest;
use crate::StoreError;

/// The directory of the runs, relative to the store.
pub const PATIENT_INDEX_DIR: &str = "index/patients";
const MAGIC: &[u8; 8] = b"LVPATIX2";
const HEADER_LEN: u64 = 24;
const BLOCK_INDEX_ENTRY: u64 = 24;
/// entries, blocks, block index offset; then the BLAKE3 footer.
const TRAILER_LEN: u64 = 24 + 32;
/// Entries are gathered into blocks of about this many bytes before compression: a lookup
/// decompresses one or two blocks of each run. (HSØ week, 2 000 patients, 12 runs: 64 KiB
/// blocks gave p50 0.64 ms, decompression most of it; 16 KiB: see benches/RESULTS.md.)
const BLOCK_BYTES: usize = 16 << 10;
const ZSTD_LEVEL: i32 = 3;
/// Runs of equal width merged at once: the tier's base.
pub const FAN_IN: usize = 8;

/// A patient's place in the index: the first 8 bytes of BLAKE3 of the identifier, read as
/// little-endian. Collisions cost a read and are filtered out by the identifier itself.
pub fn patient_key(patient_id: &str) -> u64 {
    let hash = blake3::hash(patient_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// One indexed event: its patient's key, its sequence number and its record encoding
/// (`AccessEvent::encode_record`, `docs/format.md` §3: canonical encoding and source digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key: u64,
    pub seq: u64,
    pub record: Vec<u8>,
}

/// The entries of sealed records (those without a patient have none).
pub fn entries_of<'a>(records: impl IntoIterator<Item = (u64, &'a AccessEvent)>) -> Vec<Entry> {
    records
        .into_iter()
        .filter_map(|(seq, event)| {
            let patient = event.patient_id.as_deref()?;
            let mut record = Vec::with_capacity(256);
            event.encode_record(&mut record);
            Some(Entry { key: patient_key(patient), seq, record })
        })
        .collect()
}

/// A run's name: the epochs it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunName {
    pub first_epoch: u64,
    pub last_epoch: u64,
}

impl RunName {
    pub fn file_name(&self) -> String {
        format!("run-{:010}-{:010}.idx", self.first_epoch, self.last_epoch)
    }

    fn parse(name: &str) -> Option<RunName> {
        let (first, last) = name.strip_prefix("run-")?.strip_suffix(".idx")?.split_once('-')?;
        let run = RunName { first_epoch: first.parse().ok()?, last_epoch: last.parse().ok()? };
        (run.first_epoch >= 1 && run.first_epoch <= run.last_epoch).then_some(run)
    }

    fn width(&self) -> u64 {
        self.last_epoch - self.first_epoch + 1
    }
}

fn dir_of(store: &Path) -> PathBuf {
    store.join(PATIENT_INDEX_DIR)
}

/// Writes a run durably (temporary name, fsync, rename), sorting `entries` first.
pub fn write_run(store: &Path, run: RunName, entries: &mut [Entry]) -> Result<PathBuf, StoreError> {
    entries.sort_unstable_by_key(|e| (e.key, e.seq));
    let mut out = RunWriter::create(store, run)?;
    for entry in entries.iter() {
        out.push(entry.key, entry.seq, &entry.record)?;
    }
    out.finish()
}

/// Writes a run front to back: entries gathered into blocks, each block compressed; then
/// the block index, the trailer and the footer (BLAKE3 of every byte before).
struct RunWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    hasher: blake3::Hasher,
    written: u64,
    block: Vec<u8>,
    block_first_key: u64,
    /// (first key, offset, compressed length, raw length) of each block written.
    blocks: Vec<(u64, u64, u32, u32)>,
    entries: u64,
    compressor: zstd::bulk::Compressor<'static>,
}

impl RunWriter {
    fn create(store: &Path, run: RunName) -> Result<Self, StoreError> {
        let dir = dir_of(store);
        create_dir_durable(&dir)?;
        let path = dir.join(run.file_name());
        let tmp = path.with_extension("idx.tmp");
        let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| StoreError::io(&tmp, e))?;
        let mut writer = RunWriter {
            tmp,
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
            written: 0,
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
            block_first_key: 0,
            blocks: Vec::new(),
            entries: 0,
            compressor,
        };
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&run.first_epoch.to_le_bytes());
        header.extend_from_slice(&run.last_epoch.to_le_bytes());
        writer.write(&header)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes).map_err(|e| StoreError::io(&self.tmp, e))
    }

    /// Adds an entry; entries come in (key, seq) order.
    fn push(&mut self, key: u64, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        if self.block.is_empty() {
            self.block_first_key = key;
        }
        self.block.extend_from_slice(&key.to_le_bytes());
        self.block.extend_from_slice(&seq.to_le_bytes());
        self.block.extend_from_slice(&(record.len() as u32).to_le_bytes());
        self.block.extend_from_slice(record);
        self.entries += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<(), StoreError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let compressed = self.compressor.compress(&self.block).map_err(|e| StoreError::io(&self.tmp, e))?;
        self.blocks.push((self.block_first_key, self.written, compressed.len() as u32, self.block.len() as u32));
        self.write(&compressed)?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<PathBuf, StoreError> {
        self.flush_block()?;
        let index_offset = self.written;
        let blocks = std::mem::take(&mut self.blocks);
        for (first_key, offset, compressed, raw) in &blocks {
            let mut bytes = [0u8; BLOCK_INDEX_ENTRY as usize];
            bytes[..8].copy_from_slice(&first_key.to_le_bytes());
            bytes[8..16].copy_from_slice(&offset.to_le_bytes());
            bytes[16..20].copy_from_slice(&compressed.to_le_bytes());
            bytes[20..24].copy_from_slice(&raw.to_le_bytes());
            self.write(&bytes)?;
        }
        let mut trailer = Vec::with_capacity(24);
        for value in [self.entries, blocks.len() as u64, index_offset] {
            trailer.extend_from_slice(&value.to_le_bytes());
        }
        self.write(&trailer)?;
        let footer = *self.hasher.finalize().as_bytes();
        self.out.write_all(&footer).map_err(|e| StoreError::io(&self.tmp, e))?;
        let file = self.out.into_inner().map_err(|e| StoreError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(self.path)
    }
}

/// One block's place in its run.
#[derive(Debug, Clone, Copy)]
struct BlockRef {
    first_key: u64,
    offset: u64,
    compressed: u32,
    raw: u32,
}

/// An open run: its trailer, read; the block index and blocks read on demand.
struct Run {
    path: PathBuf,
    file: File,
    len: u64,
    entries: u64,
    blocks: u64,
    index_offset: u64,
}

impl Run {
    fn open(path: &Path) -> Result<Run, std::io::Error> {
        let file = File::open(path)?;
        let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
        let len = file.metadata()?.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(bad(format!("is {len} bytes, shorter than a run's header and trailer")));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        if &header[..8] != MAGIC {
            return Err(bad("is not a patient index run (wrong magic)".into()));
        }
        let mut trailer = [0u8; 24];
        file.read_exact_at(&mut trailer, len - TRAILER_LEN)?;
        let field = |i: usize| u64::from_le_bytes(trailer[8 * i..8 * i + 8].try_into().unwrap_or_default());
        let (entries, blocks, index_offset) = (field(0), field(1), field(2));
        let expected = index_offset.checked_add(blocks.saturating_mul(BLOCK_INDEX_ENTRY)).and_then(|n| n.checked_add(TRAILER_LEN));
        if index_offset < HEADER_LEN || expected != Some(len) {
            return Err(bad(format!("is {len} bytes, its trailer says {}", expected.map_or("more".into(), |n| n.to_string()))));
        }
        Ok(Run { path: path.to_owned(), file, len, entries, blocks, index_offset })
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), detail: detail.into() }
    }

    fn block_ref(&self, i: u64) -> Result<BlockRef, StoreError> {
        let mut bytes = [0u8; BLOCK_INDEX_ENTRY as usize];
        self.file.read_exact_at(&mut bytes, self.index_offset + i * BLOCK_INDEX_ENTRY).map_err(|e| StoreError::io(&self.path, e))?;
        let word = |r: std::ops::Range<usize>| bytes.get(r).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or_default();
        let long = |r: std::ops::Range<usize>| bytes.get(r).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or_default();
        let block = BlockRef { first_key: long(0..8), offset: long(8..16), compressed: word(16..20), raw: word(20..24) };
        if block.offset < HEADER_LEN || block.offset + block.compressed as u64 > self.index_offset {
            return Err(self.corrupt(format!("block {i} lies outside the run's blocks")));
        }
        Ok(block)
    }

    /// A block's entries, decompressed into `out` (cleared first).
    fn read_block(&self, i: u64, decompressor: &mut zstd::bulk::Decompressor<'_>, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let block = self.block_ref(i)?;
        let mut compressed = vec![0u8; block.compressed as usize];
        self.file.read_exact_at(&mut compressed, block.offset).map_err(|e| StoreError::io(&self.path, e))?;
        out.clear();
        out.reserve(block.raw as usize);
        let n = decompressor.decompress_to_buffer(&compressed, out).map_err(|e| self.corrupt(format!("block {i} does not decompress: {e}")))?;
        if n != block.raw as usize {
            return Err(self.corrupt(format!("block {i} decompresses to {n} bytes, its index says {}", block.raw)));
        }
        Ok(())
    }

    /// The first block that may hold `key`: the last whose first key is below it (a key's
    /// entries can begin at the end of a block), or block 0.
    fn first_block_for(&self, key: u64) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (0u64, self.blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.block_ref(mid)?.first_key < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.saturating_sub(1))
    }
}

/// The entries of a decompressed block, in order: (key, seq, record).
fn block_entries(block: &[u8]) -> impl Iterator<Item = Result<(u64, u64, &[u8]), String>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= block.len() {
            return None;
        }
        let start = at;
        let word = |from: usize| block.get(from..from + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let len = block.get(at + 16..at + 20).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        let (Some(key), Some(seq), Some(len)) = (word(at), word(at + 8), len) else {
            at = block.len();
            return Some(Err(format!("the entry at byte {start} of its block is cut short")));
        };
        let Some(record) = block.get(at + 20..at + 20 + len as usize) else {
            at = block.len();
            return Some(Err(format!("the entry at byte {start} runs past its block")));
        };
        at += 20 + record.len();
        Some(Ok((key, seq, record)))
    })
}

/// The run files present, by name (leftover temporary files are not runs).
pub fn list_runs(store: &Path) -> Result<Vec<RunName>, StoreError> {
    let dir = dir_of(store);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        if let Some(run) = entry.file_name().to_str().and_then(RunName::parse) {
            out.push(run);
        }
    }
    out.sort();
    Ok(out)
}

/// The runs a reader uses: from epoch 1 on, at each step the widest run that starts at
/// the next epoch (a merge's output supersedes its inputs even before they are deleted).
/// Stops at the first epoch no run starts at; returns the runs and the last epoch covered.
pub fn covering(runs: &[RunName]) -> (Vec<RunName>, u64) {
    let mut chosen = Vec::new();
    let mut next = 1u64;
    while let Some(widest) = runs.iter().filter(|r| r.first_epoch == next).max_by_key(|r| r.last_epoch) {
        chosen.push(*widest);
        next = widest.last_epoch + 1;
    }
    (chosen, next - 1)
}

/// Hands every indexed event of one patient to `visit` as (seq, record encoding), run by
/// run in epoch order and by seq within a run, and returns the last epoch the index covers
/// (later epochs, a seal being indexed now or a crash's gap until the writer repairs it,
/// must be read from their segments). The caller decodes a record and compares its
/// patient: a key shared by two patients gives both their records here. Memory: one
/// block of each run at a time. Retries when a merge removed a run under it.
pub fn lookup(store: &Path, patient_id: &str, mut visit: impl FnMut(u64, &[u8]) -> Result<(), StoreError>) -> Result<u64, StoreError> {
    let key = patient_key(patient_id);
    let mut attempt = 0;
    'retry: loop {
        attempt += 1;
        let (chosen, indexed_through) = covering(&list_runs(store)?);
        let mut runs = Vec::with_capacity(chosen.len());
        for name in &chosen {
            let path = dir_of(store).join(name.file_name());
            match Run::open(&path) {
                Ok(run) => runs.push(run),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => continue 'retry,
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        let mut decompressor = zstd::bulk::Decompressor::new().map_err(|e| StoreError::io(&dir_of(store), e))?;
        let mut block = Vec::with_capacity(BLOCK_BYTES * 2);
        for run in &runs {
            let mut i = run.first_block_for(key)?;
            while i < run.blocks && run.block_ref(i)?.first_key <= key {
                run.read_block(i, &mut decompressor, &mut block)?;
                for entry in block_entries(&block) {
                    let (k, seq, record) = entry.map_err(|e| run.corrupt(e))?;
                    if k > key {
                        break;
                    }
                    if k == key {
                        visit(seq, record)?;
                    }
                }
                i += 1;
            }
        }
        return Ok(indexed_through);
    }
}

/// Merges every group of [`FAN_IN`] adjacent runs of the same width into one, repeatedly,
/// then deletes the runs it superseded. Memory: one block per input. Returns the merges.
pub fn compact(store: &Path) -> Result<usize, StoreError> {
    let mut merges = 0;
    loop {
        let all = list_runs(store)?;
        let (chosen, _) = covering(&all);
        // Superseded runs (a merge's inputs, left by a crash before their deletion).
        for stale in all.iter().filter(|r| !chosen.contains(r)) {
            let path = dir_of(store).join(stale.file_name());
            std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        let Some(group) = chosen.windows(FAN_IN).find(|w| w.iter().all(|r| r.width() == w[0].width())) else { return Ok(merges) };
        merge(store, group)?;
        merges += 1;
    }
}

/// A run's entries in order, a block at a time.
struct EntryReader {
    run: Run,
    next_block: u64,
    block: Vec<u8>,
    at: usize,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl EntryReader {
    fn new(run: Run) -> Result<Self, StoreError> {
        let decompressor = zstd::bulk::Decompressor::new().map_err(|e| StoreError::io(&run.path, e))?;
        Ok(EntryReader { run, next_block: 0, block: Vec::new(), at: 0, decompressor })
    }

    /// The next entry, as (key, seq, record).
    fn next(&mut self) -> Result<Option<Entry>, StoreError> {
        while self.at >= self.block.len() {
            if self.next_block >= self.run.blocks {
                return Ok(None);
            }
            self.run.read_block(self.next_block, &mut self.decompressor, &mut self.block)?;
            self.next_block += 1;
            self.at = 0;
        }
        let (key, seq, record) = match block_entries(&self.block[self.at..]).next() {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => return Err(self.run.corrupt(e)),
            None => return Ok(None),
        };
        let entry = Entry { key, seq, record: record.to_vec() };
        self.at += 20 + entry.record.len();
        Ok(Some(entry))
    }
}

/// Writes one run covering `inputs` (adjacent, in epoch order), then deletes them.
fn merge(store: &Path, inputs: &[RunName]) -> Result<(), StoreError> {
    let mut readers = Vec::with_capacity(inputs.len());
    for name in inputs {
        let path = dir_of(store).join(name.file_name());
        readers.push(EntryReader::new(Run::open(&path).map_err(|e| StoreError::io(&path, e))?)?);
    }
    let name = RunName { first_epoch: inputs[0].first_epoch, last_epoch: inputs[inputs.len() - 1].last_epoch };
    let mut out = RunWriter::create(store, name)?;
    // Min-heap on (key, seq): sequence numbers are unique across runs.
    let mut heads = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(entry) = reader.next()? {
            heads.push(std::cmp::Reverse((entry, i)));
        }
    }
    while let Some(std::cmp::Reverse((entry, i))) = heads.pop() {
        out.push(entry.key, entry.seq, &entry.record)?;
        if let Some(next) = readers[i].next()? {
            heads.push(std::cmp::Reverse((next, i)));
        }
    }
    out.finish()?;
    for reader in &readers {
        std::fs::remove_file(&reader.run.path).map_err(|e| StoreError::io(&reader.run.path, e))?;
    }
    Ok(())
}

/// The entries of a sealed segment, from its rows (a repair, or a check).
pub fn segment_entries(store: &Path, rel_path: &str, out: &mut Vec<Entry>) -> Result<(), StoreError> {
    let path = store.join(rel_path);
    let corrupt = |detail: String| StoreError::Corrupt { path: path.clone(), detail };
    let file = crate::segment::SegmentFile::open(&path, 8192)?;
    for batch in file.reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let columns = EventColumns::new(&batch).map_err(|e| corrupt(e.to_string()))?;
        let seqs = batch
            .column_by_name(crate::segment::SEQ_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>().cloned())
            .ok_or_else(|| corrupt("seq column missing".into()))?;
        for row in 0..batch.num_rows() {
            if let Some(patient) = columns.patient_id(row) {
                let mut record = Vec::with_capacity(256);
                columns.encode_record(row, &mut record);
                out.push(Entry { key: patient_key(patient), seq: seqs.value(row) as u64, record });
            }
        }
    }
    Ok(())
}

/// The run of one sealed epoch, from its manifest's segments. Memory: the epoch's entries
/// (an epoch is at most `max_epoch_records` records).
pub fn index_epoch(store: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let mut entries = Vec::new();
    for segment in &manifest.segments {
        segment_entries(store, &segment.path, &mut entries)?;
    }
    write_run(store, RunName { first_epoch: manifest.epoch, last_epoch: manifest.epoch }, &mut entries)?;
    Ok(())
}

/// Brings the index up to `committed_epoch`: writes the runs of the epochs after the last
/// one covered (all of them on a store written before the index existed), then merges.
/// Returns how many epochs it indexed.
pub fn repair(store: &Path, committed_epoch: u64) -> Result<u64, StoreError> {
    // Runs a crash interrupted before their rename were never part of the index.
    if let Ok(entries) = std::fs::read_dir(dir_of(store)) {
        for entry in entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".idx.tmp")) {
            std::fs::remove_file(entry.path()).map_err(|e| StoreError::io(&entry.path(), e))?;
        }
    }
    let (_, indexed_through) = covering(&list_runs(store)?);
    let mut indexed = 0;
    for epoch in indexed_through + 1..=committed_epoch {
        let path = store.join(crate::manifest::manifest_rel_path(epoch));
        let (manifest, _) = crate::layout::read_manifest(&path)?;
        index_epoch(store, &manifest)?;
        indexed += 1;
        // Merge as it goes, so a long repair never leaves thousands of runs.
        if epoch % FAN_IN as u64 == 0 {
            compact(store)?;
        }
    }
    compact(store)?;
    Ok(indexed)
}

/// What an epoch's segments give the patient index, as a verifier reads them anyway: the
/// number of entries and the wrapping sum of their digests ([`entry_digest`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntrySum {
    pub sum: u128,
    pub count: u64,
}

impl EntrySum {
    /// Adds the entry of one row with a patient.
    pub fn add(&mut self, patient_id: &str, seq: u64, record: &[u8]) {
        self.sum = self.sum.wrapping_add(entry_digest(patient_key(patient_id), seq, record));
        self.count += 1;
    }

    pub fn merge(&mut self, other: EntrySum) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count += other.count;
    }
}

/// Checks every run in the cover against what its epochs' segments give (`expected`, per
/// epoch: the verifier sums the rows it reads for the chain, so no segment is read twice):
/// its footer, the strict (key, seq) order of its entries, their number, and their content
/// as a multiset (the sum of 128-bit digests of key, seq and record), so memory stays one
/// block however large the run. A run covering an epoch `expected` has no sum for is an
/// error, unless `skip_unread` (a live writer sealed it after the verifier read the
/// manifests): then the run is not checked. Returns the entries checked.
pub fn verify_runs(store: &Path, expected: &dyn Fn(u64) -> Option<EntrySum>, skip_unread: bool) -> Result<u64, StoreError> {
    // Every run of the cover is opened first: a writer merging meanwhile deletes runs, and
    // an open handle still reads a deleted file, so a live store gives no false alarm.
    let (chosen, _) = covering(&list_runs(store)?);
    let mut runs = Vec::with_capacity(chosen.len());
    for name in chosen {
        let path = dir_of(store).join(name.file_name());
        runs.push((name, Run::open(&path).map_err(|e| StoreError::io(&path, e))?));
    }
    let mut checked = 0;
    'runs: for (name, run) in runs {
        let mut want = EntrySum::default();
        for epoch in name.first_epoch..=name.last_epoch {
            match expected(epoch) {
                Some(sum) => want.merge(sum),
                None if skip_unread => continue 'runs,
                None => return Err(run.corrupt(format!("covers epoch {epoch}, which the store does not have"))),
            }
        }
        let path = run.path.clone();
        let mut footer = [0u8; 32];
        let body = run.len - 32;
        run.file.read_exact_at(&mut footer, body).map_err(|e| StoreError::io(&path, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut chunk = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < body {
            let n = chunk.len().min((body - at) as usize);
            run.file.read_exact_at(&mut chunk[..n], at).map_err(|e| StoreError::io(&path, e))?;
            hasher.update(&chunk[..n]);
            at += n as u64;
        }
        if *hasher.finalize().as_bytes() != footer {
            return Err(run.corrupt("its footer hash does not match its contents"));
        }
        let expected_entries = run.entries;
        let mut reader = EntryReader::new(run)?;
        let (mut previous, mut have) = (None, EntrySum::default());
        while let Some(entry) = reader.next()? {
            if previous.is_some_and(|p| p >= (entry.key, entry.seq)) {
                return Err(reader.run.corrupt(format!("entry {} is out of order", have.count)));
            }
            previous = Some((entry.key, entry.seq));
            have.sum = have.sum.wrapping_add(entry_digest(entry.key, entry.seq, &entry.record));
            have.count += 1;
        }
        if have.count != expected_entries {
            return Err(reader.run.corrupt(format!("its trailer says {expected_entries} entries, its blocks hold {}", have.count)));
        }
        if have.count != want.count {
            return Err(reader.run.corrupt(format!("holds {} entries, its segments give {}", have.count, want.count)));
        }
        if have.sum != want.sum {
            return Err(reader.run.corrupt("its entries do not match the rows of its segments"));
        }
        checked += have.count;
    }
    Ok(checked)
}

/// An entry's digest for a run's multiset sum: the first 16 bytes of BLAKE3(key ‖ seq ‖
/// record), little-endian (`docs/format.md` §8c).
pub fn entry_digest(key: u64, seq: u64, record: &[u8]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&key.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(record);
    let mut first = [0u8; 16];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_the_format_test_vector() {
        // docs/format.md §6, "Patient index".
        assert_eq!(format!("{:#018x}", patient_key("13116900216")), "0x837d57598d422fea");
    }

    fn entry(patient: &str, seq: u64) -> Entry {
        // Records large enough that a run has many blocks.
        Entry { key: patient_key(patient), seq, record: format!("{patient}:{seq}:{}", "x".repeat(900)).into_bytes() }
    }

    fn found(store: &Path, patient: &str) -> (Vec<u64>, u64) {
        let mut seqs = Vec::new();
        let through = lookup(store, patient, |seq, record| {
            if record.starts_with(format!("{patient}:").as_bytes()) {
                seqs.push(seq);
            }
            Ok(())
        })
        .unwrap();
        (seqs, through)
    }

    #[test]
    fn lookup_finds_every_entry_across_merged_and_unmerged_runs_in_epoch_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        // 19 epochs of 100 events: patient "p" in every third epoch, "q" in every one,
        // 60 others filling the blocks around them.
        let mut seq = 0;
        for epoch in 1..=19u64 {
            let mut entries = Vec::new();
            for i in 0..100u64 {
                seq += 1;
                let patient = match i {
                    0 if epoch % 3 == 0 => "p".to_string(),
                    1 => "q".to_string(),
                    _ => format!("other-{}", i % 60),
                };
                entries.push(entry(&patient, seq));
            }
            write_run(store, RunName { first_epoch: epoch, last_epoch: epoch }, &mut entries).unwrap();
            compact(store).unwrap();
        }
        let runs = list_runs(store).unwrap();
        assert_eq!(runs.iter().map(|r| (r.first_epoch, r.last_epoch)).collect::<Vec<_>>(), vec![(1, 8), (9, 16), (17, 17), (18, 18), (19, 19)], "a base-8 counter");
        let (p, through) = found(store, "p");
        assert_eq!(through, 19);
        assert_eq!(p, [3, 6, 9, 12, 15, 18].iter().map(|e| (e - 1) * 100 + 1).collect::<Vec<_>>());
        assert_eq!(found(store, "q").0, (1..=19).map(|e| (e - 1) * 100 + 2).collect::<Vec<_>>());
        assert_eq!(found(store, "other-7").0.len(), 19 * 2, "i = 7 and i = 67 in every epoch");
        assert!(found(store, "nobody").0.is_empty());
    }

    #[test]
    fn a_merge_cut_short_leaves_its_inputs_superseded_and_a_gap_ends_the_cover() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        for epoch in 1..=8u64 {
            write_run(store, RunName { first_epoch: epoch, last_epoch: epoch }, &mut [entry("p", epoch)]).unwrap();
        }
        // A crash after the merged run's rename, before its inputs were deleted.
        let inputs: Vec<PathBuf> = list_runs(store).unwrap().iter().map(|r| dir_of(store).join(r.file_name())).collect();
        let saved: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
        compact(store).unwrap();
        for (p, bytes) in inputs.iter().zip(&saved) {
            std::fs::write(p, bytes).unwrap();
        }
        assert_eq!(found(store, "p").0, (1..=8).collect::<Vec<_>>(), "each entry once, from the merged run");
        compact(store).unwrap();
        assert_eq!(list_runs(store).unwrap(), vec![RunName { first_epoch: 1, last_epoch: 8 }], "the superseded inputs are removed");
        // Epoch 10 indexed but 9 not: the cover stops at 8.
        write_run(store, RunName { first_epoch: 10, last_epoch: 10 }, &mut [entry("p", 10)]).unwrap();
        assert_eq!(found(store, "p").1, 8);
        // A run a crash cut short before its rename is removed when the writer opens the store.
        let leftover = dir_of(store).join("run-0000000009-0000000009.idx.tmp");
        std::fs::write(&leftover, b"LVPATIX2 cut").unwrap();
        assert_eq!(repair(store, 8).unwrap(), 0);
        assert!(!leftover.exists());
    }

    #[test]
    fn a_cut_entry_is_an_error_not_the_end_of_a_block() {
        let mut block = Vec::new();
        block.extend_from_slice(&7u64.to_le_bytes());
        block.extend_from_slice(&1u64.to_le_bytes());
        block.extend_from_slice(&3u32.to_le_bytes());
        block.extend_from_slice(b"abc");
        block.extend_from_slice(&[1, 2, 3]);
        let entries: Vec<_> = block_entries(&block).collect();
        assert_eq!(entries[0], Ok((7, 1, &b"abc"[..])));
        assert_eq!(entries[1], Err("the entry at byte 23 of its block is cut short".to_string()));
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn a_damaged_run_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let path = write_run(store, RunName { first_epoch: 1, last_epoch: 1 }, &mut [entry("p", 1)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = lookup(store, "p", |_, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("run-0000000001-0000000001.idx") && err.contains("trailer says"), "{err}");
    }
}
