//! One connection's SASL exchange, before any other request: as Kafka's SaslServerAuthenticator, only
//! ApiVersions and SaslHandshake come first, then SaslAuthenticate tokens (or, after SaslHandshake v0, raw
//! size-prefixed tokens) until the mechanism is done. Anything else, an unknown mechanism or a failed
//! exchange ends the connection, with an answer where the protocol has one.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::Encodable;
use strata_client::SaslMechanism;

use super::credentials::CredentialStore;
use super::scram::{Failure, Progress, ScramServer};
use crate::errors::code;
use crate::protocol::{decode_header, decode_request, encode_response, Request, RequestHeader, StrBytes};

/// A SASL listener: its mechanisms and where its users are.
pub struct SaslServer {
    pub mechanisms: Vec<SaslMechanism>,
    pub store: CredentialStore,
}

/// What to do with a frame read before authentication.
#[derive(Debug)]
pub enum Step {
    /// ApiVersions: the service answers it as on any connection.
    Forward(Bytes),
    /// Write this (size-prefixed) frame and read the next.
    Reply(Bytes),
    /// Write this frame; from now on the connection is `user`'s.
    Authenticated { reply: Bytes, user: String },
    /// Write the frame if any, then close; `reason` (naming the user if known) is for the log.
    Fail { reply: Option<Bytes>, reason: String },
}

enum Exchange {
    Plain,
    Scram(ScramServer),
}

enum State {
    Handshake,
    /// After SaslHandshake: tokens in SaslAuthenticate requests, or raw after v0.
    Authenticating {
        mechanism: SaslMechanism,
        exchange: Exchange,
        raw: bool,
    },
}

pub struct Authenticator {
    server: Arc<SaslServer>,
    state: State,
}

/// The message clients get for every failed exchange: as Kafka, it does not say whether the user exists.
pub fn failure_message(m: SaslMechanism) -> String {
    format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {m}")
}

fn response<R: Encodable>(header: &RequestHeader, body: &R) -> Option<Bytes> {
    encode_response(header, body).map_err(|e| tracing::error!(error = %e, "response encoding failed")).ok()
}

fn raw_frame(token: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + token.len());
    b.put_u32(token.len() as u32);
    b.put_slice(token);
    b.freeze()
}

impl Authenticator {
    pub fn new(server: Arc<SaslServer>) -> Authenticator {
        Authenticator { server, state: State::Handshake }
    }

    /// After SaslHandshake v0 the client sends raw tokens, whose frames may be shorter than a request header.
    pub fn raw_tokens(&self) -> bool {
        matches!(self.state, State::Authenticating { raw: true, .. })
    }

    pub fn on_frame(&mut self, frame: Bytes) -> Step {
        if self.raw_tokens() {
            return self.token(&frame, None);
        }
        let (header, start) = match decode_header(&frame) {
            Ok(h) => h,
            Err(e) => return Step::Fail { reply: None, reason: format!("before SASL authentication: {e}") },
        };
        let fail = |reason: String| Step::Fail { reply: None, reason };
        match (header.api_key, &self.state) {
            (ApiKey::ApiVersions, State::Handshake) => return Step::Forward(frame),
            (ApiKey::SaslHandshake | ApiKey::SaslAuthenticate, _) => {}
            (api, _) => {
                return fail(format!("{api:?} request before SASL authentication (the client is not configured for SASL?)"))
            }
        }
        let request = match decode_request(&header, frame, start) {
            Ok(r) => r,
            Err(e) => return fail(format!("during SASL authentication: {e}")),
        };
        match (request, &self.state) {
            (Request::SaslHandshake(r), State::Handshake) => self.handshake(&header, r.mechanism.as_str()),
            (Request::SaslAuthenticate(r), State::Authenticating { raw: false, .. }) => self.token(&r.auth_bytes, Some(&header)),
            (Request::SaslHandshake(_), _) => Step::Fail {
                reply: response(&header, &SaslHandshakeResponse::default().with_error_code(code::ILLEGAL_SASL_STATE)),
                reason: "a second SaslHandshake".into(),
            },
            (_, _) => Step::Fail {
                reply: response(
                    &header,
                    &SaslAuthenticateResponse::default()
                        .with_error_code(code::ILLEGAL_SASL_STATE)
                        .with_error_message(Some(StrBytes::from_static_str("SaslAuthenticate before SaslHandshake"))),
                ),
                reason: "SaslAuthenticate before SaslHandshake".into(),
            },
        }
    }

    fn handshake(&mut self, header: &RequestHeader, name: &str) -> Step {
        let enabled = &self.server.mechanisms;
        let names = enabled.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let chosen = enabled.iter().copied().find(|m| m.name() == name);
        let handshake = SaslHandshakeResponse::default().with_mechanisms(names);
        let Some(mechanism) = chosen else {
            return Step::Fail {
                reply: response(header, &handshake.with_error_code(code::UNSUPPORTED_SASL_MECHANISM)),
                reason: format!("SASL mechanism {name:?} is not enabled on this listener"),
            };
        };
        let exchange = match mechanism {
            SaslMechanism::Plain => Exchange::Plain,
            SaslMechanism::Scram(m) => Exchange::Scram(ScramServer::new(m)),
        };
        self.state = State::Authenticating { mechanism, exchange, raw: header.api_version == 0 };
        match response(header, &handshake) {
            Some(reply) => Step::Reply(reply),
            None => Step::Fail { reply: None, reason: "cannot encode the SaslHandshake response".into() },
        }
    }

    /// One token of the exchange; `header` is the SaslAuthenticate request's (None for raw tokens).
    fn token(&mut self, token: &[u8], header: Option<&RequestHeader>) -> Step {
        let State::Authenticating { mechanism, exchange, .. } = &mut self.state else {
            unreachable!("tokens come after the handshake")
        };
        let mechanism = *mechanism;
        let store = &self.server.store;
        let progress = match exchange {
            Exchange::Plain => match super::plain::parse(token) {
                Ok((user, password)) if store.check_plain(&user, &password) => Ok(Progress::Done { user, last: Vec::new() }),
                Ok((user, _)) => Err(Failure { user: Some(user), reason: "wrong password or unknown user".into() }),
                Err(reason) => Err(Failure { user: None, reason }),
            },
            Exchange::Scram(server) => {
                let m = super::scram_of(mechanism).expect("a SCRAM exchange");
                server.step(token, |user| store.scram(user, m))
            }
        };
        let reply = |bytes: &[u8]| match header {
            Some(h) => response(h, &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::copy_from_slice(bytes))),
            None => Some(raw_frame(bytes)),
        };
        match progress {
            Ok(Progress::Challenge(c)) => match reply(&c) {
                Some(r) => Step::Reply(r),
                None => Step::Fail { reply: None, reason: "cannot encode a SaslAuthenticate response".into() },
            },
            Ok(Progress::Done { user, last }) => match reply(&last) {
                Some(reply) => Step::Authenticated { reply, user },
                None => Step::Fail { reply: None, reason: "cannot encode a SaslAuthenticate response".into() },
            },
            Err(f) => {
                let who = f.user.as_ref().map_or(String::new(), |u| format!(" of user {u:?}"));
                let reply = header.and_then(|h| {
                    response(
                        h,
                        &SaslAuthenticateResponse::default()
                            .with_error_code(code::SASL_AUTHENTICATION_FAILED)
                            .with_error_message(Some(StrBytes::from_string(failure_message(mechanism)))),
                    )
                });
                Step::Fail { reply, reason: format!("SASL {mechanism} authentication{who} failed: {}", f.reason) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::credentials::StaticUsers;
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
    use kafka_protocol::protocol::Decodable;
    use strata_client::scram::{Mechanism, ScramClient};
    use strata_client::{encode_request, plain_token};

    fn server(mechanisms: &[SaslMechanism]) -> Authenticator {
        let mut users = StaticUsers::default();
        users.add(SaslMechanism::Plain, "alice", "pw");
        users.add(SaslMechanism::Scram(Mechanism::Sha512), "alice", "pw");
        let store = CredentialStore::new(users, Arc::new(|_, _| None));
        Authenticator::new(Arc::new(SaslServer { mechanisms: mechanisms.to_vec(), store }))
    }

    fn req<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Bytes {
        encode_request(api, version, 7, "t", body).unwrap().slice(4..)
    }

    fn handshake(m: &str, version: i16) -> Bytes {
        req(ApiKey::SaslHandshake, version, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(m.into())))
    }

    fn authenticate(token: Vec<u8>) -> Bytes {
        req(ApiKey::SaslAuthenticate, 1, &SaslAuthenticateRequest::default().with_auth_bytes(token.into()))
    }

    /// The SaslAuthenticate v1 response in a reply frame.
    fn auth_response(reply: &Bytes) -> SaslAuthenticateResponse {
        let mut b = reply.slice(8..); // size, correlation id
        SaslAuthenticateResponse::decode(&mut b, 1).unwrap()
    }

    const SCRAM512: SaslMechanism = SaslMechanism::Scram(Mechanism::Sha512);

    #[test]
    fn scram_then_authenticated() {
        let mut a = server(&[SaslMechanism::Plain, SCRAM512]);
        assert!(matches!(a.on_frame(req(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())), Step::Forward(_)));
        assert!(matches!(a.on_frame(handshake("SCRAM-SHA-512", 1)), Step::Reply(_)));
        let mut client = ScramClient::new(Mechanism::Sha512, "alice", "pw");
        let Step::Reply(r) = a.on_frame(authenticate(client.client_first())) else { panic!() };
        let fin = client.client_final(&auth_response(&r).auth_bytes).unwrap();
        let Step::Authenticated { reply, user } = a.on_frame(authenticate(fin)) else { panic!() };
        assert_eq!(user, "alice");
        client.verify_server_final(&auth_response(&reply).auth_bytes).unwrap();
    }

    #[test]
    fn failures_answer_then_close() {
        // Wrong PLAIN password: SASL_AUTHENTICATION_FAILED with Kafka's message, the user in the log reason.
        let mut a = server(&[SaslMechanism::Plain]);
        a.on_frame(handshake("PLAIN", 1));
        let Step::Fail { reply: Some(r), reason } = a.on_frame(authenticate(plain_token("alice", "nope"))) else { panic!() };
        let resp = auth_response(&r);
        assert_eq!(resp.error_code, code::SASL_AUTHENTICATION_FAILED);
        assert_eq!(resp.error_message.unwrap().as_str(), failure_message(SaslMechanism::Plain));
        assert!(reason.contains("\"alice\""), "{reason}");

        // A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM listing the enabled ones.
        let Step::Fail { reply: Some(r), .. } = server(&[SCRAM512]).on_frame(handshake("PLAIN", 1)) else { panic!() };
        let resp = SaslHandshakeResponse::decode(&mut r.slice(8..), 1).unwrap();
        assert_eq!(resp.error_code, code::UNSUPPORTED_SASL_MECHANISM);
        assert_eq!(resp.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>(), ["SCRAM-SHA-512"]);

        // Another request before authentication: closed without an answer.
        let metadata = req(ApiKey::Metadata, 12, &MetadataRequest::default());
        assert!(matches!(server(&[SCRAM512]).on_frame(metadata.clone()), Step::Fail { reply: None, .. }));
        let mut a = server(&[SCRAM512]);
        a.on_frame(handshake("SCRAM-SHA-512", 1));
        assert!(matches!(a.on_frame(metadata), Step::Fail { reply: None, .. }));
        // SaslAuthenticate before SaslHandshake, or a second handshake: ILLEGAL_SASL_STATE.
        let Step::Fail { reply: Some(r), .. } = server(&[SCRAM512]).on_frame(authenticate(vec![])) else { panic!() };
        assert_eq!(auth_response(&r).error_code, code::ILLEGAL_SASL_STATE);
        assert!(matches!(a.on_frame(handshake("SCRAM-SHA-512", 1)), Step::Fail { reply: Some(_), .. }));
        // Garbage.
        assert!(matches!(server(&[SCRAM512]).on_frame(Bytes::from_static(b"\xff\xff\0\0\0\0\0\0")), Step::Fail { .. }));
    }

    #[test]
    fn handshake_v0_takes_raw_tokens() {
        let mut a = server(&[SaslMechanism::Plain]);
        assert!(matches!(a.on_frame(handshake("PLAIN", 0)), Step::Reply(_)));
        assert!(a.raw_tokens());
        let Step::Authenticated { reply, user } = a.on_frame(Bytes::from(plain_token("alice", "pw"))) else { panic!() };
        assert_eq!((user.as_str(), &reply[..]), ("alice", &[0u8, 0, 0, 0][..]), "an empty token, size-prefixed");
        let mut a = server(&[SaslMechanism::Plain]);
        a.on_frame(handshake("PLAIN", 0));
        assert!(matches!(a.on_frame(Bytes::from_static(b"\0alice\0x")), Step::Fail { reply: None, .. }));
    }
}
