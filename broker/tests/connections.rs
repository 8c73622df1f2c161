//! Connection hardening against a real broker: idle and half-sent connections are closed after
//! connections.max.idle.ms, and max.connections / max.connections.per.ip close the extra connection at once
//! (logged and counted) while the admitted ones keep working.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{s, Client, LogCapture, TestBroker};
use kafka_protocol::messages::*;
use tokio::net::TcpSocket;

async fn api_versions(c: &mut Client) -> bool {
    let req = ApiVersionsRequest::default().with_client_software_name(s("t")).with_client_software_version(s("1"));
    let frame = c.encode(ApiKey::ApiVersions, 3, &req);
    c.send_raw(&frame).await;
    tokio::time::timeout(Duration::from_secs(10), c.read_frame()).await.ok().flatten().is_some()
}

/// A client connecting from `local` (any 127.0.0.0/8 address is loopback on Linux), so tests can play several hosts.
async fn client_from(local: &str, broker: SocketAddr) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    Client::from_stream(socket.connect(broker).await.unwrap())
}

/// Polls `cond` every 20 ms for up to 10 s (a loaded 2-core machine).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_connections_and_half_sent_requests_are_closed() {
    let b = TestBroker::start(&[("connections.max.idle.ms", "400")]).await;
    let mut idle = b.client().await;
    let mut half = b.client().await;
    // A request of 40 bytes of which 10 arrive.
    half.send_raw(&[0, 0, 0, 40, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).await;
    let mut busy = b.client().await;
    // A Fetch waiting longer than the idle time is a request in progress, not idleness.
    let mut waiting = b.client().await;
    let meta = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))]));
    let _: MetadataResponse = waiting.call(ApiKey::Metadata, 9, &meta).await;
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(1500)
        .with_session_epoch(-1)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(TopicName(s("t"))).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20),
        ])]);
    let started = Instant::now();
    let frame = waiting.encode(ApiKey::Fetch, 11, &fetch);
    waiting.send_raw(&frame).await;

    // Active for three times the idle time: kept open.
    for _ in 0..12 {
        assert!(api_versions(&mut busy).await, "an active connection is kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiting.read_frame().await.is_some(), "the long fetch is answered");
    assert!(started.elapsed() >= Duration::from_millis(1400), "it waited its max_wait_ms");
    assert!(idle.is_closed().await, "an idle connection is closed");
    assert!(half.is_closed().await, "a request whose bytes stop arriving is closed");
    assert!(waiting.is_closed().await, "once answered, the fetching connection goes idle and is closed too");
    let closed = "kafka_server_socket_server_metrics_connection_close_total{listener=\"PLAINTEXT\"}";
    eventually("three closes counted", || b.metric(closed) >= Some(3.0)).await;
    b.stop().await;
}

#[tokio::test]
async fn max_connections_per_ip_closes_the_extra_connection() {
    let logs = LogCapture::start();
    let b = TestBroker::start(&[("max.connections.per.ip", "2")]).await;
    let mut first = b.client().await;
    let mut second = b.client().await;
    let mut extra = b.client().await;
    assert!(extra.is_closed().await, "the third connection from 127.0.0.1 is closed at once");
    let refused = "strata_connections_refused_total{listener=\"PLAINTEXT\",reason=\"max.connections.per.ip\"}";
    assert_eq!(b.metric(refused), Some(1.0));
    assert_eq!(logs.lines_with("refusing connection: max.connections.per.ip reached").len(), 1);
    assert!(api_versions(&mut first).await && api_versions(&mut second).await, "admitted connections keep working");
    let mut other_host = client_from("127.0.0.2", b.addr).await;
    assert!(api_versions(&mut other_host).await, "another address has its own allowance");
    drop(first);
    let open = "kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"}";
    eventually("the closed connection to be counted out", || b.metric(open) == Some(2.0)).await;
    let mut again = b.client().await;
    assert!(api_versions(&mut again).await, "a new connection is accepted once one closed");
    assert_eq!(b.metric(refused), Some(1.0));
    b.stop().await;
}

#[tokio::test]
async fn max_connections_closes_the_extra_connection() {
    let logs = LogCapture::start();
    let b = TestBroker::start(&[("max.connections", "2")]).await;
    let mut first = client_from("127.0.0.1", b.addr).await;
    let mut second = client_from("127.0.0.2", b.addr).await;
    let mut extra = client_from("127.0.0.3", b.addr).await;
    assert!(extra.is_closed().await, "a third connection is closed at once, whatever its address");
    let refused = "strata_connections_refused_total{listener=\"PLAINTEXT\",reason=\"max.connections\"}";
    assert_eq!(b.metric(refused), Some(1.0));
    assert_eq!(logs.lines_with("refusing connection: max.connections reached").len(), 1);
    assert!(api_versions(&mut first).await && api_versions(&mut second).await, "admitted connections keep working");
    drop(second);
    let open = "kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"}";
    eventually("the closed connection to be counted out", || b.metric(open) == Some(1.0)).await;
    let mut again = client_from("127.0.0.3", b.addr).await;
    assert!(api_versions(&mut again).await, "a new connection is accepted once one closed");
    b.stop().await;
}
