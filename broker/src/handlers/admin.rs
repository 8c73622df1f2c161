//! CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders and UnregisterBroker: translated into requests to the active
//! controller, which decides them and commits the result to the metadata log; the answer waits until this
//! broker has applied it, so the client's next request here sees its change.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_topics_response, elect_leaders_response, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    ElectLeadersRequest, ElectLeadersResponse, TopicName, UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use uuid::Uuid;

use super::configs::{describe_topic_configs, ConfigEntry};
use super::{message_if, respond, respond_later, s};
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::config::BrokerConfig;
use crate::controller::decisions::{default_replication_factor, NewPartitions, NewTopic};
use crate::controller::image::{Image, Refused};
use crate::controller::service::{ControllerReply, ControllerRequest};
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};

/// How long a topic change may take when the request does not say (Kafka's default request timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub fn timeout_of(ms: i32) -> Duration {
    if ms > 0 {
        Duration::from_millis(ms as u64)
    } else {
        DEFAULT_TIMEOUT
    }
}

/// One result per item: the controller's, or its refusal of the whole request for each.
pub async fn call_each(state: &BrokerState, req: ControllerRequest, items: usize, timeout: Duration) -> Vec<Result<(), Refused>> {
    match state.controller.call(req, timeout).await {
        Ok(ControllerReply::Each(results)) if results.len() == items => results,
        Ok(other) => vec![Err(Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected answer {other:?}"))); items],
        Err(e) => vec![Err(e); items],
    }
}

fn to_creatable_config(e: ConfigEntry) -> create_topics_response::CreatableTopicConfigs {
    create_topics_response::CreatableTopicConfigs::default()
        .with_name(s(e.name))
        .with_value(Some(s(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
}

fn new_topic(t: &kafka_protocol::messages::create_topics_request::CreatableTopic) -> Result<NewTopic, Refused> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let value = c
            .value
            .as_ref()
            .ok_or_else(|| Refused::new(code::INVALID_CONFIG, format!("config {} has a null value", c.name.as_str())))?;
        configs.insert(c.name.to_string(), value.to_string());
    }
    let mut explicit: Vec<(i32, Vec<i32>)> =
        t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
    explicit.sort_by_key(|(p, _)| *p);
    if explicit.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
        return Err(Refused::new(code::INVALID_REPLICA_ASSIGNMENT, "assigned partitions must be 0..n-1, each once"));
    }
    let assignment = (!explicit.is_empty()).then(|| explicit.into_iter().map(|(_, r)| r).collect());
    Ok(NewTopic {
        name: t.name.to_string(),
        partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignment,
        configs,
    })
}

/// The partition count and replication factor `t` asks for, with the cluster's defaults for -1.
fn counts(t: &NewTopic, config: &BrokerConfig, image: &Image) -> (i32, i16) {
    match &t.assignment {
        Some(a) => (a.len() as i32, a.first().map_or(0, |r| r.len() as i16)),
        None => (
            if t.partitions == -1 { config.num_partitions } else { t.partitions },
            match t.replication_factor {
                -1 => default_replication_factor(image, config.default_replication_factor),
                factor => factor,
            },
        ),
    }
}

/// The refusal of an operation on a resource the client may not do it on.
pub(crate) fn denied(code: i16, operation: Operation, what: &str) -> Refused {
    Refused::new(code, format!("{operation} on {what} is not allowed"))
}

pub fn create_topics(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: CreateTopicsRequest) -> Reply {
    let auth = state.authorizer.check(peer);
    let cluster_create = auth.quietly_allows(Operation::Create, Resource::cluster());
    // Per topic: may it be created, and may its configs be shown.
    let allowed: Vec<(bool, bool)> = req
        .topics
        .iter()
        .map(|t| {
            let topic = Resource::topic(t.name.as_str());
            (cluster_create || auth.allows(Operation::Create, topic), auth.quietly_allows(Operation::DescribeConfigs, topic))
        })
        .collect();
    let state = state.clone();
    let version = header.api_version;
    respond_later(header, async move {
        let mut names = HashSet::new();
        let duplicates: HashSet<String> =
            req.topics.iter().map(|t| t.name.to_string()).filter(|n| !names.insert(n.clone())).collect();
        let parsed: Vec<Result<NewTopic, Refused>> = req
            .topics
            .iter()
            .zip(&allowed)
            .map(|(t, (may_create, _))| match duplicates.contains(t.name.as_str()) {
                true => Err(Refused::new(
                    code::INVALID_REQUEST,
                    format!("topic {} appears more than once in the request", t.name.as_str()),
                )),
                false if !may_create => Err(denied(code::TOPIC_AUTHORIZATION_FAILED, Operation::Create, "the topic")),
                false => new_topic(t),
            })
            .collect();
        let valid: Vec<NewTopic> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let count = valid.len();
        let mut decided = if count == 0 {
            vec![].into_iter()
        } else {
            let call = ControllerRequest::CreateTopics { topics: valid, validate_only: req.validate_only };
            call_each(&state, call, count, timeout_of(req.timeout_ms)).await.into_iter()
        };
        let image = state.image();
        let topics = req
            .topics
            .iter()
            .zip(parsed)
            .zip(allowed)
            .map(|((t, parsed), (_, may_describe_configs))| {
                let outcome = parsed.and_then(|nt| decided.next().unwrap_or(Ok(())).map(|()| nt));
                let result = create_topics_response::CreatableTopicResult::default().with_name(t.name.clone());
                match outcome {
                    Ok(nt) => {
                        let topic = image.topic(&nt.name).filter(|_| !req.validate_only);
                        let (partitions, factor) = match topic {
                            Some(t) => (t.partition_count(), t.partitions.first().map_or(0, |p| p.replicas.len() as i16)),
                            None => counts(&nt, &state.config, &image),
                        };
                        let result = result.with_num_partitions(partitions).with_replication_factor(factor);
                        if version < 5 {
                            return result.with_num_partitions(-1).with_replication_factor(-1);
                        }
                        let result =
                            result.with_topic_id(if version >= 7 { topic.map_or(Uuid::nil(), |t| t.id) } else { Uuid::nil() });
                        if !may_describe_configs {
                            return result.with_topic_config_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                        }
                        let entries = describe_topic_configs(&state, &nt.configs, None);
                        result.with_configs(Some(entries.into_iter().map(to_creatable_config).collect()))
                    }
                    Err(e) => {
                        tracing::info!(topic = %t.name.as_str(), error = %e, "create topic refused");
                        result
                            .with_error_code(e.code)
                            .with_error_message(message_if(version >= 1, Some(e.message)))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    }
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    })
}

/// Metadata's automatic creation of `name` with the broker defaults, by the active controller. Concurrent
/// Metadata requests for the same topic ask once; the others answer LEADER_NOT_AVAILABLE and clients ask again.
pub async fn auto_create(state: &BrokerState, name: &str) -> Result<bool, Refused> {
    if !state.auto_creating.lock().expect("auto-create lock").insert(name.to_string()) {
        return Ok(false);
    }
    let t =
        NewTopic { name: name.to_string(), partitions: -1, replication_factor: -1, assignment: None, configs: BTreeMap::new() };
    let result =
        call_each(state, ControllerRequest::CreateTopics { topics: vec![t], validate_only: false }, 1, DEFAULT_TIMEOUT).await;
    state.auto_creating.lock().expect("auto-create lock").remove(name);
    match result.into_iter().next().unwrap_or(Ok(())) {
        Ok(()) => Ok(true),
        Err(e) if e.code == code::TOPIC_ALREADY_EXISTS => Ok(true),
        Err(e) => Err(e),
    }
}

pub fn delete_topics(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: DeleteTopicsRequest) -> Reply {
    let version = header.api_version;
    // By name or id (v6+), by name before.
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.to_string()), Uuid::nil())).collect()
    };
    let image = state.image();
    let auth = state.authorizer.check(peer);
    let resolved: Vec<Result<(String, Uuid), Refused>> = wanted
        .iter()
        .map(|(name, id)| match (name, id.is_nil()) {
            (_, false) => image
                .topic_by_id(*id)
                .map(|t| (t.name.clone(), t.id))
                .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_ID, format!("no topic has id {id}"))),
            (Some(n), true) => Ok((n.clone(), image.topic(n).map_or(Uuid::nil(), |t| t.id))),
            (None, true) => Err(Refused::new(code::INVALID_REQUEST, "neither a name nor an id")),
        })
        .map(|r| match r {
            Ok((n, _)) if !auth.allows(Operation::Delete, Resource::topic(&n)) => {
                Err(denied(code::TOPIC_AUTHORIZATION_FAILED, Operation::Delete, "the topic"))
            }
            other => other,
        })
        .collect();
    let state = state.clone();
    respond_later(header, async move {
        let names: Vec<String> = resolved.iter().filter_map(|r| r.as_ref().ok().map(|(n, _)| n.clone())).collect();
        let count = names.len();
        let mut decided = if count == 0 {
            vec![]
        } else {
            call_each(&state, ControllerRequest::DeleteTopics { names }, count, timeout_of(req.timeout_ms)).await
        }
        .into_iter();
        let responses = wanted
            .into_iter()
            .zip(resolved)
            .map(|((name, id), r)| {
                let outcome = r.and_then(|(n, i)| decided.next().unwrap_or(Ok(())).map(|()| (n, i)));
                let shown = outcome.as_ref().ok().map(|(n, _)| n.clone()).or(name);
                let result = delete_topics_response::DeletableTopicResult::default().with_name(if version >= 6 {
                    shown.map(|n| TopicName(s(n)))
                } else {
                    Some(TopicName(s(shown.unwrap_or_default())))
                });
                match outcome {
                    Ok((_, topic_id)) => result.with_topic_id(if version >= 6 { topic_id } else { Uuid::nil() }),
                    Err(e) => result
                        .with_topic_id(if version >= 6 { id } else { Uuid::nil() })
                        .with_error_code(e.code)
                        .with_error_message(message_if(version >= 5, Some(e.message))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    })
}

pub fn create_partitions(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: CreatePartitionsRequest) -> Reply {
    let auth = state.authorizer.check(peer);
    let allowed: Vec<bool> = req.topics.iter().map(|t| auth.allows(Operation::Alter, Resource::topic(t.name.as_str()))).collect();
    let state = state.clone();
    respond_later(header, async move {
        let topics: Vec<NewPartitions> = req
            .topics
            .iter()
            .zip(&allowed)
            .filter(|(_, allowed)| **allowed)
            .map(|(t, _)| {
                // An empty list (kafka-protocol's default) asks for an automatic assignment, like null.
                let explicit = t
                    .assignments
                    .as_ref()
                    .filter(|a| !a.is_empty())
                    .map(|a| a.iter().map(|r| r.broker_ids.iter().map(|b| b.0).collect()).collect());
                NewPartitions { topic: t.name.to_string(), count: t.count, assignment: explicit }
            })
            .collect();
        let count = topics.len();
        let call = ControllerRequest::CreatePartitions { topics, validate_only: req.validate_only };
        let mut decided =
            if count == 0 { vec![] } else { call_each(&state, call, count, timeout_of(req.timeout_ms)).await }.into_iter();
        let results = req
            .topics
            .iter()
            .zip(allowed)
            .map(|(t, allowed)| {
                let r = match allowed {
                    true => decided.next().unwrap_or(Ok(())),
                    false => Err(denied(code::TOPIC_AUTHORIZATION_FAILED, Operation::Alter, "the topic")),
                };
                let result = create_partitions_response::CreatePartitionsTopicResult::default().with_name(t.name.clone());
                match r {
                    Ok(()) => result,
                    Err(e) => result.with_error_code(e.code).with_error_message(Some(s(e.message))),
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    })
}

/// Removes a broker that is gone for good (scaled down) from the cluster, as Kafka's UnregisterBroker.
pub fn unregister_broker(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: UnregisterBrokerRequest) -> Reply {
    if !state.authorizer.authorize(peer, Operation::Alter, Resource::cluster()) {
        let e = denied(code::CLUSTER_AUTHORIZATION_FAILED, Operation::Alter, "the cluster");
        return respond(
            header,
            &UnregisterBrokerResponse::default().with_error_code(e.code).with_error_message(Some(s(e.message))),
        );
    }
    let state = state.clone();
    respond_later(header, async move {
        match state.controller.call(ControllerRequest::UnregisterBroker { id: req.broker_id.0 }, DEFAULT_TIMEOUT).await {
            Ok(_) => UnregisterBrokerResponse::default(),
            Err(e) => UnregisterBrokerResponse::default().with_error_code(e.code).with_error_message(Some(s(e.message))),
        }
    })
}

/// Kafka's ElectLeaders (preferred or unclean) of the partitions named, or of all (then only the partitions
/// that got a new leader, or could not, are listed).
pub fn elect_leaders(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: ElectLeadersRequest) -> Reply {
    let version = header.api_version;
    if !state.authorizer.authorize(peer, Operation::Alter, Resource::cluster()) {
        // Kafka answers the top-level error and each partition asked for with it.
        let failed = code::CLUSTER_AUTHORIZATION_FAILED;
        let results = req.topic_partitions.unwrap_or_default().into_iter().map(|t| {
            elect_leaders_response::ReplicaElectionResult::default().with_topic(t.topic).with_partition_result(
                t.partitions
                    .iter()
                    .map(|p| elect_leaders_response::PartitionResult::default().with_partition_id(*p).with_error_code(failed))
                    .collect(),
            )
        });
        let response = ElectLeadersResponse::default().with_replica_election_results(results.collect());
        return respond(header, &if version >= 1 { response.with_error_code(failed) } else { response });
    }
    let state = state.clone();
    respond_later(header, async move {
        let partitions: Option<Vec<(String, i32)>> = req
            .topic_partitions
            .map(|topics| topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p))).collect());
        // v0 has no election type: preferred.
        let election_type = if version >= 1 { req.election_type } else { 0 };
        let call = ControllerRequest::ElectLeaders { partitions: partitions.clone(), election_type };
        let outcomes = match state.controller.call(call, timeout_of(req.timeout_ms)).await {
            Ok(ControllerReply::Elections(outcomes)) => outcomes,
            Ok(other) => {
                let refused = Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected controller answer {other:?}"));
                partitions.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Err(refused.clone()))).collect()
            }
            Err(e) if partitions.is_none() => {
                return ElectLeadersResponse::default().with_error_code(e.code);
            }
            Err(e) => partitions.unwrap_or_default().into_iter().map(|(t, p)| (t, p, Err(e.clone()))).collect(),
        };
        let mut by_topic: BTreeMap<String, Vec<elect_leaders_response::PartitionResult>> = BTreeMap::new();
        for (topic, partition, result) in outcomes {
            let (error_code, message) = match result {
                Ok(()) => (0, None),
                Err(e) => (e.code, Some(s(e.message))),
            };
            by_topic.entry(topic).or_default().push(
                elect_leaders_response::PartitionResult::default()
                    .with_partition_id(partition)
                    .with_error_code(error_code)
                    .with_error_message(message),
            );
        }
        ElectLeadersResponse::default().with_replica_election_results(
            by_topic
                .into_iter()
                .map(|(topic, results)| {
                    elect_leaders_response::ReplicaElectionResult::default()
                        .with_topic(TopicName(s(topic)))
                        .with_partition_result(results)
                })
                .collect(),
        )
    })
}
