//! What the operator asks of running brokers, over strata-client: apply the dynamic settings of the spec,
//! where partitions are and how big (to move them when brokers come and go), and whether a restart keeps
//! the cluster available (before and after each restart of a roll).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use strata_client::admin::{min_insync_replicas, ClusterDescription, Metadata, Quorum};
pub use strata_client::admin::{ConfigChange, ConfigResource};
pub use strata_client::ClientError as AdminError;
use strata_client::{Client, ClientConfig, Connection, ErrorCode, Security};

use crate::crd::LogCluster;
use crate::rebalance::{self, Move, Placement, View};
use crate::roll_safety::{PartitionIsr, QuorumProgress, Rejoin};
use crate::status::{is_ready, is_terminating};
use crate::{broker_contract, listeners, names};

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

/// How the operator reaches a cluster's brokers: the listener it uses (the brokers' own in a secured
/// cluster, with the operator's client certificate; else the first client listener) and the timeout of
/// each step.
#[derive(Clone, Debug)]
pub struct Access {
    port: i32,
    security: Security,
    timeout: Duration,
}

impl Access {
    pub fn new(lc: &LogCluster, security: Security, timeout: Duration) -> Access {
        Access { port: listeners::plan(&lc.spec.listeners).inter_broker().port, security, timeout }
    }

    /// A broker pod's address on that listener (its IP: the operator may have no cluster DNS); None while
    /// it has no IP.
    pub fn addr(&self, pod: &Pod) -> Option<String> {
        let ip = pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
        Some(self.addr_at(ip))
    }

    pub fn addr_at(&self, ip: &str) -> String {
        format!("{ip}:{}", self.port)
    }

    /// The addresses of `lc`'s ready brokers, lowest ordinal first.
    pub fn ready_brokers(&self, lc: &LogCluster, pods: &[Pod]) -> Vec<String> {
        let sts = names::statefulset(lc);
        let mut ready: Vec<(i32, String)> = pods
            .iter()
            .filter(|p| is_ready(p) && !is_terminating(p))
            .filter_map(|p| Some((names::ordinal_of(&sts, p.metadata.name.as_deref()?)?, self.addr(p)?)))
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, addr)| addr).collect()
    }

    pub async fn connection(&self, addr: &str) -> Result<Connection, AdminError> {
        self.security.connect(addr, CLIENT_ID, self.timeout).await
    }

    /// A client of the cluster, bootstrapped from `addrs` (any broker answers admin requests: it passes
    /// them to the active controller).
    pub async fn client(&self, addrs: Vec<String>) -> Result<Client, AdminError> {
        let config = ClientConfig {
            bootstrap: addrs,
            client_id: CLIENT_ID.to_string(),
            timeout: self.timeout,
            security: self.security.clone(),
        };
        Client::connect(config).await
    }

    /// Applies dynamic settings to `resource` (a broker, or all of them) through the broker at `addr`.
    pub async fn alter_broker_configs(
        &self,
        addr: &str,
        resource: &ConfigResource,
        changes: &[ConfigChange],
    ) -> Result<(), AdminError> {
        self.connection(addr).await?.alter_configs(resource, changes).await
    }

    /// What restarting `broker` would do, asked of `broker` itself (it serves, so its metadata is
    /// current): its partitions with their ISR and min.insync.replicas, and the metadata quorum's
    /// progress (None without a quorum).
    pub async fn roll_check(&self, addr: &str, broker: i32) -> Result<(Vec<PartitionIsr>, Option<QuorumProgress>), AdminError> {
        let mut conn = self.connection(addr).await?;
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
    pub async fn rejoin(&self, addr: &str, broker: i32) -> Result<Rejoin, AdminError> {
        let mut conn = self.connection(addr).await?;
        let cluster = conn.describe_cluster().await?;
        let metadata = conn.metadata(None).await?;
        Ok(rejoin_of(broker, cluster.as_ref(), &metadata))
    }

    /// Removes broker `broker_id`'s registration, asking the broker at `addr` (idempotent).
    pub async fn unregister_broker(&self, addr: &str, broker_id: i32) -> Result<Unregistration, AdminError> {
        unregistration_outcome(self.connection(addr).await?.unregister_broker(broker_id).await)
    }
}

/// Where every partition's replicas are and how big it is (the largest replica any broker reports;
/// a broker that does not answer only leaves sizes out), which brokers serve, and how many
/// reassignments are in progress.
pub async fn cluster_view(client: &mut Client) -> Result<View, AdminError> {
    let metadata = client.metadata(None).await?;
    let conn = client.any();
    let live = match conn.describe_cluster().await? {
        Some(c) => c.brokers.iter().filter(|(_, fenced)| !fenced).map(|(b, _)| b.id).collect(),
        None => metadata.brokers.iter().map(|b| b.id).collect(),
    };
    let reassigning = conn.list_partition_reassignments(None).await?.len();
    let mut sizes: BTreeMap<(String, i32), u64> = BTreeMap::new();
    for id in metadata.brokers.iter().map(|b| b.id) {
        let reported = match client.broker(id).await {
            Ok(conn) => conn.describe_log_dirs().await,
            Err(e) => Err(e),
        };
        match reported {
            Ok(replicas) => {
                for r in replicas.unwrap_or_default() {
                    let size = sizes.entry((r.topic, r.partition)).or_default();
                    *size = (*size).max(u64::try_from(r.bytes).unwrap_or(0));
                }
            }
            Err(e) => tracing::warn!(broker = id, error = %e, "no replica sizes from this broker"),
        }
    }
    let parts = metadata
        .topics
        .iter()
        .filter(|t| t.error.is_ok())
        .flat_map(|t| {
            t.partitions.iter().map(|p| Placement {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                bytes: sizes.get(&(t.name.clone(), p.partition)).copied().unwrap_or(0),
            })
        })
        .collect();
    Ok(View { parts, reassigning, live })
}

/// Starts `moves` as reassignments, throttled to `rate` bytes/s: the brokers' replication rates
/// (cluster-wide default) and each moving topic's throttled replicas, set first, so the copying
/// never runs unthrottled.
pub async fn start_moves(client: &mut Client, moves: &[Move], rate: i64) -> Result<(), AdminError> {
    let conn = client.any();
    let rates = [
        ConfigChange::Set(broker_contract::LEADER_THROTTLE_RATE.to_string(), rate.to_string()),
        ConfigChange::Set(broker_contract::FOLLOWER_THROTTLE_RATE.to_string(), rate.to_string()),
    ];
    conn.alter_configs(&ConfigResource::BrokerDefault, &rates).await?;
    for (topic, (leaders, followers)) in rebalance::throttled_replicas(moves) {
        let lists = [
            ConfigChange::Set(broker_contract::LEADER_THROTTLED_REPLICAS.to_string(), leaders),
            ConfigChange::Set(broker_contract::FOLLOWER_THROTTLED_REPLICAS.to_string(), followers),
        ];
        conn.alter_configs(&ConfigResource::Topic(topic.to_string()), &lists).await?;
    }
    let targets: Vec<_> = moves.iter().map(|m| ((m.topic.clone(), m.partition), Some(m.to.clone()))).collect();
    conn.alter_partition_reassignments(&targets).await?.into_iter().try_for_each(|(_, r)| r)
}

/// Removes the throttles [`start_moves`] set, from the brokers and from `topics` (a topic deleted
/// meanwhile has none left).
pub async fn clear_throttles(client: &mut Client, topics: &BTreeSet<String>) -> Result<(), AdminError> {
    const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = ErrorCode(3);
    let conn = client.any();
    let rates = [broker_contract::LEADER_THROTTLE_RATE, broker_contract::FOLLOWER_THROTTLE_RATE];
    conn.alter_configs(&ConfigResource::BrokerDefault, &rates.map(|k| ConfigChange::Delete(k.to_string()))).await?;
    let lists = [broker_contract::LEADER_THROTTLED_REPLICAS, broker_contract::FOLLOWER_THROTTLED_REPLICAS];
    for topic in topics {
        let cleared =
            conn.alter_configs(&ConfigResource::Topic(topic.clone()), &lists.map(|k| ConfigChange::Delete(k.to_string()))).await;
        match cleared {
            Err(e) if e.code() == Some(UNKNOWN_TOPIC_OR_PARTITION) => {}
            other => other?,
        }
    }
    Ok(())
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
