//! Anti-entropy: at start, when the membership changes and then periodically, a broker asks each peer for
//! its topics (Metadata) and reconciles them with its own ([`merge`]): it adopts topics and partitions it
//! lacks (with their config overrides, from DescribeConfigs), tells a peer to delete topics it knows were
//! deleted, and takes the controller's config overrides where its own drifted (a missed push).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::{
    describe_configs_request, ApiKey, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use super::membership::BrokerAddr;
use super::merge::{merge, Action, TopicView};
use super::{peer, push, PEER_TIMEOUT};
use crate::broker::BrokerState;
use crate::replica::{AdminError, ReplicaManager};
use crate::server::stopped;
use crate::topics::TopicMeta;

const METADATA_VERSION: i16 = 12;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const TOPIC_RESOURCE: i8 = 2;
/// Kafka's ConfigSource of a topic override.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

/// Runs until shutdown.
pub async fn run(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let cluster = &state.cluster;
    // Peers that failed last time, so an unreachable peer is reported once, not every round.
    let mut failing: HashSet<i32> = HashSet::new();
    loop {
        // The group coordinator also follows the membership from each group request; this covers a broker
        // that gets none (its ListGroups and lag metrics must drop the groups that moved away).
        state.groups.follow(cluster);
        let version = cluster.version();
        let membership = cluster.membership();
        let controller = membership.controller(cluster.node_id());
        for p in membership.peers(cluster.node_id()) {
            let result = tokio::select! {
                r = sync_with(&state, &p, p.id == controller) => r,
                _ = stopped(&mut shutdown) => return,
            };
            match result {
                Ok(()) if failing.remove(&p.id) => tracing::info!(broker = %p, "peer reachable again"),
                Ok(()) => {}
                Err(e) if failing.insert(p.id) => {
                    tracing::warn!(broker = %p, error = %e, "cannot compare topic metadata with a peer")
                }
                Err(e) => tracing::debug!(broker = %p, error = %e, "peer still unreachable"),
            }
        }
        cluster.mark_synced(version);
        tokio::select! {
            _ = tokio::time::sleep(cluster.sync_interval) => {}
            _ = cluster.wake.notified() => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// This broker's topics as peers see them.
pub fn local_views(replicas: &ReplicaManager) -> BTreeMap<String, TopicView> {
    replicas
        .topics()
        .into_iter()
        .map(|t| (t.name.clone(), TopicView { name: t.name, id: t.id, assignment: t.assignment }))
        .collect()
}

/// The topics of a Metadata response; topics whose partitions are not exactly 0..n-1 are left out.
fn remote_views(resp: &MetadataResponse) -> Vec<TopicView> {
    resp.topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let mut partitions: Vec<_> = t.partitions.iter().collect();
            partitions.sort_by_key(|p| p.partition_index);
            let mut assignment = Vec::with_capacity(partitions.len());
            for (i, p) in partitions.into_iter().enumerate() {
                let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
                if p.partition_index != i as i32 || replicas.is_empty() {
                    return None;
                }
                assignment.push(replicas);
            }
            Some(TopicView { name, id: t.topic_id, assignment })
        })
        .collect()
}

/// Applies one reconciliation step; `configs` are the overrides of a topic being created.
pub fn apply(replicas: &ReplicaManager, action: Action, configs: BTreeMap<String, String>) -> Result<(), AdminError> {
    let meta = |t: TopicView| TopicMeta {
        name: t.name,
        id: t.id,
        partitions: t.assignment.len() as i32,
        assignment: t.assignment,
        configs,
    };
    match action {
        Action::Create(t) => {
            let (name, id) = (t.name.clone(), t.id);
            match replicas.create_topic(meta(t), false) {
                // A push and anti-entropy may bring the same topic at once.
                Err(AdminError::TopicExists(_)) if replicas.topic(&name).is_some_and(|m| m.id == id) => Ok(()),
                other => other.map(drop),
            }
        }
        Action::AddPartitions { name, from, assignment } => replicas.add_partitions(&name, from, assignment, false),
        Action::Replace { old_id, topic } => {
            // Only if it is still the topic that was compared.
            if replicas.topic(&topic.name).is_some_and(|m| m.id == old_id) {
                tracing::warn!(topic = %topic.name, old = %old_id, new = %topic.id, "replacing a topic by the controller's of the same name");
                replicas.delete_topic(&topic.name)?;
            }
            replicas.create_topic(meta(topic), false).map(drop)
        }
        Action::DeleteAtPeer { name, id } => Err(AdminError::Deleted { name, id }),
        Action::Conflict { name, local, remote } => Err(AdminError::TopicExists(format!(
            "{name} (id {local} here, {remote} at a peer; the controller's wins when this broker syncs with it)"
        ))),
    }
}

async fn sync_with(state: &BrokerState, peer: &BrokerAddr, authoritative: bool) -> Result<(), String> {
    let addr = peer.socket_addr();
    let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
    let metadata: MetadataResponse =
        peer::call(&addr, ApiKey::Metadata, METADATA_VERSION, peer::PEER_CLIENT_ID, &request, PEER_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
    let theirs = metadata.cluster_id.as_deref().unwrap_or_default();
    if theirs != state.cluster_id {
        return Err(format!("{addr} belongs to cluster {theirs:?}, this broker to {:?}", state.cluster_id));
    }
    let remote = remote_views(&metadata);
    let local = local_views(&state.replicas);
    let actions = merge(&local, &state.replicas.deleted_ids(), &remote, authoritative);

    // Overrides are needed for the topics to create and, from the controller, for every shared topic.
    let mut wanted: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(t) | Action::Replace { topic: t, .. } => Some(t.name.as_str()),
            _ => None,
        })
        .collect();
    if authoritative {
        wanted.extend(remote.iter().filter(|r| local.get(&r.name).is_some_and(|l| l.id == r.id)).map(|r| r.name.as_str()));
    }
    let overrides = if wanted.is_empty() { HashMap::new() } else { topic_overrides(&addr, &wanted).await? };

    let mut deleted_there = Vec::new();
    for action in actions {
        let name = match &action {
            Action::Create(t) | Action::Replace { topic: t, .. } => t.name.clone(),
            Action::DeleteAtPeer { name, id } => {
                deleted_there.push((name.clone(), *id));
                continue;
            }
            Action::AddPartitions { name, .. } | Action::Conflict { name, .. } => name.clone(),
        };
        let configs = overrides.get(&name).cloned().unwrap_or_default();
        tracing::info!(broker = peer.id, ?action, "adopting topic metadata from a peer");
        if let Err(e) = apply(&state.replicas, action, configs) {
            tracing::warn!(broker = peer.id, topic = %name, error = %e, "could not adopt a peer's topic metadata");
        }
    }
    if authoritative {
        for meta in state.replicas.topics() {
            let Some(theirs) = overrides.get(&meta.name) else { continue };
            if *theirs != meta.configs && remote.iter().any(|r| r.name == meta.name && r.id == meta.id) {
                tracing::info!(topic = %meta.name, configs = ?theirs, "taking the controller's topic configs");
                if let Err(e) = state.replicas.set_topic_configs(&meta.name, theirs.clone(), false) {
                    tracing::warn!(topic = %meta.name, error = %e, "could not take the controller's topic configs");
                }
            }
        }
    }
    if !deleted_there.is_empty() {
        tracing::info!(broker = peer.id, topics = ?deleted_there, "a peer still has deleted topics: telling it");
        let request = push::delete_topics(&deleted_there);
        let resp: DeleteTopicsResponse =
            peer::call(&addr, ApiKey::DeleteTopics, push::DELETE_TOPICS_VERSION, peer::PEER_CLIENT_ID, &request, PEER_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
        for r in resp.responses.iter().filter(|r| r.error_code != 0) {
            tracing::warn!(broker = peer.id, topic = ?r.name, code = r.error_code, "a peer refused to delete a deleted topic");
        }
    }
    Ok(())
}

/// The config overrides of `topics` at `addr`.
async fn topic_overrides(addr: &str, topics: &[&str]) -> Result<HashMap<String, BTreeMap<String, String>>, String> {
    let request = DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(t.to_string()))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let resp: DescribeConfigsResponse =
        peer::call(addr, ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSION, peer::PEER_CLIENT_ID, &request, PEER_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
    Ok(resp
        .results
        .into_iter()
        .filter(|r| r.error_code == 0)
        .map(|r| {
            let overrides = r
                .configs
                .into_iter()
                .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
                .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                .collect();
            (r.resource_name.to_string(), overrides)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{metadata_response, BrokerId, TopicName};
    use uuid::Uuid;

    fn partition(index: i32, replicas: &[i32]) -> metadata_response::MetadataResponsePartition {
        metadata_response::MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(replicas.first().copied().unwrap_or(-1)))
            .with_replica_nodes(replicas.iter().map(|b| BrokerId(*b)).collect())
    }

    fn topic(
        name: &str,
        id: Uuid,
        partitions: Vec<metadata_response::MetadataResponsePartition>,
    ) -> metadata_response::MetadataResponseTopic {
        metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.into()))))
            .with_topic_id(id)
            .with_partitions(partitions)
    }

    #[test]
    fn metadata_becomes_views_and_gaps_are_left_out() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let resp = MetadataResponse::default().with_topics(vec![
            topic("a", a, vec![partition(1, &[2]), partition(0, &[1])]),
            topic("gap", b, vec![partition(0, &[1]), partition(2, &[1])]),
            topic("leaderless", b, vec![partition(0, &[])]),
        ]);
        assert_eq!(remote_views(&resp), vec![TopicView { name: "a".into(), id: a, assignment: vec![vec![1], vec![2]] }]);
    }

    #[test]
    fn actions_apply_to_the_replica_manager() {
        let dir = tempfile::tempdir().unwrap();
        let rm = ReplicaManager::open(strata_storage::LogManagerConfig::new(dir.path()), BTreeMap::new(), 1).unwrap();
        let view = TopicView { name: "t".into(), id: Uuid::new_v4(), assignment: vec![vec![0], vec![1]] };
        let retention = BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]);
        apply(&rm, Action::Create(view.clone()), retention.clone()).unwrap();
        assert_eq!(rm.topic("t").unwrap().configs, retention);
        assert!(rm.partition("t", 1).is_some() && rm.partition("t", 0).is_none());
        apply(&rm, Action::AddPartitions { name: "t".into(), from: 2, assignment: vec![vec![1]] }, BTreeMap::new()).unwrap();
        assert_eq!(rm.topic("t").unwrap().partitions, 3);
        // The controller's topic of the same name replaces ours; ours is remembered as deleted.
        let theirs = TopicView { name: "t".into(), id: Uuid::new_v4(), assignment: vec![vec![1]] };
        apply(&rm, Action::Replace { old_id: view.id, topic: theirs.clone() }, BTreeMap::new()).unwrap();
        assert_eq!(rm.topic("t").unwrap().id, theirs.id);
        assert!(rm.deleted_ids().contains(&view.id));
        assert!(matches!(apply(&rm, Action::Create(view), BTreeMap::new()), Err(AdminError::TopicExists(_))));
        let conflict = Action::Conflict { name: "t".into(), local: theirs.id, remote: Uuid::new_v4() };
        assert!(apply(&rm, conflict, BTreeMap::new()).unwrap_err().to_string().contains("controller"));
    }
}
