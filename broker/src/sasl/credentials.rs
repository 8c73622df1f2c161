//! Where a SASL listener finds users: its static users (from `sasl.jaas.config`) first, then the SCRAM
//! credentials of the metadata log. Unknown users get a made-up credential so that their exchange looks and
//! costs like a wrong password's.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use strata_client::scram::{self, Credential, Mechanism, MIN_ITERATIONS};
use strata_client::SaslMechanism;

/// Users known without the metadata log (no Debug: it holds PLAIN passwords).
#[derive(Clone, Default)]
pub struct StaticUsers {
    plain: BTreeMap<String, String>,
    scram: BTreeMap<(Mechanism, String), Credential>,
}

impl StaticUsers {
    /// A SCRAM user's credential is derived here, with a random salt, so no password is kept for it.
    pub fn add(&mut self, mechanism: SaslMechanism, user: &str, password: &str) {
        match mechanism {
            SaslMechanism::Plain => {
                self.plain.insert(user.to_string(), password.to_string());
            }
            SaslMechanism::Scram(m) => {
                let salt = scram::random_bytes(32);
                let salted = m.salted_password(password.as_bytes(), &salt, MIN_ITERATIONS as u32);
                self.scram.insert((m, user.to_string()), m.credential(&salted, salt, MIN_ITERATIONS));
            }
        }
    }

    pub fn plain(&self, user: &str) -> Option<&str> {
        self.plain.get(user).map(String::as_str)
    }

    pub fn scram(&self, user: &str, m: Mechanism) -> Option<&Credential> {
        self.scram.get(&(m, user.to_string()))
    }
}

/// A user's SCRAM credential for a mechanism in the metadata log.
pub type MetadataLookup = Arc<dyn Fn(&str, Mechanism) -> Option<Credential> + Send + Sync>;

pub struct CredentialStore {
    static_users: StaticUsers,
    metadata: MetadataLookup,
}

impl CredentialStore {
    pub fn new(static_users: StaticUsers, metadata: MetadataLookup) -> CredentialStore {
        CredentialStore { static_users, metadata }
    }

    pub fn scram(&self, user: &str, m: Mechanism) -> Option<Credential> {
        self.static_users.scram(user, m).cloned().or_else(|| (self.metadata)(user, m))
    }

    /// Whether `password` is `user`'s: a static PLAIN user's password, else checked against the user's SCRAM
    /// credential (static or from the log, SHA-512 first) by deriving its stored key. Compared in constant time; an unknown user costs
    /// a derivation too.
    pub fn check_plain(&self, user: &str, password: &str) -> bool {
        if let Some(expected) = self.static_users.plain(user) {
            // Hashes first, so the comparison does not reveal the password's length.
            let m = Mechanism::Sha256;
            return scram::secrets_equal(&m.hash(expected.as_bytes()), &m.hash(password.as_bytes()));
        }
        let found = [Mechanism::Sha512, Mechanism::Sha256].into_iter().find_map(|m| self.scram(user, m).map(|c| (m, c)));
        let (m, credential, known) = match found {
            Some((m, c)) => (m, c, true),
            None => (Mechanism::Sha512, fake_credential(user, Mechanism::Sha512), false),
        };
        let salted = m.salted_password(password.as_bytes(), &credential.salt, credential.iterations as u32);
        let derived = m.credential(&salted, Vec::new(), credential.iterations);
        scram::secrets_equal(&derived.stored_key, &credential.stored_key) && known
    }
}

/// A credential for a user that does not exist: the same salt for the same name every time (a client asking
/// twice cannot tell), keys that match no password.
pub fn fake_credential(user: &str, m: Mechanism) -> Credential {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    let secret = SECRET.get_or_init(|| scram::random_bytes(32));
    let salt = Mechanism::Sha256.hmac(secret, user.as_bytes());
    let key_len = m.hash(b"").len();
    Credential {
        salt,
        stored_key: scram::random_bytes(key_len),
        server_key: scram::random_bytes(key_len),
        iterations: MIN_ITERATIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> CredentialStore {
        let mut users = StaticUsers::default();
        users.add(SaslMechanism::Plain, "static", "s3cret");
        users.add(SaslMechanism::Scram(Mechanism::Sha512), "broker", "pw");
        let salt = b"salt".to_vec();
        let alice = Mechanism::Sha256.credential(&Mechanism::Sha256.salted_password(b"wonderland", &salt, 4096), salt, 4096);
        CredentialStore::new(users, Arc::new(move |user, m| (user == "alice" && m == Mechanism::Sha256).then(|| alice.clone())))
    }

    #[test]
    fn plain_passwords_against_static_and_scram_users() {
        let s = store();
        for (user, password, ok) in [
            ("static", "s3cret", true),
            ("static", "s3cre", false),
            ("alice", "wonderland", true),
            ("alice", "Wonderland", false),
            ("nobody", "wonderland", false),
            ("broker", "pw", true), // a static SCRAM user's password is checked like the log's users'
            ("broker", "pw2", false),
        ] {
            assert_eq!(s.check_plain(user, password), ok, "{user}/{password}");
        }
        assert!(s.scram("broker", Mechanism::Sha512).is_some() && s.scram("broker", Mechanism::Sha256).is_none());
        assert!(s.scram("alice", Mechanism::Sha256).is_some() && s.scram("alice", Mechanism::Sha512).is_none());
        let (a, b) = (fake_credential("x", Mechanism::Sha512), fake_credential("x", Mechanism::Sha512));
        assert_eq!((a.salt == b.salt, a.stored_key.len(), a.iterations), (true, 64, 4096));
        assert_ne!(fake_credential("y", Mechanism::Sha512).salt, a.salt);
    }
}
