//! The storage engine's error type: every failure is typed, so the broker can map it to a Kafka error code.

use std::io;
use std::path::PathBuf;

use crate::TopicPartition;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A read asked not to wait for the disk found its bytes outside the page cache (see [`crate::file_records::ReadIo`]).
    #[error("the read would wait for the disk")]
    WouldBlock,
    /// A record batch failed validation (length, CRC, record count); nothing of its request was written.
    #[error("corrupt record batch at byte {position} of the request: {reason}")]
    CorruptBatch { position: usize, reason: String },

    /// Only RecordBatch v2 (magic 2) is stored.
    #[error("unsupported record batch magic {magic} at byte {position} (only magic 2 is accepted)")]
    InvalidMagic { position: usize, magic: i8 },

    /// A record timestamp outside message.timestamp.before/after.max.ms, or a producer claiming LogAppendTime.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),

    #[error("record batch of {size} bytes exceeds max.message.bytes ({max})")]
    RecordTooLarge { size: usize, max: u32 },

    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },

    /// ENOSPC (or EDQUOT): the append was undone and the log is unchanged; it can be retried once space is freed.
    #[error("disk full while writing {path}")]
    DiskFull { path: PathBuf },

    #[error("I/O error: {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },

    /// On-disk data that fails its checks outside recovery (recovery truncates instead).
    #[error("corrupt log {path} at position {position}: {reason}")]
    CorruptLog { path: PathBuf, position: u64, reason: String },

    #[error("corrupt index {path}: {reason}")]
    CorruptIndex { path: PathBuf, reason: String },

    /// An idempotent producer skipped sequence numbers (or retried a batch no longer remembered).
    #[error("out of order sequence number for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence { producer_id: i64, expected: i32, received: i32 },

    /// An idempotent producer with an older epoch than the partition has seen (a fenced, zombie producer).
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },

    #[error("invalid value {value:?} for config {key}: {reason}")]
    InvalidConfig { key: String, value: String, reason: String },

    #[error("log {0} does not exist")]
    UnknownLog(TopicPartition),

    #[error("log {0} is closed or deleted")]
    LogClosed(TopicPartition),

    #[error("invalid partition directory name {0:?} (expected <topic>-<partition>)")]
    InvalidLogDirName(String),

    /// A follower's batches fetched from the leader must continue its log, from its log end offset on.
    #[error("appended batches start at offset {got}, expected {expected}")]
    NonContiguousAppend { expected: i64, got: i64 },

    /// A leader whose epoch is older than the log's latest (a deposed leader) may not append.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },

    #[error("corrupt checkpoint file {path}: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },
}

impl StorageError {
    /// Wraps an I/O error with what was being done and to which file; ENOSPC/EDQUOT become [`StorageError::DiskFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc_enospc) if libc_enospc == nix::libc::ENOSPC || libc_enospc == nix::libc::EDQUOT => {
                StorageError::DiskFull { path }
            }
            _ => StorageError::Io { op, path, source },
        }
    }

    /// True for errors that mean the storage itself failed (Kafka's KAFKA_STORAGE_ERROR), as opposed to bad input.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StorageError::DiskFull { .. }
                | StorageError::Io { .. }
                | StorageError::CorruptIndex { .. }
                | StorageError::CorruptLog { .. }
        )
    }
}
