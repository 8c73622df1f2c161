//! The active controller: the node the Raft leader runs on decides requests against its image (one at a time,
//! so each decision sees the previous one applied) and commits the records; it also keeps the brokers'
//! sessions (heartbeat times, in memory, reset when leadership changes) and fences brokers whose session
//! expired. Other nodes send their requests here (see [`super::Controller::call`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use serde::{Deserialize, Serialize};
use strata_storage::LogConfig;
use uuid::Uuid;

use super::decisions::{self, NewPartitions, NewTopic};
use super::image::{Image, Refused};
use super::quorum::{host_port, MetadataRaft, NodeId, Refusals};
use super::reassignment;
use super::records::{Endpoint, MetadataBatch, MetadataRecord};
use crate::authorizer::{AclBinding, AclFilter};
use crate::config_ops::{self, ConfigOp};
use crate::errors::code;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ConfigResource {
    Topic(String),
    /// "" for the cluster-wide default, else a node id.
    Broker(String),
}

/// A topic as an older release kept it in the data directory, imported into the log once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedTopic {
    pub id: Uuid,
    pub name: String,
    pub assignment: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ControllerRequest {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topics: Vec<NewPartitions>,
        validate_only: bool,
    },
    AlterConfigs {
        changes: Vec<(ConfigResource, Vec<ConfigOp>)>,
        validate_only: bool,
    },
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        inter_broker_listener: String,
    },
    Heartbeat {
        id: i32,
        epoch: i64,
        applied: u64,
        want_shutdown: bool,
    },
    UnregisterBroker {
        id: i32,
    },
    Import {
        topics: Vec<ImportedTopic>,
        broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    },
    DescribeQuorum,
    /// A partition leader's new ISR (Kafka's AlterPartition); answered with [`ControllerReply::Partition`].
    AlterPartition {
        broker_id: i32,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    /// Creates `__consumer_offsets` if it does not exist (a broker needs it: FindCoordinator, or groups of an
    /// older release to keep), with the asking broker's settings; answered with [`ControllerReply::Done`].
    CreateOffsetsTopic {
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    /// Kafka's ElectLeaders: of these (topic, partition)s, None for all; election type 0 preferred, 1 unclean.
    /// Answered with [`ControllerReply::Elections`].
    ElectLeaders {
        partitions: Option<Vec<(String, i32)>>,
        election_type: i8,
    },
    /// Kafka's AlterPartitionReassignments (KIP-455): each partition's target replicas, None to cancel;
    /// answered with [`ControllerReply::Each`], committed as one batch.
    AlterPartitionReassignments {
        partitions: Vec<reassignment::Reassign>,
    },
    /// Kafka's AllocateProducerIds: the next block of producer ids for a broker, at or above `floor`; answered
    /// with [`ControllerReply::ProducerIds`].
    AllocateProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        floor: i64,
    },
    /// Kafka's AlterUserScramCredentials, checked by the asking broker; answered with [`ControllerReply::Each`].
    AlterUserScramCredentials {
        changes: Vec<super::scram_credentials::ScramChange>,
    },
    /// Kafka's CreateAcls of valid bindings, committed as one batch; answered with [`ControllerReply::Done`].
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Kafka's DeleteAcls, committed as one batch; answered with [`ControllerReply::DeletedAcls`].
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ControllerReply {
    /// One result per item of the request, in its order.
    Each(Vec<Result<(), Refused>>),
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    Done,
    Quorum(super::quorum::QuorumState),
    /// A partition's state after an AlterPartition.
    Partition {
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        partition_epoch: i32,
    },
    /// Each partition's ElectLeaders outcome: topic, partition, result.
    Elections(Vec<decisions::Election>),
    /// A block of producer ids: `start` and the [`decisions::PRODUCER_ID_BLOCK`] ids after it.
    ProducerIds {
        start: i64,
    },
    /// The bindings each filter of a DeleteAcls removed, in its order.
    DeletedAcls(Vec<Vec<AclBinding>>),
}

/// The answer, with the log index the asking broker waits to have applied before it answers its client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerResponse {
    pub index: u64,
    pub result: Result<ControllerReply, Refused>,
}

/// What the active controller decides with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: i32,
    pub session_timeout: Duration,
    /// auto.leader.rebalance.enable: how often preferred leaders are restored.
    pub leader_rebalance_interval: Option<Duration>,
    pub default_partitions: i32,
    pub default_replication_factor: i16,
    /// Broker-level log defaults, for validating topic configs (and unclean.leader.election.enable's default).
    pub log_defaults: LogConfig,
    pub voters: BTreeSet<i32>,
}

struct Sessions {
    /// The term these times belong to: a new leader gives every broker a full session.
    term: u64,
    last: HashMap<i32, Instant>,
}

pub struct Active {
    raft: MetadataRaft,
    image: tokio::sync::watch::Receiver<super::state_machine::Published>,
    settings: Settings,
    /// One decision at a time.
    deciding: tokio::sync::Mutex<()>,
    sessions: Mutex<Sessions>,
    refusals: Arc<Refusals>,
}

pub fn not_controller(leader: Option<NodeId>) -> Refused {
    Refused::new(
        code::NOT_CONTROLLER,
        match leader {
            Some(l) => format!("node {l} is the active controller"),
            None => "no active controller (an election is under way, or no majority of the voters is reachable)".into(),
        },
    )
}

impl Active {
    pub fn new(
        raft: MetadataRaft,
        image: tokio::sync::watch::Receiver<super::state_machine::Published>,
        settings: Settings,
        refusals: Arc<Refusals>,
    ) -> Active {
        Active {
            raft,
            image,
            settings,
            deciding: tokio::sync::Mutex::new(()),
            sessions: Mutex::new(Sessions { term: 0, last: HashMap::new() }),
            refusals,
        }
    }

    fn image(&self) -> Arc<Image> {
        self.image.borrow().image.clone()
    }

    fn applied(&self) -> u64 {
        self.image.borrow().applied
    }

    /// Waits until this node leads and has applied every entry of earlier leaders (a new leader's first entry
    /// is its own, so once an entry of its term is applied, so are all those before): its image is as current
    /// as any decision needs. Records are checked again when applied, so a decision on a slightly older image
    /// is refused there, never applied twice.
    async fn wait_current(&self) -> Result<(), Refused> {
        let me = self.settings.node_id as NodeId;
        let mut metrics = self.raft.metrics();
        let ready = metrics
            .wait_for(|m| m.current_leader != Some(me) || m.last_applied.is_some_and(|l| l.leader_id.term == m.current_term));
        let leader = match tokio::time::timeout(self.settings.session_timeout, ready).await {
            Ok(Ok(m)) => m.current_leader,
            _ => None,
        };
        match leader {
            Some(l) if l == me => Ok(()),
            other => Err(not_controller(other)),
        }
    }

    /// Commits one batch; its index, or why it was not applied.
    async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, Refused> {
        // Bounded: without a majority nothing commits, and the caller must get an answer (a retriable one).
        let write = tokio::time::timeout(self.settings.session_timeout, self.raft.client_write(MetadataBatch::new(records)));
        let Ok(written) = write.await else {
            return Err(Refused::new(
                code::REQUEST_TIMED_OUT,
                format!(
                    "the metadata log did not commit within {:?} (no majority of the voters?)",
                    self.settings.session_timeout
                ),
            ));
        };
        match written {
            Ok(r) => {
                // Tell the followers the new commit index now rather than at the next heartbeat: the broker that
                // asked waits to have applied it before it answers its client.
                if let Err(e) = self.raft.trigger().heartbeat().await {
                    tracing::debug!(error = %e, "triggering a heartbeat");
                }
                r.data.0.map(|()| r.log_id.index)
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(not_controller(f.leader_id)),
            Err(e) => Err(Refused::new(code::NOT_CONTROLLER, format!("the metadata log refused the write: {e}"))),
        }
    }

    /// Decides `req` as the active controller.
    pub async fn handle(&self, req: ControllerRequest) -> ControllerResponse {
        let _one = self.deciding.lock().await;
        if let Err(refused) = self.wait_current().await {
            return ControllerResponse { index: 0, result: Err(refused) };
        }
        let result = self.decide(req).await;
        ControllerResponse { index: self.applied(), result }
    }

    async fn each<T>(
        &self,
        items: Vec<T>,
        mut records: impl FnMut(&Image, T) -> Result<Vec<MetadataRecord>, Refused>,
        validate_only: bool,
    ) -> ControllerReply {
        let mut out = Vec::new();
        for item in items {
            let decided = records(&self.image(), item);
            out.push(match decided {
                Ok(_) if validate_only => Ok(()),
                Ok(r) => self.propose(r).await.map(|_| ()),
                Err(e) => Err(e),
            });
        }
        ControllerReply::Each(out)
    }

    async fn decide(&self, req: ControllerRequest) -> Result<ControllerReply, Refused> {
        let s = &self.settings;
        Ok(match req {
            ControllerRequest::CreateTopics { topics, validate_only } => {
                self.each(
                    topics,
                    |image, t| {
                        let records = decisions::create_topic(
                            image,
                            &t,
                            Uuid::new_v4(),
                            s.default_partitions,
                            s.default_replication_factor,
                            &s.log_defaults,
                        )?;
                        check_room_here(s.node_id, &records)?;
                        Ok(records)
                    },
                    validate_only,
                )
                .await
            }
            ControllerRequest::DeleteTopics { names } => {
                self.each(names, |image, name| decisions::delete_topic(image, &name), false).await
            }
            ControllerRequest::CreateOffsetsTopic { partitions, replication_factor, configs } => {
                let records =
                    super::offsets_topic::create(&self.image(), Uuid::new_v4(), partitions, replication_factor, &configs)?;
                if !records.is_empty() {
                    s.log_defaults
                        .with_overrides(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .map_err(|e| Refused::new(code::INVALID_CONFIG, e.to_string()))?;
                    check_room_here(s.node_id, &records)?;
                    tracing::info!(partitions, replication_factor, "creating the internal topic __consumer_offsets");
                    self.propose(records).await?;
                }
                ControllerReply::Done
            }
            ControllerRequest::CreatePartitions { topics, validate_only } => {
                self.each(
                    topics,
                    |image, p| {
                        let records = decisions::create_partitions(image, &p.topic, p.count, p.assignment.as_deref())?;
                        check_room_here(s.node_id, &records)?;
                        Ok(records)
                    },
                    validate_only,
                )
                .await
            }
            ControllerRequest::AlterConfigs { changes, validate_only } => {
                let reply = self
                    .each(changes, |image, (resource, ops)| alter_configs(image, resource, &ops, &s.log_defaults), validate_only)
                    .await;
                // Allowing unclean leader election gives partitions waiting for their ISR a leader now.
                let elections = decisions::elect_leaderless(&self.image(), &s.log_defaults);
                if !elections.is_empty() {
                    tracing::warn!(partitions = elections.len(), "electing leaders for partitions without one");
                    if let Err(e) = self.propose(elections).await {
                        tracing::warn!(error = %e, "electing leaders after a config change");
                    }
                }
                reply
            }
            ControllerRequest::RegisterBroker { id, incarnation, endpoints, rack, inter_broker_listener } => {
                let image = self.image();
                if let Some(b) = image.brokers.get(&id) {
                    if b.incarnation != incarnation && !b.fenced && self.session_alive(id, b.epoch) {
                        return Err(Refused::new(
                            code::DUPLICATE_BROKER_REGISTRATION,
                            format!("another process registered as broker {id} and is alive"),
                        ));
                    }
                }
                let addr = endpoints
                    .iter()
                    .find(|e| e.name == inter_broker_listener)
                    .or(endpoints.first())
                    .map(|e| host_port(&e.host, e.port));
                // A broker registering again restarted (or lost its registration): until unfenced it leads nothing
                // and is in no ISR, as after fencing (Kafka's handleBrokerShutdown).
                let mut records =
                    if image.brokers.contains_key(&id) { decisions::remove_broker(&image, id, &s.log_defaults) } else { vec![] };
                records.push(MetadataRecord::RegisterBroker { id, incarnation, endpoints, rack });
                let index = self.propose(records).await?;
                self.touch(id);
                if !s.voters.contains(&id) {
                    self.add_learner(id, addr.unwrap_or_default()).await?;
                }
                ControllerReply::Registered { epoch: index as i64 }
            }
            ControllerRequest::Heartbeat { id, epoch, applied, want_shutdown } => {
                let image = self.image();
                let b = image.registered(id, epoch)?;
                self.touch(id);
                let fenced = match (b.fenced, want_shutdown) {
                    (false, true) => {
                        tracing::info!(broker = id, "fencing a broker that is shutting down");
                        self.propose(decisions::fence(&image, id, epoch, &s.log_defaults)).await?;
                        true
                    }
                    // Caught up with the log up to its own registration: it may lead partitions.
                    (true, false) if applied >= epoch as u64 => {
                        tracing::info!(broker = id, "unfencing a broker that caught up with the metadata log");
                        self.propose(decisions::unfence(&image, id, epoch, &s.log_defaults)).await?;
                        false
                    }
                    (fenced, _) => fenced,
                };
                ControllerReply::Heartbeat { fenced }
            }
            ControllerRequest::UnregisterBroker { id } => {
                if s.voters.contains(&id) {
                    return Err(Refused::new(
                        code::INVALID_REQUEST,
                        format!("broker {id} is a controller voter and cannot be unregistered"),
                    ));
                }
                let mut records = decisions::remove_broker(&self.image(), id, &s.log_defaults);
                records.push(MetadataRecord::UnregisterBroker { id });
                self.propose(records).await?;
                self.sessions.lock().expect("sessions lock").last.remove(&id);
                self.remove_learner(id).await?;
                ControllerReply::Done
            }
            ControllerRequest::DescribeQuorum => ControllerReply::Quorum(super::quorum::describe(&self.raft, s.node_id)),
            ControllerRequest::AlterUserScramCredentials { changes } => {
                self.each(changes, super::scram_credentials::decide, false).await
            }
            ControllerRequest::Import { topics, broker_configs } => {
                let image = self.image();
                for t in topics.into_iter().filter(|t| image.topic(&t.name).is_none() && image.topic_by_id(t.id).is_none()) {
                    let mut records = vec![MetadataRecord::Topic { id: t.id, name: t.name.clone(), configs: t.configs }];
                    for (p, replicas) in t.assignment.into_iter().enumerate() {
                        records.push(MetadataRecord::Partition {
                            topic_id: t.id,
                            partition: p as i32,
                            leader: replicas.first().copied().unwrap_or(super::image::NO_LEADER),
                            isr: replicas.clone(),
                            replicas,
                            leader_epoch: 0,
                            partition_epoch: 0,
                        });
                    }
                    tracing::info!(topic = %t.name, "importing a topic of the data directory into the metadata log");
                    self.propose(records).await?;
                }
                for (resource, configs) in broker_configs {
                    if !image.broker_configs.contains_key(&resource) {
                        self.propose(vec![MetadataRecord::BrokerConfig { resource, configs }]).await?;
                    }
                }
                ControllerReply::Done
            }
            ControllerRequest::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let change =
                    decisions::IsrChange { broker_id, broker_epoch, topic_id, partition, leader_epoch, partition_epoch, new_isr };
                let records = decisions::alter_partition(&self.image(), &change)?;
                if !records.is_empty() {
                    self.propose(records).await?;
                }
                let image = self.image();
                let p = image.partition_by_id(topic_id, partition).ok_or_else(|| {
                    Refused::new(
                        code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("partition {partition} of topic id {topic_id} is gone"),
                    )
                })?;
                ControllerReply::Partition {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    isr: p.isr.clone(),
                    partition_epoch: p.partition_epoch,
                }
            }
            ControllerRequest::AllocateProducerIds { broker_id, broker_epoch, floor } => {
                let (start, records) = decisions::allocate_producer_ids(&self.image(), broker_id, broker_epoch, floor)?;
                self.propose(records).await?;
                ControllerReply::ProducerIds { start }
            }
            ControllerRequest::ElectLeaders { partitions, election_type } => {
                let (records, mut outcomes) = decisions::elect_leaders(&self.image(), partitions.as_deref(), election_type)?;
                if !records.is_empty() {
                    if let Err(e) = self.propose(records).await {
                        for (_, _, result) in outcomes.iter_mut().filter(|o| o.2.is_ok()) {
                            *result = Err(e.clone());
                        }
                    }
                }
                ControllerReply::Elections(outcomes)
            }
            ControllerRequest::CreateAcls { bindings } => {
                let records = super::acls::create(&self.image(), &bindings, Uuid::new_v4);
                if !records.is_empty() {
                    self.propose(records).await?;
                }
                ControllerReply::Done
            }
            ControllerRequest::DeleteAcls { filters } => {
                let (records, deleted) = super::acls::delete(&self.image(), &filters);
                if !records.is_empty() {
                    self.propose(records).await?;
                }
                ControllerReply::DeletedAcls(deleted)
            }
            ControllerRequest::AlterPartitionReassignments { partitions } => {
                let (records, mut outcomes) = reassignment::alter(&self.image(), &partitions, &s.log_defaults);
                if !records.is_empty() {
                    if let Err(e) = self.propose(records).await {
                        outcomes.iter_mut().filter(|o| o.is_ok()).for_each(|o| *o = Err(e.clone()));
                    }
                }
                ControllerReply::Each(outcomes)
            }
        })
    }

    async fn add_learner(&self, id: i32, addr: String) -> Result<(), Refused> {
        let members = self.raft.metrics().borrow().membership_config.clone();
        if members.nodes().any(|(n, _)| *n == id as NodeId) {
            return Ok(());
        }
        tracing::info!(broker = id, %addr, "adding a broker to the metadata log's learners");
        self.raft.add_learner(id as NodeId, BasicNode { addr }, false).await.map(|_| ()).map_err(|e| not_controller_err(&e))
    }

    async fn remove_learner(&self, id: i32) -> Result<(), Refused> {
        let members = self.raft.metrics().borrow().membership_config.clone();
        if !members.nodes().any(|(n, _)| *n == id as NodeId) {
            return Ok(());
        }
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([id as NodeId]));
        self.raft.change_membership(change, false).await.map(|_| ()).map_err(|e| not_controller_err(&e))
    }

    fn touch(&self, id: i32) {
        self.sessions.lock().expect("sessions lock").last.insert(id, Instant::now());
    }

    fn session_alive(&self, id: i32, epoch: i64) -> bool {
        let s = self.sessions.lock().expect("sessions lock");
        s.last.get(&id).is_some_and(|t| !self.session_ended(t.elapsed(), id, epoch))
    }

    /// A broker's session has ended when it was silent for the session timeout or its process is known to
    /// have exited (its address refused the quorum after its registration).
    fn session_ended(&self, silent: Duration, id: i32, epoch: i64) -> bool {
        silent >= self.settings.session_timeout || self.refusals.gone(id, epoch)
    }

    fn is_active(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.settings.node_id as NodeId)
    }

    /// Run periodically on every node (auto.leader.rebalance.enable); as the active controller, moves each
    /// partition whose preferred replica is live and in sync back to it (Kafka's preferred-leader balancing).
    pub async fn balance_leaders(&self) {
        if !self.is_active() {
            return;
        }
        let _one = self.deciding.lock().await;
        let records = match decisions::elect_leaders(&self.image(), None, 0) {
            Ok((records, _)) => records,
            Err(e) => return tracing::warn!(error = %e, "preferred leader balancing"),
        };
        if records.is_empty() {
            return;
        }
        let moved = records.len();
        match self.propose(records).await {
            Ok(_) => tracing::info!(partitions = moved, "moved leaderships back to preferred replicas"),
            Err(e) => tracing::info!(error = %e, "preferred leader balancing failed"),
        }
    }

    /// Run periodically on every node; as the active controller, fences the brokers whose session expired.
    pub async fn fence_expired(&self) {
        let (term, leader) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.current_term, m.current_leader)
        };
        if leader != Some(self.settings.node_id as NodeId) {
            return;
        }
        let image = self.image();
        let expired: Vec<_> = {
            let mut s = self.sessions.lock().expect("sessions lock");
            if s.term != term {
                // New leadership: every broker gets a whole session from now.
                s.term = term;
                s.last.clear();
            }
            let now = Instant::now();
            image
                .live_brokers()
                .filter_map(|b| {
                    let silent = now.duration_since(*s.last.entry(b.id).or_insert(now));
                    self.session_ended(silent, b.id, b.epoch).then_some((b.id, b.epoch, silent))
                })
                .collect()
        };
        for (id, epoch, silent) in expired {
            let _one = self.deciding.lock().await;
            let image = self.image();
            if image.brokers.get(&id).is_some_and(|b| b.epoch == epoch && !b.fenced) {
                if self.refusals.gone(id, epoch) {
                    tracing::warn!(
                        broker = id,
                        ?silent,
                        "fencing a broker whose address refuses connections (its process exited)"
                    );
                } else {
                    tracing::warn!(broker = id, ?silent, "fencing a broker without heartbeats");
                }
                if let Err(e) = self.propose(decisions::fence(&image, id, epoch, &self.settings.log_defaults)).await {
                    tracing::info!(broker = id, error = %e, "fencing failed");
                }
            }
        }
    }
}

fn not_controller_err<E: std::fmt::Display>(e: &E) -> Refused {
    Refused::new(code::NOT_CONTROLLER, format!("changing the metadata log's members: {e}"))
}

/// Refuses partitions for this node that its descriptors or memory maps cannot hold (see [`crate::resources`]).
fn check_room_here(node_id: i32, records: &[MetadataRecord]) -> Result<(), Refused> {
    let here =
        records.iter().filter(|r| matches!(r, MetadataRecord::Partition { replicas, .. } if replicas.contains(&node_id))).count();
    crate::replica::check_room(here).map_err(|m| Refused::new(code::POLICY_VIOLATION, m))
}

/// The record that applies `ops` to a topic's or broker's configs.
fn alter_configs(
    image: &Image,
    resource: ConfigResource,
    ops: &[ConfigOp],
    defaults: &LogConfig,
) -> Result<Vec<MetadataRecord>, Refused> {
    let invalid = |m: String| Refused::new(code::INVALID_CONFIG, m);
    match resource {
        ConfigResource::Topic(name) => {
            let topic = image
                .topic(&name)
                .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}")))?;
            let mut configs = topic.configs.clone();
            config_ops::apply(&mut configs, ops, defaults).map_err(invalid)?;
            defaults.with_overrides(configs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(|e| invalid(e.to_string()))?;
            Ok(vec![MetadataRecord::TopicConfig { topic_id: topic.id, configs }])
        }
        ConfigResource::Broker(resource) => {
            let mut configs = image.broker_configs.get(&resource).cloned().unwrap_or_default();
            config_ops::apply(&mut configs, ops, defaults).map_err(invalid)?;
            let log_defaults = decisions::split_broker_configs(&resource, &configs).map_err(invalid)?;
            defaults
                .with_overrides(log_defaults.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| invalid(e.to_string()))?;
            Ok(vec![MetadataRecord::BrokerConfig { resource, configs }])
        }
    }
}
