//! TLS with rustls (ring), with Kafka's settings: for the listeners whose `listener.security.protocol.map`
//! entry is SSL or SASL_SSL, and for this node's connections to the other nodes' inter-broker and controller listeners.
//!
//! Certificates are PEM only (`ssl.keystore.type=PEM`): a keystore file with the key and its chain, or the
//! inline `ssl.keystore.certificate.chain` + `ssl.keystore.key`; CA certificates from
//! `ssl.truststore.location` or `ssl.truststore.certificates`. Each setting may be given per listener as
//! `listener.name.<name>.<setting>` (name lower-cased), as Kafka allows. TLS 1.2 and 1.3 only.
//!
//! Rotation without restart: a new connection (accepted or dialed) first re-reads the files if they were last
//! read over a second ago, and rebuilds the configs when their bytes changed. Files that do not load (a key
//! not matching its certificate half-way through a rotation, say) leave the previous configs in use, with an
//! error logged once per distinct content, so open connections and new ones carry on.

pub mod principal;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use strata_client::{tls, BoxStream, ClientError, Connection, SaslCredentials, Security};

use crate::config::{invalid, ConfigError};
use crate::episode::{Throttle, LOG_INTERVAL};
pub use principal::{PrincipalMapper, ANONYMOUS};

/// How often a new connection may re-read the certificate files.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A listener's security protocol (`listener.security.protocol.map` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!("unknown security protocol {other:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")),
        }
    }
}

/// Parses `NAME:PROTOCOL,...`.
pub fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, protocol) = item.split_once(':').ok_or_else(|| format!("{item:?}: expected NAME:PROTOCOL"))?;
        if out.insert(name.trim().to_string(), protocol.parse()?).is_some() {
            return Err(format!("listener {} appears twice", name.trim()));
        }
    }
    Ok(out)
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A certificate is asked for; clients without one are accepted as `User:ANONYMOUS`.
    Requested,
    Required,
}

/// Where PEM text comes from: a file (re-read on rotation) or a setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl Pem {
    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|source| TlsError::Read { path: path.clone(), source }),
            Pem::Inline(text) => Ok(text.clone().into_bytes()),
        }
    }
}

/// The `ssl.*` settings of one listener.
#[derive(Debug, Clone)]
pub struct SslSettings {
    /// The certificate chain and the key: one PEM source holding both, or two.
    pub keystore: Option<(Pem, Option<Pem>)>,
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    pub protocols: Vec<&'static SupportedProtocolVersion>,
    pub principal_mapper: PrincipalMapper,
    /// `ssl.endpoint.identification.algorithm=https` (Kafka's default): a dialed peer's certificate must name
    /// the host dialed. Empty: any certificate the truststore vouches for.
    pub verify_hostname: bool,
}

/// The settings a listener may override as `listener.name.<name>.<setting>` (defaults in `config::SETTINGS`).
pub const SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
    "ssl.endpoint.identification.algorithm",
];

impl SslSettings {
    /// The settings of `listener`: `listener.name.<listener>.<key>` over `<key>` over the default.
    pub fn from_lookup(listener: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<SslSettings, ConfigError> {
        let prefixed = |key: &str| format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        // (the key the value came from, for errors; the value)
        let lookup = |key: &str| -> (String, Option<String>) {
            let p = prefixed(key);
            match get(&p) {
                Some(v) => (p, Some(v.trim().to_string())),
                None => (key.to_string(), get(key).map(|v| v.trim().to_string())),
            }
        };
        let value = |key: &str| -> (String, String) {
            let (k, v) = lookup(key);
            let default = crate::config::SETTINGS.iter().find(|s| s.name == key).and_then(|s| s.default).unwrap_or("");
            (k, v.unwrap_or_else(|| default.to_string()))
        };
        for store in ["ssl.keystore.type", "ssl.truststore.type"] {
            let (k, v) = value(store);
            if !v.eq_ignore_ascii_case("PEM") {
                return Err(invalid(&k, &v, "only PEM is supported"));
            }
        }
        if let (k, Some(v)) = lookup("ssl.key.password") {
            return Err(invalid(&k, &v, "encrypted private keys are not supported yet: give an unencrypted PKCS#8 key"));
        }
        let keystore =
            match (lookup("ssl.keystore.location"), lookup("ssl.keystore.certificate.chain"), lookup("ssl.keystore.key")) {
                ((_, Some(path)), (_, None), (_, None)) => Some((Pem::File(path.into()), None)),
                ((_, None), (_, Some(chain)), (_, Some(key))) => Some((Pem::Inline(chain), Some(Pem::Inline(key)))),
                ((_, None), (_, None), (_, None)) => None,
                ((k, _), _, _) => {
                    return Err(invalid(
                        &k,
                        "",
                        "give either ssl.keystore.location or both ssl.keystore.certificate.chain and ssl.keystore.key",
                    ))
                }
            };
        let truststore = match (lookup("ssl.truststore.location"), lookup("ssl.truststore.certificates")) {
            ((_, Some(path)), (_, None)) => Some(Pem::File(path.into())),
            ((_, None), (_, Some(certs))) => Some(Pem::Inline(certs)),
            ((_, None), (_, None)) => None,
            ((k, _), _) => return Err(invalid(&k, "", "give ssl.truststore.location or ssl.truststore.certificates, not both")),
        };
        let (k, v) = value("ssl.client.auth");
        let client_auth = match v.to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(invalid(&k, &v, "expected none, requested or required")),
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(invalid(&k, &v, "client authentication needs the CAs to check against: set ssl.truststore.location"));
        }
        let (k, v) = value("ssl.enabled.protocols");
        let mut protocols = Vec::new();
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            protocols.push(match p {
                "TLSv1.2" => &rustls::version::TLS12,
                "TLSv1.3" => &rustls::version::TLS13,
                _ => return Err(invalid(&k, &v, format!("{p}: only TLSv1.2 and TLSv1.3 are supported"))),
            });
        }
        if protocols.is_empty() {
            return Err(invalid(&k, &v, "no protocol"));
        }
        let (k, v) = value("ssl.principal.mapping.rules");
        let principal_mapper = PrincipalMapper::parse(&v).map_err(|e| invalid(&k, &v, e))?;
        let (k, v) = value("ssl.endpoint.identification.algorithm");
        let verify_hostname = match v.to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => return Err(invalid(&k, &v, "expected https or empty")),
        };
        Ok(SslSettings { keystore, truststore, client_auth, protocols, principal_mapper, verify_hostname })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("listener {listener}: {what}: {source}")]
    Rustls { listener: String, what: &'static str, source: rustls::Error },
    #[error("listener {listener} has no {what} (set {setting})")]
    Missing { listener: String, what: &'static str, setting: &'static str },
    #[error("{0}")]
    Config(#[from] tls::TlsConfigError),
}

/// The bytes the configs are built from: keystore (one or two sources), truststore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sources {
    keystore: Option<(Vec<u8>, Option<Vec<u8>>)>,
    truststore: Option<Vec<u8>>,
}

impl Sources {
    fn read(s: &SslSettings) -> Result<Sources, TlsError> {
        let keystore = match &s.keystore {
            Some((chain, key)) => Some((chain.read()?, key.as_ref().map(Pem::read).transpose()?)),
            None => None,
        };
        Ok(Sources { keystore, truststore: s.truststore.as_ref().map(Pem::read).transpose()? })
    }
}

struct Built {
    /// None for a listener without a keystore (only dialed: a broker-only node's controller listener).
    server: Option<Arc<ServerConfig>>,
    /// None without a truststore: such a listener cannot be dialed.
    client: Option<Arc<ClientConfig>>,
}

fn build(listener: &str, s: &SslSettings, src: &Sources) -> Result<Built, TlsError> {
    let rustls_err = |what| move |source| TlsError::Rustls { listener: listener.to_string(), what, source };
    let provider = tls::provider();
    let identity = match &src.keystore {
        None => None,
        Some((chain, key)) => {
            let certs = tls::certificates(chain, "ssl.keystore certificate chain")?;
            Some((certs, tls::private_key(key.as_deref().unwrap_or(chain), "ssl.keystore key")?))
        }
    };
    let roots = src.truststore.as_ref().map(|pem| tls::roots(pem, "ssl.truststore")).transpose()?;
    let server = match &identity {
        None => None,
        Some((certs, key)) => {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&s.protocols)
                .map_err(rustls_err("ssl.enabled.protocols"))?;
            let builder = match (s.client_auth, &roots) {
                (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
                (auth, Some(roots)) => {
                    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                    let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
                    let verifier =
                        verifier.build().map_err(|e| TlsError::Pem { what: "ssl.truststore", reason: e.to_string() })?;
                    builder.with_client_cert_verifier(verifier)
                }
            };
            Some(Arc::new(builder.with_single_cert(certs.clone(), key.clone_key()).map_err(rustls_err("ssl.keystore"))?))
        }
    };
    // Peers with ssl.client.auth see this node's keystore certificate, as Kafka's inter-broker clients.
    let client =
        roots.map(|roots| tls::client_config(roots, identity, &s.protocols, s.verify_hostname).map(Arc::new)).transpose()?;
    Ok(Built { server, client })
}

struct Loaded {
    sources: Sources,
    built: Built,
    checked: Instant,
    /// The last sources that failed to build, so one bad rotation is reported once, not per connection.
    rejected: Option<Sources>,
}

/// One listener's TLS state: its settings and the configs built from the current files.
pub struct TlsContext {
    listener: String,
    settings: SslSettings,
    loaded: Mutex<Loaded>,
    read_errors: Mutex<Throttle>,
}

impl TlsContext {
    /// Loads the files; any problem is an error (at startup nothing older can stand in).
    pub fn load(listener: &str, settings: SslSettings) -> Result<Arc<TlsContext>, TlsError> {
        let sources = Sources::read(&settings)?;
        let built = build(listener, &settings, &sources)?;
        Ok(Arc::new(TlsContext {
            listener: listener.to_string(),
            settings,
            loaded: Mutex::new(Loaded { sources, built, checked: Instant::now(), rejected: None }),
            read_errors: Mutex::new(Throttle::new(LOG_INTERVAL)),
        }))
    }

    /// The configs, rebuilt first if the files changed since they were last read (at most once per
    /// `RELOAD_CHECK`).
    fn current<T>(&self, pick: impl FnOnce(&Built) -> T) -> T {
        let mut loaded = self.loaded.lock().expect("tls lock");
        if loaded.checked.elapsed() >= RELOAD_CHECK {
            loaded.checked = Instant::now();
            match Sources::read(&self.settings) {
                Ok(s) if s == loaded.sources || loaded.rejected.as_ref() == Some(&s) => {}
                Ok(s) => match build(&self.listener, &self.settings, &s) {
                    Ok(built) => {
                        tracing::info!(listener = %self.listener, "TLS certificates reloaded");
                        *loaded = Loaded { sources: s, built, checked: Instant::now(), rejected: None };
                    }
                    Err(e) => {
                        tracing::error!(listener = %self.listener, error = %e, "new TLS certificates do not load; keeping the previous ones");
                        loaded.rejected = Some(s);
                    }
                },
                Err(e) => {
                    if let Some(suppressed) = self.read_errors.lock().expect("throttle lock").allow(std::time::Instant::now()) {
                        tracing::error!(listener = %self.listener, error = %e, unlogged = suppressed, "cannot read the TLS files; keeping the previous certificates");
                    }
                }
            }
        }
        pick(&loaded.built)
    }

    /// The config to accept a connection with; None if this listener has no keystore.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.current(|b| b.server.clone())
    }

    /// The config to dial this listener of another node with.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        self.current(|b| b.client.clone()).ok_or_else(|| TlsError::Missing {
            listener: self.listener.clone(),
            what: "truststore to check the other node's certificate against",
            setting: "ssl.truststore.location",
        })
    }

    /// Kafka's principal for a client certificate (`User:<mapped subject>`); Err when none of
    /// ssl.principal.mapping.rules applies to its subject.
    pub fn principal(&self, client_cert: Option<&CertificateDer<'_>>) -> Result<String, String> {
        let Some(cert) = client_cert else { return Ok(ANONYMOUS.to_string()) };
        let dn = principal::subject_dn(cert).ok_or("cannot read the subject of the client certificate")?;
        match self.settings.principal_mapper.map(&dn) {
            Some(name) => Ok(format!("User:{name}")),
            None => Err(format!("no ssl.principal.mapping.rules rule applies to {dn:?}")),
        }
    }
}

/// How this node connects to one kind of listener of the other nodes: plain TCP, or TLS with that
/// listener's settings (its truststore checks the peer, its keystore is this node's client certificate), then
/// SASL with this node's credentials if the listener is SASL. The dialing itself is strata-client's.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<TlsContext>>,
    sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dialer(tls: {}, sasl: {:?})", self.tls.is_some(), self.sasl.as_ref().map(|s| s.mechanism))
    }
}

impl Dialer {
    pub fn new(tls: Option<Arc<TlsContext>>, sasl: Option<SaslCredentials>) -> Dialer {
        Dialer { tls, sasl }
    }

    fn security(&self) -> Result<Security, TlsError> {
        let tls = self.tls.as_ref().map(|t| t.client_config()).transpose()?;
        Ok(Security { tls, sasl: self.sasl.clone() })
    }

    /// A stream to `addr` (`host:port`), TLS and SASL done, each step within `timeout`. A refused connection
    /// stays an `io::ErrorKind::ConnectionRefused` (the controller fences crashed brokers by it).
    pub async fn dial(&self, addr: &str, timeout: Duration) -> io::Result<BoxStream> {
        let security = self.security().map_err(io::Error::other)?;
        security.open(addr, "strata-internal", timeout).await.map_err(|e| match e {
            ClientError::Connect { source, .. } | ClientError::Io { source, .. } => source,
            ClientError::Timeout { .. } => io::Error::new(io::ErrorKind::TimedOut, e.to_string()),
            other => io::Error::new(io::ErrorKind::PermissionDenied, other.to_string()),
        })
    }

    /// A Kafka client connection to `addr`, versions negotiated and authenticated, within `timeout` for each
    /// step.
    pub async fn connect(&self, addr: &str, client_id: &str, timeout: Duration) -> strata_client::Result<Connection> {
        let security =
            self.security().map_err(|e| ClientError::Connect { addr: addr.to_string(), source: io::Error::other(e) })?;
        security.connect(addr, client_id, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SslSettings, ConfigError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SslSettings::from_lookup("CLIENT", &|k| map.get(k).cloned())
    }

    #[test]
    fn settings_per_listener_and_their_checks() {
        let s = settings(&[
            ("ssl.keystore.location", "/generic.pem"),
            ("listener.name.client.ssl.keystore.location", "/client.pem"),
            ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
            ("ssl.client.auth", "required"),
            ("ssl.enabled.protocols", "TLSv1.3"),
            ("ssl.endpoint.identification.algorithm", ""),
        ])
        .unwrap();
        assert_eq!(s.keystore, Some((Pem::File("/client.pem".into()), None)), "the listener's own setting wins");
        assert!(matches!(s.truststore, Some(Pem::Inline(_))));
        assert_eq!((s.client_auth, s.protocols.len(), s.verify_hostname), (ClientAuth::Required, 1, false));
        let d = settings(&[]).unwrap();
        assert_eq!((d.client_auth, d.protocols.len(), d.verify_hostname), (ClientAuth::None, 2, true));
        for (pairs, want) in [
            (vec![("ssl.keystore.type", "JKS")], "ssl.keystore.type"),
            (vec![("ssl.key.password", "x")], "encrypted"),
            (vec![("ssl.keystore.location", "/a"), ("ssl.keystore.key", "k")], "either"),
            (vec![("ssl.keystore.certificate.chain", "c")], "either"),
            (vec![("ssl.client.auth", "required")], "truststore"),
            (vec![("ssl.client.auth", "maybe")], "ssl.client.auth"),
            (vec![("ssl.enabled.protocols", "TLSv1.1,TLSv1.2")], "TLSv1.1"),
            (vec![("ssl.principal.mapping.rules", "RULE:x")], "ssl.principal.mapping.rules"),
            (vec![("listener.name.client.ssl.endpoint.identification.algorithm", "ldap")], "listener.name.client."),
        ] {
            let err = settings(&pairs).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn protocol_map() {
        let m = parse_protocol_map("CLIENT:SSL, REPLICATION:plaintext,X:SASL_SSL").unwrap();
        assert_eq!(m["CLIENT"], SecurityProtocol::Ssl);
        assert_eq!(m["REPLICATION"], SecurityProtocol::Plaintext);
        assert_eq!(m["X"], SecurityProtocol::SaslSsl);
        for bad in ["A", "A:TLS", "A:SSL,A:SSL"] {
            assert!(parse_protocol_map(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_files_are_errors_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ks.pem");
        std::fs::write(&path, "not pem").unwrap();
        let s = settings(&[("ssl.keystore.location", path.to_str().unwrap())]).unwrap();
        assert!(matches!(TlsContext::load("SSL", s), Err(TlsError::Config(tls::TlsConfigError::Pem { .. }))));
        let s = settings(&[("ssl.keystore.location", "/nonexistent/ks.pem")]).unwrap();
        assert!(matches!(TlsContext::load("SSL", s), Err(TlsError::Read { .. })));
    }
}
