//! Test harness: an in-process broker on 127.0.0.1 (port 0) with a temporary data dir, and a raw Kafka client
//! speaking the wire protocol through kafka-protocol's encoders.
#![allow(dead_code)] // each test binary uses part of this module

pub mod pki;
pub mod process;

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_broker::broker::Broker;
use strata_broker::config::BrokerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start(settings: &[(&str, &str)]) -> TestBroker {
        TestBroker::start_in(tempfile::tempdir().unwrap(), settings).await
    }

    pub async fn start_in(dir: tempfile::TempDir, settings: &[(&str, &str)]) -> TestBroker {
        let log_dir = dir.path().to_str().unwrap().to_string();
        // No metrics endpoint unless asked: brokers of parallel tests would all bind the default port.
        let mut pairs = vec![("listeners", "PLAINTEXT://127.0.0.1:0"), ("log.dirs", log_dir.as_str()), ("metrics.port", "0")];
        pairs.extend_from_slice(settings);
        // Later settings win: a cluster's listeners replace the default one.
        let broker = Broker::start(BrokerConfig::from_pairs(pairs).unwrap()).await.unwrap();
        let addr = broker.addresses[0].1;
        TestBroker { broker: Some(broker), addr, dir }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Graceful shutdown, keeping the data dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.broker.take().unwrap().shutdown().await.unwrap();
        self.dir
    }

    /// The value of one series of the Prometheus exposition (`name{labels}` as rendered), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let state = self.broker.as_ref().unwrap().state();
        let text = state.metrics.render(state);
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

pub struct Client {
    /// TCP, or TLS over it.
    pub stream: strata_client::BoxStream,
    correlation: i32,
}

/// A port that was free a moment ago (for listeners whose port others must know before they start, such as a
/// voter's controller listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Settings of node `id` of a cluster whose voters listen on `voter_ports` (node i on port i); nodes beyond
/// the voters are brokers only. Short timeouts, so tests see elections and fencing quickly.
pub fn quorum_settings(id: usize, voter_ports: &[u16], cluster_id: &str) -> Vec<(String, String)> {
    let voters: Vec<String> = voter_ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{p}")).collect();
    let voter = id < voter_ports.len();
    let listeners = match voter {
        true => format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", voter_ports[id]),
        false => "PLAINTEXT://127.0.0.1:0".to_string(),
    };
    [
        ("node.id", id.to_string()),
        ("cluster.id", cluster_id.to_string()),
        ("process.roles", if voter { "broker,controller" } else { "broker" }.to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("listeners", listeners),
        // Tests share two cores and a disk whose fsyncs may take long: short enough to see elections and
        // fencing quickly, long enough not to fence brokers of a loaded machine.
        ("controller.quorum.election.timeout.ms", "1000".to_string()),
        ("broker.heartbeat.interval.ms", "250".to_string()),
        ("broker.session.timeout.ms", "5000".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A plain HTTP/1.0 GET of the broker's metrics endpoint: the status line, headers and body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    http.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    page
}

/// Waits (up to a minute, polling) until `done`, failing the test with `what` otherwise.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Partition 0 of `topic` in a Metadata response.
pub fn partition0<'a>(md: &'a MetadataResponse, topic: &str) -> Option<&'a metadata_response::MetadataResponsePartition> {
    md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))?.partitions.first()
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    pub fn from_stream(stream: impl strata_client::Stream + 'static) -> Client {
        Client { stream: Box::new(stream), correlation: 0 }
    }

    pub fn encode<R: Encodable>(&mut self, api: ApiKey, version: i16, body: &R) -> Vec<u8> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("wire-test")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut framed = (buf.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        framed
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Reads one response frame; None if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub fn decode<R: Decodable>(api: ApiKey, version: i16, mut frame: Bytes) -> (i32, R) {
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        let body = R::decode(&mut frame, version).unwrap();
        assert!(!frame.has_remaining(), "{api:?} v{version}: {} trailing bytes", frame.remaining());
        (header.correlation_id, body)
    }

    pub async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, body: &Req) -> Resp {
        let req = self.encode(api, version, body);
        self.send_raw(&req).await;
        let frame = self.read_frame().await.unwrap_or_else(|| panic!("{api:?} v{version}: connection closed"));
        let (correlation, resp) = Self::decode(api, version, frame);
        assert_eq!(correlation, self.correlation);
        resp
    }

    /// True if the broker closes the connection (reads EOF) within 5 s.
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The log lines of this thread (a current-thread test runtime: the broker's tasks too) while the guard lives.
pub struct LogCapture {
    lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        LogCapture { lines, _guard: tracing::subscriber::set_default(subscriber) }
    }

    /// Captured lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.lines.lock().unwrap()).into_owned();
        text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }
}

struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One RecordBatch v2 with `n` records, encoded by kafka-protocol (so the CRC is right).
pub fn record_batch(n: usize, value_size: usize, timestamp: i64) -> Bytes {
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
    use strata_storage::batch::plain_record;
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let (key, value) = (Bytes::from(format!("k{i}")), Bytes::from(vec![b'v'; value_size]));
            // A producer sends no partition leader epoch.
            Record { partition_leader_epoch: -1, ..plain_record(i, timestamp + i as i64, Some(key), Some(value)) }
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).unwrap();
    buf.freeze()
}

pub async fn try_create_topic(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> create_topics_response::CreatableTopicResult {
    let req =
        CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
                    .collect(),
            )]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    resp.topics[0].clone()
}

pub async fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let t = try_create_topic(c, name, partitions, configs).await;
    assert_eq!(t.error_code, 0, "{:?}", t.error_message);
}

/// IncrementalAlterConfigs setting `key` to `value` on one resource (type 2: topic, 4: broker).
pub fn set_config_request(resource_type: i8, name: &str, key: &str, value: &str) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(0)
                .with_value(Some(s(value)))]),
    ])
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records)),
        ]),
    ])
}

pub async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> produce_response::PartitionProduceResponse {
    produce_with_acks(c, topic, partition, records, -1).await
}

pub async fn produce_with_acks(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> produce_response::PartitionProduceResponse {
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_request(topic, partition, records, acks)).await;
    resp.responses[0].partition_responses[0].clone()
}

pub fn fetch_request(topic: &str, topic_id: Uuid, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(10 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_topic_id(topic_id)
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

pub async fn topic_id(c: &mut Client, topic: &str) -> Uuid {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    resp.topics[0].topic_id
}
