//! A LogUser's Secret: what it holds for each kind of authentication, and when the credential in the
//! cluster must be (re)written. Pure, but for drawing new passwords.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::crd::LogUser;
use crate::certs::KeyAndCert;
use crate::names;

pub const PASSWORD_KEY: &str = "password";
pub const JAAS_KEY: &str = "sasl.jaas.config";
pub const USER_CERT_KEY: &str = "user.crt";
pub const USER_KEY_KEY: &str = "user.key";
pub const CA_CERT_KEY: &str = "ca.crt";
/// On the Secret: a digest of the password last written to the cluster, so an edited password is
/// written again and an unchanged one is not re-salted on every pass.
pub const APPLIED_ANNOTATION: &str = "strata.io/applied-password-sha256";
/// SCRAM iterations of the credentials the operator writes (Kafka's minimum is 4096).
pub const ITERATIONS: i32 = 8192;

/// A new password: 32 letters and digits from the operating system's random source.
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        // Rejection sampling keeps every character equally likely (248 = 4 * 62).
        for b in strata_client::scram::random_bytes(48) {
            if b < 248 && out.len() < 32 {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

pub fn digest(password: &str) -> String {
    Sha256::digest(password.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Kafka clients' `sasl.jaas.config` for a SCRAM user.
pub fn jaas_config(user: &str, password: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        esc(user),
        esc(password)
    )
}

/// A text entry of a Secret.
pub fn text(secret: Option<&Secret>, key: &str) -> Option<String> {
    String::from_utf8(secret?.data.as_ref()?.get(key)?.0.clone()).ok().filter(|s| !s.is_empty())
}

/// Whether the password must be written to the cluster: it changed since the last write, or the
/// cluster has no SCRAM-SHA-512 credential for the user (deleted by someone, or a new cluster).
pub fn needs_upsert(secret: Option<&Secret>, password: &str, cluster_has_credential: bool) -> bool {
    let applied = secret.and_then(|s| s.annotations().get(APPLIED_ANNOTATION));
    !cluster_has_credential || applied.map(String::as_str) != Some(digest(password).as_str())
}

fn secret(lu: &LogUser, entries: BTreeMap<String, String>, annotations: BTreeMap<String, String>) -> Secret {
    let labels = BTreeMap::from([
        (names::LABEL_MANAGED_BY.to_string(), names::FIELD_MANAGER.to_string()),
        ("strata.io/cluster".to_string(), lu.spec.cluster.clone()),
        ("strata.io/user".to_string(), lu.name_any()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(lu.name_any()),
            namespace: lu.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: lu.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(entries.into_iter().map(|(k, v)| (k, ByteString(v.into_bytes()))).collect()),
        ..Default::default()
    }
}

/// A SCRAM user's Secret; `applied` records that this password is the one in the cluster.
pub fn scram_secret(lu: &LogUser, password: &str, applied: bool) -> Secret {
    let user = lu.name_any();
    let entries =
        BTreeMap::from([(PASSWORD_KEY.to_string(), password.to_string()), (JAAS_KEY.to_string(), jaas_config(&user, password))]);
    let annotations =
        if applied { BTreeMap::from([(APPLIED_ANNOTATION.to_string(), digest(password))]) } else { BTreeMap::new() };
    secret(lu, entries, annotations)
}

/// A certificate user's Secret: its certificate and key, and the CA certificate to trust the brokers.
pub fn tls_secret(lu: &LogUser, cert: &KeyAndCert, ca_cert: &str) -> Secret {
    let entries = BTreeMap::from([
        (USER_CERT_KEY.to_string(), cert.cert.clone()),
        (USER_KEY_KEY.to_string(), cert.key.clone()),
        (CA_CERT_KEY.to_string(), ca_cert.to_string()),
    ]);
    secret(lu, entries, BTreeMap::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::crd::{AuthenticationType, LogUserSpec, UserAuthentication};

    fn user() -> LogUser {
        let mut lu = LogUser::new(
            "alice",
            LogUserSpec {
                cluster: "logs".into(),
                authentication: UserAuthentication { type_: AuthenticationType::ScramSha512 },
                authorization: None,
            },
        );
        lu.metadata.namespace = Some("prod".into());
        lu.metadata.uid = Some("uid-1".into());
        lu
    }

    #[test]
    fn passwords_are_long_random_and_alphanumeric() {
        let (a, b) = (new_password(), new_password());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_secret_carries_ready_client_settings_and_the_applied_digest() {
        let s = scram_secret(&user(), "pa\"ss", true);
        assert_eq!(s.metadata.name.as_deref(), Some("alice"));
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].kind, "LogUser");
        assert_eq!(text(Some(&s), PASSWORD_KEY).as_deref(), Some("pa\"ss"));
        assert_eq!(
            text(Some(&s), JAAS_KEY).as_deref(),
            Some(r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="pa\"ss";"#)
        );
        assert!(!needs_upsert(Some(&s), "pa\"ss", true));
        assert!(needs_upsert(Some(&s), "pa\"ss", false), "the cluster lost it");
        assert!(needs_upsert(Some(&s), "edited", true), "the password was edited");
        assert!(needs_upsert(Some(&scram_secret(&user(), "p", false)), "p", true), "never applied");
        assert!(needs_upsert(None, "p", true));
    }

    #[test]
    fn a_certificate_users_secret() {
        let cert = KeyAndCert { cert: "CERT".into(), key: "KEY".into() };
        let s = tls_secret(&user(), &cert, "CA");
        let keys: Vec<_> = s.data.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ca.crt", "user.crt", "user.key"]);
        assert_eq!(text(Some(&s), USER_KEY_KEY).as_deref(), Some("KEY"));
    }
}
