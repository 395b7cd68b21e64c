//! FHIR R4 context resources reduced to what the tables need, and the second pass that
//! resolves references between them into table rows.

use std::collections::HashMap;

use serde_json::Value;

use loggvakt_model::ids::{validate_orgnr, validate_person_id_as, IdSystem};

use crate::normalise::{address_keys, name_key};
use crate::tables::{Cell, TableBuilder};

/// The resource types an import accepts.
pub const SUPPORTED: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Encounter",
    "EpisodeOfCare",
    "Appointment",
    "ServiceRequest",
    "MedicationRequest",
    "MedicationDispense",
    "DiagnosticReport",
    "ImagingStudy",
    "CareTeam",
    "Schedule",
    "Slot",
    "Location",
    "HealthcareService",
];

/// Orders, results and care teams: evidence that explains the accesses of laboratory,
/// radiology and pharmacy staff and of care teams, who take part in a patient's care
/// without being on an encounter. Each is read as care (`care` and `care_participant`):
/// the patient, the performing organisation or unit, the people who ordered, performed,
/// interpreted or are members, and the time it covers.
struct EvidenceShape {
    resource_type: &'static str,
    /// The `care.kind` it becomes.
    kind: &'static str,
    patient: &'static str,
    /// Paths to references of people (Practitioner, PractitionerRole) and of the
    /// organisation or unit that performs it (Organization), in order of preference.
    actors: &'static [&'static str],
    /// Paths to the start: a dateTime, or a Period whose start is taken.
    starts: &'static [&'static str],
    /// Paths to the end: a dateTime, or a Period whose end is taken.
    ends: &'static [&'static str],
    /// Without an end it is open (a care team), rather than a moment (an order: its start).
    open_ended: bool,
}

const EVIDENCE_SHAPES: &[EvidenceShape] = &[
    EvidenceShape {
        resource_type: "ServiceRequest",
        kind: "service_request",
        patient: "subject",
        actors: &["performer", "requester"],
        starts: &["authoredOn", "occurrencePeriod", "occurrenceDateTime"],
        ends: &["occurrencePeriod", "occurrenceDateTime"],
        open_ended: false,
    },
    EvidenceShape {
        resource_type: "MedicationRequest",
        kind: "medication_request",
        patient: "subject",
        actors: &["dispenseRequest.performer", "performer", "requester"],
        starts: &["authoredOn", "dispenseRequest.validityPeriod"],
        ends: &["dispenseRequest.validityPeriod"],
        open_ended: false,
    },
    EvidenceShape {
        resource_type: "MedicationDispense",
        kind: "medication_dispense",
        patient: "subject",
        actors: &["performer.actor", "receiver"],
        starts: &["whenPrepared", "whenHandedOver"],
        ends: &["whenHandedOver"],
        open_ended: false,
    },
    EvidenceShape {
        resource_type: "DiagnosticReport",
        kind: "diagnostic_report",
        patient: "subject",
        actors: &["performer", "resultsInterpreter"],
        starts: &["effectivePeriod", "effectiveDateTime", "issued"],
        ends: &["issued", "effectivePeriod", "effectiveDateTime"],
        open_ended: false,
    },
    EvidenceShape {
        resource_type: "ImagingStudy",
        kind: "imaging_study",
        patient: "subject",
        actors: &["series.performer.actor", "interpreter", "referrer"],
        starts: &["started"],
        ends: &["started"],
        open_ended: false,
    },
    EvidenceShape {
        resource_type: "CareTeam",
        kind: "care_team",
        patient: "subject",
        actors: &["managingOrganization", "participant.member", "participant.onBehalfOf"],
        starts: &["period"],
        ends: &["period"],
        open_ended: true,
    },
];

/// The values at a dotted path, arrays flattened at every step.
fn values_at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut at = vec![v];
    for field in path.split('.') {
        let mut next = Vec::new();
        for value in at {
            match value.get(field) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(found) => next.push(found),
                None => {}
            }
        }
        at = next;
    }
    at
}

/// A point in time at a path: a dateTime or instant, or a Period's start (or end).
fn time_at(v: &Value, paths: &[&str], end: bool) -> Option<i64> {
    paths.iter().find_map(|path| {
        values_at(v, path).into_iter().find_map(|value| match value {
            Value::String(text) => instant(text),
            Value::Object(_) => value.get(if end { "end" } else { "start" }).and_then(Value::as_str).and_then(instant),
            _ => None,
        })
    })
}

#[derive(Debug, Default, Clone)]
struct Ids {
    person: Option<String>,
    hpr: Option<String>,
    orgnr: Option<String>,
    resh: Option<String>,
}

#[derive(Debug, Clone)]
struct Address {
    text: String,
    street: Option<String>,
    house: Option<String>,
    building: Option<String>,
    dwelling: Option<String>,
    house_number: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
}

/// One resource, reduced. References are kept as `Type/id` keys until resolution.
#[derive(Debug, Clone)]
enum Parsed {
    Organization {
        key: String,
        ids: Ids,
        name: Option<String>,
        part_of: Option<String>,
    },
    Patient {
        key: String,
        ids: Ids,
        family: Option<String>,
        given: Option<String>,
        protected: bool,
        deceased: bool,
        addresses: Vec<Address>,
    },
    RelatedPerson {
        key: String,
        patient: Option<String>,
        related: Ids,
        codes: Vec<String>,
        from: Option<i64>,
        to: Option<i64>,
    },
    Practitioner {
        key: String,
        ids: Ids,
        family: Option<String>,
        given: Option<String>,
        addresses: Vec<Address>,
    },
    PractitionerRole {
        key: String,
        practitioner: Option<String>,
        ids: Ids,
        organization: Option<String>,
        role: Option<String>,
        from: Option<i64>,
        to: Option<i64>,
    },
    Care {
        key: String,
        kind: &'static str,
        patient: Option<String>,
        patient_ids: Ids,
        organization: Option<String>,
        participants: Vec<String>,
        from: Option<i64>,
        to: Option<i64>,
    },
    /// A Location (`managingOrganization`) or HealthcareService (`providedBy`): where a
    /// roster's duty is done, known by the organisation or unit it belongs to.
    Place {
        key: String,
        organization: Option<String>,
    },
    /// A roster: whose (Practitioner, PractitionerRole) and where (Location,
    /// HealthcareService, else the role's unit), over its `planningHorizon`.
    Schedule {
        key: String,
        actors: Vec<String>,
        from: Option<i64>,
        to: Option<i64>,
        active: bool,
    },
    /// One shift of a roster. `on_duty` is false for `busy-unavailable` (leave) and
    /// `entered-in-error`.
    Slot {
        key: String,
        schedule: Option<String>,
        from: Option<i64>,
        to: Option<i64>,
        on_duty: bool,
    },
}

/// A problem with one resource: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceProblem {
    pub resource: String,
    pub path: String,
    pub reason: String,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn reference(v: Option<&Value>) -> Option<String> {
    let text = v?.get("reference")?.as_str()?;
    let text = text.split("/_history/").next().unwrap_or(text);
    let mut parts = text.rsplit('/');
    let id = parts.next()?;
    let resource_type = parts.next()?;
    Some(format!("{resource_type}/{id}"))
}

/// FHIR date or dateTime → UTC microseconds; a date is its midnight UTC, a partial date
/// its first day.
pub(crate) fn instant(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    let padded = match text.len() {
        4 => format!("{text}-01-01"),
        7 => format!("{text}-01"),
        _ => text.to_owned(),
    };
    chrono::NaiveDate::parse_from_str(&padded, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc().timestamp_micros())
}

fn period(v: Option<&Value>) -> (Option<i64>, Option<i64>) {
    let Some(p) = v else { return (None, None) };
    (p.get("start").and_then(Value::as_str).and_then(instant), p.get("end").and_then(Value::as_str).and_then(instant))
}

fn identifiers(v: &Value, path: &str, key: &str, problems: &mut Vec<ResourceProblem>) -> Ids {
    let mut ids = Ids::default();
    let list: Vec<&Value> = match v.get("identifier") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    };
    for (i, identifier) in list.into_iter().enumerate() {
        let (Some(system), Some(value)) = (identifier.get("system").and_then(Value::as_str), identifier.get("value").and_then(Value::as_str)) else { continue };
        match IdSystem::from_fhir_system(system) {
            Some(kind) if kind.is_person() => match validate_person_id_as(value, kind) {
                Ok(_) => {
                    ids.person.get_or_insert_with(|| value.to_owned());
                }
                Err(e) => problems.push(ResourceProblem { resource: key.to_owned(), path: format!("{path}.identifier[{i}].value"), reason: format!("'{value}': {e}") }),
            },
            Some(IdSystem::Hpr) => {
                ids.hpr.get_or_insert_with(|| value.to_owned());
            }
            Some(IdSystem::Orgnr) => match validate_orgnr(value) {
                Ok(()) => {
                    ids.orgnr.get_or_insert_with(|| value.to_owned());
                }
                Err(e) => problems.push(ResourceProblem { resource: key.to_owned(), path: format!("{path}.identifier[{i}].value"), reason: format!("'{value}': {e}") }),
            },
            Some(IdSystem::Resh) => {
                ids.resh.get_or_insert_with(|| value.to_owned());
            }
            _ => {}
        }
    }
    ids
}

fn human_name(v: &Value) -> (Option<String>, Option<String>) {
    let Some(names) = v.get("name").and_then(Value::as_array) else { return (None, None) };
    // The official name when marked, else the first.
    let name = names.iter().find(|n| n.get("use").and_then(Value::as_str) == Some("official")).or_else(|| names.first());
    let Some(name) = name else { return (None, None) };
    let family = text(name, "family");
    let given = name.get("given").and_then(Value::as_array).map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "));
    (family, given)
}

fn addresses(v: &Value) -> Vec<Address> {
    let Some(list) = v.get("address").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .map(|a| {
            let lines: Vec<&str> = a.get("line").and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let postcode = a.get("postalCode").and_then(Value::as_str);
            let city = a.get("city").and_then(Value::as_str);
            let keys = address_keys(&lines, postcode, city);
            let (from, mut to) = period(a.get("period"));
            // An "old" address without an end has ended, date unknown: count it as ended
            // when it began, so it is never taken for a current one.
            if a.get("use").and_then(Value::as_str) == Some("old") && to.is_none() {
                to = Some(from.unwrap_or(0));
            }
            let text = [lines.join(", "), [postcode.unwrap_or(""), city.unwrap_or("")].join(" ").trim().to_owned()].join(", ");
            Address {
                text,
                street: keys.as_ref().map(|k| k.street.clone()),
                house: keys.as_ref().map(|k| k.house.clone()),
                building: keys.as_ref().map(|k| k.building.clone()),
                dwelling: keys.as_ref().map(|k| k.dwelling.clone()),
                house_number: keys.as_ref().and_then(|k| k.house_number),
                from,
                to,
            }
        })
        .collect()
}

fn has_code(v: Option<&Value>, codes: &[&str]) -> bool {
    let Some(list) = v.and_then(Value::as_array) else { return false };
    list.iter().any(|c| c.get("code").and_then(Value::as_str).is_some_and(|code| codes.contains(&code)))
}

fn codes(v: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let concepts: Vec<&Value> = match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(c @ Value::Object(_)) => vec![c],
        _ => Vec::new(),
    };
    for concept in concepts {
        if let Some(codings) = concept.get("coding").and_then(Value::as_array) {
            out.extend(codings.iter().filter_map(|c| c.get("code").and_then(Value::as_str)).map(str::to_owned));
        }
    }
    out
}

/// One resource reduced to what the tables need, with what was wrong with it: the work of
/// a pass that needs no index, so the import does it on every core
/// ([`crate::pipeline`]) and hands the result to [`Resolver::learn`] or
/// [`Resolver::emit`] in order.
pub(crate) struct Reduced {
    parsed: Option<Parsed>,
    problems: Vec<ResourceProblem>,
}

/// Reduces one resource of `resource_type`; `key` is its `Type/id`.
pub(crate) fn reduce(resource_type: &str, key: String, v: &Value) -> Reduced {
    let mut problems = Vec::new();
    let parsed = parse(resource_type, key, v, &mut problems);
    Reduced { parsed, problems }
}

/// Reduces one resource; `key` is its `Type/id`.
fn parse(resource_type: &str, key: String, v: &Value, problems: &mut Vec<ResourceProblem>) -> Option<Parsed> {
    Some(match resource_type {
        "Organization" => Parsed::Organization { ids: identifiers(v, resource_type, &key, problems), name: text(v, "name"), part_of: reference(v.get("partOf")), key },
        "Patient" => {
            let (family, given) = human_name(v);
            let protected = has_code(v.get("meta").and_then(|m| m.get("security")), &["R", "V"]);
            let deceased = v.get("deceasedBoolean").and_then(Value::as_bool).unwrap_or(false) || v.get("deceasedDateTime").is_some();
            Parsed::Patient { ids: identifiers(v, resource_type, &key, problems), family, given, protected, deceased, addresses: addresses(v), key }
        }
        "RelatedPerson" => {
            let (from, to) = period(v.get("period"));
            Parsed::RelatedPerson {
                patient: reference(v.get("patient")),
                related: identifiers(v, resource_type, &key, problems),
                codes: codes(v.get("relationship")),
                from,
                to,
                key,
            }
        }
        "Practitioner" => {
            let (family, given) = human_name(v);
            Parsed::Practitioner { ids: identifiers(v, resource_type, &key, problems), family, given, addresses: addresses(v), key }
        }
        "PractitionerRole" => {
            let (from, to) = period(v.get("period"));
            let mut ids = Ids::default();
            if let Some(p) = v.get("practitioner") {
                if p.get("identifier").is_some() {
                    ids = identifiers(p, "PractitionerRole.practitioner", &key, problems);
                }
            }
            Parsed::PractitionerRole {
                practitioner: reference(v.get("practitioner")),
                ids,
                organization: reference(v.get("organization")),
                role: codes(v.get("code")).into_iter().next(),
                from,
                to,
                key,
            }
        }
        "Encounter" | "EpisodeOfCare" | "Appointment" => {
            let (kind, patient_field, org_field) = match resource_type {
                "Encounter" => ("encounter", "subject", "serviceProvider"),
                "EpisodeOfCare" => ("episode_of_care", "patient", "managingOrganization"),
                _ => ("appointment", "", ""),
            };
            let (mut from, mut to) = period(v.get("period"));
            if resource_type == "Appointment" {
                // Booking opens the record: an appointment is evidence from when it was
                // made (`created`) until it ends, not only during the visit.
                let start = v.get("start").and_then(Value::as_str).and_then(instant);
                let created = v.get("created").and_then(Value::as_str).and_then(instant);
                from = match (created, start) {
                    (Some(c), Some(s)) => Some(c.min(s)),
                    (c, s) => s.or(c),
                };
                to = v.get("end").and_then(Value::as_str).and_then(instant).or(start);
            }
            let mut patient = reference(v.get(patient_field));
            let patient_ids = v.get(patient_field).and_then(|p| p.get("identifier")).map(|_| identifiers(&v[patient_field], resource_type, &key, problems)).unwrap_or_default();
            let mut participants = Vec::new();
            for p in v.get("participant").and_then(Value::as_array).into_iter().flatten() {
                let actor = reference(p.get("individual")).or_else(|| reference(p.get("actor")));
                match actor {
                    Some(a) if a.starts_with("Patient/") => patient = patient.or(Some(a)),
                    Some(a) => participants.push(a),
                    None => {}
                }
            }
            participants.extend(reference(v.get("careManager")));
            for team in v.get("team").and_then(Value::as_array).into_iter().flatten() {
                participants.extend(reference(Some(team)));
            }
            Parsed::Care { kind, patient, patient_ids, organization: reference(v.get(org_field)), participants, from, to, key }
        }
        "Location" => Parsed::Place { organization: reference(v.get("managingOrganization")), key },
        "HealthcareService" => Parsed::Place { organization: reference(v.get("providedBy")), key },
        "Schedule" => {
            let (from, to) = period(v.get("planningHorizon"));
            let actors = values_at(v, "actor").into_iter().filter_map(|r| reference(Some(r))).collect();
            Parsed::Schedule { actors, from, to, active: v.get("active").and_then(Value::as_bool).unwrap_or(true), key }
        }
        "Slot" => {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("");
            Parsed::Slot {
                schedule: reference(v.get("schedule")),
                from: v.get("start").and_then(Value::as_str).and_then(instant),
                to: v.get("end").and_then(Value::as_str).and_then(instant),
                on_duty: !matches!(status, "busy-unavailable" | "entered-in-error"),
                key,
            }
        }
        other => {
            let shape = EVIDENCE_SHAPES.iter().find(|s| s.resource_type == other)?;
            let patient = reference(v.get(shape.patient));
            let patient_ids = v.get(shape.patient).and_then(|p| p.get("identifier")).map(|_| identifiers(&v[shape.patient], other, &key, problems)).unwrap_or_default();
            let mut organization = None;
            let mut participants = Vec::new();
            for path in shape.actors {
                for actor in values_at(v, path).into_iter().filter_map(|r| reference(Some(r))) {
                    if actor.starts_with("Organization/") {
                        organization = organization.or(Some(actor));
                    } else if actor.starts_with("Practitioner") && !participants.contains(&actor) {
                        participants.push(actor);
                    }
                }
            }
            let from = time_at(v, shape.starts, false);
            let to = time_at(v, shape.ends, true).or(if shape.open_ended { None } else { from });
            Parsed::Care { kind: shape.kind, patient, patient_ids, organization, participants, from, to, key }
        }
    })
}

/// Relation codes (v3-RoleCode) to the kind detectors use, and the kind seen from the
/// other person.
fn relation_kind(code: &str) -> (&'static str, &'static str) {
    match code {
        "FMRSPS" => ("former_partner", "former_partner"),
        "SPS" | "HUSB" | "WIFE" | "DOMPART" | "SIGOTHR" => ("partner", "partner"),
        "PRN" | "FTH" | "MTH" | "NPRN" | "ADOPTP" | "STPPRN" | "FTHFOST" | "MTHFOST" => ("parent", "child"),
        "CHILD" | "SON" | "DAU" | "CHLDADOPT" | "CHLDFOST" | "STPCHLD" | "NCHILD" => ("child", "parent"),
        "SIB" | "BRO" | "SIS" | "NSIB" | "HSIB" | "STPSIB" | "TWIN" => ("sibling", "sibling"),
        "GRPRN" | "GRNDCHILD" | "AUNT" | "UNCLE" | "COUSN" | "NIECE" | "NEPHEW" | "FAMMEMB" | "EXT" => ("family", "family"),
        _ => ("other", "other"),
    }
}

/// Reference indexes: what other resources are resolved against. Learnt in a first pass
/// over the resources (organisations, patients, practitioners, roles, places, rosters), so
/// the second pass can write each resource's rows as it comes, holding the population's
/// identities but never every resource.
#[derive(Default)]
struct Index {
    orgs: HashMap<String, (Ids, Option<String>)>,
    /// Patient `Type/id` → person id.
    patients: HashMap<String, String>,
    practitioners: HashMap<String, Ids>,
    /// PractitionerRole `Type/id` → the person and the organisation; raw until settled.
    roles: HashMap<String, (Ids, OrgEntry)>,
    raw_roles: Vec<(String, Option<String>, Ids, Option<String>)>,
    places: HashMap<String, OrgEntry>,
    raw_places: Vec<(String, Option<String>)>,
    rosters: HashMap<String, Roster>,
    raw_schedules: Vec<(String, Vec<String>, bool)>,
    /// Schedules that have at least one Slot.
    slotted: std::collections::HashSet<String>,
}

impl Index {
    /// An organisation's legal entity (orgnr) is found by following partOf; its unit is
    /// the nearest RESH id on the way.
    fn resolve_org(&self, key: &str) -> Option<OrgEntry> {
        let mut entry = OrgEntry::default();
        let mut at = key.to_owned();
        for _ in 0..8 {
            let (ids, part_of) = self.orgs.get(&at)?;
            if entry.unit.is_none() {
                entry.unit = ids.resh.clone();
            }
            if ids.orgnr.is_some() {
                entry.orgnr = ids.orgnr.clone();
                return Some(entry);
            }
            at = part_of.clone()?;
        }
        Some(entry)
    }
}

/// Resolves references between context resources and writes the tables (all but
/// `resources`), in two passes over the same resources: [`Resolver::learn`] each, then
/// [`Resolver::settle`], then [`Resolver::emit`] each. Memory is the index (the
/// population's and staff's identities, organisations, rosters) and one record batch per
/// table; rows are written as they are made when the tables stream to files.
pub(crate) struct Resolver {
    index: Index,
    tables: HashMap<&'static str, TableBuilder>,
    /// Unresolved references: (resource, path, target).
    missing: Vec<(String, &'static str, String)>,
    pub problems: Vec<ResourceProblem>,
}

#[derive(Clone, Default)]
struct OrgEntry {
    orgnr: Option<String>,
    unit: Option<String>,
}

/// Resource types the first pass learns from; the rest are read in the second only.
const INDEXED: &[&str] = &["Organization", "Patient", "Practitioner", "PractitionerRole", "Location", "HealthcareService", "Schedule", "Slot"];

/// Whether [`Resolver::learn`] reads resources of this type (the rest need not be parsed
/// for the first pass).
pub(crate) fn is_indexed(resource_type: &str) -> bool {
    INDEXED.contains(&resource_type)
}

impl Resolver {
    /// Tables held in memory (for tests and small imports).
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Resolver { index: Index::default(), tables: TABLE_ORDER.into_iter().map(|t| (t, TableBuilder::new(t))).collect(), missing: Vec::new(), problems: Vec::new() }
    }

    /// Tables streamed batch by batch into `dir/<table>.parquet`.
    pub fn streaming_into(dir: &std::path::Path) -> Result<Self, crate::ContextError> {
        let mut tables = HashMap::new();
        for t in TABLE_ORDER {
            tables.insert(t, TableBuilder::streaming(t, &dir.join(format!("{t}.parquet")))?);
        }
        Ok(Resolver { index: Index::default(), tables, missing: Vec::new(), problems: Vec::new() })
    }

    /// First pass: learns what others refer to from a resource of an indexed type.
    /// Problems are reported by the second pass.
    pub fn learn(&mut self, resource: Reduced) {
        let Some(parsed) = resource.parsed else { return };
        let index = &mut self.index;
        match parsed {
            Parsed::Organization { key, ids, part_of, .. } => {
                index.orgs.insert(key, (ids, part_of));
            }
            Parsed::Patient { key, ids, .. } => {
                if let Some(id) = ids.person {
                    index.patients.insert(key, id);
                }
            }
            Parsed::Practitioner { key, ids, .. } => {
                index.practitioners.insert(key, ids);
            }
            Parsed::PractitionerRole { key, practitioner, ids, organization, .. } => index.raw_roles.push((key, practitioner, ids, organization)),
            Parsed::Place { key, organization } => index.raw_places.push((key, organization)),
            Parsed::Schedule { key, actors, active, .. } => index.raw_schedules.push((key, actors, active)),
            Parsed::Slot { schedule: Some(schedule), .. } => {
                index.slotted.insert(schedule);
            }
            _ => {}
        }
    }

    /// Between the passes: resolves roles, places and rosters against what was learnt.
    pub fn settle(&mut self) {
        let index = &mut self.index;
        for (key, practitioner, ids, organization) in std::mem::take(&mut index.raw_roles) {
            let mut person = ids;
            if let Some(found) = practitioner.as_ref().and_then(|r| index.practitioners.get(r)) {
                person.person = person.person.or_else(|| found.person.clone());
                person.hpr = person.hpr.or_else(|| found.hpr.clone());
            }
            let org = organization.as_deref().and_then(|k| index.resolve_org(k)).unwrap_or_default();
            index.roles.insert(key, (person, org));
        }
        // Where each Location or HealthcareService belongs, for rosters.
        for (key, organization) in std::mem::take(&mut index.raw_places) {
            if let Some(target) = organization.as_ref().filter(|t| !index.orgs.contains_key(*t)) {
                self.missing.push((key.clone(), "organization", target.clone()));
            }
            let org = organization.as_deref().and_then(|k| index.resolve_org(k)).unwrap_or_default();
            index.places.insert(key, org);
        }
        // Each roster: the people it is for, and the unit where the duty is done (a place
        // it names, else the unit of the role it names).
        for (key, actors, active) in std::mem::take(&mut index.raw_schedules) {
            let mut roster = Roster { active, ..Roster::default() };
            let mut role_unit = None;
            for actor in &actors {
                let kind = actor.split('/').next().unwrap_or("");
                let found = match kind {
                    "Practitioner" => index.practitioners.get(actor).map(|ids| roster.people.push(ids.clone())),
                    "PractitionerRole" => index.roles.get(actor).map(|(ids, org)| {
                        roster.people.push(ids.clone());
                        role_unit = role_unit.take().or_else(|| Some(org.clone()));
                    }),
                    "Location" | "HealthcareService" => index.places.get(actor).map(|org| roster.unit = roster.unit.take().or_else(|| Some(org.clone()))),
                    // Not an R4 Schedule actor, but unambiguous where a source sends it.
                    "Organization" => index.resolve_org(actor).map(|org| roster.unit = roster.unit.take().or(Some(org))),
                    _ => Some(()),
                };
                if found.is_none() {
                    self.missing.push((key.clone(), "Schedule.actor", actor.clone()));
                }
            }
            roster.unit = roster.unit.or(role_unit);
            if roster.people.is_empty() {
                self.problems.push(ResourceProblem {
                    resource: key.clone(),
                    path: "Schedule.actor".into(),
                    reason: "names no Practitioner or PractitionerRole: whose duty it is cannot be told".into(),
                });
            } else if roster.unit.as_ref().is_none_or(|u| u.orgnr.is_none()) {
                self.problems.push(ResourceProblem {
                    resource: key.clone(),
                    path: "Schedule.actor".into(),
                    reason: "names no Location, HealthcareService or PractitionerRole of a known organisation: where the duty is done cannot be told".into(),
                });
            }
            index.rosters.insert(key, roster);
        }
    }

    /// Second pass: writes the resource's rows, resolving its references, and keeps what
    /// was wrong with it.
    pub fn emit(&mut self, resource: Reduced) {
        self.problems.extend(resource.problems);
        if let Some(p) = &resource.parsed {
            self.emit_parsed(p);
        }
    }

    fn emit_parsed(&mut self, p: &Parsed) {
        match p {
            Parsed::Organization { key, ids, name, part_of } => {
                let resolved = self.index.resolve_org(key).unwrap_or_default();
                if let Some(target) = part_of.as_ref().filter(|t| !self.index.orgs.contains_key(*t)) {
                    self.missing.push((key.clone(), "Organization.partOf", target.clone()));
                }
                if let Some(t) = self.tables.get_mut("organization") {
                    t.push(&[
                        Cell::Text(Some(key)),
                        Cell::Text(resolved.orgnr.as_deref()),
                        Cell::Text(ids.resh.as_deref()),
                        Cell::Text(name.as_deref()),
                        Cell::Text(part_of.as_deref()),
                    ]);
                }
            }
            Parsed::Patient { key, ids, family, given, protected, deceased, addresses } => {
                let Some(person) = &ids.person else {
                    self.problems.push(ResourceProblem {
                        resource: key.clone(),
                        path: "Patient.identifier".into(),
                        reason: "no fødselsnummer, D-nummer or H-nummer; the patient cannot be matched to accesses".into(),
                    });
                    return;
                };
                let family_key = family.as_deref().map(name_key);
                if let Some(t) = self.tables.get_mut("person") {
                    t.push(&[
                        Cell::Text(Some(person)),
                        Cell::Text(Some(key)),
                        Cell::Text(family.as_deref()),
                        Cell::Text(given.as_deref()),
                        Cell::Text(family_key.as_deref()),
                        Cell::Flag(*protected),
                        Cell::Flag(*deceased),
                    ]);
                }
                push_addresses(&mut self.tables, person, "Patient", addresses);
            }
            Parsed::Practitioner { key, ids, family, given, addresses } => {
                if let Some(t) = self.tables.get_mut("practitioner") {
                    t.push(&[
                        Cell::Text(Some(key)),
                        Cell::Text(ids.person.as_deref()),
                        Cell::Text(ids.hpr.as_deref()),
                        Cell::Text(family.as_deref()),
                        Cell::Text(given.as_deref()),
                    ]);
                }
                if let Some(person) = &ids.person {
                    push_addresses(&mut self.tables, person, "Practitioner", addresses);
                }
            }
            Parsed::RelatedPerson { key, patient, related, codes, from, to } => {
                let Some(patient_ref) = patient else {
                    self.problems.push(ResourceProblem { resource: key.clone(), path: "RelatedPerson.patient".into(), reason: "missing".into() });
                    return;
                };
                let Some(person) = self.index.patients.get(patient_ref) else {
                    self.missing.push((key.clone(), "RelatedPerson.patient", patient_ref.clone()));
                    return;
                };
                let Some(related_id) = &related.person else {
                    self.problems.push(ResourceProblem {
                        resource: key.clone(),
                        path: "RelatedPerson.identifier".into(),
                        reason: "no person identifier for the related person".into(),
                    });
                    return;
                };
                let code = codes.first().map(String::as_str).unwrap_or("");
                let (kind, reverse) = relation_kind(code);
                if let Some(t) = self.tables.get_mut("relation") {
                    t.push(&[Cell::Text(Some(person)), Cell::Text(Some(related_id)), Cell::Text(Some(code)), Cell::Text(Some(kind)), Cell::Time(*from), Cell::Time(*to)]);
                    t.push(&[Cell::Text(Some(related_id)), Cell::Text(Some(person)), Cell::Text(Some(code)), Cell::Text(Some(reverse)), Cell::Time(*from), Cell::Time(*to)]);
                }
            }
            Parsed::PractitionerRole { key, practitioner, organization, role, from, to, .. } => {
                let (person, org) = self.index.roles.get(key).cloned().unwrap_or_default();
                if let Some(target) = practitioner.as_ref().filter(|t| !self.index.practitioners.contains_key(*t)) {
                    self.missing.push((key.clone(), "PractitionerRole.practitioner", target.clone()));
                }
                if let Some(target) = organization.as_ref().filter(|t| !self.index.orgs.contains_key(*t)) {
                    self.missing.push((key.clone(), "PractitionerRole.organization", target.clone()));
                }
                if let Some(t) = self.tables.get_mut("employment") {
                    t.push(&[
                        Cell::Text(Some(key)),
                        Cell::Text(person.person.as_deref()),
                        Cell::Text(person.hpr.as_deref()),
                        Cell::Text(org.orgnr.as_deref()),
                        Cell::Text(org.unit.as_deref()),
                        Cell::Text(role.as_deref()),
                        Cell::Time(*from),
                        Cell::Time(*to),
                    ]);
                }
            }
            Parsed::Place { .. } => {}
            Parsed::Schedule { key, from, to, active, .. } => {
                // A roster with shifts (Slot) is on duty in its shifts; one without, over
                // its whole planning horizon.
                if !*active || self.index.slotted.contains(key) {
                    return;
                }
                let (Some(from), Some(to)) = (from, to) else {
                    self.problems.push(ResourceProblem {
                        resource: key.clone(),
                        path: "Schedule.planningHorizon".into(),
                        reason: "no Slot and no complete planning horizon: when the duty is cannot be told".into(),
                    });
                    return;
                };
                if let Some(roster) = self.index.rosters.get(key) {
                    push_duty(&mut self.tables, key, roster, *from, *to);
                }
            }
            Parsed::Slot { key, schedule, from, to, on_duty } => {
                let Some(schedule) = schedule else {
                    self.problems.push(ResourceProblem { resource: key.clone(), path: "Slot.schedule".into(), reason: "missing".into() });
                    return;
                };
                let Some(roster) = self.index.rosters.get(schedule) else {
                    self.missing.push((key.clone(), "Slot.schedule", schedule.clone()));
                    return;
                };
                let (Some(from), Some(to)) = (from, to) else {
                    self.problems.push(ResourceProblem { resource: key.clone(), path: "Slot.start".into(), reason: "a shift needs both start and end".into() });
                    return;
                };
                if *on_duty && roster.active {
                    push_duty(&mut self.tables, key, roster, *from, *to);
                }
            }
            Parsed::Care { key, kind, patient, patient_ids, organization, participants, from, to } => {
                let patient_id = patient_ids.person.clone().or_else(|| patient.as_ref().and_then(|r| self.index.patients.get(r).cloned()));
                let Some(patient_id) = patient_id else {
                    match patient {
                        Some(r) => self.missing.push((key.clone(), "subject", r.clone())),
                        None => self.problems.push(ResourceProblem { resource: key.clone(), path: "patient".into(), reason: "names no patient".into() }),
                    }
                    return;
                };
                let mut org = organization.as_deref().and_then(|k| self.index.resolve_org(k));
                if let Some(target) = organization.as_ref().filter(|t| !self.index.orgs.contains_key(*t)) {
                    self.missing.push((key.clone(), "organization", target.clone()));
                }
                for participant in participants {
                    let ids = if participant.starts_with("PractitionerRole/") {
                        self.index.roles.get(participant).map(|(ids, role_org)| {
                            // An appointment knows its organisation through the booked role.
                            if org.is_none() {
                                org = Some(role_org.clone());
                            }
                            ids.clone()
                        })
                    } else {
                        self.index.practitioners.get(participant).cloned()
                    };
                    match ids {
                        Some(ids) => {
                            if let Some(t) = self.tables.get_mut("care_participant") {
                                t.push(&[Cell::Text(Some(key)), Cell::Text(ids.person.as_deref()), Cell::Text(ids.hpr.as_deref())]);
                            }
                        }
                        None if participant.starts_with("Practitioner") => self.missing.push((key.clone(), "participant", participant.clone())),
                        None => {}
                    }
                }
                let org = org.unwrap_or_default();
                if let Some(t) = self.tables.get_mut("care") {
                    t.push(&[
                        Cell::Text(Some(key)),
                        Cell::Text(Some(kind)),
                        Cell::Text(Some(&patient_id)),
                        Cell::Text(org.orgnr.as_deref()),
                        Cell::Text(org.unit.as_deref()),
                        Cell::Time(*from),
                        Cell::Time(*to),
                    ]);
                }
            }
        }
    }

    /// The tables, in [`TABLE_ORDER`], and every problem found.
    pub fn finish(mut self) -> (Vec<TableBuilder>, Vec<ResourceProblem>) {
        for (resource, path, target) in std::mem::take(&mut self.missing) {
            self.problems.push(ResourceProblem { resource, path: path.to_owned(), reason: format!("refers to {target}, which is in neither this import nor an earlier one") });
        }
        let built = TABLE_ORDER.iter().filter_map(|t| self.tables.remove(t)).collect();
        (built, self.problems)
    }

    /// Both passes over resources held in memory: (resource type, `Type/id`, resource).
    #[cfg(test)]
    pub fn resolve_all(resources: &[(String, String, Value)]) -> (Vec<TableBuilder>, Vec<ResourceProblem>) {
        let mut r = Resolver::in_memory();
        for (t, key, v) in resources.iter().filter(|(t, _, _)| is_indexed(t)) {
            r.learn(reduce(t, key.clone(), v));
        }
        r.settle();
        for (t, key, v) in resources {
            r.emit(reduce(t, key.clone(), v));
        }
        r.finish()
    }
}

/// The tables [`Resolver::build`] fills, in the order it returns them.
const TABLE_ORDER: [&str; 9] = ["organization", "person", "person_address", "relation", "practitioner", "employment", "care", "care_participant", "duty"];

/// A roster (Schedule) resolved: whose duty, and where.
#[derive(Default)]
struct Roster {
    people: Vec<Ids>,
    unit: Option<OrgEntry>,
    active: bool,
}

/// One `duty` row per person of the roster, for a shift or a whole planning horizon.
fn push_duty(tables: &mut HashMap<&'static str, TableBuilder>, duty_ref: &str, roster: &Roster, from: i64, to: i64) {
    let (Some(unit), Some(t)) = (roster.unit.as_ref().filter(|u| u.orgnr.is_some()), tables.get_mut("duty")) else { return };
    for person in &roster.people {
        t.push(&[
            Cell::Text(Some(duty_ref)),
            Cell::Text(person.person.as_deref()),
            Cell::Text(person.hpr.as_deref()),
            Cell::Text(unit.orgnr.as_deref()),
            Cell::Text(unit.unit.as_deref()),
            Cell::Time(Some(from)),
            Cell::Time(Some(to)),
        ]);
    }
}

fn push_addresses(tables: &mut HashMap<&'static str, TableBuilder>, person: &str, source: &str, addresses: &[Address]) {
    let Some(t) = tables.get_mut("person_address") else { return };
    for a in addresses {
        t.push(&[
            Cell::Text(Some(person)),
            Cell::Text(Some(source)),
            Cell::Text(Some(&a.text)),
            Cell::Text(a.street.as_deref()),
            Cell::Text(a.house.as_deref()),
            Cell::Text(a.building.as_deref()),
            Cell::Text(a.dwelling.as_deref()),
            Cell::Int(a.house_number),
            Cell::Time(a.from),
            Cell::Time(a.to),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_date_times_become_utc_microseconds() {
        assert_eq!(instant("2026-01-01"), Some(1_767_225_600_000_000));
        assert_eq!(instant("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000_000));
        assert_eq!(instant("2026"), instant("2026-01-01"));
        assert_eq!(instant("not a date"), None);
    }

    /// Each resource with its type and `Type/id`.
    fn keyed(resources: &[Value]) -> Vec<(String, String, Value)> {
        resources
            .iter()
            .map(|r| {
                let t = r["resourceType"].as_str().unwrap().to_owned();
                let key = format!("{t}/{}", r["id"].as_str().unwrap());
                (t, key, r.clone())
            })
            .collect()
    }

    /// (patient, kind, unit, from, to) per care row.
    type CareRow = (String, String, Option<String>, Option<i64>, Option<i64>);
    /// The care rows, the care-team members, and the problems found.
    type CareRows = (Vec<CareRow>, Vec<(String, Option<String>)>, Vec<ResourceProblem>);

    fn care_rows(resources: &[Value]) -> CareRows {
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMicrosecondType;
        let (tables, problems) = Resolver::resolve_all(&keyed(resources));
        let batch = |name: &str| tables.into_iter().find(|t| t.name == name).unwrap().finish().unwrap().remove(0);
        let care = batch("care");
        let text = |b: &arrow_array::RecordBatch, c: &str, i: usize| {
            let a = b.column_by_name(c).unwrap().as_string::<i32>();
            (!arrow_array::Array::is_null(a, i)).then(|| a.value(i).to_owned())
        };
        let time = |b: &arrow_array::RecordBatch, c: &str, i: usize| {
            let a = b.column_by_name(c).unwrap().as_primitive::<TimestampMicrosecondType>();
            (!arrow_array::Array::is_null(a, i)).then(|| a.value(i))
        };
        let rows = (0..care.num_rows())
            .map(|i| (text(&care, "kind", i).unwrap(), text(&care, "patient_id", i).unwrap(), text(&care, "unit_id", i), time(&care, "valid_from", i), time(&care, "valid_to", i)))
            .collect();
        let participants = Resolver::resolve_all(&keyed(resources)).0.into_iter().find(|t| t.name == "care_participant").unwrap().finish().unwrap().remove(0);
        let people = (0..participants.num_rows()).map(|i| (text(&participants, "care_ref", i).unwrap(), text(&participants, "hpr", i))).collect();
        (rows, people, problems)
    }

    fn staff_and_patient() -> Vec<Value> {
        serde_json::from_str(
            r#"[
            {"resourceType":"Organization","id":"hf","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"974749025"}]},
            {"resourceType":"Organization","id":"lab","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"4001"}],"partOf":{"reference":"Organization/hf"}},
            {"resourceType":"Practitioner","id":"bio","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"9144889"}]},
            {"resourceType":"PractitionerRole","id":"bio-lab","practitioner":{"reference":"Practitioner/bio"},"organization":{"reference":"Organization/lab"}},
            {"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13097248022"}]}
        ]"#,
        )
        .unwrap()
    }

    #[test]
    fn orders_results_and_care_teams_become_care_evidence_of_their_performers() {
        let mut resources = staff_and_patient();
        resources.extend(serde_json::from_str::<Vec<Value>>(
            r#"[
            {"resourceType":"ServiceRequest","id":"sr1","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"authoredOn":"2026-11-16T08:00:00Z","performer":[{"reference":"Organization/lab"}]},
            {"resourceType":"DiagnosticReport","id":"dr1","status":"final","code":{"text":"Hb"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-16T09:00:00Z","issued":"2026-11-16T11:00:00Z","performer":[{"reference":"PractitionerRole/bio-lab"}]},
            {"resourceType":"MedicationRequest","id":"mr1","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"authoredOn":"2026-11-17","dispenseRequest":{"validityPeriod":{"start":"2026-11-17","end":"2026-11-30"}}},
            {"resourceType":"CareTeam","id":"ct1","subject":{"reference":"Patient/p1"},"period":{"start":"2026-11-01"},"participant":[{"member":{"reference":"Practitioner/bio"}}],"managingOrganization":[{"reference":"Organization/lab"}]}
        ]"#,
        ).unwrap());
        let (rows, people, problems) = care_rows(&resources);
        assert!(problems.is_empty(), "{problems:?}");
        let find = |kind: &str| rows.iter().find(|r| r.0 == kind).unwrap_or_else(|| panic!("{kind} in {rows:?}")).clone();
        let sr = find("service_request");
        assert_eq!((sr.1.as_str(), sr.2.as_deref()), ("13097248022", Some("4001")), "the performing unit");
        assert_eq!(sr.3, instant("2026-11-16T08:00:00Z"));
        assert_eq!(sr.4, sr.3, "an order without an occurrence covers its day of authoring");
        let dr = find("diagnostic_report");
        assert_eq!(dr.2.as_deref(), Some("4001"), "the unit of the performing role");
        assert_eq!((dr.3, dr.4), (instant("2026-11-16T09:00:00Z"), instant("2026-11-16T11:00:00Z")));
        let mr = find("medication_request");
        assert_eq!(mr.4, instant("2026-11-30"));
        let ct = find("care_team");
        assert_eq!((ct.2.as_deref(), ct.4), (Some("4001"), None), "an open care team");
        assert!(people.iter().any(|(r, h)| r == "DiagnosticReport/dr1" && h.as_deref() == Some("9144889")));
        assert!(people.iter().any(|(r, h)| r == "CareTeam/ct1" && h.as_deref() == Some("9144889")));
    }

    #[test]
    fn an_order_for_an_unknown_patient_is_a_reported_problem() {
        let mut resources = staff_and_patient();
        resources.push(serde_json::from_str(r#"{"resourceType":"ServiceRequest","id":"sr9","subject":{"reference":"Patient/nobody"},"authoredOn":"2026-11-16"}"#).unwrap());
        let (rows, _, problems) = care_rows(&resources);
        assert!(rows.is_empty());
        assert!(problems.iter().any(|p| p.resource == "ServiceRequest/sr9" && p.reason.contains("Patient/nobody")), "{problems:?}");
    }

    /// The rows of one table built from `resources` (text as is, times as microseconds),
    /// and the problems found.
    fn table_rows(resources: &[Value], table: &str) -> (Vec<Vec<Option<String>>>, Vec<ResourceProblem>) {
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMicrosecondType;
        use arrow_array::Array;
        let (tables, problems) = Resolver::resolve_all(&keyed(resources));
        let batch = tables.into_iter().find(|t| t.name == table).unwrap().finish().unwrap().remove(0);
        let rows = (0..batch.num_rows())
            .map(|i| {
                batch
                    .columns()
                    .iter()
                    .map(|c| match c.data_type() {
                        arrow_schema::DataType::Utf8 => (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_owned()),
                        _ => (!c.is_null(i)).then(|| c.as_primitive::<TimestampMicrosecondType>().value(i).to_string()),
                    })
                    .collect()
            })
            .collect();
        (rows, problems)
    }

    #[test]
    fn rosters_give_a_duty_row_per_shift_where_the_duty_is_done() {
        let mut resources = staff_and_patient();
        resources.extend(serde_json::from_str::<Vec<Value>>(
            r#"[
            {"resourceType":"Organization","id":"ward","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"4002"}],"partOf":{"reference":"Organization/hf"}},
            {"resourceType":"HealthcareService","id":"ward-oncall","providedBy":{"reference":"Organization/ward"}},
            {"resourceType":"Schedule","id":"own","actor":[{"reference":"PractitionerRole/bio-lab"}]},
            {"resourceType":"Schedule","id":"cover","actor":[{"reference":"Practitioner/bio"},{"reference":"HealthcareService/ward-oncall"}]},
            {"resourceType":"Schedule","id":"month","actor":[{"reference":"PractitionerRole/bio-lab"}],"planningHorizon":{"start":"2026-11-01","end":"2026-12-01"}},
            {"resourceType":"Schedule","id":"retired","active":false,"actor":[{"reference":"PractitionerRole/bio-lab"}],"planningHorizon":{"start":"2026-11-01","end":"2026-12-01"}},
            {"resourceType":"Schedule","id":"nobody","actor":[{"reference":"HealthcareService/ward-oncall"}],"planningHorizon":{"start":"2026-11-01","end":"2026-12-01"}},
            {"resourceType":"Slot","id":"s1","schedule":{"reference":"Schedule/own"},"status":"busy","start":"2026-11-16T06:00:00Z","end":"2026-11-16T14:00:00Z"},
            {"resourceType":"Slot","id":"s2","schedule":{"reference":"Schedule/own"},"status":"busy-unavailable","start":"2026-11-17T06:00:00Z","end":"2026-11-17T14:00:00Z"},
            {"resourceType":"Slot","id":"s3","schedule":{"reference":"Schedule/cover"},"status":"free","start":"2026-11-16T21:00:00Z","end":"2026-11-17T05:00:00Z"},
            {"resourceType":"Slot","id":"s4","schedule":{"reference":"Schedule/gone"},"status":"busy","start":"2026-11-16T21:00:00Z","end":"2026-11-17T05:00:00Z"},
            {"resourceType":"Slot","id":"s5","schedule":{"reference":"Schedule/own"},"status":"busy","start":"2026-11-18T06:00:00Z"}
        ]"#,
        ).unwrap());
        let (rows, problems) = table_rows(&resources, "duty");
        let t = |text: &str| instant(text).map(|v| v.to_string());
        let row = |duty: &str, unit: &str, from: &str, to: &str| {
            vec![Some(duty.to_owned()), None, Some("9144889".to_owned()), Some("974749025".to_owned()), Some(unit.to_owned()), t(from), t(to)]
        };
        assert_eq!(
            rows,
            vec![
                row("Schedule/month", "4001", "2026-11-01", "2026-12-01"),
                row("Slot/s1", "4001", "2026-11-16T06:00:00Z", "2026-11-16T14:00:00Z"),
                row("Slot/s3", "4002", "2026-11-16T21:00:00Z", "2026-11-17T05:00:00Z"),
            ],
            "a shift of one's own unit, cover of another through its service, a whole horizon; no leave, nothing inactive"
        );
        let problem = |resource: &str, needle: &str| problems.iter().any(|p| p.resource == resource && p.reason.contains(needle));
        assert!(problem("Schedule/nobody", "names no Practitioner"), "{problems:?}");
        assert!(problem("Slot/s4", "Schedule/gone"), "{problems:?}");
        assert!(problem("Slot/s5", "start and end"), "{problems:?}");
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn an_appointment_is_evidence_from_when_it_was_booked() {
        let mut resources = staff_and_patient();
        resources.push(serde_json::from_str(r#"{"resourceType":"Appointment","id":"a1","status":"booked","created":"2026-11-02T10:00:00Z","start":"2026-11-20T08:00:00Z","participant":[{"actor":{"reference":"Patient/p1"}},{"actor":{"reference":"PractitionerRole/bio-lab"}}]}"#).unwrap());
        let (rows, _, problems) = care_rows(&resources);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((rows[0].3, rows[0].4), (instant("2026-11-02T10:00:00Z"), instant("2026-11-20T08:00:00Z")), "{rows:?}");
    }

    #[test]
    fn relation_codes_read_from_both_sides() {
        assert_eq!(relation_kind("CHILD"), ("child", "parent"));
        assert_eq!(relation_kind("FMRSPS"), ("former_partner", "former_partner"));
        assert_eq!(relation_kind("SPS"), ("partner", "partner"));
        assert_eq!(relation_kind("XYZ"), ("other", "other"));
    }
}
