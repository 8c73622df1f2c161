//! Topic configs that change what an append stores: compression.type (re-encoding), message.timestamp.type
//! (LogAppendTime stamping), message.timestamp.before/after.max.ms (refusals) and segment.jitter.ms, through
//! the log's public API, with idempotent producers and restarts.

mod common;

use common::*;
use kafka_protocol::records::RecordBatchDecoder;
use strata_storage::test_util::set_producer;
use strata_storage::{Log, LogConfig, LogManager, StorageError, TopicPartition};

fn config(pairs: &[(&str, &str)]) -> LogConfig {
    LogConfig::default().with_overrides(pairs.iter().copied()).unwrap()
}

fn open(dir: &std::path::Path, config: &LogConfig) -> (std::sync::Arc<LogManager>, std::sync::Arc<Log>) {
    let manager = open_manager(dir, config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    (manager, log)
}

/// (offset, timestamp, key, value) of every record stored in the log.
fn stored_records(log: &Log) -> Vec<(i64, i64, Vec<u8>, Vec<u8>)> {
    let mut bytes = bytes::Bytes::from(read_all(log, log.log_start_offset(), 1 << 20));
    RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.timestamp, r.key.unwrap().to_vec(), r.value.unwrap().to_vec()))
        .collect()
}

#[test]
fn compression_type_re_encodes_other_codecs_and_keeps_its_own_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let zstd = config(&[("compression.type", "zstd")]);
    let (manager, log) = open(dir.path(), &zstd);
    let mut expected = Vec::new();
    let mut next = 0;
    for (i, codec) in CODECS.into_iter().enumerate() {
        let b = batch(10, 300, 1_000 * i as i64, codec);
        let mut plain = batch(10, 300, 1_000 * i as i64, Compression::None);
        let info = append_committed(&log, &mut b.clone()).unwrap();
        assert_eq!((info.first_offset, info.last_offset, info.record_count), (next, next + 9, 10));
        let stored = range_bytes(&log.read(next, 1, i64::MAX).unwrap());
        let h = headers(&stored)[0];
        assert_eq!(h.compression(), Compression::Zstd as u8, "{codec:?} stored as zstd");
        assert_eq!(info.bytes, h.size() as u64, "the stored size is reported");
        if codec == Compression::Zstd {
            assert_eq!(stored, with_base_offset(b, next), "a zstd batch is stored as received");
        }
        expected.extend(stored_records_of(&mut plain, next));
        next += 10;
    }
    assert_eq!(stored_records(&log), expected);
    // The codec can change at run time; `producer` stores batches as received again.
    log.update_config(config(&[("compression.type", "producer")]));
    let gzip = batch(3, 10, 0, Compression::Gzip);
    append_committed(&log, &mut gzip.clone()).unwrap();
    assert_eq!(range_bytes(&log.read(next, 1, i64::MAX).unwrap()), with_base_offset(gzip, next));
    manager.shutdown().unwrap();
}

/// The records of `batch` as the log returns them once based at `base`.
fn stored_records_of(batch: &mut [u8], base: i64) -> Vec<(i64, i64, Vec<u8>, Vec<u8>)> {
    batch[..8].copy_from_slice(&base.to_be_bytes());
    let mut bytes = bytes::Bytes::copy_from_slice(batch);
    RecordBatchDecoder::decode(&mut bytes)
        .unwrap()
        .records
        .into_iter()
        .map(|r| (r.offset, r.timestamp, r.key.unwrap().to_vec(), r.value.unwrap().to_vec()))
        .collect()
}

#[test]
fn max_message_bytes_applies_to_the_re_encoded_batch() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[("compression.type", "uncompressed"), ("max.message.bytes", "2000")]);
    let (manager, log) = open(dir.path(), &c);
    // 20 records of 200 repetitive bytes: small compressed, over 4 KB once decompressed.
    let mut compressed = batch(20, 200, 0, Compression::Gzip);
    assert!(compressed.len() < 2000);
    assert!(matches!(append_committed(&log, &mut compressed), Err(StorageError::RecordTooLarge { max: 2000, .. })));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0), "nothing stored");
    append_committed(&log, &mut batch(2, 10, 0, Compression::Gzip)).unwrap();
    assert_eq!(headers(&range_bytes(&log.read(0, 1, i64::MAX).unwrap()))[0].compression(), 0);
    manager.shutdown().unwrap();
}

#[test]
fn log_append_time_stamps_batches_and_drives_the_time_index() {
    let dir = tempfile::tempdir().unwrap();
    let lat = config(&[("message.timestamp.type", "LogAppendTime"), ("segment.bytes", "2000")]);
    let (manager, log) = open(dir.path(), &lat);
    let mut times = Vec::new();
    for (i, codec) in CODECS.into_iter().cycle().take(12).enumerate() {
        let before = now_ms();
        let info = append_committed(&log, &mut batch(4, 100, 1_000 + i as i64, codec)).unwrap();
        assert!((before..=now_ms()).contains(&info.log_append_time), "{info:?}");
        assert_eq!(info.max_timestamp, info.log_append_time);
        times.push((info.first_offset, info.log_append_time));
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    assert!(log.segment_count() > 2);
    let bytes = read_all(&log, 0, 1 << 20);
    let hs = headers(&bytes); // CRCs valid
    assert!(hs.iter().all(|h| h.is_log_append_time()));
    assert_eq!(hs.iter().map(|h| (h.base_offset, h.max_timestamp)).collect::<Vec<_>>(), times);
    // The create times are kept in the records (as Kafka does); lookups by time use the append times.
    assert_eq!(stored_records(&log)[5].1, 1_000 + 1 + 1);
    let (offset, time) = times[7];
    let found = log.offset_for_timestamp(time).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (offset, time));
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    assert_eq!(log.max_timestamp_offset().unwrap().unwrap().timestamp, times[11].1);
    manager.shutdown().unwrap();
    drop((log, manager));
    // The stamped batches are what recovery reads back.
    let (manager, log) = open(dir.path(), &lat);
    assert_eq!(headers(&read_all(&log, 0, 1 << 20)), hs);
    manager.shutdown().unwrap();
}

#[test]
fn timestamps_outside_the_bounds_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[("message.timestamp.before.max.ms", "60000"), ("message.timestamp.after.max.ms", "60000")]);
    let (manager, log) = open(dir.path(), &c);
    let now = now_ms();
    for ts in [now - 120_000, now + 120_000] {
        assert!(matches!(
            append_committed(&log, &mut batch(3, 10, ts, Compression::Snappy)),
            Err(StorageError::InvalidTimestamp(_))
        ));
    }
    // One old record in a batch is enough.
    let mut mixed = batch(3, 10, now - 60_000 - 1_000, Compression::Lz4);
    mixed.extend(batch(1, 10, now, Compression::None));
    assert!(matches!(append_committed(&log, &mut mixed), Err(StorageError::InvalidTimestamp(_))));
    assert_eq!(log.log_end_offset(), 0);
    append_committed(&log, &mut batch(3, 10, now - 1_000, Compression::Snappy)).unwrap();
    // The default after.max.ms is one hour (Kafka 4); before.max.ms is unbounded.
    log.update_config(LogConfig::default());
    append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
    assert!(matches!(
        append_committed(&log, &mut batch(1, 10, now + 7_200_000, Compression::None)),
        Err(StorageError::InvalidTimestamp(_))
    ));
    assert_eq!(log.log_end_offset(), 4);
    manager.shutdown().unwrap();
}

#[test]
fn idempotent_producers_work_with_rewritten_batches_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[("compression.type", "gzip"), ("message.timestamp.type", "LogAppendTime"), ("segment.bytes", "400")]);
    let idem = |seq: i32| {
        let mut b = batch(4, 100, 1_000, Compression::None);
        set_producer(&mut b, 9, 1, seq);
        b
    };
    let (mut manager, mut log) = open(dir.path(), &c);
    let mut infos = Vec::new();
    for seq in (0..40).step_by(4) {
        infos.push(append_committed(&log, &mut idem(seq)).unwrap());
    }
    assert!(log.segment_count() > 1);
    let last = *infos.last().unwrap();
    let retry = append_committed(&log, &mut idem(36)).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.log_append_time), (last.first_offset, last.log_append_time));
    let hs = headers(&read_all(&log, 0, 1 << 20));
    assert!(hs.iter().all(|h| h.compression() == Compression::Gzip as u8 && h.producer_id == 9 && h.producer_epoch == 1));
    assert_eq!(hs.iter().map(|h| h.base_sequence).collect::<Vec<_>>(), (0..40).step_by(4).collect::<Vec<_>>());
    for clean in [true, false] {
        drop(log);
        if clean {
            manager.shutdown().unwrap();
        }
        drop(manager);
        let (m, l) = open(dir.path(), &c);
        assert!(append_committed(&l, &mut idem(36)).unwrap().duplicate, "clean={clean}");
        assert!(matches!(append_committed(&l, &mut idem(44)), Err(StorageError::OutOfOrderSequence { expected: 40, .. })));
        (manager, log) = (m, l);
    }
    assert_eq!(append_committed(&log, &mut idem(40)).unwrap().first_offset, 40);
    manager.shutdown().unwrap();
}

#[test]
fn segment_jitter_rolls_some_segments_early_but_none_late() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&[("segment.ms", "1000000"), ("segment.jitter.ms", "5000000")]);
    let manager = open_manager(dir.path(), c.clone());
    // Each log draws its jitter in [0, segment.ms): an append 500 s after the first rolls iff jitter > 500 s,
    // so among 24 logs both outcomes occur (all alike has probability 2^-23).
    let mut rolled = 0;
    for p in 0..24 {
        let log = manager.get_or_create(&TopicPartition::new("jitter", p), c.clone()).unwrap();
        append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
        append_committed(&log, &mut batch(1, 10, 500_000, Compression::None)).unwrap();
        let early = log.segment_count() == 2;
        rolled += usize::from(early);
        // More than segment.ms after the active segment's first batch always rolls, whatever the jitter.
        append_committed(&log, &mut batch(1, 10, 1_500_001, Compression::None)).unwrap();
        assert_eq!(log.segment_count(), 2 + usize::from(early));
    }
    assert!((1..24).contains(&rolled), "{rolled} of 24 logs rolled early");
    manager.shutdown().unwrap();
}
