//! Whether the log directory has room for appends, as the produce path finds out: one warning when it fills
//! (not one line per refused batch), one line when a write succeeds again, and the `strata_log_dir_full` gauge.
//! Kafka takes a failed log directory offline; a full one here keeps serving reads and retries each write, so
//! it recovers by itself once retention or an operator frees space.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use prometheus::IntGauge;
use strata_storage::StorageError;

use crate::episode::{Episode, Transition, LOG_INTERVAL};

pub struct LogDirSpace {
    dir: PathBuf,
    full: Mutex<Episode>,
    gauge: IntGauge,
}

impl LogDirSpace {
    pub fn new(dir: PathBuf, gauge: IntGauge) -> LogDirSpace {
        gauge.set(0);
        LogDirSpace { dir, full: Mutex::new(Episode::new(LOG_INTERVAL)), gauge }
    }

    /// A write to the directory succeeded: it has room.
    pub fn write_succeeded(&self) {
        self.set(None);
    }

    /// A write failed; only DiskFull says something about space.
    pub fn write_failed(&self, error: &StorageError) {
        if matches!(error, StorageError::DiskFull { .. }) {
            self.set(Some(error));
        }
    }

    /// `full`: the DiskFull error, or None after a successful write.
    fn set(&self, full: Option<&StorageError>) {
        let mut episode = self.full.lock().expect("log dir space lock");
        if episode.is_active() == full.is_some() {
            return;
        }
        self.gauge.set(i64::from(full.is_some()));
        match (episode.observe(full.is_some(), Instant::now()), full) {
            (Some(Transition::Started { unlogged }), Some(e)) => tracing::warn!(
                dir = %self.dir.display(), error = %e, earlier_unlogged_episodes = unlogged,
                "log directory is full: produce requests fail with KAFKA_STORAGE_ERROR until space is freed"
            ),
            (Some(Transition::Ended), _) => tracing::info!(dir = %self.dir.display(), "log directory accepts writes again"),
            _ => {}
        }
    }
}
