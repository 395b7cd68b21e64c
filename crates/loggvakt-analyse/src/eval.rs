//! Scores a detect run against ground truth: a labels file (`event_id,class,case,…`, as
//! `loggvakt samples` writes it) against the queues, flags and unexplained lists in a
//! detect output directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::AnalyseError;

#[derive(Debug, Clone, Serialize)]
pub struct DetectorScore {
    pub detector: String,
    pub flagged: usize,
    pub true_positives: usize,
    pub precision: f64,
    /// Of the accesses labelled with this detector's class, the share it flagged.
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub labelled: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueScore {
    pub orgnr: String,
    pub cases: usize,
    pub true_cases: usize,
    pub precision: f64,
    pub capacity: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub injected_cases: usize,
    /// Injected cases with at least one access in some organisation's queue.
    pub queued_cases: usize,
    /// Injected cases with at least one access flagged by the detector of the same id.
    pub detected_cases: usize,
}

/// The share of all accesses (to a patient) that one kind of explanation accounts for.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationShare {
    /// participant, unit, team or service
    pub by: String,
    /// The evidence: encounter, episode_of_care, appointment, service_request, …
    pub kind: String,
    pub accesses: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub detectors: Vec<DetectorScore>,
    pub queues: Vec<QueueScore>,
    pub classes: Vec<ClassScore>,
    pub queue_precision: f64,
    pub queue_recall: f64,
    pub accesses: u64,
    pub explained: u64,
    pub explained_share: f64,
    /// Explained share among accesses that are not labelled snooping.
    pub legitimate_explained_share: f64,
    /// The explained share split by kind of explanation, largest first.
    pub explanations: Vec<ExplanationShare>,
}

struct Label {
    class: String,
    case: String,
}

fn read_csv(path: &Path) -> Result<Vec<Vec<String>>, AnalyseError> {
    let text = std::fs::read_to_string(path).map_err(|e| AnalyseError::io(path, e))?;
    Ok(crate::csv::read(&text).into_iter().skip(1).filter(|row| row.iter().any(|cell| !cell.is_empty())).collect())
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Reads `queues_dir/<orgnr>/{queue.json,flags.csv,unexplained.csv}` and the labels.
pub fn evaluate(queues_dir: &Path, labels_path: &Path) -> Result<Evaluation, AnalyseError> {
    let mut labels: HashMap<String, Label> = HashMap::new();
    for (i, row) in read_csv(labels_path)?.into_iter().enumerate() {
        if row.len() < 3 {
            return Err(AnalyseError::Definition { origin: labels_path.display().to_string(), line: i + 2, reason: "expected event_id,class,case,…".into() });
        }
        labels.insert(row[0].clone(), Label { class: row[1].clone(), case: row[2].clone() });
    }
    let mut orgs: Vec<_> =
        std::fs::read_dir(queues_dir).map_err(|e| AnalyseError::io(queues_dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("queue.json").is_file()).collect();
    orgs.sort();
    if orgs.is_empty() {
        return Err(AnalyseError::Definition {
            origin: queues_dir.display().to_string(),
            line: 0,
            reason: "no <orgnr>/queue.json here; point --queues at the --out of 'loggvakt detect'".into(),
        });
    }
    let mut flagged: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut queues = Vec::new();
    let mut queued_label_cases: BTreeSet<String> = BTreeSet::new();
    let (mut accesses, mut explained, mut unexplained_legit) = (0u64, 0u64, 0u64);
    let mut by_kind: BTreeMap<(String, String), u64> = BTreeMap::new();
    for dir in &orgs {
        let path = dir.join("queue.json");
        let text = std::fs::read_to_string(&path).map_err(|e| AnalyseError::io(&path, e))?;
        let q: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| AnalyseError::Definition { origin: path.display().to_string(), line: e.line(), reason: e.to_string() })?;
        let orgnr = q["orgnr"].as_str().unwrap_or_default().to_owned();
        accesses += q["accesses"].as_u64().unwrap_or(0);
        explained += q["explained"].as_u64().unwrap_or(0);
        for x in q["explanations"].as_array().into_iter().flatten() {
            let key = (x["by"].as_str().unwrap_or("").to_owned(), x["kind"].as_str().unwrap_or("").to_owned());
            *by_kind.entry(key).or_default() += x["accesses"].as_u64().unwrap_or(0);
        }
        let cases = q["cases"].as_array().cloned().unwrap_or_default();
        let mut true_cases = 0;
        for case in &cases {
            let mut hit = false;
            for a in case["accesses"].as_array().into_iter().flatten() {
                if let Some(label) = a["event_id"].as_str().and_then(|id| labels.get(id)) {
                    hit = true;
                    queued_label_cases.insert(label.case.clone());
                }
            }
            true_cases += usize::from(hit);
        }
        queues.push(QueueScore {
            orgnr,
            cases: cases.len(),
            true_cases,
            precision: ratio(true_cases, cases.len()),
            capacity: q["settings"]["capacity"].as_u64().unwrap_or(0) as usize,
        });
        for row in read_csv(&dir.join("flags.csv"))? {
            if let [detector, event_id, ..] = row.as_slice() {
                flagged.entry(detector.clone()).or_default().insert(event_id.clone());
            }
        }
        for row in read_csv(&dir.join("unexplained.csv"))? {
            if row.first().is_some_and(|id| !labels.contains_key(id)) {
                unexplained_legit += 1;
            }
        }
    }
    let mut by_class: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in labels.values() {
        by_class.entry(&l.class).or_default().insert(&l.case);
    }
    let mut detectors = Vec::new();
    for (detector, events) in &flagged {
        let tp = events.iter().filter(|e| labels.contains_key(*e)).count();
        let of_class: Vec<&String> = labels.iter().filter(|(_, l)| &l.class == detector).map(|(id, _)| id).collect();
        let recall = (!of_class.is_empty()).then(|| ratio(of_class.iter().filter(|id| events.contains(**id)).count(), of_class.len()));
        let precision = ratio(tp, events.len());
        let f1 = recall.map(|r| if precision + r == 0.0 { 0.0 } else { 2.0 * precision * r / (precision + r) });
        detectors.push(DetectorScore { detector: detector.clone(), flagged: events.len(), true_positives: tp, precision, recall, f1, labelled: of_class.len() });
    }
    let classes = by_class
        .iter()
        .map(|(class, cases)| {
            let own = flagged.get(*class);
            let detected = cases.iter().filter(|case| labels.iter().any(|(id, l)| l.case == **case && own.is_some_and(|f| f.contains(id)))).count();
            ClassScore {
                class: (*class).to_owned(),
                injected_cases: cases.len(),
                queued_cases: cases.iter().filter(|c| queued_label_cases.contains(**c)).count(),
                detected_cases: detected,
            }
        })
        .collect();
    let total_cases: usize = queues.iter().map(|q| q.cases).sum();
    let total_true: usize = queues.iter().map(|q| q.true_cases).sum();
    let all_label_cases: BTreeSet<&str> = labels.values().map(|l| l.case.as_str()).collect();
    let legit = accesses.saturating_sub(labels.len() as u64);
    let mut explanations: Vec<ExplanationShare> =
        by_kind.into_iter().map(|((by, kind), n)| ExplanationShare { by, kind, accesses: n, share: ratio(n as usize, accesses as usize) }).collect();
    explanations.sort_by(|a, b| b.accesses.cmp(&a.accesses).then_with(|| a.by.cmp(&b.by)).then_with(|| a.kind.cmp(&b.kind)));
    Ok(Evaluation {
        explanations,
        detectors,
        queues,
        classes,
        queue_precision: ratio(total_true, total_cases),
        queue_recall: ratio(queued_label_cases.len(), all_label_cases.len()),
        accesses,
        explained,
        explained_share: ratio(explained as usize, accesses as usize),
        legitimate_explained_share: if legit == 0 { 0.0 } else { 1.0 - unexplained_legit as f64 / legit as f64 },
    })
}
