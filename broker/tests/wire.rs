//! Wire-level tests: requests encoded by kafka-protocol over real sockets to an in-process broker, including
//! malformed and hostile input.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    create_topic, fetch_request, produce, produce_request, produce_with_acks, record_batch, s, topic_id, try_create_topic,
    Client, TestBroker,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

#[tokio::test]
async fn api_versions_of_every_version_and_v0_fallback() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    for v in 0..=4 {
        let resp: ApiVersionsResponse = c
            .call(
                ApiKey::ApiVersions,
                v,
                &ApiVersionsRequest::default().with_client_software_name(s("t")).with_client_software_version(s("1")),
            )
            .await;
        assert_eq!(resp.error_code, 0);
        let fetch = resp.api_keys.iter().find(|k| k.api_key == ApiKey::Fetch as i16).unwrap();
        assert_eq!((fetch.min_version, fetch.max_version), (4, 18));
        assert!(
            resp.api_keys.iter().all(|k| k.api_key != ApiKey::ConsumerGroupHeartbeat as i16),
            "only implemented APIs are advertised"
        );
    }
    // A future ApiVersions version gets a v0 response with UNSUPPORTED_VERSION and the supported list.
    let mut req = c.encode(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    req[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&req).await;
    let (_, resp): (i32, ApiVersionsResponse) = Client::decode(ApiKey::ApiVersions, 0, c.read_frame().await.unwrap());
    assert_eq!(resp.error_code, 35);
    assert!(resp.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16));
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let b = TestBroker::start(&[("socket.request.max.bytes", "1048576")]).await;
    let mut good = b.client().await;
    create_topic(&mut good, "keep", 1, &[]).await;
    assert_eq!(produce(&mut good, "keep", 0, record_batch(3, 10, 1000)).await.error_code, 0);

    let unknown_key = [0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0];
    let truncated_metadata = [0, 0, 0, 12, 0, 3, 0, 9, 0, 0, 0, 1, 0, 0, 0xff, 0xff];
    let oversized = (2i32 << 20).to_be_bytes();
    let negative = (-5i32).to_be_bytes();
    let huge_array = {
        let mut r = good.encode(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(Some(vec![])));
        let n = r.len();
        r[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes()); // 2^31 topics declared, none sent
        r
    };
    let mut unsupported_produce = good.encode(ApiKey::Produce, 9, &produce_request("keep", 0, record_batch(1, 1, 1), 1));
    unsupported_produce[6..8].copy_from_slice(&2i16.to_be_bytes());
    for (what, bytes) in [
        ("unknown api key", &unknown_key[..]),
        ("truncated body", &truncated_metadata[..]),
        ("oversized", &oversized[..]),
        ("negative size", &negative[..]),
        ("huge array count", &huge_array[..]),
        ("unsupported version", &unsupported_produce[..]),
    ] {
        let mut c = b.client().await;
        c.send_raw(bytes).await;
        assert!(c.is_closed().await, "{what}: connection should be closed");
    }
    // The healthy connection and the stored data are untouched.
    let resp: ListOffsetsResponse = good
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s("keep"))).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                ]),
            ]),
        )
        .await;
    assert_eq!(resp.topics[0].partitions[0].offset, 3);
}

#[tokio::test]
async fn produce_errors_have_kafka_codes_and_store_nothing() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "small", 1, &[("max.message.bytes", "1000")]).await;

    let mut corrupt = record_batch(5, 10, 1000).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // breaks the CRC
    assert_eq!(produce(&mut c, "small", 0, Bytes::from(corrupt)).await.error_code, 2, "CORRUPT_MESSAGE");
    assert_eq!(produce(&mut c, "small", 0, Bytes::from_static(&[1, 2, 3])).await.error_code, 2, "CORRUPT_MESSAGE");
    assert_eq!(produce(&mut c, "small", 0, record_batch(1, 5000, 1000)).await.error_code, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(produce(&mut c, "small", 7, record_batch(1, 5, 1000)).await.error_code, 3, "unknown partition");
    assert_eq!(produce(&mut c, "nope", 0, record_batch(1, 5, 1000)).await.error_code, 3, "unknown topic");
    // Only the group coordinator writes its topic (Kafka's ReplicaManager refuses with INVALID_TOPIC_EXCEPTION).
    assert_eq!(produce(&mut c, "__consumer_offsets", 0, record_batch(1, 5, 1000)).await.error_code, 17, "internal topic");
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request("small", 0, record_batch(1, 5, 1), 5)).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 21, "INVALID_REQUIRED_ACKS");

    let ok = produce(&mut c, "small", 0, record_batch(2, 5, 1000)).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0), "nothing was stored by the failed requests");
    // acks=0: no response; the next request's answer comes back first.
    let quiet = c.encode(ApiKey::Produce, 9, &produce_request("small", 0, record_batch(1, 5, 1), 0));
    c.send_raw(&quiet).await;
    assert_eq!(produce(&mut c, "small", 0, record_batch(1, 5, 1000)).await.base_offset, 3);
}

#[tokio::test]
async fn metadata_auto_creates_valid_topics_only() {
    let b = TestBroker::start(&[("num.partitions", "3")]).await;
    let mut c = b.client().await;
    let req = |names: &[&str], allow: bool| {
        MetadataRequest::default().with_allow_auto_topic_creation(allow).with_topics(Some(
            names.iter().map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(n))))).collect(),
        ))
    };
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req(&["auto", "bad name", "x".repeat(250).as_str()], true)).await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 3);
    assert_ne!(resp.topics[0].topic_id, Uuid::nil());
    assert_eq!(resp.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert_eq!(resp.topics[2].error_code, 17);
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req(&["other"], false)).await;
    assert_eq!(resp.topics[0].error_code, 3);
    // By id (v10+) and the all-topics form.
    let id = topic_id(&mut c, "auto").await;
    let by_id = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(None).with_topic_id(id)]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &by_id).await;
    assert_eq!(resp.topics[0].name.as_ref().map(|n| n.0.to_string()), Some("auto".into()));
    let all: MetadataResponse = c.call(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(None)).await;
    let listed: Vec<(String, bool)> = all.topics.iter().map(|t| (t.name.as_ref().unwrap().to_string(), t.is_internal)).collect();
    // The group coordinator's topic is listed as Kafka lists it: internal (clients hide it unless asked).
    assert_eq!(listed, vec![("__consumer_offsets".to_string(), true), ("auto".to_string(), false)]);
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_produce() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "poll", 1, &[]).await;
    let mut producer = b.client().await;
    let start = Instant::now();
    let waiting = tokio::spawn(async move {
        let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("poll", Uuid::nil(), 0, 10_000)).await;
        resp
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no data yet: the fetch waits");
    produce(&mut producer, "poll", 0, record_batch(4, 10, 1000)).await;
    let resp = waiting.await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(5), "woken by the produce, not the 10 s timeout: {elapsed:?}");
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 4);
    let mut records = p.records.clone().unwrap();
    assert_eq!(RecordBatchDecoder::decode_all(&mut records).unwrap().iter().map(|s| s.records.len()).sum::<usize>(), 4);

    // Nothing new: the fetch returns empty after max_wait_ms.
    let mut c = b.client().await;
    let start = Instant::now();
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("poll", Uuid::nil(), 4, 300)).await;
    assert!(start.elapsed() >= Duration::from_millis(290));
    assert_eq!(resp.responses[0].partitions[0].records.as_ref().map(|r| r.len()), Some(0));
    // Past the end: OFFSET_OUT_OF_RANGE at once.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("poll", Uuid::nil(), 99, 5000)).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 1);
}

/// Produces the same batches to a sendfile broker and a copy broker and fetches with every Fetch version:
/// both answer with the same bytes, which kafka-protocol decodes to the produced records.
#[tokio::test]
async fn every_fetch_version_decodes_and_both_fetch_modes_send_the_same_bytes() {
    let sendfile = TestBroker::start(&[("fetch.mode", "sendfile")]).await;
    let copy = TestBroker::start(&[("fetch.mode", "copy")]).await;
    let batches = [record_batch(10, 100, 5000), record_batch(1, 70_000, 6000), record_batch(50, 3, 7000)];
    let mut frames = Vec::new();
    for b in [&sendfile, &copy] {
        let mut c = b.client().await;
        create_topic(&mut c, "modes", 1, &[]).await;
        for batch in &batches {
            assert_eq!(produce(&mut c, "modes", 0, batch.clone()).await.error_code, 0);
        }
        let id = topic_id(&mut c, "modes").await;
        let mut per_version = Vec::new();
        for version in 4..=18 {
            let req = c.encode(ApiKey::Fetch, version, &fetch_request("modes", id, 0, 0));
            c.send_raw(&req).await;
            let frame = c.read_frame().await.unwrap();
            let (_, resp): (i32, FetchResponse) = Client::decode(ApiKey::Fetch, version, frame.clone());
            let p = &resp.responses[0].partitions[0];
            assert_eq!((p.error_code, p.high_watermark), (0, 61), "v{version}");
            let mut records = p.records.clone().unwrap();
            let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
            let offsets: Vec<i64> = sets.iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect();
            assert_eq!(offsets, (0..61).collect::<Vec<_>>(), "v{version}");
            per_version.push((version, frame));
        }
        frames.push(per_version);
    }
    for ((v, a), (_, b)) in frames[0].iter().zip(&frames[1]) {
        if *v < 13 {
            assert_eq!(a, b, "v{v}: sendfile and copy responses differ");
        }
    }
}

#[tokio::test]
async fn offset_for_leader_epoch_is_epoch_zero() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "epochs", 1, &[]).await;
    produce(&mut c, "epochs", 0, record_batch(7, 1, 1)).await;
    let req = |epoch| {
        OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default().with_topic(TopicName(s("epochs"))).with_partitions(
                vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(epoch)],
            ),
        ])
    };
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &req(0)).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 7));
    let resp: OffsetForLeaderEpochResponse = c.call(ApiKey::OffsetForLeaderEpoch, 4, &req(3)).await;
    assert_eq!(resp.topics[0].partitions[0].end_offset, -1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "pipe", 1, &[]).await;
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for i in 0..30 {
        let req = match i % 3 {
            0 => c.encode(ApiKey::Produce, 9, &produce_request("pipe", 0, record_batch(1, 10, i), 1)),
            1 => c.encode(ApiKey::Fetch, 12, &fetch_request("pipe", Uuid::nil(), 0, 50)),
            _ => c.encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
        };
        all.extend_from_slice(&req);
        expected.push(i32::from_be_bytes(req[8..12].try_into().unwrap()));
    }
    c.send_raw(&all).await;
    let mut offsets = Vec::new();
    for (i, correlation) in expected.iter().enumerate() {
        let frame = c.read_frame().await.unwrap();
        assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()), *correlation);
        if i % 3 == 0 {
            let (_, resp): (i32, ProduceResponse) = Client::decode(ApiKey::Produce, 9, frame);
            offsets.push(resp.responses[0].partition_responses[0].base_offset);
        }
    }
    assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "pipelined produces append in order");
}

#[tokio::test]
async fn graceful_shutdown_and_restart_keep_topics_configs_and_records() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "durable", 2, &[("retention.ms", "86400000")]).await;
    produce(&mut c, "durable", 0, record_batch(5, 10, 1)).await;
    let id = topic_id(&mut c, "durable").await;
    drop(c);
    let dir = b.stop().await;
    assert!(dir.path().join(".kafka_cleanshutdown").exists());

    let b = TestBroker::start_in(dir, &[]).await;
    let mut c = b.client().await;
    assert_eq!(topic_id(&mut c, "durable").await, id);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 13, &fetch_request("durable", id, 0, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 5));
    let req =
        DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("durable"))
            .with_configuration_keys(Some(vec![s("retention.ms")]))]);
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req).await;
    let cfg = &resp.results[0].configs[0];
    assert_eq!((cfg.name.as_str(), cfg.value.as_ref().map(|v| v.as_str())), ("retention.ms", Some("86400000")));
}

/// The configs of a topic (resource type 2) or broker (4), by name: (value, config source).
async fn describe(
    c: &mut Client,
    resource_type: i8,
    name: &str,
    keys: &[&str],
) -> std::collections::BTreeMap<String, (String, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(Some(keys.iter().map(|k| s(k)).collect()))]);
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req).await;
    assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0].error_message);
    resp.results[0]
        .configs
        .iter()
        .map(|e| (e.name.to_string(), (e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), e.config_source)))
        .collect()
}

/// The stored batches of partition 0 from `offset` on, as a consumer fetches them.
async fn fetch_batches(c: &mut Client, topic: &str, offset: i64) -> Bytes {
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request(topic, Uuid::nil(), offset, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
async fn min_insync_replicas_above_one_refuses_acks_all_only() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "isr", 1, &[("min.insync.replicas", "2")]).await;
    let refused = produce_with_acks(&mut c, "isr", 0, record_batch(3, 10, 1000), -1).await;
    assert_eq!((refused.error_code, refused.base_offset), (19, -1), "NOT_ENOUGH_REPLICAS: {:?}", refused.error_message);
    assert!(refused.error_message.as_ref().is_some_and(|m| m.contains("min.insync.replicas=2")));
    let ok = produce_with_acks(&mut c, "isr", 0, record_batch(3, 10, 1000), 1).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0), "acks=1 is unaffected and the refused batch was not stored");
    assert_eq!(describe(&mut c, 2, "isr", &["min.insync.replicas"]).await["min.insync.replicas"], ("2".into(), 1));
    // Back to the default (1): acks=all works again.
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("isr"))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s("min.insync.replicas"))
                .with_config_operation(1)]),
    ]);
    let resp: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(produce(&mut c, "isr", 0, record_batch(1, 10, 1000)).await.base_offset, 3);
    assert_eq!(describe(&mut c, 2, "isr", &["min.insync.replicas"]).await["min.insync.replicas"], ("1".into(), 5));
    // Out of range values are refused, as Kafka does.
    assert_eq!(try_create_topic(&mut c, "isr0", 1, &[("min.insync.replicas", "0")]).await.error_code, 40);
}

#[tokio::test]
async fn compression_type_zstd_re_encodes_uncompressed_batches() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "z", 1, &[("compression.type", "zstd")]).await;
    let sent = record_batch(50, 200, 5000);
    assert_eq!((sent[22] & 7, i32::from_be_bytes(sent[57..61].try_into().unwrap())), (0, 50), "one uncompressed batch");
    assert_eq!(produce(&mut c, "z", 0, sent.clone()).await.error_code, 0);
    let mut stored = fetch_batches(&mut c, "z", 0).await;
    assert_eq!(stored[22] & 7, 4, "stored with zstd (attributes' codec bits)");
    assert!(stored.len() < sent.len() / 10, "{} bytes stored for {} sent", stored.len(), sent.len());
    let records = RecordBatchDecoder::decode(&mut stored).unwrap().records;
    assert!(stored.is_empty(), "one batch stored");
    let expected = RecordBatchDecoder::decode(&mut sent.clone()).unwrap().records;
    assert_eq!(records.len(), 50);
    for (r, e) in records.iter().zip(&expected) {
        assert_eq!((r.offset, r.timestamp, &r.key, &r.value), (e.offset, e.timestamp, &e.key, &e.value));
    }
    assert_eq!(describe(&mut c, 2, "z", &["compression.type"]).await["compression.type"], ("zstd".into(), 1));
    for bad in ["none", "brotli"] {
        assert_eq!(try_create_topic(&mut c, "bad", 1, &[("compression.type", bad)]).await.error_code, 40, "{bad}");
    }
}

#[tokio::test]
async fn log_append_time_stamps_the_broker_time_and_create_time_bounds_refuse_skewed_batches() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let before = now_ms();
    let resp = produce(&mut c, "lat", 0, record_batch(3, 10, 1000)).await;
    let after = now_ms();
    assert_eq!(resp.error_code, 0);
    assert!((before..=after).contains(&resp.log_append_time_ms), "{} not in [{before}, {after}]", resp.log_append_time_ms);
    let stored = fetch_batches(&mut c, "lat", 0).await;
    let attributes = i16::from_be_bytes([stored[21], stored[22]]);
    let max_timestamp = i64::from_be_bytes(stored[35..43].try_into().unwrap());
    assert_eq!((attributes & 0x08, max_timestamp), (0x08, resp.log_append_time_ms), "LogAppendTime flag and time");
    let records = RecordBatchDecoder::decode(&mut stored.clone()).unwrap().records;
    assert!(records.iter().all(|r| r.timestamp_type == kafka_protocol::records::TimestampType::LogAppend));
    // ListOffsets by time uses the append time.
    let list = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s("lat"))).with_partitions(vec![
            list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(2000),
        ]),
    ]);
    let resp_list: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &list).await;
    let found = &resp_list.topics[0].partitions[0];
    assert_eq!((found.offset, found.timestamp), (0, resp.log_append_time_ms));

    // CreateTime (the default): the response carries -1, and timestamps more than an hour ahead are refused.
    create_topic(&mut c, "ct", 1, &[("message.timestamp.before.max.ms", "86400000")]).await;
    assert_eq!(produce(&mut c, "ct", 0, record_batch(1, 10, now_ms())).await.log_append_time_ms, -1);
    let ahead = produce(&mut c, "ct", 0, record_batch(1, 10, now_ms() + 2 * 3_600_000)).await;
    assert_eq!(ahead.error_code, 32, "INVALID_TIMESTAMP: {:?}", ahead.error_message);
    let old = produce(&mut c, "ct", 0, record_batch(1, 10, 1000)).await;
    assert_eq!(old.error_code, 32, "older than message.timestamp.before.max.ms");
    assert_eq!(produce(&mut c, "ct", 0, record_batch(1, 10, now_ms() - 1000)).await.base_offset, 1);
}

#[tokio::test]
async fn broker_defaults_apply_to_topics_and_inert_configs_are_accepted_but_compaction_is_not() {
    let settings = [
        ("compression.type", "gzip"),
        ("log.message.timestamp.type", "LogAppendTime"),
        ("min.insync.replicas", "2"),
        ("log.roll.jitter.hours", "1"),
    ];
    let b = TestBroker::start(&settings).await;
    let mut c = b.client().await;
    create_topic(&mut c, "d", 1, &[]).await;
    let keys = ["compression.type", "message.timestamp.type", "min.insync.replicas", "segment.jitter.ms"];
    let topic = describe(&mut c, 2, "d", &keys).await;
    assert_eq!(topic["compression.type"], ("gzip".into(), 4), "STATIC_BROKER_CONFIG");
    assert_eq!(topic["message.timestamp.type"], ("LogAppendTime".into(), 4));
    assert_eq!(topic["segment.jitter.ms"], ("3600000".into(), 4));
    let broker_keys = ["compression.type", "log.message.timestamp.type", "min.insync.replicas", "log.roll.jitter.ms"];
    let broker = describe(&mut c, 4, "0", &broker_keys).await;
    assert_eq!(broker["log.message.timestamp.type"].0, "LogAppendTime");
    assert_eq!(broker["log.roll.jitter.ms"].0, "3600000");
    assert_eq!(produce(&mut c, "d", 0, record_batch(1, 10, 1000)).await.error_code, 19, "min.insync.replicas=2 by default");
    let resp = produce_with_acks(&mut c, "d", 0, record_batch(20, 100, 1000), 1).await;
    assert!(resp.log_append_time_ms > 0);
    // Under min.insync.replicas the high watermark stands still (KIP-966): acks=1 records stay invisible.
    assert!(fetch_batches(&mut c, "d", 0).await.is_empty(), "nothing committed under min.insync.replicas");
    create_topic(&mut c, "e", 1, &[("min.insync.replicas", "1")]).await;
    produce_with_acks(&mut c, "e", 0, record_batch(20, 100, 1000), 1).await;
    assert_eq!(fetch_batches(&mut c, "e", 0).await[22] & 7, 1, "gzip");

    // Configs without effect here are accepted and described; compaction and unknown names are refused.
    let inert = [
        ("unclean.leader.election.enable", "true"),
        ("preallocate", "true"),
        ("message.downconversion.enable", "false"),
        ("delete.retention.ms", "1000"),
        ("min.compaction.lag.ms", "5"),
        ("max.compaction.lag.ms", "6000"),
        ("min.cleanable.dirty.ratio", "0.25"),
    ];
    create_topic(&mut c, "inert", 1, &inert).await;
    let names: Vec<&str> = inert.iter().map(|(k, _)| *k).collect();
    let described = describe(&mut c, 2, "inert", &names).await;
    for (k, v) in inert {
        assert_eq!(described[k], (v.to_string(), 1), "{k}");
    }
    for bad in
        [("cleanup.policy", "compact"), ("cleanup.policy", "compact,delete"), ("no.such.config", "1"), ("preallocate", "maybe")]
    {
        let t = try_create_topic(&mut c, "refused", 1, &[bad]).await;
        assert_eq!(t.error_code, 40, "{bad:?}: INVALID_CONFIG");
    }
}

#[tokio::test]
async fn describe_log_dirs_reports_partition_sizes_in_every_version() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "sized", 2, &[]).await;
    assert_eq!(produce(&mut c, "sized", 1, record_batch(3, 100, now_ms())).await.error_code, 0);
    let dir = std::path::absolute(b.dir.path()).unwrap().display().to_string();
    let on_disk = |p: i32| -> i64 {
        let files = std::fs::read_dir(b.dir.path().join(format!("sized-{p}"))).unwrap();
        files
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .map(|p| p.metadata().unwrap().len() as i64)
            .sum()
    };
    let sizes = |resp: &DescribeLogDirsResponse| -> Vec<(String, i32, i64)> {
        let mut out: Vec<(String, i32, i64)> = resp.results[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index, p.partition_size)))
            .filter(|(t, _, _)| t == "sized")
            .collect();
        out.sort();
        out
    };
    for v in 1..=4 {
        let resp: DescribeLogDirsResponse =
            c.call(ApiKey::DescribeLogDirs, v, &DescribeLogDirsRequest::default().with_topics(None)).await;
        assert_eq!((resp.error_code, resp.results.len()), (0, 1), "v{v}");
        let r = &resp.results[0];
        assert_eq!((r.error_code, r.log_dir.as_str()), (0, dir.as_str()), "v{v}");
        assert_eq!(sizes(&resp), vec![("sized".into(), 0, 0), ("sized".into(), 1, on_disk(1))], "v{v}");
        assert!(on_disk(1) > 300);
        assert!(r.topics.iter().flat_map(|t| &t.partitions).all(|p| p.offset_lag == 0 && !p.is_future_key), "v{v}");
        if v >= 4 {
            assert!(r.total_bytes > 0 && (0..=r.total_bytes).contains(&r.usable_bytes), "{r:?}");
        }
    }
    // Asked-for partitions only; those this broker does not hold (unknown topic or partition) are left out.
    let asked = DescribeLogDirsRequest::default().with_topics(Some(vec![
        describe_log_dirs_request::DescribableLogDirTopic::default()
            .with_topic(TopicName(s("sized")))
            .with_partitions(vec![1, 7]),
        describe_log_dirs_request::DescribableLogDirTopic::default().with_topic(TopicName(s("nope"))).with_partitions(vec![0]),
    ]));
    let resp: DescribeLogDirsResponse = c.call(ApiKey::DescribeLogDirs, 4, &asked).await;
    assert_eq!(resp.results[0].topics.len(), 1);
    assert_eq!(sizes(&resp), vec![("sized".into(), 1, on_disk(1))]);
}

#[tokio::test]
async fn partition_reassignments_are_validated_with_kafkas_codes() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "fixed", 1, &[]).await;
    let alter = |topic: &str, replicas: Option<Vec<i32>>| {
        AlterPartitionReassignmentsRequest::default().with_timeout_ms(5000).with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default().with_name(TopicName(s(topic))).with_partitions(
                vec![alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))],
            ),
        ])
    };
    // (topic, target, code): to the replicas it has (nothing to do), to an unregistered broker, a duplicate, none,
    // an unknown topic, and a cancel with nothing in progress.
    let cases = [
        ("fixed", Some(vec![0]), 0),
        ("fixed", Some(vec![1]), 39),
        ("fixed", Some(vec![0, 0]), 39),
        ("fixed", Some(vec![]), 39),
        ("nope", Some(vec![0]), 3),
        ("fixed", None, 85),
    ];
    for (topic, replicas, code) in cases {
        let resp: AlterPartitionReassignmentsResponse =
            c.call(ApiKey::AlterPartitionReassignments, 0, &alter(topic, replicas.clone())).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!((resp.responses[0].name.as_str(), p.partition_index, p.error_code), (topic, 0, code), "{replicas:?}");
        assert_eq!(p.error_message.is_some(), code != 0, "{:?}", p.error_message);
    }
    let resp: ListPartitionReassignmentsResponse =
        c.call(ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default().with_topics(None)).await;
    assert_eq!((resp.error_code, resp.error_message, resp.topics.len()), (0, None, 0));
}
