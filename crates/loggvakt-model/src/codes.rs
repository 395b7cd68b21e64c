//! The closed code sets of an event. Inputs map their own codes onto these.

pub mod actions {
    pub const SEARCH: &str = "search";
    pub const READ: &str = "read";
    pub const CREATE: &str = "create";
    pub const UPDATE: &str = "update";
    pub const DELETE: &str = "delete";
    pub const PRINT_EXPORT: &str = "print_export";
    pub const DISCLOSE: &str = "disclose";
    pub const LIST_EXPOSURE: &str = "list_exposure";
    pub const SELF_AUTHORISATION_GRANT: &str = "self_authorisation_grant";
    pub const LOGIN: &str = "login";
    pub const OTHER: &str = "other";
    pub const ALL: &[&str] = &[SEARCH, READ, CREATE, UPDATE, DELETE, PRINT_EXPORT, DISCLOSE, LIST_EXPOSURE, SELF_AUTHORISATION_GRANT, LOGIN, OTHER];
}

pub mod basis {
    pub const NORMAL: &str = "normal";
    pub const SELF_AUTHORISATION: &str = "self_authorisation";
    pub const UNSPECIFIED: &str = "unspecified";
}

pub mod channel {
    pub const DESKTOP: &str = "desktop";
    pub const MOBILE: &str = "mobile";
    pub const DOWNTIME: &str = "downtime";
    pub const EMERGENCY_ACCOUNT: &str = "emergency_account";
    pub const INTEGRATION: &str = "integration";
    pub const UNSPECIFIED: &str = "unspecified";
    pub const ALL: &[&str] = &[DESKTOP, MOBILE, DOWNTIME, EMERGENCY_ACCOUNT, INTEGRATION, UNSPECIFIED];
}

pub mod outcome {
    pub const GRANTED: &str = "granted";
    pub const DENIED: &str = "denied";
}

/// The audit vocabularies FHIR AuditEvents and ATNA messages share (DICOM event ids and
/// type codes, IHE transaction numbers, FHIR restful interactions, BALP, CH:ATC), and what
/// each means as an [`actions`] code: one table, so both inputs map one code the same way.
/// These are code systems, not input formats: which field a code comes from is the
/// input's business (see `docs/fhir-mapping.md` and `docs/atna-mapping.md`).
pub mod audit_codes {
    use super::actions;

    /// A code that names what happened precisely (an R4 `subtype`, an R5 `code`, an ATNA
    /// `EventTypeCode`, or an event id that is itself specific). Compared case-insensitively.
    pub fn specific_action(code: &str) -> Option<&'static str> {
        let code = code.trim();
        let lower = code.to_ascii_lowercase();
        Some(match lower.as_str() {
            // FHIR restful interactions and IHE query transactions.
            "search" | "search-type" | "search-system" | "search-compartment" => actions::SEARCH,
            "iti-81" | "iti-78" | "iti-67" | "iti-18" | "iti-21" | "iti-9" | "iti-45" | "iti-47" | "iti-66" | "atc_doc_search" => actions::SEARCH,
            "read" | "vread" | "history" | "history-instance" | "history-type" | "capabilities" => actions::READ,
            // Document retrieval: ITI-43 (XDS), ITI-68 (MHD), ITI-39 (XCA) read a document.
            "iti-43" | "iti-68" | "iti-39" | "atc_doc_read" => actions::READ,
            "create" | "iti-41" | "iti-65" | "iti-42" | "atc_doc_create" => actions::CREATE,
            "update" | "patch" | "iti-57" | "atc_doc_update" => actions::UPDATE,
            "delete" | "iti-62" | "atc_doc_delete" => actions::DELETE,
            "print" | "export" | "iti-32" => actions::PRINT_EXPORT,
            "disclose" | "disclosure" => actions::DISCLOSE,
            "list" | "report" | "list-exposure" => actions::LIST_EXPOSURE,
            // Break the glass: DICOM "Emergency Override Started".
            "btg-grant" | "self-authorisation" | "selvautorisering" | "110127" => actions::SELF_AUTHORISATION_GRANT,
            "login" | "110122" => actions::LOGIN,
            // A log-out and the end of an emergency override are recorded, but are neither a
            // log-in nor an access.
            "logout" | "110123" | "110128" => actions::OTHER,
            _ => return None,
        })
    }

    /// A code that names only the family of an event (an R4 `type`, an R5 `category`, an
    /// ATNA `EventID`): it decides only when nothing more precise was said.
    pub fn general_action(code: &str) -> Option<&'static str> {
        Some(match code.trim() {
            "110112" => actions::SEARCH,
            "110110" => actions::READ,
            "110107" => actions::CREATE,
            "110106" => actions::PRINT_EXPORT,
            "110114" => actions::LOGIN,
            // An event id that is itself specific (ATNA's EventID 110122 Login).
            other => return specific_action(other),
        })
    }

    /// The action an audit letter (C, R, U, D, E) names, when the codes name none.
    pub fn letter_action(letter: &str) -> Option<&'static str> {
        Some(match letter {
            "C" => actions::CREATE,
            "R" => actions::READ,
            "U" => actions::UPDATE,
            "D" => actions::DELETE,
            "E" => actions::OTHER,
            _ => return None,
        })
    }

    /// The action of an event: a known specific code; else, when specific codes were given
    /// but none is known, the letter (a generic DICOM type such as 110106 Export must not
    /// override a feed's own subtype and letter); else a known general code; else the letter.
    pub fn action<'a>(specific: impl IntoIterator<Item = &'a str>, general: impl IntoIterator<Item = &'a str>, letter: Option<&str>) -> &'static str {
        let mut any_specific = false;
        for code in specific {
            any_specific = true;
            if let Some(a) = specific_action(code) {
                return a;
            }
        }
        let from_letter = letter.and_then(letter_action);
        if any_specific {
            if let Some(a) = from_letter.filter(|a| *a != actions::OTHER) {
                return a;
            }
        }
        general.into_iter().find_map(general_action).or(from_letter).unwrap_or(actions::OTHER)
    }

    /// Purposes of use that mean the user authorised their own access (break the glass):
    /// Norwegian codes, HL7 v3 ActReason, and CH:ATC's emergency access.
    pub const SELF_AUTHORISATION_PURPOSES: &[&str] = &["BTG", "ETREAT", "BLAALYS", "SELVAUTORISERING", "NODRETT", "EMER"];

    pub fn is_self_authorisation(code: &str) -> bool {
        SELF_AUTHORISATION_PURPOSES.iter().any(|p| p.eq_ignore_ascii_case(code.trim()))
    }

    /// DICOM participant roles of software, not people (Application, Application Launcher,
    /// Destination, Source): when a human is also named, the human is the user.
    pub fn is_machine_role(code: &str) -> bool {
        matches!(code.trim(), "110150" | "110151" | "110152" | "110153" | "dev" | "application")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_precise_code_then_the_letter_then_the_family() {
            assert_eq!(action(["110123"], ["110114"], Some("E")), actions::OTHER, "a log-out is not a log-in");
            assert_eq!(action(["110122"], ["110114"], Some("E")), actions::LOGIN);
            assert_eq!(action(["ATC_DOC_READ"], ["110106"], Some("R")), actions::READ, "CH:ATC retrieval");
            assert_eq!(action(["ATC_NEW_THING"], ["110106"], Some("R")), actions::READ, "an unknown subtype: the letter, not 110106");
            assert_eq!(action([], ["110106"], Some("R")), actions::PRINT_EXPORT, "DICOM Export alone");
            assert_eq!(action(["Disclosure"], ["110106"], Some("R")), actions::DISCLOSE);
            assert_eq!(action(["110127"], ["110113"], Some("E")), actions::SELF_AUTHORISATION_GRANT);
            assert_eq!(action(["ITI-43"], ["110107"], Some("C")), actions::READ, "a document consumer's retrieval");
            assert_eq!(action([], [], Some("U")), actions::UPDATE);
            assert_eq!(action([], [], None), actions::OTHER);
            assert!(is_self_authorisation("emer") && !is_self_authorisation("NORM"));
        }
    }
}
