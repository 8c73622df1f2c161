//! A log segment (Kafka's LogSegment): `<base offset>.log` with its `.index` and `.timeindex`.
//!
//! A `LogSegment` is shared by readers and the writer; everything readers look at is published through
//! atomics. The writer-only part of the active segment (index interval bookkeeping, the write map in mmap
//! mode) lives in [`ActiveSegment`], which the log keeps under its append lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use memmap2::MmapRaw;
use nix::fcntl::{fallocate, FallocateFlags};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::config::{LogConfig, WriteMode};
use crate::error::{Result, StorageError};
use crate::file_records::{FileRecords, ReadIo};
use crate::offset_index::{OffsetIndex, OffsetPosition};
use crate::time_index::{TimeIndex, TimestampOffset};

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Files of deleted segments are renamed with this suffix and removed after `file.delete.delay.ms`.
pub const DELETED_SUFFIX: &str = ".deleted";

/// `00000000000000000042.log` and friends.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset of a segment file name with `suffix`, if it is one.
pub fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log: Arc<FileRecords>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Largest batch max timestamp (-1: none) and the base offset of the batch that has it.
    max_timestamp: AtomicI64,
    offset_of_max_timestamp: AtomicI64,
    /// The first batch's max timestamp, which `segment.ms` counts from (as Kafka); -1 until there is one.
    rolling_base_timestamp: AtomicI64,
    created_ms: i64,
}

fn open_log_file(path: &Path, create_new: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create_new)
        .open(path)
        .map_err(|e| StorageError::io(if create_new { "create segment" } else { "open segment" }, path, e))
}

impl LogSegment {
    /// Creates an empty segment with preallocated indexes.
    pub(crate) fn create(dir: &Path, base_offset: i64, config: &LogConfig, now_ms: i64) -> Result<LogSegment> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_SUFFIX));
        let file = open_log_file(&log_path, true)?;
        let indexes = (|| {
            let offset_index = OffsetIndex::open(
                &dir.join(segment_file_name(base_offset, INDEX_SUFFIX)),
                base_offset,
                Some(config.segment_index_bytes),
            )?;
            let time_index = TimeIndex::open(
                &dir.join(segment_file_name(base_offset, TIME_INDEX_SUFFIX)),
                base_offset,
                Some(config.segment_index_bytes),
            )?;
            Ok::<_, StorageError>((offset_index, time_index))
        })();
        let (offset_index, time_index) = match indexes {
            Ok(ix) => ix,
            Err(e) => {
                // Leave nothing half-created behind (e.g. the disk filled up between the files).
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    let _ = std::fs::remove_file(dir.join(segment_file_name(base_offset, suffix)));
                }
                return Err(e);
            }
        };
        Ok(Self::assemble(base_offset, FileRecords::new(log_path, file, 0), offset_index, time_index, now_ms))
    }

    /// Opens an existing segment as found on disk; `writable_indexes` preallocates the indexes for appends.
    /// Index problems are returned so the caller can rebuild them (see `recovery`).
    pub(crate) fn open(dir: &Path, base_offset: i64, config: &LogConfig, writable_indexes: bool, now_ms: i64) -> Result<LogSegment> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_SUFFIX));
        let file = open_log_file(&log_path, false)?;
        let size = file.metadata().map_err(|e| StorageError::io("stat segment", &log_path, e))?.len();
        let max_index = writable_indexes.then_some(config.segment_index_bytes);
        let offset_index = OffsetIndex::open(&dir.join(segment_file_name(base_offset, INDEX_SUFFIX)), base_offset, max_index)?;
        let time_index = TimeIndex::open(&dir.join(segment_file_name(base_offset, TIME_INDEX_SUFFIX)), base_offset, max_index)?;
        if let Some(last) = offset_index.last_entry() {
            if u64::from(last.position) >= size {
                return Err(StorageError::CorruptIndex {
                    path: offset_index.path().to_path_buf(),
                    reason: format!("entry {last:?} points past the log's {size} bytes"),
                });
            }
        }
        let segment = Self::assemble(base_offset, FileRecords::new(log_path, file, size), offset_index, time_index, now_ms);
        if let Some(last) = segment.time_index.last_entry() {
            segment.max_timestamp.store(last.timestamp, Ordering::Relaxed);
            segment.offset_of_max_timestamp.store(last.offset, Ordering::Relaxed);
        }
        if size >= HEADER_SIZE as u64 {
            let mut first = [0u8; HEADER_SIZE];
            segment.log.read_at(&mut first, 0)?;
            if let Some(h) = BatchHeader::parse(&first) {
                segment.rolling_base_timestamp.store(h.max_timestamp, Ordering::Relaxed);
                if segment.max_timestamp() < h.max_timestamp {
                    segment.max_timestamp.store(h.max_timestamp, Ordering::Relaxed);
                    segment.offset_of_max_timestamp.store(h.base_offset, Ordering::Relaxed);
                }
            }
        }
        Ok(segment)
    }

    fn assemble(base_offset: i64, log: FileRecords, offset_index: OffsetIndex, time_index: TimeIndex, now_ms: i64) -> LogSegment {
        LogSegment {
            base_offset,
            log: Arc::new(log),
            offset_index,
            time_index,
            max_timestamp: AtomicI64::new(-1),
            offset_of_max_timestamp: AtomicI64::new(base_offset),
            rolling_base_timestamp: AtomicI64::new(-1),
            created_ms: now_ms,
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.log.size()
    }

    pub fn log(&self) -> &Arc<FileRecords> {
        &self.log
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Largest batch timestamp, -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Base offset of the batch holding the largest timestamp.
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp.load(Ordering::Acquire)
    }

    /// The first batch's max timestamp, which `segment.ms` measures age from (Kafka's rollingBasedTimestamp).
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        Some(self.rolling_base_timestamp.load(Ordering::Acquire)).filter(|ts| *ts >= 0)
    }

    /// When this segment object was created or opened (wall clock), for segments without timestamps.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    pub(crate) fn record_timestamps(&self, headers: &[BatchHeader]) {
        for h in headers {
            if h.max_timestamp > self.max_timestamp() {
                self.offset_of_max_timestamp.store(h.base_offset, Ordering::Release);
                self.max_timestamp.store(h.max_timestamp, Ordering::Release);
            }
        }
        if let Some(first) = headers.first() {
            let _ = self.rolling_base_timestamp.compare_exchange(-1, first.max_timestamp, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    pub(crate) fn reset_timestamps(&self) {
        self.max_timestamp.store(-1, Ordering::Release);
        self.offset_of_max_timestamp.store(self.base_offset, Ordering::Release);
        self.rolling_base_timestamp.store(-1, Ordering::Release);
    }

    /// The first batch whose last offset is >= `offset`, searching from the index hint, below `end`.
    pub fn find_batch(&self, offset: i64, end: u64, io: ReadIo) -> Result<Option<(u64, BatchHeader)>> {
        let start = self.offset_index.lookup(offset).position as u64;
        for item in self.log.headers(start.min(end), end, io) {
            let (position, header) = item?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// End position of the whole batches that a read starting at `start` (a batch boundary, below `end`) may
    /// return: batches with last offset < `upper_bound`, at most `max_bytes` in all, but at least the first
    /// batch when `at_least_one`. Jumps ahead with the index so only a few headers are read.
    pub fn read_end(&self, start: u64, end: u64, max_bytes: u64, upper_bound: i64, at_least_one: bool, io: ReadIo) -> Result<u64> {
        let limit = start.saturating_add(max_bytes);
        let mut position = start;
        let hint: OffsetPosition = self.offset_index.lookup_position(limit.min(u32::MAX as u64) as u32);
        let hint_position = u64::from(hint.position);
        // The hint's batch ends at hint.offset, so every batch before it ends below that too.
        if hint_position > start && hint_position < end && hint.offset < upper_bound {
            position = hint_position;
        }
        for item in self.log.headers(position, end, io) {
            let (at, header) = item?;
            let batch_end = at + header.size() as u64;
            let first = at == start;
            if header.last_offset() >= upper_bound || (batch_end > limit && !(first && at_least_one)) {
                return Ok(at);
            }
            position = batch_end;
        }
        Ok(position)
    }

    /// The first record with timestamp >= `target` and offset >= `min_offset` in this segment.
    pub fn find_offset_by_timestamp(&self, target: i64, min_offset: i64) -> Result<Option<TimestampOffset>> {
        let from = self.time_index.lookup(target).offset.max(min_offset);
        let start = self.offset_index.lookup(from).position as u64;
        let end = self.size();
        let mut buf = Vec::new();
        for item in self.log.headers(start, end, ReadIo::Wait) {
            let (position, header) = item?;
            if header.max_timestamp < target || header.last_offset() < min_offset || header.is_control() {
                continue;
            }
            buf.resize(header.size(), 0);
            self.log.read_at(&mut buf, position)?;
            if let Some(found) = batch::first_record_at_or_after(&buf, target, min_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Renames the files to `*.deleted`: readers holding this segment keep reading through the open
    /// descriptors and maps. Returns the new paths, to unlink later.
    pub(crate) fn rename_to_deleted(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut renamed = Vec::new();
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let from = dir.join(segment_file_name(self.base_offset, suffix));
            let to = dir.join(format!("{}{DELETED_SUFFIX}", segment_file_name(self.base_offset, suffix)));
            match std::fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("rename deleted segment", from, e)),
            }
        }
        Ok(renamed)
    }

    /// Final time index entry (the segment's max timestamp) and both indexes trimmed to their entries.
    pub(crate) fn seal_indexes(&self) -> Result<()> {
        if self.max_timestamp() >= 0 {
            self.time_index.append_final(self.max_timestamp(), self.offset_of_max_timestamp())?;
        }
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// fdatasync of the log and both indexes.
    pub(crate) fn flush(&self) -> Result<()> {
        self.log.flush()?;
        self.offset_index.flush()?;
        self.time_index.flush()
    }
}

/// Adds index entries for batches laid out from `start` (Kafka's rule: an entry once more than
/// `interval` bytes were appended since the last one). Entries are skipped, not failed, when an index is
/// full within one append: the log rolls before the next append.
pub(crate) fn index_batches(
    seg: &LogSegment,
    bytes_since_last_index_entry: &mut u64,
    headers: &[BatchHeader],
    start: u64,
    interval: u64,
) -> Result<()> {
    let (mut max_ts, mut max_ts_offset) = (seg.max_timestamp(), seg.offset_of_max_timestamp());
    let mut position = start;
    for h in headers {
        if h.max_timestamp > max_ts {
            (max_ts, max_ts_offset) = (h.max_timestamp, h.base_offset);
        }
        if *bytes_since_last_index_entry > interval {
            if !seg.offset_index.is_full() {
                seg.offset_index.append(h.last_offset(), position as u32)?;
            }
            if !seg.time_index.is_full() && max_ts >= 0 {
                seg.time_index.maybe_append(max_ts, max_ts_offset)?;
            }
            *bytes_since_last_index_entry = 0;
        }
        *bytes_since_last_index_entry += h.size() as u64;
        position += h.size() as u64;
    }
    Ok(())
}

/// The writer's handle on the active segment.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) segment: Arc<LogSegment>,
    bytes_since_last_index_entry: u64,
    /// mmap write mode: the preallocated file mapped for appends.
    map: Option<Arc<MmapRaw>>,
}

impl ActiveSegment {
    pub(crate) fn new(segment: Arc<LogSegment>, mode: WriteMode, segment_bytes: u64) -> Result<ActiveSegment> {
        let mut active = ActiveSegment { segment, bytes_since_last_index_entry: 0, map: None };
        if mode == WriteMode::Mmap {
            active.map_for_writes(segment_bytes.max(active.segment.size()))?;
        }
        Ok(active)
    }

    /// Reserves blocks for `len` bytes (so stores into the map cannot hit a full disk, which would be SIGBUS)
    /// and maps them.
    fn map_for_writes(&mut self, len: u64) -> Result<()> {
        let log = &self.segment.log;
        fallocate(log.file(), FallocateFlags::empty(), 0, len as i64)
            .map_err(|e| StorageError::io("fallocate segment", log.path(), e.into()))?;
        let map = MmapRaw::map_raw(log.file()).map_err(|e| StorageError::io("mmap segment", log.path(), e))?;
        self.map = Some(Arc::new(map));
        Ok(())
    }

    pub(crate) fn map(&self) -> Option<&Arc<MmapRaw>> {
        self.map.as_ref()
    }

    /// Appends validated batches (offsets already assigned) with their index entries, then publishes them.
    /// On failure the segment is left as it was.
    pub(crate) fn append(&mut self, records: &[u8], headers: &[BatchHeader], index_interval_bytes: u64) -> Result<()> {
        let seg = Arc::clone(&self.segment);
        let start = seg.size();
        let end = start + records.len() as u64;
        if end > u32::MAX as u64 {
            return Err(StorageError::CorruptLog {
                path: seg.log.path().to_path_buf(),
                position: start,
                reason: "segment would exceed 4 GiB (positions are 32-bit)".into(),
            });
        }
        self.write_bytes(records, start)?;
        let bytes_since_before = self.bytes_since_last_index_entry;
        if let Err(e) = index_batches(&seg, &mut self.bytes_since_last_index_entry, headers, start, index_interval_bytes) {
            self.bytes_since_last_index_entry = bytes_since_before;
            let first = headers.first().map_or(seg.base_offset, |h| h.base_offset);
            seg.offset_index.truncate_to(first);
            seg.time_index.truncate_to(first);
            if self.map.is_none() {
                let _ = seg.log.file().set_len(start);
            }
            return Err(e);
        }
        seg.record_timestamps(headers);
        seg.log.publish_size(end);
        Ok(())
    }

    fn write_bytes(&mut self, records: &[u8], start: u64) -> Result<()> {
        let end = start + records.len() as u64;
        if self.map.as_ref().is_some_and(|m| (m.len() as u64) < end) {
            // Only an empty segment takes an append larger than segment.bytes; grow its reservation.
            self.map = None;
            self.map_for_writes(end)?;
        }
        let log = &self.segment.log;
        match &self.map {
            Some(map) => {
                // SAFETY: [start, end) is inside the mapping, beyond the published size, so no reader looks at it,
                // and only this writer (under the log's append lock) stores into the map.
                unsafe { std::ptr::copy_nonoverlapping(records.as_ptr(), map.as_mut_ptr().add(start as usize), records.len()) };
                Ok(())
            }
            None => log.file().write_all_at(records, start).map_err(|e| {
                // Undo a partial write so the file never holds a torn batch past the published size.
                let _ = log.file().set_len(start);
                StorageError::io("append", log.path(), e)
            }),
        }
    }

    /// Makes the segment inactive: final time index entry, indexes trimmed, the preallocated tail cut.
    /// On failure the segment stays usable as the active one.
    pub(crate) fn seal(&mut self) -> Result<()> {
        let seg = &self.segment;
        seg.seal_indexes()?;
        if self.map.is_some() {
            seg.log.truncate(seg.size())?;
            self.map = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(42, LOG_SUFFIX), "00000000000000000042.log");
        assert_eq!(parse_segment_file_name("00000000000000000042.log", LOG_SUFFIX), Some(42));
        assert_eq!(parse_segment_file_name("42.log", LOG_SUFFIX), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.index", LOG_SUFFIX), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log", LOG_SUFFIX), None);
    }
}
