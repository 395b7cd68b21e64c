//! `loggvakt-bench`: ingest and verify throughput on generated FHIR NDJSON, against peers
//! on the same input in the same run:
//!
//! * plain Parquet: the same parsing and mapping, written to Parquet with no write-ahead
//!   journal, hashing, fsync per chunk or signing (the physical limit of our pipeline);
//! * DuckDB: `read_json` of the same NDJSON written to Parquet (via Python's duckdb);
//! * PostgreSQL: `COPY` of the same lines into a jsonb table with a patient index;
//! * for verify, DuckDB hashing every column of our Parquet (a full scan).
//!
//! Prints one table; `benches/RESULTS.md` keeps the figures with machine and date.

// A benchmark program prints its figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

mod duckdb_peer;
mod pg;

use anyhow::bail;
use clap::Parser;
use loggvakt_fhir::{decode_message, ContextIndex, Decoded};
use loggvakt_ingest::lines::{LineChunker, Piece};
use loggvakt_model::{event_schema, AccessEvent, Timestamp};
use parquet::arrow::ArrowWriter;
use rayon::prelude::*;

#[derive(Parser)]
#[command(about = "Ingest and verify throughput against plain Parquet, DuckDB and PostgreSQL on the same data")]
struct Args {
    /// Number of access events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Working directory (input, stores, peers' output). Emptied first.
    #[arg(long, default_value = "target/bench-work")]
    dir: PathBuf,
    /// Skip the PostgreSQL peer (it needs the postgresql package; scripts/bench installs it).
    #[arg(long)]
    skip_postgres: bool,
    /// Skip the DuckDB peers.
    #[arg(long)]
    skip_duckdb: bool,
}

struct Row {
    what: String,
    seconds: f64,
    events: u64,
    bytes: u64,
    note: String,
}

impl Row {
    fn print(&self) {
        println!(
            "| {:<44} | {:>8.2} s | {:>10.0} ev/s | {:>7.1} MB/s | {} |",
            self.what,
            self.seconds,
            self.events as f64 / self.seconds,
            self.bytes as f64 / 1e6 / self.seconds,
            self.note
        );
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| if e.path().is_dir() { dir_bytes(&e.path()) } else { e.metadata().map(|m| m.len()).unwrap_or(0) }).sum())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let input = args.dir.join("input");
    std::fs::create_dir_all(&input)?;
    let world = loggvakt_samples::World::generate(1, 60_000, 3_000_000);
    let context_path = input.join("context.ndjson");
    let events_path = input.join("events.ndjson");
    world.write_context(&mut BufWriter::new(File::create(&context_path)?))?;
    let mut out = BufWriter::new(File::create(&events_path)?);
    loggvakt_samples::write_events(&world, &loggvakt_samples::EventOptions { seed: 1, events: args.events, ..Default::default() }, &mut out)?;
    out.flush()?;
    drop(out);
    let input_bytes = std::fs::metadata(&events_path)?.len();
    println!(
        "input: {} events, {:.1} MB of FHIR NDJSON ({:.0} bytes/event), {} threads, {}",
        args.events,
        input_bytes as f64 / 1e6,
        input_bytes as f64 / args.events as f64,
        rayon::current_num_threads(),
        chrono::Utc::now().format("%Y-%m-%d")
    );

    // Context first, outside the timings: it is the same for every contender.
    let key = loggvakt_journal::SigningKey::generate("bench")?;
    let trusted = vec![key.verifier()];
    let store = args.dir.join("store");
    {
        let (mut journal, _) = loggvakt_journal::Journal::open(&store, loggvakt_journal::SigningKey::parse(&key.to_text())?, Default::default())?;
        loggvakt_ingest::Ingest::new(&mut journal, Default::default(), loggvakt_ingest::NoObserver)?.run(std::slice::from_ref(&context_path))?;
    }
    let context = loggvakt_ingest::load_context(&store)?;

    let mut rows = Vec::new();
    let t = Instant::now();
    let summary = {
        let (mut journal, _) = loggvakt_journal::Journal::open(&store, key, Default::default())?;
        loggvakt_ingest::Ingest::new(&mut journal, Default::default(), loggvakt_ingest::NoObserver)?.run(std::slice::from_ref(&events_path))?
    };
    let ours = t.elapsed().as_secs_f64();
    if summary.stored != args.events {
        bail!("ingest stored {} of {} events (quarantined {})", summary.stored, args.events, summary.quarantined);
    }
    let store_bytes = dir_bytes(&store.join("data"));
    rows.push(Row {
        what: "loggvakt ingest (WAL+fsync, chain, sign, Parquet)".into(),
        seconds: ours,
        events: args.events,
        bytes: input_bytes,
        note: format!("{:.1} bytes/event stored", store_bytes as f64 / args.events as f64),
    });

    let plain = args.dir.join("plain");
    std::fs::create_dir_all(&plain)?;
    let t = Instant::now();
    let plain_events = plain_parquet(&events_path, &context, &plain)?;
    let limit = t.elapsed().as_secs_f64();
    rows.push(Row {
        what: "(a) same mapping to plain Parquet".into(),
        seconds: limit,
        events: plain_events,
        bytes: input_bytes,
        note: format!("ours is {:.0}% of this; {:.1} bytes/event", 100.0 * limit / ours, dir_bytes(&plain) as f64 / args.events as f64),
    });

    if !args.skip_duckdb {
        let out_file = args.dir.join("duckdb.parquet");
        let sql = format!(
            "SET threads TO {}; COPY (SELECT * FROM read_json('{}', format='newline_delimited', maximum_object_size=16777216)) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
            rayon::current_num_threads(),
            events_path.display(),
            out_file.display()
        );
        let seconds = duckdb(&sql)?;
        rows.push(Row {
            what: "(b) DuckDB read_json NDJSON -> Parquet".into(),
            seconds,
            events: args.events,
            bytes: input_bytes,
            note: format!("no mapping, no durability; {:.1} bytes/event", std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0) as f64 / args.events as f64),
        });
    }
    if !args.skip_postgres {
        match postgres_copy(&args.dir, &events_path) {
            Ok(seconds) => rows.push(Row {
                what: "(c) PostgreSQL COPY into jsonb + patient index".into(),
                seconds,
                events: args.events,
                bytes: input_bytes,
                note: "lines as jsonb, expression index on the patient id, fsync on".into(),
            }),
            Err(e) => println!("PostgreSQL peer skipped: {e:#}"),
        }
    }

    let t = Instant::now();
    let report = loggvakt_verify::verify_store(
        &loggvakt_storage::LocalDir::new(&store),
        &loggvakt_verify::VerifyOptions { trusted_keys: trusted, held_checkpoint: None, progress: None, incremental: false },
    )
    .map_err(anyhow::Error::msg)?;
    let verify_seconds = t.elapsed().as_secs_f64();
    if !report.is_intact() {
        bail!("verify failed on the benchmark store:\n{report}");
    }
    rows.push(Row {
        what: "loggvakt verify (every record rehashed)".into(),
        seconds: verify_seconds,
        events: report.records,
        bytes: store_bytes,
        note: format!("{} records, {} epochs", report.records, report.epochs),
    });
    if !args.skip_duckdb {
        let sql = format!(
            "SET threads TO {}; SELECT count(*), sum(hash(COLUMNS(*))) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true)",
            rayon::current_num_threads(),
            store.display()
        );
        let seconds = duckdb(&sql)?;
        rows.push(Row { what: "DuckDB hashing every column of the same store".into(), seconds, events: report.records, bytes: store_bytes, note: "a full scan, for scale".into() });
    }

    println!("\n| what | time | events/s | input MB/s | note |\n| --- | --- | --- | --- | --- |");
    for row in &rows {
        row.print();
    }
    Ok(())
}

/// The same reading and mapping as ingest, written as plain Parquet in 500 000-row files.
fn plain_parquet(path: &Path, context: &ContextIndex, out_dir: &Path) -> anyhow::Result<u64> {
    let mut chunker = LineChunker::new(File::open(path)?, 8 << 20);
    let mut pending: Vec<AccessEvent> = Vec::new();
    let mut files = 0;
    let mut total = 0u64;
    let flush = |events: &mut Vec<AccessEvent>, files: &mut usize| -> anyhow::Result<()> {
        let refs: Vec<&AccessEvent> = events.iter().collect();
        let batch = arrow_batch(&refs)?;
        let file = File::create(out_dir.join(format!("part-{files:04}.parquet")))?;
        let mut writer = ArrowWriter::try_new(file, event_schema(), Some(loggvakt_journal::segment::writer_properties(vec![])?))?;
        writer.write(&batch)?;
        writer.into_inner()?.sync_all()?;
        *files += 1;
        events.clear();
        Ok(())
    };
    while let Some(piece) = chunker.next_piece()? {
        let Piece::Lines { data, .. } = piece else { bail!("benchmark input has an oversized line") };
        let now = Timestamp::now();
        let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let decoded: Vec<Vec<Decoded>> = lines.par_iter().map(|l| decode_message(l, context, now, 8 << 20)).collect();
        for d in decoded.into_iter().flatten() {
            if let Decoded::Event { event, .. } = d {
                pending.push(event);
                total += 1;
            }
        }
        if pending.len() >= 500_000 {
            flush(&mut pending, &mut files)?;
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut files)?;
    }
    Ok(total)
}

fn arrow_batch(events: &[&AccessEvent]) -> anyhow::Result<arrow_array::RecordBatch> {
    Ok(arrow_array::RecordBatch::try_new(event_schema(), AccessEvent::columns(events))?)
}

fn duckdb(sql: &str) -> anyhow::Result<f64> {
    Ok(duckdb_peer::run(&std::env::var("LOGGVAKT_PYTHON").unwrap_or_else(|_| "python3".into()), sql)?.1)
}

/// Starts a throwaway PostgreSQL cluster on loopback, COPYs the lines in, stops it.
fn postgres_copy(work: &Path, events: &Path) -> anyhow::Result<f64> {
    let pg = pg::Postgres::start(work)?;
    pg.psql("CREATE TABLE audit (id bigserial PRIMARY KEY, doc jsonb NOT NULL)")?;
    pg.psql("CREATE INDEX audit_patient ON audit ((coalesce(doc#>>'{patient,identifier,value}', doc#>>'{entity,0,what,identifier,value}')))")?;
    let t = Instant::now();
    pg.psql(&format!("\\copy audit(doc) FROM '{}' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", events.display()))?;
    Ok(t.elapsed().as_secs_f64())
}
