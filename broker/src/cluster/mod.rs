//! Several brokers as one cluster, without replication: every partition has one replica, its leader, on the
//! broker it is assigned to; every broker knows every topic and its assignment, so any of them answers
//! Metadata for the whole cluster.
//!
//! One broker decides topic metadata: the controller, the lowest id in the membership. Topic changes
//! (create, delete, add partitions, alter configs) are made there (other brokers forward clients' requests
//! to it) and pushed to the other brokers. A broker that missed a push (down, restarted, new, or with an
//! empty disk) catches up by comparing its metadata with its peers' (anti-entropy, [`sync`]); deleted topic
//! ids are remembered so that no peer brings a deleted topic back. All of it speaks the Kafka protocol, so a
//! real controller quorum (KRaft) and replication can take the place of this module later without changing
//! the handlers' view: [`Cluster::role`] says who decides, the replica manager holds the result.

pub mod assignment;
pub mod membership;
pub mod merge;
pub mod peer;
pub mod push;
pub mod sync;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::BrokerConfig;
use crate::topics::{self, MetaError};
use membership::{BrokerAddr, Membership};

/// Where the value of `cluster.brokers` set at run time is kept.
const DYNAMIC_BROKERS_FILE: &str = "cluster-brokers.json";

/// Requests to peers give up after this long; a peer that does not answer catches up later.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// Who handles a topic change that reached this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No other brokers: this one decides and tells nobody.
    Alone,
    /// Metadata a peer handed over: applied as is.
    Apply,
    /// This broker is the controller: it decides, then pushes the result to these peers.
    Controller(Vec<BrokerAddr>),
    /// Passed on to the controller, whose answer goes back to the client.
    Forward(BrokerAddr),
    /// A forwarded request reached a broker that is not the controller (membership is changing): refused
    /// rather than passed on again; the client retries.
    NotController(i32),
}

pub struct Cluster {
    node_id: i32,
    has_cluster_id: bool,
    static_brokers: Membership,
    dynamic_brokers: RwLock<Option<Membership>>,
    path: PathBuf,
    /// Wakes the anti-entropy loop at once (the membership changed).
    wake: Notify,
    /// Counts membership changes; starts at 1.
    version: AtomicU64,
    /// The membership version of the last completed anti-entropy round: this broker has compared its metadata
    /// with every peer of that membership.
    synced: watch::Sender<u64>,
    sync_interval: Duration,
    /// Topics whose automatic creation is under way, so repeated Metadata requests ask the controller once.
    auto_creating: Mutex<HashSet<String>>,
}

impl Cluster {
    /// Loads the membership set at run time, if any, from the data directory.
    pub fn open(config: &BrokerConfig) -> Result<Cluster, MetaError> {
        let path = config.log_dir.join(DYNAMIC_BROKERS_FILE);
        let has_cluster_id = config.cluster_id.is_some();
        let dynamic = match topics::load_json::<Option<String>>(&path)?.flatten() {
            None => None,
            Some(v) => match Membership::parse(&v).and_then(|m| m.validate(config.node_id, has_cluster_id).map(|()| m)) {
                Ok(m) => Some(m),
                // The static settings changed since (e.g. cluster.id removed): fall back to them.
                Err(e) => {
                    tracing::warn!(value = %v, error = %e, "ignoring the stored cluster.brokers");
                    None
                }
            },
        };
        Ok(Cluster {
            node_id: config.node_id,
            has_cluster_id,
            static_brokers: config.cluster_brokers.clone(),
            dynamic_brokers: RwLock::new(dynamic),
            path,
            wake: Notify::new(),
            version: AtomicU64::new(1),
            synced: watch::channel(0).0,
            sync_interval: config.cluster_sync_interval,
            auto_creating: Mutex::new(HashSet::new()),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The membership in effect: the one set at run time, else the configured one.
    pub fn membership(&self) -> Membership {
        self.versioned_membership().1
    }

    /// The membership in effect with its version, read together (both change under the same lock).
    pub fn versioned_membership(&self) -> (u64, Membership) {
        let dynamic = self.dynamic_brokers.read().unwrap();
        (self.version(), dynamic.clone().unwrap_or_else(|| self.static_brokers.clone()))
    }

    /// (value, set at run time?) of `cluster.brokers`, for DescribeConfigs.
    pub fn brokers_setting(&self) -> (String, bool) {
        match &*self.dynamic_brokers.read().unwrap() {
            Some(m) => (m.to_string(), true),
            None => (self.static_brokers.to_string(), false),
        }
    }

    /// Sets (`Some`) or removes (`None`: back to the configured value) `cluster.brokers` at run time; stored,
    /// so a restart keeps it.
    pub fn set_dynamic_brokers(&self, value: Option<&str>, validate_only: bool) -> Result<(), String> {
        let parsed = value.map(Membership::parse).transpose()?;
        if let Some(m) = &parsed {
            m.validate(self.node_id, self.has_cluster_id)?;
        }
        if validate_only {
            return Ok(());
        }
        let mut dynamic = self.dynamic_brokers.write().unwrap();
        let stored = parsed.as_ref().map(ToString::to_string);
        topics::save_json(&self.path, &stored).map_err(|e| e.to_string())?;
        if *dynamic != parsed {
            tracing::info!(brokers = %stored.as_deref().unwrap_or("(configured value)"), "cluster membership changed");
            *dynamic = parsed;
            self.version.fetch_add(1, Ordering::SeqCst);
            self.wake.notify_one();
        }
        Ok(())
    }

    pub fn controller_id(&self) -> i32 {
        self.membership().controller(self.node_id)
    }

    /// Who handles a topic change from a client with `client_id`.
    pub fn role(&self, client_id: Option<&str>) -> Role {
        if client_id == Some(peer::PEER_CLIENT_ID) {
            return Role::Apply;
        }
        let membership = self.membership();
        let peers = membership.peers(self.node_id);
        let controller = membership.controller(self.node_id);
        match membership.get(controller) {
            _ if peers.is_empty() => Role::Alone,
            _ if controller == self.node_id => Role::Controller(peers),
            _ if client_id == Some(peer::FORWARD_CLIENT_ID) => Role::NotController(controller),
            Some(addr) => Role::Forward(addr.clone()),
            None => Role::NotController(controller),
        }
    }

    /// Counts membership changes (starts at 1): what a round that starts now, or a view of the membership
    /// taken now, works with.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Waits (up to `timeout`) until this broker has compared its metadata with every peer of the current
    /// membership, so that a controller restarted with an empty disk, or one that just learned its peers,
    /// knows the existing topics before it decides anything.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let wanted = self.version();
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s >= wanted)).await.is_ok_and(|r| r.is_ok())
    }

    /// Records a completed round that started at membership `version`.
    fn mark_synced(&self, version: u64) {
        self.synced.send_if_modified(|s| {
            let newer = version > *s;
            *s = (*s).max(version);
            newer
        });
    }

    /// Claims the automatic creation of `topic`; false if it is already under way.
    pub fn begin_auto_create(&self, topic: &str) -> bool {
        self.auto_creating.lock().unwrap().insert(topic.to_string())
    }

    pub fn end_auto_create(&self, topic: &str) {
        self.auto_creating.lock().unwrap().remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cluster(dir: &Path, pairs: &[(&str, &str)]) -> Cluster {
        let dir_str = dir.to_str().unwrap();
        let mut all = vec![("log.dirs", dir_str)];
        all.extend_from_slice(pairs);
        Cluster::open(&BrokerConfig::from_pairs(all).unwrap()).unwrap()
    }

    #[test]
    fn roles_follow_the_membership() {
        let dir = tempfile::tempdir().unwrap();
        let three = "0@a:1,1@b:1,2@c:1";
        let c = cluster(dir.path(), &[("node.id", "1"), ("cluster.id", "x")]);
        assert_eq!(c.role(None), Role::Alone);
        assert_eq!(c.role(Some(peer::PEER_CLIENT_ID)), Role::Apply);
        c.set_dynamic_brokers(Some(three), false).unwrap();
        assert_eq!(c.role(Some("rdkafka")), Role::Forward(BrokerAddr { id: 0, host: "a".into(), port: 1 }));
        assert_eq!(c.role(Some(peer::FORWARD_CLIENT_ID)), Role::NotController(0));
        c.set_dynamic_brokers(Some("1@b:1,2@c:1"), false).unwrap();
        assert!(matches!(c.role(None), Role::Controller(peers) if peers.len() == 1));
        assert_eq!(c.controller_id(), 1);
    }

    #[test]
    fn run_time_membership_is_validated_stored_and_removable() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path(), &[("node.id", "1"), ("cluster.id", "x"), ("cluster.brokers", "1@b:1")]);
        assert!(c.set_dynamic_brokers(Some("0@a:1"), false).unwrap_err().contains("node.id 1"));
        assert!(c.set_dynamic_brokers(Some("garbage"), false).is_err());
        c.set_dynamic_brokers(Some("0@a:1,1@b:1"), true).unwrap();
        assert_eq!(c.brokers_setting(), ("1@b:1".to_string(), false), "validate_only changes nothing");
        c.set_dynamic_brokers(Some("1@b:1, 0@a:1"), false).unwrap();
        assert_eq!(c.brokers_setting(), ("0@a:1,1@b:1".to_string(), true));
        let reopened = cluster(dir.path(), &[("node.id", "1"), ("cluster.id", "x"), ("cluster.brokers", "1@b:1")]);
        assert_eq!(reopened.membership().ids(1), vec![0, 1]);
        reopened.set_dynamic_brokers(None, false).unwrap();
        assert_eq!(reopened.brokers_setting(), ("1@b:1".to_string(), false));
        let again = cluster(dir.path(), &[("node.id", "1"), ("cluster.id", "x"), ("cluster.brokers", "1@b:1")]);
        assert_eq!(again.membership().ids(1), vec![1]);
        // Without a cluster.id, a stored membership with peers is ignored rather than fatal.
        c.set_dynamic_brokers(Some("0@a:1,1@b:1"), false).unwrap();
        let no_id = cluster(dir.path(), &[("node.id", "1")]);
        assert_eq!(no_id.membership().ids(1), vec![1]);
        assert!(no_id.set_dynamic_brokers(Some("0@a:1,1@b:1"), false).unwrap_err().contains("cluster.id"));
    }

    #[tokio::test]
    async fn synced_means_with_the_current_membership() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(dir.path(), &[("cluster.id", "x")]);
        assert!(!c.wait_synced(Duration::from_millis(20)).await);
        let round = c.version();
        c.mark_synced(round);
        assert!(c.wait_synced(Duration::from_millis(20)).await);
        // New peers: not synced until a round that started after the change completes.
        c.set_dynamic_brokers(Some("0@a:1,1@b:1"), false).unwrap();
        c.mark_synced(round);
        assert!(!c.wait_synced(Duration::from_millis(20)).await);
        c.mark_synced(c.version());
        assert!(c.wait_synced(Duration::from_millis(20)).await);
        assert!(c.begin_auto_create("t") && !c.begin_auto_create("t"));
        c.end_auto_create("t");
        assert!(c.begin_auto_create("t"));
    }
}
