//! The cluster's certificate authority and the certificates it signs (rcgen, ECDSA P-256), and the pure
//! decisions of when to make, renew or re-issue them.
//!
//! A renewed CA certificate keeps the CA's key pair and subject, so certificates it signed before, and
//! clients that trust the previous CA certificate, keep working through the renewal: nothing has to be
//! re-distributed at once. A leaf is re-issued when it nears expiry, when its names no longer match, or when
//! it was signed by another key (its authority key id differs from the CA's subject key id).

use std::collections::BTreeSet;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// Organization of every subject the operator issues.
pub const ORGANIZATION: &str = "strata.io";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading a certificate: {0}")]
    Parse(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyAndCert {
    pub cert: String,
    pub key: String,
}

/// What a leaf certificate must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject common name; the brokers map the subject `CN=<this>,O=strata.io` to the principal `User:<this>`.
    pub common_name: String,
    /// DNS subject alternative names (servers); empty for client-only certificates.
    pub dns_names: Vec<String>,
    pub server: bool,
    pub client: bool,
}

/// What the operator reads back from a stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub not_after: OffsetDateTime,
    pub common_name: Option<String>,
    pub dns_names: BTreeSet<String>,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
}

/// Reads the facts the decisions need from a PEM certificate.
pub fn facts(cert_pem: &str) -> Result<CertFacts, CertError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| CertError::Parse(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| CertError::Parse(e.to_string()))?;
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| CertError::Parse(e.to_string()))?;
    let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let (mut dns_names, mut subject_key_id, mut authority_key_id) = (BTreeSet::new(), None, None);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => dns_names.extend(san.general_names.iter().filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })),
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => {}
        }
    }
    Ok(CertFacts { not_after, common_name, dns_names, subject_key_id, authority_key_id })
}

/// A new CA certificate for `common_name`, valid from `now` for `validity`; with `key` (PEM) it renews the
/// CA with its existing key pair, otherwise a new key pair is made.
pub fn ca(common_name: &str, key: Option<&str>, now: OffsetDateTime, validity: Duration) -> Result<KeyAndCert, CertError> {
    let key = match key {
        Some(pem) => KeyPair::from_pem(pem)?,
        None => KeyPair::generate()?,
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = now - Duration::minutes(5); // tolerate clocks a little behind the operator's
    params.not_after = now + validity;
    let cert = params.self_signed(&key)?;
    Ok(KeyAndCert { cert: cert.pem(), key: key.serialize_pem() })
}

/// A new leaf certificate (with a new key pair) signed by `ca`.
pub fn issue(ca: &KeyAndCert, leaf: &LeafSpec, now: OffsetDateTime, validity: Duration) -> Result<KeyAndCert, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(leaf.dns_names.clone())?;
    params.distinguished_name = subject(&leaf.common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        [leaf.server.then_some(ExtendedKeyUsagePurpose::ServerAuth), leaf.client.then_some(ExtendedKeyUsagePurpose::ClientAuth)]
            .into_iter()
            .flatten()
            .collect();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + validity;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyAndCert { cert: cert.pem(), key: key.serialize_pem() })
}

/// O first, CN last: Kafka writes a subject last RDN first, so the principal reads `CN=...,O=strata.io`.
fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Why a certificate is (re)made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    Keep,
    Create,
    /// Near or past expiry.
    Expiring,
    /// Its names or subject no longer match what is wanted.
    Changed,
    /// Signed by another CA key.
    OtherIssuer,
}

impl Renewal {
    pub fn needed(&self) -> bool {
        *self != Renewal::Keep
    }
}

/// Whether the CA certificate must be made or renewed.
pub fn ca_renewal(existing: Option<&CertFacts>, now: OffsetDateTime, renew_before: Duration) -> Renewal {
    match existing {
        None => Renewal::Create,
        Some(f) if f.not_after - renew_before <= now => Renewal::Expiring,
        Some(_) => Renewal::Keep,
    }
}

/// Whether a leaf must be (re)issued by the CA with subject key id `ca_key_id`.
pub fn leaf_renewal(
    existing: Option<&CertFacts>,
    want: &LeafSpec,
    ca_key_id: Option<&[u8]>,
    now: OffsetDateTime,
    renew_before: Duration,
) -> Renewal {
    let Some(f) = existing else { return Renewal::Create };
    if f.authority_key_id.as_deref() != ca_key_id || ca_key_id.is_none() {
        Renewal::OtherIssuer
    } else if f.common_name.as_deref() != Some(want.common_name.as_str())
        || f.dns_names != want.dns_names.iter().cloned().collect::<BTreeSet<_>>()
    {
        Renewal::Changed
    } else if f.not_after - renew_before <= now {
        Renewal::Expiring
    } else {
        Renewal::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn broker() -> LeafSpec {
        LeafSpec {
            common_name: "demo-broker".into(),
            dns_names: vec!["demo-0.demo-headless.ns.svc".into(), "demo-bootstrap.ns.svc".into()],
            server: true,
            client: true,
        }
    }

    #[test]
    fn a_leaf_names_its_ca_and_carries_the_wanted_names() {
        let ca = ca("demo-cluster-ca", None, now(), Duration::days(365)).unwrap();
        let leaf = issue(&ca, &broker(), now(), Duration::days(30)).unwrap();
        let (ca_facts, leaf_facts) = (facts(&ca.cert).unwrap(), facts(&leaf.cert).unwrap());
        assert_eq!(leaf_facts.authority_key_id, ca_facts.subject_key_id);
        assert!(ca_facts.subject_key_id.is_some());
        assert_eq!(leaf_facts.common_name.as_deref(), Some("demo-broker"));
        assert_eq!(leaf_facts.dns_names, broker().dns_names.into_iter().collect());
        assert_eq!(leaf_facts.not_after, now() + Duration::days(30));
        assert_eq!(
            leaf_renewal(Some(&leaf_facts), &broker(), ca_facts.subject_key_id.as_deref(), now(), Duration::days(7)),
            Renewal::Keep
        );
    }

    #[test]
    fn a_renewed_ca_keeps_its_key_so_its_leaves_stay_valid() {
        let old = ca("demo-cluster-ca", None, now(), Duration::days(365)).unwrap();
        let leaf = facts(&issue(&old, &broker(), now(), Duration::days(30)).unwrap().cert).unwrap();
        let later = now() + Duration::days(360);
        let renewed = ca("demo-cluster-ca", Some(&old.key), later, Duration::days(365)).unwrap();
        let renewed_facts = facts(&renewed.cert).unwrap();
        assert_eq!(renewed_facts.subject_key_id, facts(&old.cert).unwrap().subject_key_id);
        assert_eq!(renewed_facts.not_after, later + Duration::days(365));
        let replaced = facts(&ca("demo-cluster-ca", None, later, Duration::days(365)).unwrap().cert).unwrap();
        assert_eq!(
            leaf_renewal(Some(&leaf), &broker(), replaced.subject_key_id.as_deref(), now(), Duration::days(7)),
            Renewal::OtherIssuer
        );
    }

    #[test]
    fn renewal_decisions() {
        let ca_facts = |days: i64| CertFacts {
            not_after: now() + Duration::days(days),
            common_name: Some("ca".into()),
            dns_names: BTreeSet::new(),
            subject_key_id: Some(vec![1]),
            authority_key_id: None,
        };
        let before = Duration::days(30);
        assert_eq!(ca_renewal(None, now(), before), Renewal::Create);
        assert_eq!(ca_renewal(Some(&ca_facts(31)), now(), before), Renewal::Keep);
        assert_eq!(ca_renewal(Some(&ca_facts(30)), now(), before), Renewal::Expiring);
        assert_eq!(ca_renewal(Some(&ca_facts(-1)), now(), before), Renewal::Expiring);

        let want = broker();
        let good = CertFacts {
            not_after: now() + Duration::days(100),
            common_name: Some(want.common_name.clone()),
            dns_names: want.dns_names.iter().cloned().collect(),
            subject_key_id: None,
            authority_key_id: Some(vec![1]),
        };
        let with = |f: &dyn Fn(&mut CertFacts)| {
            let mut c = good.clone();
            f(&mut c);
            c
        };
        type Case<'a> = (&'a str, Option<CertFacts>, Option<&'a [u8]>, Renewal);
        let cases: Vec<Case> = vec![
            ("none yet", None, Some(&[1]), Renewal::Create),
            ("as wanted", Some(good.clone()), Some(&[1]), Renewal::Keep),
            ("other CA key", Some(good.clone()), Some(&[2]), Renewal::OtherIssuer),
            ("CA unknown", Some(good.clone()), None, Renewal::OtherIssuer),
            ("no authority key id", Some(with(&|c| c.authority_key_id = None)), Some(&[1]), Renewal::OtherIssuer),
            ("a name less", Some(with(&|c| c.dns_names = ["x".to_string()].into())), Some(&[1]), Renewal::Changed),
            ("other subject", Some(with(&|c| c.common_name = Some("y".into()))), Some(&[1]), Renewal::Changed),
            ("expiring", Some(with(&|c| c.not_after = now() + Duration::days(29))), Some(&[1]), Renewal::Expiring),
            ("expired", Some(with(&|c| c.not_after = now() - Duration::days(1))), Some(&[1]), Renewal::Expiring),
        ];
        for (name, existing, ca_key, expected) in cases {
            assert_eq!(leaf_renewal(existing.as_ref(), &want, ca_key, now(), before), expected, "{name}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(facts("not a certificate"), Err(CertError::Parse(_))));
        let ca = ca("x", None, now(), Duration::days(1)).unwrap();
        let broken =
            KeyAndCert { cert: ca.cert.clone(), key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into() };
        assert!(issue(&broken, &broker(), now(), Duration::days(1)).is_err());
    }
}
