//! Who is sending: each configured source is known by a bearer token, a TLS client
//! certificate's SHA-256 fingerprint, or (plain TCP and UDP syslog) its address. Anything
//! else is refused before its input is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use loggvakt_ingest::WritePolicy;
use sha2::{Digest, Sha256};

use crate::config::{SearchScope, SourceConfig, TlsConfig};
use crate::ServeError;

/// A configured source, as the request handlers and the writer see it.
#[derive(Debug)]
pub struct Source {
    pub name: Arc<str>,
    pub tenant_orgnr: String,
    /// What it may write: its systems and organisations (see [`loggvakt_ingest::policy`]).
    pub policy: WritePolicy,
    /// The organisation of FHIR events that name none.
    pub default_tenant: Option<String>,
    pub heartbeat: Option<Duration>,
    pub search: SearchScope,
}

#[derive(Default)]
pub struct Sources {
    pub all: Vec<Arc<Source>>,
    by_token: HashMap<[u8; 32], Arc<Source>>,
    by_cert: HashMap<[u8; 32], Arc<Source>>,
    by_address: HashMap<IpAddr, Arc<Source>>,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_fingerprint(text: &str, source: &str) -> Result<[u8; 32], ServeError> {
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let bad = || ServeError::Config(format!("source '{source}': cert_sha256 '{text}' is not 32 bytes of hex"));
    if hex.len() != 64 || text.chars().any(|c| !(c.is_ascii_hexdigit() || c == ':')) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl Sources {
    pub fn from_config(configs: &[SourceConfig]) -> Result<Sources, ServeError> {
        let mut sources = Sources::default();
        for c in configs {
            let tenants = if c.tenants.is_empty() { vec![c.tenant_orgnr.clone()] } else { c.tenants.clone() };
            let source = Arc::new(Source {
                name: Arc::from(c.name.as_str()),
                tenant_orgnr: c.tenant_orgnr.clone(),
                default_tenant: c.default_tenant.clone().or_else(|| (tenants.len() == 1).then(|| tenants[0].clone())),
                policy: WritePolicy { sender: c.name.clone(), tenants, systems: c.systems.clone() },
                heartbeat: c.heartbeat_secs.map(Duration::from_secs),
                search: c.search,
            });
            let mut token = c.token.clone();
            if let Some(var) = &c.token_env {
                token = Some(std::env::var(var).map_err(|_| ServeError::Config(format!("source '{}': environment variable {var} (token_env) is not set", c.name)))?);
            }
            if let Some(file) = &c.token_file {
                let text = std::fs::read_to_string(file).map_err(|e| ServeError::Config(format!("source '{}': token_file {}: {e}", c.name, file.display())))?;
                token = Some(text.trim().to_owned());
            }
            if let Some(token) = token {
                if token.len() < 16 {
                    return Err(ServeError::Config(format!("source '{}': a bearer token must be at least 16 characters", c.name)));
                }
                if sources.by_token.insert(sha256(token.as_bytes()), source.clone()).is_some() {
                    return Err(ServeError::Config(format!("source '{}' shares its token with another source", c.name)));
                }
            }
            if let Some(fp) = &c.cert_sha256 {
                sources.by_cert.insert(parse_fingerprint(fp, &c.name)?, source.clone());
            }
            for address in &c.addresses {
                if sources.by_address.insert(*address, source.clone()).is_some() {
                    return Err(ServeError::Config(format!("source '{}': address {address} belongs to two sources", c.name)));
                }
            }
            sources.all.push(source);
        }
        Ok(sources)
    }

    pub fn by_token(&self, token: &str) -> Option<&Arc<Source>> {
        self.by_token.get(&sha256(token.as_bytes()))
    }
    pub fn by_certificate(&self, der: &[u8]) -> Option<&Arc<Source>> {
        self.by_cert.get(&sha256(der))
    }
    pub fn by_address(&self, address: IpAddr) -> Option<&Arc<Source>> {
        // An IPv4 peer may show up as ::ffff:a.b.c.d on a dual-stack socket.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.by_address.get(&address)
    }
    pub fn by_name(&self, name: &str) -> Option<&Arc<Source>> {
        self.all.iter().find(|s| &*s.name == name)
    }
}

/// The rustls server configuration for HTTPS and syslog over TLS. With `client_ca`, a
/// client certificate signed by it is asked for; `require` makes it mandatory.
pub fn server_tls(config: &TlsConfig, require_client_cert: bool, alpn_http: bool) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| ServeError::Config(format!("TLS: {}: {e}", path.display())));
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut read(&config.cert)?.as_slice()).collect::<Result<_, _>>().map_err(|e| ServeError::Config(format!("TLS: {}: {e}", config.cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Config(format!("TLS: {} holds no PEM certificate", config.cert.display())));
    }
    let key = rustls_pemfile::private_key(&mut read(&config.key)?.as_slice())
        .map_err(|e| ServeError::Config(format!("TLS: {}: {e}", config.key.display())))?
        .ok_or_else(|| ServeError::Config(format!("TLS: {} holds no PEM private key", config.key.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| ServeError::Config(format!("TLS: {e}")))?;
    let builder = match &config.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut read(ca)?.as_slice()) {
                let cert = cert.map_err(|e| ServeError::Config(format!("TLS: {}: {e}", ca.display())))?;
                roots.add(cert).map_err(|e| ServeError::Config(format!("TLS: {}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if require_client_cert { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| ServeError::Config(format!("TLS: client_ca: {e}")))?)
        }
        None if require_client_cert => return Err(ServeError::Config("syslog over TLS needs [tls] client_ca: ATNA sources are known by their client certificates".into())),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| ServeError::Config(format!("TLS: certificate and key: {e}")))?;
    if alpn_http {
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_openssl_prints_them() {
        let fp = "AB:".repeat(31) + "CD";
        let parsed = parse_fingerprint(&fp, "s").unwrap();
        assert_eq!(parsed[0], 0xab);
        assert_eq!(parsed[31], 0xcd);
        assert!(parse_fingerprint("xyz", "s").is_err());
    }
}
