//! Admin operations on one connection: each builds one request, sends it at a negotiated version and turns
//! the answer into plain types (`serde::Serialize`, so tools can print them as JSON). Per-item failures
//! (one topic of several) come back per item; whole-request failures as `Err`. Routing to the right broker
//! (leader, controller, coordinator) is [`crate::Client`]'s job.
//!
//! Versions are capped where a newer version changes the request's shape (e.g. OffsetFetch v8 batches
//! groups, DeleteTopics v6 names topics by id): every broker that offers the newer one offers the older.

use std::collections::BTreeMap;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::Serialize;

use crate::connection::Connection;
use crate::error::{ErrorCode, Result};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Timeout the broker may use for admin requests that wait for the cluster (CreateTopics and the like).
const BROKER_TIMEOUT_MS: i32 = 30_000;

#[derive(Clone, Debug, Serialize)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    /// None when the broker reports no controller (-1).
    pub controller_id: Option<i32>,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    #[serde(skip_serializing_if = "ErrorCode::is_ok_ref")]
    pub error: ErrorCode,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 when the partition has no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    #[serde(skip_serializing_if = "ErrorCode::is_ok_ref")]
    pub error: ErrorCode,
}

impl PartitionInfo {
    /// Fewer replicas in sync than assigned.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

impl ErrorCode {
    fn is_ok_ref(&self) -> bool {
        self.is_ok()
    }
}

/// DescribeCluster's view, which also says which brokers are fenced.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: Option<i32>,
    pub brokers: Vec<(BrokerInfo, bool)>,
}

/// The metadata quorum (KRaft's `__cluster_metadata` partition) from DescribeQuorum.
#[derive(Clone, Debug, Serialize)]
pub struct Quorum {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QuorumReplica {
    pub id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch, -1 if unknown.
    pub last_caught_up_ms: i64,
}

#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's default (`num.partitions`).
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What a config belongs to (Kafka's ConfigResource types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// The cluster-wide default of every broker (resource name "").
    BrokerDefault,
}

impl ConfigResource {
    fn type_and_name(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::BrokerDefault => (4, String::new()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic {t}"),
            ConfigResource::Broker(id) => format!("broker {id}"),
            ConfigResource::BrokerDefault => "the cluster-wide broker default".to_string(),
        }
    }
}

/// One change to a setting (IncrementalAlterConfigs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the default.
    Delete(String),
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's ConfigSource name, e.g. `DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`.
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

/// The effective `min.insync.replicas` among a topic's DescribeConfigs entries (its override, else
/// the broker default), if listed and numeric.
pub fn min_insync_replicas(entries: &[ConfigEntry]) -> Option<i32> {
    entries.iter().find(|e| e.name == "min.insync.replicas")?.value.as_deref()?.trim().parse().ok()
}

pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Which offset ListOffsets looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this one (milliseconds); the broker answers -1 when
    /// there is none.
    Timestamp(i64),
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// Size of one partition replica in one log directory (DescribeLogDirs).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReplicaSize {
    pub log_dir: String,
    pub topic: String,
    pub partition: i32,
    pub bytes: i64,
}

/// A partition reassignment in progress (ListPartitionReassignments, KIP-455).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica meanwhile: the target's, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// Per partition: its outcome.
pub type PerPartition = Vec<((String, i32), Result<()>)>;

/// A partition and its target replicas (None: cancel its reassignment).
pub type ReassignTarget = ((String, i32), Option<Vec<i32>>);

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub protocol_type: String,
    pub state: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (e.g. `range`), for consumer groups.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Topic -> partitions, decoded from the consumer protocol's assignment (empty for other protocols).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// Decodes a consumer-protocol member assignment (a version, then ConsumerProtocolAssignment).
pub fn decode_assignment(mut bytes: bytes::Bytes) -> Option<BTreeMap<String, Vec<i32>>> {
    if bytes.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    bytes::Buf::advance(&mut bytes, 2);
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version).ok()?;
    Some(assignment.assigned_partitions.into_iter().map(|tp| (tp.topic.0.to_string(), tp.partitions)).collect())
}

/// Results of a request about several named things (topics, groups): each name with its outcome.
pub type PerName = Vec<(String, Result<()>)>;

impl Connection {
    /// Cluster metadata. `topics`: None for all topics, `Some(&[])` for brokers only.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<Metadata> {
        let version = self.version::<MetadataRequest>(12)?;
        let topics = match topics {
            // v0 has no null list: an empty one means all.
            None if version == 0 => Some(Vec::new()),
            None => None,
            Some(names) => Some(
                names.iter().map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect(),
            ),
        };
        // Before v4 the broker's setting decides, and the field must keep its default.
        let req = MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(version < 4);
        let resp = self.send(version, &req).await?;
        let controller = resp.controller_id.0;
        Ok(Metadata {
            cluster_id: resp.cluster_id.map(|c| c.to_string()),
            controller_id: (controller >= 0).then_some(controller),
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                })
                .collect(),
            topics: resp
                .topics
                .into_iter()
                .map(|t| TopicInfo {
                    name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                    id: t.topic_id.to_string(),
                    internal: t.is_internal,
                    error: ErrorCode(t.error_code),
                    partitions: t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                            offline_replicas: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                            error: ErrorCode(p.error_code),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// DescribeCluster, or None if the broker does not offer it.
    pub async fn describe_cluster(&mut self) -> Result<Option<ClusterDescription>> {
        if !self.supports::<DescribeClusterRequest>() {
            return Ok(None);
        }
        let version = self.version::<DescribeClusterRequest>(2)?;
        let resp = self.send(version, &DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2)).await?;
        self.check(resp.error_code, "DescribeCluster", resp.error_message.as_ref())?;
        let controller = resp.controller_id.0;
        Ok(Some(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: (controller >= 0).then_some(controller),
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| {
                    let info = BrokerInfo {
                        id: b.broker_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    };
                    (info, b.is_fenced)
                })
                .collect(),
        }))
    }

    /// DescribeQuorum of the metadata log, or None if the broker does not offer it (no KRaft quorum).
    pub async fn describe_quorum(&mut self) -> Result<Option<Quorum>> {
        use describe_quorum_request::{PartitionData, TopicData};
        if !self.supports::<DescribeQuorumRequest>() {
            return Ok(None);
        }
        let version = self.version::<DescribeQuorumRequest>(2)?;
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(topic_name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "DescribeQuorum", resp.error_message.as_ref())?;
        let p = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| crate::ClientError::NotFound(format!("{}: DescribeQuorum answered no partition", self.addr())))?;
        self.check(p.error_code, "DescribeQuorum", p.error_message.as_ref())?;
        let replicas = |v: Vec<describe_quorum_response::ReplicaState>| {
            v.into_iter()
                .map(|r| QuorumReplica {
                    id: r.replica_id.0,
                    log_end_offset: r.log_end_offset,
                    last_caught_up_ms: r.last_caught_up_timestamp,
                })
                .collect()
        };
        Ok(Some(Quorum {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(p.current_voters),
            observers: replicas(p.observers),
        }))
    }

    pub async fn create_topics(&mut self, topics: &[NewTopic]) -> Result<PerName> {
        use create_topics_request::{CreatableTopic, CreatableTopicConfig};
        let version = self.version::<CreateTopicsRequest>(7)?;
        let req = CreateTopicsRequest::default().with_timeout_ms(BROKER_TIMEOUT_MS).with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
                                .collect(),
                        )
                })
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        Ok(resp
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let outcome = self.check(t.error_code, format!("creating topic {name}"), t.error_message.as_ref());
                (name, outcome)
            })
            .collect())
    }

    pub async fn delete_topics(&mut self, names: &[String]) -> Result<PerName> {
        let version = self.version::<DeleteTopicsRequest>(5)?;
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect());
        let resp = self.send(version, &req).await?;
        Ok(resp
            .responses
            .iter()
            .map(|r| {
                let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let outcome = self.check(r.error_code, format!("deleting topic {name}"), r.error_message.as_ref());
                (name, outcome)
            })
            .collect())
    }

    /// Grows topics to the given total partition counts.
    pub async fn create_partitions(&mut self, counts: &[(String, i32)]) -> Result<PerName> {
        let version = self.version::<CreatePartitionsRequest>(3)?;
        let req = CreatePartitionsRequest::default().with_timeout_ms(BROKER_TIMEOUT_MS).with_topics(
            counts
                .iter()
                .map(|(name, count)| {
                    create_partitions_request::CreatePartitionsTopic::default().with_name(topic_name(name)).with_count(*count)
                })
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                let name = r.name.0.to_string();
                let outcome = self.check(r.error_code, format!("adding partitions to {name}"), r.error_message.as_ref());
                (name, outcome)
            })
            .collect())
    }

    pub async fn describe_configs(&mut self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        // v0 has no config source.
        let version = self.version_in::<DescribeConfigsRequest>(1, 4)?;
        let (kind, name) = resource.type_and_name();
        let req =
            DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(&name))
                .with_configuration_keys(None)]);
        let resp = self.send(version, &req).await?;
        let result = resp.results.into_iter().next().ok_or_else(|| self.empty_answer("DescribeConfigs"))?;
        self.check(result.error_code, format!("describing configs of {}", resource.describe()), result.error_message.as_ref())?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: config_source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect())
    }

    pub async fn alter_configs(&mut self, resource: &ConfigResource, changes: &[ConfigChange]) -> Result<()> {
        let version = self.version::<IncrementalAlterConfigsRequest>(1)?;
        let resp = self.send(version, &alter_configs_request(resource, changes)).await?;
        let result = resp.responses.first().ok_or_else(|| self.empty_answer("IncrementalAlterConfigs"))?;
        self.check(result.error_code, format!("changing configs of {}", resource.describe()), result.error_message.as_ref())
    }

    /// Removes broker `broker_id`'s registration from the controller quorum (UnregisterBroker; any broker
    /// passes it to the active controller).
    pub async fn unregister_broker(&mut self, broker_id: i32) -> Result<()> {
        let version = self.version::<UnregisterBrokerRequest>(0)?;
        let resp = self.send(version, &UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker_id))).await?;
        self.check(resp.error_code, format!("unregistering broker {broker_id}"), resp.error_message.as_ref())
    }

    /// Elects leaders (ElectLeaders; any broker passes it to the active controller): each partition's preferred
    /// replica (the first) if it is live and in sync, or with `unclean` any live replica of a partition that
    /// has no leader. `partitions` None: every partition; then only those elected, or that could not be, are
    /// listed (ELECTION_NOT_NEEDED is left out).
    pub async fn elect_leaders(&mut self, partitions: Option<&[(String, i32)]>, unclean: bool) -> Result<PerPartition> {
        let version = self.version_in::<ElectLeadersRequest>(1, 2)?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in partitions.unwrap_or_default() {
            by_topic.entry(topic).or_default().push(*p);
        }
        let req = ElectLeadersRequest::default()
            .with_election_type(i8::from(unclean))
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topic_partitions(partitions.map(|_| {
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        elect_leaders_request::TopicPartitions::default().with_topic(topic_name(t)).with_partitions(ps)
                    })
                    .collect()
            }));
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "electing leaders", None)?;
        Ok(resp
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().map(|p| {
                    let topic = t.topic.0.to_string();
                    let what = format!("electing a leader of {topic}-{}", p.partition_id);
                    ((topic, p.partition_id), self.check(p.error_code, what, p.error_message.as_ref()))
                })
            })
            .collect())
    }

    /// Offsets of partitions this broker leads; per partition the offset or the error.
    pub async fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<Vec<((String, i32), Result<i64>)>> {
        use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        // v0 answered lists of offsets.
        let version = self.version_in::<ListOffsetsRequest>(1, 7)?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default().with_name(topic_name(t)).with_partitions(
                        ps.into_iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(spec.timestamp())
                            })
                            .collect(),
                    )
                })
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        let mut out = Vec::new();
        for t in resp.topics {
            let topic = t.name.0.to_string();
            for p in t.partitions {
                let what = format!("offsets of {topic}-{}", p.partition_index);
                out.push(((topic.clone(), p.partition_index), self.check(p.error_code, what, None).map(|()| p.offset)));
            }
        }
        Ok(out)
    }

    /// Replica sizes on this broker (DescribeLogDirs), or None if the broker does not offer it.
    pub async fn describe_log_dirs(&mut self) -> Result<Option<Vec<ReplicaSize>>> {
        if !self.supports::<DescribeLogDirsRequest>() {
            return Ok(None);
        }
        let version = self.version::<DescribeLogDirsRequest>(4)?;
        let resp = self.send(version, &DescribeLogDirsRequest::default().with_topics(None)).await?;
        self.check(resp.error_code, "DescribeLogDirs", None)?;
        let mut out = Vec::new();
        for dir in resp.results {
            self.check(dir.error_code, format!("log dir {}", dir.log_dir), None)?;
            for t in dir.topics {
                for p in t.partitions {
                    out.push(ReplicaSize {
                        log_dir: dir.log_dir.to_string(),
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        bytes: p.partition_size,
                    });
                }
            }
        }
        Ok(Some(out))
    }

    /// Moves partitions to new replicas (AlterPartitionReassignments, KIP-455): for each (topic, partition), its
    /// target replicas (the first is the preferred leader), or None to cancel the reassignment in progress. The
    /// reassignment goes on after the answer; [`Connection::list_partition_reassignments`] shows it until done.
    pub async fn alter_partition_reassignments(&mut self, targets: &[ReassignTarget]) -> Result<PerPartition> {
        use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
        let version = self.version::<AlterPartitionReassignmentsRequest>(0)?;
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for ((topic, partition), replicas) in targets {
            by_topic.entry(topic).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*partition)
                    .with_replicas(replicas.as_ref().map(|r| r.iter().copied().map(BrokerId).collect())),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(BROKER_TIMEOUT_MS).with_topics(
            by_topic
                .into_iter()
                .map(|(t, partitions)| ReassignableTopic::default().with_name(topic_name(t)).with_partitions(partitions))
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "reassigning partitions", resp.error_message.as_ref())?;
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                let what = format!("reassigning {}-{}", t.name.0, p.partition_index);
                out.push(((t.name.0.to_string(), p.partition_index), self.check(p.error_code, what, p.error_message.as_ref())));
            }
        }
        Ok(out)
    }

    /// The partition reassignments in progress: of every partition (None), or of these.
    pub async fn list_partition_reassignments(&mut self, partitions: Option<&[(String, i32)]>) -> Result<Vec<Reassignment>> {
        use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
        let version = self.version::<ListPartitionReassignmentsRequest>(0)?;
        let topics = partitions.map(|ps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| ListPartitionReassignmentsTopics::default().with_name(topic_name(t)).with_partition_indexes(ps))
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(BROKER_TIMEOUT_MS).with_topics(topics);
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "listing partition reassignments", resp.error_message.as_ref())?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect();
        Ok(resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| Reassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                })
            })
            .collect())
    }

    /// Groups this broker coordinates.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let version = self.version::<ListGroupsRequest>(4)?;
        let resp = self.send(version, &ListGroupsRequest::default()).await?;
        self.check(resp.error_code, "listing groups", None)?;
        Ok(resp
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect())
    }

    /// Describes a group; send to its coordinator.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let version = self.version::<DescribeGroupsRequest>(5)?;
        let resp = self.send(version, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))])).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| self.empty_answer("DescribeGroups"))?;
        self.check(g.error_code, format!("describing group {group}"), g.error_message.as_ref())?;
        let consumer = g.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: consumer.then(|| decode_assignment(m.member_assignment)).flatten().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Deletes groups; send to their coordinator.
    pub async fn delete_groups(&mut self, groups: &[String]) -> Result<PerName> {
        let version = self.version::<DeleteGroupsRequest>(2)?;
        let req = DeleteGroupsRequest::default().with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect());
        let resp = self.send(version, &req).await?;
        Ok(resp
            .results
            .iter()
            .map(|r| {
                let name = r.group_id.0.to_string();
                let outcome = self.check(r.error_code, format!("deleting group {name}"), None);
                (name, outcome)
            })
            .collect())
    }

    /// A group's committed offsets of all topics; send to its coordinator.
    pub async fn fetch_offsets(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        // From v2 on, no topic list means all of the group's topics.
        let version = self.version_in::<OffsetFetchRequest>(2, 7)?;
        let resp = self.send(version, &OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(None)).await?;
        self.check(resp.error_code, format!("committed offsets of group {group}"), None)?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                let what = format!("committed offset of group {group} on {}-{}", t.name.0, p.partition_index);
                self.check(p.error_code, what, None)?;
                if p.committed_offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits offsets for a group without members (as an admin tool does: generation -1, no member id);
    /// send to its coordinator.
    pub async fn commit_offsets(&mut self, group: &str, offsets: &BTreeMap<(String, i32), i64>) -> Result<()> {
        use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        let version = self.version::<OffsetCommitRequest>(8)?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), offset) in offsets {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps))
                    .collect(),
            );
        let resp = self.send(version, &req).await?;
        for t in resp.topics {
            for p in t.partitions {
                self.check(
                    p.error_code,
                    format!("committing group {group}'s offset on {}-{}", t.name.0, p.partition_index),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// The group's coordinator: (broker id, address).
    pub async fn find_coordinator(&mut self, group: &str) -> Result<(i32, String)> {
        let version = self.version::<FindCoordinatorRequest>(3)?;
        let resp = self.send(version, &FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0)).await?;
        self.check(resp.error_code, format!("finding the coordinator of group {group}"), resp.error_message.as_ref())?;
        Ok((resp.node_id.0, format!("{}:{}", resp.host, resp.port)))
    }

    fn empty_answer(&self, api: &str) -> crate::ClientError {
        crate::ClientError::Protocol { addr: self.addr().to_string(), reason: format!("{api} answered nothing") }
    }
}

pub fn alter_configs_request(resource: &ConfigResource, changes: &[ConfigChange]) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    const OP_SET: i8 = 0;
    const OP_DELETE: i8 = 1;
    let configs = changes
        .iter()
        .map(|c| match c {
            ConfigChange::Set(k, v) => {
                AlterableConfig::default().with_name(s(k)).with_config_operation(OP_SET).with_value(Some(s(v)))
            }
            ConfigChange::Delete(k) => {
                AlterableConfig::default().with_name(s(k)).with_config_operation(OP_DELETE).with_value(None)
            }
        })
        .collect();
    let (kind, name) = resource.type_and_name();
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(&name))
        .with_configs(configs)])
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    use kafka_protocol::protocol::Encodable;
    use tokio::net::TcpListener;

    use super::*;
    use crate::connection::tests::{answer_versions, read_request, respond};

    #[test]
    fn alter_request_targets_the_resource() {
        let req = alter_configs_request(
            &ConfigResource::Broker(2),
            &[ConfigChange::Set("log.retention.ms".into(), "5".into()), ConfigChange::Delete("log.roll.ms".into())],
        );
        let r = &req.resources[0];
        assert_eq!((r.resource_type, r.resource_name.as_str()), (4, "2"));
        assert_eq!(r.configs[0].config_operation, 0);
        assert_eq!(r.configs[0].value.as_ref().map(|v| v.as_str()), Some("5"));
        assert_eq!((r.configs[1].name.as_str(), r.configs[1].config_operation), ("log.roll.ms", 1));
        assert_eq!(r.configs[1].value, None);
        let req = alter_configs_request(&ConfigResource::BrokerDefault, &[]);
        assert_eq!((req.resources[0].resource_type, req.resources[0].resource_name.as_str()), (4, ""));
        assert!(!req.validate_only);
        let req = alter_configs_request(&ConfigResource::Topic("t".into()), &[]);
        assert_eq!((req.resources[0].resource_type, req.resources[0].resource_name.as_str()), (2, "t"));
    }

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            consumer_protocol_assignment::TopicPartition::default().with_topic(topic_name("a")).with_partitions(vec![0, 2]),
        ]);
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        assignment.encode(&mut buf, 1).unwrap();
        assert_eq!(decode_assignment(buf.freeze()), Some(BTreeMap::from([("a".to_string(), vec![0, 2])])));
        assert_eq!(decode_assignment(bytes::Bytes::from_static(&[0])), None);
    }

    /// Reassignments go out grouped by topic (null replicas cancel); answers come back per partition, and a
    /// listing comes back flat.
    #[tokio::test]
    async fn partition_reassignments_round_trip() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            answer_versions(
                &mut sock,
                &[(ApiKey::AlterPartitionReassignments, 0, 0), (ApiKey::ListPartitionReassignments, 0, 0)],
            )
            .await;
            let (h, mut body) = read_request(&mut sock).await;
            let req = AlterPartitionReassignmentsRequest::decode(&mut body, 0).unwrap();
            let partitions: Vec<(String, i32, Option<Vec<i32>>)> = req
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (t.name.0.to_string(), p.partition_index, p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()))
                    })
                })
                .collect();
            use alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
            let resp = AlterPartitionReassignmentsResponse::default().with_responses(
                req.topics
                    .iter()
                    .map(|t| {
                        ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    let cancel = p.replicas.is_none();
                                    ReassignablePartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(if cancel { 85 } else { 0 })
                                        .with_error_message(cancel.then(|| StrBytes::from_static_str("nothing to cancel")))
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            );
            respond(&mut sock, &h, &resp).await;
            let (h, mut body) = read_request(&mut sock).await;
            let req = ListPartitionReassignmentsRequest::decode(&mut body, 0).unwrap();
            use list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
            let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect();
            let resp = ListPartitionReassignmentsResponse::default().with_topics(vec![OngoingTopicReassignment::default()
                .with_name(topic_name("a"))
                .with_partitions(vec![OngoingPartitionReassignment::default()
                    .with_partition_index(1)
                    .with_replicas(ids(&[2, 3, 1]))
                    .with_adding_replicas(ids(&[3]))
                    .with_removing_replicas(ids(&[1]))])]);
            respond(&mut sock, &h, &resp).await;
            (partitions, req.topics.map(|t| t.len()))
        });
        let mut conn = Connection::connect(&addr, "test", std::time::Duration::from_secs(5)).await.unwrap();
        let targets =
            [(("b".to_string(), 0), Some(vec![1, 2])), (("a".to_string(), 1), Some(vec![2, 3])), (("b".to_string(), 4), None)];
        let outcomes = conn.alter_partition_reassignments(&targets).await.unwrap();
        let summary: Vec<(String, i32, Option<String>)> =
            outcomes.into_iter().map(|((t, p), r)| (t, p, r.err().map(|e| e.to_string()))).collect();
        let cancel_error = format!("{addr}: reassigning b-4: NO_REASSIGNMENT_IN_PROGRESS (85): nothing to cancel");
        assert_eq!(summary, vec![("a".into(), 1, None), ("b".into(), 0, None), ("b".into(), 4, Some(cancel_error))]);
        let listed = conn.list_partition_reassignments(None).await.unwrap();
        assert_eq!(
            listed,
            vec![Reassignment { topic: "a".into(), partition: 1, replicas: vec![2, 3, 1], adding: vec![3], removing: vec![1] }]
        );
        let (sent, listed_topics) = broker.await.unwrap();
        assert_eq!(sent, vec![("a".into(), 1, Some(vec![2, 3])), ("b".into(), 0, Some(vec![1, 2])), ("b".into(), 4, None)]);
        assert_eq!(listed_topics, None, "None asks for every partition");
    }

    /// A per-resource error of IncrementalAlterConfigs surfaces with the broker and the code in words.
    #[tokio::test]
    async fn alter_configs_reports_rejections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            answer_versions(&mut sock, &[(ApiKey::IncrementalAlterConfigs, 0, 1)]).await;
            let mut seen = Vec::new();
            for code in [0i16, 40] {
                let (h, mut body) = read_request(&mut sock).await;
                assert_eq!((h.request_api_key, h.request_api_version), (44, 1));
                let req = IncrementalAlterConfigsRequest::decode(&mut body, 1).unwrap();
                let resp =
                    IncrementalAlterConfigsResponse::default().with_responses(vec![AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_error_message((code != 0).then(|| StrBytes::from_static_str("bad value")))
                        .with_resource_type(4)
                        .with_resource_name(req.resources[0].resource_name.clone())]);
                seen.push(req);
                respond(&mut sock, &h, &resp).await;
            }
            seen
        });
        let mut conn = Connection::connect(&addr, "test", std::time::Duration::from_secs(5)).await.unwrap();
        let changes = [ConfigChange::Set("log.retention.ms".into(), "60000".into())];
        conn.alter_configs(&ConfigResource::Broker(3), &changes).await.unwrap();
        let err = conn.alter_configs(&ConfigResource::Broker(3), &changes).await.unwrap_err();
        assert_eq!(err.to_string(), format!("{addr}: changing configs of broker 3: INVALID_CONFIG (40): bad value"));
        let seen = broker.await.unwrap();
        assert_eq!(seen[0], alter_configs_request(&ConfigResource::Broker(3), &changes));
    }
}
