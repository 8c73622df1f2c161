//! Idempotent producers at the log: retries are answered with the original offsets and not stored twice,
//! gaps and fenced epochs are refused, and the state survives clean restarts (snapshots) and crashes (replay).

mod common;

use common::*;
use strata_storage::test_util::set_producer;
use strata_storage::{LogConfig, StorageError, WriteMode};

fn idem(records: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = batch(records, 50, now_ms(), Compression::Lz4);
    set_producer(&mut b, pid, epoch, seq);
    b
}

#[test]
fn retries_are_duplicates_and_gaps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open_manager(dir.path(), LogConfig::default());
    let log = manager.get_or_create(&tp(), LogConfig::default()).unwrap();
    let first = append_committed(&log, &mut idem(3, 42, 0, 0)).unwrap();
    let second = append_committed(&log, &mut idem(2, 42, 0, 3)).unwrap();
    assert_eq!((second.first_offset, second.last_offset), (3, 4));
    let size = log.size_bytes();
    // The producer did not see the acks and resends both: same offsets back, nothing stored.
    let retry = append_committed(&log, &mut idem(3, 42, 0, 0)).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.last_offset), (first.first_offset, first.last_offset));
    assert!(append_committed(&log, &mut idem(2, 42, 0, 3)).unwrap().duplicate);
    assert_eq!((log.log_end_offset(), log.size_bytes()), (5, size));
    // A lost batch (gap) is out of order; a zombie with an older epoch is fenced.
    assert!(matches!(
        append_committed(&log, &mut idem(1, 42, 0, 7)),
        Err(StorageError::OutOfOrderSequence { expected: 5, received: 7, .. })
    ));
    append_committed(&log, &mut idem(1, 42, 1, 0)).unwrap();
    assert!(matches!(append_committed(&log, &mut idem(1, 42, 0, 5)), Err(StorageError::InvalidProducerEpoch { .. })));
    // Other producers and non-idempotent batches are independent.
    append_committed(&log, &mut idem(1, 43, 0, 0)).unwrap();
    append_committed(&log, &mut batch(1, 10, 0, Compression::None)).unwrap();
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn producer_state_survives_restarts_and_crashes() {
    for (mode, clean) in [(WriteMode::Write, true), (WriteMode::Write, false), (WriteMode::Mmap, false)] {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(mode);
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get_or_create(&tp(), config.clone()).unwrap();
        let mut seq = 0;
        let mut last = None;
        for _ in 0..60 {
            // Several segments: snapshots at each roll, a replay of the last one after a crash.
            last = Some((append_committed(&log, &mut idem(4, 7, 2, seq)).unwrap(), seq));
            seq += 4;
        }
        assert!(log.segment_count() > 3);
        drop(log);
        if clean {
            manager.shutdown().unwrap();
        }
        drop(manager);
        let manager = open_manager(dir.path(), config.clone());
        let log = manager.get(&tp()).unwrap();
        let (info, last_seq) = last.unwrap();
        let retry = append_committed(&log, &mut idem(4, 7, 2, last_seq)).unwrap();
        assert!(retry.duplicate, "{mode:?} clean={clean}");
        assert_eq!(retry.first_offset, info.first_offset);
        assert!(matches!(append_committed(&log, &mut idem(1, 7, 2, seq + 1)), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(append_committed(&log, &mut idem(1, 7, 2, seq)).unwrap().first_offset, 240);
        manager.shutdown().unwrap();
    }
}
