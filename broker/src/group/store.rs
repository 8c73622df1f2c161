//! One partition of the internal `__consumer_offsets` topic as its leader writes it: appends (group metadata and
//! committed offsets) stamped with the leader's epoch and committed once the in-sync replicas have them
//! (acks=all, Kafka's `offsets.commit.required.acks`), replay when the partition's groups are loaded, and the
//! rewrite that keeps it bounded. The storage engine has no compaction, so instead of cleaning old records the
//! live state is appended again at the tail once enough was written since the last rewrite, and once that copy
//! is committed everything before it is deleted (the log start offset reaches the followers through Fetch). A
//! crash or a leader change in between leaves old records plus a (partial) copy of the same state: replay
//! yields the same result. Deleting only below the high watermark means no replica ever has to truncate below
//! its log start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_storage::{StorageError, TopicPartition};

use super::records::{self, Record, RecordError};
use crate::errors::code;
use crate::partition::{AppendError, Partition};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Rewritten live state goes out in batches of about this size.
const SNAPSHOT_BATCH_BYTES: usize = 1 << 20;
/// Replay reads the log in chunks of about this size.
const REPLAY_CHUNK_BYTES: usize = 4 << 20;
/// Leadership changes do not move the high watermark: a waiting write looks again this often.
const RECHECK: Duration = Duration::from_millis(200);

/// A key and its value (None: tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{tp} at offset {offset}: {source}")]
    Corrupt { tp: TopicPartition, offset: i64, source: RecordError },
}

/// The topic configs of `__consumer_offsets`: never deleted by retention (the rewrite bounds it), any batch
/// size (a commit request is bounded by socket.request.max.bytes already).
pub fn topic_configs(segment_bytes: u64) -> BTreeMap<String, String> {
    [
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        ("segment.bytes", segment_bytes.to_string()),
        ("max.message.bytes", i32::MAX.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Kafka's mapping of a failed append to the offsets topic onto the error a group client gets.
pub fn append_error_code(e: &AppendError, too_large: i16) -> i16 {
    match e {
        AppendError::NotEnoughReplicas { .. } => code::COORDINATOR_NOT_AVAILABLE,
        AppendError::NotLeader(_) => code::NOT_COORDINATOR,
        AppendError::Storage(StorageError::RecordTooLarge { .. }) => too_large,
        AppendError::Storage(StorageError::LogClosed(_) | StorageError::StaleLeaderEpoch { .. }) => code::NOT_COORDINATOR,
        AppendError::Storage(e) if e.is_storage_failure() => code::NOT_COORDINATOR,
        AppendError::Storage(_) => code::UNKNOWN_SERVER_ERROR,
    }
}

/// The records of a partition up to `end`, written by this broker as leader at `epoch`: committed once the
/// high watermark passes `end`.
#[derive(Clone)]
pub struct Written {
    partition: Arc<Partition>,
    epoch: i32,
    end: i64,
}

impl Written {
    /// None while not committed; then Ok, or the error a group client gets (Kafka's: NOT_COORDINATOR once
    /// this broker no longer leads, COORDINATOR_NOT_AVAILABLE when the ISR fell below min.insync.replicas).
    pub fn outcome(&self) -> Option<Result<(), i16>> {
        self.partition.acks_all_outcome(self.end, self.epoch).map(|r| {
            r.map_err(|e| match e {
                code::NOT_LEADER_OR_FOLLOWER => code::NOT_COORDINATOR,
                _ => code::COORDINATOR_NOT_AVAILABLE,
            })
        })
    }

    /// Waits until the outcome is known, at most `timeout` (then COORDINATOR_NOT_AVAILABLE, as Kafka maps a
    /// timed-out append).
    pub async fn committed(self, timeout: Duration) -> Result<(), i16> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hw = self.partition.watch_high_watermark();
        loop {
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            tokio::select! {
                r = hw.changed() => if r.is_err() { return Err(code::NOT_COORDINATOR) },
                _ = tokio::time::sleep(RECHECK) => {}
                _ = tokio::time::sleep_until(deadline) => return Err(code::COORDINATOR_NOT_AVAILABLE),
            }
        }
    }

    /// Runs `then` with the outcome: now if it is known, else on a task once it is (or at `timeout`).
    pub fn then(self, timeout: Duration, then: impl FnOnce(Result<(), i16>) + Send + 'static) {
        if let Some(outcome) = self.outcome() {
            return then(outcome);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { then(self.committed(timeout).await) });
            }
            Err(_) => then(Err(code::COORDINATOR_NOT_AVAILABLE)),
        }
    }
}

/// One partition of `__consumer_offsets` that this broker leads, at one leader epoch.
pub struct PartitionLog {
    partition: Arc<Partition>,
    epoch: i32,
    /// The end of the last append (at load: the log end): answers that depend on the state wait for it.
    written_end: i64,
    /// Bytes appended since the last rewrite (after replay: all bytes replayed).
    dirty_bytes: u64,
    snapshot_bytes: u64,
    min_snapshot_bytes: u64,
    commit_timeout: Duration,
}

impl PartitionLog {
    /// The log of `partition`, led at `epoch`.
    pub fn new(partition: Arc<Partition>, epoch: i32, min_snapshot_bytes: u64, commit_timeout: Duration) -> PartitionLog {
        let written_end = partition.log.log_end_offset();
        PartitionLog { partition, epoch, written_end, dirty_bytes: 0, snapshot_bytes: 0, min_snapshot_bytes, commit_timeout }
    }

    pub fn partition(&self) -> i32 {
        self.partition.topic_partition().partition
    }

    pub fn commit_timeout(&self) -> Duration {
        self.commit_timeout
    }

    /// Everything written so far, committed once the in-sync replicas have it.
    pub fn written(&self) -> Written {
        Written { partition: self.partition.clone(), epoch: self.epoch, end: self.written_end }
    }

    fn append_batch(&mut self, records: &[KeyValue], now: i64) -> Result<u64, AppendError> {
        let mut batch = records::batch(records, now);
        if self.partition.leader_epoch() != self.epoch {
            return Err(AppendError::NotLeader(self.partition.topic_partition().clone()));
        }
        let info = self.partition.append(&mut batch, -1)?;
        self.written_end = info.last_offset + 1;
        Ok(info.bytes)
    }

    /// Appends `records` as one batch (all or nothing), as leader with acks=all's ISR check.
    pub fn append(&mut self, records: &[KeyValue], now: i64) -> Result<(), AppendError> {
        if records.is_empty() {
            return Ok(());
        }
        self.dirty_bytes += self.append_batch(records, now)?;
        Ok(())
    }

    /// Enough was written since the last rewrite to rewrite the live state.
    pub fn needs_snapshot(&self) -> bool {
        self.dirty_bytes >= self.snapshot_bytes.max(self.min_snapshot_bytes)
    }

    /// Appends `live` (the whole live state of the partition) and, once that is committed, deletes everything
    /// before it.
    pub fn snapshot(&mut self, live: &[KeyValue], now: i64) -> Result<(), AppendError> {
        let start = self.partition.log.log_end_offset();
        let mut bytes = 0;
        let mut chunk_start = 0;
        let mut chunk_bytes = 0;
        for (i, (k, v)) in live.iter().enumerate() {
            chunk_bytes += k.len() + v.as_ref().map_or(0, |v| v.len()) + 32;
            if chunk_bytes >= SNAPSHOT_BATCH_BYTES || i + 1 == live.len() {
                bytes += self.append_batch(&live[chunk_start..=i], now)?;
                chunk_start = i + 1;
                chunk_bytes = 0;
            }
        }
        self.snapshot_bytes = bytes;
        self.dirty_bytes = 0;
        let (log, tp, records) = (self.partition.log.clone(), self.partition.topic_partition().clone(), live.len());
        self.written().then(self.commit_timeout, move |outcome| match outcome.map(|()| log.delete_records_before(start)) {
            Ok(Ok(new_start)) => {
                tracing::info!(log = %tp, new_start, live_records = records, bytes, "rewrote the offsets log");
            }
            Ok(Err(e)) => tracing::warn!(log = %tp, error = %e, "deleting before the offsets log's rewrite failed"),
            // Harmless: the next rewrite deletes the old records.
            Err(code) => tracing::info!(log = %tp, error = code, "the offsets log's rewrite was not committed"),
        });
        Ok(())
    }

    /// Every record of the log, oldest first.
    pub fn replay(&mut self) -> Result<Vec<Record>, StoreError> {
        let log = self.partition.log.clone();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut out = Vec::new();
        while offset < end {
            let read = log.read(offset, REPLAY_CHUNK_BYTES, end)?;
            let mut buf = vec![0u8; read.bytes as usize];
            let mut pos = 0;
            for range in &read.ranges {
                let len = range.len as usize;
                range.file.read_at(&mut buf[pos..pos + len], range.position)?;
                pos += len;
            }
            let tp = log.topic_partition().clone();
            let corrupt = |source| StoreError::Corrupt { tp: tp.clone(), offset, source };
            let batches = records::decode_batches(Bytes::from(buf)).map_err(corrupt)?;
            let Some(last) = batches.last().map(|(o, _, _)| *o) else { break };
            for (record_offset, key, value) in batches {
                // The first batch may start before the log start offset.
                if record_offset >= offset {
                    out.push(records::decode(&key, value.as_deref()).map_err(corrupt)?);
                }
            }
            self.dirty_bytes += read.bytes;
            offset = last + 1;
        }
        self.written_end = end;
        Ok(out)
    }
}

/// Kafka's partition for a group: Java's `String.hashCode` of the id, made non-negative, modulo the count.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let non_negative = if hash == i32::MIN { 0 } else { hash.abs() };
    non_negative % partitions
}

#[cfg(test)]
mod tests {
    use strata_storage::{LogManager, LogManagerConfig};

    use super::super::offsets::CommittedOffset;
    use super::*;

    #[test]
    fn partitions_match_kafkas() {
        // Java: "my-group".hashCode() == -1906497762 (computed over UTF-16 units, as Java does).
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(partition_for("", 50), 0);
        for g in ["a", "ü", "𝄞-group", "polygenelubricants"] {
            assert!((0..7).contains(&partition_for(g, 7)));
        }
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Kafka maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    fn kv(group: &str, topic: &str, offset: i64) -> KeyValue {
        let tp = TopicPartition::new(topic, 0);
        let o =
            CommittedOffset { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp: 1, expire_timestamp: None };
        (records::offset_key(group, &tp), Some(records::offset_value(&o)))
    }

    /// Partition 3 of the offsets topic, led by this broker (node 0) alone or with a follower (node 1).
    pub(crate) fn led(logs: &Arc<LogManager>, replicas: &[i32]) -> Arc<Partition> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, 3);
        let config = strata_storage::LogConfig::default()
            .with_overrides(topic_configs(1 << 20).iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap();
        let log = logs.get_or_create(&tp, config).unwrap();
        let assignment = crate::partition::Assignment {
            topic_id: uuid::Uuid::nil(),
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: 0,
            leader_epoch: 2,
            partition_epoch: 0,
        };
        Arc::new(Partition::new(log, 0, assignment))
    }

    fn offsets(replayed: Vec<Record>) -> Vec<(String, i64)> {
        replayed
            .into_iter()
            .map(|r| match r {
                Record::Offset { tp, value: Some(v), .. } => (tp.topic, v.offset),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn append_replay_and_snapshot_keep_the_live_state_only() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let part = led(&logs, &[0]);
        let mut p = PartitionLog::new(part.clone(), 2, 100, Duration::from_secs(1));
        assert!(p.replay().unwrap().is_empty(), "empty log");
        for i in 0..50 {
            p.append(&[kv("g", "t", i)], 1).unwrap();
        }
        assert_eq!(p.written().outcome(), Some(Ok(())), "a single replica commits at once");
        assert!(p.needs_snapshot());
        p.snapshot(&[kv("g", "t", 49)], 2).unwrap();
        assert!(!p.needs_snapshot());
        assert_eq!((part.log.log_start_offset(), part.log.log_end_offset()), (50, 51));
        assert_eq!(part.log.epoch_entries(), vec![(2, 50)], "stamped with the leader's epoch");
        p.append(&[kv("g", "u", 7)], 3).unwrap();
        logs.shutdown().unwrap();
        drop((p, part, logs));

        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let part = led(&logs, &[0]);
        let mut p = PartitionLog::new(part.clone(), 2, 1 << 20, Duration::from_secs(1));
        assert_eq!(offsets(p.replay().unwrap()), vec![("t".into(), 49), ("u".into(), 7)]);
        // An empty live state deletes everything.
        p.snapshot(&[], 4).unwrap();
        assert!(p.replay().unwrap().is_empty());
        // A deposed leader appends nothing.
        let mut stale = PartitionLog::new(part, 1, 1 << 20, Duration::from_secs(1));
        assert!(matches!(stale.append(&[kv("g", "t", 1)], 5), Err(AppendError::NotLeader(_))));
    }

    #[tokio::test]
    async fn with_a_follower_writes_commit_and_old_records_go_only_once_it_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let part = led(&logs, &[0, 1]);
        let mut p = PartitionLog::new(part.clone(), 2, 100, Duration::from_millis(300));
        for i in 0..20 {
            p.append(&[kv("g", "t", i)], 1).unwrap();
        }
        let end = part.log.log_end_offset();
        assert_eq!(p.written().outcome(), None, "the follower lacks them");
        assert_eq!(p.written().committed(Duration::from_millis(50)).await, Err(code::COORDINATOR_NOT_AVAILABLE));
        p.snapshot(&[kv("g", "t", 19)], 2).unwrap();
        assert_eq!(part.log.log_start_offset(), 0, "nothing deleted before the copy is committed");
        // The follower fetches everything: the rewrite commits and the old records go.
        part.follower_fetched(1, 2, part.log.log_end_offset()).unwrap();
        assert_eq!(p.written().committed(Duration::from_secs(1)).await, Ok(()));
        for _ in 0..50 {
            if part.log.log_start_offset() == end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(part.log.log_start_offset(), end);
        logs.shutdown().unwrap();
    }
}
