use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::ProgressBar;
use loggvakt_ingest::{Ingest, IngestObserver, IngestOptions, IngestSummary};
use loggvakt_journal::{Journal, JournalOptions};

#[derive(clap::Args)]
pub struct IngestArgs {
    /// The store directory (created if missing).
    #[arg(long)]
    pub store: PathBuf,
    /// Private key that signs checkpoints (from 'loggvakt keygen'). Keep it outside the
    /// store: whoever holds it can sign checkpoints.
    #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Input files: FHIR R4/R5 AuditEvent JSON (one resource or a Bundle), or NDJSON with one
    /// resource per line (.ndjson/.jsonl). Practitioner, PractitionerRole, Organization and
    /// Patient resources in the input are kept as context that later events may refer to.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// After each fsync, print 'durable <file> <line> <last-seq>' on stdout: every line up to
    /// there is stored or quarantined for good, so a caller knows where to resume.
    #[arg(long)]
    pub report_durable: bool,
    /// Largest accepted message (one line, or one JSON file) in bytes.
    #[arg(long, default_value_t = loggvakt_fhir::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Input bytes mapped in parallel and committed (fsynced) together.
    #[arg(long, default_value_t = 8 << 20)]
    pub chunk_bytes: usize,
    /// Seal an epoch (Parquet segments + signed checkpoint) after this many records...
    #[arg(long, default_value_t = 500_000)]
    pub epoch_records: usize,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 5.0)]
    pub epoch_seconds: f64,
    /// Organisation numbers the files may write for (repeat, or comma-separated). An event
    /// for any other organisation is quarantined with the reason. Without it an operator's
    /// import writes for any organisation; never for loggvakt's own recording system.
    #[arg(long = "tenant", value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// The organisation (organisasjonsnummer) of events that name none: no organisation
    /// agent, and no employer in the user's PractitionerRole. Use it for a file from one
    /// organisation's system, as published FHIR examples and many feeds are.
    #[arg(long)]
    pub default_tenant: Option<String>,
}

struct Progress {
    bar: ProgressBar,
    report_durable: bool,
}

impl IngestObserver for Progress {
    fn durable(&mut self, file: &Path, line: u64, summary: &IngestSummary) {
        if self.report_durable {
            println!("durable {} {line} {}", file.display(), summary.durable_seq);
        }
        self.bar.set_message(format!("{} stored, {} quarantined", summary.stored, summary.quarantined));
    }
    fn bytes_read(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

pub fn run(args: &IngestArgs) -> anyhow::Result<ExitCode> {
    for tenant in args.tenants.iter().chain(&args.default_tenant) {
        loggvakt_model::ids::validate_orgnr(tenant).map_err(|e| anyhow::anyhow!("--tenant {tenant}: {e}"))?;
    }
    // Check every input before touching the store, so a typo does not leave half a run.
    for file in &args.files {
        if !file.is_file() {
            anyhow::bail!("input {} is not a readable file", file.display());
        }
    }
    let Some(key_path) = &args.key else {
        anyhow::bail!(
            "no signing key: pass --key FILE or set LOGGVAKT_SIGNING_KEY. Make one with \
             'loggvakt keygen --name NAME --out FILE --trusted-keys trusted-keys.txt' and keep it outside the store"
        );
    };
    let key = crate::keys::read_signing_key(key_path)?;
    let options = JournalOptions { max_epoch_records: args.epoch_records.max(1), max_epoch_age: Duration::from_secs_f64(args.epoch_seconds.max(0.0)), ..Default::default() };
    let (mut journal, recovery) = Journal::open(&args.store, key, options).with_context(|| format!("opening store {}", args.store.display()))?;
    if recovery.replayed > 0 || recovery.torn_bytes > 0 || !recovery.removed_uncommitted.is_empty() {
        eprintln!(
            "recovered after an interrupted run: {} committed records re-sealed from the write-ahead journal, {} torn bytes cut, {} unsigned files removed",
            recovery.replayed,
            recovery.torn_bytes,
            recovery.removed_uncommitted.len()
        );
    }
    let total: u64 = args.files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = crate::progress_bar(total, "{spinner} ingest [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}");
    let started = Instant::now();
    let ingest_options = IngestOptions {
        max_message_bytes: args.max_message_bytes,
        chunk_bytes: args.chunk_bytes,
        policy: loggvakt_ingest::WritePolicy { sender: "bulk ingest".into(), tenants: args.tenants.clone(), systems: vec![] },
        default_tenant: args.default_tenant.clone(),
    };
    let ingest = Ingest::new(&mut journal, ingest_options, Progress { bar: bar.clone(), report_durable: args.report_durable })?;
    let summary = ingest.run(&args.files)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "ingested {} file(s), {:.1} MB in {:.2}s: {} events stored ({:.0}/s), {} duplicates skipped, {} quarantined, {} context resources kept",
        summary.files,
        summary.bytes as f64 / 1e6,
        secs,
        summary.stored,
        summary.stored as f64 / secs,
        summary.duplicates,
        summary.quarantined,
        summary.context_resources
    );
    println!("durable through seq {} (fsynced before this line was printed); signed by {}", summary.durable_seq, journal.signer_id());
    if summary.quarantined > 0 {
        println!("quarantined input, with the reason for each, is under {}", args.store.join("quarantine").display());
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
