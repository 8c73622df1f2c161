//! The server's side of a SCRAM exchange: client-first -> server-first, client-final -> server-final.
//! An unknown user gets a server-first from a made-up credential and fails at the proof, as a wrong password
//! does, so the two cannot be told apart by the answers.

use strata_client::scram::{self, ClientFirst, Credential, Mechanism, ServerFirst};

use super::credentials::fake_credential;

/// What a step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// A token for the client; the exchange goes on.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; `last` goes to the client.
    Done { user: String, last: Vec<u8> },
}

/// A failed exchange: the user it claimed to be (if it got that far) and why, for the log only (clients get
/// Kafka's generic message).
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub user: Option<String>,
    pub reason: String,
}

/// Between the server's first message and the client's final one.
struct Sent {
    first: ClientFirst,
    server_first: String,
    nonce: String,
    credential: Credential,
    known: bool,
}

enum State {
    First,
    Final(Box<Sent>),
    Done,
}

pub struct ScramServer {
    mechanism: Mechanism,
    /// The server's part of the nonce.
    nonce: String,
    state: State,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer::with_nonce(mechanism, scram::nonce())
    }

    fn with_nonce(mechanism: Mechanism, nonce: String) -> ScramServer {
        ScramServer { mechanism, nonce, state: State::First }
    }

    /// Processes the client's next message; `lookup` finds a user's credential for this mechanism.
    pub fn step(&mut self, token: &[u8], lookup: impl FnOnce(&str) -> Option<Credential>) -> Result<Progress, Failure> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => {
                let first = ClientFirst::parse(token).map_err(|e| Failure { user: None, reason: e.0 })?;
                let (credential, known) = match lookup(&first.user) {
                    Some(c) => (c, true),
                    None => (fake_credential(&first.user, self.mechanism), false),
                };
                let nonce = format!("{}{}", first.nonce, self.nonce);
                let server_first =
                    ServerFirst { nonce: nonce.clone(), salt: credential.salt.clone(), iterations: credential.iterations }
                        .message();
                let challenge = server_first.clone().into_bytes();
                self.state = State::Final(Box::new(Sent { first, server_first, nonce, credential, known }));
                Ok(Progress::Challenge(challenge))
            }
            State::Final(sent) => {
                let Sent { first, server_first, nonce, credential, known } = *sent;
                let checked = scram::server_check(self.mechanism, &credential, &first, &server_first, &nonce, token);
                match (checked, known) {
                    (Ok(last), true) => Ok(Progress::Done { user: first.user, last }),
                    (_, false) => Err(Failure { user: Some(first.user), reason: "unknown user".into() }),
                    (Err(e), true) => Err(Failure { user: Some(first.user), reason: e.0 }),
                }
            }
            State::Done => Err(Failure { user: None, reason: "a message after the exchange ended".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::scram::ScramClient;

    fn credential(m: Mechanism, password: &str) -> Credential {
        let salt = b"0123456789abcdef".to_vec();
        m.credential(&m.salted_password(password.as_bytes(), &salt, 4096), salt, 4096)
    }

    /// (client's password, user known, what happens at the final message).
    #[test]
    fn exchanges() {
        for m in Mechanism::ALL {
            for (password, known, ok) in [("right", true, true), ("wrong", true, false), ("right", false, false)] {
                let mut server = ScramServer::with_nonce(m, "SERVERNONCE".into());
                let mut client = ScramClient::new(m, "alice", password);
                let lookup = |user: &str| (known && user == "alice").then(|| credential(m, "right"));
                let Ok(Progress::Challenge(server_first)) = server.step(&client.client_first(), lookup) else {
                    panic!("first step")
                };
                assert!(
                    std::str::from_utf8(&server_first).unwrap().contains("SERVERNONCE,s="),
                    "the nonce is the client's + the server's"
                );
                let fin = client.client_final(&server_first).unwrap();
                match server.step(&fin, |_| unreachable!("looked up once")) {
                    Ok(Progress::Done { user, last }) => {
                        assert!(ok, "{m:?} {password} {known}");
                        assert_eq!(user, "alice");
                        client.verify_server_final(&last).unwrap();
                    }
                    Err(f) => {
                        assert!(!ok, "{m:?} {password} {known}: {f:?}");
                        assert_eq!(f.user.as_deref(), Some("alice"));
                        assert_eq!(f.reason, if known { "invalid proof" } else { "unknown user" });
                    }
                    other => panic!("{other:?}"),
                }
                assert!(server.step(b"more", |_| None).is_err(), "nothing after the end");
            }
        }
    }

    #[test]
    fn malformed_messages_fail() {
        let m = Mechanism::Sha256;
        let mut server = ScramServer::with_nonce(m, "S".into());
        let f = server.step(b"p=tls-unique,,n=a,r=x", |_| None).unwrap_err();
        assert_eq!((f.user, f.reason.contains("channel binding")), (None, true));
        for fin in [&b"garbage"[..], b"c=biws,r=xS,p=AAAA", b"c=biws,r=other,p=AAAA", b"c=cD10bHMtdW5pcXVlLCw=,r=xS,p=AAAA"] {
            let mut server = ScramServer::with_nonce(m, "S".into());
            server.step(b"n,,n=alice,r=x", |_| Some(credential(m, "pw"))).unwrap();
            let f = server.step(fin, |_| None).unwrap_err();
            assert_eq!(f.user.as_deref(), Some("alice"), "{fin:?}");
        }
    }
}
