//! Replication throttles (Kafka's KIP-73), to keep a reassignment's copying from starving producers and
//! consumers: the dynamic broker configs `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` (bytes/s) cap the replication traffic of the partitions listed for this
//! broker in the topic configs `leader.replication.throttled.replicas` and
//! `follower.replication.throttled.replicas` ("*", or `partition:broker` pairs): as a leader, what it sends to a
//! throttled partition's followers; as a follower, what it fetches for a throttled partition. Replicas in the ISR
//! are never throttled, so a throttle slows catching up, never the high watermark (and acks=all).
//!
//! Kafka measures the rate over a window of samples and skips throttled partitions while it is above the limit;
//! here a bucket holding one second's worth does the same: traffic is recorded after it is sent, and a
//! throttled partition is skipped while the bucket is empty.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use strata_storage::config::parse_throttled_replicas;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The throttle rates are broker-level dynamic configs without a topic form, kept in the image's broker
/// configs beside the log defaults.
pub const RATE_KEYS: [&str; 2] = [LEADER_RATE, FOLLOWER_RATE];
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
/// Kafka's default rate: Long.MAX_VALUE, no limit.
pub const UNLIMITED: u64 = i64::MAX as u64;

/// A rate config's value (Kafka: a long, at least 0).
pub fn parse_rate(key: &str, value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| format!("{key}={value}: not a number of bytes per second (0 or more)"))
}

/// Validates the rates among dynamic broker configs; returns the other configs (the log defaults).
pub fn split_rates(configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut rest = BTreeMap::new();
    for (k, v) in configs {
        if RATE_KEYS.contains(&k.as_str()) {
            parse_rate(k, v)?;
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    Ok(rest)
}

/// Whether a `*.replication.throttled.replicas` value lists `partition` on `broker` ("*" lists all).
pub fn lists(value: &str, partition: i32, broker: i32) -> Result<bool, String> {
    let listed = parse_throttled_replicas(value)?;
    let wanted = (u32::try_from(partition), u32::try_from(broker));
    Ok(match (listed, wanted) {
        (None, _) => true,
        (Some(pairs), (Ok(p), Ok(b))) => pairs.contains(&(p, b)),
        (Some(_), _) => false,
    })
}

/// A token bucket of `rate` bytes per second holding at most one second's worth; it may go negative by what
/// was sent while it was not empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Bucket {
    pub fn new(rate: u64, now_ms: i64) -> Bucket {
        Bucket { tokens: rate as f64, at_ms: now_ms }
    }

    fn refill(&mut self, rate: u64, now_ms: i64) {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Traffic of `bytes` was sent.
    pub fn record(&mut self, rate: u64, bytes: u64, now_ms: i64) {
        self.refill(rate, now_ms);
        self.tokens -= bytes as f64;
    }

    /// Whether throttled traffic must wait.
    pub fn exhausted(&mut self, rate: u64, now_ms: i64) -> bool {
        self.refill(rate, now_ms);
        self.tokens <= 0.0
    }
}

/// One direction's throttle (leader or follower) on this broker: its rate (from the dynamic configs) and bucket.
pub struct Throttle {
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
    epoch: Instant,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle { rate: AtomicU64::new(UNLIMITED), bucket: Mutex::new(Bucket::new(UNLIMITED, 0)), epoch: Instant::now() }
    }
}

impl Throttle {
    fn now_ms(&self) -> i64 {
        self.epoch.elapsed().as_millis() as i64
    }

    pub fn set_rate(&self, rate: u64) {
        if self.rate.swap(rate, Ordering::AcqRel) != rate {
            *self.bucket.lock().expect("throttle lock") = Bucket::new(rate, self.now_ms());
        }
    }

    fn limited(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Acquire)).filter(|r| *r < UNLIMITED)
    }

    /// Whether throttled partitions must be skipped now.
    pub fn exhausted(&self) -> bool {
        self.limited().is_some_and(|rate| self.bucket.lock().expect("throttle lock").exhausted(rate, self.now_ms()))
    }

    pub fn record(&self, bytes: u64) {
        if let Some(rate) = self.limited() {
            self.bucket.lock().expect("throttle lock").record(rate, bytes, self.now_ms());
        }
    }
}

/// This broker's two throttles.
#[derive(Default)]
pub struct ReplicationThrottles {
    pub leader: Throttle,
    pub follower: Throttle,
}

impl ReplicationThrottles {
    /// Takes the rates from this broker's dynamic configs (cluster-wide, then its own); invalid or absent: none.
    pub fn configure(&self, dynamic: &BTreeMap<String, String>) {
        let rate = |key| dynamic.get(key).and_then(|v| parse_rate(key, v).ok()).unwrap_or(UNLIMITED);
        self.leader.set_rate(rate(LEADER_RATE));
        self.follower.set_rate(rate(FOLLOWER_RATE));
    }
}

/// Whether this broker throttles `partition` of a topic with `configs` as its leader and as its follower.
pub fn throttled(configs: &BTreeMap<String, String>, partition: i32, broker: i32) -> (bool, bool) {
    let listed = |key| configs.get(key).is_some_and(|v| lists(v, partition, broker).unwrap_or(false));
    (listed(LEADER_REPLICAS), listed(FOLLOWER_REPLICAS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists_follow_kafkas_format() {
        // (value, partition, broker) -> listed, or invalid
        let cases: &[(&str, i32, i32, Result<bool, ()>)] = &[
            ("", 0, 0, Ok(false)),
            ("*", 3, 7, Ok(true)),
            (" * ", 3, 7, Ok(true)),
            ("0:1,1:2", 1, 2, Ok(true)),
            ("0:1, 1:2", 0, 2, Ok(false)),
            ("0 : 1", 0, 1, Ok(true)),
            ("0:1,", 0, 1, Ok(true)),
            ("0-1", 0, 1, Err(())),
            ("a:1", 0, 1, Err(())),
            ("0:-1", 0, 1, Err(())),
            ("*,0:1", 0, 1, Err(())),
        ];
        for (value, p, b, want) in cases {
            assert_eq!(lists(value, *p, *b).map_err(|_| ()), *want, "{value:?} {p} {b}");
        }
        assert_eq!(lists("0:1", -1, 1), Ok(false));
        let configs =
            BTreeMap::from([(LEADER_REPLICAS.to_string(), "0:1".to_string()), (FOLLOWER_REPLICAS.to_string(), "*".to_string())]);
        assert_eq!(throttled(&configs, 0, 1), (true, true));
        assert_eq!(throttled(&configs, 1, 1), (false, true));
        assert_eq!(throttled(&BTreeMap::new(), 0, 1), (false, false));
    }

    #[test]
    fn rates_are_non_negative_longs_kept_apart_from_the_log_defaults() {
        assert_eq!(parse_rate(LEADER_RATE, " 1048576 "), Ok(1 << 20));
        assert_eq!(parse_rate(LEADER_RATE, "0"), Ok(0));
        assert!(parse_rate(LEADER_RATE, "-1").is_err() && parse_rate(LEADER_RATE, "fast").is_err());
        let configs =
            BTreeMap::from([(LEADER_RATE.to_string(), "10".to_string()), ("retention.ms".to_string(), "5".to_string())]);
        assert_eq!(split_rates(&configs), Ok(BTreeMap::from([("retention.ms".to_string(), "5".to_string())])));
        let bad = BTreeMap::from([(FOLLOWER_RATE.to_string(), "x".to_string())]);
        assert!(split_rates(&bad).unwrap_err().contains(FOLLOWER_RATE));
    }

    #[test]
    fn the_bucket_allows_the_rate_on_average_with_a_burst_of_one_second() {
        let rate = 1000;
        let mut b = Bucket::new(rate, 0);
        // A full second's worth may go at once (and one response more), then nothing until it refills.
        assert!(!b.exhausted(rate, 0));
        b.record(rate, 1500, 0);
        assert!(b.exhausted(rate, 0) && b.exhausted(rate, 400));
        assert!(!b.exhausted(rate, 600));
        // Sending whenever allowed for ten seconds moves about ten seconds' worth.
        let mut sent = 0;
        for ms in (600..10_600).step_by(10) {
            if !b.exhausted(rate, ms) {
                b.record(rate, 100, ms);
                sent += 100;
            }
        }
        assert!((9_900..=10_100).contains(&sent), "{sent}");
        // Idle time refills at most one second's worth.
        assert!(!b.exhausted(rate, 100_000));
        b.record(rate, 1000, 100_000);
        assert!(b.exhausted(rate, 100_000));
    }

    #[test]
    fn a_throttle_without_a_rate_never_stops_traffic() {
        let t = Throttle::default();
        t.record(u64::MAX / 2);
        assert!(!t.exhausted());
        t.set_rate(10);
        t.record(100);
        assert!(t.exhausted());
        let all = ReplicationThrottles::default();
        all.configure(&BTreeMap::from([(FOLLOWER_RATE.to_string(), "0".to_string())]));
        all.follower.record(1);
        assert!(all.follower.exhausted() && !all.leader.exhausted());
    }
}
