//! Consumer lag of the groups this broker coordinates: a committed partition's high watermark minus the
//! committed offset. Only a partition's leader knows its high watermark, so a background loop ([`run`]) asks
//! each peer that leads committed partitions for theirs (one ListOffsets per peer and round) and caches the
//! answers ([`RemoteHighWatermarks`]); a scrape reads the local logs and that cache, never waiting for a peer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{list_offsets_request, ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_storage::TopicPartition;
use tokio::sync::watch;

use super::GroupCoordinator;
use crate::broker::BrokerState;
use crate::server::stopped;

/// How this broker introduces itself to the brokers it asks for high watermarks.
const PEER_CLIENT_ID: &str = "strata-peer";
/// Requests to peers give up after this long.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// A cached high watermark older than this many refresh intervals is not exported: its peer stopped
/// answering, and no series is better than a wrong one.
const STALE_AFTER_ROUNDS: u32 = 3;
const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets' timestamp for the latest offset (the high watermark, read uncommitted).
const LATEST: i64 = -1;
/// ListOffsets' replica id of a client that is not a follower.
const CONSUMER_REPLICA_ID: i32 = -1;

/// (group, partition, committed offset) of every offset committed to the groups this broker coordinates.
pub fn committed(groups: &GroupCoordinator) -> Vec<(String, TopicPartition, i64)> {
    let mut out = Vec::new();
    for listing in groups.list_groups() {
        // A group that moved away since it was listed has no offsets here any more.
        let Ok(offsets) = groups.offsets_now(&listing.group_id) else { continue };
        out.extend(offsets.into_iter().filter_map(|(tp, c)| Some((listing.group_id.clone(), tp, c?.offset))));
    }
    out
}

/// Lag of an offset committed for a partition whose high watermark is `high_watermark`; an offset committed
/// beyond it (allowed: commits are not checked against the log) counts as caught up.
pub fn lag(committed: i64, high_watermark: i64) -> i64 {
    high_watermark.saturating_sub(committed).max(0)
}

/// The partitions of `committed` that a peer leads, by leader. `leader` names a partition's leader (None for a
/// partition the cluster does not know); those led by `node_id` are read from the local logs instead.
pub fn remote_by_leader<'a>(
    committed: impl IntoIterator<Item = &'a TopicPartition>,
    leader: impl Fn(&TopicPartition) -> Option<i32>,
    node_id: i32,
) -> BTreeMap<i32, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<i32, BTreeSet<TopicPartition>> = BTreeMap::new();
    for tp in committed {
        if let Some(l) = leader(tp).filter(|l| *l != node_id) {
            out.entry(l).or_default().insert(tp.clone());
        }
    }
    out
}

/// One ListOffsets request for the latest offset of each of `partitions`.
fn latest_offsets_request(partitions: &BTreeSet<TopicPartition>) -> ListOffsetsRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let latest = |p: i32| list_offsets_request::ListOffsetsPartition::default().with_partition_index(p).with_timestamp(LATEST);
    ListOffsetsRequest::default().with_replica_id(BrokerId(CONSUMER_REPLICA_ID)).with_topics(
        by_topic
            .into_iter()
            .map(|(topic, ps)| {
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(ps.into_iter().map(latest).collect())
            })
            .collect(),
    )
}

/// The high watermarks a ListOffsets response gives; partitions answered with an error are left out.
fn high_watermarks(resp: ListOffsetsResponse) -> Vec<(TopicPartition, i64)> {
    resp.topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.error_code == 0 && p.offset >= 0)
                .map(move |p| (TopicPartition::new(topic.clone(), p.partition_index), p.offset))
        })
        .collect()
}

/// High watermarks of partitions that peers lead, as last asked.
pub struct RemoteHighWatermarks {
    /// How often they are asked for.
    pub refresh: Duration,
    /// (high watermark, when it was asked for) by partition.
    cache: Mutex<HashMap<TopicPartition, (i64, Instant)>>,
}

impl RemoteHighWatermarks {
    pub fn new(refresh: Duration) -> RemoteHighWatermarks {
        RemoteHighWatermarks { refresh, cache: Mutex::new(HashMap::new()) }
    }

    /// The cached high watermark of `tp`, unless it is stale at `now`.
    pub fn get(&self, tp: &TopicPartition, now: Instant) -> Option<i64> {
        let (hw, asked) = *self.cache.lock().expect("high watermark cache lock").get(tp)?;
        (now.saturating_duration_since(asked) <= self.refresh * STALE_AFTER_ROUNDS).then_some(hw)
    }

    /// Records answers to a request sent at `asked` (the high watermarks were at least these then).
    fn store(&self, asked: Instant, answers: Vec<(TopicPartition, i64)>) {
        let mut cache = self.cache.lock().expect("high watermark cache lock");
        for (tp, hw) in answers {
            cache.insert(tp, (hw, asked));
        }
    }

    /// Forgets the partitions no longer `wanted` (offsets deleted, group moved away, topic deleted), so the
    /// cache stays bounded by what is committed.
    fn retain(&self, wanted: &BTreeMap<i32, BTreeSet<TopicPartition>>) {
        self.cache.lock().expect("high watermark cache lock").retain(|tp, _| wanted.values().any(|tps| tps.contains(tp)));
    }
}

/// Asks the leaders of committed partitions for their high watermarks every refresh interval, until shutdown.
pub async fn run(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = refresh(&state) => {}
            _ = stopped(&mut shutdown) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(state.remote_high_watermarks.refresh) => {}
            _ = stopped(&mut shutdown) => return,
        }
    }
}

/// One round: a request to each leading peer, all at once; a peer that does not answer keeps its old values
/// until they go stale.
async fn refresh(state: &BrokerState) {
    let cache = &state.remote_high_watermarks;
    let image = state.image();
    let leaders: HashMap<String, Vec<i32>> =
        image.topics.values().map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.leader).collect())).collect();
    let leader =
        |tp: &TopicPartition| leaders.get(&tp.topic)?.get(usize::try_from(tp.partition).ok()?).copied().filter(|l| *l >= 0);
    let committed = committed(&state.groups);
    let wanted = remote_by_leader(committed.iter().map(|(_, tp, _)| tp), leader, state.config.node_id);
    cache.retain(&wanted);
    // An answer that takes longer than two rounds would be nearly stale when it arrives.
    let timeout = PEER_TIMEOUT.min(cache.refresh * 2);
    let asks = wanted.iter().filter_map(|(id, partitions)| {
        let b = image.brokers.get(id)?;
        let e = b.endpoint(&state.config.inter_broker_listener)?;
        let addr = crate::controller::quorum::host_port(&e.host, e.port);
        Some(async move {
            let asked = Instant::now();
            let request = latest_offsets_request(partitions);
            let ask = async {
                let mut c = state.dialers.inter_broker.connect(&addr, PEER_CLIENT_ID, timeout).await?;
                c.call(ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request).await
            };
            match tokio::time::timeout(timeout, ask).await {
                Ok(Ok(resp)) => cache.store(asked, high_watermarks(resp)),
                Ok(Err(e)) => tracing::debug!(broker = id, error = %e, "cannot ask a peer for high watermarks"),
                Err(_) => tracing::debug!(broker = id, "a peer did not give its high watermarks within {timeout:?}"),
            }
        })
    });
    futures::future::join_all(asks).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_offsets_response;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    #[test]
    fn lag_is_never_negative() {
        assert_eq!(lag(10, 25), 15);
        assert_eq!(lag(25, 25), 0);
        assert_eq!(lag(30, 25), 0, "committed beyond the high watermark");
        assert_eq!(lag(i64::MIN, i64::MAX), i64::MAX, "no overflow");
    }

    #[test]
    fn remote_partitions_are_grouped_by_their_leader() {
        let committed = [tp("a", 0), tp("a", 1), tp("a", 2), tp("b", 0), tp("gone", 0), tp("a", 1)];
        let leader = |t: &TopicPartition| match (t.topic.as_str(), t.partition) {
            ("a", p) => Some(p),
            ("b", _) => Some(2),
            _ => None,
        };
        let got = remote_by_leader(&committed, leader, 0);
        let want = BTreeMap::from([(1, BTreeSet::from([tp("a", 1)])), (2, BTreeSet::from([tp("a", 2), tp("b", 0)]))]);
        assert_eq!(got, want, "local (leader 0) and unknown partitions are left out; duplicates asked once");
        assert!(remote_by_leader(&[], leader, 0).is_empty());
    }

    #[test]
    fn one_request_per_peer_asks_for_the_latest_offsets() {
        let req = latest_offsets_request(&BTreeSet::from([tp("b", 3), tp("a", 1), tp("b", 0)]));
        assert_eq!(req.replica_id, BrokerId(-1));
        let asked: Vec<(String, i32, i64)> = req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.timestamp)))
            .collect();
        assert_eq!(asked, vec![("a".into(), 1, -1), ("b".into(), 0, -1), ("b".into(), 3, -1)]);
    }

    #[test]
    fn answers_with_errors_are_left_out() {
        let part = |p: i32, error_code: i16, offset: i64| {
            list_offsets_response::ListOffsetsPartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(error_code)
                .with_offset(offset)
        };
        let resp = ListOffsetsResponse::default().with_topics(vec![list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![part(0, 0, 42), part(1, 6, -1), part(2, 0, -1), part(3, 0, 0)])]);
        assert_eq!(high_watermarks(resp), vec![(tp("t", 0), 42), (tp("t", 3), 0)]);
    }

    #[test]
    fn cached_values_go_stale_and_unwanted_ones_are_forgotten() {
        let refresh = Duration::from_secs(10);
        let cache = RemoteHighWatermarks::new(refresh);
        let asked = Instant::now();
        cache.store(asked, vec![(tp("t", 0), 7), (tp("t", 1), 9)]);
        assert_eq!(cache.get(&tp("t", 0), asked + refresh * 3), Some(7));
        assert_eq!(cache.get(&tp("t", 0), asked + refresh * 3 + Duration::from_millis(1)), None, "stale");
        assert_eq!(cache.get(&tp("t", 2), asked), None, "never asked");
        // A later answer replaces the earlier one.
        cache.store(asked + refresh, vec![(tp("t", 0), 8)]);
        assert_eq!(cache.get(&tp("t", 0), asked + refresh * 4), Some(8));
        cache.retain(&BTreeMap::from([(1, BTreeSet::from([tp("t", 1)]))]));
        assert_eq!((cache.get(&tp("t", 0), asked), cache.get(&tp("t", 1), asked)), (None, Some(9)));
    }
}
