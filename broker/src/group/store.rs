//! One partition of the internal `__consumer_offsets` log: appends (group metadata and committed offsets),
//! replay at startup, and the rewrite that keeps it bounded. The storage engine has no compaction, so instead
//! of cleaning old records the live state is appended again at the tail once enough was written since the
//! last rewrite, flushed, and everything before it is deleted with `delete_records`. A crash in between
//! leaves old records plus a (partial) copy of the same state: replay yields the same result.

use std::sync::Arc;

use bytes::Bytes;
use strata_storage::{AppendInfo, Log, LogConfig, LogManager, StorageError, TopicPartition};

use super::records::{self, Record, RecordError};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Rewritten live state goes out in batches of about this size.
const SNAPSHOT_BATCH_BYTES: usize = 1 << 20;
/// Replay reads the log in chunks of about this size.
const REPLAY_CHUNK_BYTES: usize = 4 << 20;

/// A key and its value (None: tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{tp} at offset {offset}: {source}")]
    Corrupt { tp: TopicPartition, offset: i64, source: RecordError },
}

/// The config of the internal log: never deleted by retention, any batch size (a commit request is bounded
/// by socket.request.max.bytes already).
pub fn log_config(segment_bytes: u64) -> LogConfig {
    LogConfig { segment_bytes, retention_ms: -1, retention_bytes: -1, max_message_bytes: i32::MAX as u32, ..LogConfig::default() }
}

/// Appends to the internal log, which only this broker writes (no leader elections: epoch 0) and which has no
/// other replica, so the high watermark follows the log end.
fn append_committed(log: &Log, batch: &mut [u8]) -> Result<AppendInfo, StorageError> {
    let info = log.append_as_leader(batch, 0)?;
    log.maybe_increment_high_watermark(log.log_end_offset());
    Ok(info)
}

pub struct PartitionLog {
    tp: TopicPartition,
    logs: Arc<LogManager>,
    config: LogConfig,
    /// Created at the first write.
    log: Option<Arc<Log>>,
    /// Bytes appended since the last rewrite (after replay: all bytes replayed).
    dirty_bytes: u64,
    snapshot_bytes: u64,
    min_snapshot_bytes: u64,
}

impl PartitionLog {
    /// Opens partition `partition`; an existing log gets the internal config.
    pub fn open(logs: Arc<LogManager>, partition: i32, config: LogConfig, min_snapshot_bytes: u64) -> PartitionLog {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let log = logs.get(&tp);
        if let Some(log) = &log {
            log.update_config(config.clone());
        }
        PartitionLog { tp, logs, config, log, dirty_bytes: 0, snapshot_bytes: 0, min_snapshot_bytes }
    }

    pub fn partition(&self) -> i32 {
        self.tp.partition
    }

    fn log(&mut self) -> Result<Arc<Log>, StorageError> {
        if let Some(log) = &self.log {
            return Ok(log.clone());
        }
        let log = self.logs.get_or_create(&self.tp, self.config.clone())?;
        self.log = Some(log.clone());
        Ok(log)
    }

    /// Appends `records` as one batch (all or nothing).
    pub fn append(&mut self, records: &[KeyValue], now: i64) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = records::batch(records, now);
        let log = self.log()?;
        let info = append_committed(&log, &mut batch)?;
        self.dirty_bytes += info.bytes;
        Ok(())
    }

    /// Enough was written since the last rewrite to rewrite the live state.
    pub fn needs_snapshot(&self) -> bool {
        self.dirty_bytes >= self.snapshot_bytes.max(self.min_snapshot_bytes)
    }

    /// Appends `live` (the whole live state of the partition), makes it durable, then deletes everything
    /// before it.
    pub fn snapshot(&mut self, live: &[KeyValue], now: i64) -> Result<(), StorageError> {
        let log = self.log()?;
        let start = log.log_end_offset();
        let mut bytes = 0;
        let mut chunk_start = 0;
        let mut chunk_bytes = 0;
        for (i, (k, v)) in live.iter().enumerate() {
            chunk_bytes += k.len() + v.as_ref().map_or(0, |v| v.len()) + 32;
            if chunk_bytes >= SNAPSHOT_BATCH_BYTES || i + 1 == live.len() {
                let mut batch = records::batch(&live[chunk_start..=i], now);
                bytes += append_committed(&log, &mut batch)?.bytes;
                chunk_start = i + 1;
                chunk_bytes = 0;
            }
        }
        log.flush()?;
        let new_start = self.logs.delete_records(&self.tp, start)?;
        tracing::info!(log = %self.tp, new_start, live_records = live.len(), bytes, "rewrote the offsets log");
        self.snapshot_bytes = bytes;
        self.dirty_bytes = 0;
        Ok(())
    }

    /// Every record of the log, oldest first.
    pub fn replay(&mut self) -> Result<Vec<Record>, StoreError> {
        let Some(log) = self.log.clone() else { return Ok(Vec::new()) };
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
            let corrupt = |source| StoreError::Corrupt { tp: self.tp.clone(), offset, source };
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
    use strata_storage::LogManagerConfig;

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

    #[test]
    fn append_replay_and_snapshot_keep_the_live_state_only() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let mut p = PartitionLog::open(logs.clone(), 3, log_config(1 << 20), 100);
        assert!(p.replay().unwrap().is_empty(), "no log yet");
        for i in 0..50 {
            p.append(&[kv("g", "t", i)], 1).unwrap();
        }
        assert!(p.needs_snapshot());
        p.snapshot(&[kv("g", "t", 49)], 2).unwrap();
        assert!(!p.needs_snapshot());
        let log = logs.get(&TopicPartition::new(OFFSETS_TOPIC, 3)).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (50, 51));
        p.append(&[kv("g", "u", 7)], 3).unwrap();
        logs.shutdown().unwrap();
        drop(p);
        drop(log);
        drop(logs);

        let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
        let mut p = PartitionLog::open(logs.clone(), 3, log_config(1 << 20), 1 << 20);
        let replayed = p.replay().unwrap();
        let offsets: Vec<(String, i64)> = replayed
            .into_iter()
            .map(|r| match r {
                Record::Offset { tp, value: Some(v), .. } => (tp.topic, v.offset),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(offsets, vec![("t".into(), 49), ("u".into(), 7)]);
        // An empty live state deletes everything.
        p.snapshot(&[], 4).unwrap();
        assert!(p.replay().unwrap().is_empty());
    }
}
