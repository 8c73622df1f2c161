//! The replica manager: which topics exist in the cluster and which of their partitions this broker holds,
//! the partition logs (strata-storage) behind those, their effective configs (broker defaults plus topic
//! overrides), the ids of deleted topics (tombstones), and high-watermark notifications that wake waiting
//! fetches when a produce lands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use strata_storage::{AppendInfo, Log, LogConfig, LogManager, LogManagerConfig, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use crate::errors::{code, storage_error_code};
use crate::resources;
use crate::topics::{self, MetaError, TopicMeta};

/// One partition this broker leads.
pub struct Partition {
    pub log: Arc<Log>,
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    fn new(log: Arc<Log>) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Partition { log, high_watermark }
    }

    /// The in-sync replicas: partitions are not replicated, so the leader alone.
    pub fn in_sync_replicas(&self) -> i32 {
        1
    }

    /// Appends one produce request's records for this partition and wakes fetches waiting on it. With
    /// acks=-1 the in-sync replicas must number at least min.insync.replicas, or nothing is appended
    /// (Kafka's Partition.appendRecordsToLeader).
    pub fn append(&self, records: &mut [u8], required_acks: i16) -> Result<AppendInfo, AppendError> {
        let min_isr = self.log.config().min_insync_replicas;
        let isr = self.in_sync_replicas();
        if required_acks == -1 && isr < min_isr {
            return Err(AppendError::NotEnoughReplicas { partition: self.log.topic_partition().clone(), isr, min_isr });
        }
        let info = self.log.append(records)?;
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(info)
    }

    /// Changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the in-sync replicas of {partition} number {isr}, fewer than min.insync.replicas={min_isr} (partitions have one replica)")]
    NotEnoughReplicas { partition: TopicPartition, isr: i32, min_isr: i32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl AppendError {
    pub fn code(&self) -> i16 {
        match self {
            AppendError::NotEnoughReplicas { .. } => code::NOT_ENOUGH_REPLICAS,
            AppendError::Storage(e) => storage_error_code(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("topic {name} with id {id} was deleted")]
    Deleted { name: String, id: Uuid },
    /// More partitions than this broker's descriptors or memory maps can hold (see [`crate::resources`]).
    #[error("{0}")]
    ResourceLimit(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl AdminError {
    pub fn code(&self) -> i16 {
        match self {
            AdminError::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
            AdminError::UnknownTopic(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
            AdminError::InvalidTopic(_) => code::INVALID_TOPIC_EXCEPTION,
            AdminError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
            AdminError::InvalidReplicationFactor(_) => code::INVALID_REPLICATION_FACTOR,
            AdminError::InvalidReplicaAssignment(_) => code::INVALID_REPLICA_ASSIGNMENT,
            AdminError::InvalidConfig(_) => code::INVALID_CONFIG,
            AdminError::Deleted { .. } => code::INVALID_REQUEST,
            AdminError::ResourceLimit(_) => code::POLICY_VIOLATION,
            AdminError::Storage(e) => storage_error_code(e),
            AdminError::Meta(_) => code::KAFKA_STORAGE_ERROR,
        }
    }
}

/// Whether partition `p` of `meta` is assigned to broker `node_id`.
fn is_local(meta: &TopicMeta, p: i32, node_id: i32) -> bool {
    meta.assignment.get(p as usize).is_some_and(|r| r.contains(&node_id))
}

/// Refuses `partitions` new local partitions that this process's descriptors or maps cannot hold.
fn check_room(partitions: usize, mode: strata_storage::WriteMode) -> Result<(), AdminError> {
    let Some(usage) = resources::Usage::read(std::path::Path::new("/proc")) else { return Ok(()) };
    resources::admit(partitions as u64, resources::PartitionCost::for_mode(mode), usage).map_err(AdminError::ResourceLimit)
}

/// Most partitions one topic may have (a bound on what a single request can make us create).
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Default)]
struct State {
    topics: BTreeMap<String, TopicMeta>,
    names_by_id: HashMap<Uuid, String>,
    /// Only the partitions assigned to this broker.
    partitions: HashMap<TopicPartition, Arc<Partition>>,
    /// Ids of deleted topics (with their names, for logs), so that no peer brings them back.
    deleted: BTreeMap<Uuid, String>,
}

pub struct ReplicaManager {
    logs: Arc<LogManager>,
    node_id: i32,
    meta_dir: PathBuf,
    state: RwLock<State>,
    defaults: RwLock<Defaults>,
}

/// Broker-level defaults of topic configs, by topic key: from the config file/flags (static) and set at run
/// time through IncrementalAlterConfigs (dynamic, persisted, stronger), as Kafka layers them.
#[derive(Clone)]
pub struct Defaults {
    pub static_overrides: BTreeMap<String, String>,
    pub dynamic_overrides: BTreeMap<String, String>,
    /// `LogConfig::default()` with both applied: the config of a topic without overrides.
    pub config: LogConfig,
}

impl Defaults {
    fn new(
        static_overrides: BTreeMap<String, String>,
        dynamic_overrides: BTreeMap<String, String>,
    ) -> Result<Defaults, AdminError> {
        let config = LogConfig::default()
            .with_overrides(static_overrides.iter().chain(&dynamic_overrides).map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(config_error)?;
        Ok(Defaults { static_overrides, dynamic_overrides, config })
    }
}

const DYNAMIC_BROKER_CONFIG: &str = "broker-config.json";
const DELETED_TOPICS: &str = "deleted-topics.json";

fn config_error(e: StorageError) -> AdminError {
    match e {
        StorageError::InvalidConfig { .. } => AdminError::InvalidConfig(e.to_string()),
        other => AdminError::Storage(other),
    }
}

impl ReplicaManager {
    /// Loads the topics recorded in the log directory, opens the log manager with their effective configs, and
    /// reconciles the two: logs of a topic whose deletion was interrupted (or of a partition assigned to another
    /// broker) are deleted, this broker's partitions whose creation was interrupted are created.
    pub fn open(
        mut logs_config: LogManagerConfig,
        static_overrides: BTreeMap<String, String>,
        node_id: i32,
    ) -> Result<ReplicaManager, AdminError> {
        let meta_dir = logs_config.log_dir.clone();
        std::fs::create_dir_all(&meta_dir).map_err(|source| MetaError::Io { op: "create", path: meta_dir.clone(), source })?;
        let dynamic = topics::load_json(&meta_dir.join(DYNAMIC_BROKER_CONFIG))?.unwrap_or_default();
        let defaults = Defaults::new(static_overrides, dynamic)?;
        let deleted: BTreeMap<Uuid, String> = topics::load_json(&meta_dir.join(DELETED_TOPICS))?.unwrap_or_default();
        let mut topics = topics::load_all(&meta_dir)?;
        for meta in topics.values_mut() {
            if meta.assignment.is_empty() {
                meta.assignment = vec![vec![node_id]; meta.partitions as usize];
            }
        }
        // The tombstone is written before the topic file is removed: finish such a deletion.
        for name in topics.values().filter(|t| deleted.contains_key(&t.id)).map(|t| t.name.clone()).collect::<Vec<_>>() {
            tracing::warn!(topic = %name, "completing an interrupted topic deletion");
            topics::remove(&meta_dir, &name)?;
            topics.remove(&name);
        }
        let mut configs = HashMap::new();
        for meta in topics.values() {
            let c = defaults
                .config
                .with_overrides(meta.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(config_error)?;
            configs.insert(meta.name.clone(), c);
        }
        logs_config.default_config = defaults.config.clone();
        logs_config.topic_configs = configs.clone();
        let logs = LogManager::open(logs_config)?;
        for log in logs.logs() {
            let tp = log.topic_partition();
            // Internal logs (the group coordinator's) are not topics.
            let kept = topics.get(&tp.topic).is_some_and(|t| is_local(t, tp.partition, node_id))
                || crate::group::is_internal_topic(&tp.topic);
            if !kept {
                tracing::warn!(partition = %tp, "deleting the log of a deleted topic or of another broker's partition");
                logs.delete(tp)?;
            }
        }
        let mut state = State { deleted, ..State::default() };
        for meta in topics.into_values() {
            for p in (0..meta.partitions).filter(|p| is_local(&meta, *p, node_id)) {
                let tp = TopicPartition { topic: meta.name.clone(), partition: p };
                let log = logs.get_or_create(&tp, configs[&meta.name].clone())?;
                state.partitions.insert(tp, Arc::new(Partition::new(log)));
            }
            state.names_by_id.insert(meta.id, meta.name.clone());
            state.topics.insert(meta.name.clone(), meta);
        }
        Ok(ReplicaManager { logs, node_id, meta_dir, state: RwLock::new(state), defaults: RwLock::new(defaults) })
    }

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    fn effective_config(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig, AdminError> {
        let defaults = self.defaults.read().unwrap();
        defaults.config.with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str()))).map_err(config_error)
    }

    /// A partition this broker holds.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let tp = TopicPartition { topic: topic.to_string(), partition };
        self.state.read().unwrap().partitions.get(&tp).cloned()
    }

    /// Whether the cluster has this partition (on any broker).
    pub fn has_partition(&self, topic: &str, partition: i32) -> bool {
        self.state.read().unwrap().topics.get(topic).is_some_and(|t| (0..t.partitions).contains(&partition))
    }

    /// The error for a partition this broker does not hold: another broker leads it (the client refreshes
    /// its metadata and goes there), or it does not exist.
    pub fn missing_partition_code(&self, topic: &str, partition: i32) -> i16 {
        if self.has_partition(topic, partition) {
            code::NOT_LEADER_OR_FOLLOWER
        } else {
            code::UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    /// Ids of deleted topics.
    pub fn deleted_ids(&self) -> HashSet<Uuid> {
        self.state.read().unwrap().deleted.keys().copied().collect()
    }

    fn save_deleted(&self, deleted: &BTreeMap<Uuid, String>) -> Result<(), MetaError> {
        topics::save_json(&self.meta_dir.join(DELETED_TOPICS), deleted)
    }

    /// Remembers that a topic this broker never had was deleted, so that it is not adopted later.
    pub fn record_deleted(&self, id: Uuid, name: &str) -> Result<(), AdminError> {
        let mut state = self.state.write().unwrap();
        if state.names_by_id.contains_key(&id) {
            return Err(AdminError::InvalidTopic(format!("topic id {id} exists: delete the topic instead")));
        }
        if !state.deleted.contains_key(&id) {
            let mut deleted = state.deleted.clone();
            deleted.insert(id, name.to_string());
            self.save_deleted(&deleted)?;
            state.deleted = deleted;
        }
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.state.read().unwrap().topics.get(name).cloned()
    }

    pub fn topic_name_by_id(&self, id: Uuid) -> Option<String> {
        self.state.read().unwrap().names_by_id.get(&id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.state.read().unwrap().topics.values().cloned().collect()
    }

    /// Creates a topic with the given id and assignment, and the logs of its partitions assigned to this broker
    /// (metadata first, so an interrupted creation is completed on restart).
    pub fn create_topic(&self, meta: TopicMeta, validate_only: bool) -> Result<TopicMeta, AdminError> {
        let (name, partitions) = (meta.name.as_str(), meta.partitions);
        topics::validate_topic_name(name).map_err(AdminError::InvalidTopic)?;
        if crate::group::is_internal_topic(name) {
            return Err(AdminError::InvalidTopic(format!("{name} is the broker's internal topic")));
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(AdminError::InvalidPartitions(format!("partition count {partitions} is not in [1, {MAX_PARTITIONS}]")));
        }
        if meta.assignment.len() != partitions as usize {
            return Err(AdminError::InvalidReplicaAssignment(format!(
                "{} partitions assigned, {partitions} wanted",
                meta.assignment.len()
            )));
        }
        let config = self.effective_config(&meta.configs)?;
        let mut state = self.state.write().unwrap();
        if state.topics.contains_key(name) {
            return Err(AdminError::TopicExists(name.to_string()));
        }
        if state.deleted.contains_key(&meta.id) || state.names_by_id.contains_key(&meta.id) {
            return Err(AdminError::Deleted { name: name.to_string(), id: meta.id });
        }
        // Kafka refuses names that differ only in '.' versus '_' (they collide in metric names).
        let normalized = name.replace('.', "_");
        if let Some(other) = state.topics.keys().find(|t| t.replace('.', "_") == normalized) {
            return Err(AdminError::InvalidTopic(format!("topic {name} collides with existing topic {other}")));
        }
        check_room((0..partitions).filter(|p| is_local(&meta, *p, self.node_id)).count(), config.write_mode)?;
        if validate_only {
            return Ok(meta);
        }
        topics::save(&self.meta_dir, &meta)?;
        for p in (0..partitions).filter(|p| is_local(&meta, *p, self.node_id)) {
            let tp = TopicPartition { topic: name.to_string(), partition: p };
            let log = self.logs.get_or_create(&tp, config.clone())?;
            state.partitions.insert(tp, Arc::new(Partition::new(log)));
        }
        state.names_by_id.insert(meta.id, meta.name.clone());
        tracing::info!(topic = name, partitions, assignment = ?meta.assignment, "created topic");
        state.topics.insert(meta.name.clone(), meta.clone());
        Ok(meta)
    }

    /// Deletes a topic: tombstone first, then the metadata, so an interrupted deletion is completed on restart.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, AdminError> {
        let mut state = self.state.write().unwrap();
        let meta = state.topics.get(name).cloned().ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        let mut deleted = state.deleted.clone();
        deleted.insert(meta.id, meta.name.clone());
        self.save_deleted(&deleted)?;
        state.deleted = deleted;
        topics::remove(&self.meta_dir, name)?;
        state.topics.remove(name);
        state.names_by_id.remove(&meta.id);
        for p in 0..meta.partitions {
            let tp = TopicPartition { topic: name.to_string(), partition: p };
            if state.partitions.remove(&tp).is_some() {
                self.logs.delete(&tp)?;
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(meta)
    }

    /// Grows a topic by `added`, the replicas of each new partition, numbered from `first`, which must be the
    /// current partition count (so that concurrent growths cannot both apply).
    pub fn add_partitions(&self, name: &str, first: i32, added: Vec<Vec<i32>>, validate_only: bool) -> Result<(), AdminError> {
        let mut state = self.state.write().unwrap();
        let mut meta = state.topics.get(name).cloned().ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        if first != meta.partitions {
            return Err(AdminError::InvalidPartitions(format!(
                "topic {name} has {} partitions now, not {first}",
                meta.partitions
            )));
        }
        let count = meta.partitions.saturating_add(i32::try_from(added.len()).unwrap_or(i32::MAX));
        if count <= meta.partitions {
            return Err(AdminError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count {count} must be larger",
                meta.partitions
            )));
        }
        if count > MAX_PARTITIONS {
            return Err(AdminError::InvalidPartitions(format!("partition count {count} exceeds {MAX_PARTITIONS}")));
        }
        let config = self.effective_config(&meta.configs)?;
        check_room(added.iter().filter(|r| r.contains(&self.node_id)).count(), config.write_mode)?;
        if validate_only {
            return Ok(());
        }
        let old = meta.partitions;
        meta.partitions = count;
        meta.assignment.extend(added);
        topics::save(&self.meta_dir, &meta)?;
        for p in (old..count).filter(|p| is_local(&meta, *p, self.node_id)) {
            let tp = TopicPartition { topic: name.to_string(), partition: p };
            let log = self.logs.get_or_create(&tp, config.clone())?;
            state.partitions.insert(tp, Arc::new(Partition::new(log)));
        }
        tracing::info!(topic = name, from = old, to = count, assignment = ?&meta.assignment[old as usize..], "added partitions");
        state.topics.insert(name.to_string(), meta);
        Ok(())
    }

    /// Replaces a topic's config overrides and applies them to its logs at once.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut state = self.state.write().unwrap();
        let mut meta = state.topics.get(name).cloned().ok_or_else(|| AdminError::UnknownTopic(name.to_string()))?;
        let config = self.effective_config(&configs)?;
        if validate_only {
            return Ok(());
        }
        meta.configs = configs;
        topics::save(&self.meta_dir, &meta)?;
        for p in 0..meta.partitions {
            if let Some(part) = state.partitions.get(&TopicPartition { topic: name.to_string(), partition: p }) {
                part.log.update_config(config.clone());
            }
        }
        state.topics.insert(name.to_string(), meta);
        Ok(())
    }

    pub fn defaults(&self) -> Defaults {
        self.defaults.read().unwrap().clone()
    }

    /// Replaces the dynamic broker-level defaults (persisted) and re-applies every topic's effective config.
    pub fn set_dynamic_broker_overrides(&self, dynamic: BTreeMap<String, String>, validate_only: bool) -> Result<(), AdminError> {
        let defaults = Defaults::new(self.defaults.read().unwrap().static_overrides.clone(), dynamic)?;
        let state = self.state.read().unwrap();
        // Validate every topic against the new defaults before changing anything.
        let mut effective = Vec::new();
        for meta in state.topics.values() {
            let c = defaults
                .config
                .with_overrides(meta.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(config_error)?;
            effective.push((meta, c));
        }
        if validate_only {
            return Ok(());
        }
        topics::save_json(&self.meta_dir.join(DYNAMIC_BROKER_CONFIG), &defaults.dynamic_overrides)?;
        *self.defaults.write().unwrap() = defaults;
        for (meta, c) in effective {
            for p in 0..meta.partitions {
                if let Some(part) = state.partitions.get(&TopicPartition { topic: meta.name.clone(), partition: p }) {
                    part.log.update_config(c.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, node_id: i32) -> ReplicaManager {
        ReplicaManager::open(LogManagerConfig::new(dir), BTreeMap::new(), node_id).unwrap()
    }

    fn topic(name: &str, leaders: &[i32]) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: leaders.len() as i32,
            assignment: leaders.iter().map(|l| vec![*l]).collect(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn only_this_brokers_partitions_have_logs() {
        let dir = tempfile::tempdir().unwrap();
        let rm = open(dir.path(), 1);
        rm.create_topic(topic("t", &[0, 1, 2, 1]), false).unwrap();
        let local: Vec<i32> = (0..4).filter(|p| rm.partition("t", *p).is_some()).collect();
        assert_eq!(local, vec![1, 3]);
        assert_eq!(rm.missing_partition_code("t", 0), code::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(rm.missing_partition_code("t", 4), code::UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(rm.missing_partition_code("nope", 0), code::UNKNOWN_TOPIC_OR_PARTITION);
        rm.add_partitions("t", 4, vec![vec![1], vec![0]], false).unwrap();
        assert!(matches!(rm.add_partitions("t", 4, vec![vec![1]], false), Err(AdminError::InvalidPartitions(_))));
        assert!(rm.partition("t", 4).is_some() && rm.partition("t", 5).is_none());
        rm.log_manager().shutdown().unwrap();
        drop(rm);
        let rm = open(dir.path(), 1);
        assert_eq!(rm.topic("t").unwrap().assignment, vec![vec![0], vec![1], vec![2], vec![1], vec![1], vec![0]]);
        let local: Vec<i32> = (0..6).filter(|p| rm.partition("t", *p).is_some()).collect();
        assert_eq!(local, vec![1, 3, 4]);
    }

    #[test]
    fn deleted_ids_are_remembered_and_never_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let rm = open(dir.path(), 0);
        let t = rm.create_topic(topic("t", &[0]), false).unwrap();
        rm.delete_topic("t").unwrap();
        let gone = Uuid::new_v4();
        rm.record_deleted(gone, "elsewhere").unwrap();
        assert_eq!(rm.deleted_ids(), HashSet::from([t.id, gone]));
        drop(rm);
        let rm = open(dir.path(), 0);
        assert_eq!(rm.deleted_ids(), HashSet::from([t.id, gone]));
        let again = TopicMeta { id: t.id, ..topic("t", &[0]) };
        assert!(matches!(rm.create_topic(again, false), Err(AdminError::Deleted { .. })));
        // The same name with a new id is a new topic.
        rm.create_topic(topic("t", &[0]), false).unwrap();
    }

    #[test]
    fn an_interrupted_deletion_is_completed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let rm = open(dir.path(), 0);
        let t = rm.create_topic(topic("t", &[0, 0]), false).unwrap();
        rm.log_manager().shutdown().unwrap();
        drop(rm);
        // A crash after the tombstone was written, before the topic file was removed.
        topics::save_json(&dir.path().join(DELETED_TOPICS), &BTreeMap::from([(t.id, "t".to_string())])).unwrap();
        let rm = open(dir.path(), 0);
        assert!(rm.topic("t").is_none() && rm.partition("t", 0).is_none());
        assert!(!dir.path().join("topic.t.json").exists());
    }
}
