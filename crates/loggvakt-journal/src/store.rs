//! The journal writer: the only code that appends to a store.
//!
//! Durability promise (also in `docs/format.md` §Durability): `append` assigns a sequence
//! number and writes the record to the write-ahead journal; `commit` fsyncs it, and only
//! records appended before a returned `commit` may be acknowledged. `seal` turns the
//! committed records into Parquet segments, a manifest and a signed checkpoint; the
//! checkpoint file is the commit point of a seal, and recovery removes any segments and
//! manifests a crash left without one, then re-seals from the write-ahead journal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loggvakt_model::{AccessEvent, Timestamp};
use rayon::prelude::*;

use crate::chain::{self, Hash};
use crate::context::ContextFile;
use crate::fsutil::{create_dir_durable, sync_dir, write_atomic};
use crate::idempotency::{identity, IdempotencyIndex};
use crate::layout::{list_checkpoints, list_files_under, list_manifests, list_wal_files, read_manifest, StoreInfo, STORE_FILE, STORE_FORMAT};
use crate::manifest::{checkpoint_rel_path, manifest_rel_path, Manifest, SegmentEntry, MANIFEST_FORMAT};
use crate::note::{Checkpoint, SigningKey};
use crate::patients;
use crate::quarantine::{QuarantineEntry, QuarantineWriter, RetryRecord};
use crate::segment::{epoch_of_file_name, segment_rel_path, write_segment, SealedRecord};
use crate::wal::{cut_torn_tail, read_wal, wal_path, WalWriter};
use crate::JournalError;

#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Seal when this many records wait (bounds memory, and the verifier's per-epoch memory).
    pub max_epoch_records: usize,
    /// Seal, and so sign a checkpoint, at least this often while records arrive.
    pub max_epoch_age: Duration,
    /// Access dates whose event ids are held in memory for recognising resends.
    pub idempotency_days: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { max_epoch_records: 500_000, max_epoch_age: Duration::from_secs(5), idempotency_days: 8 }
    }
}

/// What `append` did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    Stored {
        seq: u64,
    },
    /// The same source already sent this event id with the same content: stored once.
    Duplicate,
    /// The same source already sent this event id with different content.
    Conflict {
        source_system: String,
        event_id: String,
    },
}

impl Appended {
    /// Why a conflicting event was not stored, in the words every intake path uses
    /// (the quarantine's reason, the retry's report).
    pub fn conflict_reason(&self) -> Option<String> {
        match self {
            Appended::Conflict { source_system, event_id } => Some(format!(
                "event id '{event_id}' from system '{source_system}' was stored before with different content; the first one stands, and a source must not reuse an id"
            )),
            _ => None,
        }
    }
}

/// What opening the store had to repair after a crash.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Committed records found in the write-ahead journal and sealed again.
    pub replayed: usize,
    /// Bytes of a torn, never-acknowledged write cut from the write-ahead journal.
    pub torn_bytes: u64,
    /// Segment and manifest files that a crash left without a checkpoint, removed.
    pub removed_uncommitted: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SealReport {
    pub epoch: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: usize,
    pub checkpoint: PathBuf,
}

pub struct Journal {
    dir: PathBuf,
    store_id: [u8; 16],
    store_id_hex: String,
    key: SigningKey,
    _lock: File,
    options: JournalOptions,
    wal: Option<WalWriter>,
    unsealed_wal_files: Vec<PathBuf>,
    pending: Vec<SealedRecord>,
    /// The records of an epoch a [`SealJob`] is writing out, until it ends.
    sealing: Option<Arc<Vec<SealedRecord>>>,
    next_seq: u64,
    head: Hash,
    /// Chain head after the last sealed record: the next manifest's `prev_head`.
    sealed_head: Hash,
    durable_seq: u64,
    epoch: u64,
    epoch_started: Option<Instant>,
    index: IdempotencyIndex,
    quarantine: QuarantineWriter,
    context: ContextFile,
}

/// An event with its record encoding and leaf hash: the costly, order-free part of an
/// append, which callers may compute on many threads.
pub struct PreparedRecord {
    event: AccessEvent,
    record: Vec<u8>,
    leaf: Hash,
}

impl PreparedRecord {
    pub fn new(event: AccessEvent) -> Self {
        let mut record = Vec::with_capacity(512);
        event.encode_record(&mut record);
        let leaf = chain::leaf(&record);
        PreparedRecord { event, record, leaf }
    }
    pub fn event(&self) -> &AccessEvent {
        &self.event
    }
}

/// Room for a whole epoch, reserved up front: growing by doubling would copy hundreds of
/// megabytes on the writer's thread in the middle of an epoch, and every acknowledgement
/// would wait for it. Only address space until the records arrive.
fn epoch_buffer(options: &JournalOptions) -> Vec<SealedRecord> {
    Vec::with_capacity(options.max_epoch_records.min(1 << 20))
}

fn lock_store(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(loggvakt_format::LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| JournalError::io(&path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(JournalError::Locked { store: dir.to_owned() });
    }
    Ok(file)
}

impl Journal {
    /// Opens a store for writing, creating it if `dir` is empty or missing, and repairs
    /// what a crash left behind.
    pub fn open(dir: &Path, key: SigningKey, options: JournalOptions) -> Result<(Journal, Recovery), JournalError> {
        create_dir_durable(dir)?;
        let lock = lock_store(dir)?;
        if !dir.join(STORE_FILE).exists() {
            let mut id = [0u8; 16];
            getrandom::getrandom(&mut id).map_err(|e| JournalError::Key(format!("no randomness from the OS: {e}")))?;
            let info = StoreInfo { format: STORE_FORMAT.into(), store_id: chain::to_hex(&id), created: chrono::Utc::now().to_rfc3339() };
            let bytes = serde_json::to_vec_pretty(&info).map_err(|e| JournalError::io(dir, std::io::Error::other(e)))?;
            write_atomic(&dir.join(STORE_FILE), &bytes)?;
        }
        let (_, store_id) = StoreInfo::read(dir)?;
        create_dir_durable(&dir.join("wal"))?;
        let idempotency_days = options.idempotency_days;
        let pending = epoch_buffer(&options);
        let mut journal = Journal {
            dir: dir.to_owned(),
            store_id,
            store_id_hex: chain::to_hex(&store_id),
            key,
            _lock: lock,
            options,
            wal: None,
            unsealed_wal_files: vec![],
            pending,
            sealing: None,
            next_seq: 1,
            head: chain::genesis(&store_id),
            sealed_head: chain::genesis(&store_id),
            durable_seq: 0,
            epoch: 0,
            epoch_started: None,
            index: IdempotencyIndex::new(dir, idempotency_days),
            quarantine: QuarantineWriter::new(dir),
            context: ContextFile::new(dir),
        };
        let recovery = journal.recover()?;
        Ok((journal, recovery))
    }

    fn recover(&mut self) -> Result<Recovery, JournalError> {
        let mut recovery = Recovery::default();
        let committed_epoch = match list_checkpoints(&self.dir)?.last() {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| JournalError::io(path, e))?;
                Checkpoint::parse_note(&text)?.0.epoch
            }
            None => 0,
        };
        // A seal is committed by its checkpoint; anything of a later epoch is a crash's leftover.
        // Only the newest committed manifest is read: its name gives its epoch.
        let mut newest_committed = None;
        for (epoch, path) in list_manifests(&self.dir)? {
            if epoch > committed_epoch {
                std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
                recovery.removed_uncommitted.push(manifest_rel_path(epoch));
            } else {
                newest_committed = Some(path);
            }
        }
        // The epoch index lacks what a crash cut short after a checkpoint (or, on a store
        // written before it existed, everything): appended from those manifests only.
        loggvakt_format::index::repair(&self.dir, committed_epoch)?;
        // Likewise the patient index (on a store written before it existed: every segment's
        // patient column is read once, here).
        patients::repair(&self.dir, committed_epoch)?;
        // Temporary files are writes a crash interrupted before their rename: never committed.
        for sub in ["manifests", "checkpoints"] {
            for rel in list_files_under(&self.dir, sub, |name| name.ends_with(".tmp"))? {
                let path = self.dir.join(&rel);
                std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
                recovery.removed_uncommitted.push(rel);
            }
        }
        // Segment files of an uncommitted epoch, and segments not yet renamed, exist only
        // while the write-ahead files holding their records do (a seal deletes those after
        // its checkpoint): after a clean close there are none, and the walk of data/ (a
        // year of epochs is hundreds of thousands of files) is not needed.
        if !list_wal_files(&self.dir)?.is_empty() || !recovery.removed_uncommitted.is_empty() {
            for rel in list_files_under(&self.dir, "data", |name| name.ends_with(".tmp") || name.ends_with(".parquet"))? {
                let name = rel.rsplit('/').next().unwrap_or_default();
                if name.ends_with(".tmp") || epoch_of_file_name(name).is_some_and(|e| e > committed_epoch) {
                    let path = self.dir.join(&rel);
                    std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
                    recovery.removed_uncommitted.push(rel);
                }
            }
        }
        if let Some(path) = newest_committed {
            let (last, _) = read_manifest(&path)?;
            self.epoch = last.epoch;
            self.next_seq = last.last_seq + 1;
            self.head =
                chain::from_hex(&last.head).ok_or_else(|| JournalError::Corrupt { path: self.dir.join(manifest_rel_path(last.epoch)), detail: "head is not hex".into() })?;
        }
        self.sealed_head = self.head;
        self.durable_seq = self.next_seq - 1;
        let sealed_seq = self.next_seq - 1;
        for path in list_wal_files(&self.dir)? {
            let contents = read_wal(&path, &self.store_id)?;
            if contents.torn_bytes > 0 {
                cut_torn_tail(&path, contents.valid_len)?;
                recovery.torn_bytes += contents.torn_bytes;
            }
            let mut holds_unsealed = false;
            for (seq, record) in contents.records {
                if seq <= sealed_seq {
                    continue;
                }
                if seq != self.next_seq {
                    return Err(JournalError::Corrupt { path: path.clone(), detail: format!("write-ahead journal jumps from seq {} to {seq}", self.next_seq - 1) });
                }
                let event = AccessEvent::decode_record(&record).map_err(|e| JournalError::Corrupt { path: path.clone(), detail: format!("seq {seq}: {e}") })?;
                let (day, key, digest) = identity(&event);
                self.index.lookup(day, key, &[&self.pending])?;
                self.index.insert(day, key, digest);
                self.head = chain::next_head(&self.head, seq, &chain::leaf(&record));
                self.pending.push(SealedRecord { seq, event: Arc::new(event), tag: chain::tag(&self.head) });
                self.next_seq += 1;
                holds_unsealed = true;
                recovery.replayed += 1;
            }
            if holds_unsealed {
                self.unsealed_wal_files.push(path);
            } else {
                std::fs::remove_file(&path).map_err(|e| JournalError::io(&path, e))?;
            }
        }
        self.durable_seq = self.next_seq - 1;
        if !self.pending.is_empty() {
            self.seal()?;
        }
        Ok(recovery)
    }

    pub fn store_dir(&self) -> &Path {
        &self.dir
    }

    /// Sequence number of the last record made durable by `commit`.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Committed records not yet sealed into segments, oldest first. With the sealed
    /// segments they are every durable record; a reader that also wants these (a search
    /// served while the writer runs) asks the writer for them.
    pub fn unsealed(&self) -> impl Iterator<Item = (u64, &AccessEvent)> {
        let durable = self.durable_seq;
        let sealing = self.sealing.as_deref().map_or(&[][..], Vec::as_slice);
        sealing.iter().chain(&self.pending).take_while(move |r| r.seq <= durable).map(|r| (r.seq, r.event.as_ref()))
    }

    /// Committed records after sequence number `after`, shared: what a writer hands its
    /// readers after each commit (pending records are in sequence order).
    pub fn committed_after(&self, after: u64) -> impl Iterator<Item = (u64, &Arc<AccessEvent>)> {
        let durable = self.durable_seq;
        let sealing = self.sealing.as_deref().map_or(&[][..], Vec::as_slice);
        let from_sealing = sealing.partition_point(|r| r.seq <= after);
        let from_pending = self.pending.partition_point(|r| r.seq <= after);
        sealing[from_sealing..].iter().chain(&self.pending[from_pending..]).take_while(move |r| r.seq <= durable).map(|r| (r.seq, &r.event))
    }

    pub fn signer_id(&self) -> String {
        self.key.verifier().id()
    }

    /// Appends one event to the write-ahead journal. Not durable until `commit`.
    pub fn append(&mut self, event: AccessEvent) -> Result<Appended, JournalError> {
        self.append_prepared(PreparedRecord::new(event))
    }

    /// Appends an event whose encoding and leaf hash were computed beforehand (in
    /// parallel, by the caller). Not durable until `commit`.
    pub fn append_prepared(&mut self, prepared: PreparedRecord) -> Result<Appended, JournalError> {
        let PreparedRecord { event, record, leaf } = prepared;
        let (day, key, digest) = identity(&event);
        let sealing = self.sealing.as_deref().map_or(&[][..], Vec::as_slice);
        if let Some(seen) = self.index.lookup(day, key, &[sealing, &self.pending])? {
            return Ok(if seen == digest { Appended::Duplicate } else { Appended::Conflict { source_system: event.source_system, event_id: event.event_id } });
        }
        let seq = self.next_seq;
        if self.wal.is_none() {
            let writer = WalWriter::create(wal_path(&self.dir, seq), &self.store_id)?;
            self.unsealed_wal_files.push(writer.path().to_owned());
            self.wal = Some(writer);
        }
        if let Some(wal) = self.wal.as_mut() {
            wal.append(seq, &record)?;
        }
        self.head = chain::next_head(&self.head, seq, &leaf);
        self.pending.push(SealedRecord { seq, event: Arc::new(event), tag: chain::tag(&self.head) });
        self.index.insert(day, key, digest);
        self.next_seq += 1;
        self.epoch_started.get_or_insert_with(Instant::now);
        Ok(Appended::Stored { seq })
    }

    /// Keeps input that could not be mapped. Durable at the next `commit`.
    pub fn quarantine(&mut self, entry: &QuarantineEntry) -> Result<(), JournalError> {
        self.quarantine.append(entry)
    }

    /// Records that a quarantined entry was retried, after the events it became are
    /// committed; durable when this returns.
    pub fn record_retry(&mut self, record: &RetryRecord) -> Result<(), JournalError> {
        let path = self.dir.join("quarantine").join(crate::quarantine::RETRIED_FILE);
        let mut log = crate::append_log::AppendLog::new(path.clone());
        let line = serde_json::to_vec(record).map_err(|e| JournalError::io(&path, std::io::Error::other(e)))?;
        log.append(&[&line, b"\n"])?;
        log.sync()
    }

    /// Keeps a context resource (e.g. a FHIR PractitionerRole) that later input may refer
    /// to. Durable at the next `commit`.
    pub fn keep_context(&mut self, raw: &[u8]) -> Result<(), JournalError> {
        self.context.append(None, raw)
    }

    /// Keeps a context resource in the namespace of the daemon source that sent it.
    pub fn keep_source_context(&mut self, source: &str, raw: &[u8]) -> Result<(), JournalError> {
        self.context.append(Some(source), raw)
    }

    /// Makes everything appended and quarantined so far durable, and returns the last
    /// durable sequence number. Only now may those events be acknowledged.
    pub fn commit(&mut self) -> Result<u64, JournalError> {
        if let Some(wal) = self.wal.as_mut() {
            wal.sync()?;
        }
        self.quarantine.sync()?;
        self.context.sync()?;
        self.durable_seq = self.next_seq - 1;
        Ok(self.durable_seq)
    }

    fn seal_due(&self) -> bool {
        let full = self.pending.len() >= self.options.max_epoch_records;
        let old = self.epoch_started.is_some_and(|t| t.elapsed() >= self.options.max_epoch_age);
        full || old
    }

    /// Seals if enough records wait, or they have waited long enough.
    pub fn maybe_seal(&mut self) -> Result<Option<SealReport>, JournalError> {
        if self.seal_due() {
            self.seal()
        } else {
            Ok(None)
        }
    }

    /// Like [`Journal::maybe_seal`], but hands the writing to the caller as a [`SealJob`] to run
    /// on another thread, so appends and commits go on meanwhile; `None` when no seal is
    /// due or one is already running.
    pub fn maybe_begin_seal(&mut self) -> Result<Option<SealJob>, JournalError> {
        if self.sealing.is_some() || !self.seal_due() {
            return Ok(None);
        }
        self.begin_seal()
    }

    /// Commits, then writes all pending records as segments of a new epoch, its manifest,
    /// and a signed checkpoint; then drops the write-ahead journal they came from.
    pub fn seal(&mut self) -> Result<Option<SealReport>, JournalError> {
        let Some(job) = self.begin_seal()? else {
            return Ok(None);
        };
        let result = job.run();
        drop(self.end_seal());
        result.map(Some)
    }

    /// Commits and takes the pending records out as the next epoch: from here on they are
    /// the job's, and new appends go to a new write-ahead journal file. One job at a time.
    pub fn begin_seal(&mut self) -> Result<Option<SealJob>, JournalError> {
        if self.sealing.is_some() {
            return Err(JournalError::Checkpoint("a seal is still running; end it before starting another".into()));
        }
        self.commit()?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let records = Arc::new(std::mem::replace(&mut self.pending, epoch_buffer(&self.options)));
        self.sealing = Some(records.clone());
        self.wal = None;
        let job = SealJob {
            dir: self.dir.clone(),
            store_id: self.store_id,
            store_id_hex: self.store_id_hex.clone(),
            key: self.key.clone(),
            epoch: self.epoch + 1,
            records,
            prev_head: self.sealed_head,
            head: self.head,
            wal_files: std::mem::take(&mut self.unsealed_wal_files),
        };
        self.epoch += 1;
        self.sealed_head = self.head;
        self.epoch_started = None;
        Ok(Some(job))
    }

    /// The job has ended. Its result is the caller's to act on: a failed seal leaves its
    /// records in the write-ahead journal, so the writer must stop and recovery re-seal them.
    /// Returns the epoch's records, for the caller to free where it costs nothing: freeing
    /// half a million events takes the better part of a second.
    #[must_use = "the records are freed where the returned value is dropped"]
    pub fn end_seal(&mut self) -> Option<Arc<Vec<SealedRecord>>> {
        self.sealing.take()
    }

    /// Seals what is pending and releases the store.
    pub fn close(mut self) -> Result<Option<SealReport>, JournalError> {
        self.seal()
    }
}

/// One epoch's records on their way into segments, a manifest and a signed checkpoint.
/// Runs on any thread; the checkpoint is its commit point, after which the write-ahead
/// journal files the records came from are deleted.
pub struct SealJob {
    dir: PathBuf,
    store_id: [u8; 16],
    store_id_hex: String,
    key: SigningKey,
    epoch: u64,
    records: Arc<Vec<SealedRecord>>,
    prev_head: Hash,
    head: Hash,
    wal_files: Vec<PathBuf>,
}

impl SealJob {
    pub fn run(&self) -> Result<SealReport, JournalError> {
        let epoch = self.epoch;
        let first_seq = self.records.first().map_or(0, |r| r.seq);
        let last_seq = self.records.last().map_or(0, |r| r.seq);
        // Keyed by day number, not date text: the date is formatted once per partition, not per record.
        let mut partitions: BTreeMap<(&str, i64), Vec<&SealedRecord>> = BTreeMap::new();
        for record in self.records.iter() {
            partitions.entry((record.event.tenant_orgnr.as_str(), record.event.occurred_at.utc_day())).or_default().push(record);
        }
        let jobs: Vec<(String, Vec<&SealedRecord>)> = partitions
            .into_iter()
            .enumerate()
            .map(|(index, ((tenant, day), mut rows))| {
                rows.sort_by(|a, b| (a.event.patient_id.as_deref(), a.event.occurred_at, a.seq).cmp(&(b.event.patient_id.as_deref(), b.event.occurred_at, b.seq)));
                (segment_rel_path(tenant, &Timestamp::day_to_date(day), epoch, index), rows)
            })
            .collect();
        let dir = &self.dir;
        let store_id_hex = &self.store_id_hex;
        let written: Vec<Result<SegmentEntry, JournalError>> = jobs
            .par_iter()
            .map(|(rel, rows)| {
                let hash = write_segment(dir, rel, store_id_hex, epoch, rows)?;
                Ok(SegmentEntry {
                    path: rel.clone(),
                    rows: rows.len() as u64,
                    first_seq: rows.iter().map(|r| r.seq).min().unwrap_or(0),
                    last_seq: rows.iter().map(|r| r.seq).max().unwrap_or(0),
                    blake3: chain::to_hex(&hash),
                })
            })
            .collect();
        let segments = written.into_iter().collect::<Result<Vec<_>, _>>()?;
        let partition_dirs: BTreeSet<PathBuf> = segments.iter().filter_map(|s| self.dir.join(&s.path).parent().map(Path::to_owned)).collect();
        for d in &partition_dirs {
            sync_dir(d)?;
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            store_id: self.store_id_hex.clone(),
            epoch,
            first_seq,
            last_seq,
            prev_head: chain::to_hex(&self.prev_head),
            head: chain::to_hex(&self.head),
            sealed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            segments,
        };
        let manifest_bytes = manifest.to_bytes();
        create_dir_durable(&self.dir.join("manifests"))?;
        write_atomic(&self.dir.join(manifest_rel_path(epoch)), &manifest_bytes)?;
        let checkpoint = Checkpoint {
            origin: Checkpoint::origin_for(&self.store_id),
            size: last_seq,
            head: self.head,
            epoch,
            manifest: Some(*blake3::hash(&manifest_bytes).as_bytes()),
            time: manifest.sealed_at.clone(),
        };
        create_dir_durable(&self.dir.join("checkpoints"))?;
        let checkpoint_path = self.dir.join(checkpoint_rel_path(last_seq));
        write_atomic(&checkpoint_path, checkpoint.sign(&self.key).as_bytes())?;
        // The seal is committed; readers find it through the epoch index from now on (a
        // crash before this line is repaired when the store is opened again).
        loggvakt_format::index::append(&self.dir, std::slice::from_ref(&manifest))?;
        // And each patient's events to the patient index (derived too: a crash before this
        // is repaired on open).
        let mut entries = patients::entries_of(self.records.iter().map(|r| (r.seq, r.event.as_ref())));
        patients::write_run(&self.dir, patients::RunName { first_epoch: epoch, last_epoch: epoch }, &mut entries)?;
        drop(entries);
        patients::compact(&self.dir)?;
        // The write-ahead journal it came from is no longer needed.
        for path in &self.wal_files {
            std::fs::remove_file(path).map_err(|e| JournalError::io(path, e))?;
        }
        sync_dir(&self.dir.join("wal"))?;
        Ok(SealReport { epoch, first_seq, last_seq, segments: manifest.segments.len(), checkpoint: checkpoint_path })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use loggvakt_model::{Digest16, Timestamp};

    use super::*;
    use crate::vectors::vector_event;

    fn key() -> SigningKey {
        SigningKey::from_seed("test", [3; 32])
    }

    fn event(n: u64) -> AccessEvent {
        AccessEvent { event_id: format!("e-{n}"), ..vector_event() }
    }

    /// Appends and commits `n` events without sealing, as if the process died right after.
    fn committed_but_unsealed(dir: &Path, n: u64) {
        let options = JournalOptions { max_epoch_records: usize::MAX, max_epoch_age: Duration::from_secs(3600), ..Default::default() };
        let (mut journal, _) = Journal::open(dir, key(), options).expect("open");
        for i in 0..n {
            assert!(matches!(journal.append(event(i)).expect("append"), Appended::Stored { .. }));
        }
        assert_eq!(journal.commit().expect("commit"), n);
        drop(journal); // dropping does not seal: on disk this is what a crash leaves
    }

    #[test]
    fn appends_go_on_while_a_seal_job_runs() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        let (mut journal, _) = Journal::open(&dir, key(), JournalOptions::default()).expect("open");
        for i in 0..10 {
            journal.append(event(i)).expect("append");
        }
        let job = journal.begin_seal().expect("begin").expect("a job");
        let running = std::thread::spawn(move || job.run());
        assert_eq!(journal.append(event(10)).expect("append"), Appended::Stored { seq: 11 });
        assert_eq!(journal.append(event(3)).expect("append"), Appended::Duplicate, "a record being sealed is still known");
        assert_eq!(journal.commit().expect("commit"), 11);
        assert_eq!(journal.unsealed().count(), 11, "the sealing records are still readable through the writer");
        assert!(journal.begin_seal().is_err(), "one seal at a time");
        let report = running.join().expect("thread").expect("sealed");
        assert_eq!(journal.end_seal().map(|records| records.len()), Some(10));
        assert_eq!((report.first_seq, report.last_seq), (1, 10));
        assert_eq!(journal.unsealed().count(), 1);
        journal.close().expect("close");
        let seqs: Vec<u64> = crate::read_sealed_events(&dir).expect("read").into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    }

    #[test]
    fn committed_records_survive_a_crash_and_are_sealed_on_reopen() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        committed_but_unsealed(&dir, 10);
        let (journal, recovery) = Journal::open(&dir, key(), JournalOptions::default()).expect("reopen");
        assert_eq!(recovery.replayed, 10);
        assert_eq!(journal.durable_seq(), 10);
        drop(journal);
        let stored = crate::read_sealed_events(&dir).expect("read");
        assert_eq!(stored.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_tail_is_cut_and_reported() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        committed_but_unsealed(&dir, 5);
        let wal = crate::layout::list_wal_files(&dir).expect("wal").pop().expect("a wal file");
        // Half a frame header and some bytes: a write the crash cut short.
        std::fs::OpenOptions::new().append(true).open(&wal).expect("wal").write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("tear");
        let (_, recovery) = Journal::open(&dir, key(), JournalOptions::default()).expect("reopen");
        assert_eq!((recovery.replayed, recovery.torn_bytes), (5, 7));
    }

    #[test]
    fn damage_inside_the_journal_refuses_to_open() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        committed_but_unsealed(&dir, 5);
        let wal = crate::layout::list_wal_files(&dir).expect("wal").pop().expect("a wal file");
        let mut bytes = std::fs::read(&wal).expect("read");
        bytes[24 + 16 + 3] ^= 0xff; // inside the first record, with whole frames after it
        std::fs::write(&wal, bytes).expect("damage");
        let err = Journal::open(&dir, key(), JournalOptions::default()).err().expect("must refuse");
        assert!(err.to_string().contains("whole frames follow it"), "{err}");
    }

    #[test]
    fn an_epoch_without_its_checkpoint_is_removed_and_resealed() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        committed_but_unsealed(&dir, 4);
        let (mut journal, _) = Journal::open(&dir, key(), JournalOptions::default()).expect("reopen seals epoch 1");
        for i in 4..8 {
            journal.append(event(i)).expect("append");
        }
        journal.commit().expect("commit");
        let wal = crate::layout::list_wal_files(&dir).expect("wal").pop().expect("a wal file");
        let wal_bytes = std::fs::read(&wal).expect("wal");
        journal.seal().expect("seal epoch 2");
        drop(journal);
        // The state a crash between writing epoch 2's manifest and its checkpoint leaves:
        // segments and manifest present, no checkpoint, the write-ahead journal still there.
        std::fs::remove_file(dir.join(crate::manifest::checkpoint_rel_path(8))).expect("drop checkpoint");
        std::fs::write(&wal, wal_bytes).expect("restore wal");
        let (_, recovery) = Journal::open(&dir, key(), JournalOptions::default()).expect("recover");
        assert!(recovery.removed_uncommitted.iter().any(|f| f.contains("epoch-00000002")), "{:?}", recovery.removed_uncommitted);
        assert_eq!(recovery.replayed, 4);
        assert!(dir.join(crate::manifest::checkpoint_rel_path(8)).exists(), "epoch 2 sealed and signed again");
        let seqs: Vec<u64> = crate::read_sealed_events(&dir).expect("read").into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn files_a_crash_left_half_written_are_removed() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        committed_but_unsealed(&dir, 3);
        let partial = dir.join("data/tenant=998877601/date=2026-11-16/seg-00000001-0000.parquet.tmp");
        std::fs::create_dir_all(partial.parent().expect("parent")).expect("dir");
        std::fs::write(&partial, b"PAR1 half a file").expect("partial");
        let (_, recovery) = Journal::open(&dir, key(), JournalOptions::default()).expect("reopen");
        assert!(!partial.exists());
        assert!(recovery.removed_uncommitted.iter().any(|f| f.ends_with(".parquet.tmp")), "{:?}", recovery.removed_uncommitted);
        assert_eq!(crate::read_sealed_events(&dir).expect("read").len(), 3);
    }

    #[test]
    fn resends_are_recognised_across_days_evictions_and_seals() {
        let tmp = tempfile_dir();
        let options = JournalOptions { idempotency_days: 1, ..Default::default() };
        let (mut journal, _) = Journal::open(tmp.path(), key(), options.clone()).expect("open");
        let on_day = |n: u64, day: i64| AccessEvent { occurred_at: Timestamp(vector_event().occurred_at.0 + day * 86_400_000_000), ..event(n) };
        assert!(matches!(journal.append(on_day(1, 0)).expect("append"), Appended::Stored { .. }));
        assert!(matches!(journal.append(on_day(2, 1)).expect("append"), Appended::Stored { .. }), "day 0 is evicted: one day held");
        assert_eq!(journal.append(on_day(1, 0)).expect("append"), Appended::Duplicate, "found again among the pending records");
        journal.seal().expect("seal");
        assert!(matches!(journal.append(on_day(3, 2)).expect("append"), Appended::Stored { .. }));
        assert_eq!(journal.append(on_day(2, 1)).expect("append"), Appended::Duplicate, "found again in the sealed segments");
        let mut reused = on_day(1, 0);
        reused.source_digest = Digest16([9; 16]);
        assert!(matches!(journal.append(reused).expect("append"), Appended::Conflict { .. }));
        drop(journal);
        let (mut reopened, _) = Journal::open(tmp.path(), key(), options).expect("reopen");
        assert_eq!(reopened.append(on_day(3, 2)).expect("append"), Appended::Duplicate, "after a restart too");
    }

    #[test]
    fn a_context_line_cut_by_a_crash_costs_only_itself() {
        let tmp = tempfile_dir();
        let path = tmp.path().join("context/resources.ndjson");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(&path, b"{\"resourceType\":\"Organization\",\"id\":\"a\"}\n{\"resourceType\":\"Organiz").expect("cut line");
        let (mut journal, _) = Journal::open(tmp.path(), key(), JournalOptions::default()).expect("open");
        journal.keep_context(br#"{"resourceType":"Organization","id":"b"}"#).expect("keep");
        journal.commit().expect("commit");
        let kept = crate::read_context(tmp.path()).expect("read");
        assert_eq!(kept.len(), 3, "the whole first line, the cut one, and the new one on a line of its own");
        assert_eq!(kept[2].raw, br#"{"resourceType":"Organization","id":"b"}"#.to_vec());
        journal.keep_source_context("dips", b"{\"resourceType\":\"Organization\",\n\"id\":\"c\"}").expect("keep");
        journal.commit().expect("commit");
        let kept = crate::read_context(tmp.path()).expect("read");
        assert_eq!(kept[3], crate::KeptContext { source: Some("dips".into()), raw: br#"{"resourceType":"Organization","id":"c"}"#.to_vec() });
    }

    #[test]
    fn a_second_writer_is_refused() {
        let tmp = tempfile_dir();
        let dir = tmp.path().to_owned();
        let (_first, _) = Journal::open(&dir, key(), JournalOptions::default()).expect("first");
        assert!(matches!(Journal::open(&dir, key(), JournalOptions::default()), Err(JournalError::Locked { .. })));
    }

    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }
}
