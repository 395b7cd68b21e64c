//! The store's own records: what loggvakt itself appends to the journal, with source
//! system [`OWN_SYSTEM`]. Every one is built here, whoever appends it (the daemon's writer,
//! `loggvakt detect` or `quarantine retry` with the store opened locally, or the daemon on
//! their behalf over the admin channel), so a record of one kind reads the same whichever
//! process wrote it, and the verifier's reading of them (`docs/format.md` §8a) has one
//! counterpart:
//!
//! * a source's gap or silence ([`event`], action `other`, the finding's kind as action code);
//! * a read of the store: an ITI-81 search ([`event`], action `search`);
//! * a review run ([`review_run`]): one record per organisation's queue, naming what the
//!   review read ([`ReviewBasis`]), and one per patient exposed in it;
//! * a context snapshot that became current ([`context_snapshot`]), with its files' digest.

use loggvakt_model::codes::{actions, basis, channel, outcome};
use loggvakt_model::{AccessEvent, Digest16, Timestamp};

/// The source system of the store's own records; no outside source may use it.
pub const OWN_SYSTEM: &str = "loggvakt";
/// `record_part` of a review run's records.
pub const REVIEW_RECORD_PART: &str = "access-log-review";
/// `record_part` of a context snapshot's record.
pub const CONTEXT_RECORD_PART: &str = "context-snapshot";
/// The tenant of store-wide own records (a context snapshot serves every organisation):
/// not an organisation number, so no organisation's queue, search or view ever holds it.
pub const STORE_TENANT: &str = "loggvakt";

/// An own record: a finding about a source, or a read of the store. `detail` is kept as
/// the record's `reason_text`, and its digest as the source digest.
pub fn event(event_id: String, tenant_orgnr: &str, action: &str, action_code: &str, at: Timestamp, detail: String) -> AccessEvent {
    AccessEvent {
        source_digest: digest(&detail),
        event_id,
        source_system: OWN_SYSTEM.to_owned(),
        source_seq: None,
        occurred_at: at,
        recorded_at: None,
        received_at: at,
        tenant_orgnr: tenant_orgnr.to_owned(),
        user_person_id: None,
        user_hpr: None,
        user_local_id: None,
        user_name: None,
        unit_id: None,
        unit_name: None,
        role_code: None,
        function_code: None,
        patient_id: None,
        patient_id_kind: None,
        record_part: None,
        document_id: None,
        sensitivity: None,
        data_owner_org: None,
        action: action.to_owned(),
        action_code: Some(action_code.to_owned()),
        basis: basis::UNSPECIFIED.to_owned(),
        purpose_code: None,
        reason_text: Some(detail),
        channel: channel::INTEGRATION.to_owned(),
        outcome: outcome::GRANTED.to_owned(),
        source_format: OWN_SYSTEM.to_owned(),
    }
}

fn digest(text: &str) -> Digest16 {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(text.as_bytes()).as_bytes()[..16]);
    Digest16(out)
}

/// What a review read: the signed checkpoint its events end at (it read every record up to
/// `checkpoint_size` and none after), and the context snapshot with its files' BLAKE3
/// ([`crate::layout::files_digest`]). Rerunning the review from these gives the same queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewBasis {
    pub checkpoint_size: u64,
    pub checkpoint_head: String,
    pub context_snapshot: String,
    pub context_files_blake3: String,
}

/// A review run, as `loggvakt detect` describes it to whoever appends its records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewRun {
    /// Who ran it (the operator's user name).
    pub operator: String,
    /// The review period, as given (`YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    /// The one organisation reviewed, when it was limited to one.
    pub org: Option<String>,
    pub basis: ReviewBasis,
    pub queues: Vec<ReviewedQueue>,
}

/// One organisation's queue of a review run: the patients whose accesses it exposes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewedQueue {
    pub orgnr: String,
    pub patients: Vec<String>,
}

/// The records of a review run: per queue, one naming the basis (`reason_text`, JSON), then
/// one per patient exposed, so the patient's "who looked at my record" shows the review.
pub fn review_run(run: &ReviewRun, at: Timestamp) -> Vec<AccessEvent> {
    let run_id = blake3::hash(format!("{}|{}|{}|{:?}|{}", at.0, run.from, run.to, run.org, run.operator).as_bytes()).to_hex()[..16].to_owned();
    let basis_json = serde_json::to_string(&run.basis).unwrap_or_default();
    let mut records = Vec::new();
    for q in &run.queues {
        let mut patients: Vec<&str> = q.patients.iter().map(String::as_str).collect();
        patients.sort_unstable();
        patients.dedup();
        for patient in std::iter::once(None).chain(patients.into_iter().map(Some)) {
            let detail = if patient.is_none() { basis_json.clone() } else { format!("review {}..{} of {}", run.from, run.to, q.orgnr) };
            let mut record = event(format!("review-{run_id}-{}-{}", q.orgnr, records.len()), &q.orgnr, actions::LIST_EXPOSURE, "review", at, detail);
            record.user_local_id = Some(run.operator.clone());
            record.user_name = Some(run.operator.clone());
            record.patient_id = patient.map(str::to_owned);
            record.patient_id_kind = patient.and_then(|p| loggvakt_model::ids::validate_person_id(p).ok()).map(|k| k.code().to_owned());
            record.record_part = Some(REVIEW_RECORD_PART.into());
            record.document_id = Some(format!("detect {}..{}", run.from, run.to));
            record.purpose_code = Some("LOGGKONTROLL".into());
            if patient.is_some() {
                record.reason_text = None;
            }
            records.push(record);
        }
    }
    records
}

/// A context snapshot that became current: its name and its files' digest, so that the
/// snapshot a later review reads can be shown to be the one imported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextSnapshot {
    pub context_snapshot: String,
    pub context_files_blake3: String,
    /// When the import wrote it (RFC 3339), and who ran the import.
    pub imported_at: String,
    pub operator: String,
}

/// The record of a context snapshot (tenant [`STORE_TENANT`]: it is every organisation's).
pub fn context_snapshot(snapshot: &ContextSnapshot, at: Timestamp) -> AccessEvent {
    let detail = serde_json::to_string(snapshot).unwrap_or_default();
    let mut record = event(format!("context-{}-{}", snapshot.context_snapshot, &snapshot.context_files_blake3), STORE_TENANT, actions::OTHER, "context-snapshot", at, detail);
    record.user_local_id = Some(snapshot.operator.clone());
    record.user_name = Some(snapshot.operator.clone());
    record.record_part = Some(CONTEXT_RECORD_PART.into());
    record.document_id = Some(snapshot.context_snapshot.clone());
    record
}

/// What an own record claims about a context snapshot (a review's basis, or an import's
/// record): the snapshot's name and its files' digest. `None` for other records.
pub fn context_claim(event: &AccessEvent) -> Option<(String, String)> {
    if event.source_system != OWN_SYSTEM || !matches!(event.record_part.as_deref(), Some(REVIEW_RECORD_PART | CONTEXT_RECORD_PART)) {
        return None;
    }
    let claim: serde_json::Value = serde_json::from_str(event.reason_text.as_deref()?).ok()?;
    Some((claim["context_snapshot"].as_str()?.to_owned(), claim["context_files_blake3"].as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> ReviewRun {
        ReviewRun {
            operator: "personvernombud".into(),
            from: "2026-11-01".into(),
            to: "2026-11-28".into(),
            org: None,
            basis: ReviewBasis { checkpoint_size: 42, checkpoint_head: "ab".repeat(32), context_snapshot: "v000002".into(), context_files_blake3: "cd".repeat(32) },
            queues: vec![ReviewedQueue { orgnr: "983971636".into(), patients: vec!["13097248022".into(), "13097248022".into(), "29029600013".into()] }],
        }
    }

    #[test]
    fn a_review_run_names_its_basis_once_per_queue_and_each_exposed_patient_once() {
        let records = review_run(&run(), Timestamp(1_700_000_000_000_000));
        assert_eq!(records.len(), 3, "one record for the queue and one per distinct patient");
        assert_eq!(context_claim(&records[0]), Some(("v000002".into(), "cd".repeat(32))));
        assert_eq!(records[1].patient_id.as_deref(), Some("13097248022"));
        assert!(records[1..].iter().all(|r| r.reason_text.is_none() && context_claim(r).is_none()));
        assert!(records.iter().all(|r| r.source_system == OWN_SYSTEM && r.action == actions::LIST_EXPOSURE));
        let ids: std::collections::HashSet<_> = records.iter().map(|r| r.event_id.clone()).collect();
        assert_eq!(ids.len(), 3, "distinct event ids");
    }

    #[test]
    fn a_context_snapshot_record_claims_its_digest_and_belongs_to_no_organisation() {
        let s = ContextSnapshot { context_snapshot: "v000003".into(), context_files_blake3: "ef".repeat(32), imported_at: "2026-12-01T10:00:00Z".into(), operator: "drift".into() };
        let record = context_snapshot(&s, Timestamp(0));
        assert_eq!(record.tenant_orgnr, STORE_TENANT);
        assert!(loggvakt_model::ids::validate_orgnr(&record.tenant_orgnr).is_err(), "no organisation can be this tenant");
        assert_eq!(context_claim(&record), Some(("v000003".into(), "ef".repeat(32))));
        let mut foreign = record.clone();
        foreign.source_system = "epj".into();
        assert_eq!(context_claim(&foreign), None, "only the store's own records claim anything");
    }
}
