//! Partition replication under faults, with real processes on 127.0.0.1: three brokers that are also the
//! controller quorum's voters, a topic of three partitions with three replicas each and min.insync.replicas=2,
//! and an idempotent acks=all producer (librdkafka) writing numbered records to every partition while the
//! leader of one is killed (-9) and restarted, paused (SIGSTOP) past the session timeout and resumed (a zombie
//! leader), or cut off from the other brokers by firewall rules while clients still reach it; while the active
//! controller is killed (-9) and restarted; or while every broker is restarted gracefully in turn (controlled
//! shutdown: no record may fail). Brokers run as users of their own, so that iptables can match their packets
//! by owner: the tests need root and iptables (as CI runs them). After each trial the cluster heals until
//! every partition has its three replicas in sync, and the checker reads everything back: every acknowledged
//! record once, at its acknowledged offset, in the order sent, and the replicas byte-identical below the high
//! watermark. A control run shows that the checker catches loss: an unclean leader election after the only
//! in-sync replica died loses acknowledged records. A reassignment moves a partition to a fourth broker under
//! the same producer and checker, across a restart of the active controller.
//!
//! The fault choices come from a seed: STRATA_FAULT_SEED replays a run (unset: from the clock; printed either
//! way). bench/replication_soak.sh runs these tests over many seeds.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::BrokerProcess;
use common::{free_port, s, Client};
use kafka_protocol::messages::*;
use nix::sys::signal::Signal;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use strata_client::admin::Reassignment;
use strata_storage::test_util::TinyFs;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const VOTERS: usize = 3;
const SESSION_MS: u64 = 3000;
const REPLICA_LAG_MS: u64 = 3000;
const PARTITIONS: i32 = 3;
const TOPIC: &str = "replicated";
/// How long the cluster may take to have every replica in sync again once a fault is healed.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Each test runs its own cluster: two at once on two cores could fence brokers through load alone.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------------------
// The checker: pure, so that its own tests can show it catches each kind of damage.

/// One acknowledged record: the id the producer sent and where its delivery report placed it (offset -1: the
/// report gave none).
#[derive(Clone, Debug)]
struct Ack {
    id: String,
    partition: i32,
    offset: i64,
}

/// What the cluster holds once healed.
#[derive(Clone, Debug, Default)]
struct Observed {
    /// Per partition, the records read from the beginning to the high watermark: (offset, value).
    read: BTreeMap<i32, Vec<(i64, String)>>,
    high_watermarks: BTreeMap<i32, i64>,
    /// Per partition, each replica's broker and its segment files concatenated in base-offset order.
    replicas: BTreeMap<i32, Vec<(i32, Vec<u8>)>>,
}

fn record_id(partition: i32, seq: u64) -> String {
    format!("p{partition}-{seq}")
}

fn parse_id(id: &str) -> Option<(i32, u64)> {
    let (partition, seq) = id.strip_prefix('p')?.split_once('-')?;
    Some((partition.parse().ok()?, seq.parse().ok()?))
}

/// A record batch (v2) in a log: its offsets and where its bytes are.
struct Batch {
    base: i64,
    last: i64,
    end: usize,
}

/// The whole v2 batches at the start of `log`, up to the first that is not one (a segment's unused tail).
/// Layout: baseOffset i64, batchLength i32 (bytes after it), partitionLeaderEpoch i32, magic i8, crc u32,
/// attributes i16, lastOffsetDelta i32, ... 61 bytes of header in all.
fn batches(log: &[u8]) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= log.len() {
        let h = &log[pos..];
        let base = i64::from_be_bytes(h[0..8].try_into().unwrap());
        let length = i32::from_be_bytes(h[8..12].try_into().unwrap());
        let end = pos + 12 + length.max(0) as usize;
        if length < 49 || h[16] != 2 || end > log.len() {
            break;
        }
        let delta = i32::from_be_bytes(h[23..27].try_into().unwrap());
        out.push(Batch { base, last: base + i64::from(delta), end });
        pos = end;
    }
    out
}

/// Every acknowledged record is read back exactly once, in its partition at the offset its acknowledgement
/// gave; no record appears twice; each partition holds its records in the order they were sent; and the
/// replicas of a partition hold byte-identical batches up to the high watermark. Returns what is wrong.
fn check(acked: &[Ack], o: &Observed) -> Result<(), String> {
    let mut seen: HashMap<&str, (i32, i64)> = HashMap::new();
    for (&partition, records) in &o.read {
        let mut previous: Option<(i64, u64, &str)> = None;
        for (offset, id) in records {
            if let Some((p, at)) = seen.insert(id, (partition, *offset)) {
                return Err(format!("duplicate: {id} at partition {p} offset {at} and partition {partition} offset {offset}"));
            }
            let Some((p, seq)) = parse_id(id) else {
                return Err(format!("partition {partition} offset {offset} holds {id:?}, which the producer never sent"));
            };
            if p != partition {
                return Err(format!("{id} was sent to partition {p} but is in partition {partition} at offset {offset}"));
            }
            if let Some((at, before, previous_id)) = previous {
                if *offset <= at || seq <= before {
                    return Err(format!(
                        "out of order in partition {partition}: {previous_id} at offset {at} precedes {id} at offset {offset}"
                    ));
                }
            }
            previous = Some((*offset, seq, id));
        }
    }
    let lost: Vec<&Ack> = acked.iter().filter(|a| !seen.contains_key(a.id.as_str())).collect();
    if let Some(first) = lost.first() {
        let mut per_partition = BTreeMap::new();
        for a in &lost {
            *per_partition.entry(a.partition).or_insert(0) += 1;
        }
        return Err(format!(
            "lost {} of {} acknowledged records (per partition: {per_partition:?}); the first: {} acknowledged at \
             partition {} offset {}",
            lost.len(),
            acked.len(),
            first.id,
            first.partition,
            first.offset
        ));
    }
    for a in acked {
        let (partition, offset) = seen[a.id.as_str()];
        if partition != a.partition || (a.offset >= 0 && offset != a.offset) {
            return Err(format!(
                "{} was acknowledged at partition {} offset {} but read at partition {partition} offset {offset}",
                a.id, a.partition, a.offset
            ));
        }
    }
    for (partition, copies) in &o.replicas {
        let hw = o.high_watermarks.get(partition).copied().unwrap_or(0);
        let mut first: Option<(i32, &[u8])> = None;
        for (broker, log) in copies {
            let below: Vec<Batch> = batches(log).into_iter().take_while(|b| b.last < hw).collect();
            let covered = below.last().map_or(0, |b| b.last + 1);
            if covered != hw {
                return Err(format!(
                    "the replica of partition {partition} on broker {broker} holds whole batches up to offset {covered}, \
                     not to the high watermark {hw}"
                ));
            }
            let prefix = &log[..below.last().map_or(0, |b| b.end)];
            match first {
                None => first = Some((*broker, prefix)),
                Some((other, expected)) if expected != prefix => {
                    let at = expected.iter().zip(prefix).position(|(a, b)| a != b).unwrap_or(expected.len().min(prefix.len()));
                    let batch = below.iter().find(|b| b.end > at).map_or(-1, |b| b.base);
                    return Err(format!(
                        "the replicas of partition {partition} on brokers {other} and {broker} differ below the high \
                         watermark {hw}: first at byte {at}, in the batch at offset {batch}"
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Seeded choices.

/// splitmix64: reproducible from the printed seed, which is all the fault choices need.
struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    /// STRATA_FAULT_SEED, or a seed from the clock; printed either way, so that a failing run can be replayed.
    fn from_env() -> Rng {
        let seed = match std::env::var("STRATA_FAULT_SEED") {
            Ok(v) => v.trim().parse().expect("STRATA_FAULT_SEED is a number"),
            Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64,
        };
        eprintln!("STRATA_FAULT_SEED={seed}");
        Rng { seed, state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn ms(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

// ---------------------------------------------------------------------------------------------------------
// The cluster.

struct Node {
    dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    addr: SocketAddr,
    process: Option<BrokerProcess>,
    paused: bool,
}

struct Cluster {
    /// Kept on disk when a test fails, for the brokers' logs.
    root: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
    /// Small filesystems some brokers' data directories moved to; unmounted once the brokers are gone.
    mounts: Vec<TinyFs>,
}

#[derive(Clone, Debug)]
struct PartitionView {
    leader: i32,
    isr: Vec<i32>,
    replicas: Vec<i32>,
}

/// The live brokers and a topic's partitions, as one broker describes them.
#[derive(Clone, Debug)]
struct View {
    live: BTreeSet<i32>,
    partitions: Vec<PartitionView>,
}

impl View {
    fn partition(&self, p: i32) -> Option<&PartitionView> {
        self.partitions.get(p as usize)
    }

    /// Every broker in service, and every partition of `topic` led by a live broker with all its replicas in sync.
    fn in_sync(&self, brokers: usize, partitions: usize) -> bool {
        self.live.len() == brokers
            && self.partitions.len() == partitions
            && self.partitions.iter().all(|p| {
                let (mut isr, mut replicas) = (p.isr.clone(), p.replicas.clone());
                isr.sort_unstable();
                replicas.sort_unstable();
                self.live.contains(&p.leader) && !replicas.is_empty() && isr == replicas
            })
    }
}

/// `n` ports that were free a moment ago, all different.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// Broker `id`'s own loopback address, for broker-to-broker traffic only: clients use 127.0.0.1, so a
/// network cut between brokers (firewall rules on these addresses) leaves clients connected.
fn broker_ip(id: usize) -> String {
    format!("127.0.0.{}", 11 + id)
}

/// The user broker `id` runs as: firewall rules match its packets by owner (every connection on loopback
/// has source address 127.0.0.1, so the source cannot tell brokers apart).
fn broker_uid(id: usize) -> u32 {
    47_000 + id as u32
}

impl Cluster {
    /// Nodes 0..3 are broker,controller voters, the others brokers only. Every listener has a fixed port, so
    /// that a restarted broker is where clients knew it. Clients connect to PLAINTEXT on 127.0.0.1; brokers
    /// replicate over REPLICATION and run the quorum over CONTROLLER, both on the broker's own address.
    fn start(nodes: usize) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        // The brokers run as other users: they must reach their data directories.
        std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let ports = free_ports(VOTERS + 2 * nodes);
        let (controller_ports, rest) = ports.split_at(VOTERS);
        let (client_ports, replication_ports) = rest.split_at(nodes);
        let voters: Vec<String> = controller_ports.iter().enumerate().map(|(i, p)| format!("{i}@{}:{p}", broker_ip(i))).collect();
        let nodes = (0..nodes)
            .map(|id| {
                let voter = id < VOTERS;
                let mut listeners = format!(
                    "PLAINTEXT://127.0.0.1:{},REPLICATION://{}:{}",
                    client_ports[id],
                    broker_ip(id),
                    replication_ports[id]
                );
                if voter {
                    listeners += &format!(",CONTROLLER://{}:{}", broker_ip(id), controller_ports[id]);
                }
                let args = [
                    ("--node.id", id.to_string()),
                    ("--cluster.id", "replication".into()),
                    ("--process.roles", if voter { "broker,controller" } else { "broker" }.into()),
                    ("--controller.quorum.voters", voters.join(",")),
                    ("--listeners", listeners),
                    ("--inter.broker.listener.name", "REPLICATION".into()),
                    ("--controller.quorum.election.timeout.ms", "500".into()),
                    ("--broker.heartbeat.interval.ms", "250".into()),
                    ("--broker.session.timeout.ms", SESSION_MS.to_string()),
                    ("--override", format!("replica.lag.time.max.ms={REPLICA_LAG_MS}")),
                    ("--override", "replica.fetch.wait.max.ms=200".into()),
                ];
                let dir = root.path().join(format!("data{id}"));
                std::fs::create_dir(&dir).unwrap();
                let uid = nix::unistd::Uid::from_raw(broker_uid(id));
                nix::unistd::chown(&dir, Some(uid), Some(nix::unistd::Gid::from_raw(broker_uid(id)))).unwrap();
                Node {
                    dir,
                    log: root.path().join(format!("broker{id}.log")),
                    args: args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect(),
                    addr: SocketAddr::from(([127, 0, 0, 1], client_ports[id])),
                    process: None,
                    paused: false,
                }
            })
            .collect();
        let mut c = Cluster { root: Some(root), nodes, mounts: Vec::new() };
        for id in 0..c.nodes.len() {
            c.start_node(id);
        }
        c
    }

    /// Restarts broker `id` (gracefully) with its data directory moved to a tmpfs of `size`; returns the
    /// tmpfs's index in `mounts`.
    async fn move_to_tmpfs(&mut self, id: usize, size: &str) -> usize {
        let status = self.terminate(id).await;
        assert!(status.success(), "broker {id} exited with {status}");
        let fs = TinyFs::mount(size);
        let (uid, gid) = (nix::unistd::Uid::from_raw(broker_uid(id)), nix::unistd::Gid::from_raw(broker_uid(id)));
        nix::unistd::chown(fs.path(), Some(uid), Some(gid)).unwrap();
        let copy = std::process::Command::new("cp").arg("-a").arg(self.nodes[id].dir.join(".")).arg(fs.path()).status().unwrap();
        assert!(copy.success(), "copying broker {id}'s data directory");
        self.nodes[id].dir = fs.path().to_path_buf();
        self.mounts.push(fs);
        self.start_node(id);
        self.mounts.len() - 1
    }

    fn start_node(&mut self, id: usize) {
        let n = &mut self.nodes[id];
        n.process = Some(BrokerProcess::start_as(&n.dir, &n.log, &n.args, broker_uid(id)));
        n.paused = false;
    }

    fn process(&self, id: usize) -> &BrokerProcess {
        self.nodes[id].process.as_ref().unwrap()
    }

    fn kill(&mut self, id: usize) {
        self.nodes[id].process.take().unwrap().stop(Signal::SIGKILL);
    }

    fn pause(&mut self, id: usize) {
        self.process(id).signal(Signal::SIGSTOP);
        self.nodes[id].paused = true;
    }

    fn resume(&mut self, id: usize) {
        self.process(id).signal(Signal::SIGCONT);
        self.nodes[id].paused = false;
    }

    /// Graceful shutdown (SIGTERM); a broker that has not exited within 60 s is killed and the test fails.
    async fn terminate(&mut self, id: usize) -> std::process::ExitStatus {
        let process = self.nodes[id].process.take().unwrap();
        let pid = process.pid();
        let exit = tokio::task::spawn_blocking(move || process.stop(Signal::SIGTERM));
        match tokio::time::timeout(Duration::from_secs(60), exit).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                panic!("broker {id} did not exit within 60 s of SIGTERM\n{}", self.diagnosis());
            }
        }
    }

    /// Whether broker `id`'s process ended by itself (its exit status is logged).
    fn exited(&mut self, id: usize) -> bool {
        let Some(p) = self.nodes[id].process.as_mut() else { return false };
        match p.try_wait() {
            Some(status) => {
                eprintln!("broker {id} exited by itself: {status}");
                self.nodes[id].process = None;
                true
            }
            None => false,
        }
    }

    /// The nodes that run and are not paused.
    fn serving(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|id| self.nodes[*id].process.is_some() && !self.nodes[*id].paused).collect()
    }

    fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(",")
    }

    /// `topic` as each serving broker that answers describes it (no partitions if it has no such topic).
    async fn views(&self, topic: &str) -> Vec<View> {
        let mut out = Vec::new();
        for id in self.serving() {
            let Some(md) = metadata(self.nodes[id].addr).await else { continue };
            let mut partitions: Vec<(i32, PartitionView)> = md
                .topics
                .iter()
                .filter(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
                .flat_map(|t| &t.partitions)
                .map(|p| {
                    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
                    (
                        p.partition_index,
                        PartitionView { leader: p.leader_id.0, isr: ids(&p.isr_nodes), replicas: ids(&p.replica_nodes) },
                    )
                })
                .collect();
            partitions.sort_by_key(|(i, _)| *i);
            let live = md.brokers.iter().map(|b| b.node_id.0).collect();
            out.push(View { live, partitions: partitions.into_iter().map(|(_, p)| p).collect() });
        }
        out
    }

    /// Waits until every serving broker that answers describes `topic` so that `done` holds (a broker that
    /// restarted may still describe an older state); returns the first one's view.
    async fn wait_until(&self, what: &str, timeout: Duration, topic: &str, done: impl Fn(&View) -> bool) -> View {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            let views = self.views(topic).await;
            if !views.is_empty() && views.iter().all(&done) {
                return views.into_iter().next().unwrap();
            }
            if !views.is_empty() {
                last = Some(views);
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting until {what}; last views: {last:?}\n{}", self.diagnosis());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Each broker's warnings and errors (the last few), for failure messages.
    fn diagnosis(&self) -> String {
        let mut out = String::new();
        for (id, n) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> =
                text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked")).collect();
            out += &format!("== broker {id}: {} warnings and errors; the last ones:\n", lines.len());
            for l in &lines[lines.len().saturating_sub(12)..] {
                out += &format!("{l}\n");
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // BrokerProcess kills its process (-9, paused or not) when dropped.
        for n in &mut self.nodes {
            n.process = None;
        }
        self.mounts.clear();
        if std::thread::panicking() {
            if let Some(root) = self.root.take() {
                eprintln!("broker logs and data kept in {}", root.keep().display());
            }
        }
    }
}

/// Metadata of every topic from one broker; None if it does not answer within 3 s.
async fn metadata(addr: SocketAddr) -> Option<MetadataResponse> {
    let call = async move {
        let mut c = Client::from_stream(TcpStream::connect(addr).await.ok()?);
        let req = c.encode(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
        c.stream.write_all(&req).await.ok()?;
        let frame = c.read_frame().await?;
        Some(Client::decode::<MetadataResponse>(ApiKey::Metadata, 12, frame).1)
    };
    tokio::time::timeout(Duration::from_secs(3), call).await.ok().flatten()
}

/// A network cut between broker `isolated` and the others (both directions: each side's packets to the
/// other's broker address are dropped), while clients on 127.0.0.1 still reach every broker. Healed (the
/// rules deleted) when dropped, also when the test fails.
struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    fn isolate(isolated: usize, brokers: usize) -> Cut {
        let mut cut = Cut { rules: Vec::new() };
        for other in (0..brokers).filter(|b| *b != isolated) {
            for (from, to) in [(isolated, other), (other, isolated)] {
                let rule: Vec<String> =
                    ["OUTPUT", "-m", "owner", "--uid-owner", &broker_uid(from).to_string(), "-d", &broker_ip(to), "-j", "DROP"]
                        .iter()
                        .map(|a| a.to_string())
                        .collect();
                iptables("-A", &rule);
                cut.rules.push(rule);
            }
        }
        cut
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for rule in self.rules.drain(..) {
            iptables("-D", &rule);
        }
    }
}

fn iptables(op: &str, rule: &[String]) {
    let out = std::process::Command::new("iptables")
        .arg(op)
        .args(rule)
        .output()
        .expect("iptables (the test needs root and iptables; scripts/test.sh installs it)");
    assert!(out.status.success(), "iptables {op} {rule:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The active controller as the first serving broker that answers DescribeQuorum names it.
async fn active_controller(c: &Cluster) -> Option<usize> {
    for id in c.serving() {
        let call = async {
            let mut client = Client::from_stream(TcpStream::connect(c.nodes[id].addr).await.ok()?);
            let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(s("__cluster_metadata")))
                .with_partitions(vec![describe_quorum_request::PartitionData::default()])]);
            let bytes = client.encode(ApiKey::DescribeQuorum, 1, &req);
            client.stream.write_all(&bytes).await.ok()?;
            let frame = client.read_frame().await?;
            let resp = Client::decode::<DescribeQuorumResponse>(ApiKey::DescribeQuorum, 1, frame).1;
            let leader = resp.topics.first()?.partitions.first()?.leader_id.0;
            usize::try_from(leader).ok()
        };
        if let Ok(Some(leader)) = tokio::time::timeout(Duration::from_secs(3), call).await {
            return Some(leader);
        }
    }
    None
}

/// Creates `topic` through the first serving broker: `partitions` partitions of three replicas, or the
/// replicas of `assignment` (one list per partition).
async fn create_topic(c: &Cluster, topic: &str, partitions: i32, assignment: &[Vec<i32>], configs: &[(&str, &str)]) {
    let mut t = create_topics_request::CreatableTopic::default().with_name(TopicName(s(topic))).with_configs(
        configs
            .iter()
            .map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
            .collect(),
    );
    t = match assignment {
        [] => t.with_num_partitions(partitions).with_replication_factor(3),
        a => t.with_num_partitions(-1).with_replication_factor(-1).with_assignments(
            a.iter()
                .enumerate()
                .map(|(i, brokers)| {
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(i as i32)
                        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                })
                .collect(),
        ),
    };
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![t]);
    let resp: CreateTopicsResponse = c.process(c.serving()[0]).client().await.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "creating {topic}: {:?}", resp.topics[0].error_message);
}

// ---------------------------------------------------------------------------------------------------------
// The producer and the reader.

/// One record sent and what became of it: its offset, or why it was not acknowledged.
struct Outcome {
    partition: i32,
    seq: u64,
    sent: Instant,
    done: Instant,
    offset: Result<i64, String>,
}

/// An idempotent acks=all producer sending record ids to every partition in turn, every 10 ms, until it is
/// finished; every delivery report is kept.
struct Producing {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<u64>>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    producer: FutureProducer,
}

impl Producing {
    /// `next`: the next sequence number of each partition.
    fn start(bootstrap: &str, topic: &str, next: Vec<u64>) -> Producing {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Long enough to ride out any fault of a trial: what times out counts as unacknowledged, not lost.
            .set("message.timeout.ms", "60000")
            // Longer than a paused leader stays paused, so that its held requests are still waiting when it resumes.
            .set("request.timeout.ms", "10000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(send_loop(producer.clone(), topic.to_string(), next, stop.clone(), outcomes.clone()));
        Producing { stop, task, outcomes, producer }
    }

    /// Stops sending and waits for every delivery report. Returns them, the next sequence number of each
    /// partition, and the producer's fatal error if it had one.
    async fn finish(self) -> (Vec<Outcome>, Vec<u64>, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let next = self.task.await.unwrap();
        let fatal = self.producer.client().fatal_error().map(|(code, reason)| format!("{code:?}: {reason}"));
        let outcomes = std::mem::take(&mut *self.outcomes.lock().unwrap());
        (outcomes, next, fatal)
    }
}

async fn send_loop(
    producer: FutureProducer,
    topic: String,
    mut next: Vec<u64>,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
) -> Vec<u64> {
    let mut deliveries = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        for (partition, seq) in next.iter_mut().enumerate() {
            let partition = partition as i32;
            let id = record_id(partition, *seq);
            let sent = Instant::now();
            let delivery = loop {
                match producer.send_result(FutureRecord::<(), str>::to(&topic).partition(partition).payload(&id)) {
                    Ok(d) => break Ok(d),
                    // Records pile up while a partition has no leader: wait for room, keeping the order.
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err((e, _)) => break Err(e.to_string()),
                }
            };
            let (seq_sent, outcomes) = (*seq, outcomes.clone());
            deliveries.push(tokio::spawn(async move {
                let offset = match delivery {
                    Ok(d) => match d.await {
                        Ok(Ok(d)) => Ok(d.offset),
                        Ok(Err((e, _))) => Err(e.to_string()),
                        Err(_) => Err("delivery report dropped".to_string()),
                    },
                    Err(e) => Err(e),
                };
                outcomes.lock().unwrap().push(Outcome { partition, seq: seq_sent, sent, done: Instant::now(), offset });
            }));
            *seq += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for d in deliveries {
        d.await.unwrap();
    }
    next
}

/// Every record of `topic` from the beginning to the high watermark (librdkafka's consumer, from the leaders),
/// and the high watermarks.
fn read_back(bootstrap: &str, topic: &str, partitions: i32) -> Result<Observed, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-checker")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| e.to_string())?;
    let mut o = Observed::default();
    for p in 0..partitions {
        let mut attempts = 0;
        let (_, high) = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                Ok(w) => break w,
                Err(e) if attempts == 10 => return Err(format!("no high watermark for partition {p}: {e}")),
                Err(_) => attempts += 1,
            }
        };
        o.high_watermarks.insert(p, high);
        o.read.insert(p, Vec::new());
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !o.high_watermarks.iter().all(|(p, hw)| o.read[p].last().map_or(0, |(offset, _)| offset + 1) >= *hw) {
        if Instant::now() > deadline {
            let counts: BTreeMap<i32, usize> = o.read.iter().map(|(p, r)| (*p, r.len())).collect();
            return Err(format!("reading back timed out: read {counts:?} below the high watermarks {:?}", o.high_watermarks));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                o.read.get_mut(&m.partition()).unwrap().push((m.offset(), value));
            }
            // The consumer retries by itself; this only tells what it met.
            Some(Err(e)) => eprintln!("checker's consumer: {e}"),
            None => {}
        }
    }
    Ok(o)
}

/// A replica's copy of a partition: its segment files in base-offset order (the names are zero-padded base
/// offsets), each up to its last whole batch.
fn replica_log(data: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(data.join(format!("{topic}-{partition}")))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "log")).collect())
        .unwrap_or_default();
    segments.sort();
    let mut out = Vec::new();
    for path in segments {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let end = batches(&bytes).last().map_or(0, |b| b.end);
        out.extend_from_slice(&bytes[..end]);
    }
    out
}

/// What the cluster holds: read back through the leaders, and the logs of each partition's replicas on the
/// brokers `replicas` lists for it.
async fn observe(c: &Cluster, topic: &str, replicas: &[Vec<i32>]) -> Result<Observed, String> {
    let (bootstrap, name, partitions) = (c.bootstrap(), topic.to_string(), replicas.len() as i32);
    let mut o = tokio::task::spawn_blocking(move || read_back(&bootstrap, &name, partitions)).await.unwrap()?;
    for (p, brokers) in (0..).zip(replicas) {
        let copies = brokers.iter().map(|id| (*id, replica_log(&c.nodes[*id as usize].dir, topic, p))).collect();
        o.replicas.insert(p, copies);
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------------------
// Trials on three brokers.

/// A cluster of three brokers with one topic, and what all trials so far acknowledged.
struct Trials {
    cluster: Cluster,
    rng: Rng,
    acked: Vec<Ack>,
    next: Vec<u64>,
    trials: usize,
    failovers: Vec<Duration>,
    /// Records not acknowledged, by the error their delivery report gave.
    unacknowledged: BTreeMap<String, usize>,
    started: Instant,
}

impl Trials {
    async fn start() -> Trials {
        let started = Instant::now();
        let rng = Rng::from_env();
        let cluster = Cluster::start(VOTERS);
        cluster.wait_until("all three brokers are in service", Duration::from_secs(60), "", |v| v.live.len() == VOTERS).await;
        create_topic(&cluster, TOPIC, PARTITIONS, &[], &[("min.insync.replicas", "2")]).await;
        cluster.wait_until("the topic is in sync", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize)).await;
        Trials {
            cluster,
            rng,
            acked: Vec::new(),
            next: vec![0; PARTITIONS as usize],
            trials: 0,
            failovers: Vec::new(),
            unacknowledged: BTreeMap::new(),
            started,
        }
    }

    fn produce(&self) -> Producing {
        Producing::start(&self.cluster.bootstrap(), TOPIC, self.next.clone())
    }

    /// A random partition and its leader.
    async fn pick_partition(&mut self) -> (i32, usize) {
        let p = self.rng.below(PARTITIONS as u64) as i32;
        let v = self
            .cluster
            .wait_until("the topic is in sync", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize))
            .await;
        (p, v.partitions[p as usize].leader as usize)
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n(replay with STRATA_FAULT_SEED={})\n{}", self.rng.seed, self.cluster.diagnosis())
    }

    /// Heals (waits until every replica is in sync), produces a little longer, stops the producer and checks
    /// everything acknowledged so far. `faults`: each affected partition and when its fault began, for the
    /// failover time (from the fault to the first acknowledgement of a record sent after it).
    async fn finish_trial(&mut self, what: &str, producing: Producing, faults: &[(i32, Instant)]) {
        let healing = Instant::now();
        let healed_view = self
            .cluster
            .wait_until("every replica is in sync again", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize))
            .await;
        let healed = healing.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (outcomes, next, fatal) = producing.finish().await;
        self.next = next;
        if let Some(f) = fatal {
            self.fail(&format!("{what}: the idempotent producer failed fatally: {f}"));
        }
        let mut failovers = Vec::new();
        for (partition, at) in faults {
            let first =
                outcomes.iter().filter(|o| o.partition == *partition && o.sent > *at && o.offset.is_ok()).map(|o| o.done).min();
            match first {
                Some(first) => failovers.push(first - *at),
                None => self.fail(&format!("{what}: partition {partition} acknowledged nothing sent after the fault")),
            }
        }
        let mut acked = 0;
        for o in &outcomes {
            match &o.offset {
                Ok(offset) => {
                    acked += 1;
                    self.acked.push(Ack { id: record_id(o.partition, o.seq), partition: o.partition, offset: *offset });
                }
                Err(e) => *self.unacknowledged.entry(e.clone()).or_default() += 1,
            }
        }
        self.trials += 1;
        eprintln!(
            "trial {}: {what}: {acked} of {} records acknowledged; in sync again {healed:?} after healing; failover {failovers:?}",
            self.trials,
            outcomes.len()
        );
        self.failovers.extend(failovers);
        let replicas: Vec<Vec<i32>> = healed_view.partitions.iter().map(|p| p.replicas.clone()).collect();
        match observe(&self.cluster, TOPIC, &replicas).await {
            Ok(o) => {
                if let Err(e) = check(&self.acked, &o) {
                    self.fail(&format!("after trial {} ({what}): {e}", self.trials));
                }
            }
            Err(e) => self.fail(&format!("after trial {} ({what}): {e}", self.trials)),
        }
    }

    fn summary(&self, name: &str) {
        let mut failovers = self.failovers.clone();
        failovers.sort();
        eprintln!(
            "{name}: {} trials in {:?}: {} records acknowledged and read back, unacknowledged: {:?}; {} failovers, \
             from the fault to the next acknowledgement on the partition: min {:?}, median {:?}, max {:?}",
            self.trials,
            self.started.elapsed(),
            self.acked.len(),
            self.unacknowledged,
            failovers.len(),
            failovers.first(),
            failovers.get(failovers.len() / 2),
            failovers.last()
        );
        assert!(!self.cluster.diagnosis().contains("panicked"), "a broker panicked:\n{}", self.cluster.diagnosis());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_killed_leader() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    for _ in 0..3 {
        let (p, leader) = t.pick_partition().await;
        let producing = t.produce();
        tokio::time::sleep(t.rng.ms(1000, 3000)).await;
        let fault = Instant::now();
        t.cluster.kill(leader);
        // Sometimes back before the session timeout fences it, sometimes well after.
        let down = t.rng.ms(500, 2 * SESSION_MS);
        tokio::time::sleep(down).await;
        t.cluster.start_node(leader);
        let what = format!("kill -9 of broker {leader} (leader of partition {p}), restarted after {down:?}");
        t.finish_trial(&what, producing, &[(p, fault)]).await;
    }
    t.summary("killed leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_killed_active_controller() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    for _ in 0..2 {
        let v =
            t.cluster.wait_until("the topic is in sync", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize)).await;
        let Some(controller) = active_controller(&t.cluster).await else { t.fail("no broker names an active controller") };
        let producing = t.produce();
        tokio::time::sleep(t.rng.ms(1000, 3000)).await;
        let fault = Instant::now();
        t.cluster.kill(controller);
        // The quorum elects another controller, which then fences the killed broker and moves its leaderships.
        let down = t.rng.ms(500, 2 * SESSION_MS);
        tokio::time::sleep(down).await;
        t.cluster.start_node(controller);
        let led: Vec<(i32, Instant)> =
            (0..PARTITIONS).filter(|p| v.partitions[*p as usize].leader == controller as i32).map(|p| (p, fault)).collect();
        let partitions: Vec<i32> = led.iter().map(|(p, _)| *p).collect();
        let what =
            format!("kill -9 of the active controller, broker {controller} (leader of {partitions:?}), restarted after {down:?}");
        t.finish_trial(&what, producing, &led).await;
    }
    t.summary("killed active controller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_zombie_leader_loses_no_acknowledged_records() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    for _ in 0..3 {
        let (p, leader) = t.pick_partition().await;
        let producing = t.produce();
        tokio::time::sleep(t.rng.ms(1000, 3000)).await;
        let fault = Instant::now();
        t.cluster.pause(leader);
        // Past the session timeout, the controller fences the paused broker and another replica leads; it
        // resumes still believing it leads, with the producer's requests waiting in its sockets.
        let replaced = format!("partition {p} has a leader other than the paused broker {leader}");
        t.cluster
            .wait_until(&replaced, Duration::from_secs(30), TOPIC, |v| {
                v.partition(p).is_some_and(|p| p.leader >= 0 && p.leader != leader as i32)
            })
            .await;
        tokio::time::sleep(t.rng.ms(0, 2000)).await;
        let paused = fault.elapsed();
        t.cluster.resume(leader);
        let what = format!("SIGSTOP of broker {leader} (leader of partition {p}) for {paused:?}");
        t.finish_trial(&what, producing, &[(p, fault)]).await;
    }
    t.summary("paused leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_other_brokers_loses_no_acknowledged_records() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    for _ in 0..2 {
        let (p, leader) = t.pick_partition().await;
        let producing = t.produce();
        tokio::time::sleep(t.rng.ms(1000, 3000)).await;
        let fault = Instant::now();
        let cut = Cut::isolate(leader, VOTERS);
        // The others elect a new leader once the controller fenced the cut-off broker (or, if it was the
        // active controller, once they elected a new controller); it still believes it leads, and clients still
        // reach it.
        let others: Vec<usize> = (0..VOTERS).filter(|b| *b != leader).collect();
        let replaced = format!("partition {p} has a leader other than the cut-off broker {leader}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut views = Vec::new();
            for b in &others {
                if let Some(md) = metadata(t.cluster.nodes[*b].addr).await {
                    views.push(md);
                }
            }
            let led_elsewhere = views.iter().any(|md| {
                md.topics.iter().filter(|tp| tp.name.as_ref().is_some_and(|n| n.as_str() == TOPIC)).any(|tp| {
                    tp.partitions.iter().any(|x| x.partition_index == p && x.leader_id.0 >= 0 && x.leader_id.0 != leader as i32)
                })
            });
            if led_elsewhere {
                break;
            }
            if Instant::now() > deadline {
                t.fail(&format!("timed out waiting until {replaced}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(t.rng.ms(0, 2000)).await;
        let cut_for = fault.elapsed();
        drop(cut);
        let what = format!("network cut of broker {leader} (leader of partition {p}) from the others for {cut_for:?}");
        t.finish_trial(&what, producing, &[(p, fault)]).await;
    }
    t.summary("cut-off leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_full_disk_leaves_the_isr_and_catches_up_after() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    let (p, leader) = t.pick_partition().await;
    let follower = (0..VOTERS).find(|b| *b != leader).unwrap();
    let fs = t.cluster.move_to_tmpfs(follower, "64m").await;
    for _ in 0..2 {
        t.pick_partition().await;
        let producing = t.produce();
        tokio::time::sleep(t.rng.ms(1000, 2000)).await;
        let filler = t.cluster.mounts[fs].fill();
        // The follower cannot append (its fetcher retries), the leaders shrink their ISRs, and acks=all goes on
        // with the two others (min.insync.replicas=2). Once its metadata log cannot be written either, the
        // broker exits rather than serve stale metadata (as Kafka halts when its metadata log dir fails).
        let out = format!("broker {follower} left the ISR of every partition");
        t.cluster
            .wait_until(&out, Duration::from_secs(30), TOPIC, |v| {
                v.partitions.iter().all(|p| !p.isr.contains(&(follower as i32)))
            })
            .await;
        tokio::time::sleep(t.rng.ms(1000, 3000)).await;
        std::fs::remove_file(filler).unwrap();
        if t.cluster.exited(follower) {
            t.cluster.start_node(follower);
        }
        let what = format!("full disk on broker {follower} (a follower of partition {p}) until it left the ISR");
        t.finish_trial(&what, producing, &[]).await;
    }
    t.summary("full disk on a follower");
    assert!(t.unacknowledged.is_empty(), "records failed while a follower's disk was full: {:?}", t.unacknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_rolling_restarts() {
    let _serial = SERIAL.lock().await;
    let mut t = Trials::start().await;
    for _ in 0..2 {
        let mut order: Vec<usize> = (0..VOTERS).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, t.rng.below(i as u64 + 1) as usize);
        }
        let producing = t.produce();
        let mut faults = Vec::new();
        for &id in &order {
            tokio::time::sleep(t.rng.ms(1000, 2000)).await;
            let v = t
                .cluster
                .wait_until("the topic is in sync", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize))
                .await;
            let at = Instant::now();
            let status = t.cluster.terminate(id).await;
            if !status.success() {
                t.fail(&format!("broker {id} exited with {status} on SIGTERM"));
            }
            // Controlled shutdown: the leaderships moved before the listeners closed.
            let log = std::fs::read_to_string(&t.cluster.nodes[id].log).unwrap_or_default();
            let moved = log.lines().rev().find(|l| l.contains("controlled shutdown"));
            if !moved.is_some_and(|l| l.contains("moved this broker's leaderships away") && l.contains("leaderships=0")) {
                t.fail(&format!("broker {id} closed without a completed controlled shutdown: {moved:?}"));
            }
            t.cluster.start_node(id);
            faults.extend((0..PARTITIONS).filter(|p| v.partitions[*p as usize].leader == id as i32).map(|p| (p, at)));
            t.cluster
                .wait_until("every replica is in sync again", HEAL_TIMEOUT, TOPIC, |v| v.in_sync(VOTERS, PARTITIONS as usize))
                .await;
        }
        t.finish_trial(&format!("rolling restart (SIGTERM) of brokers {order:?}"), producing, &faults).await;
    }
    t.summary("rolling restart");
    // With RF=3 and min.insync=2, a rolling restart costs clients only retriable errors: every record sent
    // is acknowledged.
    assert!(t.unacknowledged.is_empty(), "records failed during a rolling restart: {:?}", t.unacknowledged);
}

// ---------------------------------------------------------------------------------------------------------
// Reassignment under load.

/// An admin client of the serving brokers.
async fn admin(c: &Cluster) -> strata_client::Client {
    let bootstrap = c.serving().iter().map(|id| c.nodes[*id].addr.to_string()).collect();
    let config = strata_client::ClientConfig {
        bootstrap,
        client_id: "reassigner".into(),
        timeout: Duration::from_secs(10),
        security: Default::default(),
    };
    strata_client::Client::connect(config).await.unwrap_or_else(|e| panic!("admin client: {e}\n{}", c.diagnosis()))
}

/// The reassignments in progress as a serving broker lists them (None: none answered).
async fn reassignments(c: &Cluster) -> Option<Vec<Reassignment>> {
    for id in c.serving() {
        let config = strata_client::ClientConfig {
            bootstrap: vec![c.nodes[id].addr.to_string()],
            client_id: "reassigner".into(),
            timeout: Duration::from_secs(3),
            security: Default::default(),
        };
        let Ok(mut client) = strata_client::Client::connect(config).await else { continue };
        if let Ok(listed) = client.any().list_partition_reassignments(None).await {
            return Some(listed);
        }
    }
    None
}

/// A partition of three replicas moves from brokers [0, 1, 2] to [1, 2, 3] while an idempotent acks=all producer
/// writes to it, and the active controller is killed (-9) and restarted meanwhile: the reassignment is in the
/// metadata log, so the next active controller completes it once broker 3 is in sync (broker 3 is paused
/// until then, so that the reassignment is seen in progress). Then every acknowledged record reads back, broker
/// 0 has deleted its copy, and broker 3's copy is byte-identical to the others' below the high watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassignment_moves_a_partition_under_load_across_a_controller_failover() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut c = Cluster::start(4);
    c.wait_until("all four brokers are in service", Duration::from_secs(60), "", |v| v.live.len() == 4).await;
    let topic = "moving";
    create_topic(&c, topic, 1, &[vec![0, 1, 2]], &[("min.insync.replicas", "2")]).await;
    c.wait_until("broker 0 leads, all in sync", HEAL_TIMEOUT, topic, |v| v.in_sync(4, 1) && v.partitions[0].leader == 0).await;
    let producing = Producing::start(&c.bootstrap(), topic, vec![0]);
    tokio::time::sleep(Duration::from_secs(2)).await;

    c.pause(3);
    let mut client = admin(&c).await;
    let target = [((topic.to_string(), 0), Some(vec![1, 2, 3]))];
    let outcomes = client.controller().await.unwrap().alter_partition_reassignments(&target).await.unwrap();
    assert!(outcomes.len() == 1 && outcomes[0].1.is_ok(), "{outcomes:?}\n{}", c.diagnosis());
    let moving =
        Reassignment { topic: topic.into(), partition: 0, replicas: vec![1, 2, 3, 0], adding: vec![3], removing: vec![0] };
    assert_eq!(client.any().list_partition_reassignments(None).await.unwrap(), vec![moving.clone()]);
    c.wait_until("Metadata lists the old and the new replicas", Duration::from_secs(10), topic, |v| {
        v.partitions[0].replicas == [1, 2, 3, 0]
    })
    .await;
    let quorum = client.any().describe_quorum().await.unwrap().expect("DescribeQuorum");
    let controller = quorum.leader_id as usize;
    drop(client);
    c.kill(controller);
    c.start_node(controller);
    assert_eq!(reassignments(&c).await, Some(vec![moving]), "after restarting the active controller {controller}");
    c.resume(3);

    let deadline = Instant::now() + HEAL_TIMEOUT;
    while reassignments(&c).await != Some(vec![]) {
        assert!(Instant::now() < deadline, "the reassignment did not complete\n{}", c.diagnosis());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = c
        .wait_until("brokers 1, 2, 3 hold the partition, all in sync", HEAL_TIMEOUT, topic, |v| {
            v.in_sync(4, 1) && v.partitions[0].replicas == [1, 2, 3]
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (outcomes, _, fatal) = producing.finish().await;
    assert_eq!(fatal, None, "the idempotent producer failed fatally\n{}", c.diagnosis());
    let acked: Vec<Ack> = outcomes
        .iter()
        .filter_map(|o| Some(Ack { id: record_id(o.partition, o.seq), partition: o.partition, offset: *o.offset.as_ref().ok()? }))
        .collect();
    assert!(!acked.is_empty());

    let copy = c.nodes[0].dir.join(format!("{topic}-0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while copy.exists() {
        assert!(Instant::now() < deadline, "broker 0 still holds {}\n{}", copy.display(), c.diagnosis());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = observe(&c, topic, &[vec![1, 2, 3]]).await.unwrap_or_else(|e| panic!("{e}\n{}", c.diagnosis()));
    if let Err(e) = check(&acked, &o) {
        panic!("{e}\n{}", c.diagnosis());
    }
    // DescribeLogDirs (through the shared client) says where the data is now.
    let mut client = admin(&c).await;
    let held_by = |sizes: Option<Vec<strata_client::admin::ReplicaSize>>| {
        sizes.expect("DescribeLogDirs").into_iter().find(|r| r.topic == topic && r.partition == 0).map(|r| r.bytes)
    };
    assert_eq!(held_by(client.broker(0).await.unwrap().describe_log_dirs().await.unwrap()), None);
    let on_3 = held_by(client.broker(3).await.unwrap().describe_log_dirs().await.unwrap());
    assert!(on_3.is_some_and(|b| b as usize >= o.replicas[&0][2].1.len()), "{on_3:?}");
    eprintln!(
        "reassignment of {topic}-0 [0, 1, 2] -> [1, 2, 3] across a restart of controller {controller}: {} of {} records \
         acknowledged and read back, leader now {}, {:?} in all",
        acked.len(),
        outcomes.len(),
        v.partitions[0].leader,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------------------
// The control run: the checker must see loss where loss is allowed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_an_unclean_election_loses_acknowledged_records() {
    let _serial = SERIAL.lock().await;
    // Five nodes: the partition's replicas are broker 0, a voter, and brokers 3 and 4, which are not, so that
    // the quorum keeps its majority with both followers paused and then the leader dead.
    let mut c = Cluster::start(5);
    c.wait_until("all five brokers are in service", Duration::from_secs(60), "", |v| v.live.len() == 5).await;
    let topic = "unclean";
    let configs = [("unclean.leader.election.enable", "true"), ("min.insync.replicas", "1")];
    create_topic(&c, topic, 1, &[vec![0, 3, 4]], &configs).await;
    c.wait_until("broker 0 leads, all in sync", HEAL_TIMEOUT, topic, |v| v.in_sync(5, 1) && v.partitions[0].leader == 0).await;

    let producing = Producing::start(&c.bootstrap(), topic, vec![0]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (outcomes, next, _) = producing.finish().await;
    let ack =
        |o: &Outcome| Some(Ack { id: record_id(o.partition, o.seq), partition: o.partition, offset: *o.offset.as_ref().ok()? });
    let mut acked: Vec<Ack> = outcomes.iter().filter_map(ack).collect();
    let replicated = acked.len();

    c.pause(3);
    c.pause(4);
    c.wait_until("the ISR shrinks to broker 0 alone", Duration::from_secs(30), topic, |v| {
        v.partition(0).is_some_and(|p| p.isr == [0])
    })
    .await;
    let producing = Producing::start(&c.bootstrap(), topic, next);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (outcomes, _, _) = producing.finish().await;
    let alone: Vec<Ack> = outcomes.iter().filter_map(ack).collect();
    assert!(
        !alone.is_empty(),
        "acks=all with min.insync.replicas=1 succeeds with the leader alone in the ISR\n{}",
        c.diagnosis()
    );
    let only_on_leader = alone.len();
    acked.extend(alone);

    // The only in-sync replica dies with its disk; the followers resume and one is elected although behind.
    c.kill(0);
    std::fs::remove_dir_all(&c.nodes[0].dir).unwrap();
    c.resume(3);
    c.resume(4);
    let v = c
        .wait_until("broker 3 or 4 is elected leader uncleanly", Duration::from_secs(60), topic, |v| {
            v.partition(0).is_some_and(|p| [3, 4].contains(&p.leader))
        })
        .await;
    c.wait_until("brokers 3 and 4 are in sync", HEAL_TIMEOUT, topic, |v| {
        v.partition(0).is_some_and(|p| p.isr.iter().collect::<BTreeSet<_>>() == BTreeSet::from([&3, &4]))
    })
    .await;
    let o = observe(&c, topic, &[vec![3, 4]]).await.unwrap_or_else(|e| panic!("{e}\n{}", c.diagnosis()));
    match check(&acked, &o) {
        Ok(()) => panic!("the checker saw no loss after an unclean election: {:?}\n{}", v, c.diagnosis()),
        Err(e) => {
            assert!(e.contains("lost"), "{e}");
            eprintln!(
                "control: {replicated} records acknowledged while in sync, {only_on_leader} with broker 0 alone in the \
                 ISR; broker {} elected uncleanly; the checker: {e}",
                v.partitions[0].leader
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The checker's own tests.

/// A v2 batch header with `records` offsets from `base` and a body of `fill` bytes (the checker reads no more).
fn fake_batch(base: i64, records: i32, fill: u8) -> Vec<u8> {
    let mut b = vec![fill; 61 + 16];
    b[0..8].copy_from_slice(&base.to_be_bytes());
    let length = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&length.to_be_bytes());
    b[12..16].copy_from_slice(&0i32.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b
}

/// Partition 0: p0-0..p0-3 at offsets 0..3, all but p0-3 acknowledged, in two batches on three brokers (one
/// of which also has an unreplicated batch above the high watermark); partition 1: p1-0 and p1-1.
fn faithful() -> (Vec<Ack>, Observed) {
    let ack = |p: i32, seq: u64, offset: i64| Ack { id: record_id(p, seq), partition: p, offset };
    let acked = vec![ack(0, 0, 0), ack(0, 1, 1), ack(0, 2, 2), ack(1, 0, 0), ack(1, 1, 1)];
    let mut o = Observed::default();
    o.read.insert(0, (0..4).map(|i| (i, record_id(0, i as u64))).collect());
    o.read.insert(1, (0..2).map(|i| (i, record_id(1, i as u64))).collect());
    o.high_watermarks = BTreeMap::from([(0, 4), (1, 2)]);
    let log0 = [fake_batch(0, 2, 7), fake_batch(2, 2, 8)].concat();
    let tail = [log0.clone(), fake_batch(4, 1, 9), vec![0; 100]].concat();
    o.replicas.insert(0, vec![(0, tail), (1, log0.clone()), (2, log0)]);
    let log1 = fake_batch(0, 2, 5);
    o.replicas.insert(1, vec![(0, log1.clone()), (1, log1.clone()), (2, log1)]);
    (acked, o)
}

#[test]
fn the_checker_accepts_a_faithful_history() {
    let (acked, o) = faithful();
    assert_eq!(check(&acked, &o), Ok(()));
}

#[test]
fn the_checker_reports_a_lost_acknowledged_record() {
    let (acked, mut o) = faithful();
    o.read.get_mut(&0).unwrap().remove(1);
    let e = check(&acked, &o).unwrap_err();
    assert!(e.contains("lost 1 of 5") && e.contains("p0-1"), "{e}");
}

#[test]
fn the_checker_reports_duplicates_acknowledged_or_not() {
    for dup in ["p0-1", "p0-3"] {
        let (acked, mut o) = faithful();
        o.read.get_mut(&0).unwrap().push((4, dup.to_string()));
        let e = check(&acked, &o).unwrap_err();
        assert!(e.contains("duplicate") && e.contains(dup), "{e}");
    }
}

#[test]
fn the_checker_reports_a_reordered_pair() {
    let (acked, mut o) = faithful();
    let records = o.read.get_mut(&0).unwrap();
    let (a, b) = (records[1].1.clone(), records[2].1.clone());
    (records[1].1, records[2].1) = (b, a);
    let e = check(&acked, &o).unwrap_err();
    assert!(e.contains("out of order in partition 0"), "{e}");
}

#[test]
fn the_checker_reports_a_record_away_from_its_acknowledged_offset() {
    let (mut acked, o) = faithful();
    acked[1].offset = 3;
    let e = check(&acked, &o).unwrap_err();
    assert!(e.contains("p0-1 was acknowledged at partition 0 offset 3 but read at partition 0 offset 1"), "{e}");
    // An acknowledgement without an offset only needs the record once.
    acked[1].offset = -1;
    assert_eq!(check(&acked, &o), Ok(()));
}

#[test]
fn the_checker_reports_divergent_or_short_replicas() {
    let (acked, mut o) = faithful();
    o.replicas.get_mut(&0).unwrap()[2].1[70] ^= 1;
    let e = check(&acked, &o).unwrap_err();
    assert!(e.contains("brokers 0 and 2 differ") && e.contains("byte 70, in the batch at offset 0"), "{e}");

    let (acked, mut o) = faithful();
    o.replicas.get_mut(&0).unwrap()[1].1 = fake_batch(0, 2, 7);
    let e = check(&acked, &o).unwrap_err();
    assert!(e.contains("on broker 1 holds whole batches up to offset 2, not to the high watermark 4"), "{e}");
}
