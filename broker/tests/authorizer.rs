//! Authorization with the ACLs in the metadata log, over mTLS: the principal of each client is its certificate's
//! common name (ssl.principal.mapping.rules). A super user creates ACLs; a user may do what they allow and no
//! more (fetching another topic, producing, other groups, creating topics, describing ACLs, talking to the
//! controller quorum are refused with Kafka's codes); ACLs survive a restart; on a three-node cluster whose
//! replication and quorum run over mTLS with a super-user broker certificate, ACLs created through one broker
//! are enforced by all.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use common::pki::{client_config, tls, Ca, Leaf, BOTH};
use common::{create_topic, fetch_request, free_port, produce_with_acks, quorum_settings, record_batch, s, topic_id};
use common::{wait_for, Client, TestBroker};
use kafka_protocol::messages::*;
use strata_broker::controller::rpc::{RpcRequest, RpcResponse, INTERNAL_API_KEY};
use strata_broker::controller::service::ControllerRequest;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;

// Kafka's codes of ACL fields.
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;

/// The certificates of a test: the CA, and the keystore and truststore files of the brokers (`CN=broker`).
struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("Strata ACL CA");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("broker.pem"), ca.leaf("broker").keystore()).unwrap();
        Pki { ca, dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_string()
    }

    /// Every listener SSL with client certificates, the principal the certificate's CN, the authorizer on, and
    /// the brokers (their certificate) and `admin` super users.
    fn settings(&self) -> Vec<(String, String)> {
        [
            ("ssl.keystore.location", self.path("broker.pem")),
            ("ssl.truststore.location", self.path("ca.pem")),
            ("ssl.client.auth", "required".into()),
            ("ssl.principal.mapping.rules", "RULE:^CN=([^,]+),.*$/$1/,DEFAULT".into()),
            ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer".into()),
            ("super.users", "User:broker;User:admin".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    async fn connect(&self, addr: SocketAddr, user: &Leaf) -> Client {
        Client::from_stream(tls(addr, &client_config(&self.ca.pem(), Some(user), BOTH)).await.unwrap())
    }
}

async fn start(data: tempfile::TempDir, settings: &[(String, String)]) -> TestBroker {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestBroker::start_in(data, &pairs).await
}

fn creation(resource_type: i8, name: &str, pattern: i8, principal: &str, operation: i8) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW)
}

async fn create_acls(c: &mut Client, creations: Vec<create_acls_request::AclCreation>) -> Vec<i16> {
    let resp: CreateAclsResponse = c.call(ApiKey::CreateAcls, 3, &CreateAclsRequest::default().with_creations(creations)).await;
    resp.results.iter().map(|r| r.error_code).collect()
}

/// DescribeAcls of every binding: the error, and (resource type, name, pattern type, principal, operation)s.
async fn describe_all(c: &mut Client) -> (i16, Vec<(i8, String, i8, String, i8)>) {
    let req = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let resp: DescribeAclsResponse = c.call(ApiKey::DescribeAcls, 3, &req).await;
    let mut out: Vec<_> = resp
        .resources
        .iter()
        .flat_map(|r| {
            r.acls
                .iter()
                .map(|a| (r.resource_type, r.resource_name.to_string(), r.pattern_type, a.principal.to_string(), a.operation))
        })
        .collect();
    out.sort();
    (resp.error_code, out)
}

async fn metadata(c: &mut Client, topics: Option<&[&str]>) -> MetadataResponse {
    let topics = topics.map(|ts| {
        ts.iter().map(|t| metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))).collect()
    });
    c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false)).await
}

fn names(md: &MetadataResponse) -> Vec<(String, i16)> {
    md.topics.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(), t.error_code)).collect()
}

async fn fetch_error(c: &mut Client, topic: &str, id: uuid::Uuid) -> i16 {
    let resp: FetchResponse = c.call(ApiKey::Fetch, 13, &fetch_request(topic, id, 0, 0)).await;
    resp.responses[0].partitions[0].error_code
}

async fn find_coordinator_error(c: &mut Client, group: &str) -> i16 {
    let resp: FindCoordinatorResponse =
        c.call(ApiKey::FindCoordinator, 3, &FindCoordinatorRequest::default().with_key(s(group))).await;
    resp.error_code
}

/// A controller request (DescribeQuorum) in the internal framing, as another node would send it: the answer.
async fn internal_rpc(c: &mut Client) -> RpcResponse {
    let body = serde_json::to_vec(&RpcRequest::Controller(ControllerRequest::DescribeQuorum)).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(10 + body.len() as i32);
    frame.put_i16(INTERNAL_API_KEY);
    frame.put_i16(0);
    frame.put_i32(77);
    frame.put_i16(0);
    frame.put_slice(&body);
    c.send_raw(&frame).await;
    let mut answer = c.read_frame().await.expect("an answer, not a closed connection");
    assert_eq!(answer.get_i32(), 77);
    serde_json::from_slice(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_do_what_acls_allow_and_they_survive_a_restart() {
    let pki = Pki::new();
    let mut settings = pki.settings();
    settings.push(("listeners".into(), "SSL://127.0.0.1:0".into()));
    let broker = start(tempfile::tempdir().unwrap(), &settings).await;
    let (admin_cert, alice_cert, bob_cert) = (pki.ca.leaf("admin"), pki.ca.leaf("alice"), pki.ca.leaf("bob"));
    let mut admin = pki.connect(broker.addr, &admin_cert).await;
    let batch = record_batch(5, 100, 1_700_000_000_000);
    for t in ["a", "b"] {
        create_topic(&mut admin, t, 1, &[]).await;
        assert_eq!(produce_with_acks(&mut admin, t, 0, batch.clone(), -1).await.error_code, 0, "a super user writes {t}");
    }
    let (a, b) = (topic_id(&mut admin, "a").await, topic_id(&mut admin, "b").await);

    let mut alice = pki.connect(broker.addr, &alice_cert).await;
    // Before any ACL: nothing (allow.everyone.if.no.acl.found is off).
    assert_eq!(fetch_error(&mut alice, "a", a).await, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(
        create_acls(&mut alice, vec![creation(TOPIC, "a", LITERAL, "User:alice", READ)]).await,
        vec![CLUSTER_AUTHORIZATION_FAILED]
    );

    let created = create_acls(
        &mut admin,
        vec![
            creation(TOPIC, "a", LITERAL, "User:alice", READ),
            creation(GROUP, "team-", PREFIXED, "User:alice", READ),
            // Invalid: ANY is a filter value, and a principal needs its type.
            creation(ANY, "a", LITERAL, "User:alice", READ),
            creation(TOPIC, "a", LITERAL, "alice", READ),
            // Again: not added twice.
            creation(TOPIC, "a", LITERAL, "User:alice", READ),
        ],
    )
    .await;
    assert_eq!(created, vec![0, 0, INVALID_REQUEST, INVALID_REQUEST, 0]);
    let bindings = describe_all(&mut admin).await;
    let expected = vec![
        (TOPIC, "a".to_string(), LITERAL, "User:alice".to_string(), READ),
        (GROUP, "team-".to_string(), PREFIXED, "User:alice".to_string(), READ),
    ];
    assert_eq!(bindings, (0, expected.clone()));

    assert_eq!(fetch_error(&mut alice, "a", a).await, 0, "READ on a");
    assert_eq!(fetch_error(&mut alice, "b", b).await, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(produce_with_acks(&mut alice, "a", 0, batch.clone(), -1).await.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(names(&metadata(&mut alice, None).await), vec![("a".to_string(), 0)], "b is left out of all topics");
    assert_eq!(
        names(&metadata(&mut alice, Some(&["b", "nope"])).await),
        vec![("b".to_string(), TOPIC_AUTHORIZATION_FAILED), ("nope".to_string(), TOPIC_AUTHORIZATION_FAILED),]
    );
    // Authorized operations, as AdminClient's describeTopics/describeCluster ask: READ and the DESCRIBE it implies.
    let ops = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("a"))))]))
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    let md: MetadataResponse = alice.call(ApiKey::Metadata, 10, &ops).await;
    assert_eq!((md.topics[0].topic_authorized_operations, md.cluster_authorized_operations), (1 << READ | 1 << DESCRIBE, 0));
    let created = common::try_create_topic(&mut alice, "c", 1, &[]).await;
    assert_eq!(created.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_ne!(find_coordinator_error(&mut alice, "team-blue").await, GROUP_AUTHORIZATION_FAILED, "prefixed READ");
    assert_eq!(find_coordinator_error(&mut alice, "other").await, GROUP_AUTHORIZATION_FAILED);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("other")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"));
    let joined: JoinGroupResponse = alice.call(ApiKey::JoinGroup, 5, &join).await;
    assert_eq!(joined.error_code, GROUP_AUTHORIZATION_FAILED);
    let mut bob = pki.connect(broker.addr, &bob_cert).await;
    let init_producer_id = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(-1);
    let init: InitProducerIdResponse = bob.call(ApiKey::InitProducerId, 4, &init_producer_id).await;
    assert_eq!(init.error_code, CLUSTER_AUTHORIZATION_FAILED, "no IDEMPOTENT_WRITE and no WRITE on any topic");
    assert_eq!(describe_all(&mut alice).await.0, CLUSTER_AUTHORIZATION_FAILED);
    match internal_rpc(&mut alice).await {
        RpcResponse::Refused(why) => assert!(why.contains("CLUSTER_AUTHORIZATION_FAILED"), "{why}"),
        other => panic!("alice reached the controller: {other:?}"),
    }
    assert!(matches!(internal_rpc(&mut admin).await, RpcResponse::Controller(_)), "a super user does");
    assert!(broker.metric("strata_authorization_denied_total").unwrap() >= 10.0);

    // DeleteAcls returns what it removed; the group is then refused.
    let filter = delete_acls_request::DeleteAclsFilter::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(GROUP)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let deleted: DeleteAclsResponse =
        admin.call(ApiKey::DeleteAcls, 3, &DeleteAclsRequest::default().with_filters(vec![filter])).await;
    let matched = &deleted.filter_results[0];
    assert_eq!((matched.error_code, matched.matching_acls.len()), (0, 1));
    assert_eq!(matched.matching_acls[0].resource_name.as_str(), "team-");
    assert_eq!(find_coordinator_error(&mut alice, "team-blue").await, GROUP_AUTHORIZATION_FAILED);

    // After a restart the ACLs are read back from the metadata log.
    drop((admin, alice, bob));
    let data = broker.stop().await;
    let broker = start(data, &settings).await;
    let mut alice = pki.connect(broker.addr, &alice_cert).await;
    assert_eq!(fetch_error(&mut alice, "a", a).await, 0);
    assert_eq!(fetch_error(&mut alice, "b", b).await, TOPIC_AUTHORIZATION_FAILED);
    let mut admin = pki.connect(broker.addr, &admin_cert).await;
    assert_eq!(describe_all(&mut admin).await, (0, expected[..1].to_vec()));
    // WRITE on some topics (Kafka >= 3.0) is enough for an idempotent producer's id.
    assert_eq!(create_acls(&mut admin, vec![creation(TOPIC, "out-", PREFIXED, "User:bob", WRITE)]).await, vec![0]);
    let mut bob = pki.connect(broker.addr, &bob_cert).await;
    let init: InitProducerIdResponse = bob.call(ApiKey::InitProducerId, 4, &init_producer_id).await;
    assert_eq!(init.error_code, 0);
    drop((admin, alice, bob));
    broker.stop().await;
}

/// Three nodes whose every listener is SSL with client certificates (replication and the quorum use the
/// brokers' super-user certificate): an ACL created through one broker is enforced by all of them.
#[test]
fn acls_created_through_one_broker_are_enforced_by_all() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pki = Pki::new();
    let voter_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let brokers: Vec<TestBroker> = (0..3)
        .map(|id| {
            let mut settings = quorum_settings(id, &voter_ports, "acl-cluster");
            settings.extend(pki.settings());
            settings.push(("listeners".into(), format!("SSL://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", voter_ports[id])));
            settings.push(("listener.security.protocol.map".into(), "SSL:SSL,CONTROLLER:SSL".into()));
            rt.block_on(start(tempfile::tempdir().unwrap(), &settings))
        })
        .collect();
    let (admin_cert, alice_cert) = (pki.ca.leaf("admin"), pki.ca.leaf("alice"));
    let as_user = |b: &TestBroker, user: &Leaf| rt.block_on(pki.connect(b.addr, user));
    wait_for("every broker is in service", &mut || {
        brokers.iter().all(|b| rt.block_on(metadata(&mut as_user(b, &admin_cert), None)).brokers.len() == 3)
    });
    rt.block_on(create_topic(&mut as_user(&brokers[0], &admin_cert), "shared", 1, &[]));
    let alice_sees = |b: &TestBroker| rt.block_on(metadata(&mut as_user(b, &alice_cert), Some(&["shared"]))).topics[0].error_code;
    for b in &brokers {
        assert_eq!(alice_sees(b), TOPIC_AUTHORIZATION_FAILED);
    }
    let created = rt.block_on(create_acls(
        &mut as_user(&brokers[1], &admin_cert),
        vec![creation(TOPIC, "shared", LITERAL, "User:alice", DESCRIBE)],
    ));
    assert_eq!(created, vec![0]);
    wait_for("every broker lets alice describe the topic", &mut || brokers.iter().all(|b| alice_sees(b) == 0));
    for b in &brokers {
        let (error, bindings) = rt.block_on(describe_all(&mut as_user(b, &admin_cert)));
        assert_eq!((error, bindings.len()), (0, 1));
        match rt.block_on(internal_rpc(&mut as_user(b, &alice_cert))) {
            RpcResponse::Refused(why) => assert!(why.contains("CLUSTER_AUTHORIZATION_FAILED"), "{why}"),
            other => panic!("alice reached the controller: {other:?}"),
        }
    }
    for b in brokers {
        rt.block_on(b.stop());
    }
}

/// Without authorizer.class.name every request is allowed, as before, and the ACL APIs say so.
#[tokio::test]
async fn without_an_authorizer_acl_apis_answer_security_disabled() {
    const SECURITY_DISABLED: i16 = 54;
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    assert_eq!(describe_all(&mut c).await, (SECURITY_DISABLED, vec![]));
    assert_eq!(create_acls(&mut c, vec![creation(TOPIC, "t", LITERAL, "User:alice", READ)]).await, vec![SECURITY_DISABLED]);
    create_topic(&mut c, "t", 1, &[]).await;
    assert_eq!(produce_with_acks(&mut c, "t", 0, record_batch(1, 10, 1_700_000_000_000), -1).await.error_code, 0);
    assert!(matches!(internal_rpc(&mut c).await, RpcResponse::Controller(_)));
    drop(c);
    broker.stop().await;
}

/// A principal without ACLs is refused by every API with Kafka's code for the resource it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_refuses_a_principal_without_acls() {
    let pki = Pki::new();
    let mut settings = pki.settings();
    settings.push(("listeners".into(), "SSL://127.0.0.1:0".into()));
    let broker = start(tempfile::tempdir().unwrap(), &settings).await;
    let (admin_cert, bob_cert) = (pki.ca.leaf("admin"), pki.ca.leaf("bob"));
    let mut admin = pki.connect(broker.addr, &admin_cert).await;
    create_topic(&mut admin, "t", 1, &[]).await;
    let id = topic_id(&mut admin, "t").await;
    let mut bob = pki.connect(broker.addr, &bob_cert).await;
    let c = &mut bob;
    let (topic, group, cluster) = (TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED);
    let g = || GroupId(s("g"));
    let t = || TopicName(s("t"));

    let r: DeleteTopicsResponse = c
        .call(
            ApiKey::DeleteTopics,
            6,
            &DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(t()))]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, topic, "DeleteTopics");
    let r: CreatePartitionsResponse = c
        .call(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default().with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                .with_name(t())
                .with_count(2)
                .with_assignments(None)]),
        )
        .await;
    assert_eq!(r.results[0].error_code, topic, "CreatePartitions");
    let r: DeleteRecordsResponse = c
        .call(
            ApiKey::DeleteRecords,
            2,
            &DeleteRecordsRequest::default().with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(t())
                .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_offset(-1)])]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, topic, "DeleteRecords");
    let r: ListOffsetsResponse = c
        .call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(t())
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)]),
            ]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, topic, "ListOffsets");
    let r: OffsetForLeaderEpochResponse = c
        .call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            &OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(t())
                    .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()]),
            ]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, topic, "OffsetForLeaderEpoch");
    // A follower's fetch needs CLUSTER_ACTION.
    let follower = fetch_request("t", id, 0, 0).with_replica_id(BrokerId(0));
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &follower).await;
    assert_eq!(r.responses[0].partitions[0].error_code, topic, "replica Fetch");
    for (resource_type, name, code) in [(TOPIC, "t", topic), (4, "0", cluster)] {
        let r: DescribeConfigsResponse = c
            .call(
                ApiKey::DescribeConfigs,
                4,
                &DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(s(name))
                        .with_configuration_keys(None),
                ]),
            )
            .await;
        assert_eq!(r.results[0].error_code, code, "DescribeConfigs {name}");
        let r: IncrementalAlterConfigsResponse = c
            .call(ApiKey::IncrementalAlterConfigs, 1, &common::set_config_request(resource_type, name, "retention.ms", "1000"))
            .await;
        assert_eq!(r.responses[0].error_code, code, "IncrementalAlterConfigs {name}");
        let r: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                2,
                &AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(s(name))]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, code, "AlterConfigs {name}");
    }

    let r: OffsetCommitResponse = c
        .call(
            ApiKey::OffsetCommit,
            8,
            &OffsetCommitRequest::default().with_group_id(g()).with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(t()).with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(1),
                ]),
            ]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, group, "OffsetCommit");
    let r: OffsetFetchResponse =
        c.call(ApiKey::OffsetFetch, 7, &OffsetFetchRequest::default().with_group_id(g()).with_topics(None)).await;
    assert_eq!(r.error_code, group, "OffsetFetch");
    let r: DescribeGroupsResponse =
        c.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![g()])).await;
    assert_eq!(r.groups[0].error_code, group, "DescribeGroups");
    let r: DeleteGroupsResponse =
        c.call(ApiKey::DeleteGroups, 2, &DeleteGroupsRequest::default().with_groups_names(vec![g()])).await;
    assert_eq!(r.results[0].error_code, group, "DeleteGroups");
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &OffsetDeleteRequest::default().with_group_id(g())).await;
    assert_eq!(r.error_code, group, "OffsetDelete");
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &SyncGroupRequest::default().with_group_id(g())).await;
    assert_eq!(r.error_code, group, "SyncGroup");
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &HeartbeatRequest::default().with_group_id(g())).await;
    assert_eq!(r.error_code, group, "Heartbeat");
    let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 4, &LeaveGroupRequest::default().with_group_id(g())).await;
    assert_eq!(r.error_code, group, "LeaveGroup");

    let r: AlterPartitionReassignmentsResponse =
        c.call(ApiKey::AlterPartitionReassignments, 0, &AlterPartitionReassignmentsRequest::default()).await;
    assert_eq!(r.error_code, cluster, "AlterPartitionReassignments");
    let r: ListPartitionReassignmentsResponse =
        c.call(ApiKey::ListPartitionReassignments, 0, &ListPartitionReassignmentsRequest::default().with_topics(None)).await;
    assert_eq!(r.error_code, cluster, "ListPartitionReassignments");
    let r: ElectLeadersResponse =
        c.call(ApiKey::ElectLeaders, 2, &ElectLeadersRequest::default().with_topic_partitions(None)).await;
    assert_eq!(r.error_code, cluster, "ElectLeaders");
    // Anyone may describe the cluster (as on Kafka's brokers), with the operations they may do on it: none.
    let describe = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let r: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, 1, &describe).await;
    assert_eq!((r.error_code, r.brokers.len(), r.cluster_authorized_operations), (0, 1, 0), "DescribeCluster");
    let r: DescribeLogDirsResponse =
        c.call(ApiKey::DescribeLogDirs, 4, &DescribeLogDirsRequest::default().with_topics(None)).await;
    assert_eq!((r.error_code, r.results.len()), (cluster, 0), "DescribeLogDirs");
    let r: DescribeQuorumResponse = c.call(ApiKey::DescribeQuorum, 1, &DescribeQuorumRequest::default()).await;
    assert_eq!(r.error_code, cluster, "DescribeQuorum");
    let r: UnregisterBrokerResponse =
        c.call(ApiKey::UnregisterBroker, 0, &UnregisterBrokerRequest::default().with_broker_id(BrokerId(5))).await;
    assert_eq!(r.error_code, cluster, "UnregisterBroker");
    // A group with offsets (committed by the super user) is listed only to who may describe it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while find_coordinator_error(&mut admin, "g").await != 0 {
        assert!(Instant::now() < deadline, "no coordinator for g");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let commit = OffsetCommitRequest::default().with_group_id(g()).with_generation_id_or_member_epoch(-1).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(t())
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(0)]),
    ]);
    let r: OffsetCommitResponse = admin.call(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let listed = |r: ListGroupsResponse| r.groups.iter().map(|g| g.group_id.to_string()).collect::<Vec<_>>();
    assert_eq!(listed(admin.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await), vec!["g"]);
    assert_eq!(listed(bob.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await), Vec::<String>::new());
    // The topic is untouched.
    assert_eq!(names(&metadata(&mut admin, Some(&["t"])).await), vec![("t".to_string(), 0)]);
    drop((admin, bob));
    broker.stop().await;
}
