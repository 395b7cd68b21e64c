//! Row-level checks of one epoch: re-derive every leaf from the Parquet rows, put the rows
//! back in sequence order, and fold the chain against the stored tags.

use std::cmp::Ordering;
use std::path::Path;

use arrow_array::{Array, FixedSizeBinaryArray, Int64Array};
use loggvakt_format::chain::{self, Hash, Tag, TAG_LEN};
use loggvakt_format::manifest::{Manifest, SegmentEntry};
use loggvakt_format::patients::EntrySum;
use loggvakt_format::segment::{SegmentFile, META_EPOCH, META_PATH, SEQ_COLUMN, TAG_COLUMN};
use loggvakt_model::{EventColumns, Timestamp};
use rayon::prelude::*;

use loggvakt_storage::Storage;

use crate::report::{Problem, ProblemKind};

struct RowHash {
    seq: u64,
    leaf: Hash,
    tag: Tag,
    segment: u32,
    row: u32,
}

struct SegmentScan {
    rows: Vec<RowHash>,
    problems: Vec<Problem>,
    reviews: Vec<ReviewClaim>,
    patient_entries: EntrySum,
}

/// An own record's claim about a context snapshot: a review run's record of what it read
/// (`access-log-review`), or an import's record of the snapshot it made current
/// (`context-snapshot`); the snapshot and the digest of its files are in `reason_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReviewClaim {
    pub seq: u64,
    pub snapshot: String,
    pub files_blake3: String,
}

#[derive(Default)]
pub(crate) struct EpochOutcome {
    pub rows: u64,
    pub problems: Vec<Problem>,
    pub chain_intact: bool,
    pub unverified_rows: u64,
    pub reviews: Vec<ReviewClaim>,
    /// What the epoch's rows give the patient index, summed while they are read for the chain.
    pub patient_entries: EntrySum,
}

fn review_claim(seq: u64, event: &loggvakt_model::AccessEvent) -> Option<ReviewClaim> {
    let (snapshot, files_blake3) = loggvakt_format::own::context_claim(event)?;
    Some(ReviewClaim { seq, snapshot, files_blake3 })
}

/// The path a segment file's own metadata gives for it.
pub(crate) fn claimed_path(store: &dyn Storage, file: &str) -> Option<String> {
    let bytes = store.read(file).ok()?;
    SegmentFile::from_bytes(Path::new(file), bytes, 1).ok()?.meta(META_PATH).map(str::to_owned)
}

fn scan_segment(store: &dyn Storage, epoch: u64, index: usize, entry: &SegmentEntry, tick: &(dyn Fn(u64) + Sync)) -> SegmentScan {
    let mut out = SegmentScan { rows: Vec::with_capacity(entry.rows as usize), problems: vec![], reviews: vec![], patient_entries: EntrySum::default() };
    let file = entry.path.as_str();
    let path = Path::new(file);
    let bytes = match store.read(file) {
        Ok(b) => b,
        Err(loggvakt_storage::StorageError::NotFound { .. }) => {
            out.problems.push(
                Problem::new(
                    ProblemKind::MissingSegment,
                    format!("epoch {epoch} lists this segment with {} rows (seq {}..={}), but it is gone: deleted or renamed", entry.rows, entry.first_seq, entry.last_seq),
                )
                .in_file(file)
                .at_seq(entry.first_seq),
            );
            return out;
        }
        Err(e) => {
            out.problems.push(Problem::new(ProblemKind::Unreadable, e.to_string()).in_file(file).at_seq(entry.first_seq));
            return out;
        }
    };
    if chain::to_hex(blake3::hash(&bytes).as_bytes()) != entry.blake3 {
        out.problems.push(Problem::new(ProblemKind::ModifiedFile, "file bytes differ from the hash in its manifest; row checks below locate the change").in_file(file));
    }
    let segment = match SegmentFile::from_bytes(path, bytes, 65_536) {
        Ok(s) => s,
        Err(e) => {
            out.problems.push(Problem::new(ProblemKind::Unreadable, e.to_string()).in_file(file).at_seq(entry.first_seq));
            return out;
        }
    };
    match segment.meta(META_PATH) {
        Some(claimed) if claimed == file => {}
        claimed => out.problems.push(
            Problem::new(ProblemKind::RenamedSegment, format!("file says it is '{}': segments were renamed or swapped", claimed.unwrap_or("(no path recorded)"))).in_file(file),
        ),
    }
    if segment.meta(META_EPOCH) != Some(epoch.to_string().as_str()) {
        out.problems.push(
            Problem::new(ProblemKind::RenamedSegment, format!("file says it belongs to epoch {}, its manifest is epoch {epoch}", segment.meta(META_EPOCH).unwrap_or("?")))
                .in_file(file),
        );
    }
    let (tenant, date) = loggvakt_format::segment::partition_of(file);
    // Rows are checked by day number, so no date is formatted per row.
    let day = date.and_then(Timestamp::date_to_day);
    let mut record = Vec::with_capacity(1024);
    let mut row_base = 0u32;
    // The sort key of the previous row, owned only across batch boundaries.
    let mut previous_key: Option<(Option<String>, i64, u64)> = None;
    for batch in segment.reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                out.problems.push(Problem::new(ProblemKind::Unreadable, e.to_string()).in_file(file).at_row(row_base as u64));
                return out;
            }
        };
        let columns = EventColumns::new(&batch);
        let seqs = batch.column_by_name(SEQ_COLUMN).and_then(|c| c.as_any().downcast_ref::<Int64Array>());
        let tags = batch.column_by_name(TAG_COLUMN).and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>()).filter(|t| t.value_length() == TAG_LEN as i32);
        let (Ok(columns), Some(seqs), Some(tags)) = (columns, seqs, tags) else {
            out.problems.push(Problem::new(ProblemKind::Unreadable, "columns are missing or of the wrong type: not a loggvakt segment").in_file(file));
            return out;
        };
        for row in 0..batch.num_rows() {
            let file_row = row_base + row as u32;
            let seq = seqs.value(row) as u64;
            let occurred = columns.occurred_at(row);
            if tenant != Some(columns.tenant_orgnr(row)) || day != Some(occurred.utc_day()) {
                out.problems.push(
                    Problem::new(ProblemKind::WrongPartition, format!("row is for tenant {} on {}, not this partition", columns.tenant_orgnr(row), occurred.utc_date()))
                        .in_file(file)
                        .at_row(file_row as u64)
                        .at_seq(seq),
                );
            }
            let key = (columns.patient_id(row), occurred.0, seq);
            let previous = if row == 0 {
                previous_key.as_ref().map(|(p, t, s)| (p.as_deref(), *t, *s))
            } else {
                Some((columns.patient_id(row - 1), columns.occurred_at(row - 1).0, seqs.value(row - 1) as u64))
            };
            if let Some(prev) = previous {
                if prev.cmp(&key) != Ordering::Less {
                    out.problems.push(
                        Problem::new(ProblemKind::RowOrder, format!("row is out of the segment's (patient, time, seq) order after seq {}: rows were reordered", prev.2))
                            .in_file(file)
                            .at_row(file_row as u64)
                            .at_seq(seq),
                    );
                }
            }
            if row + 1 == batch.num_rows() {
                previous_key = Some((key.0.map(str::to_owned), key.1, key.2));
            }
            record.clear();
            columns.encode_record(row, &mut record);
            if let Some(patient) = columns.patient_id(row) {
                out.patient_entries.add(patient, seq, &record);
            }
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(tags.value(row));
            out.rows.push(RowHash { seq, leaf: chain::leaf(&record), tag, segment: index as u32, row: file_row });
            // The store's own records are few: only they are read whole, for review claims.
            if columns.source_system(row) == loggvakt_format::own::OWN_SYSTEM {
                out.reviews.extend(review_claim(seq, &columns.event(row)));
            }
        }
        row_base += batch.num_rows() as u32;
        tick(batch.num_rows() as u64);
    }
    out
}

pub(crate) fn check_epoch(store: &dyn Storage, m: &Manifest, manifest_file: &str, tick: &(dyn Fn(u64) + Sync)) -> EpochOutcome {
    let scans: Vec<SegmentScan> = m.segments.par_iter().enumerate().map(|(i, s)| scan_segment(store, m.epoch, i, s, tick)).collect();
    let mut problems = Vec::new();
    let mut reviews = Vec::new();
    let mut rows = Vec::with_capacity(m.segments.iter().map(|s| s.rows as usize).sum());
    let mut patient_entries = EntrySum::default();
    for scan in scans {
        problems.extend(scan.problems);
        rows.extend(scan.rows);
        reviews.extend(scan.reviews);
        patient_entries.merge(scan.patient_entries);
    }
    rows.sort_unstable_by_key(|r| r.seq);
    let place = |r: &RowHash| m.segments.get(r.segment as usize).map(|s| s.path.as_str()).unwrap_or("?");
    let missing_segment = problems.iter().any(|p| p.kind == ProblemKind::MissingSegment);
    let mut outcome = EpochOutcome { rows: rows.len() as u64, problems: vec![], chain_intact: true, unverified_rows: 0, reviews, patient_entries };
    let Some(mut head) = chain::from_hex::<32>(&m.prev_head) else {
        problems.push(Problem::new(ProblemKind::ManifestMismatch, "prev_head is not a 32-byte hex hash").in_file(manifest_file));
        outcome.problems = problems;
        outcome.chain_intact = false;
        return outcome;
    };
    let mut expected = m.first_seq;
    let mut i = 0;
    while i < rows.len() {
        let seq = rows[i].seq;
        let group_end = rows[i..].iter().position(|r| r.seq != seq).map_or(rows.len(), |n| i + n);
        let group = &rows[i..group_end];
        i = group_end;
        if seq < m.first_seq || seq > m.last_seq {
            for r in group {
                problems.push(
                    Problem::new(ProblemKind::UnexpectedRecord, format!("seq is outside epoch {} (seq {}..={}): an inserted row", m.epoch, m.first_seq, m.last_seq))
                        .in_file(place(r))
                        .at_row(r.row as u64)
                        .at_seq(seq),
                );
            }
            continue;
        }
        if seq > expected {
            if !missing_segment {
                let what = if seq - expected == 1 { format!("seq {expected} is missing") } else { format!("seqs {expected}..={} are missing", seq - 1) };
                problems.push(
                    Problem::new(ProblemKind::MissingRecord, format!("{what} (deleted); the next record present, seq {seq}, is at this file and row"))
                        .in_file(place(&group[0]))
                        .at_row(group[0].row as u64)
                        .at_seq(expected),
                );
            }
            outcome.chain_intact = false;
        }
        expected = seq + 1;
        if !outcome.chain_intact {
            outcome.unverified_rows += group.len() as u64;
            continue;
        }
        // Among copies of one seq, the genuine one is the one that chains.
        let candidates: Vec<Hash> = group.iter().map(|r| chain::next_head(&head, seq, &r.leaf)).collect();
        let genuine = group.iter().zip(&candidates).position(|(r, h)| chain::tag(h) == r.tag);
        for (k, r) in group.iter().enumerate() {
            if Some(k) != genuine && group.len() > 1 {
                problems.push(
                    Problem::new(ProblemKind::DuplicateRecord, format!("seq appears {} times; this copy does not chain: an inserted row", group.len()))
                        .in_file(place(r))
                        .at_row(r.row as u64)
                        .at_seq(seq),
                );
            }
        }
        match genuine {
            Some(k) => head = candidates[k],
            None => {
                let r = &group[0];
                problems.push(
                    Problem::new(ProblemKind::ModifiedRecord, "record does not hash to its chain tag: a field was changed, or the row was replaced or moved")
                        .in_file(place(r))
                        .at_row(r.row as u64)
                        .at_seq(seq),
                );
                outcome.chain_intact = false;
            }
        }
    }
    if expected <= m.last_seq && !missing_segment {
        let what = if expected == m.last_seq { format!("seq {expected} is missing") } else { format!("seqs {expected}..={} are missing", m.last_seq) };
        problems.push(Problem::new(ProblemKind::MissingRecord, format!("{what} at the end of epoch {}: deleted row(s)", m.epoch)).in_file(manifest_file).at_seq(expected));
        outcome.chain_intact = false;
    }
    if outcome.chain_intact && chain::to_hex(&head) != m.head {
        problems.push(
            Problem::new(
                ProblemKind::ChainBreak,
                format!("every row matches its stored tag, yet the recomputed head of epoch {} differs from its manifest: rows and tags were rewritten together", m.epoch),
            )
            .in_file(manifest_file)
            .at_seq(m.last_seq),
        );
        outcome.chain_intact = false;
    }
    outcome.problems = problems;
    outcome
}
