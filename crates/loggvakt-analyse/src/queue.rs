//! From flags to review queues: group one accessor's flagged accesses into a case, score
//! it, rank the cases of each organisation, and cut the queue at the reviewers' capacity.
//!
//! A flag weighs `severity × strength`, times a care factor: 0.15 when care evidence
//! explains the access and the detector is excused by care; 1.5 when nothing explains it and
//! no care relationship could excuse it (own record, family, ex-partner, protected
//! address); 1 otherwise. Within a case each detector counts with its heaviest flag, raised
//! by repetition (`1 + ¼·ln n` for the n flagged accesses at least half as heavy), and the
//! detectors add up.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::engine::{AccessRow, Analysis, Coverage, Daily, Explanation, Flag};
use crate::settings::{OrgSettings, Settings};

/// One flagged access in a case, with every reason it was flagged.
#[derive(Debug, Clone, Serialize)]
pub struct CaseAccess {
    /// The AuditEvent `id` the source gave the event.
    pub event_id: String,
    pub source_system: String,
    pub seq: i64,
    pub occurred_at: String,
    pub patient_id: Option<String>,
    pub action: String,
    pub basis: String,
    pub purpose_code: Option<String>,
    pub unit_name: Option<String>,
    pub explained: bool,
    pub explained_by: Option<String>,
    pub detectors: Vec<String>,
    pub reasons_nb: Vec<String>,
    pub reasons_en: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accessor {
    pub person_id: Option<String>,
    pub hpr: Option<String>,
    pub name: Option<String>,
    pub unit_name: Option<String>,
    pub role_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectorHit {
    pub id: String,
    pub title_nb: String,
    pub title_en: String,
    pub severity: u8,
    pub accesses: usize,
    pub weight: f64,
}

/// One accessor's flagged accesses in the period.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub case_id: String,
    pub rank: usize,
    pub score: f64,
    pub accessor: Accessor,
    pub patients: usize,
    pub detectors: Vec<DetectorHit>,
    pub accesses: Vec<CaseAccess>,
}

/// Per-detector figures for one organisation.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorStat {
    pub id: String,
    pub title_nb: String,
    pub title_en: String,
    pub flagged_accesses: usize,
    pub flagged_explained: usize,
    pub in_queued_cases: usize,
}

/// A note to an organisation whose patient was in another organisation's case.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub to_orgnr: String,
    pub from_orgnr: String,
    pub case_id: String,
    pub patient_id: String,
    pub event_ids: Vec<String>,
    pub detectors: Vec<String>,
}

/// One organisation's review queue and the figures around it.
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    pub orgnr: String,
    pub org_name: Option<String>,
    pub from: String,
    pub to: String,
    pub settings: OrgSettings,
    pub cases: Vec<Case>,
    /// Cases above the threshold that did not fit the capacity.
    pub cases_over_capacity: usize,
    /// Cases below the threshold: flagged, but weak.
    pub cases_below_threshold: usize,
    pub quality_sample: Vec<CaseAccess>,
    pub coverage: Vec<Coverage>,
    /// The explained accesses by kind of explanation.
    pub explanations: Vec<Explanation>,
    pub daily: Vec<Daily>,
    pub detectors: Vec<DetectorStat>,
    pub accesses: u64,
    pub explained: u64,
    /// Accesses to patients known only by an identifier from outside the Norwegian
    /// registers (a hospital's MRN, a foreign id): stored, but not judged by the detectors,
    /// which cannot look such a patient up. Not counted in `accesses`.
    pub unidentified_patient_accesses: u64,
    /// What the review read: the signed checkpoint that covered the store, and the context
    /// snapshot with the digest of its files (also recorded in the journal, so a regulator
    /// can check the context was not changed afterwards, and rerun the review from them).
    pub basis: Option<ReviewBasis>,
}

pub use loggvakt_format::own::ReviewBasis;

fn time_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

/// Fills `{name}` from the evidence and the access; an unknown name shows as "–".
fn render(template: &str, flag: &Flag, access: &AccessRow) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let value = flag.evidence.get(name).cloned().or_else(|| match name {
            "accessor" => access.accessor_name.clone().or_else(|| access.accessor_hpr.clone()),
            "patient" => access.patient_id.clone(),
            "time" => Some(time_text(access.occurred_at)),
            "unit" => access.unit_name.clone(),
            "strength" => Some(format!("{:.2}", flag.strength)),
            _ => None,
        });
        out.push_str(value.as_deref().unwrap_or("–"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn weight(analysis: &Analysis, flag: &Flag, access: &AccessRow) -> f64 {
    let d = &analysis.detectors[flag.detector];
    let care = match (access.explained, d.excused_by_care) {
        (true, true) => 0.15,
        (false, false) => 1.5,
        _ => 1.0,
    };
    d.severity as f64 * flag.strength * care
}

/// One detector's part of a case score: its heaviest flag, raised by repetition
/// (`1 + ¼·ln n`) where n counts only the flags at least half as heavy. Twenty accesses
/// that care explains (weight × 0.15) do not make one unexplained access look repeated:
/// on the messy sample region they lifted colleague and no-care cases of ordinary
/// clinicians above single-access neighbour and break-the-glass cases.
fn detector_score(weights: &[f64]) -> f64 {
    let heaviest = weights.iter().copied().fold(0.0, f64::max);
    let comparable = weights.iter().filter(|&&w| w >= heaviest / 2.0).count().max(1);
    heaviest * (1.0 + 0.25 * (comparable as f64).ln())
}

fn accessor_key(a: &AccessRow) -> String {
    a.accessor_id
        .clone()
        .or_else(|| a.accessor_hpr.as_ref().map(|h| format!("hpr:{h}")))
        .or_else(|| a.accessor_name.as_ref().map(|n| format!("name:{n}")))
        .unwrap_or_else(|| "unknown".into())
}

fn case_access(analysis: &Analysis, access: &AccessRow, flags: &[&Flag]) -> CaseAccess {
    let mut detectors = Vec::new();
    let mut reasons_nb = Vec::new();
    let mut reasons_en = Vec::new();
    for f in flags {
        let d = &analysis.detectors[f.detector];
        detectors.push(d.id.clone());
        reasons_nb.push(render(&d.explain_nb, f, access));
        reasons_en.push(render(&d.explain_en, f, access));
    }
    CaseAccess {
        event_id: access.event_id.clone(),
        source_system: access.source_system.clone(),
        seq: access.seq,
        occurred_at: time_text(access.occurred_at),
        patient_id: access.patient_id.clone(),
        action: access.action.clone(),
        basis: access.basis.clone(),
        purpose_code: access.purpose_code.clone(),
        unit_name: access.unit_name.clone(),
        explained: access.explained,
        explained_by: access.explained_by.clone(),
        detectors,
        reasons_nb,
        reasons_en,
    }
}

/// Builds every organisation's queue (or only `org`'s) and the notices to patients' care
/// organisations. Queues never hold another organisation's accesses.
pub fn build_queues(analysis: &Analysis, settings: &Settings) -> (Vec<Queue>, Vec<Notice>) {
    // tenant → accessor → seq → flags
    let mut grouped: BTreeMap<&str, BTreeMap<String, BTreeMap<i64, Vec<&Flag>>>> = BTreeMap::new();
    for flag in &analysis.flags {
        let Some(access) = analysis.accesses.get(&flag.seq) else { continue };
        grouped.entry(access.tenant.as_str()).or_default().entry(accessor_key(access)).or_default().entry(flag.seq).or_default().push(flag);
    }
    let tenants: BTreeSet<&str> = analysis.coverage.iter().map(|c| c.tenant.as_str()).chain(grouped.keys().copied()).collect();
    let mut queues = Vec::new();
    let mut notices = Vec::new();
    for tenant in tenants {
        let org_settings = settings.for_org(tenant);
        let mut cases = Vec::new();
        for (key, by_seq) in grouped.get(tenant).into_iter().flatten() {
            // Per detector: every flag's weight, in the case's accesses.
            let mut per_detector: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            let mut accesses = Vec::new();
            let mut patients = BTreeSet::new();
            let mut first: Option<&AccessRow> = None;
            for (seq, flags) in by_seq {
                let Some(access) = analysis.accesses.get(seq) else { continue };
                first.get_or_insert(access);
                patients.extend(access.patient_id.clone());
                for f in flags {
                    per_detector.entry(f.detector).or_default().push(weight(analysis, f, access));
                }
                accesses.push(case_access(analysis, access, flags));
            }
            let Some(first) = first else { continue };
            let score: f64 = per_detector.values().map(|weights| detector_score(weights)).sum();
            let mut detectors: Vec<DetectorHit> = per_detector
                .iter()
                .map(|(&d, weights)| {
                    let det = &analysis.detectors[d];
                    let w = weights.iter().copied().fold(0.0, f64::max);
                    DetectorHit { id: det.id.clone(), title_nb: det.title_nb.clone(), title_en: det.title_en.clone(), severity: det.severity, accesses: weights.len(), weight: w }
                })
                .collect();
            detectors.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            accesses.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
            let case_id = format!("LV-{}-{}", analysis.period.from.format("%Y%m%d"), &blake3::hash(format!("{tenant}|{key}").as_bytes()).to_hex()[..8]);
            cases.push(Case {
                case_id,
                rank: 0,
                score: (score * 100.0).round() / 100.0,
                accessor: Accessor {
                    person_id: first.accessor_id.clone(),
                    hpr: first.accessor_hpr.clone(),
                    name: first.accessor_name.clone(),
                    unit_name: first.unit_name.clone(),
                    role_code: first.role_code.clone(),
                },
                patients: patients.len(),
                detectors,
                accesses,
            });
        }
        cases.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.case_id.cmp(&b.case_id)));
        let below = cases.iter().filter(|c| c.score < org_settings.min_score).count();
        cases.retain(|c| c.score >= org_settings.min_score);
        let over = cases.len().saturating_sub(org_settings.capacity);
        cases.truncate(org_settings.capacity);
        for (i, c) in cases.iter_mut().enumerate() {
            c.rank = i + 1;
        }
        // Linked notices: the patient's care organisation, when it is not the employer.
        for case in &cases {
            let mut by_patient: BTreeMap<&str, (Vec<String>, BTreeSet<String>)> = BTreeMap::new();
            for a in &case.accesses {
                if let Some(p) = &a.patient_id {
                    let entry = by_patient.entry(p).or_default();
                    entry.0.push(a.event_id.clone());
                    entry.1.extend(a.detectors.iter().cloned());
                }
            }
            for (patient, (event_ids, detectors)) in by_patient {
                let orgs: BTreeSet<&String> = analysis.care_orgs.get(patient).into_iter().flatten().filter(|o| o.as_str() != tenant).collect();
                for to in orgs {
                    notices.push(Notice {
                        to_orgnr: to.clone(),
                        from_orgnr: tenant.to_owned(),
                        case_id: case.case_id.clone(),
                        patient_id: patient.to_owned(),
                        event_ids: event_ids.clone(),
                        detectors: detectors.iter().cloned().collect(),
                    });
                }
            }
        }
        let quality_sample = analysis.samples.get(tenant).into_iter().flatten().filter_map(|seq| analysis.accesses.get(seq)).map(|a| case_access(analysis, a, &[])).collect();
        let queued: BTreeSet<&str> = cases.iter().flat_map(|c| c.accesses.iter().map(|a| a.event_id.as_str())).collect();
        // (flagged, of them explained, in queued cases) per detector, from this tenant's flags only.
        let mut tally = vec![(0usize, 0usize, 0usize); analysis.detectors.len()];
        for (seq, flags) in grouped.get(tenant).into_iter().flat_map(|by_accessor| by_accessor.values()).flatten() {
            let Some(a) = analysis.accesses.get(seq) else { continue };
            for f in flags {
                let t = &mut tally[f.detector];
                t.0 += 1;
                t.1 += usize::from(a.explained);
                t.2 += usize::from(queued.contains(a.event_id.as_str()));
            }
        }
        let detectors = analysis
            .detectors
            .iter()
            .zip(&tally)
            .map(|(d, &(flagged, explained, in_queue))| DetectorStat {
                id: d.id.clone(),
                title_nb: d.title_nb.clone(),
                title_en: d.title_en.clone(),
                flagged_accesses: flagged,
                flagged_explained: explained,
                in_queued_cases: in_queue,
            })
            .collect();
        let coverage: Vec<Coverage> = analysis.coverage.iter().filter(|c| c.tenant == tenant).cloned().collect();
        queues.push(Queue {
            orgnr: tenant.to_owned(),
            org_name: analysis.org_names.get(tenant).cloned(),
            from: analysis.period.from.to_string(),
            to: analysis.period.to.to_string(),
            settings: org_settings,
            cases,
            cases_over_capacity: over,
            cases_below_threshold: below,
            quality_sample,
            accesses: coverage.iter().map(|c| c.accesses).sum(),
            explained: coverage.iter().map(|c| c.explained).sum(),
            unidentified_patient_accesses: analysis.unidentified.get(tenant).copied().unwrap_or(0),
            basis: None,
            coverage,
            explanations: analysis.explanations.iter().filter(|x| x.tenant == tenant).cloned().collect(),
            daily: analysis.daily.iter().filter(|d| d.tenant == tenant).cloned().collect(),
            detectors,
        });
    }
    (queues, notices)
}

#[cfg(test)]
mod tests {
    use super::detector_score;

    #[test]
    fn repetition_counts_only_flags_as_heavy_as_half_the_heaviest() {
        let one = detector_score(&[3.0]);
        assert_eq!(one, 3.0);
        // Twenty accesses that care explains (3 × 0.15) do not repeat an unexplained one.
        let mut weak = vec![0.45; 20];
        weak.push(3.0);
        assert_eq!(detector_score(&weak), one);
        // Four unexplained ones do.
        let repeated = detector_score(&[3.0, 3.0, 2.0, 1.5]);
        assert!((repeated - 3.0 * (1.0 + 0.25 * 4f64.ln())).abs() < 1e-12);
    }
}
