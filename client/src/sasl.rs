//! The client side of SASL (SaslHandshake v1, then SaslAuthenticate v1 tokens) with PLAIN or SCRAM, and the
//! one way Strata dials a broker: TCP, TLS if the listener is SSL or SASL_SSL, SASL if it is SASL_*.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::connection::{BoxStream, Connection};
use crate::error::{ClientError, Result};
use crate::scram::{Mechanism, ScramClient};

/// A SASL mechanism this client and the broker speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] =
        [SaslMechanism::Plain, SaslMechanism::Scram(Mechanism::Sha256), SaslMechanism::Scram(Mechanism::Sha512)];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown SASL mechanism {s:?} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
    }
}

impl std::fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a client authenticates as.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaslCredentials({} {:?}, password hidden)", self.mechanism, self.username)
    }
}

/// The PLAIN token: `authzid NUL user NUL password`, without an authorization id.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

impl Connection {
    /// Authenticates this connection (before any other request but ApiVersions).
    pub async fn authenticate(&mut self, creds: &SaslCredentials) -> Result<()> {
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(creds.mechanism.name()));
        let resp: SaslHandshakeResponse = self.send(1, &handshake).await?;
        if resp.error_code != 0 {
            let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            let message = StrBytes::from_string(format!("the broker enables {}", enabled.join(", ")));
            self.check(resp.error_code, format!("SASL handshake for {}", creds.mechanism), Some(&message))?;
        }
        let what = || format!("SASL {} authentication as {:?}", creds.mechanism, creds.username);
        match creds.mechanism {
            SaslMechanism::Plain => {
                self.sasl_token(plain_token(&creds.username, &creds.password), &what()).await?;
            }
            SaslMechanism::Scram(m) => {
                let mut scram = ScramClient::new(m, &creds.username, &creds.password);
                let server_first = self.sasl_token(scram.client_first(), &what()).await?;
                let fin = scram.client_final(&server_first).map_err(|e| self.sasl_error(&what(), e))?;
                let server_final = self.sasl_token(fin, &what()).await?;
                scram.verify_server_final(&server_final).map_err(|e| self.sasl_error(&what(), e))?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate exchange: the broker's token, or its refusal with the broker's message.
    async fn sasl_token(&mut self, token: Vec<u8>, what: &str) -> Result<Bytes> {
        let resp: SaslAuthenticateResponse =
            self.send(1, &SaslAuthenticateRequest::default().with_auth_bytes(token.into())).await?;
        self.check(resp.error_code, what, resp.error_message.as_ref())?;
        Ok(resp.auth_bytes)
    }

    fn sasl_error(&self, what: &str, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol { addr: self.addr().to_string(), reason: format!("{what}: {e}") }
    }
}

/// How to reach a listener: TLS (with this client config) for SSL and SASL_SSL, SASL credentials for SASL_*.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").field("tls", &self.tls.is_some()).field("sasl", &self.sasl).finish()
    }
}

/// Connects to `addr` (`host:port`) and, with TLS, completes the handshake, all within `timeout`. A refused
/// connection stays an `io::ErrorKind::ConnectionRefused` (the controller fences crashed brokers by it).
pub async fn dial(addr: &str, tls: Option<&Arc<rustls::ClientConfig>>, timeout: Duration) -> io::Result<BoxStream> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out"));
    let deadline = tokio::time::Instant::now() + timeout;
    let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await.map_err(|_| timed_out())??;
    tcp.set_nodelay(true)?;
    let Some(config) = tls else { return Ok(Box::new(tcp)) };
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let stream = tokio::time::timeout_at(deadline, tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}")))?;
    Ok(Box::new(stream))
}

/// A TLS client config trusting the CA certificates of `ca_pem` (TLS 1.2 and 1.3, the server's name checked).
pub fn tls_trusting(ca_pem: &[u8]) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(|e| format!("CA certificates: {e}"))?).map_err(|e| format!("CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE in the CA file".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Security {
    /// A Kafka client connection to `addr`: dialed, versions negotiated, authenticated, each step within
    /// `timeout`.
    pub async fn connect(&self, addr: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        let stream = dial(addr, self.tls.as_ref(), timeout)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.to_string(), source })?;
        let mut conn = Connection::connect_over(addr, stream, client_id, timeout).await?;
        if let Some(creds) = &self.sasl {
            conn.authenticate(creds).await?;
        }
        Ok(conn)
    }

    /// A stream to `addr`, authenticated, for callers with their own framing (the broker's internal RPCs).
    pub async fn open(&self, addr: &str, client_id: &str, timeout: Duration) -> Result<BoxStream> {
        let stream = dial(addr, self.tls.as_ref(), timeout)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.to_string(), source })?;
        let Some(creds) = &self.sasl else { return Ok(stream) };
        let mut conn = Connection::over(addr, stream, client_id, timeout);
        conn.authenticate(creds).await?;
        Ok(conn.into_stream())
    }
}
