//! Norwegian identifiers: fødselsnummer, D-nummer, H-nummer and organisasjonsnummer,
//! with their mod-11 check digits, and the HL7 Norway OIDs that name them.

use thiserror::Error;

/// OID of the national identity number (fødselsnummer).
pub const OID_FNR: &str = "2.16.578.1.12.4.1.4.1";
/// OID of the D-number (temporary identity number).
pub const OID_DNR: &str = "2.16.578.1.12.4.1.4.2";
/// OID of the H-number (help number assigned by health services).
pub const OID_HNR: &str = "2.16.578.1.12.4.1.4.3";
/// OID of the health personnel register number (HPR).
pub const OID_HPR: &str = "2.16.578.1.12.4.1.4.4";
/// OID of the organisation number (Enhetsregisteret).
pub const OID_ORGNR: &str = "2.16.578.1.12.4.1.4.101";
/// OID of the RESH id (unit register for the specialist health service).
pub const OID_RESH: &str = "2.16.578.1.12.4.1.4.102";

/// Which identifier system a FHIR `identifier.system` names, if it is one we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSystem {
    PersonFnr,
    PersonDnr,
    PersonHnr,
    Hpr,
    Orgnr,
    Resh,
}

impl IdSystem {
    /// Accepts both `urn:oid:2.16…` and the bare OID.
    pub fn from_fhir_system(system: &str) -> Option<Self> {
        let oid = system.strip_prefix("urn:oid:").unwrap_or(system);
        Some(match oid {
            OID_FNR => IdSystem::PersonFnr,
            OID_DNR => IdSystem::PersonDnr,
            OID_HNR => IdSystem::PersonHnr,
            OID_HPR => IdSystem::Hpr,
            OID_ORGNR => IdSystem::Orgnr,
            OID_RESH => IdSystem::Resh,
            _ => return None,
        })
    }

    pub fn is_person(self) -> bool {
        matches!(self, IdSystem::PersonFnr | IdSystem::PersonDnr | IdSystem::PersonHnr)
    }
}

/// The kind of a valid 11-digit person identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonIdKind {
    Fnr,
    Dnr,
    Hnr,
}

impl PersonIdKind {
    pub fn code(self) -> &'static str {
        match self {
            PersonIdKind::Fnr => "fnr",
            PersonIdKind::Dnr => "dnr",
            PersonIdKind::Hnr => "hnr",
        }
    }
    fn norwegian_name(self) -> &'static str {
        match self {
            PersonIdKind::Fnr => "fødselsnummer",
            PersonIdKind::Dnr => "D-nummer",
            PersonIdKind::Hnr => "H-nummer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("'{value}' is not a valid {what}: it must be exactly {len} digits")]
    Shape { value: String, what: &'static str, len: usize },
    #[error("'{value}' is not a valid {what}: check digit {position} is {found}, but the other digits make it {expected}")]
    CheckDigit { value: String, what: &'static str, position: u8, found: u8, expected: String },
    #[error("'{value}' is not a valid {what}: the birth date {date} does not exist")]
    Date { value: String, what: &'static str, date: String },
    #[error("'{value}' is a {found}, but the identifier system says {expected}")]
    WrongKind { value: String, found: &'static str, expected: &'static str },
}

fn digits<const N: usize>(value: &str, what: &'static str) -> Result<[u8; N], IdError> {
    let shape = || IdError::Shape { value: value.to_owned(), what, len: N };
    let bytes = value.as_bytes();
    if bytes.len() != N {
        return Err(shape());
    }
    let mut out = [0u8; N];
    for (slot, &b) in out.iter_mut().zip(bytes) {
        if !b.is_ascii_digit() {
            return Err(shape());
        }
        *slot = b - b'0';
    }
    Ok(out)
}

/// `None` when the weighted sum leaves remainder 1, which no valid number may have.
fn mod11_check_digit(digits: &[u8], weights: &[u8]) -> Option<u8> {
    let sum: u32 = digits.iter().zip(weights).map(|(&d, &w)| d as u32 * w as u32).sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// Validates a fødselsnummer, D-nummer or H-nummer: both mod-11 check digits and a real
/// birth date. Synthetic test numbers (month + 80, as the national test registry issues
/// them) are accepted as the kind they would otherwise be, so test data validates.
pub fn validate_person_id(value: &str) -> Result<PersonIdKind, IdError> {
    const WHAT: &str = "fødselsnummer/D-nummer/H-nummer";
    let d = digits::<11>(value, WHAT)?;
    for (position, weights) in [(1u8, &[3u8, 7, 6, 1, 8, 9, 4, 5, 2][..]), (2, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2][..])] {
        let n = weights.len();
        let expected = mod11_check_digit(&d[..n], weights);
        if expected != Some(d[n]) {
            return Err(IdError::CheckDigit {
                value: value.to_owned(),
                what: WHAT,
                position,
                found: d[n],
                expected: expected.map_or_else(|| "impossible (remainder 1)".to_owned(), |c| c.to_string()),
            });
        }
    }
    let mut day = d[0] * 10 + d[1];
    let mut month = d[2] * 10 + d[3];
    let mut kind = PersonIdKind::Fnr;
    if day > 40 {
        day -= 40;
        kind = PersonIdKind::Dnr;
    }
    if month > 80 {
        month -= 80;
    }
    if month > 40 {
        month -= 40;
        kind = PersonIdKind::Hnr;
    }
    let year = 1900 + (d[4] * 10 + d[5]) as i32; // the century does not change validity except Feb 29
    let leap_safe_year = if day == 29 && month == 2 { 2000 } else { year };
    if chrono::NaiveDate::from_ymd_opt(leap_safe_year, month as u32, day as u32).is_none() {
        return Err(IdError::Date { value: value.to_owned(), what: WHAT, date: format!("{day:02}.{month:02}") });
    }
    Ok(kind)
}

/// Validates a person identifier against the kind its identifier system declares.
pub fn validate_person_id_as(value: &str, system: IdSystem) -> Result<PersonIdKind, IdError> {
    let kind = validate_person_id(value)?;
    let expected = match system {
        IdSystem::PersonFnr => PersonIdKind::Fnr,
        IdSystem::PersonDnr => PersonIdKind::Dnr,
        IdSystem::PersonHnr => PersonIdKind::Hnr,
        _ => return Ok(kind),
    };
    if kind != expected {
        return Err(IdError::WrongKind { value: value.to_owned(), found: kind.norwegian_name(), expected: expected.norwegian_name() });
    }
    Ok(kind)
}

/// Validates a 9-digit organisasjonsnummer (mod-11, weights 3 2 7 6 5 4 3 2).
pub fn validate_orgnr(value: &str) -> Result<(), IdError> {
    const WHAT: &str = "organisasjonsnummer";
    let d = digits::<9>(value, WHAT)?;
    let expected = mod11_check_digit(&d[..8], &[3, 2, 7, 6, 5, 4, 3, 2]);
    if expected != Some(d[8]) {
        return Err(IdError::CheckDigit {
            value: value.to_owned(),
            what: WHAT,
            position: 1,
            found: d[8],
            expected: expected.map_or_else(|| "impossible (remainder 1)".to_owned(), |c| c.to_string()),
        });
    }
    Ok(())
}

/// Completes the first 9 digits of a person identifier with its two check digits, or
/// `None` when no valid number starts with them. Used by generators and tests.
pub fn complete_person_id(first9: &str) -> Option<String> {
    let d = digits::<9>(first9, "prefix").ok()?;
    let k1 = mod11_check_digit(&d, &[3, 7, 6, 1, 8, 9, 4, 5, 2])?;
    let mut d10 = [0u8; 10];
    d10[..9].copy_from_slice(&d);
    d10[9] = k1;
    let k2 = mod11_check_digit(&d10, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2])?;
    Some(format!("{first9}{k1}{k2}"))
}

/// Completes the first 8 digits of an organisation number with its check digit.
pub fn complete_orgnr(first8: &str) -> Option<String> {
    let d = digits::<8>(first8, "prefix").ok()?;
    let c = mod11_check_digit(&d, &[3, 2, 7, 6, 5, 4, 3, 2])?;
    Some(format!("{first8}{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first valid number for a 6-digit date part, trying individual numbers in order.
    fn first_valid(date6: &str) -> String {
        (0..1000).find_map(|i| complete_person_id(&format!("{date6}{i:03}"))).expect("some individual number is valid")
    }

    #[test]
    fn known_valid_numbers() {
        // Published synthetic examples and numbers built with the check-digit rules.
        let fnr = first_valid("010190");
        assert_eq!(validate_person_id(&fnr), Ok(PersonIdKind::Fnr));
        let dnr = first_valid("410190");
        assert_eq!(validate_person_id(&dnr), Ok(PersonIdKind::Dnr));
        let hnr = first_valid("014190");
        assert_eq!(validate_person_id(&hnr), Ok(PersonIdKind::Hnr));
        assert_eq!(validate_orgnr("974749025"), Ok(()));
    }

    #[test]
    fn wrong_check_digit_names_the_digit() {
        let fnr = first_valid("010190");
        let mut bad = fnr.clone().into_bytes();
        bad[10] = b'0' + (bad[10] - b'0' + 1) % 10;
        let bad = String::from_utf8(bad).expect("ascii");
        let err = validate_person_id(&bad).expect_err("changed check digit");
        assert!(matches!(err, IdError::CheckDigit { position: 2, .. }), "{err}");
        assert!(validate_person_id("12345678901").is_err());
        assert!(validate_orgnr("974749026").is_err());
    }

    #[test]
    fn impossible_dates_are_rejected() {
        let bad = first_valid("320190");
        assert!(matches!(validate_person_id(&bad), Err(IdError::Date { .. })));
        let feb29_1900s = first_valid("290200");
        assert_eq!(validate_person_id(&feb29_1900s), Ok(PersonIdKind::Fnr), "29 Feb exists in 2000");
    }

    #[test]
    fn kind_must_match_declared_system() {
        let dnr = first_valid("410190");
        assert!(matches!(validate_person_id_as(&dnr, IdSystem::PersonFnr), Err(IdError::WrongKind { .. })));
    }
}
