//! IHE RESTful ATNA (ITI-81) search over the store: the sealed Parquet segments, pruned by
//! tenant and date partition, plus the committed records not sealed yet (the writer's
//! published view, `unsealed.rs`). Runs on the blocking pool, never on the writer's thread.

use std::path::Path;

use loggvakt_format::layout::read_manifest;
use loggvakt_format::manifest::{manifest_rel_path, Manifest};
use loggvakt_format::{read_segment_events, visit_segment_events, StoreError};
use loggvakt_model::{AccessEvent, Timestamp};

pub const MAX_PAGE: usize = 1000;
/// The deepest result a search pages to (`_offset` + `_count`): each search holds at most
/// this many events, whatever the store's size. Deeper: narrow the search by date.
pub const MAX_WINDOW: usize = 10_000;

/// A parsed search. Dates bound `occurred_at`: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub patient: Option<String>,
    pub agent: Option<String>,
    /// The recording system (`source.observer`); `loggvakt` for the store's own records:
    /// reads of the log, gaps and silences.
    pub source: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub count: usize,
    pub offset: usize,
    /// Only records below this sequence number: the store as it was at the first page, so
    /// later pages do not shift as events (this search's own log record among them) arrive.
    pub before: Option<u64>,
    /// Only this organisation's events (the searching source's own), unless it may see all.
    pub tenant: Option<String>,
}

/// A search parameter that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

fn param_error(param: &str, message: impl Into<String>) -> ParamError {
    ParamError { param: param.to_owned(), message: message.into() }
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(Some(hi)), Some(Some(lo))) = (bytes[i], bytes.get(i + 1).map(|b| hex(*b)), bytes.get(i + 2).map(|b| hex(*b))) {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of a token or reference parameter: `Patient/123`, `system|123` or `123`.
fn bare_value(value: &str) -> &str {
    let value = value.rsplit('|').next().unwrap_or(value);
    value.rsplit('/').next().unwrap_or(value)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A FHIR date search value: a day (`2026-11-20`) or an instant with an offset.
fn date_bounds(value: &str) -> Result<(Timestamp, Timestamp), ParamError> {
    if let Some(day) = Timestamp::date_to_day(value) {
        return Ok((Timestamp(day * MICROS_PER_DAY), Timestamp((day + 1) * MICROS_PER_DAY)));
    }
    let t = chrono::DateTime::parse_from_rfc3339(value).map_err(|_| param_error("date", format!("'{value}' is neither a date (YYYY-MM-DD) nor a date-time with a UTC offset")))?;
    let t = t.timestamp_micros();
    Ok((Timestamp(t), Timestamp(t + 1)))
}

pub fn parse_query(query: &str, default_count: usize) -> Result<SearchQuery, ParamError> {
    let mut q = SearchQuery { count: default_count.clamp(1, MAX_PAGE), ..SearchQuery::default() };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name), percent_decode(value));
        if value.is_empty() {
            return Err(param_error(&name, "has no value"));
        }
        match name.as_str() {
            "patient" | "patient.identifier" | "entity" | "entity.identifier" => q.patient = Some(bare_value(&value).to_owned()),
            "agent" | "agent.identifier" | "who" | "who.identifier" => q.agent = Some(bare_value(&value).to_owned()),
            "source" | "source.identifier" | "observer" => q.source = Some(value.rsplit('|').next().unwrap_or(&value).to_owned()),
            "date" => {
                let (prefix, rest) = match value.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &value[2..]),
                    _ => ("eq", value.as_str()),
                };
                let (start, end) = date_bounds(rest)?;
                let (from, to) = match prefix {
                    "ge" => (Some(start), None),
                    "gt" => (Some(end), None),
                    "le" => (None, Some(end)),
                    "lt" => (None, Some(start)),
                    _ => (Some(start), Some(end)),
                };
                if let Some(from) = from {
                    q.from = Some(q.from.map_or(from, |f| f.max(from)));
                }
                if let Some(to) = to {
                    q.to = Some(q.to.map_or(to, |t| t.min(to)));
                }
            }
            "_count" => q.count = value.parse::<usize>().map_err(|_| param_error("_count", "is not a number"))?.clamp(1, MAX_PAGE),
            "_offset" => q.offset = value.parse().map_err(|_| param_error("_offset", "is not a number"))?,
            "_before" => q.before = Some(value.parse().map_err(|_| param_error("_before", "is not a number"))?),
            "_format" | "_sort" => {}
            other => return Err(param_error(other, "is not a supported search parameter (patient, agent, source, date, _count)")),
        }
    }
    Ok(q)
}

impl SearchQuery {
    pub fn matches(&self, e: &AccessEvent) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == e.tenant_orgnr)
            && self.patient.as_ref().is_none_or(|p| e.patient_id.as_ref() == Some(p))
            && self.agent.as_ref().is_none_or(|a| [&e.user_person_id, &e.user_hpr, &e.user_local_id].iter().any(|v| v.as_ref() == Some(a)))
            && self.source.as_ref().is_none_or(|s| *s == e.source_system)
            && self.from.is_none_or(|f| e.occurred_at >= f)
            && self.to.is_none_or(|t| e.occurred_at < t)
    }

    /// The query string that asks for the page at `offset` of the same snapshot.
    pub fn link(&self, raw_query: &str, offset: usize) -> String {
        let kept: Vec<&str> = raw_query.split('&').filter(|p| !p.is_empty() && !p.starts_with("_offset=") && !p.starts_with("_before=")).collect();
        let mut q = kept.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        if let Some(before) = self.before {
            q.push_str(&format!("_before={before}&"));
        }
        format!("{q}_offset={offset}")
    }
}

/// Sealed events that match, read from the partitions the query can touch.
/// The first `window` matches of a search, by sequence number, and how many there are in
/// all. Memory holds at most `window` events, however many match: a search of every event
/// in a store of millions costs the time to read them, not the memory to hold them.
#[derive(Debug, Default)]
pub struct Matches {
    pub total: usize,
    pub first: std::collections::BTreeMap<u64, AccessEvent>,
    /// The highest sequence number the search covered (sealed records).
    pub covered_through: u64,
}

impl Matches {
    /// Would an event with this sequence number be among the first `window`?
    pub fn would_keep(&self, seq: u64, window: usize) -> bool {
        self.first.len() < window || self.first.last_key_value().is_some_and(|(last, _)| seq < *last)
    }

    /// Counts a match, and keeps it if it is among the first `window`; `event` is built
    /// only then.
    pub fn offer(&mut self, seq: u64, window: usize, event: impl FnOnce() -> AccessEvent) {
        self.total += 1;
        if self.would_keep(seq, window) {
            self.first.insert(seq, event());
            if self.first.len() > window {
                self.first.pop_last();
            }
        }
    }
}

/// Searches the sealed segments, keeping the first `window` matches below `q.before`.
/// A patient's search reads only that patient's events, from the patient index
/// (`loggvakt_format::patients`), plus the epochs sealed after the index; any other
/// search reads every segment its partitions (tenant, date) allow.
pub fn search_sealed(store: &Path, q: &SearchQuery, window: usize) -> Result<Matches, StoreError> {
    let scope = Scope::of(q);
    let mut out = Matches::default();
    let Some(patient) = q.patient.as_deref() else {
        for manifest in loggvakt_format::index::read_epochs(store)? {
            search_manifest(store, &manifest, q, &scope, window, &mut out)?;
        }
        return Ok(out);
    };
    // The patient index holds the events themselves: no segment is read. A record whose
    // patient differs shares a 64-bit key with this one, and `matches` drops it.
    let indexed_through = loggvakt_format::patients::lookup(store, patient, |seq, record| {
        if seq >= scope.before {
            return Ok(());
        }
        let e = AccessEvent::decode_record(record)
            .map_err(|err| StoreError::Corrupt { path: store.join(loggvakt_format::patients::PATIENT_INDEX_DIR), detail: format!("the record of seq {seq}: {err}") })?;
        if q.matches(&e) {
            out.offer(seq, window, || e);
        }
        Ok(())
    })?;
    if indexed_through > 0 {
        let (manifest, _) = read_manifest(&store.join(manifest_rel_path(indexed_through)))?;
        out.covered_through = manifest.last_seq;
    }
    // Epochs sealed after the index (a seal being indexed now): read as any search does.
    for epoch in indexed_through + 1.. {
        let path = store.join(manifest_rel_path(epoch));
        let manifest = match read_manifest(&path) {
            Ok((manifest, _)) => manifest,
            Err(_) if !path.exists() => break,
            Err(e) => return Err(e),
        };
        search_manifest(store, &manifest, q, &scope, window, &mut out)?;
    }
    Ok(out)
}

/// What a search's partitions must be: its tenant and UTC dates, and the sequence bound.
struct Scope {
    tenant: Option<String>,
    first_date: Option<String>,
    last_date: Option<String>,
    before: u64,
    /// No filter inside a partition: every row of an admitted segment matches.
    unfiltered: bool,
}

impl Scope {
    fn of(q: &SearchQuery) -> Scope {
        Scope {
            tenant: q.tenant.clone(),
            first_date: q.from.map(|t| t.utc_date()),
            last_date: q.to.map(|t| Timestamp(t.0 - 1).utc_date()),
            before: q.before.unwrap_or(u64::MAX),
            unfiltered: q.patient.is_none() && q.agent.is_none() && q.source.is_none() && q.from.is_none() && q.to.is_none(),
        }
    }

    /// May the segment at `rel` hold a match? Segments hold one tenant's rows of one date each.
    fn admits(&self, rel: &str) -> bool {
        let (tenant, date) = loggvakt_format::segment::partition_of(rel);
        if self.tenant.as_deref().is_some_and(|t| tenant.is_some_and(|x| x != t)) {
            return false;
        }
        match date {
            Some(date) => !(self.first_date.as_deref().is_some_and(|f| date < f) || self.last_date.as_deref().is_some_and(|l| date > l)),
            None => true,
        }
    }
}

/// Searches one epoch's segments.
fn search_manifest(store: &Path, manifest: &Manifest, q: &SearchQuery, scope: &Scope, window: usize, out: &mut Matches) -> Result<(), StoreError> {
    out.covered_through = out.covered_through.max(manifest.last_seq);
    for segment in &manifest.segments {
        if !scope.admits(&segment.path) || segment.first_seq >= scope.before {
            continue;
        }
        // Without a filter inside the partition, every row matches: a segment whose rows
        // all come after a full window is counted from its manifest, not read, so an
        // unfiltered search costs its window and the reading of sequence numbers, not the store.
        if scope.unfiltered && segment.last_seq < scope.before && !out.would_keep(segment.first_seq, window) {
            out.total += segment.rows as usize;
            continue;
        }
        // Rows within a segment are not in sequence order (the seal sorts them by patient
        // and time, see the journal's segment.rs), so a segment that is read is read whole.
        visit_segment_events(&store.join(&segment.path), |seq, row| {
            if seq >= scope.before {
                return;
            }
            if scope.unfiltered {
                // Every row matches: counted, and built into an event only if it is among
                // the first `window` (four searches at once over 1.5 M events, under
                // load: p50 1.0 s when every row was built, 0.32 s now).
                out.offer(seq, window, || row.event());
                return;
            }
            let e = row.event();
            if q.matches(&e) {
                out.offer(seq, window, || e);
            }
        })?;
    }
    Ok(())
}

/// One sealed event by its sequence number.
pub fn read_sealed_seq(store: &Path, seq: u64) -> Result<Option<AccessEvent>, StoreError> {
    for manifest in loggvakt_format::index::read_epochs(store)? {
        if seq < manifest.first_seq || seq > manifest.last_seq {
            continue;
        }
        for segment in manifest.segments.iter().filter(|s| s.first_seq <= seq && seq <= s.last_seq) {
            let mut found = Vec::new();
            read_segment_events(&store.join(&segment.path), |s, _| s == seq, &mut found)?;
            if let Some((_, event)) = found.pop() {
                return Ok(Some(event));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iti81_parameters() {
        let q = parse_query("patient=Patient%2F13116900216&date=ge2026-11-01&date=le2026-11-30&agent=urn:oid:2.16.578.1.12.4.1.4.4|9144889&_count=5", 100).unwrap();
        assert_eq!(q.patient.as_deref(), Some("13116900216"));
        assert_eq!(q.agent.as_deref(), Some("9144889"));
        assert_eq!(q.from.unwrap().utc_date(), "2026-11-01");
        assert_eq!(Timestamp(q.to.unwrap().0 - 1).utc_date(), "2026-11-30");
        assert_eq!(q.count, 5);
        let q = parse_query("date=gt2026-11-20T10:00:00%2B01:00", 100).unwrap();
        assert_eq!(q.from, Some(Timestamp(chrono::DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z").unwrap().timestamp_micros() + 1)));
        assert_eq!(parse_query("subtype=x", 100).unwrap_err().param, "subtype");
        assert_eq!(parse_query("date=yesterday", 100).unwrap_err().param, "date");
        assert_eq!(q.link("date=x&_offset=10", 20), "date=x&_offset=20");
        let q = SearchQuery { before: Some(42), ..q };
        assert_eq!(q.link("date=x&_before=7&_offset=10", 20), "date=x&_before=42&_offset=20");
    }
}
