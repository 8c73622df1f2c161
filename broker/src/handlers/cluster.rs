//! ApiVersions, Metadata (with auto topic creation) and DescribeCluster: every broker describes the whole
//! cluster.

use std::sync::Arc;

use kafka_protocol::messages::{
    api_versions_response, describe_cluster_response, metadata_response, ApiVersionsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName,
};
use strata_storage::LEADER_EPOCH;
use uuid::Uuid;

use super::s;
use crate::broker::BrokerState;
use crate::errors::code;
use crate::protocol::{RequestHeader, SUPPORTED_APIS};
use crate::server::Peer;
use crate::topics::TopicMeta;

pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
        SUPPORTED_APIS
            .iter()
            .map(|(key, min, max)| {
                api_versions_response::ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

/// The cluster's brokers as (id, host, port): this one at the address of the listener the client used.
fn brokers(state: &BrokerState, peer: &Peer) -> Vec<(i32, String, i32)> {
    let node = state.config.node_id;
    let adv = state.advertised(&peer.listener);
    let membership = state.cluster.membership();
    let mut out: Vec<(i32, String, i32)> =
        membership.brokers().iter().filter(|b| b.id != node).map(|b| (b.id, b.host.clone(), i32::from(b.port))).collect();
    out.push((node, adv.host.clone(), i32::from(adv.port)));
    out.sort_by_key(|b| b.0);
    out
}

/// A topic's partitions with their assigned replicas; a partition whose broker left the cluster has no leader.
fn describe_topic(meta: &TopicMeta, members: &[i32]) -> metadata_response::MetadataResponseTopic {
    metadata_response::MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(meta.name.clone()))))
        .with_topic_id(meta.id)
        .with_partitions(
            meta.assignment
                .iter()
                .enumerate()
                .map(|(p, replicas)| {
                    let ids: Vec<BrokerId> = replicas.iter().map(|b| BrokerId(*b)).collect();
                    let leader = replicas.first().copied().filter(|l| members.contains(l));
                    metadata_response::MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_error_code(if leader.is_some() { 0 } else { code::LEADER_NOT_AVAILABLE })
                        .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_isr_nodes(if leader.is_some() { ids.clone() } else { vec![] })
                        .with_replica_nodes(ids)
                })
                .collect(),
        )
}

fn topic_error(name: Option<String>, id: Uuid, error_code: i16) -> metadata_response::MetadataResponseTopic {
    metadata_response::MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(s(n))))
        .with_topic_id(id)
        .with_error_code(error_code)
}

pub fn metadata(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: MetadataRequest) -> MetadataResponse {
    let version = header.api_version;
    let brokers = brokers(state, peer);
    let members: Vec<i32> = brokers.iter().map(|b| b.0).collect();
    let replicas = &state.replicas;
    let all = || replicas.topics().iter().map(|t| describe_topic(t, &members)).collect();
    let topics = match req.topics {
        // v0 has no null list: an empty one means all topics.
        None => all(),
        Some(list) if list.is_empty() && version == 0 => all(),
        Some(list) => {
            // Before v4 there is no flag and Kafka creates topics whenever the broker allows it.
            let allow_create = state.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
            list.into_iter()
                .map(|t| match t.name {
                    Some(name) => {
                        let name = name.0.to_string();
                        if let Some(meta) = replicas.topic(&name) {
                            return describe_topic(&meta, &members);
                        }
                        if !allow_create {
                            return topic_error(Some(name), Uuid::nil(), code::UNKNOWN_TOPIC_OR_PARTITION);
                        }
                        match super::admin::auto_create(state, &name) {
                            Ok(Some(meta)) => describe_topic(&meta, &members),
                            Ok(None) => topic_error(Some(name), Uuid::nil(), code::LEADER_NOT_AVAILABLE),
                            Err((error_code, msg)) => {
                                tracing::info!(topic = %name, error = %msg, "auto topic creation refused");
                                topic_error(Some(name), Uuid::nil(), error_code)
                            }
                        }
                    }
                    None => match replicas.topic_name_by_id(t.topic_id).and_then(|n| replicas.topic(&n)) {
                        Some(meta) => describe_topic(&meta, &members),
                        None => topic_error(None, t.topic_id, code::UNKNOWN_TOPIC_ID),
                    },
                })
                .collect()
        }
    };
    MetadataResponse::default()
        .with_brokers(
            brokers
                .into_iter()
                .map(|(id, host, port)| {
                    metadata_response::MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(s(host))
                        .with_port(port)
                })
                .collect(),
        )
        .with_cluster_id(if version >= 2 { Some(s(state.cluster_id.clone())) } else { None })
        .with_controller_id(BrokerId(if version >= 1 { state.cluster.controller_id() } else { -1 }))
        .with_topics(topics)
}

pub fn describe_cluster(state: &BrokerState, peer: &Peer, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let base = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(s(state.cluster_id.clone()))
        .with_controller_id(BrokerId(state.cluster.controller_id()));
    // Endpoint type 2 asks for KRaft controllers, which this cluster does not have.
    if req.endpoint_type != 1 {
        return base
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(s(format!("endpoint type {} is not supported", req.endpoint_type))));
    }
    base.with_brokers(
        brokers(state, peer)
            .into_iter()
            .map(|(id, host, port)| {
                describe_cluster_response::DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(s(host))
                    .with_port(port)
            })
            .collect(),
    )
}
