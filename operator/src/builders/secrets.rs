//! The Secrets of a secured cluster, from the certificate material (`cluster_ca`), and that material
//! read back from them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use super::owned_meta;
use crate::certs::KeyAndCert;
use crate::cluster_ca::{Material, Stored, CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::crd::LogCluster;
use crate::names;

fn secret(lc: &LogCluster, name: String, entries: impl IntoIterator<Item = (String, String)>) -> Secret {
    Secret {
        metadata: owned_meta(lc, name),
        type_: Some("Opaque".to_string()),
        data: Some(entries.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    }
}

/// The CA's key and certificate: read by the operator only.
pub fn cluster_ca_secret(lc: &LogCluster, m: &Material) -> Secret {
    secret(lc, names::cluster_ca(lc), [(CA_CERT_KEY.into(), m.ca.cert.clone()), (CA_KEY_KEY.into(), m.ca.key.clone())])
}

/// The CA certificate alone, for clients to trust.
pub fn cluster_ca_cert_secret(lc: &LogCluster, m: &Material) -> Secret {
    secret(lc, names::cluster_ca_cert(lc), [(CA_CERT_KEY.into(), m.ca.cert.clone())])
}

/// Every broker's keystore (`<pod>.pem`) and the CA certificate, mounted by every broker pod.
pub fn broker_certs_secret(lc: &LogCluster, m: &Material) -> Secret {
    let stores = m.brokers.iter().map(|(pod, pem)| (crate::cluster_ca::keystore_key(pod), pem.clone()));
    secret(lc, names::broker_certs(lc), stores.chain([(CA_CERT_KEY.into(), m.ca.cert.clone())]))
}

/// The operator's client certificate for the brokers' own listener.
pub fn operator_cert_secret(lc: &LogCluster, m: &Material) -> Secret {
    secret(
        lc,
        names::operator_cert(lc),
        [
            (TLS_CERT_KEY.into(), m.operator.cert.clone()),
            (TLS_KEY_KEY.into(), m.operator.key.clone()),
            (CA_CERT_KEY.into(), m.ca.cert.clone()),
        ],
    )
}

fn text(s: Option<&Secret>, key: &str) -> Option<String> {
    let bytes = s?.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn key_and_cert(s: Option<&Secret>, cert: &str, key: &str) -> Option<KeyAndCert> {
    Some(KeyAndCert { cert: text(s, cert)?, key: text(s, key)? })
}

/// The operator's certificate and the CA certificate from its Secret.
pub fn operator_identity(s: &Secret) -> Option<(KeyAndCert, String)> {
    Some((key_and_cert(Some(s), TLS_CERT_KEY, TLS_KEY_KEY)?, text(Some(s), CA_CERT_KEY)?))
}

/// What the Secrets hold (the CA Secret, the brokers', the operator's), ignoring what is not text.
pub fn stored(ca: Option<&Secret>, brokers: Option<&Secret>, operator: Option<&Secret>) -> Stored {
    let keystores: BTreeMap<String, String> = brokers
        .and_then(|s| s.data.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.strip_suffix(".pem")?.to_string(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    Stored {
        ca: key_and_cert(ca, CA_CERT_KEY, CA_KEY_KEY),
        brokers: keystores,
        operator: key_and_cert(operator, TLS_CERT_KEY, TLS_KEY_KEY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::assert_owned;
    use crate::cluster_ca::{converge, Validity};
    use crate::testing::{cluster, spec};
    use time::{Duration, OffsetDateTime};

    #[test]
    fn secrets_round_trip_to_the_same_material() {
        let lc = cluster(spec());
        let v = Validity { ca: Duration::days(100), leaf: Duration::days(10), renew_before: Duration::days(1) };
        let m = converge(&lc, 2, &Stored::default(), OffsetDateTime::now_utc(), v).unwrap();
        let (ca, brokers, operator) = (cluster_ca_secret(&lc, &m), broker_certs_secret(&lc, &m), operator_cert_secret(&lc, &m));
        for s in [&ca, &brokers, &operator] {
            assert_owned(&s.metadata);
        }
        assert_eq!(ca.metadata.name.as_deref(), Some("logs-cluster-ca"));
        let public = cluster_ca_cert_secret(&lc, &m);
        assert_eq!(public.data.as_ref().unwrap().keys().collect::<Vec<_>>(), ["ca.crt"], "no key for clients");
        let keys: Vec<_> = brokers.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ca.crt", "logs-0.pem", "logs-1.pem"]);
        let back = stored(Some(&ca), Some(&brokers), Some(&operator));
        assert_eq!(back, Stored { ca: Some(m.ca.clone()), brokers: m.brokers.clone(), operator: Some(m.operator.clone()) });
        assert_eq!(stored(None, None, None), Stored::default());
        assert_eq!(operator_identity(&operator), Some((m.operator.clone(), m.ca.cert.clone())));
        assert_eq!(operator_identity(&public), None);
    }
}
