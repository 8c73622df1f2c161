//! TLS client configs (rustls, ring) from PEM: the CA certificates to trust, optionally a client
//! certificate and key (for listeners with `ssl.client.auth`), and whether the server's certificate must
//! name the host dialed (Kafka's `ssl.endpoint.identification.algorithm`: `https` or empty). Shared by the
//! broker (inter-broker connections), the operator and the CLI.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("{what}: {source}")]
    Rustls {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider of every Strata TLS config.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in a PEM text (at least one).
pub fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem { what, reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsConfigError::Pem { what, reason: "no CERTIFICATE in it".into() });
    }
    Ok(certs)
}

/// The first private key in a PEM text.
pub fn private_key(pem: &[u8], what: &'static str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsConfigError::Pem { what, reason: e.to_string() })
}

/// A trust store of the CA certificates in a PEM text.
pub fn roots(pem: &[u8], what: &'static str) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots.add(cert).map_err(|source| TlsConfigError::Rustls { what, source })?;
    }
    Ok(Arc::new(roots))
}

/// A client config trusting `roots`, presenting `identity` if given, with the given protocol versions.
pub fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    protocols: &[&'static SupportedProtocolVersion],
    verify_hostname: bool,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsConfigError::Pem { what: "truststore", reason: e.to_string() })?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify_hostname { verifier } else { Arc::new(AnyHostname(verifier)) };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(protocols)
        .map_err(|source| TlsConfigError::Rustls { what: "protocol versions", source })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|source| TlsConfigError::Rustls { what: "client certificate", source }),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// A TLS 1.2/1.3 client config from PEM texts: the CA certificate(s), and a client certificate chain and
/// its key for mutual TLS.
pub fn client_config_from_pem(
    ca: &str,
    identity: Option<(&str, &str)>,
    verify_hostname: bool,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let identity = match identity {
        Some((chain, key)) => {
            Some((certificates(chain.as_bytes(), "client certificate")?, private_key(key.as_bytes(), "client key")?))
        }
        None => None,
    };
    let protocols = [&rustls::version::TLS13, &rustls::version::TLS12];
    Ok(Arc::new(client_config(roots(ca.as_bytes(), "CA certificate")?, identity, &protocols, verify_hostname)?))
}

/// Checks the chain to a trusted CA but not the name it is for (`ssl.endpoint.identification.algorithm=`):
/// for peers reached by addresses their certificates cannot name, like pod IPs.
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_an_error() {
        assert!(matches!(client_config_from_pem("nothing", None, true), Err(TlsConfigError::Pem { what: "CA certificate", .. })));
        let err = client_config_from_pem("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n", None, true).unwrap_err();
        assert!(err.to_string().starts_with("CA certificate"), "{err}");
    }
}
