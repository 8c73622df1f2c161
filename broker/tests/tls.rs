//! SSL listeners, with certificates made by rcgen at test time: a real broker process serves produce and fetch
//! over TLS 1.2 and 1.3 (older versions refused) and advertises the SSL listener to clients on it; client
//! authentication refuses a client without a certificate or with one of another CA and takes the principal
//! from an accepted one; a rotated server certificate reaches new connections without a restart (a broken one
//! is ignored); the wrong protocol on either listener is closed and counted while other connections go on;
//! and three in-process nodes replicate, and run their controller quorum, over mutually authenticated TLS.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pki::{client_config, tls, write_pki, Ca, BOTH};
use common::process::BrokerProcess;
use common::{create_topic, fetch_request, free_port, http_get, produce_with_acks, quorum_settings, record_batch, topic_id};
use common::{partition0, wait_for, Client, TestBroker};
use kafka_protocol::messages::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use strata_broker::tls::{SslSettings, TlsContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// ApiVersions over TLS: Ok once the broker answered (with TLS 1.3, a refused client certificate shows only
/// when the client reads after its handshake).
async fn api_versions(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Client, String> {
    let stream = tls(addr, config).await.map_err(|e| format!("handshake: {e}"))?;
    let mut c = Client::from_stream(stream);
    let req = c.encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    c.stream.write_all(&req).await.map_err(|e| e.to_string())?;
    c.stream.flush().await.map_err(|e| e.to_string())?;
    let frame = tokio::time::timeout(Duration::from_secs(10), c.read_frame()).await.map_err(|_| "no answer")?.ok_or("closed")?;
    let (_, resp): (i32, ApiVersionsResponse) = Client::decode(ApiKey::ApiVersions, 3, frame);
    assert_eq!(resp.error_code, 0);
    Ok(c)
}

/// The server certificate a new TLS connection gets.
async fn served_cert(addr: SocketAddr, config: &Arc<ClientConfig>) -> Vec<u8> {
    let s = tls(addr, config).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn pem_der(cert_pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap().to_vec()
}

/// A broker process with a PLAINTEXT listener and an SSL one, and its metrics endpoint.
struct Node {
    process: BrokerProcess,
    ssl: SocketAddr,
    metrics_port: u16,
}

impl Node {
    fn start(dir: &Path, settings: &[(&str, &str)]) -> Node {
        let (ssl_port, metrics_port) = (free_port(), free_port());
        let mut args = vec![
            "--listeners".to_string(),
            format!("PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:{ssl_port}"),
            "--metrics.port".into(),
            metrics_port.to_string(),
            "--metrics.bind.address".into(),
            "127.0.0.1".into(),
        ];
        for (k, v) in settings {
            args.push(format!("--{k}"));
            args.push(v.to_string());
        }
        let process = BrokerProcess::start(&dir.join("data"), &dir.join("broker.log"), &args, None);
        Node { process, ssl: SocketAddr::from(([127, 0, 0, 1], ssl_port)), metrics_port }
    }

    fn metric(&self, series: &str) -> f64 {
        let page = http_get(self.metrics_port, "/metrics");
        page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
    }
}

#[tokio::test]
async fn produce_and_fetch_over_tls_1_2_and_1_3_and_the_wrong_protocol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata Test CA");
    let (_, ks_path) = write_pki(dir.path(), &ca, &ca.leaf("broker"));
    let node = Node::start(dir.path(), &[("ssl.keystore.location", &ks_path)]);
    let both = client_config(&ca.pem(), None, BOTH);

    let mut c = api_versions(node.ssl, &both).await.unwrap();
    create_topic(&mut c, "secure", 1, &[]).await;
    let batch = record_batch(20, 3000, 1_700_000_000_000);
    assert_eq!(produce_with_acks(&mut c, "secure", 0, batch.clone(), -1).await.error_code, 0);
    // Several batches, more than one copy-path buffer of records (64 KiB).
    for _ in 0..3 {
        assert_eq!(produce_with_acks(&mut c, "secure", 0, batch.clone(), -1).await.error_code, 0);
    }
    let id = topic_id(&mut c, "secure").await;
    let resp: FetchResponse = c.call(ApiKey::Fetch, 13, &fetch_request("secure", id, 0, 100)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 80));
    let records: Bytes = p.records.clone().unwrap();
    assert_eq!(records.len(), 4 * batch.len(), "every batch comes back whole");
    assert_eq!(records[16..batch.len()], batch[16..], "the first batch as produced (after offset, length and epoch)");

    // Clients on the SSL listener are given its address.
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!(md.brokers[0].port, i32::from(node.ssl.port()));
    let plain_md: MetadataResponse =
        node.process.client().await.call(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!(plain_md.brokers[0].port, i32::from(node.process.addr.port()));

    for (name, versions) in [("1.2", &[&rustls::version::TLS12][..]), ("1.3", &[&rustls::version::TLS13][..])] {
        let s = tls(node.ssl, &client_config(&ca.pem(), None, versions)).await.unwrap_or_else(|e| panic!("TLS {name}: {e}"));
        let got = s.get_ref().1.protocol_version().unwrap();
        assert_eq!(format!("{got:?}"), format!("TLSv{}", name.replace('.', "_")));
    }
    // The wrong protocol on either listener: closed, counted, one log line each; nothing else affected.
    let failed = |node: &Node, listener: &str| {
        node.metric(&format!("kafka_server_socket_server_metrics_failed_authentication_total{{listener=\"{listener}\"}}"))
    };
    let (ssl_failed, plain_failed) = (failed(&node, "SSL"), failed(&node, "PLAINTEXT"));
    for _ in 0..3 {
        let mut plain_on_ssl = Client::connect(node.ssl).await;
        let req = plain_on_ssl.encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        plain_on_ssl.send_raw(&req).await;
        assert!(plain_on_ssl.is_closed().await);
        assert!(tls(node.process.addr, &both).await.is_err(), "TLS on the PLAINTEXT listener");
    }
    assert_eq!(failed(&node, "SSL"), ssl_failed + 3.0);
    assert_eq!(failed(&node, "PLAINTEXT"), plain_failed + 3.0);
    let log = node.process.log_text();
    assert_eq!(log.matches("a plaintext client on an SSL listener").count(), 1, "rate-limited:\n{log}");
    assert_eq!(log.matches("a TLS handshake on a PLAINTEXT listener").count(), 1, "rate-limited:\n{log}");
    let resp: FetchResponse = c.call(ApiKey::Fetch, 13, &fetch_request("secure", id, 40, 100)).await;
    assert_eq!(resp.responses[0].partitions[0].records.as_ref().unwrap().len(), 2 * batch.len(), "open connection unaffected");
    api_versions(node.ssl, &both).await.unwrap();
    let versions: ApiVersionsResponse =
        node.process.client().await.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0);
    assert!(node.metric("strata_fetch_copy_bytes_total") >= (6 * batch.len()) as f64, "TLS fetches take the copy path");
    // A TLS 1.1 ClientHello (no supported_versions extension) gets a fatal alert.
    let mut raw = TcpStream::connect(node.ssl).await.unwrap();
    let mut hello = vec![0x01, 0, 0, 41, 0x03, 0x02];
    hello.extend_from_slice(&[7; 32]);
    hello.extend_from_slice(&[0, 0, 2, 0x00, 0x2f, 1, 0]);
    let mut record = vec![0x16, 0x03, 0x01, 0, hello.len() as u8];
    record.extend(hello);
    raw.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer)).await.unwrap().unwrap_or_default();
    assert_eq!(answer.first(), Some(&0x15), "an alert: {answer:?}");
    assert_eq!(answer.get(5), Some(&2), "fatal: {answer:?}");

    assert_eq!(node.metric("strata_fetch_sendfile_bytes_total"), 0.0);
}

#[tokio::test]
async fn required_client_certificates_are_checked_and_name_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata Test CA");
    let (ca_path, ks_path) = write_pki(dir.path(), &ca, &ca.leaf("broker"));
    let node = Node::start(
        dir.path(),
        &[("ssl.keystore.location", &ks_path), ("ssl.truststore.location", &ca_path), ("ssl.client.auth", "required")],
    );
    let client = ca.leaf("app-client");
    for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
        let signed = client_config(&ca.pem(), Some(&client), versions);
        api_versions(node.ssl, &signed).await.unwrap();
        assert!(api_versions(node.ssl, &client_config(&ca.pem(), None, versions)).await.is_err(), "no certificate");
        let other = Ca::new("Another CA").leaf("app-client");
        assert!(api_versions(node.ssl, &client_config(&ca.pem(), Some(&other), versions)).await.is_err(), "another CA");
    }
    assert_eq!(node.metric("kafka_server_socket_server_metrics_failed_authentication_total{listener=\"SSL\"}"), 4.0);
    assert_eq!(node.metric("kafka_server_socket_server_metrics_successful_authentication_total{listener=\"SSL\"}"), 2.0);

    // The principal the broker keeps for such a client, through DEFAULT and through a rule.
    let cert = CertificateDer::from_pem_slice(client.cert.as_bytes()).unwrap();
    let principal = |rules: &str| {
        let get = |k: &str| match k {
            "ssl.keystore.location" => Some(ks_path.clone()),
            "ssl.principal.mapping.rules" => Some(rules.to_string()),
            _ => None,
        };
        TlsContext::load("SSL", SslSettings::from_lookup("SSL", &get).unwrap()).unwrap().principal(Some(&cert))
    };
    assert_eq!(principal("DEFAULT").unwrap(), "User:CN=app-client,O=Strata Tests");
    assert_eq!(principal("RULE:^CN=([^,]+),O=Strata Tests$/$1/U,DEFAULT").unwrap(), "User:APP-CLIENT");
    assert!(principal("RULE:^CN=x,.*$/x/").is_err(), "no rule applies");
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_and_a_broken_one_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata Test CA");
    let first = ca.leaf("broker-1");
    let (_, ks_path) = write_pki(dir.path(), &ca, &first);
    let node = Node::start(dir.path(), &[("ssl.keystore.location", &ks_path)]);
    let config = client_config(&ca.pem(), None, BOTH);
    assert_eq!(served_cert(node.ssl, &config).await, pem_der(&first.cert));
    let mut open = api_versions(node.ssl, &config).await.unwrap();

    // Rotated as the operator's Secret update does it: the new file replaces the old at once.
    let second = ca.leaf("broker-2");
    let replace = |content: String| {
        let tmp = dir.path().join("broker.pem.new");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &ks_path).unwrap();
    };
    replace(second.keystore());
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_cert(node.ssl, &config).await != pem_der(&second.cert) {
        assert!(Instant::now() < deadline, "the new certificate was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A key that does not match the certificate (a rotation caught half-way) keeps the last good pair.
    replace(format!("{}{}", first.key, second.cert));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served_cert(node.ssl, &config).await, pem_der(&second.cert));
    assert!(node.process.log_text().contains("keeping the previous ones"), "{}", node.process.log_text());
    let versions: ApiVersionsResponse = open.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0, "a connection made before the rotation goes on");
}

/// Three nodes whose inter-broker listener (replication) and controller listener (the quorum) are SSL with
/// client authentication; clients use PLAINTEXT.
#[test]
fn a_cluster_replicates_and_elects_over_mutual_tls() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata Cluster CA");
    let (ca_path, ks_path) = write_pki(dir.path(), &ca, &ca.leaf("broker"));
    let voter_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut brokers: Vec<Option<TestBroker>> = (0..3)
        .map(|id| {
            let mut settings = quorum_settings(id, &voter_ports, "tls-cluster");
            let listeners =
                format!("PLAINTEXT://127.0.0.1:0,REPLICATION://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", voter_ports[id]);
            for (k, v) in [
                ("listeners", listeners.as_str()),
                ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,REPLICATION:SSL,CONTROLLER:SSL"),
                ("inter.broker.listener.name", "REPLICATION"),
                ("ssl.keystore.location", &ks_path),
                ("ssl.truststore.location", &ca_path),
                ("ssl.client.auth", "required"),
                ("default.replication.factor", "3"),
                ("min.insync.replicas", "2"),
                ("offsets.topic.replication.factor", "3"),
            ] {
                settings.push((k.to_string(), v.to_string()));
            }
            let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Some(rt.block_on(TestBroker::start_in(tempfile::tempdir().unwrap(), &pairs)))
        })
        .collect();
    let metadata = |b: &TestBroker| -> MetadataResponse {
        rt.block_on(async {
            let req = MetadataRequest::default().with_topics(None);
            b.client().await.call(ApiKey::Metadata, 12, &req).await
        })
    };
    wait_for("every broker is in service", &|| brokers.iter().flatten().all(|b| metadata(b).brokers.len() == 3));
    let batch = record_batch(10, 200, 1_700_000_000_000);
    let leader = rt.block_on(async {
        let mut c = brokers[0].as_ref().unwrap().client().await;
        let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(common::s("replicated")))
                .with_num_partitions(1)
                .with_replication_factor(3),
        ]);
        let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
        let req = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(common::s("replicated"))))
        ]));
        let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &req).await;
        md.topics[0].partitions[0].leader_id.0 as usize
    });
    let isr = |b: &TestBroker| partition0(&metadata(b), "replicated").map(|p| p.isr_nodes.len());
    wait_for("three in-sync replicas", &|| isr(brokers[leader].as_ref().unwrap()) == Some(3));
    rt.block_on(async {
        let mut c = brokers[leader].as_ref().unwrap().client().await;
        for _ in 0..3 {
            let p = produce_with_acks(&mut c, "replicated", 0, batch.clone(), -1).await;
            assert_eq!(p.error_code, 0, "acks=all needs the followers' fetches over TLS");
        }
    });
    let old = brokers[leader].take().unwrap();
    rt.block_on(old.stop());
    let survivor = (0..3).find(|id| *id != leader).unwrap();
    let new_leader = || {
        let l = partition0(&metadata(brokers[survivor].as_ref().unwrap()), "replicated")?.leader_id.0;
        usize::try_from(l).ok().filter(|l| *l != leader)
    };
    wait_for("a new leader, elected by the quorum over TLS", &|| new_leader().is_some());
    let new = new_leader().unwrap();
    // A new leader's high watermark may trail its log until the other in-sync replica fetches from it (Kafka's
    // rule), so the acknowledged batches are all readable a moment later, not necessarily at once.
    let served = || {
        rt.block_on(async {
            let mut c = brokers[new].as_ref().unwrap().client().await;
            let id = topic_id(&mut c, "replicated").await;
            let resp: FetchResponse = c.call(ApiKey::Fetch, 13, &fetch_request("replicated", id, 0, 100)).await;
            let p = &resp.responses[0].partitions[0];
            (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
        })
    };
    wait_for("the new leader serves every acknowledged batch", || served() == (0, 3 * batch.len()));
    for b in brokers.iter_mut().filter_map(Option::take) {
        rt.block_on(b.stop());
    }
}
