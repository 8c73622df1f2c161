//! Which segments retention deletes: pure decisions over a snapshot of the segments (Kafka's rules).

use crate::config::LogConfig;

/// What retention needs to know of one segment, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentStats {
    pub base_offset: i64,
    pub size: u64,
    /// Largest timestamp in the segment (the file's mtime when its records carry none).
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    RetentionMs,
    RetentionBytes,
    LogStartOffset,
}

/// How many of the oldest segments to delete, and why. `next_offset` is the log end offset (the active
/// segment is the last one); segments whose data is not all below `high_watermark` are kept. When every
/// segment goes, the caller rolls first so the log keeps an (empty) active segment, as Kafka does.
pub fn deletable_prefix(
    segments: &[SegmentStats],
    log_end_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
    config: &LogConfig,
    now_ms: i64,
) -> Option<(usize, DeleteReason)> {
    let next_base = |i: usize| segments.get(i + 1).map_or(log_end_offset, |s| s.base_offset);
    // A segment is eligible only if it is not empty-and-last and its data is all below the high watermark.
    let eligible = |i: usize| {
        let last_and_empty = i + 1 == segments.len() && segments[i].size == 0;
        !last_and_empty && next_base(i) <= high_watermark
    };
    let prefix = |pred: &dyn Fn(usize) -> bool| (0..segments.len()).take_while(|&i| eligible(i) && pred(i)).count();

    let by_time = if config.retention_ms >= 0 {
        prefix(&|i| now_ms.saturating_sub(segments[i].max_timestamp) > config.retention_ms)
    } else {
        0
    };
    let by_size = if config.retention_bytes >= 0 {
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let mut excess = total as i128 - config.retention_bytes as i128;
        (0..segments.len())
            .take_while(|&i| {
                let fits = eligible(i) && excess - segments[i].size as i128 >= 0;
                excess -= segments[i].size as i128;
                fits
            })
            .count()
    } else {
        0
    };
    // Segments wholly below the log start offset (DeleteRecords); never the last one.
    let by_start = prefix(&|i| i + 1 < segments.len() && next_base(i) <= log_start_offset);

    [(by_time, DeleteReason::RetentionMs), (by_size, DeleteReason::RetentionBytes), (by_start, DeleteReason::LogStartOffset)]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base_offset: i64, size: u64, max_timestamp: i64) -> SegmentStats {
        SegmentStats { base_offset, size, max_timestamp }
    }

    fn config(retention_ms: i64, retention_bytes: i64) -> LogConfig {
        LogConfig { retention_ms, retention_bytes, ..LogConfig::default() }
    }

    #[test]
    fn time_retention_deletes_the_expired_prefix_only() {
        let segs = [seg(0, 100, 1_000), seg(10, 100, 5_000), seg(20, 100, 2_000), seg(30, 100, 9_000)];
        // now 10_000, retention 6_000: segments with max ts < 4_000 expire, but only as a prefix.
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(6_000, -1), 10_000), Some((1, DeleteReason::RetentionMs)));
        // Everything expired, active included: the caller rolls, then deletes all four.
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(100, -1), 100_000), Some((4, DeleteReason::RetentionMs)));
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(-1, -1), 100_000), None);
    }

    #[test]
    fn size_retention_deletes_while_retention_bytes_remain() {
        // Kafka's rule: a segment goes only if what is left is still at least retention.bytes.
        let segs = [seg(0, 100, 0), seg(10, 100, 0), seg(20, 100, 0), seg(30, 50, 0)];
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(-1, 200), 0), Some((1, DeleteReason::RetentionBytes)));
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(-1, 149), 0), Some((2, DeleteReason::RetentionBytes)));
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(-1, 50), 0), Some((3, DeleteReason::RetentionBytes)));
        assert_eq!(deletable_prefix(&segs, 40, 40, 0, &config(-1, 1000), 0), None);
    }

    #[test]
    fn log_start_offset_and_high_watermark_bound_deletion() {
        let segs = [seg(0, 100, 0), seg(10, 100, 0), seg(20, 100, 0)];
        assert_eq!(deletable_prefix(&segs, 30, 30, 20, &config(-1, -1), 0), Some((2, DeleteReason::LogStartOffset)));
        assert_eq!(deletable_prefix(&segs, 30, 30, 19, &config(-1, -1), 0), Some((1, DeleteReason::LogStartOffset)));
        // Not yet below the high watermark: kept whatever the retention says.
        assert_eq!(deletable_prefix(&segs, 30, 15, 0, &config(0, -1), i64::MAX), Some((1, DeleteReason::RetentionMs)));
        // An empty active segment is never deleted.
        let with_empty = [seg(0, 100, 0), seg(10, 0, -1)];
        assert_eq!(deletable_prefix(&with_empty, 10, 10, 0, &config(0, -1), i64::MAX), Some((1, DeleteReason::RetentionMs)));
    }
}
