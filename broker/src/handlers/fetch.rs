//! Fetch with long polling: answer at once when `min_bytes` are available (or on any error), otherwise wait
//! until a produce moves the high watermark of a fetched partition, `max_wait_ms` passes, or the broker stops.
//! Record bytes are file ranges of the segment files, written by the zero-copy response writer.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::messages::{fetch_request, FetchRequest};
use strata_storage::{FileRecords, ReadIo, StorageError};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::config::FetchMode;
use crate::errors::{code, storage_error_code};
use crate::fetch_response::{self, FetchResponseData, PartitionData, TopicData};
use crate::frame::{FileSlice, RecordsFile, ResponseFrame};
use crate::protocol::{encode_response_header, RequestHeader};
use crate::server::{Peer, Reply};

impl RecordsFile for FileRecords {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> std::io::Result<()> {
        self.read_at(buf, position).map_err(std::io::Error::other)
    }
    fn size(&self) -> u64 {
        self.file_len()
    }
}

struct Wanted {
    /// None: unknown topic id (v13+).
    name: Option<String>,
    /// Whether the fetcher may read it: READ on the topic for a consumer, CLUSTER_ACTION for a follower.
    authorized: bool,
    topic_id: Uuid,
    partitions: Vec<WantedPartition>,
}

struct WantedPartition {
    index: i32,
    fetch_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    /// Decided before reading: an error, or (for a follower) where its log diverged from this leader's.
    early: Option<Early>,
}

#[derive(Clone, Copy)]
enum Early {
    Error(i16),
    Diverging(i32, i64),
}

struct Plan {
    version: i16,
    header: Vec<u8>,
    topics: Vec<Wanted>,
    max_bytes: usize,
    session_error: bool,
    /// The broker fetching as a follower (Kafka's replica id); None for consumers.
    replica: Option<i32>,
    /// Who asks: leader endpoints (KIP-951) are given on its listener.
    peer: Peer,
}

/// A follower's fetch tells the leader how far its log reached: the leader records it (moving the high
/// watermark, maybe asking to add it to the ISR) and checks that its log did not diverge.
fn follower_precheck(state: &BrokerState, replica: i32, name: &str, p: &fetch_request::FetchPartition) -> Option<Early> {
    let Some(partition) = state.replicas.hosted(name, p.partition) else {
        return Some(Early::Error(state.missing_partition_code(name, p.partition)));
    };
    match partition.follower_fetched(replica, p.current_leader_epoch, p.fetch_offset) {
        Err(refusal) => Some(Early::Error(refusal.code())),
        Ok(change) => {
            if let Some(change) = change {
                state.isr_changes.send(change, partition.clone());
            }
            let end = partition.log.end_offset_for_epoch(p.last_fetched_epoch);
            crate::fetcher::divergence(p.last_fetched_epoch, p.fetch_offset, end).map(|(e, o)| Early::Diverging(e, o))
        }
    }
}

pub fn handle(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: FetchRequest) -> Reply {
    let version = header.api_version;
    let replica_id = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    let replica = (replica_id >= 0).then_some(replica_id);
    let auth = state.authorizer.check(peer);
    let follower_authorized = replica.is_some() && auth.allows(Operation::ClusterAction, Resource::cluster());
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = if version >= 13 { state.topic_name_by_id(t.topic_id) } else { Some(t.topic.0.to_string()) };
            let authorized = match (replica, name.as_deref()) {
                (Some(_), _) => follower_authorized,
                (None, Some(n)) => auth.allows(Operation::Read, Resource::topic(n)),
                (None, None) => true,
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| WantedPartition {
                    index: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    early: match (replica, name.as_deref()) {
                        (Some(r), Some(n)) if authorized => follower_precheck(state, r, n, p),
                        _ => None,
                    },
                })
                .collect();
            Wanted { name, authorized, topic_id: t.topic_id, partitions }
        })
        .collect();
    let plan = Plan {
        version,
        header: encode_response_header(header).to_vec(),
        topics,
        max_bytes: usize::try_from(req.max_bytes).unwrap_or(0),
        session_error: version >= 7 && req.session_id != 0,
        replica,
        peer: peer.clone(),
    };
    // Subscribe before the first read so a produce between the read and the wait is not missed. Followers wait
    // for new records, consumers for the high watermark.
    let mut watches: Vec<watch::Receiver<i64>> = plan
        .topics
        .iter()
        .filter_map(|t| t.name.as_deref().map(|n| (n, &t.partitions)))
        .flat_map(|(n, ps)| ps.iter().filter_map(move |p| state.replicas.partition(n, p.index)))
        .map(|p| if plan.replica.is_some() { p.watch_end_offset() } else { p.watch_high_watermark() })
        .collect();
    let min_bytes = u64::try_from(req.min_bytes).unwrap_or(0);
    let no_wait = req.max_wait_ms <= 0 || watches.is_empty() || *state.shutdown.borrow();
    let would_block = match read(state, &plan, network_io(state)) {
        Some((data, bytes, errors)) if bytes >= min_bytes || errors || no_wait => {
            return Reply::Ready(encode(state, &plan, data))
        }
        first => first.is_none(),
    };
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let state = state.clone();
    let plan = Arc::new(plan);
    Reply::Later(Box::pin(async move {
        if would_block {
            // The first read would have waited for the disk: it is done where waiting is allowed.
            let (data, bytes, errors) = read_blocking(&state, &plan).await;
            if bytes >= min_bytes || errors || no_wait {
                return Some(encode(&state, &plan, data));
            }
        }
        let mut shutdown = state.shutdown.clone();
        loop {
            let changed = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = crate::server::stopped(&mut shutdown) => break,
            }
            let (data, bytes, errors) = read_off_disk(&state, &plan).await;
            if bytes >= min_bytes || errors {
                return Some(encode(&state, &plan, data));
            }
            for w in &mut watches {
                w.borrow_and_update();
            }
        }
        let (data, _, _) = read_off_disk(&state, &plan).await;
        Some(encode(&state, &plan, data))
    }))
}

/// How the network thread reads: without waiting for the disk when the cold-read fix is on
/// (fetch.warmup.enable), so locating a range in an evicted segment (a few batch headers) cannot block it.
fn network_io(state: &BrokerState) -> ReadIo {
    if state.warmer.is_some() {
        ReadIo::NoWait
    } else {
        ReadIo::Wait
    }
}

/// Reads on the network thread if it need not wait for the disk, otherwise on an I/O thread.
async fn read_off_disk(state: &Arc<BrokerState>, plan: &Arc<Plan>) -> (FetchResponseData, u64, bool) {
    match read(state, plan, network_io(state)) {
        Some(r) => r,
        None => read_blocking(state, plan).await,
    }
}

/// A read that may wait for the disk, on one of the `num.io.threads` (where there is no warmer, a read never
/// gives up, so this only runs in place for completeness).
async fn read_blocking(state: &Arc<BrokerState>, plan: &Arc<Plan>) -> (FetchResponseData, u64, bool) {
    let (s, p) = (state.clone(), plan.clone());
    let read = move || read(&s, &p, ReadIo::Wait).expect("a read allowed to wait does not give up");
    match &state.warmer {
        Some(w) => w.run(read).await,
        None => read(),
    }
}

fn encode(state: &BrokerState, plan: &Plan, mut data: FetchResponseData) -> ResponseFrame {
    record_metrics(state, &plan.peer, &data);
    if plan.version >= 16 {
        let leaders: Vec<i32> =
            data.topics.iter().flat_map(|t| &t.partitions).filter_map(|p| p.current_leader.map(|(l, _)| l)).collect();
        if !leaders.is_empty() {
            data.node_endpoints = super::cluster::brokers(state, &state.image(), &plan.peer)
                .into_iter()
                .filter(|(id, ..)| leaders.contains(id))
                .collect();
        }
    }
    if let Some(replica) = plan.replica {
        let throttled: u64 = data
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (&t.name, p)))
            .filter(|(name, p)| leader_throttles(state, name, p.partition_index, replica))
            .map(|(_, p)| p.records_len())
            .sum();
        state.replicas.throttles().leader.record(throttled);
    }
    fetch_response::encode(plan.version, &plan.header, &data)
}

/// Whether this leader throttles what `replica` fetches of a partition (see [`crate::throttle`]).
fn leader_throttles(state: &BrokerState, name: &str, index: i32, replica: i32) -> bool {
    state.replicas.hosted(name, index).is_some_and(|p| p.leader_throttles(replica))
}

/// Bytes out per topic, failures, the zero-copy share (TLS connections always copy), and the page-cache
/// residency of every range about to be sent (probed now, before sending reads it in).
fn record_metrics(state: &BrokerState, peer: &Peer, data: &FetchResponseData) {
    let m = &state.metrics;
    let mut records = 0;
    for t in &data.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                m.topics.fetch_failed(&t.name);
                continue;
            }
            m.topics.fetched(&t.name, p.records_len());
            records += p.records_len();
            for slice in &p.records {
                m.page_cache.observe(&t.name, &slice.file.fd(), slice.position, slice.len);
            }
        }
    }
    match state.config.fetch_mode {
        FetchMode::Sendfile if !peer.tls => m.sendfile_bytes.inc_by(records),
        _ => m.copy_bytes.inc_by(records),
    }
}

fn error_partition(partition_index: i32, error_code: i16) -> PartitionData {
    PartitionData {
        partition_index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        diverging_epoch: None,
        current_leader: None,
        records: vec![],
    }
}

/// KIP-951: a client fetching from a broker that does not lead the partition learns the current leader.
fn with_current_leader(state: &BrokerState, name: &str, mut p: PartitionData) -> PartitionData {
    if matches!(p.error_code, code::NOT_LEADER_OR_FOLLOWER | code::FENCED_LEADER_EPOCH) {
        if let Some(part) = state.image().partition(name, p.partition_index) {
            p.current_leader = Some((part.leader, part.leader_epoch));
        }
    }
    p
}

/// Reads every requested partition within the byte limits: (response, record bytes, any partition error), or
/// None if `io` is `NoWait` and a partition's read would have waited for the disk.
fn read(state: &BrokerState, plan: &Plan, io: ReadIo) -> Option<(FetchResponseData, u64, bool)> {
    let mut data =
        FetchResponseData { throttle_time_ms: 0, error_code: 0, session_id: 0, topics: vec![], node_endpoints: vec![] };
    if plan.session_error {
        // This broker never creates fetch sessions (it answers session id 0), so an incremental fetch names a
        // session it does not know; the client falls back to full fetches.
        data.error_code = code::FETCH_SESSION_ID_NOT_FOUND;
        return Some((data, 0, true));
    }
    let (mut total, mut errors) = (0u64, false);
    for t in &plan.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for wanted in &t.partitions {
            let (index, offset, partition_max) = (wanted.index, wanted.fetch_offset, wanted.max_bytes);
            let Some(name) = &t.name else {
                errors = true;
                partitions.push(error_partition(index, code::UNKNOWN_TOPIC_ID));
                continue;
            };
            if !t.authorized {
                errors = true;
                partitions.push(error_partition(index, code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let Some(partition) = state.replicas.partition(name, index) else {
                errors = true;
                partitions.push(with_current_leader(
                    state,
                    name,
                    error_partition(index, state.missing_partition_code(name, index)),
                ));
                continue;
            };
            let early = match wanted.early {
                None if plan.replica.is_none() => {
                    crate::partition::check_epoch(wanted.current_leader_epoch, partition.leader_epoch())
                        .err()
                        .map(|r| Early::Error(r.code()))
                }
                early => early,
            };
            let log = &partition.log;
            let high_watermark = log.high_watermark();
            match early {
                Some(Early::Error(c)) => {
                    errors = true;
                    partitions.push(with_current_leader(state, name, error_partition(index, c)));
                    continue;
                }
                Some(Early::Diverging(epoch, end)) => {
                    // Nothing to send: the follower truncates first (this counts as an answer worth sending now).
                    errors = true;
                    let mut p = error_partition(index, 0);
                    p.high_watermark = high_watermark;
                    p.last_stable_offset = high_watermark;
                    p.log_start_offset = log.log_start_offset();
                    p.diverging_epoch = Some((epoch, end));
                    partitions.push(p);
                    continue;
                }
                None => {}
            }
            // Followers read everything the leader has; consumers what every in-sync replica has.
            let upper_bound = if plan.replica.is_some() { log.log_end_offset() } else { high_watermark };
            let budget = (plan.max_bytes as u64).saturating_sub(total);
            let limit = budget.min(u64::try_from(partition_max).unwrap_or(0));
            // Kafka's rule (KIP-74): the first non-empty partition returns at least one whole batch even past the
            // limits, so that consumers always progress; later ones only what fits.
            let mut p = PartitionData {
                partition_index: index,
                error_code: 0,
                high_watermark,
                last_stable_offset: high_watermark,
                log_start_offset: log.log_start_offset(),
                diverging_epoch: None,
                current_leader: None,
                records: vec![],
            };
            // A throttled follower gets nothing while the leader throttle is used up; it asks again.
            if plan.replica.is_some_and(|r| partition.leader_throttles(r)) && state.replicas.throttles().leader.exhausted() {
                partitions.push(p);
                continue;
            }
            match log.read_io(offset, limit as usize, upper_bound, io) {
                Ok(r) if total == 0 || r.bytes <= limit => {
                    total += r.bytes;
                    p.records = r
                        .ranges
                        .into_iter()
                        .map(|range| FileSlice { file: range.file, position: range.position, len: range.len })
                        .collect();
                }
                Ok(_) => {}
                Err(StorageError::WouldBlock) => return None,
                Err(e) => {
                    errors = true;
                    p.error_code = storage_error_code(&e);
                }
            }
            partitions.push(p);
        }
        data.topics.push(TopicData { name: t.name.clone().unwrap_or_default(), topic_id: t.topic_id, partitions });
    }
    Some((data, total, errors))
}
