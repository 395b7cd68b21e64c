//! The writer: one thread that owns the journal. Handlers hand it submissions; it appends
//! everything that has queued up, fsyncs once (group commit), and only then answers each
//! submission, so an acknowledgement always follows the fsync that made it durable.
//!
//! The queue is bounded in events by a semaphore: a handler takes one permit per item
//! before it submits (HTTP answers 503 when it cannot; syslog stops reading until it can),
//! and the permits are returned after the commit. A failed fsync or write stops the writer
//! for good: after `fsyncgate`, nothing written since the last good commit can be trusted,
//! so every waiting submission gets an error and `/readyz` turns unready.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use loggvakt_journal::{Appended, Journal, JournalError, PreparedRecord, QuarantineEntry, SealReport};
use loggvakt_model::codes::actions;
use loggvakt_model::{AccessEvent, Timestamp};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::identity::Source;
use crate::log::log;
use crate::metrics::{Metrics, Transport};
use crate::tracker::{Fate, Notice, Tracker};
use crate::unsealed::UnsealedView;

pub use loggvakt_ingest::OWN_SYSTEM;

/// How often the writer looks for gaps past their grace and silent sources.
const TICK: Duration = Duration::from_millis(250);
/// Most submissions folded into one group commit.
const MAX_GROUP: usize = 4096;

pub enum Item {
    /// A mapped event, with the message it came from (kept if it turns out to conflict).
    Event { record: PreparedRecord, raw: Bytes, entry: Option<usize> },
    /// Input that could not be mapped.
    Quarantine(QuarantineEntry),
    /// A context resource (Practitioner, PractitionerRole...) that later events may refer to.
    Context(Bytes),
    /// loggvakt's own record of a read of the store.
    Own(PreparedRecord),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Stored(u64),
    /// Already stored: acknowledged again, stored once.
    Duplicate,
    /// Its id was stored before with other content; kept in the quarantine instead.
    Conflict,
    Quarantined,
    Kept,
}

pub struct Submission {
    pub transport: Transport,
    pub source: Arc<Source>,
    pub items: Vec<Item>,
    reply: oneshot::Sender<Result<Vec<ItemOutcome>, WriterStopped>>,
    _permit: OwnedSemaphorePermit,
    queued_at: Instant,
}

/// Work the operator asks of the store over the admin channel (a review run's records, a
/// quarantine retry, a context snapshot's record): run on the writer thread, which owns
/// the journal, and answered only after the commit that made it durable.
pub type AdminJob = Box<dyn FnOnce(&mut Journal) -> Result<serde_json::Value, JournalError> + Send>;

/// The answer to a seal request: every record committed before the request is covered by
/// the signed checkpoint of this size (`checkpoints/<size:020>.note`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SealedThrough {
    pub checkpoint_size: u64,
}

enum Command {
    Submit(Submission),
    Run(AdminJob, oneshot::Sender<Result<serde_json::Value, WriterStopped>>),
    Seal(oneshot::Sender<Result<SealedThrough, WriterStopped>>),
    Shutdown,
}

/// What the rest of the daemon sees of the writer.
pub struct WriterShared {
    pub metrics: Arc<Metrics>,
    /// Set when the writer has stopped on an error; the reason.
    pub failed: Mutex<Option<String>>,
    /// Per-source metric lines, refreshed by the writer.
    pub source_metrics: Mutex<String>,
    /// The committed, unsealed records, for searches and reads (which never ask the writer).
    pub unsealed: UnsealedView,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
    permits: Arc<Semaphore>,
    capacity: usize,
    pub shared: Arc<WriterShared>,
}

/// Why the writer answered a submission with an error: it stopped on a failed write
/// (after which nothing uncommitted can be trusted), with the store's error as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct WriterStopped {
    pub reason: String,
}

impl From<&JournalError> for WriterStopped {
    fn from(e: &JournalError) -> Self {
        WriterStopped { reason: e.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({0} events wait to be made durable); retry shortly")]
    Busy(usize),
    #[error("{0} items are more than the queue holds ({1}); send fewer at a time")]
    TooMany(usize, usize),
    #[error("the store cannot take writes: {0}")]
    Failed(String),
}

pub struct WriterOptions {
    pub gap_grace: Duration,
    pub sources: Vec<Arc<Source>>,
}

impl WriterHandle {
    pub fn start(mut journal: Journal, capacity: usize, options: WriterOptions, metrics: Arc<Metrics>) -> std::io::Result<(WriterHandle, JoinHandle<Result<(), JournalError>>)> {
        let (tx, rx) = mpsc::channel();
        metrics.durable_seq.store(journal.durable_seq(), std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::new(WriterShared { metrics, failed: Mutex::new(None), source_metrics: Mutex::new(String::new()), unsealed: UnsealedView::default() });
        // What a crash left unsealed was sealed by recovery; anything still here is published.
        shared.unsealed.publish(journal.committed_after(0).map(|(seq, e)| (seq, e.clone())).collect());
        let mut tracker = Tracker::load(journal.store_dir());
        tracker.catch_up(journal.unsealed().filter_map(|(_, e)| Some((e.source_system.as_str(), e.source_seq?))), &options.sources);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new().name("loggvakt-writer".into()).spawn(move || {
            let result = run(&mut journal, rx, &thread_shared, &mut tracker, &options);
            if let Err(e) = &result {
                if let Ok(mut failed) = thread_shared.failed.lock() {
                    *failed = Some(e.to_string());
                }
                log("error", "writer_stopped", serde_json::json!({ "error": e.to_string() }));
                return result;
            }
            // A clean stop: seal what is pending, with a signed checkpoint.
            let report = journal.close()?;
            let _ = tracker.save(now());
            log("info", "journal_closed", serde_json::json!({ "sealed_epoch": report.map(|r| r.epoch) }));
            Ok(())
        })?;
        Ok((WriterHandle { tx, permits: Arc::new(Semaphore::new(capacity)), capacity, shared }, thread))
    }

    fn failure(&self) -> Option<String> {
        self.shared.failed.lock().ok().and_then(|f| f.clone())
    }

    fn check(&self, n: usize) -> Result<u32, SubmitError> {
        if let Some(reason) = self.failure() {
            return Err(SubmitError::Failed(reason));
        }
        if n > self.capacity {
            return Err(SubmitError::TooMany(n, self.capacity));
        }
        Ok(n.max(1) as u32)
    }

    /// Submits without waiting for room: `Busy` when the queue is full.
    pub fn try_submit(&self, transport: Transport, source: Arc<Source>, items: Vec<Item>) -> Result<oneshot::Receiver<Result<Vec<ItemOutcome>, WriterStopped>>, SubmitError> {
        let n = self.check(items.len())?;
        let permit = self.permits.clone().try_acquire_many_owned(n).map_err(|_| SubmitError::Busy(self.depth()))?;
        self.send(transport, source, items, permit)
    }

    /// Submits, waiting for room first (the caller stops reading its input meanwhile).
    pub async fn submit(&self, transport: Transport, source: Arc<Source>, items: Vec<Item>) -> Result<oneshot::Receiver<Result<Vec<ItemOutcome>, WriterStopped>>, SubmitError> {
        let n = self.check(items.len())?;
        let permit = self.permits.clone().acquire_many_owned(n).await.map_err(|_| SubmitError::Failed("the writer has stopped".into()))?;
        self.send(transport, source, items, permit)
    }

    fn send(
        &self,
        transport: Transport,
        source: Arc<Source>,
        items: Vec<Item>,
        permit: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<Result<Vec<ItemOutcome>, WriterStopped>>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let submission = Submission { transport, source, items, reply, _permit: permit, queued_at: Instant::now() };
        self.tx.send(Command::Submit(submission)).map_err(|_| SubmitError::Failed("the writer has stopped".into()))?;
        Ok(rx)
    }

    /// Events accepted and not yet durable.
    pub fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn is_ready(&self) -> bool {
        self.failure().is_none()
    }

    /// Runs `job` on the writer thread; the answer comes after the commit that follows it.
    /// Admin work is rare and small, so it takes no queue permit.
    pub async fn run_admin(&self, job: AdminJob) -> Result<serde_json::Value, SubmitError> {
        if let Some(reason) = self.failure() {
            return Err(SubmitError::Failed(reason));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Run(job, reply)).map_err(|_| SubmitError::Failed("the writer has stopped".into()))?;
        rx.await.map_err(|_| SubmitError::Failed("the writer has stopped".into()))?.map_err(|stopped| SubmitError::Failed(stopped.reason))
    }

    /// Seals everything committed so far (waiting for a seal in progress first) and answers
    /// with the checkpoint that covers it: a reader pinned to it sees every record
    /// acknowledged before this call.
    pub async fn seal_now(&self) -> Result<SealedThrough, SubmitError> {
        if let Some(reason) = self.failure() {
            return Err(SubmitError::Failed(reason));
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Seal(reply)).map_err(|_| SubmitError::Failed("the writer has stopped".into()))?;
        rx.await.map_err(|_| SubmitError::Failed("the writer has stopped".into()))?.map_err(|stopped| SubmitError::Failed(stopped.reason))
    }

    /// Asks the writer to commit, seal and stop once what is queued is done.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

pub fn now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}

struct Pending {
    reply: oneshot::Sender<Result<Vec<ItemOutcome>, WriterStopped>>,
    outcomes: Vec<ItemOutcome>,
    queued_at: Instant,
    _permit: OwnedSemaphorePermit,
}

type SealThread = JoinHandle<Result<SealReport, JournalError>>;

fn run(journal: &mut Journal, rx: mpsc::Receiver<Command>, shared: &WriterShared, tracker: &mut Tracker, options: &WriterOptions) -> Result<(), JournalError> {
    let mut sealing = None;
    let result = run_loop(journal, rx, shared, tracker, options, &mut sealing);
    // However the loop ended, a running seal is waited for: the journal may not be closed,
    // nor the process leave, under it. A failed seal stops the writer like a failed fsync;
    // its records are still in the write-ahead journal, and recovery seals them.
    if let Some(job) = sealing.take() {
        finish_seal(journal, job, shared)?;
    }
    result
}

/// Threads at a lower priority (nice 10), for work no sender waits on: seals, and searches.
/// On a small machine a seal at normal priority took the cores from the request handlers
/// for seconds at a time; four unfiltered searches at normal priority raised the
/// acknowledgements' median under half-peak load from 8 ms to 675 ms.
pub fn low_priority_pool(name: &'static str, threads: usize) -> Result<Arc<rayon::ThreadPool>, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("loggvakt-{name}-{i}"))
        .start_handler(|_| lower_this_threads_priority())
        .build()
        .map(Arc::new)
}

/// Nice 10 for the calling thread: work no sender waits on (seals, searches, publishing).
pub fn lower_this_threads_priority() {
    // SAFETY: on Linux, PRIO_PROCESS with 0 sets the calling thread's own nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}

fn finish_seal(journal: &mut Journal, job: SealThread, shared: &WriterShared) -> Result<SealReport, JournalError> {
    let metrics = &shared.metrics;
    let outcome = job.join().unwrap_or_else(|_| Err(JournalError::Checkpoint("the seal thread panicked".into())));
    // Searches find these records in the segments from now on (or, if the seal failed, the
    // writer stops and recovery seals them). Freed on a thread of its own: on the writer's,
    // every acknowledgement would wait for it.
    let records = journal.end_seal();
    let forgotten = match &outcome {
        Ok(report) => shared.unsealed.forget_through(report.last_seq),
        Err(_) => vec![],
    };
    let _ = std::thread::Builder::new().name("loggvakt-free".into()).spawn(move || drop((records, forgotten)));
    let report = outcome?;
    metrics.seals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    log("info", "sealed", serde_json::json!({ "epoch": report.epoch, "first_seq": report.first_seq, "last_seq": report.last_seq, "segments": report.segments }));
    Ok(report)
}

fn run_loop(
    journal: &mut Journal,
    rx: mpsc::Receiver<Command>,
    shared: &WriterShared,
    tracker: &mut Tracker,
    options: &WriterOptions,
    sealing: &mut Option<SealThread>,
) -> Result<(), JournalError> {
    let metrics = &shared.metrics;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let seal_pool = low_priority_pool("seal", threads).map_err(|e| JournalError::io(journal.store_dir(), std::io::Error::other(e)))?;
    let started_at = now();
    // Records through this sequence number are published to the searches' view.
    let mut published = journal.durable_seq();
    let mut last_tick = Instant::now();
    let mut last_save = Instant::now();
    let mut stopping = false;
    // Seal requests, each with the last record committed before it came.
    let mut seal_waiters: Vec<(u64, oneshot::Sender<Result<SealedThrough, WriterStopped>>)> = Vec::new();
    while !stopping {
        let mut commands = Vec::new();
        match rx.recv_timeout(TICK) {
            Ok(c) => commands.push(c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => stopping = true,
        }
        while commands.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => commands.push(c),
                Err(_) => break,
            }
        }
        let mut pending = Vec::new();
        let mut admin_answers = Vec::new();
        let mut wrote = false;
        let at = now();
        for command in commands {
            match command {
                Command::Submit(mut s) => {
                    wrote = true;
                    let outcomes = match apply(journal, &mut s, tracker, at, metrics) {
                        Ok(outcomes) => outcomes,
                        Err(e) => {
                            let _ = s.reply.send(Err(WriterStopped::from(&e)));
                            fail_all(pending, &e);
                            return Err(e);
                        }
                    };
                    pending.push(Pending { reply: s.reply, outcomes, queued_at: s.queued_at, _permit: s._permit });
                }
                Command::Run(job, reply) => {
                    wrote = true;
                    match job(&mut *journal) {
                        Ok(value) => admin_answers.push((reply, value)),
                        // An admin job's own refusal (nothing written) answers only it; a
                        // failed write stops the writer like any other.
                        Err(e @ (JournalError::Io { .. } | JournalError::Parquet(_))) => {
                            let _ = reply.send(Err(WriterStopped::from(&e)));
                            fail_all(pending, &e);
                            return Err(e);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(WriterStopped::from(&e)));
                        }
                    }
                }
                Command::Seal(reply) => seal_waiters.push((journal.durable_seq(), reply)),
                Command::Shutdown => stopping = true,
            }
        }
        // A last look on the way out, so a finding is not lost to a quick stop.
        if stopping || last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            for notice in tracker.tick(&options.sources, at, options.gap_grace.as_micros() as i64, started_at) {
                wrote = true;
                log("warn", notice.kind, serde_json::json!({ "source": &*notice.source, "detail": &notice.detail }));
                if let Err(e) = journal.append(notice_event(&notice, at)) {
                    fail_all(pending, &e);
                    return Err(e);
                }
            }
        }
        if wrote {
            let started = Instant::now();
            match journal.commit() {
                Ok(seq) => {
                    shared.unsealed.publish(journal.committed_after(published).map(|(seq, e)| (seq, e.clone())).collect());
                    published = seq;
                    metrics.fsync_seconds.observe(started.elapsed().as_secs_f64());
                    metrics.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    metrics.durable_seq.store(seq, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    fail_all(pending, &e);
                    return Err(e);
                }
            }
        }
        for p in pending {
            metrics.ack_seconds.observe(p.queued_at.elapsed().as_secs_f64());
            // The queue slots are free once the events are durable: returned before the
            // answer goes out, so a sender that has its answer never sees them still taken.
            let Pending { reply, outcomes, _permit, .. } = p;
            drop(_permit);
            let _ = reply.send(Ok(outcomes));
        }
        for (reply, value) in admin_answers {
            let _ = reply.send(Ok(value));
        }
        // Sealing (Parquet, manifest, signed checkpoint) runs beside the writer, so
        // acknowledgements do not wait behind it. One at a time.
        if sealing.as_ref().is_some_and(|job| job.is_finished()) {
            if let Some(job) = sealing.take() {
                let report = finish_seal(journal, job, shared)?;
                let _ = tracker.save(now());
                last_save = Instant::now();
                answer_seal_waiters(&mut seal_waiters, report.last_seq);
            }
        }
        if sealing.is_none() {
            // Asked to seal: now, whatever the epoch's size or age. Nothing pending means
            // everything committed is under the newest checkpoint already.
            let job = if seal_waiters.is_empty() { journal.maybe_begin_seal()? } else { journal.begin_seal()? };
            if job.is_none() && !seal_waiters.is_empty() {
                answer_seal_waiters(&mut seal_waiters, journal.durable_seq());
            }
            if let Some(job) = job {
                let pool = seal_pool.clone();
                let thread = std::thread::Builder::new().name("loggvakt-seal".into()).spawn(move || pool.install(|| job.run()));
                *sealing = Some(thread.map_err(|e| JournalError::io(journal.store_dir(), e))?);
            }
        }
        if tracker.is_dirty() && last_save.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = tracker.save(now()) {
                log("warn", "source_state_not_saved", serde_json::json!({ "error": e.to_string() }));
            }
            last_save = Instant::now();
        }
        if let Ok(mut lines) = shared.source_metrics.lock() {
            *lines = tracker.render_metrics(now());
        }
    }
    Ok(())
}

/// Answers the seal requests whose records the checkpoint of `sealed_through` covers.
fn answer_seal_waiters(waiters: &mut Vec<(u64, oneshot::Sender<Result<SealedThrough, WriterStopped>>)>, sealed_through: u64) {
    for (_, reply) in waiters.extract_if(.., |(asked_at, _)| *asked_at <= sealed_through) {
        let _ = reply.send(Ok(SealedThrough { checkpoint_size: sealed_through }));
    }
}

fn fail_all(pending: Vec<Pending>, error: &JournalError) {
    for p in pending {
        let _ = p.reply.send(Err(WriterStopped::from(error)));
    }
}

fn apply(journal: &mut Journal, s: &mut Submission, tracker: &mut Tracker, at: Timestamp, metrics: &Metrics) -> Result<Vec<ItemOutcome>, JournalError> {
    let mut outcomes = Vec::with_capacity(s.items.len());
    // Conflicting events of one message are quarantined together, with the message once.
    let mut conflicts = Conflicts::default();
    for item in std::mem::take(&mut s.items) {
        let outcome = match item {
            Item::Event { record, raw, entry } => {
                let seq_no = record.event().source_seq;
                let lag = Some(record.event().received_at.0 - record.event().occurred_at.0);
                let (outcome, fate) = match journal.append_prepared(record)? {
                    Appended::Stored { seq } => {
                        metrics.acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        (ItemOutcome::Stored(seq), Fate::Stored)
                    }
                    Appended::Duplicate => {
                        metrics.duplicates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        (ItemOutcome::Duplicate, Fate::Duplicate)
                    }
                    conflict @ Appended::Conflict { .. } => {
                        metrics.conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        metrics.quarantined(s.transport, 1);
                        conflicts.add(journal, s, at, raw, entry, conflict.conflict_reason().unwrap_or_default())?;
                        (ItemOutcome::Conflict, Fate::Quarantined)
                    }
                };
                if let Some(notice) = tracker.observe(&s.source, seq_no, fate, lag, at) {
                    log("warn", notice.kind, serde_json::json!({ "source": &*notice.source, "detail": &notice.detail }));
                    journal.append(notice_event(&notice, at))?;
                }
                outcome
            }
            Item::Quarantine(entry) => {
                journal.quarantine(&entry)?;
                tracker.observe(&s.source, None, Fate::Quarantined, None, at);
                ItemOutcome::Quarantined
            }
            Item::Context(raw) => {
                journal.keep_source_context(&s.source.name, &raw)?;
                ItemOutcome::Kept
            }
            Item::Own(record) => match journal.append_prepared(record)? {
                Appended::Stored { seq } => ItemOutcome::Stored(seq),
                _ => ItemOutcome::Duplicate,
            },
        };
        outcomes.push(outcome);
    }
    conflicts.flush(journal, s, at)?;
    Ok(outcomes)
}

/// Conflicts waiting to be quarantined: those from one message (the same bytes) share one
/// quarantine entry.
#[derive(Default)]
struct Conflicts {
    raw: Option<Bytes>,
    entries: Vec<(Option<usize>, String)>,
}

impl Conflicts {
    fn add(&mut self, journal: &mut Journal, s: &Submission, at: Timestamp, raw: Bytes, entry: Option<usize>, reason: String) -> Result<(), JournalError> {
        let same = self.raw.as_ref().is_some_and(|held| held.as_ptr() == raw.as_ptr() && held.len() == raw.len());
        if !same {
            self.flush(journal, s, at)?;
            self.raw = Some(raw);
        }
        self.entries.push((entry, reason));
        Ok(())
    }

    fn flush(&mut self, journal: &mut Journal, s: &Submission, at: Timestamp) -> Result<(), JournalError> {
        let (Some(raw), entries) = (self.raw.take(), std::mem::take(&mut self.entries)) else { return Ok(()) };
        let failures: Vec<(Option<usize>, &str)> = entries.iter().map(|(e, r)| (*e, r.as_str())).collect();
        journal.quarantine(&grouped_quarantine_entry(s.transport, &s.source, at, &failures, &raw))
    }
}

/// One quarantine entry for the failures of one message: a single failure as itself; many
/// with the message kept once, the entries listed and their reasons grouped.
pub fn grouped_quarantine_entry(transport: Transport, source: &Source, at: Timestamp, failures: &[(Option<usize>, &str)], raw: &[u8]) -> QuarantineEntry {
    match failures {
        [(entry, reason)] => quarantine_entry(transport, source, at, *entry, (*reason).to_owned(), raw),
        _ => {
            let reason = summarise(failures.iter().map(|(e, r)| (e.unwrap_or(0), *r)));
            QuarantineEntry { entries: failures.iter().filter_map(|(e, _)| *e).collect(), ..quarantine_entry(transport, source, at, None, reason, raw) }
        }
    }
}

/// Most bytes of reasons kept for one quarantined request: past it, the reasons of the
/// rest are counted, not written (a retry maps every listed entry again anyway).
const REASONS_BYTES: usize = 16 << 10;

/// One reason for many entries: entries that failed for the same reason are listed
/// together, so a Bundle of ten thousand equally bad entries keeps one sentence.
pub fn summarise<'a>(failures: impl Iterator<Item = (usize, &'a str)>) -> String {
    let mut by_reason: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (entry, reason) in failures {
        // The entry's own path prefix differs per entry; the reason after it is what repeats.
        let general = reason.strip_prefix(&format!("entry[{entry}].resource.")).unwrap_or(reason);
        let at = *index.entry(general).or_insert_with(|| {
            by_reason.push((general, Vec::new()));
            by_reason.len() - 1
        });
        by_reason[at].1.push(entry);
    }
    let mut out = String::new();
    let mut omitted = 0;
    for (reason, entries) in &by_reason {
        if out.len() > REASONS_BYTES {
            omitted += entries.len();
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(&format!("{} entr{} ({}): {reason}", entries.len(), if entries.len() == 1 { "y" } else { "ies" }, ranges(entries)));
    }
    if omitted > 0 {
        out.push_str(&format!("; {omitted} more entries failed for other reasons (retry or show them to see why)"));
    }
    out
}

/// `0-3, 7, 9-10` for [0, 1, 2, 3, 7, 9, 10].
fn ranges(entries: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let mut j = i;
        while j + 1 < entries.len() && entries[j + 1] == entries[j] + 1 {
            j += 1;
        }
        out.push(if i == j { entries[i].to_string() } else { format!("{}-{}", entries[i], entries[j]) });
        i = j + 1;
    }
    out.join(", ")
}

/// The quarantine record of input from a network source. `input` names the transport and
/// the source, which is how `loggvakt quarantine retry` knows how to read the bytes again.
pub fn quarantine_entry(transport: Transport, source: &Source, at: Timestamp, entry: Option<usize>, reason: String, raw: &[u8]) -> QuarantineEntry {
    let kind = if transport == Transport::Http { "http" } else { "syslog" };
    QuarantineEntry { received_at: at.to_rfc3339(), input: format!("{kind}:{}", source.name), line: None, entry, entries: vec![], reason, raw: None, raw_base64: None }
        .with_raw(raw)
}

fn notice_event(notice: &Notice, at: Timestamp) -> AccessEvent {
    AccessEvent {
        user_local_id: Some(notice.source.to_string()),
        ..loggvakt_journal::own::event(notice.event_id.clone(), &notice.tenant_orgnr, actions::OTHER, notice.kind, at, notice.detail.clone())
    }
}
