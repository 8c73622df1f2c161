//! ENOSPC on a real (tiny tmpfs) filesystem: the append fails with DiskFull, the log stays consistent, and
//! appends succeed again once space is freed. Needs root to mount the tmpfs (CI runs as root).

mod common;

use common::*;
use strata_storage::test_util::TinyFs;
use strata_storage::{LogConfig, StorageError, WriteMode};

#[test]
fn disk_full_fails_the_append_cleanly_and_recovers_when_space_returns() {
    for mode in [WriteMode::Write, WriteMode::Mmap] {
        let fs = TinyFs::mount("4m");
        let data = fs.path().join("data");
        let config = LogConfig { segment_bytes: 256 * 1024, segment_index_bytes: 4096, ..LogConfig::default() };
        let config = LogConfig { write_mode: mode, ..config };
        let manager = open_manager(&data, config.clone());
        let log = manager.get_or_create(&tp(), config.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..20 {
            let b = batch(4, 1000, i, Compression::None);
            let base = log.log_end_offset();
            append_committed(&log, &mut b.clone()).unwrap();
            expected.extend(with_base_offset(b, base));
        }
        let filler = fs.fill();
        // Keep appending until the disk is full: in write mode the current segment fills, in mmap mode the
        // next roll cannot reserve its segment. Either way a typed error, and nothing torn.
        let mut saw_full = false;
        for i in 0..2_000 {
            let b = batch(4, 1000, i, Compression::None);
            let base = log.log_end_offset();
            match append_committed(&log, &mut b.clone()) {
                Ok(_) => expected.extend(with_base_offset(b, base)),
                Err(StorageError::DiskFull { .. }) => {
                    saw_full = true;
                    break;
                }
                Err(e) => panic!("{mode:?}: expected DiskFull, got {e}"),
            }
        }
        assert!(saw_full, "{mode:?}: the disk never filled");
        let end = log.log_end_offset();
        assert_eq!(read_all(&log, 0, 1 << 20), expected, "{mode:?}: the log is unchanged by the failed append");
        // Space comes back: appends work again, at the next offset.
        std::fs::remove_file(filler).unwrap();
        let info = append_committed(&log, &mut batch(4, 1000, 0, Compression::None)).unwrap();
        assert_eq!(info.first_offset, end);
        drop(log);
        manager.shutdown().unwrap();
        drop(manager);
        // And the directory reopens cleanly with everything acknowledged.
        let manager = open_manager(&data, config);
        assert_eq!(manager.get(&tp()).unwrap().log_end_offset(), end + 4);
        drop(manager);
    }
}

/// mmap mode with less free space than segment.bytes: appends still succeed while they fit (such a segment is
/// written with pwrite instead of reserving segment.bytes up front), a rolled segment keeps no preallocated
/// tail, and the disk filling up is a clean DiskFull with the log intact, then across a restart.
#[test]
fn mmap_mode_appends_while_they_fit_even_without_room_for_a_whole_segment() {
    let fs = TinyFs::mount("4m");
    let data = fs.path().join("data");
    let config =
        LogConfig { segment_bytes: 8 << 20, segment_index_bytes: 4096, write_mode: WriteMode::Mmap, ..LogConfig::default() };
    let manager = open_manager(&data, config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).expect("a segment bigger than the disk still opens");
    let mut expected = Vec::new();
    for i in 0..100 {
        let b = batch(4, 1000, i, Compression::None);
        let base = log.log_end_offset();
        append_committed(&log, &mut b.clone()).expect("an append that fits succeeds");
        expected.extend(with_base_offset(b, base));
    }
    log.roll().unwrap();
    let sealed = data.join(format!("{}", tp())).join("00000000000000000000.log");
    assert_eq!(std::fs::metadata(&sealed).unwrap().len(), expected.len() as u64, "no preallocated tail after the roll");
    let filler = fs.fill();
    let full = append_committed(&log, &mut batch(4, 1000, 0, Compression::None)).unwrap_err();
    assert!(matches!(full, StorageError::DiskFull { .. }), "{full}");
    assert_eq!(read_all(&log, 0, 1 << 20), expected, "the failed append left nothing behind");
    std::fs::remove_file(filler).unwrap();
    let b = batch(4, 1000, 0, Compression::None);
    let base = log.log_end_offset();
    append_committed(&log, &mut b.clone()).expect("space is back");
    expected.extend(with_base_offset(b, base));
    let end = log.log_end_offset();
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let manager = open_manager(&data, config);
    let log = manager.get(&tp()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log, 0, 1 << 20), expected);
}
