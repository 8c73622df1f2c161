//! A log segment (Kafka's LogSegment): `<base offset>.log` with its `.index` and `.timeindex`.
//!
//! A `LogSegment` is shared by readers and the writer; everything readers look at is published through
//! atomics. The writer-only part of the active segment (index interval bookkeeping, the write map in mmap
//! mode) lives in [`ActiveSegment`], which the log keeps under its append lock.
//!
//! Only the active segment keeps its files open for good. A closed segment is known by what the log needs
//! without reading it (base offset, size, largest timestamp); its files and index maps ([`SegmentFiles`]) are
//! opened on the first read, fully checked, and closed again by [`LogSegment::release_if_idle`] once reads
//! stop. So descriptors and maps grow with the partitions being written and read, not with the data kept.
//!
//! Reads never trust an index blindly: the batch an entry points at must be the batch the entry names. A
//! mismatch (a flipped byte, a position past the log) is logged, counted in [`StorageStats`], and a closed
//! segment's indexes are rebuilt from its log (written aside, then renamed over the bad files); the read goes
//! on from the rebuilt index, or from a scan of the active segment, whose index is not rewritten under its
//! writer.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::MmapRaw;
use nix::fcntl::{fallocate, FallocateFlags};
use tracing::error;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::config::{LogConfig, WriteMode};
use crate::error::{Result, StorageError};
use crate::file_records::{FileRecords, ReadIo};
use crate::index_file::IndexOpen;
use crate::offset_index::{OffsetIndex, OffsetPosition};
use crate::stats::StorageStats;
use crate::time_index::{self, TimeIndex, TimestampOffset};

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Files of deleted segments are renamed with this suffix and removed after `file.delete.delay.ms`.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Files being written aside (rebuilt indexes); leftovers are removed when the log is loaded.
pub const TMP_SUFFIX: &str = ".tmp";

/// `00000000000000000042.log` and friends.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset of a segment file name with `suffix`, if it is one.
pub fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok()).flatten()
}

/// A segment's open files: its log and both index maps. Reads in flight hold an `Arc`, so a segment closed or
/// deleted meanwhile stays readable until they finish.
#[derive(Debug)]
pub struct SegmentFiles {
    log: Arc<FileRecords>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
}

impl SegmentFiles {
    pub fn log(&self) -> &Arc<FileRecords> {
        &self.log
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Opens the files of segment `base` in `dir` (with `*.deleted` names once retention renamed them).
    fn open(dir: &Path, base: i64, deleted: bool, indexes: IndexOpen) -> Result<SegmentFiles> {
        let path = |suffix: &str| segment_path(dir, base, suffix, deleted);
        let log_path = path(LOG_SUFFIX);
        let file = open_log_file(&log_path, false)?;
        Ok(SegmentFiles {
            log: Arc::new(FileRecords::new(log_path, file)),
            offset_index: OffsetIndex::open(&path(INDEX_SUFFIX), base, indexes)?,
            time_index: TimeIndex::open(&path(TIME_INDEX_SUFFIX), base, indexes)?,
        })
    }

    /// The full check of both indexes of a closed segment whose log holds `log_size` bytes.
    fn check_indexes(&self, log_size: u64) -> Result<()> {
        self.offset_index.check_entries(log_size)?;
        self.time_index.check_entries()
    }

    /// fdatasync of the log and both indexes.
    fn flush(&self) -> Result<()> {
        self.log.flush()?;
        self.offset_index.flush()?;
        self.time_index.flush()
    }
}

fn segment_path(dir: &Path, base: i64, suffix: &str, deleted: bool) -> PathBuf {
    let name = segment_file_name(base, suffix);
    dir.join(if deleted { format!("{name}{DELETED_SUFFIX}") } else { name })
}

/// An index entry whose position is 0 cannot skip anything: a scan from there sees every batch.
fn needs_check(hint: OffsetPosition) -> bool {
    hint.position != 0
}

/// Scans the batches from `hint`'s position up to `end` for the first one `wanted`. `Ok(Err(why))` when the
/// hint is not trustworthy: it points past `end`, at bytes that are not a batch, or at a batch other than the
/// one it names (whose last offset is the entry's offset).
fn scan_from_hint(
    log: &FileRecords,
    hint: OffsetPosition,
    end: u64,
    io: ReadIo,
    wanted: impl Fn(&BatchHeader) -> bool,
) -> Result<std::result::Result<Option<(u64, BatchHeader)>, String>> {
    let start = u64::from(hint.position);
    if start >= end && needs_check(hint) {
        return Ok(Err(format!("entry {hint:?} points past the log's {end} bytes")));
    }
    for (i, item) in log.headers(start.min(end), end, io).enumerate() {
        let (position, header) = match item {
            Ok(found) => found,
            Err(e) if i == 0 && needs_check(hint) && !matches!(e, StorageError::WouldBlock) => {
                return Ok(Err(format!("entry {hint:?} does not point at a batch: {e}")))
            }
            Err(e) => return Err(e),
        };
        if i == 0 && needs_check(hint) && header.last_offset() != hint.offset {
            return Ok(Err(format!("entry {hint:?} points at the batch ending at offset {}", header.last_offset())));
        }
        if wanted(&header) {
            return Ok(Ok(Some((position, header))));
        }
    }
    Ok(Ok(None))
}

#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    /// Bytes published to readers; the file may be longer (preallocated tail, append in progress).
    size: AtomicU64,
    /// The open files, if any (always for the active segment).
    files: Mutex<Option<Arc<SegmentFiles>>>,
    /// The active segment (or one being recovered): its files are never released.
    pinned: AtomicBool,
    /// Retention renamed the files to `*.deleted`: a later open uses those names.
    deleted: AtomicBool,
    /// The active segment's index was reported corrupt (it is only rebuilt by recovery, so say it once).
    reported_corrupt: AtomicBool,
    last_used_ms: AtomicI64,
    /// index.interval.bytes when the segment was opened, for rebuilding its index.
    index_interval_bytes: u64,
    stats: Arc<StorageStats>,
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

fn stat_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| StorageError::io("stat segment", path, e))
}

impl LogSegment {
    fn new(
        dir: &Path,
        base_offset: i64,
        size: u64,
        files: Option<SegmentFiles>,
        config: &LogConfig,
        stats: &Arc<StorageStats>,
        now_ms: i64,
    ) -> LogSegment {
        let pinned = files.is_some();
        if pinned {
            stats.open_segments.fetch_add(1, Ordering::Relaxed);
        }
        LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            size: AtomicU64::new(size),
            files: Mutex::new(files.map(Arc::new)),
            pinned: AtomicBool::new(pinned),
            deleted: AtomicBool::new(false),
            reported_corrupt: AtomicBool::new(false),
            last_used_ms: AtomicI64::new(now_ms),
            index_interval_bytes: config.index_interval_bytes,
            stats: Arc::clone(stats),
            max_timestamp: AtomicI64::new(-1),
            offset_of_max_timestamp: AtomicI64::new(base_offset),
            rolling_base_timestamp: AtomicI64::new(-1),
            created_ms: now_ms,
        }
    }

    /// Creates an empty active segment with preallocated indexes.
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        stats: &Arc<StorageStats>,
        now_ms: i64,
    ) -> Result<LogSegment> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_SUFFIX));
        let file = open_log_file(&log_path, true)?;
        drop(file);
        let files =
            SegmentFiles::open(dir, base_offset, false, IndexOpen::Append(config.segment_index_bytes)).inspect_err(|_| {
                // Leave nothing half-created behind (e.g. the disk filled up between the files).
                for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                    let _ = std::fs::remove_file(dir.join(segment_file_name(base_offset, suffix)));
                }
            })?;
        Ok(Self::new(dir, base_offset, 0, Some(files), config, stats, now_ms))
    }

    /// Opens the last segment of a log that needs no recovery, as the active one: indexes preallocated for
    /// appends and their last entries checked against the log (Kafka's cheap sanity check; a full check would
    /// make startup proportional to the data). An index problem is returned so the caller can recover.
    pub(crate) fn open_active(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        stats: &Arc<StorageStats>,
        now_ms: i64,
    ) -> Result<LogSegment> {
        let files = SegmentFiles::open(dir, base_offset, false, IndexOpen::Append(config.segment_index_bytes))?;
        let size = stat_len(files.log.path())?;
        if let Some(last) = files.offset_index.last_entry() {
            if let Ok(Err(reason)) | Err(StorageError::CorruptLog { reason, .. }) =
                scan_from_hint(&files.log, last, size, ReadIo::Wait, |_| true)
            {
                return Err(StorageError::CorruptIndex { path: files.offset_index.path().to_path_buf(), reason });
            }
        }
        let segment = Self::new(dir, base_offset, size, Some(files), config, stats, now_ms);
        let files = segment.files()?;
        if let Some(last) = files.time_index.last_entry() {
            segment.max_timestamp.store(last.timestamp, Ordering::Relaxed);
            segment.offset_of_max_timestamp.store(last.offset, Ordering::Relaxed);
        }
        if size >= HEADER_SIZE as u64 {
            let mut first = [0u8; HEADER_SIZE];
            files.log.read_at(&mut first, 0)?;
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

    /// Opens a segment for [`crate::recovery::recover_segment`], which rebuilds its indexes from the log: the
    /// old index files are discarded unread (after a crash the active one is a preallocated, mostly sparse
    /// file whose untouched pages a read would have the kernel allocate and zero).
    pub(crate) fn open_for_recovery(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        stats: &Arc<StorageStats>,
        now_ms: i64,
    ) -> Result<LogSegment> {
        let files = SegmentFiles::open(dir, base_offset, false, IndexOpen::Reset(config.segment_index_bytes))?;
        let size = stat_len(files.log.path())?;
        Ok(Self::new(dir, base_offset, size, Some(files), config, stats, now_ms))
    }

    /// A closed segment that needs no recovery, without opening it: its size from the file system and its
    /// largest timestamp from the last time-index entry (read, not mapped). Index files of the wrong size are
    /// reported so the caller can rebuild them; the rest of the check waits for the first read.
    pub(crate) fn load_closed(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        stats: &Arc<StorageStats>,
        now_ms: i64,
    ) -> Result<LogSegment> {
        let size = stat_len(&dir.join(segment_file_name(base_offset, LOG_SUFFIX)))?;
        let index_path = dir.join(segment_file_name(base_offset, INDEX_SUFFIX));
        let index_len = std::fs::metadata(&index_path).map_err(|e| StorageError::io("stat index", &index_path, e))?.len();
        if index_len % crate::offset_index::ENTRY_SIZE as u64 != 0 {
            return Err(StorageError::CorruptIndex {
                path: index_path,
                reason: format!("size {index_len} is not a multiple of the entry size"),
            });
        }
        let last_time = time_index::read_last_entry(&dir.join(segment_file_name(base_offset, TIME_INDEX_SUFFIX)), base_offset)?;
        let segment = Self::new(dir, base_offset, size, None, config, stats, now_ms);
        if let Some(last) = last_time {
            segment.max_timestamp.store(last.timestamp, Ordering::Relaxed);
            segment.offset_of_max_timestamp.store(last.offset, Ordering::Relaxed);
        }
        Ok(segment)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Publishes `size` bytes to readers (release: everything written before is visible to them).
    pub(crate) fn publish_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    /// Cuts the log file to `size` bytes and publishes that size.
    pub(crate) fn truncate_log(&self, size: u64) -> Result<()> {
        let files = self.files()?;
        files.log.file().set_len(size).map_err(|e| StorageError::io("truncate", files.log.path(), e))?;
        self.publish_size(size);
        Ok(())
    }

    /// Path of the log file (by its current name).
    pub fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, LOG_SUFFIX, self.deleted.load(Ordering::Acquire))
    }

    /// The segment's files, opened (and fully checked) if they are not open: a closed segment whose index
    /// does not match its log gets rebuilt indexes first.
    pub fn files(&self) -> Result<Arc<SegmentFiles>> {
        self.last_used_ms.store(crate::log::now_ms(), Ordering::Relaxed);
        let mut slot = self.files.lock().expect("segment files lock");
        if let Some(files) = slot.as_ref() {
            return Ok(Arc::clone(files));
        }
        let files = Arc::new(self.open_closed()?);
        self.stats.open_segments.fetch_add(1, Ordering::Relaxed);
        *slot = Some(Arc::clone(&files));
        Ok(files)
    }

    /// [`LogSegment::files`], or with [`ReadIo::NoWait`] `StorageError::WouldBlock` if they would have to be
    /// opened (which reads and checks the indexes).
    fn files_io(&self, io: ReadIo) -> Result<Arc<SegmentFiles>> {
        if io == ReadIo::NoWait && self.files.lock().expect("segment files lock").is_none() {
            return Err(StorageError::WouldBlock);
        }
        self.files()
    }

    fn open_closed(&self) -> Result<SegmentFiles> {
        let deleted = self.deleted.load(Ordering::Acquire);
        let missing = [INDEX_SUFFIX, TIME_INDEX_SUFFIX]
            .into_iter()
            .map(|s| segment_path(&self.dir, self.base_offset, s, deleted))
            .find(|p| !p.exists());
        let problem = match missing {
            Some(path) => StorageError::CorruptIndex { path, reason: "missing".into() },
            None => {
                let checked = SegmentFiles::open(&self.dir, self.base_offset, deleted, IndexOpen::Read)
                    .and_then(|files| files.check_indexes(self.size()).map(|()| files));
                match checked {
                    Err(e @ StorageError::CorruptIndex { .. }) => e,
                    other => return other,
                }
            }
        };
        self.report_corrupt_index(&problem.to_string());
        self.rebuild_indexes()
    }

    /// Closes the files of a closed segment not read for `idle_ms` (reads in flight keep theirs open).
    pub(crate) fn release_if_idle(&self, now_ms: i64, idle_ms: i64) -> bool {
        if self.pinned.load(Ordering::Acquire) || now_ms.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)) < idle_ms {
            return false;
        }
        let released = self.files.lock().expect("segment files lock").take().is_some();
        if released {
            self.stats.open_segments.fetch_sub(1, Ordering::Relaxed);
        }
        released
    }

    fn report_corrupt_index(&self, reason: &str) {
        let active = self.pinned.load(Ordering::Acquire);
        if active && self.reported_corrupt.swap(true, Ordering::AcqRel) {
            return;
        }
        self.stats.corrupt_indexes.fetch_add(1, Ordering::Relaxed);
        error!(
            segment = %self.log_path().display(),
            "index does not match the log: {reason}; {}",
            if active { "reads scan this active segment until it is recovered" } else { "rebuilding the indexes from the log" }
        );
    }

    /// A read found `files`' index lying: reports it, and for a closed segment installs rebuilt indexes and
    /// returns them for the read to retry; `None`: scan without the index.
    fn bad_index(&self, files: &Arc<SegmentFiles>, reason: &str) -> Option<Arc<SegmentFiles>> {
        if self.pinned.load(Ordering::Acquire) {
            self.report_corrupt_index(reason);
            return None;
        }
        let mut slot = self.files.lock().expect("segment files lock");
        if let Some(current) = slot.as_ref().filter(|current| !Arc::ptr_eq(current, files)) {
            return Some(Arc::clone(current)); // another read rebuilt them meanwhile
        }
        self.report_corrupt_index(reason);
        match self.rebuild_indexes() {
            Ok(rebuilt) => {
                let rebuilt = Arc::new(rebuilt);
                if slot.replace(Arc::clone(&rebuilt)).is_none() {
                    self.stats.open_segments.fetch_add(1, Ordering::Relaxed);
                }
                Some(rebuilt)
            }
            Err(e) => {
                error!(segment = %self.log_path().display(), error = %e, "rebuilding the indexes failed; reads scan the segment");
                None
            }
        }
    }

    /// Writes new indexes of this closed segment from its log beside the old ones, renames them over them and
    /// opens the result.
    fn rebuild_indexes(&self) -> Result<SegmentFiles> {
        let (dir, base, deleted) = (&self.dir, self.base_offset, self.deleted.load(Ordering::Acquire));
        let log_path = self.log_path();
        let log = FileRecords::new(log_path.clone(), open_log_file(&log_path, false)?);
        let size = self.size();
        let tmp = |suffix: &str| dir.join(format!("{}{TMP_SUFFIX}", segment_file_name(base, suffix)));
        // An entry needs more than index.interval.bytes of log since the previous one.
        let entries = size / self.index_interval_bytes.max(HEADER_SIZE as u64) + 2;
        let offset_index =
            OffsetIndex::open(&tmp(INDEX_SUFFIX), base, IndexOpen::Reset(entries * crate::offset_index::ENTRY_SIZE as u64))?;
        let time_index =
            TimeIndex::open(&tmp(TIME_INDEX_SUFFIX), base, IndexOpen::Reset(entries * time_index::ENTRY_SIZE as u64))?;
        let mut max = (-1, base);
        let mut since = 0;
        for item in log.headers(0, size, ReadIo::Wait) {
            let (position, header) = item?;
            index_batches(&offset_index, &time_index, &mut max, &mut since, &[header], position, self.index_interval_bytes)?;
        }
        if max.0 >= 0 {
            time_index.append_final(max.0, max.1)?;
        }
        // A failure leaves `*.tmp` files: the next rebuild empties them, loading the log removes them.
        offset_index.trim()?;
        offset_index.flush()?;
        time_index.trim()?;
        time_index.flush()?;
        drop((offset_index, time_index));
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let to = segment_path(dir, base, suffix, deleted);
            std::fs::rename(tmp(suffix), &to).map_err(|e| StorageError::io("rename rebuilt index", to, e))?;
        }
        crate::log::fsync_dir(dir)?;
        self.max_timestamp.store(max.0, Ordering::Release);
        self.offset_of_max_timestamp.store(max.1, Ordering::Release);
        let files = SegmentFiles::open(dir, base, deleted, IndexOpen::Read)?;
        files.check_indexes(size)?;
        Ok(files)
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

    /// Index entries for batches laid out from `start` in `files` (this segment's), from the timestamps
    /// recorded so far.
    pub(crate) fn index_appended(
        &self,
        files: &SegmentFiles,
        since_last_entry: &mut u64,
        headers: &[BatchHeader],
        start: u64,
        interval: u64,
    ) -> Result<()> {
        let mut max = (self.max_timestamp(), self.offset_of_max_timestamp());
        index_batches(&files.offset_index, &files.time_index, &mut max, since_last_entry, headers, start, interval)
    }

    /// The first batch whose last offset is >= `offset`, searching from the index hint, below `end`. With
    /// [`ReadIo::NoWait`], `StorageError::WouldBlock` where the disk would be read (or an index rebuilt).
    pub fn find_batch(&self, offset: i64, end: u64, io: ReadIo) -> Result<Option<(u64, BatchHeader)>> {
        let wanted = |h: &BatchHeader| h.last_offset() >= offset;
        let files = self.files_io(io)?;
        let reason = match scan_from_hint(&files.log, files.offset_index.lookup(offset), end, io, wanted)? {
            Ok(found) => return Ok(found),
            Err(_) if io == ReadIo::NoWait => return Err(StorageError::WouldBlock),
            Err(reason) => reason,
        };
        if let Some(rebuilt) = self.bad_index(&files, &reason) {
            if let Ok(found) = scan_from_hint(&rebuilt.log, rebuilt.offset_index.lookup(offset), end, io, wanted)? {
                return Ok(found);
            }
            // Even the rebuilt index does not match: the log changed under us; scan it all.
        }
        let start = OffsetPosition { offset: self.base_offset, position: 0 };
        scan_from_hint(&files.log, start, end, io, wanted).map(|r| r.expect("a scan from position 0 is not checked"))
    }

    /// End position of the whole batches that a read starting at `start` (a batch boundary, below `end`) may
    /// return: batches with last offset < `upper_bound`, at most `max_bytes` in all, but at least the first
    /// batch when `at_least_one`. Jumps ahead with the index so only a few headers are read.
    pub fn read_end(
        &self,
        start: u64,
        end: u64,
        max_bytes: u64,
        upper_bound: i64,
        at_least_one: bool,
        io: ReadIo,
    ) -> Result<u64> {
        let files = self.files_io(io)?;
        let limit = start.saturating_add(max_bytes);
        let hint: OffsetPosition = files.offset_index.lookup_position(limit.min(u32::MAX as u64) as u32);
        let hint_position = u64::from(hint.position);
        let mut position = start;
        // The hint's batch ends at hint.offset, so every batch before it ends below that too.
        if hint_position > start && hint_position < end && hint.offset < upper_bound {
            match scan_from_hint(&files.log, hint, end, io, |_| true)? {
                Ok(_) => position = hint_position,
                Err(_) if io == ReadIo::NoWait => return Err(StorageError::WouldBlock),
                Err(reason) => {
                    self.bad_index(&files, &reason);
                }
            }
        }
        for item in files.log.headers(position, end, io) {
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
        let files = self.files()?;
        let end = self.size();
        let entry = files.time_index.lookup(target);
        let mut from = min_offset;
        if entry.timestamp >= 0 {
            // A time index entry names the batch (by base offset) whose max timestamp it holds.
            match self.find_batch(entry.offset, end, ReadIo::Wait)? {
                Some((_, h)) if h.base_offset == entry.offset && h.max_timestamp == entry.timestamp => {
                    from = from.max(entry.offset)
                }
                found => {
                    // The scan below starts from min_offset; later lookups use the rebuilt index.
                    let found = found.map(|(_, h)| (h.base_offset, h.max_timestamp));
                    self.bad_index(&files, &format!("time index entry {entry:?} does not match the batch {found:?}"));
                }
            }
        }
        let Some((start, _)) = self.find_batch(from, end, ReadIo::Wait)? else { return Ok(None) };
        let files = self.files()?;
        let mut buf = Vec::new();
        for item in files.log.headers(start, end, ReadIo::Wait) {
            let (position, header) = item?;
            if header.max_timestamp < target || header.last_offset() < min_offset || header.is_control() {
                continue;
            }
            buf.resize(header.size(), 0);
            files.log.read_at(&mut buf, position)?;
            if let Some(found) = batch::first_record_at_or_after(&buf, target, min_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Renames the files to `*.deleted`: readers holding this segment's files keep reading through the open
    /// descriptors and maps, and later opens use the new names. Returns the new paths, to unlink later.
    pub(crate) fn rename_to_deleted(&self) -> Result<Vec<PathBuf>> {
        let _slot = self.files.lock().expect("segment files lock"); // no open between the renames
        let mut renamed = Vec::new();
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let from = segment_path(&self.dir, self.base_offset, suffix, false);
            let to = segment_path(&self.dir, self.base_offset, suffix, true);
            match std::fs::rename(&from, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("rename deleted segment", from, e)),
            }
        }
        self.deleted.store(true, Ordering::Release);
        Ok(renamed)
    }

    /// Final time index entry (the segment's max timestamp) and both indexes trimmed to their entries.
    pub(crate) fn seal_indexes(&self) -> Result<()> {
        let files = self.files()?;
        if self.max_timestamp() >= 0 {
            files.time_index.append_final(self.max_timestamp(), self.offset_of_max_timestamp())?;
        }
        files.offset_index.trim()?;
        files.time_index.trim()
    }

    /// The segment is no longer written: its files may be released when idle.
    pub(crate) fn unpin(&self) {
        self.pinned.store(false, Ordering::Release);
    }

    /// fdatasync of the log and both indexes (reopening them if they were released: fsync covers the file,
    /// not the descriptor).
    pub(crate) fn flush(&self) -> Result<()> {
        self.files()?.flush()
    }
}

impl Drop for LogSegment {
    fn drop(&mut self) {
        if self.files.get_mut().map(|f| f.is_some()).unwrap_or(false) {
            self.stats.open_segments.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Adds index entries for batches laid out from `start` (Kafka's rule: an entry once more than
/// `interval` bytes were appended since the last one); `max` is the (max timestamp, its batch's base offset)
/// so far, which the time index records. Entries are skipped, not failed, when an index is full within one
/// append: the log rolls before the next append.
pub(crate) fn index_batches(
    offset_index: &OffsetIndex,
    time_index: &TimeIndex,
    max: &mut (i64, i64),
    bytes_since_last_index_entry: &mut u64,
    headers: &[BatchHeader],
    start: u64,
    interval: u64,
) -> Result<()> {
    let mut position = start;
    for h in headers {
        if h.max_timestamp > max.0 {
            *max = (h.max_timestamp, h.base_offset);
        }
        if *bytes_since_last_index_entry > interval {
            if !offset_index.is_full() {
                offset_index.append(h.last_offset(), position as u32)?;
            }
            if !time_index.is_full() && max.0 >= 0 {
                time_index.maybe_append(max.0, max.1)?;
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
    files: Arc<SegmentFiles>,
    bytes_since_last_index_entry: u64,
    /// mmap write mode: the preallocated file mapped for appends. None in write mode, and in mmap mode when the
    /// filesystem had no room to reserve the segment: its appends then use pwrite, which fails cleanly at ENOSPC
    /// (a store into an unreserved map would be SIGBUS), so appends go on while they fit.
    map: Option<Arc<MmapRaw>>,
    /// mmap write mode: the file may extend past its data (a reservation, or what a failed one left), cut at seal.
    preallocates: bool,
}

impl ActiveSegment {
    pub(crate) fn new(segment: Arc<LogSegment>, mode: WriteMode, segment_bytes: u64) -> Result<ActiveSegment> {
        let files = segment.files()?;
        let preallocates = mode == WriteMode::Mmap;
        let mut active = ActiveSegment { segment, files, bytes_since_last_index_entry: 0, map: None, preallocates };
        if preallocates {
            active.reserve(segment_bytes.max(active.segment.size()))?;
        }
        Ok(active)
    }

    /// Maps `len` reserved bytes for appends, or, if the filesystem has less room than that, falls back to pwrite
    /// for this segment (the next one tries to reserve again).
    fn reserve(&mut self, len: u64) -> Result<()> {
        self.map = None;
        match self.map_for_writes(len) {
            Err(StorageError::DiskFull { .. }) => {
                tracing::warn!(segment = %self.files.log.path().display(), bytes = len,
                    "not enough free space to preallocate the segment for mmap writes; appending with pwrite until it rolls");
                Ok(())
            }
            reserved => reserved,
        }
    }

    /// Reserves blocks for `len` bytes (so stores into the map cannot hit a full disk, which would be SIGBUS)
    /// and maps them.
    fn map_for_writes(&mut self, len: u64) -> Result<()> {
        let log = &self.files.log;
        fallocate(log.file(), FallocateFlags::empty(), 0, len as i64)
            .map_err(|e| StorageError::io("fallocate segment", log.path(), e.into()))?;
        let map = MmapRaw::map_raw(log.file()).map_err(|e| StorageError::io("mmap segment", log.path(), e))?;
        self.map = Some(Arc::new(map));
        Ok(())
    }

    pub(crate) fn map(&self) -> Option<&Arc<MmapRaw>> {
        self.map.as_ref()
    }

    pub(crate) fn files(&self) -> &Arc<SegmentFiles> {
        &self.files
    }

    /// Appends validated batches (offsets already assigned) with their index entries, then publishes them.
    /// On failure the segment is left as it was.
    pub(crate) fn append(&mut self, records: &[u8], headers: &[BatchHeader], index_interval_bytes: u64) -> Result<()> {
        let seg = Arc::clone(&self.segment);
        let start = seg.size();
        let end = start + records.len() as u64;
        if end > u32::MAX as u64 {
            return Err(StorageError::CorruptLog {
                path: self.files.log.path().to_path_buf(),
                position: start,
                reason: "segment would exceed 4 GiB (positions are 32-bit)".into(),
            });
        }
        self.write_bytes(records, start)?;
        let bytes_since_before = self.bytes_since_last_index_entry;
        if let Err(e) =
            seg.index_appended(&self.files, &mut self.bytes_since_last_index_entry, headers, start, index_interval_bytes)
        {
            self.bytes_since_last_index_entry = bytes_since_before;
            let first = headers.first().map_or(seg.base_offset, |h| h.base_offset);
            self.files.offset_index.truncate_to(first);
            self.files.time_index.truncate_to(first);
            if self.map.is_none() {
                let _ = self.files.log.file().set_len(start);
            }
            return Err(e);
        }
        seg.record_timestamps(headers);
        seg.publish_size(end);
        Ok(())
    }

    fn write_bytes(&mut self, records: &[u8], start: u64) -> Result<()> {
        let end = start + records.len() as u64;
        if self.map.as_ref().is_some_and(|m| (m.len() as u64) < end) {
            // Only an empty segment takes an append larger than segment.bytes; grow its reservation.
            self.reserve(end)?;
        }
        let log = &self.files.log;
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

    /// Makes the segment inactive: final time index entry, indexes trimmed, the preallocated tail cut, and its
    /// files free to be released when idle. On failure the segment stays usable as the active one.
    pub(crate) fn seal(&mut self) -> Result<()> {
        let seg = &self.segment;
        seg.seal_indexes()?;
        if self.preallocates {
            seg.truncate_log(seg.size())?;
            self.map = None;
        }
        seg.unpin();
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
