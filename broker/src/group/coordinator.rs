//! The group coordinator: the groups of this broker (all of them, on a single node), sharded by their
//! `__consumer_offsets` partition, each shard behind its own lock together with that partition's log. It runs
//! the state machine of [`super::state`], parks JoinGroup/SyncGroup requests until their answer exists, writes
//! group metadata and committed offsets to the log before answering, and drives the timers.
//!
//! In a cluster it serves only the partitions the membership gives it ([`super::placement`]) and answers
//! NOT_COORDINATOR for the other groups, so clients ask FindCoordinator again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_storage::{LogManager, StorageError, TopicPartition};
use tokio::sync::{oneshot, watch};

use super::config::GroupConfig;
use super::member::{Member, Protocol};
use super::offsets::CommittedOffset;
use super::placement;
use super::records::{self, GroupRecord, MemberRecord, Record, MAX_STRING};
use super::state::{Effects, Group, GroupState, JoinReply, JoinRequest, JoinResult, Limits, SyncReply, SyncRequest, SyncResult};
use super::store::{self, partition_for, KeyValue, PartitionLog, StoreError};
use crate::errors::code;
use crate::topics::{self, MetaError};

/// An answer now, or later (a parked JoinGroup or SyncGroup).
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    pub tp: TopicPartition,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit request, for one group.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub generation: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// OffsetCommit v2-v4's explicit retention time.
    pub retention_ms: Option<i64>,
    pub offsets: &'a [OffsetCommitEntry],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol; only for a Stable group, which alone shows member metadata and assignments.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("loading __consumer_offsets: {0}")]
    Store(#[from] StoreError),
}

/// What the coordinator keeps about `__consumer_offsets` itself: its partition count can never change, or
/// groups would move to partitions without their history.
#[derive(Debug, Serialize, Deserialize)]
struct Layout {
    offsets_topic_partitions: i32,
}

const LAYOUT_FILE: &str = "group-coordinator.json";

struct Entry {
    group: Group,
    /// The value of the group's last GroupMetadata record (what a rewrite of the log must keep).
    stored: Option<Bytes>,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl Entry {
    fn new(group: Group) -> Entry {
        Entry { group, stored: None, joins: HashMap::new(), syncs: HashMap::new() }
    }

    fn park_join(&mut self, member_id: String) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        // A member that sends JoinGroup again (its client gave up on the first) supersedes the earlier one.
        if let Some(old) = self.joins.insert(member_id.clone(), tx) {
            let _ = old.send(JoinResult::error(&member_id, code::REBALANCE_IN_PROGRESS));
        }
        rx
    }

    fn park_sync(&mut self, member_id: String) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(old) = self.syncs.insert(member_id, tx) {
            let _ = old.send(SyncResult::error(code::REBALANCE_IN_PROGRESS));
        }
        rx
    }

    fn deliver(&mut self, fx: Effects) {
        for (id, result) in fx.joins {
            if let Some(tx) = self.joins.remove(&id) {
                let _ = tx.send(result);
            }
        }
        for (id, result) in fx.syncs {
            if let Some(tx) = self.syncs.remove(&id) {
                let _ = tx.send(result);
            }
        }
    }

    /// Every parked request answered with `error` (coordinator shutting down).
    fn fail_parked(&mut self, error: i16) {
        for (id, tx) in self.joins.drain() {
            let _ = tx.send(JoinResult::error(&id, error));
        }
        for (_, tx) in self.syncs.drain() {
            let _ = tx.send(SyncResult::error(error));
        }
    }
}

struct Shard {
    log: PartitionLog,
    groups: HashMap<String, Entry>,
    /// Whether this broker coordinates the partition's groups. Those of a partition it does not coordinate are
    /// left as they were, timers stopped, in case the partition comes back.
    coordinated: bool,
}

impl Shard {
    /// Keys and values of everything live in this partition.
    fn live_records(&self) -> Vec<KeyValue> {
        let mut out = Vec::new();
        for (id, e) in &self.groups {
            if let Some(value) = &e.stored {
                out.push((records::group_key(id), Some(value.clone())));
            }
            out.extend(e.group.offsets().map(|(tp, o)| (records::offset_key(id, tp), Some(records::offset_value(o)))));
        }
        out
    }

    /// Rewrites the partition when due; called after the in-memory state reflects every append.
    fn maybe_snapshot(&mut self, now: i64) {
        if self.log.needs_snapshot() {
            let live = self.live_records();
            if let Err(e) = self.log.snapshot(&live, now) {
                // Harmless: the old records are still there.
                tracing::warn!(partition = self.log.partition(), error = %e, "rewriting the offsets log failed");
            }
        }
    }
}

/// The error code a client gets when its write to the offsets log failed (Kafka's mapping).
fn write_error_code(e: &StorageError, too_large: i16) -> i16 {
    match e {
        StorageError::RecordTooLarge { .. } => too_large,
        StorageError::LogClosed(_) => code::NOT_COORDINATOR,
        e if e.is_storage_failure() => code::NOT_COORDINATOR,
        _ => code::UNKNOWN_SERVER_ERROR,
    }
}

/// The GroupMetadata record of `group`, with `assignment` instead of the members' current ones if given.
fn group_record(group: &Group, assignment: Option<&BTreeMap<String, Bytes>>) -> GroupRecord {
    let protocol = group.protocol_name().unwrap_or_default();
    GroupRecord {
        protocol_type: group.protocol_type().unwrap_or_default().to_string(),
        generation: group.generation(),
        protocol: group.protocol_name().map(str::to_string),
        leader: group.leader().map(str::to_string),
        state_timestamp: group.state_timestamp(),
        members: group
            .members()
            .map(|m| MemberRecord {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                assignment: assignment.map_or(&m.assignment, |a| a.get(&m.id).unwrap_or(&m.assignment)).clone(),
            })
            .collect(),
    }
}

fn group_from_record(id: &str, rec: &GroupRecord, now: i64) -> Group {
    let protocol = rec.protocol.clone().unwrap_or_default();
    let members = rec
        .members
        .iter()
        .map(|m| Member {
            id: m.member_id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocol_type: rec.protocol_type.clone(),
            protocols: vec![Protocol { name: protocol.clone(), metadata: m.subscription.clone() }],
            assignment: m.assignment.clone(),
            awaiting_join: false,
            awaiting_sync: false,
            is_new: false,
            heartbeat_deadline: now,
        })
        .collect();
    let protocol_type = Some(rec.protocol_type.clone()).filter(|t| !t.is_empty());
    Group::loaded(id, rec.generation, protocol_type, rec.protocol.clone(), rec.leader.clone(), rec.state_timestamp, members, now)
}

/// Writes the group's metadata (a tombstone once Dead) and remembers it for rewrites.
fn store_group(
    log: &mut PartitionLog,
    id: &str,
    entry: &mut Entry,
    assignment: Option<&BTreeMap<String, Bytes>>,
    now: i64,
) -> Result<(), i16> {
    let value = (entry.group.state() != GroupState::Dead).then(|| records::group_value(&group_record(&entry.group, assignment)));
    match log.append(&[(records::group_key(id), value.clone())], now) {
        Ok(()) => {
            entry.stored = value;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(group = id, error = %e, "storing group metadata failed");
            Err(write_error_code(&e, code::UNKNOWN_SERVER_ERROR))
        }
    }
}

/// Stores the group if the state machine asks for it, then answers parked requests; if storing failed, their
/// successful answers become the error.
fn settle(log: &mut PartitionLog, id: &str, entry: &mut Entry, mut fx: Effects, now: i64) -> Result<(), i16> {
    let stored = if fx.store { store_group(log, id, entry, None, now) } else { Ok(()) };
    if let Err(error) = stored {
        for (_, r) in fx.joins.iter_mut().filter(|(_, r)| r.error == code::NONE) {
            *r = JoinResult::error(&r.member_id, error);
        }
        for (_, r) in fx.syncs.iter_mut().filter(|(_, r)| r.error == code::NONE) {
            *r = SyncResult::error(error);
        }
    }
    entry.deliver(fx);
    stored
}

fn invalid_group_id(id: &str, allow_empty: bool) -> bool {
    (id.is_empty() && !allow_empty) || id.len() > MAX_STRING
}

/// A member id for a new member: its instance id or client id (bounded) and a UUID, as Kafka makes them.
fn new_member_id(req: &JoinRequest) -> String {
    let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
    let prefix: String = prefix.chars().take(200).collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

pub struct GroupCoordinator {
    config: GroupConfig,
    limits: Limits,
    shards: Vec<Mutex<Shard>>,
    stopping: AtomicBool,
    /// The membership version the shards' `coordinated` flags follow; 0 before the first: all coordinated.
    followed: Mutex<u64>,
}

impl GroupCoordinator {
    /// Loads every group and committed offset from `__consumer_offsets` in `logs`.
    pub fn open(config: GroupConfig, logs: Arc<LogManager>, dir: &Path, now: i64) -> Result<GroupCoordinator, CoordinatorError> {
        let layout_path = dir.join(LAYOUT_FILE);
        let partitions = match topics::load_json::<Layout>(&layout_path)? {
            Some(l) if l.offsets_topic_partitions > 0 => {
                if l.offsets_topic_partitions != config.offsets_partitions {
                    tracing::warn!(
                        stored = l.offsets_topic_partitions,
                        configured = config.offsets_partitions,
                        "offsets.topic.num.partitions cannot change once the log exists; keeping the stored count"
                    );
                }
                l.offsets_topic_partitions
            }
            Some(l) => {
                return Err(MetaError::Corrupt {
                    path: layout_path,
                    reason: format!("{} partitions", l.offsets_topic_partitions),
                }
                .into())
            }
            None => {
                topics::save_json(&layout_path, &Layout { offsets_topic_partitions: config.offsets_partitions })?;
                config.offsets_partitions
            }
        };
        let log_config = store::log_config(config.offsets_segment_bytes);
        let mut shards = Vec::with_capacity(partitions as usize);
        let mut loaded = 0;
        for p in 0..partitions {
            let mut log = PartitionLog::open(logs.clone(), p, log_config.clone(), config.offsets_snapshot_min_bytes);
            let mut groups: HashMap<String, (Option<GroupRecord>, BTreeMap<TopicPartition, CommittedOffset>)> = HashMap::new();
            for record in log.replay()? {
                match record {
                    Record::Offset { group, tp, value: Some(v) } => {
                        groups.entry(group).or_default().1.insert(tp, v);
                    }
                    Record::Offset { group, tp, value: None } => {
                        groups.entry(group).or_default().1.remove(&tp);
                    }
                    Record::Group { group, value } => groups.entry(group).or_default().0 = value,
                }
            }
            let mut shard = Shard { log, groups: HashMap::new(), coordinated: true };
            for (id, (record, offsets)) in groups {
                if record.is_none() && offsets.is_empty() {
                    continue;
                }
                let mut group = record.as_ref().map_or_else(|| Group::new(&id, now), |r| group_from_record(&id, r, now));
                for (tp, o) in offsets {
                    group.set_offset(tp, o);
                }
                let mut entry = Entry::new(group);
                entry.stored = record.as_ref().map(records::group_value);
                shard.groups.insert(id, entry);
            }
            loaded += shard.groups.len();
            shard.maybe_snapshot(now);
            shards.push(Mutex::new(shard));
        }
        tracing::info!(groups = loaded, partitions, "loaded consumer groups");
        let limits = Limits {
            initial_rebalance_delay_ms: i64::from(config.initial_rebalance_delay_ms),
            max_size: config.max_size as usize,
        };
        Ok(GroupCoordinator { config, limits, shards, stopping: AtomicBool::new(false), followed: Mutex::new(0) })
    }

    /// Coordinates the partitions that `brokers` (version `version`; older versions are ignored) give to
    /// `node_id`. Parked requests of groups that moved away are answered NOT_COORDINATOR. Their state is not
    /// handed over: without replication the new coordinator has only its own log, so a group that moved has
    /// no committed offsets there (or those of the last time that broker coordinated it), and its consumers
    /// restart from their auto.offset.reset position (or from those older offsets).
    pub fn set_membership(&self, version: u64, brokers: &[i32], node_id: i32) {
        let mut followed = self.followed.lock().expect("membership version lock");
        if version <= *followed {
            return;
        }
        *followed = version;
        let (mut gained, mut lost) = (Vec::new(), Vec::new());
        for (p, shard) in self.shards.iter().enumerate() {
            let coordinated = placement::owner(p as i32, brokers) == Some(node_id);
            let mut shard = shard.lock().expect("group shard lock");
            if shard.coordinated == coordinated {
                continue;
            }
            shard.coordinated = coordinated;
            if coordinated {
                gained.push(p);
            } else {
                for entry in shard.groups.values_mut() {
                    entry.fail_parked(code::NOT_COORDINATOR);
                }
                lost.push(p);
            }
        }
        if !gained.is_empty() || !lost.is_empty() {
            tracing::info!(?brokers, ?gained, ?lost, "group coordination moved with the cluster membership");
        }
    }

    /// The broker of `brokers` that coordinates `group_id`.
    pub fn coordinator_of(&self, group_id: &str, brokers: &[i32]) -> Option<i32> {
        placement::owner(partition_for(group_id, self.partitions()), brokers)
    }

    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    fn shard(&self, group_id: &str) -> MutexGuard<'_, Shard> {
        self.shards[partition_for(group_id, self.partitions()) as usize].lock().expect("group shard lock")
    }

    /// The shard of a group this broker coordinates, else the request's error: INVALID_GROUP_ID or
    /// NOT_COORDINATOR (in Kafka's order).
    fn coordinated_shard(&self, group_id: &str, allow_empty: bool) -> Result<MutexGuard<'_, Shard>, i16> {
        if invalid_group_id(group_id, allow_empty) {
            return Err(code::INVALID_GROUP_ID);
        }
        let shard = self.shard(group_id);
        if !shard.coordinated {
            return Err(code::NOT_COORDINATOR);
        }
        Ok(shard)
    }

    /// Every shard this broker coordinates, locked one at a time.
    fn coordinated_shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        self.shards.iter().map(|s| s.lock().expect("group shard lock")).filter(|s| s.coordinated)
    }

    // ---- membership ----

    pub fn join(&self, group_id: &str, req: JoinRequest, now: i64) -> Pending<JoinResult> {
        let error = |e| Pending::Ready(JoinResult::error(&req.member_id, e));
        let mut shard = match self.coordinated_shard(group_id, false) {
            Ok(shard) => shard,
            Err(e) => return error(e),
        };
        if !(self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms).contains(&req.session_timeout_ms) {
            return error(code::INVALID_SESSION_TIMEOUT);
        }
        let strings = [Some(&req.protocol_type), req.instance_id.as_ref()]
            .into_iter()
            .flatten()
            .chain(req.protocols.iter().map(|p| &p.name));
        if req.member_id.len() > MAX_STRING || strings.into_iter().any(|s| s.len() > MAX_STRING) {
            return error(code::INVALID_REQUEST);
        }
        if self.stopping.load(Ordering::Acquire) {
            return error(code::NOT_COORDINATOR);
        }
        let Shard { log, groups, .. } = &mut *shard;
        let created = !groups.contains_key(group_id);
        if created {
            // Only a member without an id may create a group.
            if !req.member_id.is_empty() {
                return error(code::UNKNOWN_MEMBER_ID);
            }
            groups.insert(group_id.to_string(), Entry::new(Group::new(group_id, now)));
        }
        let entry = groups.get_mut(group_id).expect("present");
        let new_id = new_member_id(&req);
        let (reply, fx) = entry.group.join(req, new_id, &self.limits, now);
        let mut reply = match reply {
            JoinReply::Now(r) => Pending::Ready(r),
            JoinReply::Wait(id) => Pending::Wait(entry.park_join(id)),
        };
        if let (Err(error), Pending::Ready(r)) = (settle(log, group_id, entry, fx, now), &mut reply) {
            if r.error == code::NONE {
                *r = JoinResult::error(&r.member_id, error);
            }
        }
        if created && entry.group.is_unused() {
            groups.remove(group_id);
        }
        shard.maybe_snapshot(now);
        reply
    }

    pub fn sync(&self, group_id: &str, req: SyncRequest, now: i64) -> Pending<SyncResult> {
        let mut shard = match self.coordinated_shard(group_id, false) {
            Ok(shard) => shard,
            Err(e) => return Pending::Ready(SyncResult::error(e)),
        };
        if self.stopping.load(Ordering::Acquire) {
            return Pending::Ready(SyncResult::error(code::NOT_COORDINATOR));
        }
        let Shard { log, groups, .. } = &mut *shard;
        let Some(entry) = groups.get_mut(group_id) else { return Pending::Ready(SyncResult::error(code::UNKNOWN_MEMBER_ID)) };
        let member_id = req.member_id.clone();
        let reply = match entry.group.sync(req, now) {
            SyncReply::Now(r) => Pending::Ready(r),
            SyncReply::Wait { assignment } => {
                let rx = entry.park_sync(member_id);
                if let Some(assignment) = assignment {
                    // The leader's assignment: stored first, handed out once durable.
                    let generation = entry.group.generation();
                    let fx = match store_group(log, group_id, entry, Some(&assignment), now) {
                        Ok(()) => entry.group.complete_assignment(generation, &assignment, now),
                        Err(error) => entry.group.fail_assignment(generation, error, &self.limits, now),
                    };
                    let _ = settle(log, group_id, entry, fx, now);
                }
                Pending::Wait(rx)
            }
        };
        shard.maybe_snapshot(now);
        reply
    }

    pub fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32, now: i64) -> i16 {
        let mut shard = match self.coordinated_shard(group_id, false) {
            Ok(shard) => shard,
            Err(e) => return e,
        };
        match shard.groups.get_mut(group_id) {
            Some(e) => e.group.heartbeat(member_id, instance_id, generation, now),
            None => code::UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup of (member id, instance id) pairs: an error for the whole request, or one per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)], now: i64) -> Result<Vec<i16>, i16> {
        let mut shard = self.coordinated_shard(group_id, false)?;
        let Shard { log, groups, .. } = &mut *shard;
        let Some(entry) = groups.get_mut(group_id) else { return Ok(vec![code::UNKNOWN_MEMBER_ID; members.len()]) };
        if entry.group.state() == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let (error, fx) = entry.group.leave(member_id, instance_id.as_deref(), &self.limits, now);
            if error == code::NONE {
                tracing::info!(group = group_id, member = %member_id, "member left");
            }
            // A failed store of the emptied group is logged; the member has left regardless.
            let _ = settle(log, group_id, entry, fx, now);
            errors.push(error);
        }
        shard.maybe_snapshot(now);
        Ok(errors)
    }

    // ---- offsets ----

    /// OffsetCommit; one error code per entry of `commit.offsets`, in order.
    pub fn commit(&self, group_id: &str, commit: Commit<'_>, now: i64) -> Vec<i16> {
        let Commit { generation, member_id, instance_id, retention_ms, offsets } = commit;
        let all = |e| vec![e; offsets.len()];
        let mut shard = match self.coordinated_shard(group_id, true) {
            Ok(shard) => shard,
            Err(e) => return all(e),
        };
        let Shard { log, groups, .. } = &mut *shard;
        let created = !groups.contains_key(group_id);
        if created {
            // Only commits outside group management (generation -1) may create a group.
            if generation >= 0 {
                return all(code::ILLEGAL_GENERATION);
            }
            groups.insert(group_id.to_string(), Entry::new(Group::new(group_id, now)));
        }
        let entry = groups.get_mut(group_id).expect("present");
        let mut errors = match entry.group.validate_commit(generation, member_id, instance_id, now) {
            Ok(()) => vec![code::NONE; offsets.len()],
            Err(e) => all(e),
        };
        let mut accepted = Vec::new();
        let mut records = Vec::new();
        for (i, o) in offsets.iter().enumerate() {
            if errors[i] != code::NONE {
                continue;
            }
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors[i] = code::OFFSET_METADATA_TOO_LARGE;
                continue;
            }
            let value = CommittedOffset {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: retention_ms.map(|r| now.saturating_add(r)),
            };
            records.push((records::offset_key(group_id, &o.tp), Some(records::offset_value(&value))));
            accepted.push((i, o.tp.clone(), value));
        }
        match log.append(&records, now) {
            Ok(()) => {
                for (_, tp, value) in accepted {
                    entry.group.set_offset(tp, value);
                }
            }
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "storing committed offsets failed");
                let error = write_error_code(&e, code::INVALID_COMMIT_OFFSET_SIZE);
                for (i, _, _) in accepted {
                    errors[i] = error;
                }
            }
        }
        if created && entry.group.is_unused() {
            groups.remove(group_id);
        }
        shard.maybe_snapshot(now);
        errors
    }

    /// OffsetFetch: the committed offset of each of `partitions` (all committed ones if None); unknown groups
    /// have none.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<(TopicPartition, Option<CommittedOffset>)>, i16> {
        let shard = self.coordinated_shard(group_id, true)?;
        let group = shard.groups.get(group_id).map(|e| &e.group).filter(|g| g.state() != GroupState::Dead);
        Ok(match (partitions, group) {
            (Some(tps), g) => tps.iter().map(|tp| (tp.clone(), g.and_then(|g| g.offset(tp)).cloned())).collect(),
            (None, Some(g)) => g.offsets().map(|(tp, o)| (tp.clone(), Some(o.clone()))).collect(),
            (None, None) => Vec::new(),
        })
    }

    /// OffsetDelete: an error for the request, or one per partition.
    pub fn delete_offsets(&self, group_id: &str, partitions: &[TopicPartition], now: i64) -> Result<Vec<i16>, i16> {
        let mut shard = self.coordinated_shard(group_id, false)?;
        let Shard { log, groups, .. } = &mut *shard;
        let entry = groups.get_mut(group_id).ok_or(code::GROUP_ID_NOT_FOUND)?;
        let mut errors = entry.group.offset_delete_errors(partitions)?;
        let doomed: Vec<&TopicPartition> = partitions
            .iter()
            .zip(&errors)
            .filter(|(tp, e)| **e == code::NONE && entry.group.offset(tp).is_some())
            .map(|(tp, _)| tp)
            .collect();
        let tombstones: Vec<KeyValue> = doomed.iter().map(|tp| (records::offset_key(group_id, tp), None)).collect();
        match log.append(&tombstones, now) {
            Ok(()) => {
                for tp in doomed {
                    entry.group.remove_offset(tp);
                }
            }
            Err(e) => {
                let error = write_error_code(&e, code::UNKNOWN_SERVER_ERROR);
                for (tp, err) in partitions.iter().zip(errors.iter_mut()) {
                    if doomed.contains(&tp) {
                        *err = error;
                    }
                }
            }
        }
        shard.maybe_snapshot(now);
        Ok(errors)
    }

    // ---- administration ----

    /// The groups this broker coordinates.
    pub fn list_groups(&self) -> Vec<Listing> {
        let mut out = Vec::new();
        for shard in self.coordinated_shards() {
            out.extend(shard.groups.iter().filter(|(_, e)| e.group.state() != GroupState::Dead).map(|(id, e)| Listing {
                group_id: id.clone(),
                protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                state: e.group.state(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Ok(None) for an unknown group.
    pub fn describe(&self, group_id: &str) -> Result<Option<Description>, i16> {
        let shard = self.coordinated_shard(group_id, true)?;
        let Some(entry) = shard.groups.get(group_id) else { return Ok(None) };
        let group = &entry.group;
        let stable = group.state() == GroupState::Stable;
        let protocol = if stable { group.protocol_name().unwrap_or_default().to_string() } else { String::new() };
        Ok(Some(Description {
            state: group.state(),
            protocol_type: group.protocol_type().unwrap_or_default().to_string(),
            members: group
                .members()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol).cloned().unwrap_or_default() } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
            protocol,
        }))
    }

    /// DeleteGroups: only empty groups; their offsets and metadata are deleted.
    pub fn delete_groups(&self, group_ids: &[String], now: i64) -> Vec<i16> {
        group_ids.iter().map(|id| self.delete_group(id, now)).collect()
    }

    fn delete_group(&self, group_id: &str, now: i64) -> i16 {
        let mut shard = match self.coordinated_shard(group_id, true) {
            Ok(shard) => shard,
            Err(e) => return e,
        };
        let Shard { log, groups, .. } = &mut *shard;
        let Some(entry) = groups.get_mut(group_id) else { return code::GROUP_ID_NOT_FOUND };
        match entry.group.state() {
            GroupState::Dead => return code::GROUP_ID_NOT_FOUND,
            GroupState::Empty => {}
            _ => return code::NON_EMPTY_GROUP,
        }
        let mut tombstones: Vec<KeyValue> =
            entry.group.offsets().map(|(tp, _)| (records::offset_key(group_id, tp), None)).collect();
        if entry.stored.is_some() {
            tombstones.push((records::group_key(group_id), None));
        }
        if let Err(e) = log.append(&tombstones, now) {
            tracing::warn!(group = group_id, error = %e, "deleting group failed");
            return write_error_code(&e, code::UNKNOWN_SERVER_ERROR);
        }
        let mut entry = groups.remove(group_id).expect("present");
        entry.group.mark_dead(now);
        entry.fail_parked(code::COORDINATOR_NOT_AVAILABLE);
        tracing::info!(group = group_id, "deleted group");
        shard.maybe_snapshot(now);
        code::NONE
    }

    // ---- timers ----

    /// Session, rebalance and sync timeouts due at `now`, in the groups this broker coordinates.
    pub fn tick(&self, now: i64) {
        for mut shard in self.coordinated_shards() {
            let Shard { log, groups, .. } = &mut *shard;
            let mut touched = false;
            for (id, entry) in groups.iter_mut() {
                if entry.group.next_deadline().is_some_and(|d| d <= now) {
                    let fx = entry.group.tick(&self.limits, now);
                    touched |= fx.store;
                    let _ = settle(log, id, entry, fx, now);
                }
            }
            if touched {
                shard.maybe_snapshot(now);
            }
        }
    }

    /// Deletes expired offsets (offsets.retention.minutes), and empty groups left without offsets, of the groups
    /// this broker coordinates.
    pub fn expire_offsets(&self, now: i64) {
        for mut shard in self.coordinated_shards() {
            let Shard { log, groups, .. } = &mut *shard;
            let mut tombstones: Vec<KeyValue> = Vec::new();
            let mut expired: Vec<(String, Vec<TopicPartition>, bool)> = Vec::new();
            for (id, entry) in groups.iter() {
                let g = &entry.group;
                let tps = g.expired_offsets(now, self.config.offsets_retention_ms);
                let remove_group =
                    g.state() == GroupState::Empty && g.members().next().is_none() && g.offsets().count() == tps.len();
                if tps.is_empty() && !remove_group {
                    continue;
                }
                tombstones.extend(tps.iter().map(|tp| (records::offset_key(id, tp), None)));
                if remove_group && entry.stored.is_some() {
                    tombstones.push((records::group_key(id), None));
                }
                expired.push((id.clone(), tps, remove_group));
            }
            if expired.is_empty() {
                continue;
            }
            if let Err(e) = log.append(&tombstones, now) {
                tracing::warn!(partition = log.partition(), error = %e, "deleting expired offsets failed");
                continue;
            }
            for (id, tps, remove_group) in expired {
                let entry = groups.get_mut(&id).expect("listed");
                for tp in &tps {
                    entry.group.remove_offset(tp);
                }
                tracing::info!(group = %id, offsets = tps.len(), removed = remove_group, "expired committed offsets");
                if remove_group {
                    groups.remove(&id);
                }
            }
            shard.maybe_snapshot(now);
        }
    }

    /// Answers every parked request with NOT_COORDINATOR (clients look for the coordinator again) and refuses
    /// new ones: the broker is shutting down.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        for shard in &self.shards {
            for entry in shard.lock().expect("group shard lock").groups.values_mut() {
                entry.fail_parked(code::NOT_COORDINATOR);
            }
        }
    }
}

/// Wall-clock milliseconds, the coordinator's time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How often timers are checked: session timeouts are at least seconds, so 100 ms is precise enough.
const TICK: Duration = Duration::from_millis(100);

/// Drives the coordinator's timers until `shutdown`, then fails its parked requests.
pub async fn run_timers(coordinator: Arc<GroupCoordinator>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let expiry_interval = coordinator.config.offsets_retention_check_interval_ms as i64;
    let mut last_expiry = now_ms();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = crate::server::stopped(&mut shutdown) => break,
        }
        let now = now_ms();
        coordinator.tick(now);
        if now - last_expiry >= expiry_interval {
            coordinator.expire_offsets(now);
            last_expiry = now;
        }
    }
    coordinator.shutdown();
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use strata_storage::LogManagerConfig;

    use super::*;

    fn open(dir: &Path) -> GroupCoordinator {
        let settings = HashMap::from([("offsets.topic.num.partitions", "6")]);
        let config = GroupConfig::from_lookup(&|k| settings.get(k).map(|v| v.to_string())).unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir)).unwrap();
        GroupCoordinator::open(config, logs, dir, 0).unwrap()
    }

    /// A group id whose partition `brokers` give to `owner`.
    fn group_of(gc: &GroupCoordinator, brokers: &[i32], owner: i32) -> String {
        (0..).map(|i| format!("g{i}")).find(|g| gc.coordinator_of(g, brokers) == Some(owner)).unwrap()
    }

    fn commit(gc: &GroupCoordinator, group: &str, offset: i64) -> Vec<i16> {
        let offsets = [OffsetCommitEntry { tp: TopicPartition::new("t", 0), offset, leader_epoch: -1, metadata: None }];
        gc.commit(group, Commit { generation: -1, member_id: "", instance_id: None, retention_ms: None, offsets: &offsets }, 1)
    }

    fn join(gc: &GroupCoordinator, group: &str) -> Pending<JoinResult> {
        let req = JoinRequest {
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![Protocol { name: "range".into(), metadata: Bytes::new() }],
            require_known_member_id: false,
            supports_skip_assignment: false,
        };
        gc.join(group, req, 1)
    }

    fn listed(gc: &GroupCoordinator) -> Vec<String> {
        gc.list_groups().into_iter().map(|l| l.group_id).collect()
    }

    #[test]
    fn a_single_broker_coordinates_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let gc = open(dir.path());
        let groups: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
        for g in &groups {
            assert_eq!(commit(&gc, g, 5), vec![code::NONE]);
        }
        gc.set_membership(1, &[3], 3);
        let mut expected = groups.clone();
        expected.sort();
        assert_eq!(listed(&gc), expected);
        assert!(groups.iter().all(|g| gc.coordinator_of(g, &[3]) == Some(3)));
    }

    #[test]
    fn other_brokers_groups_are_refused_with_not_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let gc = open(dir.path());
        let brokers = [0, 1];
        let (mine, theirs) = (group_of(&gc, &brokers, 0), group_of(&gc, &brokers, 1));
        gc.set_membership(1, &brokers, 0);
        assert_eq!(commit(&gc, &mine, 5), vec![code::NONE]);
        let tp = [TopicPartition::new("t", 0)];
        assert_eq!(commit(&gc, &theirs, 5), vec![code::NOT_COORDINATOR]);
        assert_eq!(gc.fetch_offsets(&theirs, None), Err(code::NOT_COORDINATOR));
        assert_eq!(gc.heartbeat(&theirs, "m", None, 1, 1), code::NOT_COORDINATOR);
        assert_eq!(gc.leave(&theirs, &[("m".into(), None)], 1), Err(code::NOT_COORDINATOR));
        assert_eq!(gc.describe(&theirs), Err(code::NOT_COORDINATOR));
        assert_eq!(gc.delete_groups(std::slice::from_ref(&theirs), 1), vec![code::NOT_COORDINATOR]);
        assert_eq!(gc.delete_offsets(&theirs, &tp, 1), Err(code::NOT_COORDINATOR));
        assert!(matches!(join(&gc, &theirs), Pending::Ready(r) if r.error == code::NOT_COORDINATOR));
        let sync = SyncRequest {
            generation_id: 1,
            member_id: "m".into(),
            instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: HashMap::new(),
        };
        assert!(matches!(gc.sync(&theirs, sync, 1), Pending::Ready(r) if r.error == code::NOT_COORDINATOR));
        // Invalid ids are refused as such first, as Kafka does.
        assert_eq!(gc.heartbeat("", "m", None, 1, 1), code::INVALID_GROUP_ID);
        assert_eq!(listed(&gc), vec![mine]);
    }

    #[test]
    fn groups_move_with_the_membership_and_come_back_with_their_state() {
        let dir = tempfile::tempdir().unwrap();
        let gc = open(dir.path());
        let (alone, pair) = ([0], [0, 1]);
        let moving = group_of(&gc, &pair, 1);
        gc.set_membership(1, &alone, 0);
        assert_eq!(commit(&gc, &moving, 7), vec![code::NONE]);
        let Pending::Wait(parked) = join(&gc, &moving) else { panic!("the first join waits for the initial rebalance delay") };

        // Broker 1 joins and takes the group over: the parked request is told to look for the coordinator.
        gc.set_membership(2, &pair, 0);
        assert_eq!(parked.blocking_recv().unwrap().error, code::NOT_COORDINATOR);
        assert_eq!(gc.fetch_offsets(&moving, None), Err(code::NOT_COORDINATOR));
        assert!(listed(&gc).is_empty());
        // Timers and retention leave it alone meanwhile.
        gc.tick(i64::MAX / 2);
        gc.expire_offsets(i64::MAX / 2);
        // An older membership arriving late changes nothing.
        gc.set_membership(1, &alone, 0);
        assert_eq!(gc.fetch_offsets(&moving, None), Err(code::NOT_COORDINATOR));

        // Broker 1 leaves again: the group is back, with what this broker had.
        gc.set_membership(3, &alone, 0);
        let offsets = gc.fetch_offsets(&moving, None).unwrap();
        assert_eq!(
            offsets.iter().map(|(tp, o)| (tp.partition, o.as_ref().map(|o| o.offset))).collect::<Vec<_>>(),
            vec![(0, Some(7))]
        );
        assert_eq!(listed(&gc), vec![moving.clone()]);
        let d = gc.describe(&moving).unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::PreparingRebalance, 1), "no session or rebalance timeout ran");
    }
}
