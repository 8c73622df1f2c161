//! The client's errors, and Kafka's error codes in words (`UNKNOWN_TOPIC_OR_PARTITION (3)`): people read
//! names, scripts and bug reports want the number too.

use std::fmt;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

/// A Kafka error code. Names come from kafka-protocol's table of codes, respelled as Kafka's `Errors.java`
/// spells them (`UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode(pub i16);

impl ErrorCode {
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }

    pub fn name(self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            // A code newer than kafka-protocol's table.
            Some(ResponseError::Unknown(_)) => "UNKNOWN_ERROR_CODE".to_string(),
            Some(e) => screaming_snake(&e.to_string()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{addr}: cannot connect: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{addr}: the broker does not support {api:?} {}", versions_text(*ours, *theirs))]
    Unsupported { addr: String, api: ApiKey, ours: (i16, i16), theirs: Option<(i16, i16)> },
    /// The broker answered with an error code.
    #[error("{addr}: {what}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka { addr: String, what: String, code: ErrorCode, message: Option<String> },
    #[error("{0}")]
    NotFound(String),
    #[error("no broker reachable: {}", join(.0))]
    NoBroker(Vec<ClientError>),
}

fn versions_text(ours: (i16, i16), theirs: Option<(i16, i16)>) -> String {
    match theirs {
        Some((min, max)) => format!("in versions {}-{} (it offers {min}-{max})", ours.0, ours.1),
        None => "at all".to_string(),
    }
}

fn join(errors: &[ClientError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ClientError {
    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_kafka_names_them() {
        assert_eq!(ErrorCode(3).to_string(), "UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert_eq!(ErrorCode(-1).to_string(), "UNKNOWN_SERVER_ERROR (-1)");
        assert_eq!(ErrorCode(36).name(), "TOPIC_ALREADY_EXISTS");
        assert_eq!(ErrorCode(6).name(), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(ErrorCode(0).name(), "NONE");
        assert_eq!(ErrorCode(9999).to_string(), "UNKNOWN_ERROR_CODE (9999)");
    }

    #[test]
    fn kafka_errors_name_the_broker_and_the_code() {
        let e = ClientError::Kafka {
            addr: "b1:9092".into(),
            what: "topic demo".into(),
            code: ErrorCode(3),
            message: Some("no such topic".into()),
        };
        assert_eq!(e.to_string(), "b1:9092: topic demo: UNKNOWN_TOPIC_OR_PARTITION (3): no such topic");
        let e = ClientError::Unsupported { addr: "b".into(), api: ApiKey::DescribeQuorum, ours: (0, 2), theirs: None };
        assert_eq!(e.to_string(), "b: the broker does not support DescribeQuorum at all");
    }
}
