//! The legacy AlterConfigs API (key 33) over real sockets: the given configs replace all dynamic configs of
//! a topic or broker, in every version, validated like IncrementalAlterConfigs, and passed to the controller
//! in a cluster.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{s, Client, TestBroker};
use kafka_protocol::messages::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
// Kafka's ConfigSource values.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
// Error codes.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

async fn create_topic(c: &mut Client, name: &str) {
    let req =
        CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![create_topics_request::CreatableTopic::default(
        )
        .with_name(TopicName(s(name)))
        .with_num_partitions(1)
        .with_replication_factor(-1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
}

fn resource(resource_type: i8, name: &str, configs: &[(&str, Option<&str>)]) -> alter_configs_request::AlterConfigsResource {
    alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| alter_configs_request::AlterableConfig::default().with_name(s(k)).with_value(v.map(s)))
                .collect(),
        )
}

/// (error code, error message) of each resource, in the request's order.
async fn alter(
    c: &mut Client,
    version: i16,
    validate_only: bool,
    resources: Vec<alter_configs_request::AlterConfigsResource>,
) -> Vec<(i16, String)> {
    let names: Vec<(i8, String)> = resources.iter().map(|r| (r.resource_type, r.resource_name.to_string())).collect();
    let req = AlterConfigsRequest::default().with_resources(resources).with_validate_only(validate_only);
    let resp: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, version, &req).await;
    let answered: Vec<(i8, String)> = resp.responses.iter().map(|r| (r.resource_type, r.resource_name.to_string())).collect();
    assert_eq!(answered, names, "one answer per resource, in order");
    resp.responses.into_iter().map(|r| (r.error_code, r.error_message.map(|m| m.to_string()).unwrap_or_default())).collect()
}

async fn alter_one(
    c: &mut Client,
    version: i16,
    validate_only: bool,
    r: alter_configs_request::AlterConfigsResource,
) -> (i16, String) {
    alter(c, version, validate_only, vec![r]).await.remove(0)
}

async fn incremental_set(c: &mut Client, resource_type: i8, name: &str, key: &str, value: &str) {
    let req = common::set_config_request(resource_type, name, key, value);
    let resp: IncrementalAlterConfigsResponse = c.call(ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
}

/// Every config of a resource by name: (value, config source), or the error code.
async fn try_describe(c: &mut Client, resource_type: i8, name: &str) -> Result<BTreeMap<String, (String, i8)>, i16> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &req).await;
    let result = &resp.results[0];
    if result.error_code != 0 {
        return Err(result.error_code);
    }
    Ok(result
        .configs
        .iter()
        .map(|e| (e.name.to_string(), (e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), e.config_source)))
        .collect())
}

async fn describe(c: &mut Client, resource_type: i8, name: &str) -> BTreeMap<String, (String, i8)> {
    try_describe(c, resource_type, name).await.unwrap_or_else(|code| panic!("describe {name}: error {code}"))
}

/// The configs of a topic that come from its own overrides.
async fn topic_overrides(c: &mut Client, topic: &str) -> BTreeMap<String, String> {
    describe(c, TOPIC, topic)
        .await
        .into_iter()
        .filter(|(_, (_, source))| *source == DYNAMIC_TOPIC_CONFIG)
        .map(|(k, (v, _))| (k, v))
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A broker with topic "t" whose one override, flush.ms=1000, was set by IncrementalAlterConfigs.
async fn broker_with_topic() -> (TestBroker, Client) {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t").await;
    incremental_set(&mut c, TOPIC, "t", "flush.ms", "1000").await;
    assert_eq!(topic_overrides(&mut c, "t").await, map(&[("flush.ms", "1000")]));
    (b, c)
}

#[tokio::test]
async fn every_version_replaces_a_topics_configs() {
    let (b, mut c) = broker_with_topic().await;

    for version in 0..=2 {
        let retention = format!("{}", 3_600_000 + i64::from(version));
        let (code, msg) = alter_one(
            &mut c,
            version,
            false,
            resource(TOPIC, "t", &[("retention.ms", Some(&retention)), ("segment.bytes", Some("1048576"))]),
        )
        .await;
        assert_eq!(code, 0, "v{version}: {msg}");
        let described = describe(&mut c, TOPIC, "t").await;
        assert_eq!(described["flush.ms"].1, DEFAULT_CONFIG, "v{version}: a config not given is back to its default");
        assert_eq!(
            topic_overrides(&mut c, "t").await,
            map(&[("retention.ms", &retention), ("segment.bytes", "1048576")]),
            "v{version}"
        );
        // The next version starts from a config it does not give.
        incremental_set(&mut c, TOPIC, "t", "flush.ms", "1000").await;
    }

    // An empty set removes every override.
    assert_eq!(alter_one(&mut c, 2, false, resource(TOPIC, "t", &[])).await.0, 0);
    assert_eq!(topic_overrides(&mut c, "t").await, BTreeMap::new());

    // The change is stored: a restart keeps it.
    assert_eq!(alter_one(&mut c, 1, false, resource(TOPIC, "t", &[("retention.bytes", Some("100000"))])).await.0, 0);
    drop(c);
    let b = TestBroker::start_in(b.stop().await, &[]).await;
    let mut c = b.client().await;
    assert_eq!(topic_overrides(&mut c, "t").await, map(&[("retention.bytes", "100000")]));
}

#[tokio::test]
async fn refused_and_validate_only_changes_leave_the_configs_as_they_were() {
    let (_b, mut c) = broker_with_topic().await;
    let before = map(&[("flush.ms", "1000")]);

    // validate_only: checked, answered, not applied.
    for version in 0..=2 {
        assert_eq!(
            alter_one(&mut c, version, true, resource(TOPIC, "t", &[("retention.ms", Some("5000"))])).await,
            (0, String::new())
        );
        assert_eq!(topic_overrides(&mut c, "t").await, before, "v{version} validate_only");
        let (code, msg) = alter_one(&mut c, version, true, resource(TOPIC, "t", &[("retention.ms", Some("soon"))])).await;
        assert_eq!(code, INVALID_CONFIG, "v{version}: validate_only still validates");
        assert!(msg.contains("retention.ms"), "{msg}");
    }

    // Invalid values and unknown names: INVALID_CONFIG, and the valid configs given with them are not applied.
    for bad in [("max.message.bytes", "-5"), ("retention.ms", "soon"), ("no.such.config", "1"), ("cleanup.policy", "compact")] {
        let (code, msg) =
            alter_one(&mut c, 1, false, resource(TOPIC, "t", &[("retention.ms", Some("5000")), (bad.0, Some(bad.1))])).await;
        assert_eq!(code, INVALID_CONFIG, "{bad:?}: {msg}");
        assert!(msg.contains(bad.0), "{bad:?}: the message names the config: {msg}");
        assert_eq!(topic_overrides(&mut c, "t").await, before, "{bad:?}");
    }

    // A null value is a bad request.
    let (code, msg) =
        alter_one(&mut c, 0, false, resource(TOPIC, "t", &[("retention.ms", Some("5000")), ("segment.ms", None)])).await;
    assert_eq!(code, INVALID_REQUEST, "{msg}");
    assert!(msg.contains("segment.ms"), "{msg}");
    assert_eq!(topic_overrides(&mut c, "t").await, before);

    // Each resource is answered on its own: an unknown topic, a logger resource and a valid change in one request.
    let results = alter(
        &mut c,
        2,
        false,
        vec![
            resource(TOPIC, "missing", &[("retention.ms", Some("5000"))]),
            resource(BROKER_LOGGER, "0", &[("root", Some("DEBUG"))]),
            resource(TOPIC, "t", &[("retention.ms", Some("5000"))]),
        ],
    )
    .await;
    assert_eq!(results[0].0, UNKNOWN_TOPIC_OR_PARTITION, "{}", results[0].1);
    assert_eq!(results[1].0, INVALID_REQUEST);
    assert!(results[1].1.contains("resource type 8"), "{}", results[1].1);
    assert_eq!(results[2], (0, String::new()));
    assert_eq!(topic_overrides(&mut c, "t").await, map(&[("retention.ms", "5000")]));
}

#[tokio::test]
async fn broker_resources_replace_the_dynamic_broker_defaults() {
    let b = TestBroker::start(&[("log.segment.bytes", "2097152")]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t").await;
    incremental_set(&mut c, BROKER, "0", "log.flush.interval.ms", "1000").await;

    let (code, msg) = alter_one(&mut c, 0, false, resource(BROKER, "0", &[("log.retention.ms", Some("7200000"))])).await;
    assert_eq!(code, 0, "{msg}");
    let broker = describe(&mut c, BROKER, "0").await;
    assert_eq!(broker["log.retention.ms"], ("7200000".into(), DYNAMIC_BROKER_CONFIG));
    assert_eq!(broker["log.flush.interval.ms"].1, DEFAULT_CONFIG, "not given: removed");
    assert_eq!(broker["log.segment.bytes"], ("2097152".into(), STATIC_BROKER_CONFIG), "static settings stay");
    // Topics without their own value follow the broker defaults.
    assert_eq!(describe(&mut c, TOPIC, "t").await["retention.ms"], ("7200000".into(), DYNAMIC_DEFAULT_BROKER_CONFIG));

    // An empty name is the cluster-wide default, the same settings here (as IncrementalAlterConfigs has it).
    assert_eq!(alter_one(&mut c, 2, false, resource(BROKER, "", &[("log.retention.bytes", Some("1000000"))])).await.0, 0);
    let default = describe(&mut c, BROKER, "").await;
    assert_eq!(default["log.retention.bytes"], ("1000000".into(), DYNAMIC_DEFAULT_BROKER_CONFIG));
    assert_eq!(default["log.retention.ms"].1, DEFAULT_CONFIG);

    // validate_only, invalid values, read-only settings and other brokers' ids change nothing.
    assert_eq!(alter_one(&mut c, 1, true, resource(BROKER, "0", &[])).await.0, 0);
    let refused = [
        (resource(BROKER, "0", &[("log.retention.bytes", Some("lots"))]), INVALID_CONFIG),
        (resource(BROKER, "0", &[("log.dirs", Some("/elsewhere"))]), INVALID_REQUEST),
        (resource(BROKER, "7", &[]), INVALID_REQUEST),
        (resource(BROKER, "0", &[("log.retention.ms", None)]), INVALID_REQUEST),
    ];
    for (r, expected) in refused {
        let what = format!("{:?}", r.configs);
        let (code, msg) = alter_one(&mut c, 1, false, r).await;
        assert_eq!(code, expected, "{what}: {msg}");
        assert!(!msg.is_empty(), "{what}: a message says why");
    }
    assert_eq!(describe(&mut c, BROKER, "0").await["log.retention.bytes"].0, "1000000");

    // controller.quorum.voters set at run time (by the operator: new addresses, the same voters) changes only
    // when given: a replace that leaves it out keeps it.
    let own = "0@127.0.0.1:1";
    incremental_set(&mut c, BROKER, "0", "controller.quorum.voters", own).await;
    assert_eq!(describe(&mut c, BROKER, "0").await["controller.quorum.voters"], (own.to_string(), DYNAMIC_BROKER_CONFIG));
    assert_eq!(alter_one(&mut c, 1, false, resource(BROKER, "0", &[])).await.0, 0);
    assert_eq!(
        describe(&mut c, BROKER, "0").await["controller.quorum.voters"],
        (own.to_string(), DYNAMIC_BROKER_CONFIG),
        "not given: kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_topic_configs_change_through_the_controller_on_every_broker() {
    // One voter (broker 0) and a broker that is not a voter (broker 1): every change goes through broker 0.
    let ports = [common::free_port()];
    let mut brokers = Vec::new();
    for id in 0..2 {
        let settings = common::quorum_settings(id, &ports, "alter-configs-test");
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        brokers.push(TestBroker::start(&pairs).await);
    }
    let mut clients = Vec::new();
    for b in &brokers {
        clients.push(b.client().await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::try_create_topic(&mut clients[1], "shared", 1, &[]).await.error_code != 0 {
        assert!(Instant::now() < deadline, "broker 1 never reached the controller");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, c) in clients.iter_mut().enumerate() {
        while try_describe(c, TOPIC, "shared").await.is_err() {
            assert!(Instant::now() < deadline, "broker {id} does not know the topic");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    incremental_set(&mut clients[1], TOPIC, "shared", "flush.ms", "1000").await;

    // Through the broker that is not a voter (passed on), then through the controller.
    for (via, retention) in [(1, "3600000"), (0, "7200000")] {
        let (code, msg) =
            alter_one(&mut clients[via], 1, false, resource(TOPIC, "shared", &[("retention.ms", Some(retention))])).await;
        assert_eq!(code, 0, "via broker {via}: {msg}");
        // The broker that answered has applied the change already; the other one follows the log.
        assert_eq!(topic_overrides(&mut clients[via], "shared").await, map(&[("retention.ms", retention)]), "via broker {via}");
        let deadline = Instant::now() + Duration::from_secs(10);
        for (id, c) in clients.iter_mut().enumerate() {
            while topic_overrides(c, "shared").await != map(&[("retention.ms", retention)]) {
                assert!(Instant::now() < deadline, "via broker {via}, on broker {id}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let (code, msg) = alter_one(&mut clients[1], 2, false, resource(TOPIC, "shared", &[("retention.ms", Some("soon"))])).await;
    assert_eq!(code, INVALID_CONFIG, "the controller's refusal reaches the client: {msg}");
    assert!(msg.contains("retention.ms"), "{msg}");
}

#[tokio::test]
async fn default_replication_factor_changes_at_run_time_cluster_wide_only() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let (code, msg) = alter_one(&mut c, 0, false, resource(BROKER, "0", &[("default.replication.factor", Some("1"))])).await;
    assert_eq!(code, INVALID_CONFIG, "per broker: {msg}");
    assert!(msg.contains("cluster-wide"), "{msg}");
    incremental_set(&mut c, BROKER, "", "default.replication.factor", "2").await;
    assert_eq!(describe(&mut c, BROKER, "").await["default.replication.factor"], ("2".into(), DYNAMIC_DEFAULT_BROKER_CONFIG));
    // One broker cannot hold two replicas: topics created with -1 now ask for two.
    let req =
        CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![create_topics_request::CreatableTopic::default(
        )
        .with_name(TopicName(s("two")))
        .with_num_partitions(1)
        .with_replication_factor(-1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 38, "INVALID_REPLICATION_FACTOR: {:?}", resp.topics[0].error_message);
    incremental_set(&mut c, BROKER, "", "default.replication.factor", "1").await;
    create_topic(&mut c, "one").await;
    b.stop().await;
}
