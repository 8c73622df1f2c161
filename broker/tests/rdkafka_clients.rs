//! The `rdkafka` crate (librdkafka, built from source by rdkafka-sys) against an in-process broker.

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
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
    let admin = env.admin();
    let res = env
        .rt
        .block_on(admin.create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()))
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");
}

#[test]
fn produce_and_consume_with_lz4_keys_and_headers() {
    let env = Env::new();
    create_topic(&env, "rd", 3);
    let producer: FutureProducer = env.config().set("compression.type", "lz4").set("acks", "all").create().unwrap();
    let n = 20_000;
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            let record = FutureRecord::to("rd")
                .key(&key)
                .payload(&value)
                .partition(i % 3)
                .timestamp(1_000_000 + i64::from(i))
                .headers(OwnedHeaders::new().insert(Header { key: "i", value: Some(&i.to_string()) }));
            producer.send_result(record).map_err(|(e, _)| e).unwrap()
        })
        .collect();
    for s in sends {
        env.rt.block_on(s).unwrap().unwrap();
    }

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
        assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
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
    assert_eq!(dup[0].as_ref().unwrap_err().1, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists);

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
