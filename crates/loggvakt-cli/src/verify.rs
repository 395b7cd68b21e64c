use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use loggvakt_journal::Checkpoint;
use loggvakt_verify::{verify_store, VerifyOptions};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The store: its directory, a copy of it (only the files are needed), or the bucket it
    /// is published to (s3://bucket/prefix, with AWS_ENDPOINT_URL, AWS_REGION and the
    /// credentials in the environment; see 'loggvakt publish').
    #[arg(long)]
    pub store: String,
    /// File of public keys you trust, one per line ('#' comments). Checkpoints signed by
    /// any other key count as unsigned.
    #[arg(long)]
    pub trusted_keys: PathBuf,
    /// A checkpoint you kept earlier (from 'export-checkpoint'). With it, a store cut short
    /// or rolled back to before that checkpoint is caught even if its own checkpoints were removed.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Language of the report: 'nb' (bokmål) or 'en'. Defaults to bokmål when LANG says
    /// Norwegian, else English.
    #[arg(long, value_parser = ["nb", "en"])]
    pub lang: Option<String>,
    /// Also write the report as a self-contained HTML page (for a case file), in the same language.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// With --checkpoint: read only the epochs after that checkpoint (a weekly check of
    /// what is new). The older epochs are tied to it by the manifests' chain of heads but
    /// not read again; run without this flag now and then to read everything.
    #[arg(long, requires = "checkpoint")]
    pub incremental: bool,
}

/// Bokmål when asked for, or when the locale is Norwegian (nb, nn or no).
fn wants_bokmal(lang: Option<&str>) -> bool {
    match lang {
        Some(l) => l == "nb",
        None => ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .is_some_and(|l| l.starts_with("nb") || l.starts_with("nn") || l.starts_with("no")),
    }
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted_keys = crate::keys::read_trusted_keys(&args.trusted_keys)?;
    let held_checkpoint = match &args.checkpoint {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading checkpoint {}", p.display()))?),
        None => None,
    };
    let bar = crate::progress_bar(0, "{spinner} verify [{bar:30}] {pos}/{len} records {per_sec} eta {eta}");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let options = VerifyOptions { trusted_keys, held_checkpoint, progress: Some(&progress), incremental: args.incremental };
    let store = loggvakt_storage::open(&args.store)?;
    let report = verify_store(store.as_ref(), &options)?;
    bar.finish_and_clear();
    let bokmal = wants_bokmal(args.lang.as_deref());
    if let Some(path) = &args.html {
        std::fs::write(path, crate::html::render(&report, &args.store, bokmal)).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if bokmal {
        print!("{}", loggvakt_verify::Bokmal(&report));
    } else {
        print!("{report}");
    }
    Ok(if report.is_intact() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The store: its directory, or the bucket it is published to (s3://bucket/prefix).
    #[arg(long)]
    pub store: String,
    /// Where to write the checkpoint note (it holds no health data: a count, a hash, a time, a signature).
    #[arg(long)]
    pub out: PathBuf,
    /// Only export a checkpoint whose signature one of these keys verifies.
    #[arg(long)]
    pub trusted_keys: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let store = loggvakt_storage::open(&args.store)?;
    // Named by their size, zero-padded: the last name is the newest checkpoint.
    let checkpoints: Vec<String> = store.list("checkpoints")?.into_iter().filter(|name| name.ends_with(".note")).collect();
    let Some(latest) = checkpoints.last() else {
        bail!("{} has no checkpoints yet: ingest something first", store.location());
    };
    let note = String::from_utf8(store.read(latest)?.to_vec()).with_context(|| format!("reading {}", store.describe(latest)))?;
    let (checkpoint, _, _) = Checkpoint::parse_note(&note)?;
    if let Some(keys) = &args.trusted_keys {
        let keys = crate::keys::read_trusted_keys(keys)?;
        if let Err(problem) = Checkpoint::open(&note, &keys)? {
            bail!("the newest checkpoint is not validly signed by a trusted key: {problem:?}");
        }
    }
    std::fs::write(&args.out, &note).with_context(|| format!("writing {}", args.out.display()))?;
    println!("exported checkpoint: {} records, head {}, signed {} -> {}", checkpoint.size, loggvakt_journal::chain::to_hex(&checkpoint.head), checkpoint.time, args.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// The store directory (the writer's; a running daemon may go on writing).
    #[arg(long)]
    pub store: PathBuf,
    /// Where to publish: s3://bucket/prefix, or a directory.
    #[arg(long)]
    pub to: String,
}

pub fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    let target = loggvakt_storage::open(&args.to)?;
    let bar = crate::progress_bar(0, "{spinner} publish [{bar:30}] {pos}/{len} epochs eta {eta}");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = loggvakt_journal::publish::publish(&args.store, target.as_ref(), &progress).with_context(|| format!("publishing {} to {}", args.store.display(), args.to))?;
    bar.finish_and_clear();
    println!(
        "published {} epoch(s) and {} context snapshot(s) to {}: {} object(s), {} bytes; it now holds epochs 1..={}",
        report.epochs,
        report.snapshots,
        target.location(),
        report.objects,
        report.bytes,
        report.through_epoch
    );
    Ok(())
}
