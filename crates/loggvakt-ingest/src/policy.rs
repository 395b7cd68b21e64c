//! Who may write what: the one place every intake path (bulk files, FHIR over HTTP, syslog,
//! `quarantine retry`) asks whether a mapped event may enter the store for the sender that
//! sent it. The store trusts no field of an event until this has said yes.
//!
//! Three rules, in this order:
//! 1. no one writes for the store's own recording system ([`OWN_SYSTEM`]): its gap and
//!    search records are evidence about the senders, so a sender must not be able to forge
//!    or pre-empt them;
//! 2. a sender with a `systems` list writes only for those recording systems;
//! 3. a sender with a `tenants` list writes only events whose organisation is on it: the
//!    stored organisation decides which privacy officer sees the event, so an event a source
//!    sends for another organisation would land in a stranger's queue.

/// The recording system of what loggvakt writes itself (gap events, reads of the store);
/// analyses leave it out of the accesses they review, and no sender may use it.
pub use loggvakt_journal::own::OWN_SYSTEM;

/// What one sender may write. Empty lists mean "any" (an operator's bulk import).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePolicy {
    /// The sender, as errors name it.
    pub sender: String,
    /// Organisation numbers it may write events for.
    pub tenants: Vec<String>,
    /// `source.observer` / `AuditSourceID` values it may send for.
    pub systems: Vec<String>,
}

/// Why an event was refused by [`WritePolicy::authorise`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("'{system}' is the store's own recording system (its gap and search records); no source may send events for it")]
    OwnSystem { system: String },
    #[error("source '{sender}' may not send events recorded by '{system}' (it may send for: {allowed})")]
    System { sender: String, system: String, allowed: String },
    #[error(
        "source '{sender}' may not write for organisation '{tenant}' (it writes for: {allowed}); the organisation comes from the event's organisation agent or the user's employer"
    )]
    Tenant { sender: String, tenant: String, allowed: String },
}

impl Forbidden {
    /// The FHIRPath of the field that decided.
    pub fn expression(&self) -> &'static str {
        match self {
            Forbidden::OwnSystem { .. } | Forbidden::System { .. } => "AuditEvent.source.observer",
            Forbidden::Tenant { .. } => "AuditEvent.agent.who",
        }
    }
}

/// Is `system` the store's own, however a sender spells it?
pub fn is_own_system(system: &str) -> bool {
    system.trim().eq_ignore_ascii_case(OWN_SYSTEM)
}

impl WritePolicy {
    /// Anyone may write for any organisation and system, except the store's own system.
    pub fn operator(sender: impl Into<String>) -> Self {
        WritePolicy { sender: sender.into(), tenants: vec![], systems: vec![] }
    }

    pub fn may_write_for_tenant(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// May this sender write an event that says it was recorded by `system` for `tenant`?
    pub fn authorise(&self, system: &str, tenant: &str) -> Result<(), Forbidden> {
        if is_own_system(system) {
            return Err(Forbidden::OwnSystem { system: system.to_owned() });
        }
        if !self.systems.is_empty() && !self.systems.iter().any(|s| s == system) {
            return Err(Forbidden::System { sender: self.sender.clone(), system: system.to_owned(), allowed: self.systems.join(", ") });
        }
        if !self.may_write_for_tenant(tenant) {
            return Err(Forbidden::Tenant { sender: self.sender.clone(), tenant: tenant.to_owned(), allowed: self.tenants.join(", ") });
        }
        Ok(())
    }

    pub fn authorise_event(&self, event: &loggvakt_model::AccessEvent) -> Result<(), Forbidden> {
        self.authorise(&event.source_system, &event.tenant_orgnr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_system_is_reserved_for_everyone() {
        let operator = WritePolicy::operator("bulk");
        assert!(matches!(operator.authorise("loggvakt", "974589095"), Err(Forbidden::OwnSystem { .. })));
        assert!(matches!(operator.authorise(" LoggVakt ", "974589095"), Err(Forbidden::OwnSystem { .. })));
        assert!(operator.authorise("DIPS", "974589095").is_ok());
    }

    #[test]
    fn systems_then_tenants() {
        let p = WritePolicy { sender: "dips".into(), tenants: vec!["974589095".into()], systems: vec!["DIPS".into()] };
        assert!(p.authorise("DIPS", "974589095").is_ok());
        let e = p.authorise("EPJ2", "974589095").unwrap_err();
        assert!(e.to_string().contains("'EPJ2'"), "{e}");
        let e = p.authorise("DIPS", "983971636").unwrap_err();
        assert!(matches!(e, Forbidden::Tenant { .. }));
        assert!(e.to_string().contains("983971636") && e.to_string().contains("974589095"), "{e}");
    }
}
