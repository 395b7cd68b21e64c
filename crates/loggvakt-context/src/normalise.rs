//! Keys that make names and addresses comparable: case, Norwegian letters and spacing
//! folded, so "Sørensen" meets "Sorensen" and "Kongens gate 4 b" meets "Kongensgate 4B";
//! street types and apartments folded to one spelling, so "Kongens gt. 4" meets
//! "Kongens gate 4" and "leil. 203" meets "H0203". The rules are listed in
//! `docs/context.md` (Keys).

/// Lower case, Norwegian and other accented letters folded to ASCII (æ→ae, ø→o, å→aa),
/// everything but letters and digits dropped.
pub fn name_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'æ' | 'ä' => out.push_str("ae"),
            'ø' | 'ö' | 'ó' | 'ò' | 'ô' => out.push('o'),
            'å' => out.push_str("aa"),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'ü' | 'ú' => out.push('u'),
            'á' | 'à' | 'â' => out.push('a'),
            'í' | 'ï' => out.push('i'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

/// Street types as registers spell them, longest first, and the one spelling kept. Both
/// the definite and indefinite forms and the common abbreviations meet ("Granveien",
/// "Granvegen", "Granvei", "Granvn." are one street; so are "Kirkegata", "Kirkegate" and
/// "Kirkegt.").
const STREET_TYPES: &[(&str, &str)] =
    &[("gaten", "gt"), ("gata", "gt"), ("gate", "gt"), ("veien", "vn"), ("vegen", "vn"), ("vei", "vn"), ("veg", "vn"), ("plassen", "pl"), ("plass", "pl"), ("alleen", "alle")];

/// The street part of a key: the folded name with its street type in one spelling.
fn street_name_key(tokens: &[&str]) -> String {
    let mut key = name_key(&tokens.concat());
    for (spelling, kept) in STREET_TYPES {
        if key.len() > spelling.len() && key.ends_with(spelling) {
            key.truncate(key.len() - spelling.len());
            key.push_str(kept);
            break;
        }
    }
    key
}

/// The comparable parts of one postal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressKeys {
    /// municipality-or-postcode | street
    pub street: String,
    /// street key | house number (without its letter): two addresses with the same house
    /// key where one lacks the letter or the apartment may be the same home
    pub house: String,
    /// street key | house number and letter
    pub building: String,
    /// building key | apartment (bruksenhetsnummer), or the building key for a house
    pub dwelling: String,
    pub house_number: Option<i64>,
    pub unit: Option<String>,
}

fn tokens(line: &str) -> Vec<&str> {
    line.split([',', ' ', '\t']).filter(|t| !t.is_empty()).collect()
}

/// `H0203`, `h0203` (a bruksenhetsnummer: H, U, K or L and four digits), upper-cased.
fn bruksenhet(token: &str) -> Option<String> {
    let b = token.as_bytes();
    (b.len() == 5 && matches!(b[0].to_ascii_uppercase(), b'H' | b'U' | b'K' | b'L') && b[1..].iter().all(u8::is_ascii_digit)).then(|| token.to_ascii_uppercase())
}

/// Words that introduce an apartment number ("leil. 203", "leilighet nr. 203", "lgh 203").
fn is_apartment_word(token: &str) -> bool {
    matches!(token.trim_end_matches('.').to_lowercase().as_str(), "leil" | "leilighet" | "lgh" | "leiligheit" | "bolig")
}

/// The apartment named at `tokens[i]`, and how many tokens it takes: a bruksenhetsnummer
/// (`H0203`, or `H 0203`), or an apartment word with a number of three or four digits,
/// read as floor and unit the way the bruksenhetsnummer writes them (`leil. 203` = H0203,
/// `leil. 1203` = H1203). A shorter number cannot be read as floor and unit and is kept
/// as it is (`LEIL7`), so it matches only the same spelling.
fn apartment_at(tokens: &[&str], i: usize) -> Option<(String, usize)> {
    let t = tokens[i];
    if let Some(u) = bruksenhet(t) {
        return Some((u, 1));
    }
    if t.len() == 1 && matches!(t.as_bytes()[0].to_ascii_uppercase(), b'H' | b'U' | b'K' | b'L') {
        if let Some(next) = tokens.get(i + 1).filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit())) {
            return Some((format!("{}{next}", t.to_ascii_uppercase()), 2));
        }
    }
    if is_apartment_word(t) {
        let mut j = i + 1;
        while tokens.get(j).is_some_and(|n| matches!(n.trim_end_matches('.').to_lowercase().as_str(), "nr" | "no")) {
            j += 1;
        }
        let number = tokens.get(j)?.trim_end_matches('.');
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let unit = match number.len() {
            3 => format!("H0{number}"),
            4 => format!("H{number}"),
            _ => format!("LEIL{}", number.trim_start_matches('0')),
        };
        return Some((unit, j + 1 - i));
    }
    None
}

/// Keys of an address from its lines, postcode and city. The street is the text of the
/// first line before its first number-led token; the house number and a one-letter house
/// letter follow (`12 B`, `12b`); an apartment may stand on any line (see [`apartment_at`]).
pub fn address_keys(lines: &[&str], postcode: Option<&str>, city: Option<&str>) -> Option<AddressKeys> {
    let mut unit = None;
    let mut street_and_number: Option<(String, String, String, Option<i64>)> = None;
    for line in lines {
        let tokens = tokens(line);
        // Apartment tokens, wherever they stand, are not part of the street or number.
        let mut plain = Vec::with_capacity(tokens.len());
        let mut i = 0;
        while i < tokens.len() {
            if let Some((u, taken)) = apartment_at(&tokens, i) {
                unit.get_or_insert(u);
                i += taken;
            } else {
                plain.push(tokens[i]);
                i += 1;
            }
        }
        if street_and_number.is_some() {
            continue;
        }
        let Some(number_at) = plain.iter().position(|t| t.starts_with(|c: char| c.is_ascii_digit())) else { continue };
        if number_at == 0 {
            continue;
        }
        let street = street_name_key(&plain[..number_at]);
        if street.is_empty() {
            continue;
        }
        let number_token = plain[number_at];
        let digits: String = number_token.chars().take_while(char::is_ascii_digit).collect();
        let attached = name_key(&number_token[digits.len()..]);
        let letter = if attached.len() == 1 && attached.chars().all(|c| c.is_ascii_alphabetic()) {
            attached
        } else if attached.is_empty() {
            plain.get(number_at + 1).map(|t| name_key(t)).filter(|l| l.len() == 1 && l.chars().all(|c| c.is_ascii_alphabetic())).unwrap_or_default()
        } else {
            String::new()
        };
        let house_number = digits.parse::<i64>().ok();
        street_and_number = Some((street, digits, letter, house_number));
    }
    let (street, digits, letter, house_number) = street_and_number?;
    let place = postcode.map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).or_else(|| city.map(name_key)).unwrap_or_default();
    let street = format!("{place}|{street}");
    let house = format!("{street}|{digits}");
    let building = format!("{house}{letter}");
    let dwelling = match &unit {
        Some(u) => format!("{building}|{u}"),
        None => building.clone(),
    };
    Some(AddressKeys { street, house, building, dwelling, house_number, unit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_norwegian_letters_and_punctuation() {
        assert_eq!(name_key("Sørensen"), "sorensen");
        assert_eq!(name_key("SØRENSEN"), name_key("Sorensen"));
        assert_eq!(name_key("Ødegård"), "odegaard");
        assert_eq!(name_key("Aas-Hansen"), "aashansen");
        assert_eq!(name_key("Bækkelund"), "baekkelund");
    }

    #[test]
    fn an_apartment_address_has_street_house_building_and_dwelling_keys() {
        let k = address_keys(&["Storgata 12 B", "H0203"], Some("7010"), Some("Midtfjord")).unwrap();
        assert_eq!(k.street, "7010|storgt");
        assert_eq!(k.house, "7010|storgt|12");
        assert_eq!(k.building, "7010|storgt|12b");
        assert_eq!(k.dwelling, "7010|storgt|12b|H0203");
        assert_eq!(k.house_number, Some(12));
        let same = address_keys(&["STORGATA 12b, H0203"], Some("7010"), None).unwrap();
        assert_eq!(same, k);
    }

    #[test]
    fn spacing_in_street_names_does_not_matter() {
        let a = address_keys(&["Kongens gate 4"], Some("7011"), None).unwrap();
        let b = address_keys(&["Kongensgate 4"], Some("7011"), None).unwrap();
        assert_eq!(a.building, b.building);
        assert_eq!(a.dwelling, a.building, "a house is its own dwelling");
    }

    #[test]
    fn street_types_meet_in_every_spelling() {
        let key = |line: &str| address_keys(&[line], Some("7011"), None).unwrap().building;
        for variant in ["Kongens gt. 4", "Kongens gata 4", "KONGENS GATE 4", "Kongensgt 4"] {
            assert_eq!(key(variant), key("Kongens gate 4"), "{variant}");
        }
        for variant in ["Granvn. 7", "Granvegen 7", "Granvei 7", "granveg 7"] {
            assert_eq!(key(variant), key("Granveien 7"), "{variant}");
        }
        assert_ne!(key("Granveien 7"), key("Grangata 7"), "a street type is not a street");
    }

    #[test]
    fn apartments_meet_in_every_spelling() {
        let dwelling = |lines: &[&str]| address_keys(lines, Some("7010"), None).unwrap().dwelling;
        let reference = dwelling(&["Storgata 12 B", "H0203"]);
        for variant in [&["Storgata 12 B", "h0203"][..], &["Storgata 12B H 0203"], &["Storgata 12 B, leil. 203"], &["Storgata 12 B", "Leilighet nr. 203"], &["Storgt. 12b lgh 203"]]
        {
            assert_eq!(dwelling(variant), reference, "{variant:?}");
        }
        assert_ne!(dwelling(&["Storgata 12 B", "leil. 204"]), reference);
        assert_eq!(dwelling(&["Storgata 12 B", "leil. 7"]), "7010|storgt|12b|LEIL7", "too short to read as floor and unit");
    }

    #[test]
    fn a_missing_house_letter_keeps_the_house_key() {
        let with = address_keys(&["Storgata 12 B"], Some("7010"), None).unwrap();
        let without = address_keys(&["Storgata 12"], Some("7010"), None).unwrap();
        assert_ne!(with.building, without.building);
        assert_eq!(with.house, without.house);
    }

    #[test]
    fn an_address_without_a_house_number_has_no_keys() {
        assert_eq!(address_keys(&["Postboks"], Some("7010"), None), None);
        assert_eq!(address_keys(&[], Some("7010"), None), None);
        assert_eq!(address_keys(&["H0203"], Some("7010"), None), None);
    }
}
