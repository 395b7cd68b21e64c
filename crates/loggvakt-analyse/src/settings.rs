//! Review settings, per organisation: how many cases a reviewer can take a week, which
//! care window counts as explaining an access, how large the quality-control sample is.
//!
//! ```json
//! { "capacity": 25, "min_score": 2.0, "qc_sample": 5, "window_before_days": 7, "window_after_days": 14,
//!   "lookback_days": 84, "organisations": { "974749025": { "capacity": 40, "window_after_days": 30 } } }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AnalyseError;

/// Settings that an organisation may override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgOverrides {
    pub capacity: Option<usize>,
    pub min_score: Option<f64>,
    pub qc_sample: Option<usize>,
    pub window_before_days: Option<i64>,
    pub window_after_days: Option<i64>,
}

/// The settings in force for one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OrgSettings {
    pub capacity: usize,
    pub min_score: f64,
    pub qc_sample: usize,
    pub window_before_days: i64,
    pub window_after_days: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Cases per organisation per run (a week's review).
    pub capacity: usize,
    /// A case below this score is not queued (it still counts in the statistics).
    pub min_score: f64,
    /// Unflagged accesses drawn per organisation for quality control.
    pub qc_sample: usize,
    /// Care evidence explains accesses this many days before it starts…
    pub window_before_days: i64,
    /// …and this many days after it ends.
    pub window_after_days: i64,
    /// How far before the review period detectors of slow patterns look (the
    /// `access_history` view): 12 weeks, since a snooper who opens a patient once a week
    /// stands out only over months.
    pub lookback_days: i64,
    /// At most this many accesses in one part of a view computed in parts
    /// (`access_explained`); by default as many as half the memory limit holds (see
    /// `parts.rs`). Smaller parts use less memory and read the context more often.
    pub max_rows_per_part: Option<usize>,
    pub organisations: BTreeMap<String, OrgOverrides>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            capacity: 25,
            min_score: 2.0,
            qc_sample: 5,
            window_before_days: 7,
            window_after_days: 14,
            lookback_days: 84,
            max_rows_per_part: None,
            organisations: BTreeMap::new(),
        }
    }
}

impl Settings {
    pub fn load(path: &Path) -> Result<Settings, AnalyseError> {
        let text = std::fs::read_to_string(path).map_err(|e| AnalyseError::io(path, e))?;
        let settings: Settings = serde_json::from_str(&text).map_err(|e| AnalyseError::Definition { origin: path.display().to_string(), line: e.line(), reason: e.to_string() })?;
        if settings.lookback_days < 0 {
            return Err(AnalyseError::Definition { origin: path.display().to_string(), line: 0, reason: "lookback_days cannot be negative".into() });
        }
        if settings.max_rows_per_part == Some(0) {
            return Err(AnalyseError::Definition { origin: path.display().to_string(), line: 0, reason: "max_rows_per_part must be at least 1".into() });
        }
        for (org, o) in &settings.organisations {
            if let Err(e) = loggvakt_model::ids::validate_orgnr(org) {
                return Err(AnalyseError::Definition { origin: path.display().to_string(), line: 0, reason: format!("organisations.{org}: {e}") });
            }
            if o.window_before_days.is_some_and(|d| d < 0) || o.window_after_days.is_some_and(|d| d < 0) {
                return Err(AnalyseError::Definition { origin: path.display().to_string(), line: 0, reason: format!("organisations.{org}: a care window cannot be negative") });
            }
        }
        Ok(settings)
    }

    pub fn for_org(&self, orgnr: &str) -> OrgSettings {
        let o = self.organisations.get(orgnr).cloned().unwrap_or_default();
        OrgSettings {
            capacity: o.capacity.unwrap_or(self.capacity),
            min_score: o.min_score.unwrap_or(self.min_score),
            qc_sample: o.qc_sample.unwrap_or(self.qc_sample),
            window_before_days: o.window_before_days.unwrap_or(self.window_before_days),
            window_after_days: o.window_after_days.unwrap_or(self.window_after_days),
        }
    }

    pub(crate) fn max_qc_sample(&self) -> usize {
        self.organisations.values().filter_map(|o| o.qc_sample).chain([self.qc_sample]).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organisation_overrides_only_what_it_names() {
        let s: Settings = serde_json::from_str(r#"{"capacity": 10, "organisations": {"974749025": {"capacity": 40}}}"#).unwrap();
        assert_eq!(s.for_org("974749025").capacity, 40);
        assert_eq!(s.for_org("974749025").window_after_days, 14);
        assert_eq!(s.for_org("999999999").capacity, 10);
    }

    #[test]
    fn an_unknown_setting_is_refused() {
        assert!(serde_json::from_str::<Settings>(r#"{"capacty": 10}"#).is_err());
    }
}
