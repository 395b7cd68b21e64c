//! `loggvakt context import`, `loggvakt detect` and `loggvakt eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use loggvakt_analyse::{engine::Progress, report, Period, Settings};
use loggvakt_journal::{Journal, JournalOptions};
use loggvakt_model::AccessEvent;

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
}

pub fn context(command: &ContextCommand) -> anyhow::Result<ExitCode> {
    let ContextCommand::Import(args) = command;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let started = Instant::now();
    let report = loggvakt_context::import(&args.store, &args.inputs, &now).with_context(|| format!("importing context into {}", args.store.display()))?;
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
    /// window_after_days, and per-organisation overrides under "organisations".
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
    /// the journal.
    #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Who runs the review, as recorded in the journal.
    #[arg(long, env = "USER", default_value = "loggvakt-operator")]
    pub operator: String,
}

pub fn detect(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    if args.to < args.from {
        bail!("--to {} is before --from {}", args.to, args.from);
    }
    if let Some(org) = &args.org {
        loggvakt_model::ids::validate_orgnr(org).with_context(|| format!("--org {org}"))?;
    }
    let Some(key_path) = &args.key else {
        bail!("no signing key: pass --key FILE or set LOGGVAKT_SIGNING_KEY. Every review run is logged in the journal, which signs its checkpoints");
    };
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

    // Opening the journal takes the writer lock and seals what an interrupted run left, so
    // the analysis sees every committed event, and the run can be logged afterwards.
    let key = crate::keys::read_signing_key(key_path)?;
    let (mut journal, _) = Journal::open(&args.store, key, JournalOptions::default()).with_context(|| format!("opening store {}", args.store.display()))?;
    journal.seal()?;

    let bar = ProgressBar::new(detectors.len() as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} detect [{bar:20}] {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    let started = Instant::now();
    let job =
        loggvakt_analyse::Job { store: &args.store, period: Period { from: args.from, to: args.to }, org: args.org.as_deref(), detectors, queries, params, settings: &settings };
    let analysis = loggvakt_analyse::analyse(job, &mut |p| match p {
        Progress::Preparing(what) => bar.set_message(what.to_owned()),
        Progress::Detector { id, .. } => bar.set_message(format!("running {id}")),
        Progress::DetectorDone { .. } => bar.inc(1),
    })?;
    bar.finish_and_clear();
    let (mut queues, notices) = loggvakt_analyse::build_queues(&analysis, &settings);
    let basis = review_basis(&args.store, analysis.context_version)?;
    for q in &mut queues {
        q.basis = Some(basis.clone());
    }
    // The review is logged (durably) before anyone can read its outputs.
    let logged = log_review_run(&mut journal, args, &queues)?;
    journal.close()?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let written = report::write_outputs(&args.out, &analysis, &queues, &notices)?;

    println!(
        "checked {} accesses to patient records from {} to {} with {} detectors in {:.1}s (context snapshot v{:06})",
        analysis.total_accesses,
        args.from,
        args.to,
        analysis.detectors.len(),
        started.elapsed().as_secs_f64(),
        analysis.context_version
    );
    for phase in &analysis.phases {
        println!("  {:<40} {:>6} ms", phase.id, phase.millis);
    }
    for run in &analysis.runs {
        println!("  {:<18} {:>7} flags  {:>6} ms", run.id, run.flags, run.millis);
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
    println!("\nthis review was logged in the journal as {logged} event(s) (action list_exposure, source 'loggvakt')");
    Ok(ExitCode::SUCCESS)
}

/// What this review reads: the newest signed checkpoint (the journal was just sealed, so it
/// covers every committed event) and the context snapshot with its files' digest.
fn review_basis(store: &std::path::Path, context_version: u32) -> anyhow::Result<loggvakt_analyse::ReviewBasis> {
    let newest = loggvakt_journal::layout::list_checkpoints(store)?.pop().context("the store has no checkpoint after sealing")?;
    let note = std::fs::read_to_string(&newest).with_context(|| format!("reading {}", newest.display()))?;
    let (checkpoint, _, _) = loggvakt_journal::Checkpoint::parse_note(&note)?;
    let snapshot = format!("v{context_version:06}");
    let dir = loggvakt_journal::layout::context_snapshot_dir(store, &snapshot);
    let digest = if dir.is_dir() { loggvakt_journal::layout::files_digest(&dir)? } else { String::new() };
    Ok(loggvakt_analyse::ReviewBasis {
        checkpoint_size: checkpoint.size,
        checkpoint_head: loggvakt_journal::chain::to_hex(&checkpoint.head),
        context_files_blake3: digest,
        context_snapshot: snapshot,
    })
}

/// Records the review in the journal: one event per organisation's queue, and one per
/// patient exposed in it, so the patient's "who looked at my record" shows the review too.
/// The organisation's event names what the review read (`reason_text`, JSON): the
/// checkpoint and the context snapshot with its files' digest, chained and signed with it.
fn log_review_run(journal: &mut Journal, args: &DetectArgs, queues: &[loggvakt_analyse::Queue]) -> anyhow::Result<usize> {
    let now = loggvakt_model::Timestamp::now();
    let run_id = blake3::hash(format!("{}|{}|{}|{:?}|{}", now.0, args.from, args.to, args.org, args.operator).as_bytes()).to_hex()[..16].to_owned();
    let mut count = 0;
    for q in queues {
        let mut patients: Vec<&str> = q.cases.iter().flat_map(|c| c.accesses.iter().filter_map(|a| a.patient_id.as_deref())).collect();
        patients.sort_unstable();
        patients.dedup();
        for patient in std::iter::once(None).chain(patients.into_iter().map(Some)) {
            let event = AccessEvent {
                event_id: format!("review-{run_id}-{}-{count}", q.orgnr),
                source_system: "loggvakt".into(),
                occurred_at: now,
                received_at: now,
                tenant_orgnr: q.orgnr.clone(),
                user_local_id: Some(args.operator.clone()),
                user_name: Some(args.operator.clone()),
                patient_id: patient.map(str::to_owned),
                patient_id_kind: patient.and_then(|p| loggvakt_model::ids::validate_person_id(p).ok()).map(|k| k.code().to_owned()),
                record_part: Some("access-log-review".into()),
                document_id: Some(format!("detect {}..{}", args.from, args.to)),
                action: loggvakt_model::codes::actions::LIST_EXPOSURE.into(),
                basis: loggvakt_model::codes::basis::UNSPECIFIED.into(),
                purpose_code: Some("LOGGKONTROLL".into()),
                reason_text: if patient.is_none() { q.basis.as_ref().and_then(|b| serde_json::to_string(b).ok()) } else { None },
                channel: loggvakt_model::codes::channel::INTEGRATION.into(),
                outcome: loggvakt_model::codes::outcome::GRANTED.into(),
                source_format: "loggvakt".into(),
                ..Default::default()
            };
            journal.append(event)?;
            count += 1;
        }
    }
    journal.commit()?;
    Ok(count)
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
