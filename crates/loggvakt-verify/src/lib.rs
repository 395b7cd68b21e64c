//! # loggvakt-verify
//!
//! Owns the offline check that a store is complete and unaltered: it re-derives every
//! record's hash from the Parquet files, folds the chain, and compares it with checkpoints
//! signed by keys the caller trusts (and, optionally, a checkpoint the caller kept).
//!
//! Must not: write to the store, trust anything in it that a trusted signature does not
//! cover, or stop at the first problem. It reports every problem it can locate, each with
//! the file, row and sequence number, and says what it could not check.
//!
//! Epochs are independent given their manifest's `prev_head` (which the previous epoch's
//! signed checkpoint fixes), so epochs and the segments inside them are checked in
//! parallel; memory is bounded by the epochs in flight, not by the store.

mod norsk;
mod report;
mod scan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use loggvakt_format::chain::{self, Hash};
use loggvakt_format::layout::{list_wal_files, read_manifests_in, StoreInfo};
use loggvakt_format::manifest::Manifest;
use loggvakt_format::note::SignatureProblem;
use loggvakt_format::{Checkpoint, VerifierKey};
use loggvakt_storage::Storage;
use rayon::prelude::*;

pub use norsk::Bokmal;
pub use report::{Problem, ProblemKind, Report};
use scan::{check_epoch, EpochOutcome};

/// What the caller brings from outside the store.
pub struct VerifyOptions<'a> {
    pub trusted_keys: Vec<VerifierKey>,
    /// A signed checkpoint the caller kept from an earlier export (note text).
    pub held_checkpoint: Option<String>,
    /// Called with (rows checked so far, rows in the store) as work progresses.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// With a held checkpoint that ends an epoch of this store with the same head: read
    /// only the epochs after it (a regulator who checks weekly). The epochs up to it are
    /// tied to the checkpoint by their manifests' chain of heads, not read again.
    pub incremental: bool,
}

struct TrustedCheckpoint {
    checkpoint: Checkpoint,
    file: String,
    signer: String,
}

/// Checks a store. Problems are in the report; `Err` is reserved for not being able to
/// start at all (no store there).
/// What a store's files are at one moment, to tell whether a check raced a writer.
fn listing(store: &dyn Storage) -> (Vec<String>, Vec<String>, Vec<std::path::PathBuf>) {
    (store.list("manifests").unwrap_or_default(), checkpoint_names(store), wal_files(store))
}

/// The checkpoint notes (`checkpoints/<size>.note`) by name.
fn checkpoint_names(store: &dyn Storage) -> Vec<String> {
    store.list("checkpoints").unwrap_or_default().into_iter().filter(|n| n.ends_with(".note")).collect()
}

/// The write-ahead files: only a store on this machine has them (a published store holds
/// sealed epochs only).
fn wal_files(store: &dyn Storage) -> Vec<std::path::PathBuf> {
    store.local_dir().map(|dir| list_wal_files(dir).unwrap_or_default()).unwrap_or_default()
}

/// Verifies a store, live or not. A running writer seals while the check reads: when the
/// check found problems and the store's manifests, checkpoints or write-ahead files changed
/// under it, it is run again (up to five times), so a seal that completed meanwhile is
/// never reported as tampering. What a seal in progress has written (segments of the next
/// epoch, its manifest before its checkpoint) is reported as in flight, not as a problem:
/// no signature covers it yet, so the report claims nothing for it.
/// Why a verification could not run at all (problems with the store's contents are the
/// report's, not errors).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("not a loggvakt store (its store.json cannot be read)")]
    NotAStore(#[source] loggvakt_format::StoreError),
}

/// The store may be a directory on this machine or a published copy in a bucket
/// (`loggvakt_storage::open`): the same checks read either.
pub fn verify_store(store: &dyn Storage, options: &VerifyOptions<'_>) -> Result<Report, VerifyError> {
    let mut attempt = 0;
    loop {
        let before = listing(store);
        let report = verify_once(store, options)?;
        attempt += 1;
        if report.problems.is_empty() || attempt >= 5 || listing(store) == before {
            return Ok(report);
        }
    }
}

fn verify_once(store: &dyn Storage, options: &VerifyOptions<'_>) -> Result<Report, VerifyError> {
    let live = store.local_dir().is_some_and(loggvakt_format::writer_is_running);
    let (_, store_id) = StoreInfo::read_in(store).map_err(VerifyError::NotAStore)?;
    let origin = Checkpoint::origin_for(&store_id);
    let mut report = Report::default();

    // Incremental, from a held checkpoint that ends an epoch of this store: the epochs up to
    // it are not read at all, not even their manifests and checkpoints (a year of
    // 30-second seals is a million of each); its signature ties the base epoch's manifest
    // (by hash) and head, and the newer epochs chain on from there.
    let base = match (&options.held_checkpoint, options.incremental) {
        (Some(note), true) => incremental_base(store, note, options, &origin),
        _ => None,
    };
    if options.incremental && options.held_checkpoint.is_some() && base.is_none() {
        report.notes.push("incremental: your checkpoint does not end an epoch of this store with the same head and manifest, so every epoch was read".into());
    }
    let from_epoch = base.as_ref().map_or(1, |b| b.epoch);
    let manifests = match read_manifests_in(store, from_epoch) {
        Ok(m) => m,
        Err(e) => {
            report.problem(Problem::new(ProblemKind::Unreadable, e.to_string()));
            return Ok(report);
        }
    };

    // Checkpoints in the store: each must carry a trusted, valid signature.
    let mut checkpoints: BTreeMap<u64, TrustedCheckpoint> = BTreeMap::new();
    let from_size = base.as_ref().map_or(0, |b| b.size);
    for file in
        checkpoint_names(store).into_iter().filter(|name| name.rsplit('/').next().and_then(loggvakt_format::manifest::size_of_checkpoint_name).is_none_or(|size| size >= from_size))
    {
        let text = store
            .read(&file)
            .map_err(loggvakt_format::StoreError::from)
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| loggvakt_format::StoreError::Corrupt { path: store.describe(&file).into(), detail: e.to_string() }));
        match text.and_then(|t| open_checkpoint(&t, &options.trusted_keys)) {
            Ok(Ok((cp, signer))) => {
                if cp.origin != origin {
                    report.problem(Problem::new(ProblemKind::ForgedCheckpoint, format!("origin '{}' is not this store's '{origin}'", cp.origin)).in_file(&file));
                    continue;
                }
                report.signers.insert(signer.clone());
                checkpoints.insert(cp.size, TrustedCheckpoint { checkpoint: cp, file, signer });
            }
            Ok(Err(problem)) => report.problem(signature_problem(problem, &file)),
            Err(e) => report.problem(Problem::new(ProblemKind::ForgedCheckpoint, format!("not a readable checkpoint: {e}")).in_file(&file)),
        }
    }
    report.checkpoints_checked = checkpoints.len() as u64;

    // Files on disk that no manifest lists, and manifests that skip epochs.
    let listed: HashMap<&str, u64> = manifests.iter().flat_map(|(m, _, _)| m.segments.iter().map(move |s| (s.path.as_str(), m.epoch))).collect();
    // Incremental: files named for epochs before the base are the held checkpoint's (a
    // planted one among them is found by the next full run).
    let on_disk: BTreeSet<String> =
        store.list("data").unwrap_or_default().into_iter().filter(|f| f.ends_with(".parquet") && segment_epoch(f).is_none_or(|e| e >= from_epoch)).collect();
    let next_epoch = manifests.last().map_or(1, |(m, _, _)| m.epoch + 1);
    // Write-ahead files are named by the first sequence number they hold.
    let wal_starts: Vec<u64> = wal_files(store).iter().filter_map(|p| loggvakt_format::wal::wal_first_seq(p)).collect();
    // Records not sealed yet are in the write-ahead journal until their checkpoint is
    // written: only then can files of the next epoch be a seal at work (or one a crash cut
    // short). Without such records they are planted.
    let sealed_through = manifests.last().map_or(0, |(m, _, _)| m.last_seq);
    let unsealed_in_wal = wal_starts.iter().any(|start| *start <= sealed_through + 1);
    let last_epoch = manifests.last().map(|(m, _, _)| m.epoch);

    let mut in_flight = 0;
    for file in on_disk.iter().filter(|f| !listed.contains_key(f.as_str())) {
        // seg-<epoch>-<index>.parquet of the epoch after the last manifest: a seal writing
        // it now, or one a crash cut short (the writer removes it when it reopens).
        if unsealed_in_wal && segment_epoch(file) == Some(next_epoch) {
            in_flight += 1;
            continue;
        }
        let claimed = scan::claimed_path(store, file);
        let detail = match claimed {
            Some(claimed) if claimed != *file => format!("segment was renamed or moved: it says it is '{claimed}'"),
            _ => "segment is not listed in any manifest: inserted, or left by a writer that never signed it".to_owned(),
        };
        report.problem(Problem::new(ProblemKind::UnexpectedSegment, detail).in_file(file));
    }
    if in_flight > 0 {
        report.in_flight.segments = in_flight;
        report.in_flight.segments_epoch = next_epoch;
        report.notes.push(format!(
            "{in_flight} segment file(s) of epoch {next_epoch} have no manifest yet: {}; no signature covers them, and nothing in them is counted as verified",
            if live { "a seal is in progress" } else { "left by a seal a crash cut short (the writer removes them when it opens the store)" }
        ));
    }
    // From genesis, or (incremental) from the base epoch, whose place in the chain its
    // checkpoint's signature vouches for.
    let (mut expected_first, mut expected_prev) = match (&base, manifests.first()) {
        (Some(_), Some((m, _, _))) => (m.first_seq, m.prev_head.clone()),
        _ => (1u64, chain::to_hex(&chain::genesis(&store_id))),
    };
    for (i, (m, _, file)) in manifests.iter().enumerate() {
        if m.epoch != from_epoch + i as u64 {
            report.problem(
                Problem::new(ProblemKind::MissingManifest, format!("epoch {} follows epoch {}: a manifest was deleted or renamed", m.epoch, from_epoch + i as u64 - 1))
                    .in_file(file),
            );
        }
        if m.first_seq != expected_first {
            report.problem(
                Problem::new(ProblemKind::MissingRecord, format!("epoch {} starts at seq {} but the previous epoch ended at seq {}", m.epoch, m.first_seq, expected_first - 1))
                    .in_file(file)
                    .at_seq(expected_first),
            );
        }
        if m.prev_head != expected_prev {
            report.problem(Problem::new(ProblemKind::ChainBreak, format!("epoch {} does not continue the chain of the epoch before it", m.epoch)).in_file(file));
        }
        if m.store_id != chain::to_hex(&store_id) {
            report.problem(Problem::new(ProblemKind::ManifestMismatch, "manifest belongs to another store").in_file(file));
        }
        expected_first = m.last_seq + 1;
        expected_prev = m.head.clone();
    }

    // Incremental: the epochs the held checkpoint covers were checked when it was taken.
    let skip_through = from_size;
    report.checked_before = skip_through;
    let to_read = |m: &Manifest| m.last_seq > skip_through;
    // Row level, epochs and their segments in parallel.
    let total_rows: u64 = manifests.iter().filter(|(m, _, _)| to_read(m)).flat_map(|(m, _, _)| m.segments.iter().map(|s| s.rows)).sum();
    let done = AtomicU64::new(0);
    let tick = |rows: u64| {
        let now = done.fetch_add(rows, Ordering::Relaxed) + rows;
        if let Some(progress) = options.progress {
            progress(now, total_rows);
        }
    };
    let outcomes: Vec<EpochOutcome> = manifests
        .par_iter()
        .map(|(m, _, file)| if to_read(m) { check_epoch(store, m, file, &tick) } else { EpochOutcome { chain_intact: true, ..EpochOutcome::default() } })
        .collect();

    let mut reviews = Vec::new();
    // What each epoch read gives the patient index, checked against its runs at the end.
    let mut patient_entries: BTreeMap<u64, loggvakt_format::patients::EntrySum> = BTreeMap::new();
    for ((m, bytes, file), outcome) in manifests.iter().zip(outcomes) {
        if to_read(m) {
            patient_entries.insert(m.epoch, outcome.patient_entries);
        }
        reviews.extend(outcome.reviews.iter().cloned());
        report.records += outcome.rows;
        report.segments += m.segments.len() as u64;
        report.problems.extend(outcome.problems);
        let covering = checkpoints.get(&m.last_seq);
        match covering {
            // A writer writes the manifest, then the checkpoint, and only then deletes the
            // write-ahead files the epoch came from: a newest epoch without a checkpoint
            // whose records are still in the write-ahead journal is being sealed (or a
            // crash cut its seal short, and the writer seals it again when it reopens).
            // Without those files it is a missing signature.
            None if Some(m.epoch) == last_epoch && wal_starts.iter().any(|start| *start <= m.first_seq) => {
                report.in_flight.unsigned_epoch = Some(m.epoch);
                report.notes.push(format!(
                    "epoch {} (seq {}..={}) has its manifest but no checkpoint yet, and its records are still in the write-ahead journal: {}; no signature covers it yet",
                    m.epoch,
                    m.first_seq,
                    m.last_seq,
                    if live { "a seal is in progress" } else { "a crash cut its seal short, and the writer seals it again when it opens the store" }
                ))
            }
            None => report.problem(
                Problem::new(ProblemKind::UnsignedEpoch, format!("epoch {} (seq {}..={}) has no checkpoint signed by a trusted key", m.epoch, m.first_seq, m.last_seq))
                    .in_file(file),
            ),
            Some(tc) => check_checkpoint_against(&mut report, tc, m, bytes, file),
        }
        if !outcome.chain_intact {
            report.unverified_rows += outcome.unverified_rows;
        }
    }

    check_review_context(store, &reviews, &mut report);
    if base.is_none() {
        // The epoch index is the writer's, on its own disk; a published copy has none.
        if let Some(dir) = store.local_dir() {
            check_index(dir, &manifests, live, &mut report);
        }
        note_unrecorded_context(store, &reviews, &mut report);
    }
    let last_sealed = manifests.last().map(|(m, _, _)| m.last_seq).unwrap_or(0);
    let sealed_head = manifests.last().and_then(|(m, _, _)| chain::from_hex::<32>(&m.head)).unwrap_or_else(|| chain::genesis(&store_id));
    for (size, tc) in checkpoints.range(last_sealed + 1..) {
        report.problem(
            Problem::new(ProblemKind::Truncated, format!("checkpoint signed by {} covers {size} records, but the store's sealed records end at seq {last_sealed}", tc.signer))
                .in_file(&tc.file)
                .at_seq(last_sealed + 1),
        );
    }
    for (size, tc) in checkpoints.range(..=last_sealed) {
        if !manifests.iter().any(|(m, _, _)| m.last_seq == *size) {
            report.problem(Problem::new(ProblemKind::CheckpointMismatch, "checkpoint size does not end any epoch: the epochs were rewritten").in_file(&tc.file).at_seq(*size));
        }
    }
    report.last_sealed_seq = last_sealed;
    report.head = chain::to_hex(&sealed_head);
    report.epochs = manifests.last().map_or(0, |(m, _, _)| m.epoch);
    report.latest_checkpoint = checkpoints.values().next_back().map(|tc| (tc.checkpoint.size, tc.checkpoint.time.clone(), tc.signer.clone()));

    check_unsealed(store, &store_id, last_sealed, sealed_head, &mut report);
    if let Some(note) = &options.held_checkpoint {
        check_held(note, options, &origin, &manifests, &checkpoints, &mut report);
    }
    // After the write-ahead journal: on a live store that must be read soon after the
    // manifests (a seal in between deletes the files it came from), and the runs are read whole.
    if let (None, Some(dir)) = (&base, store.local_dir()) {
        check_patient_index(dir, &patient_entries, live, &mut report);
    }
    report.problems.sort_by(|a, b| (a.seq, &a.file, a.row).cmp(&(b.seq, &b.file, b.row)));
    Ok(report)
}

/// Every context snapshot an own record names (a review run's basis, an import's record;
/// chained and signed) must still hash to what was recorded: otherwise an edited register
/// or care record could "explain" an access after the fact, or before the review read it.
fn check_review_context(store: &dyn Storage, reviews: &[scan::ReviewClaim], report: &mut Report) {
    let mut checked: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for claim in reviews.iter().filter(|c| !c.files_blake3.is_empty()) {
        let file = loggvakt_format::layout::context_snapshot_name(&claim.snapshot);
        let now = checked.entry(claim.snapshot.as_str()).or_insert_with(|| loggvakt_format::layout::files_digest_in(store, &file).ok());
        match now {
            None => report.problem(
                Problem::new(ProblemKind::ModifiedContext, format!("context snapshot {} that the record at seq {} names is gone", claim.snapshot, claim.seq))
                    .in_file(&file)
                    .at_seq(claim.seq),
            ),
            Some(digest) if *digest != claim.files_blake3 => report.problem(
                Problem::new(
                    ProblemKind::ModifiedContext,
                    format!("context snapshot {} differs from what the record at seq {} names (a review's basis or the import's digest)", claim.snapshot, claim.seq),
                )
                .in_file(&file)
                .at_seq(claim.seq),
            ),
            Some(_) => {}
        }
    }
    report.reviews_checked = reviews.len() as u64;
}

/// The current context snapshot is checked like any other when a record names it; one that
/// no record names yet (imported with neither a daemon nor a key) is said, not trusted.
fn note_unrecorded_context(store: &dyn Storage, claims: &[scan::ReviewClaim], report: &mut Report) {
    let Ok(Some(name)) = store.read_if_exists("context/snapshots/CURRENT") else { return };
    let name = String::from_utf8_lossy(&name);
    let name = name.trim();
    if !name.is_empty() && !claims.iter().any(|c| c.snapshot == name) {
        report.notes.push(format!(
            "the current context snapshot {name} is not recorded in the journal yet (imported with neither a daemon nor a key): nothing vouches for it until a review that reads it records its digest"
        ));
    }
}

/// The epoch index (derived, `index/epochs.ndjson`) must copy the manifests line for line:
/// searches and patient views read it instead of the manifests. Checked in full runs.
fn check_index(store: &Path, manifests: &[(Manifest, Vec<u8>, String)], live: bool, report: &mut Report) {
    const FILE: &str = loggvakt_format::index::INDEX_FILE;
    let bytes = match std::fs::read(loggvakt_format::index::index_path(store)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !manifests.is_empty() {
                report.notes.push(format!("{FILE} does not exist yet (a store written before it): the writer builds it when it next opens the store"));
            }
            return;
        }
        Err(e) => return report.problem(Problem::new(ProblemKind::Unreadable, e.to_string()).in_file(FILE)),
    };
    let raw_lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut indexed: BTreeMap<u64, Manifest> = BTreeMap::new();
    for (i, raw) in raw_lines.iter().enumerate() {
        match serde_json::from_slice::<Manifest>(raw) {
            Ok(m) => {
                if indexed.insert(m.epoch, m).is_some() {
                    report.problem(Problem::new(ProblemKind::ModifiedIndex, format!("line {} repeats an epoch", i + 1)).in_file(FILE));
                }
            }
            // The last line of a live store may be being written.
            Err(_) if i + 1 == raw_lines.len() && (live || !bytes.ends_with(b"\n")) => {}
            Err(e) => report.problem(Problem::new(ProblemKind::ModifiedIndex, format!("line {} is not a manifest: {e}", i + 1)).in_file(FILE)),
        }
    }
    let last_indexed = indexed.keys().next_back().copied().unwrap_or(0);
    for (m, _, _) in manifests {
        match indexed.remove(&m.epoch) {
            Some(line) if line == *m => {}
            Some(_) => report.problem(
                Problem::new(ProblemKind::ModifiedIndex, format!("the line of epoch {} differs from its manifest: searches would read other segments", m.epoch)).in_file(FILE),
            ),
            // Epochs after the last line: sealed since, or a crash came between checkpoint
            // and index line (the writer appends it when it opens the store).
            None if m.epoch > last_indexed => {}
            None => report.problem(Problem::new(ProblemKind::ModifiedIndex, format!("epoch {} is missing from the index: searches would not see it", m.epoch)).in_file(FILE)),
        }
    }
    // A live writer may have sealed and indexed an epoch after the manifests were read.
    let last_read = manifests.last().map_or(0, |(m, _, _)| m.epoch);
    for epoch in indexed.keys().filter(|e| !live || **e <= last_read) {
        report.problem(Problem::new(ProblemKind::ModifiedIndex, format!("the index lists epoch {epoch}, which has no manifest")).in_file(FILE));
    }
}

/// The patient index (derived, `index/patients/`) must hold exactly each patient's events:
/// a patient's own list is read through it, so a run that lost an entry would hide an access
/// from that patient. Each run is compared with what the scan of its epochs summed.
fn check_patient_index(store: &Path, expected: &BTreeMap<u64, loggvakt_format::patients::EntrySum>, live: bool, report: &mut Report) {
    if !expected.is_empty() && loggvakt_format::patients::list_runs(store).is_ok_and(|runs| runs.is_empty()) {
        report
            .notes
            .push(format!("{} does not exist yet (a store written before it): the writer builds it when it next opens the store", loggvakt_format::patients::PATIENT_INDEX_DIR));
        return;
    }
    // A live writer merges runs as it seals: a run removed under the check is read again.
    let mut attempts = if live { 3 } else { 1 };
    loop {
        attempts -= 1;
        // On a live store, a run of epochs sealed after the manifests were read is not checked.
        match loggvakt_format::patients::verify_runs(store, &|epoch| expected.get(&epoch).copied(), live) {
            Ok(entries) => {
                report.patient_index_entries = entries;
                return;
            }
            Err(loggvakt_format::StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && attempts > 0 => continue,
            Err(e) => {
                let file = match &e {
                    loggvakt_format::StoreError::Corrupt { path, .. } | loggvakt_format::StoreError::Io { path, .. } => {
                        path.strip_prefix(store).unwrap_or(path).to_string_lossy().into_owned()
                    }
                    _ => loggvakt_format::patients::PATIENT_INDEX_DIR.to_owned(),
                };
                return report.problem(
                    Problem::new(ProblemKind::ModifiedIndex, format!("the patient index does not match the segments ({e}): a patient's own list could miss accesses"))
                        .in_file(&file),
                );
            }
        }
    }
}

/// Where an incremental check starts: the held checkpoint's epoch, when a trusted key
/// signed it for this store and the store's manifest of that epoch is the one it names
/// (same BLAKE3 of the file, same last seq and head).
struct Base {
    epoch: u64,
    size: u64,
}

fn incremental_base(store: &dyn Storage, note: &str, options: &VerifyOptions<'_>, origin: &str) -> Option<Base> {
    let Ok(Ok((held, _))) = open_checkpoint(note, &options.trusted_keys) else { return None };
    if held.origin != origin || held.epoch == 0 {
        return None;
    }
    let name = loggvakt_format::manifest::manifest_rel_path(held.epoch);
    let bytes = store.read(&name).ok()?;
    let manifest = Manifest::parse(&bytes, Path::new(&name)).ok()?;
    let same_manifest = held.manifest.is_none_or(|hash| *blake3::hash(&bytes).as_bytes() == hash);
    (same_manifest && manifest.epoch == held.epoch && manifest.last_seq == held.size && manifest.head == chain::to_hex(&held.head))
        .then_some(Base { epoch: held.epoch, size: held.size })
}

/// The epoch number in a segment's file name (`seg-<epoch>-<index>.parquet`).
fn segment_epoch(file: &str) -> Option<u64> {
    let name = file.rsplit('/').next()?;
    name.strip_prefix("seg-")?.split('-').next()?.parse().ok()
}

fn open_checkpoint(text: &str, trusted: &[VerifierKey]) -> Result<Result<(Checkpoint, String), SignatureProblem>, loggvakt_format::StoreError> {
    Checkpoint::open(text, trusted)
}

fn signature_problem(problem: SignatureProblem, file: &str) -> Problem {
    match problem {
        SignatureProblem::NoTrustedSignature { signers } => Problem::new(
            ProblemKind::UntrustedSignature,
            format!("signed only by key(s) not in the trusted-keys file: {}", if signers.is_empty() { "none".to_owned() } else { signers.join(", ") }),
        )
        .in_file(file),
        SignatureProblem::BadSignature { key_id } => {
            Problem::new(ProblemKind::ForgedCheckpoint, format!("the signature claiming to be by {key_id} does not verify: the checkpoint was forged or altered")).in_file(file)
        }
    }
}

fn check_checkpoint_against(report: &mut Report, tc: &TrustedCheckpoint, m: &Manifest, manifest_bytes: &[u8], manifest_file: &str) {
    if chain::to_hex(&tc.checkpoint.head) != m.head {
        report.problem(
            Problem::new(ProblemKind::CheckpointMismatch, format!("signed head for seq {} differs from epoch {}'s manifest: the manifest was rewritten", m.last_seq, m.epoch))
                .in_file(&tc.file)
                .at_seq(m.last_seq),
        );
    }
    if tc.checkpoint.manifest.is_some_and(|h| h != *blake3::hash(manifest_bytes).as_bytes()) {
        report.problem(Problem::new(ProblemKind::ManifestMismatch, format!("manifest of epoch {} is not the one the checkpoint signed", m.epoch)).in_file(manifest_file));
    }
}

/// Committed records not yet sealed: chained on from the last sealed head, but no
/// signature covers them yet.
fn check_unsealed(store: &dyn Storage, store_id: &[u8; 16], last_sealed: u64, mut head: Hash, report: &mut Report) {
    let mut next = last_sealed + 1;
    for path in wal_files(store) {
        let file = store.local_dir().and_then(|dir| path.strip_prefix(dir).ok()).unwrap_or(&path).to_string_lossy().into_owned();
        match loggvakt_format::wal::read_wal(&path, store_id) {
            Ok(contents) => {
                for (seq, record) in contents.records.iter().filter(|(s, _)| *s > last_sealed) {
                    if *seq < next {
                        continue; // sealed during the check (see below)
                    }
                    if *seq != next {
                        // A running writer may have sealed the missing records since the
                        // manifests were read, and deleted their write-ahead file: if an epoch
                        // now ends right before this record, the chain goes on from its head.
                        let sealed_meanwhile = read_manifests_in(store, 1).ok().and_then(|fresh| fresh.into_iter().find(|(m, _, _)| m.first_seq <= next && m.last_seq + 1 == *seq));
                        match sealed_meanwhile.and_then(|(m, _, _)| Some((m.epoch, chain::from_hex::<32>(&m.head)?))) {
                            Some((epoch, sealed_head)) => {
                                report.notes.push(format!("seq {next}..={} were sealed into epoch {epoch} while the check ran; that epoch is checked by the next run", seq - 1));
                                head = sealed_head;
                                next = *seq;
                            }
                            None => {
                                report.problem(Problem::new(ProblemKind::MissingRecord, format!("write-ahead journal jumps to seq {seq}")).in_file(&file).at_seq(next));
                                return;
                            }
                        }
                    }
                    head = chain::next_head(&head, *seq, &chain::leaf(record));
                    next += 1;
                    report.unsealed_records += 1;
                }
                if contents.torn_bytes > 0 {
                    report.notes.push(format!(
                        "{file}: {} bytes of a write cut short by a crash follow the last whole record; they were never acknowledged and the writer cuts them on restart",
                        contents.torn_bytes
                    ));
                }
            }
            // Deleted after it was listed: a seal finished meanwhile (its records are in an
            // epoch now; the chain check above picks up from it).
            Err(_) if !path.exists() => {}
            Err(e) => report.problem(Problem::new(ProblemKind::Unreadable, e.to_string()).in_file(&file)),
        }
    }
    if report.unsealed_records > 0 {
        report.notes.push(format!(
            "{} committed records (seq {}..={}) are in the write-ahead journal, not yet sealed; they chain on from the last checkpoint to head {}, but no signature covers them yet",
            report.unsealed_records,
            last_sealed + 1,
            next - 1,
            chain::to_hex(&head)
        ));
    }
}

fn check_held(
    note: &str,
    options: &VerifyOptions<'_>,
    origin: &str,
    manifests: &[(Manifest, Vec<u8>, String)],
    store_checkpoints: &BTreeMap<u64, TrustedCheckpoint>,
    report: &mut Report,
) {
    const FILE: &str = "(your checkpoint)";
    let (held, signer) = match open_checkpoint(note, &options.trusted_keys) {
        Ok(Ok(v)) => v,
        Ok(Err(problem)) => return report.problem(signature_problem(problem, FILE)),
        Err(e) => return report.problem(Problem::new(ProblemKind::ForgedCheckpoint, format!("not a readable checkpoint: {e}")).in_file(FILE)),
    };
    if held.origin != origin {
        return report.problem(Problem::new(ProblemKind::ForgedCheckpoint, format!("your checkpoint is for '{}', not this store ('{origin}')", held.origin)).in_file(FILE));
    }
    let last_sealed = manifests.last().map(|(m, _, _)| m.last_seq).unwrap_or(0);
    if held.size > last_sealed {
        let consistent_older_state = report.problems.is_empty() && store_checkpoints.contains_key(&last_sealed);
        let (kind, what) = if consistent_older_state {
            (ProblemKind::RolledBack, "the store was rolled back to an older, self-consistent state")
        } else {
            (ProblemKind::Truncated, "the tail of the store was cut off")
        };
        report.problem(
            Problem::new(kind, format!("your checkpoint (signed by {signer}, {}) covers {} records, but the store ends at seq {last_sealed}: {what}", held.time, held.size))
                .in_file(FILE)
                .at_seq(last_sealed + 1),
        );
        return;
    }
    match manifests.iter().find(|(m, _, _)| m.last_seq == held.size) {
        Some((m, _, _)) if m.head == chain::to_hex(&held.head) => {
            report.notes.push(format!("your checkpoint ({} records, {}) is consistent with this store", held.size, held.time));
            report.held_checkpoint_ok = true;
        }
        _ => report.problem(
            Problem::new(
                ProblemKind::Forked,
                format!("the store's history up to seq {} differs from your checkpoint (signed by {signer}, {}): it was rolled back and rewritten", held.size, held.time),
            )
            .in_file(FILE)
            .at_seq(held.size),
        ),
    }
}
