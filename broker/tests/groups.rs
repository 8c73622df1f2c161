//! Consumer groups and idempotent producers at the wire level: requests encoded by kafka-protocol over real
//! sockets to an in-process broker, including restarts and the error codes clients expect.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{s, Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use strata_storage::batch::plain_record;
use strata_storage::TopicPartition;

/// No initial rebalance delay, and auto-created topics with 3 partitions.
const SETTINGS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0"), ("num.partitions", "3")];

/// Creates `topic` (3 partitions) through Metadata's auto-creation.
async fn ensure_topic(c: &mut Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!((resp.topics[0].error_code, resp.topics[0].partitions.len()), (0, 3));
}

/// A consumer-protocol subscription (v0) of `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut v = 0i16.to_be_bytes().to_vec();
    v.extend((topics.len() as i32).to_be_bytes());
    for t in topics {
        v.extend((t.len() as i16).to_be_bytes());
        v.extend(t.as_bytes());
    }
    v.extend((-1i32).to_be_bytes());
    Bytes::from(v)
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription(&["t"]))])
}

/// KIP-394: the first JoinGroup returns MEMBER_ID_REQUIRED with the member id to use.
async fn member_id(c: &mut Client, group: &str) -> String {
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request(group, "")).await;
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(!r.member_id.is_empty());
    r.member_id.to_string()
}

fn sync_request(group: &str, member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        )
}

async fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let req =
        HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(member)).with_generation_id(generation);
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req).await;
    r.error_code
}

fn commit_request(group: &str, member: &str, generation: i32, offsets: &[(&str, i32, i64, &str)]) -> OffsetCommitRequest {
    let mut topics: Vec<offset_commit_request::OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(3)
            .with_committed_metadata(Some(s(metadata)));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(topics)
}

/// Error codes of an OffsetCommit response, flattened in request order.
async fn commit(c: &mut Client, version: i16, req: &OffsetCommitRequest) -> Vec<i16> {
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, version, req).await;
    r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// (topic, partition, offset, metadata) committed for `group` (all partitions), via OffsetFetch v7.
async fn fetch_offsets(c: &mut Client, group: &str) -> Vec<(String, i32, i64, String)> {
    let req = OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(None);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.error_code, 0);
    let mut out: Vec<_> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (t.name.0.to_string(), p.partition_index, p.committed_offset, p.metadata.as_deref().unwrap_or("").to_string())
            })
        })
        .collect();
    out.sort();
    out
}

async fn describe(c: &mut Client, version: i16, group: &str) -> describe_groups_response::DescribedGroup {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let r: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, version, &req).await;
    r.groups[0].clone()
}

#[tokio::test]
async fn find_coordinator_single_and_batched() {
    let b = TestBroker::start(SETTINGS).await;
    let mut c = b.client().await;
    let r: FindCoordinatorResponse =
        c.call(ApiKey::FindCoordinator, 0, &FindCoordinatorRequest::default().with_key(s("g"))).await;
    assert_eq!((r.error_code, r.node_id.0, r.port, r.host.as_str()), (0, 0, i32::from(b.addr.port()), "127.0.0.1"));
    let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &req).await;
    assert_eq!(
        r.coordinators.iter().map(|c| (c.key.to_string(), c.error_code, c.port)).collect::<Vec<_>>(),
        vec![("a".to_string(), 0, i32::from(b.addr.port())), ("b".to_string(), 0, i32::from(b.addr.port()))]
    );
    // Transaction coordinators do not exist: a fatal error for the client, with a message where possible.
    let r: FindCoordinatorResponse =
        c.call(ApiKey::FindCoordinator, 3, &FindCoordinatorRequest::default().with_key(s("tx")).with_key_type(1)).await;
    assert_eq!(r.error_code, 53);
    assert!(r.error_message.unwrap().contains("transactions"));
    let req = FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("tx")]);
    let r: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 6, &req).await;
    assert_eq!(r.coordinators[0].error_code, 53);
    // The group APIs are advertised, KIP-848 and transactions are not.
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    for api in
        [ApiKey::JoinGroup, ApiKey::SyncGroup, ApiKey::Heartbeat, ApiKey::LeaveGroup, ApiKey::OffsetCommit, ApiKey::OffsetDelete]
    {
        assert!(keys.contains(&(api as i16)), "{api:?}");
    }
    for api in [ApiKey::ConsumerGroupHeartbeat, ApiKey::AddPartitionsToTxn, ApiKey::EndTxn, ApiKey::TxnOffsetCommit] {
        assert!(!keys.contains(&(api as i16)), "{api:?}");
    }
    b.stop().await;
}

#[tokio::test]
async fn membership_and_offsets_survive_a_restart() {
    let b = TestBroker::start(SETTINGS).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "t").await;
    let m = member_id(&mut c, "g1").await;
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request("g1", &m)).await;
    assert_eq!((r.error_code, r.generation_id, r.leader.as_str(), r.members.len()), (0, 1, m.as_str(), 1));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync_request("g1", &m, 1, &[(&m, "A")])).await;
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"A"[..]));
    assert_eq!(heartbeat(&mut c, "g1", &m, 1).await, 0);
    assert_eq!(heartbeat(&mut c, "g1", &m, 9).await, 22, "ILLEGAL_GENERATION");
    assert_eq!(heartbeat(&mut c, "g1", "ghost", 1).await, 25, "UNKNOWN_MEMBER_ID");

    let big = "x".repeat(5000);
    let req = commit_request("g1", &m, 1, &[("t", 0, 10, "meta"), ("t", 1, 20, ""), ("nope", 0, 1, ""), ("t", 2, 30, &big)]);
    assert_eq!(commit(&mut c, 8, &req).await, vec![0, 0, 12, 3], "metadata too large, unknown topic (grouped by topic)");
    assert_eq!(commit(&mut c, 8, &commit_request("g1", &m, 0, &[("t", 0, 11, "")])).await, vec![22], "stale generation");
    let expected = vec![("t".to_string(), 0, 10, "meta".to_string()), ("t".to_string(), 1, 20, String::new())];
    assert_eq!(fetch_offsets(&mut c, "g1").await, expected);
    // Multi-group OffsetFetch (v8+): named partitions of one group, everything of another, an unknown group.
    let group = |id: &str, topics: Option<Vec<offset_fetch_request::OffsetFetchRequestTopics>>| {
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s(id))).with_topics(topics)
    };
    let named = vec![offset_fetch_request::OffsetFetchRequestTopics::default()
        .with_name(TopicName(s("t")))
        .with_partition_indexes(vec![1, 2])];
    let req = OffsetFetchRequest::default().with_groups(vec![group("g1", Some(named)), group("g1", None), group("other", None)]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 9, &req).await;
    let offsets = |g: &offset_fetch_response::OffsetFetchResponseGroup| -> Vec<(i32, i64, i32)> {
        g.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset, p.committed_leader_epoch)))
            .collect()
    };
    assert_eq!(offsets(&r.groups[0]), vec![(1, 20, 3), (2, -1, -1)]);
    assert_eq!(offsets(&r.groups[1]).len(), 2);
    assert!(r.groups[2].topics.is_empty() && r.groups[2].error_code == 0);
    let d = describe(&mut c, 5, "g1").await;
    assert_eq!(
        (d.group_state.as_str(), d.protocol_data.as_str(), &d.members[0].member_assignment[..]),
        ("Stable", "range", &b"A"[..])
    );
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    let r: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default()).await;
    let listed: Vec<_> =
        r.groups.iter().map(|g| (g.group_id.0.to_string(), g.protocol_type.to_string(), g.group_state.to_string())).collect();
    assert_eq!(listed, vec![("g1".to_string(), "consumer".to_string(), "Stable".to_string())]);
    let r: ListGroupsResponse =
        c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default().with_states_filter(vec![s("Empty")])).await;
    assert!(r.groups.is_empty());

    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, SETTINGS).await;
    let mut c = b.client().await;
    assert_eq!(fetch_offsets(&mut c, "g1").await, expected, "committed offsets survive");
    // The member keeps its generation and assignment: no rebalance needed after the restart.
    assert_eq!(heartbeat(&mut c, "g1", &m, 1).await, 0);
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync_request("g1", &m, 1, &[])).await;
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"A"[..]));
    assert_eq!(describe(&mut c, 5, "g1").await.group_state.as_str(), "Stable");

    // Batch LeaveGroup, then the empty group can be deleted; non-empty or unknown ones cannot.
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1"))]);
    let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req).await;
    assert_eq!(r.results[0].error_code, 68, "NON_EMPTY_GROUP");
    let leave = |id: &str| leave_group_request::MemberIdentity::default().with_member_id(s(id));
    let req = LeaveGroupRequest::default().with_group_id(GroupId(s("g1"))).with_members(vec![leave(&m), leave("ghost")]);
    let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 5, &req).await;
    assert_eq!(r.members.iter().map(|m| m.error_code).collect::<Vec<_>>(), vec![0, 25]);
    let d = describe(&mut c, 5, "g1").await;
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Empty", 0));
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g1")), GroupId(s("none"))]);
    let r: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &req).await;
    assert_eq!(r.results.iter().map(|r| r.error_code).collect::<Vec<_>>(), vec![0, 69]);
    assert!(fetch_offsets(&mut c, "g1").await.is_empty());
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, SETTINGS).await;
    let mut c = b.client().await;
    assert!(fetch_offsets(&mut c, "g1").await.is_empty(), "deletion is durable");
    assert_eq!(describe(&mut c, 6, "g1").await.error_code, 69);
    b.stop().await;
}

#[tokio::test]
async fn a_second_member_parks_until_the_group_rebalanced() {
    let b = TestBroker::start(SETTINGS).await;
    let (mut c1, mut c2) = (b.client().await, b.client().await);
    let m1 = member_id(&mut c1, "g").await;
    let r: JoinGroupResponse = c1.call(ApiKey::JoinGroup, 9, &join_request("g", &m1)).await;
    assert_eq!(r.generation_id, 1);
    let r: SyncGroupResponse = c1.call(ApiKey::SyncGroup, 5, &sync_request("g", &m1, 1, &[(&m1, "A")])).await;
    assert_eq!(r.error_code, 0);

    let m2 = member_id(&mut c2, "g").await;
    let join2 = c2.encode(ApiKey::JoinGroup, 9, &join_request("g", &m2));
    c2.send_raw(&join2).await;
    assert!(tokio::time::timeout(Duration::from_millis(300), c2.read_frame()).await.is_err(), "parked until m1 rejoins");
    assert_eq!(heartbeat(&mut c1, "g", &m1, 1).await, 27, "REBALANCE_IN_PROGRESS tells m1 to rejoin");
    let r: JoinGroupResponse = c1.call(ApiKey::JoinGroup, 9, &join_request("g", &m1)).await;
    assert_eq!((r.generation_id, r.leader.as_str(), r.members.len()), (2, m1.as_str(), 2));
    let (_, r2): (i32, JoinGroupResponse) = Client::decode(ApiKey::JoinGroup, 9, c2.read_frame().await.unwrap());
    assert_eq!((r2.error_code, r2.generation_id, r2.leader.as_str(), r2.members.len()), (0, 2, m1.as_str(), 0));

    // The follower's SyncGroup waits for the leader's assignment.
    let sync2 = c2.encode(ApiKey::SyncGroup, 5, &sync_request("g", &m2, 2, &[]));
    c2.send_raw(&sync2).await;
    assert!(tokio::time::timeout(Duration::from_millis(200), c2.read_frame()).await.is_err());
    let r: SyncGroupResponse = c1.call(ApiKey::SyncGroup, 5, &sync_request("g", &m1, 2, &[(&m1, "A"), (&m2, "B")])).await;
    assert_eq!(&r.assignment[..], b"A");
    let (_, r2): (i32, SyncGroupResponse) = Client::decode(ApiKey::SyncGroup, 5, c2.read_frame().await.unwrap());
    assert_eq!((r2.error_code, &r2.assignment[..], r2.protocol_name.as_deref()), (0, &b"B"[..], Some("range")));

    // Leaving (v0 form) makes the other member rebalance again.
    let req = LeaveGroupRequest::default().with_group_id(GroupId(s("g"))).with_member_id(s(&m2));
    let r: LeaveGroupResponse = c2.call(ApiKey::LeaveGroup, 0, &req).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(heartbeat(&mut c1, "g", &m1, 2).await, 27);
    b.stop().await;
}

#[tokio::test]
async fn bad_group_requests_get_kafkas_error_codes() {
    let b = TestBroker::start(SETTINGS).await;
    let mut c = b.client().await;
    let join = |group: &str, member: &str| join_request(group, member);
    let cases: Vec<(JoinGroupRequest, i16)> = vec![
        (join("", ""), 24),                             // INVALID_GROUP_ID
        (join(&"g".repeat(40_000), ""), 24),            // longer than a stored string can be
        (join("g", "").with_session_timeout_ms(1), 26), // INVALID_SESSION_TIMEOUT
        (join("unknown", "someone"), 25),               // UNKNOWN_MEMBER_ID: only new members create groups
        (join("g", "").with_protocol_type(s("")), 23),  // INCONSISTENT_GROUP_PROTOCOL
    ];
    for (req, expected) in cases {
        let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &req).await;
        assert_eq!(r.error_code, expected, "{:?}", req.group_id.0.get(..20));
    }
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 3, &sync_request("unknown", "m", 1, &[])).await;
    assert_eq!(r.error_code, 25);
    assert_eq!(heartbeat(&mut c, "unknown", "m", 1).await, 25);
    assert_eq!(commit(&mut c, 2, &commit_request("unknown", "m", 4, &[("t", 0, 1, "")])).await, vec![3], "unknown topic first");
    ensure_topic(&mut c, "t").await;
    assert_eq!(commit(&mut c, 2, &commit_request("unknown", "m", 4, &[("t", 0, 1, "")])).await, vec![22], "ILLEGAL_GENERATION");
    let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("unknown")));
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req).await;
    assert_eq!(r.error_code, 69);
    assert_eq!(describe(&mut c, 5, "unknown").await.group_state.as_str(), "Dead");
    let req = LeaveGroupRequest::default().with_group_id(GroupId(s("unknown"))).with_member_id(s("m"));
    let r: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 1, &req).await;
    assert_eq!(r.error_code, 25);

    // A member of a running group: wrong protocol name, stale generation, subscribed-topic offsets.
    let m = member_id(&mut c, "g").await;
    let _: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request("g", &m)).await;
    let r: SyncGroupResponse =
        c.call(ApiKey::SyncGroup, 5, &sync_request("g", &m, 1, &[]).with_protocol_name(Some(s("roundrobin")))).await;
    assert_eq!(r.error_code, 23);
    let r: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync_request("g", &m, 0, &[])).await;
    assert_eq!(r.error_code, 22);
    assert_eq!(
        commit(&mut c, 9, &commit_request("g", &m, 1, &[("t", 0, 1, "")])).await,
        vec![27],
        "REBALANCE_IN_PROGRESS before sync"
    );
    let _: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync_request("g", &m, 1, &[])).await;
    assert_eq!(commit(&mut c, 9, &commit_request("g", &m, 1, &[("t", 0, 1, "")])).await, vec![0]);
    assert_eq!(
        commit(&mut c, 9, &commit_request("g", "", -1, &[("t", 0, 2, "")])).await,
        vec![25],
        "admin commit to a live group"
    );
    let req = OffsetDeleteRequest::default().with_group_id(GroupId(s("g"))).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)]),
    ]);
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req).await;
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 86), "GROUP_SUBSCRIBED_TO_TOPIC");
    // Once the group is empty the offset can be deleted.
    let req_leave = LeaveGroupRequest::default().with_group_id(GroupId(s("g"))).with_member_id(s(&m));
    let _: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 2, &req_leave).await;
    let r: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req).await;
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert!(fetch_offsets(&mut c, "g").await.is_empty());
    // The connection survived all of it.
    assert_eq!(heartbeat(&mut c, "g", &m, 1).await, 25);
    b.stop().await;
}

#[tokio::test]
async fn the_offsets_log_is_rewritten_and_stays_small() {
    let settings = [
        ("group.initial.rebalance.delay.ms", "0"),
        ("num.partitions", "3"),
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "16384"),
        ("offsets.snapshot.min.bytes", "4096"),
    ];
    let b = TestBroker::start(&settings).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "t").await;
    for i in 0..3000 {
        let req = commit_request("simple", "", -1, &[("t", 0, i, "m"), ("t", 1, 2 * i, "")]);
        assert_eq!(commit(&mut c, 7, &req).await, vec![0, 0]);
    }
    let log =
        b.broker.as_ref().unwrap().state().replicas.log_manager().get(&TopicPartition::new("__consumer_offsets", 0)).unwrap();
    assert!(log.log_start_offset() > 2000, "old records deleted: start {}", log.log_start_offset());
    assert!(log.size_bytes() < 64 * 1024, "{} bytes for 6000 commits", log.size_bytes());
    drop(log);
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, &settings).await;
    let mut c = b.client().await;
    assert_eq!(
        fetch_offsets(&mut c, "simple").await,
        vec![("t".into(), 0, 2999, "m".into()), ("t".into(), 1, 5998, String::new())]
    );
    b.stop().await;
}

#[tokio::test]
async fn offsets_expire_after_their_retention() {
    let settings = [("offsets.retention.check.interval.ms", "100"), ("num.partitions", "3")];
    let b = TestBroker::start(&settings).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "t").await;
    // OffsetCommit v2-v4 may set a retention time per request.
    let short = commit_request("short", "", -1, &[("t", 0, 5, "")]).with_retention_time_ms(200);
    let long = commit_request("long", "", -1, &[("t", 0, 6, "")]);
    assert_eq!(commit(&mut c, 2, &short).await, vec![0]);
    assert_eq!(commit(&mut c, 2, &long).await, vec![0]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(fetch_offsets(&mut c, "short").await.is_empty());
    assert_eq!(fetch_offsets(&mut c, "long").await.len(), 1);
    let r: ListGroupsResponse = c.call(ApiKey::ListGroups, 3, &ListGroupsRequest::default()).await;
    assert_eq!(r.groups.iter().map(|g| g.group_id.0.to_string()).collect::<Vec<_>>(), vec!["long"], "the emptied group is gone");
    b.stop().await;
}

/// One RecordBatch v2 of an idempotent producer: `n` records from sequence `seq`.
fn idempotent_batch(producer_id: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            ..plain_record(i, 1_700_000_000_000, None, Some(Bytes::from(format!("v{}", seq + i as i32))))
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

/// (error code, base offset) of producing `records` to partition 0 of "idem".
async fn produce(c: &mut Client, records: Bytes, transactional_id: Option<&str>) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_topic_data(vec![produce_request::TopicProduceData::default().with_name(TopicName(s("idem"))).with_partition_data(
            vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))],
        )]);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_producer_id(c: &mut Client, transactional_id: Option<&str>) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(60_000);
    let r: InitProducerIdResponse = c.call(ApiKey::InitProducerId, 4, &req).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn idempotent_producers_get_unique_ids_and_duplicates_their_original_offsets() {
    let b = TestBroker::start(SETTINGS).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "idem").await;
    let (error, pid, epoch) = init_producer_id(&mut c, None).await;
    assert_eq!((error, epoch), (0, 0));
    assert_eq!(init_producer_id(&mut c, None).await, (0, pid + 1, 0));
    assert_eq!(init_producer_id(&mut c, Some("tx")).await.0, 53, "transactions are refused");
    assert_eq!(init_producer_id(&mut c, Some("")).await.0, 42);

    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 0, 5), None).await, (0, 0));
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 0, 5), None).await, (0, 0), "a retry gets the original offset");
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 5, 3), None).await, (0, 5), "nothing was appended by the retry");
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 20, 1), None).await.0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(produce(&mut c, idempotent_batch(pid + 1, 0, 0, 2), None).await, (0, 8), "another producer");
    assert_eq!(produce(&mut c, idempotent_batch(pid + 1, 1, 0, 1), None).await, (0, 10), "a new epoch restarts at 0");
    assert_eq!(produce(&mut c, idempotent_batch(pid + 1, 0, 2, 1), None).await.0, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 8, 1), Some("tx")).await.0, 53, "transactional produce");

    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, SETTINGS).await;
    let mut c = b.client().await;
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 5, 3), None).await, (0, 5), "duplicates are recognised after a restart");
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 8, 1), None).await, (0, 11));
    let (_, after_restart, _) = init_producer_id(&mut c, None).await;
    assert!(after_restart > pid + 1, "ids are never reused: {after_restart} after {pid}");
    b.stop().await;
}

/// A data directory of an earlier release, which counted producer ids in producer-ids.json: the ids go on past
/// that counter, from blocks in the metadata log, and the file goes.
#[tokio::test]
async fn producer_ids_continue_past_an_earlier_releases_counter() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("producer-ids.json");
    std::fs::write(&legacy, r#"{"next_block_start": 5000}"#).unwrap();
    let b = TestBroker::start_in(dir, SETTINGS).await;
    let mut c = b.client().await;
    assert_eq!(init_producer_id(&mut c, None).await, (0, 5000, 0));
    assert!(!legacy.exists(), "the counter file is gone once a block came from the log");
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, SETTINGS).await;
    let mut c = b.client().await;
    let (error, after_restart, _) = init_producer_id(&mut c, None).await;
    assert_eq!((error, after_restart), (0, 6000), "a restart takes the next block");
    b.stop().await;
}

/// A data directory of an earlier release: `__consumer_offsets` was a local log of `partitions` partitions
/// (group-coordinator.json), written with epoch 0 and committed as appended.
fn earlier_release_dir(partitions: i32, commits: &[(&str, i64)]) -> tempfile::TempDir {
    use strata_broker::group::{offsets::CommittedOffset, records, store::partition_for};
    use strata_storage::{LogConfig, LogManager, LogManagerConfig};
    let dir = tempfile::tempdir().unwrap();
    let logs = LogManager::open(LogManagerConfig::new(dir.path())).unwrap();
    for (group, offset) in commits {
        let tp = TopicPartition::new("__consumer_offsets", partition_for(group, partitions));
        let log = logs.get_or_create(&tp, LogConfig::default()).unwrap();
        let o = CommittedOffset {
            offset: *offset,
            leader_epoch: -1,
            metadata: "old".into(),
            commit_timestamp: 1,
            expire_timestamp: None,
        };
        let mut batch =
            records::batch(&[(records::offset_key(group, &TopicPartition::new("t", 0)), Some(records::offset_value(&o)))], 1);
        log.append_as_leader(&mut batch, 0).unwrap();
        log.maybe_increment_high_watermark(log.log_end_offset());
    }
    logs.shutdown().unwrap();
    std::fs::write(dir.path().join("group-coordinator.json"), format!(r#"{{"offsets_topic_partitions":{partitions}}}"#)).unwrap();
    dir
}

#[tokio::test]
async fn an_earlier_releases_local_offsets_keep_their_groups_after_the_upgrade() {
    let commits = [("legacy-a", 42), ("legacy-b", 7), ("legacy-c", 1000)];
    let dir = earlier_release_dir(4, &commits);
    // The configured partition count differs: the earlier release's count wins, so groups stay in place.
    let settings = [("offsets.topic.num.partitions", "10"), ("num.partitions", "3")];
    let b = TestBroker::start_in(dir, &settings).await;
    let mut c = b.client().await;
    for (group, offset) in commits {
        assert_eq!(fetch_offsets(&mut c, group).await, vec![("t".into(), 0, offset, "old".into())], "{group}");
    }
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    let offsets_topic = md.topics.iter().find(|t| t.name.as_ref().unwrap().as_str() == "__consumer_offsets").unwrap();
    assert_eq!((offsets_topic.partitions.len(), offsets_topic.is_internal), (4, true));
    assert!(!b.dir.path().join("group-coordinator.json").exists(), "resolved once");
    // New commits go on in the same logs, and everything is there after a restart.
    ensure_topic(&mut c, "t").await;
    let req = commit_request("legacy-a", "", -1, &[("t", 0, 43, "new")]);
    assert_eq!(commit(&mut c, 7, &req).await, vec![0]);
    let b = TestBroker::start_in(b.stop().await, &settings).await;
    let mut c = b.client().await;
    assert_eq!(fetch_offsets(&mut c, "legacy-a").await, vec![("t".into(), 0, 43, "new".into())]);
    assert_eq!(fetch_offsets(&mut c, "legacy-c").await, vec![("t".into(), 0, 1000, "old".into())]);
    b.stop().await;
}
