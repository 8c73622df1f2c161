//! The `rdkafka` crate (librdkafka, built from source by rdkafka-sys) against an in-process broker.

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

struct Env {
    rt: tokio::runtime::Runtime,
    broker: Option<TestBroker>,
}

impl Env {
    fn new() -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let broker = rt.block_on(TestBroker::start(&[]));
        Env { rt, broker: Some(broker) }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.broker.as_ref().unwrap().bootstrap());
        c
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.config().create().unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            self.rt.block_on(b.stop());
        }
    }
}

fn create_topic(env: &Env, name: &str, partitions: i32) {
    create_topic_with(env, name, partitions, &[]);
}

fn create_topic_with(env: &Env, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = env.admin();
    let topic = configs.iter().fold(NewTopic::new(name, partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v));
    let res = env.rt.block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
}

/// Partition 0 of `topic` read from the beginning until `n` messages arrived (60 s at most).
fn consume(env: &Env, topic: &str, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let consumer: BaseConsumer = env.config().set("group.id", "unused").set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            out.push(m.unwrap().detach());
        }
    }
    out
}

/// Record i of [`send_numbered`]: its value.
fn numbered_value(i: i32, pad: usize) -> String {
    format!("value-{i}{}", "x".repeat(pad))
}

/// Sends records 0..n and waits for every delivery: record i has key `key-{i}`, value [`numbered_value`],
/// timestamp 1_000_000 + i, header `i` = i, and goes to partition i % partitions.
fn send_numbered(env: &Env, producer: &FutureProducer, topic: &str, n: i32, partitions: i32, pad: usize) {
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let (key, value) = (format!("key-{i}"), numbered_value(i, pad));
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload(&value)
                .partition(i % partitions)
                .timestamp(1_000_000 + i64::from(i))
                .headers(OwnedHeaders::new().insert(Header { key: "i", value: Some(&i.to_string()) }));
            producer.send_result(record).map_err(|(e, _)| e).unwrap()
        })
        .collect();
    for s in sends {
        env.rt.block_on(s).unwrap().unwrap();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn produce_and_consume_with_lz4_keys_and_headers() {
    let env = Env::new();
    create_topic(&env, "rd", 3);
    let producer: FutureProducer = env.config().set("compression.type", "lz4").set("acks", "all").create().unwrap();
    let n = 20_000;
    send_numbered(&env, &producer, "rd", n, 3, 0);

    let consumer: BaseConsumer = env.config().set("group.id", "unused").set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("rd", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut last = [-1i64; 3];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < n && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = m.unwrap();
        let i: i32 = std::str::from_utf8(m.headers().unwrap().get(0).value.unwrap()).unwrap().parse().unwrap();
        assert_eq!(m.partition(), i % 3);
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(m.payload(), Some(numbered_value(i, 0).as_bytes()));
        assert_eq!(m.timestamp().to_millis(), Some(1_000_000 + i64::from(i)));
        assert_eq!(m.offset(), last[m.partition() as usize] + 1, "dense offsets in order");
        last[m.partition() as usize] = m.offset();
        got += 1;
    }
    assert_eq!(got, n);
    // Records 1, 4, ..., 19999 went to partition 1.
    assert_eq!(consumer.fetch_watermarks("rd", 1, Duration::from_secs(5)).unwrap(), (0, 6667));
}

#[test]
fn admin_client_manages_topics() {
    let env = Env::new();
    let admin = env.admin();
    let opts = AdminOptions::new();
    create_topic(&env, "adm", 2);
    let dup = env.rt.block_on(admin.create_topics(&[NewTopic::new("adm", 1, TopicReplication::Fixed(1))], &opts)).unwrap();
    assert_eq!(dup[0].as_ref().unwrap_err().1, RDKafkaErrorCode::TopicAlreadyExists);

    let res = env.rt.block_on(admin.create_partitions(&[NewPartitions::new("adm", 4)], &opts)).unwrap();
    assert!(res[0].is_ok());
    let md = admin.inner().fetch_metadata(Some("adm"), Duration::from_secs(5)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);

    let configs = env.rt.block_on(admin.describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)).unwrap();
    let cfg = configs[0].as_ref().unwrap();
    assert_eq!(cfg.get("cleanup.policy").and_then(|e| e.value.as_deref()), Some("delete"));

    let res = env.rt.block_on(admin.delete_topics(&["adm"], &opts)).unwrap();
    assert!(res[0].is_ok());
    let md = admin.inner().fetch_metadata(None, Duration::from_secs(5)).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "adm"));
}

#[test]
fn acks_all_needs_min_insync_replicas_while_acks_one_does_not() {
    let env = Env::new();
    create_topic_with(&env, "isr", 1, &[("min.insync.replicas", "2")]);
    let send = |acks: &str| {
        let producer: FutureProducer = env.config().set("acks", acks).set("retries", "0").create().unwrap();
        let delivery = producer.send_result(FutureRecord::to("isr").key("k").payload("v")).map_err(|(e, _)| e).unwrap();
        env.rt.block_on(delivery).unwrap().map(|d| d.offset).map_err(|(e, _)| e)
    };
    let err = send("all").unwrap_err();
    assert_eq!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::NotEnoughReplicas), "{err}");
    assert_eq!(send("1").unwrap(), 0, "acks=1 is unaffected; the refused record was not stored");
}

#[test]
fn a_zstd_topic_stores_an_uncompressed_producers_batches_as_zstd() {
    let env = Env::new();
    create_topic_with(&env, "zt", 1, &[("compression.type", "zstd")]);
    let producer: FutureProducer = env.config().set("compression.type", "none").set("linger.ms", "50").create().unwrap();
    let n = 500;
    send_numbered(&env, &producer, "zt", n, 1, 100);
    let got = consume(&env, "zt", n as usize);
    assert_eq!(got.len(), n as usize);
    for (i, m) in (0..n).zip(&got) {
        assert_eq!(m.offset(), i64::from(i));
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(m.payload(), Some(numbered_value(i, 100).as_bytes()));
        assert_eq!(m.timestamp(), Timestamp::CreateTime(1_000_000 + i64::from(i)));
        assert_eq!(m.headers().unwrap().get(0).value, Some(i.to_string().as_bytes()));
    }
    // Every batch in the segment file is zstd (codec bits of the attributes at byte 22) and the whole log is
    // much smaller than the values alone.
    let log = std::fs::read(env.broker.as_ref().unwrap().dir.path().join("zt-0/00000000000000000000.log")).unwrap();
    let mut position = 0;
    let mut batches = 0;
    while position < log.len() {
        assert_eq!(log[position + 22] & 7, 4, "batch {batches} is zstd");
        position += 12 + i32::from_be_bytes(log[position + 8..position + 12].try_into().unwrap()) as usize;
        batches += 1;
    }
    assert!(batches >= 1 && log.len() < n as usize * 100 / 4, "{batches} batches, {} bytes", log.len());
}

#[test]
fn log_append_time_topics_give_clients_the_broker_time() {
    let env = Env::new();
    create_topic_with(&env, "lat", 1, &[("message.timestamp.type", "LogAppendTime")]);
    let producer: FutureProducer = env.config().create().unwrap();
    let before = now_ms();
    let delivery =
        producer.send_result(FutureRecord::to("lat").key("k").payload("v").timestamp(1_000)).map_err(|(e, _)| e).unwrap();
    let delivered = env.rt.block_on(delivery).unwrap().unwrap();
    let after = now_ms();
    let Timestamp::LogAppendTime(t) = delivered.timestamp else { panic!("{:?}", delivered.timestamp) };
    assert!((before..=after).contains(&t), "{t} not in [{before}, {after}]");
    let got = consume(&env, "lat", 1);
    assert_eq!(got[0].timestamp(), Timestamp::LogAppendTime(t), "the consumer sees the same broker time");
    assert_eq!(got[0].payload(), Some(&b"v"[..]));
}
