//! `loggvakt-bench-detect`: the full detector run of `loggvakt detect` (DataFusion) against
//! DuckDB running the same detector SQL over the same Parquet (journal segments and context
//! snapshot), in one run, on a generated region. Each engine runs as its own process under
//! `/usr/bin/time`, so wall time and peak memory are measured the same way for both; the
//! row count of every detector is compared between the engines as a cross-check.
//!
//! Steps: `loggvakt samples` → `ingest` → `context import` (and DuckDB reading the same
//! context NDJSON, for scale) → `detect` → DuckDB.

// A benchmark program prints its figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Detector run on DataFusion (loggvakt detect) against DuckDB on the same SQL and Parquet")]
struct Args {
    /// Region size for `loggvakt samples`.
    #[arg(long, default_value = "large")]
    scale: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Working directory; kept between runs with --reuse.
    #[arg(long, default_value = "target/bench-detect")]
    dir: PathBuf,
    /// Re-use the generated and ingested store of an earlier run in --dir.
    #[arg(long)]
    reuse: bool,
    /// The loggvakt binary (a release build).
    #[arg(long, default_value = "target/release/loggvakt")]
    loggvakt: PathBuf,
    /// Write the events straight to the store through the journal instead of generating
    /// and ingesting FHIR JSON (the only way for --scale hso: its JSON would be ~46 GB).
    #[arg(long)]
    direct: bool,
    /// `loggvakt detect --memory-limit` (8G, 4G, …); its own default (half of the
    /// machine's memory) when not given.
    #[arg(long)]
    memory_limit: Option<String>,
    /// Stop DuckDB's detector run after this many seconds and report how far it got (the
    /// phases it finished); by default 3 × loggvakt's wall time, at least 10 minutes. At the
    /// region's scale DuckDB ran past 13 minutes with 12 GB spilled (RESULTS 2026-12-02).
    #[arg(long)]
    peer_timeout: Option<u64>,
    /// Python with the duckdb package.
    #[arg(long, env = "LOGGVAKT_PYTHON", default_value = "python3")]
    python: String,
    /// Internal: generate the region into --dir and append its events to the store, then
    /// exit (the harness runs this step in a process of its own, so its memory is measured
    /// alone and is given back before the next step starts).
    #[arg(long, hide = true)]
    generate_only: bool,
}

const FROM: &str = "2026-11-16";
const TO: &str = "2026-11-22";

fn step(what: &str, cmd: &mut Command) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let secs = started.elapsed().as_secs_f64();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && out.status.code() != Some(3) {
        let peak = peak_mib(&text).map(|mib| format!(" (after {secs:.1} s, peak {mib:.0} MiB)"));
        bail!("{what} failed{}:\n{text}", peak.unwrap_or_default());
    }
    eprintln!("{what}: {secs:.1} s");
    Ok((secs, text))
}

/// Runs a command under `/usr/bin/time`, returning (wall seconds, peak RSS MiB, output).
fn measured(what: &str, program: &Path, args: &[String]) -> anyhow::Result<(f64, f64, String)> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f").arg("PEAK_RSS_KB=%M").arg(program).args(args);
    let (secs, text) = step(what, &mut cmd)?;
    let mib = peak_mib(&text).unwrap_or(0.0);
    // Printed as each step ends, so a later step that fails leaves the earlier figures.
    eprintln!("{what}: peak {mib:.0} MiB");
    Ok((secs, mib, text))
}

/// A peer's run: finished (wall seconds, peak MiB, output), or stopped at the time limit
/// (seconds, the output so far).
enum PeerRun {
    Finished(f64, f64, String),
    Stopped(f64, String),
}
use PeerRun::{Finished, Stopped};

/// [`measured`] with a time limit: past it the process and its children (a process group
/// of their own) are killed and what they printed so far is returned.
fn measured_within(what: &str, program: &Path, args: &[String], limit: std::time::Duration) -> anyhow::Result<PeerRun> {
    use std::os::unix::process::CommandExt;
    let out_path = std::env::temp_dir().join(format!("loggvakt-bench-peer-{}.txt", std::process::id()));
    let out = std::fs::File::create(&out_path)?;
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("PEAK_RSS_KB=%M")
        .arg(program)
        .args(args)
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("running {what}"))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() >= limit {
            // The group the child leads: /usr/bin/time and the engine under it. killpg, not
            // the kill program: run as `kill -KILL -PID`, it took the calling shell down too.
            let group = libc::pid_t::try_from(child.id()).context("a process id beyond pid_t")?;
            if group > 1 {
                // SAFETY: killpg only sends a signal; the group is the child's own (process_group(0)).
                unsafe { libc::killpg(group, libc::SIGKILL) };
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let Some(status) = status else {
        eprintln!("{what}: stopped after {secs:.1} s (the limit)");
        return Ok(Stopped(secs, text));
    };
    if !status.success() {
        bail!("{what} failed after {secs:.1} s:\n{text}");
    }
    let mib = peak_mib(&text).unwrap_or(0.0);
    eprintln!("{what}: {secs:.1} s, peak {mib:.0} MiB");
    Ok(Finished(secs, mib, text))
}

/// `loggvakt detect --memory-limit` (`6G`, `512M`, binary units) in DuckDB's spelling.
fn duckdb_size(limit: &str) -> String {
    let limit = limit.trim();
    let digits: String = limit.chars().take_while(char::is_ascii_digit).collect();
    match limit[digits.len()..].trim().to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "K" => format!("{digits}KiB"),
        "M" => format!("{digits}MiB"),
        "G" => format!("{digits}GiB"),
        _ => format!("{digits}B"),
    }
}

/// The peak resident memory `/usr/bin/time -f PEAK_RSS_KB=%M` printed, in MiB.
fn peak_mib(text: &str) -> Option<f64> {
    text.lines().rev().find_map(|l| l.strip_prefix("PEAK_RSS_KB=")).and_then(|v| v.trim().parse::<f64>().ok()).map(|kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = args.loggvakt.canonicalize().with_context(|| format!("{} (build it: cargo build --release)", args.loggvakt.display()))?;
    let dir = &args.dir;
    let input = dir.join("input");
    let store = dir.join("store");
    let key = dir.join("keys/op.key");
    if args.generate_only {
        for (what, secs) in direct(&args, &key, &store, &input.join("context"))? {
            eprintln!("{what}: {secs:.1} s");
        }
        return Ok(());
    }
    let fresh = !(args.reuse && store.join("context/snapshots/CURRENT").is_file());
    // (step, wall seconds, peak MiB): each step a process of its own.
    let mut setup: Vec<(&str, f64, f64)> = Vec::new();
    if fresh {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        step("keygen", Command::new(&bin).args(["keygen", "--name", "bench"]).arg("--out").arg(&key).arg("--trusted-keys").arg(dir.join("keys/trusted.txt")))?;
        let context = input.join("context");
        let text = |p: &Path| p.display().to_string();
        if args.direct || args.scale == "hso" {
            let me = std::env::current_exe()?;
            let generate = ["--generate-only", "--scale", &args.scale, "--seed", &args.seed.to_string(), "--dir", &text(dir)].map(str::to_owned);
            let (s, mib, _) = measured("generate the region, write its context NDJSON, append its events to the journal", &me, &generate)?;
            setup.push(("generate + context NDJSON + append events", s, mib));
        } else {
            let samples = ["samples", "--scale", &args.scale, "--seed", &args.seed.to_string(), "--out", &text(&input)].map(str::to_owned);
            let (s, mib, _) = measured("samples", &bin, &samples)?;
            setup.push(("generate (FHIR NDJSON)", s, mib));
            let mut ingest: Vec<String> = ["ingest", "--store", &text(&store), "--key", &text(&key)].map(str::to_owned).to_vec();
            for t in ["Organization", "Practitioner", "PractitionerRole"] {
                ingest.push(text(&context.join(format!("{t}.ndjson"))));
            }
            ingest.push(text(&input.join("AuditEvent.ndjson")));
            let (s, mib, _) = measured("ingest", &bin, &ingest)?;
            setup.push(("ingest", s, mib));
        }
        let import = ["context", "import", "--store", &text(&store), &text(&context)].map(str::to_owned);
        let (s, mib, _) = measured("context import", &bin, &import)?;
        setup.push(("context import", s, mib));
        // The peer for the import, for scale: DuckDB reading the same NDJSON into Parquet,
        // with no merge, no normalising and no references resolved.
        let out = dir.join("duckdb-context");
        std::fs::create_dir_all(&out)?;
        let script = format!(
            "import duckdb, glob, os\nsrc, out = {:?}, {:?}\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\nfor f in sorted(glob.glob(os.path.join(src, '*.ndjson'))):\n    name = os.path.basename(f)[:-len('.ndjson')]\n    con.execute(f\"COPY (SELECT * FROM read_ndjson('{{f}}')) TO '{{out}}/{{name}}.parquet' (FORMAT parquet)\")\n",
            text(&context),
            text(&out)
        );
        let (s, mib, _) = measured("DuckDB: the same context NDJSON into Parquet", Path::new(&args.python), &["-c".to_owned(), script])?;
        setup.push(("DuckDB: the same context NDJSON into Parquet (no merge, no references; for scale)", s, mib));
    }
    let snapshot = loggvakt_context::current_snapshot(&store)?.context("the store has no context snapshot")?;
    let review = dir.join("review");
    let _ = std::fs::remove_dir_all(&review);
    let detect_args: Vec<String> = vec![
        "detect".into(),
        "--store".into(),
        store.display().to_string(),
        "--key".into(),
        key.display().to_string(),
        "--from".into(),
        FROM.into(),
        "--to".into(),
        TO.into(),
        "--out".into(),
        review.display().to_string(),
    ];
    let detect_args: Vec<String> = detect_args.into_iter().chain(args.memory_limit.iter().flat_map(|l| ["--memory-limit".to_owned(), l.clone()])).collect();
    let (df_secs, df_mib, df_text) = measured("loggvakt detect (DataFusion)", &bin, &detect_args)?;
    let accesses = df_text.split_whitespace().skip_while(|w| *w != "checked").nth(1).unwrap_or("?").to_owned();
    let mut ours: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in df_text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // `ID FLAGS flags MS ms`, and under a memory limit `PEAK MiB at most` after it.
        if let [id, flags, "flags", ms, "ms", ..] = words.as_slice() {
            ours.insert((*id).to_owned(), (flags.parse().unwrap_or(0), ms.parse().unwrap_or(0)));
        }
    }

    let script = dir.join("duckdb-detect.py");
    let period = loggvakt_analyse::Period { from: FROM.parse()?, to: TO.parse()? };
    let duck_limit = args.memory_limit.as_deref().map(duckdb_size);
    std::fs::write(&script, loggvakt_analyse::portable::duckdb_script(&store, &snapshot.dir, &loggvakt_analyse::Settings::default(), period, duck_limit.as_deref())?)?;
    let timeout = std::time::Duration::from_secs(args.peer_timeout.unwrap_or(((df_secs * 3.0) as u64).max(600)));
    let peer = measured_within("DuckDB, same SQL", Path::new(&args.python), &[script.display().to_string()], timeout)?;
    let (dk_secs, dk_mib, duck) = match peer {
        Finished(secs, mib, text) => {
            let json = text.lines().find_map(|l| l.strip_prefix("DUCKDB=")).context("DuckDB printed no result")?;
            (secs, mib, serde_json::from_str::<serde_json::Value>(json)?)
        }
        Stopped(secs, text) => {
            // The phases it finished, in order, from the lines the script prints as each ends.
            let finished: Vec<(String, f64)> = text
                .lines()
                .filter_map(|l| l.strip_prefix("PHASE "))
                .filter_map(|l| l.rsplit_once(' '))
                .filter_map(|(name, secs)| Some((name.to_owned(), secs.parse().ok()?)))
                .collect();
            let last = finished.last().map_or("none", |(name, _)| name.as_str());
            let phases: serde_json::Map<String, serde_json::Value> = finished.iter().map(|(name, secs)| (name.clone(), serde_json::json!(secs))).collect();
            eprintln!("DuckDB did not finish in {secs:.0} s; {} phases finished, the last {last}", phases.len());
            let rows: serde_json::Map<String, serde_json::Value> = text
                .lines()
                .filter_map(|l| l.strip_prefix("ROWS "))
                .filter_map(|l| l.split_once(' '))
                .filter_map(|(id, n)| Some((id.to_owned(), serde_json::json!(n.trim().parse::<u64>().ok()?))))
                .collect();
            (secs, 0.0, serde_json::json!({ "stopped": true, "phases": phases, "rows": rows }))
        }
    };
    let stopped = duck["stopped"].as_bool().unwrap_or(false);

    println!("\n## Detection: {} accesses to patient records ({} region, seed {}), {} to {}", accesses, args.scale, args.seed, FROM, TO);
    if !setup.is_empty() {
        println!("\n| setup step (own process) | wall time (s) | peak memory (MiB) |\n|---|---:|---:|");
        for (what, s, mib) in &setup {
            println!("| {what} | {s:.1} | {mib:.0} |");
        }
    }
    println!("\n| detector | DataFusion rows | DataFusion ms | DuckDB rows | DuckDB ms |\n|---|---:|---:|---:|---:|");
    let mut mismatches = Vec::new();
    for (id, (rows, ms)) in &ours {
        let (Some(drows), Some(dsecs)) = (duck["rows"][id].as_u64(), duck["phases"][id].as_f64()) else {
            println!("| {id} | {rows} | {ms} | not reached | |");
            continue;
        };
        if drows != *rows {
            mismatches.push(id.clone());
        }
        println!("| {id} | {rows} | {ms} | {drows} | {:.0} |", dsecs * 1000.0);
    }
    let views: f64 = duck["phases"].as_object().map(|p| p.iter().filter(|(k, _)| !ours.contains_key(*k)).map(|(_, v)| v.as_f64().unwrap_or(0.0)).sum()).unwrap_or(0.0);
    println!("\n| engine | whole run (s) | peak memory (MiB) | notes |\n|---|---:|---:|---|");
    println!("| loggvakt detect (DataFusion 55) | {df_secs:.1} | {df_mib:.0} | process wall time: seal, views, {} detectors, queues, reports, review logged |", ours.len());
    if stopped {
        let done = duck["phases"].as_object().map_or(0, |p| p.len());
        println!(
            "| DuckDB {} (same SQL, same Parquet) | did not finish in {dk_secs:.0} | | stopped by the harness after {done} phases; views {views:.1} s |",
            duckdb_version(&args.python)
        );
    } else {
        println!(
            "| DuckDB {} (same SQL, same Parquet) | {dk_secs:.1} | {dk_mib:.0} | Python process wall time; views {views:.1} s, total in-engine {:.1} s |",
            duckdb_version(&args.python),
            duck["total"].as_f64().unwrap_or(0.0)
        );
    }
    if stopped {
        println!(
            "\nDuckDB was stopped: row counts compared only for the detectors it finished{}",
            if mismatches.is_empty() { "; those are the same".to_owned() } else { format!("; they differ for: {}", mismatches.join(", ")) }
        );
    } else if mismatches.is_empty() {
        println!("\nevery detector returned the same number of rows on both engines");
    } else {
        println!("\nrow counts differ for: {}", mismatches.join(", "));
    }
    Ok(())
}

/// Generates the region in this process, writes its context as NDJSON and its events
/// straight into the journal (hash chain, WAL, sealed segments, signed checkpoints).
fn direct(args: &Args, key: &Path, store: &Path, context: &Path) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let scale = match args.scale.as_str() {
        "small" => loggvakt_samples::RegionScale::Small,
        "medium" => loggvakt_samples::RegionScale::Medium,
        "large" => loggvakt_samples::RegionScale::Large,
        "hso" => loggvakt_samples::RegionScale::Hso,
        other => bail!("unknown scale {other}"),
    };
    let started = Instant::now();
    let week = chrono::NaiveDate::parse_from_str(FROM, "%Y-%m-%d")?.and_hms_opt(0, 0, 0).context("midnight")?.and_utc().timestamp();
    let region = loggvakt_samples::Region::generate(args.seed, scale, week);
    std::fs::create_dir_all(context)?;
    let resources = region.write_context(context)?;
    let generated = started.elapsed().as_secs_f64();
    eprintln!("generated the region and wrote {resources} context resources: {generated:.1} s");
    let started = Instant::now();
    let signing = loggvakt_journal::SigningKey::parse(&std::fs::read_to_string(key)?)?;
    let (mut journal, _) =
        loggvakt_journal::Journal::open(store, signing, loggvakt_journal::JournalOptions { max_epoch_age: std::time::Duration::from_secs(3600), ..Default::default() })?;
    let mut n = 0u64;
    for (event, _) in region.access_events(args.seed) {
        journal.append(event)?;
        n += 1;
        if n.is_multiple_of(100_000) {
            journal.commit()?;
            journal.maybe_seal()?;
        }
    }
    journal.commit()?;
    journal.close()?;
    let appended = started.elapsed().as_secs_f64();
    eprintln!("appended {n} events to the journal: {appended:.1} s");
    Ok(vec![("generate region + context NDJSON", generated), ("append events to the journal", appended)])
}

fn duckdb_version(python: &str) -> String {
    Command::new(python).args(["-c", "import duckdb; print(duckdb.__version__)"]).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}
