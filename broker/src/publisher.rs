//! Applies each new metadata image to this broker, as Kafka's metadata publishers do: the replica manager
//! hosts the partitions the image assigns here (with their configs, replicas, ISR and leadership), the
//! replica fetchers follow the leaders of the others, the broker-level dynamic defaults follow the image,
//! and the group coordinator coordinates the groups of the `__consumer_offsets` partitions this broker leads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use strata_storage::TopicPartition;
use tokio::sync::watch;

use crate::controller::image::{Image, PartitionImage, TopicImage, NO_LEADER};
use crate::controller::state_machine::Published;
use crate::fetcher::{FetcherManager, Target};
use crate::group::{is_internal_topic, GroupCoordinator, OFFSETS_TOPIC};
use crate::partition::{Assignment, Partition};
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

/// What becomes of this broker's local `__consumer_offsets` log of an earlier release (which kept it for itself,
/// unreplicated) the first time it applies an image with the replicated topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFate {
    /// It becomes the partition's history: this broker leads the partition at epoch 0 (the topic was just
    /// created, with this broker first when it coordinated the partition's groups then), so every other
    /// replica copies this log and nothing else has been written to the partition.
    Adopt,
    /// Deleted before the partition is hosted: this replica then copies the leader's log. Keeping it would let
    /// a follower hold two histories (its own records below the leader's, at the same epoch 0) unnoticed.
    Discard,
}

/// The rule for [`LegacyFate`]: adopt only as the epoch-0 leader, and only if the groups are in the same
/// partitions (the earlier release's partition count is the topic's).
pub fn legacy_offsets_fate(node_id: i32, same_count: bool, part: Option<&PartitionImage>) -> LegacyFate {
    match part {
        Some(p) if same_count && p.leader == node_id && p.leader_epoch == 0 && p.replicas.contains(&node_id) => LegacyFate::Adopt,
        _ => LegacyFate::Discard,
    }
}

/// Of those, the overrides of the log defaults (all but the replication throttle rates and
/// default.replication.factor).
pub fn dynamic_overrides(image: &Image, node_id: i32) -> BTreeMap<String, String> {
    let mut out = dynamic_configs(image, node_id);
    out.retain(|k, _| !crate::controller::decisions::is_broker_setting(k));
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
        let mut hosted = hosted(image, self.node_id, &defaults);
        let offsets = image.topic(OFFSETS_TOPIC);
        if let (Some(topic), Some(count)) = (offsets, self.groups.legacy_partitions()) {
            if !self.resolve_legacy_offsets(topic, count) {
                // Never host a partition over a log that should have gone: the next image tries again.
                hosted.retain(|tp, _| tp.topic != OFFSETS_TOPIC);
            }
        }
        // Before the topic exists, an earlier release's offsets logs wait for it.
        let keep = |tp: &TopicPartition| is_internal_topic(&tp.topic) && offsets.is_none();
        if let Err(e) = self.replicas.host(&hosted, caught_up, &keep) {
            tracing::error!(error = %e, "applying the metadata image to the logs");
        }
        self.fetchers.assign(fetch_targets(image, &hosted, &self.replicas, self.node_id, &self.inter_broker_listener));
        if let Some(topic) = offsets {
            let led: HashMap<i32, Arc<Partition>> = (0..topic.partition_count())
                .filter_map(|p| self.replicas.partition(OFFSETS_TOPIC, p).map(|part| (p, part)))
                .collect();
            self.groups.follow(topic.partition_count(), &led, crate::group::coordinator::now_ms());
        }
        self.acted.send_if_modified(|a| {
            let newer = published.applied > *a;
            *a = (*a).max(published.applied);
            newer
        });
    }

    /// Adopts or deletes each local offsets log of an earlier release ([`legacy_offsets_fate`]), then forgets
    /// them; false if a log could not be deleted.
    fn resolve_legacy_offsets(&self, topic: &TopicImage, legacy_count: i32) -> bool {
        let logs = self.replicas.log_manager();
        for log in logs.logs().into_iter().filter(|l| l.topic_partition().topic == OFFSETS_TOPIC) {
            let tp = log.topic_partition().clone();
            let part = topic.partitions.get(tp.partition as usize);
            let fate = legacy_offsets_fate(self.node_id, legacy_count == topic.partition_count(), part);
            tracing::warn!(partition = %tp, ?fate, end = log.log_end_offset(), "resolving an earlier release's local offsets log");
            if fate == LegacyFate::Discard {
                drop(log);
                if let Err(e) = logs.delete(&tp) {
                    tracing::error!(partition = %tp, error = %e, "deleting an earlier release's offsets log");
                    return false;
                }
            }
        }
        if let Err(e) = self.groups.forget_legacy() {
            tracing::error!(error = %e, "forgetting the earlier release's offsets logs");
        }
        true
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

    #[test]
    fn only_the_epoch_zero_leader_adopts_an_earlier_releases_offsets_log() {
        let part = |leader, leader_epoch| PartitionImage {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch,
            partition_epoch: 0,
            adding: vec![],
            removing: vec![],
        };
        // (node, same partition count, partition) -> fate
        let cases = [
            (1, true, Some(part(1, 0)), LegacyFate::Adopt),
            // A follower: it copies the leader's log instead.
            (2, true, Some(part(1, 0)), LegacyFate::Discard),
            // Another leader was elected since (the first one failed): it may have written already.
            (1, true, Some(part(1, 1)), LegacyFate::Discard),
            (2, true, Some(part(2, 1)), LegacyFate::Discard),
            // Groups would be in other partitions.
            (1, false, Some(part(1, 0)), LegacyFate::Discard),
            // Not a replica (or no such partition).
            (4, true, Some(part(4, 0)), LegacyFate::Discard),
            (1, true, None, LegacyFate::Discard),
        ];
        for (node, same, p, want) in cases {
            assert_eq!(legacy_offsets_fate(node, same, p.as_ref()), want, "node {node} {p:?}");
        }
    }
}
