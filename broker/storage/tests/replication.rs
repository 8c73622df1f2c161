//! What replication needs from the log: leader appends stamped with the leader's epoch, follower appends of
//! the leader's batches as they are, a high watermark moved only when told, the leader-epoch cache and its
//! checkpoint (through truncation, restarts and crashes), and the high watermark's checkpoint.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use strata_storage::test_util::set_producer;
use strata_storage::{batch, CompressionType, Log, LogConfig, StorageError, TimestampType, TopicPartition, WriteMode};

fn epoch_file(dir: &Path) -> PathBuf {
    dir.join("events-0/leader-epoch-checkpoint")
}

fn stored_epochs(log: &Log) -> Vec<i32> {
    headers(&read_all(log, log.log_start_offset(), 1 << 20)).iter().map(|h| h.partition_leader_epoch).collect()
}

fn with_epoch(mut batch: Vec<u8>, epoch: i32) -> Vec<u8> {
    batch::set_partition_leader_epoch(&mut batch, epoch);
    batch
}

#[test]
fn leader_appends_stamp_their_epoch_and_start_it_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    assert_eq!((log.latest_epoch(), log.epoch_entries()), (None, vec![]));
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
    // Java producers send -1, librdkafka 0: whatever they send, the leader's epoch is stored.
    for (sent, epoch) in [(-1, 0), (7, 3), (0, 3)] {
        log.append_as_leader(&mut with_epoch(batch(5, 10, 0, Compression::None), sent), epoch).unwrap();
    }
    // The epoch lies outside the CRC: the stored batches still validate (read_all checks).
    assert_eq!(stored_epochs(&log), vec![0, 3, 3]);
    assert_eq!((log.latest_epoch(), log.epoch_entries()), (Some(3), vec![(0, 0), (3, 5)]));
    assert_eq!(std::fs::read_to_string(epoch_file(dir.path())).unwrap(), "0\n2\n0 0\n3 5\n");
    assert_eq!(log.high_watermark(), 0, "appends do not commit");
    // A deposed leader appends nothing.
    match log.append_as_leader(&mut batch(1, 10, 0, Compression::None), 2) {
        Err(StorageError::StaleLeaderEpoch { epoch: 2, latest: 3 }) => {}
        other => panic!("expected a stale epoch, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 15);
    for (requested, expected) in [(-1, (-1, -1)), (0, (0, 5)), (1, (0, 5)), (2, (0, 5)), (3, (3, 15)), (4, (-1, -1))] {
        assert_eq!(log.end_offset_for_epoch(requested), expected, "epoch {requested}");
    }
    assert_eq!([4, 5, 14].map(|o| log.epoch_for_offset(o)), [Some(0), Some(3), Some(3)]);
    manager.shutdown().unwrap();
}

#[test]
fn the_high_watermark_moves_only_when_told_within_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    log.append_as_leader(&mut batch(10, 10, 0, Compression::None), 0).unwrap();
    assert_eq!(log.high_watermark(), 0);
    // Records not yet committed cannot be deleted.
    assert!(matches!(manager.delete_records(&tp(), 5), Err(StorageError::OffsetOutOfRange { .. })));
    assert!(log.maybe_increment_high_watermark(5));
    assert!(!log.maybe_increment_high_watermark(3), "never back");
    assert_eq!(log.high_watermark(), 5);
    assert!(log.maybe_increment_high_watermark(50));
    assert_eq!(log.high_watermark(), 10, "at most the log end offset");
    assert_eq!(log.set_high_watermark(3), 3);
    assert_eq!(log.set_high_watermark(100), 10);
    assert_eq!(manager.delete_records(&tp(), 4).unwrap(), 4);
    assert_eq!(log.set_high_watermark(0), 4, "at least the log start offset");
    // The epoch that wrote the new log start now starts there.
    assert_eq!(log.epoch_entries(), vec![(0, 4)]);
    manager.shutdown().unwrap();
}

#[test]
fn follower_appends_store_the_leaders_batches_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    let manager = open_manager(dir.path(), config.clone());
    let leader = manager.get_or_create(&tp(), config.clone()).unwrap();
    // Configs that would rewrite or refuse produced batches do nothing to replicated ones.
    let follower_config = LogConfig {
        compression_type: CompressionType::Zstd,
        timestamp_type: TimestampType::LogAppendTime,
        max_message_bytes: 100,
        ..config.clone()
    };
    let follower = manager.get_or_create(&TopicPartition::new("events", 1), follower_config).unwrap();
    let mut seq = 0;
    let mut last_produced = Vec::new();
    for i in 0..60 {
        let mut b = batch(1 + i % 4, 50, i as i64, CODECS[i % 5]);
        set_producer(&mut b, 42, 0, seq);
        seq += 1 + i as i32 % 4;
        last_produced = b.clone();
        leader.append_as_leader(&mut b, [0, 2, 5][i / 20]).unwrap();
    }
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let fetched = range_bytes(&leader.read(offset, 700, i64::MAX).unwrap());
        let info = follower.append_as_follower(&fetched).unwrap();
        assert_eq!(info.first_offset, offset);
        offset = info.last_offset + 1;
    }
    assert_eq!(read_all(&follower, 0, 1 << 20), read_all(&leader, 0, 1 << 20), "byte for byte");
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.epoch_entries().iter().map(|e| e.0).collect::<Vec<_>>(), vec![0, 2, 5]);
    assert!(follower.segment_count() > 1, "followers roll segments too");
    assert_eq!(follower.high_watermark(), 0);

    let end = follower.log_end_offset();
    let info = follower.append_as_follower(&[]).unwrap();
    assert_eq!((info.record_count, follower.log_end_offset()), (0, end), "nothing fetched, nothing appended");
    let gap = with_base_offset(batch(2, 10, 0, Compression::None), end + 1);
    match follower.append_as_follower(&gap) {
        Err(StorageError::NonContiguousAppend { expected, got }) => assert_eq!((expected, got), (end, end + 1)),
        other => panic!("expected a non-contiguous append, got {other:?}"),
    }
    let again = range_bytes(&leader.read(0, 1, i64::MAX).unwrap());
    assert!(matches!(follower.append_as_follower(&again), Err(StorageError::NonContiguousAppend { got: 0, .. })));
    for second_base in [end + 1, end + 3] {
        let mut two = with_base_offset(batch(2, 10, 0, Compression::None), end);
        two.extend(with_base_offset(batch(2, 10, 0, Compression::None), second_base));
        match follower.append_as_follower(&two) {
            Err(StorageError::NonContiguousAppend { expected, got }) => assert_eq!((expected, got), (end + 2, second_base)),
            other => panic!("expected offsets going back or skipping to be refused, got {other:?}"),
        }
    }
    let mut corrupt = with_base_offset(batch(2, 10, 0, Compression::None), end);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(follower.append_as_follower(&corrupt), Err(StorageError::CorruptBatch { .. })));
    assert_eq!(follower.log_end_offset(), end);

    // The follower becomes the leader: it knows the producer's batches from their headers.
    follower.update_config(config);
    assert!(follower.append_as_leader(&mut last_produced, 6).unwrap().duplicate);
    follower.append_as_leader(&mut batch(1, 10, 0, Compression::None), 6).unwrap();
    assert_eq!(follower.epoch_entries().last(), Some(&(6, end)));
    manager.shutdown().unwrap();
}

#[test]
fn truncation_forgets_the_epochs_that_started_in_what_goes() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    for epoch in [0, 2, 4] {
        for _ in 0..2 {
            log.append_as_leader(&mut batch(5, 10, 0, Compression::None), epoch).unwrap();
        }
    }
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 10), (4, 20)]);
    log.set_high_watermark(30);
    // Offset 22 is in the batch starting at 20, the first of epoch 4.
    log.truncate_to(22).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (20, 20));
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 10)]);
    assert_eq!(std::fs::read_to_string(epoch_file(dir.path())).unwrap(), "0\n2\n0 0\n2 10\n");
    assert_eq!(log.end_offset_for_epoch(2), (2, 20));
    log.truncate_to(13).unwrap();
    assert_eq!((log.log_end_offset(), log.epoch_entries()), (10, vec![(0, 0)]));
    // The new leader's log continues from there.
    log.append_as_follower(&with_base_offset(with_epoch(batch(3, 10, 0, Compression::None), 5), 10)).unwrap();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (5, 10)]);
    assert_eq!(stored_epochs(&log), vec![0, 0, 5]);
    manager.shutdown().unwrap();
}

#[test]
fn a_follower_behind_the_leaders_log_start_empties_its_log_and_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    for _ in 0..8 {
        log.append_as_leader(&mut batch(5, 100, 0, Compression::None), 2).unwrap();
    }
    log.set_high_watermark(30);
    assert!(log.segment_count() > 1);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.high_watermark()), (100, 100, 100));
    assert_eq!((log.segment_base_offsets(), log.epoch_entries(), log.size_bytes()), (vec![100], vec![], 0));
    assert_eq!(std::fs::read_to_string(epoch_file(dir.path())).unwrap(), "0\n0\n");
    // The leader's batches continue from there.
    log.append_as_follower(&with_base_offset(with_epoch(batch(3, 10, 0, Compression::None), 5), 100)).unwrap();
    assert_eq!((log.log_end_offset(), log.epoch_entries()), (103, vec![(5, 100)]));
    assert_eq!(stored_epochs(&log), vec![5]);
    manager.shutdown().unwrap();
    drop((manager, log));
    let manager = open_manager(dir.path(), config);
    let log = manager.get(&tp()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.epoch_entries()), (100, 103, vec![(5, 100)]));
    let names: Vec<String> =
        std::fs::read_dir(dir.path().join("events-0")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().filter(|n| n.ends_with(".log")).eq(["00000000000000000100.log"].iter()), "{names:?}");
    manager.shutdown().unwrap();
}

#[test]
fn reopening_restores_the_high_watermark_and_the_epoch_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let hw_file = dir.path().join("replication-offset-checkpoint");
    {
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config.clone()).unwrap();
        for epoch in [0, 0, 3] {
            log.append_as_leader(&mut batch(5, 10, 0, Compression::None), epoch).unwrap();
        }
        log.set_high_watermark(12);
        manager.shutdown().unwrap();
        assert_eq!(std::fs::read_to_string(&hw_file).unwrap(), "0\n1\nevents 0 12\n");
    }
    let reopen = || {
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get(&tp()).unwrap();
        (manager, log)
    };
    let (manager, log) = reopen();
    assert_eq!((log.high_watermark(), log.epoch_entries()), (12, vec![(0, 0), (3, 10)]));
    // After a crash, the periodic checkpoint's high watermark.
    log.set_high_watermark(14);
    manager.checkpoint().unwrap();
    drop((manager, log));
    let (manager, log) = reopen();
    assert!(!manager.had_clean_shutdown());
    assert_eq!(log.high_watermark(), 14);
    manager.shutdown().unwrap();
    drop((manager, log));
    // A data directory from before the checkpoint existed, or an entry beyond the log: the log end offset.
    for damage in [None, Some("0\n1\nevents 0 99\n")] {
        match damage {
            None => std::fs::remove_file(&hw_file).unwrap(),
            Some(text) => std::fs::write(&hw_file, text).unwrap(),
        }
        let (manager, log) = reopen();
        assert_eq!(log.high_watermark(), 15, "{damage:?}");
        manager.shutdown().unwrap();
    }
}

#[test]
fn a_log_from_before_epoch_checkpoints_is_all_epoch_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    {
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config.clone()).unwrap();
        for _ in 0..4 {
            append_committed(&log, &mut batch(5, 10, 0, Compression::None)).unwrap();
        }
        manager.delete_records(&tp(), 7).unwrap();
        manager.get_or_create(&TopicPartition::new("events", 1), config.clone()).unwrap();
        manager.shutdown().unwrap();
    }
    std::fs::remove_file(epoch_file(dir.path())).unwrap();
    let manager = open_manager(dir.path(), config);
    assert_eq!(manager.get(&tp()).unwrap().epoch_entries(), vec![(0, 7)]);
    assert_eq!(std::fs::read_to_string(epoch_file(dir.path())).unwrap(), "0\n1\n0 7\n");
    // An empty log has no epochs.
    assert_eq!(manager.get(&TopicPartition::new("events", 1)).unwrap().epoch_entries(), vec![]);
    assert!(!dir.path().join("events-1/leader-epoch-checkpoint").exists());
    manager.shutdown().unwrap();
}

/// A log written by leaders of epochs 0 (offsets 0..20), 3 (20..80) and 4 (80..90) over several small
/// segments, then crashed (no clean shutdown).
fn crashed_log_with_epochs(dir: &Path, config: &LogConfig) {
    let manager = open_manager(dir, config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    for i in 0..45 {
        let epoch = match i {
            0..10 => 0,
            10..40 => 3,
            _ => 4,
        };
        log.append_as_leader(&mut batch(2, 100, i, Compression::None), epoch).unwrap();
    }
    assert_eq!(log.epoch_entries(), vec![(0, 0), (3, 20), (4, 80)]);
    assert!(log.segment_count() > 3);
}

#[test]
fn epochs_the_checkpoint_missed_or_kept_too_long_are_reconciled_with_the_log() {
    let config = small_config(WriteMode::Write);
    let expected = "0\n3\n0 0\n3 20\n4 80\n";
    for damage in [
        // Crashes between a log write and the checkpoint's, with epochs 3 and 4 or only 4 missing.
        Some("0\n1\n0 0\n"),
        Some("0\n2\n0 0\n3 20\n"),
        // Lost, or corrupt: rebuilt from the batch headers.
        None,
        Some("garbage"),
        // An epoch the log does not have (its batches lost in the crash).
        Some("0\n4\n0 0\n3 20\n4 80\n7 90\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        crashed_log_with_epochs(dir.path(), &config);
        match damage {
            None => std::fs::remove_file(epoch_file(dir.path())).unwrap(),
            Some(text) => std::fs::write(epoch_file(dir.path()), text).unwrap(),
        }
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get(&tp()).unwrap();
        assert_eq!(log.epoch_entries(), vec![(0, 0), (3, 20), (4, 80)], "{damage:?}");
        assert_eq!(std::fs::read_to_string(epoch_file(dir.path())).unwrap(), expected, "{damage:?}");
        manager.shutdown().unwrap();
    }
}

#[test]
fn a_lost_checkpoint_of_a_log_without_epoch_zero_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Mmap);
    {
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config.clone()).unwrap();
        for i in 0..30 {
            log.append_as_leader(&mut batch(2, 100, i, Compression::None), 3 + i as i32 / 20).unwrap();
        }
    }
    std::fs::remove_file(epoch_file(dir.path())).unwrap();
    let manager = open_manager(dir.path(), config);
    assert_eq!(manager.get(&tp()).unwrap().epoch_entries(), vec![(3, 0), (4, 40)]);
    manager.shutdown().unwrap();
}

#[test]
fn recovery_that_cuts_the_log_drops_the_epochs_it_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    crashed_log_with_epochs(dir.path(), &config);
    // The first batch of epoch 4 is torn: it and everything after it go.
    let first_of_4 = {
        let manager = open_manager(dir.path(), config.clone());
        let r = manager.get(&tp()).unwrap().read(80, 1, i64::MAX).unwrap();
        (r.ranges[0].file.path().to_path_buf(), r.ranges[0].position)
    };
    std::fs::OpenOptions::new().write(true).open(&first_of_4.0).unwrap().set_len(first_of_4.1 + 10).unwrap();
    let manager = open_manager(dir.path(), config);
    let log = manager.get(&tp()).unwrap();
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (3, 20)]);
    assert_eq!(log.end_offset_for_epoch(4), (-1, -1));
    manager.shutdown().unwrap();
}

#[test]
fn a_follower_behind_its_leaders_log_start_starts_over_there() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    for epoch in [0, 2] {
        log.append_as_leader(&mut batch(5, 10, 0, Compression::None), epoch).unwrap();
    }
    log.set_high_watermark(10);
    // The leader deleted records below 40: this log (ending at 10) can only start over at 40.
    log.truncate_fully_and_start_at(40).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.high_watermark()), (40, 40, 40));
    assert_eq!((log.epoch_entries(), log.segment_base_offsets()), (vec![], vec![40]));
    log.append_as_follower(&with_base_offset(with_epoch(batch(3, 10, 0, Compression::None), 4), 40)).unwrap();
    assert_eq!((log.log_end_offset(), log.epoch_entries()), (43, vec![(4, 40)]));
    assert_eq!(stored_epochs(&log), vec![4]);
    // Leader log starts reach followers through delete_records_before, bounded by the high watermark.
    log.set_high_watermark(43);
    assert_eq!(log.delete_records_before(42).unwrap(), 42);
    manager.shutdown().unwrap();
    drop((manager, log));
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get(&tp()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (42, 43));
    manager.shutdown().unwrap();
}
