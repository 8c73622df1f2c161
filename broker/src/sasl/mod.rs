//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, with Kafka's settings and rules: PLAIN and
//! SCRAM-SHA-256/512 (GSSAPI and OAUTHBEARER are refused at startup).
//!
//! - `sasl.enabled.mechanisms` (per listener as `listener.name.<name>.sasl.enabled.mechanisms`): what clients
//!   may use. Kafka's default is GSSAPI, which Strata lacks: here the default is SCRAM-SHA-512.
//! - `sasl.mechanism.inter.broker.protocol` / `sasl.mechanism.controller.protocol` (default SCRAM-SHA-512):
//!   what this node uses to dial the inter-broker and controller listeners of the others, with the
//!   `username`/`password` of that listener's `sasl.jaas.config` for the mechanism
//!   (`listener.name.<name>.<mechanism lower>.sasl.jaas.config`, else `sasl.jaas.config`).
//! - The same `sasl.jaas.config` entries are static users this listener accepts (a credential every node knows
//!   before any metadata exists, as Kafka's `kafka-storage format --add-scram`), and PlainLoginModule's
//!   `user_<name>="<password>"` entries too. Other users' SCRAM credentials live in the metadata log
//!   (AlterUserScramCredentials); PLAIN checks passwords against those as well.
//!
//! [`authenticator`] runs a connection's exchange; [`credentials`] finds users; [`plain`] and [`scram`] are the
//! mechanisms' server sides (the SCRAM math and messages are strata-client's, shared with the client side).

pub mod authenticator;
pub mod credentials;
pub mod jaas;
pub mod plain;
pub mod scram;

use std::collections::BTreeMap;

use strata_client::scram::Mechanism;
use strata_client::{SaslCredentials, SaslMechanism};

use crate::config::{invalid, ConfigError};
use jaas::JaasEntry;

/// The default of `sasl.enabled.mechanisms` and of the inter-broker and controller mechanisms.
pub const DEFAULT_MECHANISM: &str = "SCRAM-SHA-512";

/// The settings a listener may override as `listener.name.<name>.<setting>`, besides
/// `listener.name.<name>.<mechanism>.sasl.jaas.config`.
pub const SASL_KEYS: &[&str] = &["sasl.enabled.mechanisms"];

/// Parses a mechanism name as a setting's value: Kafka's names, with a clear word for those Strata lacks.
pub fn parse_mechanism(key: &str, name: &str) -> Result<SaslMechanism, ConfigError> {
    match name.trim() {
        n @ ("GSSAPI" | "OAUTHBEARER") => {
            Err(invalid(key, name, format!("{n} is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")))
        }
        n => n.parse().map_err(|e: String| invalid(key, name, e)),
    }
}

/// One SASL listener's settings.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub mechanisms: Vec<SaslMechanism>,
    /// The JAAS entry configured for each mechanism, if any.
    pub jaas: BTreeMap<SaslMechanism, JaasEntry>,
}

fn login_module(m: SaslMechanism) -> &'static str {
    match m {
        SaslMechanism::Plain => jaas::PLAIN_MODULE,
        SaslMechanism::Scram(_) => jaas::SCRAM_MODULE,
    }
}

impl SaslSettings {
    pub fn from_lookup(listener: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<SaslSettings, ConfigError> {
        let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
        let key = format!("{prefix}sasl.enabled.mechanisms");
        let (key, value) = match get(&key) {
            Some(v) => (key, v),
            None => ("sasl.enabled.mechanisms".to_string(), get("sasl.enabled.mechanisms").unwrap_or(DEFAULT_MECHANISM.into())),
        };
        let mut mechanisms = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let m = parse_mechanism(&key, name)?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid(&key, &value, format!("SASL listener {listener} needs at least one mechanism")));
        }
        let mut entries = BTreeMap::new();
        for m in SaslMechanism::ALL {
            let own = format!("{prefix}{}.sasl.jaas.config", m.name().to_ascii_lowercase());
            // The listener's own entry must be for the mechanism; the generic one applies where it fits.
            let entry = match get(&own) {
                Some(v) => {
                    let e = jaas::parse(&v).map_err(|e| invalid(&own, "(hidden)", e))?;
                    if e.module != login_module(m) {
                        return Err(invalid(&own, "(hidden)", format!("{} needs {}", m.name(), login_module(m))));
                    }
                    Some(e)
                }
                None => match get("sasl.jaas.config") {
                    Some(v) => Some(jaas::parse(&v).map_err(|e| invalid("sasl.jaas.config", "(hidden)", e))?)
                        .filter(|e| e.module == login_module(m)),
                    None => None,
                },
            };
            if let Some(e) = entry {
                entries.insert(m, e);
            }
        }
        Ok(SaslSettings { mechanisms, jaas: entries })
    }

    /// The `username`/`password` of the JAAS entry for `mechanism`: what this node authenticates with when it
    /// dials this listener of another node.
    pub fn client_credentials(&self, mechanism: SaslMechanism) -> Option<SaslCredentials> {
        let e = self.jaas.get(&mechanism)?;
        Some(SaslCredentials {
            mechanism,
            username: e.options.get("username")?.clone(),
            password: e.options.get("password")?.clone(),
        })
    }

    /// The users this listener knows without the metadata log: each JAAS entry's `username`/`password` for its
    /// mechanism (for PLAIN also every `user_<name>` entry).
    pub fn static_users(&self) -> credentials::StaticUsers {
        let mut users = credentials::StaticUsers::default();
        for (m, e) in &self.jaas {
            if let Some(c) = self.client_credentials(*m) {
                users.add(*m, &c.username, &c.password);
            }
            if *m == SaslMechanism::Plain {
                for (k, password) in &e.options {
                    if let Some(user) = k.strip_prefix("user_").filter(|u| !u.is_empty()) {
                        users.add(*m, user, password);
                    }
                }
            }
        }
        users
    }
}

/// The mechanism this node dials a SASL listener of the others with, and its credentials from that listener's
/// JAAS entry: a clear error when they are missing or the mechanism is not enabled there.
pub fn dial_credentials(
    key: &str,
    mechanism: SaslMechanism,
    listener: &str,
    settings: &SaslSettings,
) -> Result<SaslCredentials, ConfigError> {
    if !settings.mechanisms.contains(&mechanism) {
        return Err(invalid(key, mechanism.name(), format!("not in the sasl.enabled.mechanisms of listener {listener}")));
    }
    settings.client_credentials(mechanism).ok_or_else(|| {
        invalid(
            key,
            mechanism.name(),
            format!(
                "listener {listener} is SASL: set listener.name.{}.{}.sasl.jaas.config (or sasl.jaas.config) to {} \
                 required username=\"...\" password=\"...\";",
                listener.to_ascii_lowercase(),
                mechanism.name().to_ascii_lowercase(),
                login_module(mechanism)
            ),
        )
    })
}

/// `User:<name>`, Kafka's principal for a SASL user.
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// The SCRAM mechanism a SASL mechanism is, if it is one.
pub fn scram_of(m: SaslMechanism) -> Option<Mechanism> {
    match m {
        SaslMechanism::Scram(s) => Some(s),
        SaslMechanism::Plain => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SaslSettings, ConfigError> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SaslSettings::from_lookup("SECURE", &|k| map.get(k).cloned())
    }

    const SCRAM: &str = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="pw";"#;
    const PLAIN: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="a" user_admin="a" user_bob="b";"#;

    #[test]
    fn mechanisms_and_jaas_entries() {
        let d = settings(&[]).unwrap();
        assert_eq!(d.mechanisms, vec![SaslMechanism::Scram(Mechanism::Sha512)]);
        let s = settings(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.secure.sasl.enabled.mechanisms", "SCRAM-SHA-256, PLAIN,PLAIN"),
            ("sasl.jaas.config", SCRAM),
            ("listener.name.secure.plain.sasl.jaas.config", PLAIN),
        ])
        .unwrap();
        assert_eq!(s.mechanisms, vec![SaslMechanism::Scram(Mechanism::Sha256), SaslMechanism::Plain]);
        let c = s.client_credentials(SaslMechanism::Scram(Mechanism::Sha512)).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("broker", "pw"), "the generic entry fits every SCRAM mechanism");
        assert_eq!(s.client_credentials(SaslMechanism::Plain).unwrap().username, "admin");
        let users = s.static_users();
        assert!(users.plain("bob").is_some() && users.plain("admin").is_some() && users.plain("broker").is_none());
        assert!(users.scram("broker", Mechanism::Sha256).is_some() && users.scram("bob", Mechanism::Sha256).is_none());

        for (pairs, want) in [
            (vec![("sasl.enabled.mechanisms", "GSSAPI")], "GSSAPI is not supported"),
            (
                vec![("listener.name.secure.sasl.enabled.mechanisms", "OAUTHBEARER")],
                "listener.name.secure.sasl.enabled.mechanisms",
            ),
            (vec![("sasl.enabled.mechanisms", "SCRAM-SHA-1")], "unknown SASL mechanism"),
            (vec![("sasl.enabled.mechanisms", " , ")], "at least one mechanism"),
            (vec![("listener.name.secure.plain.sasl.jaas.config", SCRAM)], "PLAIN needs"),
            (vec![("sasl.jaas.config", "Module required")], "sasl.jaas.config"),
        ] {
            let e = settings(&pairs).unwrap_err().to_string();
            assert!(e.contains(want), "{pairs:?}: {e}");
            assert!(!e.contains("pw"), "secrets stay out of errors: {e}");
        }
        let none = settings(&[]).unwrap();
        let e =
            dial_credentials("sasl.mechanism.inter.broker.protocol", SaslMechanism::Scram(Mechanism::Sha512), "SECURE", &none);
        assert!(e.unwrap_err().to_string().contains("listener.name.secure.scram-sha-512.sasl.jaas.config"));
        let e = dial_credentials("k", SaslMechanism::Plain, "SECURE", &none).unwrap_err().to_string();
        assert!(e.contains("not in the sasl.enabled.mechanisms"), "{e}");
    }
}
