//! Crash recovery: logs are "crashed" (dropped without a clean shutdown), then damaged the way a crash or a
//! bad disk does (cut at any byte, a flipped byte, lost or garbage indexes), and reopened. Exactly the valid
//! prefix must survive, be readable, and accept new appends.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::*;
use proptest::prelude::*;
use strata_storage::{LogConfig, WriteMode};

fn mode_strategy() -> impl Strategy<Value = WriteMode> {
    prop_oneof![Just(WriteMode::Write), Just(WriteMode::Mmap)]
}

/// Writes a log and crashes it; returns the temp dir, the config and what was stored.
fn crashed_log(mode: WriteMode, batches: usize) -> (tempfile::TempDir, LogConfig, Vec<Stored>) {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(mode);
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    let stored = append_varied(&log, batches, now_ms());
    drop(log);
    drop(manager); // no shutdown: no clean marker, nothing flushed, mmap tails preallocated
    (dir, config, stored)
}

/// Reopens and checks the log holds exactly `survivors`, then that it takes appends again.
fn assert_exactly(dir: &std::path::Path, config: &LogConfig, survivors: &[Stored], next_offset: i64) {
    let manager = open_manager(dir, config.clone());
    assert!(!manager.had_clean_shutdown());
    let log = manager.get(&tp()).unwrap();
    assert_eq!(log.log_end_offset(), next_offset, "log end offset");
    let expected: Vec<u8> = survivors.iter().flat_map(|s| s.bytes.clone()).collect();
    assert_eq!(read_all(&log, 0, 1 << 16), expected, "exactly the valid prefix survives");
    for s in survivors.iter().step_by(7) {
        let r = log.read(s.base_offset, 1, i64::MAX).unwrap();
        assert_eq!(headers(&range_bytes(&r))[0].base_offset, s.base_offset, "index lookup after rebuild");
    }
    let info = append_committed(&log, &mut batch(2, 10, now_ms(), Compression::None)).unwrap();
    assert_eq!(info.first_offset, next_offset);
    manager.shutdown().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_cut_at_any_byte_keeps_the_batches_before_it(mode in mode_strategy(), batch_index in 0usize..120, frac in 0.0f64..1.0) {
        let (dir, config, stored) = crashed_log(mode, 120);
        let target = &stored[batch_index];
        // Strictly inside the batch (a cut exactly between batches of a rolled segment is a valid shorter log).
        let cut = target.position + 1 + (frac * (target.bytes.len() - 1) as f64) as u64;
        OpenOptions::new().write(true).open(&target.segment).unwrap().set_len(cut).unwrap();
        let survivors: Vec<Stored> = stored.iter().take_while(|s| s.base_offset < target.base_offset).cloned().collect();
        assert_exactly(dir.path(), &config, &survivors, target.base_offset);
    }

    #[test]
    fn a_flipped_byte_drops_its_batch_and_everything_after(mode in mode_strategy(), batch_index in 0usize..120, frac in 0.0f64..1.0, bit in 0u8..8) {
        let (dir, config, stored) = crashed_log(mode, 120);
        let target = &stored[batch_index];
        // Any byte the CRC covers (attributes on), or the length, magic and CRC fields themselves. The base offset
        // and leader epoch are outside Kafka's CRC by design (they are rewritten by the broker).
        let covered: Vec<u64> = (8..12).chain(16..target.bytes.len() as u64).collect();
        let at = target.position + covered[(frac * covered.len() as f64) as usize % covered.len()];
        let f = OpenOptions::new().read(true).write(true).open(&target.segment).unwrap();
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, at).unwrap();
        f.write_all_at(&[byte[0] ^ (1 << bit)], at).unwrap();
        let survivors: Vec<Stored> = stored.iter().take_while(|s| s.base_offset < target.base_offset).cloned().collect();
        assert_exactly(dir.path(), &config, &survivors, target.base_offset);
    }
}

#[test]
fn lost_or_garbage_indexes_are_rebuilt_after_a_clean_shutdown() {
    for mode in [WriteMode::Write, WriteMode::Mmap] {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(mode);
        let (stored, bases) = cleanly_closed_log(dir.path(), &config, 150, now_ms());
        let seg = |base: i64, suffix: &str| dir.path().join(format!("events-0/{base:020}{suffix}"));
        std::fs::remove_file(seg(bases[1], ".index")).unwrap();
        std::fs::remove_file(seg(bases[2], ".timeindex")).unwrap();
        std::fs::write(seg(bases[3], ".index"), b"not an index").unwrap();
        std::fs::write(seg(bases[4], ".index"), [0xffu8; 16]).unwrap(); // offsets far beyond the segment's log
        let manager = open_manager(dir.path(), config.clone());
        assert!(manager.had_clean_shutdown());
        let report = manager.load_reports()[&tp()].clone();
        // Missing or wrongly sized indexes are rebuilt at load; the one whose entries lie, at its first read.
        assert_eq!(report.rebuilt_indexes, 3, "{mode:?}: {report:?}");
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(manager.stats().corrupt_indexes(), 0);
        let log = manager.get(&tp()).unwrap();
        assert_eq!(headers(&read_all(&log, 0, 1 << 20)).len(), stored.len(), "{mode:?}");
        assert_eq!(manager.stats().corrupt_indexes(), 1, "{mode:?}");
        assert_eq!(std::fs::metadata(seg(bases[4], ".index")).unwrap().len() % 8, 0);
        drop(log);
        drop(manager);
        // Not clean any more (the marker is gone once loaded): a full recovery finds the same data.
        let next = stored.last().unwrap().next_offset;
        assert_exactly(dir.path(), &config, &stored, next);
    }
}

#[test]
fn an_mmap_crash_leaves_a_preallocated_tail_that_recovery_cuts() {
    let (dir, config, stored) = crashed_log(WriteMode::Mmap, 10);
    let active = stored.last().unwrap();
    let len = std::fs::metadata(&active.segment).unwrap().len();
    assert_eq!(len, config.segment_bytes, "the active segment was preallocated");
    let next = active.next_offset;
    assert_exactly(dir.path(), &config, &stored, next);
    let len = std::fs::metadata(&active.segment).unwrap().len();
    assert!(len < config.segment_bytes, "clean close cut the tail: {len}");
}

#[test]
fn recovery_starts_at_the_recovery_point_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(WriteMode::Write);
    let manager = open_manager(dir.path(), config.clone());
    let log = manager.get_or_create(&tp(), config.clone()).unwrap();
    append_varied(&log, 100, now_ms());
    log.flush().unwrap();
    manager.checkpoint().unwrap();
    let flushed_segments = log.segment_count();
    append_varied(&log, 30, now_ms());
    let total = log.segment_count();
    drop(log);
    drop(manager);
    let manager = open_manager(dir.path(), config);
    let report = manager.load_reports()[&tp()].clone();
    // The segment holding the recovery point and the ones after it; not the flushed ones before.
    assert_eq!(report.recovered_segments, total - flushed_segments + 1, "{report:?}");
}
