//! Three in-process brokers on 127.0.0.1 as one cluster, each a voter of the controller quorum: topic
//! metadata reaches every broker through the metadata log, librdkafka produces to and consumes from
//! partitions spread over them, brokers that missed changes (restarted, or replaced with an empty disk)
//! catch up, deleted topics stay deleted, and each consumer group has one coordinator that every broker names
//! (the leader of its `__consumer_offsets` partition, so the group survives its coordinator's shutdown).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{free_port, quorum_settings, record_batch, s, Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

const N: usize = 3;

/// (leader, replicas, ISR) of a partition.
type PartitionView = (i32, Vec<i32>, Vec<i32>);
/// metrics.consumer.lag.refresh.ms of the brokers: how often coordinators ask peers for high watermarks.
const LAG_REFRESH: Duration = Duration::from_millis(300);

struct Cluster {
    rt: tokio::runtime::Runtime,
    brokers: Vec<Option<TestBroker>>,
    /// The voters' controller listener ports.
    voter_ports: Vec<u16>,
    /// Settings of every broker beyond the defaults of these tests.
    extra: Vec<(String, String)>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    fn start_with(extra: &[(&str, &str)]) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let voter_ports = (0..N).map(|_| free_port()).collect();
        let extra = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Cluster { rt, brokers: (0..N).map(|_| None).collect(), voter_ports, extra };
        for id in 0..N {
            c.start_broker(id, tempfile::tempdir().unwrap());
        }
        c.wait_in_service();
        c
    }

    fn start_broker(&mut self, id: usize, dir: tempfile::TempDir) {
        let refresh = LAG_REFRESH.as_millis().to_string();
        let mut settings = quorum_settings(id, &self.voter_ports, "cluster-test");
        settings.push(("num.partitions".into(), "3".into()));
        settings.push(("metrics.consumer.lag.refresh.ms".into(), refresh));
        settings.extend(self.extra.iter().cloned());
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.brokers[id] = Some(self.rt.block_on(TestBroker::start_in(dir, &pairs)));
    }

    /// Waits until every running broker describes every running broker (registered and unfenced).
    fn wait_in_service(&self) {
        let expected: Vec<i32> = self.running().map(|id| id as i32).collect();
        self.wait_for("every broker is in service", |c| {
            c.running().all(|id| c.metadata(id).brokers.iter().map(|b| b.node_id.0).collect::<Vec<_>>() == expected)
        });
    }

    /// The active controller (the quorum's leader), as DescribeQuorum names it.
    fn controller(&self) -> i32 {
        let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(s("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()])]);
        let resp: DescribeQuorumResponse = self.call(self.running().next().unwrap(), ApiKey::DescribeQuorum, 1, &req);
        resp.topics[0].partitions[0].leader_id.0
    }

    fn stop_broker(&mut self, id: usize) -> tempfile::TempDir {
        let b = self.brokers[id].take().unwrap();
        self.rt.block_on(b.stop())
    }

    fn broker(&self, id: usize) -> &TestBroker {
        self.brokers[id].as_ref().unwrap()
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..N).filter(|id| self.brokers[*id].is_some())
    }

    /// A request setting this node's voter addresses (as the operator does when pod IPs change).
    fn voters_request(&self, id: usize, value: &str) -> IncrementalAlterConfigsRequest {
        common::set_config_request(4, &id.to_string(), "controller.quorum.voters", value)
    }

    fn create_request(name: &str, partitions: i32) -> CreateTopicsRequest {
        CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)])
    }

    fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &self,
        id: usize,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.rt.block_on(async {
            let mut c: Client = self.broker(id).client().await;
            c.call(api, version, req).await
        })
    }

    fn metadata(&self, id: usize) -> MetadataResponse {
        self.call(id, ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None))
    }

    /// (id, leader of each partition) of `topic` as broker `id` describes it.
    fn topic(&self, id: usize, topic: &str) -> Option<(Uuid, Vec<i32>)> {
        let md = self.metadata(id);
        let t = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
        let mut leaders: Vec<(i32, i32)> = t.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
        leaders.sort();
        Some((t.topic_id, leaders.into_iter().map(|(_, l)| l).collect()))
    }

    /// (leader, replicas, ISR) of each partition of `topic` as broker `id` describes it.
    fn partitions(&self, id: usize, topic: &str) -> Vec<PartitionView> {
        let md = self.metadata(id);
        let Some(t) = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)) else { return vec![] };
        let mut out: Vec<(i32, PartitionView)> = t
            .partitions
            .iter()
            .map(|p| {
                let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
                (p.partition_index, (p.leader_id.0, ids(&p.replica_nodes), ids(&p.isr_nodes)))
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Creates `topic` with three replicas per partition and waits until every running broker describes
    /// each partition led by its preferred replica with all three in sync.
    fn create_replicated(&self, topic: &str, partitions: i32) {
        let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(N as i16),
        ]);
        let resp: CreateTopicsResponse = self.call(0, ApiKey::CreateTopics, 7, &req);
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
        self.wait_for("the topic is led by its preferred replicas, all in sync", |c| c.preferred_and_in_sync(topic));
    }

    fn preferred_and_in_sync(&self, topic: &str) -> bool {
        self.running().all(|id| {
            let parts = self.partitions(id, topic);
            !parts.is_empty() && parts.iter().all(|(leader, replicas, isr)| replicas[0] == *leader && isr.len() == N)
        })
    }

    /// Stops the leader of `topic`-0 until another replica leads, restarts it and waits until it is in sync
    /// again; returns its id. The partition is then led by a replica that is not its preferred one.
    fn bounce_leader(&mut self, topic: &str) -> usize {
        let leader = self.partitions(0, topic)[0].0 as usize;
        let dir = self.stop_broker(leader);
        let other = self.running().next().unwrap();
        self.wait_for("another replica leads", |c| ![-1, leader as i32].contains(&c.partitions(other, topic)[0].0));
        // Kafka's metrics say so: the new leader's partition is under-replicated (at min ISR with the default
        // min.insync.replicas 1: no), the active controller counts the fenced broker.
        let new_leader = self.partitions(other, topic)[0].0 as usize;
        self.wait_for("the new leader reports an under-replicated partition", |c| {
            c.broker(new_leader).metric("kafka_server_replicamanager_underreplicatedpartitions").is_some_and(|v| v >= 1.0)
        });
        let controller = self.controller() as usize;
        self.wait_for("the active controller counts one fenced broker", |c| {
            c.broker(controller).metric("kafka_controller_kafkacontroller_fencedbrokercount") == Some(1.0)
                && c.broker(controller).metric("kafka_controller_kafkacontroller_activecontrollercount") == Some(1.0)
        });
        let standby = self.running().find(|id| *id != controller).unwrap();
        assert_eq!(self.broker(standby).metric("kafka_controller_kafkacontroller_activecontrollercount"), Some(0.0));
        self.start_broker(leader, dir);
        self.wait_in_service();
        self.wait_for("the restarted broker is in sync again", |c| c.partitions(other, topic)[0].2.len() == N);
        self.wait_for("the new leader counts the ISR expansion", |c| {
            c.broker(new_leader).metric("kafka_server_replicamanager_isrexpands_total").is_some_and(|v| v >= 1.0)
        });
        leader
    }

    fn wait_for(&self, what: &str, done: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The same topic (id and leaders) on every running broker.
    fn everywhere(&self, topic: &str) -> Option<(Uuid, Vec<i32>)> {
        let views: BTreeSet<Option<(Uuid, Vec<i32>)>> = self.running().map(|id| self.topic(id, topic)).collect();
        match views.len() {
            1 => views.into_iter().next().unwrap(),
            _ => None,
        }
    }

    fn create_topic(&self, id: usize, name: &str, partitions: i32) -> CreateTopicsResponse {
        self.call(id, ApiKey::CreateTopics, 7, &Cluster::create_request(name, partitions))
    }

    /// (node id, host:port) of the coordinator of `group` as broker `id` names it (FindCoordinator v3).
    fn coordinator(&self, id: usize, group: &str) -> (i32, String) {
        let r: FindCoordinatorResponse =
            self.call(id, ApiKey::FindCoordinator, 3, &FindCoordinatorRequest::default().with_key(s(group)));
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        (r.node_id.0, format!("{}:{}", r.host.as_str(), r.port))
    }

    /// (partition, committed offset) of every partition `group` committed, asked of broker `id` (OffsetFetch
    /// v7), or its error.
    fn committed(&self, id: usize, group: &str) -> Result<Vec<(i32, i64)>, i16> {
        let req = OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(None);
        let r: OffsetFetchResponse = self.call(id, ApiKey::OffsetFetch, 7, &req);
        if r.error_code != 0 {
            return Err(r.error_code);
        }
        let mut out: Vec<(i32, i64)> =
            r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset))).collect();
        out.sort();
        Ok(out)
    }

    /// kafka_consumergroup_lag of `group` that broker `id` exports now, by partition.
    fn lag(&self, id: usize, group: &str) -> BTreeMap<i32, i64> {
        let state = self.broker(id).broker.as_ref().unwrap().state().clone();
        let text = state.metrics.render(&state);
        let label = format!(r#"consumergroup="{group}""#);
        text.lines()
            .filter(|l| l.starts_with("kafka_consumergroup_lag{") && l.contains(&label))
            .map(|l| {
                let partition = l.split(r#"partition=""#).nth(1).and_then(|r| r.split('"').next()).unwrap();
                (partition.parse().unwrap(), l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// Waits until broker `id` exports `expected` as the lag of `group`: remote partitions' values are as
    /// old as the last refresh, so within two refresh intervals (plus slack for a loaded machine).
    fn wait_for_lag(&self, id: usize, group: &str, expected: &BTreeMap<i32, i64>) {
        let deadline = Instant::now() + 2 * LAG_REFRESH + Duration::from_secs(10);
        loop {
            let got = self.lag(id, group);
            if got == *expected {
                return;
            }
            assert!(Instant::now() < deadline, "broker {id} exports lag {got:?} for {group}, expected {expected:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client_config(&self, id: usize) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.broker(id).bootstrap());
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for b in self.brokers.iter_mut().filter_map(Option::take) {
            self.rt.block_on(b.stop());
        }
    }
}

#[test]
fn topics_spread_over_the_brokers_and_librdkafka_uses_them_all() {
    let c = Cluster::start();
    // On a broker that is not the active controller: it passes the request on.
    let via = (0..N).find(|id| *id as i32 != c.controller()).unwrap();
    let resp = c.create_topic(via, "spread", 6);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
    let id = resp.topics[0].topic_id;
    c.wait_for("every broker describes the topic alike", |c| c.everywhere("spread").is_some());
    let (seen_id, leaders) = c.everywhere("spread").unwrap();
    assert_eq!(seen_id, id);
    assert_eq!(leaders.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2]), "{leaders:?}");

    // KIP-951: produce and fetch at a broker that does not lead the partition name the leader and its address.
    let p = leaders.iter().position(|l| *l != 0).unwrap();
    let leader = leaders[p];
    let produce = common::produce_request("spread", p as i32, record_batch(1, 10, 0), 1);
    let resp: ProduceResponse = c.call(0, ApiKey::Produce, 11, &produce);
    let part = &resp.responses[0].partition_responses[0];
    assert_eq!((part.error_code, part.current_leader.leader_id.0), (6, leader), "{resp:?}");
    let endpoints: Vec<(i32, String)> =
        resp.node_endpoints.iter().map(|e| (e.node_id.0, format!("{}:{}", e.host.as_str(), e.port))).collect();
    assert_eq!(endpoints, vec![(leader, c.broker(leader as usize).bootstrap())]);
    let mut fetch = common::fetch_request("spread", id, 0, 0);
    fetch.topics[0].partitions[0].partition = p as i32;
    let resp: FetchResponse = c.call(0, ApiKey::Fetch, 16, &fetch);
    let part = &resp.responses[0].partitions[0];
    assert_eq!((part.error_code, part.current_leader.leader_id.0), (6, leader), "{resp:?}");
    let endpoints: Vec<i32> = resp.node_endpoints.iter().map(|e| e.node_id.0).collect();
    assert_eq!(endpoints, vec![leader]);
    for id in 0..N {
        let md = c.metadata(id);
        let brokers: Vec<(i32, String)> =
            md.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
        let expected: Vec<(i32, String)> = (0..N).map(|i| (i as i32, c.broker(i).bootstrap())).collect();
        assert_eq!(brokers, expected);
        // Clients are told to send admin requests to the broker they asked, which passes them on.
        assert_eq!(md.controller_id.0, id as i32);
        assert_eq!(md.cluster_id.as_deref(), Some("cluster-test"));
    }

    // The voters' addresses are a dynamic broker config; bad values (other ids, duplicates, appends) are
    // refused and change nothing; the same voters at their addresses are accepted.
    let describe =
        DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(Some(vec![s("controller.quorum.voters")]))]);
    let resp: DescribeConfigsResponse = c.call(1, ApiKey::DescribeConfigs, 4, &describe);
    let entry = &resp.results[0].configs[0];
    let expected: Vec<String> = c.voter_ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{p}")).collect();
    assert_eq!((entry.value.as_deref(), entry.config_source), (Some(expected.join(",").as_str()), 4));
    for (op, value, code) in [(0, "0@nowhere:1", 40), (0, "1@h:1,1@h:2", 40), (2, "3@h:1", 42)] {
        let mut req = c.voters_request(1, value);
        req.resources[0].configs[0] = req.resources[0].configs[0].clone().with_config_operation(op);
        let resp: IncrementalAlterConfigsResponse = c.call(1, ApiKey::IncrementalAlterConfigs, 1, &req);
        assert_eq!(resp.responses[0].error_code, code, "{op} {value}: {:?}", resp.responses[0].error_message);
    }
    let resp: IncrementalAlterConfigsResponse =
        c.call(1, ApiKey::IncrementalAlterConfigs, 1, &c.voters_request(1, &expected.join(",")));
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
    let resp: DescribeConfigsResponse = c.call(1, ApiKey::DescribeConfigs, 4, &describe);
    assert_eq!(
        (resp.results[0].configs[0].value.as_deref(), resp.results[0].configs[0].config_source),
        (Some(expected.join(",").as_str()), 2)
    );

    // A partition led elsewhere: NOT_LEADER_OR_FOLLOWER, so clients refresh their metadata.
    let other = leaders[0];
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(TopicName(s("spread"))).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(other).with_records(Some(record_batch(1, 10, 0))),
        ]),
    ]);
    let not_leader = (0..N).find(|id| *id as i32 != other).unwrap();
    let resp: ProduceResponse = c.call(not_leader, ApiKey::Produce, 9, &req);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 6);

    // librdkafka, bootstrapped from one broker, produces to all three and consumes from all three.
    let n = 3000;
    let producer: FutureProducer = c.client_config(1).set("acks", "all").create().unwrap();
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let (key, value) = (format!("k{i}"), format!("v{i}"));
            producer
                .send_result(FutureRecord::to("spread").key(&key).payload(&value).partition(i % 6))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    for send in sends {
        c.rt.block_on(send).unwrap().unwrap();
    }
    let consumer: BaseConsumer =
        c.client_config(2).set("group.id", "unused").set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset("spread", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.values().map(Vec::len).sum::<usize>() < n as usize && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = m.unwrap();
        got.entry(m.partition()).or_default().push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
    }
    for p in 0..6 {
        let expected: Vec<String> = (0..n).filter(|i| i % 6 == p).map(|i| format!("v{i}")).collect();
        assert_eq!(got.get(&p), Some(&expected), "partition {p}");
    }
    // Each broker holds the records of its own partitions only.
    for (p, leader) in leaders.iter().enumerate() {
        for id in 0..N {
            let log = c.broker(id).broker.as_ref().unwrap().state().replicas.partition("spread", p as i32);
            assert_eq!(log.is_some(), *leader == id as i32, "partition {p} on broker {id}");
        }
    }

    // More partitions, asked of broker 1: they continue the rotation and reach every broker.
    let req = CreatePartitionsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default().with_name(TopicName(s("spread"))).with_count(9),
    ]);
    let resp: CreatePartitionsResponse = c.call(1, ApiKey::CreatePartitions, 3, &req);
    assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0].error_message);
    c.wait_for("every broker has 9 partitions", |c| c.everywhere("spread").is_some_and(|(_, l)| l.len() == 9));
    let (_, grown) = c.everywhere("spread").unwrap();
    assert_eq!(grown[..6], leaders[..]);
    assert_eq!(grown[6..].iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2]));

    // A topic config changed through broker 2 applies on every broker.
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("spread"))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_config_operation(0)
                .with_value(Some(s("7200000")))]),
    ]);
    let resp: IncrementalAlterConfigsResponse = c.call(2, ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
    let retention = |c: &Cluster, id: usize| {
        let image = c.broker(id).broker.as_ref().unwrap().state().image();
        image.topic("spread").unwrap().configs.get("retention.ms").cloned()
    };
    assert_eq!(retention(&c, 2).as_deref(), Some("7200000"), "the broker that answered applied it");
    c.wait_for("every broker applied the config", |c| (0..N).all(|id| retention(c, id).as_deref() == Some("7200000")));

    // Automatic creation on any broker: the controller creates it, and the answer waits for that.
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("auto"))))]));
    let resp: MetadataResponse = c.call(via, ApiKey::Metadata, 12, &req);
    assert_eq!((resp.topics[0].error_code, resp.topics[0].partitions.len()), (0, 3));
    c.wait_for("the auto-created topic is everywhere", |c| c.everywhere("auto").is_some_and(|(_, l)| l.len() == 3));

    // Three replicas on three brokers, all in sync at creation, each leading one partition; four do not fit.
    let mut req = Cluster::create_request("replicated", 3);
    req.topics[0].replication_factor = 3;
    let resp: CreateTopicsResponse = c.call(via, ApiKey::CreateTopics, 7, &req);
    let t = &resp.topics[0];
    assert_eq!((t.error_code, t.num_partitions, t.replication_factor), (0, 3, 3), "{:?}", t.error_message);
    c.wait_for("the replicated topic is everywhere", |c| c.everywhere("replicated").is_some());
    let md = c.metadata(via);
    let t = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "replicated")).unwrap();
    for p in &t.partitions {
        let replicas: BTreeSet<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
        assert_eq!(replicas, BTreeSet::from([0, 1, 2]), "{p:?}");
        assert_eq!((p.leader_id, &p.isr_nodes), (p.replica_nodes[0], &p.replica_nodes), "{p:?}");
    }
    let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
    assert_eq!(leaders, BTreeSet::from([0, 1, 2]));
    req.topics[0].name = TopicName(s("too-replicated"));
    req.topics[0].replication_factor = 4;
    let resp: CreateTopicsResponse = c.call(via, ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 38, "{:?}", resp.topics[0].error_message);
    assert!(resp.topics[0].error_message.as_deref().is_some_and(|m| m.contains("only 3 broker(s)")), "{resp:?}");

    // DescribeQuorum: the leader and the three voters, all caught up with the leader.
    let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![describe_quorum_request::PartitionData::default()])]);
    let leader = c.controller() as usize;
    let resp: DescribeQuorumResponse = c.call(leader, ApiKey::DescribeQuorum, 1, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_id.0 as usize), (0, leader));
    let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(voters, vec![0, 1, 2]);
    assert!(p.current_voters.iter().all(|v| v.log_end_offset > 0), "{:?}", p.current_voters);
}

#[test]
fn brokers_that_missed_changes_catch_up_and_deleted_topics_stay_deleted() {
    let mut c = Cluster::start();
    for (topic, partitions) in [("kept", 3), ("doomed", 3)] {
        let resp = c.create_topic(0, topic, partitions);
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
    }
    c.wait_for("both topics are everywhere", |c| c.everywhere("kept").is_some() && c.everywhere("doomed").is_some());
    let kept = c.everywhere("kept").unwrap();

    // Broker 1 is down while one topic is deleted and another created.
    let dir1 = c.stop_broker(1);
    let req = DeleteTopicsRequest::default().with_timeout_ms(30_000).with_topic_names(vec![TopicName(s("doomed"))]);
    let resp: DeleteTopicsResponse = c.call(2, ApiKey::DeleteTopics, 4, &req);
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
    assert!(c.topic(2, "doomed").is_none(), "the broker that answered applied the deletion");
    c.wait_for("broker 0 dropped the deleted topic", |c| c.topic(0, "doomed").is_none());
    let resp = c.create_topic(2, "fresh", 2);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);

    // Back with its disk (and a new client port): it adopts the new topic and drops the deleted one, which
    // does not come back anywhere, though broker 1 still had it when it rejoined.
    c.start_broker(1, dir1);
    c.wait_for("broker 1 has the new topic", |c| c.topic(1, "fresh").is_some());
    c.wait_for("broker 1 dropped the deleted topic", |c| c.topic(1, "doomed").is_none());
    c.wait_in_service();
    for id in 0..N {
        assert!(c.topic(id, "doomed").is_none(), "broker {id} resurrected a deleted topic");
    }
    assert_eq!(c.everywhere("kept"), Some(kept.clone()));
    assert!(c.everywhere("fresh").is_some());

    // Broker 2 replaced by one with an empty disk: it learns every topic from the metadata log.
    c.stop_broker(2);
    c.start_broker(2, tempfile::tempdir().unwrap());
    c.wait_for("the new broker 2 knows every topic", |c| c.everywhere("kept").is_some() && c.everywhere("fresh").is_some());
    // Once it is in service again, it leads its partitions again (with one replica, their records are lost
    // with its disk).
    c.wait_in_service();
    c.wait_for("every broker names the same leaders again", |c| c.everywhere("kept") == Some(kept.clone()));
    assert!(c.topic(2, "doomed").is_none());

    // The active controller restarted with an empty disk: another voter takes over, and a CreateTopics sent
    // to the empty one at once is decided by the new active controller, refused for an existing name.
    let leader = c.controller() as usize;
    c.stop_broker(leader);
    c.start_broker(leader, tempfile::tempdir().unwrap());
    let resp = c.create_topic(leader, "kept", 1);
    assert_eq!(resp.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS: {:?}", resp.topics[0].error_message);
    c.wait_for("the emptied voter knows every topic", |c| c.everywhere("kept").is_some() && c.everywhere("fresh").is_some());
    c.wait_in_service();
}

/// A simple commit (generation -1) of `offset` for partition 0 of `topic`; the partition's error code.
fn commit_request(group: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default().with_group_id(GroupId(s(group))).with_generation_id_or_member_epoch(-1).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset),
        ]),
    ])
}

/// Every request of the group APIs about `group`, with the error code each got from broker `id`.
fn group_request_errors(c: &Cluster, id: usize, group: &str, topic: &str) -> Vec<(&'static str, i16)> {
    let g = || GroupId(s(group));
    let join = JoinGroupRequest::default()
        .with_group_id(g())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))]);
    let join: JoinGroupResponse = c.call(id, ApiKey::JoinGroup, 9, &join);
    let sync: SyncGroupResponse =
        c.call(id, ApiKey::SyncGroup, 5, &SyncGroupRequest::default().with_group_id(g()).with_member_id(s("m")));
    let heartbeat: HeartbeatResponse =
        c.call(id, ApiKey::Heartbeat, 4, &HeartbeatRequest::default().with_group_id(g()).with_member_id(s("m")));
    let leave = LeaveGroupRequest::default()
        .with_group_id(g())
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s("m"))]);
    let leave: LeaveGroupResponse = c.call(id, ApiKey::LeaveGroup, 5, &leave);
    let commit: OffsetCommitResponse = c.call(id, ApiKey::OffsetCommit, 8, &commit_request(group, topic, 1));
    let fetch_v1 = OffsetFetchRequest::default().with_group_id(g()).with_topics(Some(vec![
        offset_fetch_request::OffsetFetchRequestTopic::default().with_name(TopicName(s(topic))).with_partition_indexes(vec![0]),
    ]));
    let fetch_v1: OffsetFetchResponse = c.call(id, ApiKey::OffsetFetch, 1, &fetch_v1);
    let fetch_v8 = OffsetFetchRequest::default()
        .with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(g())]);
    let fetch_v8: OffsetFetchResponse = c.call(id, ApiKey::OffsetFetch, 8, &fetch_v8);
    let describe: DescribeGroupsResponse =
        c.call(id, ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![g()]));
    let delete: DeleteGroupsResponse =
        c.call(id, ApiKey::DeleteGroups, 2, &DeleteGroupsRequest::default().with_groups_names(vec![g()]));
    let offset_delete = OffsetDeleteRequest::default().with_group_id(g()).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)]),
    ]);
    let offset_delete: OffsetDeleteResponse = c.call(id, ApiKey::OffsetDelete, 0, &offset_delete);
    vec![
        ("JoinGroup", join.error_code),
        ("SyncGroup", sync.error_code),
        ("Heartbeat", heartbeat.error_code),
        ("LeaveGroup", leave.error_code),
        ("OffsetCommit", commit.topics[0].partitions[0].error_code),
        ("OffsetFetch v1", fetch_v1.topics[0].partitions[0].error_code),
        ("OffsetFetch v8", fetch_v8.groups[0].error_code),
        ("DescribeGroups", describe.groups[0].error_code),
        ("DeleteGroups", delete.results[0].error_code),
        ("OffsetDelete", offset_delete.error_code),
    ]
}

fn listed_groups(c: &Cluster, id: usize) -> Vec<String> {
    let r: ListGroupsResponse = c.call(id, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    assert_eq!(r.error_code, 0);
    r.groups.iter().map(|g| g.group_id.0.to_string()).collect()
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer.assignment().unwrap().elements().iter().map(|e| e.partition()).collect()
}

#[test]
fn a_group_has_one_coordinator_whichever_broker_its_members_ask() {
    let mut c = Cluster::start();
    let topic = "shared";
    let partitions = 6;
    let resp = c.create_topic(0, topic, partitions);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
    c.wait_for("every broker knows the topic", |c| c.everywhere(topic).is_some());

    // Every broker names the same coordinator for a group, at its address; groups spread over all three.
    let group = "readers";
    let (coord, addr) = c.coordinator(0, group);
    assert_eq!(addr, c.broker(coord as usize).bootstrap());
    for id in 0..N {
        assert_eq!(c.coordinator(id, group), (coord, addr.clone()), "FindCoordinator at broker {id}");
    }
    let keys: Vec<StrBytes> = (0..30).map(|i| s(&format!("g{i}"))).collect();
    let batched = |id: usize| -> Vec<(String, i32, i32)> {
        let r: FindCoordinatorResponse =
            c.call(id, ApiKey::FindCoordinator, 4, &FindCoordinatorRequest::default().with_coordinator_keys(keys.clone()));
        r.coordinators.iter().map(|k| (k.key.to_string(), k.node_id.0, k.port)).collect()
    };
    let at_0 = batched(0);
    assert_eq!(at_0, batched(1));
    assert_eq!(at_0, batched(2));
    assert_eq!(at_0.iter().map(|(_, node, _)| *node).collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2]));

    // Other brokers refuse the group's requests with NOT_COORDINATOR, so clients look for the coordinator.
    let others: Vec<usize> = (0..N).filter(|id| *id as i32 != coord).collect();
    for id in &others {
        for (api, error) in group_request_errors(&c, *id, group, topic) {
            assert_eq!(error, 16, "{api} at broker {id}");
        }
    }

    // Two librdkafka consumers of one group, bootstrapped through different brokers, form one group and
    // split the partitions.
    let consumer = |id: usize| -> BaseConsumer {
        c.client_config(id)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let members = [consumer(others[0]), consumer(others[1])];
    for m in &members {
        m.subscribe(&[topic]).unwrap();
    }
    let all: BTreeSet<i32> = (0..partitions).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in &members {
            assert!(!matches!(m.poll(Duration::from_millis(100)), Some(Ok(_))), "nothing is produced yet");
        }
        let (a, b) = (assigned(&members[0]), assigned(&members[1]));
        if !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.union(&b).copied().collect::<BTreeSet<_>>() == all {
            break;
        }
        assert!(Instant::now() < deadline, "the two consumers never shared the partitions: {a:?} {b:?}");
    }
    let d: DescribeGroupsResponse =
        c.call(coord as usize, ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]));
    assert_eq!((d.groups[0].group_state.as_str(), d.groups[0].members.len()), ("Stable", 2));
    assert_eq!(listed_groups(&c, coord as usize), vec![group.to_string()]);
    for id in &others {
        assert!(listed_groups(&c, *id).is_empty(), "ListGroups at broker {id} lists only the groups it coordinates");
    }

    // Records to every partition; each consumer reads exactly its own partitions, then commits.
    let n = 600;
    let producer: FutureProducer = c.client_config(coord as usize).set("acks", "all").create().unwrap();
    // One record to each partition listed, acknowledged.
    let produce = |to: Vec<i32>| {
        let sends: Vec<_> = to
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let value = format!("v{i}");
                producer.send_result(FutureRecord::<(), _>::to(topic).payload(&value).partition(*p)).map_err(|(e, _)| e).unwrap()
            })
            .collect();
        for send in sends {
            c.rt.block_on(send).unwrap().unwrap();
        }
    };
    produce((0..n).map(|i| i % partitions).collect());
    let mut got: Vec<BTreeMap<i32, usize>> = vec![BTreeMap::new(), BTreeMap::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.iter().flat_map(|g| g.values()).sum::<usize>() < n as usize {
        assert!(Instant::now() < deadline, "consumed {got:?} of {n} records");
        for (i, m) in members.iter().enumerate() {
            if let Some(msg) = m.poll(Duration::from_millis(100)) {
                *got[i].entry(msg.unwrap().partition()).or_default() += 1;
            }
        }
    }
    for (i, m) in members.iter().enumerate() {
        assert_eq!(got[i].keys().copied().collect::<BTreeSet<_>>(), assigned(m), "consumer {i} read only its partitions");
        m.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let per_partition = i64::from(n / partitions);
    let expected: Vec<(i32, i64)> = (0..partitions).map(|p| (p, per_partition)).collect();
    assert_eq!(c.committed(coord as usize, group), Ok(expected.clone()));
    for id in &others {
        assert_eq!(c.committed(*id, group), Err(16), "OffsetFetch at broker {id}");
    }
    // Only the coordinator exports the group's lag, of every committed partition: those it leads from its
    // logs, the others from the high watermarks their leaders last gave it. All caught up, then behind by
    // p + 1 records on partition p.
    let (_, leaders) = c.everywhere(topic).unwrap();
    assert!(leaders.iter().any(|l| *l != coord), "some partitions live on other brokers: {leaders:?}");
    c.wait_for_lag(coord as usize, group, &(0..partitions).map(|p| (p, 0)).collect());
    let behind: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, i64::from(p) + 1)).collect();
    produce(behind.iter().flat_map(|(p, k)| std::iter::repeat_n(*p, *k as usize)).collect());
    c.wait_for_lag(coord as usize, group, &behind);
    for id in &others {
        assert_eq!(c.lag(*id, group), BTreeMap::new(), "broker {id} does not coordinate the group");
    }
    // A client bootstrapped through any broker finds the offsets through the coordinator.
    let mut wanted = TopicPartitionList::new();
    for p in 0..partitions {
        wanted.add_partition(topic, p);
    }
    for id in 0..N {
        let offsets = consumer(id).committed_offsets(wanted.clone(), Duration::from_secs(30)).unwrap();
        let offsets: Vec<(i32, Offset)> = offsets.elements().iter().map(|e| (e.partition(), e.offset())).collect();
        assert_eq!(
            offsets,
            (0..partitions).map(|p| (p, Offset::Offset(per_partition))).collect::<Vec<_>>(),
            "through broker {id}"
        );
    }
    drop(members);

    // The coordinator shuts down: it is fenced at once, a replica of the group's __consumer_offsets partition
    // leads it, and so coordinates the group, with its committed offsets. Once the old coordinator is back,
    // whichever broker leads the partition has them.
    let dir = c.stop_broker(coord as usize);
    let coordinator_now = |c: &Cluster| -> Option<i32> {
        let named: BTreeSet<(i16, i32)> = c
            .running()
            .map(|id| {
                let r: FindCoordinatorResponse =
                    c.call(id, ApiKey::FindCoordinator, 3, &FindCoordinatorRequest::default().with_key(s(group)));
                (r.error_code, r.node_id.0)
            })
            .collect();
        match named.into_iter().collect::<Vec<_>>()[..] {
            [(0, node)] => Some(node),
            _ => None,
        }
    };
    c.wait_for("the remaining brokers name another coordinator", |c| coordinator_now(c).is_some_and(|n| n != coord));
    let successor = coordinator_now(&c).unwrap() as usize;
    c.wait_for("the new coordinator has the group's offsets", |c| c.committed(successor, group) == Ok(expected.clone()));
    c.start_broker(coord as usize, dir);
    c.wait_in_service();
    c.wait_for("the coordinator has the group's offsets after the restart", |c| {
        coordinator_now(c).is_some_and(|n| c.committed(n as usize, group) == Ok(expected.clone()))
    });
}

fn elect_request(partitions: Option<&[(&str, i32)]>) -> ElectLeadersRequest {
    ElectLeadersRequest::default().with_election_type(0).with_timeout_ms(30_000).with_topic_partitions(partitions.map(|ps| {
        ps.iter()
            .map(|(t, p)| elect_leaders_request::TopicPartitions::default().with_topic(TopicName(s(t))).with_partitions(vec![*p]))
            .collect()
    }))
}

/// (topic, partition, error code) of each election result.
fn elections(resp: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    resp.replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code)))
        .collect()
}

/// ElectLeaders (preferred) moves a partition back to its first replica once that replica is in sync again;
/// answers ELECTION_NOT_NEEDED when it already leads and UNKNOWN_TOPIC_OR_PARTITION for what does not exist.
#[test]
fn elect_leaders_moves_leadership_back_to_the_preferred_replica() {
    let mut c = Cluster::start_with(&[("auto.leader.rebalance.enable", "false")]);
    c.create_replicated("pref", 3);
    let preferred = c.bounce_leader("pref") as i32;
    assert_ne!(c.partitions(0, "pref")[0].0, preferred, "nothing moved the leadership back by itself");

    let resp: ElectLeadersResponse = c.call(1, ApiKey::ElectLeaders, 2, &elect_request(Some(&[("pref", 0)])));
    assert_eq!(elections(&resp), vec![("pref".to_string(), 0, 0)], "{resp:?}");
    c.wait_for("every broker names the preferred leader", |c| c.running().all(|id| c.partitions(id, "pref")[0].0 == preferred));
    let resp: ElectLeadersResponse =
        c.call(2, ApiKey::ElectLeaders, 1, &elect_request(Some(&[("pref", 0), ("pref", 7), ("nope", 0)])));
    assert_eq!(
        elections(&resp),
        vec![("nope".to_string(), 0, 3), ("pref".to_string(), 0, 84), ("pref".to_string(), 7, 3)],
        "{resp:?}"
    );
    // All partitions: the others the restarted broker led before move back too; then nothing is left to do.
    let resp: ElectLeadersResponse = c.call(0, ApiKey::ElectLeaders, 2, &elect_request(None));
    assert!(elections(&resp).iter().all(|(_, _, code)| *code == 0), "{resp:?}");
    c.wait_for("every partition is led by its preferred replica", |c| c.preferred_and_in_sync("pref"));
    let resp: ElectLeadersResponse = c.call(0, ApiKey::ElectLeaders, 2, &elect_request(None));
    assert_eq!(elections(&resp), vec![], "{resp:?}");
}

/// auto.leader.rebalance.enable: the controller moves leaderships back to preferred replicas by itself.
#[test]
fn the_controller_moves_leaderships_back_to_preferred_replicas() {
    let mut c = Cluster::start_with(&[("leader.imbalance.check.interval.seconds", "1")]);
    c.create_replicated("balanced", 3);
    c.bounce_leader("balanced");
    c.wait_for("every partition is led by its preferred replica again", |c| c.preferred_and_in_sync("balanced"));
}

/// A reassignment from one replica to two others (a replication factor change) of a partition whose first
/// records were deleted on its leader: the new replicas cannot fetch from offset 0, so they start at the
/// leader's log start offset; the old replica's broker deletes its copy once the new ones are in sync.
#[test]
fn a_reassignment_copies_a_trimmed_partition_to_new_replicas_and_removes_the_old() {
    let c = Cluster::start();
    let topic = "trimmed";
    let create =
        CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![create_topics_request::CreatableTopic::default(
        )
        .with_name(TopicName(s(topic)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![BrokerId(0)])])]);
    let created: CreateTopicsResponse = c.call(0, ApiKey::CreateTopics, 7, &create);
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
    for _ in 0..4 {
        let produced: ProduceResponse =
            c.call(0, ApiKey::Produce, 9, &common::produce_request(topic, 0, record_batch(5, 50, 1_000), 1));
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }
    let trim = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(10),
        ]),
    ]);
    let trimmed: DeleteRecordsResponse = c.call(0, ApiKey::DeleteRecords, 2, &trim);
    assert_eq!(trimmed.topics[0].partitions[0].low_watermark, 10);

    let reassign = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![
        alter_partition_reassignments_request::ReassignableTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            alter_partition_reassignments_request::ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(1), BrokerId(2)])),
        ]),
    ]);
    let resp: AlterPartitionReassignmentsResponse = c.call(2, ApiKey::AlterPartitionReassignments, 0, &reassign);
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "{:?}", resp.responses[0].partitions[0].error_message);
    let partition = |c: &Cluster, id: usize| {
        let md = c.metadata(id);
        let t = md.topics.into_iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)).unwrap();
        let p = &t.partitions[0];
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        (ids(&p.replica_nodes), ids(&p.isr_nodes), p.leader_id.0)
    };
    c.wait_for("brokers 1 and 2 hold the partition in sync", |c| {
        let listed: ListPartitionReassignmentsResponse =
            c.call(1, ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default().with_topics(None));
        listed.topics.is_empty() && (0..N).all(|id| partition(c, id) == (vec![1, 2], vec![1, 2], 1))
    });
    for id in [1, 2] {
        let state = c.broker(id).broker.as_ref().unwrap().state().clone();
        let log = state.replicas.hosted(topic, 0).unwrap().log.clone();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 20), "broker {id}");
    }
    c.wait_for("broker 0 deleted its copy", |c| !c.broker(0).dir.path().join(format!("{topic}-0")).exists());
}

/// Replication throttles (KIP-73) during reassignments: a partition listed in its topic's
/// `follower.replication.throttled.replicas` (then `leader.replication.throttled.replicas`) for the throttling
/// broker copies at about `*.replication.throttled.rate`, while an unlisted partition moving alongside copies at
/// full speed.
#[test]
fn throttled_replicas_copy_at_the_throttled_rate() {
    const RATE: usize = 400_000;
    const BYTES: usize = 2_000_000;
    let c = Cluster::start();
    let alter = |id: usize, resource_type: i8, name: &str, key: &str, value: &str| {
        let req = common::set_config_request(resource_type, name, key, value);
        let resp: IncrementalAlterConfigsResponse = c.call(id, ApiKey::IncrementalAlterConfigs, 1, &req);
        assert_eq!(resp.responses[0].error_code, 0, "{key}={value}: {:?}", resp.responses[0].error_message);
    };
    // (throttling broker and its rate key, the topic's replicas key and value, the new replica)
    let rounds = [
        (1, "follower.replication.throttled.rate", "follower.replication.throttled.replicas", "0:1", 1),
        (0, "leader.replication.throttled.rate", "leader.replication.throttled.replicas", "0:0", 2),
    ];
    for (round, (throttler, rate_key, replicas_key, listed, to)) in rounds.into_iter().enumerate() {
        let topic = format!("throttled-{round}");
        let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(
                    (0..2)
                        .map(|p| {
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_partition_index(p)
                                .with_broker_ids(vec![BrokerId(0)])
                        })
                        .collect(),
                )
                .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                    .with_name(s(replicas_key))
                    .with_value(Some(s(listed)))]),
        ]);
        let created: CreateTopicsResponse = c.call(0, ApiKey::CreateTopics, 7, &create);
        assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
        for p in 0..2 {
            for _ in 0..BYTES / 100_000 {
                let produced: ProduceResponse =
                    c.call(0, ApiKey::Produce, 9, &common::produce_request(&topic, p, record_batch(100, 1000, 1_000), 1));
                assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
            }
        }
        alter(throttler, 4, &throttler.to_string(), rate_key, &RATE.to_string());
        let described: DescribeConfigsResponse = c.call(
            throttler,
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s(&throttler.to_string()))
                .with_configuration_keys(Some(vec![s(rate_key)]))]),
        );
        let entry = &described.results[0].configs[0];
        assert_eq!((entry.value.as_ref().map(|v| v.to_string()), entry.config_source), (Some(RATE.to_string()), 2));

        let started = Instant::now();
        let reassign = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default().with_name(TopicName(s(&topic))).with_partitions(
                (0..2)
                    .map(|p| {
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(p)
                            .with_replicas(Some(vec![BrokerId(0), BrokerId(to)]))
                    })
                    .collect(),
            ),
        ]);
        let resp: AlterPartitionReassignmentsResponse = c.call(0, ApiKey::AlterPartitionReassignments, 0, &reassign);
        assert!(resp.responses[0].partitions.iter().all(|p| p.error_code == 0), "{resp:?}");
        let moving = |c: &Cluster| -> Vec<i32> {
            let listed: ListPartitionReassignmentsResponse =
                c.call(0, ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default().with_topics(None));
            listed.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.partition_index)).collect()
        };
        c.wait_for("the unthrottled partition moved", |c| moving(c) == [0]);
        let unthrottled = started.elapsed();
        c.wait_for("the throttled partition moved", |c| moving(c).is_empty());
        let throttled = started.elapsed();
        // What a bucket of one second's worth lets through at once, plus one fetch (up to 1 MiB), goes early.
        let least = Duration::from_secs_f64((BYTES - RATE - (1 << 20)) as f64 / RATE as f64);
        eprintln!("{rate_key}: the unthrottled partition moved in {unthrottled:?}, the throttled one in {throttled:?}");
        assert!(throttled >= least, "{rate_key}: {BYTES} bytes at {RATE} bytes/s moved in {throttled:?}");
    }
}
