//! Certificates made at test time with rcgen (a CA, leaf certificates for 127.0.0.1 whose subject is a client's
//! principal), broker keystore files, and TLS client connections with them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12, &rustls::version::TLS13];

/// A CA that signs leaf certificates.
pub struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, as PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Leaf {
    /// A keystore file's content: the key, then the chain.
    pub fn keystore(&self) -> String {
        format!("{}{}", self.key, self.cert)
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap())
    }

    pub fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate for 127.0.0.1 and localhost, for servers and clients, with subject `CN=<cn>,O=Strata Tests`.
    pub fn leaf(&self, cn: &str) -> Leaf {
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        // In the order of a subject "/O=Strata Tests/CN=<cn>": Java (so Kafka) prints the last RDN first.
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "Strata Tests");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.0).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }
}

pub fn client_config(ca: &str, identity: Option<&Leaf>, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(l) => {
            let chain = CertificateDer::pem_slice_iter(l.cert.as_bytes()).map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(l.key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

pub async fn tls(addr: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(Duration::from_secs(10), tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp)).await?
}

/// Writes `ca.pem` and `broker.pem` (the broker's keystore) into `dir`; returns their paths.
pub fn write_pki(dir: &Path, ca: &Ca, broker: &Leaf) -> (String, String) {
    let (ca_path, ks_path) = (dir.join("ca.pem"), dir.join("broker.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&ks_path, broker.keystore()).unwrap();
    (ca_path.to_str().unwrap().to_string(), ks_path.to_str().unwrap().to_string())
}
