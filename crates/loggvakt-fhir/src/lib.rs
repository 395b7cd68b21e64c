//! # loggvakt-fhir
//!
//! Owns the mapping from HL7 FHIR AuditEvent (R4 and R5 JSON) onto
//! [`loggvakt_model::AccessEvent`]: which agent is the user, which entity is the patient,
//! whose employee the user is (the tenant), and how actions, purposes and outcomes map.
//! It also reads the context resources an AuditEvent may point at (PractitionerRole,
//! Practitioner, Organization, Patient), contained or sent earlier.
//!
//! Must not: touch the store, decide durability, or drop anything silently. Every message
//! either maps to events or comes back as a [`Rejection`] that says where and why.
//! The mapping rules are listed in `docs/fhir-mapping.md`.

mod context;
mod json;
mod map;
mod message;
mod resources;
mod time;

pub use context::{ContextIndex, ContextResource};
pub use json::MapError;
pub use message::{decode_bundle_message, decode_message, Decoded, Rejection, RejectionKind, DEFAULT_MAX_MESSAGE_BYTES};

/// The first 16 bytes of BLAKE3 over the original message bytes, JSON whitespace outside
/// strings left out.
pub fn source_digest(raw: &[u8]) -> loggvakt_model::Digest16 {
    // JSON whitespace outside strings is left out: a resend that a sender re-serialised
    // (indented, or on one line) is the same message, and is acknowledged as a duplicate
    // rather than refused as a conflicting reuse of its id.
    let mut hasher = blake3::Hasher::new();
    let (mut in_string, mut escaped, mut start) = (false, false, 0);
    for (i, &b) in raw.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {
                hasher.update(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    hasher.update(&raw[start..]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    loggvakt_model::Digest16(out)
}

#[cfg(test)]
mod digest_tests {
    #[test]
    fn whitespace_outside_strings_does_not_change_the_digest() {
        let compact = br#"{"a":"x y","b":[1,2]}"#;
        let pretty = b"{\n  \"a\": \"x y\",\r\n  \"b\": [ 1, 2 ]\n}";
        assert_eq!(super::source_digest(compact), super::source_digest(pretty));
        assert_ne!(super::source_digest(compact), super::source_digest(br#"{"a":"xy","b":[1,2]}"#), "inside a string it counts");
        assert_ne!(super::source_digest(br#"{"a":"q\" y"}"#), super::source_digest(br#"{"a":"q\"y"}"#), "an escaped quote does not end the string");
    }
}

#[cfg(test)]
mod tests {
    use loggvakt_model::{AccessEvent, Timestamp};
    use serde_json::Value;

    use super::*;

    const R4: &str = include_str!("../../../samples/fhir/r4-read-break-the-glass.json");
    const R5: &str = include_str!("../../../samples/fhir/r5-search-contained-role.json");

    /// Writes JSON with each object's keys in an order chosen by `seed`, and `indent` spaces.
    fn respell(v: &Value, seed: &mut u64, indent: usize, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                for i in (1..keys.len()).rev() {
                    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    keys.swap(i, (*seed >> 33) as usize % (i + 1));
                }
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push_str(" :\t");
                    respell(&map[*k], seed, indent + 2, out);
                }
                out.push_str("\n}");
            }
            Value::Array(items) => {
                out.push_str("[ ");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" ,\r\n");
                    }
                    respell(item, seed, indent, out);
                }
                out.push_str(" ]");
            }
            other => out.push_str(&other.to_string()),
        }
    }

    fn map_one(raw: &[u8]) -> AccessEvent {
        match decode_message(raw, &ContextIndex::new(), Timestamp(1_700_000_000_000_000), DEFAULT_MAX_MESSAGE_BYTES).pop() {
            Some(Decoded::Event { event, .. }) => event,
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn canonical(e: &AccessEvent) -> Vec<u8> {
        let mut out = Vec::new();
        e.encode_canonical(&mut out);
        out
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_are_rejected_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            for d in decode_message(&bytes, &ContextIndex::new(), Timestamp(0), DEFAULT_MAX_MESSAGE_BYTES) {
                proptest::prop_assert!(!matches!(d, Decoded::Rejected(ref r) if r.reason.is_empty()), "a rejection always says why");
            }
        }

        #[test]
        fn damaged_audit_events_are_rejected_or_mapped_never_panic(cut in 0usize..4000, byte in proptest::prelude::any::<u8>(), at in 0usize..4000, r5 in proptest::prelude::any::<bool>()) {
            let mut raw = if r5 { R5 } else { R4 }.as_bytes().to_vec();
            let at = at % raw.len();
            raw[at] = byte;
            raw.truncate(raw.len() - cut % raw.len());
            let decoded = decode_message(&raw, &ContextIndex::new(), Timestamp(0), DEFAULT_MAX_MESSAGE_BYTES);
            proptest::prop_assert!(!decoded.is_empty(), "every message yields something");
        }

        #[test]
        fn key_order_and_whitespace_do_not_change_the_canonical_encoding(seed in proptest::prelude::any::<u64>(), r5 in proptest::prelude::any::<bool>()) {
            let original = if r5 { R5 } else { R4 };
            let value: Value = serde_json::from_str(original).expect("example parses");
            let mut seed = seed;
            let mut respelled = String::new();
            respell(&value, &mut seed, 0, &mut respelled);
            let a = map_one(original.as_bytes());
            let b = map_one(respelled.as_bytes());
            proptest::prop_assert_eq!(canonical(&a), canonical(&b));
            // The digest keeps the exact original bytes, so it tells the two apart.
            proptest::prop_assert_ne!(a.source_digest, b.source_digest);
        }
    }
}
