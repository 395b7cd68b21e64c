//! `loggvakt-bench-store`: what a store of many epochs costs its readers, against DuckDB on
//! the same Parquet in the same run.
//!
//! A store of `--days` days is written directly through the journal (no input parsing), a
//! seal every `24 / --epochs-per-day` hours of access time, `--records-per-epoch` records
//! each; a checkpoint is kept, and one more day is added. Then, each timed:
//!
//! * opening the store for writing (`Journal::open`), and what it read before this issue
//!   (every manifest, `layout::read_manifests`);
//! * an ITI-81 search without dates (count and the first page of 100): its list of epochs
//!   before this issue (every manifest) and now (the epoch index), and DuckDB's count
//!   and first 100 by `seq` over the same files;
//! * `verify` of the whole store, and incremental from the kept checkpoint (the new day).
//!
//! "Files read" counts the manifests, checkpoints and segments the code path opens.

// A benchmark program prints its figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use loggvakt_journal::{Journal, JournalOptions, SigningKey};
use loggvakt_model::{AccessEvent, Timestamp};

mod duckdb_peer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Days of access time in the store before the new day.
    #[arg(long, default_value_t = 365)]
    days: u64,
    /// Seals per day of access time (the daemon's 30-second seals make ~2 900).
    #[arg(long, default_value_t = 8)]
    epochs_per_day: u64,
    #[arg(long, default_value_t = 200)]
    records_per_epoch: u64,
    /// Where the store is written (removed first).
    #[arg(long, default_value = "target/bench-store")]
    work: PathBuf,
    #[arg(long, env = "LOGGVAKT_PYTHON", default_value = "python3")]
    python: String,
}

const DAY_MICROS: i64 = 86_400_000_000;
/// 2025-12-01T00:00:00Z: the year ends the day before the benchmark's new day.
const FIRST_DAY: i64 = 1_764_547_200_000_000;

fn event(n: u64, at: Timestamp) -> AccessEvent {
    let mut e = loggvakt_journal::vectors::vector_event();
    e.event_id = format!("bench-{n}");
    e.source_seq = Some(n as i64);
    e.occurred_at = at;
    e.recorded_at = Some(at);
    e.received_at = Timestamp(at.0 + 1_000_000);
    // A thousand patients, so segments hold several per file as in life.
    e.patient_id = loggvakt_model::ids::complete_person_id(&format!("{:02}{:02}{:02}{:03}", 1 + n % 28, 1 + (n / 28) % 12, 50 + (n / 336) % 40, 100 + n % 800));
    e
}

/// Writes `days` days from `first_day`, sealing `epochs_per_day` times a day.
fn write_days(journal: &mut Journal, args: &Args, first_day: u64, days: u64, n: &mut u64) -> anyhow::Result<()> {
    let step = DAY_MICROS / (args.epochs_per_day * args.records_per_epoch) as i64;
    for day in first_day..first_day + days {
        for epoch in 0..args.epochs_per_day {
            for r in 0..args.records_per_epoch {
                let at = Timestamp(FIRST_DAY + day as i64 * DAY_MICROS + (epoch * args.records_per_epoch + r) as i64 * step);
                journal.append(event(*n, at))?;
                *n += 1;
            }
            journal.seal()?;
        }
    }
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let started = Instant::now();
    let value = f()?;
    Ok((value, started.elapsed().as_secs_f64()))
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|entries| entries.filter_map(Result::ok).map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()).unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = args.work.join("store");
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let key = SigningKey::generate("bench-store")?;
    let trusted = vec![key.verifier()];
    let options = JournalOptions { max_epoch_records: usize::MAX / 2, max_epoch_age: std::time::Duration::from_secs(u32::MAX as u64), ..JournalOptions::default() };

    let mut n = 0;
    let ((), write_secs) = timed(|| {
        let (mut journal, _) = Journal::open(&store, key.clone(), options.clone())?;
        write_days(&mut journal, &args, 0, args.days, &mut n)?;
        journal.close()?;
        Ok(())
    })?;
    let held_path = loggvakt_journal::layout::list_checkpoints(&store)?.pop().context("a checkpoint")?;
    let held = std::fs::read_to_string(&held_path)?;
    let ((), day_secs) = timed(|| {
        let (mut journal, _) = Journal::open(&store, key.clone(), options.clone())?;
        write_days(&mut journal, &args, args.days, 1, &mut n)?;
        journal.close()?;
        Ok(())
    })?;
    let epochs = loggvakt_journal::layout::list_manifests(&store)?.len();
    let segments = count_files(&store.join("data"));
    println!("## Store of {} days + 1 new day: {epochs} epochs, {segments} segment files, {n} records (written in {write_secs:.0} s + {day_secs:.1} s)\n", args.days);

    // Opening: what it reads now, and what it read before (every manifest).
    let (_, before_secs) = timed(|| Ok(loggvakt_journal::layout::read_manifests(&store)?))?;
    let (_, open_secs) = timed(|| {
        let (journal, _) = Journal::open(&store, key.clone(), options.clone())?;
        drop(journal);
        Ok(())
    })?;
    println!("| what | time | manifests read | checkpoints read |\n|---|---:|---:|---:|");
    println!("| reading every manifest (what opening did before) | {:.0} ms | {epochs} | 1 |", before_secs * 1000.0);
    println!("| `Journal::open` now (newest committed manifest, plus a walk of data/ for crash leftovers) | {:.0} ms | 1 | 1 |", open_secs * 1000.0);

    // ITI-81 without dates: count and the first page.
    let query = loggvakt_serve::search::parse_query("_count=100", 100).map_err(|e| anyhow::anyhow!("{}: {}", e.param, e.message))?;
    let (matches, search_secs) = timed(|| Ok(loggvakt_serve::search::search_sealed(&store, &query, 100)?))?;
    if matches.total as u64 != n {
        bail!("the search counted {} of {n} records", matches.total);
    }
    let (_, index_secs) = timed(|| Ok(loggvakt_journal::index::read_epochs(&store)?))?;
    let glob = format!("{}/data/**/*.parquet", store.display());
    let (duck, duck_secs) = duckdb_peer::run(&args.python, &format!("SELECT count(*) FROM read_parquet('{glob}'); SELECT seq FROM read_parquet('{glob}') ORDER BY seq LIMIT 100"))?;
    println!("\n| search without dates (count + first 100) | time | files read |\n|---|---:|---:|");
    println!("| its list of epochs before: every manifest | {:.0} ms | {epochs} manifests |", before_secs * 1000.0);
    println!("| its list of epochs now: the epoch index | {:.0} ms | 1 index |", index_secs * 1000.0);
    println!("| loggvakt ITI-81 (`search_sealed`) now, whole | {:.0} ms | 1 index + the segments of the first page |", search_secs * 1000.0);
    println!("| DuckDB, count(*) then 100 smallest seq, same Parquet | {:.0} ms | {segments} segments (footers, seq column) [{duck}] |", duck_secs * 1000.0);

    // verify: everything, and the new day from the kept checkpoint.
    let full_options = loggvakt_verify::VerifyOptions { trusted_keys: trusted.clone(), held_checkpoint: Some(held.clone()), progress: None, incremental: false };
    let (full, full_secs) = timed(|| Ok(loggvakt_verify::verify_store(&loggvakt_storage::LocalDir::new(&store), &full_options)?))?;
    let incremental_options = loggvakt_verify::VerifyOptions { incremental: true, ..full_options };
    let (incremental, incremental_secs) = timed(|| Ok(loggvakt_verify::verify_store(&loggvakt_storage::LocalDir::new(&store), &incremental_options)?))?;
    if !full.problems.is_empty() || !incremental.problems.is_empty() {
        bail!("verify found problems: {:?} {:?}", full.problems.first(), incremental.problems.first());
    }
    let (_, duck_hash_secs) = duckdb_peer::run(&args.python, &format!("SELECT count(*), sum(hash(COLUMNS(*))) FROM read_parquet('{glob}', hive_partitioning=true)"))?;
    println!("\n| verify | time | records read | manifests read |\n|---|---:|---:|---:|");
    println!("| full, with the kept checkpoint | {:.2} s | {} | {epochs} |", full_secs, full.records);
    println!("| incremental from the kept checkpoint (the new day) | {:.2} s | {} | {} |", incremental_secs, incremental.records, args.epochs_per_day + 1);
    println!("| DuckDB hashing every column of every segment (a full scan, no chain) | {:.2} s | {n} | – |", duck_hash_secs);
    Ok(())
}
