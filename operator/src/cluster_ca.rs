//! The certificates of a secured cluster, from what the Secrets hold now to what they should hold: the
//! cluster CA (made once, renewed with its key before it expires), one certificate per broker (its DNS
//! names; re-issued before expiry, when its names change or when signed by another CA key), and the
//! operator's client certificate. Everything still valid is kept as it is, so a reconcile that changes
//! nothing writes nothing new.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::certs::{self, CertError, KeyAndCert, LeafSpec, Renewal};
use crate::crd::{AdvertiseMode, LogCluster};
use crate::names;

/// How long the CA and the leaves are valid, and how long before expiry they are renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub ca: Duration,
    pub leaf: Duration,
    pub renew_before: Duration,
}

/// Secret keys.
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

/// The common name of every broker certificate: one principal (`User:strata-broker`, a super user) for
/// all brokers; each cluster's own CA keeps other clusters' brokers out.
pub const BROKER_COMMON_NAME: &str = "strata-broker";

/// The operator's client certificate's common name (`User:strata-operator`, a super user).
pub const OPERATOR_COMMON_NAME: &str = "strata-operator";

/// The keystore file of a broker (key, then certificate), as `ssl.keystore.location` reads it.
pub fn keystore_key(pod: &str) -> String {
    format!("{pod}.pem")
}

/// What the broker of `ordinal` must be named in its certificate: its pod DNS names and the bootstrap
/// Service's, plus its explicit advertised host.
pub fn broker_leaf(lc: &LogCluster, ordinal: i32) -> LeafSpec {
    let ns = names::namespace(lc);
    let pod = names::pod(lc, ordinal);
    let (headless, bootstrap) = (names::headless_service(lc), names::bootstrap_service(lc));
    let mut dns_names = vec![
        format!("{pod}.{headless}.{ns}.svc"),
        format!("{pod}.{headless}.{ns}.svc.cluster.local"),
        bootstrap.clone(),
        format!("{bootstrap}.{ns}"),
        format!("{bootstrap}.{ns}.svc"),
        format!("{bootstrap}.{ns}.svc.cluster.local"),
    ];
    let l = &lc.spec.listeners;
    if l.advertise == AdvertiseMode::Explicit {
        let host = l.advertised_hosts.as_ref().and_then(|h| h.get(usize::try_from(ordinal).ok()?));
        dns_names.extend(host.filter(|h| h.parse::<std::net::IpAddr>().is_err()).cloned());
    }
    LeafSpec { common_name: BROKER_COMMON_NAME.to_string(), dns_names, server: true, client: true }
}

pub fn operator_leaf() -> LeafSpec {
    LeafSpec { common_name: OPERATOR_COMMON_NAME.to_string(), dns_names: Vec::new(), server: false, client: true }
}

/// What the Secrets hold now (absent or unreadable entries are `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub ca: Option<KeyAndCert>,
    /// Per pod: its keystore (key then certificate).
    pub brokers: BTreeMap<String, String>,
    pub operator: Option<KeyAndCert>,
}

/// What the Secrets should hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub ca: KeyAndCert,
    pub brokers: BTreeMap<String, String>,
    pub operator: KeyAndCert,
    /// What was made or renewed, for events ("CA renewed", "logs-1 re-issued: expiring").
    pub changes: Vec<String>,
}

/// The certificate part of a keystore.
fn cert_of(keystore: &str) -> &str {
    keystore.find("-----BEGIN CERTIFICATE-----").map_or("", |i| &keystore[i..])
}

fn keystore(k: &KeyAndCert) -> String {
    format!("{}{}", k.key, k.cert)
}

/// Brings the stored certificates to what `lc` with `replicas` brokers needs at `now`. A CA whose
/// certificate cannot be read is an error (replacing it would silently break every client's trust).
pub fn converge(
    lc: &LogCluster,
    replicas: i32,
    stored: &Stored,
    now: OffsetDateTime,
    v: Validity,
) -> Result<Material, CertError> {
    let mut changes = Vec::new();
    let ca_facts = stored.ca.as_ref().map(|c| certs::facts(&c.cert)).transpose()?;
    let ca_name = format!("{}-cluster-ca", names::cluster_name(lc));
    let ca = match (&stored.ca, certs::ca_renewal(ca_facts.as_ref(), now, v.renew_before)) {
        (Some(kept), Renewal::Keep) => kept.clone(),
        (existing, _) => {
            let key = existing.as_ref().map(|c| c.key.as_str());
            changes.push(format!("cluster CA {}", if key.is_some() { "renewed" } else { "created" }));
            certs::ca(&ca_name, key, now, v.ca)?
        }
    };
    let ca_key_id = certs::facts(&ca.cert)?.subject_key_id;

    let leaf = |what: &str, existing: Option<&str>, want: &LeafSpec, changes: &mut Vec<String>| {
        let facts = existing.and_then(|pem| certs::facts(pem).ok());
        match certs::leaf_renewal(facts.as_ref(), want, ca_key_id.as_deref(), now, v.renew_before) {
            Renewal::Keep => Ok(None),
            reason => {
                changes.push(format!("{what}: {}", describe(&reason)));
                certs::issue(&ca, want, now, v.leaf).map(Some)
            }
        }
    };
    let mut brokers = BTreeMap::new();
    for ordinal in 0..replicas.max(0) {
        let pod = names::pod(lc, ordinal);
        let existing = stored.brokers.get(&pod).map(String::as_str);
        let pem = match (leaf(&pod, existing.map(cert_of), &broker_leaf(lc, ordinal), &mut changes)?, existing) {
            (Some(new), _) => keystore(&new),
            (None, Some(kept)) => kept.to_string(),
            (None, None) => unreachable!("a leaf is kept only when one is stored"),
        };
        brokers.insert(pod, pem);
    }
    let operator = match (
        leaf("operator", stored.operator.as_ref().map(|o| o.cert.as_str()), &operator_leaf(), &mut changes)?,
        &stored.operator,
    ) {
        (Some(new), _) => new,
        (None, Some(kept)) => kept.clone(),
        (None, None) => unreachable!("a leaf is kept only when one is stored"),
    };
    Ok(Material { ca, brokers, operator, changes })
}

fn describe(r: &Renewal) -> &'static str {
    match r {
        Renewal::Keep => "kept",
        Renewal::Create => "issued",
        Renewal::Expiring => "re-issued before expiry",
        Renewal::Changed => "re-issued for new names",
        Renewal::OtherIssuer => "re-issued by the current CA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cluster, spec};

    fn validity() -> Validity {
        Validity { ca: Duration::days(1000), leaf: Duration::days(100), renew_before: Duration::days(10) }
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn stored(m: &Material) -> Stored {
        Stored { ca: Some(m.ca.clone()), brokers: m.brokers.clone(), operator: Some(m.operator.clone()) }
    }

    #[test]
    fn first_run_makes_everything_then_keeps_it() {
        let lc = cluster(spec());
        let first = converge(&lc, 3, &Stored::default(), t0(), validity()).unwrap();
        assert_eq!(first.brokers.keys().collect::<Vec<_>>(), ["logs-0", "logs-1", "logs-2"]);
        assert_eq!(first.changes.len(), 5, "{:?}", first.changes);
        let facts = certs::facts(cert_of(&first.brokers["logs-1"])).unwrap();
        assert!(facts.dns_names.contains("logs-1.logs-headless.prod.svc"), "{facts:?}");
        assert!(facts.dns_names.contains("logs-bootstrap.prod.svc"));
        assert!(first.brokers["logs-1"].starts_with("-----BEGIN PRIVATE KEY-----"));

        let again = converge(&lc, 3, &stored(&first), t0() + Duration::days(1), validity()).unwrap();
        assert_eq!(again, Material { changes: vec![], ..first.clone() }, "nothing changes while valid");
    }

    #[test]
    fn scale_up_issues_only_the_new_brokers() {
        let lc = cluster(spec());
        let first = converge(&lc, 2, &Stored::default(), t0(), validity()).unwrap();
        let grown = converge(&lc, 3, &stored(&first), t0(), validity()).unwrap();
        assert_eq!(grown.changes, ["logs-2: issued"]);
        assert_eq!(grown.brokers["logs-0"], first.brokers["logs-0"]);
    }

    #[test]
    fn expiry_renews_the_leaves_and_later_the_ca_with_its_key() {
        let lc = cluster(spec());
        let first = converge(&lc, 1, &Stored::default(), t0(), validity()).unwrap();
        let later = converge(&lc, 1, &stored(&first), t0() + Duration::days(95), validity()).unwrap();
        assert_eq!(later.changes, ["logs-0: re-issued before expiry", "operator: re-issued before expiry"]);
        assert_eq!(later.ca, first.ca);
        let much_later = converge(&lc, 1, &stored(&later), t0() + Duration::days(995), validity()).unwrap();
        assert_eq!(much_later.changes[0], "cluster CA renewed");
        assert_eq!(much_later.ca.key, first.ca.key, "renewal keeps the CA key");
        assert_ne!(much_later.ca.cert, first.ca.cert);
    }

    #[test]
    fn a_replaced_ca_reissues_every_leaf_and_an_unreadable_one_is_an_error() {
        let lc = cluster(spec());
        let first = converge(&lc, 2, &Stored::default(), t0(), validity()).unwrap();
        let other_ca = certs::ca("other", None, t0(), Duration::days(1000)).unwrap();
        let replaced = converge(&lc, 2, &Stored { ca: Some(other_ca), ..stored(&first) }, t0(), validity()).unwrap();
        assert_eq!(
            replaced.changes,
            [
                "logs-0: re-issued by the current CA",
                "logs-1: re-issued by the current CA",
                "operator: re-issued by the current CA"
            ]
        );
        let broken = Stored { ca: Some(KeyAndCert { cert: "garbage".into(), key: first.ca.key.clone() }), ..stored(&first) };
        assert!(converge(&lc, 2, &broken, t0(), validity()).is_err());
        let torn = Stored { brokers: BTreeMap::from([("logs-0".to_string(), "garbage".to_string())]), ..stored(&first) };
        assert_eq!(converge(&lc, 1, &torn, t0(), validity()).unwrap().changes, ["logs-0: issued"]);
    }
}
