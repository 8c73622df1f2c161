//! CreateTopics, DeleteTopics and CreatePartitions, where the cluster says they belong ([`Role`]): decided
//! here on a single node or on the controller (which then pushes the result to the other brokers), applied
//! as given when a peer pushes them, passed to the controller otherwise. Partitions have one replica each.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_topics_response, ApiKey, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use uuid::Uuid;

use super::configs::{describe_topic_configs, ConfigEntry};
use super::{forward, message_if, respond, respond_later, s};
use crate::broker::BrokerState;
use crate::cluster::membership::BrokerAddr;
use crate::cluster::merge::{merge, TopicView};
use crate::cluster::push::Grown;
use crate::cluster::{assignment, peer, push, sync, Role, PEER_TIMEOUT};
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::replica::{AdminError, MAX_PARTITIONS};
use crate::server::Reply;
use crate::topics::{self, TopicMeta};

/// How long the controller waits to have compared its metadata with its peers before deciding anything.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// How a topic change is made here.
enum Mode {
    /// This broker decides, assigning partitions over these brokers.
    Decide(Vec<i32>),
    /// A peer decided: take its id and assignment.
    Apply,
}

type Outcome<T> = Result<T, (i16, String)>;

fn admin_err(e: AdminError) -> (i16, String) {
    (e.code(), e.to_string())
}

fn not_synced() -> (i16, String) {
    (code::REQUEST_TIMED_OUT, "the controller is still comparing topic metadata with the other brokers; retry".into())
}

/// A topic-change API: how the change is made here, how it is refused, and what the controller pushes to
/// the other brokers afterwards.
trait TopicChange: Encodable + Send + Sync + Sized + 'static {
    type Response: Encodable + Decodable + Send + 'static;
    /// What changed, for the push.
    type Changed: Send;
    const API: ApiKey;
    const PUSH_VERSION: i16;
    fn here(self, state: &BrokerState, version: i16, mode: &Mode) -> (Self::Response, Vec<Self::Changed>);
    /// Every part of the request refused with the same error.
    fn failed(&self, version: i16, error: (i16, String)) -> Self::Response;
    fn push_request(changed: &[Self::Changed]) -> Self;
    /// The errors in a peer's answer to a push, for the log.
    fn refusals(resp: &Self::Response) -> Vec<String>;
}

/// Runs a topic change where the cluster says it belongs.
fn change<R: TopicChange>(state: &Arc<BrokerState>, header: &RequestHeader, req: R) -> Reply {
    let version = header.api_version;
    match state.cluster.role(header.client_id.as_deref()) {
        Role::Alone => respond(header, &req.here(state, version, &Mode::Decide(vec![state.config.node_id])).0),
        Role::Apply => respond(header, &req.here(state, version, &Mode::Apply).0),
        Role::Controller(peers) => respond_later(header, as_controller(state.clone(), peers, version, req)),
        Role::Forward(controller) => {
            forward(header, controller, req, move |req, msg| req.failed(version, (code::NOT_CONTROLLER, msg)))
        }
        Role::NotController(id) => {
            respond(header, &req.failed(version, (code::NOT_CONTROLLER, format!("broker {id} is the controller"))))
        }
    }
}

/// As the controller: once this broker has compared its metadata with its peers, makes the change here and
/// pushes what changed to the peers.
async fn as_controller<R: TopicChange>(state: Arc<BrokerState>, peers: Vec<BrokerAddr>, version: i16, req: R) -> R::Response {
    if !state.cluster.wait_synced(SYNC_WAIT).await {
        return req.failed(version, not_synced());
    }
    let brokers = state.cluster.membership().ids(state.config.node_id);
    let (resp, changed) = req.here(&state, version, &Mode::Decide(brokers));
    if !changed.is_empty() {
        push::broadcast(&peers, R::API, R::PUSH_VERSION, &R::push_request(&changed), R::refusals).await;
    }
    resp
}

pub fn create_topics(state: &Arc<BrokerState>, header: &RequestHeader, req: CreateTopicsRequest) -> Reply {
    change(state, header, req)
}

pub fn delete_topics(state: &Arc<BrokerState>, header: &RequestHeader, req: DeleteTopicsRequest) -> Reply {
    change(state, header, req)
}

pub fn create_partitions(state: &Arc<BrokerState>, header: &RequestHeader, req: CreatePartitionsRequest) -> Reply {
    change(state, header, req)
}

impl TopicChange for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    type Changed = TopicMeta;
    const API: ApiKey = ApiKey::CreateTopics;
    const PUSH_VERSION: i16 = push::CREATE_TOPICS_VERSION;
    fn here(self, state: &BrokerState, version: i16, mode: &Mode) -> (CreateTopicsResponse, Vec<TopicMeta>) {
        create_here(state, version, self, mode)
    }
    fn failed(&self, version: i16, error: (i16, String)) -> CreateTopicsResponse {
        create_failed(version, self, error)
    }
    fn push_request(changed: &[TopicMeta]) -> Self {
        push::create_topics(changed)
    }
    fn refusals(r: &CreateTopicsResponse) -> Vec<String> {
        r.topics.iter().filter(|t| t.error_code != 0).map(|t| format!("{}: {:?}", t.name.as_str(), t.error_message)).collect()
    }
}

impl TopicChange for DeleteTopicsRequest {
    type Response = DeleteTopicsResponse;
    type Changed = (String, Uuid);
    const API: ApiKey = ApiKey::DeleteTopics;
    const PUSH_VERSION: i16 = push::DELETE_TOPICS_VERSION;
    fn here(self, state: &BrokerState, version: i16, mode: &Mode) -> (DeleteTopicsResponse, Vec<(String, Uuid)>) {
        delete_here(state, version, &self, mode)
    }
    fn failed(&self, version: i16, error: (i16, String)) -> DeleteTopicsResponse {
        delete_failed(version, self, error)
    }
    fn push_request(changed: &[(String, Uuid)]) -> Self {
        push::delete_topics(changed)
    }
    fn refusals(r: &DeleteTopicsResponse) -> Vec<String> {
        r.responses.iter().filter(|t| t.error_code != 0).map(|t| format!("{:?}: {:?}", t.name, t.error_message)).collect()
    }
}

impl TopicChange for CreatePartitionsRequest {
    type Response = CreatePartitionsResponse;
    type Changed = Grown;
    const API: ApiKey = ApiKey::CreatePartitions;
    const PUSH_VERSION: i16 = push::CREATE_PARTITIONS_VERSION;
    fn here(self, state: &BrokerState, _version: i16, mode: &Mode) -> (CreatePartitionsResponse, Vec<Grown>) {
        grow_here(state, &self, mode)
    }
    fn failed(&self, _version: i16, error: (i16, String)) -> CreatePartitionsResponse {
        grow_failed(self, error)
    }
    fn push_request(changed: &[Grown]) -> Self {
        push::create_partitions(changed)
    }
    fn refusals(r: &CreatePartitionsResponse) -> Vec<String> {
        r.results.iter().filter(|t| t.error_code != 0).map(|t| format!("{}: {:?}", t.name.as_str(), t.error_message)).collect()
    }
}

/// Metadata's automatic creation of `name` with the broker defaults. A single node creates it at once
/// (`Some`); in a cluster the controller creates it in the background and the caller answers
/// LEADER_NOT_AVAILABLE for now (`None`), as Kafka does; clients ask again.
pub fn auto_create(state: &Arc<BrokerState>, name: &str) -> Outcome<Option<TopicMeta>> {
    topics::validate_topic_name(name).map_err(|m| (code::INVALID_TOPIC_EXCEPTION, m))?;
    if crate::group::is_internal_topic(name) {
        return Err((code::INVALID_TOPIC_EXCEPTION, format!("{name} is the broker's internal topic")));
    }
    let req = CreateTopicsRequest::default().with_timeout_ms(PEER_TIMEOUT.as_millis() as i32).with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(-1)
            .with_replication_factor(-1),
    ]);
    match state.cluster.role(None) {
        Role::Alone => match create_one(state, &req.topics[0], &Mode::Decide(vec![state.config.node_id]), false) {
            // Another request created it in the meantime.
            Err((code::TOPIC_ALREADY_EXISTS, _)) => Ok(state.replicas.topic(name)),
            other => other.map(Some),
        },
        role => {
            if state.cluster.begin_auto_create(name) {
                tokio::spawn(create_in_background(state.clone(), role, name.to_string(), req));
            }
            Ok(None)
        }
    }
}

async fn create_in_background(state: Arc<BrokerState>, role: Role, name: String, req: CreateTopicsRequest) {
    let version = push::CREATE_TOPICS_VERSION;
    let resp = match role {
        Role::Alone | Role::Apply => Ok(create_here(&state, version, req, &Mode::Decide(vec![state.config.node_id])).0),
        Role::Controller(peers) => Ok(as_controller(state.clone(), peers, version, req).await),
        Role::Forward(c) => {
            peer::call(&c.socket_addr(), ApiKey::CreateTopics, version, peer::FORWARD_CLIENT_ID, &req, super::FORWARD_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        }
        Role::NotController(id) => Err(format!("broker {id} is the controller")),
    };
    match resp.as_ref().map(|r| r.topics.first().map(|t| (t.error_code, t.error_message.as_ref()))) {
        Ok(Some((0 | code::TOPIC_ALREADY_EXISTS, _))) => {}
        Ok(other) => tracing::info!(topic = %name, answer = ?other, "automatic topic creation refused"),
        Err(e) => tracing::warn!(topic = %name, error = %e, "automatic topic creation failed"),
    }
    state.cluster.end_auto_create(&name);
}

/// Creates (or, from a peer, adopts) the requested topics here; returns the answer and the topics created.
fn create_here(
    state: &BrokerState,
    version: i16,
    req: CreateTopicsRequest,
    mode: &Mode,
) -> (CreateTopicsResponse, Vec<TopicMeta>) {
    let mut names = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().map(|t| t.name.0.to_string()).filter(|n| !names.insert(n.clone())).collect();
    let mut created = Vec::new();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = create_topics_response::CreatableTopicResult::default().with_name(t.name.clone());
            let outcome = if duplicates.contains(&name) {
                Err((code::INVALID_REQUEST, format!("topic {name} appears more than once in the request")))
            } else {
                create_one(state, &t, mode, req.validate_only)
            };
            match outcome {
                Ok(meta) => {
                    let entries = describe_topic_configs(state, &meta, None);
                    let result = result.with_num_partitions(meta.partitions).with_replication_factor(1);
                    let result = if version < 5 {
                        result.with_num_partitions(-1).with_replication_factor(-1)
                    } else {
                        result
                            .with_topic_id(if version >= 7 && !req.validate_only { meta.id } else { Uuid::nil() })
                            .with_configs(Some(entries.into_iter().map(to_creatable_config).collect()))
                    };
                    if !req.validate_only {
                        created.push(meta);
                    }
                    result
                }
                Err((error_code, msg)) => {
                    tracing::info!(topic = %name, error = %msg, "create topic refused");
                    result
                        .with_error_code(error_code)
                        .with_error_message(message_if(version >= 1, Some(msg)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    (CreateTopicsResponse::default().with_topics(topics), created)
}

fn create_one(
    state: &BrokerState,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    mode: &Mode,
    validate_only: bool,
) -> Outcome<TopicMeta> {
    let name = t.name.0.to_string();
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let Some(value) = &c.value else {
            return Err((code::INVALID_CONFIG, format!("config {} has a null value", c.name.as_str())));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let explicit: Vec<(i32, Vec<i32>)> =
        t.assignments.iter().map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect())).collect();
    let explicit = if explicit.is_empty() {
        None
    } else {
        Some(assignment::by_partition(explicit).map_err(|m| (code::INVALID_REPLICA_ASSIGNMENT, m))?)
    };
    match mode {
        Mode::Decide(brokers) => {
            assignment::check_replication_factor(t.replication_factor).map_err(|m| (code::INVALID_REPLICATION_FACTOR, m))?;
            let id = Uuid::new_v4();
            let assignment = match (explicit, t.num_partitions) {
                (Some(a), -1) => {
                    assignment::check_explicit(brokers, &a).map_err(|m| (code::INVALID_REPLICA_ASSIGNMENT, m))?;
                    a
                }
                (Some(_), _) => {
                    return Err((code::INVALID_REQUEST, "give either num_partitions or assignments, not both".into()))
                }
                (None, n) => {
                    let n = if n == -1 { state.config.num_partitions } else { n };
                    if !(1..=MAX_PARTITIONS).contains(&n) {
                        return Err((code::INVALID_PARTITIONS, format!("partition count {n} is not in [1, {MAX_PARTITIONS}]")));
                    }
                    assignment::round_robin(brokers, assignment::start_for_new(brokers, id), 0, n)
                }
            };
            let meta = TopicMeta { name, id, partitions: assignment.len() as i32, assignment, configs };
            state.replicas.create_topic(meta, validate_only).map_err(admin_err)
        }
        Mode::Apply => {
            let id = push::take_topic_id(&mut configs).map_err(|m| (code::INVALID_REQUEST, m))?;
            let assignment =
                explicit.ok_or_else(|| (code::INVALID_REQUEST, "a pushed topic needs its assignment".to_string()))?;
            let local: BTreeMap<String, TopicView> = state
                .replicas
                .topic(&name)
                .map(|m| (m.name.clone(), TopicView { name: m.name, id: m.id, assignment: m.assignment }))
                .into_iter()
                .collect();
            let view = TopicView { name: name.clone(), id, assignment };
            for action in merge(&local, &state.replicas.deleted_ids(), &[view], true) {
                sync::apply(&state.replicas, action, configs.clone()).map_err(admin_err)?;
            }
            state.replicas.topic(&name).ok_or_else(|| (code::UNKNOWN_TOPIC_OR_PARTITION, format!("topic {name} vanished")))
        }
    }
}

/// Every topic of `req` refused with the same error.
fn create_failed(version: i16, req: &CreateTopicsRequest, (error_code, msg): (i16, String)) -> CreateTopicsResponse {
    CreateTopicsResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(error_code)
                    .with_error_message(message_if(version >= 1, Some(msg.clone())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect(),
    )
}

fn to_creatable_config(e: ConfigEntry) -> create_topics_response::CreatableTopicConfigs {
    create_topics_response::CreatableTopicConfigs::default()
        .with_name(s(e.name))
        .with_value(Some(s(e.value)))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
}

/// The topics a DeleteTopics request names: by name or id (v6+), by name before.
fn wanted_deletions(version: i16, req: &DeleteTopicsRequest) -> Vec<(Option<String>, Uuid)> {
    if version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), Uuid::nil())).collect()
    }
}

/// Deletes the requested topics here; a peer's deletion by id is remembered even for a topic this broker never
/// had. Returns the answer and the (name, id) of the deleted topics.
fn delete_here(
    state: &BrokerState,
    version: i16,
    req: &DeleteTopicsRequest,
    mode: &Mode,
) -> (DeleteTopicsResponse, Vec<(String, Uuid)>) {
    let pushed = matches!(mode, Mode::Apply);
    let mut deleted = Vec::new();
    let responses = wanted_deletions(version, req)
        .into_iter()
        .map(|(name, id)| {
            let by_id = (!id.is_nil()).then(|| state.replicas.topic_name_by_id(id)).flatten();
            let resolved = by_id.clone().or_else(|| if id.is_nil() { name.clone() } else { None });
            let result = delete_topics_response::DeletableTopicResult::default().with_name(if version >= 6 {
                resolved.clone().or(name.clone()).map(|n| TopicName(s(n)))
            } else {
                Some(TopicName(s(name.clone().unwrap_or_default())))
            });
            let outcome = match &resolved {
                Some(n) => state.replicas.delete_topic(n).map_err(admin_err),
                None if pushed && !id.is_nil() => {
                    state.replicas.record_deleted(id, name.as_deref().unwrap_or_default()).map_err(admin_err).map(|()| {
                        TopicMeta {
                            name: name.clone().unwrap_or_default(),
                            id,
                            partitions: 0,
                            assignment: vec![],
                            configs: BTreeMap::new(),
                        }
                    })
                }
                None => Err((code::UNKNOWN_TOPIC_ID, format!("no topic has id {id}"))),
            };
            match outcome {
                Ok(meta) => {
                    deleted.push((meta.name.clone(), meta.id));
                    result.with_topic_id(if version >= 6 { meta.id } else { Uuid::nil() })
                }
                Err((error_code, msg)) => result
                    .with_topic_id(if version >= 6 { id } else { Uuid::nil() })
                    .with_error_code(error_code)
                    .with_error_message(message_if(version >= 5, Some(msg))),
            }
        })
        .collect();
    (DeleteTopicsResponse::default().with_responses(responses), deleted)
}

fn delete_failed(version: i16, req: &DeleteTopicsRequest, (error_code, msg): (i16, String)) -> DeleteTopicsResponse {
    DeleteTopicsResponse::default().with_responses(
        wanted_deletions(version, req)
            .into_iter()
            .map(|(name, id)| {
                delete_topics_response::DeletableTopicResult::default()
                    .with_name(name.map(|n| TopicName(s(n))).or_else(|| (version < 6).then(|| TopicName(s("")))))
                    .with_topic_id(if version >= 6 { id } else { Uuid::nil() })
                    .with_error_code(error_code)
                    .with_error_message(message_if(version >= 5, Some(msg.clone())))
            })
            .collect(),
    )
}

/// Adds the requested partitions here; returns the answer and the grown topics.
fn grow_here(state: &BrokerState, req: &CreatePartitionsRequest, mode: &Mode) -> (CreatePartitionsResponse, Vec<Grown>) {
    let mut grown = Vec::new();
    let results = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let outcome = (|| -> Outcome<Vec<Vec<i32>>> {
                let meta = state.replicas.topic(&name).ok_or_else(|| admin_err(AdminError::UnknownTopic(name.clone())))?;
                let current = meta.partitions;
                if matches!(mode, Mode::Apply) && t.count <= current {
                    return Ok(vec![]); // a repeated push
                }
                if !(current + 1..=MAX_PARTITIONS).contains(&t.count) {
                    let msg = format!(
                        "topic {name} has {current} partitions; the new count {} must be larger and at most {MAX_PARTITIONS}",
                        t.count
                    );
                    return Err((code::INVALID_PARTITIONS, msg));
                }
                // An empty list (kafka-protocol's default) asks for an automatic assignment, like null.
                let explicit: Option<Vec<Vec<i32>>> = t
                    .assignments
                    .as_ref()
                    .filter(|a| !a.is_empty())
                    .map(|a| a.iter().map(|r| r.broker_ids.iter().map(|b| b.0).collect()).collect());
                let added = match (mode, explicit) {
                    (Mode::Decide(brokers), None) => assignment::round_robin(
                        brokers,
                        assignment::start_for_existing(brokers, &meta.assignment),
                        current,
                        t.count - current,
                    ),
                    (Mode::Decide(brokers), Some(a)) => {
                        if a.len() as i32 != t.count - current {
                            let msg = format!("{} assignments for {} new partitions", a.len(), t.count - current);
                            return Err((code::INVALID_REPLICA_ASSIGNMENT, msg));
                        }
                        assignment::check_explicit(brokers, &a).map_err(|m| (code::INVALID_REPLICA_ASSIGNMENT, m))?;
                        a
                    }
                    // A push names the last partitions; some may be here already (a repeated push).
                    (Mode::Apply, Some(a)) => {
                        let first = t.count - a.len() as i32;
                        if first > current {
                            return Err((
                                code::INVALID_PARTITIONS,
                                format!("partitions {current}..{first} of {name} are missing here"),
                            ));
                        }
                        a[(current - first) as usize..].to_vec()
                    }
                    (Mode::Apply, None) => return Err((code::INVALID_REQUEST, "pushed partitions need their assignment".into())),
                };
                state.replicas.add_partitions(&name, current, added.clone(), req.validate_only).map_err(admin_err)?;
                Ok(added)
            })();
            let r = create_partitions_response::CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(added) => {
                    if !req.validate_only {
                        grown.push(Grown { name, count: t.count, added });
                    }
                    r
                }
                Err((error_code, msg)) => r.with_error_code(error_code).with_error_message(Some(s(msg))),
            }
        })
        .collect();
    (CreatePartitionsResponse::default().with_results(results), grown)
}

fn grow_failed(req: &CreatePartitionsRequest, (error_code, msg): (i16, String)) -> CreatePartitionsResponse {
    CreatePartitionsResponse::default().with_results(
        req.topics
            .iter()
            .map(|t| {
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(error_code)
                    .with_error_message(Some(s(msg.clone())))
            })
            .collect(),
    )
}
