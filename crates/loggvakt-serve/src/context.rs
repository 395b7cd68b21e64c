//! Context resources (Practitioner, PractitionerRole, Organization, Patient) per source.
//!
//! Each source has its own namespace, over the operator's imports: `Organization/1` sent by
//! one source says nothing about another source's `Organization/1`, so no source can move
//! another's events to a different organisation. A resource is learnt only after the
//! request that carried it was accepted and made durable, and each source may hold at most
//! `limits.context_resources_per_source` resources of its own: memory grows with the
//! configuration, not with what senders choose to send.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use loggvakt_fhir::{ContextIndex, ContextResource};
use loggvakt_ingest::KeptContexts;

use crate::identity::Source;

struct Namespace {
    index: ContextIndex,
    /// Resources this source added (not counting those that replace a known `Type/id`).
    own: usize,
}

pub struct SourceContexts {
    by_source: HashMap<Arc<str>, RwLock<Namespace>>,
    max_per_source: usize,
}

impl SourceContexts {
    pub fn new(kept: &KeptContexts, sources: &[Arc<Source>], max_per_source: usize) -> Self {
        let by_source = sources
            .iter()
            .map(|s| {
                let own = kept.by_source.get(&*s.name).map_or(0, ContextIndex::len);
                let index = kept.for_source(&s.name).with_default_tenant(s.default_tenant.clone());
                (s.name.clone(), RwLock::new(Namespace { index, own }))
            })
            .collect();
        SourceContexts { by_source, max_per_source }
    }

    /// What `source`'s input may refer to, for as long as the guard is held (decoding only).
    pub fn read(&self, source: &Source) -> Option<ContextReadGuard<'_>> {
        self.by_source.get(&source.name)?.read().ok().map(ContextReadGuard)
    }

    /// How many of `resources` would be new to `source`'s namespace beyond its limit.
    pub fn over_limit(&self, source: &Source, resources: &[&ContextResource]) -> Option<String> {
        let namespace = self.by_source.get(&source.name)?.read().ok()?;
        let new = resources.iter().filter(|r| !namespace.index.contains(&r.key)).count();
        (namespace.own + new > self.max_per_source).then(|| {
            format!(
                "source '{}' holds {} context resources of its own and this request adds {new}, over the limit of {} (limits.context_resources_per_source); nothing was stored",
                source.name, namespace.own, self.max_per_source
            )
        })
    }

    /// Adds resources from a request that was accepted and is durable.
    pub fn learn<'a>(&self, source: &Source, resources: impl IntoIterator<Item = &'a ContextResource>) {
        let Some(namespace) = self.by_source.get(&source.name) else { return };
        let Ok(mut namespace) = namespace.write() else { return };
        for resource in resources {
            if !namespace.index.contains(&resource.key) {
                namespace.own += 1;
            }
            namespace.index.insert(resource);
        }
    }
}

pub struct ContextReadGuard<'a>(RwLockReadGuard<'a, Namespace>);

impl std::ops::Deref for ContextReadGuard<'_> {
    type Target = ContextIndex;
    fn deref(&self) -> &ContextIndex {
        &self.0.index
    }
}
