//! A preallocated, memory-mapped file of fixed-size entries: the mechanism under the offset and time indexes.
//!
//! Readers binary-search the map without locks: the single writer writes an entry into the file with
//! pwrite(2) (so a full disk is an error, not a SIGBUS from a store into a sparse mapping) and only then
//! publishes the new entry count with release ordering; readers load it with acquire ordering and never look
//! past it. The file is preallocated (sparse) to `segment.index.bytes` while its segment is active and trimmed
//! to its entries when the segment is rolled or closed; trimming keeps the mapping, since readers only touch
//! entries below the count, which stay inside the file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::MmapRaw;

use crate::error::{Result, StorageError};

/// How an index file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexOpen {
    /// With its entries, for lookups (a closed segment's index).
    Read,
    /// With its entries, preallocated to this many bytes for appends (the active segment's).
    Append(u64),
    /// Emptied, to be rebuilt, and preallocated for appends. The file is truncated rather than replaced: ext4
    /// scans for recently deleted inodes when it allocates one, which took seconds when thousands of
    /// partitions were recovered after a crash.
    Reset(u64),
}

#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    /// None when the file is empty and read-only (an empty mapping is not allowed).
    map: Option<MmapRaw>,
    entry_size: usize,
    /// Entries that fit in the mapping.
    capacity: usize,
    entries: AtomicUsize,
    /// Entry count at the last fsync (usize::MAX: the file changed size since), so flushing an unchanged
    /// index costs nothing.
    synced_entries: AtomicUsize,
}

impl IndexFile {
    /// Opens or creates the index. Existing entries are `len / entry_size`; for appends the file is
    /// preallocated (sparse) to the given size, rounded down to whole entries.
    pub(crate) fn open(path: &Path, entry_size: usize, mode: IndexOpen) -> Result<IndexFile> {
        let (max_bytes, reset) = match mode {
            IndexOpen::Read => (None, false),
            IndexOpen::Append(max) => (Some(max), false),
            IndexOpen::Reset(max) => (Some(max), true),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(reset)
            .open(path)
            .map_err(|e| StorageError::io("open index", path, e))?;
        let len = file.metadata().map_err(|e| StorageError::io("stat index", path, e))?.len();
        if len % entry_size as u64 != 0 {
            return Err(StorageError::CorruptIndex {
                path: path.to_path_buf(),
                reason: format!("size {len} is not a multiple of the entry size {entry_size}"),
            });
        }
        let entries = (len / entry_size as u64) as usize;
        let mapped_len = match max_bytes {
            Some(max) => {
                let max = max - max % entry_size as u64;
                if max > len {
                    file.set_len(max).map_err(|e| StorageError::io("preallocate index", path, e))?;
                }
                max.max(len)
            }
            None => len,
        };
        let map = if mapped_len == 0 {
            None
        } else {
            Some(MmapRaw::map_raw(&file).map_err(|e| StorageError::io("mmap index", path, e))?)
        };
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            map,
            entry_size,
            capacity: (mapped_len / entry_size as u64) as usize,
            entries: AtomicUsize::new(entries),
            synced_entries: AtomicUsize::new(usize::MAX),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entry `i`; callers stay below [`IndexFile::len`].
    pub(crate) fn entry(&self, i: usize) -> &[u8] {
        assert!(i < self.capacity, "index entry {i} beyond capacity {}", self.capacity);
        let map = self.map.as_ref().expect("a non-empty index is mapped");
        // SAFETY: the mapping lives as long as self and covers `capacity` entries; entries below the published
        // count are never written again (only truncation lowers the count, by the single writer).
        unsafe { std::slice::from_raw_parts(map.as_ptr().add(i * self.entry_size), self.entry_size) }
    }

    /// Appends one entry (single writer). The caller checks [`IndexFile::is_full`] first.
    pub(crate) fn append(&self, entry: &[u8]) -> Result<()> {
        debug_assert_eq!(entry.len(), self.entry_size);
        let n = self.len();
        if n >= self.capacity() {
            return Err(StorageError::CorruptIndex { path: self.path.clone(), reason: "index is full".into() });
        }
        self.file
            .write_all_at(entry, (n * self.entry_size) as u64)
            .map_err(|e| StorageError::io("append to index", &self.path, e))?;
        self.entries.store(n + 1, Ordering::Release);
        Ok(())
    }

    /// Forgets entries from `n` on (single writer; used by truncation and index rebuilds).
    pub(crate) fn truncate_entries(&self, n: usize) {
        if n < self.len() {
            self.entries.store(n, Ordering::Release);
            self.synced_entries.store(usize::MAX, Ordering::Release);
        }
    }

    /// Shrinks the file to its entries (on roll and close).
    pub(crate) fn trim(&self) -> Result<()> {
        let len = (self.len() * self.entry_size) as u64;
        self.synced_entries.store(usize::MAX, Ordering::Release);
        self.file.set_len(len).map_err(|e| StorageError::io("trim index", &self.path, e))
    }

    pub(crate) fn flush(&self) -> Result<()> {
        let entries = self.len();
        if self.synced_entries.load(Ordering::Acquire) != entries {
            self.file.sync_data().map_err(|e| StorageError::io("fsync index", &self.path, e))?;
            self.synced_entries.store(entries, Ordering::Release);
        }
        Ok(())
    }

    /// Binary search: the last entry for which `key(entry) <= target`, if any.
    pub(crate) fn floor_by<K: Ord>(&self, target: K, key: impl Fn(&[u8]) -> K) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
