//! The broker process against its resource limits and crashes, with real processes: thousands of partitions
//! under a low soft descriptor limit, partitions beyond the hard limit refused with a clear error (the broker
//! keeps serving and restarts), memory after a kill -9 restart bounded with many partitions, and the offline
//! log checker (`strata-broker verify-log`) finding damage.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::{BrokerProcess, BIN};
use common::*;
use kafka_protocol::messages::*;
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::signal::Signal;
use strata_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition};

fn create_request(topics: impl IntoIterator<Item = String>, partitions: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_timeout_ms(60_000).with_topics(
        topics
            .into_iter()
            .map(|name| {
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(s(&name)))
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
            })
            .collect(),
    )
}

async fn partitions_by_topic(c: &mut Client) -> Vec<(String, usize)> {
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    // Clients' topics: not the group coordinator's internal one.
    let mut topics: Vec<(String, usize)> = resp
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
        .collect();
    topics.sort();
    topics
}

/// Produces `records` records to each partition of `topic`; every partition must accept them.
async fn produce_everywhere(c: &mut Client, topic: &str, partitions: i32, records: usize) {
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(
            (0..partitions)
                .map(|p| {
                    produce_request::PartitionProduceData::default()
                        .with_index(p)
                        .with_records(Some(record_batch(records, 20, 1_000)))
                })
                .collect(),
        ),
    ]);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    for p in &resp.responses[0].partition_responses {
        assert_eq!(p.error_code, 0, "produce to {topic}-{}", p.index);
    }
}

async fn fetch_records(c: &mut Client, topic: &str, partition: i32) -> usize {
    let req = FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ]),
    ]);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 11, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch {topic}-{partition}");
    let mut records = p.records.clone().unwrap_or_default();
    kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap().iter().map(|s| s.records.len()).sum()
}

fn hard_nofile() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().1
}

/// 2,000 partitions where the soft descriptor limit is 1,024: the broker raises it to the hard limit and says
/// so; after kill -9 it restarts with everything, without reading the crashed segments' preallocated index
/// pages (which cost hundreds of MiB and a false "corrupt index" warning per partition before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_partitions_under_a_low_soft_limit_survive_kill_9_with_bounded_memory() {
    let hard = hard_nofile();
    assert!(hard >= 8_192, "this test needs a hard RLIMIT_NOFILE of 8192 or more (have {hard})");
    let root = tempfile::tempdir().unwrap();
    let (data, log) = (root.path().join("data"), root.path().join("broker.log"));
    let limits = Some((1_024, hard));
    let topics: Vec<String> = (0..20).map(|t| format!("many-{t:02}")).collect();

    let broker = BrokerProcess::start(&data, &log, &[], limits);
    assert!(broker.log_text().contains(&format!("soft_before=1024 soft={hard} hard={hard}")), "{}", broker.log_text());
    let mut c = broker.client().await;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &create_request(topics.clone(), 100)).await;
    for t in &resp.topics {
        assert_eq!(t.error_code, 0, "{}: {:?}", t.name.as_str(), t.error_message);
    }
    for t in &topics {
        produce_everywhere(&mut c, t, 100, 6).await;
    }
    drop(c);
    broker.stop(Signal::SIGKILL);

    let broker = BrokerProcess::start(&data, &log, &[], limits);
    let peak_kib = broker.peak_rss_kib();
    let mut c = broker.client().await;
    let listed = partitions_by_topic(&mut c).await;
    assert_eq!(listed, topics.iter().map(|t| (t.clone(), 100)).collect::<Vec<_>>());
    for t in [&topics[0], &topics[19]] {
        assert_eq!(fetch_records(&mut c, t, 99).await, 6);
    }
    eprintln!("peak RSS after a kill -9 restart with 2,000 partitions: {peak_kib} KiB");
    // The old restart touched every preallocated index page: 220-260 MiB with 2,000 partitions.
    assert!(peak_kib < 64 * 1024, "peak RSS after a kill -9 restart with 2,000 partitions: {peak_kib} KiB");
    assert!(!broker.log_text().contains("rebuilding the indexes"), "no false corrupt-index warnings:\n{}", broker.log_text());
    drop(c);
    assert!(broker.stop(Signal::SIGTERM).success());
}

/// With the hard limit at 1,024 too, partitions that would exhaust the descriptors are refused with
/// POLICY_VIOLATION and a message, instead of wedging the broker; it keeps serving and restarts on its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_beyond_the_descriptor_limit_are_refused_and_the_broker_restarts() {
    let root = tempfile::tempdir().unwrap();
    let (data, log) = (root.path().join("data"), root.path().join("broker.log"));
    let limits = Some((1_024, 1_024));
    let broker = BrokerProcess::start(&data, &log, &[], limits);
    let mut c = broker.client().await;
    let mut created = Vec::new();
    let refusal = loop {
        let name = format!("t{:03}", created.len());
        let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 5, &create_request([name.clone()], 20)).await;
        let t = &resp.topics[0];
        if t.error_code != 0 {
            break (t.error_code, t.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default());
        }
        created.push(name);
        assert!(created.len() < 60, "1,200 partitions cannot fit in 1,024 descriptors");
    };
    assert_eq!(refusal.0, 44, "POLICY_VIOLATION: {refusal:?}");
    assert!(refusal.1.contains("file descriptors"), "{refusal:?}");
    assert!(created.len() >= 8, "only {} topics of 20 partitions fit", created.len());

    // Still serving: existing partitions take and return records, new clients connect.
    produce_everywhere(&mut c, &created[0], 20, 3).await;
    let mut other = broker.client().await;
    assert_eq!(fetch_records(&mut other, &created[0], 19).await, 3);
    drop((c, other));
    assert!(broker.stop(Signal::SIGTERM).success());

    let broker = BrokerProcess::start(&data, &log, &[], limits);
    let mut c = broker.client().await;
    assert_eq!(partitions_by_topic(&mut c).await, created.iter().map(|t| (t.clone(), 20)).collect::<Vec<_>>());
    assert_eq!(fetch_records(&mut c, &created[0], 19).await, 3);
    drop(c);
    assert!(broker.stop(Signal::SIGTERM).success());
}

fn verify_log(path: &Path) -> (bool, String) {
    let out = Command::new(BIN).arg("verify-log").arg(path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn verify_log_finds_damaged_indexes_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 8192, index_interval_bytes: 256, ..LogConfig::default() };
    let manager =
        LogManager::open(LogManagerConfig { default_config: config.clone(), ..LogManagerConfig::new(dir.path()) }).unwrap();
    for p in 0..2 {
        let log = manager.get_or_create(&TopicPartition::new("checked", p), config.clone()).unwrap();
        for i in 0..100 {
            log.append_as_leader(&mut record_batch(1 + i % 4, 60, 1_000 + i as i64 * 10).to_vec(), 0).unwrap();
        }
    }
    manager.shutdown().unwrap();
    drop(manager);

    let (ok, out) = verify_log(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("checked-0: ") && out.contains(": ok") && out.contains("2 partitions checked, 0 damaged"), "{out}");

    // A closed segment's index entry moved into the middle of a batch.
    let part = dir.path().join("checked-0");
    let index = part.join("00000000000000000000.index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16);
    bytes[15] = bytes[15].wrapping_add(3);
    std::fs::write(&index, &bytes).unwrap();
    let (ok, out) = verify_log(&part);
    assert!(!ok, "{out}");
    assert!(out.contains("00000000000000000000.index: entry 1") && out.contains("1 partitions checked, 1 damaged"), "{out}");

    // A flipped byte inside a record of the other partition: its CRC no longer matches.
    let segment = dir.path().join("checked-1/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    let (ok, out) = verify_log(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("CRC-32C mismatch") && out.contains("2 partitions checked, 2 damaged"), "{out}");
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "the checker only reads");
}
