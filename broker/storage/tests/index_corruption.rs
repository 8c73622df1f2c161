//! Index files of closed segments damaged on disk (as a bad disk, a stray write or a hostile user would leave
//! them): every offset must still read back byte for byte, and timestamp lookups stay exact. The damage is
//! noticed (counted), the indexes are rebuilt, and the rebuild survives a restart.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::*;
use strata_storage::{Log, LogConfig, WriteMode};

const TS0: i64 = 1_700_000_000_000;

/// How an entry of a closed segment's `.index` is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The position points past the end of the `.log`.
    PositionPastEnd,
    /// The position stays between its neighbours (so the index still looks sorted) but inside a batch.
    PositionInsideBatch,
    /// The position is that of the batch after the one named: a real batch, but a later one.
    PositionOfAnotherBatch,
    /// The relative offset names an earlier offset (still above the previous entry's).
    OffsetLowered,
    /// A time index entry names a later batch (the segment's last entry's), so a lookup would start too late.
    TimeIndexOffsetRaised,
}

const DAMAGES: [Damage; 5] = [
    Damage::PositionPastEnd,
    Damage::PositionInsideBatch,
    Damage::PositionOfAnotherBatch,
    Damage::OffsetLowered,
    Damage::TimeIndexOffsetRaised,
];

fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("events-0/{base:020}{suffix}"))
}

fn read_u32(path: &Path, at: u64) -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open(path).unwrap().read_exact_at(&mut b, at).unwrap();
    u32::from_be_bytes(b)
}

fn write_bytes(path: &Path, at: u64, bytes: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, at).unwrap();
}

/// Damages the index of a closed segment with at least three entries; returns that segment's base offset.
fn damage(dir: &Path, bases: &[i64], damage: Damage) -> i64 {
    let (base, index) = bases[..bases.len() - 1]
        .iter()
        .map(|&b| (b, segment_file(dir, b, ".index")))
        .find(|(_, p)| std::fs::metadata(p).unwrap().len() >= 24)
        .expect("a closed segment with three index entries");
    let entry = 8u64; // the second entry
    let (prev_pos, pos) = (read_u32(&index, 4), read_u32(&index, entry + 4));
    assert!(pos > prev_pos);
    match damage {
        Damage::PositionPastEnd => {
            let len = std::fs::metadata(segment_file(dir, base, ".log")).unwrap().len() as u32;
            write_bytes(&index, entry + 4, &(len + 100).to_be_bytes());
        }
        Damage::PositionInsideBatch => write_bytes(&index, entry + 4, &(prev_pos + 7).to_be_bytes()),
        Damage::PositionOfAnotherBatch => {
            let log = segment_file(dir, base, ".log");
            let size = read_u32(&log, u64::from(pos) + 8) + 12;
            write_bytes(&index, entry + 4, &(pos + size).to_be_bytes());
        }
        Damage::OffsetLowered => {
            let prev_rel = read_u32(&index, 0);
            write_bytes(&index, entry, &(prev_rel + 1).to_be_bytes());
        }
        Damage::TimeIndexOffsetRaised => {
            let raw = std::fs::read(segment_file(dir, base, ".timeindex")).unwrap();
            let ts: Vec<i64> = raw.chunks(12).map(|e| i64::from_be_bytes(e[..8].try_into().unwrap()) - TS0).collect();
            // An entry followed by a gap holding some batch's first timestamp (TS0 + 10 i): looking that up
            // starts at this entry, which now names the segment's last batch.
            let k = (1..ts.len() - 1).find(|&k| (ts[k + 1] - 1) / 10 * 10 > ts[k]).expect("a gap in the time index");
            let last_offset = &raw[raw.len() - 4..];
            write_bytes(&segment_file(dir, base, ".timeindex"), k as u64 * 12 + 8, last_offset);
        }
    }
    base
}

/// Every offset of every batch reads back as exactly its batch, and every batch's first timestamp finds it.
fn assert_all_readable(log: &Log, stored: &[Stored], ctx: &str) {
    for s in stored {
        for offset in s.base_offset..s.next_offset {
            let r = log.read(offset, 1, i64::MAX).unwrap_or_else(|e| panic!("{ctx}: read {offset}: {e}"));
            let bytes = range_bytes(&r);
            assert_eq!(&bytes[..s.bytes.len()], &s.bytes[..], "{ctx}: offset {offset} returned another batch");
        }
    }
    for (i, s) in stored.iter().enumerate() {
        let found = log.offset_for_timestamp(TS0 + i as i64 * 10).unwrap().unwrap_or_else(|| panic!("{ctx}: batch {i} by time"));
        assert_eq!(found.offset, s.base_offset, "{ctx}: timestamp lookup of batch {i}");
    }
}

fn config(mode: WriteMode) -> LogConfig {
    LogConfig { segment_bytes: 16 * 1024, segment_index_bytes: 4096, index_interval_bytes: 256, ..small_config(mode) }
}

#[test]
fn damaged_indexes_of_closed_segments_never_return_other_records() {
    for mode in [WriteMode::Write, WriteMode::Mmap] {
        for d in DAMAGES {
            let ctx = format!("{mode:?} {d:?}");
            let dir = tempfile::tempdir().unwrap();
            let config = config(mode);
            let (stored, bases) = cleanly_closed_log(dir.path(), &config, 150, TS0);
            assert!(bases.len() >= 3, "{ctx}: {bases:?}");

            let damaged = damage(dir.path(), &bases, d);
            let manager = open_manager(dir.path(), config.clone());
            let log = manager.get(&tp()).unwrap();
            assert_all_readable(&log, &stored, &ctx);
            assert_eq!(manager.stats().corrupt_indexes(), 1, "{ctx}: the damage is noticed once (segment {damaged})");
            assert_all_readable(&log, &stored, &ctx);
            assert_eq!(manager.stats().corrupt_indexes(), 1, "{ctx}: and fixed");
            drop(log);
            manager.shutdown().unwrap();
            drop(manager);

            // The rebuilt index was written to disk: a restart finds nothing wrong.
            let manager = open_manager(dir.path(), config.clone());
            let log = manager.get(&tp()).unwrap();
            assert_all_readable(&log, &stored, &ctx);
            assert_eq!(manager.stats().corrupt_indexes(), 0, "{ctx}: after restart");
            drop(log);
            manager.shutdown().unwrap();
        }
    }
}

#[test]
fn closed_segments_are_opened_on_demand_and_released_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(WriteMode::Write);
    let (stored, bases) = cleanly_closed_log(dir.path(), &config, 150, TS0);
    let segments = bases.len();
    assert!(segments >= 3);

    let manager = open_manager(dir.path(), config);
    // Only the active segment is open after loading.
    assert_eq!(manager.stats().open_segments(), 1);
    let log = manager.get(&tp()).unwrap();
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(manager.stats().open_segments(), 2, "the first segment was opened for the read");
    assert_eq!(log.release_idle_segments(i64::MAX, 0), 1);
    assert_eq!(manager.stats().open_segments(), 1, "and closed again; the active one stays open");
    // The read taken before still reads through its own handle.
    assert_eq!(&range_bytes(&r)[..stored[0].bytes.len()], &stored[0].bytes[..]);
    assert_all_readable(&log, &stored, "after release");
    assert_eq!(manager.stats().open_segments() as usize, segments);
    assert_eq!(log.release_idle_segments(now_ms() - 1_000, 60_000), 0, "recently read");
    assert_eq!(log.release_idle_segments(now_ms() + 3_600_000, 60_000), segments - 1);
}
