//! The CSV the analyser writes and reads back (`queue.csv`, `flags.csv`,
//! `unexplained.csv`): RFC 4180, with spreadsheet formulas neutralised.
//!
//! Every text in these files came from a sender (event ids, user names, reasons), and a
//! privacy officer opens them in a spreadsheet. A field that starts with `=`, `+`, `-`, `@`,
//! a tab or a carriage return would be run as a formula there (OWASP "CSV injection"), so
//! it is written with a leading `'`, which spreadsheets show as text; [`read`] takes it off
//! again. A field with a comma, a quote or a line break is quoted, so it cannot make a row.

use std::borrow::Cow;

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// One field, ready to be joined with commas.
pub fn field(text: &str) -> Cow<'_, str> {
    let neutral: Cow<'_, str> = if text.starts_with(FORMULA_STARTS) { Cow::Owned(format!("'{text}")) } else { Cow::Borrowed(text) };
    if neutral.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", neutral.replace('"', "\"\"")))
    } else {
        neutral
    }
}

/// One row, ending in CRLF as RFC 4180 has it.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = fields.iter().map(|f| field(f.as_ref())).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// The rows of a CSV text (the header included), with quoting and neutralising undone.
pub fn read(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(plain(std::mem::take(&mut cell))),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(plain(std::mem::take(&mut cell)));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            (false, c) => cell.push(c),
        }
    }
    if any {
        row.push(plain(cell));
        rows.push(row);
    }
    rows
}

fn plain(cell: String) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest.to_owned(),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_and_separators_cannot_escape_their_field() {
        let hostile = ["=HYPERLINK(\"http://x\",\"y\")", "a,b", "line\r\nbreak", "\"q\"", "-1", "@SUM(A1)", "plain"];
        let text = format!("{}{}", row(&["h1", "h2", "h3", "h4", "h5", "h6", "h7"]), row(&hostile));
        assert!(!text.contains(",=") && !text.contains(",-1") && !text.contains(",@"), "{text}");
        let rows = read(&text);
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(rows[1], hostile.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
}
