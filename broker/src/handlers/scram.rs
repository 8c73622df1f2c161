//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554), and SaslHandshake / SaslAuthenticate
//! on a connection that is past authentication (or on a listener without SASL): ILLEGAL_SASL_STATE, as Kafka.
//!
//! Credential changes are checked here (Kafka's rules: a user named, a known mechanism, 4096 to 16384
//! iterations, a salt and a salted password, no user and mechanism twice), turned into stored and server keys
//! (the salted password goes no further), and decided by the active controller; every broker then has them in
//! its image. Descriptions come from this broker's image and never include secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use strata_client::scram::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};

use super::admin::denied;
use super::{respond, respond_later, s};
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::controller::image::{Image, Refused};
use crate::controller::scram_credentials::ScramChange;
use crate::controller::service::ControllerRequest;
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};

/// Each user of the request, in the order first named, with the changes to make or why none are made.
pub fn check_alter(req: &AlterUserScramCredentialsRequest) -> Vec<(String, Result<Vec<ScramChange>, Refused>)> {
    let unacceptable = |m: &str| Err(Refused::new(code::UNACCEPTABLE_CREDENTIAL, m));
    let mechanism = |id: i8| {
        Mechanism::from_type_id(id)
            .ok_or_else(|| Refused::new(code::UNSUPPORTED_SASL_MECHANISM, format!("unknown SCRAM mechanism {id}")))
    };
    // (user, mechanism type) pairs named more than once make the whole user's part a DUPLICATE_RESOURCE.
    let mut seen = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    let pairs = req.deletions.iter().map(|d| (d.name.as_str(), d.mechanism));
    for (user, m) in pairs.chain(req.upsertions.iter().map(|u| (u.name.as_str(), u.mechanism))) {
        if !seen.insert((user, m)) {
            duplicated.insert(user);
        }
    }
    let mut users: Vec<String> = Vec::new();
    let mut outcome: BTreeMap<String, Result<Vec<ScramChange>, Refused>> = BTreeMap::new();
    let mut add = |user: &str, change: Result<ScramChange, Refused>| {
        if !outcome.contains_key(user) {
            users.push(user.to_string());
        }
        let entry = outcome.entry(user.to_string()).or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(c)) => changes.push(c),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {} // the first refusal stands
        }
    };
    for d in &req.deletions {
        let user = d.name.as_str();
        let change = if user.is_empty() {
            unacceptable("the username must not be empty")
        } else if duplicated.contains(user) {
            Err(duplicate())
        } else {
            mechanism(d.mechanism).map(|m| ScramChange::Delete { user: user.to_string(), mechanism: m.name().to_string() })
        };
        add(user, change);
    }
    for u in &req.upsertions {
        let user = u.name.as_str();
        let change = if user.is_empty() {
            unacceptable("the username must not be empty")
        } else if duplicated.contains(user) {
            Err(duplicate())
        } else {
            match mechanism(u.mechanism) {
                Err(e) => Err(e),
                Ok(_) if u.iterations < MIN_ITERATIONS => unacceptable(&format!("too few iterations: at least {MIN_ITERATIONS}")),
                Ok(_) if u.iterations > MAX_ITERATIONS => unacceptable(&format!("too many iterations: at most {MAX_ITERATIONS}")),
                Ok(_) if u.salt.is_empty() => unacceptable("the salt must not be empty"),
                Ok(_) if u.salted_password.is_empty() => unacceptable("the salted password must not be empty"),
                Ok(m) => {
                    let c = m.credential(&u.salted_password, u.salt.to_vec(), u.iterations);
                    Ok(ScramChange::Upsert {
                        user: user.to_string(),
                        mechanism: m.name().to_string(),
                        salt: c.salt,
                        stored_key: c.stored_key,
                        server_key: c.server_key,
                        iterations: c.iterations,
                    })
                }
            }
        };
        add(user, change);
    }
    users.into_iter().map(|u| (u.clone(), outcome.remove(&u).expect("each user has an outcome"))).collect()
}

fn duplicate() -> Refused {
    Refused::new(code::DUPLICATE_RESOURCE, "a user credential cannot be altered twice in the same request")
}

pub fn alter_user_scram_credentials(
    state: &Arc<BrokerState>,
    peer: &Peer,
    header: &RequestHeader,
    req: AlterUserScramCredentialsRequest,
) -> Reply {
    if !state.authorizer.authorize(peer, Operation::Alter, Resource::cluster()) {
        let refused = denied(code::CLUSTER_AUTHORIZATION_FAILED, Operation::Alter, "the cluster");
        let users: BTreeSet<&str> =
            req.deletions.iter().map(|d| d.name.as_str()).chain(req.upsertions.iter().map(|u| u.name.as_str())).collect();
        let results = users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(s(user))
                    .with_error_code(refused.code)
                    .with_error_message(Some(s(refused.message.clone())))
            })
            .collect();
        return respond(header, &AlterUserScramCredentialsResponse::default().with_results(results));
    }
    let state = state.clone();
    respond_later(header, async move {
        let checked = check_alter(&req);
        let changes: Vec<ScramChange> = checked.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten().cloned().collect();
        let count = changes.len();
        let mut decided = if count == 0 {
            Vec::new()
        } else {
            let request = ControllerRequest::AlterUserScramCredentials { changes };
            super::admin::call_each(&state, request, count, super::admin::timeout_of(0)).await
        }
        .into_iter();
        let results = checked
            .into_iter()
            .map(|(user, outcome)| {
                // Every change of the user is decided; the first refusal is the user's answer.
                let outcome = outcome.and_then(|changes| {
                    let results: Vec<_> = changes.iter().map(|_| decided.next().unwrap_or(Ok(()))).collect();
                    results.into_iter().collect::<Result<(), Refused>>()
                });
                let result = AlterUserScramCredentialsResult::default().with_user(s(user.clone()));
                match outcome {
                    Ok(()) => {
                        tracing::info!(%user, "SCRAM credentials altered");
                        result
                    }
                    Err(e) => result.with_error_code(e.code).with_error_message(Some(s(e.message))),
                }
            })
            .collect();
        AlterUserScramCredentialsResponse::default().with_results(results)
    })
}

/// The users asked for (all with credentials when none are named), each with its mechanisms and iterations.
pub fn describe(image: &Image, req: &DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let named: Vec<String> = req.users.iter().flatten().map(|u| u.name.to_string()).collect();
    let users = if named.is_empty() { image.scram_credentials.keys().cloned().collect() } else { named.clone() };
    let mut reported = BTreeSet::new();
    let mut results = Vec::new();
    for user in users {
        if !reported.insert(user.clone()) {
            continue;
        }
        let result = DescribeUserScramCredentialsResult::default().with_user(s(user.clone()));
        let result = if named.iter().filter(|n| **n == user).count() > 1 {
            result
                .with_error_code(code::DUPLICATE_RESOURCE)
                .with_error_message(Some(s(format!("cannot describe the SCRAM credentials of user {user} twice in one request"))))
        } else {
            match image.scram_credentials.get(&user) {
                None => result
                    .with_error_code(code::RESOURCE_NOT_FOUND)
                    .with_error_message(Some(s(format!("attempt to describe a user credential that does not exist ({user})")))),
                Some(credentials) => result.with_credential_infos(
                    credentials
                        .iter()
                        .filter_map(|(name, c)| {
                            let m = Mechanism::from_name(name)?;
                            Some(CredentialInfo::default().with_mechanism(m.type_id()).with_iterations(c.iterations))
                        })
                        .collect(),
                ),
            }
        };
        results.push(result);
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub fn describe_user_scram_credentials(
    state: &BrokerState,
    peer: &Peer,
    header: &RequestHeader,
    req: DescribeUserScramCredentialsRequest,
) -> Reply {
    if !state.authorizer.authorize(peer, Operation::Describe, Resource::cluster()) {
        let refused = denied(code::CLUSTER_AUTHORIZATION_FAILED, Operation::Describe, "the cluster");
        let resp = DescribeUserScramCredentialsResponse::default()
            .with_error_code(refused.code)
            .with_error_message(Some(s(refused.message)));
        return respond(header, &resp);
    }
    respond(header, &describe(&state.controller.image(), &req))
}

/// SaslHandshake once authenticated, or on a listener without SASL.
pub fn sasl_handshake(header: &RequestHeader) -> Reply {
    respond(header, &SaslHandshakeResponse::default().with_error_code(code::ILLEGAL_SASL_STATE))
}

/// SaslAuthenticate once authenticated, or on a listener without SASL.
pub fn sasl_authenticate(header: &RequestHeader) -> Reply {
    let message = "SaslAuthenticate outside a SASL authentication (already authenticated, or the listener is not SASL)";
    respond(
        header,
        &SaslAuthenticateResponse::default().with_error_code(code::ILLEGAL_SASL_STATE).with_error_message(Some(s(message))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(b"salt"[..].into())
            .with_salted_password(b"salted"[..].into())
    }

    fn delete(user: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default().with_name(s(user)).with_mechanism(mechanism)
    }

    #[test]
    fn alterations_are_checked_per_user() {
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![delete("gone", 1), delete("dup", 2), delete("", 1)])
            .with_upsertions(vec![
                upsert("ok", 1, 4096),
                upsert("ok", 2, 16384),
                upsert("dup", 2, 4096),
                upsert("few", 1, 4095),
                upsert("many", 2, 16385),
                upsert("mech", 3, 4096),
                upsert("nosalt", 1, 4096).with_salt(Default::default()),
            ]);
        let checked = check_alter(&req);
        let codes: Vec<(&str, i16)> =
            checked.iter().map(|(u, r)| (u.as_str(), r.as_ref().map_or_else(|e| e.code, |_| 0))).collect();
        assert_eq!(
            codes,
            [
                ("gone", 0),
                ("dup", code::DUPLICATE_RESOURCE),
                ("", code::UNACCEPTABLE_CREDENTIAL),
                ("ok", 0),
                ("few", code::UNACCEPTABLE_CREDENTIAL),
                ("many", code::UNACCEPTABLE_CREDENTIAL),
                ("mech", code::UNSUPPORTED_SASL_MECHANISM),
                ("nosalt", code::UNACCEPTABLE_CREDENTIAL),
            ]
        );
        let Ok(ok) = &checked[3].1 else { panic!() };
        assert_eq!(ok.len(), 2);
        let ScramChange::Upsert { stored_key, server_key, iterations, .. } = &ok[1] else { panic!() };
        let expected = Mechanism::Sha512.credential(b"salted", b"salt".to_vec(), 16384);
        assert_eq!((stored_key, server_key, *iterations), (&expected.stored_key, &expected.server_key, 16384));
    }

    #[test]
    fn descriptions() {
        let mut image = Image::default();
        let c = crate::controller::image::ScramCredentialImage {
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations: 8192,
        };
        image.scram_credentials.entry("alice".into()).or_default().insert("SCRAM-SHA-512".into(), c);
        let all = describe(&image, &DescribeUserScramCredentialsRequest::default());
        assert_eq!(all.results.len(), 1);
        assert_eq!(all.results[0].credential_infos, vec![CredentialInfo::default().with_mechanism(2).with_iterations(8192)]);
        let names = |n: &[&str]| {
            DescribeUserScramCredentialsRequest::default()
                .with_users(Some(n.iter().map(|u| UserName::default().with_name(s(*u))).collect()))
        };
        let r = describe(&image, &names(&["bob", "alice", "alice"]));
        let codes: Vec<_> = r.results.iter().map(|r| (r.user.as_str(), r.error_code)).collect();
        assert_eq!(codes, [("bob", code::RESOURCE_NOT_FOUND), ("alice", code::DUPLICATE_RESOURCE)]);
    }
}
