//! Counters the storage engine keeps for the broker's metrics: shared by every segment of a log manager.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct StorageStats {
    /// Segments whose files and index maps are open now (each active segment, plus closed ones being read).
    pub(crate) open_segments: AtomicI64,
    /// Index files found not to match their log (and rebuilt, for closed segments).
    pub(crate) corrupt_indexes: AtomicU64,
}

impl StorageStats {
    pub fn open_segments(&self) -> i64 {
        self.open_segments.load(Ordering::Relaxed)
    }

    pub fn corrupt_indexes(&self) -> u64 {
        self.corrupt_indexes.load(Ordering::Relaxed)
    }
}
