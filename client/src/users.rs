//! SCRAM credential admin operations (AlterUserScramCredentials, DescribeUserScramCredentials; KIP-554).
//! The password never leaves this process: the request carries a fresh salt and the salted password.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::connection::Connection;
use crate::error::Result;
use crate::scram::{random_bytes, Mechanism};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A user's credential as DescribeUserScramCredentials lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScramCredentialInfo {
    pub mechanism: String,
    pub iterations: i32,
}

impl Connection {
    /// Sets (or replaces) `user`'s `mechanism` credential to `password`.
    pub async fn upsert_scram_credential(
        &mut self,
        user: &str,
        mechanism: Mechanism,
        password: &str,
        iterations: i32,
    ) -> Result<()> {
        let salt = random_bytes(32);
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations.max(1).unsigned_abs());
        let upsertion = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.type_id())
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into());
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]), user).await
    }

    /// Removes `user`'s `mechanism` credential.
    pub async fn delete_scram_credential(&mut self, user: &str, mechanism: Mechanism) -> Result<()> {
        let deletion = alter_user_scram_credentials_request::ScramCredentialDeletion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.type_id());
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]), user).await
    }

    async fn alter_scram(&mut self, req: AlterUserScramCredentialsRequest, user: &str) -> Result<()> {
        let version = self.version::<AlterUserScramCredentialsRequest>(0)?;
        let resp = self.send(version, &req).await?;
        match resp.results.first() {
            Some(r) => self.check(r.error_code, format!("changing the SCRAM credentials of {user}"), r.error_message.as_ref()),
            None => Err(self.protocol(format!("no result for user {user}"))),
        }
    }

    /// `user`'s credentials; an unknown user has none (Kafka answers RESOURCE_NOT_FOUND).
    pub async fn describe_scram_credentials(&mut self, user: &str) -> Result<Vec<ScramCredentialInfo>> {
        const RESOURCE_NOT_FOUND: i16 = 91;
        let version = self.version::<DescribeUserScramCredentialsRequest>(0)?;
        let req = DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![describe_user_scram_credentials_request::UserName::default().with_name(s(user))]));
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "describing SCRAM credentials", resp.error_message.as_ref())?;
        let Some(r) = resp.results.first() else { return Err(self.protocol(format!("no result for user {user}"))) };
        if r.error_code == RESOURCE_NOT_FOUND {
            return Ok(Vec::new());
        }
        self.check(r.error_code, format!("describing the SCRAM credentials of {user}"), r.error_message.as_ref())?;
        Ok(r.credential_infos
            .iter()
            .map(|c| ScramCredentialInfo {
                mechanism: Mechanism::from_type_id(c.mechanism)
                    .map_or_else(|| format!("unknown ({})", c.mechanism), |m| m.name().into()),
                iterations: c.iterations,
            })
            .collect())
    }
}
