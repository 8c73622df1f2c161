//! A broker whose log directory fills up (a tiny tmpfs, so this runs as root like the storage disk-full tests):
//! one warning when it fills, none for further refused batches, one line when it recovers, and the
//! `strata_log_dir_full` gauge at 1 then 0.

mod common;

use bytes::Bytes;
use common::{record_batch, s, Client, LogCapture, TestBroker};
use kafka_protocol::messages::*;
use strata_storage::test_util::TinyFs;

async fn produce(c: &mut Client, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s("t"))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records)),
        ]),
    ]);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test]
async fn a_full_log_dir_is_reported_once_per_transition() {
    const KAFKA_STORAGE_ERROR: i16 = 56;
    let logs = LogCapture::start();
    let fs = TinyFs::mount("4m");
    let dir = tempfile::TempDir::new_in(fs.path()).unwrap();
    let b = TestBroker::start_in(dir, &[("log.segment.bytes", "1048576")]).await;
    let mut c = b.client().await;
    let meta = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))]));
    let _: MetadataResponse = c.call(ApiKey::Metadata, 9, &meta).await;
    assert_eq!(produce(&mut c, record_batch(10, 100, 0)).await, 0);
    assert_eq!(b.metric("strata_log_dir_full"), Some(0.0));

    let filler = fs.fill();
    for _ in 0..5 {
        assert_eq!(produce(&mut c, record_batch(10, 1000, 0)).await, KAFKA_STORAGE_ERROR);
    }
    assert_eq!(logs.lines_with("log directory is full").len(), 1, "one warning, not one per refused batch");
    assert!(logs.lines_with("log directory is full")[0].contains("WARN"));
    assert!(logs.lines_with("produce rejected").is_empty(), "no line per batch either");
    assert_eq!(b.metric("strata_log_dir_full"), Some(1.0));

    std::fs::remove_file(filler).unwrap();
    for _ in 0..3 {
        assert_eq!(produce(&mut c, record_batch(10, 100, 0)).await, 0);
    }
    assert_eq!(logs.lines_with("log directory accepts writes again").len(), 1);
    assert_eq!(logs.lines_with("log directory is full").len(), 1);
    assert_eq!(b.metric("strata_log_dir_full"), Some(0.0));
    b.stop().await;
}
