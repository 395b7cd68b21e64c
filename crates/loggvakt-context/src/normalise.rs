//! Keys that make names and addresses comparable: case, Norwegian letters and spacing
//! folded, so "Sørensen" meets "Sorensen" and "Kongens gate 4 b" meets "Kongensgate 4B".

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

/// The comparable parts of one postal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressKeys {
    /// municipality-or-postcode | street
    pub street: String,
    /// street key | house number and letter
    pub building: String,
    /// building key | apartment (bruksenhetsnummer), or the building key for a house
    pub dwelling: String,
    pub house_number: Option<i64>,
    pub unit: Option<String>,
}

/// Keys of an address from its lines, postcode and city. The street and house number are
/// the last number-led token(s) of the first line ("Storgata 12 B" → "storgata", 12, "b");
/// an apartment is any token shaped like a bruksenhetsnummer (H0203: letter, four digits).
pub fn address_keys(lines: &[&str], postcode: Option<&str>, city: Option<&str>) -> Option<AddressKeys> {
    let mut unit = None;
    let mut street_line = None;
    for line in lines {
        for token in line.split([',', ' ']).filter(|t| !t.is_empty()) {
            let b = token.as_bytes();
            if b.len() == 5 && matches!(b[0], b'H' | b'U' | b'K' | b'L') && b[1..].iter().all(u8::is_ascii_digit) {
                unit = Some(token.to_owned());
            }
        }
        if street_line.is_none() && line.chars().any(|c| c.is_alphabetic()) && !is_unit_only(line) {
            street_line = Some(*line);
        }
    }
    let line = street_line?;
    let tokens: Vec<&str> = line.split([',', ' ']).filter(|t| !t.is_empty() && !is_unit_only(t)).collect();
    let number_at = tokens.iter().position(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
    let street = name_key(&tokens[..number_at].join(""));
    if street.is_empty() {
        return None;
    }
    let number_text: String = tokens[number_at..].concat();
    let digits: String = number_text.chars().take_while(char::is_ascii_digit).collect();
    let letter = name_key(&number_text[digits.len()..]);
    let house_number = digits.parse::<i64>().ok();
    let place = postcode.map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).or_else(|| city.map(name_key)).unwrap_or_default();
    let street = format!("{place}|{street}");
    let building = format!("{street}|{digits}{letter}");
    let dwelling = match &unit {
        Some(u) => format!("{building}|{}", u.to_ascii_uppercase()),
        None => building.clone(),
    };
    Some(AddressKeys { street, building, dwelling, house_number, unit })
}

fn is_unit_only(text: &str) -> bool {
    let t = text.trim();
    let b = t.as_bytes();
    b.len() == 5 && matches!(b[0], b'H' | b'U' | b'K' | b'L') && b[1..].iter().all(u8::is_ascii_digit)
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
    fn an_apartment_address_has_street_building_and_dwelling_keys() {
        let k = address_keys(&["Storgata 12 B", "H0203"], Some("7010"), Some("Midtfjord")).unwrap();
        assert_eq!(k.street, "7010|storgata");
        assert_eq!(k.building, "7010|storgata|12b");
        assert_eq!(k.dwelling, "7010|storgata|12b|H0203");
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
    fn an_address_without_a_house_number_has_no_keys() {
        assert_eq!(address_keys(&["Postboks"], Some("7010"), None), None);
        assert_eq!(address_keys(&[], Some("7010"), None), None);
    }
}
