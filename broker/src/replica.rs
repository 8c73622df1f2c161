//! The replica manager: the partitions this broker hosts, the logs (strata-storage) behind them with their
//! effective configs (broker defaults plus topic overrides), whether this broker leads each of them, the
//! replication throttles, and high-watermark notifications that wake waiting fetches when a produce lands.
//! What exists in the cluster is the metadata image's (see [`crate::controller`]); the publisher
//! ([`crate::publisher`]) makes this manager host what the image assigns to this broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use strata_storage::{LogConfig, LogManager, LogManagerConfig, StorageError, TopicPartition};

use crate::controller::image::NO_LEADER;
use crate::partition::{Assignment, Partition};
use crate::resources;
use crate::throttle::ReplicationThrottles;

/// Refuses `partitions` new local partitions that this process's descriptors or maps cannot hold.
pub fn check_room(partitions: usize) -> Result<(), String> {
    let Some(usage) = resources::Usage::read(std::path::Path::new("/proc")) else { return Ok(()) };
    let mode = LogConfig::default().write_mode;
    resources::admit(partitions as u64, resources::PartitionCost::for_mode(mode), usage)
}

/// Broker-level defaults of topic configs, by topic key: from the config file/flags (static) and set at run
/// time through IncrementalAlterConfigs (dynamic, in the metadata log, stronger), as Kafka layers them.
#[derive(Clone)]
pub struct Defaults {
    pub static_overrides: BTreeMap<String, String>,
    pub dynamic_overrides: BTreeMap<String, String>,
    /// `LogConfig::default()` with both applied: the config of a topic without overrides.
    pub config: LogConfig,
}

impl Defaults {
    pub fn new(
        static_overrides: BTreeMap<String, String>,
        dynamic_overrides: BTreeMap<String, String>,
    ) -> Result<Defaults, StorageError> {
        let config = LogConfig::default()
            .with_overrides(static_overrides.iter().chain(&dynamic_overrides).map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Defaults { static_overrides, dynamic_overrides, config })
    }

    /// The effective config of a topic with these overrides.
    pub fn topic_config(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig, StorageError> {
        self.config.with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// What the image says about one partition this broker hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosted {
    pub config: LogConfig,
    pub assignment: Assignment,
    /// Whether its topic lists it for this broker's leader and follower replication throttles.
    pub throttled: (bool, bool),
}

pub struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    defaults: RwLock<Defaults>,
    throttles: Arc<ReplicationThrottles>,
}

impl ReplicaManager {
    /// Opens the logs in the log directory with the broker defaults; the publisher then gives each its
    /// topic's config and leadership.
    pub fn open(node_id: i32, mut logs_config: LogManagerConfig, defaults: Defaults) -> Result<ReplicaManager, StorageError> {
        logs_config.default_config = defaults.config.clone();
        let logs = LogManager::open(logs_config)?;
        let throttles = Arc::default();
        Ok(ReplicaManager { node_id, logs, partitions: RwLock::new(HashMap::new()), defaults: RwLock::new(defaults), throttles })
    }

    /// The replication throttles of this broker (shared with the replica fetchers).
    pub fn throttles(&self) -> &Arc<ReplicationThrottles> {
        &self.throttles
    }

    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// A partition this broker hosts and leads.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.hosted(topic, partition).filter(|p| p.is_leader())
    }

    /// A partition this broker hosts, as leader or follower.
    pub fn hosted(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let tp = TopicPartition { topic: topic.to_string(), partition };
        self.partitions.read().unwrap().get(&tp).cloned()
    }

    /// Every partition this broker leads.
    pub fn leaders(&self) -> Vec<Arc<Partition>> {
        self.all().into_iter().filter(|p| p.is_leader()).collect()
    }

    /// Every partition this broker hosts.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().unwrap().values().cloned().collect()
    }

    pub fn defaults(&self) -> Defaults {
        self.defaults.read().unwrap().clone()
    }

    pub fn set_defaults(&self, defaults: Defaults) {
        *self.defaults.write().unwrap() = defaults;
    }

    /// Hosts exactly `wanted` (by partition): creates missing logs, updates configs and leadership, and, when
    /// `delete_others` (this broker has caught up with the metadata log, so `wanted` is complete), deletes
    /// the logs of partitions it no longer hosts, except those `keep` says are not for it to decide.
    pub fn host(
        &self,
        wanted: &HashMap<TopicPartition, Hosted>,
        delete_others: bool,
        keep: &dyn Fn(&TopicPartition) -> bool,
    ) -> Result<(), StorageError> {
        let mut partitions = self.partitions.write().unwrap();
        for (tp, h) in wanted {
            let part = match partitions.get(tp) {
                Some(p) => {
                    if *p.log.config() != h.config {
                        p.log.update_config(h.config.clone());
                    }
                    p.clone()
                }
                None => {
                    let log = self.logs.get_or_create(tp, h.config.clone())?;
                    if *log.config() != h.config {
                        log.update_config(h.config.clone());
                    }
                    let p = Arc::new(Partition::new(log, self.node_id, h.assignment.clone()));
                    p.set_throttled(h.throttled);
                    partitions.insert(tp.clone(), p.clone());
                    tracing::info!(partition = %tp, leader = h.assignment.leader, "hosting partition");
                    continue;
                }
            };
            part.update(h.assignment.clone());
            part.set_throttled(h.throttled);
        }
        let gone: Vec<TopicPartition> = partitions.keys().filter(|tp| !wanted.contains_key(*tp)).cloned().collect();
        for tp in gone {
            if let Some(p) = partitions.remove(&tp) {
                // Requests still holding it (acks=all produces waiting for the high watermark, follower fetches)
                // learn at once that this broker no longer leads it.
                p.update(Assignment { leader: NO_LEADER, ..p.assignment() });
            }
            self.logs.delete(&tp)?;
            tracing::info!(partition = %tp, "deleted the log of a partition this broker no longer hosts");
        }
        if delete_others {
            for log in self.logs.logs() {
                let tp = log.topic_partition();
                if !wanted.contains_key(tp) && !keep(tp) {
                    tracing::warn!(partition = %tp, "deleting the log of a deleted topic or of another broker's partition");
                    self.logs.delete(tp)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted(leader: bool) -> Hosted {
        let assignment = Assignment {
            topic_id: uuid::Uuid::nil(),
            replicas: vec![0, 1],
            isr: vec![0, 1],
            leader: if leader { 0 } else { 1 },
            leader_epoch: 1,
            partition_epoch: 0,
        };
        Hosted { config: LogConfig::default(), assignment, throttled: (false, false) }
    }

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition { topic: t.into(), partition: p }
    }

    #[test]
    fn hosts_what_it_is_given_and_deletes_the_rest_once_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            ReplicaManager::open(0, LogManagerConfig::new(dir.path()), Defaults::new(BTreeMap::new(), BTreeMap::new()).unwrap())
                .unwrap()
        };
        let rm = open();
        let keep = |tp: &TopicPartition| tp.topic == "kept";
        rm.host(&HashMap::from([(tp("t", 0), hosted(true)), (tp("t", 1), hosted(false))]), true, &keep).unwrap();
        rm.log_manager().get_or_create(&tp("kept", 0), LogConfig::default()).unwrap();
        assert!(rm.partition("t", 0).is_some());
        assert!(rm.partition("t", 1).is_none(), "hosted but not led");
        rm.log_manager().shutdown().unwrap();
        drop(rm);
        let rm = open();
        // Not caught up: an incomplete view deletes nothing.
        rm.host(&HashMap::new(), false, &keep).unwrap();
        assert_eq!(rm.log_manager().logs().len(), 3);
        rm.host(&HashMap::from([(tp("t", 0), hosted(true))]), true, &keep).unwrap();
        assert_eq!(rm.log_manager().logs().len(), 2);
        let led = rm.partition("t", 0).unwrap();
        rm.host(&HashMap::new(), true, &keep).unwrap();
        assert_eq!(rm.log_manager().logs().len(), 1, "kept");
        rm.host(&HashMap::new(), true, &|_| false).unwrap();
        assert!(rm.log_manager().logs().is_empty());
        // Whoever still holds a partition this broker no longer hosts (deleted, reassigned away) sees it led by nobody.
        assert!(!led.is_leader());
    }
}
