//! Structured logs as `tracing` events (target `loggvakt_serve`): an event name and its
//! fields as one JSON object. This crate never prints; the program that runs the daemon
//! installs what writes them (the CLI: one JSON object per line on standard error, with a
//! time, a level and the event name, so journald, Loki or `jq` can filter them). Never
//! health data: sources, counts, sequence numbers and reasons only.

pub fn log(level: &str, event: &str, fields: serde_json::Value) {
    let fields = fields.to_string();
    match level {
        "error" => tracing::error!(event, fields = %fields),
        "warn" => tracing::warn!(event, fields = %fields),
        _ => tracing::info!(event, fields = %fields),
    }
}
