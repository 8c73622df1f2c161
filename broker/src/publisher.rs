//! Applies each new metadata image to this broker, as Kafka's metadata publishers do: the replica manager
//! hosts the partitions the image assigns here (with their configs, replicas, ISR and leadership), the
//! replica fetchers follow the leaders of the others, the broker-level dynamic defaults follow the image,
//! and the group coordinator coordinates the groups that the registered brokers give it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strata_storage::TopicPartition;
use tokio::sync::watch;

use crate::controller::image::{Image, NO_LEADER};
use crate::controller::state_machine::Published;
use crate::fetcher::{FetcherManager, Target};
use crate::group::GroupCoordinator;
use crate::partition::Assignment;
use crate::replica::{Defaults, Hosted, ReplicaManager};

/// What the image assigns to `node_id`, with effective configs over `defaults`. A topic whose overrides are
/// invalid under these defaults keeps the defaults (the controller validated them, the defaults changed since).
pub fn hosted(image: &Image, node_id: i32, defaults: &Defaults) -> HashMap<TopicPartition, Hosted> {
    let mut out = HashMap::new();
    for topic in image.topics.values() {
        let config = defaults.topic_config(&topic.configs).unwrap_or_else(|e| {
            tracing::warn!(topic = %topic.name, error = %e, "topic configs invalid under the broker defaults; using the defaults");
            defaults.config.clone()
        });
        for (p, part) in topic.partitions.iter().enumerate() {
            if part.replicas.contains(&node_id) {
                let tp = TopicPartition { topic: topic.name.clone(), partition: p as i32 };
                let assignment = Assignment {
                    topic_id: topic.id,
                    replicas: part.replicas.clone(),
                    isr: part.isr.clone(),
                    leader: part.leader,
                    leader_epoch: part.leader_epoch,
                    partition_epoch: part.partition_epoch,
                };
                let throttled = crate::throttle::throttled(&topic.configs, p as i32, node_id);
                out.insert(tp, Hosted { config: config.clone(), assignment, throttled });
            }
        }
    }
    out
}

/// The partitions this broker follows, with their leaders' addresses on `listener`.
fn fetch_targets(
    image: &Image,
    hosted: &HashMap<TopicPartition, Hosted>,
    replicas: &ReplicaManager,
    node_id: i32,
    listener: &str,
) -> Vec<Target> {
    let mut out = Vec::new();
    for (tp, h) in hosted {
        let a = &h.assignment;
        if a.leader == node_id || a.leader == NO_LEADER {
            continue;
        }
        let Some(endpoint) = image.brokers.get(&a.leader).and_then(|b| b.endpoint(listener)) else { continue };
        let Some(partition) = replicas.hosted(&tp.topic, tp.partition) else { continue };
        out.push(Target {
            partition,
            leader: a.leader,
            leader_addr: crate::controller::quorum::host_port(&endpoint.host, endpoint.port),
            leader_epoch: a.leader_epoch,
        });
    }
    out
}

/// The dynamic broker-level configs that apply to `node_id`: the cluster-wide ones, then its own.
pub fn dynamic_configs(image: &Image, node_id: i32) -> BTreeMap<String, String> {
    let mut out = image.broker_configs.get("").cloned().unwrap_or_default();
    out.extend(image.broker_configs.get(&node_id.to_string()).cloned().unwrap_or_default());
    out
}

/// Of those, the overrides of the log defaults (all but the replication throttle rates).
pub fn dynamic_overrides(image: &Image, node_id: i32) -> BTreeMap<String, String> {
    let mut out = dynamic_configs(image, node_id);
    out.retain(|k, _| !crate::throttle::RATE_KEYS.contains(&k.as_str()));
    out
}

/// The narrow handles the publisher needs.
pub struct Publisher {
    pub node_id: i32,
    pub replicas: Arc<ReplicaManager>,
    pub groups: Arc<GroupCoordinator>,
    pub fetchers: Arc<FetcherManager>,
    /// The listener followers reach leaders on.
    pub inter_broker_listener: String,
    /// True once this broker has caught up with the metadata log (its image is complete).
    pub caught_up: watch::Receiver<bool>,
    /// Where it reports the index of the image it acted on.
    pub acted: std::sync::Arc<watch::Sender<u64>>,
}

impl Publisher {
    /// Applies one image.
    pub fn publish(&self, published: &Published) {
        let image = &published.image;
        self.replicas.throttles().configure(&dynamic_configs(image, self.node_id));
        let old = self.replicas.defaults();
        let dynamic = dynamic_overrides(image, self.node_id);
        let defaults = if dynamic == old.dynamic_overrides {
            old
        } else {
            match Defaults::new(old.static_overrides.clone(), dynamic) {
                Ok(d) => {
                    self.replicas.set_defaults(d.clone());
                    d
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dynamic broker configs invalid with this broker's static ones; keeping the old");
                    old
                }
            }
        };
        let caught_up = *self.caught_up.borrow();
        let hosted = hosted(image, self.node_id, &defaults);
        if let Err(e) = self.replicas.host(&hosted, caught_up) {
            tracing::error!(error = %e, "applying the metadata image to the logs");
        }
        self.fetchers.assign(fetch_targets(image, &hosted, &self.replicas, self.node_id, &self.inter_broker_listener));
        let brokers: Vec<i32> = image.brokers.keys().copied().collect();
        self.groups.set_membership(published.applied, &brokers, self.node_id);
        self.acted.send_if_modified(|a| {
            let newer = published.applied > *a;
            *a = (*a).max(published.applied);
            newer
        });
    }

    /// Publishes every new image until `shutdown`.
    pub async fn run(self, mut images: watch::Receiver<Published>, mut shutdown: watch::Receiver<bool>) {
        let mut caught_up = self.caught_up.clone();
        loop {
            let published = images.borrow_and_update().clone();
            self.publish(&published);
            tokio::select! {
                r = images.changed() => if r.is_err() { return },
                r = caught_up.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{MetadataBatch, MetadataRecord};
    use uuid::Uuid;

    #[test]
    fn this_brokers_partitions_with_their_configs_and_leaders() {
        let mut image = Image::default();
        let id = Uuid::from_u128(1);
        let configs =
            BTreeMap::from([("retention.ms".into(), "5".into()), (crate::throttle::FOLLOWER_REPLICAS.into(), "0:1".into())]);
        let mut records = vec![MetadataRecord::Topic { id, name: "t".into(), configs }];
        for (p, (replica, leader)) in [(1, 1), (0, 0), (1, -1)].into_iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: p as i32,
                replicas: vec![replica],
                isr: vec![replica],
                leader,
                leader_epoch: 3,
                partition_epoch: 0,
            });
        }
        records.push(MetadataRecord::BrokerConfig { resource: "".into(), configs: BTreeMap::from([("a".into(), "all".into())]) });
        records.push(MetadataRecord::BrokerConfig {
            resource: "1".into(),
            configs: BTreeMap::from([
                ("a".into(), "one".into()),
                ("b".into(), "x".into()),
                (crate::throttle::LEADER_RATE.into(), "100".into()),
            ]),
        });
        image.apply(1, &MetadataBatch::new(records)).unwrap();
        let defaults = Defaults::new(BTreeMap::new(), BTreeMap::new()).unwrap();
        let h = hosted(&image, 1, &defaults);
        let mut got: Vec<(i32, i32)> = h.iter().map(|(tp, h)| (tp.partition, h.assignment.leader)).collect();
        got.sort();
        assert_eq!(got, vec![(0, 1), (2, -1)]);
        assert!(h.values().all(|h| h.config.retention_ms == 5 && h.assignment.leader_epoch == 3));
        let throttled: Vec<(i32, (bool, bool))> = {
            let mut t: Vec<_> = h.iter().map(|(tp, h)| (tp.partition, h.throttled)).collect();
            t.sort();
            t
        };
        assert_eq!(throttled, vec![(0, (false, true)), (2, (false, false))]);
        assert_eq!(dynamic_overrides(&image, 1), BTreeMap::from([("a".into(), "one".into()), ("b".into(), "x".into())]));
        assert_eq!(dynamic_overrides(&image, 0), BTreeMap::from([("a".into(), "all".into())]));
        assert_eq!(dynamic_configs(&image, 1).len(), 3, "the throttle rate is not a log default");
    }
}
