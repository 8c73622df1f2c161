//! Committed offsets survive the loss of their coordinator: three real broker processes on 127.0.0.1 (also the
//! controller quorum's voters), a librdkafka consumer group that commits offsets, the group's coordinator
//! killed with SIGKILL, and then the new coordinator (the new leader of the group's `__consumer_offsets`
//! partition, which the killed broker replicated before acknowledging the commit) answers the exact offsets,
//! and a consumer of the group resumes from them.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::process::BrokerProcess;
use common::{free_port, s, Client};
use kafka_protocol::messages::*;
use nix::sys::signal::Signal;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const BROKERS: usize = 3;
const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const PARTITIONS: i32 = 3;
const RECORDS_PER_PARTITION: i64 = 10;
/// What the group commits: partition -> next offset to read.
const COMMITTED: [i64; 3] = [4, 7, 10];

struct Node {
    addr: SocketAddr,
    process: Option<BrokerProcess>,
    log: PathBuf,
}

/// The brokers, killed (-9) when dropped, also when the test fails (their logs are then kept and printed).
struct Cluster {
    root: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
}

impl Cluster {
    fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        while ports.len() < 2 * BROKERS {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let (controller_ports, client_ports) = ports.split_at(BROKERS);
        let voters: Vec<String> = controller_ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{p}")).collect();
        let nodes = (0..BROKERS)
            .map(|id| {
                let args = [
                    ("--node.id", id.to_string()),
                    ("--cluster.id", "offsets".into()),
                    ("--controller.quorum.voters", voters.join(",")),
                    (
                        "--listeners",
                        format!("PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", client_ports[id], controller_ports[id]),
                    ),
                    ("--controller.quorum.election.timeout.ms", "500".into()),
                    ("--broker.heartbeat.interval.ms", "250".into()),
                    ("--broker.session.timeout.ms", "3000".into()),
                    ("--override", "replica.fetch.wait.max.ms=100".into()),
                    ("--override", "offsets.topic.num.partitions=6".into()),
                    ("--override", "group.initial.rebalance.delay.ms=0".into()),
                ];
                let args: Vec<String> = args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect();
                let (dir, log) = (root.path().join(format!("data{id}")), root.path().join(format!("broker{id}.log")));
                Node {
                    addr: SocketAddr::from(([127, 0, 0, 1], client_ports[id])),
                    process: Some(BrokerProcess::start(&dir, &log, &args, None)),
                    log,
                }
            })
            .collect();
        Cluster { root: Some(root), nodes }
    }

    fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(",")
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|id| self.nodes[*id].process.is_some())
    }

    fn kill(&mut self, id: usize) {
        self.nodes[id].process.take().unwrap().stop(Signal::SIGKILL);
    }

    /// A request to the first live broker that answers within 5 s.
    async fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Option<Resp> {
        for id in self.live() {
            let addr = self.nodes[id].addr;
            let call = async {
                let mut c = Client::connect(addr).await;
                c.call::<Req, Resp>(api, version, req).await
            };
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(5), call).await {
                return Some(r);
            }
        }
        None
    }

    /// Polls `f` every 100 ms until it returns Some, at most `timeout`.
    async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn() -> F,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The live broker FindCoordinator names for the group.
    async fn coordinator(&self) -> Option<i32> {
        let req = FindCoordinatorRequest::default().with_key(s(GROUP));
        let r: FindCoordinatorResponse = self.call(ApiKey::FindCoordinator, 3, &req).await?;
        (r.error_code == 0 && self.live().any(|id| id as i32 == r.node_id.0)).then_some(r.node_id.0)
    }

    /// The group's committed offsets as broker `id` answers them (None on a retriable error).
    async fn committed(&self, id: i32) -> Option<BTreeMap<i32, i64>> {
        let req = OffsetFetchRequest::default().with_group_id(GroupId(s(GROUP))).with_topics(None);
        let mut c = Client::connect(self.nodes[id as usize].addr).await;
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).await;
        (r.error_code == 0)
            .then(|| r.topics.iter().flat_map(|t| &t.partitions).map(|p| (p.partition_index, p.committed_offset)).collect())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.process = None;
        }
        if std::thread::panicking() {
            for (id, n) in self.nodes.iter().enumerate() {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("== broker {id} (last lines)\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            if let Some(root) = self.root.take() {
                eprintln!("broker logs and data kept in {}", root.keep().display());
            }
        }
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

/// Polls until `want` records arrived (partition, offset of each), at most `timeout`.
fn poll(consumer: &BaseConsumer, want: usize, timeout: Duration) -> Vec<(i32, i64)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push((m.partition(), m.offset()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_killed_coordinator() {
    let mut cluster = Cluster::start();
    let c = &cluster;
    c.wait_for("every broker is in service", Duration::from_secs(30), || async {
        let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await?;
        (md.brokers.len() == BROKERS).then_some(())
    })
    .await;
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s(TOPIC)))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(3);
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![topic]);
    let created: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await.unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", c.bootstrap()).set("acks", "all").create().unwrap();
    for p in 0..PARTITIONS {
        for i in 0..RECORDS_PER_PARTITION {
            let value = format!("{p}-{i}");
            let record = FutureRecord::<(), _>::to(TOPIC).partition(p).payload(&value);
            producer.send(record, Duration::from_secs(20)).await.unwrap();
        }
    }

    // The group consumes everything, then commits where it wants to resume (acknowledged once replicated).
    let bootstrap = c.bootstrap();
    let first = tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap);
        let read = poll(&consumer, (PARTITIONS as i64 * RECORDS_PER_PARTITION) as usize, Duration::from_secs(60));
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in COMMITTED.iter().enumerate() {
            tpl.add_partition_offset(TOPIC, p as i32, Offset::Offset(*offset)).unwrap();
        }
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
        read.len()
    })
    .await
    .unwrap();
    assert_eq!(first, (PARTITIONS as i64 * RECORDS_PER_PARTITION) as usize, "the first consumer read everything");
    let want: BTreeMap<i32, i64> = COMMITTED.iter().enumerate().map(|(p, o)| (p as i32, *o)).collect();
    let coordinator = c.wait_for("a coordinator", Duration::from_secs(10), || c.coordinator()).await;
    assert_eq!(c.committed(coordinator).await, Some(want.clone()));

    // The coordinator dies; a follower of the group's offsets partition takes over with the commits.
    cluster.kill(coordinator as usize);
    let c = &cluster;
    let killed_at = Instant::now();
    let successor = c.wait_for("a new coordinator", Duration::from_secs(30), || c.coordinator()).await;
    assert_ne!(successor, coordinator);
    let offsets = c.wait_for("the new coordinator's offsets", Duration::from_secs(30), || c.committed(successor)).await;
    assert_eq!(offsets, want, "exactly the committed offsets, from broker {successor}");
    eprintln!("broker {successor} coordinates the group {:?} after the kill", killed_at.elapsed());

    // A consumer of the group resumes from them.
    let bootstrap = c.bootstrap();
    let resumed = tokio::task::spawn_blocking(move || {
        let consumer = consumer(&bootstrap);
        let want = COMMITTED.iter().map(|o| (RECORDS_PER_PARTITION - o) as usize).sum();
        poll(&consumer, want, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &resumed {
        firsts.entry(*p).or_insert(*o);
    }
    let expected_firsts: BTreeMap<i32, i64> =
        want.iter().filter(|(_, o)| **o < RECORDS_PER_PARTITION).map(|(p, o)| (*p, *o)).collect();
    assert_eq!(firsts, expected_firsts, "the consumer resumed at the committed offsets: {resumed:?}");
    assert_eq!(resumed.len(), COMMITTED.iter().map(|o| (RECORDS_PER_PARTITION - o) as usize).sum::<usize>());
}
