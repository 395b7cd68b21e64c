//! Running `loggvakt serve` as a real process on loopback, and what its tests share:
//! AuditEvents to send, certificates, and reading back what the store holds.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use loggvakt_model::AccessEvent;
use serde_json::Value;

use crate::support::{loggvakt, run, text, Workspace};

pub const TOKEN_EPJ: &str = "epj-token-0123456789abcdef";
pub const TOKEN_PORTAL: &str = "portal-token-0123456789abcdef";
pub const TOKEN_AUDITOR: &str = "auditor-token-0123456789abcdef";

/// Sources every daemon test configures: an EPJ that sends (for its own system, and for the
/// hospital trust 998877601 its events name, and its own organisation), a patient portal
/// that may search everything, and a local auditor limited to its tenant.
pub fn sources_toml(extra_epj: &str) -> String {
    format!(
        r#"
[[source]]
name = "epj"
tenant_orgnr = "983971636"
token = "{TOKEN_EPJ}"
systems = ["EPJ-Midtfjord"]
tenants = ["998877601", "983971636"]
{extra_epj}

[[source]]
name = "portal"
tenant_orgnr = "994598759"
token = "{TOKEN_PORTAL}"
search = "all"

[[source]]
name = "auditor"
tenant_orgnr = "974589095"
token = "{TOKEN_AUDITOR}"
search = "tenant"
"#
    )
}

pub struct Daemon {
    child: Option<Child>,
    pub http: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_udp: Option<SocketAddr>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `store` with `config` (TOML) and waits until it listens.
    pub fn start(ws: &Workspace, store: &Path, config: &str) -> Daemon {
        Self::try_start(ws, store, config).unwrap_or_else(|e| panic!("daemon did not start: {e}"))
    }

    pub fn try_start(ws: &Workspace, store: &Path, config: &str) -> Result<Daemon, String> {
        Self::try_start_with_env(ws, store, config, &[])
    }

    /// [`Daemon::start`] with environment variables set for it (an S3 endpoint and keys).
    pub fn start_with_env(ws: &Workspace, store: &Path, config: &str, env: &[(String, String)]) -> Daemon {
        Self::try_start_with_env(ws, store, config, env).unwrap_or_else(|e| panic!("daemon did not start: {e}"))
    }

    fn try_start_with_env(ws: &Workspace, store: &Path, config: &str, env: &[(String, String)]) -> Result<Daemon, String> {
        let n = std::fs::read_dir(ws.dir.path()).map(|d| d.count()).unwrap_or(0);
        let config_path = ws.path(&format!("serve-{n}.toml"));
        std::fs::write(&config_path, config).expect("config written");
        let log = ws.path(&format!("serve-{n}.log"));
        let mut child = loggvakt()
            .arg("serve")
            .arg("--store")
            .arg(store)
            .arg("--key")
            .arg(&ws.key)
            .arg("--config")
            .arg(&config_path)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("loggvakt serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let Some(json) = line.strip_prefix("listening ") else {
            let status = child.wait().expect("wait");
            return Err(format!("{status}: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        };
        let addresses: Value = serde_json::from_str(json).expect("listening line is JSON");
        let address = |k: &str| addresses[k].as_str().map(|a| a.parse().expect("socket address"));
        Ok(Daemon { child: Some(child), http: address("http"), syslog_tls: address("syslog_tls"), syslog_tcp: address("syslog_tcp"), syslog_udp: address("syslog_udp"), log })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.expect("HTTP is configured"))
    }

    fn signal(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the daemon did not stop within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: drain, commit, seal, checkpoint; asserts a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let status = self.signal(libc::SIGTERM);
        assert!(status.success(), "SIGTERM ends cleanly: {status}\n{}", self.log_text());
        status
    }

    /// The daemon's resident memory now, in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let pid = self.child.as_ref().map_or(0, Child::id);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every event in the store, sealed or not, with its sequence number. The store must not be
/// open by a writer (a daemon's unsealed records are only in its write-ahead journal).
pub fn stored_events(ws: &Workspace, store: &Path) -> Vec<(u64, AccessEvent)> {
    // Opening the journal seals what a crash left in the write-ahead journal.
    let key = loggvakt_journal::SigningKey::parse(&std::fs::read_to_string(&ws.key).expect("key")).expect("key parses");
    let (journal, _) = loggvakt_journal::Journal::open(store, key, Default::default()).expect("store opens");
    journal.close().expect("store closes");
    loggvakt_journal::read_sealed_events(store).expect("sealed events")
}

pub fn verify_clean(ws: &Workspace, store: &Path) {
    let out = ws.verify(store, None);
    assert!(out.status.success(), "verify: {}", text(&out));
}

const R4: &str = include_str!("../../samples/fhir/r4-read-break-the-glass.json");

/// Valid synthetic fødselsnumre (month + 80, as the national test registry issues them).
pub fn patient(i: u32) -> String {
    let mut n = i;
    loop {
        let first9 = format!("{:02}{:02}{:02}{:03}", 1 + n % 28, 81 + (n / 28) % 12, 50 + (n / 336) % 50, 100 + n % 800);
        if let Some(id) = loggvakt_model::ids::complete_person_id(&first9) {
            return id;
        }
        n += 1000;
    }
}

/// The R4 sample AuditEvent with its own id, patient and (optionally) source sequence number.
pub fn audit_event(id: &str, patient: &str, seq: Option<i64>) -> Value {
    let mut ae: Value = serde_json::from_str(R4).expect("sample parses");
    ae["id"] = Value::String(id.to_owned());
    ae["entity"][0]["what"]["identifier"]["value"] = Value::String(patient.to_owned());
    if let Some(seq) = seq {
        ae["extension"] = serde_json::json!([{ "url": "https://loggvakt.no/fhir/StructureDefinition/loggvakt-source-sequence", "valueInteger": seq }]);
    }
    ae
}

pub fn bundle(kind: &str, resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources.into_iter().map(|r| serde_json::json!({ "resource": r, "request": { "method": "POST", "url": "AuditEvent" } })).collect();
    serde_json::json!({ "resourceType": "Bundle", "type": kind, "entry": entries })
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

pub fn post(client: &reqwest::blocking::Client, url: &str, token: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client
        .post(url)
        .header("content-type", "application/fhir+json")
        .header("authorization", format!("Bearer {token}"))
        .body(serde_json::to_vec(body).expect("json"))
        .send()
        .expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = serde_json::from_slice(&response.bytes().expect("body")).unwrap_or(Value::Null);
    (status, body, headers)
}

pub fn get(client: &reqwest::blocking::Client, url: &str, token: &str) -> (u16, Value) {
    let response = client.get(url).header("authorization", format!("Bearer {token}")).send().expect("request sent");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().expect("body")).unwrap_or(Value::Null))
}

/// Runs `loggvakt` with arguments and returns its output, asserting it exited `code`.
pub fn loggvakt_ok(args: &[&str], store: &Path, code: i32) -> String {
    let out = run(loggvakt().args(args).arg("--store").arg(store));
    assert_eq!(out.status.code(), Some(code), "loggvakt {args:?}: {}", text(&out));
    text(&out)
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert_der: Vec<u8>,
    pub client_key_der: Vec<u8>,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub ca_der: Vec<u8>,
    /// SHA-256 of the client certificate, as openssl prints it.
    pub client_fingerprint: String,
}

impl Pki {
    /// The daemon's `[tls]` section for this PKI.
    pub fn tls_section(&self) -> String {
        format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n", self.server_cert.display(), self.server_key.display(), self.ca.display())
    }
}

pub fn pki(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    std::fs::create_dir_all(dir).expect("pki dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "loggvakt test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let server_key = KeyPair::generate().expect("key");
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca).expect("server certificate");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params.distinguished_name.push(DnType::CommonName, "epj-syslog");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).expect("client certificate");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("pem written");
        path
    };
    let fingerprint = loggvakt_serve::identity::sha256(client.der()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    Pki {
        ca: write("ca.crt", ca.pem()),
        server_cert: write("server.crt", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.crt", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        client_cert_der: client.der().to_vec(),
        client_key_der: client_key.serialize_der(),
        ca_der: ca.der().to_vec(),
        client_fingerprint: fingerprint,
    }
}

/// A TLS client with (or without) the client certificate.
pub fn tls_client(pki: &Pki, with_cert: bool) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if with_cert {
        builder
            .with_client_auth_cert(vec![CertificateDer::from(pki.client_cert_der.clone())], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key_der.clone())))
            .expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    std::sync::Arc::new(config)
}

/// Polls until `check` is true or `secs` pass.
pub fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(secs), "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
