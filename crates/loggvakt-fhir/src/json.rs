//! The bottom of the crate: a mapping error with the FHIRPath-like location it is about,
//! and JSON parsing that names that location. Every other module builds on these; this one
//! imports none of them, so the modules form layers (json ← time ← context ← map ←
//! message), not a cycle.

use std::fmt;

use serde::Deserialize;

/// A field that cannot be mapped: its FHIRPath-like location and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    pub path: String,
    pub message: String,
    /// The message refers to a resource not seen yet; it may map once that arrives.
    pub unresolved_reference: bool,
}

impl MapError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        MapError { path: path.into(), message: message.into(), unresolved_reference: false }
    }
    pub(crate) fn unresolved(path: impl Into<String>, message: impl Into<String>) -> Self {
        MapError { unresolved_reference: true, ..MapError::new(path, message) }
    }
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.path = format!("{prefix}{}", self.path);
        }
        self
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for MapError {}

/// Parses JSON fast, and on failure parses again to name the failing field's path.
pub(crate) fn parse_with_path<'a, T: Deserialize<'a>>(raw: &'a [u8], what: &str) -> Result<T, MapError> {
    match serde_json::from_slice::<T>(raw) {
        Ok(v) => Ok(v),
        Err(fast) => {
            let column = fast.column();
            if fast.is_eof() {
                return Err(MapError::new(what, format!("truncated JSON: input ends at column {column} before the resource is complete")));
            }
            if fast.is_syntax() {
                return Err(MapError::new(what, format!("invalid JSON at column {column}: {fast}")));
            }
            let mut de = serde_json::Deserializer::from_slice(raw);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => {
                    let path = e.path().to_string();
                    let path = if path == "." { what.to_owned() } else { format!("{what}.{path}") };
                    Err(MapError::new(path, e.into_inner().to_string()))
                }
                Ok(_) => Err(MapError::new(what, fast.to_string())),
            }
        }
    }
}
