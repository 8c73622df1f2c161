//! The group coordinator: the groups of the `__consumer_offsets` partitions this broker leads (the coordinator of
//! a group is the leader of its partition, as in Kafka), sharded by partition, each shard behind its own lock
//! together with that partition's log. It runs the state machine of [`super::state`], parks JoinGroup/SyncGroup
//! requests until their answer exists, writes group metadata and committed offsets to the partition as its
//! leader, and answers once the in-sync replicas have them (acks=all); it also drives the timers.
//!
//! When this broker becomes the leader of a partition (the publisher applies an image) the partition's groups
//! are loaded from its log (requests meanwhile get COORDINATOR_LOAD_IN_PROGRESS); when it stops leading it,
//! they are dropped, parked requests are answered NOT_COORDINATOR, and so are the next ones: clients ask
//! FindCoordinator again and reach the new leader, which has every committed record.
//!
//! Lock order: a shard's lock, then the partition's (appends); never two shards at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_storage::TopicPartition;
use tokio::sync::{oneshot, watch};

use super::config::GroupConfig;
use super::member::{Member, Protocol};
use super::offsets::CommittedOffset;
use super::records::{self, GroupRecord, MemberRecord, Record, MAX_STRING};
use super::state::{Effects, Group, GroupState, JoinReply, JoinRequest, JoinResult, Limits, SyncReply, SyncRequest, SyncResult};
use super::store::{append_error_code, partition_for, KeyValue, PartitionLog, Written};
use crate::errors::code;
use crate::partition::Partition;
use crate::topics::{self, MetaError};

/// An answer now, or later (a parked JoinGroup or SyncGroup, or one waiting for its write to be committed).
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

impl<T> Pending<T> {
    /// The answer; `gone` if the coordinator dropped the request.
    pub async fn resolve(self, gone: T) -> T {
        match self {
            Pending::Ready(v) => v,
            Pending::Wait(rx) => rx.await.unwrap_or(gone),
        }
    }

    /// The answers if all are here now, else the pending ones.
    pub fn all_ready(pending: Vec<Pending<T>>) -> Result<Vec<T>, Vec<Pending<T>>> {
        if pending.iter().all(|p| matches!(p, Pending::Ready(_))) {
            return Ok(pending
                .into_iter()
                .map(|p| match p {
                    Pending::Ready(v) => v,
                    Pending::Wait(_) => unreachable!("checked"),
                })
                .collect());
        }
        Err(pending)
    }
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
}

/// What an earlier release kept about its local `__consumer_offsets` logs: their partition count. Its presence
/// says that the data directory may hold such logs, which the first image with the replicated topic resolves
/// (see [`crate::publisher::legacy_offsets_fate`]).
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

    /// Hands the answers of `fx` to their parked requests once everything `written` is committed (an answer
    /// never reveals state the in-sync replicas may not have); successful ones become the commit's error if it
    /// fails.
    fn deliver(&mut self, fx: Effects, written: Written, timeout: Duration) {
        let joins: Vec<_> = fx.joins.into_iter().filter_map(|(id, r)| self.joins.remove(&id).map(|tx| (tx, r))).collect();
        let syncs: Vec<_> = fx.syncs.into_iter().filter_map(|(id, r)| self.syncs.remove(&id).map(|tx| (tx, r))).collect();
        if joins.is_empty() && syncs.is_empty() {
            return;
        }
        written.then(timeout, move |outcome| {
            for (tx, mut r) in joins {
                if let (Err(e), code::NONE) = (outcome, r.error) {
                    r = JoinResult::error(&r.member_id, e);
                }
                let _ = tx.send(r);
            }
            for (tx, mut r) in syncs {
                if let (Err(e), code::NONE) = (outcome, r.error) {
                    r = SyncResult::error(e);
                }
                let _ = tx.send(r);
            }
        });
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

/// Whether this broker coordinates a partition's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Another broker leads the partition (or none does).
    Follower,
    /// Leading at this epoch; the groups are being read from the log.
    Loading(i32),
    /// Leading at this epoch, groups loaded.
    Active(i32),
}

struct Shard {
    role: Role,
    /// Present while Active.
    log: Option<PartitionLog>,
    groups: HashMap<String, Entry>,
}

impl Shard {
    fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("an active shard has its log")
    }

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
        if self.log.as_ref().is_some_and(PartitionLog::needs_snapshot) {
            let live = self.live_records();
            let log = self.log();
            if let Err(e) = log.snapshot(&live, now) {
                // Harmless: the old records are still there.
                tracing::warn!(partition = log.partition(), error = %e, "rewriting the offsets log failed");
            }
        }
    }

    /// Drops the groups (another broker coordinates them now); parked requests look for it.
    fn unload(&mut self) {
        for entry in self.groups.values_mut() {
            entry.fail_parked(code::NOT_COORDINATOR);
        }
        self.groups.clear();
        self.log = None;
        self.role = Role::Follower;
    }
}

/// The groups of a partition's records, replayed oldest first.
fn groups_from(replayed: Vec<Record>, now: i64) -> HashMap<String, Entry> {
    let mut groups: HashMap<String, (Option<GroupRecord>, BTreeMap<TopicPartition, CommittedOffset>)> = HashMap::new();
    for record in replayed {
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
    let mut out = HashMap::new();
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
        out.insert(id, entry);
    }
    out
}

/// An answer once everything `written` is committed; a successful one becomes the commit's error (`fail`) if
/// that fails.
fn when_committed<T: Send + 'static>(written: Written, timeout: Duration, value: T, fail: fn(T, i16) -> T) -> Pending<T> {
    match written.outcome() {
        Some(Ok(())) => Pending::Ready(value),
        Some(Err(e)) => Pending::Ready(fail(value, e)),
        None => {
            let (tx, rx) = oneshot::channel();
            written.then(timeout, move |outcome| {
                let _ = tx.send(match outcome {
                    Ok(()) => value,
                    Err(e) => fail(value, e),
                });
            });
            Pending::Wait(rx)
        }
    }
}

/// Per-entry codes: the successful ones become `error`.
fn fail_codes(mut codes: Vec<i16>, error: i16) -> Vec<i16> {
    codes.iter_mut().filter(|c| **c == code::NONE).for_each(|c| *c = error);
    codes
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
            Err(append_error_code(&e, code::UNKNOWN_SERVER_ERROR))
        }
    }
}

/// Stores the group if the state machine asks for it, then answers parked requests once it is committed; if
/// storing failed, their successful answers become the error.
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
    entry.deliver(fx, log.written(), log.commit_timeout());
    stored
}

/// Deletes an empty group of `shard`: its offsets and metadata get tombstones.
fn delete_group_in(shard: &mut Shard, group_id: &str, now: i64) -> i16 {
    let Shard { log, groups, .. } = shard;
    let log = log.as_mut().expect("an active shard has its log");
    let Some(entry) = groups.get_mut(group_id) else { return code::GROUP_ID_NOT_FOUND };
    match entry.group.state() {
        GroupState::Dead => return code::GROUP_ID_NOT_FOUND,
        GroupState::Empty => {}
        _ => return code::NON_EMPTY_GROUP,
    }
    let mut tombstones: Vec<KeyValue> = entry.group.offsets().map(|(tp, _)| (records::offset_key(group_id, tp), None)).collect();
    if entry.stored.is_some() {
        tombstones.push((records::group_key(group_id), None));
    }
    if let Err(e) = log.append(&tombstones, now) {
        tracing::warn!(group = group_id, error = %e, "deleting group failed");
        return append_error_code(&e, code::UNKNOWN_SERVER_ERROR);
    }
    let mut entry = groups.remove(group_id).expect("present");
    entry.group.mark_dead(now);
    entry.fail_parked(code::COORDINATOR_NOT_AVAILABLE);
    tracing::info!(group = group_id, "deleted group");
    code::NONE
}

/// A group's committed offsets of `partitions` (all if None).
pub type OffsetList = Vec<(TopicPartition, Option<CommittedOffset>)>;

fn offsets_of(shard: &Shard, group_id: &str, partitions: Option<&[TopicPartition]>) -> OffsetList {
    let group = shard.groups.get(group_id).map(|e| &e.group).filter(|g| g.state() != GroupState::Dead);
    match (partitions, group) {
        (Some(tps), g) => tps.iter().map(|tp| (tp.clone(), g.and_then(|g| g.offset(tp)).cloned())).collect(),
        (None, Some(g)) => g.offsets().map(|(tp, o)| (tp.clone(), Some(o.clone()))).collect(),
        (None, None) => Vec::new(),
    }
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
    /// One per possible partition of `__consumer_offsets`; the first `count` are in use once the topic exists
    /// (its partition count never changes).
    shards: Vec<Mutex<Shard>>,
    count: AtomicI32,
    stopping: AtomicBool,
    /// The layout file of an earlier release while its local logs are not resolved.
    legacy: Mutex<Option<(PathBuf, i32)>>,
}

impl GroupCoordinator {
    /// A coordinator of no group yet: it coordinates those of the partitions the publisher says this broker
    /// leads. `dir` may hold an earlier release's local offsets logs ([`GroupCoordinator::legacy_partitions`]).
    pub fn open(config: GroupConfig, dir: &Path) -> Result<GroupCoordinator, CoordinatorError> {
        let layout_path = dir.join(LAYOUT_FILE);
        let legacy = match topics::load_json::<Layout>(&layout_path)? {
            Some(l) if l.offsets_topic_partitions > 0 => Some((layout_path, l.offsets_topic_partitions)),
            Some(l) => {
                return Err(MetaError::Corrupt {
                    path: layout_path,
                    reason: format!("{} partitions", l.offsets_topic_partitions),
                }
                .into())
            }
            None => None,
        };
        let limits = Limits {
            initial_rebalance_delay_ms: i64::from(config.initial_rebalance_delay_ms),
            max_size: config.max_size as usize,
        };
        Ok(GroupCoordinator {
            config,
            limits,
            shards: (0..super::config::MAX_OFFSETS_PARTITIONS)
                .map(|_| Mutex::new(Shard { role: Role::Follower, log: None, groups: HashMap::new() }))
                .collect(),
            count: AtomicI32::new(0),
            stopping: AtomicBool::new(false),
            legacy: Mutex::new(legacy),
        })
    }

    /// The partition count of an earlier release's local offsets logs in the data directory, until they are
    /// resolved: the topic is then created with it, so that its groups stay in their partitions.
    pub fn legacy_partitions(&self) -> Option<i32> {
        self.legacy.lock().expect("legacy lock").as_ref().map(|(_, n)| *n)
    }

    /// The earlier release's local logs are resolved (adopted or deleted): forgets them.
    pub fn forget_legacy(&self) -> Result<(), MetaError> {
        let mut legacy = self.legacy.lock().expect("legacy lock");
        if let Some((path, _)) = legacy.as_ref() {
            topics::remove_all(std::slice::from_ref(path))?;
        }
        *legacy = None;
        Ok(())
    }

    /// Follows the image: `__consumer_offsets` has `count` partitions, of which this broker leads those in `led`
    /// (at their partitions' current leader epochs). Newly led partitions have their groups loaded from the log
    /// (here, in the caller: the publisher), those no longer led are dropped.
    pub fn follow(&self, count: i32, led: &HashMap<i32, Arc<Partition>>, now: i64) {
        if count as usize > self.shards.len() {
            tracing::error!(count, max = self.shards.len(), "__consumer_offsets has more partitions than a coordinator serves");
            return;
        }
        if self.count.swap(count, Ordering::AcqRel) != count {
            tracing::info!(partitions = count, "__consumer_offsets exists");
        }
        let mut to_load = Vec::new();
        for (p, shard) in self.shards.iter().enumerate() {
            let leading = led.get(&(p as i32)).filter(|part| part.is_leader()).map(|part| (part, part.leader_epoch()));
            let mut shard = shard.lock().expect("group shard lock");
            match (shard.role, leading) {
                (Role::Follower, None) => {}
                (Role::Loading(e) | Role::Active(e), Some((_, epoch))) if e == epoch => {}
                (_, None) => {
                    tracing::info!(
                        partition = p,
                        groups = shard.groups.len(),
                        "no longer coordinating the groups of an offsets partition"
                    );
                    shard.unload();
                }
                (_, Some((part, epoch))) => {
                    shard.unload();
                    shard.role = Role::Loading(epoch);
                    to_load.push((p, part.clone(), epoch));
                }
            }
        }
        for (p, part, epoch) in to_load {
            let started = std::time::Instant::now();
            let timeout = Duration::from_millis(self.config.offsets_commit_timeout_ms);
            let mut log = PartitionLog::new(part, epoch, self.config.offsets_snapshot_min_bytes, timeout);
            let groups = match log.replay() {
                Ok(records) => groups_from(records, now),
                Err(e) => {
                    // Left loading: its groups' requests are retried by clients, the error is for the operator.
                    tracing::error!(partition = p, error = %e, "loading consumer groups failed");
                    continue;
                }
            };
            let mut shard = self.shards[p].lock().expect("group shard lock");
            if shard.role != Role::Loading(epoch) {
                continue;
            }
            tracing::info!(partition = p, epoch, groups = groups.len(), elapsed = ?started.elapsed(), "loaded consumer groups");
            shard.groups = groups;
            shard.log = Some(log);
            shard.role = Role::Active(epoch);
            shard.maybe_snapshot(now);
        }
    }

    /// The partition count of `__consumer_offsets` as this coordinator knows it (0 before the topic exists).
    pub fn partitions(&self) -> i32 {
        self.count.load(Ordering::Acquire)
    }

    /// The shard of a group this broker coordinates, else the request's error: INVALID_GROUP_ID, or
    /// NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS (in Kafka's order).
    fn coordinated_shard(&self, group_id: &str, allow_empty: bool) -> Result<MutexGuard<'_, Shard>, i16> {
        if invalid_group_id(group_id, allow_empty) {
            return Err(code::INVALID_GROUP_ID);
        }
        let count = self.partitions();
        if count == 0 {
            return Err(code::NOT_COORDINATOR);
        }
        let shard = self.shards[partition_for(group_id, count) as usize].lock().expect("group shard lock");
        match shard.role {
            Role::Active(_) => Ok(shard),
            Role::Loading(_) => Err(code::COORDINATOR_LOAD_IN_PROGRESS),
            Role::Follower => Err(code::NOT_COORDINATOR),
        }
    }

    /// Every shard this broker coordinates, locked one at a time.
    fn coordinated_shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
        let count = self.partitions() as usize;
        self.shards[..count].iter().map(|s| s.lock().expect("group shard lock")).filter(|s| matches!(s.role, Role::Active(_)))
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
        let log = log.as_mut().expect("an active shard has its log");
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
        let reply = match reply {
            Pending::Ready(r) => when_committed(log.written(), log.commit_timeout(), r, |r, e| match r.error {
                code::NONE => JoinResult::error(&r.member_id, e),
                _ => r,
            }),
            wait => wait,
        };
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
        let log = log.as_mut().expect("an active shard has its log");
        let Some(entry) = groups.get_mut(group_id) else { return Pending::Ready(SyncResult::error(code::UNKNOWN_MEMBER_ID)) };
        let member_id = req.member_id.clone();
        let reply = match entry.group.sync(req, now) {
            SyncReply::Now(r) => when_committed(log.written(), log.commit_timeout(), r, |r, e| match r.error {
                code::NONE => SyncResult::error(e),
                _ => r,
            }),
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
        let log = log.as_mut().expect("an active shard has its log");
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

    /// OffsetCommit; one error code per entry of `commit.offsets`, in order, once the in-sync replicas have
    /// the commit.
    pub fn commit(&self, group_id: &str, commit: Commit<'_>, now: i64) -> Pending<Vec<i16>> {
        let Commit { generation, member_id, instance_id, retention_ms, offsets } = commit;
        let all = |e| Pending::Ready(vec![e; offsets.len()]);
        let mut shard = match self.coordinated_shard(group_id, true) {
            Ok(shard) => shard,
            Err(e) => return all(e),
        };
        let Shard { log, groups, .. } = &mut *shard;
        let log = log.as_mut().expect("an active shard has its log");
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
            Err(e) => vec![e; offsets.len()],
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
            // In memory at once, as in the leader's log; the answer waits until the in-sync replicas have it.
            Ok(()) => {
                for (_, tp, value) in accepted {
                    entry.group.set_offset(tp, value);
                }
            }
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "storing committed offsets failed");
                let error = append_error_code(&e, code::INVALID_COMMIT_OFFSET_SIZE);
                for (i, _, _) in accepted {
                    errors[i] = error;
                }
            }
        }
        if created && entry.group.is_unused() {
            groups.remove(group_id);
        }
        let reply = when_committed(log.written(), log.commit_timeout(), errors, fail_codes);
        shard.maybe_snapshot(now);
        reply
    }

    /// OffsetFetch: the committed offset of each of `partitions` (all committed ones if None), once the
    /// in-sync replicas have everything written before (so no answer shows a commit that a new coordinator
    /// might lack); unknown groups have none.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[TopicPartition]>) -> Pending<Result<OffsetList, i16>> {
        let shard = match self.coordinated_shard(group_id, true) {
            Ok(shard) => shard,
            Err(e) => return Pending::Ready(Err(e)),
        };
        let offsets = offsets_of(&shard, group_id, partitions);
        let log = shard.log.as_ref().expect("an active shard has its log");
        when_committed(log.written(), log.commit_timeout(), Ok(offsets), |_, e| Err(e))
    }

    /// The committed offsets of a group as this coordinator has them now (for the lag metrics).
    pub fn offsets_now(&self, group_id: &str) -> Result<OffsetList, i16> {
        let shard = self.coordinated_shard(group_id, true)?;
        Ok(offsets_of(&shard, group_id, None))
    }

    /// OffsetDelete: an error for the request, or one per partition.
    pub fn delete_offsets(&self, group_id: &str, partitions: &[TopicPartition], now: i64) -> Pending<Result<Vec<i16>, i16>> {
        let mut shard = match self.coordinated_shard(group_id, false) {
            Ok(shard) => shard,
            Err(e) => return Pending::Ready(Err(e)),
        };
        let Shard { log, groups, .. } = &mut *shard;
        let log = log.as_mut().expect("an active shard has its log");
        let Some(entry) = groups.get_mut(group_id) else { return Pending::Ready(Err(code::GROUP_ID_NOT_FOUND)) };
        let mut errors = match entry.group.offset_delete_errors(partitions) {
            Ok(errors) => errors,
            Err(e) => return Pending::Ready(Err(e)),
        };
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
                let error = append_error_code(&e, code::UNKNOWN_SERVER_ERROR);
                for (tp, err) in partitions.iter().zip(errors.iter_mut()) {
                    if doomed.contains(&tp) {
                        *err = error;
                    }
                }
            }
        }
        let reply = when_committed(log.written(), log.commit_timeout(), Ok(errors), |r, e| r.map(|c| fail_codes(c, e)));
        shard.maybe_snapshot(now);
        reply
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

    /// DeleteGroups: only empty groups; their offsets and metadata are deleted. One code per group, each once
    /// its deletion is committed.
    pub fn delete_groups(&self, group_ids: &[String], now: i64) -> Vec<Pending<i16>> {
        group_ids.iter().map(|id| self.delete_group(id, now)).collect()
    }

    fn delete_group(&self, group_id: &str, now: i64) -> Pending<i16> {
        let mut shard = match self.coordinated_shard(group_id, true) {
            Ok(shard) => shard,
            Err(e) => return Pending::Ready(e),
        };
        let error = delete_group_in(&mut shard, group_id, now);
        let (written, timeout) = (shard.log().written(), shard.log().commit_timeout());
        shard.maybe_snapshot(now);
        when_committed(written, timeout, error, |c, e| if c == code::NONE { e } else { c })
    }

    // ---- timers ----

    /// Session, rebalance and sync timeouts due at `now`, in the groups this broker coordinates.
    pub fn tick(&self, now: i64) {
        for mut shard in self.coordinated_shards() {
            let Shard { log, groups, .. } = &mut *shard;
            let log = log.as_mut().expect("an active shard has its log");
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
            let log = log.as_mut().expect("an active shard has its log");
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
        for mut shard in self.coordinated_shards() {
            for entry in shard.groups.values_mut() {
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

    use strata_storage::{LogConfig, LogManager, LogManagerConfig};

    use super::super::store::{topic_configs, OFFSETS_TOPIC};
    use super::*;
    use crate::partition::Assignment;

    const PARTITIONS: i32 = 6;

    fn coordinator(dir: &Path) -> GroupCoordinator {
        let settings = HashMap::from([("offsets.topic.num.partitions", "6"), ("offsets.commit.timeout.ms", "2000")]);
        let config = GroupConfig::from_lookup(&|k| settings.get(k).map(|v| v.to_string())).unwrap();
        GroupCoordinator::open(config, dir).unwrap()
    }

    /// Offsets partition `p` on this broker (node 0) with `replicas`, led by `leader` at `epoch`.
    fn partition(logs: &Arc<LogManager>, p: i32, replicas: &[i32], leader: i32, epoch: i32) -> Arc<Partition> {
        let config =
            LogConfig::default().with_overrides(topic_configs(1 << 20).iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        let log = logs.get_or_create(&TopicPartition::new(OFFSETS_TOPIC, p), config).unwrap();
        let assignment = Assignment {
            topic_id: uuid::Uuid::nil(),
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader,
            leader_epoch: epoch,
            partition_epoch: 0,
        };
        Arc::new(Partition::new(log, 0, assignment))
    }

    /// Leads `led` alone at `epoch`.
    fn lead(gc: &GroupCoordinator, logs: &Arc<LogManager>, led: &[i32], epoch: i32) {
        let led = led.iter().map(|p| (*p, partition(logs, *p, &[0], 0, epoch))).collect();
        gc.follow(PARTITIONS, &led, 1);
    }

    fn group_in(partition: i32) -> String {
        (0..).map(|i| format!("g{i}")).find(|g| partition_for(g, PARTITIONS) == partition).unwrap()
    }

    fn ready<T>(p: Pending<T>) -> T {
        match p {
            Pending::Ready(v) => v,
            Pending::Wait(_) => panic!("expected an answer now"),
        }
    }

    fn commit(gc: &GroupCoordinator, group: &str, offset: i64) -> Pending<Vec<i16>> {
        let offsets = [OffsetCommitEntry { tp: TopicPartition::new("t", 0), offset, leader_epoch: -1, metadata: None }];
        gc.commit(group, Commit { generation: -1, member_id: "", instance_id: None, retention_ms: None, offsets: &offsets }, 1)
    }

    fn committed(gc: &GroupCoordinator, group: &str) -> Result<Vec<(i32, Option<i64>)>, i16> {
        ready(gc.fetch_offsets(group, None))
            .map(|os| os.iter().map(|(tp, o)| (tp.partition, o.as_ref().map(|o| o.offset))).collect())
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
    fn the_leader_of_every_partition_coordinates_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let gc = coordinator(dir.path());
        assert_eq!(ready(commit(&gc, "g", 5)), vec![code::NOT_COORDINATOR], "no topic yet");
        lead(&gc, &logs, &(0..PARTITIONS).collect::<Vec<_>>(), 0);
        let groups: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
        for g in &groups {
            assert_eq!(ready(commit(&gc, g, 5)), vec![code::NONE], "a single replica commits at once");
        }
        let mut expected = groups.clone();
        expected.sort();
        assert_eq!(listed(&gc), expected);
        assert_eq!(committed(&gc, "g3"), Ok(vec![(0, Some(5))]));
    }

    #[test]
    fn groups_of_partitions_led_elsewhere_are_refused_with_not_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let gc = coordinator(dir.path());
        lead(&gc, &logs, &[0], 0);
        let (mine, theirs) = (group_in(0), group_in(1));
        assert_eq!(ready(commit(&gc, &mine, 5)), vec![code::NONE]);
        let tp = [TopicPartition::new("t", 0)];
        assert_eq!(ready(commit(&gc, &theirs, 5)), vec![code::NOT_COORDINATOR]);
        assert_eq!(committed(&gc, &theirs), Err(code::NOT_COORDINATOR));
        assert_eq!(gc.heartbeat(&theirs, "m", None, 1, 1), code::NOT_COORDINATOR);
        assert_eq!(gc.leave(&theirs, &[("m".into(), None)], 1), Err(code::NOT_COORDINATOR));
        assert_eq!(gc.describe(&theirs), Err(code::NOT_COORDINATOR));
        assert_eq!(ready(gc.delete_groups(std::slice::from_ref(&theirs), 1).remove(0)), code::NOT_COORDINATOR);
        assert_eq!(ready(gc.delete_offsets(&theirs, &tp, 1)), Err(code::NOT_COORDINATOR));
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
    fn groups_are_dropped_with_the_leadership_and_loaded_from_the_log_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let gc = coordinator(dir.path());
        let moving = group_in(2);
        lead(&gc, &logs, &[2], 0);
        assert_eq!(ready(commit(&gc, &moving, 7)), vec![code::NONE]);
        let Pending::Wait(parked) = join(&gc, &moving) else { panic!("the first join waits for the initial rebalance delay") };

        // Another broker leads the partition now: the parked request is told to look for the coordinator.
        gc.follow(PARTITIONS, &HashMap::new(), 1);
        assert_eq!(parked.blocking_recv().unwrap().error, code::NOT_COORDINATOR);
        assert_eq!(committed(&gc, &moving), Err(code::NOT_COORDINATOR));
        assert!(listed(&gc).is_empty());
        gc.tick(i64::MAX / 2);
        gc.expire_offsets(i64::MAX / 2);

        // Back at a later epoch: the groups come from the log (what was committed), not from memory.
        lead(&gc, &logs, &[2], 3);
        assert_eq!(committed(&gc, &moving), Ok(vec![(0, Some(7))]));
        assert_eq!(listed(&gc), vec![moving.clone()]);
        let d = gc.describe(&moving).unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Empty, 0), "the uncompleted join was never stored");
        // Records go out at the new epoch.
        assert_eq!(ready(commit(&gc, &moving, 8)), vec![code::NONE]);
        let log = logs.get(&TopicPartition::new(OFFSETS_TOPIC, 2)).unwrap();
        assert_eq!(log.latest_epoch(), Some(3));
    }

    #[tokio::test]
    async fn with_followers_answers_wait_until_the_in_sync_replicas_have_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let gc = coordinator(dir.path());
        let group = group_in(4);
        let part = partition(&logs, 4, &[0, 1], 0, 0);
        gc.follow(PARTITIONS, &HashMap::from([(4, part.clone())]), 1);
        let Pending::Wait(answer) = commit(&gc, &group, 11) else { panic!("the follower lacks the commit") };
        let Pending::Wait(read) = gc.fetch_offsets(&group, None) else { panic!("reads wait for what was written before") };
        part.follower_fetched(1, 0, part.log.log_end_offset()).unwrap();
        assert_eq!(answer.await.unwrap(), vec![code::NONE]);
        let offsets = read.await.unwrap().unwrap();
        assert_eq!(offsets[0].1.as_ref().map(|o| o.offset), Some(11));
        // A commit the ISR never gets fails with Kafka's retriable code after offsets.commit.timeout.ms.
        let Pending::Wait(lost) = commit(&gc, &group, 12) else { panic!() };
        assert_eq!(lost.await.unwrap(), vec![code::COORDINATOR_NOT_AVAILABLE]);
        // Losing the leadership meanwhile: NOT_COORDINATOR, and the client finds the new one.
        let Pending::Wait(deposed) = commit(&gc, &group, 13) else { panic!() };
        part.update(Assignment {
            topic_id: uuid::Uuid::nil(),
            replicas: vec![0, 1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 1,
            partition_epoch: 1,
        });
        gc.follow(PARTITIONS, &HashMap::from([(4, part.clone())]), 1);
        assert_eq!(deposed.await.unwrap(), vec![code::NOT_COORDINATOR]);
        assert_eq!(ready(commit(&gc, &group, 14)), vec![code::NOT_COORDINATOR]);
    }

    #[test]
    fn an_earlier_releases_layout_is_reported_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(coordinator(dir.path()).legacy_partitions(), None);
        topics::save_json(&dir.path().join(LAYOUT_FILE), &Layout { offsets_topic_partitions: 12 }).unwrap();
        let gc = coordinator(dir.path());
        assert_eq!(gc.legacy_partitions(), Some(12));
        gc.forget_legacy().unwrap();
        assert_eq!(gc.legacy_partitions(), None);
        assert_eq!(coordinator(dir.path()).legacy_partitions(), None);
    }
}
