//! Serde shapes of the FHIR resources we read: tolerant of R4 and R5 differences, and
//! borrowing from the input where the JSON has no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON string that borrows from the input when it can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer that FHIR may write as a JSON number or (integer64 in R5) a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LooseInt(pub i64);

impl<'de> Deserialize<'de> for LooseInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LooseInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer, as a number or a string")
            }
            fn visit_i64<E>(self, v: i64) -> Result<LooseInt, E> {
                Ok(LooseInt(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LooseInt, E> {
                i64::try_from(v).map(LooseInt).map_err(|_| E::custom(format!("{v} does not fit in 64 signed bits")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LooseInt, E> {
                v.parse().map(LooseInt).map_err(|_| E::custom(format!("'{v}' is not an integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Just enough to dispatch on the resource type.
#[derive(Deserialize)]
pub(crate) struct Head<'a> {
    #[serde(rename = "resourceType", borrow)]
    pub resource_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Coding<'a> {
    #[serde(borrow)]
    pub system: Option<Text<'a>>,
    #[serde(borrow)]
    pub code: Option<Text<'a>>,
    #[serde(borrow)]
    pub display: Option<Text<'a>>,
}

/// A Coding or a CodeableConcept: R4 uses the one where R5 uses the other, so both shapes
/// are read into one.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Concept<'a> {
    #[serde(borrow)]
    pub coding: Vec<Coding<'a>>,
    #[serde(borrow)]
    pub system: Option<Text<'a>>,
    #[serde(borrow)]
    pub code: Option<Text<'a>>,
    #[serde(borrow)]
    pub display: Option<Text<'a>>,
    #[serde(borrow)]
    pub text: Option<Text<'a>>,
}

impl<'a> Concept<'a> {
    /// (system, code) pairs of both shapes.
    pub fn codes(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        let own = self.code.as_ref().map(|c| (self.system.as_ref().map(Text::as_str), c.as_str()));
        own.into_iter().chain(self.coding.iter().filter_map(|c| c.code.as_ref().map(|code| (c.system.as_ref().map(Text::as_str), code.as_str()))))
    }
    pub fn first_code(&self) -> Option<&str> {
        self.codes().next().map(|(_, c)| c)
    }
    pub fn label(&self) -> Option<&str> {
        self.text.as_ref().or(self.display.as_ref()).or_else(|| self.coding.iter().find_map(|c| c.display.as_ref())).map(Text::as_str)
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, from = "IdentifierAsSent<'a>")]
pub(crate) struct Identifier<'a> {
    #[serde(borrow)]
    pub system: Option<Text<'a>>,
    #[serde(borrow)]
    pub value: Option<Text<'a>>,
}

/// An identifier as senders write it. HL7 Norway's published AuditEvent examples (the
/// `no-domain-Trustframework` profiles) put the number in the element `id` and leave
/// `value` out; for a Norwegian register's system (fødselsnummer, HPR, orgnr, RESH…), an
/// identifier without `value` is read from its `id`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct IdentifierAsSent<'a> {
    #[serde(borrow)]
    system: Option<Text<'a>>,
    #[serde(borrow)]
    value: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
}

impl<'a> From<IdentifierAsSent<'a>> for Identifier<'a> {
    fn from(sent: IdentifierAsSent<'a>) -> Self {
        let norwegian = sent.system.as_ref().is_some_and(|s| loggvakt_model::ids::IdSystem::from_fhir_system(s.as_str()).is_some());
        let value = sent.value.or(if norwegian { sent.id } else { None });
        Identifier { system: sent.system, value }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Reference<'a> {
    #[serde(borrow)]
    pub reference: Option<Text<'a>>,
    #[serde(borrow)]
    pub identifier: Option<Identifier<'a>>,
    #[serde(borrow)]
    pub display: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Period<'a> {
    #[serde(borrow)]
    pub start: Option<Text<'a>>,
    #[serde(borrow)]
    pub end: Option<Text<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Extension<'a> {
    #[serde(borrow)]
    pub url: Option<Text<'a>>,
    #[serde(borrow)]
    pub value_code: Option<Text<'a>>,
    #[serde(borrow)]
    pub value_string: Option<Text<'a>>,
    pub value_integer: Option<LooseInt>,
    pub value_integer64: Option<LooseInt>,
    pub value_unsigned_int: Option<LooseInt>,
    pub value_positive_int: Option<LooseInt>,
    #[serde(borrow)]
    pub value_reference: Option<Reference<'a>>,
}

impl Extension<'_> {
    pub fn named(&self, suffix: &str) -> bool {
        self.url.as_ref().is_some_and(|u| u.as_str().ends_with(suffix))
    }
    pub fn integer(&self) -> Option<i64> {
        self.value_integer.or(self.value_integer64).or(self.value_unsigned_int).or(self.value_positive_int).map(|v| v.0)
    }
    pub fn code(&self) -> Option<&str> {
        self.value_code.as_ref().or(self.value_string.as_ref()).map(Text::as_str)
    }
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub(crate) enum Outcome<'a> {
    /// R4: a code, "0" | "4" | "8" | "12".
    Code(#[serde(borrow)] Text<'a>),
    /// R5: `{ "code": Coding, "detail": [...] }`.
    Object {
        #[serde(borrow, default)]
        code: Option<Concept<'a>>,
    },
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Agent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Concept<'a>>,
    #[serde(borrow)]
    pub role: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub who: Option<Reference<'a>>,
    #[serde(borrow)]
    pub alt_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    pub requestor: Option<bool>,
    #[serde(borrow)]
    pub location: Option<Reference<'a>>,
    #[serde(borrow)]
    pub purpose_of_use: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub authorization: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub extension: Vec<Extension<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Source<'a> {
    #[serde(borrow)]
    pub observer: Option<Reference<'a>>,
    #[serde(borrow)]
    pub extension: Vec<Extension<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Entity<'a> {
    #[serde(borrow)]
    pub what: Option<Reference<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Concept<'a>>,
    #[serde(borrow)]
    pub role: Option<Concept<'a>>,
    #[serde(borrow)]
    pub security_label: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Meta<'a> {
    #[serde(borrow)]
    pub security: Vec<Coding<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct AuditEvent<'a> {
    #[serde(borrow, rename = "resourceType")]
    pub resource_type: Option<Text<'a>>,
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub meta: Option<Meta<'a>>,
    #[serde(borrow)]
    pub extension: Vec<Extension<'a>>,
    #[serde(borrow)]
    pub contained: Vec<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Concept<'a>>,
    #[serde(borrow)]
    pub subtype: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub category: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub code: Option<Concept<'a>>,
    #[serde(borrow)]
    pub action: Option<Text<'a>>,
    #[serde(borrow)]
    pub period: Option<Period<'a>>,
    #[serde(borrow)]
    pub occurred_period: Option<Period<'a>>,
    #[serde(borrow)]
    pub occurred_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    pub recorded: Option<Text<'a>>,
    #[serde(borrow)]
    pub outcome: Option<Outcome<'a>>,
    #[serde(borrow)]
    pub purpose_of_event: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub authorization: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub patient: Option<Reference<'a>>,
    #[serde(borrow)]
    pub agent: Vec<Agent<'a>>,
    #[serde(borrow)]
    pub source: Option<Source<'a>>,
    #[serde(borrow)]
    pub entity: Vec<Entity<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct HumanName<'a> {
    #[serde(borrow)]
    pub text: Option<Text<'a>>,
    #[serde(borrow)]
    pub family: Option<Text<'a>>,
    #[serde(borrow)]
    pub given: Vec<Text<'a>>,
}

impl HumanName<'_> {
    pub fn full(&self) -> Option<String> {
        if let Some(text) = &self.text {
            return Some(text.as_str().to_owned());
        }
        let mut parts: Vec<&str> = self.given.iter().map(Text::as_str).collect();
        parts.extend(self.family.as_ref().map(Text::as_str));
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Fields of Practitioner, PractitionerRole, Organization and Patient that we use; each
/// resource type fills its own.
#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ContextShape<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub identifier: Vec<Identifier<'a>>,
    #[serde(borrow)]
    pub name: Option<NameField<'a>>,
    #[serde(borrow)]
    pub practitioner: Option<Reference<'a>>,
    #[serde(borrow)]
    pub organization: Option<Reference<'a>>,
    #[serde(borrow)]
    pub part_of: Option<Reference<'a>>,
    #[serde(borrow)]
    pub code: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub specialty: Vec<Concept<'a>>,
    #[serde(borrow)]
    pub location: Vec<Reference<'a>>,
}

/// Organization.name is a string; Practitioner.name and Patient.name are HumanName lists.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub(crate) enum NameField<'a> {
    Plain(#[serde(borrow)] Text<'a>),
    Human(#[serde(borrow)] Vec<HumanName<'a>>),
}

impl NameField<'_> {
    pub fn full(&self) -> Option<String> {
        match self {
            NameField::Plain(t) => Some(t.as_str().to_owned()),
            NameField::Human(names) => names.iter().find_map(HumanName::full),
        }
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct Bundle<'a> {
    #[serde(borrow, rename = "resourceType")]
    pub resource_type: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub entry: Vec<BundleEntry<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub(crate) struct BundleEntry<'a> {
    #[serde(borrow)]
    pub resource: Option<&'a RawValue>,
}
