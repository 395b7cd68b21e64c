//! Detection on an Apache DataFusion Ballista cluster on loopback: one scheduler and two
//! executors (`loggvakt cluster …`, real processes on real sockets), reading a store
//! published to a real S3 server (s3s-fs). On the same checkpoint and context snapshot the
//! cluster writes the queues a local run writes, the review is logged once, an executor
//! killed mid-review never yields a silent partial queue, and a file missing from the bucket
//! stops the review naming it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::analyse::{detect, prepare, queues};
use crate::objects::{S3Server, BUCKET, HONOURS_CONDITIONAL_WRITES};
use crate::support::{text, Workspace};

/// A process of the cluster, killed when dropped.
struct Process {
    child: Child,
    name: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` and waits (up to a minute) for a line of its standard output that contains
/// `ready`; returns the process and that line.
fn start(mut cmd: Command, name: &str, ready: &str) -> (Process, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let wanted = ready.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(line);
            }
        }
    });
    let process = Process { child, name: name.to_owned() };
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{} did not print '{ready}' within a minute", process.name));
    (process, line)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

struct Cluster {
    scheduler: Process,
    executors: Vec<Process>,
    url: String,
}

impl Cluster {
    /// One scheduler and `executors` executors on 127.0.0.1, each configured for the S3
    /// server from its own environment (the scheduler reads the files' footers to plan).
    fn start(ws: &Workspace, s3: &S3Server, executors: usize) -> Cluster {
        let mut cmd = s3.loggvakt();
        cmd.args(["cluster", "scheduler", "--bind", "127.0.0.1:0", "--executor-timeout", "10"]);
        let (scheduler, line) = start(cmd, "the scheduler", "scheduler listening on");
        let address = line.split_whitespace().nth(3).expect("scheduler listening on ADDRESS").to_owned();
        let executors = (0..executors)
            .map(|i| {
                let mut cmd = s3.loggvakt();
                cmd.args(["cluster", "executor", "--scheduler", &address, "--host", "127.0.0.1", "--heartbeat", "2", "--concurrent-tasks", "2"])
                    .args(["--port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
                    .arg("--work-dir")
                    .arg(ws.path(&format!("executor-{i}")));
                start(cmd, &format!("executor {i}"), "executor ready").0
            })
            .collect();
        Cluster { scheduler, executors, url: format!("df://{address}") }
    }
}

/// `detect` on the cluster, reading the bucket's copy, pinned to `basis` (the local run's).
fn detect_on_cluster(ws: &Workspace, s3: &S3Server, store: &Path, cluster: &Cluster, out: &Path, basis: &Value) -> Command {
    let mut cmd = s3.loggvakt();
    cmd.args(["detect", "--from", crate::analyse::FROM, "--to", crate::analyse::TO, "--store"])
        .arg(store)
        .arg("--key")
        .arg(&ws.key)
        .arg("--out")
        .arg(out)
        .args(["--cluster", &cluster.url, "--read-from", &format!("s3://{BUCKET}/region")])
        .args(["--at-checkpoint", &basis["checkpoint_size"].as_u64().expect("checkpoint_size").to_string()])
        .args(["--context-snapshot", basis["context_snapshot"].as_str().expect("context_snapshot")])
        .arg("--scratch")
        .arg(ws.path("scratch"));
    cmd
}

/// The journal's records of reviews (loggvakt's own `list_exposure` events).
fn reviews_logged(store: &Path) -> usize {
    let sql = format!(
        "SELECT COUNT(*) FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true, hive_types={{'tenant': VARCHAR, 'date': VARCHAR}}) WHERE source_system = 'loggvakt' AND action = 'list_exposure'",
        store.display()
    );
    crate::duckdb::duckdb(&sql).trim().parse().expect("a count")
}

fn files_of(review: &Path, name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(review).expect("review").map(|e| e.expect("entry").path()).filter(|p| p.join(name).is_file()).collect();
    dirs.sort();
    dirs.into_iter().map(|d| (d.file_name().map(PathBuf::from).unwrap_or_default(), std::fs::read(d.join(name)).expect("file"))).collect()
}

#[test]
fn a_cluster_of_two_executors_writes_the_queues_a_local_run_writes_and_never_a_partial_one() {
    let ws = Workspace::new();
    let (store, _, _) = prepare(&ws, 11);
    let local = ws.path("review-local");
    let out = detect(&ws, &store, &local, &[]);
    assert!(out.status.success(), "local detect: {}", text(&out));
    let local_queues = queues(&local);
    assert!(local_queues.len() >= 2, "several organisations' queues");
    let basis = local_queues[0]["basis"].clone();
    let logged_before = reviews_logged(&store);

    let s3 = S3Server::start(HONOURS_CONDITIONAL_WRITES, &ws.path("s3"));
    std::fs::create_dir_all(ws.path("scratch")).expect("scratch");
    let cluster = Cluster::start(&ws, &s3, 2);
    let remote = ws.path("review-cluster");
    let started = Instant::now();
    let out: Output = crate::support::run(&mut detect_on_cluster(&ws, &s3, &store, &cluster, &remote, &basis));
    assert!(out.status.success(), "detect on the cluster: {}", text(&out));
    eprintln!("detect on 2 executors: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(queues(&remote), local_queues, "the cluster's queues are the local run's");
    for name in ["flags.csv", "queue.csv", "unexplained.csv"] {
        assert_eq!(files_of(&remote, name), files_of(&local, name), "{name} is the same, byte for byte");
    }
    // The review is logged once, by the store's owner, as the local one was.
    let logged_after = reviews_logged(&store);
    assert!(logged_before > 0, "the local review was logged");
    assert_eq!(logged_after, 2 * logged_before, "the cluster's review is logged once: {logged_before} then {logged_after}");
    let published = s3.root.join(BUCKET).join("region");
    assert!(published.join("store.json").is_file(), "detect --read-from brought the bucket up to the review's checkpoint");

    // An executor killed (SIGKILL) while the review runs: the review either finishes on the
    // other executor with the same queues, or fails saying so and writes no queue.
    let killed = ws.path("review-killed");
    let mut review = detect_on_cluster(&ws, &s3, &store, &cluster, &killed, &basis).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("detect starts");
    let scratch = ws.path("scratch");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Mid-review: once a view has been computed into the review's scratch directory.
    let mid_review = || {
        std::fs::read_dir(&scratch)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("loggvakt-views-"))
            .any(|views| std::fs::read_dir(views.path()).into_iter().flatten().flatten().any(|view| std::fs::read_dir(view.path()).into_iter().flatten().count() > 0))
    };
    while !mid_review() && Instant::now() < deadline && review.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(review.try_wait().expect("wait").is_none(), "the review was still running when the executor was killed");
    let mut cluster = cluster;
    let victim = cluster.executors.remove(0);
    drop(victim);
    let finished = Instant::now();
    let out = loop {
        if review.try_wait().expect("wait").is_some() {
            break review.wait_with_output().expect("output");
        }
        assert!(finished.elapsed() < Duration::from_secs(300), "the review neither finished nor failed within 5 minutes of losing an executor");
        std::thread::sleep(Duration::from_millis(100));
    };
    if out.status.success() {
        assert_eq!(queues(&killed), local_queues, "a review that finished after losing an executor wrote the full queues");
    } else {
        let said = text(&out);
        assert!(said.contains("error:"), "the failure is said: {said}");
        assert!(queues_or_none(&killed).is_empty(), "a failed review wrote no queue");
    }
    eprintln!("after an executor was killed: {}", if out.status.success() { "the review finished on the other executor" } else { "the review failed, saying so" });

    // A segment of the review's period missing from the bucket: the review stops and names it.
    let segment = crate::support::manifests(&store)
        .iter()
        .flat_map(|m| m.segments.iter())
        .find(|s| s.path.contains("date=2026-11-18"))
        .map(|s| s.path.clone())
        .expect("a segment of the period");
    std::fs::remove_file(published.join(&segment)).expect("remove the published segment");
    let gone = ws.path("review-gone");
    let out = crate::support::run(&mut detect_on_cluster(&ws, &s3, &store, &cluster, &gone, &basis));
    assert!(!out.status.success(), "a review missing a file fails: {}", text(&out));
    let file_name = Path::new(&segment).file_name().expect("name").to_string_lossy().into_owned();
    assert!(text(&out).contains(&file_name), "the missing file is named: {}", text(&out));
    assert!(queues_or_none(&gone).is_empty(), "and no queue is written");
    drop(cluster.scheduler);
}

/// queue.json files (timings are not in them) of a review that may not have written any.
fn queues_or_none(review: &Path) -> Vec<Value> {
    if review.is_dir() {
        queues(review)
    } else {
        Vec::new()
    }
}
