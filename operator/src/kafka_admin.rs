//! What the operator asks of running brokers, over strata-client: apply the dynamic settings of the spec,
//! find which brokers host partitions (before a scale-down), and whether a restart keeps the cluster
//! available (before and after each restart of a roll).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use strata_client::admin::{min_insync_replicas, ClusterDescription, Metadata, Quorum};
pub use strata_client::admin::{ConfigChange, ConfigResource};
pub use strata_client::ClientError as AdminError;
use strata_client::Connection;

use crate::broker_contract;
use crate::roll_safety::{PartitionIsr, QuorumProgress, Rejoin};

const CLIENT_ID: &str = "strata-operator";

/// Changes that make a broker's dynamic user settings equal `desired`: every such key not in
/// `desired` is reset, so removing a setting from the spec takes effect too. Operator-owned
/// dynamic keys (the membership) and the cluster-wide ones ([`cluster_changes`]) are pushed on
/// their own.
pub fn dynamic_changes(desired: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    let keys = broker_contract::KNOWN_KEYS
        .iter()
        .filter(|k| k.dynamic && k.owner == broker_contract::Owner::User)
        .map(|k| k.name)
        .filter(|k| !broker_contract::CLUSTER_WIDE_KEYS.contains(k));
    set_or_reset(keys, desired)
}

/// Changes that make the cluster-wide settings ([`broker_contract::CLUSTER_WIDE_KEYS`]) equal `desired`.
pub fn cluster_changes(desired: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    set_or_reset(broker_contract::CLUSTER_WIDE_KEYS.iter().copied(), desired)
}

fn set_or_reset<'a>(keys: impl Iterator<Item = &'a str>, desired: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    keys.map(|k| match desired.get(k) {
        Some(v) => ConfigChange::Set(k.to_string(), v.clone()),
        None => ConfigChange::Delete(k.to_string()),
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

/// Applies dynamic settings to `resource` (a broker, or all of them) through the broker at `addr`.
pub async fn alter_broker_configs(
    addr: &str,
    timeout: Duration,
    resource: &ConfigResource,
    changes: &[ConfigChange],
) -> Result<(), AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    conn.alter_configs(resource, changes).await
}

/// Which brokers hold replicas of which partitions, as the broker at `addr` sees the cluster.
pub async fn placement(addr: &str, timeout: Duration) -> Result<BTreeMap<i32, Vec<String>>, AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    Ok(partitions_by_broker(&conn.metadata(None).await?))
}

/// Every partition with a replica on `broker`, with `min_insync` of its topic (1 if unknown,
/// Kafka's default).
pub fn partitions_on(metadata: &Metadata, broker: i32, min_insync: impl Fn(&str) -> Option<i32>) -> Vec<PartitionIsr> {
    metadata
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(_, p)| p.replicas.contains(&broker))
        .map(|(t, p)| PartitionIsr {
            topic: t.name.clone(),
            partition: p.partition,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            min_insync: min_insync(&t.name).unwrap_or(1),
        })
        .collect()
}

pub fn quorum_progress(q: &Quorum) -> QuorumProgress {
    QuorumProgress {
        leader: q.leader_id,
        high_watermark: q.high_watermark,
        voters: q.voters.iter().map(|v| (v.id, v.log_end_offset)).collect(),
    }
}

/// Whether `broker` is registered and fenced (DescribeCluster lists fenced brokers too; without
/// DescribeCluster, Metadata lists the unfenced ones), and which partitions are under-replicated.
pub fn rejoin_of(broker: i32, cluster: Option<&ClusterDescription>, metadata: &Metadata) -> Rejoin {
    let fenced = match cluster {
        Some(c) => c.brokers.iter().find(|(b, _)| b.id == broker).map(|(_, fenced)| *fenced),
        None => metadata.brokers.iter().any(|b| b.id == broker).then_some(false),
    };
    let under_replicated = metadata
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|p| p.is_under_replicated()).map(move |p| format!("{}-{}", t.name, p.partition)))
        .collect();
    Rejoin { fenced, under_replicated }
}

/// What restarting `broker` would do, asked of `broker` itself (it serves, so its metadata is
/// current): its partitions with their ISR and min.insync.replicas, and the metadata quorum's
/// progress (None without a quorum).
pub async fn roll_check(
    addr: &str,
    timeout: Duration,
    broker: i32,
) -> Result<(Vec<PartitionIsr>, Option<QuorumProgress>), AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    let metadata = conn.metadata(None).await?;
    let topics: BTreeSet<String> = partitions_on(&metadata, broker, |_| None).into_iter().map(|p| p.topic).collect();
    let mut min_insync = BTreeMap::new();
    for topic in topics {
        let entries = conn.describe_configs(&ConfigResource::Topic(topic.clone())).await?;
        min_insync.insert(topic, min_insync_replicas(&entries));
    }
    let partitions = partitions_on(&metadata, broker, |t| min_insync.get(t).copied().flatten());
    let quorum = conn.describe_quorum().await?.as_ref().map(quorum_progress);
    Ok((partitions, quorum))
}

/// Whether restarted `broker` is back in service, asked of `broker` itself: once it is unfenced
/// it has caught up with the metadata log, so its view is the cluster's.
pub async fn rejoin(addr: &str, timeout: Duration, broker: i32) -> Result<Rejoin, AdminError> {
    let mut conn = Connection::connect(addr, CLIENT_ID, timeout).await?;
    let cluster = conn.describe_cluster().await?;
    let metadata = conn.metadata(None).await?;
    Ok(rejoin_of(broker, cluster.as_ref(), &metadata))
}

#[cfg(test)]
mod tests {
    use strata_client::admin::{BrokerInfo, PartitionInfo, QuorumReplica, TopicInfo};
    use strata_client::ErrorCode;

    use super::*;

    #[test]
    fn changes_set_desired_and_reset_the_rest() {
        let desired = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let changes = dynamic_changes(&desired);
        assert!(changes.contains(&ConfigChange::Set("log.retention.ms".into(), "1000".into())));
        assert!(changes.contains(&ConfigChange::Delete("log.retention.bytes".into())));
        for key in ["num.partitions", "controller.quorum.voters", "min.insync.replicas", "default.replication.factor"] {
            assert!(!changes.iter().any(|c| matches!(c, ConfigChange::Delete(k) | ConfigChange::Set(k, _) if k == key)), "{key}");
        }
    }

    #[test]
    fn cluster_changes_cover_only_the_cluster_wide_keys() {
        let desired = BTreeMap::from([("default.replication.factor".to_string(), "3".to_string())]);
        assert_eq!(
            cluster_changes(&desired),
            [
                ConfigChange::Set("default.replication.factor".into(), "3".into()),
                ConfigChange::Delete("min.insync.replicas".into())
            ]
        );
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

    fn metadata(brokers: &[i32], topics: Vec<TopicInfo>) -> Metadata {
        let brokers = brokers.iter().map(|id| BrokerInfo { id: *id, host: "h".into(), port: 9092, rack: None }).collect();
        Metadata { cluster_id: None, controller_id: None, brokers, topics }
    }

    #[test]
    fn roll_facts_from_metadata() {
        let mut t = topic("a", &[(0, &[0, 1, 2]), (1, &[1, 2, 3])]);
        t.partitions[1].isr = vec![1, 2];
        let md = metadata(&[0, 1, 2], vec![t, topic("b", &[(0, &[3])])]);
        let on_0 = partitions_on(&md, 0, |t| (t == "a").then_some(2));
        assert_eq!(on_0.len(), 1);
        assert_eq!((on_0[0].topic.as_str(), on_0[0].partition, on_0[0].min_insync), ("a", 0, 2));
        let on_3 = partitions_on(&md, 3, |_| None);
        assert_eq!(on_3.iter().map(|p| (p.topic.as_str(), p.min_insync)).collect::<Vec<_>>(), [("a", 1), ("b", 1)]);
        // (DescribeCluster answer) -> fenced state of broker 1 and 3
        let described = |fenced: &[(i32, bool)]| ClusterDescription {
            cluster_id: "c".into(),
            controller_id: Some(0),
            brokers: fenced.iter().map(|(id, f)| (BrokerInfo { id: *id, host: "h".into(), port: 1, rack: None }, *f)).collect(),
        };
        let c = described(&[(1, true), (2, false)]);
        let r = rejoin_of(1, Some(&c), &md);
        assert_eq!((r.fenced, r.under_replicated.clone()), (Some(true), vec!["a-1".to_string()]));
        assert_eq!(rejoin_of(3, Some(&c), &md).fenced, None, "not registered");
        assert_eq!(rejoin_of(2, Some(&c), &md).fenced, Some(false));
        // Without DescribeCluster, Metadata lists the serving brokers.
        assert_eq!((rejoin_of(1, None, &md).fenced, rejoin_of(3, None, &md).fenced), (Some(false), None));
        let q = Quorum {
            leader_id: 1,
            leader_epoch: 4,
            high_watermark: 50,
            voters: vec![QuorumReplica { id: 0, log_end_offset: 50, last_caught_up_ms: -1 }],
            observers: vec![QuorumReplica { id: 5, log_end_offset: 3, last_caught_up_ms: -1 }],
        };
        assert_eq!(quorum_progress(&q), QuorumProgress { leader: 1, high_watermark: 50, voters: vec![(0, 50)] });
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
