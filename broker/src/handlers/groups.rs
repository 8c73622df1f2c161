//! The group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups, DeleteGroups, OffsetDelete) over the group coordinator, and InitProducerId.
//! Fields a request version does not have are left at their defaults, as kafka-protocol requires.
//!
//! Each group has one coordinator, the leader of its `__consumer_offsets` partition, named by FindCoordinator
//! on every broker alike; the others answer the group's requests with NOT_COORDINATOR (the coordinator decides
//! that itself). Writes are answered once the partition's in-sync replicas have them.

use kafka_protocol::messages::{
    describe_groups_response, find_coordinator_response, join_group_response, leave_group_response, list_groups_response,
    offset_commit_response, offset_delete_response, offset_fetch_response, BrokerId, DeleteGroupsRequest, DeleteGroupsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, ProducerId, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use std::sync::Arc;
use std::time::Duration;

use strata_storage::TopicPartition;

use super::{message_if, respond, respond_later, s};
use crate::authorizer::{Check, Operation, Resource, ResourceType};
use crate::broker::BrokerState;
use crate::controller::image::{Image, Refused, NO_LEADER};
use crate::controller::service::ControllerRequest;
use crate::errors::code;
use crate::group::coordinator::{now_ms, Commit, OffsetCommitEntry, OffsetList};
use crate::group::member::Protocol;
use crate::group::offsets::CommittedOffset;
use crate::group::state::{JoinRequest, JoinResult, SyncRequest, SyncResult};
use crate::group::store::{partition_for, topic_configs};
use crate::group::{GroupCoordinator, Pending, OFFSETS_TOPIC};
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};

/// The group coordinator (the publisher keeps it following the offsets partitions this broker leads).
fn coordinator(state: &BrokerState) -> &GroupCoordinator {
    &state.groups
}

/// Answers now, or when the parked request completes (a dropped waiter means the coordinator went away).
fn reply_pending<T, R, F>(header: &RequestHeader, pending: Pending<T>, gone: T, build: F) -> Reply
where
    T: Send + 'static,
    R: Encodable,
    F: FnOnce(T) -> R + Send + 'static,
{
    match pending {
        Pending::Ready(v) => respond(header, &build(v)),
        wait => respond_later(header, async move { build(wait.resolve(gone).await) }),
    }
}

/// [`reply_pending`] of several answers.
fn reply_all<T, R, F>(header: &RequestHeader, pending: Vec<Pending<T>>, gone: T, build: F) -> Reply
where
    T: Clone + Send + 'static,
    R: Encodable,
    F: FnOnce(Vec<T>) -> R + Send + 'static,
{
    match Pending::all_ready(pending) {
        Ok(values) => respond(header, &build(values)),
        Err(pending) => respond_later(header, async move {
            let mut values = Vec::with_capacity(pending.len());
            for p in pending {
                values.push(p.resolve(gone.clone()).await);
            }
            build(values)
        }),
    }
}

// Transactions need a transaction coordinator, which this broker does not have. Kafka answers a client that
// may not use a transactional id with TRANSACTIONAL_ID_AUTHORIZATION_FAILED; both librdkafka and the Java
// client treat it as fatal at once (instead of retrying until a timeout), so it is the clearest refusal.
const NO_TRANSACTIONS: &str = "transactions are not supported by this broker";

/// (id, host, port) where clients reach broker `id`: this one at the listener the client used, a peer at its
/// address in the membership.
/// Where clients reach broker `id` on the listener they used; None while it is fenced.
fn address(state: &BrokerState, peer: &Peer, image: &Image, id: i32) -> Option<(BrokerId, StrBytes, i32)> {
    if id == state.config.node_id {
        let adv = state.advertised(&peer.listener);
        return Some((BrokerId(id), s(adv.host.clone()), i32::from(adv.port)));
    }
    let b = image.brokers.get(&id).filter(|b| !b.fenced)?;
    b.endpoint(&peer.listener).map(|e| (BrokerId(id), s(e.host.clone()), i32::from(e.port)))
}

/// Has the active controller create `__consumer_offsets` if it does not exist (Kafka creates it on the first
/// FindCoordinator), with this broker's settings (or the partition count of an earlier release's local logs);
/// concurrent requests ask once.
pub async fn ensure_offsets_topic(state: &BrokerState, timeout: Duration) -> Result<(), Refused> {
    if state.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    if !state.auto_creating.lock().expect("auto-create lock").insert(OFFSETS_TOPIC.to_string()) {
        return Ok(());
    }
    let g = &state.config.groups;
    let req = ControllerRequest::CreateOffsetsTopic {
        partitions: state.groups.legacy_partitions().unwrap_or(g.offsets_partitions),
        replication_factor: g.offsets_replication_factor,
        configs: topic_configs(g.offsets_segment_bytes),
    };
    let result = state.controller.call(req, timeout).await;
    state.auto_creating.lock().expect("auto-create lock").remove(OFFSETS_TOPIC);
    result.map(|_| ())
}

/// FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition, created first
/// if need be; COORDINATOR_NOT_AVAILABLE while there is none.
pub fn find_coordinator(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: FindCoordinatorRequest) -> Reply {
    let groups = req.key_type == 0;
    if !groups || state.image().topic(OFFSETS_TOPIC).is_some() {
        return respond(header, &find_coordinator_answer(state, peer, header.api_version, &req));
    }
    let (state, peer, version) = (state.clone(), peer.clone(), header.api_version);
    respond_later(header, async move {
        if let Err(e) = ensure_offsets_topic(&state, Duration::from_secs(5)).await {
            tracing::info!(error = %e, "creating __consumer_offsets");
        }
        find_coordinator_answer(&state, &peer, version, &req)
    })
}

/// The broker that coordinates `group`: the live leader of its partition.
fn group_coordinator(
    state: &BrokerState,
    peer: &Peer,
    image: &Image,
    group: &str,
) -> Result<(BrokerId, StrBytes, i32), (i16, String)> {
    let unavailable = |m: String| (code::COORDINATOR_NOT_AVAILABLE, m);
    let topic = image.topic(OFFSETS_TOPIC).ok_or_else(|| unavailable(format!("{OFFSETS_TOPIC} is being created")))?;
    let p = partition_for(group, topic.partition_count());
    let leader = topic.partitions.get(p as usize).map_or(NO_LEADER, |part| part.leader);
    if leader == NO_LEADER {
        return Err(unavailable(format!("partition {p} of {OFFSETS_TOPIC}, which has group {group}, has no leader")));
    }
    address(state, peer, image, leader)
        .ok_or_else(|| unavailable(format!("broker {leader}, which coordinates {group}, is fenced")))
}

fn find_coordinator_answer(
    state: &BrokerState,
    peer: &Peer,
    version: i16,
    req: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let image = state.image();
    let auth = state.authorizer.check(peer);
    let locate = |key: &str| match req.key_type {
        0 if !auth.allows(Operation::Describe, Resource::group(key)) => {
            Err((code::GROUP_AUTHORIZATION_FAILED, "DESCRIBE on the group is not allowed".to_string()))
        }
        0 => group_coordinator(state, peer, &image, key),
        1 => Err((code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, NO_TRANSACTIONS.to_string())),
        other => Err((code::INVALID_REQUEST, format!("unknown coordinator key type {other}"))),
    };
    let resp = FindCoordinatorResponse::default();
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = find_coordinator_response::Coordinator::default().with_key(key.clone());
                match locate(key) {
                    Ok((node, host, port)) => c.with_node_id(node).with_host(host).with_port(port),
                    Err((error, msg)) => {
                        c.with_node_id(BrokerId(-1)).with_port(-1).with_error_code(error).with_error_message(Some(s(msg)))
                    }
                }
            })
            .collect();
        return resp.with_coordinators(coordinators);
    }
    match locate(&req.key) {
        Ok((node, host, port)) => resp.with_node_id(node).with_host(host).with_port(port),
        Err((error, msg)) => resp
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(error)
            .with_error_message(message_if(version >= 1, Some(msg))),
    }
}

/// How long InitProducerId waits for a new block of producer ids from the controller quorum.
const PRODUCER_ID_BLOCK_TIMEOUT: Duration = Duration::from_secs(5);

pub fn init_producer_id(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: InitProducerIdRequest) -> Reply {
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    match req.transactional_id {
        Some(t) if t.0.is_empty() => respond(header, &resp.with_error_code(code::INVALID_REQUEST)),
        Some(_) => respond(header, &resp.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)),
        // An idempotent producer needs IDEMPOTENT_WRITE on the cluster or, since Kafka 3.0, WRITE on some topic.
        None if !may_write_idempotently(&state.authorizer.check(peer)) => {
            respond(header, &resp.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED))
        }
        // Non-transactional: always a fresh id with epoch 0, also when the producer asks to bump its epoch
        // (KIP-360), as Kafka does without a transactional id.
        None => {
            let state = state.clone();
            respond_later(header, async move {
                match state.producer_ids.next_id(&state.controller, PRODUCER_ID_BLOCK_TIMEOUT).await {
                    Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
                    // Retriable, as Kafka answers while its next block is on the way.
                    Err(e) => {
                        tracing::warn!(error = %e, "no block of producer ids");
                        resp.with_error_code(code::COORDINATOR_LOAD_IN_PROGRESS)
                    }
                }
            })
        }
    }
}

fn may_write_idempotently(auth: &Check) -> bool {
    auth.allows_any(Operation::Write, ResourceType::Topic) || auth.allows(Operation::IdempotentWrite, Resource::cluster())
}

/// Whether `peer` may READ `group` (joining, syncing, heartbeats, leaving, committing).
fn may_read_group(state: &BrokerState, peer: &Peer, group: &str) -> bool {
    state.authorizer.authorize(peer, Operation::Read, Resource::group(group))
}

fn join_response(version: i16, r: JoinResult) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(m.instance_id.filter(|_| version >= 5).map(s))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.filter(|_| version >= 7).map(s))
        // Nullable only from v7.
        .with_protocol_name(r.protocol_name.or_else(|| (version < 7).then(String::new)).map(s))
        .with_leader(s(r.leader_id))
        .with_skip_assignment(r.skip_assignment && version >= 9)
        .with_member_id(s(r.member_id))
        .with_members(members)
}

pub fn join_group(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: JoinGroupRequest) -> Reply {
    let version = header.api_version;
    let member_id = req.member_id.to_string();
    if !may_read_group(state, peer, &req.group_id.0) {
        return respond(header, &join_response(version, JoinResult::error(&member_id, code::GROUP_AUTHORIZATION_FAILED)));
    }
    let join = JoinRequest {
        member_id: member_id.clone(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", peer.addr.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata }).collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let pending = coordinator(state).join(&req.group_id.0, join, now_ms());
    reply_pending(header, pending, JoinResult::error(&member_id, code::NOT_COORDINATOR), move |r| join_response(version, r))
}

fn sync_response(version: i16, r: SyncResult) -> SyncGroupResponse {
    let v5 = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(r.protocol_type.filter(|_| v5).map(s))
        .with_protocol_name(r.protocol_name.filter(|_| v5).map(s))
        .with_assignment(r.assignment)
}

pub fn sync_group(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: SyncGroupRequest) -> Reply {
    let version = header.api_version;
    if !may_read_group(state, peer, &req.group_id.0) {
        return respond(header, &sync_response(version, SyncResult::error(code::GROUP_AUTHORIZATION_FAILED)));
    }
    let sync = SyncRequest {
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let pending = coordinator(state).sync(&req.group_id.0, sync, now_ms());
    reply_pending(header, pending, SyncResult::error(code::NOT_COORDINATOR), move |r| sync_response(version, r))
}

pub fn heartbeat(state: &BrokerState, peer: &Peer, req: HeartbeatRequest) -> HeartbeatResponse {
    if !may_read_group(state, peer, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let instance = req.group_instance_id.as_deref();
    let error = coordinator(state).heartbeat(&req.group_id.0, &req.member_id, instance, req.generation_id, now_ms());
    HeartbeatResponse::default().with_error_code(error)
}

pub fn leave_group(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !may_read_group(state, peer, &req.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let batch = header.api_version >= 3;
    let members: Vec<(String, Option<String>)> = if batch {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match coordinator(state).leave(&req.group_id.0, &members, now_ms()) {
        Err(error) => LeaveGroupResponse::default().with_error_code(error),
        // Before v3 the one member's error is the response's.
        Ok(errors) if !batch => LeaveGroupResponse::default().with_error_code(errors[0]),
        Ok(errors) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(errors)
                .map(|((member_id, instance_id), error)| {
                    leave_group_response::MemberResponse::default()
                        .with_member_id(s(member_id))
                        .with_group_instance_id(instance_id.map(s))
                        .with_error_code(error)
                })
                .collect(),
        ),
    }
}

pub fn offset_commit(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: OffsetCommitRequest) -> Reply {
    let version = header.api_version;
    let auth = state.authorizer.check(peer);
    let group_denied = !auth.allows(Operation::Read, Resource::group(&req.group_id.0));
    // Partitions refused here (the group or topic may not be read, unknown topics) carry their error; the rest go
    // to the coordinator (`slots` index `entries`).
    let mut entries = Vec::new();
    let mut slots = Vec::new();
    for t in &req.topics {
        let topic_denied = !group_denied && !auth.allows(Operation::Read, Resource::topic(t.name.as_str()));
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
            if group_denied || topic_denied {
                let error = if group_denied { code::GROUP_AUTHORIZATION_FAILED } else { code::TOPIC_AUTHORIZATION_FAILED };
                slots.push((tp, Err(error)));
                continue;
            }
            let slot = state.image().partition(&tp.topic, tp.partition).is_some().then(|| {
                entries.push(OffsetCommitEntry {
                    tp: tp.clone(),
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
                entries.len() - 1
            });
            slots.push((tp, slot.ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)));
        }
    }
    // v2-v4 may ask for a retention time (-1: the broker's).
    let retention = (version <= 4 && req.retention_time_ms >= 0).then_some(req.retention_time_ms);
    let commit = Commit {
        generation: req.generation_id_or_member_epoch,
        member_id: &req.member_id,
        instance_id: req.group_instance_id.as_deref(),
        retention_ms: retention,
        offsets: &entries,
    };
    let pending = match group_denied {
        true => Pending::Ready(vec![]),
        false => coordinator(state).commit(&req.group_id.0, commit, now_ms()),
    };
    let gone = vec![code::NOT_COORDINATOR; entries.len()];
    reply_pending(header, pending, gone, move |errors| commit_response(slots, &errors))
}

fn commit_response(slots: Vec<(TopicPartition, Result<usize, i16>)>, errors: &[i16]) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        by_topic(slots)
            .into_iter()
            .map(|(name, partitions)| {
                offset_commit_response::OffsetCommitResponseTopic::default().with_name(TopicName(s(name))).with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, slot)| {
                            offset_commit_response::OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(slot.map_or_else(|e| e, |i| errors[i]))
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// Per topic, its partitions with a value each.
type ByTopic<T> = Vec<(String, Vec<(i32, T)>)>;

/// Groups per-partition values by topic, keeping the order of first appearance.
fn by_topic<T>(items: Vec<(TopicPartition, T)>) -> ByTopic<T> {
    let mut out: ByTopic<T> = Vec::new();
    for (tp, o) in items {
        match out.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push((tp.partition, o)),
            None => out.push((tp.topic, vec![(tp.partition, o)])),
        }
    }
    out
}

/// (offset, leader epoch, metadata, error) of a partition: Kafka's -1, -1, "" without a committed offset.
fn offset_fields(o: Result<Option<CommittedOffset>, i16>) -> (i64, i32, String, i16) {
    match o {
        Ok(o) => o.map_or((-1, -1, String::new(), code::NONE), |o| (o.offset, o.leader_epoch, o.metadata, code::NONE)),
        Err(error) => (-1, -1, String::new(), error),
    }
}

/// Each partition's committed offset as answered, or why it is not shown.
type Fetched = Vec<(TopicPartition, Result<Option<CommittedOffset>, i16>)>;

/// The topics asked for split into those the client may describe (asked of the coordinator) and the partitions
/// of the others (answered TOPIC_AUTHORIZATION_FAILED); all topics (None) are filtered once known.
/// Topics with the partitions asked for.
type Asked = Vec<(String, Vec<i32>)>;

fn describable(auth: &Check, asked: Option<Asked>) -> (Option<Asked>, Vec<TopicPartition>) {
    let Some(asked) = asked else { return (None, vec![]) };
    let (allowed, denied): (Vec<_>, Vec<_>) =
        asked.into_iter().partition(|(t, _)| auth.allows(Operation::Describe, Resource::topic(t)));
    let denied = denied.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| TopicPartition::new(t.clone(), p))).collect();
    (Some(allowed), denied)
}

/// The coordinator's offsets with the refused partitions: of all topics, only those the client may describe.
fn visible(auth: &Check, all: bool, list: OffsetList, denied: Vec<TopicPartition>) -> Fetched {
    list.into_iter()
        .filter(|(tp, _)| !all || auth.quietly_allows(Operation::Describe, Resource::topic(&tp.topic)))
        .map(|(tp, o)| (tp, Ok(o)))
        .chain(denied.into_iter().map(|tp| (tp, Err(code::TOPIC_AUTHORIZATION_FAILED))))
        .collect()
}

pub fn offset_fetch(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: OffsetFetchRequest) -> Reply {
    let version = header.api_version;
    let coordinator = coordinator(state);
    let auth = Arc::new(state.authorizer.check(peer));
    // One group: its offsets (of the describable topics asked), and the asked partitions refused.
    let fetch = |group: &str, topics: Option<Vec<(String, Vec<i32>)>>| {
        if !auth.allows(Operation::Describe, Resource::group(group)) {
            return (Pending::Ready(Err(code::GROUP_AUTHORIZATION_FAILED)), (false, vec![]));
        }
        let all = topics.is_none();
        let (allowed, denied) = describable(&auth, topics);
        let tps: Option<Vec<TopicPartition>> = allowed.map(|ts| {
            ts.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| TopicPartition::new(t.clone(), p))).collect()
        });
        (coordinator.fetch_offsets(group, tps.as_deref()), (all, denied))
    };
    let gone = Err(code::NOT_COORDINATOR);
    if version >= 8 {
        let ids: Vec<GroupId> = req.groups.iter().map(|g| g.group_id.clone()).collect();
        let (pending, refused): (Vec<_>, Vec<_>) = req
            .groups
            .into_iter()
            .map(|g| {
                fetch(
                    &g.group_id.0,
                    g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect()),
                )
            })
            .unzip();
        return reply_all(header, pending, gone, move |results| {
            let groups = ids
                .into_iter()
                .zip(results)
                .zip(refused)
                .map(|((id, r), (all, denied))| fetch_group(id, r.map(|list| visible(&auth, all, list, denied))));
            OffsetFetchResponse::default().with_groups(groups.collect())
        });
    }
    let asked: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let (pending, (all, denied)) = fetch(&req.group_id.0, asked.clone());
    reply_pending(header, pending, gone, move |r| fetch_response(version, asked, r.map(|list| visible(&auth, all, list, denied))))
}

/// One group's OffsetFetch answer (v8+).
fn fetch_group(id: GroupId, result: Result<Fetched, i16>) -> offset_fetch_response::OffsetFetchResponseGroup {
    let resp = offset_fetch_response::OffsetFetchResponseGroup::default().with_group_id(id);
    match result.map(by_topic) {
        Err(error) => resp.with_error_code(error),
        Ok(topics) => resp.with_topics(
            topics
                .into_iter()
                .map(|(name, ps)| {
                    offset_fetch_response::OffsetFetchResponseTopics::default().with_name(TopicName(s(name))).with_partitions(
                        ps.into_iter()
                            .map(|(p, o)| {
                                let (offset, epoch, metadata, error) = offset_fields(o);
                                offset_fetch_response::OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(s(metadata)))
                                    .with_error_code(error)
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

/// The OffsetFetch answer before v8 (one group).
fn fetch_response(version: i16, asked: Option<Vec<(String, Vec<i32>)>>, result: Result<Fetched, i16>) -> OffsetFetchResponse {
    let topics = match result.map(by_topic) {
        Ok(topics) => topics,
        Err(error) if version >= 2 => return OffsetFetchResponse::default().with_error_code(error),
        // v1 has no top-level error: Kafka puts it on every partition asked for.
        Err(error) => {
            asked.unwrap_or_default().into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, Err(error))).collect())).collect()
        }
    };
    OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, ps)| {
                offset_fetch_response::OffsetFetchResponseTopic::default().with_name(TopicName(s(name))).with_partitions(
                    ps.into_iter()
                        .map(|(p, o)| {
                            let (offset, epoch, metadata, error) = offset_fields(o);
                            offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                                .with_metadata(Some(s(metadata)))
                                .with_error_code(error)
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

pub fn list_groups(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: ListGroupsRequest) -> ListGroupsResponse {
    let version = header.api_version;
    // DESCRIBE on the cluster lists every group, else those the client may describe.
    let auth = state.authorizer.check(peer);
    let every = auth.quietly_allows(Operation::Describe, Resource::cluster());
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    // Only classic groups exist here.
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == "classic") {
        return ListGroupsResponse::default();
    }
    let groups = coordinator(state)
        .list_groups()
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.as_str().to_lowercase()))
        .filter(|g| every || auth.quietly_allows(Operation::Describe, Resource::group(&g.group_id)))
        .map(|g| {
            list_groups_response::ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type))
                .with_group_state(if version >= 4 { s(g.state.as_str()) } else { Default::default() })
                .with_group_type(if version >= 5 { s("classic") } else { Default::default() })
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(
    state: &BrokerState,
    peer: &Peer,
    header: &RequestHeader,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.api_version;
    let coordinator = coordinator(state);
    let auth = state.authorizer.check(peer);
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let base = describe_groups_response::DescribedGroup::default().with_group_id(id.clone());
            if !auth.allows(Operation::Describe, Resource::group(&id.0)) {
                return base.with_error_code(code::GROUP_AUTHORIZATION_FAILED);
            }
            let base = match version >= 3 && req.include_authorized_operations {
                true => base.with_authorized_operations(auth.authorized_operations(Resource::group(&id.0))),
                false => base,
            };
            let d = match coordinator.describe(&id.0) {
                Ok(Some(d)) => d,
                Err(error) => return base.with_error_code(error),
                Ok(None) => {
                    // Kafka describes unknown groups as Dead; v6 adds GROUP_ID_NOT_FOUND.
                    let error = if version >= 6 { code::GROUP_ID_NOT_FOUND } else { code::NONE };
                    let msg = message_if(version >= 6, Some(format!("group {} does not exist", id.0)));
                    return base.with_error_code(error).with_error_message(msg).with_group_state(s("Dead"));
                }
            };
            base.with_group_state(s(d.state.as_str()))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            describe_groups_response::DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_group_instance_id(m.instance_id.filter(|_| version >= 4).map(s))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: DeleteGroupsRequest) -> Reply {
    let auth = state.authorizer.check(peer);
    let allowed: Vec<bool> = req.groups_names.iter().map(|g| auth.allows(Operation::Delete, Resource::group(&g.0))).collect();
    let ids: Vec<String> = req.groups_names.iter().zip(&allowed).filter(|(_, a)| **a).map(|(g, _)| g.0.to_string()).collect();
    let mut decided = coordinator(state).delete_groups(&ids, now_ms()).into_iter();
    let pending = allowed
        .iter()
        .map(|allowed| match allowed {
            true => decided.next().unwrap_or(Pending::Ready(code::UNKNOWN_SERVER_ERROR)),
            false => Pending::Ready(code::GROUP_AUTHORIZATION_FAILED),
        })
        .collect();
    reply_all(header, pending, code::NOT_COORDINATOR, move |errors| {
        DeleteGroupsResponse::default().with_results(
            req.groups_names
                .into_iter()
                .zip(errors)
                .map(|(id, error)| {
                    kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(id)
                        .with_error_code(error)
                })
                .collect(),
        )
    })
}

pub fn offset_delete(state: &BrokerState, peer: &Peer, header: &RequestHeader, req: OffsetDeleteRequest) -> Reply {
    let auth = state.authorizer.check(peer);
    if !auth.allows(Operation::Delete, Resource::group(&req.group_id.0)) {
        return respond(header, &OffsetDeleteResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED));
    }
    // Topics the client may not read keep their offsets and answer TOPIC_AUTHORIZATION_FAILED.
    let readable: Vec<bool> = req.topics.iter().map(|t| auth.allows(Operation::Read, Resource::topic(t.name.as_str()))).collect();
    let tps: Vec<TopicPartition> = req
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(t, _)| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.to_string(), p.partition_index)))
        .collect();
    let pending = coordinator(state).delete_offsets(&req.group_id.0, &tps, now_ms());
    reply_pending(header, pending, Err(code::NOT_COORDINATOR), move |r| offset_delete_response(req, &readable, r))
}

fn offset_delete_response(req: OffsetDeleteRequest, readable: &[bool], result: Result<Vec<i16>, i16>) -> OffsetDeleteResponse {
    let errors = match result {
        Ok(errors) => errors,
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error),
    };
    let mut errors = errors.into_iter();
    OffsetDeleteResponse::default().with_topics(
        req.topics
            .into_iter()
            .zip(readable)
            .map(|(t, readable)| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let error = match readable {
                            true => errors.next().unwrap_or(code::UNKNOWN_SERVER_ERROR),
                            false => code::TOPIC_AUTHORIZATION_FAILED,
                        };
                        offset_delete_response::OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error)
                    })
                    .collect();
                offset_delete_response::OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
            })
            .collect(),
    )
}
