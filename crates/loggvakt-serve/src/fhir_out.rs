//! FHIR JSON the daemon writes: OperationOutcome, the CapabilityStatement, response and
//! searchset Bundles, and stored events rendered back as R4 AuditEvents.

use loggvakt_model::codes::{actions, basis, outcome};
use loggvakt_model::ids::{OID_DNR, OID_FNR, OID_HNR, OID_HPR, OID_ORGNR};
use loggvakt_model::AccessEvent;
use serde_json::{json, Value};

pub const EXT_BASE: &str = "https://loggvakt.no/fhir/StructureDefinition/";

/// `severity` error/warning/information; `code` from the FHIR issue-type value set;
/// `expression` the FHIRPath of the field at fault, when known.
pub fn outcome(severity: &str, code: &str, diagnostics: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({ "severity": severity, "code": code, "diagnostics": diagnostics });
    if let Some(path) = expression {
        issue["expression"] = json!([path]);
    }
    json!({ "resourceType": "OperationOutcome", "issue": [issue] })
}

pub fn capability_statement(base: &str) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "kind": "instance",
        "software": { "name": "loggvakt", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "loggvakt: tamper-evident store of health-record access logs", "url": base },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "instantiates": ["https://profiles.ihe.net/ITI/BALP/CapabilityStatement/IHE.BasicAudit.AuditRecordRepository"],
        "rest": [{
            "mode": "server",
            "documentation": "AuditEvent R4 and R5 JSON are accepted. A 2xx answer is sent only after the event is fsynced to the write-ahead journal. Resending an event (same source.observer and id) is acknowledged again and stored once.",
            "security": {
                "cors": false,
                "service": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "Certificates" }] }],
                "description": "Each source is known by a TLS client certificate or a bearer token (Authorization: Bearer)."
            },
            "resource": [{
                "type": "AuditEvent",
                "interaction": [{ "code": "create" }, { "code": "read" }, { "code": "search-type" }],
                "searchParam": [
                    { "name": "patient", "type": "reference", "documentation": "The patient's fødselsnummer, D-nummer or H-nummer (as Patient/<id>, <id>, or system|value)" },
                    { "name": "date", "type": "date", "documentation": "When the access happened; ge, gt, le, lt, eq prefixes; repeat for a range" },
                    { "name": "agent", "type": "token", "documentation": "The user: person id, HPR number or account in the source system" },
                    { "name": "source", "type": "token", "documentation": "The recording system (source.observer); 'loggvakt' for the store's own records: reads of the log, gaps, silences" },
                    { "name": "_count", "type": "number" }
                ]
            }],
            "interaction": [{ "code": "batch" }, { "code": "transaction" }]
        }]
    })
}

fn identifier(system_oid: &str, value: &str) -> Value {
    json!({ "system": format!("urn:oid:{system_oid}"), "value": value })
}

fn person_oid(kind: Option<&str>) -> &'static str {
    match kind {
        Some("dnr") => OID_DNR,
        Some("hnr") => OID_HNR,
        _ => OID_FNR,
    }
}

/// A stored event as an R4 AuditEvent. The id is the store's sequence number; the source's
/// own id, the tenant and the basis travel in extensions, since AuditEvent has no element for them.
pub fn audit_event(seq: u64, e: &AccessEvent) -> Value {
    let action = match e.action.as_str() {
        actions::CREATE => "C",
        actions::READ | actions::PRINT_EXPORT | actions::LIST_EXPOSURE => "R",
        actions::UPDATE => "U",
        actions::DELETE => "D",
        _ => "E",
    };
    let mut user_ids = Vec::new();
    if let Some(p) = &e.user_person_id {
        user_ids.push(identifier(OID_FNR, p));
    }
    if let Some(h) = &e.user_hpr {
        user_ids.push(identifier(OID_HPR, h));
    }
    let mut who = json!({});
    if let Some(first) = user_ids.first() {
        who["identifier"] = first.clone();
    } else if let Some(local) = &e.user_local_id {
        who["identifier"] = json!({ "value": local });
    }
    if let Some(name) = &e.user_name {
        who["display"] = json!(name);
    }
    let mut agent = json!({ "who": who, "requestor": true });
    if let Some(role) = &e.role_code {
        agent["role"] = json!([{ "coding": [{ "code": role }] }]);
    }
    if let Some(unit) = &e.unit_id {
        agent["location"] = json!({ "identifier": { "value": unit }, "display": e.unit_name });
    }
    if let Some(local) = &e.user_local_id {
        agent["altId"] = json!(local);
    }
    let mut entities = Vec::new();
    if let Some(patient) = &e.patient_id {
        entities.push(json!({
            "what": { "identifier": identifier(person_oid(e.patient_id_kind.as_deref()), patient) },
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" }
        }));
    }
    if e.document_id.is_some() || e.record_part.is_some() {
        let mut entity = json!({ "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object" } });
        if let Some(doc) = &e.document_id {
            entity["what"] = json!({ "identifier": { "value": doc } });
        }
        if let Some(part) = &e.record_part {
            entity["description"] = json!(part);
        }
        if let Some(labels) = &e.sensitivity {
            entity["securityLabel"] = Value::Array(labels.split(',').map(|l| json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": l })).collect());
        }
        entities.push(entity);
    }
    let mut purpose = Vec::new();
    if let Some(code) = &e.purpose_code {
        purpose.push(json!({ "coding": [{ "code": code }] }));
    }
    let mut extensions = vec![
        json!({ "url": format!("{EXT_BASE}loggvakt-source-event-id"), "valueString": e.event_id }),
        json!({ "url": format!("{EXT_BASE}loggvakt-tenant"), "valueIdentifier": identifier(OID_ORGNR, &e.tenant_orgnr) }),
        json!({ "url": format!("{EXT_BASE}loggvakt-basis"), "valueCode": e.basis }),
        json!({ "url": format!("{EXT_BASE}loggvakt-access-channel"), "valueCode": e.channel }),
    ];
    if let Some(seq) = e.source_seq {
        extensions.push(json!({ "url": format!("{EXT_BASE}loggvakt-source-sequence"), "valueInteger": seq }));
    }
    if e.basis == basis::SELF_AUTHORISATION && e.purpose_code.is_none() {
        purpose.push(json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG" }] }));
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": seq.to_string(),
        "meta": { "versionId": "1" },
        "extension": extensions,
        "type": { "system": "https://loggvakt.no/fhir/CodeSystem/action", "code": e.action },
        "action": action,
        "period": { "start": e.occurred_at.to_rfc3339() },
        "recorded": e.recorded_at.unwrap_or(e.received_at).to_rfc3339(),
        "outcome": if e.outcome == outcome::GRANTED { "0" } else { "4" },
        "agent": [agent],
        "source": { "observer": { "display": e.source_system }, "type": [{ "system": "https://loggvakt.no/fhir/CodeSystem/source-format", "code": e.source_format }] },
    });
    if let Some(code) = &e.action_code {
        resource["subtype"] = json!([{ "code": code }]);
    }
    if !purpose.is_empty() {
        resource["purposeOfEvent"] = Value::Array(purpose);
    }
    if !entities.is_empty() {
        resource["entity"] = Value::Array(entities);
    }
    resource
}
