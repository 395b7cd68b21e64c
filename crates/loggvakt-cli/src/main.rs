//! # loggvakt (the command line)
//!
//! Owns the user interface: flags and their help, progress bars, summaries and exit
//! codes. Everything it does is a call into the library crates; it is the only crate that
//! prints. Exit codes: 0 success; 1 failure or (for `verify`) a store that is not intact;
//! 2 wrong usage; 3 `ingest` finished but quarantined some input.

// The one crate that prints (the workspace denies printing elsewhere).
#![allow(clippy::print_stdout, clippy::print_stderr)]

// Ingest allocates many small strings per event on several threads; mimalloc handles
// that pattern markedly better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod analyse;
mod cluster;
mod daemon;
mod demo;
mod html;
mod ingest;
mod keys;
mod logging;
mod owner;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loggvakt",
    version,
    about = "Tamper-evident store and snooping analysis for health-record access logs",
    long_about = "loggvakt keeps who-opened-which-record access logs in an append-only store: every record is \
hash-chained (BLAKE3) to the one before, sealed into Parquet segments that DuckDB, Spark and DataFusion read, and \
covered by Ed25519-signed checkpoints. A regulator can prove, offline, that nothing was changed, removed or added.\n\n\
Start here:  loggvakt demo      (generates a week of sample logs, ingests, verifies, and shows where everything went)",
    after_help = "Exit codes: 0 success; 1 failure, or a store that is not intact; 2 wrong usage; 3 ingest quarantined some input."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole main job on built-in sample data: generate, ingest, verify, export a checkpoint.
    Demo(demo::DemoArgs),
    /// Make an Ed25519 signing key for checkpoints, and its public verifier key.
    Keygen(keys::KeygenArgs),
    /// Read FHIR AuditEvent files (JSON, NDJSON, Bundles) into a store; quarantine what cannot be mapped.
    #[command(after_long_help = "Examples:\n  \
loggvakt ingest --store /srv/loggvakt --key /etc/loggvakt/operator.key export/AuditEvent.ndjson\n  \
loggvakt ingest --store /srv/loggvakt --key operator.key --report-durable context.ndjson events.ndjson\n\n\
An event counts as stored only once it is fsynced; running the same files again stores nothing twice \
(events are identified by source system and AuditEvent.id), so an interrupted run is resumed by running it again.")]
    Ingest(ingest::IngestArgs),
    /// Run the ingest daemon: FHIR AuditEvent over HTTP(S), IHE ATNA syslog over TLS/TCP/UDP, durable acknowledgement.
    #[command(after_long_help = "Examples:\n  \
loggvakt serve --store /srv/loggvakt --key /etc/loggvakt/operator.key --config /etc/loggvakt/loggvakt.toml\n  \
LOGGVAKT_HTTP__LISTEN=0.0.0.0:8080 loggvakt serve --store /srv/loggvakt --key operator.key --config loggvakt.toml\n\n\
Senders: POST /fhir/AuditEvent (one event), POST /fhir (a batch or transaction Bundle), GET /fhir/AuditEvent?patient=..&date=ge.. \
(ITI-81 search, for sources allowed to search; every search is itself logged), GET /fhir/metadata. Syslog (ITI-20): RFC 5424 \
with a DICOM or RFC 3881 audit message, octet-counted or one per line. A 2xx answer means the event is fsynced; when the \
queue is full the answer is 503 with Retry-After, and syslog connections are not read until there is room. \
Operations: /metrics (Prometheus), /healthz, /readyz. SIGTERM drains, seals and signs a checkpoint. The API is in docs/ingest-api.md.")]
    Serve(daemon::ServeArgs),
    /// Show each source's completeness: received, stored, gaps in its sequence numbers, silences.
    Sources(daemon::SourcesArgs),
    /// Inspect quarantined input and retry it after a fix.
    #[command(subcommand)]
    Quarantine(daemon::QuarantineCommand),
    /// Prove from the files and trusted public keys alone that a store is complete and unaltered.
    #[command(after_long_help = "Examples:\n  \
loggvakt verify --store /mnt/copy-of-store --trusted-keys trusted-keys.txt\n  \
loggvakt verify --store /mnt/copy-of-store --trusted-keys trusted-keys.txt --checkpoint checkpoint-2026-11-01.note --json\n\n\
Every record is re-hashed from its Parquet row and folded into the chain; the chain head must match checkpoints \
signed by a trusted key. Each problem is reported with the file, the row and the sequence number. Without --checkpoint, \
a store whose newest epochs were removed together with their checkpoints looks complete: keep a checkpoint \
from 'export-checkpoint' outside the operator's reach to catch that. The format is specified in docs/format.md.")]
    Verify(verify::VerifyArgs),
    /// Copy the newest signed checkpoint out of a store, for a regulator to keep out of the operator's reach.
    ExportCheckpoint(verify::ExportArgs),
    /// Publish a store's sealed epochs and context snapshots to an S3 bucket (or another disk), for readers elsewhere.
    #[command(after_long_help = "Examples:\n  \
AWS_ENDPOINT_URL=https://s3.example.no AWS_REGION=eu-north-1 loggvakt publish --store /srv/loggvakt --to s3://loggvakt/helse-vest\n  \
loggvakt publish --store /srv/loggvakt --to /mnt/archive/loggvakt\n  \
loggvakt verify --store s3://loggvakt/helse-vest --trusted-keys trusted-keys.txt\n\n\
The writer keeps sealing on its own disk (an event is acknowledged when it is fsynced there, never waiting for \
the network); publishing copies each signed epoch in the order a reader needs: segments, then the manifest, then \
the checkpoint. Every object is created only if absent (S3 conditional writes, If-None-Match), never overwritten, \
so a second store publishing to the same place is refused, and a server that ignores conditional writes is refused \
before anything is written. Run it again at any time (from cron, or after each day): it resumes after the last epoch \
the target holds whole. Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for a \
server without TLS.")]
    Publish(verify::PublishArgs),
    /// Import population, staff, organisations and care evidence (FHIR bulk NDJSON) as context for detection.
    #[command(subcommand)]
    Context(analyse::ContextCommand),
    /// Find likely snooping in a period and write each organisation's ranked review queue and report.
    #[command(after_long_help = "Examples:\n  \
loggvakt detect --store /srv/loggvakt --key operator.key --from 2026-11-16 --to 2026-11-22 --out review/2026-w47\n  \
loggvakt detect --store /srv/loggvakt --key operator.key --from 2026-11-16 --to 2026-11-22 --org 974749025 --capacity 40 --out review\n  \
loggvakt detect ... --detectors ./my-detectors --param neighbour.max_house_distance=4\n\n\
Every detector is a SQL file (built in from the repository's detectors/, or --detectors DIR) run by DataFusion over \
the journal and the context snapshot. An access is explained when care evidence (encounter, episode of care, \
appointment) links the patient to the accessor, the accessor's unit, or a colleague in the care team, within the \
organisation's window. One accessor's flagged accesses form a case; cases are ranked by severity, strength and \
repetition, and cut at each organisation's capacity. Outputs per organisation (OUT/<orgnr>/): report.html, \
queue.json, queue.csv, flags.csv, notices.json, unexplained.csv. The run itself is logged in the journal.\n\n\
On a cluster (Apache DataFusion Ballista, 'loggvakt cluster'):\n  \
loggvakt publish --store /srv/loggvakt --to s3://loggvakt/helse-vest\n  \
loggvakt detect --store /srv/loggvakt --key operator.key --from 2026-11-16 --to 2026-11-22 --out review \\\n    \
--cluster df://10.0.0.5:50050 --read-from s3://loggvakt/helse-vest --scratch /shared/loggvakt-scratch\n\n\
The same SQL runs, on the same checkpoint and context snapshot, and writes the same queues; the store's owner \
still seals, pins and logs the review (once), and the executors read the published copy.")]
    Detect(Box<analyse::DetectArgs>),
    /// Run a scheduler or an executor of an Apache DataFusion Ballista cluster for 'detect --cluster'.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Score a detect run against ground-truth labels: precision, recall and F1 per detector and per queue.
    Eval(analyse::EvalArgs),
    /// Write a synthetic region: FHIR context (population, staff, care) and a week of AuditEvents with snooping labels.
    #[command(after_long_help = "Examples:\n  \
loggvakt samples --out sample --seed 7 --scale small      (context/*.ndjson, AuditEvent.ndjson, labels.csv)\n  \
loggvakt samples --out load --flat --events 1000000       (a plain event stream of exactly N events, for load tests)")]
    Samples(SamplesArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Scale {
    /// ~3 000 persons, ~200 staff, ~15 000 accesses
    Small,
    /// ~30 000 persons, ~1 500 staff, ~150 000 accesses
    Medium,
    /// ~300 000 persons, ~15 000 staff, ~1.5 M accesses
    Large,
}

#[derive(clap::Args)]
pub(crate) struct SamplesArgs {
    /// Directory to write into.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Seed; the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Size of the region.
    #[arg(long, value_enum, default_value_t = Scale::Small)]
    pub(crate) scale: Scale,
    /// The Monday the sample week starts (UTC).
    #[arg(long, default_value = "2026-11-16")]
    pub(crate) week: chrono::NaiveDate,
    /// Instead of a region, write a plain stream of exactly --events AuditEvents
    /// (context.ndjson, events.ndjson), for load and crash tests.
    #[arg(long)]
    pub(crate) flat: bool,
    /// Number of events of a --flat stream.
    #[arg(long, default_value_t = 10_000, requires = "flat")]
    pub(crate) events: u64,
    /// Staff of a --flat stream.
    #[arg(long, default_value_t = 2_000, requires = "flat")]
    pub(crate) employees: usize,
    /// Patients of a --flat stream.
    #[arg(long, default_value_t = 50_000, requires = "flat")]
    pub(crate) patients: usize,
    /// A region without the confounders of a real one (every event names its unit, every
    /// piece of work has a care record, registers spell addresses alike): the world the
    /// detectors were first written against.
    #[arg(long, conflicts_with = "flat")]
    pub(crate) clean: bool,
    /// Set one confounder's share, e.g. `--confounder unit_missing=0.8` (repeatable; see
    /// docs/quality.md): unit_missing, hpr_only_staff, address_variants, service_work,
    /// orders_recorded, float_pool, on_call, municipal_other_unit, mass_casualty,
    /// d_numbers, students, booking, quality_review, resends, rosters. All are on by
    /// default.
    #[arg(long, value_name = "NAME=SHARE", conflicts_with = "flat")]
    pub(crate) confounder: Vec<String>,
    /// Weeks of accesses before --week: ongoing care followed week after week, and snooping
    /// spread over those weeks, for the lookback a weekly review reads (detect's
    /// lookback_days setting, 84 days by default).
    #[arg(long, default_value_t = 12, conflicts_with = "flat")]
    pub(crate) history_weeks: u32,
}

fn flat_samples(args: &SamplesArgs) -> anyhow::Result<(PathBuf, PathBuf, u64)> {
    use anyhow::Context as _;
    use std::io::Write as _;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let world = loggvakt_samples::World::generate(args.seed, args.employees, args.patients);
    let context_path = args.out.join("context.ndjson");
    let events_path = args.out.join("events.ndjson");
    let mut context = std::io::BufWriter::new(std::fs::File::create(&context_path).with_context(|| format!("creating {}", context_path.display()))?);
    world.write_context(&mut context)?;
    context.flush()?;
    let mut events = std::io::BufWriter::new(std::fs::File::create(&events_path).with_context(|| format!("creating {}", events_path.display()))?);
    let options = loggvakt_samples::EventOptions { seed: args.seed, events: args.events, ..Default::default() };
    let lines = loggvakt_samples::write_events(&world, &options, &mut events)?;
    events.flush()?;
    Ok((context_path, events_path, lines))
}

/// A progress bar of `len` steps drawn with `template` (indicatif's), in every command's
/// one style; hidden when standard error is not a terminal.
pub(crate) fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()).progress_chars("=> "));
    bar
}

pub(crate) fn region_samples(args: &SamplesArgs) -> anyhow::Result<loggvakt_samples::region::Written> {
    use anyhow::Context as _;
    let scale = match args.scale {
        Scale::Small => loggvakt_samples::RegionScale::Small,
        Scale::Medium => loggvakt_samples::RegionScale::Medium,
        Scale::Large => loggvakt_samples::RegionScale::Large,
    };
    let week_start = args.week.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or_default();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut confounders = if args.clean { loggvakt_samples::region::Confounders::none() } else { loggvakt_samples::region::Confounders::default() };
    for assignment in &args.confounder {
        confounders.set(assignment).map_err(|reason| anyhow::anyhow!("--confounder {reason}"))?;
    }
    let region = loggvakt_samples::Region::generate_with(args.seed, scale, week_start, confounders, args.history_weeks);
    Ok(region.write(&args.out, args.seed)?)
}

fn samples(args: &SamplesArgs) -> anyhow::Result<ExitCode> {
    if args.flat {
        let (c, e, lines) = flat_samples(args)?;
        println!("wrote {} ({} events on {lines} lines) and {}", e.display(), args.events, c.display());
    } else {
        let w = region_samples(args)?;
        println!(
            "wrote {} context resources to {}, {} access events to {} ({} of them injected snooping, listed in {})",
            w.resources,
            w.context_dir.display(),
            w.accesses,
            w.events.display(),
            w.injected,
            w.labels.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Behave like other Unix tools when the reader of our output goes away (`| head`):
    // end quietly instead of panicking on a failed print. Not for the long-running
    // processes: a cluster's executor that wrote to a connection its peer had closed was
    // killed by the signal (a second executor on one scheduler died so, every time).
    if !matches!(cli.command, Command::Serve(_) | Command::Cluster(_)) {
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    logging::install();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Keygen(args) => keys::keygen(&args).map(|()| ExitCode::SUCCESS),
        Command::Ingest(args) => ingest::run(&args),
        Command::Serve(args) => daemon::serve(&args),
        Command::Sources(args) => daemon::sources(&args),
        Command::Quarantine(command) => daemon::quarantine(&command),
        Command::Verify(args) => verify::run(&args),
        Command::ExportCheckpoint(args) => verify::export(&args).map(|()| ExitCode::SUCCESS),
        Command::Publish(args) => verify::publish(&args).map(|()| ExitCode::SUCCESS),
        Command::Context(command) => analyse::context(&command),
        Command::Detect(args) => analyse::detect(&args),
        Command::Cluster(command) => cluster::run(&command),
        Command::Eval(args) => analyse::eval(&args),
        Command::Samples(args) => samples(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
