//! The controller quorum under faults, with real processes on 127.0.0.1: three voters and two brokers that
//! only follow the metadata log. While clients create topics through every broker, the active controller is
//! killed with SIGKILL: a new one takes over, and every CreateTopics that was acknowledged is on all five
//! brokers, with one id. A voter stopped (SIGSTOP) for longer than the session timeout is fenced and comes
//! back when it resumes; a broker replaced with an empty disk catches up from a snapshot; after all five
//! restart, they describe the same metadata.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::BrokerProcess;
use common::{free_port, s};
use kafka_protocol::messages::*;
use nix::sys::signal::Signal;
use uuid::Uuid;

const VOTERS: usize = 3;
const NODES: usize = 5;
const SESSION_MS: u64 = 3000;

struct Node {
    dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    process: Option<BrokerProcess>,
}

struct Cluster {
    _root: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::with_session(SESSION_MS)
    }

    fn with_session(session_ms: u64) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..VOTERS).map(|_| free_port()).collect();
        let voters: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{p}")).collect();
        let nodes = (0..NODES)
            .map(|id| {
                let voter = id < VOTERS;
                let listeners = match voter {
                    true => format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[id]),
                    false => "PLAINTEXT://127.0.0.1:0".into(),
                };
                let args = [
                    ("--node.id", id.to_string()),
                    ("--cluster.id", "faults".into()),
                    ("--process.roles", if voter { "broker,controller" } else { "broker" }.into()),
                    ("--controller.quorum.voters", voters.join(",")),
                    ("--listeners", listeners),
                    ("--controller.quorum.election.timeout.ms", "500".into()),
                    ("--broker.heartbeat.interval.ms", "250".into()),
                    ("--broker.session.timeout.ms", session_ms.to_string()),
                    // Snapshots every few entries, so that a broker that starts empty catches up from one.
                    ("--metadata.log.max.snapshot.interval.records", "20".into()),
                ];
                Node {
                    dir: root.path().join(format!("data{id}")),
                    log: root.path().join(format!("broker{id}.log")),
                    args: args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect(),
                    process: None,
                }
            })
            .collect();
        let mut c = Cluster { _root: root, nodes };
        for id in 0..NODES {
            c.start_node(id);
        }
        c
    }

    fn start_node(&mut self, id: usize) {
        let n = &mut self.nodes[id];
        n.process = Some(BrokerProcess::start(&n.dir, &n.log, &n.args, None));
    }

    fn process(&self, id: usize) -> &BrokerProcess {
        self.nodes[id].process.as_ref().unwrap()
    }

    fn running(&self) -> Vec<usize> {
        (0..NODES).filter(|id| self.nodes[*id].process.is_some()).collect()
    }

    fn logs(&self) -> String {
        self.nodes.iter().map(|n| std::fs::read_to_string(&n.log).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }
}

async fn metadata(p: &BrokerProcess) -> MetadataResponse {
    p.client().await.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await
}

/// Topic name -> id as one broker describes it.
async fn topics(p: &BrokerProcess) -> BTreeMap<String, Uuid> {
    metadata(p).await.topics.iter().map(|t| (t.name.as_ref().unwrap().to_string(), t.topic_id)).collect()
}

async fn live_brokers(p: &BrokerProcess) -> BTreeSet<i32> {
    metadata(p).await.brokers.iter().map(|b| b.node_id.0).collect()
}

async fn quorum_leader(p: &BrokerProcess) -> i32 {
    let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![describe_quorum_request::PartitionData::default()])]);
    let resp: DescribeQuorumResponse = p.client().await.call(ApiKey::DescribeQuorum, 1, &req).await;
    resp.topics.first().and_then(|t| t.partitions.first()).map_or(-1, |p| p.leader_id.0)
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, timeout: Duration, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checker: every acknowledged topic is on every broker, under the same id everywhere, and no broker has
/// a topic twice or one nobody asked for. Returns what is wrong.
fn check(acknowledged: &BTreeSet<String>, asked: &BTreeSet<String>, views: &[BTreeMap<String, Uuid>]) -> Result<(), String> {
    for (b, view) in views.iter().enumerate() {
        if let Some(lost) = acknowledged.iter().find(|t| !view.contains_key(*t)) {
            return Err(format!("broker view {b} lacks acknowledged topic {lost}"));
        }
        if let Some(extra) = view.keys().find(|t| !asked.contains(*t)) {
            return Err(format!("broker view {b} has {extra}, which nobody created"));
        }
    }
    if let Some(v) = views.windows(2).find(|w| w[0] != w[1]) {
        return Err(format!("brokers disagree: {:?} vs {:?}", v[0].len(), v[1].len()));
    }
    Ok(())
}

/// Creates topics through broker `via` until `stop`, one name per request; records what was asked and what
/// was acknowledged, and when.
async fn create_loop(
    addr: std::net::SocketAddr,
    via: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    asked: Arc<Mutex<BTreeSet<String>>>,
    acked: Arc<Mutex<Vec<(Instant, String)>>>,
) {
    let mut seq = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("t-{via}-{seq}");
        seq += 1;
        asked.lock().unwrap().insert(name.clone());
        let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(&name)))
                .with_num_partitions(1)
                .with_replication_factor(-1),
        ]);
        // A connection per request: a broker that was killed answers nothing, the others go on.
        let call = async move {
            let mut c = common::Client::connect(addr).await;
            let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
            r
        };
        match tokio::time::timeout(Duration::from_secs(10), tokio::spawn(call)).await {
            Ok(Ok(r)) if r.topics[0].error_code == 0 => acked.lock().unwrap().push((Instant::now(), name)),
            // Refused, or the broker is gone (its task panicked on the connection): ask again a little later.
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_topics_survive_the_active_controller_crashing() {
    let mut c = Cluster::start();
    wait_until("all five brokers are in service", Duration::from_secs(60), || async {
        live_brokers(c.process(3)).await.len() == NODES
    })
    .await;

    // Clients create topics through every broker; the active controller is killed in the middle.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let loops: Vec<_> = (0..NODES)
        .map(|via| tokio::spawn(create_loop(c.process(via).addr, via, stop.clone(), asked.clone(), acked.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = quorum_leader(c.process(3)).await;
    assert!((0..VOTERS as i32).contains(&leader), "leader {leader}");
    let before = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    c.nodes[leader as usize].process.take().unwrap().stop(Signal::SIGKILL);
    let survivor = c.running()[0];
    wait_until("a new active controller", Duration::from_secs(30), || async {
        let l = quorum_leader(c.process(survivor)).await;
        l >= 0 && l != leader
    })
    .await;
    wait_until("a topic acknowledged after the crash", Duration::from_secs(30), || async {
        acked.lock().unwrap().iter().any(|(at, _)| *at > killed_at)
    })
    .await;
    let failover = acked.lock().unwrap().iter().map(|(at, _)| *at).filter(|at| *at > killed_at).min().unwrap() - killed_at;
    eprintln!("failover: {failover:?} from kill -9 of the active controller to the next acknowledged CreateTopics");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let acknowledged: BTreeSet<String> = acked.lock().unwrap().iter().map(|(_, n)| n.clone()).collect();
    let asked = asked.lock().unwrap().clone();
    assert!(before > 0 && acknowledged.len() > before, "{before} before the crash, {} in all", acknowledged.len());

    // The killed voter comes back; all five agree, and nothing acknowledged is missing.
    c.start_node(leader as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    let views = loop {
        let mut views = Vec::new();
        for id in 0..NODES {
            views.push(topics(c.process(id)).await);
        }
        match check(&acknowledged, &asked, &views) {
            Ok(()) => break views,
            Err(e) => assert!(Instant::now() < deadline, "after the crash: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The checker can fail: a view without one acknowledged topic, or with a topic nobody asked for.
    let mut lost = views.clone();
    lost[2].remove(acknowledged.iter().next().unwrap());
    assert!(check(&acknowledged, &asked, &lost).unwrap_err().contains("lacks acknowledged topic"));
    let mut invented = views.clone();
    invented[4].insert("never-asked".into(), Uuid::nil());
    assert!(check(&acknowledged, &asked, &invented).is_err());

    // A broker that only follows the log, replaced with an empty disk: the log it would need is gone behind
    // snapshots, so it catches up from a snapshot and the entries after it.
    let follower = NODES - 1;
    c.nodes[follower].process.take().unwrap().stop(Signal::SIGKILL);
    std::fs::remove_dir_all(&c.nodes[follower].dir).unwrap();
    c.start_node(follower);
    wait_until("the emptied broker has every topic", Duration::from_secs(60), || async {
        topics(c.process(follower)).await == views[0]
    })
    .await;
    assert!(c.process(follower).log_text().contains("installed a metadata snapshot"), "{}", c.process(follower).log_text());

    // A voter stopped for longer than the session timeout is fenced; resumed, it is back in service.
    let leader_now = quorum_leader(c.process(3)).await;
    let paused = (0..VOTERS).find(|id| *id as i32 != leader_now).unwrap();
    c.process(paused).signal(Signal::SIGSTOP);
    let watcher = (0..NODES).find(|id| *id != paused).unwrap();
    wait_until("the stopped voter is fenced", Duration::from_secs(SESSION_MS / 1000 * 5), || async {
        !live_brokers(c.process(watcher)).await.contains(&(paused as i32))
    })
    .await;
    // The quorum keeps deciding with one voter stopped.
    let req =
        CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![create_topics_request::CreatableTopic::default(
        )
        .with_name(TopicName(s("while-stopped")))
        .with_num_partitions(1)
        .with_replication_factor(-1)]);
    let r: CreateTopicsResponse = c.process(watcher).client().await.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    c.process(paused).signal(Signal::SIGCONT);
    wait_until("the resumed voter is in service again", Duration::from_secs(30), || async {
        live_brokers(c.process(watcher)).await.contains(&(paused as i32))
    })
    .await;

    // All five restarted (gracefully): the same metadata everywhere, as before.
    let before_restart = topics(c.process(0)).await;
    for id in 0..NODES {
        assert!(c.nodes[id].process.take().unwrap().stop(Signal::SIGTERM).success(), "node {id} shut down cleanly");
    }
    for id in 0..NODES {
        c.start_node(id);
    }
    wait_until("all five brokers are in service after the restart", Duration::from_secs(60), || async {
        live_brokers(c.process(3)).await.len() == NODES
    })
    .await;
    for id in 0..NODES {
        assert_eq!(topics(c.process(id)).await, before_restart, "broker {id} after the restart");
    }
    assert!(!c.logs().contains("panicked"), "a broker panicked:\n{}", c.logs());
}

async fn in_service(c: &Cluster, watcher: usize, id: usize) -> bool {
    live_brokers(c.process(watcher)).await.contains(&(id as i32))
}

/// A broker whose process is gone is fenced without waiting out its session (its address refuses the quorum's
/// connections); a stopped one is not, and a crashed one that restarts registers again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_broker_is_fenced_before_its_session_ends() {
    // Sessions far longer than every wait below: a fence seen here was not a session ending.
    const LONG_SESSION: Duration = Duration::from_secs(120);
    let mut c = Cluster::with_session(LONG_SESSION.as_millis() as u64);
    wait_until("all five brokers are in service", Duration::from_secs(60), || async {
        live_brokers(c.process(0)).await.len() == NODES
    })
    .await;

    // A stopped broker keeps its listeners: it is not taken for a crashed one.
    let stopped = NODES - 2;
    c.process(stopped).signal(Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(in_service(&c, 0, stopped).await, "a stopped broker was fenced before its session ended");
    c.process(stopped).signal(Signal::SIGCONT);

    // A broker that only follows the log, and then the active controller (a voter: the next one fences it).
    let leader = quorum_leader(c.process(0)).await as usize;
    for crashed in [NODES - 1, leader] {
        c.nodes[crashed].process.take().unwrap().stop(Signal::SIGKILL);
        let watcher = c.running()[0];
        wait_until(&format!("crashed broker {crashed} is fenced"), LONG_SESSION / 4, || async {
            !in_service(&c, watcher, crashed).await
        })
        .await;
        // Back before its old session would have ended: its new registration is not refused as a duplicate.
        c.start_node(crashed);
        wait_until(&format!("restarted broker {crashed} is in service"), LONG_SESSION / 4, || async {
            in_service(&c, watcher, crashed).await
        })
        .await;
    }
    let logs = c.logs();
    assert_eq!(logs.matches("fencing a broker whose address refuses connections").count(), 2, "{logs}");
    assert!(!logs.contains("fencing a broker without heartbeats"), "{logs}");
    assert!(!logs.contains("panicked"), "a broker panicked:\n{logs}");
}
