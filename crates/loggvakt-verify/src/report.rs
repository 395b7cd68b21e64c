//! What the verifier found, located as precisely as the files allow.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A record's content does not hash to its chain tag: a field was changed, or the row replaced or moved.
    ModifiedRecord,
    /// A sequence number is missing: a row (or a whole segment's rows) was deleted.
    MissingRecord,
    /// A sequence number appears twice: a row was inserted.
    DuplicateRecord,
    /// A row carries a sequence number outside its epoch: a row was inserted.
    UnexpectedRecord,
    /// Rows are not in the segment's defined order: the file was rewritten with rows reordered.
    RowOrder,
    /// A row sits in a partition whose tenant or date it does not belong to.
    WrongPartition,
    /// A segment the manifest lists is not there.
    MissingSegment,
    /// A segment file no manifest lists.
    UnexpectedSegment,
    /// A segment file's own metadata names another path: files were renamed or swapped.
    RenamedSegment,
    /// A segment file's bytes differ from the hash its manifest recorded.
    ModifiedFile,
    /// A manifest is missing from the sequence of epochs.
    MissingManifest,
    /// A manifest differs from what its checkpoint signed.
    ManifestMismatch,
    /// The chain does not link across an epoch boundary, or a recomputed head differs.
    ChainBreak,
    /// A trusted checkpoint disagrees with the store.
    CheckpointMismatch,
    /// An epoch that no trusted checkpoint covers.
    UnsignedEpoch,
    /// A checkpoint signed only by keys the caller does not trust.
    UntrustedSignature,
    /// A checkpoint whose signature does not verify.
    ForgedCheckpoint,
    /// Records a trusted checkpoint covers are gone from the end of the store.
    Truncated,
    /// The store is an older state than a checkpoint the caller holds.
    RolledBack,
    /// The store's history differs from a checkpoint the caller holds.
    Forked,
    /// A file could not be read at all.
    Unreadable,
    /// The context snapshot a review run recorded (signed, in the chain) was changed or
    /// removed afterwards: the review's explanations can no longer be reproduced.
    ModifiedContext,
    /// The epoch index (`index/epochs.ndjson`) disagrees with the manifests: searches and
    /// patient views, which read it, would not see what the store holds.
    ModifiedIndex,
}

impl ProblemKind {
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::ModifiedRecord => "modified record",
            ProblemKind::MissingRecord => "missing record",
            ProblemKind::DuplicateRecord => "duplicated record",
            ProblemKind::UnexpectedRecord => "inserted record",
            ProblemKind::RowOrder => "rows reordered",
            ProblemKind::WrongPartition => "row in wrong partition",
            ProblemKind::MissingSegment => "missing segment",
            ProblemKind::UnexpectedSegment => "unexpected segment",
            ProblemKind::RenamedSegment => "renamed segment",
            ProblemKind::ModifiedFile => "modified file",
            ProblemKind::MissingManifest => "missing manifest",
            ProblemKind::ManifestMismatch => "manifest mismatch",
            ProblemKind::ChainBreak => "chain break",
            ProblemKind::CheckpointMismatch => "checkpoint mismatch",
            ProblemKind::UnsignedEpoch => "unsigned epoch",
            ProblemKind::UntrustedSignature => "untrusted signature",
            ProblemKind::ForgedCheckpoint => "forged checkpoint",
            ProblemKind::Truncated => "truncated",
            ProblemKind::RolledBack => "rolled back",
            ProblemKind::Forked => "forked history",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::ModifiedContext => "modified context",
            ProblemKind::ModifiedIndex => "modified index",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub file: Option<String>,
    /// 0-based row within the file.
    pub row: Option<u64>,
    pub seq: Option<u64>,
    pub detail: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Problem { kind, file: None, row: None, seq: None, detail: detail.into() }
    }
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_owned());
        self
    }
    pub fn at_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }
    pub fn at_seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }
}

impl Problem {
    /// `[label] file row N seq N`, with the words for row and seq given.
    pub(crate) fn write_heading(&self, f: &mut fmt::Formatter<'_>, label: &str, row_word: &str, seq_word: &str) -> fmt::Result {
        write!(f, "[{label}]")?;
        if let Some(file) = &self.file {
            write!(f, " {file}")?;
        }
        if let Some(row) = self.row {
            write!(f, " {row_word} {row}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " {seq_word} {seq}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_heading(f, self.kind.label(), "row", "seq")?;
        write!(f, ": {}", self.detail)
    }
}

fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub records: u64,
    pub segments: u64,
    pub epochs: u64,
    pub checkpoints_checked: u64,
    pub last_sealed_seq: u64,
    /// Chain head after the last sealed record, hex.
    pub head: String,
    pub signers: BTreeSet<String>,
    /// (size, time, signer) of the newest trusted checkpoint in the store.
    pub latest_checkpoint: Option<(u64, String, String)>,
    pub held_checkpoint_ok: bool,
    /// Rows after a chain break in their epoch, whose tags could not be checked one by one.
    pub unverified_rows: u64,
    pub unsealed_records: u64,
    /// Review runs whose context snapshot was checked against what they recorded.
    pub reviews_checked: u64,
    /// Entries of the patient index (derived) checked against the segments (full runs of a
    /// local store).
    pub patient_index_entries: u64,
    /// Incremental run: records through this seq were checked when the held checkpoint was
    /// taken and were not read again (0: everything was read).
    pub checked_before: u64,
    /// What a seal at work (or cut short by a crash) has written so far: segment files of
    /// the next epoch, and the newest epoch if its checkpoint is not written yet. Not
    /// problems, and not verified.
    pub in_flight: InFlight,
    pub notes: Vec<String>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InFlight {
    pub segments: u64,
    pub segments_epoch: u64,
    pub unsigned_epoch: Option<u64>,
}

impl Report {
    pub fn problem(&mut self, problem: Problem) {
        self.problems.push(problem);
    }
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_intact() {
            writeln!(
                f,
                "INTACT: {} in {} over {}; every record hashes into the signed chain.",
                counted(self.records, "record"),
                counted(self.segments, "segment"),
                counted(self.epochs, "epoch")
            )?;
        } else {
            writeln!(
                f,
                "NOT INTACT: {} in {}, {}, {}.",
                counted(self.problems.len() as u64, "problem"),
                counted(self.records, "record"),
                counted(self.segments, "segment"),
                counted(self.epochs, "epoch")
            )?;
        }
        writeln!(
            f,
            "  checkpoints verified: {} (signed by {})",
            self.checkpoints_checked,
            if self.signers.is_empty() { "no trusted key".to_owned() } else { self.signers.iter().cloned().collect::<Vec<_>>().join(", ") }
        )?;
        if let Some((size, time, signer)) = &self.latest_checkpoint {
            writeln!(f, "  latest checkpoint: {size} records at {time}, by {signer}")?;
        }
        writeln!(f, "  chain head after seq {}: {}", self.last_sealed_seq, self.head)?;
        if self.unverified_rows > 0 {
            writeln!(f, "  {} rows follow a break in their epoch and could not be checked one by one", self.unverified_rows)?;
        }
        if self.patient_index_entries > 0 {
            let n = self.patient_index_entries;
            writeln!(f, "  patient index: {n} {} checked against the segments", if n == 1 { "entry" } else { "entries" })?;
        }
        if self.checked_before > 0 {
            writeln!(
                f,
                "  incremental: records 1..={} were checked when your checkpoint was taken and are tied to it by the manifests' chain of heads; they were not read again",
                self.checked_before
            )?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}
