//! Practitioner, PractitionerRole, Organization and Patient resources that AuditEvents
//! refer to, reduced to the identifiers the mapping needs.

use std::collections::HashMap;

use loggvakt_model::ids::IdSystem;

use crate::json::{parse_with_path, MapError};
use crate::resources::{ContextShape, Identifier, Reference, Text};

/// The resource types kept as context.
pub const CONTEXT_TYPES: &[&str] = &["Practitioner", "PractitionerRole", "Organization", "Patient"];

/// What a context resource says about its subject, by identifier system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContextEntry {
    pub person_id: Option<(String, IdSystem)>,
    pub hpr: Option<String>,
    pub orgnr: Option<String>,
    pub resh: Option<String>,
    pub other_id: Option<String>,
    pub name: Option<String>,
    pub practitioner: Option<String>,
    pub organization: Option<String>,
    pub location: Option<String>,
    pub part_of: Option<String>,
    pub role_code: Option<String>,
    pub function_code: Option<String>,
}

/// A context resource as it arrived, to be kept beside the journal so later input can
/// refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResource {
    /// `Type/id`, the key references use.
    pub key: String,
    pub raw: Vec<u8>,
    /// What decoding read from it, so adding it to an index does not parse it again.
    pub(crate) entry: ContextEntry,
}

/// Context resources seen so far, by `Type/id`, and what the sender's events fall back on.
#[derive(Debug, Default, Clone)]
pub struct ContextIndex {
    entries: HashMap<String, ContextEntry>,
    /// Resources shared with other indexes (the operator's imports under each daemon
    /// source's own): looked up after this index's own, never copied.
    base: Option<std::sync::Arc<ContextIndex>>,
    /// The organisation of events that name none (no organisation agent, no employer in the
    /// user's role): the one organisation the sender writes for, as ATNA falls back to.
    pub default_tenant: Option<String>,
}

impl ContextIndex {
    pub fn new() -> Self {
        Self::default()
    }
    /// This index's own resources (not counting its base).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same index, looking up what it does not hold itself in `base`.
    pub fn with_base(mut self, base: std::sync::Arc<ContextIndex>) -> Self {
        self.base = Some(base);
        self
    }

    /// The same index, with `default_tenant` set.
    pub fn with_default_tenant(mut self, tenant: Option<String>) -> Self {
        self.default_tenant = tenant;
        self
    }

    /// Is a resource with this `Type/id` known (here or in the base)?
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Adds (or replaces, for a newer version) a decoded context resource.
    pub fn insert(&mut self, resource: &ContextResource) {
        self.entries.insert(resource.key.clone(), resource.entry.clone());
    }

    /// Adds a kept resource from its JSON alone (its key is its `resourceType/id`).
    pub fn insert_raw(&mut self, raw: &[u8]) -> Result<(), MapError> {
        let head: crate::resources::Head<'_> = parse_with_path(raw, "resource")?;
        let (Some(resource_type), Some(id)) = (head.resource_type, head.id) else {
            return Err(MapError::new("resource", "a kept context resource needs resourceType and id"));
        };
        let entry = parse_entry(resource_type.as_str(), raw)?;
        self.entries.insert(format!("{}/{}", resource_type.as_str(), id.as_str()), entry);
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&ContextEntry> {
        self.entries.get(key).or_else(|| self.base.as_deref()?.get(key))
    }
}

pub(crate) fn parse_entry(resource_type: &str, raw: &[u8]) -> Result<ContextEntry, MapError> {
    let shape: ContextShape<'_> = parse_with_path(raw, resource_type)?;
    let mut entry = ContextEntry::default();
    for (i, identifier) in shape.identifier.iter().enumerate() {
        let (Some(system), Some(value)) = (&identifier.system, &identifier.value) else { continue };
        let value = value.as_str().to_owned();
        match IdSystem::from_fhir_system(system.as_str()) {
            Some(kind) if kind.is_person() => {
                loggvakt_model::ids::validate_person_id_as(&value, kind).map_err(|e| MapError::new(format!("{resource_type}.identifier[{i}].value"), e.to_string()))?;
                entry.person_id.get_or_insert((value, kind));
            }
            Some(IdSystem::Hpr) => {
                entry.hpr.get_or_insert(value);
            }
            Some(IdSystem::Orgnr) => {
                loggvakt_model::ids::validate_orgnr(&value).map_err(|e| MapError::new(format!("{resource_type}.identifier[{i}].value"), e.to_string()))?;
                entry.orgnr.get_or_insert(value);
            }
            Some(IdSystem::Resh) => {
                entry.resh.get_or_insert(value);
            }
            _ => {
                entry.other_id.get_or_insert(value);
            }
        }
    }
    entry.name = shape.name.as_ref().and_then(|n| n.full());
    entry.practitioner = shape.practitioner.as_ref().and_then(reference_key);
    // A PractitionerRole may name its practitioner by identifier alone.
    if let Some(Identifier { system: Some(system), value: Some(value) }) = shape.practitioner.as_ref().and_then(|p| p.identifier.as_ref()) {
        match IdSystem::from_fhir_system(system.as_str()) {
            Some(IdSystem::Hpr) => entry.hpr = Some(value.as_str().to_owned()),
            Some(kind) if kind.is_person() => {
                loggvakt_model::ids::validate_person_id_as(value.as_str(), kind)
                    .map_err(|e| MapError::new(format!("{resource_type}.practitioner.identifier.value"), e.to_string()))?;
                entry.person_id = Some((value.as_str().to_owned(), kind));
            }
            _ => {}
        }
    }
    entry.organization = shape.organization.as_ref().and_then(reference_key);
    entry.part_of = shape.part_of.as_ref().and_then(reference_key);
    entry.location = shape.location.first().and_then(reference_key);
    entry.role_code = shape.code.first().and_then(|c| c.first_code()).map(str::to_owned);
    entry.function_code = shape.specialty.first().and_then(|c| c.first_code()).map(str::to_owned);
    Ok(entry)
}

/// The key a reference resolves by: `#id` for contained resources, else the relative
/// `Type/id` (an absolute URL is cut to its last two segments).
pub(crate) fn reference_key(reference: &Reference<'_>) -> Option<String> {
    let text = reference.reference.as_ref().map(Text::as_str)?;
    if text.starts_with('#') {
        return Some(text.to_owned());
    }
    let text = text.split("/_history/").next().unwrap_or(text);
    let mut parts = text.rsplit('/');
    let id = parts.next()?;
    let resource_type = parts.next()?;
    Some(format!("{resource_type}/{id}"))
}

/// Context visible to one AuditEvent: its contained resources first, then the index.
pub(crate) struct ContextView<'a> {
    pub global: &'a ContextIndex,
    pub contained: HashMap<String, ContextEntry>,
}

impl ContextView<'_> {
    pub fn get(&self, key: &str) -> Option<&ContextEntry> {
        self.contained.get(key).or_else(|| self.global.get(key))
    }
}
