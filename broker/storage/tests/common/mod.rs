#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::sync::Arc;

use strata_storage::batch::{validate_batches, BatchHeader};
pub use strata_storage::test_util::{append_committed, encode_batch, Compression};
use strata_storage::{Log, LogConfig, LogManager, LogManagerConfig, ReadResult, TopicPartition, WriteMode};

pub const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// Small segments and indexes, so a few kilobytes exercise rolling and index lookups.
pub fn small_config(mode: WriteMode) -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 96,
        index_interval_bytes: 256,
        write_mode: mode,
        ..LogConfig::default()
    }
}

pub fn open_manager(dir: &Path, config: LogConfig) -> Arc<LogManager> {
    let mut c = LogManagerConfig::new(dir);
    c.default_config = config;
    LogManager::open(c).expect("open log manager")
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("events", 0)
}

/// The bytes of a read, fetched through the same file handles a sendfile would use.
pub fn range_bytes(result: &ReadResult) -> Vec<u8> {
    let mut out = Vec::new();
    for r in &result.ranges {
        let mut buf = vec![0u8; r.len as usize];
        r.file.read_at(&mut buf, r.position).expect("read range");
        out.extend(buf);
    }
    out
}

pub fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    validate_batches(bytes, u32::MAX).expect("ranges hold whole valid batches")
}

/// Everything from `offset` to the end, in pieces of at most `max_bytes` per read.
pub fn read_all(log: &Log, mut offset: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, max_bytes, i64::MAX).expect("read");
        let bytes = range_bytes(&r);
        let hs = headers(&bytes);
        offset = hs.last().expect("a read below the end returns a batch").next_offset();
        out.extend(bytes);
    }
    out
}

/// A produced batch and what the log must return for it once its base offset is assigned.
pub fn batch(count: usize, value_len: usize, ts0: i64, codec: Compression) -> Vec<u8> {
    encode_batch(count, value_len, ts0, codec)
}

pub fn with_base_offset(mut batch: Vec<u8>, base: i64) -> Vec<u8> {
    batch[..8].copy_from_slice(&base.to_be_bytes());
    batch
}

/// Where one appended batch landed.
#[derive(Debug, Clone)]
pub struct Stored {
    pub base_offset: i64,
    pub next_offset: i64,
    pub segment: std::path::PathBuf,
    pub position: u64,
    pub bytes: Vec<u8>,
}

/// Appends `n` batches of varied sizes and codecs and records where each one is stored.
pub fn append_varied(log: &Log, n: usize, ts0: i64) -> Vec<Stored> {
    (0..n)
        .map(|i| {
            let b = batch(1 + i % 5, 20 + (i * 37) % 300, ts0 + i as i64 * 10, CODECS[i % 5]);
            let info = append_committed(log, &mut b.clone()).expect("append");
            let r = log.read(info.first_offset, 1, i64::MAX).expect("read back");
            Stored {
                base_offset: info.first_offset,
                next_offset: info.last_offset + 1,
                segment: r.ranges[0].file.path().to_path_buf(),
                position: r.ranges[0].position,
                bytes: with_base_offset(b, info.first_offset),
            }
        })
        .collect()
}

/// A log of `n` varied batches from `ts0` on, closed cleanly: the batches and the segments' base offsets.
pub fn cleanly_closed_log(dir: &Path, config: &LogConfig, n: usize, ts0: i64) -> (Vec<Stored>, Vec<i64>) {
    let manager = open_manager(dir, config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).expect("create log");
    let stored = append_varied(&log, n, ts0);
    let bases = log.segment_base_offsets();
    drop(log);
    manager.shutdown().expect("clean shutdown");
    (stored, bases)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
