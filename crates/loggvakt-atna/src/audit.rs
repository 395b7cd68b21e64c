//! The ATNA audit message (DICOM PS3.15 A.5, and RFC 3881 before it) → access events.

use chrono::DateTime;
use loggvakt_model::codes::{audit_codes, basis, channel, outcome};
use loggvakt_model::ids::{validate_orgnr, validate_person_id, validate_person_id_as, IdSystem, OID_DNR, OID_FNR, OID_HNR};
use loggvakt_model::{AccessEvent, Digest16, Timestamp};
use quick_xml::events::Event;
use quick_xml::Reader;

/// An audit message too large or too deep is refused before it can cost memory.
const MAX_DEPTH: usize = 16;
const MAX_ELEMENTS: usize = 10_000;

/// What the transport knows besides the XML itself.
#[derive(Debug, Clone)]
pub struct AuditInput<'a> {
    pub xml: &'a [u8],
    pub received_at: Timestamp,
    /// The syslog header's TIMESTAMP.
    pub recorded_at: Option<Timestamp>,
    /// The syslog `[meta sequenceId]`.
    pub source_seq: Option<i64>,
    /// The sending source's organisation, used when the message names none.
    pub default_tenant: Option<&'a str>,
}

/// Where in the message and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct AtnaError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> AtnaError {
    AtnaError { path: path.into(), message: message.into() }
}

/// An element with its attributes and children; audit messages are small and flat.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.trim().is_empty())
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    /// A coded value: `csd-code` in DICOM, `code` in RFC 3881.
    fn code(&self) -> Option<&str> {
        self.attr("csd-code").or_else(|| self.attr("code"))
    }
    fn display(&self) -> Option<&str> {
        self.attr("originalText").or_else(|| self.attr("displayName"))
    }
}

fn parse_xml(xml: &[u8]) -> Result<Element, AtnaError> {
    let text = std::str::from_utf8(xml).map_err(|e| err("AuditMessage", format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| err("AuditMessage", format!("XML is not well-formed near byte {position}: {e}")))?;
        match event {
            Event::DocType(_) => {
                return Err(err(
                    "AuditMessage",
                    "XML with a DOCTYPE is refused: an audit message needs no document type definition, and entities it could declare (external ones above all) are never resolved",
                ))
            }
            Event::Start(start) | Event::Empty(start) if stack.len() > MAX_DEPTH => {
                return Err(err(local(start.name().as_ref()), format!("nested deeper than {MAX_DEPTH} elements")));
            }
            ref e @ (Event::Start(ref start) | Event::Empty(ref start)) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(err("AuditMessage", format!("more than {MAX_ELEMENTS} elements")));
                }
                let name = local(start.name().as_ref());
                let mut element = Element { name: name.clone(), ..Element::default() };
                for attribute in start.attributes() {
                    let attribute = attribute.map_err(|e| err(&name, format!("bad attribute: {e}")))?;
                    let key = local(attribute.key.as_ref());
                    let value = attribute
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| err(format!("{name}@{key}"), format!("cannot be read: {e} (only the five predefined XML entities and character references are allowed)")))?;
                    element.attributes.push((key, value.into_owned()));
                }
                if matches!(e, Event::Empty(_)) {
                    push_child(&mut stack, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| err("AuditMessage", "unbalanced end tag"))?;
                push_child(&mut stack, element);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let decoded = t.decode().map_err(|e| err(&top.name, format!("text cannot be read: {e}")))?;
                    top.text.push_str(&decoded);
                }
            }
            Event::GeneralRef(r) => {
                // Only character references and the predefined entities; anything else would
                // need a DTD, which is refused above.
                let name = r.decode().map_err(|e| err("AuditMessage", format!("entity reference cannot be read: {e}")))?.into_owned();
                let top_name = stack.last().map(|t| t.name.clone()).unwrap_or_default();
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match name.as_str() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        _ => return Err(err(top_name, format!("entity &{name}; is not defined (only the five predefined XML entities are allowed)"))),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err(err("AuditMessage", "the document ends before every element is closed"));
    }
    let root = stack.pop().unwrap_or_default();
    let mut roots = root.children.into_iter();
    match (roots.next(), roots.next()) {
        (Some(root), None) if root.name == "AuditMessage" => Ok(root),
        (Some(other), None) => Err(err(other.name.clone(), "the root element must be AuditMessage (DICOM PS3.15 A.5 or RFC 3881)")),
        (None, _) => Err(err("AuditMessage", "the message holds no XML element")),
        (Some(_), Some(_)) => Err(err("AuditMessage", "more than one root element")),
    }
}

fn push_child(stack: &mut [Element], element: Element) {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(element);
    }
}

/// The local part of a possibly prefixed XML name.
fn local(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    name.rsplit(':').next().unwrap_or_default().to_owned()
}

/// A patient reference: an HL7 v2 CX value (`id^^^&OID&ISO`) or a bare number.
fn patient_id(value: &str, path: &str) -> Result<(String, &'static str), AtnaError> {
    let mut parts = value.split('^');
    let id = parts.next().unwrap_or_default().trim().to_owned();
    let authority = parts.nth(2).unwrap_or_default();
    let oid = authority.split('&').nth(1).unwrap_or_default();
    let system = match oid {
        OID_FNR => Some(IdSystem::PersonFnr),
        OID_DNR => Some(IdSystem::PersonDnr),
        OID_HNR => Some(IdSystem::PersonHnr),
        "" => None,
        // An identifier from another register (a hospital's MRN, a foreign national id) is
        // kept with its authority, as kind `other`, as the FHIR mapping does.
        other => return Ok((format!("urn:oid:{other}|{id}"), "other")),
    };
    let kind = match system {
        Some(system) => validate_person_id_as(&id, system),
        None => validate_person_id(&id),
    }
    .map_err(|e| err(path, e.to_string()))?;
    Ok((id, kind.code()))
}

/// Maps one audit message to access events: one per patient it names (a query may name
/// several), or one without a patient (a log-in, a search by name).
pub fn map_audit_message(input: &AuditInput<'_>) -> Result<Vec<AccessEvent>, AtnaError> {
    let root = parse_xml(input.xml)?;
    let format = if input.xml.windows(9).any(|w| w == b"csd-code=") { "atna-dicom" } else { "atna-rfc3881" };

    let ident = root.child("EventIdentification").ok_or_else(|| err("AuditMessage.EventIdentification", "is missing"))?;
    let when = ident.attr("EventDateTime").ok_or_else(|| err("AuditMessage.EventIdentification@EventDateTime", "is missing"))?;
    let occurred_at = DateTime::parse_from_rfc3339(when.trim())
        .map(|t| Timestamp(t.timestamp_micros()))
        .map_err(|e| err("AuditMessage.EventIdentification@EventDateTime", format!("'{when}' is not a date-time with a UTC offset: {e}")))?;
    let event_code =
        ident.child("EventID").and_then(Element::code).ok_or_else(|| err("AuditMessage.EventIdentification.EventID", "is missing or has no code (csd-code or code)"))?;
    let action_code = ident.attr("EventActionCode");
    if let Some(code) = action_code {
        if !matches!(code, "C" | "R" | "U" | "D" | "E") {
            return Err(err("AuditMessage.EventIdentification@EventActionCode", format!("'{code}' is not one of C, R, U, D, E")));
        }
    }
    let outcome = match ident.attr("EventOutcomeIndicator").unwrap_or("0") {
        "0" => outcome::GRANTED,
        "4" | "8" | "12" => outcome::DENIED,
        other => return Err(err("AuditMessage.EventIdentification@EventOutcomeIndicator", format!("'{other}' is not one of 0, 4, 8, 12"))),
    };
    let purpose = ident.children("PurposeOfUse").chain(ident.children("EventTypeCode")).filter_map(Element::code).find(|c| audit_codes::is_self_authorisation(c));
    // EventTypeCode says precisely what happened (an IHE transaction, 110122 Login);
    // EventID only the family, as in FHIR (one table for both: `audit_codes`).
    let event_types: Vec<&str> = ident.children("EventTypeCode").filter_map(Element::code).collect();
    let action = audit_codes::action(event_types.iter().copied(), [event_code], action_code);
    let purpose_code = purpose.or_else(|| ident.child("PurposeOfUse").and_then(Element::code));

    let source = root.child("AuditSourceIdentification").ok_or_else(|| err("AuditMessage.AuditSourceIdentification", "is missing"))?;
    let source_system = source.attr("AuditSourceID").ok_or_else(|| err("AuditMessage.AuditSourceIdentification@AuditSourceID", "is missing"))?;
    let site = source.attr("AuditEnterpriseSiteID");
    let tenant = match site.filter(|s| validate_orgnr(s).is_ok()).or(input.default_tenant) {
        Some(t) => t.to_owned(),
        None => {
            return Err(err(
                "AuditMessage.AuditSourceIdentification@AuditEnterpriseSiteID",
                format!("{} is not an organisation number, and the source has no tenant_orgnr configured", site.map_or("(absent)".to_owned(), |s| format!("'{s}'"))),
            ))
        }
    };

    let participants: Vec<&Element> = root.children("ActiveParticipant").collect();
    // The user: a requestor, a human one when the application is marked requestor too
    // (many senders mark both); else a participant that is not software; else the first.
    let is_requestor = |p: &&&Element| p.attr("UserIsRequestor").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let is_machine = |p: &&&Element| p.children("RoleIDCode").filter_map(Element::code).any(audit_codes::is_machine_role);
    let user = participants
        .iter()
        .find(|p| is_requestor(p) && !is_machine(p))
        .or_else(|| participants.iter().find(is_requestor))
        .or_else(|| participants.iter().find(|p| !is_machine(p)))
        .or_else(|| participants.first())
        .ok_or_else(|| err("AuditMessage.ActiveParticipant", "is missing: who did it must be named"))?;
    let user_id = user.attr("UserID").ok_or_else(|| err("AuditMessage.ActiveParticipant@UserID", "is missing"))?;
    let user_person_id = validate_person_id(user_id).ok().map(|_| user_id.to_owned());

    let objects: Vec<&Element> = root.children("ParticipantObjectIdentification").collect();
    let mut patients = Vec::new();
    let mut record_part = None;
    let mut document_id = None;
    let mut sensitivity: Vec<String> = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let path = format!("AuditMessage.ParticipantObjectIdentification[{i}]");
        let id = object.attr("ParticipantObjectID").ok_or_else(|| err(format!("{path}@ParticipantObjectID"), "is missing"))?;
        if let Some(s) = object.attr("ParticipantObjectSensitivity") {
            sensitivity.extend(s.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_owned));
        }
        let is_patient = object.attr("ParticipantObjectTypeCode") == Some("1") && object.attr("ParticipantObjectTypeCodeRole") == Some("1");
        if is_patient {
            patients.push(patient_id(id, &format!("{path}@ParticipantObjectID"))?);
        } else if document_id.is_none() {
            document_id = Some(id.to_owned());
            record_part = object.child("ParticipantObjectIDTypeCode").and_then(|c| c.display().or(c.code())).map(str::to_owned);
        }
    }
    sensitivity.sort();
    sensitivity.dedup();

    let digest = digest16(input.xml);
    let base_id = format!("atna-{}", hex(&digest.0));
    let template = AccessEvent {
        event_id: base_id.clone(),
        source_system: source_system.to_owned(),
        source_seq: input.source_seq,
        occurred_at,
        recorded_at: input.recorded_at,
        received_at: input.received_at,
        tenant_orgnr: tenant,
        user_person_id,
        user_hpr: None,
        user_local_id: Some(user_id.to_owned()),
        user_name: user.attr("UserName").map(str::to_owned),
        unit_id: None,
        unit_name: None,
        role_code: user.child("RoleIDCode").and_then(Element::code).map(str::to_owned),
        function_code: None,
        patient_id: None,
        patient_id_kind: None,
        record_part,
        document_id,
        sensitivity: (!sensitivity.is_empty()).then(|| sensitivity.join(",")),
        data_owner_org: None,
        action: action.to_owned(),
        action_code: Some(format!("{event_code}/{}", action_code.unwrap_or("-"))),
        // A stated purpose that is not self-authorisation (NORM, TREAT) is a normal access,
        // as in FHIR; no purpose at all is unspecified.
        basis: match (purpose, purpose_code) {
            (Some(_), _) => basis::SELF_AUTHORISATION,
            (None, Some(_)) => basis::NORMAL,
            (None, None) => basis::UNSPECIFIED,
        }
        .to_owned(),
        purpose_code: purpose_code.map(str::to_owned),
        reason_text: None,
        channel: channel::UNSPECIFIED.to_owned(),
        outcome: outcome.to_owned(),
        source_format: format.to_owned(),
        source_digest: digest,
    };
    if patients.is_empty() {
        return Ok(vec![template]);
    }
    let many = patients.len() > 1;
    Ok(patients
        .into_iter()
        .enumerate()
        .map(|(i, (id, kind))| AccessEvent {
            event_id: if many { format!("{base_id}-{}", i + 1) } else { base_id.clone() },
            patient_id: Some(id),
            patient_id_kind: Some(kind.to_owned()),
            ..template.clone()
        })
        .collect())
}

fn digest16(bytes: &[u8]) -> Digest16 {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    Digest16(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DICOM: &str = include_str!("../../../samples/atna/dicom-patient-record-read.xml");
    pub const RFC3881: &str = include_str!("../../../samples/atna/rfc3881-query.xml");

    fn input(xml: &str) -> AuditInput<'_> {
        AuditInput { xml: xml.as_bytes(), received_at: Timestamp(1), recorded_at: None, source_seq: Some(7), default_tenant: Some("974589095") }
    }

    /// The sample, with its identification and participants replaced.
    fn variant(identification: &str, participants: &str) -> String {
        let start = DICOM.find("<EventIdentification").unwrap();
        let end = DICOM.find("<AuditSourceIdentification").unwrap();
        format!("{}{identification}{participants}{}", &DICOM[..start], &DICOM[end..])
    }

    const HUMAN_AND_APP_REQUESTORS: &str = r#"<ActiveParticipant UserID="dips-app" UserIsRequestor="true"><RoleIDCode csd-code="110150" codeSystemName="DCM"/></ActiveParticipant>
        <ActiveParticipant UserID="kari.nordmann" UserName="Kari Nordmann" UserIsRequestor="true"><RoleIDCode csd-code="LE"/></ActiveParticipant>"#;

    #[test]
    fn the_human_requestor_is_the_user_and_codes_map_as_in_fhir() {
        let login = variant(
            r#"<EventIdentification EventActionCode="E" EventDateTime="2026-11-20T09:14:03+01:00" EventOutcomeIndicator="0"><EventID csd-code="110122" codeSystemName="DCM" originalText="Login"/></EventIdentification>"#,
            HUMAN_AND_APP_REQUESTORS,
        );
        let e = &map_audit_message(&input(&login)).unwrap()[0];
        assert_eq!((e.action.as_str(), e.user_local_id.as_deref()), ("login", Some("kari.nordmann")), "Login as EventID; the human, not the application");
        let retrieve = variant(
            r#"<EventIdentification EventActionCode="C" EventDateTime="2026-11-20T09:14:03+01:00" EventOutcomeIndicator="0"><EventID csd-code="110107" codeSystemName="DCM" originalText="Import"/><EventTypeCode csd-code="ITI-43" codeSystemName="IHE Transactions" originalText="Retrieve Document Set"/><PurposeOfUse csd-code="NORM"/></EventIdentification>"#,
            HUMAN_AND_APP_REQUESTORS,
        );
        let e = &map_audit_message(&input(&retrieve)).unwrap()[0];
        assert_eq!(e.action, "read", "a document consumer's ITI-43 retrieval reads the document");
        assert_eq!((e.basis.as_str(), e.purpose_code.as_deref()), ("normal", Some("NORM")), "a stated ordinary purpose is a normal access");
        let foreign = DICOM.replace("13116900216^^^&amp;2.16.578.1.12.4.1.4.1&amp;ISO", "MRN-4711^^^&amp;1.2.3.4.5&amp;ISO");
        let e = &map_audit_message(&input(&foreign)).unwrap()[0];
        assert_eq!((e.patient_id.as_deref(), e.patient_id_kind.as_deref()), (Some("urn:oid:1.2.3.4.5|MRN-4711"), Some("other")), "kept, not refused");
    }

    #[test]
    fn dicom_patient_record_read() {
        let events = map_audit_message(&input(DICOM)).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.action, "read");
        assert_eq!(e.patient_id.as_deref(), Some("13116900216"));
        assert_eq!(e.patient_id_kind.as_deref(), Some("fnr"));
        assert_eq!(e.tenant_orgnr, "983971636");
        assert_eq!(e.user_local_id.as_deref(), Some("kari.nordmann"));
        assert_eq!(e.user_name.as_deref(), Some("Kari Nordmann"));
        assert_eq!(e.source_system, "DIPS-AHUS");
        assert_eq!(e.basis, "self_authorisation");
        assert_eq!(e.purpose_code.as_deref(), Some("BTG"));
        assert_eq!(e.source_format, "atna-dicom");
        assert_eq!(e.source_seq, Some(7));
        assert_eq!(e.sensitivity.as_deref(), Some("R"));
        assert!(e.event_id.starts_with("atna-"));
    }

    #[test]
    fn rfc3881_query_names_two_patients() {
        let events = map_audit_message(&input(RFC3881)).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.action == "search" && e.source_format == "atna-rfc3881"));
        assert_eq!(events[0].tenant_orgnr, "974589095", "no orgnr in the message: the source's own");
        assert_ne!(events[0].event_id, events[1].event_id);
        assert_eq!(events[1].patient_id_kind.as_deref(), Some("dnr"));
    }

    #[test]
    fn doctype_and_external_entities_are_refused() {
        let xxe =
            r#"<?xml version="1.0"?><!DOCTYPE AuditMessage [<!ENTITY x SYSTEM "file:///etc/passwd">]><AuditMessage><EventIdentification EventDateTime="&x;"/></AuditMessage>"#;
        let e = map_audit_message(&input(xxe)).unwrap_err();
        assert!(e.message.contains("DOCTYPE"), "{e}");
        let undeclared = r#"<AuditMessage><EventIdentification EventDateTime="&x;"/></AuditMessage>"#;
        let e = map_audit_message(&input(undeclared)).unwrap_err();
        assert!(e.path.contains("EventDateTime"), "{e}");
    }

    #[test]
    fn errors_name_the_place() {
        let cases = [
            (DICOM.replace("EventDateTime=\"2026-11-20T09:14:03.120+01:00\"", "EventDateTime=\"2026-11-20T09:14:03\""), "EventDateTime"),
            (DICOM.replace("13116900216", "13116900217"), "ParticipantObjectIdentification[0]@ParticipantObjectID"),
            (DICOM.replace("AuditSourceID=\"DIPS-AHUS\"", ""), "AuditSourceID"),
            ("<Patient/>".to_owned(), "Patient"),
            ("<AuditMessage><unclosed></AuditMessage>".to_owned(), "AuditMessage"),
        ];
        for (xml, path) in cases {
            let e = map_audit_message(&input(&xml)).unwrap_err();
            assert!(e.path.contains(path), "{path}: {e}");
        }
    }
}
