//! One input message (an NDJSON line, a file, a Bundle entry) in, events or rejections out.

use std::collections::HashMap;

use loggvakt_model::{AccessEvent, Timestamp};

use crate::context::{parse_entry, ContextIndex, ContextResource, ContextView, CONTEXT_TYPES};
use crate::json::{parse_with_path, MapError};
use crate::map::{map_audit_event, map_parsed};
use crate::resources::{AuditEvent, Bundle, Head};

/// Messages over this size are rejected unread: no single AuditEvent or Bundle line needs
/// more, and an unbounded line is a memory attack.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 << 20;

/// What one message decodes to, in input order.
// Events are by far the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Event { entry: Option<usize>, event: AccessEvent },
    Context { entry: Option<usize>, resource: ContextResource },
    Rejected(Rejection),
}

/// Why a message was refused, as a kind a transport turns into its own answer (HTTP: 400
/// for `Structure`, 422 for `Content`) without reading the English reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Not one FHIR JSON resource at all: too large, not UTF-8, not JSON, not an object,
    /// no or an unknown `resourceType`.
    Structure,
    /// A resource of a known type that cannot be mapped (a field missing or invalid).
    Content,
}

/// A message, or one Bundle entry, that cannot be mapped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectionKind,
    /// The FHIRPath of the element at fault, when one is (`AuditEvent.agent[0].who`).
    pub expression: Option<String>,
    /// The Bundle entry index, when the rest of the Bundle was fine.
    pub entry: Option<usize>,
    pub reason: String,
    /// The entry's own bytes, when the rejection is of one entry; `None` means the whole message.
    pub raw: Option<Vec<u8>>,
    /// It refers to a context resource not seen yet: decoding again after that resource
    /// arrives (e.g. later in the same input chunk) may succeed.
    pub unresolved_reference: bool,
}

impl Rejection {
    /// A whole message that is not a FHIR resource at all.
    pub fn structure(reason: impl Into<String>) -> Self {
        Rejection { kind: RejectionKind::Structure, expression: None, entry: None, reason: reason.into(), raw: None, unresolved_reference: false }
    }
    /// A resource that cannot be mapped.
    pub fn content(reason: impl Into<String>) -> Self {
        Rejection { kind: RejectionKind::Content, ..Rejection::structure(reason) }
    }
    /// A message that did not parse as a resource at all, with the place that failed.
    fn structure_at(e: MapError) -> Self {
        Rejection { expression: Some(e.path.clone()), ..Rejection::structure(e.to_string()) }
    }
    fn from_map_error(e: MapError, prefix: &str) -> Self {
        let e = e.prefixed(prefix);
        let (unresolved_reference, expression) = (e.unresolved_reference, Some(e.path.clone()));
        Rejection { unresolved_reference, expression, ..Rejection::content(e.to_string()) }
    }
}

/// The checks every message passes before it is parsed: its size, and UTF-8 throughout.
fn check_message(raw: &[u8], max_bytes: usize) -> Result<(), Rejection> {
    if raw.len() > max_bytes {
        return Err(Rejection::structure(format!("message is {} bytes, over the limit of {} bytes for one message", raw.len(), max_bytes)));
    }
    if let Err(e) = std::str::from_utf8(raw) {
        // FHIR JSON is UTF-8; serde_json does not check strings it skips, so check here.
        return Err(Rejection::structure(format!(
            "not UTF-8: byte {} (offset {}) is not valid UTF-8, and FHIR JSON must be",
            raw.get(e.valid_up_to()).map_or_else(|| "?".to_owned(), |b| format!("{b:#04x}")),
            e.valid_up_to()
        )));
    }
    Ok(())
}

/// Decodes a message that must be a Bundle (what FHIR's `POST [base]` takes): its
/// `Bundle.type`, and what each entry decodes to, in entry order. Reads the JSON once for
/// the Bundle and once per entry, where [`decode_message`] first tries the message as an
/// AuditEvent. `Err` when it is not a readable Bundle.
pub fn decode_bundle_message(raw: &[u8], context: &ContextIndex, received_at: Timestamp, max_bytes: usize) -> Result<(String, Vec<Decoded>), Rejection> {
    check_message(raw, max_bytes)?;
    let bundle: Bundle<'_> = parse_with_path(raw, "Bundle").map_err(Rejection::structure_at)?;
    match bundle.resource_type.as_ref().map(|t| t.as_str()) {
        Some("Bundle") => {}
        other => return Err(Rejection::structure(format!("resourceType is '{}', expected a Bundle", other.unwrap_or("")))),
    }
    let kind = bundle.kind.as_ref().map(|k| k.as_str().to_owned()).unwrap_or_default();
    Ok((kind, decode_entries(&bundle, context, received_at)))
}

/// Decodes one message: an AuditEvent, a Bundle of them (batch, transaction, collection,
/// searchset), or a context resource. Never panics on input; every failure is a rejection.
pub fn decode_message(raw: &[u8], context: &ContextIndex, received_at: Timestamp, max_bytes: usize) -> Vec<Decoded> {
    if let Err(rejection) = check_message(raw, max_bytes) {
        return vec![Decoded::Rejected(rejection)];
    }
    // Fast path: nearly every message is an AuditEvent, so parse it as one straight away.
    if let Ok(ae) = serde_json::from_slice::<AuditEvent<'_>>(raw) {
        if ae.resource_type.as_ref().is_some_and(|t| t.as_str() == "AuditEvent") {
            let view = ContextView { global: context, contained: HashMap::new() };
            return vec![match map_parsed(&ae, raw, &view, received_at) {
                Ok(event) => Decoded::Event { entry: None, event },
                Err(e) => Decoded::Rejected(Rejection::from_map_error(e, "")),
            }];
        }
    }
    let head: Head<'_> = match parse_with_path(raw, "resource") {
        Ok(h) => h,
        Err(e) => return vec![Decoded::Rejected(Rejection::structure_at(e))],
    };
    let resource_type = head.resource_type.as_ref().map(|t| t.as_str()).unwrap_or("");
    match resource_type {
        "Bundle" => decode_bundle(raw, context, received_at),
        _ => {
            let view = ContextView { global: context, contained: HashMap::new() };
            match decode_resource(raw, resource_type, &view, received_at, "") {
                Ok(d) => vec![d],
                Err(rejection) => vec![Decoded::Rejected(rejection)],
            }
        }
    }
}

fn decode_resource(raw: &[u8], resource_type: &str, view: &ContextView<'_>, received_at: Timestamp, path: &str) -> Result<Decoded, Rejection> {
    match resource_type {
        "AuditEvent" => map_audit_event(raw, view, received_at).map(|event| Decoded::Event { entry: None, event }).map_err(|e| Rejection::from_map_error(e, path)),
        t if CONTEXT_TYPES.contains(&t) => context_resource(raw, t).map(|resource| Decoded::Context { entry: None, resource }).map_err(|e| Rejection::from_map_error(e, path)),
        "" => Err(Rejection::structure(format!("{path}resourceType is missing: each line must be one FHIR resource"))),
        other => Err(Rejection::structure(format!(
            "{path}resourceType is '{other}', expected AuditEvent (or a Bundle of them, or one of the context resources {})",
            CONTEXT_TYPES.join(", ")
        ))),
    }
}

fn context_resource(raw: &[u8], resource_type: &str) -> Result<ContextResource, MapError> {
    let head: Head<'_> = parse_with_path(raw, resource_type)?;
    let id = head.id.ok_or_else(|| MapError::new(format!("{resource_type}.id"), "is missing; a context resource without an id cannot be referred to"))?;
    let entry = parse_entry(resource_type, raw)?;
    Ok(ContextResource { key: format!("{resource_type}/{}", id.as_str()), raw: raw.to_vec(), entry })
}

fn decode_bundle(raw: &[u8], context: &ContextIndex, received_at: Timestamp) -> Vec<Decoded> {
    let bundle: Bundle<'_> = match parse_with_path(raw, "Bundle") {
        Ok(b) => b,
        Err(e) => return vec![Decoded::Rejected(Rejection::structure_at(e))],
    };
    if let Some(kind) = &bundle.kind {
        if !matches!(kind.as_str(), "batch" | "transaction" | "collection" | "searchset" | "history") {
            return vec![Decoded::Rejected(Rejection::structure(format!(
                "Bundle.type is '{}'; only batch, transaction, collection, searchset and history Bundles carry AuditEvents",
                kind.as_str()
            )))];
        }
    }
    decode_entries(&bundle, context, received_at)
}

/// An entry read once: as the AuditEvent it nearly always is, or else just its type and id.
// Nearly every entry is the large variant, and they live only while one Bundle is decoded:
// boxing would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
enum EntryHead<'a> {
    Audit(AuditEvent<'a>),
    Other(Option<(String, Option<String>)>),
}

fn decode_entries(bundle: &Bundle<'_>, context: &ContextIndex, received_at: Timestamp) -> Vec<Decoded> {
    // Context resources in a Bundle are visible to every AuditEvent in it, whatever the order.
    let mut view = ContextView { global: context, contained: HashMap::new() };
    let mut heads = Vec::with_capacity(bundle.entry.len());
    for entry in &bundle.entry {
        let head = match entry.resource {
            None => EntryHead::Other(None),
            Some(r) => match serde_json::from_str::<AuditEvent<'_>>(r.get()) {
                Ok(ae) if ae.resource_type.as_ref().is_some_and(|t| t.as_str() == "AuditEvent") => EntryHead::Audit(ae),
                _ => {
                    EntryHead::Other(serde_json::from_str::<Head<'_>>(r.get()).ok().and_then(|h| Some((h.resource_type?.as_str().to_owned(), h.id.map(|i| i.as_str().to_owned())))))
                }
            },
        };
        if let (Some(r), EntryHead::Other(Some((t, Some(id))))) = (entry.resource, &head) {
            if CONTEXT_TYPES.contains(&t.as_str()) {
                if let Ok(parsed) = parse_entry(t, r.get().as_bytes()) {
                    view.contained.insert(format!("{t}/{id}"), parsed);
                }
            }
        }
        heads.push(head);
    }
    let mut out = Vec::with_capacity(bundle.entry.len());
    for (i, (entry, head)) in bundle.entry.iter().zip(heads).enumerate() {
        let path = format!("entry[{i}].resource.");
        let decoded = match (entry.resource, head) {
            (None, _) => Err(Rejection::content(format!("entry[{i}] has no resource"))),
            (Some(r), EntryHead::Audit(ae)) => {
                map_parsed(&ae, r.get().as_bytes(), &view, received_at).map(|event| Decoded::Event { entry: None, event }).map_err(|e| Rejection::from_map_error(e, &path))
            }
            (Some(_), EntryHead::Other(None)) => Err(Rejection::content(format!("{path}resourceType is missing"))),
            (Some(r), EntryHead::Other(Some((t, _)))) => decode_resource(r.get().as_bytes(), &t, &view, received_at, &path),
        };
        out.push(match decoded {
            Ok(Decoded::Event { event, .. }) => Decoded::Event { entry: Some(i), event },
            Ok(Decoded::Context { resource, .. }) => Decoded::Context { entry: Some(i), resource },
            Ok(rejected @ Decoded::Rejected(_)) => rejected,
            Err(rejection) => Decoded::Rejected(Rejection { entry: Some(i), raw: entry.resource.map(|r| r.get().as_bytes().to_vec()), ..rejection }),
        });
    }
    if out.is_empty() {
        out.push(Decoded::Rejected(Rejection::content("Bundle has no entries")));
    }
    out
}
