//! The patient index, `index/patients/` (`docs/format.md` §6b): where each patient's rows
//! lie in the sealed segments, so one patient's accesses are found by reading a few pages
//! of a few files instead of every segment of the store (a patient's ITI-81 search over
//! 25 M events read all of them: 16-22 s).
//!
//! Like the epoch index it is derived: it adds nothing a verifier relies on, and it can be
//! rebuilt from the segments at any time (`repair`). A reader never trusts it for content:
//! every row it points to is read from its segment and kept only if its patient is the one
//! asked for, so a hash collision or a damaged run can cost a read, never show another
//! patient's access. What a damaged run could do is hide rows; `verify_runs` rebuilds each
//! run's epochs and compares.
//!
//! Layout: sorted runs, each covering a contiguous range of epochs, merged in a base-8
//! tier (like a binary counter): a seal writes a run for its epoch, eight runs of equal
//! width become one. A year of 30-second seals (a million epochs) is then at most ~50 runs,
//! and each entry is rewritten about 7 times in its life. A lookup binary-searches every
//! run it needs, reading a few 4 KiB pages of each.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{create_dir_durable, sync_dir};
use crate::manifest::Manifest;
use crate::StoreError;

/// The directory of the runs, relative to the store.
pub const PATIENT_INDEX_DIR: &str = "index/patients";
const MAGIC: &[u8; 8] = b"LVPATIX1";
const HEADER_LEN: u64 = 48;
const ENTRY_LEN: u64 = 20;
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

/// One patient's consecutive rows in one segment file (the seal sorts a segment by patient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub key: u64,
    pub row_start: u32,
    pub rows: u32,
}

/// The spans of a segment whose rows are in the given patient order (rows without a
/// patient have none).
pub fn spans_of<'a>(patients: impl IntoIterator<Item = Option<&'a str>>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut current: Option<&str> = None;
    for (row, patient) in patients.into_iter().enumerate() {
        match patient {
            Some(p) if current == Some(p) => {
                if let Some(last) = out.last_mut() {
                    last.rows += 1;
                }
            }
            Some(p) => out.push(Span { key: patient_key(p), row_start: row as u32, rows: 1 }),
            None => {}
        }
        current = patient;
    }
    out
}

/// One segment's spans, as a seal or a repair hands them to [`write_run`].
#[derive(Debug, Clone)]
pub struct SegmentSpans {
    /// The segment's path relative to the store, as in its manifest.
    pub path: String,
    pub spans: Vec<Span>,
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

    /// The tier: width 1 is tier 0, 8 is tier 1, 64 tier 2, …
    fn tier(&self) -> u32 {
        self.width().ilog(FAN_IN as u64)
    }
}

fn dir_of(store: &Path) -> PathBuf {
    store.join(PATIENT_INDEX_DIR)
}

/// Writes a run durably (temporary name, fsync, rename). `segments` are in epoch order.
pub fn write_run(store: &Path, run: RunName, segments: &[SegmentSpans]) -> Result<PathBuf, StoreError> {
    let mut entries: Vec<(Span, u32)> = Vec::with_capacity(segments.iter().map(|s| s.spans.len()).sum());
    for (no, segment) in segments.iter().enumerate() {
        entries.extend(segment.spans.iter().map(|span| (*span, no as u32)));
    }
    // Stable: one patient's entries stay in epoch (segment) order.
    entries.sort_by_key(|(span, _)| span.key);
    let heap: usize = segments.iter().map(|s| s.path.len()).sum();
    let mut out = RunWriter::create(store, run, entries.len() as u64, segments.len() as u64, heap as u64)?;
    for (span, segment) in &entries {
        out.entry(span, *segment)?;
    }
    let mut end = 0u64;
    for segment in segments {
        end += segment.path.len() as u64;
        out.write(&end.to_le_bytes())?;
    }
    for segment in segments {
        out.write(segment.path.as_bytes())?;
    }
    out.finish()
}

/// Writes a run file front to back, hashing what it writes for the footer.
struct RunWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl RunWriter {
    fn create(store: &Path, run: RunName, entries: u64, segments: u64, heap: u64) -> Result<Self, StoreError> {
        let dir = dir_of(store);
        create_dir_durable(&dir)?;
        let path = dir.join(run.file_name());
        let tmp = path.with_extension("idx.tmp");
        let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let mut writer = RunWriter { tmp, path, out: BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new() };
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        for value in [run.first_epoch, run.last_epoch, entries, segments, heap] {
            header.extend_from_slice(&value.to_le_bytes());
        }
        writer.write(&header)?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).map_err(|e| StoreError::io(&self.tmp, e))
    }

    fn entry(&mut self, span: &Span, segment: u32) -> Result<(), StoreError> {
        self.write(&encode_entry(span, segment))
    }

    fn finish(mut self) -> Result<PathBuf, StoreError> {
        let footer = *self.hasher.finalize().as_bytes();
        self.out.write_all(&footer).map_err(|e| StoreError::io(&self.tmp, e))?;
        let file = self.out.into_inner().map_err(|e| StoreError::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        sync_dir(self.path.parent().unwrap_or(Path::new(".")))?;
        Ok(self.path)
    }
}

/// An open run: its header, read; entries and paths read on demand.
struct Run {
    path: PathBuf,
    file: File,
    entries: u64,
    segments: u64,
    heap: u64,
}

impl Run {
    fn open(path: &Path) -> Result<Run, std::io::Error> {
        let file = File::open(path)?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        let field = |i: usize| u64::from_le_bytes(header[8 + 8 * i..16 + 8 * i].try_into().unwrap_or_default());
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned());
        if &header[..8] != MAGIC {
            return Err(bad("not a patient index run (wrong magic)"));
        }
        let (entries, segments, heap) = (field(2), field(3), field(4));
        let expected = HEADER_LEN + entries * ENTRY_LEN + segments * 8 + heap + 32;
        let len = file.metadata()?.len();
        if len != expected {
            return Err(bad(&format!("is {len} bytes, its header says {expected}")));
        }
        Ok(Run { path: path.to_owned(), file, entries, segments, heap })
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), detail: detail.into() }
    }

    fn entry(&self, i: u64) -> Result<(Span, u32), StoreError> {
        let mut bytes = [0u8; ENTRY_LEN as usize];
        self.file.read_exact_at(&mut bytes, HEADER_LEN + i * ENTRY_LEN).map_err(|e| StoreError::io(&self.path, e))?;
        Ok(decode_entry(&bytes))
    }

    fn key(&self, i: u64) -> Result<u64, StoreError> {
        Ok(self.entry(i)?.0.key)
    }

    /// The first entry whose key is not below `key`.
    fn lower_bound(&self, key: u64) -> Result<u64, StoreError> {
        let (mut lo, mut hi) = (0u64, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.key(mid)? < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    fn segment_path(&self, segment: u32) -> Result<String, StoreError> {
        let segment = segment as u64;
        if segment >= self.segments {
            return Err(self.corrupt(format!("an entry names segment {segment}, the run has {}", self.segments)));
        }
        let ends_at = HEADER_LEN + self.entries * ENTRY_LEN;
        let mut end = [0u8; 8];
        self.file.read_exact_at(&mut end, ends_at + segment * 8).map_err(|e| StoreError::io(&self.path, e))?;
        let end = u64::from_le_bytes(end);
        let start = match segment {
            0 => 0,
            s => {
                let mut start = [0u8; 8];
                self.file.read_exact_at(&mut start, ends_at + (s - 1) * 8).map_err(|e| StoreError::io(&self.path, e))?;
                u64::from_le_bytes(start)
            }
        };
        if start > end || end > self.heap {
            return Err(self.corrupt(format!("segment {segment}'s path lies outside the run")));
        }
        let mut path = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut path, ends_at + self.segments * 8 + start).map_err(|e| StoreError::io(&self.path, e))?;
        String::from_utf8(path).map_err(|_| self.corrupt(format!("segment {segment}'s path is not UTF-8")))
    }
}

/// An entry as stored: key, segment number, first row, rows (§6, little-endian).
fn encode_entry(span: &Span, segment: u32) -> [u8; ENTRY_LEN as usize] {
    let mut bytes = [0u8; ENTRY_LEN as usize];
    bytes[..8].copy_from_slice(&span.key.to_le_bytes());
    bytes[8..12].copy_from_slice(&segment.to_le_bytes());
    bytes[12..16].copy_from_slice(&span.row_start.to_le_bytes());
    bytes[16..20].copy_from_slice(&span.rows.to_le_bytes());
    bytes
}

fn decode_entry(bytes: &[u8]) -> (Span, u32) {
    let word = |range: std::ops::Range<usize>| bytes.get(range).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or_default();
    let key = bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or_default();
    (Span { key, row_start: word(12..16), rows: word(16..20) }, word(8..12))
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

/// Where one patient's rows are: sealed segments and the rows in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientRows {
    /// (segment path relative to the store, first row, number of rows), in epoch order.
    pub spans: Vec<(String, u32, u32)>,
    /// The index covers epochs 1 to this; later epochs (a seal being indexed right now, or a
    /// crash's gap until the writer repairs it) must be searched in their segments.
    pub indexed_through: u64,
}

/// One patient's rows, from every run the index needs. Retries when a merge removed a run
/// between the listing and the opening.
pub fn lookup(store: &Path, patient_id: &str) -> Result<PatientRows, StoreError> {
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
        let mut out = PatientRows { spans: Vec::new(), indexed_through };
        for run in &runs {
            let mut i = run.lower_bound(key)?;
            while i < run.entries {
                let (span, segment) = run.entry(i)?;
                if span.key != key {
                    break;
                }
                out.spans.push((run.segment_path(segment)?, span.row_start, span.rows));
                i += 1;
            }
        }
        return Ok(out);
    }
}

/// Merges every group of [`FAN_IN`] adjacent runs of the same tier into one, repeatedly,
/// then deletes the runs it superseded. Memory: one read buffer per input.
/// Returns how many merges it made.
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
        let group = chosen.windows(FAN_IN).find(|w| w.iter().all(|r| r.tier() == w[0].tier() && r.width() == w[0].width()));
        let Some(group) = group else { return Ok(merges) };
        merge(store, group)?;
        merges += 1;
    }
}

/// Writes one run covering `inputs` (adjacent, in epoch order), then deletes them.
fn merge(store: &Path, inputs: &[RunName]) -> Result<(), StoreError> {
    let runs: Vec<Run> =
        inputs.iter().map(|n| Run::open(&dir_of(store).join(n.file_name())).map_err(|e| StoreError::io(&dir_of(store).join(n.file_name()), e))).collect::<Result<_, _>>()?;
    let name = RunName { first_epoch: inputs[0].first_epoch, last_epoch: inputs[inputs.len() - 1].last_epoch };
    let entries: u64 = runs.iter().map(|r| r.entries).sum();
    let segments: u64 = runs.iter().map(|r| r.segments).sum();
    let heap: u64 = runs.iter().map(|r| r.heap).sum();
    let mut out = RunWriter::create(store, name, entries, segments, heap)?;
    // Segment numbers move up by the segments of the runs before.
    let mut segment_base = Vec::with_capacity(runs.len());
    let mut base = 0u64;
    for run in &runs {
        segment_base.push(base as u32);
        base += run.segments;
    }
    let mut readers: Vec<EntryReader> = runs.iter().map(EntryReader::new).collect::<Result<_, _>>()?;
    // Min-heap on (key, input): ties keep epoch order, and each input is already in order.
    let mut heap_of_heads = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some((span, segment)) = reader.next()? {
            heap_of_heads.push(std::cmp::Reverse((span.key, i, span.row_start, span.rows, segment)));
        }
    }
    while let Some(std::cmp::Reverse((key, i, row_start, rows, segment))) = heap_of_heads.pop() {
        out.entry(&Span { key, row_start, rows }, segment + segment_base[i])?;
        if let Some((span, segment)) = readers[i].next()? {
            heap_of_heads.push(std::cmp::Reverse((span.key, i, span.row_start, span.rows, segment)));
        }
    }
    // Path ends move up by the heap bytes of the runs before.
    let mut heap_base = 0u64;
    for run in &runs {
        let mut ends = BufReader::new(section(run, HEADER_LEN + run.entries * ENTRY_LEN, run.segments * 8)?);
        for _ in 0..run.segments {
            let mut end = [0u8; 8];
            ends.read_exact(&mut end).map_err(|e| StoreError::io(&run.path, e))?;
            out.write(&(u64::from_le_bytes(end) + heap_base).to_le_bytes())?;
        }
        heap_base += run.heap;
    }
    for run in &runs {
        let mut paths = section(run, HEADER_LEN + run.entries * ENTRY_LEN + run.segments * 8, run.heap)?;
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = paths.read(&mut buffer).map_err(|e| StoreError::io(&run.path, e))?;
            if n == 0 {
                break;
            }
            out.write(&buffer[..n])?;
        }
    }
    out.finish()?;
    for run in &runs {
        std::fs::remove_file(&run.path).map_err(|e| StoreError::io(&run.path, e))?;
    }
    Ok(())
}

/// `len` bytes of a run from `offset`, as a reader. The file is opened again, so several
/// sections of one run can be read side by side (a cloned handle would share the offset).
fn section(run: &Run, offset: u64, len: u64) -> Result<std::io::Take<File>, StoreError> {
    use std::io::Seek;
    let mut file = File::open(&run.path).map_err(|e| StoreError::io(&run.path, e))?;
    file.seek(std::io::SeekFrom::Start(offset)).map_err(|e| StoreError::io(&run.path, e))?;
    Ok(file.take(len))
}

/// A run's entries in order, through a buffer.
struct EntryReader {
    path: PathBuf,
    reader: BufReader<std::io::Take<File>>,
    left: u64,
}

impl EntryReader {
    fn new(run: &Run) -> Result<Self, StoreError> {
        Ok(EntryReader { path: run.path.clone(), reader: BufReader::with_capacity(1 << 16, section(run, HEADER_LEN, run.entries * ENTRY_LEN)?), left: run.entries })
    }

    fn next(&mut self) -> Result<Option<(Span, u32)>, StoreError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut bytes = [0u8; ENTRY_LEN as usize];
        self.reader.read_exact(&mut bytes).map_err(|e| StoreError::io(&self.path, e))?;
        self.left -= 1;
        Ok(Some(decode_entry(&bytes)))
    }
}

/// The spans of a sealed segment, read from its `patient_id` column (a repair, or a check).
pub fn segment_spans(store: &Path, rel_path: &str) -> Result<SegmentSpans, StoreError> {
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let path = store.join(rel_path);
    let corrupt = |detail: String| StoreError::Corrupt { path: path.clone(), detail };
    let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| corrupt(format!("not a readable Parquet file: {e}")))?;
    let column = builder.schema().index_of("patient_id").map_err(|e| corrupt(e.to_string()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let reader = builder.with_projection(mask).with_batch_size(64 * 1024).build().map_err(|e| corrupt(e.to_string()))?;
    let mut ids: Vec<Option<String>> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let column = batch.column(0);
        let strings = column.as_string_opt::<i32>().ok_or_else(|| corrupt("patient_id is not a string column".into()))?;
        ids.extend(strings.iter().map(|s| s.map(str::to_owned)));
    }
    Ok(SegmentSpans { path: rel_path.to_owned(), spans: spans_of(ids.iter().map(|s| s.as_deref())) })
}

/// The run of one sealed epoch, from its manifest's segments.
pub fn index_epoch(store: &Path, manifest: &Manifest) -> Result<(), StoreError> {
    let segments: Vec<SegmentSpans> = manifest.segments.iter().map(|s| segment_spans(store, &s.path)).collect::<Result<_, _>>()?;
    write_run(store, RunName { first_epoch: manifest.epoch, last_epoch: manifest.epoch }, &segments)?;
    Ok(())
}

/// Brings the index up to `committed_epoch`: writes the runs of the epochs after the last
/// one covered (all of them on a store written before the index existed), then merges.
/// Returns how many epochs it indexed.
pub fn repair(store: &Path, committed_epoch: u64) -> Result<u64, StoreError> {
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

/// Checks every run in the cover against the segments: its footer, its list of segment
/// paths against its epochs' manifests, and its entries against the spans those segments
/// give. Entries are compared as a multiset (a sum of 128-bit hashes) plus their order, so
/// memory stays one segment's spans however large the run. Returns the entries checked.
/// Reads every segment's patient column.
pub fn verify_runs(store: &Path) -> Result<u64, StoreError> {
    let (chosen, _) = covering(&list_runs(store)?);
    let mut checked = 0;
    for name in chosen {
        let path = dir_of(store).join(name.file_name());
        let run = Run::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut footer = [0u8; 32];
        let body = HEADER_LEN + run.entries * ENTRY_LEN + run.segments * 8 + run.heap;
        run.file.read_exact_at(&mut footer, body).map_err(|e| StoreError::io(&path, e))?;
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut section(&run, 0, body)?, &mut hasher).map_err(|e| StoreError::io(&path, e))?;
        if *hasher.finalize().as_bytes() != footer {
            return Err(run.corrupt("its footer hash does not match its contents"));
        }
        // What the segments give, segment by segment, against the run's path table in order.
        let mut ends = BufReader::new(section(&run, HEADER_LEN + run.entries * ENTRY_LEN, run.segments * 8)?);
        let mut heap = BufReader::new(section(&run, HEADER_LEN + run.entries * ENTRY_LEN + run.segments * 8, run.heap)?);
        let (mut segment_no, mut heap_at, mut expected_sum, mut expected_count) = (0u64, 0u64, 0u128, 0u64);
        for epoch in name.first_epoch..=name.last_epoch {
            let (manifest, _) = crate::layout::read_manifest(&store.join(crate::manifest::manifest_rel_path(epoch)))?;
            for segment in &manifest.segments {
                if segment_no >= run.segments {
                    return Err(run.corrupt(format!("names {} segments, its epochs have more", run.segments)));
                }
                let mut end = [0u8; 8];
                ends.read_exact(&mut end).map_err(|e| StoreError::io(&path, e))?;
                let end = u64::from_le_bytes(end);
                let mut named = vec![0u8; end.saturating_sub(heap_at).min(run.heap) as usize];
                heap.read_exact(&mut named).map_err(|e| StoreError::io(&path, e))?;
                heap_at = end;
                if named != segment.path.as_bytes() {
                    return Err(run.corrupt(format!("its segment {segment_no} is {}, epoch {epoch}'s manifest lists {}", String::from_utf8_lossy(&named), segment.path)));
                }
                for span in segment_spans(store, &segment.path)?.spans {
                    expected_sum = expected_sum.wrapping_add(entry_hash(&span, segment_no as u32));
                    expected_count += 1;
                }
                segment_no += 1;
            }
        }
        if segment_no != run.segments {
            return Err(run.corrupt(format!("names {} segments, its epochs have {segment_no}", run.segments)));
        }
        let (mut entries, mut previous, mut sum, mut count) = (EntryReader::new(&run)?, None, 0u128, 0u64);
        while let Some((span, segment)) = entries.next()? {
            let place = (span.key, segment, span.row_start);
            if previous.is_some_and(|p| p >= place) {
                return Err(run.corrupt(format!("entry {count} is out of order")));
            }
            previous = Some(place);
            sum = sum.wrapping_add(entry_hash(&span, segment));
            count += 1;
        }
        if count != expected_count {
            return Err(run.corrupt(format!("holds {count} entries, its segments give {expected_count}")));
        }
        if sum != expected_sum {
            return Err(run.corrupt("its entries do not match the rows of its segments"));
        }
        checked += count;
    }
    Ok(checked)
}

/// An entry's contribution to a run's multiset sum.
fn entry_hash(span: &Span, segment: u32) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&blake3::hash(&encode_entry(span, segment)).as_bytes()[..16]);
    u128::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(ids: &[Option<&str>]) -> Vec<Span> {
        spans_of(ids.iter().copied())
    }

    #[test]
    fn the_key_of_the_format_test_vector() {
        // docs/format.md §6, "Patient index".
        assert_eq!(format!("{:#018x}", patient_key("13116900216")), "0x837d57598d422fea");
    }

    #[test]
    fn spans_group_consecutive_rows_of_one_patient() {
        let s = spans(&[None, None, Some("a"), Some("a"), Some("b"), Some("c"), Some("c"), Some("c")]);
        assert_eq!(
            s,
            vec![
                Span { key: patient_key("a"), row_start: 2, rows: 2 },
                Span { key: patient_key("b"), row_start: 4, rows: 1 },
                Span { key: patient_key("c"), row_start: 5, rows: 3 },
            ]
        );
    }

    fn seg(path: &str, ids: &[Option<&str>]) -> SegmentSpans {
        SegmentSpans { path: path.into(), spans: spans(ids) }
    }

    #[test]
    fn lookup_finds_every_span_across_merged_and_unmerged_runs_in_epoch_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        // 19 epochs: patient "p" in every third, "q" everywhere, "r" once.
        for epoch in 1..=19u64 {
            let mut ids: Vec<Option<&str>> = vec![None];
            if epoch % 3 == 0 {
                ids.extend([Some("p"), Some("p")]);
            }
            ids.push(Some("q"));
            if epoch == 11 {
                ids.push(Some("r"));
            }
            let name = RunName { first_epoch: epoch, last_epoch: epoch };
            write_run(store, name, &[seg(&format!("data/a/seg-{epoch}-0.parquet"), &ids), seg(&format!("data/b/seg-{epoch}-1.parquet"), &[Some("q")])]).unwrap();
            compact(store).unwrap();
        }
        let runs = list_runs(store).unwrap();
        assert_eq!(runs.iter().map(|r| (r.first_epoch, r.last_epoch)).collect::<Vec<_>>(), vec![(1, 8), (9, 16), (17, 17), (18, 18), (19, 19)], "a base-8 counter");
        let p = lookup(store, "p").unwrap();
        assert_eq!(p.indexed_through, 19);
        assert_eq!(p.spans, [3, 6, 9, 12, 15, 18].iter().map(|e| (format!("data/a/seg-{e}-0.parquet"), 1, 2)).collect::<Vec<_>>());
        let q = lookup(store, "q").unwrap();
        assert_eq!(q.spans.len(), 38);
        assert_eq!(q.spans[0..2], [("data/a/seg-1-0.parquet".to_string(), 1, 1), ("data/b/seg-1-1.parquet".to_string(), 0, 1)]);
        assert_eq!(lookup(store, "r").unwrap().spans, vec![("data/a/seg-11-0.parquet".to_string(), 2, 1)]);
        assert!(lookup(store, "nobody").unwrap().spans.is_empty());
    }

    #[test]
    fn a_merge_cut_short_leaves_its_inputs_superseded_and_a_gap_ends_the_cover() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        for epoch in 1..=8u64 {
            write_run(store, RunName { first_epoch: epoch, last_epoch: epoch }, &[seg(&format!("s{epoch}"), &[Some("p")])]).unwrap();
        }
        // A crash after the merged run's rename, before its inputs were deleted.
        let inputs: Vec<RunName> = list_runs(store).unwrap();
        let keep: Vec<PathBuf> = inputs.iter().map(|r| dir_of(store).join(r.file_name())).collect();
        let saved: Vec<Vec<u8>> = keep.iter().map(|p| std::fs::read(p).unwrap()).collect();
        compact(store).unwrap();
        for (p, bytes) in keep.iter().zip(&saved) {
            std::fs::write(p, bytes).unwrap();
        }
        assert_eq!(lookup(store, "p").unwrap().spans.len(), 8, "each span once, from the merged run");
        compact(store).unwrap();
        assert_eq!(list_runs(store).unwrap(), vec![RunName { first_epoch: 1, last_epoch: 8 }], "the superseded inputs are removed");
        // Epoch 10 indexed but 9 not: the cover stops at 8.
        write_run(store, RunName { first_epoch: 10, last_epoch: 10 }, &[seg("s10", &[Some("p")])]).unwrap();
        assert_eq!(lookup(store, "p").unwrap().indexed_through, 8);
    }

    #[test]
    fn a_damaged_run_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        let path = write_run(store, RunName { first_epoch: 1, last_epoch: 1 }, &[seg("s1", &[Some("p")])]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = lookup(store, "p").unwrap_err().to_string();
        assert!(err.contains("run-0000000001-0000000001.idx") && err.contains("header says"), "{err}");
    }
}
