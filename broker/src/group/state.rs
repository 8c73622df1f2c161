//! The classic group state machine (Kafka's GroupMetadata and the membership half of its GroupCoordinator):
//! states Empty -> PreparingRebalance -> CompletingRebalance -> Stable (and Dead once deleted), generations,
//! the KIP-394 member-id handshake, static members (KIP-345), protocol selection, session, rebalance and
//! pending-sync timeouts.
//!
//! Pure logic: every call takes the time (`now`, ms) and returns what to answer. Answers to requests that are
//! parked (a JoinGroup waiting for the rebalance, a SyncGroup waiting for the leader) come out as [`Effects`]
//! addressed by member id; the coordinator owns the parked requests, the timers and the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use strata_storage::TopicPartition;

use super::member::{subscribed_topics, Member, Protocol};
use super::offsets::CommittedOffset;
use crate::errors::code;

/// How long a new member's JoinGroup may wait (Kafka's fixed 5 minutes): new members cannot heartbeat.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// The consumer protocol type; its subscriptions are understood (subscribed topics, offset expiry).
pub const CONSUMER_PROTOCOL: &str = "consumer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names, as DescribeGroups and ListGroups show them.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The group settings the state machine applies.
#[derive(Debug, Clone)]
pub struct Limits {
    /// group.initial.rebalance.delay.ms: how long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay_ms: i64,
    /// group.max.size
    pub max_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the selected protocol.
    pub members: Vec<JoinedMember>,
    /// KIP-814: a static leader that rejoined a stable group must not compute a new assignment.
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a member without an id yet.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new dynamic member first gets its id with MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinReply {
    Now(JoinResult),
    /// Parked: the answer comes later in [`Effects::joins`] for this member id.
    Wait(String),
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: HashMap<String, Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncReply {
    Now(SyncResult),
    /// Parked until the assignment is known. From the leader, `assignment` holds it (one entry per member):
    /// the coordinator persists it, then applies it with [`Group::complete_assignment`].
    Wait {
        assignment: Option<BTreeMap<String, Bytes>>,
    },
}

/// Answers to parked requests, by member id, and whether the group metadata must be written to the log.
#[derive(Debug, Default)]
pub struct Effects {
    pub joins: Vec<(String, JoinResult)>,
    pub syncs: Vec<(String, SyncResult)>,
    pub store: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InitialDelay {
    delay_ms: i64,
    remaining_ms: i64,
}

/// The pending completion of the join phase (Kafka's DelayedJoin / InitialDelayedJoin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct JoinTimer {
    deadline: i64,
    initial: Option<InitialDelay>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    /// When the group entered its state (offsets of an empty group expire relative to it).
    pub(super) state_timestamp: i64,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub(super) static_members: HashMap<String, String>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub(super) pending_members: BTreeMap<String, i64>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub(super) pending_sync: BTreeSet<String>,
    join_timer: Option<JoinTimer>,
    sync_deadline: Option<i64>,
    /// A member joined during the initial delay, which therefore extends.
    new_member_added: bool,
    pub(super) subscribed_topics: Option<BTreeSet<String>>,
    pub(super) offsets: BTreeMap<TopicPartition, CommittedOffset>,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            sync_deadline: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    /// A group as stored: Stable with its members (each must heartbeat within its session timeout from `now`),
    /// or Empty without members.
    #[allow(clippy::too_many_arguments)]
    pub fn loaded(
        id: &str,
        generation: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader: Option<String>,
        state_timestamp: i64,
        members: Vec<Member>,
        now: i64,
    ) -> Group {
        let mut g = Group::new(id, state_timestamp);
        g.generation = generation;
        g.protocol_type = protocol_type;
        for mut m in members {
            m.touch(now);
            if let Some(instance) = &m.instance_id {
                g.static_members.insert(instance.clone(), m.id.clone());
            }
            g.members.insert(m.id.clone(), m);
        }
        if !g.members.is_empty() {
            g.state = GroupState::Stable;
            g.protocol_name = protocol_name;
            g.leader = leader.filter(|l| g.members.contains_key(l)).or_else(|| g.members.keys().next().cloned());
        }
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn state_timestamp(&self) -> i64 {
        self.state_timestamp
    }

    /// Empty and holding nothing: a group created for a request that failed can go.
    pub fn is_unused(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending_members.is_empty() && self.offsets.is_empty()
    }

    fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = now;
    }

    /// Deleted (DeleteGroups, or empty without offsets after expiry).
    pub fn mark_dead(&mut self, now: i64) {
        self.transition(GroupState::Dead, now);
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<&str> {
        let Some(first) = self.members.values().next() else { return Vec::new() };
        first.protocols.iter().map(|p| p.name.as_str()).filter(|name| self.members.values().all(|m| m.supports(name))).collect()
    }

    /// Each member votes for its most preferred candidate; most votes wins (ties: first voted for).
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for vote in self.members.values().filter_map(|m| m.vote(&candidates)) {
            match votes.iter_mut().find(|(p, _)| *p == vote) {
                Some((_, n)) => *n += 1,
                None => votes.push((vote, 1)),
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(p, _)| p.to_string())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// The union of the members' subscribed topics, when the group uses the consumer protocol.
    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(subscribed_topics(m.metadata(protocol)?)?);
        }
        Some(topics)
    }

    /// Unknown subscriptions count as subscribed to everything (so their offsets are kept).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics.as_ref().is_none_or(|t| t.contains(topic))
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn current_generation_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: code::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members { self.current_member_metadata() } else { Vec::new() },
            skip_assignment: false,
        }
    }

    /// Checks that `member_id` is a current member and that a given instance id maps to it.
    pub(super) fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if current != member_id => Err(code::FENCED_INSTANCE_ID),
                Some(_) => Ok(()),
                None => Err(code::UNKNOWN_MEMBER_ID),
            },
            None if !self.members.contains_key(member_id) => Err(code::UNKNOWN_MEMBER_ID),
            None => Ok(()),
        }
    }

    fn is_static_member_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id.and_then(|i| self.static_members.get(i)).is_some_and(|current| current != member_id)
    }

    // ---- JoinGroup ----

    /// JoinGroup. `new_member_id` is used if the member needs an id. The session timeout is validated by the
    /// caller (before a group is created for the request).
    pub fn join(&mut self, req: JoinRequest, new_member_id: String, limits: &Limits, now: i64) -> (JoinReply, Effects) {
        let mut fx = Effects::default();
        let reply = if !self.accepts_joining(&req.member_id, limits) {
            self.remove_member(&req.member_id.clone(), &mut fx);
            JoinReply::Now(JoinResult::error("", code::GROUP_MAX_SIZE_REACHED))
        } else if req.member_id.is_empty() {
            self.join_new_member(req, new_member_id, limits, now, &mut fx)
        } else {
            self.join_current_member(req, limits, now, &mut fx)
        };
        self.maybe_complete_join(now, &mut fx);
        (reply, fx)
    }

    fn accepts_joining(&self, member_id: &str, limits: &Limits) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(|m| m.awaiting_join)
                    || self.members.values().filter(|m| m.awaiting_join).count() < limits.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < limits.max_size
            }
        }
    }

    fn join_new_member(&mut self, req: JoinRequest, id: String, limits: &Limits, now: i64, fx: &mut Effects) -> JoinReply {
        if self.state == GroupState::Dead {
            return JoinReply::Now(JoinResult::error("", code::COORDINATOR_NOT_AVAILABLE));
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return JoinReply::Now(JoinResult::error("", code::INCONSISTENT_GROUP_PROTOCOL));
        }
        match req.instance_id.as_deref().and_then(|i| self.static_members.get(i)).cloned() {
            Some(old_id) => self.replace_static_member(&old_id, id, req, limits, now, fx),
            None if req.instance_id.is_none() && req.require_known_member_id => {
                self.pending_members.insert(id.clone(), now + i64::from(req.session_timeout_ms));
                JoinReply::Now(JoinResult::error(&id, code::MEMBER_ID_REQUIRED))
            }
            None => self.add_member(id, req, limits, now, fx),
        }
    }

    fn join_current_member(&mut self, req: JoinRequest, limits: &Limits, now: i64, fx: &mut Effects) -> JoinReply {
        let id = req.member_id.clone();
        let error = |e| JoinReply::Now(JoinResult::error(&id, e));
        if self.state == GroupState::Dead {
            return error(code::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return error(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if self.pending_members.contains_key(&id) {
            // Pending ids are only given to dynamic members.
            if req.instance_id.is_some() {
                return error(code::INVALID_REQUEST);
            }
            return self.add_member(id.clone(), req, limits, now, fx);
        }
        if self.is_static_member_fenced(&id, req.instance_id.as_deref()) {
            return error(code::FENCED_INSTANCE_ID);
        }
        let unknown_instance = req.instance_id.as_ref().is_some_and(|i| !self.static_members.contains_key(i));
        let Some(member) = self.members.get(&id).filter(|_| !unknown_instance) else {
            return error(code::UNKNOWN_MEMBER_ID);
        };
        let unchanged = member.matches(&req.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(req, limits, now, fx),
            // The member lost the JoinGroup response of this generation: send it again.
            GroupState::CompletingRebalance if unchanged => {
                JoinReply::Now(self.current_generation_result(&id, self.is_leader(&id)))
            }
            GroupState::CompletingRebalance => self.update_member_and_rebalance(req, limits, now, fx),
            // A leader rejoining asks for a new assignment (e.g. topic metadata changed).
            GroupState::Stable if self.is_leader(&id) || !unchanged => self.update_member_and_rebalance(req, limits, now, fx),
            GroupState::Stable => JoinReply::Now(self.current_generation_result(&id, false)),
            GroupState::Empty | GroupState::Dead => error(code::UNKNOWN_MEMBER_ID),
        }
    }

    fn add_member(&mut self, id: String, req: JoinRequest, limits: &Limits, now: i64, fx: &mut Effects) -> JoinReply {
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.pending_members.remove(&id);
        let member = Member {
            id: id.clone(),
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            heartbeat_deadline: now + NEW_MEMBER_JOIN_TIMEOUT_MS,
        };
        self.members.insert(id.clone(), member);
        self.maybe_prepare_rebalance(limits, now, fx);
        JoinReply::Wait(id)
    }

    fn update_member_and_rebalance(&mut self, req: JoinRequest, limits: &Limits, now: i64, fx: &mut Effects) -> JoinReply {
        let m = self.members.get_mut(&req.member_id).expect("checked by the caller");
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.awaiting_join = true;
        self.maybe_prepare_rebalance(limits, now, fx);
        JoinReply::Wait(req.member_id)
    }

    /// A static member came back with a new member id: it takes over the old member (whose parked requests are
    /// fenced). In a stable group whose protocol would not change, it gets the current assignment without a
    /// rebalance: the point of static membership.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        limits: &Limits,
        now: i64,
        fx: &mut Effects,
    ) -> JoinReply {
        let previous_leader = self.leader.clone().unwrap_or_default();
        let mut member = self.members.remove(old_id).expect("static members are members");
        if member.awaiting_join {
            fx.joins.push((old_id.to_string(), JoinResult::error(old_id, code::FENCED_INSTANCE_ID)));
        }
        if member.awaiting_sync {
            fx.syncs.push((old_id.to_string(), SyncResult::error(code::FENCED_INSTANCE_ID)));
            member.awaiting_sync = false;
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        member.id = new_id.clone();
        member.protocols = req.protocols;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.awaiting_join = true;
        member.touch(now);
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                self.members.get_mut(&new_id).expect("just inserted").awaiting_join = false;
                fx.store = true;
                let is_leader = self.is_leader(&new_id);
                let skip = is_leader && req.supports_skip_assignment;
                JoinReply::Now(JoinResult {
                    members: if skip { self.current_member_metadata() } else { Vec::new() },
                    // Without KIP-814 the old leader id keeps a rejoining leader from computing an assignment
                    // that a stable group would never distribute.
                    leader_id: if req.supports_skip_assignment {
                        self.leader.clone().unwrap_or_default()
                    } else {
                        previous_leader
                    },
                    skip_assignment: skip,
                    ..self.current_generation_result(&new_id, false)
                })
            }
            GroupState::PreparingRebalance => JoinReply::Wait(new_id),
            _ => {
                // The assignment the leader is computing (or has) does not know the new member id.
                self.maybe_prepare_rebalance(limits, now, fx);
                JoinReply::Wait(new_id)
            }
        }
    }

    // ---- rebalance ----

    fn maybe_prepare_rebalance(&mut self, limits: &Limits, now: i64, fx: &mut Effects) {
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty) {
            self.prepare_rebalance(limits, now, fx);
        }
    }

    fn prepare_rebalance(&mut self, limits: &Limits, now: i64, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignment(code::REBALANCE_IN_PROGRESS, fx);
        }
        self.sync_deadline = None;
        let rebalance_timeout = self.max_rebalance_timeout();
        let delay = limits.initial_rebalance_delay_ms;
        self.join_timer = Some(if self.state == GroupState::Empty && delay > 0 {
            JoinTimer {
                deadline: now + delay,
                initial: Some(InitialDelay { delay_ms: delay, remaining_ms: (rebalance_timeout - delay).max(0) }),
            }
        } else {
            JoinTimer { deadline: now + rebalance_timeout, initial: None }
        });
        self.transition(GroupState::PreparingRebalance, now);
    }

    /// Clears every assignment and fails the parked SyncGroups with `error`.
    fn reset_assignment(&mut self, error: i16, fx: &mut Effects) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if m.awaiting_sync {
                m.awaiting_sync = false;
                fx.syncs.push((m.id.clone(), SyncResult::error(error)));
            }
        }
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    /// Completes the join phase once every member has rejoined (except during the initial delay).
    fn maybe_complete_join(&mut self, now: i64, fx: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(timer) = self.join_timer {
            if timer.initial.is_none() && self.all_members_joined() {
                self.complete_join(now, fx);
            }
        }
    }

    fn complete_join(&mut self, now: i64, fx: &mut Effects) {
        let gone: Vec<String> =
            self.members.values().filter(|m| !m.awaiting_join && m.instance_id.is_none()).map(|m| m.id.clone()).collect();
        for id in gone {
            self.remove_member(&id, fx);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined: give them another rebalance timeout.
            self.join_timer = Some(JoinTimer { deadline: now + self.max_rebalance_timeout(), initial: None });
            return;
        }
        self.join_timer = None;
        self.new_member_added = false;
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now);
            fx.store = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.subscribed_topics = self.compute_subscribed_topics();
        self.transition(GroupState::CompletingRebalance, now);
        let leader_members = self.current_member_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let mut result = self.current_generation_result(&id, false);
            if self.is_leader(&id) {
                result.members = leader_members.clone();
            }
            let m = self.members.get_mut(&id).expect("listed");
            if m.awaiting_join {
                m.awaiting_join = false;
                fx.joins.push((id.clone(), result));
            }
            m.is_new = false;
            m.touch(now);
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
    }

    /// Keeps the leader if it rejoined, else picks a member that did. False if nobody rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else { return false };
        if self.members.get(&leader).is_some_and(|m| m.awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID so its client rejoins.
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        if let Some(m) = self.members.remove(id) {
            if m.awaiting_join {
                fx.joins.push((id.to_string(), JoinResult::error(id, code::UNKNOWN_MEMBER_ID)));
            }
            if m.awaiting_sync {
                fx.syncs.push((id.to_string(), SyncResult::error(code::UNKNOWN_MEMBER_ID)));
            }
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).is_some_and(|current| current == id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.is_leader(id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(id);
        self.pending_sync.remove(id);
    }

    /// A member left or expired: the others rebalance without it.
    fn remove_member_and_rebalance(&mut self, id: &str, limits: &Limits, now: i64, fx: &mut Effects) {
        self.remove_member(id, fx);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.maybe_prepare_rebalance(limits, now, fx),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- SyncGroup ----

    pub fn sync(&mut self, req: SyncRequest, now: i64) -> SyncReply {
        let error = |e| SyncReply::Now(SyncResult::error(e));
        if self.state == GroupState::Dead {
            return error(code::COORDINATOR_NOT_AVAILABLE);
        }
        if let Err(e) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            return error(e);
        }
        if req.generation_id != self.generation {
            return error(code::ILLEGAL_GENERATION);
        }
        if req.protocol_type.as_ref().is_some_and(|t| self.protocol_type.as_ref() != Some(t))
            || req.protocol_name.as_ref().is_some_and(|n| self.protocol_name.as_ref() != Some(n))
        {
            return error(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => error(code::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => error(code::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(&req.member_id);
                self.members.get_mut(&req.member_id).expect("validated").awaiting_sync = true;
                let assignment = self.is_leader(&req.member_id).then(|| {
                    // Members the leader left out get an empty assignment; unknown ids are dropped.
                    self.members.keys().map(|id| (id.clone(), req.assignments.get(id).cloned().unwrap_or_default())).collect()
                });
                SyncReply::Wait { assignment }
            }
            GroupState::Stable => {
                self.pending_sync.remove(&req.member_id);
                let m = self.members.get_mut(&req.member_id).expect("validated");
                m.touch(now);
                let assignment = m.assignment.clone();
                SyncReply::Now(SyncResult {
                    error: code::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                })
            }
        }
    }

    /// The leader's assignment of `generation` is stored: hand it out and become Stable.
    pub fn complete_assignment(&mut self, generation: i32, assignment: &BTreeMap<String, Bytes>, now: i64) -> Effects {
        let mut fx = Effects::default();
        if self.state != GroupState::CompletingRebalance || generation != self.generation {
            return fx;
        }
        for m in self.members.values_mut() {
            m.assignment = assignment.get(&m.id).cloned().unwrap_or_default();
            if m.awaiting_sync {
                m.awaiting_sync = false;
                m.touch(now);
                fx.syncs.push((
                    m.id.clone(),
                    SyncResult {
                        error: code::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
            }
        }
        self.transition(GroupState::Stable, now);
        fx
    }

    /// Storing the leader's assignment failed: fail the parked SyncGroups and rebalance.
    pub fn fail_assignment(&mut self, generation: i32, error: i16, limits: &Limits, now: i64) -> Effects {
        let mut fx = Effects::default();
        if self.state == GroupState::CompletingRebalance && generation == self.generation {
            self.reset_assignment(error, &mut fx);
            self.maybe_prepare_rebalance(limits, now, &mut fx);
            self.maybe_complete_join(now, &mut fx);
        }
        fx
    }

    // ---- Heartbeat, LeaveGroup ----

    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: i64) -> i16 {
        if self.state == GroupState::Dead {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = self.validate_member(member_id, instance_id) {
            return e;
        }
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        if self.state == GroupState::Empty {
            return code::UNKNOWN_MEMBER_ID;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now);
        }
        match self.state {
            GroupState::PreparingRebalance => code::REBALANCE_IN_PROGRESS,
            _ => code::NONE,
        }
    }

    /// One member of a LeaveGroup; an empty member id with an instance id removes that static member (admin).
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, limits: &Limits, now: i64) -> (i16, Effects) {
        let mut fx = Effects::default();
        let error = if member_id.is_empty() {
            match instance_id.and_then(|i| self.static_members.get(i)).cloned() {
                Some(id) => {
                    self.remove_member_and_rebalance(&id, limits, now, &mut fx);
                    code::NONE
                }
                None => code::UNKNOWN_MEMBER_ID,
            }
        } else if self.pending_members.remove(member_id).is_some() {
            code::NONE
        } else {
            match self.validate_member(member_id, instance_id) {
                Ok(()) => {
                    self.remove_member_and_rebalance(member_id, limits, now, &mut fx);
                    code::NONE
                }
                Err(e) => e,
            }
        };
        self.maybe_complete_join(now, &mut fx);
        (error, fx)
    }

    // ---- timers ----

    /// The earliest time [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self.members.values().filter_map(Member::deadline);
        let pending = self.pending_members.values().copied();
        let timers = self.join_timer.map(|t| t.deadline).into_iter().chain(self.sync_deadline);
        members.chain(pending).chain(timers).min()
    }

    /// Expires members and pending member ids, and completes the join phase or the pending syncs whose
    /// time is up.
    pub fn tick(&mut self, limits: &Limits, now: i64) -> Effects {
        let mut fx = Effects::default();
        if self.state == GroupState::Dead {
            return fx;
        }
        let expired: Vec<String> = self.members.values().filter(|m| m.expired(now)).map(|m| m.id.clone()).collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_rebalance(&id, limits, now, &mut fx);
        }
        self.pending_members.retain(|_, deadline| *deadline > now);
        if let Some(timer) = self.join_timer.filter(|t| t.deadline <= now) {
            match timer.initial {
                // More members arrived during the delay: wait once more, within the rebalance timeout.
                Some(InitialDelay { delay_ms, remaining_ms }) if self.new_member_added && remaining_ms > 0 => {
                    self.new_member_added = false;
                    let delay = limits.initial_rebalance_delay_ms.min(remaining_ms);
                    self.join_timer = Some(JoinTimer {
                        deadline: now + delay,
                        initial: Some(InitialDelay { delay_ms: delay, remaining_ms: (remaining_ms - delay_ms).max(0) }),
                    });
                }
                _ => self.complete_join(now, &mut fx),
            }
        }
        if self.sync_deadline.is_some_and(|d| d <= now) {
            self.sync_deadline = None;
            if matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable) && !self.pending_sync.is_empty() {
                let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
                tracing::info!(group = %self.id, members = ?missing, "members did not sync in time");
                for id in missing {
                    self.remove_member(&id, &mut fx);
                }
                self.prepare_rebalance(limits, now, &mut fx);
            }
        }
        self.maybe_complete_join(now, &mut fx);
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::super::member::tests::subscription;
    use super::*;

    const LIMITS: Limits = Limits { initial_rebalance_delay_ms: 0, max_size: 100 };

    fn protocols(names: &[&str], topics: &[&str]) -> Vec<Protocol> {
        names.iter().map(|n| Protocol { name: n.to_string(), metadata: subscription(0, topics) }).collect()
    }

    fn req(member_id: &str, instance: Option<&str>, names: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: CONSUMER_PROTOCOL.into(),
            protocols: protocols(names, &["t"]),
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn sync_req(g: &Group, member: &str, assignments: &[(&str, &str)]) -> SyncRequest {
        SyncRequest {
            generation_id: g.generation,
            member_id: member.into(),
            instance_id: g.members.get(member).and_then(|m| m.instance_id.clone()),
            protocol_type: None,
            protocol_name: None,
            assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
        }
    }

    /// A dynamic member through the KIP-394 handshake; returns its id and the join outcome.
    fn join_dynamic(g: &mut Group, n: usize, now: i64) -> (String, JoinReply, Effects) {
        let (reply, _) = g.join(req("", None, &["range"]), format!("m{n}"), &LIMITS, now);
        let JoinReply::Now(r) = reply else { panic!("{reply:?}") };
        assert_eq!(r.error, code::MEMBER_ID_REQUIRED);
        let (reply, fx) = g.join(req(&r.member_id, None, &["range"]), "unused".into(), &LIMITS, now);
        (r.member_id, reply, fx)
    }

    /// Leader syncs with `assignments` and the assignment is applied.
    fn leader_sync(g: &mut Group, leader: &str, assignments: &[(&str, &str)], now: i64) -> Effects {
        let SyncReply::Wait { assignment: Some(a) } = g.sync(sync_req(g, leader, assignments), now) else { panic!() };
        g.complete_assignment(g.generation, &a, now)
    }

    #[test]
    fn single_member_joins_syncs_and_heartbeats() {
        let mut g = Group::new("g", 0);
        let (id, reply, fx) = join_dynamic(&mut g, 1, 0);
        assert_eq!(reply, JoinReply::Wait(id.clone()));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        let (to, r) = &fx.joins[0];
        assert_eq!((to, r.error, r.generation_id, r.leader_id.as_str()), (&id, 0, 1, id.as_str()));
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.members.len(), 1, "the leader gets the members");
        assert_eq!(g.heartbeat(&id, None, 1, 1), code::NONE, "heartbeats are fine while completing");
        let fx = leader_sync(&mut g, &id, &[(&id, "A")], 2);
        assert_eq!(
            fx.syncs,
            vec![(
                id.clone(),
                SyncResult {
                    error: 0,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignment: Bytes::from("A")
                }
            )]
        );
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(g.heartbeat(&id, None, 0, 3), code::ILLEGAL_GENERATION);
        assert_eq!(g.heartbeat("nobody", None, 1, 3), code::UNKNOWN_MEMBER_ID);
        assert_eq!(g.heartbeat(&id, None, 1, 3), code::NONE);
        assert_eq!(g.subscribed_topics, Some(BTreeSet::from(["t".to_string()])));
    }

    #[test]
    fn second_member_triggers_a_rebalance_that_waits_for_everyone() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        leader_sync(&mut g, &a, &[], 0);
        let (b, reply, fx) = join_dynamic(&mut g, 2, 10);
        assert_eq!(reply, JoinReply::Wait(b.clone()));
        assert!(fx.joins.is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&a, None, 1, 11), code::REBALANCE_IN_PROGRESS);
        assert_eq!(g.sync(sync_req(&g, &a, &[]), 11), SyncReply::Now(SyncResult::error(code::REBALANCE_IN_PROGRESS)));
        // The old member rejoins: the join phase completes with generation 2.
        let (reply, fx) = g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 12);
        assert_eq!(reply, JoinReply::Wait(a.clone()));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        assert_eq!(g.generation(), 2);
        let by_id: HashMap<_, _> = fx.joins.into_iter().collect();
        assert_eq!(by_id[&a].members.len(), 2, "leader stays the leader and gets both members");
        assert!(by_id[&b].members.is_empty());
        assert_eq!(by_id[&b].leader_id, a);
        // Follower syncs first and waits; the leader's sync releases both.
        assert_eq!(g.sync(sync_req(&g, &b, &[]), 13), SyncReply::Wait { assignment: None });
        let fx = leader_sync(&mut g, &a, &[(&a, "A"), (&b, "B"), ("stranger", "X")], 14);
        let by_id: HashMap<_, _> = fx.syncs.into_iter().collect();
        assert_eq!((&by_id[&a].assignment[..], &by_id[&b].assignment[..]), (&b"A"[..], &b"B"[..]));
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn rebalance_timeout_removes_members_that_do_not_rejoin() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        leader_sync(&mut g, &a, &[], 0);
        let (b, _, _) = join_dynamic(&mut g, 2, 100);
        // `a` keeps heartbeating but never rejoins; after the rebalance timeout it is dropped.
        assert_eq!(g.next_deadline(), Some(10_000), "a's session");
        assert_eq!(g.heartbeat(&a, None, 1, 9_000), code::REBALANCE_IN_PROGRESS);
        assert_eq!(g.heartbeat(&a, None, 1, 25_000), code::REBALANCE_IN_PROGRESS);
        let fx = g.tick(&LIMITS, 30_000);
        assert!(fx.joins.is_empty() && g.members.contains_key(&a));
        let fx = g.tick(&LIMITS, 30_100);
        assert!(!g.members.contains_key(&a));
        assert_eq!(fx.joins.len(), 1);
        assert_eq!(fx.joins[0].0, b);
        assert_eq!(fx.joins[0].1.leader_id, b, "the leader moves to a member that rejoined");
    }

    #[test]
    fn session_expiry_and_leave_rebalance_the_rest() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        let (b, _, _) = join_dynamic(&mut g, 2, 0);
        let (_, _) = g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 1);
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        leader_sync(&mut g, &a, &[], 2);
        g.sync(sync_req(&g, &b, &[]), 2);
        assert_eq!(g.heartbeat(&b, None, 2, 5_000), code::NONE);
        // `a` stops heartbeating: expired after its 10 s session; `b` alone forms generation 3 once it rejoins.
        let fx = g.tick(&LIMITS, 10_002);
        assert!(fx.joins.is_empty());
        assert!(!g.members.contains_key(&a) && g.leader() == Some(b.as_str()));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let (_, fx) = g.join(req(&b, None, &["range"]), "x".into(), &LIMITS, 10_003);
        assert_eq!(fx.joins[0].1.generation_id, 3);
        leader_sync(&mut g, &b, &[], 10_004);
        // Leaving empties the group, which is then stored.
        let (err, fx) = g.leave(&b, None, &LIMITS, 10_005);
        assert_eq!(err, code::NONE);
        assert!(fx.store);
        assert_eq!((g.state(), g.generation()), (GroupState::Empty, 4));
        assert_eq!(g.leave(&b, None, &LIMITS, 10_006).0, code::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn leaving_while_parked_answers_the_parked_join() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        leader_sync(&mut g, &a, &[], 0);
        let (b, _, _) = join_dynamic(&mut g, 2, 1);
        let (err, fx) = g.leave(&b, None, &LIMITS, 2);
        assert_eq!(err, code::NONE);
        assert_eq!(fx.joins, vec![(b.clone(), JoinResult::error(&b, code::UNKNOWN_MEMBER_ID))]);
    }

    #[test]
    fn pending_member_ids_expire_and_block_completion_until_then() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        leader_sync(&mut g, &a, &[], 0);
        let (reply, _) = g.join(req("", None, &["range"]), "p".into(), &LIMITS, 1);
        assert!(matches!(reply, JoinReply::Now(JoinResult { error: code::MEMBER_ID_REQUIRED, .. })));
        assert_eq!(g.state(), GroupState::Stable, "a pending member does not rebalance");
        let _ = g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 2);
        assert_eq!(g.state(), GroupState::PreparingRebalance, "the leader rejoining does");
        let fx = g.tick(&LIMITS, 5_000);
        assert!(fx.joins.is_empty(), "waits for the pending member");
        let fx = g.tick(&LIMITS, 10_001);
        assert_eq!(fx.joins.len(), 1, "pending member expired after its session timeout");
        assert!(g.pending_members.is_empty());
    }

    #[test]
    fn protocol_selection_and_inconsistent_protocols() {
        let mut g = Group::new("g", 0);
        let (reply, _) =
            g.join(JoinRequest { require_known_member_id: false, ..req("", None, &["sticky", "range"]) }, "a".into(), &LIMITS, 0);
        assert_eq!(reply, JoinReply::Wait("a".into()));
        let mut other = req("", None, &["range", "roundrobin"]);
        other.require_known_member_id = false;
        g.join(JoinRequest { protocol_type: "connect".into(), ..other.clone() }, "x".into(), &LIMITS, 0);
        let (reply, _) = g.join(JoinRequest { protocol_type: "connect".into(), ..other.clone() }, "b".into(), &LIMITS, 0);
        assert_eq!(reply, JoinReply::Now(JoinResult::error("", code::INCONSISTENT_GROUP_PROTOCOL)));
        let (reply, _) =
            g.join(JoinRequest { protocols: protocols(&["roundrobin"], &[]), ..other.clone() }, "b".into(), &LIMITS, 0);
        assert_eq!(reply, JoinReply::Now(JoinResult::error("", code::INCONSISTENT_GROUP_PROTOCOL)));
        g.join(other.clone(), "b".into(), &LIMITS, 0);
        g.join(other, "c".into(), &LIMITS, 0);
        // Only "range" is supported by all; everyone votes for it.
        let fx = g.tick(&LIMITS, 0);
        assert!(fx.joins.is_empty());
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn cooperative_and_eager_assignors_meet_on_the_common_protocol() {
        // librdkafka's default lists range and roundrobin; Java's 3.x default lists range and cooperative-sticky.
        let two_members = |a: &[&str], b: &[&str]| {
            let mut g = Group::new("g", 0);
            g.join(JoinRequest { require_known_member_id: false, ..req("", None, a) }, "a".into(), &LIMITS, 0);
            g.join(JoinRequest { require_known_member_id: false, ..req("", None, b) }, "b".into(), &LIMITS, 0);
            g.join(req("a", None, a), "x".into(), &LIMITS, 0);
            assert_eq!((g.state(), g.generation()), (GroupState::CompletingRebalance, 2));
            g
        };
        assert_eq!(two_members(&["range", "roundrobin"], &["range", "cooperative-sticky"]).protocol_name(), Some("range"));
        let g = two_members(&["cooperative-sticky", "range"], &["cooperative-sticky", "range"]);
        assert_eq!(g.protocol_name(), Some("cooperative-sticky"));
    }

    #[test]
    fn static_member_rejoins_a_stable_group_without_rebalance() {
        let mut g = Group::new("g", 0);
        let (reply, fx) = g.join(req("", Some("i1"), &["range"]), "s1".into(), &LIMITS, 0);
        assert_eq!(reply, JoinReply::Wait("s1".into()), "static members skip MEMBER_ID_REQUIRED");
        assert_eq!(fx.joins.len(), 1);
        let (reply, _) = g.join(req("", Some("i2"), &["range"]), "s2".into(), &LIMITS, 1);
        assert_eq!(reply, JoinReply::Wait("s2".into()));
        let (_, fx) = g.join(req("s1", Some("i1"), &["range"]), "x".into(), &LIMITS, 2);
        assert_eq!(fx.joins.len(), 2);
        leader_sync(&mut g, "s1", &[("s1", "A"), ("s2", "B")], 3);
        g.sync(sync_req(&g, "s2", &[]), 3);
        let generation = g.generation();
        // i2 restarts (new member id, no member id known): it gets the current generation at once.
        let (reply, fx) = g.join(req("", Some("i2"), &["range"]), "s2b".into(), &LIMITS, 4);
        let JoinReply::Now(r) = reply else { panic!("{reply:?}") };
        assert_eq!((r.error, r.generation_id, r.member_id.as_str(), r.leader_id.as_str()), (0, generation, "s2b", "s1"));
        assert!(fx.store, "the new member id is persisted");
        assert_eq!(g.state(), GroupState::Stable);
        let SyncReply::Now(s) = g.sync(sync_req(&g, "s2b", &[]), 5) else { panic!() };
        assert_eq!(&s.assignment[..], b"B", "keeps its assignment");
        // The old incarnation is fenced.
        assert_eq!(g.heartbeat("s2", Some("i2"), generation, 6), code::FENCED_INSTANCE_ID);
        assert_eq!(g.heartbeat("s2b", Some("i2"), generation, 6), code::NONE);
        // The static leader restarting: without KIP-814 it is told the old leader id; with it, skip_assignment.
        let (reply, _) = g.join(req("", Some("i1"), &["range"]), "s1b".into(), &LIMITS, 7);
        let JoinReply::Now(r) = reply else { panic!() };
        assert_eq!((r.leader_id.as_str(), r.skip_assignment), ("s1", false));
        let (reply, _) =
            g.join(JoinRequest { supports_skip_assignment: true, ..req("", Some("i1"), &["range"]) }, "s1c".into(), &LIMITS, 8);
        let JoinReply::Now(r) = reply else { panic!() };
        assert_eq!((r.leader_id.as_str(), r.skip_assignment, r.members.len()), ("s1c", true, 2));
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn static_member_with_new_protocols_triggers_a_rebalance_and_fences_parked_requests() {
        let mut g = Group::new("g", 0);
        g.join(req("", Some("i1"), &["range"]), "s1".into(), &LIMITS, 0);
        leader_sync(&mut g, "s1", &[], 0);
        g.join(req("", Some("i2"), &["range"]), "s2".into(), &LIMITS, 1);
        // s2 is parked in the join; a second incarnation of i2 fences it.
        let (reply, fx) = g.join(req("", Some("i2"), &["range"]), "s2b".into(), &LIMITS, 2);
        assert_eq!(reply, JoinReply::Wait("s2b".into()));
        assert_eq!(fx.joins, vec![("s2".to_string(), JoinResult::error("s2", code::FENCED_INSTANCE_ID))]);
        let (_, fx) = g.join(req("s1", Some("i1"), &["range"]), "x".into(), &LIMITS, 3);
        assert_eq!(fx.joins.len(), 2);
        leader_sync(&mut g, "s1", &[], 4);
        // New preferences that do not change the selected protocol (range is the only common one): no rebalance.
        let (reply, _) = g.join(req("", Some("i1"), &["roundrobin", "range"]), "s1b".into(), &LIMITS, 5);
        assert!(matches!(reply, JoinReply::Now(JoinResult { error: 0, .. })), "{reply:?}");
        assert_eq!(g.state(), GroupState::Stable);
        let (reply, _) = g.join(req("", Some("i1"), &["roundrobin"]), "s1c".into(), &LIMITS, 6);
        assert_eq!(reply, JoinReply::Now(JoinResult::error("", code::INCONSISTENT_GROUP_PROTOCOL)));
        // A lone static member whose preferred protocol changes: the selection changes, so it rebalances.
        let mut g = Group::new("g", 0);
        g.join(req("", Some("i1"), &["range"]), "s1".into(), &LIMITS, 0);
        leader_sync(&mut g, "s1", &[], 0);
        let (reply, _) = g.join(req("", Some("i1"), &["roundrobin", "range"]), "s1b".into(), &LIMITS, 1);
        assert_eq!(reply, JoinReply::Wait("s1b".into()));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        assert_eq!((g.generation(), g.protocol_name()), (2, Some("roundrobin")));
    }

    #[test]
    fn static_members_that_do_not_rejoin_stay_but_must_sync() {
        let mut g = Group::new("g", 0);
        g.join(req("", Some("i1"), &["range"]), "s1".into(), &LIMITS, 0);
        leader_sync(&mut g, "s1", &[], 0);
        g.join(JoinRequest { session_timeout_ms: 60_000, ..req("", Some("i2"), &["range"]) }, "s2".into(), &LIMITS, 1);
        g.join(req("s1", Some("i1"), &["range"]), "x".into(), &LIMITS, 2);
        leader_sync(&mut g, "s1", &[], 3);
        g.sync(sync_req(&g, "s2", &[]), 3);
        // s2 (static, long session) is away; the leader triggers a rebalance, which completes without s2 only
        // after the rebalance timeout, keeping s2 as a member.
        g.heartbeat("s2", Some("i2"), g.generation, 4);
        g.join(req("s1", Some("i1"), &["range"]), "x".into(), &LIMITS, 5);
        assert!(g.tick(&LIMITS, 30_004).joins.is_empty());
        let fx = g.tick(&LIMITS, 30_005);
        assert_eq!(fx.joins.len(), 1, "only s1 was parked");
        assert!(g.members.contains_key("s2"));
        assert_eq!(g.state(), GroupState::CompletingRebalance);
        leader_sync(&mut g, "s1", &[], 30_006);
        // s2 never syncs: removed after the rebalance timeout, which rebalances again.
        g.heartbeat("s1", Some("i1"), g.generation, 55_000);
        assert!(g.members.contains_key("s2"));
        let fx = g.tick(&LIMITS, 60_005);
        assert!(!g.members.contains_key("s2"));
        assert!(fx.joins.is_empty());
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn initial_rebalance_delay_waits_for_more_members() {
        let limits = Limits { initial_rebalance_delay_ms: 3_000, max_size: 100 };
        let mut g = Group::new("g", 0);
        let join = |g: &mut Group, id: &str, now| {
            g.join(JoinRequest { require_known_member_id: false, ..req("", None, &["range"]) }, id.into(), &limits, now)
        };
        join(&mut g, "a", 0);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert!(g.tick(&limits, 0).joins.is_empty());
        assert_eq!(g.next_deadline(), Some(3_000));
        join(&mut g, "b", 2_000);
        assert!(g.tick(&limits, 3_000).joins.is_empty(), "b arrived during the delay: wait another 3 s");
        let fx = g.tick(&limits, 6_000);
        assert_eq!(fx.joins.len(), 2);
        assert_eq!(g.generation(), 1);
    }

    #[test]
    fn group_max_size_and_unknown_members() {
        let limits = Limits { initial_rebalance_delay_ms: 0, max_size: 1 };
        let mut g = Group::new("g", 0);
        let (r, _) = g.join(JoinRequest { require_known_member_id: false, ..req("", None, &["range"]) }, "a".into(), &limits, 0);
        assert_eq!(r, JoinReply::Wait("a".into()));
        let (r, _) = g.join(JoinRequest { require_known_member_id: false, ..req("", None, &["range"]) }, "b".into(), &limits, 0);
        assert_eq!(r, JoinReply::Now(JoinResult::error("", code::GROUP_MAX_SIZE_REACHED)));
        let (r, _) = g.join(req("ghost", None, &["range"]), "c".into(), &LIMITS, 0);
        assert_eq!(r, JoinReply::Now(JoinResult::error("ghost", code::UNKNOWN_MEMBER_ID)));
        let (r, _) = g.join(req("a", Some("inst"), &["range"]), "c".into(), &LIMITS, 0);
        assert_eq!(r, JoinReply::Now(JoinResult::error("a", code::UNKNOWN_MEMBER_ID)), "unknown instance id");
        g.mark_dead(1);
        let (r, _) = g.join(req("", None, &["range"]), "d".into(), &LIMITS, 1);
        assert_eq!(r, JoinReply::Now(JoinResult::error("", code::COORDINATOR_NOT_AVAILABLE)));
        assert_eq!(g.heartbeat("a", None, 1, 1), code::COORDINATOR_NOT_AVAILABLE);
    }

    #[test]
    fn follower_rejoin_in_stable_returns_current_generation_and_lost_join_responses_are_resent() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        let (b, _, _) = join_dynamic(&mut g, 2, 0);
        g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 1);
        // Completing: both rejoin with the same metadata (lost responses) and get the generation again.
        let (r, _) = g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 2);
        let JoinReply::Now(r) = r else { panic!() };
        assert_eq!((r.generation_id, r.members.len()), (2, 2));
        let (r, _) = g.join(req(&b, None, &["range"]), "x".into(), &LIMITS, 2);
        let JoinReply::Now(r) = r else { panic!() };
        assert!(r.members.is_empty());
        leader_sync(&mut g, &a, &[], 3);
        let (r, _) = g.join(req(&b, None, &["range"]), "x".into(), &LIMITS, 4);
        assert!(matches!(r, JoinReply::Now(JoinResult { error: 0, generation_id: 2, .. })));
        assert_eq!(g.state(), GroupState::Stable);
        // Changed metadata forces a rebalance; parked syncs are not affected in Stable.
        let (r, _) = g.join(
            JoinRequest { protocols: protocols(&["range"], &["t", "u"]), ..req(&b, None, &["range"]) },
            "x".into(),
            &LIMITS,
            5,
        );
        assert_eq!(r, JoinReply::Wait(b.clone()));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn a_rebalance_during_completing_fails_parked_syncs() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        let (b, _, _) = join_dynamic(&mut g, 2, 0);
        g.join(req(&a, None, &["range"]), "x".into(), &LIMITS, 1);
        assert_eq!(g.sync(sync_req(&g, &b, &[]), 2), SyncReply::Wait { assignment: None });
        let (_, _, fx) = join_dynamic(&mut g, 3, 3);
        assert_eq!(fx.syncs, vec![(b.clone(), SyncResult::error(code::REBALANCE_IN_PROGRESS))]);
        // A failed store of the leader's assignment does the same.
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        let SyncReply::Wait { assignment: Some(_) } = g.sync(sync_req(&g, &a, &[]), 1) else { panic!() };
        let fx = g.fail_assignment(g.generation(), code::NOT_COORDINATOR, &LIMITS, 2);
        assert_eq!(fx.syncs, vec![(a, SyncResult::error(code::NOT_COORDINATOR))]);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn sync_validation() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        let mut r = sync_req(&g, &a, &[]);
        r.generation_id = 7;
        assert_eq!(g.sync(r.clone(), 1), SyncReply::Now(SyncResult::error(code::ILLEGAL_GENERATION)));
        r.generation_id = 1;
        r.protocol_name = Some("roundrobin".into());
        assert_eq!(g.sync(r.clone(), 1), SyncReply::Now(SyncResult::error(code::INCONSISTENT_GROUP_PROTOCOL)));
        r.protocol_name = None;
        r.member_id = "nobody".into();
        assert_eq!(g.sync(r, 1), SyncReply::Now(SyncResult::error(code::UNKNOWN_MEMBER_ID)));
    }

    #[test]
    fn loaded_groups_are_stable_and_expire_without_heartbeats() {
        let mut g = Group::new("g", 0);
        let (a, _, _) = join_dynamic(&mut g, 1, 0);
        leader_sync(&mut g, &a, &[(&a, "A")], 0);
        let members: Vec<Member> = g.members().cloned().collect();
        let mut l = Group::loaded("g", 1, Some("consumer".into()), Some("range".into()), Some(a.clone()), 0, members, 1_000);
        assert_eq!(l.state(), GroupState::Stable);
        assert_eq!(l.heartbeat(&a, None, 1, 1_500), code::NONE);
        let SyncReply::Now(s) = l.sync(sync_req(&l, &a, &[]), 1_600) else { panic!() };
        assert_eq!(&s.assignment[..], b"A");
        l.tick(&LIMITS, 20_000);
        assert_eq!(l.state(), GroupState::Empty, "the member expired and the group emptied");
        let empty = Group::loaded("e", 5, Some("consumer".into()), None, None, 7, vec![], 1_000);
        assert_eq!((empty.state(), empty.generation(), empty.state_timestamp()), (GroupState::Empty, 5, 7));
    }

    #[test]
    fn admin_leave_by_instance_id() {
        let mut g = Group::new("g", 0);
        g.join(req("", Some("i1"), &["range"]), "s1".into(), &LIMITS, 0);
        leader_sync(&mut g, "s1", &[], 0);
        assert_eq!(g.leave("", Some("nope"), &LIMITS, 1).0, code::UNKNOWN_MEMBER_ID);
        assert_eq!(g.leave("other", Some("i1"), &LIMITS, 1).0, code::FENCED_INSTANCE_ID);
        let (err, fx) = g.leave("", Some("i1"), &LIMITS, 1);
        assert_eq!(err, code::NONE);
        assert!(fx.store);
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.static_members.is_empty());
    }
}
