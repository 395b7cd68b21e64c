//! RFC 5424 syslog messages: the header, the structured data, and the message body.

use chrono::DateTime;
use loggvakt_model::Timestamp;

/// One parsed RFC 5424 message. The body is borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub facility: u8,
    pub severity: u8,
    pub timestamp: Option<Timestamp>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub proc_id: Option<&'a str>,
    pub msg_id: Option<&'a str>,
    /// `(SD-ID, [(name, value)])`, values unescaped.
    pub structured_data: Vec<(&'a str, Vec<(&'a str, String)>)>,
    /// The MSG part, without a UTF-8 byte order mark.
    pub body: &'a [u8],
}

impl SyslogMessage<'_> {
    /// The sender's own message counter: `[meta sequenceId="N"]` (RFC 5424 §7.3.1).
    pub fn sequence_id(&self) -> Option<i64> {
        self.param("meta", "sequenceId").and_then(|v| v.parse().ok())
    }

    pub fn param(&self, sd_id: &str, name: &str) -> Option<&str> {
        self.structured_data.iter().filter(|(id, _)| *id == sd_id).flat_map(|(_, params)| params).find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syslog (RFC 5424) {field}: {message}")]
pub struct SyslogError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> SyslogError {
    SyslogError { field, message: message.into() }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }
    fn expect(&mut self, byte: u8, field: &'static str) -> Result<(), SyslogError> {
        match self.peek() {
            Some(b) if b == byte => {
                self.at += 1;
                Ok(())
            }
            Some(b) => Err(err(field, format!("expected '{}' at byte {}, found '{}'", byte as char, self.at, (b as char).escape_default()))),
            None => Err(err(field, format!("expected '{}' at byte {}, but the message ends", byte as char, self.at))),
        }
    }
    /// A header field: printable US-ASCII up to the next space, `-` meaning absent.
    fn field(&mut self, field: &'static str, max: usize) -> Result<Option<&'a str>, SyslogError> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            if !(33..=126).contains(&b) {
                return Err(err(field, format!("byte {:#04x} at {} is not printable US-ASCII", b, self.at)));
            }
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.input[start..self.at]).map_err(|_| err(field, "not ASCII"))?;
        if text.is_empty() {
            return Err(err(field, format!("is empty at byte {start} (use '-' for no value)")));
        }
        if text.len() > max {
            return Err(err(field, format!("is {} characters, over the {max} RFC 5424 allows", text.len())));
        }
        Ok((text != "-").then_some(text))
    }
}

/// Parses one RFC 5424 message (one frame, without its framing).
pub fn parse_syslog(input: &[u8]) -> Result<SyslogMessage<'_>, SyslogError> {
    let mut c = Cursor { input, at: 0 };
    c.expect(b'<', "PRI")?;
    let start = c.at;
    while c.peek().is_some_and(|b| b.is_ascii_digit()) && c.at - start < 3 {
        c.at += 1;
    }
    let pri: u16 = std::str::from_utf8(&input[start..c.at]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| err("PRI", "expected 1 to 3 digits after '<'"))?;
    if pri > 191 {
        return Err(err("PRI", format!("{pri} is over 191 (facility 23, severity 7)")));
    }
    c.expect(b'>', "PRI")?;
    let version = c.field("VERSION", 3)?;
    if version != Some("1") {
        return Err(err("VERSION", format!("is {:?}; only version 1 (RFC 5424) is understood; BSD syslog (RFC 3164) is not accepted", version.unwrap_or("-"))));
    }
    c.expect(b' ', "TIMESTAMP")?;
    let timestamp = match c.field("TIMESTAMP", 32)? {
        None => None,
        Some(text) => {
            Some(DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.timestamp_micros())).map_err(|e| err("TIMESTAMP", format!("'{text}' is not an RFC 3339 time: {e}")))?)
        }
    };
    c.expect(b' ', "HOSTNAME")?;
    let hostname = c.field("HOSTNAME", 255)?;
    c.expect(b' ', "APP-NAME")?;
    let app_name = c.field("APP-NAME", 48)?;
    c.expect(b' ', "PROCID")?;
    let proc_id = c.field("PROCID", 128)?;
    c.expect(b' ', "MSGID")?;
    let msg_id = c.field("MSGID", 32)?;
    c.expect(b' ', "STRUCTURED-DATA")?;
    let structured_data = parse_structured_data(&mut c)?;
    let body = match c.peek() {
        None => &input[input.len()..],
        Some(b' ') => {
            let rest = &input[c.at + 1..];
            rest.strip_prefix(BOM).unwrap_or(rest)
        }
        Some(b) => return Err(err("MSG", format!("expected a space before the message at byte {}, found '{}'", c.at, (b as char).escape_default()))),
    };
    Ok(SyslogMessage { facility: (pri / 8) as u8, severity: (pri % 8) as u8, timestamp, hostname, app_name, proc_id, msg_id, structured_data, body })
}

type Element<'a> = (&'a str, Vec<(&'a str, String)>);

fn parse_structured_data<'a>(c: &mut Cursor<'a>) -> Result<Vec<Element<'a>>, SyslogError> {
    if c.peek() == Some(b'-') {
        c.at += 1;
        return Ok(vec![]);
    }
    let mut elements = Vec::new();
    while c.peek() == Some(b'[') {
        c.at += 1;
        let id = sd_name(c, "SD-ID")?;
        let mut params = Vec::new();
        loop {
            match c.peek() {
                Some(b']') => {
                    c.at += 1;
                    break;
                }
                Some(b' ') => {
                    c.at += 1;
                    let name = sd_name(c, "SD-PARAM")?;
                    c.expect(b'=', "SD-PARAM")?;
                    c.expect(b'"', "SD-PARAM")?;
                    params.push((name, param_value(c)?));
                }
                _ => return Err(err("STRUCTURED-DATA", format!("element [{id} is not closed with ']' (byte {})", c.at))),
            }
        }
        elements.push((id, params));
    }
    if elements.is_empty() {
        return Err(err("STRUCTURED-DATA", format!("expected '-' or '[' at byte {}", c.at)));
    }
    Ok(elements)
}

fn sd_name<'a>(c: &mut Cursor<'a>, field: &'static str) -> Result<&'a str, SyslogError> {
    let start = c.at;
    while c.peek().is_some_and(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"')) {
        c.at += 1;
    }
    if c.at == start || c.at - start > 32 {
        return Err(err(field, format!("name at byte {start} must be 1 to 32 printable characters")));
    }
    std::str::from_utf8(&c.input[start..c.at]).map_err(|_| err(field, "not ASCII"))
}

/// A quoted value after the opening quote; `\"`, `\\` and `\]` are escapes.
fn param_value(c: &mut Cursor<'_>) -> Result<String, SyslogError> {
    let mut out = Vec::new();
    loop {
        match c.peek() {
            None => return Err(err("SD-PARAM", "value is not closed with '\"' before the message ends")),
            Some(b'"') => {
                c.at += 1;
                break;
            }
            Some(b'\\') if matches!(c.input.get(c.at + 1), Some(b'"' | b'\\' | b']')) => {
                out.push(c.input[c.at + 1]);
                c.at += 2;
            }
            Some(b) => {
                out.push(b);
                c.at += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| err("SD-PARAM", "value is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_examples() {
        // RFC 5424 §6.5, examples 1 and 3.
        let m = parse_syslog(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!((m.facility, m.severity), (4, 2));
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.msg_id, Some("ID47"));
        assert_eq!(m.body, b"'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.timestamp, Some(Timestamp(1_065_910_455_003_000)));
        let m = parse_syslog(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][meta sequenceId="42"] An application event"#).unwrap();
        assert_eq!(m.param("exampleSDID@32473", "eventSource"), Some("Application"));
        assert_eq!(m.sequence_id(), Some(42));
        assert_eq!(m.body, b"An application event");
    }

    #[test]
    fn escapes_and_no_body() {
        let m = parse_syslog(br#"<13>1 - - - - - [x@1 a="q\"b\\c\]d"]"#).unwrap();
        assert_eq!(m.param("x@1", "a"), Some(r#"q"b\c]d"#));
        assert!(m.body.is_empty());
        assert_eq!(m.timestamp, None);
    }

    #[test]
    fn errors_name_the_field() {
        for (input, field) in [
            (&b"hello"[..], "PRI"),
            (b"<13>Oct 11 22:14:15 host app: bsd", "VERSION"),
            (b"<13>1 yesterday host app - - - x", "TIMESTAMP"),
            (b"<13>1 - host app - - [unclosed a=\"1\"", "STRUCTURED-DATA"),
            (b"<200>1 - - - - - -", "PRI"),
        ] {
            let e = parse_syslog(input).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }
}
