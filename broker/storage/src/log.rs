//! One partition's log (Kafka's UnifiedLog): ordered segments, offsets, appends (as leader or follower), the
//! high watermark, the leader-epoch cache, reads as file ranges, retention, truncation and flushing.
//!
//! Concurrency: appends, rolls, retention and truncation are serialized by the writer lock. Readers take no
//! lock for longer than cloning an `Arc`: the segment map is copy-on-write (a roll or deletion publishes a
//! new map), and offsets, sizes and index entries are published through atomics after the bytes they
//! describe are written.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tracing::{info, warn};

use crate::batch::{self, BatchHeader};
use crate::batch_rewrite;
use crate::config::{LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::file_records::{FileRecords, ReadIo};
use crate::leader_epoch::{self, LeaderEpochCache};
use crate::producer_state::{self, ProducerCheck, ProducerStateManager};
use crate::recovery::recover_segment;
use crate::retention::{self, SegmentStats};
use crate::segment::{
    parse_segment_file_name, segment_file_name, ActiveSegment, LogSegment, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX, TMP_SUFFIX,
};
use crate::stats::StorageStats;
use crate::time_index::TimestampOffset;
use crate::TopicPartition;

type SegmentMap = BTreeMap<i64, Arc<LogSegment>>;

/// A byte range of a segment file holding whole batches; keeps the file open while it exists.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<FileRecords>,
    pub position: u64,
    pub len: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// In log order; their bytes concatenated are the records of a fetch response.
    pub ranges: Vec<FileRange>,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub record_count: u64,
    pub batch_count: u32,
    pub bytes: u64,
    /// An idempotent producer's retry of batches already in the log: nothing was appended and the offsets
    /// are the original ones (Kafka answers such a produce with success).
    pub duplicate: bool,
    /// The time stamped on the batches of a LogAppendTime log (for the Produce response); -1 with CreateTime.
    pub log_append_time: i64,
}

/// What the log manager knows of a log from its checkpoint files when loading it.
#[derive(Debug, Clone, Copy)]
pub struct LoadState {
    pub clean_shutdown: bool,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    /// From the replication-offset checkpoint; `None` makes it the log end offset.
    pub high_watermark: Option<i64>,
}

/// What loading a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub segments: usize,
    pub recovered_segments: usize,
    pub rebuilt_indexes: usize,
    pub truncated_bytes: u64,
    pub deleted_segments: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollReason {
    Size,
    Time,
    IndexFull,
    OffsetOverflow,
}

/// What an append brings, for the roll decision.
#[derive(Debug, Clone, Copy)]
pub struct PendingAppend {
    pub bytes: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// Kafka's `shouldRoll`: whether `append` needs a new segment. Age is measured like Kafka: from the first
/// batch's timestamp to the new batch's (so old record timestamps do not roll every append), or by wall
/// clock since the segment was created when it has no timestamps; it is compared with segment.ms minus the
/// active segment's `jitter_ms`.
pub(crate) fn roll_reason(
    active: &ActiveSegment,
    append: PendingAppend,
    config: &LogConfig,
    jitter_ms: i64,
    now_ms: i64,
) -> Option<RollReason> {
    let (files, active) = (active.files(), &active.segment);
    let size = active.size();
    if size == 0 {
        return None;
    }
    let age = match active.first_batch_timestamp() {
        Some(first) => append.max_timestamp.saturating_sub(first),
        None => now_ms.saturating_sub(active.created_ms()),
    };
    if size + append.bytes > config.segment_bytes {
        Some(RollReason::Size)
    } else if age > config.segment_ms - jitter_ms {
        Some(RollReason::Time)
    } else if files.offset_index().is_full() || files.time_index().is_full() {
        Some(RollReason::IndexFull)
    } else if append.last_offset - active.base_offset() > u32::MAX as i64 {
        Some(RollReason::OffsetOverflow)
    } else {
        None
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Kafka's `randomSegmentJitter`: a random time below min(segment.jitter.ms, segment.ms), drawn for each new
/// segment so that logs created together do not all roll at once.
fn random_segment_jitter(config: &LogConfig) -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    // std's randomly keyed hasher is random enough for spreading rolls (no rand dependency needed).
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    (hasher.finish() % bound as u64) as i64
}

#[derive(Debug)]
struct Writer {
    /// Always present while the log is open.
    active: Option<ActiveSegment>,
    unflushed_messages: u64,
    producers: ProducerStateManager,
    /// The active segment's [`random_segment_jitter`].
    roll_jitter_ms: i64,
}

impl Writer {
    fn active(&mut self) -> &mut ActiveSegment {
        self.active.as_mut().expect("an open log has an active segment")
    }
}

#[derive(Debug)]
pub struct Log {
    tp: TopicPartition,
    dir: PathBuf,
    config: RwLock<Arc<LogConfig>>,
    segments: RwLock<Arc<SegmentMap>>,
    writer: Mutex<Writer>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    recovery_point: AtomicI64,
    /// Changed only under the writer lock, and written to its file on every change.
    epochs: RwLock<LeaderEpochCache>,
    last_flush_ms: AtomicI64,
    /// Segments were created or deleted since the last flush: the directory needs an fsync too.
    dir_dirty: AtomicBool,
    closed: AtomicBool,
    /// Renamed `.deleted` files and when to unlink them.
    pending_deletes: Mutex<Vec<(i64, Vec<PathBuf>)>>,
    stats: Arc<StorageStats>,
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}

fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_file_if_exists(&dir.join(segment_file_name(base_offset, suffix)))?;
    }
    Ok(())
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StorageError::io("fsync directory", dir, e))
}

/// Base offsets of the segments in `dir`, after removing leftovers: `.deleted` files of a previous run,
/// unfinished `.tmp` files and index files without a log.
fn scan_segment_files(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETED_SUFFIX) || name.ends_with(TMP_SUFFIX) {
            remove_file_if_exists(&entry.path())?;
        } else if let Some(base) = parse_segment_file_name(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) =
            parse_segment_file_name(&name, INDEX_SUFFIX).or_else(|| parse_segment_file_name(&name, TIME_INDEX_SUFFIX))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            warn!(path = %path.display(), "removing index file without a log segment");
            remove_file_if_exists(&path)?;
        }
    }
    Ok(bases)
}

/// The producer state as of `log_end_offset`: the newest snapshot at or below it, then a replay of the batch
/// headers after it (only headers: nothing is decompressed).
fn load_producer_state(
    dir: &Path,
    segments: &SegmentMap,
    log_start_offset: i64,
    log_end_offset: i64,
) -> Result<ProducerStateManager> {
    let (from, mut state) = producer_state::load_latest_snapshot(dir, log_end_offset)?.unwrap_or_default();
    let first_base = segments.range(..=from).next_back().map_or(i64::MIN, |(&b, _)| b);
    for segment in segments.range(first_base..).map(|(_, s)| s) {
        let start = if segment.base_offset() <= from {
            segment.find_batch(from, segment.size(), ReadIo::Wait)?.map_or(0, |(p, _)| p)
        } else {
            0
        };
        let files = segment.files()?;
        for item in files.log().headers(start, segment.size(), ReadIo::Wait) {
            let (_, header) = item?;
            if header.base_offset >= from && header.base_offset < log_end_offset {
                state.update(&[header]);
            }
        }
    }
    state.truncate_head(log_start_offset);
    Ok(state)
}

/// The leader-epoch cache as of `log_end_offset`: the checkpoint reconciled with the log (entries from the end
/// on dropped, epochs of batches the checkpoint missed added, entries below the log start moved up to it),
/// and written back if that changed it.
fn load_leader_epochs(
    dir: &Path,
    tp: &TopicPartition,
    segments: &SegmentMap,
    log_start_offset: i64,
    log_end_offset: i64,
) -> Result<LeaderEpochCache> {
    let (mut epochs, mut changed) = match leader_epoch::read_checkpoint(dir) {
        Ok(Some(epochs)) => (epochs, false),
        // A log from before epochs were kept: every batch was stamped epoch 0.
        Ok(None) if log_start_offset < log_end_offset => {
            let mut epochs = LeaderEpochCache::default();
            epochs.assign(0, log_start_offset);
            (epochs, true)
        }
        Ok(None) => (LeaderEpochCache::default(), false),
        Err(e @ StorageError::CorruptCheckpoint { .. }) => {
            warn!(log = %tp, error = %e, "rebuilding the leader-epoch cache from the batch headers");
            // Empty, every batch's epoch is newer: the whole log is scanned.
            (LeaderEpochCache::default(), true)
        }
        Err(e) => return Err(e),
    };
    changed |= epochs.truncate_from_end(log_end_offset);
    changed |= add_missed_epochs(&mut epochs, segments)?;
    changed |= epochs.truncate_from_start(log_start_offset);
    if changed {
        leader_epoch::write_checkpoint(dir, &epochs)?;
    }
    Ok(epochs)
}

/// Adds the epochs of batches the checkpoint missed (a crash between a log write and the checkpoint's, or a
/// failed checkpoint write). They are newer than its latest epoch and at the end of the log: only the newest
/// segments are scanned (headers only), back to one whose first batch has a known epoch. Returns whether
/// any were added.
fn add_missed_epochs(epochs: &mut LeaderEpochCache, segments: &SegmentMap) -> Result<bool> {
    let latest = epochs.latest_epoch();
    let newer = |h: &BatchHeader| h.partition_leader_epoch >= 0 && latest.is_none_or(|l| h.partition_leader_epoch > l);
    let mut last = None;
    for segment in segments.values().rev() {
        last = last_batch(segment)?;
        if last.is_some() {
            break;
        }
    }
    if !last.is_some_and(|h| newer(&h)) {
        return Ok(false);
    }
    let mut from = i64::MIN;
    for (&base, segment) in segments.iter().rev() {
        from = base;
        let first = segment.files()?.log().headers(0, segment.size(), ReadIo::Wait).next().transpose()?;
        if first.is_some_and(|(_, h)| !newer(&h)) {
            break;
        }
    }
    epochs.truncate_from_end(from);
    for segment in segments.range(from..).map(|(_, s)| s) {
        for item in segment.files()?.log().headers(0, segment.size(), ReadIo::Wait) {
            let (_, h) = item?;
            epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
    }
    Ok(true)
}

/// The last batch of a segment: a short scan from its last index entry.
fn last_batch(segment: &LogSegment) -> Result<Option<BatchHeader>> {
    let files = segment.files()?;
    let start = files.offset_index().last_entry().map_or(0, |e| u64::from(e.position));
    let mut last = None;
    for item in files.log().headers(start, segment.size(), ReadIo::Wait) {
        last = Some(item?.1);
    }
    Ok(last)
}

impl Log {
    /// Opens the log in `dir` (creating it if needed), recovering what a crash left behind. Closed segments
    /// that need no recovery are not opened (see [`LogSegment::load_closed`]).
    pub(crate) fn open(
        dir: PathBuf,
        tp: TopicPartition,
        config: LogConfig,
        state: LoadState,
        stats: &Arc<StorageStats>,
    ) -> Result<(Log, LoadReport)> {
        let now = now_ms();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("create log directory", &dir, e))?;
        let mut bases = scan_segment_files(&dir)?;
        let mut report = LoadReport::default();
        let mut segments = SegmentMap::new();
        let mut log_end_offset = None;
        if bases.is_empty() {
            // A new log: its segment is used as created (reopening would read the preallocated index files
            // as full of entries).
            let base = state.log_start_offset.max(0);
            segments.insert(base, Arc::new(LogSegment::create(&dir, base, &config, stats, now)?));
            fsync_dir(&dir)?;
            log_end_offset = Some(base);
        }
        // Without a clean shutdown, everything from the segment holding the recovery point on is suspect.
        let recover_from = (!state.clean_shutdown).then(|| bases.iter().rposition(|&b| b <= state.recovery_point).unwrap_or(0));

        let mut prev_next_offset: Option<i64> = None;
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let is_last = i + 1 == bases.len();
            let index_missing = [INDEX_SUFFIX, TIME_INDEX_SUFFIX].iter().any(|s| !dir.join(segment_file_name(base, s)).exists());
            let must_recover = recover_from.is_some_and(|r| i >= r);
            let opened = match (must_recover || index_missing, is_last) {
                (true, _) => None,
                (false, true) => Some(LogSegment::open_active(&dir, base, &config, stats, now)),
                (false, false) => Some(LogSegment::load_closed(&dir, base, &config, stats, now)),
            };
            let segment = match opened {
                Some(Ok(segment)) => {
                    if is_last {
                        log_end_offset = Some(Self::scan_tail(&segment)?);
                    }
                    segment
                }
                Some(Err(e)) if !matches!(e, StorageError::CorruptIndex { .. }) => return Err(e),
                not_opened => {
                    if let Some(Err(e)) = &not_opened {
                        warn!(log = %tp, error = %e, "rebuilding the indexes of segment {base}");
                    }
                    if not_opened.is_some() || index_missing {
                        report.rebuilt_indexes += 1;
                    }
                    let segment = LogSegment::open_for_recovery(&dir, base, &config, stats, now)?;
                    let min_offset = prev_next_offset.unwrap_or(base);
                    let recovered = recover_segment(&segment, min_offset, config.index_interval_bytes)?;
                    report.recovered_segments += 1;
                    report.truncated_bytes += recovered.truncated_bytes;
                    prev_next_offset = recovered.next_offset.or(prev_next_offset);
                    let mut becomes_last = is_last;
                    if let Some(problem) = &recovered.problem {
                        warn!(log = %tp, segment = base, truncated_bytes = recovered.truncated_bytes, "recovery truncated the log: {problem}");
                        // Nothing after a corrupt batch can be trusted: later segments go.
                        for &later in &bases[i + 1..] {
                            remove_segment_files(&dir, later)?;
                            report.deleted_segments += 1;
                        }
                        bases.truncate(i + 1);
                        becomes_last = true;
                    }
                    if becomes_last {
                        log_end_offset = Some(recovered.next_offset.unwrap_or(min_offset.max(base)));
                    } else {
                        segment.seal_indexes()?;
                        segment.unpin();
                        segment.release_if_idle(i64::MAX, 0);
                    }
                    segment
                }
            };
            segments.insert(base, Arc::new(segment));
            i += 1;
        }
        report.segments = segments.len();
        let (&last_base, last) = segments.iter().next_back().expect("at least one segment");
        let log_end_offset = log_end_offset.expect("the last segment sets the log end offset").max(last_base);
        let first_base = *segments.keys().next().expect("at least one segment");
        let log_start_offset = state.log_start_offset.max(first_base).min(log_end_offset);
        let active = ActiveSegment::new(Arc::clone(last), config.write_mode, config.segment_bytes)?;
        let producers = load_producer_state(&dir, &segments, log_start_offset, log_end_offset)?;
        let epochs = load_leader_epochs(&dir, &tp, &segments, log_start_offset, log_end_offset)?;
        let high_watermark = state.high_watermark.map_or(log_end_offset, |hw| hw.clamp(log_start_offset, log_end_offset));
        let roll_jitter_ms = random_segment_jitter(&config);
        let log = Log {
            tp,
            dir,
            config: RwLock::new(Arc::new(config)),
            segments: RwLock::new(Arc::new(segments)),
            writer: Mutex::new(Writer { active: Some(active), unflushed_messages: 0, producers, roll_jitter_ms }),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            high_watermark: AtomicI64::new(high_watermark),
            recovery_point: AtomicI64::new(if state.clean_shutdown {
                log_end_offset
            } else {
                state.recovery_point.min(log_end_offset)
            }),
            epochs: RwLock::new(epochs),
            last_flush_ms: AtomicI64::new(now),
            dir_dirty: AtomicBool::new(report.deleted_segments > 0),
            closed: AtomicBool::new(false),
            pending_deletes: Mutex::new(Vec::new()),
            stats: Arc::clone(stats),
        };
        // The recovery point stays where it was: until the next flush makes the recovered state durable, a
        // second crash recovers the same segments again (Kafka does the same).
        Ok((log, report))
    }

    /// The offset after the last batch of a segment that needs no recovery.
    fn scan_tail(segment: &LogSegment) -> Result<i64> {
        Ok(last_batch(segment)?.map_or(segment.base_offset(), |h| h.next_offset()))
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> Arc<LogConfig> {
        Arc::clone(&self.config.read().expect("config lock"))
    }

    /// Takes effect at once for retention, flushing and validation; segment and index sizes and the write
    /// mode apply from the next roll.
    pub fn update_config(&self, config: LogConfig) {
        *self.config.write().expect("config lock") = Arc::new(config);
    }

    fn segments(&self) -> Arc<SegmentMap> {
        Arc::clone(&self.segments.read().expect("segments lock"))
    }

    fn publish_segments(&self, map: SegmentMap) {
        *self.segments.write().expect("segments lock") = Arc::new(map);
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// The offset below which records are committed (replicated to the in-sync replicas): what consumers may
    /// read. Moved only by [`Log::set_high_watermark`] and [`Log::maybe_increment_high_watermark`] (the
    /// partition layer knows the replicas), and lowered by truncation.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Sets the high watermark, kept within [log start offset, log end offset] (a follower takes the leader's,
    /// which may be ahead of its own log). Returns the value set.
    pub fn set_high_watermark(&self, high_watermark: i64) -> i64 {
        // The bounds move only under the writer lock: a concurrent truncation cannot leave it above the end.
        let _w = self.writer.lock().expect("writer lock");
        let high_watermark = high_watermark.clamp(self.log_start_offset(), self.log_end_offset());
        self.high_watermark.store(high_watermark, Ordering::Release);
        high_watermark
    }

    /// Moves the high watermark forward to `high_watermark` (at most the log end offset), never back, so that
    /// concurrent callers with different views cannot move it backwards. Returns whether it moved.
    pub fn maybe_increment_high_watermark(&self, high_watermark: i64) -> bool {
        let _w = self.writer.lock().expect("writer lock");
        let high_watermark = high_watermark.min(self.log_end_offset());
        high_watermark > self.high_watermark.fetch_max(high_watermark, Ordering::AcqRel)
    }

    /// The newest leader epoch that wrote to the log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.read().expect("epochs lock").latest_epoch()
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` and its end offset (the log end offset for the
    /// latest epoch), or `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)` (see [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let epochs = self.epochs.read().expect("epochs lock");
        epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader epoch of the batch holding `offset` (ListOffsets reports it with the offset found).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.read().expect("epochs lock").epoch_for_offset(offset)
    }

    /// The leader-epoch cache: (epoch, start offset) pairs, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs.read().expect("epochs lock").entries().iter().map(|e| (e.epoch, e.start_offset)).collect()
    }

    /// Applies `change` to the epoch cache and writes its file if that changed anything. Called under the
    /// writer lock, after the log changed: the cache stays right in memory even if the write fails, and a
    /// stale file is reconciled with the log when it is next opened.
    fn change_epochs(&self, change: impl FnOnce(&mut LeaderEpochCache) -> bool) {
        let mut epochs = self.epochs.read().expect("epochs lock").clone();
        if !change(&mut epochs) {
            return;
        }
        if let Err(e) = leader_epoch::write_checkpoint(&self.dir, &epochs) {
            warn!(log = %self.tp, error = %e, "writing the leader-epoch checkpoint failed");
        }
        *self.epochs.write().expect("epochs lock") = epochs;
    }

    /// Everything below this offset has been flushed to disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments().values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().keys().copied().collect()
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let w = self.writer.lock().expect("writer lock");
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::LogClosed(self.tp.clone()));
        }
        Ok(w)
    }

    /// Appends the record batches of one produce request as the partition's leader in `leader_epoch`. Every
    /// batch is validated first (structure, size, timestamps); batches are re-encoded if the log's
    /// compression.type asks for another codec and stamped if it uses LogAppendTime; offsets are then assigned
    /// by rewriting each batch's base offset in place, each batch is stamped with `leader_epoch`, and the bytes
    /// are stored as they are. A newer epoch than the log's latest starts at the first appended offset; an
    /// older one is refused (a deposed leader). The high watermark does not move.
    pub fn append_as_leader(&self, records: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        let config = self.config();
        let headers = batch::validate_batches(records, config.max_message_bytes)?;
        let now = now_ms();
        let mut position = 0;
        for h in &headers {
            batch_rewrite::check_timestamps(&records[position..position + h.size()], h, &config, now)?;
            position += h.size();
        }
        // Re-encoding is the costly part: done before taking the writer lock. Kafka checks the size again after.
        let mut recompressed = batch_rewrite::recompress_batches(records, &headers, config.compression_type)?;
        let (records, mut headers) = match recompressed.as_deref_mut() {
            Some(rewritten) => {
                let headers = batch::validate_batches(rewritten, config.max_message_bytes)?;
                (rewritten, headers)
            }
            None => (records, headers),
        };
        let w = self.lock_writer()?;
        if let Some(latest) = self.latest_epoch().filter(|&latest| leader_epoch < latest) {
            return Err(StorageError::StaleLeaderEpoch { epoch: leader_epoch, latest });
        }
        if let ProducerCheck::Duplicate(original) = w.producers.check(&headers)? {
            let log_append_time = match config.timestamp_type {
                TimestampType::LogAppendTime => original.max_timestamp,
                TimestampType::CreateTime => -1,
            };
            return Ok(AppendInfo {
                first_offset: original.first_offset,
                last_offset: original.last_offset,
                max_timestamp: original.max_timestamp,
                record_count: 0,
                batch_count: 0,
                bytes: 0,
                duplicate: true,
                log_append_time,
            });
        }
        // The append time is read under the lock, so it never goes back from one append to the next (unless the
        // clock does).
        let log_append_time = batch_rewrite::stamp_timestamp_type(records, &mut headers, config.timestamp_type, now_ms());
        let mut next = self.log_end_offset();
        let mut position = 0;
        for h in headers.iter_mut() {
            batch::set_base_offset(&mut records[position..], next);
            batch::set_partition_leader_epoch(&mut records[position..], leader_epoch);
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            next = h.next_offset();
            position += h.size();
        }
        let info = self.write_batches(w, records, &headers, &config, now)?;
        Ok(AppendInfo { log_append_time, ..info })
    }

    /// Appends batches fetched from the leader exactly as they are (offsets, epochs, timestamps, codecs): only
    /// their structure and CRCs are checked (the leader applied the topic's rules), and their offsets must
    /// continue from the log end offset. Producer state follows them without checks, so that
    /// this replica deduplicates once it leads; epochs newer than the latest start where their first batch
    /// does. The high watermark does not move. Nothing to append is a no-op.
    pub fn append_as_follower(&self, records: &[u8]) -> Result<AppendInfo> {
        if records.is_empty() {
            let end = self.log_end_offset();
            return Ok(AppendInfo {
                first_offset: end,
                last_offset: end - 1,
                max_timestamp: -1,
                record_count: 0,
                batch_count: 0,
                bytes: 0,
                duplicate: false,
                log_append_time: -1,
            });
        }
        let config = self.config();
        // No size limit: a batch the leader took must not stall replication after a max.message.bytes change.
        let headers = batch::validate_batches(records, u32::MAX)?;
        let w = self.lock_writer()?;
        let mut expected = self.log_end_offset();
        // Without compaction, the leader's offsets have no gaps.
        for h in &headers {
            if h.base_offset != expected {
                return Err(StorageError::NonContiguousAppend { expected, got: h.base_offset });
            }
            expected = h.next_offset();
        }
        self.write_batches(w, records, &headers, &config, now_ms())
    }

    /// Stores validated batches whose offsets follow the log end (rolling first if due), then records the
    /// epochs they start and flushes if flush.messages is reached.
    fn write_batches(
        &self,
        mut w: MutexGuard<'_, Writer>,
        records: &[u8],
        headers: &[BatchHeader],
        config: &LogConfig,
        now: i64,
    ) -> Result<AppendInfo> {
        let (first, last) = (headers.first().expect("at least one batch"), headers.last().expect("at least one batch"));
        let max_timestamp = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        let pending = PendingAppend { bytes: records.len() as u64, last_offset: last.last_offset(), max_timestamp };
        let jitter_ms = w.roll_jitter_ms;
        if let Some(reason) = roll_reason(w.active(), pending, config, jitter_ms, now) {
            tracing::debug!(log = %self.tp, ?reason, "rolling segment");
            self.roll_locked(&mut w, config, now)?;
        }
        w.active().append(records, headers, config.index_interval_bytes)?;
        w.producers.update(headers);
        self.log_end_offset.store(last.next_offset(), Ordering::Release);
        self.change_epochs(|epochs| {
            headers.iter().fold(false, |changed, h| epochs.assign(h.partition_leader_epoch, h.base_offset) | changed)
        });
        let record_count: u64 = headers.iter().map(|h| h.record_count as u64).sum();
        w.unflushed_messages += record_count;
        let flush_due = w.unflushed_messages >= config.flush_messages;
        drop(w);
        if flush_due {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            max_timestamp,
            record_count,
            batch_count: headers.len() as u32,
            bytes: records.len() as u64,
            duplicate: false,
            log_append_time: -1,
        })
    }

    /// Starts a new segment at the log end offset (no-op if the active segment is empty).
    pub fn roll(&self) -> Result<()> {
        let config = self.config();
        let mut w = self.lock_writer()?;
        self.roll_locked(&mut w, &config, now_ms())
    }

    fn roll_locked(&self, w: &mut Writer, config: &LogConfig, now: i64) -> Result<()> {
        let base = self.log_end_offset();
        if w.active().segment.base_offset() == base {
            return Ok(());
        }
        let segment = Arc::new(LogSegment::create(&self.dir, base, config, &self.stats, now)?);
        let next = ActiveSegment::new(Arc::clone(&segment), config.write_mode, config.segment_bytes)
            .and_then(|next| w.active().seal().map(|()| next));
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                remove_segment_files(&self.dir, base)?;
                return Err(e);
            }
        };
        w.active = Some(next);
        w.roll_jitter_ms = random_segment_jitter(config);
        // The producer state as of the new segment's start, so recovery replays at most one segment.
        if let Err(e) = producer_state::write_snapshot(&self.dir, base, &w.producers) {
            warn!(log = %self.tp, error = %e, "writing the producer state snapshot failed");
        }
        let mut map = (*self.segments()).clone();
        map.insert(base, segment);
        self.publish_segments(map);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Whole batches from the one containing `offset`, at most `max_bytes` (but at least one batch), only
    /// batches whose last offset is below `upper_bound` (the high watermark, for consumers).
    pub fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Result<ReadResult> {
        self.read_io(offset, max_bytes, upper_bound, ReadIo::Wait)
    }

    /// [`Log::read`], which with [`ReadIo::NoWait`] fails with `StorageError::WouldBlock` instead of waiting for
    /// the disk to read the batch headers that locate the range or to open a closed segment (a network thread
    /// tries this first).
    pub fn read_io(&self, offset: i64, max_bytes: usize, upper_bound: i64, io: ReadIo) -> Result<ReadResult> {
        // The end offset first: any segment holding offsets below it is already in the map snapshot.
        let log_end_offset = self.log_end_offset();
        let segments = self.segments();
        let log_start_offset = self.log_start_offset();
        if offset < log_start_offset || offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange { offset, log_start_offset, log_end_offset });
        }
        let upper_bound = upper_bound.min(log_end_offset);
        let mut result = ReadResult::default();
        if offset >= upper_bound {
            return Ok(result);
        }
        let first_base = segments.range(..=offset).next_back().map_or(i64::MIN, |(&b, _)| b);
        let mut remaining = max_bytes as u64;
        for segment in segments.range(first_base..).map(|(_, s)| s) {
            let end = segment.size();
            let Some((position, header)) = segment.find_batch(offset, end, io)? else { continue };
            if header.last_offset() >= upper_bound {
                break;
            }
            let stop = segment.read_end(position, end, remaining, upper_bound, result.ranges.is_empty(), io)?;
            if stop > position {
                let len = stop - position;
                result.ranges.push(FileRange { file: Arc::clone(segment.files()?.log()), position, len });
                result.bytes += len;
                remaining = remaining.saturating_sub(len);
            }
            if stop < end || remaining == 0 {
                break;
            }
        }
        Ok(result)
    }

    /// Kafka's ListOffsets by time: the first record with timestamp >= `timestamp` (and offset >= log start).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let segments = self.segments();
        let start = self.log_start_offset();
        for segment in segments.values().filter(|s| s.max_timestamp() >= timestamp) {
            if let Some(found) = segment.find_offset_by_timestamp(timestamp, start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Kafka's ListOffsets MAX_TIMESTAMP: the (first) record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>> {
        let segments = self.segments();
        let best = segments.values().filter(|s| s.max_timestamp() >= 0).fold(None::<&Arc<LogSegment>>, |best, s| match best {
            Some(b) if b.max_timestamp() >= s.max_timestamp() => Some(b),
            _ => Some(s),
        });
        match best {
            Some(segment) => segment.find_offset_by_timestamp(segment.max_timestamp(), self.log_start_offset()),
            None => Ok(None),
        }
    }

    /// Kafka's DeleteRecords: moves the log start offset to `offset` (at most the high watermark) and
    /// deletes the segments wholly below it. Returns the new log start offset. Made durable by
    /// [`crate::LogManager::delete_records`], which checkpoints the log start offsets (a follower calls it
    /// directly: a start lost in a crash is learnt again from the leader).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut w = self.lock_writer()?;
        let high_watermark = self.high_watermark();
        if offset < 0 || offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        self.advance_log_start_locked(&mut w, offset);
        // Only the log start offset rule: time and size retention run on their own schedule.
        let config = LogConfig { retention_ms: -1, retention_bytes: -1, ..(*self.config()).clone() };
        self.delete_old_segments_locked(w, &config, now_ms())?;
        Ok(self.log_start_offset())
    }

    /// Moves the log start offset forward: producers and leader epochs below it are forgotten.
    fn advance_log_start_locked(&self, w: &mut Writer, offset: i64) {
        self.log_start_offset.fetch_max(offset, Ordering::AcqRel);
        let start = self.log_start_offset();
        w.producers.truncate_head(start);
        self.change_epochs(|epochs| epochs.truncate_from_start(start));
    }

    /// Applies retention.ms, retention.bytes and the log start offset; returns how many segments went.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let w = self.lock_writer()?;
        self.delete_old_segments_locked(w, &self.config(), now_ms)
    }

    fn delete_old_segments_locked(&self, mut w: MutexGuard<'_, Writer>, config: &LogConfig, now: i64) -> Result<usize> {
        let segments = self.segments();
        let stats = segments
            .values()
            .map(|s| {
                let max_timestamp = match s.max_timestamp() {
                    ts if ts >= 0 => ts,
                    // Like Kafka: records without timestamps age by the file's modification time.
                    _ => fs::metadata(s.log_path())
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as i64))
                        .unwrap_or(now),
                };
                SegmentStats { base_offset: s.base_offset(), size: s.size(), max_timestamp }
            })
            .collect::<Vec<_>>();
        let Some((count, reason)) = retention::deletable_prefix(
            &stats,
            self.log_end_offset(),
            self.high_watermark(),
            self.log_start_offset(),
            config,
            now,
        ) else {
            return Ok(0);
        };
        if count == segments.len() {
            // Keep an active segment: roll so the expired one is no longer active.
            self.roll_locked(&mut w, config, now)?;
        }
        let mut map = (*self.segments()).clone();
        let doomed: Vec<Arc<LogSegment>> = stats[..count].iter().filter_map(|s| map.remove(&s.base_offset)).collect();
        let new_start = map.keys().next().copied().unwrap_or(self.log_end_offset());
        let first_segment = map.keys().next().copied().unwrap_or(new_start);
        self.publish_segments(map);
        self.dir_dirty.store(true, Ordering::Release);
        self.advance_log_start_locked(&mut w, new_start);
        producer_state::delete_snapshots_below(&self.dir, first_segment)?;
        drop(w);
        let mut pending = Vec::new();
        for segment in &doomed {
            pending.extend(segment.rename_to_deleted()?);
        }
        self.pending_deletes.lock().expect("pending lock").push((now + config.file_delete_delay_ms, pending));
        info!(log = %self.tp, ?reason, segments = count, log_start_offset = self.log_start_offset(), "deleted old segments");
        Ok(count)
    }

    /// Unlinks the files of deleted segments whose delay has passed (all of them with `now_ms = i64::MAX`).
    pub fn delete_expired_files(&self, now_ms: i64) -> Result<()> {
        let due: Vec<PathBuf> = {
            let mut pending = self.pending_deletes.lock().expect("pending lock");
            let (due, keep): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now_ms);
            *pending = keep;
            due.into_iter().flat_map(|(_, paths)| paths).collect()
        };
        due.iter().try_for_each(|p| remove_file_if_exists(p))
    }

    /// Removes everything from the batch containing `offset` on (a follower's truncation). The log end offset
    /// becomes that batch's base offset.
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        let config = self.config();
        let mut w = self.lock_writer()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        let segments = self.segments();
        let (&base, segment) = segments.range(..=offset).next_back().expect("a segment holds the log start offset");
        let found = segment.find_batch(offset, segment.size(), ReadIo::Wait)?;
        let cut = found.map_or(segment.size(), |(position, _)| position);
        // Epochs starting in what goes are forgotten durably before the log is cut: after a crash in between, the
        // checkpoint misses epochs the log still has, which opening the log adds back from the batch headers.
        let mut epochs = self.epochs.read().expect("epochs lock").clone();
        if epochs.truncate_from_end(found.map_or(offset, |(_, h)| h.base_offset.min(offset))) {
            leader_epoch::write_checkpoint(&self.dir, &epochs)?;
            *self.epochs.write().expect("epochs lock") = epochs;
        }
        w.active().seal()?;
        let mut map = (*segments).clone();
        for (&later, doomed) in segments.range(base + 1..) {
            map.remove(&later);
            doomed.publish_size(0);
            remove_segment_files(&self.dir, later)?;
        }
        segment.truncate_log(cut)?;
        // Reopened with fresh indexes rebuilt from the log: truncation is rare and this keeps one code path.
        let reopened = Arc::new(LogSegment::open_for_recovery(&self.dir, base, &config, &self.stats, now_ms())?);
        let recovered = recover_segment(&reopened, base, config.index_interval_bytes)?;
        let mut new_end = recovered.next_offset.unwrap_or(base);
        if new_end < self.log_start_offset() {
            // The cut batch straddled the log start: start over, empty, at the log start offset, so the end
            // offset is recorded on disk (as the new segment's base) and survives a crash.
            new_end = self.log_start_offset();
            drop(reopened);
            remove_segment_files(&self.dir, base)?;
            map.remove(&base);
            let fresh = Arc::new(LogSegment::create(&self.dir, new_end, &config, &self.stats, now_ms())?);
            w.active = Some(ActiveSegment::new(Arc::clone(&fresh), config.write_mode, config.segment_bytes)?);
            map.insert(new_end, fresh);
        } else {
            w.active = Some(ActiveSegment::new(Arc::clone(&reopened), config.write_mode, config.segment_bytes)?);
            map.insert(base, reopened);
        }
        w.roll_jitter_ms = random_segment_jitter(&config);
        w.producers = load_producer_state(&self.dir, &map, self.log_start_offset(), new_end)?;
        self.publish_segments(map);
        self.log_end_offset.store(new_end, Ordering::Release);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        self.recovery_point.fetch_min(new_end, Ordering::AcqRel);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Empties the log and starts it over at `offset` (Kafka's truncateFullyAndStartAt): a follower whose log
    /// ends before its leader's log start, or must be cut below its own log start, has nothing worth keeping.
    /// The log start, end and high watermark all become `offset`; producer state and leader epochs are
    /// forgotten. The caller checkpoints the new log start (or learns it again from the leader).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let config = self.config();
        let mut w = self.lock_writer()?;
        // Epochs are forgotten durably first: after a crash in between, opening the log adds back those its
        // batches still have.
        let mut epochs = self.epochs.read().expect("epochs lock").clone();
        if epochs.truncate_from_end(i64::MIN) {
            leader_epoch::write_checkpoint(&self.dir, &epochs)?;
            *self.epochs.write().expect("epochs lock") = epochs;
        }
        w.active().seal()?;
        let segments = self.segments();
        for (&base, doomed) in segments.iter() {
            doomed.publish_size(0);
            remove_segment_files(&self.dir, base)?;
        }
        producer_state::delete_snapshots_below(&self.dir, i64::MAX)?;
        let fresh = Arc::new(LogSegment::create(&self.dir, offset, &config, &self.stats, now_ms())?);
        w.active = Some(ActiveSegment::new(Arc::clone(&fresh), config.write_mode, config.segment_bytes)?);
        w.roll_jitter_ms = random_segment_jitter(&config);
        w.producers.clear();
        w.unflushed_messages = 0;
        self.publish_segments(SegmentMap::from([(offset, fresh)]));
        self.log_start_offset.store(offset, Ordering::Release);
        self.log_end_offset.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        self.recovery_point.store(offset, Ordering::Release);
        self.dir_dirty.store(true, Ordering::Release);
        fsync_dir(&self.dir)?;
        info!(log = %self.tp, offset, "emptied the log to start over at the leader's log start");
        Ok(())
    }

    /// Writes everything appended so far to disk (fdatasync, or msync of the active map in mmap mode) and
    /// advances the recovery point. The fsyncs run outside the writer lock: appends continue meanwhile.
    pub fn flush(&self) -> Result<()> {
        let (log_end_offset, to_sync, active_base, active_map) = {
            let mut w = self.writer.lock().expect("writer lock");
            let Some(active) = w.active.as_ref() else { return Ok(()) };
            let active_base = active.segment.base_offset();
            let active_map = active.map().cloned().map(|map| (map, Arc::clone(active.files())));
            w.unflushed_messages = 0;
            let segments = self.segments();
            let from = segments.range(..=self.recovery_point()).next_back().map_or(i64::MIN, |(&b, _)| b);
            let to_sync: Vec<Arc<LogSegment>> = segments.range(from..).map(|(_, s)| Arc::clone(s)).collect();
            (self.log_end_offset(), to_sync, active_base, active_map)
        };
        for segment in &to_sync {
            match (&active_map, segment.base_offset() == active_base) {
                (Some((map, files)), true) => {
                    map.flush_range(0, segment.size() as usize).map_err(|e| StorageError::io("msync", files.log().path(), e))?;
                    files.offset_index().flush()?;
                    files.time_index().flush()?;
                }
                _ => segment.flush()?,
            }
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            fsync_dir(&self.dir)?;
        }
        self.recovery_point.fetch_max(log_end_offset, Ordering::AcqRel);
        self.last_flush_ms.store(now_ms(), Ordering::Release);
        Ok(())
    }

    /// `flush.ms`: flushes if the last flush is older than the configured interval.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<()> {
        let config = self.config();
        let unflushed = self.recovery_point() < self.log_end_offset();
        if unflushed && now_ms.saturating_sub(self.last_flush_ms.load(Ordering::Acquire)) >= config.flush_ms {
            self.flush()?;
        }
        Ok(())
    }

    /// Flushes and seals the active segment (indexes trimmed, preallocated tail cut); the log refuses further
    /// writes. Files of deleted segments are removed at once.
    pub fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.flush()?;
        let mut w = self.lock_writer()?;
        w.active().seal()?;
        producer_state::write_snapshot(&self.dir, self.log_end_offset(), &w.producers)?;
        self.closed.store(true, Ordering::Release);
        drop(w);
        self.delete_expired_files(i64::MAX)
    }

    /// Closes the files of closed segments not read for `idle_ms`; returns how many were closed.
    pub fn release_idle_segments(&self, now_ms: i64, idle_ms: i64) -> usize {
        self.segments().values().filter(|s| s.release_if_idle(now_ms, idle_ms)).count()
    }

    /// Forgets idempotent producers idle for `expiration_ms` (producer.id.expiration.ms).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<usize> {
        Ok(self.lock_writer()?.producers.expire(now_ms, expiration_ms))
    }

    /// Refuses further writes without flushing (the log's directory is about to be deleted).
    pub(crate) fn mark_deleted(&self) {
        let _w = self.writer.lock().expect("writer lock");
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_log_is_not_recovered_or_reindexed() {
        let dir = tempfile::tempdir().unwrap();
        let state = LoadState { clean_shutdown: true, recovery_point: 0, log_start_offset: 0, high_watermark: None };
        let stats = Arc::default();
        let (log, report) =
            Log::open(dir.path().join("t-0"), TopicPartition::new("t", 0), LogConfig::default(), state, &stats).unwrap();
        assert_eq!(report, LoadReport { segments: 1, ..LoadReport::default() });
        assert_eq!((log.log_end_offset(), log.segment_count()), (0, 1));
    }
}
