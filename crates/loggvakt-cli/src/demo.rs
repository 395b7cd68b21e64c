//! `loggvakt demo`: the main job, end to end, on built-in sample data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

const MARKER: &str = ".loggvakt-demo";

/// The hand-written examples in `samples/fhir/`, built into the binary.
const EXAMPLES: &[(&str, &str)] = &[
    ("r4-read-break-the-glass.json", include_str!("../../../samples/fhir/r4-read-break-the-glass.json")),
    ("r5-search-contained-role.json", include_str!("../../../samples/fhir/r5-search-contained-role.json")),
    ("batch-bundle.json", include_str!("../../../samples/fhir/batch-bundle.json")),
    ("bad-examples.ndjson", include_str!("../../../samples/fhir/bad-examples.ndjson")),
];

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Working directory for the demo (re-used only if an earlier demo made it).
    #[arg(long, default_value = "loggvakt-demo")]
    pub dir: PathBuf,
    /// Size of the synthetic region (medium: ~30 000 persons, ~150 000 accesses in a week).
    #[arg(long, value_enum, default_value_t = crate::Scale::Medium)]
    pub scale: crate::Scale,
    /// Seed of the synthetic region.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

fn step(n: u32, text: &str) {
    println!("\n== {n}. {text}");
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let is_ours = dir.join(MARKER).exists();
        let is_empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !is_ours && !is_empty {
            bail!("{} exists and was not made by 'loggvakt demo'; choose another --dir", dir.display());
        }
        if is_ours {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing the previous demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "made by loggvakt demo; safe to delete\n")?;
    Ok(())
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    prepare_dir(dir)?;
    let store = dir.join("store");
    let key = dir.join("keys/operator-signing.key");
    let trusted = dir.join("keys/trusted-keys.txt");
    let input = dir.join("input");

    step(1, "Make a signing key for checkpoints (the operator keeps the private half; regulators get the public one)");
    crate::keys::keygen(&crate::keys::KeygenArgs { name: "demo-operator-2026".into(), out: key.clone(), trusted_keys: Some(trusted.clone()) })?;

    step(2, "Generate a synthetic region: population, staff, care evidence (FHIR bulk NDJSON) and a week of AuditEvents with injected snooping");
    let week = chrono::NaiveDate::from_ymd_opt(2026, 11, 16).unwrap_or_default();
    let samples = crate::region_samples(&crate::SamplesArgs {
        out: input.clone(),
        seed: args.seed,
        scale: args.scale,
        week,
        flat: false,
        events: 0,
        employees: 0,
        patients: 0,
        clean: false,
        confounder: Vec::new(),
        history_weeks: 12,
    })?;
    println!("  {} context resources in {}", samples.resources, samples.context_dir.display());
    println!("  {} access events in {} ({} injected snooping, ground truth in {})", samples.accesses, samples.events.display(), samples.injected, samples.labels.display());
    // Staff and organisations go in with the events, so events that name a user only by a
    // PractitionerRole reference resolve to the employer.
    let mut files: Vec<PathBuf> = ["Organization", "Practitioner", "PractitionerRole"].iter().map(|t| samples.context_dir.join(format!("{t}.ndjson"))).collect();
    files.push(samples.events.clone());
    for (name, text) in EXAMPLES {
        let path = input.join(name);
        std::fs::write(&path, text)?;
        files.push(path);
    }

    step(3, "Ingest: map, hash-chain, fsync, seal into Parquet, sign checkpoints (bad lines are quarantined, not dropped)");
    let ingest_args = crate::ingest::IngestArgs {
        store: store.clone(),
        key: Some(key.clone()),
        files,
        report_durable: false,
        max_message_bytes: loggvakt_fhir::DEFAULT_MAX_MESSAGE_BYTES,
        chunk_bytes: 8 << 20,
        epoch_records: 500_000,
        epoch_seconds: 5.0,
        tenants: vec![],
        default_tenant: None,
    };
    let ingest_code = crate::ingest::run(&ingest_args)?;
    for q in loggvakt_journal::read_quarantine(&store)?.iter().take(5) {
        println!("  quarantined {}:{}: {}", q.input.rsplit('/').next().unwrap_or(&q.input), q.line.unwrap_or(0), q.reason);
    }

    step(4, "Import the context: population register, staff, organisations and care evidence, as a versioned snapshot");
    crate::analyse::context(&crate::analyse::ContextCommand::Import(crate::analyse::ImportArgs {
        store: store.clone(),
        inputs: vec![samples.context_dir.clone()],
        all_problems: false,
        key: Some(key.clone()),
        operator: "demo-operator".into(),
        memory_limit: None,
    }))?;

    step(5, "Export the newest signed checkpoint, as a regulator would keep it");
    let held = dir.join("regulator/checkpoint.note");
    std::fs::create_dir_all(dir.join("regulator"))?;
    crate::verify::export(&crate::verify::ExportArgs { store: store.display().to_string(), out: held.clone(), trusted_keys: Some(trusted.clone()) })?;

    step(6, "Verify offline: re-derive every record's hash from the files and check the signatures");
    let verify_code = crate::verify::run(&crate::verify::VerifyArgs {
        store: store.display().to_string(),
        trusted_keys: trusted.clone(),
        checkpoint: Some(held.clone()),
        json: false,
        lang: None,
        html: Some(dir.join("regulator/verification.html")),
        incremental: false,
    })?;

    step(7, "Detect: run every detector (SQL on DataFusion) over the week, explain accesses by care, rank cases per organisation");
    let review = dir.join("review");
    crate::analyse::detect(&crate::analyse::DetectArgs {
        store: store.clone(),
        from: week,
        to: week + chrono::Duration::days(6),
        org: None,
        out: review.clone(),
        capacity: None,
        settings: None,
        detectors: None,
        queries: None,
        params: Vec::new(),
        key: Some(key.clone()),
        operator: "demo-privacy-officer".into(),
        at_checkpoint: None,
        context_snapshot: None,
        memory_limit: None,
        cluster: None,
        read_from: None,
        scratch: None,
    })?;

    step(8, "Evaluate the queues against the injected ground truth");
    crate::analyse::eval(&crate::analyse::EvalArgs { queues: review.clone(), labels: samples.labels.clone(), json: false })?;

    println!("\n== Where things are");
    println!("  review queues and reports, per organisation: {}", review.display());
    println!("  store (Hive-partitioned Parquet): {}", store.join("data").display());
    println!("  quarantine, with reasons:         {}", store.join("quarantine").display());
    println!("  signed checkpoints:               {}", store.join("checkpoints").display());
    println!("  verification report (HTML):       {}", dir.join("regulator/verification.html").display());
    println!("\n== Try");
    println!("  loggvakt verify --store {} --trusted-keys {} --checkpoint {}", store.display(), trusted.display(), held.display());
    println!(
        "  python3 -c \"import duckdb; duckdb.sql(\\\"SELECT tenant, action, count(*) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY 3 DESC\\\").show()\"",
        store.display()
    );
    // Exit 3 from ingest is expected here (the bad examples are quarantined on purpose).
    if ingest_code != ExitCode::SUCCESS && ingest_code != ExitCode::from(3) {
        return Ok(ingest_code);
    }
    Ok(verify_code)
}
