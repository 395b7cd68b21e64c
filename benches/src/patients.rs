//! `loggvakt-bench-patients`: one patient's list of accesses on a store of region size,
//! through the patient index, against PostgreSQL with a B-tree index on the patient over
//! the same events, in the same run (`scripts/bench-patients`).
//!
//! 1. The patient index is brought up to date (`patients::repair`: on a store written
//!    before it existed, every segment is read once) and its size told.
//! 2. `--lookups` patients are drawn, uniformly among the store's patients (seeded).
//! 3. loggvakt: each patient's sealed events, as the daemon's ITI-81 search and the patient
//!    view read them (`search::search_sealed`): two passes, the first on whatever the page
//!    cache holds, the second warm; p50, p99, max.
//! 4. PostgreSQL: the same events (the columns a patient's list shows) are copied into a
//!    table with an index on `patient_id`, `ANALYZE`d; the same patients are asked for with
//!    `pgbench` (one client, prepared statements, per-query latencies logged): p50, p99, max.
//!
//! Memory: the process's peak resident size before and after the lookups (the drawn
//! patients and the list of all patients are held by the benchmark, not by a lookup), and
//! PostgreSQL's `shared_buffers`.

// A benchmark program prints its figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context};
use arrow_array::cast::AsArray;
use clap::Parser;
use loggvakt_journal::patients;
use loggvakt_model::AccessEvent;
use loggvakt_serve::search::{search_sealed, SearchQuery, MAX_WINDOW};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

mod pg;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// The store (written by `loggvakt ingest` or the daemon; `scripts/bench-detect --hso`
    /// leaves a Helse Sør-Øst week in target/bench-hso/store).
    #[arg(long, default_value = "target/bench-hso/store")]
    store: PathBuf,
    /// Patients looked up, each once per pass.
    #[arg(long, default_value_t = 2000)]
    lookups: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// PostgreSQL's data directory goes here (removed first, and again at the end).
    #[arg(long, default_value = "target/bench-patients")]
    work: PathBuf,
    #[arg(long)]
    skip_postgres: bool,
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// p50, p99 and max of latencies in microseconds.
fn percentiles(mut micros: Vec<f64>) -> (f64, f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros.get(((micros.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    (at(0.5), at(0.99), micros.last().copied().unwrap_or(0.0))
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// Every segment of the store, from its manifests.
fn segments(store: &Path) -> anyhow::Result<Vec<String>> {
    Ok(loggvakt_journal::index::read_epochs(store)?.into_iter().flat_map(|m| m.segments.into_iter().map(|s| s.path)).collect())
}

/// The distinct patients of the store (their `patient_id` column only).
fn all_patients(store: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for rel in segments(store)? {
        let file = std::fs::File::open(store.join(&rel)).with_context(|| rel.clone())?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let column = builder.schema().index_of("patient_id")?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let ids = batch.column(0).as_string::<i32>();
            out.extend(ids.iter().flatten().map(str::to_owned));
        }
    }
    Ok(out.into_iter().collect())
}

/// `n` of `all`, drawn with a seeded generator (splitmix64), repeats allowed.
fn draw(all: &[String], n: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            all[(z ^ (z >> 31)) as usize % all.len()].clone()
        })
        .collect()
}

fn csv_field(out: &mut Vec<u8>, value: Option<&str>) {
    if let Some(v) = value {
        out.push(b'"');
        for b in v.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

/// The columns of a patient's list: when, who, role, where, what, why, outcome.
const PG_COLUMNS: &str = "seq bigint, occurred_at_us bigint, patient_id text, tenant_orgnr text, user_hpr text, user_name text, unit_name text, role_code text, \
     record_part text, action text, basis text, purpose_code text, channel text, outcome text, source_system text";

fn csv_row(out: &mut Vec<u8>, seq: u64, e: &AccessEvent) {
    write!(out, "{},{},", seq, e.occurred_at.0).ok();
    let fields = [
        e.patient_id.as_deref(),
        Some(e.tenant_orgnr.as_str()),
        e.user_hpr.as_deref(),
        e.user_name.as_deref(),
        e.unit_name.as_deref(),
        e.role_code.as_deref(),
        e.record_part.as_deref(),
        Some(e.action.as_str()),
        Some(e.basis.as_str()),
        e.purpose_code.as_deref(),
        Some(e.channel.as_str()),
        Some(e.outcome.as_str()),
        Some(e.source_system.as_str()),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, *f);
    }
    out.push(b'\n');
}

fn postgres(args: &Args, drawn: &[String]) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(&args.work);
    std::fs::create_dir_all(&args.work)?;
    let work = std::fs::canonicalize(&args.work)?;
    let pg = pg::Postgres::start(&work)?;
    pg.psql(&format!("CREATE TABLE events ({PG_COLUMNS})"))?;
    let started = Instant::now();
    let mut copy = pg
        .command("psql")
        .args(["-h", "127.0.0.1", "-p", pg::PORT, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", "COPY events FROM STDIN (FORMAT csv)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, copy.stdin.take().context("psql stdin")?);
    let mut rows = 0u64;
    let mut line = Vec::with_capacity(512);
    for rel in segments(&args.store)? {
        let mut failed = None;
        loggvakt_journal::visit_segment_events(&args.store.join(&rel), |seq, row| {
            if failed.is_some() {
                return;
            }
            line.clear();
            csv_row(&mut line, seq, &row.event());
            if let Err(e) = stdin.write_all(&line) {
                failed = Some(e);
            }
            rows += 1;
        })?;
        if let Some(e) = failed {
            bail!("COPY into PostgreSQL: {e}");
        }
    }
    drop(stdin);
    if !copy.wait()?.success() {
        bail!("COPY into PostgreSQL failed");
    }
    let copied = started.elapsed().as_secs_f64();
    let started = Instant::now();
    pg.psql("CREATE INDEX events_patient ON events (patient_id)")?;
    pg.psql("ANALYZE events")?;
    let indexed = started.elapsed().as_secs_f64();
    let size = pg.psql("SELECT pg_size_pretty(pg_table_size('events')), pg_size_pretty(pg_indexes_size('events')), current_setting('shared_buffers')")?;
    println!("postgresql: {rows} rows copied in {copied:.1} s, index and analyze {indexed:.1} s; table, index, shared_buffers: {}", size.trim().replace('|', ", "));
    // The drawn patients, numbered, so pgbench picks them in the same order.
    pg.psql("CREATE TABLE drawn (i int PRIMARY KEY, patient_id text)")?;
    let values: Vec<String> = drawn.iter().enumerate().map(|(i, p)| format!("({}, '{}')", i + 1, p.replace('\'', "''"))).collect();
    for chunk in values.chunks(1000) {
        pg.psql(&format!("INSERT INTO drawn VALUES {}", chunk.join(",")))?;
    }
    let script = work.join("lookup.sql");
    std::fs::write(&script, "\\set i random(1, :n)\nSELECT e.* FROM events e WHERE e.patient_id = (SELECT patient_id FROM drawn WHERE i = :i) ORDER BY e.occurred_at_us;\n")?;
    for pass in ["first", "second"] {
        let prefix = work.join(format!("latency-{pass}"));
        pg.run(
            pg.command("pgbench")
                .current_dir(&work)
                .args(["-h", "127.0.0.1", "-p", pg::PORT, "-U", "postgres", "-n", "-c", "1", "-j", "1", "-M", "prepared"])
                .args(["-t", &drawn.len().to_string(), "-D", &format!("n={}", drawn.len()), "-l", "--log-prefix"])
                .arg(&prefix)
                .arg("-f")
                .arg(&script)
                .arg("postgres"),
            "pgbench",
        )?;
        let mut micros = Vec::new();
        for entry in std::fs::read_dir(&work)?.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(&format!("latency-{pass}")) {
                for line in std::fs::read_to_string(entry.path())?.lines() {
                    // client_id transaction_no time script_no time_epoch time_us
                    if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<f64>().ok()) {
                        micros.push(us);
                    }
                }
            }
        }
        let (p50, p99, max) = percentiles(micros);
        println!("postgresql {pass} pass: p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max));
    }
    drop(pg);
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = &args.store;
    let last_epoch = loggvakt_journal::layout::list_manifests(store)?.last().map(|(e, _)| *e).context("the store has no sealed epoch")?;
    let started = Instant::now();
    let indexed = patients::repair(store, last_epoch)?;
    let index_dir = store.join(patients::PATIENT_INDEX_DIR);
    println!(
        "patient index: {indexed} epochs indexed in {:.1} s (of {last_epoch}); {} runs, {:.1} MiB",
        started.elapsed().as_secs_f64(),
        patients::list_runs(store)?.len(),
        dir_bytes(&index_dir) as f64 / (1 << 20) as f64
    );
    let started = Instant::now();
    let all = all_patients(store)?;
    let drawn = draw(&all, args.lookups, args.seed);
    drop(all);
    println!("{} lookups drawn in {:.1} s", drawn.len(), started.elapsed().as_secs_f64());
    let rss_before = peak_rss_mib();
    let mut total_rows = 0;
    for pass in ["first", "second"] {
        let mut micros = Vec::with_capacity(drawn.len());
        total_rows = 0;
        for patient in &drawn {
            let q = SearchQuery { patient: Some(patient.clone()), count: 1000, ..SearchQuery::default() };
            let started = Instant::now();
            let found = search_sealed(store, &q, MAX_WINDOW)?;
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            total_rows += found.total;
        }
        let (p50, p99, max) = percentiles(micros);
        println!("loggvakt {pass} pass: p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max));
    }
    println!("{total_rows} events in the drawn patients' lists ({:.1} a patient)", total_rows as f64 / drawn.len().max(1) as f64);
    println!("peak resident size: {rss_before:.0} MiB before the lookups, {:.0} MiB after", peak_rss_mib());
    if !args.skip_postgres {
        postgres(&args, &drawn)?;
    }
    Ok(())
}
