//! The leader-epoch cache of one partition (Kafka's LeaderEpochFileCache): for every leader epoch that wrote
//! to the log, the offset of its first batch. A follower asks the leader where its own latest epoch ended
//! (OffsetForLeaderEpoch) to find where the two logs diverge, and consumers ask the same to detect truncation.
//! Persisted as `leader-epoch-checkpoint` in the partition directory, in Kafka's format: a version line (0), a
//! count line, then `epoch start_offset` lines. Pure rules here; [`crate::log`] keeps the file in step.

use std::fs;
use std::path::Path;

use crate::checkpoint::{format_lines, parse_lines, write_atomically};
use crate::error::{Result, StorageError};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET: the answer for an epoch the log cannot place.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries in increasing order of both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Only an epoch newer than the latest starts anything
    /// (later batches of a known epoch continue it); negative epochs (batches of producers that never went
    /// through a leader) are not epochs. Entries at or after `start_offset` are dropped, so start offsets keep
    /// increasing. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry { epoch, start_offset });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `requested` and where it ends, the start of the next
    /// epoch (the log end offset for the latest epoch). An epoch older than every entry (its data deleted)
    /// ends where the oldest known one starts; the undefined epoch, or one newer than the latest, is
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let next = self.entries.partition_point(|e| e.epoch <= requested);
        match (next.checked_sub(1).map(|i| self.entries[i]), self.entries.get(next)) {
            (_, None) => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            (None, Some(higher)) => (requested, higher.start_offset),
            (Some(floor), Some(higher)) => (floor.epoch, higher.start_offset),
        }
    }

    /// The epoch that wrote `offset`: the latest one starting at or before it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Forgets the epochs starting at or after `end_offset` (the log was truncated there). Returns whether the
    /// cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: epochs starting before it go, except the last of them, which
    /// now starts there (its data continues at the new log start). Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self.entries.partition_point(|e| e.start_offset <= start_offset);
        let Some(last_below) = below.checked_sub(1).map(|i| self.entries[i]) else { return false };
        if below == 1 && last_below.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..below - 1);
        self.entries[0].start_offset = start_offset;
        true
    }
}

/// Parses a `leader-epoch-checkpoint`; entries must increase in both epoch and start offset.
pub fn parse(text: &str) -> std::result::Result<LeaderEpochCache, String> {
    let entries = parse_lines(text, |line| {
        let mut fields = line.split(' ');
        let (Some(epoch), Some(offset), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("malformed line {line:?}"));
        };
        let epoch = epoch.parse().map_err(|_| format!("bad epoch in {line:?}"))?;
        let start_offset = offset.parse().map_err(|_| format!("bad offset in {line:?}"))?;
        Ok(EpochEntry { epoch, start_offset })
    })?;
    if entries.iter().any(|e| e.epoch < 0 || e.start_offset < 0) {
        return Err("negative epoch or offset".into());
    }
    if entries.windows(2).any(|w| w[0].epoch >= w[1].epoch || w[0].start_offset >= w[1].start_offset) {
        return Err("entries do not increase".into());
    }
    Ok(LeaderEpochCache { entries })
}

pub fn format(cache: &LeaderEpochCache) -> String {
    format_lines(cache.entries.iter().map(|e| format!("{} {}", e.epoch, e.start_offset)))
}

/// Reads the checkpoint of the partition in `dir`; `None` if there is none.
pub fn read_checkpoint(dir: &Path) -> Result<Option<LeaderEpochCache>> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT);
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text).map(Some).map_err(|reason| StorageError::CorruptCheckpoint { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read checkpoint", path, e)),
    }
}

pub fn write_checkpoint(dir: &Path, cache: &LeaderEpochCache) -> Result<()> {
    write_atomically(&dir.join(LEADER_EPOCH_CHECKPOINT), &format(cache))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (epoch, start offset) pairs.
    type Entries = &'static [(i32, i64)];

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache { entries: entries.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect() }
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn assign_starts_only_newer_epochs() {
        // (cache before, assigned epoch and offset, changed, cache after)
        let cases: &[(Entries, (i32, i64), bool, Entries)] = &[
            (&[], (0, 0), true, &[(0, 0)]),
            (&[], (3, 10), true, &[(3, 10)]),
            (&[(0, 0)], (0, 5), false, &[(0, 0)]),
            (&[(2, 0)], (1, 5), false, &[(2, 0)]),
            (&[(0, 0)], (2, 5), true, &[(0, 0), (2, 5)]),
            (&[(0, 0)], (-1, 5), false, &[(0, 0)]),
            (&[], (-1, 0), false, &[]),
            // An epoch that wrote nothing is replaced by the next one starting at the same offset.
            (&[(0, 0), (1, 5)], (2, 5), true, &[(0, 0), (2, 5)]),
            (&[(0, 0), (1, 5)], (2, 3), true, &[(0, 0), (2, 3)]),
        ];
        for (before, (epoch, offset), changed, after) in cases {
            let mut c = cache(before);
            assert_eq!(c.assign(*epoch, *offset), *changed, "{before:?} + ({epoch}, {offset})");
            assert_eq!(pairs(&c), *after, "{before:?} + ({epoch}, {offset})");
        }
    }

    #[test]
    fn end_offset_for_follows_kafkas_rules() {
        let c = cache(&[(1, 10), (3, 20), (4, 35)]);
        let leo = 50;
        for (requested, expected) in [
            (UNDEFINED_EPOCH, (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)),
            // Older than every known epoch: ends where the oldest known one starts.
            (0, (0, 10)),
            (1, (1, 20)),
            // An epoch that never wrote: the one before it, ending where the next starts.
            (2, (1, 20)),
            (3, (3, 35)),
            // The latest epoch is still being written: it ends at the log end.
            (4, (4, 50)),
            (5, (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)),
        ] {
            assert_eq!(c.end_offset_for(requested, leo), expected, "epoch {requested}");
        }
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    }

    #[test]
    fn epoch_for_offset_is_the_epoch_that_wrote_it() {
        let c = cache(&[(1, 10), (3, 20)]);
        for (offset, epoch) in [(0, None), (9, None), (10, Some(1)), (19, Some(1)), (20, Some(3)), (1_000, Some(3))] {
            assert_eq!(c.epoch_for_offset(offset), epoch, "offset {offset}");
        }
    }

    #[test]
    fn truncations_from_both_ends() {
        let entries: Entries = &[(1, 10), (3, 20), (4, 35)];
        for (end, changed, after) in [
            (50, false, entries),
            (36, false, entries),
            (35, true, &entries[..2]),
            (21, true, &entries[..2]),
            (20, true, &entries[..1]),
            (10, true, &[][..]),
            (0, true, &[][..]),
        ] {
            let mut c = cache(entries);
            assert_eq!(c.truncate_from_end(end), changed, "end {end}");
            assert_eq!(pairs(&c), after, "end {end}");
        }
        let cases: &[(i64, bool, Entries)] = &[
            (0, false, entries),
            (10, false, entries),
            (15, true, &[(1, 15), (3, 20), (4, 35)]),
            (20, true, &[(3, 20), (4, 35)]),
            (34, true, &[(3, 34), (4, 35)]),
            (40, true, &[(4, 40)]),
        ];
        for (start, changed, after) in cases {
            let mut c = cache(entries);
            assert_eq!(c.truncate_from_start(*start), *changed, "start {start}");
            assert_eq!(pairs(&c), *after, "start {start}");
        }
        assert!(!LeaderEpochCache::default().truncate_from_start(5));
        assert!(!LeaderEpochCache::default().truncate_from_end(5));
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_corrupt_files() {
        let c = cache(&[(0, 0), (2, 17), (5, 1_000)]);
        let text = format(&c);
        assert_eq!(text, "0\n3\n0 0\n2 17\n5 1000\n");
        assert_eq!(parse(&text).unwrap(), c);
        assert_eq!(parse("0\n0\n").unwrap(), LeaderEpochCache::default());
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0\n",
            "0\n1\nx 0\n",
            "0\n1\n0 0 0\n",
            "0\n2\n1 0\n0 5\n",
            "0\n2\n0 5\n1 5\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), None);
        write_checkpoint(dir.path(), &c).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(c));
        fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), "0\n2\n0 0\n").unwrap();
        assert!(matches!(read_checkpoint(dir.path()), Err(StorageError::CorruptCheckpoint { .. })));
    }

    /// The rules restated over a plain list: the largest epoch <= requested, ending at the start of the first
    /// epoch above it.
    fn naive_end_offset(entries: &[(i32, i64)], requested: i32, leo: i64) -> (i32, i64) {
        let latest = entries.last().map(|e| e.0);
        if requested == UNDEFINED_EPOCH {
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        } else if latest == Some(requested) {
            (requested, leo)
        } else {
            let floor = entries.iter().filter(|e| e.0 <= requested).map(|e| e.0).max();
            match entries.iter().find(|e| e.0 > requested) {
                None => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
                Some(&(_, start)) => (floor.unwrap_or(requested), start),
            }
        }
    }

    proptest! {
        #[test]
        fn end_offset_for_matches_a_naive_model(
            steps in proptest::collection::vec((0i32..20, 0i64..20), 0..12),
            requested in -1i32..25,
        ) {
            let mut c = LeaderEpochCache::default();
            let mut offset = 0;
            for (epoch, gap) in steps {
                offset += gap;
                c.assign(epoch, offset);
            }
            let leo = offset + 5;
            prop_assert_eq!(c.end_offset_for(requested, leo), naive_end_offset(&pairs(&c), requested, leo));
            prop_assert!(c.entries().windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset));
        }
    }
}
