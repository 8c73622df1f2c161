//! All partition logs of a data directory (Kafka's LogManager): loading and recovery at startup, creation and
//! deletion, checkpoints, the background retention/flush tasks, and clean shutdown.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use tracing::{info, warn};

use crate::checkpoint::{
    read_checkpoint, write_checkpoint, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::log::{fsync_dir, now_ms, LoadReport, LoadState, Log};
use crate::stats::StorageStats;
use crate::TopicPartition;

/// Present only after a clean shutdown (Kafka's marker name, so operators' habits carry over).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
const LOCK_FILE: &str = ".lock";
const DELETE_DIR_SUFFIX: &str = "-delete";

/// The directory of the controller quorum's metadata log, which is not a partition log.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata";

#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    pub log_dir: PathBuf,
    pub default_config: LogConfig,
    /// Per-topic configs known at startup (the broker's topic store); other logs use `default_config`.
    pub topic_configs: HashMap<String, LogConfig>,
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// log.flush.scheduler.interval.ms: how often `flush.ms` is checked.
    pub flush_check_interval_ms: u64,
    /// log.flush.offset.checkpoint.interval.ms
    pub recovery_point_checkpoint_interval_ms: u64,
    /// producer.id.expiration.ms: idempotent producers idle this long are forgotten.
    pub producer_id_expiration_ms: i64,
    /// log.segment.close.idle.ms: the files of a closed segment are closed again after this long without reads.
    pub segment_close_idle_ms: i64,
}

impl LogManagerConfig {
    /// Kafka's defaults for the intervals.
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        LogManagerConfig {
            log_dir: log_dir.into(),
            default_config: LogConfig::default(),
            topic_configs: HashMap::new(),
            retention_check_interval_ms: 300_000,
            flush_check_interval_ms: 1_000,
            recovery_point_checkpoint_interval_ms: 60_000,
            producer_id_expiration_ms: 86_400_000,
            segment_close_idle_ms: 60_000,
        }
    }
}

#[derive(Debug)]
pub struct LogManager {
    config: LogManagerConfig,
    logs: RwLock<BTreeMap<TopicPartition, Arc<Log>>>,
    /// What loading each log found (recovery, truncation), for the broker's startup report.
    load_reports: BTreeMap<TopicPartition, LoadReport>,
    had_clean_shutdown: bool,
    stats: Arc<StorageStats>,
    _dir_lock: Flock<File>,
}

impl LogManager {
    /// Locks the data directory, loads every `<topic>-<partition>` log (recovering after an unclean
    /// shutdown) and removes the clean-shutdown marker, so that a crash from now on is noticed.
    pub fn open(config: LogManagerConfig) -> Result<Arc<LogManager>> {
        let dir = config.log_dir.clone();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("create data directory", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StorageError::io("open lock file", &lock_path, e))?;
        let dir_lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            StorageError::io("lock data directory (is another broker using it?)", &lock_path, errno.into())
        })?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let had_clean_shutdown = marker.exists();
        let recovery_points = read_checkpoint_or_empty(&dir.join(RECOVERY_POINT_CHECKPOINT), "logs will be fully recovered");
        let log_starts = read_checkpoint_or_empty(&dir.join(LOG_START_OFFSET_CHECKPOINT), "logs start at their first segment");
        let high_watermarks =
            read_checkpoint_or_empty(&dir.join(REPLICATION_OFFSET_CHECKPOINT), "high watermarks start at the log end offsets");

        let started = Instant::now();
        let stats = Arc::new(StorageStats::default());
        let mut logs = BTreeMap::new();
        let mut load_reports = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(|e| StorageError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| StorageError::io("list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // The controller quorum's metadata log lives beside the partition logs, as in Kafka.
            if !entry.path().is_dir() || name == METADATA_LOG_DIR {
                continue;
            }
            if name.ends_with(DELETE_DIR_SUFFIX) {
                fs::remove_dir_all(entry.path()).map_err(|e| StorageError::io("remove deleted log", entry.path(), e))?;
                continue;
            }
            let Some(tp) = TopicPartition::from_dir_name(&name) else {
                warn!(dir = %entry.path().display(), "ignoring a directory that is not a partition log");
                continue;
            };
            let state = LoadState {
                clean_shutdown: had_clean_shutdown,
                recovery_point: recovery_points.get(&tp).copied().unwrap_or(0),
                log_start_offset: log_starts.get(&tp).copied().unwrap_or(0),
                // Without an entry (a data directory from before high watermarks were checkpointed, when they
                // always equalled the log end offset, or a log created just before a crash) the high watermark
                // is the log end offset: a single replica behaves as before. Kafka would start from the log
                // start and wait for the followers instead.
                high_watermark: high_watermarks.get(&tp).copied(),
            };
            let log_config = config.topic_configs.get(&tp.topic).unwrap_or(&config.default_config).clone();
            let (log, report) = Log::open(entry.path(), tp.clone(), log_config, state, &stats)?;
            if report.recovered_segments > 0 {
                info!(log = %tp, ?report, "recovered log");
            }
            load_reports.insert(tp.clone(), report);
            logs.insert(tp, Arc::new(log));
        }
        info!(
            logs = logs.len(),
            clean_shutdown = had_clean_shutdown,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded logs"
        );

        let manager =
            LogManager { config, logs: RwLock::new(logs), load_reports, had_clean_shutdown, stats, _dir_lock: dir_lock };
        manager.checkpoint()?;
        if had_clean_shutdown {
            fs::remove_file(&marker).map_err(|e| StorageError::io("remove clean shutdown marker", &marker, e))?;
            fsync_dir(&dir)?;
        }
        Ok(Arc::new(manager))
    }

    pub fn log_dir(&self) -> &Path {
        &self.config.log_dir
    }

    pub fn default_config(&self) -> &LogConfig {
        &self.config.default_config
    }

    pub fn had_clean_shutdown(&self) -> bool {
        self.had_clean_shutdown
    }

    pub fn load_reports(&self) -> &BTreeMap<TopicPartition, LoadReport> {
        &self.load_reports
    }

    /// Open segments and corrupt indexes found, for the broker's metrics.
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().expect("logs lock").get(tp).cloned()
    }

    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.logs.read().expect("logs lock").values().cloned().collect()
    }

    /// The log of `tp`, created empty with `config` if it does not exist yet.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let mut logs = self.logs.write().expect("logs lock");
        if let Some(log) = logs.get(tp) {
            return Ok(Arc::clone(log));
        }
        let state = LoadState { clean_shutdown: true, recovery_point: 0, log_start_offset: 0, high_watermark: None };
        let (log, _) = Log::open(self.config.log_dir.join(tp.to_string()), tp.clone(), config, state, &self.stats)?;
        fsync_dir(&self.config.log_dir)?;
        let log = Arc::new(log);
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Deletes the log and its directory. Reads already holding its files finish normally.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let log = self.logs.write().expect("logs lock").remove(tp).ok_or_else(|| StorageError::UnknownLog(tp.clone()))?;
        log.mark_deleted();
        let doomed = self.config.log_dir.join(format!("{tp}.{}{DELETE_DIR_SUFFIX}", now_ms()));
        fs::rename(log.dir(), &doomed).map_err(|e| StorageError::io("rename deleted log", log.dir(), e))?;
        fsync_dir(&self.config.log_dir)?;
        fs::remove_dir_all(&doomed).map_err(|e| StorageError::io("remove deleted log", &doomed, e))?;
        self.checkpoint()
    }

    /// Kafka's DeleteRecords: moves the log start offset of `tp` to `offset` (at most its high watermark),
    /// deletes the segments wholly below it, and checkpoints the new start before returning, so deleted
    /// records stay deleted after a crash. Returns the new log start offset (the low watermark).
    pub fn delete_records(&self, tp: &TopicPartition, offset: i64) -> Result<i64> {
        let log = self.get(tp).ok_or_else(|| StorageError::UnknownLog(tp.clone()))?;
        let start = log.delete_records_before(offset)?;
        self.checkpoint()?;
        Ok(start)
    }

    /// Writes the recovery-point, log-start-offset and replication-offset (high watermark) checkpoints of all logs.
    pub fn checkpoint(&self) -> Result<()> {
        let logs = self.logs.read().expect("logs lock").clone();
        let recovery_points = logs.iter().map(|(tp, l)| (tp.clone(), l.recovery_point())).collect();
        let log_starts = logs.iter().map(|(tp, l)| (tp.clone(), l.log_start_offset())).collect();
        let high_watermarks = logs.iter().map(|(tp, l)| (tp.clone(), l.high_watermark())).collect();
        write_checkpoint(&self.config.log_dir.join(RECOVERY_POINT_CHECKPOINT), &recovery_points)?;
        write_checkpoint(&self.config.log_dir.join(LOG_START_OFFSET_CHECKPOINT), &log_starts)?;
        write_checkpoint(&self.config.log_dir.join(REPLICATION_OFFSET_CHECKPOINT), &high_watermarks)
    }

    /// Retention and producer expiry on every log now (the background task does this every retention
    /// check interval). Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> usize {
        self.logs()
            .iter()
            .map(|log| {
                if let Err(e) = log.expire_producers(now_ms, self.config.producer_id_expiration_ms) {
                    warn!(log = %log.topic_partition(), error = %e, "producer expiry failed");
                }
                log.apply_retention(now_ms).unwrap_or_else(|e| {
                    warn!(log = %log.topic_partition(), error = %e, "retention failed");
                    0
                })
            })
            .sum()
    }

    /// Starts the background thread for retention, `flush.ms`, delayed file deletion and checkpoints.
    pub fn start_background(self: &Arc<Self>) -> BackgroundTasks {
        let (stop, stopped) = mpsc::channel::<()>();
        let manager = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("strata-log-manager".into())
            .spawn(move || manager.background_loop(stopped))
            .expect("spawn log manager thread");
        BackgroundTasks { stop: Some(stop), handle: Some(handle) }
    }

    fn background_loop(&self, stopped: mpsc::Receiver<()>) {
        let c = &self.config;
        let tick = Duration::from_millis(c.flush_check_interval_ms.clamp(10, 1_000));
        let mut last = [Instant::now(); 4];
        let idle_sweep_ms = (c.segment_close_idle_ms / 4).clamp(10, 10_000) as u64;
        let intervals =
            [c.flush_check_interval_ms, c.retention_check_interval_ms, c.recovery_point_checkpoint_interval_ms, idle_sweep_ms]
                .map(Duration::from_millis);
        loop {
            match stopped.recv_timeout(tick) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let now = now_ms();
            let due: Vec<bool> = (0..4).map(|i| last[i].elapsed() >= intervals[i]).collect();
            for log in self.logs() {
                if due[0] {
                    if let Err(e) = log.flush_if_due(now) {
                        warn!(log = %log.topic_partition(), error = %e, "scheduled flush failed");
                    }
                }
                if let Err(e) = log.delete_expired_files(now) {
                    warn!(log = %log.topic_partition(), error = %e, "removing deleted segment files failed");
                }
                if due[3] {
                    log.release_idle_segments(now, c.segment_close_idle_ms);
                }
            }
            if due[1] {
                self.apply_retention(now);
            }
            if due[2] {
                if let Err(e) = self.checkpoint() {
                    warn!(error = %e, "writing checkpoints failed");
                }
            }
            for (i, d) in due.iter().enumerate() {
                if *d {
                    last[i] = Instant::now();
                }
            }
        }
    }

    /// Flushes and closes every log, writes the checkpoints and then the clean-shutdown marker, so the next
    /// start skips recovery. A log that fails to close leaves no marker: the next start recovers.
    pub fn shutdown(&self) -> Result<()> {
        let mut first_error = None;
        for log in self.logs() {
            if let Err(e) = log.close() {
                warn!(log = %log.topic_partition(), error = %e, "closing log failed");
                first_error.get_or_insert(e);
            }
        }
        self.checkpoint()?;
        if let Some(e) = first_error {
            return Err(e);
        }
        let marker = self.config.log_dir.join(CLEAN_SHUTDOWN_FILE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io("write clean shutdown marker", &marker, e))?;
        fsync_dir(&self.config.log_dir)?;
        info!(dir = %self.config.log_dir.display(), "logs closed cleanly");
        Ok(())
    }
}

/// A corrupt checkpoint is not fatal: it is treated as missing (`consequence` says what that means).
fn read_checkpoint_or_empty(path: &Path, consequence: &str) -> BTreeMap<TopicPartition, i64> {
    read_checkpoint(path).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring checkpoint; {consequence}");
        BTreeMap::new()
    })
}

/// The log manager's background thread; stopped (and joined) by [`BackgroundTasks::stop`] or on drop.
#[derive(Debug)]
pub struct BackgroundTasks {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl BackgroundTasks {
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
