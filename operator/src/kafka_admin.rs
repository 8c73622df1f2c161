//! What the operator asks of running brokers, over strata-client: apply the dynamic settings of the spec,
//! and find which brokers host partitions (before a scale-down).

use std::collections::BTreeMap;
use std::time::Duration;

pub use strata_client::admin::ConfigChange;
use strata_client::admin::{ConfigResource, Metadata};
pub use strata_client::ClientError as AdminError;
use strata_client::Connection;

use crate::broker_contract;

const CLIENT_ID: &str = "strata-operator";

/// Changes that make a broker's dynamic user settings equal `desired`: every such key not in
/// `desired` is reset, so removing a setting from the spec takes effect too. Operator-owned
/// dynamic keys (the membership) are pushed on their own.
pub fn dynamic_changes(desired: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    broker_contract::KNOWN_KEYS
        .iter()
        .filter(|k| k.dynamic && k.owner == broker_contract::Owner::User)
        .map(|k| match desired.get(k.name) {
            Some(v) => ConfigChange::Set(k.name.to_string(), v.clone()),
            None => ConfigChange::Delete(k.name.to_string()),
        })
        .collect()
}

/// Partition replicas per broker id (a few `topic-partition` names each, for messages).
pub fn partitions_by_broker(metadata: &Metadata) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for topic in &metadata.topics {
        for p in &topic.partitions {
            for replica in &p.replicas {
                out.entry(*replica).or_default().push(format!("{}-{}", topic.name, p.partition));
            }
        }
    }
    for parts in out.values_mut() {
        if parts.len() > 5 {
            let more = parts.len() - 3;
            parts.truncate(3);
            parts.push(format!("and {more} more"));
        }
    }
    out
}

/// Applies dynamic settings to broker `node_id` at `addr`.
pub async fn alter_broker_configs(
    addr: &str,
    timeout: Duration,
    node_id: i32,
    changes: &[ConfigChange],
) -> Result<(), AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    conn.alter_configs(&ConfigResource::Broker(node_id), changes).await
}

/// Which brokers hold replicas of which partitions, as the broker at `addr` sees the cluster.
pub async fn placement(addr: &str, timeout: Duration) -> Result<BTreeMap<i32, Vec<String>>, AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    Ok(partitions_by_broker(&conn.metadata(None).await?))
}

#[cfg(test)]
mod tests {
    use strata_client::admin::{PartitionInfo, TopicInfo};
    use strata_client::ErrorCode;

    use super::*;

    #[test]
    fn changes_set_desired_and_reset_the_rest() {
        let desired = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let changes = dynamic_changes(&desired);
        assert!(changes.contains(&ConfigChange::Set("log.retention.ms".into(), "1000".into())));
        assert!(changes.contains(&ConfigChange::Delete("log.retention.bytes".into())));
        for key in ["num.partitions", "controller.quorum.voters"] {
            assert!(!changes.iter().any(|c| matches!(c, ConfigChange::Delete(k) | ConfigChange::Set(k, _) if k == key)), "{key}");
        }
    }

    fn topic(name: &str, partitions: &[(i32, &[i32])]) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: String::new(),
            internal: false,
            error: ErrorCode(0),
            partitions: partitions
                .iter()
                .map(|(i, replicas)| PartitionInfo {
                    partition: *i,
                    leader: replicas[0],
                    leader_epoch: 0,
                    replicas: replicas.to_vec(),
                    isr: replicas.to_vec(),
                    offline_replicas: vec![],
                    error: ErrorCode(0),
                })
                .collect(),
        }
    }

    #[test]
    fn placement_lists_partitions_per_broker() {
        let md = Metadata {
            cluster_id: None,
            controller_id: None,
            brokers: vec![],
            topics: vec![
                topic("a", &[(0, &[0, 1]), (1, &[1, 2])]),
                topic("big", &(0..8).map(|i| (i, &[2][..])).collect::<Vec<_>>()),
            ],
        };
        let placement = partitions_by_broker(&md);
        assert_eq!(placement[&0], ["a-0"]);
        assert_eq!(placement[&1], ["a-0", "a-1"]);
        assert_eq!(placement[&2], ["a-1", "big-0", "big-1", "and 6 more"]);
    }
}

/// What became of an UnregisterBroker request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unregistration {
    /// The controller removed the broker's registration.
    Removed,
    /// The controller did not know the broker (`BROKER_ID_NOT_REGISTERED`): already done.
    NotRegistered,
    /// The broker does not offer UnregisterBroker at all: a broker without a controller quorum,
    /// which keeps no registrations.
    Unsupported,
}

/// The outcome of an UnregisterBroker answer; other errors (retriable ones such as NOT_CONTROLLER or
/// REQUEST_TIMED_OUT included) stay errors: the operator retries later.
pub fn unregistration_outcome(answer: Result<(), AdminError>) -> Result<Unregistration, AdminError> {
    /// UNSUPPORTED_VERSION: the API exists but the broker cannot serve it (e.g. no quorum).
    const UNSUPPORTED_VERSION: i16 = 35;
    match answer {
        Ok(()) => Ok(Unregistration::Removed),
        Err(AdminError::Kafka { code, .. }) if code.0 == broker_contract::BROKER_ID_NOT_REGISTERED => {
            Ok(Unregistration::NotRegistered)
        }
        Err(AdminError::Kafka { code, .. }) if code.0 == UNSUPPORTED_VERSION => Ok(Unregistration::Unsupported),
        Err(AdminError::Unsupported { theirs: None, .. }) => Ok(Unregistration::Unsupported),
        Err(e) => Err(e),
    }
}

/// Removes broker `broker_id`'s registration, asking the broker at `addr` (idempotent).
pub async fn unregister_broker(addr: &str, timeout: Duration, broker_id: i32) -> Result<Unregistration, AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    unregistration_outcome(conn.unregister_broker(broker_id).await)
}

#[cfg(test)]
mod unregister_tests {
    use strata_client::kafka_protocol::messages::ApiKey;
    use strata_client::ErrorCode;

    use super::*;

    fn kafka(code: i16) -> Result<(), AdminError> {
        Err(AdminError::Kafka {
            addr: "b:9092".into(),
            what: "unregistering broker 3".into(),
            code: ErrorCode(code),
            message: None,
        })
    }

    #[test]
    fn outcomes_by_answer() {
        // (answer, outcome; None: an error)
        let table = [
            (Ok(()), Some(Unregistration::Removed)),
            (kafka(102), Some(Unregistration::NotRegistered)),
            (kafka(35), Some(Unregistration::Unsupported)),
            (
                Err(AdminError::Unsupported { addr: "b".into(), api: ApiKey::UnregisterBroker, ours: (0, 0), theirs: None }),
                Some(Unregistration::Unsupported),
            ),
            (kafka(41), None), // NOT_CONTROLLER: retried later
            (kafka(7), None),  // REQUEST_TIMED_OUT
            (kafka(42), None), // INVALID_REQUEST
        ];
        for (answer, want) in table {
            let shown = format!("{answer:?}");
            assert_eq!(unregistration_outcome(answer).ok(), want, "{shown}");
        }
    }
}
