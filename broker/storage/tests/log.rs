//! The partition log through its public API: appends, zero-copy read ranges, rolling, lookups, retention,
//! runtime config, flushing, and restarts after a clean shutdown, in both write modes.

mod common;

use common::*;
use strata_storage::{LogConfig, StorageError, WriteMode};

const MODES: [WriteMode; 2] = [WriteMode::Write, WriteMode::Mmap];

#[test]
fn batches_of_every_codec_are_stored_and_returned_byte_for_byte() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let manager = open_manager(dir.path(), LogConfig { write_mode: mode, ..LogConfig::default() });
        let log = manager.get_or_create(&tp(), manager.default_config().clone()).unwrap();
        let mut expected = Vec::new();
        let mut next = 0;
        for (i, codec) in CODECS.into_iter().enumerate() {
            let mut b = batch(20 + i, 200, 1_000 * i as i64, codec);
            let info = append_committed(&log, &mut b).unwrap();
            assert_eq!((info.first_offset, info.last_offset), (next, next + 19 + i as i64));
            assert_eq!(info.record_count, 20 + i as u64);
            expected.extend(with_base_offset(batch(20 + i, 200, 1_000 * i as i64, codec), next));
            next += 20 + i as i64;
        }
        assert_eq!(log.log_end_offset(), next);
        assert_eq!(log.high_watermark(), next);
        assert_eq!(read_all(&log, 0, 1 << 20), expected, "{mode:?}");
        // Reading from the middle of a batch starts at that batch.
        let r = log.read(25, 1 << 20, i64::MAX).unwrap();
        assert_eq!(headers(&range_bytes(&r))[0].base_offset, 20);
        manager.shutdown().unwrap();
    }
}

#[test]
fn reads_respect_max_bytes_upper_bound_and_return_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    for i in 0..10 {
        append_committed(&log, &mut batch(10, 100, i, Compression::None)).unwrap();
    }
    let one = batch(10, 100, 0, Compression::None).len() as u64;
    // Smaller than one batch: still one whole batch, so a consumer can progress.
    let r = log.read(0, 10, i64::MAX).unwrap();
    assert_eq!(r.bytes, one);
    // Room for 3.5 batches: 3 whole ones.
    let r = log.read(0, (one * 7 / 2) as usize, i64::MAX).unwrap();
    assert_eq!(headers(&range_bytes(&r)).len(), 3);
    // The upper bound (high watermark) cuts whole batches: offsets 0..=34 readable means batches 0..3.
    let r = log.read(0, 1 << 20, 35).unwrap();
    assert_eq!(headers(&range_bytes(&r)).iter().map(|h| h.base_offset).collect::<Vec<_>>(), vec![0, 10, 20]);
    assert!(log.read(30, 1 << 20, 30).unwrap().ranges.is_empty());
    // At the end: empty. Beyond, or below the start: a typed error with the bounds.
    assert!(log.read(100, 1 << 20, i64::MAX).unwrap().ranges.is_empty());
    match log.read(101, 1 << 20, i64::MAX) {
        Err(StorageError::OffsetOutOfRange { offset: 101, log_start_offset: 0, log_end_offset: 100 }) => {}
        other => panic!("expected out of range, got {other:?}"),
    }
    assert!(matches!(log.read(-1, 10, i64::MAX), Err(StorageError::OffsetOutOfRange { .. })));
}

#[test]
fn rolls_segments_and_reads_across_them_in_both_modes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(mode);
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config).unwrap();
        let mut expected = Vec::new();
        for i in 0..200 {
            let b = batch(1 + i % 4, 50 + i % 200, i as i64, CODECS[i % 5]);
            let base = log.log_end_offset();
            append_committed(&log, &mut b.clone()).unwrap();
            expected.extend(with_base_offset(b, base));
        }
        assert!(log.segment_count() > 10, "{mode:?}: {} segments", log.segment_count());
        // Kafka's layout: 20-digit base offsets.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("events-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"00000000000000000000.log".to_string()));
        assert!(names.iter().filter(|n| n.ends_with(".timeindex")).count() == log.segment_count());
        assert_eq!(read_all(&log, 0, 1 << 20), expected);
        assert_eq!(read_all(&log, 0, 700), expected);
        // Every offset starts a read at its own batch.
        for offset in 0..log.log_end_offset() {
            let r = log.read(offset, 1, i64::MAX).unwrap();
            let h = headers(&range_bytes(&r))[0];
            assert!(h.base_offset <= offset && offset <= h.last_offset(), "{mode:?} offset {offset}: {h:?}");
        }
        // Sealed segments have trimmed indexes; the mmap-mode tail is cut.
        manager.shutdown().unwrap();
        for base in log.segment_base_offsets() {
            let size = std::fs::metadata(dir.path().join(format!("events-0/{base:020}.log"))).unwrap().len();
            assert!(size <= 4096 + 2_000, "{mode:?}: segment {base} is {size} bytes");
        }
    }
}

#[test]
fn restart_after_clean_shutdown_keeps_everything() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(mode);
        let mut expected = Vec::new();
        {
            let manager = open_manager(dir.path(), config.clone());
            let log = manager.get_or_create(&tp(), config.clone()).unwrap();
            for i in 0..100 {
                let b = batch(3, 100, 10_000 + i, Compression::Lz4);
                let base = log.log_end_offset();
                append_committed(&log, &mut b.clone()).unwrap();
                expected.extend(with_base_offset(b, base));
            }
            manager.shutdown().unwrap();
            assert!(dir.path().join(strata_storage::CLEAN_SHUTDOWN_FILE).exists());
        }
        let manager = open_manager(dir.path(), config.clone());
        assert!(manager.had_clean_shutdown());
        assert!(!dir.path().join(strata_storage::CLEAN_SHUTDOWN_FILE).exists(), "marker removed once loaded");
        let report = &manager.load_reports()[&tp()];
        assert_eq!(report.recovered_segments, 0, "{mode:?}: {report:?}");
        let log = manager.get(&tp()).unwrap();
        assert_eq!(log.log_end_offset(), 300);
        assert_eq!(read_all(&log, 0, 1 << 20), expected);
        // Appends continue where they left off, and timestamps survived via the time index.
        append_committed(&log, &mut batch(1, 10, 50, Compression::None)).unwrap();
        assert_eq!(log.log_end_offset(), 301);
        // 10_050 is the third record of the 49th batch.
        assert_eq!(log.offset_for_timestamp(10_050).unwrap().unwrap().offset, 146);
        manager.shutdown().unwrap();
    }
}

#[test]
fn timestamp_lookups_find_the_exact_record() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(mode);
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config).unwrap();
        // Batch i holds 5 records with timestamps 1000*i .. 1000*i+4; compressed batches are decoded.
        for i in 0..60i64 {
            append_committed(&log, &mut batch(5, 30, 1_000 * i, CODECS[i as usize % 5])).unwrap();
        }
        for (target, offset) in [(0, 0), (2, 2), (4, 4), (5, 5), (1_000, 5), (7_003, 38), (59_004, 299)] {
            let found = log.offset_for_timestamp(target).unwrap().unwrap_or_else(|| panic!("{mode:?} {target}"));
            assert_eq!(found.offset, offset, "{mode:?} target {target}");
            assert!(found.timestamp >= target);
        }
        assert_eq!(log.offset_for_timestamp(59_005).unwrap(), None);
        let max = log.max_timestamp_offset().unwrap().unwrap();
        assert_eq!((max.timestamp, max.offset), (59_004, 299));
        // Below the log start offset nothing is returned.
        manager.delete_records(&tp(), 102).unwrap();
        assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 102);
    }
}

#[test]
fn retention_by_time_and_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    let now = 1_000_000_000;
    for i in 0..100 {
        append_committed(&log, &mut batch(2, 200, now - 100_000 + i * 1_000, Compression::None)).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 5);
    // Nothing is old enough yet.
    assert_eq!(log.apply_retention(now).unwrap(), 0);
    // Retention changed at run time: records older than 50 s go (segment by segment).
    log.update_config(LogConfig { retention_ms: 50_000, ..config.clone() });
    let deleted = log.apply_retention(now).unwrap();
    assert!(deleted > 0 && deleted < segments);
    let start = log.log_start_offset();
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(matches!(log.read(start - 1, 100, i64::MAX), Err(StorageError::OffsetOutOfRange { .. })));
    let first = headers(&range_bytes(&log.read(start, 100, i64::MAX).unwrap()))[0];
    assert!(first.max_timestamp >= now - 51_000 - 1_000, "{first:?}");
    // By size: what remains stays at least retention.bytes, within one segment of it.
    log.update_config(LogConfig { retention_ms: -1, retention_bytes: 10_000, ..config.clone() });
    log.apply_retention(now).unwrap();
    assert!(log.size_bytes() >= 10_000 && log.size_bytes() < 10_000 + 4_096 + 500, "{}", log.size_bytes());
    // Everything expired: the active segment is rolled and deleted too; the end offset stays.
    log.update_config(LogConfig { retention_ms: 1, retention_bytes: -1, ..config });
    log.apply_retention(now).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 200);
    assert_eq!(log.log_end_offset(), 200);
    assert_eq!(log.size_bytes(), 0);
    append_committed(&log, &mut batch(1, 1, now, Compression::None)).unwrap();
    assert_eq!(log.read(200, 100, i64::MAX).unwrap().ranges.len(), 1);
    // Deleted files are renamed and removed after file.delete.delay.ms.
    let dir_files = || std::fs::read_dir(dir.path().join("events-0")).unwrap().count();
    let with_deleted = dir_files();
    log.delete_expired_files(i64::MAX).unwrap();
    assert!(dir_files() < with_deleted);
}

#[test]
fn a_read_in_flight_survives_the_deletion_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    for i in 0..50 {
        append_committed(&log, &mut batch(2, 200, i, Compression::None)).unwrap();
    }
    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    let before = range_bytes(&r);
    log.update_config(LogConfig { retention_bytes: 0, ..config });
    assert!(log.apply_retention(0).unwrap() > 0);
    log.delete_expired_files(i64::MAX).unwrap();
    assert!(!dir.path().join("events-0/00000000000000000000.log").exists());
    assert_eq!(range_bytes(&r), before, "the open descriptor still reads the deleted segment");
}

#[test]
fn delete_records_moves_the_log_start_and_drops_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    for i in 0..100 {
        append_committed(&log, &mut batch(2, 100, i, Compression::None)).unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(manager.delete_records(&tp(), 101).unwrap(), 101);
    assert!(log.segment_count() < segments);
    assert!(log.segment_base_offsets()[0] <= 101);
    // The batch containing the start offset is still served whole.
    assert_eq!(headers(&range_bytes(&log.read(101, 1, i64::MAX).unwrap()))[0].base_offset, 100);
    assert!(matches!(manager.delete_records(&tp(), 201), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(manager.delete_records(&tp(), 50).unwrap(), 101, "never moves back");
    // Durable through the log-start-offset checkpoint.
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open_manager(dir.path(), config);
    assert_eq!(manager.get(&tp()).unwrap().log_start_offset(), 101);
}

#[test]
fn invalid_appends_are_rejected_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig { max_message_bytes: 2_000, ..LogConfig::default() });
    let log = manager.get_or_create(&tp(), manager.default_config().clone()).unwrap();
    append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
    let size = log.size_bytes();
    let mut corrupt = batch(3, 10, 0, Compression::None);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    // A good batch followed by a corrupt one: the whole request is refused.
    let mut request = batch(1, 10, 0, Compression::None);
    request.extend(&corrupt);
    assert!(matches!(append_committed(&log, &mut request), Err(StorageError::CorruptBatch { .. })));
    assert!(matches!(
        append_committed(&log, &mut batch(1, 5_000, 0, Compression::None)),
        Err(StorageError::RecordTooLarge { .. })
    ));
    let mut old_magic = batch(1, 10, 0, Compression::None);
    old_magic[16] = 1;
    assert!(matches!(append_committed(&log, &mut old_magic), Err(StorageError::InvalidMagic { magic: 1, .. })));
    assert!(matches!(append_committed(&log, &mut [0u8; 7]), Err(StorageError::CorruptBatch { .. })));
    assert!(matches!(append_committed(&log, &mut []), Err(StorageError::CorruptBatch { .. })));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (1, size));
}

#[test]
fn flush_advances_the_recovery_point_and_flush_messages_triggers_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig { flush_messages: 10, ..LogConfig::default() }).unwrap();
    append_committed(&log, &mut batch(5, 10, 0, Compression::None)).unwrap();
    assert_eq!(log.recovery_point(), 0);
    append_committed(&log, &mut batch(5, 10, 0, Compression::None)).unwrap();
    assert_eq!(log.recovery_point(), 10, "flush.messages=10 reached");
    append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 11);
    manager.checkpoint().unwrap();
    let text = std::fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n1\nevents 0 11\n");
}

#[test]
fn the_data_directory_is_locked_and_logs_are_deleted_with_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let mut c = strata_storage::LogManagerConfig::new(dir.path());
    c.default_config = LogConfig::default();
    assert!(strata_storage::LogManager::open(c).is_err(), "a second broker on the same directory is refused");
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
    manager.delete(&tp()).unwrap();
    assert!(!dir.path().join("events-0").exists());
    assert!(matches!(append_committed(&log, &mut batch(1, 10, 0, Compression::None)), Err(StorageError::LogClosed(_))));
    assert!(manager.get(&tp()).is_none());
    assert!(matches!(manager.delete(&tp()), Err(StorageError::UnknownLog(_))));
}

#[test]
fn background_tasks_apply_retention_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = strata_storage::LogManagerConfig::new(dir.path());
    c.default_config = LogConfig { retention_ms: 1, file_delete_delay_ms: 0, ..small_config(WriteMode::Write) };
    c.retention_check_interval_ms = 20;
    c.flush_check_interval_ms = 10;
    let manager = strata_storage::LogManager::open(c).unwrap();
    let log = manager.get_or_create(&tp(), manager.default_config().clone()).unwrap();
    for _ in 0..40 {
        append_committed(&log, &mut batch(2, 200, 0, Compression::None)).unwrap();
    }
    let tasks = manager.start_background();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.log_start_offset() < 80 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    tasks.stop();
    assert_eq!(log.log_start_offset(), 80);
}

#[test]
fn segment_ms_rolls_by_record_time_not_on_every_old_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_ms: 60_000, ..LogConfig::default() };
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config).unwrap();
    // Ancient timestamps (producers with old data) do not roll a segment per append.
    for _ in 0..10 {
        append_committed(&log, &mut batch(1, 10, 1_000, Compression::None)).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    // A batch more than segment.ms newer than the segment's first batch rolls.
    append_committed(&log, &mut batch(1, 10, 1_000 + 60_001, Compression::None)).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 10]);
}
