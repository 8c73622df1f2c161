//! What the controller sends the other brokers after a topic change, as ordinary Kafka requests marked as
//! peer metadata ([`peer::PEER_CLIENT_ID`]): a topic with its id, assignment and config overrides; a deletion
//! by id; new partitions with their assignment; a topic's complete config overrides. Pushes are best effort:
//! a broker that misses one catches up through anti-entropy.

use std::collections::BTreeMap;

use futures::future::join_all;
use kafka_protocol::messages::{
    create_partitions_request, create_topics_request, delete_topics_request, incremental_alter_configs_request, ApiKey, BrokerId,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_storage::LogConfig;
use uuid::Uuid;

use super::membership::BrokerAddr;
use super::peer::{self, PeerError};
use super::PEER_TIMEOUT;
use crate::topics::TopicMeta;

/// The config entry that carries a topic's id in a pushed CreateTopics (which has no id field). Only peers
/// may send it; from clients it is an unknown config like any other.
pub const TOPIC_ID_CONFIG: &str = "strata.topic.id";

pub const CREATE_TOPICS_VERSION: i16 = 7;
pub const DELETE_TOPICS_VERSION: i16 = 6;
pub const CREATE_PARTITIONS_VERSION: i16 = 3;
pub const ALTER_CONFIGS_VERSION: i16 = 1;
const TOPIC_RESOURCE: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn broker_ids(replicas: &[i32]) -> Vec<BrokerId> {
    replicas.iter().map(|b| BrokerId(*b)).collect()
}

/// Topics as decided by the controller.
pub fn create_topics(topics: &[TopicMeta]) -> CreateTopicsRequest {
    let topics = topics
        .iter()
        .map(|t| {
            let config =
                |k: &str, v: &str| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)));
            let mut configs: Vec<_> = t.configs.iter().map(|(k, v)| config(k, v)).collect();
            configs.push(config(TOPIC_ID_CONFIG, &t.id.to_string()));
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(t.name.clone())))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(
                    t.assignment
                        .iter()
                        .enumerate()
                        .map(|(p, r)| {
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_partition_index(p as i32)
                                .with_broker_ids(broker_ids(r))
                        })
                        .collect(),
                )
                .with_configs(configs)
        })
        .collect();
    CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(PEER_TIMEOUT.as_millis() as i32)
}

/// Removes [`TOPIC_ID_CONFIG`] from pushed configs and returns the id it carried.
pub fn take_topic_id(configs: &mut BTreeMap<String, String>) -> Result<Uuid, String> {
    let id = configs.remove(TOPIC_ID_CONFIG).ok_or_else(|| format!("a pushed topic needs {TOPIC_ID_CONFIG}"))?;
    id.parse().map_err(|e| format!("{TOPIC_ID_CONFIG} {id:?}: {e}"))
}

pub fn delete_topics(deleted: &[(String, Uuid)]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default().with_timeout_ms(PEER_TIMEOUT.as_millis() as i32).with_topics(
        deleted
            .iter()
            .map(|(name, id)| {
                delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(s(name.clone())))).with_topic_id(*id)
            })
            .collect(),
    )
}

/// A topic grown to `count` partitions, the new ones assigned as `added`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grown {
    pub name: String,
    pub count: i32,
    pub added: Vec<Vec<i32>>,
}

pub fn create_partitions(grown: &[Grown]) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default().with_timeout_ms(PEER_TIMEOUT.as_millis() as i32).with_topics(
        grown
            .iter()
            .map(|g| {
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(s(g.name.clone())))
                    .with_count(g.count)
                    .with_assignments(Some(
                        g.added
                            .iter()
                            .map(|r| {
                                create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(broker_ids(r))
                            })
                            .collect(),
                    ))
            })
            .collect(),
    )
}

/// The complete overrides of each topic: every topic config is set or removed, so a broker whose overrides
/// drifted ends up with the controller's.
pub fn topic_configs(topics: &[TopicMeta]) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                let ops = LogConfig::KEYS
                    .iter()
                    .map(|k| {
                        let op = incremental_alter_configs_request::AlterableConfig::default().with_name(s(*k));
                        match t.configs.get(*k) {
                            Some(v) => op.with_config_operation(OP_SET).with_value(Some(s(v.clone()))),
                            None => op.with_config_operation(OP_DELETE).with_value(None),
                        }
                    })
                    .collect();
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(s(t.name.clone()))
                    .with_configs(ops)
            })
            .collect(),
    )
}

/// Sends `request` to every peer at once and logs who did not take it (`refused` lists the errors in an
/// answer). A peer that missed it catches up through anti-entropy.
pub async fn broadcast<Req, Resp>(
    peers: &[BrokerAddr],
    api: ApiKey,
    version: i16,
    request: &Req,
    refused: fn(&Resp) -> Vec<String>,
) where
    Req: Encodable + Sync,
    Resp: Decodable,
{
    let calls = peers.iter().map(|p| async move {
        let result: Result<Resp, PeerError> =
            peer::call(&p.socket_addr(), api, version, peer::PEER_CLIENT_ID, request, PEER_TIMEOUT).await;
        (p, result)
    });
    for (p, result) in join_all(calls).await {
        match result {
            Ok(resp) => {
                for error in refused(&resp) {
                    tracing::warn!(broker = p.id, ?api, %error, "a broker refused pushed metadata");
                }
            }
            Err(e) => tracing::warn!(broker = p.id, ?api, error = %e, "pushing metadata failed; the broker catches up later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_topics_carry_id_assignment_and_configs() {
        let meta = TopicMeta {
            name: "t".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            assignment: vec![vec![2], vec![0]],
            configs: BTreeMap::from([("retention.ms".to_string(), "5".to_string())]),
        };
        let req = create_topics(std::slice::from_ref(&meta));
        let t = &req.topics[0];
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
        let assigned: Vec<(i32, Vec<i32>)> =
            t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
        assert_eq!(assigned, vec![(0, vec![2]), (1, vec![0])]);
        let mut configs: BTreeMap<String, String> =
            t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().unwrap().to_string())).collect();
        assert_eq!(take_topic_id(&mut configs), Ok(meta.id));
        assert_eq!(configs, meta.configs);
        assert!(take_topic_id(&mut configs).is_err());
        configs.insert(TOPIC_ID_CONFIG.into(), "not-a-uuid".into());
        assert!(take_topic_id(&mut configs).unwrap_err().contains("not-a-uuid"));

        let alter = topic_configs(&[meta]);
        let ops = &alter.resources[0].configs;
        assert_eq!(ops.len(), LogConfig::KEYS.len());
        let set: Vec<_> = ops.iter().filter(|o| o.config_operation == OP_SET).map(|o| o.name.to_string()).collect();
        assert_eq!(set, vec!["retention.ms"]);
    }

    #[test]
    fn pushed_partitions_and_deletions() {
        let req = create_partitions(&[Grown { name: "t".into(), count: 4, added: vec![vec![1], vec![2]] }]);
        let t = &req.topics[0];
        assert_eq!(t.count, 4);
        assert_eq!(t.assignments.as_ref().unwrap()[1].broker_ids, vec![BrokerId(2)]);
        let id = Uuid::new_v4();
        let req = delete_topics(&[("t".into(), id)]);
        assert_eq!((req.topics[0].topic_id, req.topics[0].name.as_ref().unwrap().0.as_str()), (id, "t"));
    }
}
