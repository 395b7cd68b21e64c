use loggvakt_model::Timestamp;

use crate::json::MapError;

/// Parses a FHIR `instant` (or a full `dateTime`): a date, a time and a zone are all required,
/// because an access time without a zone is ambiguous by up to two hours in Norway.
pub(crate) fn parse_instant(path: &str, text: &str) -> Result<Timestamp, MapError> {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(Timestamp(t.timestamp_micros())),
        Err(_) => {
            let reason = if !text.contains('T') {
                "is a date without a time of day; an access time needs date, time and zone".to_owned()
            } else if chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").is_ok() {
                "has no time zone; FHIR instants need 'Z' or an offset such as '+01:00'".to_owned()
            } else {
                "is not a FHIR instant (expected e.g. 2026-11-20T08:15:00.123+01:00)".to_owned()
            };
            Err(MapError::new(path, format!("'{text}' {reason}")))
        }
    }
}
