//! Sparse time index (Kafka's `.timeindex`): entries of (max timestamp so far: i64, offset - base offset: u32).
//! Timestamps only increase along the index, so a binary search finds where to start looking for a time.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::index_file::{i64_at, u32_at, IndexFile, IndexOpen};

pub const ENTRY_SIZE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

/// The last entry of a closed segment's time index read from the file without mapping it (loading a log
/// learns each segment's largest timestamp this way without keeping the index open).
pub(crate) fn read_last_entry(path: &Path, base_offset: i64) -> Result<Option<TimestampOffset>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| StorageError::io("open index", path, e))?;
    let len = file.metadata().map_err(|e| StorageError::io("stat index", path, e))?.len();
    if len % ENTRY_SIZE as u64 != 0 {
        return Err(StorageError::CorruptIndex {
            path: path.to_path_buf(),
            reason: format!("size {len} is not a multiple of the entry size {ENTRY_SIZE}"),
        });
    }
    if len == 0 {
        return Ok(None);
    }
    let mut e = [0u8; ENTRY_SIZE];
    file.read_exact_at(&mut e, len - ENTRY_SIZE as u64).map_err(|err| StorageError::io("read index", path, err))?;
    Ok(Some(TimestampOffset { timestamp: i64_at(&e, 0), offset: base_offset + i64::from(u32_at(&e, 8)) }))
}

impl TimeIndex {
    pub(crate) fn open(path: &Path, base_offset: i64, mode: IndexOpen) -> Result<TimeIndex> {
        let index = TimeIndex { base_offset, file: IndexFile::open(path, ENTRY_SIZE, mode)? };
        if let (Some(first), Some(last)) = (index.entry(0), index.last_entry()) {
            if last.offset < base_offset || last.timestamp < first.timestamp {
                return Err(StorageError::CorruptIndex {
                    path: path.to_path_buf(),
                    reason: format!("last entry {last:?} is before the first {first:?} or the base offset"),
                });
            }
        }
        Ok(index)
    }

    fn entry(&self, i: usize) -> Option<TimestampOffset> {
        (i < self.file.len()).then(|| {
            let e = self.file.entry(i);
            TimestampOffset { timestamp: i64_at(e, 0), offset: self.base_offset + i64::from(u32_at(e, 8)) }
        })
    }

    /// The full check of a closed segment's index when it is opened for reads: timestamps strictly increase
    /// (only newer ones are appended) and offsets never go back or below the base.
    pub(crate) fn check_entries(&self) -> Result<()> {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.entries() {
            let e = self.entry(i).expect("below the entry count");
            if e.offset < self.base_offset || prev.is_some_and(|p| e.timestamp <= p.timestamp || e.offset < p.offset) {
                return Err(StorageError::CorruptIndex {
                    path: self.file.path().to_path_buf(),
                    reason: format!("entry {i} {e:?} is out of order or below the base offset"),
                });
            }
            prev = Some(e);
        }
        Ok(())
    }

    pub fn entries(&self) -> usize {
        self.file.len()
    }

    /// Full one entry early: the last slot is kept for the final (max timestamp) entry written at roll, so a
    /// reopened segment knows its largest timestamp without scanning.
    pub fn is_full(&self) -> bool {
        self.file.len() + 1 >= self.file.capacity()
    }

    /// Appends the segment's final entry at roll/close, using the reserved slot.
    pub(crate) fn append_final(&self, timestamp: i64, offset: i64) -> Result<()> {
        if self.file.len() < self.file.capacity() {
            self.maybe_append(timestamp, offset)?;
        }
        Ok(())
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.file.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// The last entry with timestamp <= `timestamp`, or (-1, base offset): where a forward scan must start.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        self.file
            .floor_by(timestamp, |e| i64_at(e, 0))
            .and_then(|i| self.entry(i))
            .unwrap_or(TimestampOffset { timestamp: -1, offset: self.base_offset })
    }

    /// Appends if `timestamp` is newer than the last entry (single writer).
    pub(crate) fn maybe_append(&self, timestamp: i64, offset: i64) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp {
                return Ok(());
            }
            if offset < last.offset {
                return Err(StorageError::CorruptIndex {
                    path: self.file.path().to_path_buf(),
                    reason: format!("offset {offset} appended after {}", last.offset),
                });
            }
        }
        let relative = u32::try_from(offset - self.base_offset).map_err(|_| StorageError::CorruptIndex {
            path: self.file.path().to_path_buf(),
            reason: format!("offset {offset} does not fit relative to base {}", self.base_offset),
        })?;
        let mut entry = [0u8; ENTRY_SIZE];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.append(&entry)
    }

    /// Drops entries whose offset is >= `offset` (truncation).
    pub(crate) fn truncate_to(&self, offset: i64) {
        let mut keep = self.file.len();
        while keep > 0 && self.entry(keep - 1).is_some_and(|e| e.offset >= offset) {
            keep -= 1;
        }
        self.file.truncate_entries(keep);
    }

    pub(crate) fn reset(&self) {
        self.file.truncate_entries(0);
    }

    pub(crate) fn trim(&self) -> Result<()> {
        self.file.trim()
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.file.flush()
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_newer_timestamps_and_finds_floor() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TimeIndex::open(&dir.path().join("0.timeindex"), 50, IndexOpen::Append(120)).unwrap();
        assert_eq!(idx.lookup(10), TimestampOffset { timestamp: -1, offset: 50 });
        idx.maybe_append(1000, 55).unwrap();
        idx.maybe_append(900, 60).unwrap(); // older: skipped
        idx.maybe_append(2000, 70).unwrap();
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup(999), TimestampOffset { timestamp: -1, offset: 50 });
        assert_eq!(idx.lookup(1500), TimestampOffset { timestamp: 1000, offset: 55 });
        assert_eq!(idx.lookup(i64::MAX), TimestampOffset { timestamp: 2000, offset: 70 });
        idx.truncate_to(70);
        assert_eq!(idx.last_entry(), Some(TimestampOffset { timestamp: 1000, offset: 55 }));
    }
}
