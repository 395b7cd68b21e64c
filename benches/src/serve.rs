//! The ingest daemon under load on loopback, against PostgreSQL on the same documents.
//!
//! A bounded load generator (plain HTTP/1.1 over keep-alive connections, one thread each)
//! drives a release `loggvakt serve`: closed loop for the peak (Bundles of 100, then single
//! events), then open loop at half each peak for latency, measured from each request's
//! scheduled time so a stall is not hidden (no coordinated omission). The peer is
//! PostgreSQL with its default durable commit, fed the same AuditEvent JSON by pgbench:
//! one INSERT per transaction, and 100 rows per transaction.
//!
//! Usage: cargo run --release -p loggvakt-bench --bin loggvakt-bench-serve -- [--seconds 10]

// A benchmark program prints its figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The loggvakt binary (a release build).
    #[arg(long, default_value = "target/release/loggvakt")]
    loggvakt: PathBuf,
    /// Working directory (store, keys, PostgreSQL data); emptied first.
    #[arg(long, default_value = "/tmp/loggvakt-bench-serve")]
    dir: PathBuf,
    /// Length of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    bundle: usize,
    #[arg(long)]
    skip_postgres: bool,
    /// The daemon's [journal] max_epoch_records: a seal runs on the writer thread, so this
    /// bounds how long acknowledgements wait behind one.
    #[arg(long, default_value_t = 500_000)]
    epoch_records: usize,
}

const TOKEN: &str = "bench-token-0123456789abcdef";
const SAMPLE: &str = include_str!("../../samples/fhir/r4-read-break-the-glass.json");

/// The sample AuditEvent as compact JSON, split around its id.
struct Template {
    before: String,
    after: String,
}

impl Template {
    fn new() -> anyhow::Result<Template> {
        let mut v: serde_json::Value = serde_json::from_str(SAMPLE)?;
        v["id"] = serde_json::Value::String("@ID@".into());
        let text = serde_json::to_string(&v)?;
        let (before, after) = text.split_once("@ID@").context("id placeholder")?;
        Ok(Template { before: before.to_owned(), after: after.to_owned() })
    }
    fn push(&self, out: &mut Vec<u8>, id: &str) {
        out.extend_from_slice(self.before.as_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(self.after.as_bytes());
    }
    fn event(&self, id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.before.len() + self.after.len() + id.len());
        self.push(&mut out, id);
        out
    }
    fn bundle(&self, ids: impl Iterator<Item = String>) -> Vec<u8> {
        let mut out = b"{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[".to_vec();
        for (i, id) in ids.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"request\":{\"method\":\"POST\",\"url\":\"AuditEvent\"},\"resource\":");
            self.push(&mut out, &id);
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Connection { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    /// Sends a POST and reads the whole answer; returns the status.
    fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<u16> {
        Ok(self.request("POST", path, body)?.0)
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/fhir+json\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n", body.len());
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

#[derive(Default)]
struct Stats {
    requests: u64,
    events: u64,
    not_ok: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.requests += other.requests;
        self.events += other.events;
        self.not_ok += other.not_ok;
        self.latencies.extend(other.latencies);
    }
    fn percentile(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }
    fn line(&mut self, what: &str) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{what:<44} {:>9.0} events/s {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  non-2xx {}",
            self.events as f64 / secs,
            self.requests as f64 / secs,
            self.percentile(0.50),
            self.percentile(0.99),
            self.not_ok
        )
    }
}

/// `rate` requests/s in all (open loop), or as fast as answers come (`None`, closed loop).
fn load(addr: SocketAddr, template: &Arc<Template>, tag: &str, per_request: usize, connections: usize, duration: Duration, rate: Option<f64>) -> anyhow::Result<Stats> {
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let (template, tag) = (template.clone(), tag.to_owned());
            std::thread::spawn(move || -> anyhow::Result<Stats> {
                let mut conn = Connection::open(addr)?;
                let mut stats = Stats::default();
                let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
                // Spread the connections' schedules over one interval.
                let mut next = started + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / connections as f64));
                let mut n = 0u64;
                while started.elapsed() < duration {
                    if interval.is_some() {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                    } else {
                        next = Instant::now();
                    }
                    n += 1;
                    let (path, body) = if per_request == 1 {
                        ("/fhir/AuditEvent", template.event(&format!("{tag}-{c}-{n}")))
                    } else {
                        ("/fhir", template.bundle((0..per_request).map(|i| format!("{tag}-{c}-{n}-{i}"))))
                    };
                    let status = conn.post(path, &body)?;
                    stats.latencies.push(next.elapsed());
                    stats.requests += 1;
                    if (200..300).contains(&status) {
                        stats.events += per_request as u64;
                    } else {
                        stats.not_ok += 1;
                    }
                    if let Some(interval) = interval {
                        next += interval;
                    }
                }
                Ok(stats)
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in threads {
        all.merge(t.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??);
    }
    all.elapsed = started.elapsed();
    Ok(all)
}

/// Resident memory of a process in bytes (`VmRSS`), 0 when unknown.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
}

/// Runs `work` while sampling the resident memory of `pid` every 50 ms; its result and the peak.
fn with_peak_memory<T>(pid: u32, work: impl FnOnce() -> T) -> (T, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(resident_bytes(pid))));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let result = work();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (result, peak.load(Ordering::Relaxed))
}

/// Four unfiltered ITI-81 searches at a time, each again as soon as it is answered, while
/// Bundles keep arriving at half their peak rate: the searches' latency, the daemon's
/// resident memory (sampled every 50 ms), and the acknowledgements' latency meanwhile.
fn search_phase(addr: SocketAddr, pid: u32, template: &Arc<Template>, args: &Args, half_bundles: f64) -> anyhow::Result<()> {
    const SEARCHERS: usize = 4;
    let duration = Duration::from_secs(args.seconds);
    let (_, first) = Connection::open(addr)?.request("GET", "/fhir/AuditEvent?_count=1", b"")?;
    let total = serde_json::from_slice::<serde_json::Value>(&first)?["total"].as_u64().unwrap_or(0);
    let before = resident_bytes(pid);
    let (result, peak) = with_peak_memory(pid, || -> anyhow::Result<(Stats, Stats)> {
        let writers = {
            let (template, bundle, connections) = (template.clone(), args.bundle, args.connections);
            std::thread::spawn(move || load(addr, &template, "sw", bundle, connections, duration, Some(half_bundles)))
        };
        let started = Instant::now();
        let searchers: Vec<_> = (0..SEARCHERS)
            .map(|_| {
                std::thread::spawn(move || -> anyhow::Result<Stats> {
                    let mut conn = Connection::open(addr)?;
                    let mut stats = Stats::default();
                    while started.elapsed() < duration {
                        let sent = Instant::now();
                        let (status, _) = conn.request("GET", "/fhir/AuditEvent?_count=100", b"")?;
                        stats.latencies.push(sent.elapsed());
                        stats.requests += 1;
                        if status != 200 {
                            stats.not_ok += 1;
                        }
                    }
                    Ok(stats)
                })
            })
            .collect();
        let mut searches = Stats::default();
        for t in searchers {
            searches.merge(t.join().map_err(|_| anyhow::anyhow!("a search thread panicked"))??);
        }
        searches.elapsed = started.elapsed();
        let acks = writers.join().map_err(|_| anyhow::anyhow!("the load thread panicked"))??;
        Ok((searches, acks))
    });
    let (mut searches, mut acks) = result?;
    let secs = searches.elapsed.as_secs_f64();
    println!(
        "{:<44} {:>9.1} searches/s  p50 {:>7.0} ms  p99 {:>7.0} ms  non-200 {}  ({SEARCHERS} at once, _count=100, over {total} events)",
        "loggvakt, unfiltered ITI-81 search",
        searches.requests as f64 / secs,
        searches.percentile(0.50),
        searches.percentile(0.99),
        searches.not_ok
    );
    println!("{}", acks.line(&format!("loggvakt, Bundles of {} during the searches", args.bundle)));
    println!("daemon resident memory: {:.0} MiB before the searches, at most {:.0} MiB during them", before as f64 / 1048576.0, peak as f64 / 1048576.0);
    Ok(())
}

/// The daemon's own account, from /metrics: commits, seals, and fsync time by bucket.
fn fsync_summary(metrics: &str) -> String {
    let value = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(f64::NAN);
    let count = value("loggvakt_fsync_seconds_count ");
    let mut buckets = Vec::new();
    for bound in ["0.001", "0.005", "0.025", "0.1", "0.25", "1"] {
        let n = value(&format!("loggvakt_fsync_seconds_bucket{{le=\"{bound}\"}} "));
        buckets.push(format!("≤{bound}s {:.2}%", 100.0 * n / count));
    }
    format!(
        "daemon: {} group commits for {} events, {} seals; fsyncs {}",
        value("loggvakt_commits_total "),
        value("loggvakt_acknowledged_events_total "),
        value("loggvakt_seals_total "),
        buckets.join(", ")
    )
}

fn start_daemon(args: &Args) -> anyhow::Result<(Child, SocketAddr)> {
    let key = args.dir.join("operator.key");
    let out = Command::new(&args.loggvakt).args(["keygen", "--name", "bench"]).arg("--out").arg(&key).output()?;
    if !out.status.success() {
        bail!("keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    let config = args.dir.join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[limits]\nqueue_events = 200000\n[journal]\nmax_epoch_records = {}\n[[source]]\nname = \"bench\"\ntenant_orgnr = \"983971636\"\ntenants = [\"983971636\", \"998877601\"]\ntoken = \"{TOKEN}\"\nsearch = \"all\"\n",
            args.epoch_records
        ),
    )?;
    let mut child = Command::new(&args.loggvakt)
        .arg("serve")
        .arg("--store")
        .arg(args.dir.join("store"))
        .arg("--key")
        .arg(&key)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(args.dir.join("serve.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", args.loggvakt.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let json: serde_json::Value = serde_json::from_str(line.strip_prefix("listening ").context("the daemon did not start; see serve.log")?)?;
    let addr = json["http"].as_str().context("no http address")?.parse()?;
    Ok((child, addr))
}

fn pgbench(pg: &pg::Postgres, dir: &Path, name: &str, sql: &str, connections: usize, seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let script = dir.join(format!("{name}.sql"));
    std::fs::write(&script, sql)?;
    let logs = dir.join(format!("pgbench-{name}"));
    std::fs::create_dir_all(&logs)?;
    Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status()?;
    let out = pg.run(
        pg.command("pgbench")
            .args(["-h", "127.0.0.1", "-p", pg::PORT, "-U", "postgres", "-n", "-M", "simple", "-l", "--log-prefix"])
            .arg(logs.join("log"))
            .args(["-c", &connections.to_string(), "-j", "2", "-T", &seconds.to_string(), "-f"])
            .arg(&script)
            .arg("postgres"),
        "pgbench",
    )?;
    let tps: f64 = out.lines().find_map(|l| l.strip_prefix("tps = ")).and_then(|l| l.split_whitespace().next()).and_then(|v| v.parse().ok()).context("pgbench printed no tps")?;
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<f64>().ok()) {
                latencies.push(us / 1000.0);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(f64::NAN);
    Ok((tps, at(0.5), at(0.99)))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let template = Arc::new(Template::new()?);
    let duration = Duration::from_secs(args.seconds);
    println!(
        "loggvakt serve on loopback, {} connections, {} s per phase, AuditEvent of {} bytes, epochs of at most {} records",
        args.connections,
        args.seconds,
        template.event("x").len(),
        args.epoch_records
    );
    let (mut daemon, addr) = start_daemon(&args)?;
    let result = (|| -> anyhow::Result<()> {
        let mut bundles = load(addr, &template, "b", args.bundle, args.connections, duration, None)?;
        println!("{}", bundles.line(&format!("loggvakt, Bundles of {}, peak", args.bundle)));
        let mut singles = load(addr, &template, "s", 1, args.connections, duration, None)?;
        println!("{}", singles.line("loggvakt, single events, peak"));
        let half_bundles = bundles.requests as f64 / bundles.elapsed.as_secs_f64() / 2.0;
        let before = resident_bytes(daemon.id());
        let (at_half, peak) = with_peak_memory(daemon.id(), || load(addr, &template, "hb", args.bundle, args.connections, duration, Some(half_bundles)));
        println!("{}", at_half?.line(&format!("loggvakt, Bundles of {}, half peak (open loop)", args.bundle)));
        println!(
            "daemon resident memory: {:.0} MiB before this phase, at most {:.0} MiB during it (the control for the search phase)",
            before as f64 / 1048576.0,
            peak as f64 / 1048576.0
        );
        let half_singles = singles.requests as f64 / singles.elapsed.as_secs_f64() / 2.0;
        let mut at_half = load(addr, &template, "hs", 1, args.connections, duration, Some(half_singles))?;
        println!("{}", at_half.line("loggvakt, single events, half peak (open loop)"));
        let (_, metrics) = Connection::open(addr)?.request("GET", "/metrics", b"")?;
        println!("{}", fsync_summary(&String::from_utf8_lossy(&metrics)));
        search_phase(addr, daemon.id(), &template, &args, half_bundles)
    })();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    result?;
    if args.skip_postgres {
        return Ok(());
    }
    let pg = pg::Postgres::start(&args.dir.join("pg"))?;
    pg.psql("CREATE TABLE audit (id bigserial PRIMARY KEY, doc jsonb NOT NULL)")?;
    let doc = String::from_utf8(template.event("x"))?.replace('\'', "''");
    let one = format!("INSERT INTO audit(doc) VALUES (jsonb_set('{doc}'::jsonb, '{{id}}', to_jsonb(random()::text)));\n");
    let rows: Vec<String> = (0..args.bundle).map(|_| format!("(jsonb_set('{doc}'::jsonb, '{{id}}', to_jsonb(random()::text)))")).collect();
    let many = format!("INSERT INTO audit(doc) VALUES {};\n", rows.join(","));
    let (tps, p50, p99) = pgbench(&pg, &args.dir, "bundle", &many, args.connections, args.seconds)?;
    println!(
        "{:<44} {:>9.0} events/s {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        format!("PostgreSQL, {} rows per commit, peak", args.bundle),
        tps * args.bundle as f64,
        tps,
        p50,
        p99
    );
    let (tps, p50, p99) = pgbench(&pg, &args.dir, "single", &one, args.connections, args.seconds)?;
    println!("{:<44} {:>9.0} events/s {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms", "PostgreSQL, one row per commit, peak", tps, tps, p50, p99);
    // The same question of the same JSON: how many, and the first page of 100.
    let rows = pg.psql("SELECT count(*) FROM audit")?;
    let (tps, p50, p99) = pgbench(&pg, &args.dir, "search", "SELECT count(*) FROM audit;\nSELECT doc FROM audit ORDER BY id LIMIT 100;\n", 4, args.seconds)?;
    println!(
        "{:<44} {:>9.1} searches/s  p50 {:>7.0} ms  p99 {:>7.0} ms  (4 at once, count + first 100, over {} rows, no load)",
        "PostgreSQL, the same search",
        tps,
        p50,
        p99,
        rows.trim()
    );
    Ok(())
}
