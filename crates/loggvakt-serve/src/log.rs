//! Structured logs: one JSON object per line on standard error, with a time, a level and
//! an event name, so journald, Loki or `jq` can filter them. Never health data: sources,
//! counts, sequence numbers and reasons only.

use std::io::Write;

pub fn log(level: &str, event: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({ "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "level": level, "event": event });
    if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
