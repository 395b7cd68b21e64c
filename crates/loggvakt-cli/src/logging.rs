//! What the daemon's logs look like: the `tracing` events of loggvakt's crates as one JSON
//! object per line on standard error, `{"ts":…,"level":…,"event":…, <fields>}`
//! (`docs/ingest-api.md`, Operations). A subscriber of its own, not a logging framework:
//! the libraries only emit events, and this is the one place that writes them.

use std::fmt::Debug;
use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the writer for the rest of the process (once; later calls change nothing).
pub fn install() {
    let _ = tracing::subscriber::set_global_default(JsonLines { most_verbose: Level::INFO });
}

struct JsonLines {
    most_verbose: Level,
}

/// The event's fields: `event` (its name), `fields` (a JSON object, merged into the line),
/// anything else as text.
#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), serde_json::Value::String(value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let text = format!("{value:?}");
        match (field.name(), serde_json::from_str::<serde_json::Value>(&text)) {
            ("fields", Ok(serde_json::Value::Object(fields))) => self.0.extend(fields),
            (name, _) => {
                self.0.insert(name.to_owned(), serde_json::Value::String(text));
            }
        }
    }
}

impl Subscriber for JsonLines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("loggvakt") && *metadata.level() <= self.most_verbose
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("ts".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        line.insert("level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        line.insert("event".into(), fields.0.remove("event").unwrap_or_else(|| event.metadata().name().into()));
        line.extend(fields.0);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", serde_json::Value::Object(line));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The `log` records of the crates that use `log` rather than `tracing` (Ballista's
/// scheduler and executor), as the same JSON lines: `event` is `log`, with `target` and
/// `message`.
struct LogRecords;

impl log::Log for LogRecords {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = serde_json::json!({
            "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": record.level().as_str().to_ascii_lowercase(),
            "event": "log",
            "target": record.target(),
            "message": record.args().to_string(),
        });
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    fn flush(&self) {}
}

/// Writes `log` records up to `level` (once; later calls change nothing).
pub fn install_log_records(level: log::LevelFilter) {
    static RECORDS: LogRecords = LogRecords;
    if log::set_logger(&RECORDS).is_ok() {
        log::set_max_level(level);
    }
}
