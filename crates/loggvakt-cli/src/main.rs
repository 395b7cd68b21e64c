//! # loggvakt (the command line)
//!
//! Owns the user interface: flags and their help, progress bars, summaries and exit
//! codes. Everything it does is a call into the library crates; it is the only crate that
//! prints. Exit codes: 0 success; 1 failure or (for `verify`) a store that is not intact;
//! 2 wrong usage; 3 `ingest` finished but quarantined some input.

// Ingest allocates many small strings per event on several threads; mimalloc handles
// that pattern markedly better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod demo;
mod html;
mod ingest;
mod keys;
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
    /// Write synthetic sample input: a region's staff and patients, and a week of AuditEvents as NDJSON.
    Samples(SamplesArgs),
}

#[derive(clap::Args)]
struct SamplesArgs {
    /// Directory to write context.ndjson and events.ndjson into.
    #[arg(long)]
    out: PathBuf,
    /// Seed; the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of access events.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Number of employees in the region.
    #[arg(long, default_value_t = 2_000)]
    employees: usize,
    /// Number of patients in the region.
    #[arg(long, default_value_t = 50_000)]
    patients: usize,
}

fn samples(args: &SamplesArgs) -> anyhow::Result<(PathBuf, PathBuf, u64)> {
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

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader of our output goes away (`| head`):
    // end quietly instead of panicking on a failed print.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Keygen(args) => keys::keygen(&args).map(|()| ExitCode::SUCCESS),
        Command::Ingest(args) => ingest::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::ExportCheckpoint(args) => verify::export(&args).map(|()| ExitCode::SUCCESS),
        Command::Samples(args) => samples(&args).map(|(c, e, lines)| {
            println!("wrote {} ({} events on {lines} lines) and {}", e.display(), args.events, c.display());
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
