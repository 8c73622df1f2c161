//! ApiVersions, Metadata (with auto topic creation), DescribeCluster and DescribeQuorum: every broker describes
//! the whole cluster from its metadata image.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    api_versions_response, describe_cluster_response, describe_quorum_response, metadata_response, ApiVersionsResponse, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use uuid::Uuid;

use super::{respond, respond_later, s};
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::controller::image::{Image, TopicImage, NO_LEADER};
use crate::errors::code;
use crate::protocol::{RequestHeader, SUPPORTED_APIS};
use crate::server::{Peer, Reply};

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

/// The live brokers as (id, host, port, rack) at the listener the client used; this one even while fenced
/// (a client that bootstrapped here must find it).
pub(crate) fn brokers(state: &BrokerState, image: &Image, peer: &Peer) -> Vec<(i32, String, i32, Option<String>)> {
    let node = state.config.node_id;
    let mut out: Vec<(i32, String, i32, Option<String>)> = image
        .live_brokers()
        .filter(|b| b.id != node)
        .filter_map(|b| b.endpoint(&peer.listener).map(|e| (b.id, e.host.clone(), i32::from(e.port), b.rack.clone())))
        .collect();
    if state.config.roles.broker {
        let adv = state.advertised(&peer.listener);
        out.push((node, adv.host.clone(), i32::from(adv.port), state.config.rack.clone()));
    }
    out.sort_by_key(|b| b.0);
    out
}

/// A topic's partitions with their replicas, ISR, offline replicas (on fenced or unregistered brokers), leaders
/// and epochs; a partition without a leader (no live in-sync replica) answers LEADER_NOT_AVAILABLE.
fn describe_topic(image: &Image, topic: &TopicImage) -> metadata_response::MetadataResponseTopic {
    let offline = |b: &i32| image.brokers.get(b).is_none_or(|b| b.fenced);
    metadata_response::MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(crate::group::is_internal_topic(&topic.name))
        .with_partitions(
            topic
                .partitions
                .iter()
                .enumerate()
                .map(|(p, part)| {
                    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
                    metadata_response::MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_error_code(if part.leader == NO_LEADER { code::LEADER_NOT_AVAILABLE } else { 0 })
                        .with_leader_id(BrokerId(part.leader))
                        .with_leader_epoch(part.leader_epoch)
                        .with_isr_nodes(ids(&part.isr))
                        .with_replica_nodes(ids(&part.replicas))
                        .with_offline_replicas(part.replicas.iter().filter(|b| offline(b)).map(|b| BrokerId(*b)).collect())
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

pub fn metadata(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: MetadataRequest) -> Reply {
    let version = header.api_version;
    // Before v4 there is no flag and Kafka creates topics whenever the broker allows it.
    let allow_create = state.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let image = state.image();
    let auth = state.authorizer.check(peer);
    // Creating needs CREATE on the cluster or the topic; a topic the client may not even describe is answered as
    // such, whether it exists or not.
    let cluster_create = std::cell::OnceCell::new();
    let mut refused = HashMap::new();
    let missing: Vec<String> = match &req.topics {
        Some(list) if allow_create => list
            .iter()
            .filter_map(|t| t.name.as_ref())
            .map(|n| n.to_string())
            .filter(|n| image.topic(n).is_none() && auth.quietly_allows(Operation::Describe, Resource::topic(n)))
            .filter(|n| {
                let may = *cluster_create.get_or_init(|| auth.quietly_allows(Operation::Create, Resource::cluster()))
                    || auth.allows(Operation::Create, Resource::topic(n));
                if !may {
                    refused.insert(n.clone(), code::TOPIC_AUTHORIZATION_FAILED);
                }
                may
            })
            .collect(),
        _ => vec![],
    };
    if missing.is_empty() {
        return respond(header, &metadata_answer(state, peer, version, &req, &refused));
    }
    let (state, peer) = (state.clone(), peer.clone());
    respond_later(header, async move {
        for name in missing {
            match super::admin::auto_create(&state, &name).await {
                Ok(true) => {}
                Ok(false) => {
                    refused.insert(name, code::LEADER_NOT_AVAILABLE);
                }
                Err(e) => {
                    tracing::info!(topic = %name, error = %e, "auto topic creation refused");
                    refused.insert(name, e.code);
                }
            }
        }
        metadata_answer(&state, &peer, version, &req, &refused)
    })
}

fn metadata_answer(
    state: &BrokerState,
    peer: &Peer,
    version: i16,
    req: &MetadataRequest,
    refused: &HashMap<String, i16>,
) -> MetadataResponse {
    let image = state.image();
    let auth = state.authorizer.check(peer);
    let describe = |t: &TopicImage| {
        let described = describe_topic(&image, t);
        match version >= 8 && req.include_topic_authorized_operations {
            true => described.with_topic_authorized_operations(auth.authorized_operations(Resource::topic(&t.name))),
            false => described,
        }
    };
    // Of all topics, those the client may describe.
    let all = || {
        image
            .topics
            .values()
            .filter(|t| auth.quietly_allows(Operation::Describe, Resource::topic(&t.name)))
            .map(|t| describe(t))
            .collect()
    };
    let denied = code::TOPIC_AUTHORIZATION_FAILED;
    let topics = match &req.topics {
        // v0 has no null list: an empty one means all topics.
        None => all(),
        Some(list) if list.is_empty() && version == 0 => all(),
        Some(list) => list
            .iter()
            .map(|t| match &t.name {
                Some(name) => {
                    let name = name.to_string();
                    if !auth.allows(Operation::Describe, Resource::topic(&name)) {
                        return topic_error(Some(name), Uuid::nil(), denied);
                    }
                    match (image.topic(&name), refused.get(&name)) {
                        (Some(topic), _) => describe(topic),
                        (None, Some(c)) => topic_error(Some(name), Uuid::nil(), *c),
                        (None, None) => topic_error(Some(name), Uuid::nil(), code::UNKNOWN_TOPIC_OR_PARTITION),
                    }
                }
                None => match image.topic_by_id(t.topic_id) {
                    Some(topic) if !auth.allows(Operation::Describe, Resource::topic(&topic.name)) => {
                        topic_error(None, t.topic_id, denied)
                    }
                    Some(topic) => describe(topic),
                    None => topic_error(None, t.topic_id, code::UNKNOWN_TOPIC_ID),
                },
            })
            .collect(),
    };
    let response = MetadataResponse::default()
        .with_brokers(
            brokers(state, &image, peer)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    metadata_response::MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(s(host))
                        .with_port(port)
                        .with_rack(rack.map(s))
                })
                .collect(),
        )
        .with_cluster_id(if version >= 2 { Some(s(state.cluster_id.clone())) } else { None })
        .with_controller_id(BrokerId(if version >= 1 { state.controller_for_clients() } else { -1 }))
        .with_topics(topics);
    // Only v8-v10 carry the cluster's (later versions ask DescribeCluster).
    match (8..=10).contains(&version) && req.include_cluster_authorized_operations {
        true => response.with_cluster_authorized_operations(auth.authorized_operations(Resource::cluster())),
        false => response,
    }
}

pub fn describe_cluster(state: &BrokerState, peer: &Peer, req: DescribeClusterRequest) -> DescribeClusterResponse {
    // As on Kafka's brokers, anyone may ask (clients bootstrap with it); the operations show what they may do.
    let auth = state.authorizer.check(peer);
    // Endpoint type 2 asks about the controllers: the active one is the quorum's leader.
    let controller = if req.endpoint_type == 2 { state.controller.leader_id() } else { state.controller_for_clients() };
    let base = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(s(state.cluster_id.clone()))
        .with_controller_id(BrokerId(controller))
        .with_cluster_authorized_operations(match req.include_cluster_authorized_operations {
            true => auth.authorized_operations(Resource::cluster()),
            false => i32::MIN,
        });
    let image = state.image();
    match req.endpoint_type {
        1 => base.with_brokers(
            brokers(state, &image, peer)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    describe_cluster_response::DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(id))
                        .with_host(s(host))
                        .with_port(port)
                        .with_rack(rack.map(s))
                })
                .collect(),
        ),
        // The controllers: the voters at their controller listener.
        2 => base.with_brokers(
            state
                .controller
                .voters()
                .into_iter()
                .filter_map(|(id, addr)| {
                    let (host, port) = addr.rsplit_once(':')?;
                    Some(
                        describe_cluster_response::DescribeClusterBroker::default()
                            .with_broker_id(BrokerId(id))
                            .with_host(s(host.trim_start_matches('[').trim_end_matches(']')))
                            .with_port(port.parse().ok()?),
                    )
                })
                .collect(),
        ),
        other => base
            .with_error_code(code::INVALID_REQUEST)
            .with_error_message(Some(s(format!("endpoint type {other} is not supported")))),
    }
}

/// DescribeQuorum (KIP-595/853): the metadata log's leader, epoch, high watermark, and each voter's and
/// observer's progress (known on the leader).
pub fn describe_quorum(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: DescribeQuorumRequest) -> Reply {
    if !state.authorizer.authorize(peer, Operation::Describe, Resource::cluster()) {
        return respond(header, &DescribeQuorumResponse::default().with_error_code(code::CLUSTER_AUTHORIZATION_FAILED));
    }
    let state = state.clone();
    respond_later(header, async move {
        match state.controller.quorum_state(std::time::Duration::from_secs(10)).await {
            Ok(q) => quorum_answer(&q, &req),
            Err(e) => DescribeQuorumResponse::default().with_error_code(e.code).with_error_message(Some(s(e.message))),
        }
    })
}

fn quorum_answer(q: &crate::controller::QuorumState, req: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    let replica = |r: &crate::controller::ReplicaState| {
        describe_quorum_response::ReplicaState::default().with_replica_id(BrokerId(r.id)).with_log_end_offset(r.log_end_offset)
    };
    let partitions = req
        .topics
        .iter()
        .map(|t| {
            let ok = t.topic_name.as_str() == crate::controller::METADATA_DIR;
            describe_quorum_response::TopicData::default().with_topic_name(t.topic_name.clone()).with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        let base = describe_quorum_response::PartitionData::default().with_partition_index(p.partition_index);
                        if !ok || p.partition_index != 0 {
                            return base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                        }
                        base.with_leader_id(BrokerId(q.leader))
                            .with_leader_epoch(q.epoch)
                            .with_high_watermark(q.high_watermark)
                            .with_current_voters(q.voters.iter().map(replica).collect())
                            .with_observers(q.observers.iter().map(replica).collect())
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(partitions)
}
