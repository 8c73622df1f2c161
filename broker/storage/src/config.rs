//! Per-log configuration with Kafka's topic-level names, changeable at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kafka_protocol::records::Compression;

use crate::error::{Result, StorageError};

/// An enum whose values are config keywords: `FromStr` and `Display` from one table.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("expected one of: {}", Self::NAMES.join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$variant => $text,)+
                })
            }
        }
    };
}

keyword_enum! {
    /// How appends reach the page cache.
    WriteMode {
        /// pwrite(2) at the end of the segment file (Kafka's way).
        Write = "write",
        /// The active segment is preallocated (fallocate) and memory-mapped; an append is a memcpy into the map.
        Mmap = "mmap",
    }
}

keyword_enum! {
    /// `compression.type`: the codec batches are stored in.
    CompressionType {
        /// Each batch is stored as the producer compressed it (no re-encoding: the zero-copy path).
        Producer = "producer",
        Uncompressed = "uncompressed",
        Gzip = "gzip",
        Snappy = "snappy",
        Lz4 = "lz4",
        Zstd = "zstd",
    }
}

impl CompressionType {
    /// The codec every stored batch must have; `None` for `producer`.
    pub fn codec(self) -> Option<Compression> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(Compression::None),
            CompressionType::Gzip => Some(Compression::Gzip),
            CompressionType::Snappy => Some(Compression::Snappy),
            CompressionType::Lz4 => Some(Compression::Lz4),
            CompressionType::Zstd => Some(Compression::Zstd),
        }
    }
}

keyword_enum! {
    /// `message.timestamp.type`: what record timestamps mean.
    TimestampType {
        /// The producer's timestamps, checked against message.timestamp.before/after.max.ms.
        CreateTime = "CreateTime",
        /// The broker stamps each batch with the time it appends it.
        LogAppendTime = "LogAppendTime",
    }
}

/// Only deletion is implemented; compaction is refused rather than silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
}

/// How an accepted-but-inert config's value is checked (Kafka's type and bounds).
#[derive(Debug, Clone, Copy)]
enum InertKind {
    Bool,
    Long {
        min: i64,
    },
    Ratio,
    /// `*.replication.throttled.replicas`: see [`parse_throttled_replicas`].
    ReplicaList,
}

/// A `leader.replication.throttled.replicas` / `follower.replication.throttled.replicas` value (Kafka's
/// ThrottledReplicaListValidator): None for "*" (every replica), else its `partition:broker` pairs; items are
/// separated by commas, and spaces and empty items are allowed.
pub fn parse_throttled_replicas(value: &str) -> std::result::Result<Option<Vec<(u32, u32)>>, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(None);
    }
    let pairs = value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|pair| {
        pair.split_once(':')
            .and_then(|(p, b)| Some((p.trim().parse().ok()?, b.trim().parse().ok()?)))
            .ok_or_else(|| format!("expected \"*\" or partition:broker pairs separated by commas, not {pair:?}"))
    });
    pairs.collect::<std::result::Result<Vec<_>, _>>().map(Some)
}

/// Kafka topic configs that change nothing on a Strata log, accepted (with Kafka's validation) and described so
/// that tools and operators setting them work. Each is safe to ignore because its subject does not exist here:
/// partitions have one replica, logs are never compacted (cleanup.policy=compact is refused), and record
/// batches are never down-converted (only Produce v3+ and Fetch v4+, i.e. magic 2, are spoken).
const INERT: &[(&str, &str, InertKind)] = &[
    // Leader election among replicas: the single replica is always the leader.
    ("unclean.leader.election.enable", "false", InertKind::Bool),
    // Whether segment files are preallocated: storage layout only, never the data (log.write.mode=mmap
    // preallocates anyway).
    ("preallocate", "false", InertKind::Bool),
    // Whether old consumers may get down-converted batches: no supported Fetch version needs it.
    ("message.downconversion.enable", "true", InertKind::Bool),
    // Compaction tuning: meaningful only with cleanup.policy=compact, which is refused.
    ("delete.retention.ms", "86400000", InertKind::Long { min: 0 }),
    ("min.compaction.lag.ms", "0", InertKind::Long { min: 0 }),
    ("max.compaction.lag.ms", "9223372036854775807", InertKind::Long { min: 1 }),
    ("min.cleanable.dirty.ratio", "0.5", InertKind::Ratio),
    // Replication throttles: not the log's business, read by the broker (which throttles these replicas'
    // replication traffic).
    ("leader.replication.throttled.replicas", "", InertKind::ReplicaList),
    ("follower.replication.throttled.replicas", "", InertKind::ReplicaList),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// A segment rolls by age after segment.ms minus a random jitter below this (spreads the rolls of many logs).
    pub segment_jitter_ms: i64,
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
    /// Produce with acks=-1 needs this many in-sync replicas (enforced by the broker, which knows the replicas).
    pub min_insync_replicas: i32,
    pub compression_type: CompressionType,
    pub timestamp_type: TimestampType,
    /// With CreateTime, how far a record's timestamp may lie behind (before) or ahead of (after) the broker's clock.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// Values of the configs accepted without effect (unclean.leader.election.enable, preallocate, ...; see
    /// `INERT` for why each is safe to ignore), by key, normalized. Public so struct update syntax works.
    pub inert: BTreeMap<&'static str, String>,
}

impl Default for LogConfig {
    /// Kafka's defaults (flushing left to the OS: Long.MAX_VALUE; message.timestamp.after.max.ms one hour, as
    /// since Kafka 4.0); `write` mode (see BENCHMARKS.md).
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
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
            min_insync_replicas: 1,
            compression_type: CompressionType::Producer,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            inert: INERT.iter().map(|(k, v, _)| (*k, v.to_string())).collect(),
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
    // `contains` also refuses NaN.
    if !(min..=max).contains(&v) {
        return Err(invalid(key, value, format!("must be between {min} and {max}")));
    }
    Ok(v)
}

fn parse_keyword<T: FromStr<Err = String>>(key: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|e: String| invalid(key, value, e))
}

/// The normalized form of an inert config's value, as Kafka would show it.
fn parse_inert(key: &str, value: &str, kind: InertKind) -> Result<String> {
    let v = value.trim();
    Ok(match kind {
        // Kafka's booleans ignore case.
        InertKind::Bool => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => b.to_string(),
            _ => return Err(invalid(key, value, "expected true or false")),
        },
        InertKind::Long { min } => parse_in(key, value, min, i64::MAX)?.to_string(),
        // Debug prints 1.0 (not 1), like Java's Double.toString.
        InertKind::Ratio => format!("{:?}", parse_in(key, value, 0.0f64, 1.0)?),
        InertKind::ReplicaList => {
            parse_throttled_replicas(v).map_err(|e| invalid(key, value, e))?;
            v.to_string()
        }
    })
}

impl LogConfig {
    pub const KEYS: &'static [&'static str] = &[
        "segment.bytes",
        "segment.ms",
        "segment.jitter.ms",
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
        "min.insync.replicas",
        "compression.type",
        "message.timestamp.type",
        "message.timestamp.before.max.ms",
        "message.timestamp.after.max.ms",
        "unclean.leader.election.enable",
        "preallocate",
        "message.downconversion.enable",
        "delete.retention.ms",
        "min.compaction.lag.ms",
        "max.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ];

    /// Sets one key, validating the value with Kafka's bounds. Unknown keys are errors.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            // Kafka's minimum segment.bytes is 14 bytes (the legacy record overhead); a segment must hold a batch header.
            "segment.bytes" => self.segment_bytes = parse_in(key, value, 14u64, i32::MAX as u64)?,
            "segment.ms" => self.segment_ms = parse_in(key, value, 1, i64::MAX)?,
            "segment.jitter.ms" => self.segment_jitter_ms = parse_in(key, value, 0, i64::MAX)?,
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
            "log.write.mode" => self.write_mode = parse_keyword(key, value)?,
            "min.insync.replicas" => self.min_insync_replicas = parse_in(key, value, 1, i32::MAX)?,
            "compression.type" => self.compression_type = parse_keyword(key, value)?,
            "message.timestamp.type" => self.timestamp_type = parse_keyword(key, value)?,
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = parse_in(key, value, 0, i64::MAX)?,
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = parse_in(key, value, 0, i64::MAX)?,
            _ => match INERT.iter().find(|(k, _, _)| *k == key) {
                Some((k, _, kind)) => {
                    self.inert.insert(k, parse_inert(key, value, *kind)?);
                }
                None => return Err(invalid(key, value, "unknown topic config")),
            },
        }
        Ok(())
    }

    /// The value of `key` as Kafka shows it (flush defaults print as Long.MAX_VALUE, like Kafka).
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.jitter.ms" => self.segment_jitter_ms.to_string(),
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
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "compression.type" => self.compression_type.to_string(),
            "message.timestamp.type" => self.timestamp_type.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            _ => return self.inert.get(key).cloned(),
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
            let v = c.get(key).unwrap_or_else(|| panic!("{key} has no value"));
            c.set(key, &v).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert_eq!(c, LogConfig::default());
        assert!(INERT.iter().all(|(k, _, _)| LogConfig::KEYS.contains(k)), "every inert key is listed");
    }

    #[test]
    fn overrides_apply_and_validate() {
        let c = LogConfig::default()
            .with_overrides([
                ("retention.ms", "1000"),
                ("log.write.mode", "mmap"),
                ("retention.bytes", "-1"),
                ("min.insync.replicas", "2"),
                ("compression.type", "zstd"),
                ("message.timestamp.type", "LogAppendTime"),
                ("message.timestamp.before.max.ms", "0"),
                ("unclean.leader.election.enable", "TRUE"),
                ("min.cleanable.dirty.ratio", "1"),
                ("leader.replication.throttled.replicas", " 0:1, 1:2 "),
                ("follower.replication.throttled.replicas", "*"),
            ])
            .unwrap();
        assert_eq!(c.get("leader.replication.throttled.replicas").as_deref(), Some("0:1, 1:2"));
        assert_eq!(parse_throttled_replicas("0:1, 1:2,"), Ok(Some(vec![(0, 1), (1, 2)])));
        assert_eq!((parse_throttled_replicas(" * "), parse_throttled_replicas("")), (Ok(None), Ok(Some(vec![]))));
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.write_mode, WriteMode::Mmap);
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.compression_type.codec(), Some(Compression::Zstd));
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.timestamp_before_max_ms, 0);
        assert_eq!(c.get("unclean.leader.election.enable").as_deref(), Some("true"));
        assert_eq!(c.get("min.cleanable.dirty.ratio").as_deref(), Some("1.0"));
        assert_eq!(LogConfig::default().compression_type.codec(), None, "producer keeps batches as sent");
        for (k, v) in [
            ("retention.ms", "-2"),
            ("retention.ms", "abc"),
            ("segment.bytes", "10"),
            ("cleanup.policy", "compact"),
            ("no.such.key", "1"),
            ("log.write.mode", "fast"),
            ("min.insync.replicas", "0"),
            // "none" is the producer's name for it; topics say "uncompressed", and names are case-sensitive.
            ("compression.type", "none"),
            ("compression.type", "ZSTD"),
            ("message.timestamp.type", "createtime"),
            ("message.timestamp.after.max.ms", "-1"),
            ("segment.jitter.ms", "-1"),
            ("preallocate", "yes"),
            ("max.compaction.lag.ms", "0"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("follower.replication.throttled.replicas", "0:-1"),
            ("follower.replication.throttled.replicas", "*,0:1"),
        ] {
            let err = LogConfig::default().with_overrides([(k, v)]).unwrap_err();
            assert!(matches!(err, StorageError::InvalidConfig { ref key, .. } if key == k), "{k}={v}: {err}");
        }
    }
}
