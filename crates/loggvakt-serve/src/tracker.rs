//! Source completeness: each source's sequence numbers, gaps, reused numbers and
//! silences. Findings become gap events in the journal (written by the writer); the
//! running state is kept in `STORE/sources/state.json` for `loggvakt sources`.
//!
//! A gap is recorded only once it has stayed open for the grace period, because a source
//! sending over several connections delivers out of order. Sequence numbers are counted
//! per configured source, not per recording system behind it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loggvakt_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::identity::Source;

pub const STATE_FILE: &str = "sources/state.json";
/// Open gaps kept per source; beyond it the oldest recorded ones are forgotten (they are in
/// the journal already).
const MAX_OPEN_GAPS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenGap {
    pub from: i64,
    pub to: i64,
    /// When it was seen, in microseconds since the epoch.
    pub opened_at: i64,
    pub recorded: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    pub last_seq: Option<i64>,
    /// Microseconds since the epoch.
    pub last_seen: Option<i64>,
    /// Received minus occurred of its last event, in microseconds.
    pub last_lag_micros: Option<i64>,
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub gaps_recorded: u64,
    /// Sequence numbers still missing.
    pub missing_events: u64,
    /// Events that arrived after a gap was opened and filled it.
    pub late_events: u64,
    pub seq_reused: u64,
    pub silent_since: Option<i64>,
    pub silences_recorded: u64,
    #[serde(default)]
    pub open_gaps: Vec<OpenGap>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub updated_at: String,
    pub sources: BTreeMap<String, SourceState>,
}

/// Something to record in the journal about a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub source: Arc<str>,
    pub tenant_orgnr: String,
    /// `source_gap`, `source_seq_reused` or `source_silent`.
    pub kind: &'static str,
    pub detail: String,
    /// A deterministic event id, so the same finding recorded twice is stored once.
    pub event_id: String,
}

/// What became of one event, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Stored,
    Duplicate,
    Quarantined,
}

pub struct Tracker {
    path: PathBuf,
    pub state: StateFile,
    dirty: bool,
}

impl Tracker {
    pub fn load(store: &Path) -> Tracker {
        let path = store.join(STATE_FILE);
        // The state is derived, so an unreadable file starts afresh rather than stopping ingest.
        let state = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Tracker { path, state, dirty: false }
    }

    /// Brings `last_seq` up to the committed records the state file may not have seen
    /// (it is saved at most once a second and at seals); `systems` maps a recording system to
    /// the one source allowed to send for it.
    pub fn catch_up<'a>(&mut self, unsealed: impl Iterator<Item = (&'a str, i64)>, sources: &[Arc<Source>]) {
        for (system, seq) in unsealed {
            let mut owners = sources.iter().filter(|s| &*s.name == system || s.policy.systems.iter().any(|x| x == system));
            if let (Some(owner), None) = (owners.next(), owners.next()) {
                let state = self.state.sources.entry(owner.name.to_string()).or_default();
                if state.last_seq.is_none_or(|last| seq > last) {
                    state.last_seq = Some(seq);
                    self.dirty = true;
                }
            }
        }
    }

    pub fn observe(&mut self, source: &Source, seq: Option<i64>, fate: Fate, lag_micros: Option<i64>, now: Timestamp) -> Option<Notice> {
        self.dirty = true;
        let state = self.state.sources.entry(source.name.to_string()).or_default();
        state.received += 1;
        state.last_seen = Some(now.0);
        // Back after a silence: the next silence is a new finding.
        state.silent_since = None;
        match fate {
            Fate::Stored => state.stored += 1,
            Fate::Duplicate => state.duplicates += 1,
            Fate::Quarantined => state.quarantined += 1,
        }
        if lag_micros.is_some() {
            state.last_lag_micros = lag_micros;
        }
        // A quarantined event's number counts as seen too: the event is kept, in the quarantine.
        let seq = seq?;
        let Some(last) = state.last_seq else {
            state.last_seq = Some(seq);
            return None;
        };
        // In i128: a sender's numbers may be anywhere in i64, and `last + 1` must not wrap
        // (i64::MAX then i64::MIN is a step back, not the next number).
        let (wide_seq, wide_last) = (i128::from(seq), i128::from(last));
        if wide_seq == wide_last + 1 {
            state.last_seq = Some(seq);
            return None;
        }
        if wide_seq > wide_last + 1 {
            state.open_gaps.push(OpenGap { from: last + 1, to: seq - 1, opened_at: now.0, recorded: false });
            state.missing_events = state.missing_events.saturating_add(u64::try_from(wide_seq - 1 - wide_last).unwrap_or(u64::MAX));
            state.last_seq = Some(seq);
            if state.open_gaps.len() > MAX_OPEN_GAPS {
                if let Some(i) = state.open_gaps.iter().position(|g| g.recorded) {
                    state.open_gaps.remove(i);
                }
            }
            return None;
        }
        // At or below the last number: fills a gap, or is a resend, or the number is reused.
        if let Some(i) = state.open_gaps.iter().position(|g| g.from <= seq && seq <= g.to) {
            let gap = state.open_gaps.remove(i);
            if gap.from < seq {
                state.open_gaps.push(OpenGap { to: seq - 1, ..gap.clone() });
            }
            if seq < gap.to {
                state.open_gaps.push(OpenGap { from: seq + 1, ..gap });
            }
            state.open_gaps.sort_by_key(|g| g.from);
            state.missing_events = state.missing_events.saturating_sub(1);
            state.late_events += 1;
            return None;
        }
        if fate == Fate::Duplicate {
            return None;
        }
        state.seq_reused += 1;
        Some(Notice {
            source: source.name.clone(),
            tenant_orgnr: source.tenant_orgnr.clone(),
            kind: "source_seq_reused",
            detail: format!("source '{}' sent sequence number {seq} again for a different event (its last number was {last})", source.name),
            event_id: format!("seq-reused:{}:{seq}:{}", source.name, now.0),
        })
    }

    /// Gaps past their grace, and sources silent past their heartbeat.
    pub fn tick(&mut self, sources: &[Arc<Source>], now: Timestamp, grace_micros: i64, started_at: Timestamp) -> Vec<Notice> {
        let mut notices = Vec::new();
        for source in sources {
            let state = self.state.sources.entry(source.name.to_string()).or_default();
            for gap in state.open_gaps.iter_mut().filter(|g| !g.recorded && now.0 - g.opened_at >= grace_micros) {
                gap.recorded = true;
                state.gaps_recorded += 1;
                self.dirty = true;
                let n = i128::from(gap.to) - i128::from(gap.from) + 1;
                notices.push(Notice {
                    source: source.name.clone(),
                    tenant_orgnr: source.tenant_orgnr.clone(),
                    kind: "source_gap",
                    detail: format!(
                        "source '{}' skipped sequence numbers {}–{} ({n} event{}): not received {} s after the next one arrived",
                        source.name,
                        gap.from,
                        gap.to,
                        if n == 1 { "" } else { "s" },
                        grace_micros / 1_000_000
                    ),
                    event_id: format!("gap:{}:{}-{}", source.name, gap.from, gap.to),
                });
            }
            if let Some(heartbeat) = source.heartbeat {
                let since = state.last_seen.unwrap_or(started_at.0).max(started_at.0);
                if state.silent_since.is_none() && now.0 - since >= heartbeat.as_micros() as i64 {
                    state.silent_since = Some(since);
                    state.silences_recorded += 1;
                    self.dirty = true;
                    notices.push(Notice {
                        source: source.name.clone(),
                        tenant_orgnr: source.tenant_orgnr.clone(),
                        kind: "source_silent",
                        detail: format!("source '{}' has sent nothing since {} (heartbeat {} s)", source.name, Timestamp(since).to_rfc3339(), heartbeat.as_secs()),
                        event_id: format!("silent:{}:{since}", source.name),
                    });
                }
            }
        }
        notices
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Replaces the state file (write, then rename). Not fsynced: it is derived, and the
    /// journal holds every finding.
    pub fn save(&mut self, now: Timestamp) -> std::io::Result<()> {
        self.state.updated_at = now.to_rfc3339();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, &self.path)?;
        self.dirty = false;
        Ok(())
    }

    pub fn render_metrics(&self, now: Timestamp) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        // (name, type, help, value from the state and the time now)
        type Series = (&'static str, &'static str, &'static str, fn(&SourceState, i64) -> Option<f64>);
        let series: [Series; 7] = [
            ("loggvakt_source_events_total", "counter", "Events received from the source.", |s, _| Some(s.received as f64)),
            ("loggvakt_source_quarantined_total", "counter", "Of them quarantined.", |s, _| Some(s.quarantined as f64)),
            ("loggvakt_source_gaps_total", "counter", "Gaps in the source's sequence numbers recorded in the journal.", |s, _| Some(s.gaps_recorded as f64)),
            ("loggvakt_source_missing_events", "gauge", "Sequence numbers still missing.", |s, _| Some(s.missing_events as f64)),
            ("loggvakt_source_silent", "gauge", "1 while the source is past its heartbeat.", |s, _| Some(if s.silent_since.is_some() { 1.0 } else { 0.0 })),
            ("loggvakt_source_lag_seconds", "gauge", "Received minus occurred of the source's last event.", |s, _| s.last_lag_micros.map(|l| l as f64 / 1e6)),
            ("loggvakt_source_silence_seconds", "gauge", "Time since the source last sent.", |s, now| s.last_seen.map(|t| (now - t) as f64 / 1e6)),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (source, state) in &self.state.sources {
                if let Some(v) = value(state, now.0) {
                    let _ = writeln!(out, "{name}{{source=\"{}\"}} {v}", source.replace(['"', '\\', '\n'], "_"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Arc<Source> {
        Arc::new(Source {
            name: "epj".into(),
            tenant_orgnr: "983971636".into(),
            policy: Default::default(),
            default_tenant: None,
            heartbeat: Some(std::time::Duration::from_secs(60)),
            search: Default::default(),
        })
    }

    #[test]
    fn gaps_are_recorded_after_grace_unless_filled() {
        let dir = std::env::temp_dir().join(format!("loggvakt-tracker-{}", std::process::id()));
        let mut t = Tracker::load(&dir);
        let s = source();
        let now = Timestamp(1_000_000_000);
        let mut edge = Tracker::load(&dir.join("edge"));
        assert_eq!(edge.observe(&s, Some(i64::MAX), Fate::Stored, None, now), None);
        let back = edge.observe(&s, Some(i64::MIN), Fate::Stored, None, now).expect("a step back from the largest number is reported");
        assert!(back.detail.contains(&i64::MIN.to_string()), "{}", back.detail);
        assert_eq!(edge.state.sources["epj"].missing_events, 0, "no gap of minus 2^64 events");
        for seq in [1, 2, 5, 4, 9] {
            assert_eq!(t.observe(&s, Some(seq), Fate::Stored, None, now), None);
        }
        // 3 is missing, 4 filled part of 3–4, 6–8 are missing.
        assert_eq!(t.state.sources["epj"].missing_events, 4);
        assert!(t.tick(std::slice::from_ref(&s), Timestamp(now.0 + 1), 10_000_000, now).is_empty(), "not before the grace period");
        let notices = t.tick(std::slice::from_ref(&s), Timestamp(now.0 + 20_000_000), 10_000_000, now);
        let ids: Vec<_> = notices.iter().map(|n| n.event_id.as_str()).collect();
        assert_eq!(ids, ["gap:epj:3-3", "gap:epj:6-8"]);
        assert!(t.tick(std::slice::from_ref(&s), Timestamp(now.0 + 30_000_000), 10_000_000, now).is_empty(), "recorded once");
        let reused = t.observe(&s, Some(2), Fate::Stored, None, now).unwrap();
        assert_eq!(reused.kind, "source_seq_reused");
        assert_eq!(t.observe(&s, Some(2), Fate::Duplicate, None, now), None, "a resend is not a reuse");
    }

    #[test]
    fn silence_past_heartbeat_is_recorded_once() {
        let dir = std::env::temp_dir().join(format!("loggvakt-tracker-s-{}", std::process::id()));
        let mut t = Tracker::load(&dir);
        let s = source();
        let start = Timestamp(0);
        assert!(t.tick(std::slice::from_ref(&s), Timestamp(59_000_000), 0, start).is_empty());
        let n = t.tick(std::slice::from_ref(&s), Timestamp(61_000_000), 0, start);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, "source_silent");
        assert!(t.tick(std::slice::from_ref(&s), Timestamp(200_000_000), 0, start).is_empty());
        t.observe(&s, None, Fate::Stored, None, Timestamp(201_000_000));
        assert_eq!(t.tick(std::slice::from_ref(&s), Timestamp(262_000_000), 0, start).len(), 1, "a new silence after the source came back");
    }
}
