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
    pub const ALL: &[&str] =
        &[SEARCH, READ, CREATE, UPDATE, DELETE, PRINT_EXPORT, DISCLOSE, LIST_EXPOSURE, SELF_AUTHORISATION_GRANT, LOGIN, OTHER];
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
