//! AuditEvent → AccessEvent. The rules are written out in `docs/fhir-mapping.md`.

use std::collections::BTreeSet;

use loggvakt_model::codes::{audit_codes, basis, channel, outcome};
use loggvakt_model::ids::{validate_orgnr, validate_person_id_as, IdSystem};
use loggvakt_model::{AccessEvent, Timestamp};

use crate::context::{parse_entry, reference_key, ContextEntry, ContextView};
use crate::json::parse_with_path;
pub use crate::json::MapError;
use crate::resources::{Agent, AuditEvent, Concept, Extension, Head, Identifier, Outcome, Reference, Text};
use crate::time::parse_instant;

/// Extension URLs (by their last path segment) that carry what AuditEvent has no element for.
pub const EXT_SOURCE_SEQUENCE: &str = "loggvakt-source-sequence";
pub const EXT_ACCESS_CHANNEL: &str = "loggvakt-access-channel";

pub(crate) fn map_audit_event(raw: &[u8], view: &ContextView<'_>, received_at: Timestamp) -> Result<AccessEvent, MapError> {
    let ae: AuditEvent<'_> = parse_with_path(raw, "AuditEvent")?;
    map_parsed(&ae, raw, view, received_at)
}

/// Maps an AuditEvent already parsed from `raw` (the fast path parses once).
pub(crate) fn map_parsed(ae: &AuditEvent<'_>, raw: &[u8], view: &ContextView<'_>, received_at: Timestamp) -> Result<AccessEvent, MapError> {
    let mut view = ContextView { global: view.global, contained: view.contained.clone() };
    add_contained(ae, &mut view)?;
    let digest = crate::source_digest(raw);
    let r5 = is_r5(ae);

    let recorded_at = ae.recorded.as_ref().map(|t| parse_instant("AuditEvent.recorded", t.as_str())).transpose()?;
    let occurred_at = if let Some(start) = ae.period.as_ref().and_then(|p| p.start.as_ref()) {
        parse_instant("AuditEvent.period.start", start.as_str())?
    } else if let Some(start) = ae.occurred_period.as_ref().and_then(|p| p.start.as_ref()) {
        parse_instant("AuditEvent.occurredPeriod.start", start.as_str())?
    } else if let Some(t) = &ae.occurred_date_time {
        parse_instant("AuditEvent.occurredDateTime", t.as_str())?
    } else {
        recorded_at.ok_or_else(|| MapError::new("AuditEvent.recorded", "is missing, and no period/occurred time is given either"))?
    };

    let (requestor_index, requestor) = choose_user(ae).ok_or_else(|| MapError::new("AuditEvent.agent", "there is no agent with a 'who', so the accessing user is unknown"))?;
    let mut user = resolve_user(requestor, requestor_index, &view)?;
    if user.unit_id.is_none() {
        // A location agent of its own (BALP), known by its RESH id.
        if let Some(who) = ae.agent.iter().filter_map(|a| a.who.as_ref()).find(|w| identifier_of(w, IdSystem::Resh).is_some()) {
            user.unit_id = identifier_of(who, IdSystem::Resh).map(str::to_owned);
            user.unit_name = user.unit_name.take().or_else(|| who.display.as_ref().map(|d| d.as_str().to_owned()));
        }
    }
    let tenant_orgnr = find_tenant(ae, requestor_index, &user, &view)?;
    let (patient_id, patient_id_kind, patient_entity) = find_patient(ae, &view)?;

    let mut sensitivity = BTreeSet::new();
    for code in ae.meta.iter().flat_map(|m| m.security.iter()).filter_map(|c| c.code.as_ref()) {
        sensitivity.insert(code.as_str().to_owned());
    }
    let mut record_part = None;
    let mut document_id = None;
    let mut data_owner_org = None;
    for (i, entity) in ae.entity.iter().enumerate() {
        for label in &entity.security_label {
            sensitivity.extend(label.codes().map(|(_, c)| c.to_owned()));
        }
        if Some(i) == patient_entity {
            continue;
        }
        let Some(what) = &entity.what else { continue };
        if let Some(orgnr) = identifier_of(what, IdSystem::Orgnr) {
            validate_orgnr(orgnr).map_err(|e| MapError::new(format!("AuditEvent.entity[{i}].what.identifier.value"), e.to_string()))?;
            data_owner_org.get_or_insert_with(|| orgnr.to_owned());
            continue;
        }
        if document_id.is_none() {
            document_id = what.reference.as_ref().map(|r| r.as_str().to_owned()).or_else(|| what.identifier.as_ref().and_then(|i| i.value.as_ref()).map(|v| v.as_str().to_owned()));
            record_part = what
                .reference
                .as_ref()
                .and_then(|r| reference_key(&Reference { reference: Some(r.clone()), ..Default::default() }))
                .and_then(|k| k.split('/').next().map(str::to_owned))
                .or_else(|| what.kind.as_ref().map(|t| t.as_str().to_owned()))
                .or_else(|| entity.kind.as_ref().and_then(|k| k.label().or(k.first_code())).map(str::to_owned))
                .or_else(|| entity.name.as_ref().map(|n| n.as_str().to_owned()));
        }
    }

    let (action, action_code) = map_action(ae)?;
    let purposes: Vec<&Concept<'_>> = ae.purpose_of_event.iter().chain(&ae.authorization).chain(&requestor.purpose_of_use).chain(&requestor.authorization).collect();
    let self_authorised = purposes.iter().find(|c| c.codes().any(|(_, code)| audit_codes::is_self_authorisation(code)));
    let (basis, purpose) = match (self_authorised, purposes.first()) {
        (Some(c), _) => (basis::SELF_AUTHORISATION, Some(*c)),
        (None, Some(c)) => (basis::NORMAL, Some(*c)),
        (None, None) => (basis::UNSPECIFIED, None),
    };

    let outcome = map_outcome(ae.outcome.as_ref())?;
    let source = ae.source.as_ref().ok_or_else(|| MapError::new("AuditEvent.source", "is missing (required): which system recorded the access?"))?;
    let observer = source.observer.as_ref().ok_or_else(|| MapError::new("AuditEvent.source.observer", "is missing (required)"))?;
    let source_system = observer
        .identifier
        .as_ref()
        .and_then(|i| i.value.as_ref())
        .or(observer.reference.as_ref())
        .or(observer.display.as_ref())
        .map(|t| t.as_str().to_owned())
        .ok_or_else(|| MapError::new("AuditEvent.source.observer", "has no identifier, reference or display to name the source system"))?;
    let source_seq = ae.extension.iter().chain(&source.extension).find(|e| e.named(EXT_SOURCE_SEQUENCE)).and_then(Extension::integer);

    let channel = map_channel(ae, requestor, &user)?;
    let event_id = match &ae.id {
        Some(id) if !id.as_str().is_empty() => id.as_str().to_owned(),
        _ => format!("digest:{}", hex(&digest.0)),
    };

    Ok(AccessEvent {
        event_id,
        source_system,
        source_seq,
        occurred_at,
        recorded_at,
        received_at,
        tenant_orgnr,
        user_person_id: user.person_id,
        user_hpr: user.hpr,
        user_local_id: user.local_id,
        user_name: user.name,
        unit_id: user.unit_id,
        unit_name: user.unit_name,
        role_code: user.role_code,
        function_code: user.function_code,
        patient_id,
        patient_id_kind,
        record_part,
        document_id,
        sensitivity: (!sensitivity.is_empty()).then(|| sensitivity.into_iter().collect::<Vec<_>>().join(",")),
        data_owner_org,
        action: action.to_owned(),
        action_code,
        basis: basis.to_owned(),
        purpose_code: purpose.and_then(|c| c.codes().find(|(_, code)| audit_codes::is_self_authorisation(code)).or_else(|| c.codes().next()).map(|(_, code)| code.to_owned())),
        reason_text: purpose.and_then(|c| c.text.as_ref()).map(|t| t.as_str().to_owned()),
        channel: channel.to_owned(),
        outcome: outcome.to_owned(),
        source_format: if r5 { "fhir-r5" } else { "fhir-r4" }.to_owned(),
        source_digest: digest,
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_r5(ae: &AuditEvent<'_>) -> bool {
    ae.patient.is_some()
        || ae.code.is_some()
        || ae.occurred_date_time.is_some()
        || ae.occurred_period.is_some()
        || !ae.authorization.is_empty()
        || matches!(ae.outcome, Some(Outcome::Object { .. }))
        || ae.agent.iter().any(|a| !a.authorization.is_empty())
}

fn add_contained(ae: &AuditEvent<'_>, view: &mut ContextView<'_>) -> Result<(), MapError> {
    for (i, raw) in ae.contained.iter().enumerate() {
        let path = format!("AuditEvent.contained[{i}]");
        let head: Head<'_> = parse_with_path(raw.get().as_bytes(), &path)?;
        let (Some(t), Some(id)) = (head.resource_type, head.id) else { continue };
        if crate::context::CONTEXT_TYPES.contains(&t.as_str()) {
            let entry = parse_entry(t.as_str(), raw.get().as_bytes()).map_err(|e| e.prefixed(&format!("{path}.")))?;
            view.contained.insert(format!("#{}", id.as_str()), entry);
        }
    }
    Ok(())
}

fn identifier_of<'r>(reference: &'r Reference<'_>, system: IdSystem) -> Option<&'r str> {
    let Identifier { system: Some(s), value: Some(v) } = reference.identifier.as_ref()? else { return None };
    (IdSystem::from_fhir_system(s.as_str()) == Some(system)).then_some(v.as_str())
}

#[derive(Default)]
struct User {
    person_id: Option<String>,
    hpr: Option<String>,
    local_id: Option<String>,
    name: Option<String>,
    unit_id: Option<String>,
    unit_name: Option<String>,
    role_code: Option<String>,
    function_code: Option<String>,
    employer_orgnr: Option<String>,
}

fn merge_person(user: &mut User, entry: &ContextEntry) {
    if user.person_id.is_none() {
        user.person_id = entry.person_id.as_ref().map(|(v, _)| v.clone());
    }
    user.hpr = user.hpr.take().or_else(|| entry.hpr.clone());
    user.name = user.name.take().or_else(|| entry.name.clone());
    user.local_id = user.local_id.take().or_else(|| entry.other_id.clone());
}

/// The organisation number behind an Organization reference, following `partOf` from a unit.
fn orgnr_of(view: &ContextView<'_>, key: &str, unit: &mut (Option<String>, Option<String>)) -> Option<String> {
    let mut key = key.to_owned();
    for _ in 0..8 {
        let org = view.get(&key)?;
        if unit.0.is_none() && org.resh.is_some() {
            *unit = (org.resh.clone(), org.name.clone());
        }
        if let Some(orgnr) = &org.orgnr {
            return Some(orgnr.clone());
        }
        key = org.part_of.clone()?;
    }
    None
}

fn resolve_user(agent: &Agent<'_>, index: usize, view: &ContextView<'_>) -> Result<User, MapError> {
    let path = format!("AuditEvent.agent[{index}]");
    let mut user = User::default();
    let who = agent.who.as_ref();
    if let Some(Identifier { system, value: Some(value) }) = who.and_then(|w| w.identifier.as_ref()) {
        let value = value.as_str().to_owned();
        match system.as_ref().and_then(|s| IdSystem::from_fhir_system(s.as_str())) {
            Some(kind) if kind.is_person() => {
                validate_person_id_as(&value, kind).map_err(|e| MapError::new(format!("{path}.who.identifier.value"), e.to_string()))?;
                user.person_id = Some(value);
            }
            Some(IdSystem::Hpr) => {
                if !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 9 {
                    return Err(MapError::new(format!("{path}.who.identifier.value"), format!("'{value}' is not an HPR number (up to 9 digits)")));
                }
                user.hpr = Some(value);
            }
            _ => user.local_id = Some(value),
        }
    }
    user.local_id = user.local_id.take().or_else(|| agent.alt_id.as_ref().map(|t| t.as_str().to_owned()));
    user.name = who.and_then(|w| w.display.as_ref()).or(agent.name.as_ref()).map(|t| t.as_str().to_owned());
    let mut unit = (None, None);
    let key = who.and_then(reference_key);
    // A reference the store does not know is needed only when nothing else names the user:
    // with the user's person id or HPR number beside it (as BALP feeds send them), the
    // event is stored, and the reference kept as the user's local id if there is none.
    let resolved = key.as_deref().and_then(|k| view.get(k).map(|e| (k, e)));
    if let (Some(k), None) = (&key, resolved) {
        if user.person_id.is_none() && user.hpr.is_none() {
            return Err(MapError::unresolved(
                format!("{path}.who.reference"),
                format!("'{k}' is neither contained in the AuditEvent nor imported before; it is needed to identify the user"),
            ));
        }
        user.local_id.get_or_insert_with(|| k.clone());
    }
    if let Some((key, entry)) = resolved {
        if key.contains("PractitionerRole/") || (key.starts_with('#') && entry.practitioner.is_some()) {
            if let Some(practitioner) = entry.practitioner.as_ref().and_then(|k| view.get(k)) {
                merge_person(&mut user, practitioner);
            }
            user.hpr = user.hpr.take().or_else(|| entry.hpr.clone());
            if user.person_id.is_none() {
                user.person_id = entry.person_id.as_ref().map(|(v, _)| v.clone());
            }
            user.role_code = entry.role_code.clone();
            user.function_code = entry.function_code.clone();
            if let Some(org) = &entry.organization {
                user.employer_orgnr = orgnr_of(view, org, &mut unit);
            }
            if unit.0.is_none() {
                if let Some(location) = entry.location.as_ref().and_then(|k| view.get(k)) {
                    unit = (location.resh.clone().or_else(|| location.other_id.clone()), location.name.clone());
                }
            }
        } else {
            merge_person(&mut user, entry);
        }
    }
    if let Some(role) = agent.role.first().and_then(Concept::first_code) {
        user.role_code = Some(role.to_owned());
    }
    if let Some(function) = agent.role.get(1).and_then(Concept::first_code) {
        user.function_code = Some(function.to_owned());
    }
    if let Some(location) = &agent.location {
        let id = location.identifier.as_ref().and_then(|i| i.value.as_ref()).map(|v| v.as_str().to_owned());
        let resolved = reference_key(location).and_then(|k| view.get(&k));
        unit = (
            id.or_else(|| resolved.and_then(|r| r.resh.clone().or_else(|| r.other_id.clone()))).or(unit.0),
            location.display.as_ref().map(|d| d.as_str().to_owned()).or_else(|| resolved.and_then(|r| r.name.clone())).or(unit.1),
        );
    }
    (user.unit_id, user.unit_name) = unit;
    if user.person_id.is_none() && user.hpr.is_none() && user.local_id.is_none() && user.name.is_none() {
        return Err(MapError::new(format!("{path}.who"), "identifies nobody: no person id, HPR number, user id or name"));
    }
    Ok(user)
}

/// Software agents (DICOM Application, Source, Destination roles, or a Device).
fn is_machine(agent: &Agent<'_>) -> bool {
    agent.kind.iter().chain(&agent.role).any(|k| k.codes().any(|(_, c)| audit_codes::is_machine_role(c)))
        || agent.who.as_ref().and_then(|w| w.reference.as_ref()).is_some_and(|r| r.as_str().starts_with("Device/"))
}

/// The user of the access: the requestor, a human one when both a human and software are
/// marked so (ATNA senders often mark both); without a requestor, the human agent, else the
/// first agent that names anyone: an application or an organisation that read or wrote the
/// record itself (BALP), stored as a machine access.
fn choose_user<'a, 'b>(ae: &'b AuditEvent<'a>) -> Option<(usize, &'b Agent<'a>)> {
    let named = || ae.agent.iter().enumerate().filter(|(_, a)| a.who.is_some());
    let requestors = || named().filter(|(_, a)| a.requestor == Some(true));
    requestors()
        .find(|(_, a)| !is_machine(a))
        .or_else(|| requestors().next())
        .or_else(|| named().find(|(_, a)| a.kind.as_ref().is_some_and(|k| k.codes().any(|(_, c)| c == "humanuser"))))
        .or_else(|| named().find(|(_, a)| !is_machine(a)))
        .or_else(|| named().next())
}

fn find_tenant(ae: &AuditEvent<'_>, requestor: usize, user: &User, view: &ContextView<'_>) -> Result<String, MapError> {
    for (i, agent) in ae.agent.iter().enumerate() {
        if i == requestor {
            continue;
        }
        let Some(who) = &agent.who else { continue };
        let orgnr = identifier_of(who, IdSystem::Orgnr).map(str::to_owned).or_else(|| reference_key(who).and_then(|k| orgnr_of(view, &k, &mut (None, None))));
        if let Some(orgnr) = orgnr {
            validate_orgnr(&orgnr).map_err(|e| MapError::new(format!("AuditEvent.agent[{i}].who.identifier.value"), e.to_string()))?;
            return Ok(orgnr);
        }
    }
    user.employer_orgnr.clone().or_else(|| view.global.default_tenant.clone()).ok_or_else(|| {
        MapError::unresolved(
            "AuditEvent.agent",
            "no employing organisation: no agent is an organisation with an organisasjonsnummer (urn:oid:2.16.578.1.12.4.1.4.101), \
             the user's PractitionerRole (contained or imported before) names none, and the sender has no default organisation \
             (a daemon source that writes for one organisation, or `loggvakt ingest --default-tenant`)",
        )
    })
}

fn is_patient_reference(what: &Reference<'_>, view: &ContextView<'_>) -> bool {
    let by_identifier = what.identifier.as_ref().and_then(|i| i.system.as_ref()).and_then(|s| IdSystem::from_fhir_system(s.as_str())).is_some_and(IdSystem::is_person);
    let by_reference =
        reference_key(what).is_some_and(|k| k.starts_with("Patient/") || (k.starts_with('#') && view.get(&k).is_some_and(|e| e.practitioner.is_none() && e.person_id.is_some())));
    let by_type = what.kind.as_ref().is_some_and(|t| t.as_str() == "Patient");
    by_identifier || by_reference || by_type
}

#[allow(clippy::type_complexity)]
/// `patient_id_kind` of a patient known by an identifier from outside Norway.
pub const OTHER_PATIENT_KIND: &str = "other";

/// The patient's id, its kind, and the entity that named it (left out of the document).
type FoundPatient = (Option<String>, Option<String>, Option<usize>);

fn find_patient(ae: &AuditEvent<'_>, view: &ContextView<'_>) -> Result<FoundPatient, MapError> {
    // HL7 Norway's R4 profiles carry R5's `patient` as an extension.
    let patient_extension =
        ae.extension.iter().find(|e| e.named("/auditevent-patient-extension") || e.named("/AuditEventPatientExtension")).and_then(|e| e.value_reference.as_ref());
    let (path, reference, entity) = if let Some(p) = &ae.patient {
        ("AuditEvent.patient".to_owned(), p, None)
    } else if let Some(p) = patient_extension {
        ("AuditEvent.extension(auditevent-patient-extension).valueReference".to_owned(), p, None)
    } else if let Some((i, what)) = ae.entity.iter().enumerate().find_map(|(i, e)| {
        let what = e.what.as_ref()?;
        // Object type 1 (person) and role 1 (patient); R5 dropped `type`, so the role alone
        // (code 1, or BALP's "patient") says it there.
        let patient_role = e.role.as_ref().is_some_and(|r| r.codes().any(|(_, c)| c == "1" || c.eq_ignore_ascii_case("patient")));
        let typed_patient = patient_role && e.kind.as_ref().is_none_or(|k| k.first_code() == Some("1"));
        (typed_patient || is_patient_reference(what, view)).then_some((i, what))
    }) {
        (format!("AuditEvent.entity[{i}].what"), what, Some(i))
    } else {
        return Ok((None, None, None));
    };
    if let Some(Identifier { system, value: Some(value) }) = &reference.identifier {
        let norwegian = system.as_ref().and_then(|s| IdSystem::from_fhir_system(s.as_str())).filter(|s| s.is_person());
        return match (norwegian, system) {
            (Some(system), _) => {
                let kind = validate_person_id_as(value.as_str(), system).map_err(|e| MapError::new(format!("{path}.identifier.value"), e.to_string()))?;
                Ok((Some(value.as_str().to_owned()), Some(kind.code().to_owned()), entity))
            }
            // An identifier from outside Norway (a hospital's MRN, a foreign national id):
            // the access is kept, with the identifier's system and value, as kind `other`,
            // which the analyser shows its organisation as a patient it cannot look up.
            (None, Some(system)) => Ok((Some(format!("{}|{}", system.as_str(), value.as_str())), Some(OTHER_PATIENT_KIND.to_owned()), entity)),
            (None, None) => match loggvakt_model::ids::validate_person_id(value.as_str()) {
                Ok(kind) => Ok((Some(value.as_str().to_owned()), Some(kind.code().to_owned()), entity)),
                Err(_) => Ok((Some(value.as_str().to_owned()), Some(OTHER_PATIENT_KIND.to_owned()), entity)),
            },
        };
    }
    let key = reference_key(reference);
    let resolved = key.as_deref().and_then(|k| view.get(k)).and_then(|e| e.person_id.clone());
    match resolved {
        Some((value, system)) => {
            let kind = validate_person_id_as(&value, system).map_err(|e| MapError::new(format!("{path}.reference"), e.to_string()))?;
            Ok((Some(value), Some(kind.code().to_owned()), entity))
        }
        None => Err(MapError::unresolved(
            path,
            format!(
                "the patient {} has no Norwegian person identifier, and is not contained or imported before with one",
                key.map_or_else(|| "reference".to_owned(), |k| format!("'{k}'"))
            ),
        )),
    }
}

fn map_action(ae: &AuditEvent<'_>) -> Result<(&'static str, Option<String>), MapError> {
    let letter = ae.action.as_ref().map(Text::as_str);
    if let Some(other) = letter.filter(|l| audit_codes::letter_action(l).is_none()) {
        return Err(MapError::new("AuditEvent.action", format!("'{other}' is not an audit-event-action code (C, R, U, D or E)")));
    }
    // R4 `subtype` and R5 `code` say precisely what happened; R4 `type` and R5 `category`
    // only the family (R5 swapped the roles of the names).
    let specific: Vec<&str> = ae.subtype.iter().chain(ae.code.iter()).flat_map(|c| c.codes().map(|(_, code)| code)).collect();
    let general: Vec<&str> = ae.kind.iter().chain(ae.category.iter()).flat_map(|c| c.codes().map(|(_, code)| code)).collect();
    let action = audit_codes::action(specific.iter().copied(), general.iter().copied(), letter);
    let code = specific
        .iter()
        .find(|c| audit_codes::specific_action(c).is_some())
        .or(specific.first())
        .or_else(|| general.iter().find(|c| audit_codes::general_action(c).is_some()))
        .or(general.first());
    let action_code = match (letter, code) {
        (Some(l), Some(c)) => Some(format!("{l}/{c}")),
        (Some(l), None) => Some(l.to_owned()),
        (None, Some(c)) => Some((*c).to_owned()),
        (None, None) => None,
    };
    Ok((action, action_code))
}

fn map_outcome(o: Option<&Outcome<'_>>) -> Result<&'static str, MapError> {
    let (path, code) = match o {
        None => return Ok(outcome::GRANTED),
        Some(Outcome::Code(c)) => ("AuditEvent.outcome", c.as_str()),
        Some(Outcome::Object { code: None }) => return Ok(outcome::GRANTED),
        Some(Outcome::Object { code: Some(c) }) => ("AuditEvent.outcome.code", c.first_code().unwrap_or("0")),
    };
    match code {
        "0" => Ok(outcome::GRANTED),
        "4" | "8" | "12" => Ok(outcome::DENIED),
        // R5 allows issue-severity too: an error or a fatal error means it did not succeed.
        "information" | "success" | "warning" => Ok(outcome::GRANTED),
        "error" | "fatal" => Ok(outcome::DENIED),
        other => Err(MapError::new(path, format!("'{other}' is not an audit-event-outcome code (0, 4, 8 or 12) nor an issue-severity (information, warning, error, fatal)"))),
    }
}

fn map_channel(ae: &AuditEvent<'_>, requestor: &Agent<'_>, user: &User) -> Result<&'static str, MapError> {
    if let Some(ext) = requestor.extension.iter().chain(&ae.extension).find(|e| e.named(EXT_ACCESS_CHANNEL)) {
        let code = ext.code().unwrap_or("");
        return channel::ALL
            .iter()
            .find(|c| **c == code)
            .copied()
            .ok_or_else(|| MapError::new("AuditEvent.extension(access-channel)", format!("'{code}' is not one of {}", channel::ALL.join(", "))));
    }
    let device = requestor.who.as_ref().and_then(|w| w.reference.as_ref()).is_some_and(|r| r.as_str().starts_with("Device/"))
        || requestor.kind.as_ref().is_some_and(|k| k.codes().any(|(_, c)| matches!(c, "110150" | "110152" | "dev")));
    if device && user.person_id.is_none() && user.hpr.is_none() {
        return Ok(channel::INTEGRATION);
    }
    Ok(channel::UNSPECIFIED)
}
