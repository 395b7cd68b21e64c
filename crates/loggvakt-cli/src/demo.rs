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
    /// Number of synthetic access events (one week in a small region).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
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

    step(2, "Generate sample input: a region's staff, and a week of FHIR AuditEvents as a bulk export writes them");
    let (context, events, _) = crate::samples(&crate::SamplesArgs { out: input.clone(), seed: 2026, events: args.events, employees: 2_000, patients: 50_000 })?;
    let mut files = vec![context, events];
    for (name, text) in EXAMPLES {
        let path = input.join(name);
        std::fs::write(&path, text)?;
        files.push(path);
    }
    for f in &files {
        println!("  {}", f.display());
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
    };
    let ingest_code = crate::ingest::run(&ingest_args)?;
    for q in loggvakt_journal::read_quarantine(&store)?.iter().take(5) {
        println!("  quarantined {}:{}: {}", q.input.rsplit('/').next().unwrap_or(&q.input), q.line.unwrap_or(0), q.reason);
    }

    step(4, "Export the newest signed checkpoint, as a regulator would keep it");
    let held = dir.join("regulator/checkpoint.note");
    std::fs::create_dir_all(dir.join("regulator"))?;
    crate::verify::export(&crate::verify::ExportArgs { store: store.clone(), out: held.clone(), trusted_keys: Some(trusted.clone()) })?;

    step(5, "Verify offline: re-derive every record's hash from the files and check the signatures");
    let verify_code = crate::verify::run(&crate::verify::VerifyArgs {
        store: store.clone(),
        trusted_keys: trusted.clone(),
        checkpoint: Some(held.clone()),
        json: false,
        lang: None,
        html: Some(dir.join("regulator/verification.html")),
    })?;

    println!("\n== Where things are");
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
