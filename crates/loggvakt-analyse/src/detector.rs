//! Detectors and queries as data: SQL files with a header of `-- key: value` lines.
//!
//! ```sql
//! -- id: neighbour
//! -- version: 1
//! -- severity: 3
//! -- excused_by_care: true
//! -- title.nb: Nabo
//! -- title.en: Neighbour
//! -- explain.nb: {accessor} bor i samme bygning som pasienten ({evidence}).
//! -- explain.en: {accessor} lives in the same building as the patient ({evidence}).
//! -- param: max_house_distance = 2 | house numbers this close on one street count as neighbours
//! SELECT a.seq, 1.0 AS strength, … FROM access_explained a …
//! ```
//!
//! The body is SQL over the views of `queries/` and the context tables; `${name}` is
//! replaced by a parameter's value (or by the review period: `${from}`, `${to}`). A detector
//! returns one row per flagged access: `seq`, `strength` (0–1], and any evidence columns its
//! explanation templates name in braces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::AnalyseError;

/// One parameter of a detector or query, with its default and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub default: String,
    pub doc: String,
}

/// A SQL file with its header read.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFile {
    /// Where it came from: a path, or `built-in:<name>`.
    pub origin: String,
    pub header: BTreeMap<String, String>,
    pub params: Vec<Param>,
    pub body: String,
}

/// A detector: one SQL file in `detectors/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    pub id: String,
    pub version: u32,
    /// 1 (weak) … 5 (serious).
    pub severity: u8,
    /// Whether a care relationship makes a flag less suspicious (false for own record,
    /// family, ex-partner, protected address: no care relationship excuses those).
    pub excused_by_care: bool,
    pub title_nb: String,
    pub title_en: String,
    pub explain_nb: String,
    pub explain_en: String,
    pub file: SqlFile,
}

fn header_error(origin: &str, line: usize, reason: impl Into<String>) -> AnalyseError {
    AnalyseError::Definition { origin: origin.to_owned(), line, reason: reason.into() }
}

impl SqlFile {
    /// Reads the header (the leading `-- key: value` lines; other leading comments are
    /// kept as documentation) and the body.
    pub fn parse(origin: &str, text: &str) -> Result<SqlFile, AnalyseError> {
        let mut header = BTreeMap::new();
        let mut params = Vec::new();
        let mut body_start = text.len();
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let trimmed = line.trim();
            if let Some(comment) = trimmed.strip_prefix("--") {
                let comment = comment.trim();
                if let Some((key, value)) = comment.split_once(':').filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
                    let (key, value) = (key.trim(), value.trim());
                    if key == "param" {
                        let (assignment, doc) = value.split_once('|').unwrap_or((value, ""));
                        let Some((name, default)) = assignment.split_once('=') else {
                            return Err(header_error(origin, i + 1, "a param needs 'name = default | what it means'"));
                        };
                        params.push(Param { name: name.trim().to_owned(), default: default.trim().to_owned(), doc: doc.trim().to_owned() });
                    } else if header.insert(key.to_owned(), value.to_owned()).is_some() {
                        return Err(header_error(origin, i + 1, format!("'{key}' appears twice")));
                    }
                }
            } else if !trimmed.is_empty() {
                body_start = offset;
                break;
            }
            offset += line.len();
        }
        let body = text[body_start..].trim().trim_end_matches(';').to_owned();
        if body.is_empty() {
            return Err(header_error(origin, 0, "no SQL after the header"));
        }
        Ok(SqlFile { origin: origin.to_owned(), header, params, body })
    }

    fn require(&self, key: &str) -> Result<&str, AnalyseError> {
        self.header.get(key).map(String::as_str).ok_or_else(|| header_error(&self.origin, 0, format!("the header has no '{key}:' line")))
    }

    /// The body with `${name}` replaced: overrides first, then the file's defaults, then
    /// `common` (the review period). An unknown `${…}` is an error, not an empty string.
    pub fn render(&self, overrides: &BTreeMap<String, String>, common: &BTreeMap<String, String>) -> Result<String, AnalyseError> {
        let mut out = String::with_capacity(self.body.len());
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| header_error(&self.origin, 0, "unclosed '${'"))?;
            let name = &after[..end];
            let value = overrides
                .get(name)
                .or_else(|| self.params.iter().find(|p| p.name == name).map(|p| &p.default))
                .or_else(|| common.get(name))
                .ok_or_else(|| header_error(&self.origin, 0, format!("'${{{name}}}' is neither a declared param nor a period value")))?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl Detector {
    pub fn from_file(file: SqlFile) -> Result<Detector, AnalyseError> {
        let id = file.require("id")?.to_owned();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(header_error(&file.origin, 0, format!("id '{id}' must be lower-case letters, digits and '_'")));
        }
        let number =
            |key: &str| -> Result<u32, AnalyseError> { file.require(key)?.parse::<u32>().map_err(|_| header_error(&file.origin, 0, format!("'{key}' must be a whole number"))) };
        let version = number("version")?;
        let severity = number("severity")?;
        if !(1..=5).contains(&severity) {
            return Err(header_error(&file.origin, 0, format!("severity {severity} is outside 1–5")));
        }
        let excused_by_care = match file.header.get("excused_by_care").map(String::as_str).unwrap_or("true") {
            "true" | "yes" => true,
            "false" | "no" => false,
            other => return Err(header_error(&file.origin, 0, format!("excused_by_care must be true or false, not '{other}'"))),
        };
        Ok(Detector {
            id,
            version,
            severity: severity as u8,
            excused_by_care,
            title_nb: file.require("title.nb")?.to_owned(),
            title_en: file.require("title.en")?.to_owned(),
            explain_nb: file.require("explain.nb")?.to_owned(),
            explain_en: file.require("explain.en")?.to_owned(),
            file,
        })
    }
}

/// The `detectors/` and `queries/` of the source tree, built into the binary.
mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_sql.rs"));
}

/// SQL files from a directory (`*.sql`, in name order), or the built-in set when `dir` is
/// `None`. `kind` is `detectors` or `queries`.
pub fn load_sql(dir: Option<&Path>, kind: &str) -> Result<Vec<SqlFile>, AnalyseError> {
    match dir {
        Some(dir) => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| AnalyseError::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("sql"))
                .collect();
            paths.sort();
            paths
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p).map_err(|e| AnalyseError::io(p, e))?;
                    SqlFile::parse(&p.display().to_string(), &text)
                })
                .collect()
        }
        None => {
            let set = if kind == "detectors" { builtin::DETECTORS } else { builtin::QUERIES };
            set.iter().map(|(name, text)| SqlFile::parse(&format!("built-in:{kind}/{name}"), text)).collect()
        }
    }
}

/// The detectors of a directory (or the built-in ones); ids must be unique.
pub fn load_detectors(dir: Option<&Path>) -> Result<Vec<Detector>, AnalyseError> {
    let detectors: Vec<Detector> = load_sql(dir, "detectors")?.into_iter().map(Detector::from_file).collect::<Result<_, _>>()?;
    let mut seen = std::collections::HashSet::new();
    for d in &detectors {
        if !seen.insert(d.id.clone()) {
            return Err(header_error(&d.file.origin, 0, format!("detector id '{}' is used by another file too", d.id)));
        }
    }
    if detectors.is_empty() {
        return Err(AnalyseError::Definition { origin: dir.map(|d| d.display().to_string()).unwrap_or_default(), line: 0, reason: "no detectors (*.sql) found".into() });
    }
    Ok(detectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "-- id: demo_rule\n-- version: 2\n-- severity: 4\n-- excused_by_care: false\n-- title.nb: Demo\n-- title.en: Demo\n-- explain.nb: {accessor} åpnet {n}\n-- explain.en: {accessor} opened {n}\n-- A note that is not a header line, kept as documentation.\n-- param: limit = 5 | how many\nSELECT seq, 1.0 AS strength FROM access WHERE n > ${limit} AND t >= '${from}';\n";

    #[test]
    fn a_header_and_body_are_read_and_parameters_substituted() {
        let d = Detector::from_file(SqlFile::parse("x.sql", EXAMPLE).unwrap()).unwrap();
        assert_eq!((d.id.as_str(), d.version, d.severity, d.excused_by_care), ("demo_rule", 2, 4, false));
        assert_eq!(d.file.params, vec![Param { name: "limit".into(), default: "5".into(), doc: "how many".into() }]);
        let common = BTreeMap::from([("from".to_owned(), "2026-11-16".to_owned())]);
        assert_eq!(d.file.render(&BTreeMap::new(), &common).unwrap(), "SELECT seq, 1.0 AS strength FROM access WHERE n > 5 AND t >= '2026-11-16'");
        let overridden = BTreeMap::from([("limit".to_owned(), "9".to_owned())]);
        assert!(d.file.render(&overridden, &common).unwrap().contains("n > 9"));
    }

    #[test]
    fn an_unknown_placeholder_or_missing_header_line_is_a_clear_error() {
        let f = SqlFile::parse("y.sql", "-- id: y\nSELECT ${nope}").unwrap();
        let e = f.render(&BTreeMap::new(), &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("y.sql") && e.contains("${nope}"), "{e}");
        let e = Detector::from_file(f).unwrap_err().to_string();
        assert!(e.contains("no 'version:' line"), "{e}");
        let e = Detector::from_file(SqlFile::parse("z.sql", &EXAMPLE.replace("severity: 4", "severity: 9")).unwrap()).unwrap_err().to_string();
        assert!(e.contains("outside 1–5"), "{e}");
    }

    #[test]
    fn the_built_in_detectors_all_load() {
        let detectors = load_detectors(None).unwrap();
        assert!(detectors.len() >= 14, "{}", detectors.len());
        assert!(load_sql(None, "queries").unwrap().iter().any(|q| q.header.get("view").map(String::as_str) == Some("access")));
    }
}
