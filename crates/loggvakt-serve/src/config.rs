//! The daemon's configuration: a TOML file, then `LOGGVAKT_<SECTION>__<KEY>` environment
//! variables over it (e.g. `LOGGVAKT_HTTP__LISTEN=0.0.0.0:8080`), so a container can
//! change a setting without a new file. Secrets are named, not written: a source's bearer
//! token comes from `token_env` or `token_file`.
//!
//! The documented example is `deploy/loggvakt.toml`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ServeError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub syslog: SyslogConfig,
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub journal: JournalConfig,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub publish: PublishConfig,
}

/// Publishing sealed epochs to shared storage while the daemon runs (docs/format.md §7a).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// `s3://bucket/prefix` (endpoint, region and credentials from the `AWS_*`
    /// environment) or a directory; none: not published.
    pub to: Option<String>,
    /// How often to publish what was sealed since.
    pub interval_secs: u64,
    /// The S3 server (over `AWS_ENDPOINT_URL`), for one other than Amazon's.
    pub endpoint: Option<String>,
    /// Over `AWS_REGION`.
    pub region: Option<String>,
    /// Plain HTTP to the server (over `AWS_ALLOW_HTTP`); only for one on loopback.
    pub allow_http: Option<bool>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig { to: None, interval_secs: 60, endpoint: None, region: None, allow_http: None }
    }
}

impl PublishConfig {
    pub fn s3_settings(&self) -> loggvakt_storage::S3Settings {
        loggvakt_storage::S3Settings { endpoint: self.endpoint.clone(), region: self.region.clone(), allow_http: self.allow_http }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the FHIR API, metrics and health checks listen; `None` turns HTTP off.
    #[serde(default = "default_http_listen")]
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS with the `[tls]` certificate (and client certificates, if `client_ca` is set).
    #[serde(default)]
    pub tls: bool,
}

fn default_http_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: default_http_listen(), tls: false }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// RFC 5425 syslog over TLS (IHE ATNA ITI-20); needs `[tls]`.
    pub tls_listen: Option<SocketAddr>,
    /// Plain TCP (RFC 6587), for senders on a trusted network; sources are known by address.
    pub tcp_listen: Option<SocketAddr>,
    /// UDP (RFC 5426); a datagram is a message, sources are known by address.
    pub udp_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that sign client certificates. When set, syslog over TLS requires
    /// a client certificate, and HTTPS accepts one (a bearer token still works without).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest HTTP request body; larger gets 413.
    pub max_body_bytes: usize,
    /// Largest syslog message; a larger frame closes the connection.
    pub max_syslog_message_bytes: usize,
    /// Events accepted but not yet durable. When full, HTTP gets 503 with Retry-After and
    /// syslog connections are not read until there is room.
    pub queue_events: usize,
    pub retry_after_secs: u64,
    /// A client must send its request head within this time.
    pub header_timeout_secs: u64,
    /// ... and its body within this time.
    pub body_timeout_secs: u64,
    /// A syslog connection that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// A TLS handshake must finish within this time.
    pub handshake_timeout_secs: u64,
    /// A gap in a source's sequence numbers is recorded if still open after this long (events
    /// from several connections may arrive out of order).
    pub gap_grace_secs: u64,
    /// Search results per page unless `_count` asks for fewer; at most 1000.
    pub search_page_size: usize,
    /// Bytes of refused input (with reasons) kept in the quarantine per source per hour;
    /// past it, refused HTTP input gets 429 and is not kept.
    pub quarantine_bytes_per_hour: u64,
    /// Context resources (Practitioner, PractitionerRole, ...) each source may have the
    /// daemon hold for it; past it, a Bundle adding more gets 429. About 1.3 KB each.
    pub context_resources_per_source: usize,
    /// Searches (ITI-81) read at once; more wait their turn. Each holds at most 10 000
    /// events (the deepest page), so this bounds search memory.
    pub concurrent_searches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 << 20,
            max_syslog_message_bytes: 64 << 10,
            queue_events: 100_000,
            retry_after_secs: 1,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 300,
            handshake_timeout_secs: 10,
            gap_grace_secs: 30,
            search_page_size: 100,
            quarantine_bytes_per_hour: 256 << 20,
            context_resources_per_source: 200_000,
            concurrent_searches: 2,
        }
    }
}

impl Limits {
    pub fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Seal (write Parquet and sign a checkpoint) when this many records wait...
    pub max_epoch_records: usize,
    /// ... or when the oldest has waited this long.
    pub max_epoch_age_secs: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { max_epoch_records: 500_000, max_epoch_age_secs: 30 }
    }
}

/// Who may search the audit log through ITI-81.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchScope {
    /// Not at all (the default: a record system sends, it does not read).
    #[default]
    None,
    /// Its own organisation's events.
    Tenant,
    /// Every organisation's (a national patient portal, the regulator).
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The source's name in metrics, `loggvakt sources` and gap events.
    pub name: String,
    /// The organisation that runs it: the tenant of its gap events and searches, and of
    /// ATNA messages that name no organisation.
    pub tenant_orgnr: String,
    /// Bearer token (prefer `token_env` or `token_file`).
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of its TLS client certificate (hex, colons allowed), as
    /// `openssl x509 -noout -fingerprint -sha256` prints it.
    pub cert_sha256: Option<String>,
    /// Addresses it sends plain TCP or UDP syslog from.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// The `source.observer` / `AuditSourceID` values it may send for; empty means any
    /// (except `loggvakt`, the store's own, which no source may send for).
    #[serde(default)]
    pub systems: Vec<String>,
    /// The organisations it may write events and context for. Empty (the default) means
    /// only its own `tenant_orgnr`; a platform that runs the record system for several
    /// organisations lists them all (its own included, if it sends for itself).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The organisation of FHIR events that name none (no organisation agent, no employer
    /// in the user's role), as ATNA messages fall back to `tenant_orgnr`. Default: the one
    /// organisation in `tenants` when there is one; none for a platform with several.
    pub default_tenant: Option<String>,
    /// Record the source as silent when nothing has come for this long.
    pub heartbeat_secs: Option<u64>,
    #[serde(default)]
    pub search: SearchScope,
}

impl Config {
    /// Reads the file (if any), applies the environment, and checks what a start needs.
    pub fn load(path: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Config, ServeError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| ServeError::Config(format!("{}: {e}", p.display())))?,
            None => String::new(),
        };
        let where_ = path.map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
        let mut table: toml::Table = text.parse().map_err(|e| ServeError::Config(format!("{where_}: {e}")))?;
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("LOGGVAKT_") else { continue };
            let Some((section, field)) = rest.split_once("__") else { continue };
            let (section, field) = (section.to_ascii_lowercase(), field.to_ascii_lowercase());
            // A value that parses as TOML (a number, a boolean, an array) is taken as such.
            let parsed = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(value));
            let entry = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(field, parsed);
                }
                _ => return Err(ServeError::Config(format!("{key}: [{section}] is not a table"))),
            }
        }
        let config: Config = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ServeError::Config(format!("{where_}: {e}")))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ServeError> {
        let bad = |m: String| Err(ServeError::Config(m));
        if (self.http.tls || self.syslog.tls_listen.is_some()) && self.tls.is_none() {
            return bad("HTTPS or syslog over TLS is configured, but there is no [tls] section with cert and key".into());
        }
        if self.limits.queue_events == 0 || self.limits.max_body_bytes == 0 {
            return bad("[limits] queue_events and max_body_bytes must be above 0".into());
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            if !names.insert(s.name.as_str()) {
                return bad(format!("source '{}' is configured twice", s.name));
            }
            if loggvakt_model::ids::validate_orgnr(&s.tenant_orgnr).is_err() {
                return bad(format!("source '{}': tenant_orgnr '{}' is not a valid organisation number", s.name, s.tenant_orgnr));
            }
            if let Some(t) = s.tenants.iter().chain(&s.default_tenant).find(|t| loggvakt_model::ids::validate_orgnr(t).is_err()) {
                return bad(format!("source '{}': tenants has '{t}', which is not a valid organisation number", s.name));
            }
            if let Some(system) = s.systems.iter().find(|x| loggvakt_ingest::policy::is_own_system(x)) {
                return bad(format!("source '{}': systems has '{system}', the store's own recording system, which no source may send for", s.name));
            }
            if s.token.is_none() && s.token_env.is_none() && s.token_file.is_none() && s.cert_sha256.is_none() && s.addresses.is_empty() {
                return bad(format!("source '{}' has no way to be recognised: give token, token_env, token_file, cert_sha256 or addresses", s.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("loggvakt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:1\"\n[[source]]\nname = \"a\"\ntenant_orgnr = \"983971636\"\ntoken = \"t\"\n").unwrap();
        let env = vec![("LOGGVAKT_HTTP__LISTEN".to_owned(), "127.0.0.1:2".to_owned()), ("LOGGVAKT_LIMITS__QUEUE_EVENTS".to_owned(), "7".to_owned())];
        let c = Config::load(Some(&path), env.into_iter()).unwrap();
        assert_eq!(c.http.listen, Some("127.0.0.1:2".parse().unwrap()));
        assert_eq!(c.limits.queue_events, 7);
        assert_eq!(c.sources[0].search, SearchScope::None);
        std::fs::write(&path, "[[source]]\nname = \"a\"\ntenant_orgnr = \"123\"\ntoken = \"t\"\n").unwrap();
        let e = Config::load(Some(&path), std::iter::empty()).unwrap_err();
        assert!(e.to_string().contains("tenant_orgnr"), "{e}");
        std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n").unwrap();
        let e = Config::load(Some(&path), std::iter::empty()).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
