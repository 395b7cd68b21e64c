//! Which (source system, event id) pairs the store already holds, so a resent event is
//! stored once.
//!
//! Keys are kept per UTC date of the access (`occurred_at`), loaded from that date's
//! segments the first time an event of the date arrives, and at most `max_dates` dates are
//! held at once (least recently used first out). Memory and start-up time so depend on the
//! dates being ingested, not on the size of the store: a year of Helse Sør-Øst's 1.3 billion
//! accesses is never loaded whole. A resend of an event under a different access date is
//! not recognised as the same event (documented in `docs/format.md` §7).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, FixedSizeBinaryArray, StringArray};
use loggvakt_model::AccessEvent;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::layout::list_sorted;
use crate::segment::SealedRecord;
use crate::JournalError;

/// An event's access day, the 128-bit key of its identity, and the first 8 bytes of its
/// source digest (to tell a resend from a reused id).
pub(crate) fn identity(event: &AccessEvent) -> (i64, u128, u64) {
    (event.occurred_at.utc_day(), key_of(&event.source_system, &event.event_id), digest_prefix(&event.source_digest.0))
}

fn key_of(source_system: &str, event_id: &str) -> u128 {
    let mut h = blake3::Hasher::new();
    h.update(source_system.as_bytes());
    h.update(&[0]);
    h.update(event_id.as_bytes());
    u128::from_le_bytes(h.finalize().as_bytes()[..16].try_into().unwrap_or([0; 16]))
}

fn digest_prefix(digest: &[u8]) -> u64 {
    u64::from_le_bytes(digest.get(..8).and_then(|d| d.try_into().ok()).unwrap_or([0; 8]))
}

/// One date's keys, split over shards by the key's low bits. A map of a million keys that
/// doubles rehashes all of them at once, on the writer's thread, while every acknowledgement
/// waits (measured: a 100 ms stall at about 900 000 keys); a shard holds 1/64 of them.
#[derive(Default)]
struct DayKeys {
    shards: Vec<HashMap<u128, u64>>,
}

const SHARDS: usize = 64;

impl DayKeys {
    fn shard(&self, key: u128) -> Option<&HashMap<u128, u64>> {
        self.shards.get(key as usize % SHARDS)
    }
    fn get(&self, key: &u128) -> Option<&u64> {
        self.shard(*key).and_then(|s| s.get(key))
    }
    fn insert(&mut self, key: u128, digest: u64) {
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| HashMap::new()).collect();
        }
        if let Some(shard) = self.shards.get_mut(key as usize % SHARDS) {
            shard.insert(key, digest);
        }
    }
}

pub(crate) struct IdempotencyIndex {
    store: PathBuf,
    dates: HashMap<i64, DayKeys>,
    recent: VecDeque<i64>,
    max_dates: usize,
}

impl IdempotencyIndex {
    pub fn new(store: &Path, max_dates: usize) -> Self {
        IdempotencyIndex { store: store.to_owned(), dates: HashMap::new(), recent: VecDeque::new(), max_dates: max_dates.max(1) }
    }

    /// The digest prefix stored under `key` on `day`, loading that day first if needed.
    /// `pending` are the appended records not yet in segments (an epoch being sealed, and
    /// the records after it).
    pub fn lookup(&mut self, day: i64, key: u128, pending: &[&[SealedRecord]]) -> Result<Option<u64>, JournalError> {
        self.load(day, pending)?;
        Ok(self.dates.get(&day).and_then(|keys| keys.get(&key)).copied())
    }

    /// Records a key; its day must have been looked up before.
    pub fn insert(&mut self, day: i64, key: u128, digest: u64) {
        self.dates.entry(day).or_default().insert(key, digest);
    }

    fn load(&mut self, day: i64, pending: &[&[SealedRecord]]) -> Result<(), JournalError> {
        if self.dates.contains_key(&day) {
            if self.recent.back() != Some(&day) {
                self.recent.retain(|d| *d != day);
                self.recent.push_back(day);
            }
            return Ok(());
        }
        while self.recent.len() >= self.max_dates {
            if let Some(old) = self.recent.pop_front() {
                self.dates.remove(&old);
            }
        }
        let mut keys = DayKeys::default();
        for path in self.segments_of(day)? {
            read_keys(&path, &mut keys)?;
        }
        for record in pending.iter().flat_map(|p| p.iter()) {
            let (record_day, key, digest) = identity(&record.event);
            if record_day == day {
                keys.insert(key, digest);
            }
        }
        self.dates.insert(day, keys);
        self.recent.push_back(day);
        Ok(())
    }

    /// Every tenant's segments for one date: `data/tenant=*/date=<day>/*.parquet`.
    fn segments_of(&self, day: i64) -> Result<Vec<PathBuf>, JournalError> {
        let date = loggvakt_model::Timestamp::day_to_date(day);
        let mut out = Vec::new();
        for tenant in list_sorted(&self.store.join("data"), |n| n.starts_with("tenant="))? {
            out.extend(list_sorted(&tenant.join(format!("date={date}")), |n| n.ends_with(".parquet"))?);
        }
        Ok(out)
    }
}

fn read_keys(path: &Path, keys: &mut DayKeys) -> Result<(), JournalError> {
    let corrupt = |detail: String| JournalError::Corrupt { path: path.to_owned(), detail };
    let file = File::open(path).map_err(|e| JournalError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| corrupt(e.to_string()))?;
    let wanted = ["event_id", "source_system", "source_digest"];
    let schema = builder.parquet_schema();
    let indices = (0..schema.num_columns()).filter(|&i| wanted.contains(&schema.column(i).name()));
    let mask = ProjectionMask::leaves(schema, indices);
    let reader = builder.with_projection(mask).build().map_err(|e| corrupt(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| corrupt(format!("column {name} missing")));
        let ids = column("event_id")?.as_any().downcast_ref::<StringArray>().cloned();
        let sources = column("source_system")?.as_any().downcast_ref::<StringArray>().cloned();
        let digests = column("source_digest")?.as_any().downcast_ref::<FixedSizeBinaryArray>().cloned();
        let (Some(ids), Some(sources), Some(digests)) = (ids, sources, digests) else {
            return Err(corrupt("idempotency columns have the wrong types".into()));
        };
        for row in 0..batch.num_rows() {
            keys.insert(key_of(sources.value(row), ids.value(row)), digest_prefix(digests.value(row)));
        }
    }
    Ok(())
}
