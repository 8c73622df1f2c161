//! Sparse offset index (Kafka's `.index`): entries of (offset - base offset: u32, file position: u32), big-endian.
//! An entry is added every `index.interval.bytes` of log and points at the start of a batch; like Kafka, the
//! offset stored is that batch's last offset.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::index_file::{u32_at, IndexFile, IndexOpen};

pub const ENTRY_SIZE: usize = 8;

/// An index hit: the batch at `position` ends at or before `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    pub(crate) fn open(path: &Path, base_offset: i64, mode: IndexOpen) -> Result<OffsetIndex> {
        let index = OffsetIndex { base_offset, file: IndexFile::open(path, ENTRY_SIZE, mode)? };
        index.sanity_check()?;
        Ok(index)
    }

    /// Kafka's cheap open-time check; a full check would make startup proportional to the data.
    fn sanity_check(&self) -> Result<()> {
        if let Some(last) = self.last_entry() {
            if last.offset < self.base_offset {
                return Err(StorageError::CorruptIndex {
                    path: self.file.path().to_path_buf(),
                    reason: format!("last offset {} is below the base offset {}", last.offset, self.base_offset),
                });
            }
        }
        Ok(())
    }

    /// The full check of a closed segment's index when it is opened for reads (its size is bounded by
    /// `segment.index.bytes`): offsets and positions strictly increase and every position lies inside the log.
    pub(crate) fn check_entries(&self, log_size: u64) -> Result<()> {
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.entries() {
            let e = self.decode(self.file.entry(i));
            let out_of_order = prev.is_some_and(|p| e.offset <= p.offset || e.position <= p.position);
            if out_of_order || u64::from(e.position) >= log_size {
                return Err(StorageError::CorruptIndex {
                    path: self.file.path().to_path_buf(),
                    reason: format!("entry {i} {e:?} is out of order or outside the log's {log_size} bytes"),
                });
            }
            prev = Some(e);
        }
        Ok(())
    }

    fn decode(&self, e: &[u8]) -> OffsetPosition {
        OffsetPosition { offset: self.base_offset + i64::from(u32_at(e, 0)), position: u32_at(e, 4) }
    }

    pub fn entries(&self) -> usize {
        self.file.len()
    }

    pub fn is_full(&self) -> bool {
        self.file.len() >= self.file.capacity()
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.file.len().checked_sub(1).map(|i| self.decode(self.file.entry(i)))
    }

    /// The last entry whose offset is <= `offset`, or (base offset, 0).
    pub fn lookup(&self, offset: i64) -> OffsetPosition {
        let Ok(relative) = u32::try_from(offset - self.base_offset) else {
            return if offset < self.base_offset {
                OffsetPosition { offset: self.base_offset, position: 0 }
            } else {
                self.last_entry().unwrap_or(OffsetPosition { offset: self.base_offset, position: 0 })
            };
        };
        match self.file.floor_by(relative, |e| u32_at(e, 0)) {
            Some(i) => self.decode(self.file.entry(i)),
            None => OffsetPosition { offset: self.base_offset, position: 0 },
        }
    }

    /// The last entry whose position is <= `position`, or (base offset, 0).
    pub fn lookup_position(&self, position: u32) -> OffsetPosition {
        match self.file.floor_by(position, |e| u32_at(e, 4)) {
            Some(i) => self.decode(self.file.entry(i)),
            None => OffsetPosition { offset: self.base_offset, position: 0 },
        }
    }

    /// Appends (single writer); offsets must increase and fit in u32 relative to the base.
    pub(crate) fn append(&self, offset: i64, position: u32) -> Result<()> {
        let relative = u32::try_from(offset - self.base_offset).map_err(|_| StorageError::CorruptIndex {
            path: self.file.path().to_path_buf(),
            reason: format!("offset {offset} does not fit relative to base {}", self.base_offset),
        })?;
        if let Some(last) = self.last_entry() {
            if offset <= last.offset {
                return Err(StorageError::CorruptIndex {
                    path: self.file.path().to_path_buf(),
                    reason: format!("offset {offset} appended after {}", last.offset),
                });
            }
        }
        let mut entry = [0u8; ENTRY_SIZE];
        entry[..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.append(&entry)
    }

    /// Drops entries whose offset is >= `offset` (truncation).
    pub(crate) fn truncate_to(&self, offset: i64) {
        let keep = match u32::try_from(offset - self.base_offset) {
            Ok(rel) => self.file.floor_by(rel, |e| u32_at(e, 0)).map_or(0, |i| i + 1),
            Err(_) if offset < self.base_offset => 0,
            Err(_) => return,
        };
        // floor_by keeps entries <= offset; an entry equal to `offset` points at a batch ending there, which goes.
        let keep = if keep > 0 && self.decode(self.file.entry(keep - 1)).offset >= offset { keep - 1 } else { keep };
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
    fn lookups_find_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let idx = OffsetIndex::open(&path, 100, IndexOpen::Append(80)).unwrap();
        assert_eq!(idx.lookup(150), OffsetPosition { offset: 100, position: 0 });
        for (o, p) in [(104, 0), (110, 4096), (130, 8192)] {
            idx.append(o, p).unwrap();
        }
        assert_eq!(idx.lookup(99), OffsetPosition { offset: 100, position: 0 });
        assert_eq!(idx.lookup(103), OffsetPosition { offset: 100, position: 0 });
        assert_eq!(idx.lookup(104), OffsetPosition { offset: 104, position: 0 });
        assert_eq!(idx.lookup(129), OffsetPosition { offset: 110, position: 4096 });
        assert_eq!(idx.lookup(1 << 40), OffsetPosition { offset: 130, position: 8192 });
        assert_eq!(idx.lookup_position(5000), OffsetPosition { offset: 110, position: 4096 });
        assert!(idx.append(120, 9000).is_err(), "offsets must increase");

        idx.truncate_to(110);
        assert_eq!(idx.entries(), 1);
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        drop(idx);
        let reopened = OffsetIndex::open(&path, 100, IndexOpen::Read).unwrap();
        assert_eq!(reopened.last_entry(), Some(OffsetPosition { offset: 104, position: 0 }));
    }

    #[test]
    fn full_index_refuses_and_corrupt_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let idx = OffsetIndex::open(&path, 0, IndexOpen::Append(17)).unwrap(); // rounds down to 2 entries
        idx.append(1, 0).unwrap();
        idx.append(2, 10).unwrap();
        assert!(idx.is_full());
        assert!(idx.append(3, 20).is_err());
        drop(idx);
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(matches!(OffsetIndex::open(&path, 0, IndexOpen::Read), Err(StorageError::CorruptIndex { .. })));
    }
}
