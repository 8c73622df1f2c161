//! Settings of the group coordinator, the committed-offsets log and idempotent producers, with Kafka's names.

use crate::config::{parse_range, ConfigError, Setting};

/// The most partitions `__consumer_offsets` may have (offsets.topic.num.partitions' bound).
pub const MAX_OFFSETS_PARTITIONS: i32 = 1000;

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "group.min.session.timeout.ms",
        default: Some("6000"),
        help: "Shortest session timeout a group member may ask for.",
    },
    Setting {
        name: "group.max.session.timeout.ms",
        default: Some("1800000"),
        help: "Longest session timeout a group member may ask for.",
    },
    Setting {
        name: "group.initial.rebalance.delay.ms",
        default: Some("3000"),
        help: "How long the first rebalance of an empty group waits for more members to join (extended while they do).",
    },
    Setting { name: "group.max.size", default: Some("2147483647"), help: "Most members one consumer group may have." },
    Setting {
        name: "offsets.topic.num.partitions",
        default: Some("50"),
        help: "Partitions of the internal __consumer_offsets topic (a group's coordinator is the leader of its \
               partition). Used when the topic is created (on the first FindCoordinator); fixed afterwards.",
    },
    Setting {
        name: "offsets.topic.replication.factor",
        default: Some("3"),
        help: "Replicas of each __consumer_offsets partition, capped by the number of registered brokers when the \
               topic is created (so a single node works with the default).",
    },
    Setting {
        name: "offsets.commit.timeout.ms",
        default: Some("5000"),
        help: "How long an offset commit or group metadata write waits for the in-sync replicas of its \
               __consumer_offsets partition (acks=all) before it fails with COORDINATOR_NOT_AVAILABLE.",
    },
    Setting {
        name: "offsets.topic.segment.bytes",
        default: Some("104857600"),
        help: "Segment size of the __consumer_offsets log.",
    },
    Setting {
        name: "offsets.retention.minutes",
        default: Some("10080"),
        help: "Committed offsets of a group are deleted this long after the group became empty (or after their \
               commit, for standalone consumers and topics the group no longer consumes).",
    },
    Setting {
        name: "offsets.retention.check.interval.ms",
        default: Some("600000"),
        help: "How often expired offsets are deleted.",
    },
    Setting { name: "offset.metadata.max.bytes", default: Some("4096"), help: "Largest metadata string of a committed offset." },
    Setting {
        name: "offsets.snapshot.min.bytes",
        default: Some("16777216"),
        help: "Strata: a partition of __consumer_offsets is rewritten (its live state appended, everything before \
               deleted) once this many bytes, and at least as many as the last rewrite, were appended since it.",
    },
    Setting {
        name: "producer.id.expiration.ms",
        default: Some("86400000"),
        help: "An idempotent producer's per-partition sequence state is forgotten after this long without writes.",
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: i32,
    pub offsets_partitions: i32,
    pub offsets_replication_factor: i16,
    pub offsets_commit_timeout_ms: u64,
    pub offsets_segment_bytes: u64,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
    pub offsets_snapshot_min_bytes: u64,
    pub producer_id_expiration_ms: i64,
}

impl GroupConfig {
    /// Reads the settings above from a lookup by name (unset names take the defaults).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<GroupConfig, ConfigError> {
        let val = |key: &str| {
            get(key).unwrap_or_else(|| SETTINGS.iter().find(|s| s.name == key).and_then(|s| s.default).unwrap_or_default().into())
        };
        let min_session_timeout_ms =
            parse_range("group.min.session.timeout.ms", &val("group.min.session.timeout.ms"), 1, i32::MAX)?;
        let max_session_timeout_ms =
            parse_range("group.max.session.timeout.ms", &val("group.max.session.timeout.ms"), min_session_timeout_ms, i32::MAX)?;
        let retention_minutes: i64 =
            parse_range("offsets.retention.minutes", &val("offsets.retention.minutes"), 1, i64::MAX / 60_000)?;
        Ok(GroupConfig {
            min_session_timeout_ms,
            max_session_timeout_ms,
            initial_rebalance_delay_ms: parse_range(
                "group.initial.rebalance.delay.ms",
                &val("group.initial.rebalance.delay.ms"),
                0,
                i32::MAX,
            )?,
            max_size: parse_range("group.max.size", &val("group.max.size"), 1, i32::MAX)?,
            offsets_partitions: parse_range(
                "offsets.topic.num.partitions",
                &val("offsets.topic.num.partitions"),
                1,
                MAX_OFFSETS_PARTITIONS,
            )?,
            offsets_replication_factor: parse_range(
                "offsets.topic.replication.factor",
                &val("offsets.topic.replication.factor"),
                1,
                i16::MAX,
            )?,
            offsets_commit_timeout_ms: parse_range("offsets.commit.timeout.ms", &val("offsets.commit.timeout.ms"), 1, u64::MAX)?,
            offsets_segment_bytes: parse_range(
                "offsets.topic.segment.bytes",
                &val("offsets.topic.segment.bytes"),
                1024,
                i32::MAX as u64,
            )?,
            offsets_retention_ms: retention_minutes * 60_000,
            offsets_retention_check_interval_ms: parse_range(
                "offsets.retention.check.interval.ms",
                &val("offsets.retention.check.interval.ms"),
                1,
                u64::MAX,
            )?,
            // Stored as an int16-length string.
            offset_metadata_max_bytes: parse_range(
                "offset.metadata.max.bytes",
                &val("offset.metadata.max.bytes"),
                0,
                i16::MAX as usize,
            )?,
            offsets_snapshot_min_bytes: parse_range(
                "offsets.snapshot.min.bytes",
                &val("offsets.snapshot.min.bytes"),
                1,
                u64::MAX,
            )?,
            producer_id_expiration_ms: parse_range("producer.id.expiration.ms", &val("producer.id.expiration.ms"), 1, i64::MAX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<GroupConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GroupConfig::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = config(&[]).unwrap();
        assert_eq!((c.min_session_timeout_ms, c.max_session_timeout_ms, c.initial_rebalance_delay_ms), (6_000, 1_800_000, 3_000));
        assert_eq!((c.offsets_partitions, c.offsets_retention_ms, c.offset_metadata_max_bytes), (50, 7 * 24 * 3_600_000, 4096));
        assert_eq!((c.offsets_replication_factor, c.offsets_commit_timeout_ms), (3, 5000));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (k, v) in [
            ("group.min.session.timeout.ms", "0"),
            ("group.max.session.timeout.ms", "5"),
            ("offsets.topic.num.partitions", "0"),
            ("offsets.topic.replication.factor", "0"),
            ("offsets.retention.minutes", "x"),
            ("offset.metadata.max.bytes", "40000"),
        ] {
            let err = config(&[(k, v)]).unwrap_err();
            assert!(err.to_string().contains(k), "{k}={v}: {err}");
        }
    }
}
