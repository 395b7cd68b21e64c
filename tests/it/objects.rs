//! A store published to a real S3 server on loopback (s3s-fs, built from the Rust registry by
//! `scripts/install-test-deps`): `verify` reads it from the bucket, a segment rewritten in
//! the bucket is caught, a second store or a fork publishing to the same place is refused,
//! and a server that ignores conditional writes is refused before anything is written.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{loggvakt, rewrite_segment, run, text, victim_segment, Workspace};

pub(crate) const BUCKET: &str = "loggvakt";
const ACCESS_KEY: &str = "loggvakt-test";
const SECRET_KEY: &str = "loggvakt-test-secret";

/// s3s-fs 0.14.1 honours `If-None-Match: *` on PutObject; 0.11.1, from before S3 had
/// conditional writes, ignores it and overwrites.
pub(crate) const HONOURS_CONDITIONAL_WRITES: &str = "0.14.1";
const IGNORES_CONDITIONAL_WRITES: &str = "0.11.1";

/// An S3 server of its own for one test, serving the directory `root` (each bucket a
/// directory in it); stopped when dropped.
pub(crate) struct S3Server {
    child: Child,
    port: u16,
    pub(crate) root: PathBuf,
}

impl S3Server {
    pub(crate) fn start(version: &str, root: &Path) -> Self {
        let tools = std::env::var_os("LOGGVAKT_TOOLS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/loggvakt-tools"));
        let binary = tools.join(format!("s3s-fs-{version}/bin/s3s-fs"));
        assert!(binary.exists(), "{} is missing: scripts/install-test-deps builds it", binary.display());
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket directory");
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "s3s-fs {version} did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port, root: root.to_owned() }
    }

    /// The environment that names this server and its credentials, as AWS's tools take it.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `loggvakt` with that environment.
    pub(crate) fn loggvakt(&self) -> Command {
        let mut cmd = loggvakt();
        cmd.envs(self.env());
        cmd
    }

    fn publish(&self, store: &Path, prefix: &str) -> Output {
        run(self.loggvakt().arg("publish").arg("--store").arg(store).args(["--to", &format!("s3://{BUCKET}/{prefix}")]))
    }

    fn verify(&self, ws: &Workspace, prefix: &str) -> (Output, serde_json::Value) {
        let out = run(self.loggvakt().args(["verify", "--json", "--store", &format!("s3://{BUCKET}/{prefix}")]).arg("--trusted-keys").arg(&ws.trusted));
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("verify --json prints JSON ({e}): {}", text(&out)));
        (out, report)
    }

    /// Every object the server holds under the bucket, as its files (the server's own
    /// bookkeeping, in dot-directories, left out).
    fn objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![self.root.join(BUCKET)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read bucket").map(|e| e.expect("entry")) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if entry.file_type().expect("type").is_dir() {
                    dirs.push(entry.path());
                } else {
                    out.push(entry.path().strip_prefix(self.root.join(BUCKET)).expect("inside").to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn local_verify(ws: &Workspace, store: &Path) -> serde_json::Value {
    let out = run(loggvakt().arg("verify").arg("--json").arg("--store").arg(store).arg("--trusted-keys").arg(&ws.trusted));
    assert!(out.status.success(), "the local store verifies: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_store_published_to_s3_verifies_from_the_bucket_and_a_segment_rewritten_there_is_caught() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let server = S3Server::start(HONOURS_CONDITIONAL_WRITES, &ws.path("s3"));

    let out = server.publish(&store, "region-a");
    assert!(out.status.success(), "publish: {}", text(&out));
    let local = local_verify(&ws, &store);
    let epochs = local["epochs"].as_u64().expect("epochs");
    assert!(epochs >= 3, "the store has several epochs: {local}");
    assert!(text(&out).contains(&format!("published {epochs} epoch(s)")), "{}", text(&out));

    let (out, remote) = server.verify(&ws, "region-a");
    assert!(out.status.success(), "the published store verifies from the bucket: {}", text(&out));
    for field in ["records", "epochs", "segments", "head", "checkpoints_checked"] {
        assert_eq!(remote[field], local[field], "{field}: the bucket's report is the local one's");
    }
    assert_eq!(remote["records"], 600, "the sample store's events");

    let again = server.publish(&store, "region-a");
    assert!(again.status.success() && text(&again).contains("published 0 epoch(s)"), "nothing new, nothing written: {}", text(&again));

    // A regulator who kept a checkpoint (taken from the bucket, as the writer's disk is
    // not theirs to read) reads only what was published after it.
    let held = ws.path("held.note");
    let out = run(server.loggvakt().args(["export-checkpoint", "--store", &format!("s3://{BUCKET}/region-a")]).arg("--out").arg(&held).arg("--trusted-keys").arg(&ws.trusted));
    assert!(out.status.success() && text(&out).contains("exported checkpoint: 600 records"), "{}", text(&out));
    let out = ws.ingest(&store, &ws.samples("later", 9, 100), &[]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let out = server.publish(&store, "region-a");
    assert!(out.status.success() && text(&out).contains("published 1 epoch(s)"), "{}", text(&out));
    let out = run(server
        .loggvakt()
        .args(["verify", "--store", &format!("s3://{BUCKET}/region-a"), "--incremental"])
        .arg("--trusted-keys")
        .arg(&ws.trusted)
        .arg("--checkpoint")
        .arg(&held));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("incremental: records 1..=600"), "only the new epoch is read from the bucket: {}", text(&out));

    // An attacker with access to the bucket's disk rewrites one row of a segment, as a
    // valid Parquet file.
    let (segment, _) = victim_segment(&store);
    let in_bucket = server.root.join(BUCKET).join("region-a").join(&segment);
    rewrite_segment(&in_bucket, |rows| {
        std::sync::Arc::make_mut(&mut rows[1].event).user_name = Some("Someone Else".into());
    });
    let (out, tampered) = server.verify(&ws, "region-a");
    assert!(!out.status.success(), "verify fails on the rewritten segment: {}", text(&out));
    let problems = tampered["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| p["kind"] == "modified-file" && p["file"] == segment.as_str()), "the rewritten segment is named: {problems:?}");
    assert!(problems.iter().any(|p| p["kind"] == "modified-record"), "and the row in it: {problems:?}");
}

#[test]
fn a_second_store_or_a_fork_publishing_to_the_same_place_is_refused() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let server = S3Server::start(HONOURS_CONDITIONAL_WRITES, &ws.path("s3"));
    assert!(server.publish(&store, "shared").status.success());
    let published = server.objects();

    // Another store (its own identity) aimed at the same prefix.
    let other = ws.path("other");
    let out = ws.ingest(&other, &ws.samples("other-input", 11, 50), &[]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let refused = server.publish(&other, "shared");
    assert!(!refused.status.success(), "a second store is refused: {}", text(&refused));
    assert!(text(&refused).contains("holds another store's store identity"), "{}", text(&refused));
    assert_eq!(server.objects(), published, "nothing of the second store was written");

    // The same store copied to a second machine, where it sealed epochs of its own: the
    // original publishes its new epoch first, and the copy is refused at that epoch.
    let fork = ws.path("fork");
    crate::support::copy_dir(&store, &fork);
    for (target, seed) in [(&store, 21), (&fork, 22)] {
        let out = ws.ingest(target, &ws.samples(&format!("more-{seed}"), seed, 40), &[]);
        assert!(out.status.success(), "ingest: {}", text(&out));
    }
    let out = server.publish(&store, "shared");
    assert!(out.status.success() && text(&out).contains("published 1 epoch(s)"), "{}", text(&out));
    let refused = server.publish(&fork, "shared");
    let next_epoch = crate::support::manifests(&store).len();
    assert!(!refused.status.success(), "the fork is refused: {}", text(&refused));
    assert!(text(&refused).contains(&format!("holds another store's epoch {next_epoch}")), "{}", text(&refused));
    let (out, _) = server.verify(&ws, "shared");
    assert!(out.status.success(), "what the bucket holds is the original's, whole: {}", text(&out));
}

#[test]
fn a_server_that_ignores_conditional_writes_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let out = ws.ingest(&store, &ws.samples("input", 3, 20), &[]);
    assert!(out.status.success(), "ingest: {}", text(&out));
    let server = S3Server::start(IGNORES_CONDITIONAL_WRITES, &ws.path("s3"));
    let refused = server.publish(&store, "region");
    assert!(!refused.status.success(), "publish is refused: {}", text(&refused));
    assert!(text(&refused).contains("does not support conditional writes"), "{}", text(&refused));
    assert_eq!(server.objects(), Vec::<String>::new(), "nothing is left in the bucket, not even the check's object");
}

#[test]
fn the_daemon_publishes_what_it_seals_and_leaves_the_copy_whole_when_it_stops() {
    use crate::daemon::{audit_event, client, eventually, patient, post, sources_toml, Daemon, TOKEN_EPJ};
    let ws = Workspace::new();
    let store = ws.path("store");
    let server = S3Server::start(HONOURS_CONDITIONAL_WRITES, &ws.path("s3"));
    // The server's address and region from the configuration file; only the credentials
    // from the environment.
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n[limits]\ngap_grace_secs = 0\n[journal]\nmax_epoch_age_secs = 1\n[publish]\nto = \"s3://{BUCKET}/live\"\ninterval_secs = 1\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\nallow_http = true\n{}",
        server.port,
        sources_toml("")
    );
    let credentials: Vec<(String, String)> = server.env().into_iter().filter(|(k, _)| k.ends_with("_KEY_ID") || k.ends_with("_SECRET_ACCESS_KEY")).collect();
    assert_eq!(credentials.len(), 2);
    let daemon = Daemon::start_with_env(&ws, &store, &config, &credentials);
    let c = client();
    for i in 0..10 {
        let (status, body, _) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &audit_event(&format!("ev-{i}"), &patient(i % 3 + 1), Some(i64::from(i) + 1)));
        assert_eq!(status, 201, "{body}");
    }
    eventually(30, "a sealed epoch is published while the daemon runs", || {
        let metrics = c.get(daemon.url("/metrics")).send().and_then(|r| r.text()).unwrap_or_default();
        metrics.lines().any(|l| l.strip_prefix("loggvakt_published_epoch ").is_some_and(|n| n.trim() != "0"))
    });
    for i in 10..15 {
        let (status, body, _) = post(&c, &daemon.url("/fhir/AuditEvent"), TOKEN_EPJ, &audit_event(&format!("ev-{i}"), &patient(1), Some(i64::from(i) + 1)));
        assert_eq!(status, 201, "{body}");
    }
    daemon.stop();
    let local = local_verify(&ws, &store);
    let (out, remote) = server.verify(&ws, "live");
    assert!(out.status.success(), "the copy verifies: {}", text(&out));
    for field in ["records", "epochs", "head"] {
        assert_eq!(remote[field], local[field], "{field}: after the daemon stopped, the copy holds all it sealed");
    }
}
