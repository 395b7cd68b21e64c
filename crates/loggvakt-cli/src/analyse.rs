//! `loggvakt context import`, `loggvakt detect` and `loggvakt eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use loggvakt_analyse::{engine::Progress, report, Period, Settings};
use loggvakt_journal::own::{ContextSnapshot, ReviewBasis, ReviewRun, ReviewedQueue};

use crate::owner::StoreWriter;

#[derive(clap::Subcommand)]
pub enum ContextCommand {
    /// Import FHIR R4 bulk NDJSON (Patient, RelatedPerson, Practitioner, PractitionerRole,
    /// Organization, Encounter, EpisodeOfCare, Appointment) into a new context snapshot.
    #[command(after_long_help = "Examples:\n  \
loggvakt context import --store /srv/loggvakt export/Patient.ndjson export/RelatedPerson.ndjson\n  \
loggvakt context import --store /srv/loggvakt export/        (every *.ndjson and *.json in the directory)\n\n\
Resources are merged into the newest snapshot by Type/id (a later one replaces an earlier one); a new snapshot is \
written only when something changed, so importing the same export twice is harmless. References may point into \
other files or earlier imports; one that resolves nowhere is reported and the rest is imported.")]
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The store the context belongs to.
    #[arg(long)]
    pub store: PathBuf,
    /// NDJSON files, or directories of them, as a FHIR Bulk Data $export writes them.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Show every problem, not only the first 20.
    #[arg(long)]
    pub all_problems: bool,
    /// The signing key, to record a new snapshot in the journal when no daemon runs (with
    /// one running, it records it; with neither, the first review that reads the snapshot
    /// records its digest).
    #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Who runs the import, as recorded in the journal.
    #[arg(long, env = "USER", default_value = "loggvakt-operator")]
    pub operator: String,
    /// Memory for the export's text at once (e.g. 1G, 64M): the import sorts the export in
    /// runs of a quarter of this on disk, beside the new snapshot, and merges them, so a
    /// register of any size imports in about this plus the population's identities.
    /// Default: 1G. A smaller limit gives the same snapshot, a little slower.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
}

pub fn context(command: &ContextCommand) -> anyhow::Result<ExitCode> {
    let ContextCommand::Import(args) = command;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let started = Instant::now();
    let run_bytes = match &args.memory_limit {
        Some(limit) => memory_limit(Some(limit))? / 4,
        None => loggvakt_context::RUN_BYTES,
    };
    let report = loggvakt_context::import_with(&args.store, &args.inputs, &now, run_bytes).with_context(|| format!("importing context into {}", args.store.display()))?;
    let changed: usize = report.changed.values().sum();
    println!(
        "read {} resource line(s) from {} file(s) in {:.1}s: {changed} new or changed, {} unchanged",
        report.lines_read,
        report.files.len(),
        started.elapsed().as_secs_f64(),
        report.unchanged
    );
    for (kind, n) in &report.changed {
        println!("  {kind:<18} {n}");
    }
    let s = &report.snapshot;
    if report.created {
        println!("snapshot v{:06} written ({} resources): {}", s.version, s.resources, s.dir.display());
        for (table, rows) in &s.rows {
            println!("  {table:<18} {rows} rows");
        }
        record_snapshot(args, s)?;
    } else {
        println!("nothing changed: snapshot v{:06} of {} stays current", s.version, s.imported_at);
    }
    if !report.problems.is_empty() {
        println!("{} problem(s), imported around (kept in {}):", report.problems.len(), s.dir.join("problems.ndjson").display());
        let shown = if args.all_problems { report.problems.len() } else { 20 };
        for p in report.problems.iter().take(shown) {
            let at = match (&p.file, p.line, &p.resource) {
                (Some(f), Some(l), _) => format!("{f}:{l}"),
                (_, _, Some(r)) => r.clone(),
                _ => String::new(),
            };
            let path = if p.path.is_empty() { String::new() } else { format!(" {}", p.path) };
            println!("  {at}{path}: {}", p.reason);
        }
        if report.problems.len() > shown {
            println!("  … and {} more (--all-problems)", report.problems.len() - shown);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records the snapshot that just became current, with its files' digest, in the journal
/// (chained and signed): a later edit of it is then caught by `verify`, even before a
/// review reads it.
fn record_snapshot(args: &ImportArgs, snapshot: &loggvakt_context::SnapshotInfo) -> anyhow::Result<()> {
    let name = format!("v{:06}", snapshot.version);
    let record = ContextSnapshot {
        context_files_blake3: loggvakt_journal::layout::files_digest(&snapshot.dir)?,
        context_snapshot: name.clone(),
        imported_at: snapshot.imported_at.clone(),
        operator: args.operator.clone(),
    };
    let has_records = args.store.join(loggvakt_journal::layout::STORE_FILE).is_file();
    let daemon = loggvakt_serve::admin::AdminClient::connect(&args.store).is_some();
    if !daemon && (args.key.is_none() || !has_records) {
        println!("snapshot {name} is not recorded in the journal yet (no daemon runs and no --key was given): the first review that reads it records its digest");
        return Ok(());
    }
    let mut writer = StoreWriter::open(&args.store, args.key.as_deref(), "context import")?;
    writer.record_context_snapshot(&record)?;
    println!("snapshot {name} recorded in the journal (files' BLAKE3 {}), {}", &record.context_files_blake3[..16], writer.describe());
    writer.close()?;
    Ok(())
}

#[derive(clap::Args)]
pub struct DetectArgs {
    /// The store to analyse (events and context).
    #[arg(long)]
    pub store: PathBuf,
    /// First day of the review period (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub from: chrono::NaiveDate,
    /// Last day of the review period, included.
    #[arg(long)]
    pub to: chrono::NaiveDate,
    /// Review only this organisation's accesses (orgnr of the accessing staff's employer).
    #[arg(long)]
    pub org: Option<String>,
    /// Directory for the outputs: one sub-directory per organisation.
    #[arg(long)]
    pub out: PathBuf,
    /// Cases per organisation in this review (default 25, or the settings file's).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Review settings as JSON: capacity, min_score, qc_sample, window_before_days,
    /// window_after_days, lookback_days, max_rows_per_part, and per-organisation overrides
    /// under "organisations".
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Load detectors from this directory instead of the built-in set (one *.sql per detector).
    #[arg(long)]
    pub detectors: Option<PathBuf>,
    /// Load the shared views from this directory instead of the built-in queries/.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Override a detector parameter: NAME=VALUE for all, DETECTOR.NAME=VALUE for one.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Private key that signs the journal's checkpoints: the review run is itself logged in
    /// the journal. Needed only when no daemon runs: with one, the review's records go
    /// through its admin channel.
    #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Memory the queries may hold at once (e.g. 8G, 512M); past it, sorts and
    /// aggregations spill to disk, the links of accesses to care (and the detectors of one
    /// patient's records) are computed a share of the patients at a time, and a query that
    /// still cannot fit stops with an error naming it. A region's week (25 M accesses)
    /// runs within 4G. Default: half of the machine's memory.
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Rerun a review on what it read: the events up to the checkpoint of this size (its
    /// queue.json "basis"), instead of sealing and reading everything committed now.
    #[arg(long, value_name = "SIZE", requires = "context_snapshot")]
    pub at_checkpoint: Option<u64>,
    /// With --at-checkpoint: the context snapshot the review read (e.g. v000003).
    #[arg(long, value_name = "NAME", requires = "at_checkpoint")]
    pub context_snapshot: Option<String>,
    /// Who runs the review, as recorded in the journal.
    #[arg(long, env = "USER", default_value = "loggvakt-operator")]
    pub operator: String,
    /// Run the queries on an Apache DataFusion Ballista cluster (its scheduler,
    /// df://host:port; see 'loggvakt cluster') instead of in this process.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// Read the events and context from this published copy of the store
    /// (s3://bucket/prefix, see 'loggvakt publish'), which is brought up to the review's
    /// checkpoint first. Executors of a cluster read it with their own AWS_* settings.
    #[arg(long, value_name = "URL")]
    pub read_from: Option<String>,
    /// Directory for the views the review computes while it runs (default: the system's
    /// temporary directory). On a cluster every executor writes and reads them there, so
    /// it must be the same path on every machine (a shared mount).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
}

pub fn detect(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    if args.to < args.from {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    if let Some(org) = &args.org {
        loggvakt_model::ids::validate_orgnr(org).with_context(|| format!("--org {org}"))?;
    }
    let mut settings = match &args.settings {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    if let Some(c) = args.capacity {
        settings.capacity = c;
    }
    let mut params = BTreeMap::new();
    for p in &args.params {
        let Some((name, value)) = p.split_once('=') else { bail!("--param {p}: expected NAME=VALUE") };
        params.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    // Before the store is opened: values that are not plain literals are refused (SQL).
    loggvakt_analyse::check_params(&params)?;
    let detectors = loggvakt_analyse::load_detectors(args.detectors.as_deref())?;
    let queries = loggvakt_analyse::load_sql(args.queries.as_deref(), "queries")?;

    // The review reads a view pinned to a signed checkpoint: the daemon (or, with none
    // running, this command) seals what is committed, and the analysis reads the records up
    // to that checkpoint and none after, however many seals land while it runs.
    let mut writer = StoreWriter::open(&args.store, args.key.as_deref(), "detect")?;
    let checkpoint_size = match args.at_checkpoint {
        Some(size) => size,
        None => writer.seal()?,
    };
    if checkpoint_size == 0 {
        bail!("the store {} holds no records yet: nothing to review", args.store.display());
    }
    if let Some(url) = &args.read_from {
        bring_up_to(&args.store, url, checkpoint_size)?;
    }
    let session = match &args.cluster {
        Some(url) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
            Some(runtime.block_on(loggvakt_cluster::connect(url))?)
        }
        None => None,
    };

    let bar = crate::progress_bar(detectors.len() as u64, "{spinner} detect [{bar:20}] {pos}/{len} {msg}");
    let started = Instant::now();
    let job = loggvakt_analyse::Job {
        store: &args.store,
        period: Period { from: args.from, to: args.to },
        org: args.org.as_deref(),
        detectors,
        queries,
        params,
        settings: &settings,
        through_seq: Some(checkpoint_size),
        context_snapshot: args.context_snapshot.as_deref(),
        memory_limit: Some(memory_limit(args.memory_limit.as_deref())?),
        read_from: args.read_from.as_deref(),
        session,
        scratch: args.scratch.as_deref(),
    };
    let analysis = loggvakt_analyse::analyse(job, &mut |p| match p {
        Progress::Preparing(what) => bar.set_message(what.to_owned()),
        Progress::Detector { id, .. } => bar.set_message(format!("running {id}")),
        Progress::DetectorDone { .. } => bar.inc(1),
    })?;
    bar.finish_and_clear();
    let (mut queues, notices) = loggvakt_analyse::build_queues(&analysis, &settings);
    let basis = review_basis(&args.store, checkpoint_size, analysis.context_version)?;
    for q in &mut queues {
        q.basis = Some(basis.clone());
    }
    // The review is logged (durably) before anyone can read its outputs.
    let run = ReviewRun {
        operator: args.operator.clone(),
        from: args.from.to_string(),
        to: args.to.to_string(),
        org: args.org.clone(),
        basis: basis.clone(),
        queues: queues
            .iter()
            .map(|q| ReviewedQueue { orgnr: q.orgnr.clone(), patients: q.cases.iter().flat_map(|c| c.accesses.iter().filter_map(|a| a.patient_id.clone())).collect() })
            .collect(),
    };
    let logged = writer.record_review(&run)?;
    let how = writer.describe();
    writer.close()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let written = report::write_outputs(&args.out, &analysis, &queues, &notices)?;

    println!(
        "checked {} accesses to patient records from {} to {} with {} detectors in {:.1}s (events through checkpoint {checkpoint_size}, context snapshot v{:06})",
        analysis.total_accesses,
        args.from,
        args.to,
        analysis.detectors.len(),
        started.elapsed().as_secs_f64(),
        analysis.context_version
    );
    // The memory pool's peak in each step: what sizes the parts of a region's week.
    let peak = |run: &loggvakt_analyse::engine::DetectorRun| run.peak_memory.map(|b| format!("  {:>6} MiB at most", b >> 20)).unwrap_or_default();
    for phase in &analysis.phases {
        println!("  {:<40} {:>6} ms{}", phase.id, phase.millis, peak(phase));
    }
    for run in &analysis.runs {
        println!("  {:<18} {:>7} flags  {:>6} ms{}", run.id, run.flags, run.millis, peak(run));
    }
    println!("\n{:<11} {:<32} {:>9} {:>9} {:>6} {:>8}  report", "orgnr", "organisation", "accesses", "explained", "cases", "notices");
    for (q, w) in queues.iter().zip(&written) {
        let share = if q.accesses > 0 { format!("{:.1} %", q.explained as f64 * 100.0 / q.accesses as f64) } else { "–".into() };
        println!(
            "{:<11} {:<32} {:>9} {:>9} {:>6} {:>8}  {}",
            q.orgnr,
            q.org_name.as_deref().unwrap_or("").chars().take(32).collect::<String>(),
            q.accesses,
            share,
            q.cases.len(),
            w.notices,
            w.dir.join("report.html").display()
        );
    }
    println!("\nthis review was logged in the journal as {logged} event(s) (action list_exposure, source 'loggvakt'), {how}");
    Ok(ExitCode::SUCCESS)
}

/// Publishes the store's sealed epochs to `url` (only what it does not hold yet), and
/// checks that it then holds the checkpoint the review reads through.
fn bring_up_to(store: &std::path::Path, url: &str, checkpoint_size: u64) -> anyhow::Result<()> {
    let target = loggvakt_storage::open(url)?;
    let report =
        loggvakt_journal::publish::publish(store, target.as_ref(), &|_, _| {}).with_context(|| format!("bringing the published copy {url} up to the review's checkpoint"))?;
    let checkpoint = loggvakt_journal::manifest::checkpoint_rel_path(checkpoint_size);
    if target.read_if_exists(&checkpoint)?.is_none() {
        bail!("the published copy {url} holds epochs 1..={} but not the checkpoint of size {checkpoint_size} the review reads through", report.through_epoch);
    }
    Ok(())
}

/// `--memory-limit` in bytes: `8G`, `512M`, `64K` or a number of bytes; by default half of
/// the machine's memory (`/proc/meminfo`), so a review leaves room for the daemon beside it.
fn memory_limit(given: Option<&str>) -> anyhow::Result<usize> {
    let Some(text) = given else {
        let total_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<usize>().ok()));
        return Ok(total_kib.map_or(8 << 30, |kib| kib * 1024 / 2));
    };
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: usize = digits.parse().with_context(|| format!("--memory-limit {text}: expected a size such as 8G or 512M"))?;
    let factor: usize = match unit.trim().to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => bail!("--memory-limit {text}: the unit must be K, M or G"),
    };
    n.checked_mul(factor).filter(|b| *b > 0).with_context(|| format!("--memory-limit {text}: not a usable size"))
}

/// What this review reads: the signed checkpoint its events end at, and the context
/// snapshot with its files' digest.
fn review_basis(store: &std::path::Path, checkpoint_size: u64, context_version: u32) -> anyhow::Result<ReviewBasis> {
    let path = store.join(loggvakt_journal::manifest::checkpoint_rel_path(checkpoint_size));
    let note = std::fs::read_to_string(&path).with_context(|| format!("reading the checkpoint of size {checkpoint_size}, {}", path.display()))?;
    let (checkpoint, _, _) = loggvakt_journal::Checkpoint::parse_note(&note)?;
    let snapshot = format!("v{context_version:06}");
    let dir = loggvakt_journal::layout::context_snapshot_dir(store, &snapshot);
    let digest = if dir.is_dir() { loggvakt_journal::layout::files_digest(&dir)? } else { String::new() };
    Ok(ReviewBasis {
        checkpoint_size: checkpoint.size,
        checkpoint_head: loggvakt_journal::chain::to_hex(&checkpoint.head),
        context_files_blake3: digest,
        context_snapshot: snapshot,
    })
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The --out directory of 'loggvakt detect'.
    #[arg(long)]
    pub queues: PathBuf,
    /// Ground truth: labels.csv as 'loggvakt samples' writes it (event_id,class,case,…).
    #[arg(long)]
    pub labels: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let e = loggvakt_analyse::eval::evaluate(&args.queues, &args.labels)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |x: f64| format!("{:.1} %", x * 100.0);
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
    println!("{:<18} {:>8} {:>8} {:>9} {:>7} {:>6}", "detector", "flagged", "labelled", "precision", "recall", "F1");
    for d in &e.detectors {
        println!("{:<18} {:>8} {:>8} {:>9.2} {:>7} {:>6}", d.detector, d.flagged, d.labelled, d.precision, opt(d.recall), opt(d.f1));
    }
    println!("\n{:<18} {:>8} {:>9} {:>7}", "injected class", "cases", "detected", "queued");
    for c in &e.classes {
        println!("{:<18} {:>8} {:>9} {:>7}", c.class, c.injected_cases, c.detected_cases, c.queued_cases);
    }
    println!("\n{:<11} {:>6} {:>9} {:>10} {:>9}", "orgnr", "cases", "true", "precision", "capacity");
    for q in &e.queues {
        let precision = if q.cases == 0 { "–".to_owned() } else { format!("{:.2}", q.precision) };
        println!("{:<11} {:>6} {:>9} {:>10} {:>9}", q.orgnr, q.cases, q.true_cases, precision, q.capacity);
    }
    println!(
        "\nqueues at capacity: precision {:.2}, recall {:.2} of injected cases\nexplained: {} of {} accesses ({}); legitimate accesses explained: {}",
        e.queue_precision,
        e.queue_recall,
        e.explained,
        e.accesses,
        pct(e.explained_share),
        pct(e.legitimate_explained_share)
    );
    println!("\n{:<12} {:<20} {:>9} {:>8}", "explained by", "evidence", "accesses", "share");
    for x in &e.explanations {
        println!("{:<12} {:<20} {:>9} {:>8}", x.by, if x.kind.is_empty() { "–" } else { &x.kind }, x.accesses, pct(x.share));
    }
    Ok(ExitCode::SUCCESS)
}
