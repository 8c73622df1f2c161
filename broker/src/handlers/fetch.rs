//! Fetch with long polling: answer at once when `min_bytes` are available (or on any error), otherwise wait
//! until a produce moves the high watermark of a fetched partition, `max_wait_ms` passes, or the broker stops.
//! Record bytes are file ranges of the segment files, written by the zero-copy response writer.

use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use kafka_protocol::messages::FetchRequest;
use strata_storage::{FileRecords, ReadIo, StorageError};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::broker::BrokerState;
use crate::config::FetchMode;
use crate::errors::{code, storage_error_code};
use crate::fetch_response::{self, FetchResponseData, PartitionData, TopicData};
use crate::frame::{FileSlice, RecordsFile, ResponseFrame};
use crate::protocol::{encode_response_header, RequestHeader};
use crate::server::Reply;

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
    topic_id: Uuid,
    partitions: Vec<(i32, i64, i32)>, // partition, fetch offset, partition max bytes
}

struct Plan {
    version: i16,
    header: Vec<u8>,
    topics: Vec<Wanted>,
    max_bytes: usize,
    session_error: bool,
}

pub fn handle(state: &Arc<BrokerState>, header: &RequestHeader, req: FetchRequest) -> Reply {
    let version = header.api_version;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = if version >= 13 { state.topic_name_by_id(t.topic_id) } else { Some(t.topic.0.to_string()) };
            Wanted {
                name,
                topic_id: t.topic_id,
                partitions: t.partitions.iter().map(|p| (p.partition, p.fetch_offset, p.partition_max_bytes)).collect(),
            }
        })
        .collect();
    let plan = Plan {
        version,
        header: encode_response_header(header).to_vec(),
        topics,
        max_bytes: usize::try_from(req.max_bytes).unwrap_or(0),
        session_error: version >= 7 && req.session_id != 0,
    };
    // Subscribe before the first read so a produce between the read and the wait is not missed.
    let mut watches: Vec<watch::Receiver<i64>> = plan
        .topics
        .iter()
        .filter_map(|t| t.name.as_deref().map(|n| (n, &t.partitions)))
        .flat_map(|(n, ps)| ps.iter().filter_map(move |(p, _, _)| state.replicas.partition(n, *p)))
        .map(|p| p.watch_high_watermark())
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

fn encode(state: &BrokerState, plan: &Plan, data: FetchResponseData) -> ResponseFrame {
    record_metrics(state, &data);
    fetch_response::encode(plan.version, &plan.header, &data)
}

/// Bytes out per topic, failures, the zero-copy share, and the page-cache residency of every range about to
/// be sent (probed now, before sending reads it in).
fn record_metrics(state: &BrokerState, data: &FetchResponseData) {
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
        FetchMode::Sendfile => m.sendfile_bytes.inc_by(records),
        FetchMode::Copy => m.copy_bytes.inc_by(records),
    }
}

fn error_partition(partition_index: i32, error_code: i16) -> PartitionData {
    PartitionData {
        partition_index,
        error_code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: vec![],
    }
}

/// Reads every requested partition within the byte limits: (response, record bytes, any partition error), or
/// None if `io` is `NoWait` and a partition's read would have waited for the disk.
fn read(state: &BrokerState, plan: &Plan, io: ReadIo) -> Option<(FetchResponseData, u64, bool)> {
    let mut data = FetchResponseData { throttle_time_ms: 0, error_code: 0, session_id: 0, topics: vec![] };
    if plan.session_error {
        // This broker never creates fetch sessions (it answers session id 0), so an incremental fetch names a
        // session it does not know; the client falls back to full fetches.
        data.error_code = code::FETCH_SESSION_ID_NOT_FOUND;
        return Some((data, 0, true));
    }
    let (mut total, mut errors) = (0u64, false);
    for t in &plan.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for &(index, offset, partition_max) in &t.partitions {
            let Some(name) = &t.name else {
                errors = true;
                partitions.push(error_partition(index, code::UNKNOWN_TOPIC_ID));
                continue;
            };
            let Some(partition) = state.replicas.partition(name, index) else {
                errors = true;
                partitions.push(error_partition(index, state.missing_partition_code(name, index)));
                continue;
            };
            let log = &partition.log;
            let high_watermark = log.high_watermark();
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
                records: vec![],
            };
            match log.read_io(offset, limit as usize, high_watermark, io) {
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
