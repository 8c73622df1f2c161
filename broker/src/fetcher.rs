//! Replica fetchers (Kafka's ReplicaFetcherManager and ReplicaFetcherThread): for each broker that leads
//! partitions this broker follows, one task with one persistent connection sends Kafka Fetch requests as a
//! replica (replica id, current leader epoch, last fetched epoch) for all of them, appends what comes back as
//! the leader wrote it, takes the leader's high watermark, and truncates a log that diverged from the
//! leader's (the diverging epoch of KIP-320/KIP-595 fetches).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{fetch_request, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_client::Connection;
use strata_storage::TopicPartition;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::errors::code;
use crate::partition::Partition;
use crate::throttle::{ReplicationThrottles, Throttle};
use crate::tls::Dialer;

/// A partition to follow, and from whom.
#[derive(Clone)]
pub struct Target {
    pub partition: Arc<Partition>,
    pub leader: i32,
    pub leader_addr: String,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone)]
pub struct FetcherSettings {
    pub node_id: i32,
    /// How to reach leaders' inter-broker listener.
    pub dialer: Dialer,
    /// replica.fetch.max.bytes (per partition)
    pub max_bytes: i32,
    /// replica.fetch.response.max.bytes
    pub response_max_bytes: i32,
    /// replica.fetch.wait.max.ms
    pub max_wait_ms: i32,
    /// replica.fetch.backoff.ms
    pub backoff: Duration,
}

/// Where a follower cuts its log when the leader answers that it diverged: the leader's epoch `epoch` ends at
/// `leader_end`, and this replica's own end for that epoch is `own` (its largest epoch not above it and where
/// that ends). Everything from the smaller end on differs from the leader's log; a second answer fixes an
/// older divergence. An undefined answer (the leader has no such epoch) falls back to the high watermark,
/// which every in-sync replica has.
pub fn truncation_offset(epoch: i32, leader_end: i64, own: (i32, i64), log_end_offset: i64, high_watermark: i64) -> i64 {
    if epoch < 0 || leader_end < 0 {
        return high_watermark.min(log_end_offset);
    }
    let (own_epoch, own_end) = own;
    if own_epoch < 0 || own_end < 0 {
        return leader_end.min(log_end_offset);
    }
    leader_end.min(own_end).min(log_end_offset)
}

/// The leader's side: whether a follower whose last batch has epoch `last_fetched_epoch`, fetching from
/// `fetch_offset`, diverged; `end_for_epoch` is the leader's (largest epoch <= it, end offset).
pub fn divergence(last_fetched_epoch: i32, fetch_offset: i64, end_for_epoch: (i32, i64)) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = end_for_epoch;
    (epoch < last_fetched_epoch || end < fetch_offset).then_some(end_for_epoch)
}

/// What a follower does when the leader answers OFFSET_OUT_OF_RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// Its log ends past the leader's high watermark (the leader lost records: an unclean election): cut it
    /// back there.
    TruncateTo(i64),
    /// Its log ends before the leader's log start offset (retention or DeleteRecords removed those records on
    /// the leader; typically a new replica): empty it and continue there, as Kafka's truncateFullyAndStartAt.
    StartAt(i64),
    /// Neither: ask again after the backoff.
    Retry,
}

/// Kafka's follower rules for OFFSET_OUT_OF_RANGE, over this log's start and end offsets and the leader's high
/// watermark and log start offset from the answer.
pub fn out_of_range(log_start: i64, log_end: i64, leader_high_watermark: i64, leader_log_start: i64) -> OutOfRange {
    if (0..log_end).contains(&leader_high_watermark) && leader_high_watermark >= log_start {
        OutOfRange::TruncateTo(leader_high_watermark)
    } else if leader_log_start > log_end {
        OutOfRange::StartAt(leader_log_start)
    } else {
        OutOfRange::Retry
    }
}

/// What one fetcher task follows, by partition.
type Targets = BTreeMap<TopicPartition, Target>;

/// The task fetching from one leader broker, and what it follows.
struct Task {
    targets: watch::Sender<Targets>,
    handle: JoinHandle<()>,
}

pub struct FetcherManager {
    settings: FetcherSettings,
    /// The follower replication throttle (see [`crate::throttle`]).
    throttle: Arc<ReplicationThrottles>,
    /// Per leader broker.
    tasks: Mutex<HashMap<i32, Task>>,
    shutdown: watch::Receiver<bool>,
}

impl FetcherManager {
    pub fn new(
        settings: FetcherSettings,
        throttle: Arc<ReplicationThrottles>,
        shutdown: watch::Receiver<bool>,
    ) -> FetcherManager {
        FetcherManager { settings, throttle, tasks: Mutex::new(HashMap::new()), shutdown }
    }

    /// Follows exactly `targets`: tasks start for new leaders and stop for brokers that lead nothing followed.
    pub fn assign(&self, targets: Vec<Target>) {
        let mut by_leader: HashMap<i32, Targets> = HashMap::new();
        for t in targets {
            by_leader.entry(t.leader).or_default().insert(t.partition.topic_partition().clone(), t);
        }
        let mut tasks = self.tasks.lock().expect("fetchers lock");
        tasks.retain(|leader, Task { handle, .. }| {
            let keep = by_leader.contains_key(leader) && !handle.is_finished();
            if !keep {
                handle.abort();
            }
            keep
        });
        for (leader, set) in by_leader {
            match tasks.get(&leader) {
                Some(task) => {
                    task.targets.send_if_modified(|old| {
                        let same = old.len() == set.len()
                            && old.iter().zip(&set).all(|((a, x), (b, y))| {
                                a == b
                                    && x.leader_epoch == y.leader_epoch
                                    && x.leader_addr == y.leader_addr
                                    && Arc::ptr_eq(&x.partition, &y.partition)
                            });
                        if !same {
                            *old = set;
                        }
                        !same
                    });
                }
                None => {
                    let (targets, rx) = watch::channel(set);
                    let handle =
                        tokio::spawn(run(self.settings.clone(), self.throttle.clone(), leader, rx, self.shutdown.clone()));
                    tasks.insert(leader, Task { targets, handle });
                }
            }
        }
    }

    pub fn stop(&self) {
        for (_, task) in self.tasks.lock().expect("fetchers lock").drain() {
            task.handle.abort();
        }
    }
}

/// One leader's fetcher: fetches until shut down or no longer needed.
async fn run(
    settings: FetcherSettings,
    throttle: Arc<ReplicationThrottles>,
    leader: i32,
    mut targets: watch::Receiver<BTreeMap<TopicPartition, Target>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<Connection> = None;
    // Partitions refused by the leader wait for new metadata (or a backoff) before being fetched again.
    let mut delayed: HashMap<TopicPartition, tokio::time::Instant> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let set = targets.borrow_and_update().clone();
        let now = tokio::time::Instant::now();
        delayed.retain(|_, until| *until > now);
        // Throttled partitions wait while the follower throttle is used up.
        let exhausted = throttle.follower.exhausted();
        let fetchable: Vec<&Target> = set
            .iter()
            .filter(|(tp, t)| !(delayed.contains_key(*tp) || exhausted && t.partition.follower_throttled()))
            .map(|(_, t)| t)
            .collect();
        let Some(addr) = set.values().next().map(|t| t.leader_addr.clone()) else { return };
        if fetchable.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(settings.backoff) => {}
                r = targets.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            continue;
        }
        if conn.as_ref().is_none_or(|c| c.addr() != addr) {
            let timeout = Duration::from_millis(settings.max_wait_ms.max(0) as u64) + Duration::from_secs(10);
            match settings.dialer.connect(&addr, &format!("strata-replica-fetcher-{}", settings.node_id), timeout).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "connecting to the leader");
                    tokio::select! {
                        _ = tokio::time::sleep(settings.backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let request = fetch_request(&settings, &fetchable);
        let response = tokio::select! {
            r = c.send::<FetchRequest>(12, &request) => r,
            _ = shutdown.changed() => return,
        };
        match response {
            Ok(resp) => {
                if resp.error_code != 0 {
                    tracing::info!(leader, error = resp.error_code, "the leader refused a replica fetch");
                    backoff(&settings, &mut shutdown).await;
                    continue;
                }
                for refused in handle_response(&set, resp, &throttle.follower) {
                    delayed.insert(refused, tokio::time::Instant::now() + settings.backoff);
                }
            }
            Err(e) => {
                tracing::info!(leader, %addr, error = %e, "replica fetch failed");
                conn = None;
                backoff(&settings, &mut shutdown).await;
            }
        }
    }
}

async fn backoff(settings: &FetcherSettings, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(settings.backoff) => {}
        _ = shutdown.changed() => {}
    }
}

fn fetch_request(settings: &FetcherSettings, targets: &[&Target]) -> FetchRequest {
    let mut topics: BTreeMap<&str, Vec<fetch_request::FetchPartition>> = BTreeMap::new();
    for t in targets {
        let log = &t.partition.log;
        let tp = t.partition.topic_partition();
        topics.entry(tp.topic.as_str()).or_default().push(
            fetch_request::FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(t.leader_epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(settings.max_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(settings.node_id))
        .with_max_wait_ms(settings.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(settings.response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    fetch_request::FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Applies a fetch response (counting throttled partitions' bytes); returns the partitions to back off from.
fn handle_response(set: &BTreeMap<TopicPartition, Target>, resp: FetchResponse, throttle: &Throttle) -> Vec<TopicPartition> {
    let mut refused = Vec::new();
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let tp = TopicPartition { topic: topic.clone(), partition: p.partition_index };
            let Some(target) = set.get(&tp) else { continue };
            let part = &target.partition;
            match p.error_code {
                0 => {}
                code::OFFSET_OUT_OF_RANGE => {
                    let log = &part.log;
                    match out_of_range(log.log_start_offset(), log.log_end_offset(), p.high_watermark, p.log_start_offset) {
                        OutOfRange::TruncateTo(cut) => {
                            if let Err(e) = part.truncate_to(cut) {
                                tracing::error!(partition = %tp, error = %e, "truncating after OFFSET_OUT_OF_RANGE");
                            }
                        }
                        OutOfRange::StartAt(start) => match part.truncate_fully_and_start_at(start) {
                            // Fetch from there at once.
                            Ok(()) => continue,
                            Err(e) => tracing::error!(partition = %tp, error = %e, "starting at the leader's log start"),
                        },
                        OutOfRange::Retry => {
                            tracing::warn!(partition = %tp, leader_hw = p.high_watermark, leader_log_start = p.log_start_offset, log_start = log.log_start_offset(), log_end = log.log_end_offset(), "fetch offset out of the leader's range")
                        }
                    }
                    refused.push(tp);
                    continue;
                }
                e => {
                    tracing::debug!(partition = %tp, error = e, "the leader refused to serve a partition");
                    refused.push(tp);
                    continue;
                }
            }
            if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 {
                let log = &part.log;
                let own = log.end_offset_for_epoch(p.diverging_epoch.epoch);
                let cut = truncation_offset(
                    p.diverging_epoch.epoch,
                    p.diverging_epoch.end_offset,
                    own,
                    log.log_end_offset(),
                    log.high_watermark(),
                );
                if let Err(e) = part.truncate_to(cut) {
                    tracing::error!(partition = %tp, error = %e, "truncating a diverged log");
                    refused.push(tp);
                }
                continue;
            }
            let records = p.records.unwrap_or_default();
            if part.follower_throttled() {
                throttle.record(records.len() as u64);
            }
            if let Err(e) = part.append_as_follower(&records, p.high_watermark) {
                tracing::error!(partition = %tp, error = %e, "appending fetched records");
                refused.push(tp);
                continue;
            }
            // The leader's log start (DeleteRecords, the offsets log's rewrite) reaches this replica too.
            if let Err(e) = part.follower_log_start(p.log_start_offset) {
                tracing::warn!(partition = %tp, error = %e, leader_log_start = p.log_start_offset, "taking the leader's log start offset");
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_rules() {
        // (leader epoch, leader end, own (epoch, end), leo, hw) -> cut
        let cases = [
            // Same epoch, the leader's ends earlier: cut there.
            ((3, 50), (3, 80), 80, 40, 50),
            // Same epoch, this log ends earlier: nothing beyond it to keep or cut.
            ((3, 90), (3, 80), 80, 40, 80),
            // This replica lacks the leader's epoch: its later epochs start at 60, the leader's epoch 3 ends at 70.
            ((3, 70), (2, 60), 90, 40, 60),
            ((3, 55), (2, 60), 90, 40, 55),
            // No epoch of its own at or below: the leader's end.
            ((3, 55), (-1, -1), 90, 40, 55),
            // The leader knows no such epoch: the high watermark.
            ((-1, -1), (2, 60), 90, 40, 40),
        ];
        for ((e, end), own, leo, hw, want) in cases {
            assert_eq!(truncation_offset(e, end, own, leo, hw), want, "{e} {end} {own:?}");
        }
    }

    #[test]
    fn out_of_range_rules() {
        use OutOfRange::*;
        // (log start, log end, leader hw, leader log start) -> what to do
        let cases = [
            // Ahead of the leader's high watermark: cut back to it.
            ((0, 50, 40, 0), TruncateTo(40)),
            ((10, 50, 10, 0), TruncateTo(10)),
            // Behind the leader's log start (a new replica of a partition whose old records expired).
            ((0, 0, 900, 500), StartAt(500)),
            ((0, 120, 900, 500), StartAt(500)),
            // Within the leader's range after all (it moved meanwhile), or nothing safe to do: ask again.
            ((0, 120, 900, 100), Retry),
            ((30, 50, 20, 0), Retry),
            ((0, 50, -1, -1), Retry),
        ];
        for ((start, end, hw, leader_start), want) in cases {
            assert_eq!(out_of_range(start, end, hw, leader_start), want, "{start} {end} {hw} {leader_start}");
        }
    }

    #[test]
    fn divergence_rules() {
        assert_eq!(divergence(-1, 10, (0, 5)), None, "no epoch: the first fetch");
        assert_eq!(divergence(2, 10, (2, 15)), None, "same epoch, offset within it");
        assert_eq!(divergence(2, 10, (2, 8)), Some((2, 8)), "the leader's epoch 2 ended before");
        assert_eq!(divergence(3, 10, (2, 12)), Some((2, 12)), "the leader never had epoch 3");
        assert_eq!(divergence(3, 10, (-1, -1)), Some((-1, -1)));
    }
}
