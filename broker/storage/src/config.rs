//! Per-log configuration with Kafka's topic-level names, changeable at run time.

use std::fmt;
use std::str::FromStr;

use crate::error::{Result, StorageError};

/// How appends reach the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// pwrite(2) at the end of the segment file (Kafka's way).
    Write,
    /// The active segment is preallocated (fallocate) and memory-mapped; an append is a memcpy into the map.
    Mmap,
}

impl FromStr for WriteMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "write" => Ok(WriteMode::Write),
            "mmap" => Ok(WriteMode::Mmap),
            _ => Err("expected write or mmap".into()),
        }
    }
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteMode::Write => "write",
            WriteMode::Mmap => "mmap",
        })
    }
}

/// Only deletion is implemented; compaction is refused rather than silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    /// -1: unlimited.
    pub retention_ms: i64,
    /// -1: unlimited.
    pub retention_bytes: i64,
    pub max_message_bytes: u32,
    pub flush_messages: u64,
    pub flush_ms: i64,
    pub file_delete_delay_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub write_mode: WriteMode,
}

impl Default for LogConfig {
    /// Kafka's defaults (flushing left to the OS: Long.MAX_VALUE); `write` mode (see BENCHMARKS.md).
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
            cleanup_policy: CleanupPolicy::Delete,
            write_mode: WriteMode::Write,
        }
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidConfig { key: key.to_string(), value: value.to_string(), reason: reason.into() }
}

fn parse_in<T>(key: &str, value: &str, min: T, max: T) -> Result<T>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let v: T = value.trim().parse().map_err(|_| invalid(key, value, "not a number"))?;
    if v < min || v > max {
        return Err(invalid(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v)
}

impl LogConfig {
    pub const KEYS: &'static [&'static str] = &[
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "index.interval.bytes",
        "retention.ms",
        "retention.bytes",
        "max.message.bytes",
        "flush.messages",
        "flush.ms",
        "file.delete.delay.ms",
        "cleanup.policy",
        "log.write.mode",
    ];

    /// Sets one key, validating the value with Kafka's bounds. Unknown keys are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            // Kafka's minimum segment.bytes is 14 bytes (the legacy record overhead); a segment must hold a batch header.
            "segment.bytes" => self.segment_bytes = parse_in(key, value, 14u64, i32::MAX as u64)?,
            "segment.ms" => self.segment_ms = parse_in(key, value, 1, i64::MAX)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_in(key, value, 12u64, i32::MAX as u64)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_in(key, value, 0u64, i32::MAX as u64)?,
            "retention.ms" => self.retention_ms = parse_in(key, value, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = parse_in(key, value, -1, i64::MAX)?,
            "max.message.bytes" => self.max_message_bytes = parse_in(key, value, 0u32, i32::MAX as u32)?,
            "flush.messages" => self.flush_messages = parse_in(key, value, 1u64, i64::MAX as u64)?,
            "flush.ms" => self.flush_ms = parse_in(key, value, 0, i64::MAX)?,
            "file.delete.delay.ms" => self.file_delete_delay_ms = parse_in(key, value, 0, i64::MAX)?,
            "cleanup.policy" => match value.trim() {
                "delete" => self.cleanup_policy = CleanupPolicy::Delete,
                _ => return Err(invalid(key, value, "only \"delete\" is supported")),
            },
            "log.write.mode" => self.write_mode = value.trim().parse().map_err(|e: String| invalid(key, value, e))?,
            _ => return Err(invalid(key, value, "unknown topic config")),
        }
        Ok(())
    }

    /// The value of `key` as Kafka shows it (flush defaults print as Long.MAX_VALUE, like Kafka).
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "cleanup.policy" => "delete".to_string(),
            "log.write.mode" => self.write_mode.to_string(),
            _ => return None,
        })
    }

    /// A copy with the given overrides applied; the first invalid one is the error.
    pub fn with_overrides<'a>(&self, overrides: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<LogConfig> {
        let mut config = self.clone();
        for (k, v) in overrides {
            config.set(k, v)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips() {
        let mut c = LogConfig::default();
        for key in LogConfig::KEYS {
            let v = c.get(key).unwrap();
            c.set(key, &v).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert_eq!(c, LogConfig::default());
    }

    #[test]
    fn overrides_apply_and_validate() {
        let c = LogConfig::default()
            .with_overrides([("retention.ms", "1000"), ("log.write.mode", "mmap"), ("retention.bytes", "-1")])
            .unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.write_mode, WriteMode::Mmap);
        for (k, v) in [
            ("retention.ms", "-2"),
            ("retention.ms", "abc"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
            ("no.such.key", "1"),
            ("log.write.mode", "fast"),
        ] {
            let err = LogConfig::default().with_overrides([(k, v)]).unwrap_err();
            assert!(matches!(err, StorageError::InvalidConfig { ref key, .. } if key == k), "{k}={v}: {err}");
        }
    }
}
