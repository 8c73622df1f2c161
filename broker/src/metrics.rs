//! Prometheus metrics with Kafka's names (as Kafka's JMX exporter shows them), so dashboards and habits
//! carry over, plus what Kafka does not measure: page-cache hits of fetched bytes, zero-copy share, node
//! tuning. Per-topic series carry `topic`; the all-topics series has an empty `topic` (which Prometheus
//! treats as no label), like Kafka's BrokerTopicMetrics without a topic tag.
//!
//! Connections, per listener: `kafka_server_socket_server_metrics_connection_count`, `..._connection_creation_total`
//! and `..._connection_close_total` (Kafka's socket-server-metrics; closes include idle ones, connections.max.idle.ms);
//! `strata_connections_refused_total{reason="max.connections"|"max.connections.per.ip"}` (Kafka closes these without
//! counting them); `strata_accept_errors_total` and `strata_accept_blocked` (1 while accept fails for lack of file
//! descriptors and the listener backs off); `..._successful_authentication_total` and
//! `..._failed_authentication_total` (TLS handshakes and SASL exchanges; failures include a client speaking the
//! wrong protocol for the listener); `strata_authorization_denied_total` (operations the authorizer refused).
//! Storage: `strata_log_dir_full` (1 from a write refused for lack of space until a write to the directory
//! succeeds again; Kafka would take the directory offline, we keep serving reads, so this is not
//! `kafka_log_logmanager_offlinelogdirectorycount`).
//!
//! Replication, as Kafka names it: per broker `kafka_server_replicamanager_{partitioncount,leadercount,
//! underreplicatedpartitions,underminisrpartitioncount,atminisrpartitioncount,reassigningpartitions}` (the
//! last four over the partitions it leads), `..._isrshrinks_total`, `..._isrexpands_total`, `..._failedisrupdates_total`,
//! `kafka_server_replicafetchermanager_maxlag{clientId="Replica"}` and
//! `kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation="Produce"}` (acks=all produces
//! waiting); and `kafka_controller_kafkacontroller_*` (active controller count, offline partitions, fenced and
//! active brokers, preferred-replica imbalance, global topic and partition counts), which only the active
//! controller reports non-zero, so that a sum over brokers is the cluster's value.

use std::path::Path;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use strata_storage::{PageCacheProbe, Residency};

use crate::broker::BrokerState;
use crate::controller::image::{Image, NO_LEADER};
use crate::group::lag;
use crate::node_stats::{disk_space, NodeStats};

const ALL_TOPICS: &str = "";

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn seconds_counter(registry: &Registry, name: &str, help: &str) -> Counter {
    let c = Counter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique metric");
    g
}

/// Kafka's BrokerTopicMetrics.
pub struct TopicMetrics {
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    messages_in: IntCounterVec,
    produce_requests: IntCounterVec,
    fetch_requests: IntCounterVec,
    failed_produce: IntCounterVec,
    failed_fetch: IntCounterVec,
}

fn inc_both(c: &IntCounterVec, topic: &str, by: u64) {
    c.with_label_values(&[topic]).inc_by(by);
    c.with_label_values(&[ALL_TOPICS]).inc_by(by);
}

impl TopicMetrics {
    fn new(r: &Registry) -> TopicMetrics {
        let v = |name: &str, help: &str| {
            let c = counter_vec(r, &format!("kafka_server_brokertopicmetrics_{name}_total"), help, &["topic"]);
            // The all-topics series exists from the start (at 0), as Kafka's does, so rates and alerts see it.
            c.with_label_values(&[ALL_TOPICS]);
            c
        };
        TopicMetrics {
            bytes_in: v("bytesin", "Record bytes appended by produce requests"),
            bytes_out: v("bytesout", "Record bytes sent to consumers"),
            messages_in: v("messagesin", "Records appended"),
            produce_requests: v("totalproducerequests", "Produce requests, per topic"),
            fetch_requests: v("totalfetchrequests", "Fetch requests, per topic"),
            failed_produce: v("failedproducerequests", "Produce requests that failed, per topic"),
            failed_fetch: v("failedfetchrequests", "Fetch requests that failed, per topic"),
        }
    }

    /// A successful append of `bytes` holding `messages` records (duplicates of an idempotent retry count 0).
    pub fn produced(&self, topic: &str, bytes: u64, messages: u64) {
        inc_both(&self.produce_requests, topic, 1);
        inc_both(&self.bytes_in, topic, bytes);
        inc_both(&self.messages_in, topic, messages);
    }

    pub fn produce_failed(&self, topic: &str) {
        inc_both(&self.produce_requests, topic, 1);
        inc_both(&self.failed_produce, topic, 1);
    }

    pub fn fetched(&self, topic: &str, bytes: u64) {
        inc_both(&self.fetch_requests, topic, 1);
        inc_both(&self.bytes_out, topic, bytes);
    }

    pub fn fetch_failed(&self, topic: &str) {
        inc_both(&self.fetch_requests, topic, 1);
        inc_both(&self.failed_fetch, topic, 1);
    }
}

/// Bytes probed per fetched range. A consumer's range is read sequentially and is nearly always all hot (tail
/// reads) or all cold (catching up), so its first window stands for the whole range; this bounds the cost of a
/// probe (a cachestat walk is proportional to the pages asked about) whatever the fetch size.
const PROBE_WINDOW: u64 = 64 * 1024;
/// One fetched range in this many is probed (and counted): the hit ratio is what matters, and consumers
/// fetching one small batch at a time would otherwise pay a syscall per batch.
const PROBE_EVERY: u64 = 8;

/// Page-cache residency of the bytes fetches serve, probed before they are sent.
pub struct PageCacheMetrics {
    probe: Option<PageCacheProbe>,
    ranges: std::sync::atomic::AtomicU64,
    hit_bytes: IntCounterVec,
    miss_bytes: IntCounterVec,
    /// What the measurement costs: time spent in probes, to compare with the process's CPU time.
    probe_seconds: Counter,
}

impl PageCacheMetrics {
    /// Records the residency of one fetched file range of `topic`. Probe errors are not fatal to a fetch.
    pub fn observe(&self, topic: &str, file: &impl std::os::fd::AsRawFd, position: u64, len: u64) {
        let Some(probe) = &self.probe else { return };
        if !self.ranges.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(PROBE_EVERY) {
            return;
        }
        let start = std::time::Instant::now();
        let residency = probe.probe(file, position, len.min(PROBE_WINDOW));
        self.probe_seconds.inc_by(start.elapsed().as_secs_f64());
        if let Ok(Residency { resident_bytes, total_bytes }) = residency {
            let hit = if total_bytes == 0 {
                0
            } else {
                (u128::from(len) * u128::from(resident_bytes) / u128::from(total_bytes)) as u64
            };
            self.hit_bytes.with_label_values(&[topic]).inc_by(hit);
            self.miss_bytes.with_label_values(&[topic]).inc_by(len - hit);
        }
    }
}

/// Connection counts of the network server (see the module docs for the names). Cheap to clone.
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub open: IntGaugeVec,
    pub created: IntCounterVec,
    pub closed: IntCounterVec,
    pub refused: IntCounterVec,
    pub accept_errors: IntCounterVec,
    pub accept_blocked: IntGaugeVec,
    pub successful_authentication: IntCounterVec,
    pub failed_authentication: IntCounterVec,
}

impl ConnectionMetrics {
    pub fn new(r: &Registry) -> ConnectionMetrics {
        let socket = |name: &str| format!("kafka_server_socket_server_metrics_{name}");
        ConnectionMetrics {
            open: gauge_vec(r, &socket("connection_count"), "Open client connections", &["listener"]),
            created: counter_vec(r, &socket("connection_creation_total"), "Client connections accepted", &["listener"]),
            closed: counter_vec(
                r,
                &socket("connection_close_total"),
                "Client connections closed (idle ones included)",
                &["listener"],
            ),
            refused: counter_vec(
                r,
                "strata_connections_refused_total",
                "Connections closed at once because max.connections or max.connections.per.ip was reached",
                &["listener", "reason"],
            ),
            accept_errors: counter_vec(
                r,
                "strata_accept_errors_total",
                "accept(2) failures for lack of file descriptors or memory",
                &["listener"],
            ),
            accept_blocked: gauge_vec(
                r,
                "strata_accept_blocked",
                "1 while the listener backs off because accept(2) fails",
                &["listener"],
            ),
            successful_authentication: counter_vec(
                r,
                &socket("successful_authentication_total"),
                "TLS handshakes completed (SSL listeners) and SASL authentications (SASL_PLAINTEXT, SASL_SSL)",
                &["listener"],
            ),
            failed_authentication: counter_vec(
                r,
                &socket("failed_authentication_total"),
                "Connections closed for a failed TLS handshake, a client certificate no principal mapping rule applies \
                 to, a failed or skipped SASL authentication, or the wrong protocol for the listener (plaintext on SSL, \
                 TLS on PLAINTEXT)",
                &["listener"],
            ),
        }
    }
}

/// ISR changes a leader asked the controller for (alter_partition.rs counts them).
#[derive(Clone)]
pub struct IsrMetrics {
    pub shrinks: IntCounter,
    pub expands: IntCounter,
    pub failed: IntCounter,
}

/// Kafka's counts over the partitions a broker leads: (under-replicated, under min ISR, at min ISR). Each
/// item: (replicas, ISR size, min.insync.replicas) of a partition led here.
pub fn partition_health(led: impl IntoIterator<Item = (usize, usize, i32)>) -> (i64, i64, i64) {
    let (mut under, mut under_min, mut at_min) = (0, 0, 0);
    for (replicas, isr, min_isr) in led {
        under += i64::from(isr < replicas);
        under_min += i64::from((isr as i64) < i64::from(min_isr));
        at_min += i64::from(isr as i64 == i64::from(min_isr));
    }
    (under, under_min, at_min)
}

/// The cluster as the active controller's metrics describe it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClusterHealth {
    pub active_controller: i64,
    pub offline_partitions: i64,
    pub fenced_brokers: i64,
    pub active_brokers: i64,
    pub preferred_imbalance: i64,
    pub topics: i64,
    pub partitions: i64,
}

impl ClusterHealth {
    /// All zero unless `active` (only the active controller reports).
    pub fn of(image: &Image, active: bool) -> ClusterHealth {
        if !active {
            return ClusterHealth::default();
        }
        let partitions = image.topics.values().flat_map(|t| &t.partitions);
        ClusterHealth {
            active_controller: 1,
            offline_partitions: partitions.clone().filter(|p| p.leader == NO_LEADER).count() as i64,
            fenced_brokers: image.brokers.values().filter(|b| b.fenced).count() as i64,
            active_brokers: image.brokers.values().filter(|b| !b.fenced).count() as i64,
            preferred_imbalance: partitions.clone().filter(|p| p.replicas.first() != Some(&p.leader)).count() as i64,
            topics: image.topics.len() as i64,
            partitions: partitions.count() as i64,
        }
    }

    fn values(&self) -> [i64; 7] {
        [
            self.active_controller,
            self.offline_partitions,
            self.fenced_brokers,
            self.active_brokers,
            self.preferred_imbalance,
            self.topics,
            self.partitions,
        ]
    }
}

/// What the cold-read warm-up (warmup.rs) does; shared with it.
#[derive(Clone)]
pub struct WarmupMetrics {
    /// Response frames that had a range not fully in the page cache.
    pub cold_fetches: IntCounter,
    pub bytes: IntCounter,
    pub seconds: Counter,
}

pub struct Metrics {
    registry: Registry,
    pub connections: ConnectionMetrics,
    pub log_dir_full: IntGauge,
    /// Requests or parts of them the authorizer refused.
    pub authorization_denied: IntCounter,
    pub topics: TopicMetrics,
    pub page_cache: PageCacheMetrics,
    pub warmup: WarmupMetrics,
    requests: IntCounterVec,
    request_time: HistogramVec,
    request_errors: IntCounter,
    pub sendfile_bytes: IntCounter,
    pub copy_bytes: IntCounter,
    log_size: IntGaugeVec,
    log_start_offset: IntGaugeVec,
    log_end_offset: IntGaugeVec,
    partition_count: IntGauge,
    leader_count: IntGauge,
    under_replicated: IntGauge,
    under_min_isr: IntGauge,
    at_min_isr: IntGauge,
    reassigning: IntGauge,
    pub isr: IsrMetrics,
    fetcher_max_lag: IntGauge,
    /// acks=all produce requests waiting for the in-sync replicas.
    pub delayed_produce: IntGauge,
    /// The active controller's view, in the order of [`ClusterHealth`]'s fields.
    controller: [IntGauge; 7],
    disk_read_bytes: IntGauge,
    disk_write_bytes: IntGauge,
    consumer_lag: IntGaugeVec,
    node: [IntGauge; 6],
    log_dir_free: IntGauge,
    log_dir_total: IntGauge,
    open_segments: IntGauge,
    corrupt_indexes: IntCounter,
}

impl Metrics {
    /// `probe`: the page-cache probe to use for fetched ranges, or None to disable that measurement.
    pub fn new(probe: Option<PageCacheProbe>) -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("unique metric");
        let request_time = HistogramVec::new(
            HistogramOpts::new("kafka_network_requestmetrics_totaltime_seconds", "Time from request received to response ready")
                .buckets(prometheus::exponential_buckets(0.0001, 2.5, 14).expect("valid buckets")),
            &["request"],
        )
        .expect("valid metric");
        r.register(Box::new(request_time.clone())).expect("unique metric");
        let probe_method =
            gauge_vec(&r, "strata_pagecache_probe_method", "Page-cache probe in use (1 for the active method)", &["method"]);
        probe_method.with_label_values(&[probe.map_or("off", |p| p.method().as_str())]).set(1);
        let node_gauge = |name: &str, help: &str| gauge(&r, name, help);
        Metrics {
            topics: TopicMetrics::new(&r),
            connections: ConnectionMetrics::new(&r),
            log_dir_full: gauge(&r, "strata_log_dir_full", "1 while the log directory refuses writes for lack of space"),
            authorization_denied: counter(
                &r,
                "strata_authorization_denied_total",
                "Operations on resources the authorizer refused (resources left out of lists not counted)",
            ),
            page_cache: PageCacheMetrics {
                probe,
                ranges: Default::default(),
                hit_bytes: counter_vec(
                    &r,
                    "strata_pagecache_hit_bytes_total",
                    "Sampled fetched bytes that were in the page cache (1 range in 8)",
                    &["topic"],
                ),
                miss_bytes: counter_vec(
                    &r,
                    "strata_pagecache_miss_bytes_total",
                    "Sampled fetched bytes read from disk (1 range in 8)",
                    &["topic"],
                ),
                probe_seconds: seconds_counter(
                    &r,
                    "strata_pagecache_probe_seconds_total",
                    "Time spent probing page-cache residency",
                ),
            },
            warmup: WarmupMetrics {
                cold_fetches: counter(
                    &r,
                    "strata_pagecache_cold_fetches_total",
                    "Fetch responses with a range not fully in the page cache, read into it before sending",
                ),
                bytes: counter(
                    &r,
                    "strata_pagecache_warmup_bytes_total",
                    "Bytes of cold fetched ranges read into the page cache off the network threads",
                ),
                seconds: seconds_counter(
                    &r,
                    "strata_pagecache_warmup_seconds_total",
                    "Time spent reading cold fetched ranges into the page cache",
                ),
            },
            requests: counter_vec(&r, "kafka_network_requestmetrics_requests_total", "Requests, per API", &["request"]),
            request_time,
            request_errors: counter(&r, "strata_request_errors_total", "Requests that could not be decoded (connection closed)"),
            sendfile_bytes: counter(&r, "strata_fetch_sendfile_bytes_total", "Record bytes sent with sendfile(2) (zero-copy)"),
            copy_bytes: counter(&r, "strata_fetch_copy_bytes_total", "Record bytes sent through a user-space copy"),
            log_size: gauge_vec(&r, "kafka_log_log_size", "Bytes of a partition's log", &["topic", "partition"]),
            log_start_offset: gauge_vec(&r, "kafka_log_log_logstartoffset", "Log start offset", &["topic", "partition"]),
            log_end_offset: gauge_vec(&r, "kafka_log_log_logendoffset", "Log end offset", &["topic", "partition"]),
            partition_count: gauge(&r, "kafka_server_replicamanager_partitioncount", "Partitions on this broker"),
            leader_count: gauge(&r, "kafka_server_replicamanager_leadercount", "Partitions this broker leads"),
            under_replicated: gauge(
                &r,
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions led here with fewer in-sync replicas than replicas",
            ),
            under_min_isr: gauge(
                &r,
                "kafka_server_replicamanager_underminisrpartitioncount",
                "Partitions led here with fewer in-sync replicas than min.insync.replicas (acks=all fails)",
            ),
            at_min_isr: gauge(
                &r,
                "kafka_server_replicamanager_atminisrpartitioncount",
                "Partitions led here with exactly min.insync.replicas in sync (one more loss stops acks=all)",
            ),
            reassigning: gauge(
                &r,
                "kafka_server_replicamanager_reassigningpartitions",
                "Partitions led here that a reassignment is moving",
            ),
            isr: IsrMetrics {
                shrinks: counter(&r, "kafka_server_replicamanager_isrshrinks_total", "ISR shrinks of partitions led here"),
                expands: counter(&r, "kafka_server_replicamanager_isrexpands_total", "ISR expansions of partitions led here"),
                failed: counter(
                    &r,
                    "kafka_server_replicamanager_failedisrupdates_total",
                    "ISR changes the controller refused or did not answer",
                ),
            },
            fetcher_max_lag: {
                let g = gauge_vec(
                    &r,
                    "kafka_server_replicafetchermanager_maxlag",
                    "Largest lag in records of a partition this broker follows behind its leader's high watermark",
                    &["clientId"],
                );
                g.with_label_values(&["Replica"])
            },
            delayed_produce: gauge_vec(
                &r,
                "kafka_server_delayedoperationpurgatory_purgatorysize",
                "Requests waiting in a purgatory (Produce: acks=all produces waiting for the in-sync replicas)",
                &["delayedOperation"],
            )
            .with_label_values(&["Produce"]),
            controller: {
                let g = |name: &str, help: &str| gauge(&r, &format!("kafka_controller_kafkacontroller_{name}"), help);
                [
                    g("activecontrollercount", "1 on the active controller"),
                    g("offlinepartitionscount", "Partitions without a leader (active controller only)"),
                    g("fencedbrokercount", "Registered brokers that are fenced (active controller only)"),
                    g("activebrokercount", "Registered brokers in service (active controller only)"),
                    g("preferredreplicaimbalancecount", "Partitions not led by their preferred replica (active controller only)"),
                    g("globaltopiccount", "Topics (active controller only)"),
                    g("globalpartitioncount", "Partitions (active controller only)"),
                ]
            },
            disk_read_bytes: gauge(
                &r,
                "kafka_server_kafkaserver_linux_disk_read_bytes",
                "Bytes this process read from storage (/proc/self/io)",
            ),
            disk_write_bytes: gauge(
                &r,
                "kafka_server_kafkaserver_linux_disk_write_bytes",
                "Bytes this process wrote to storage (/proc/self/io)",
            ),
            consumer_lag: gauge_vec(
                &r,
                "kafka_consumergroup_lag",
                "High watermark minus committed offset (exported by the group's coordinator)",
                &["consumergroup", "topic", "partition"],
            ),
            node: [
                node_gauge("strata_node_vm_swappiness", "vm.swappiness of the broker's node"),
                node_gauge("strata_node_vm_dirty_ratio", "vm.dirty_ratio of the broker's node"),
                node_gauge("strata_node_vm_dirty_background_ratio", "vm.dirty_background_ratio of the broker's node"),
                node_gauge("strata_node_vm_max_map_count", "vm.max_map_count of the broker's node"),
                node_gauge("strata_node_swap_used_bytes", "Swap in use on the broker's node"),
                node_gauge("strata_process_map_count", "Memory maps of the broker process (limit: vm.max_map_count)"),
            ],
            log_dir_free: gauge(&r, "strata_log_dir_free_bytes", "Free bytes of the log directory's filesystem"),
            log_dir_total: gauge(&r, "strata_log_dir_total_bytes", "Size of the log directory's filesystem"),
            open_segments: gauge(
                &r,
                "strata_log_open_segments",
                "Segments whose files are open (active ones, and closed ones being read)",
            ),
            corrupt_indexes: counter(
                &r,
                "strata_log_corrupt_indexes_total",
                "Index files found not to match their log (closed segments' are rebuilt; reads never skip records)",
            ),
            registry: r,
        }
    }

    /// Counts a request and returns the timer that records its latency when the response is ready.
    pub fn request(&self, api: ApiKey) -> Histogram {
        let name = format!("{api:?}");
        self.requests.with_label_values(&[&name]).inc();
        self.request_time.with_label_values(&[&name])
    }

    pub fn request_error(&self) {
        self.request_errors.inc();
    }

    /// The text exposition; gauges are read from the logs, groups, /proc and the log directory now.
    pub fn render(&self, state: &BrokerState) -> String {
        self.refresh(state, Path::new("/proc"));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }

    fn refresh(&self, state: &BrokerState, proc: &Path) {
        let logs = state.replicas.log_manager().logs();
        // Reset first, so deleted partitions and groups disappear from the exposition.
        for g in [&self.log_size, &self.log_start_offset, &self.log_end_offset, &self.consumer_lag] {
            g.reset();
        }
        let mut end_offsets = std::collections::HashMap::new();
        for log in &logs {
            let tp = log.topic_partition();
            let labels = [tp.topic.as_str(), &tp.partition.to_string()];
            self.log_size.with_label_values(&labels).set(log.size_bytes() as i64);
            self.log_start_offset.with_label_values(&labels).set(log.log_start_offset());
            self.log_end_offset.with_label_values(&labels).set(log.log_end_offset());
            end_offsets.insert(tp.clone(), log.high_watermark());
        }
        let hosted = state.replicas.all();
        let led: Vec<_> = hosted.iter().filter(|p| p.is_leader()).collect();
        self.partition_count.set(hosted.len() as i64);
        self.leader_count.set(led.len() as i64);
        let (under, under_min, at_min) = partition_health(led.iter().map(|p| {
            let a = p.assignment();
            (a.replicas.len(), a.isr.len(), p.log.config().min_insync_replicas)
        }));
        self.under_replicated.set(under);
        self.under_min_isr.set(under_min);
        self.at_min_isr.set(at_min);
        self.fetcher_max_lag.set(hosted.iter().map(|p| p.follower_lag()).max().unwrap_or(0));
        let image = state.image();
        let reassigning = led.iter().filter(|p| {
            let tp = p.topic_partition();
            image.partition(&tp.topic, tp.partition).is_some_and(|part| part.is_reassigning())
        });
        self.reassigning.set(reassigning.count() as i64);
        let active = state.controller.leader_id() == state.config.node_id;
        for (g, v) in self.controller.iter().zip(ClusterHealth::of(&image, active).values()) {
            g.set(v);
        }
        // Partitions led here are read from their logs, the others from what their leaders last said.
        let now = std::time::Instant::now();
        for (group, tp, committed) in lag::committed(&state.groups) {
            let Some(hw) = end_offsets.get(&tp).copied().or_else(|| state.remote_high_watermarks.get(&tp, now)) else { continue };
            let labels = [group.as_str(), tp.topic.as_str(), &tp.partition.to_string()];
            self.consumer_lag.with_label_values(&labels).set(lag::lag(committed, hw));
        }
        let n = NodeStats::read(proc);
        let values = [
            n.vm_swappiness,
            n.vm_dirty_ratio,
            n.vm_dirty_background_ratio,
            n.vm_max_map_count,
            n.swap_used_bytes.map(|v| v as i64),
            n.process_map_count.map(|v| v as i64),
        ];
        for (g, v) in self.node.iter().zip(values) {
            g.set(v.unwrap_or(-1));
        }
        self.disk_read_bytes.set(n.disk_read_bytes.map_or(-1, |v| v as i64));
        self.disk_write_bytes.set(n.disk_write_bytes.map_or(-1, |v| v as i64));
        let storage = state.replicas.log_manager().stats();
        self.open_segments.set(storage.open_segments());
        self.corrupt_indexes.inc_by(storage.corrupt_indexes().saturating_sub(self.corrupt_indexes.get()));
        if let Some((free, total)) = disk_space(state.replicas.log_manager().log_dir()) {
            self.log_dir_free.set(free as i64);
            self.log_dir_total.set(total as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{MetadataBatch, MetadataRecord};

    #[test]
    fn partition_health_counts_as_kafka() {
        // (replicas, ISR, min.insync.replicas) of each led partition -> (under-replicated, under min, at min)
        type Case = (&'static [(usize, usize, i32)], (i64, i64, i64));
        let cases: [Case; 5] = [
            (&[], (0, 0, 0)),
            (&[(3, 3, 2)], (0, 0, 0)),
            (&[(3, 2, 2)], (1, 0, 1)),
            (&[(3, 1, 2), (1, 1, 1)], (1, 1, 1)),
            (&[(1, 1, 2)], (0, 1, 0)),
        ];
        for (led, expected) in cases {
            assert_eq!(partition_health(led.iter().copied()), expected, "{led:?}");
        }
    }

    #[test]
    fn only_the_active_controller_reports_the_cluster() {
        let mut image = crate::controller::image::tests::with_brokers(&[(0, true, None), (1, true, None), (2, false, None)]);
        let topic = uuid::Uuid::from_u128(1);
        let mut records = vec![MetadataRecord::Topic { id: topic, name: "t".into(), configs: Default::default() }];
        // Led by the preferred replica, by another, and by none.
        for (p, leader) in [0, 1, NO_LEADER].into_iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: topic,
                partition: p as i32,
                replicas: vec![0, 1],
                isr: vec![0, 1],
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        image.apply(1000, &MetadataBatch::new(records)).unwrap();
        let expected = ClusterHealth {
            active_controller: 1,
            offline_partitions: 1,
            fenced_brokers: 1,
            active_brokers: 2,
            preferred_imbalance: 2,
            topics: 1,
            partitions: 3,
        };
        assert_eq!(ClusterHealth::of(&image, true), expected);
        assert_eq!(ClusterHealth::of(&image, false), ClusterHealth::default());
    }

    #[test]
    fn topic_counters_keep_an_all_topics_series() {
        let m = Metrics::new(None);
        m.topics.produced("orders", 100, 3);
        m.topics.produced("clicks", 50, 1);
        m.topics.fetch_failed("orders");
        let text = {
            let mut out = Vec::new();
            TextEncoder::new().encode(&m.registry.gather(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(text.contains("kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 100"), "{text}");
        assert!(text.contains("kafka_server_brokertopicmetrics_bytesin_total{topic=\"\"} 150"));
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"\"} 4"));
        assert!(text.contains("kafka_server_brokertopicmetrics_failedfetchrequests_total{topic=\"orders\"} 1"));
        assert!(text.contains("strata_pagecache_probe_method{method=\"off\"} 1"));
    }

    #[test]
    fn page_cache_probe_counts_hits_of_a_fresh_file() {
        let probe = PageCacheProbe::detect();
        let m = Metrics::new(Some(probe));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        // One range in PROBE_EVERY is probed and counted.
        for _ in 0..PROBE_EVERY {
            m.page_cache.observe("t", &f, 0, 1 << 20);
        }
        assert_eq!(m.page_cache.hit_bytes.with_label_values(&["t"]).get(), 1 << 20);
        assert_eq!(m.page_cache.miss_bytes.with_label_values(&["t"]).get(), 0);
        assert!(m.page_cache.probe_seconds.get() > 0.0);
        // Dropped from the cache: the window probed says miss, scaled to the whole range.
        f.sync_all().unwrap();
        nix::fcntl::posix_fadvise(&f, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        for _ in 0..PROBE_EVERY {
            m.page_cache.observe("t", &f, 0, 1 << 20);
        }
        assert_eq!(m.page_cache.miss_bytes.with_label_values(&["t"]).get(), 1 << 20);
    }
}
