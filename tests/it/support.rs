//! Building stores the way a user does (keygen, samples, ingest), and rewriting their files
//! the way an attacker would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::{Array, FixedSizeBinaryArray, Int64Array};
use loggvakt_journal::manifest::Manifest;
use loggvakt_journal::segment::{segment_batch, segment_schema, SealedRecord, SegmentFile, SEQ_COLUMN, TAG_COLUMN};
use loggvakt_model::EventColumns;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

pub fn loggvakt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loggvakt"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the loggvakt binary runs")
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A temporary working directory with a key pair and generated input.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub trusted: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("keys/operator.key");
        let trusted = dir.path().join("keys/trusted.txt");
        let out = run(loggvakt().args(["keygen", "--name", "test-operator"]).arg("--out").arg(&key).arg("--trusted-keys").arg(&trusted));
        assert!(out.status.success(), "keygen: {}", text(&out));
        Workspace { dir, key, trusted }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `events` synthetic AuditEvents (and their context) into `name/`.
    pub fn samples(&self, name: &str, seed: u64, events: u64) -> Vec<PathBuf> {
        let out_dir = self.path(name);
        let out = run(loggvakt()
            .args(["samples", "--flat", "--seed", &seed.to_string(), "--events", &events.to_string(), "--employees", "60", "--patients", "400"])
            .arg("--out")
            .arg(&out_dir));
        assert!(out.status.success(), "samples: {}", text(&out));
        vec![out_dir.join("context.ndjson"), out_dir.join("events.ndjson")]
    }

    pub fn ingest(&self, store: &Path, files: &[PathBuf], extra: &[&str]) -> Output {
        run(loggvakt().arg("ingest").arg("--store").arg(store).arg("--key").arg(&self.key).args(extra).args(files))
    }

    pub fn verify(&self, store: &Path, checkpoint: Option<&Path>) -> Output {
        self.verify_with_keys(store, &self.trusted, checkpoint)
    }

    pub fn verify_with_keys(&self, store: &Path, trusted: &Path, checkpoint: Option<&Path>) -> Output {
        let mut cmd = loggvakt();
        cmd.arg("verify").arg("--store").arg(store).arg("--trusted-keys").arg(trusted);
        if let Some(c) = checkpoint {
            cmd.arg("--checkpoint").arg(c);
        }
        run(&mut cmd)
    }

    pub fn export_checkpoint(&self, store: &Path, out_file: &Path) {
        let out = run(loggvakt().arg("export-checkpoint").arg("--store").arg(store).arg("--out").arg(out_file).arg("--trusted-keys").arg(&self.trusted));
        assert!(out.status.success(), "export-checkpoint: {}", text(&out));
    }

    /// A store of 600 events sealed in several epochs of at most 200 records.
    pub fn store_with_epochs(&self) -> PathBuf {
        let store = self.path("store");
        let files = self.samples("input", 7, 600);
        let out = self.ingest(&store, &files, &["--epoch-records", "200", "--chunk-bytes", "65536"]);
        assert!(out.status.success(), "ingest: {}", text(&out));
        let verified = self.verify(&store, None);
        assert!(verified.status.success(), "a fresh store verifies: {}", text(&verified));
        store
    }
}

pub fn manifests(store: &Path) -> Vec<Manifest> {
    loggvakt_journal::layout::read_manifests(store).expect("manifests").into_iter().map(|(m, _, _)| m).collect()
}

/// Rows of a segment as the journal wrote them: (seq, event, tag), in file order.
pub fn read_rows(path: &Path) -> (Vec<SealedRecord>, Vec<(String, String)>) {
    let file = SegmentFile::open(path, 1024).expect("segment opens");
    let metadata = file.metadata.clone();
    let mut rows = Vec::new();
    for batch in file.reader {
        let batch = batch.expect("batch");
        let columns = EventColumns::new(&batch).expect("event columns");
        let seqs = batch.column_by_name(SEQ_COLUMN).and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned()).expect("seq");
        let tags = batch.column_by_name(TAG_COLUMN).and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>().cloned()).expect("tag");
        for row in 0..batch.num_rows() {
            let mut tag = [0u8; loggvakt_journal::chain::TAG_LEN];
            tag.copy_from_slice(tags.value(row));
            rows.push(SealedRecord { seq: seqs.value(row) as u64, event: std::sync::Arc::new(columns.event(row)), tag });
        }
    }
    (rows, metadata)
}

/// Rewrites a segment in place, as an attacker with file access would, keeping its metadata.
pub fn rewrite_segment(path: &Path, edit: impl FnOnce(&mut Vec<SealedRecord>)) {
    let (mut rows, metadata) = read_rows(path);
    edit(&mut rows);
    let kv = metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
    let props = WriterProperties::builder().set_key_value_metadata(Some(kv)).build();
    let file = std::fs::File::create(path).expect("rewrite");
    let mut writer = ArrowWriter::try_new(file, segment_schema(), Some(props)).expect("writer");
    let refs: Vec<&SealedRecord> = rows.iter().collect();
    writer.write(&segment_batch(&refs).expect("batch")).expect("write");
    writer.close().expect("close");
}

/// The first segment of epoch 2 with at least three rows.
pub fn victim_segment(store: &Path) -> (String, PathBuf) {
    let m = &manifests(store)[1];
    let s = m.segments.iter().find(|s| s.rows >= 3).expect("a segment with 3 rows");
    (s.path.clone(), store.join(&s.path))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Asserts the verifier failed and reported a line with every one of `parts`.
pub fn assert_reports(output: &Output, parts: &[&str]) {
    let report = text(output);
    if std::env::var_os("SHOW_REPORTS").is_some() {
        eprintln!("{report}");
    }
    assert_eq!(output.status.code(), Some(1), "verify must fail:\n{report}");
    assert!(report.lines().any(|line| parts.iter().all(|p| line.contains(p))), "expected a report line containing all of {parts:?}, got:\n{report}");
}
