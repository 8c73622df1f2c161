//! Strata's storage engine: each partition is a directory of append-only segments (`<base offset>.log`) with
//! sparse, memory-mapped offset and time indexes, in Kafka's on-disk layout. Record batches are stored exactly
//! as produced (only the base offset is assigned), unless the topic's compression.type or message.timestamp.type
//! asks for a rewrite; reads return file ranges for zero-copy sendfile(2).
//!
//! Module map: [`batch`] (RecordBatch v2 headers), [`batch_rewrite`] (what topic configs do to produced batches),
//! [`segment`] (LogSegment), [`offset_index`], [`time_index`] (over [`index_file`]), [`file_records`] (a
//! segment's log file), [`log`] (one partition: UnifiedLog), [`log_manager`] (all logs of a data dir),
//! [`recovery`], [`retention`], [`checkpoint`], [`config`], [`page_cache`] (residency of file ranges, for
//! page-cache hit metrics), [`producer_state`] (idempotent producers), [`leader_epoch`] (where each leader
//! epoch starts, for replication), [`verify`] (the offline log checker).

pub mod batch;
pub mod batch_rewrite;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod file_records;
mod index_file;
pub mod leader_epoch;
pub mod log;
pub mod log_manager;
pub mod offset_index;
pub mod page_cache;
pub mod producer_state;
pub mod recovery;
pub mod retention;
pub mod segment;
mod stats;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;
pub mod time_index;
mod topic_partition;
pub mod verify;

pub use config::{CleanupPolicy, CompressionType, LogConfig, TimestampType, WriteMode};
pub use error::{Result, StorageError};
pub use file_records::{FileRecords, ReadIo};
pub use log::{AppendInfo, FileRange, LoadReport, Log, ReadResult};
pub use log_manager::{BackgroundTasks, LogManager, LogManagerConfig, CLEAN_SHUTDOWN_FILE};
pub use page_cache::{PageCacheProbe, ProbeMethod, Residency};
pub use stats::StorageStats;
pub use time_index::TimestampOffset;
pub use topic_partition::TopicPartition;
