//! SASL listeners with real clients (strata-client's SASL and TLS): users created with
//! AlterUserScramCredentials authenticate with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN on SASL_PLAINTEXT and
//! SASL_SSL listeners; wrong passwords, unknown users, unknown mechanisms and clients skipping authentication
//! are refused, closed and counted; credentials survive a restart; and three nodes with every listener
//! SASL_SSL replicate and run their quorum with the static inter-broker credential, all knowing a user created
//! through one of them.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{client_config, write_pki, Ca, BOTH};
use common::{
    fetch_request, free_port, partition0, produce_request, quorum_settings, record_batch, s, wait_for, Client, TestBroker,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use strata_client::scram::{random_bytes, Mechanism};
use strata_client::{ClientError, Connection, SaslCredentials, SaslMechanism, Security};

const TIMEOUT: Duration = Duration::from_secs(20);
const ADMIN_JAAS: &str =
    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";"#;
const SHA256: SaslMechanism = SaslMechanism::Scram(Mechanism::Sha256);
const SHA512: SaslMechanism = SaslMechanism::Scram(Mechanism::Sha512);

fn security(tls: Option<&Arc<rustls::ClientConfig>>, mechanism: SaslMechanism, user: &str, password: &str) -> Security {
    Security { tls: tls.cloned(), sasl: Some(SaslCredentials { mechanism, username: user.into(), password: password.into() }) }
}

async fn connect(addr: SocketAddr, security: &Security) -> strata_client::Result<Connection> {
    security.connect(&addr.to_string(), "sasl-test", TIMEOUT).await
}

fn upsert(user: &str, m: Mechanism, password: &str, iterations: i32) -> ScramCredentialUpsertion {
    let salt = random_bytes(16);
    let salted = m.salted_password(password.as_bytes(), &salt, iterations as u32);
    ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(m.type_id())
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

async fn alter(c: &mut Connection, req: AlterUserScramCredentialsRequest) -> Vec<(String, i16)> {
    let resp = c.send(0, &req).await.unwrap();
    resp.results.iter().map(|r| (r.user.to_string(), r.error_code)).collect()
}

async fn describe(c: &mut Connection, users: &[&str]) -> DescribeUserScramCredentialsResponse {
    let names = users.iter().map(|u| UserName::default().with_name(s(u))).collect();
    c.send(0, &DescribeUserScramCredentialsRequest::default().with_users(Some(names))).await.unwrap()
}

fn kafka_code(e: &ClientError) -> Option<i16> {
    match e {
        ClientError::Kafka { code, .. } => Some(code.0),
        _ => None,
    }
}

fn address(b: &TestBroker, listener: &str) -> SocketAddr {
    b.broker.as_ref().unwrap().addresses.iter().find(|(n, _)| n == listener).unwrap().1
}

#[tokio::test]
async fn users_authenticate_on_sasl_plaintext_and_sasl_ssl_and_bad_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata SASL CA");
    let (_, ks_path) = write_pki(pki.path(), &ca, &ca.leaf("broker"));
    let settings = [
        ("listeners", "PLAINTEXT://127.0.0.1:0,SASL://127.0.0.1:0,SECURE://127.0.0.1:0"),
        ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:PLAINTEXT"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.name.sasl.sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"),
        ("ssl.keystore.location", ks_path.as_str()),
        ("sasl.jaas.config", ADMIN_JAAS),
    ];
    let broker = TestBroker::start_in(dir, &settings).await;
    let (sasl, secure) = (address(&broker, "SASL"), address(&broker, "SECURE"));
    let tls = client_config(&ca.pem(), None, BOTH);

    // The static user creates alice (both SCRAM mechanisms) and checks the request's rules.
    let mut admin = connect(secure, &security(Some(&tls), SHA512, "admin", "admin-secret")).await.unwrap();
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        upsert("alice", Mechanism::Sha256, "wonderland", 4096),
        upsert("alice", Mechanism::Sha512, "wonderland", 8192),
    ]);
    assert_eq!(alter(&mut admin, req).await, [("alice".to_string(), 0)]);
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![ScramCredentialDeletion::default().with_name(s("nobody")).with_mechanism(1)])
        .with_upsertions(vec![upsert("weak", Mechanism::Sha256, "x", 1000)]);
    assert_eq!(alter(&mut admin, req).await, [("nobody".to_string(), 91), ("weak".to_string(), 93)]);
    let d = describe(&mut admin, &["alice", "weak"]).await;
    let infos: Vec<(i8, i32)> = d.results[0].credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect();
    assert_eq!((d.results[0].error_code, infos), (0, vec![(1, 4096), (2, 8192)]));
    assert_eq!(d.results[1].error_code, 91, "RESOURCE_NOT_FOUND for a user without credentials");

    // alice, with every mechanism on SASL_PLAINTEXT and SCRAM-SHA-512 on SASL_SSL; requests work afterwards.
    for (addr, tls, m) in
        [(sasl, None, SHA256), (sasl, None, SHA512), (sasl, None, SaslMechanism::Plain), (secure, Some(&tls), SHA512)]
    {
        let mut c = connect(addr, &security(tls, m, "alice", "wonderland")).await.unwrap_or_else(|e| panic!("{m}: {e}"));
        let md = c.send(12, &MetadataRequest::default().with_topics(None)).await.unwrap();
        assert_eq!(md.brokers[0].port, i32::from(addr.port()), "{m}: the listener's own address is advertised");
        // Authenticating again on an authenticated connection is an ILLEGAL_SASL_STATE answer.
        let creds = SaslCredentials { mechanism: m, username: "alice".into(), password: "wonderland".into() };
        assert_eq!(kafka_code(&c.authenticate(&creds).await.unwrap_err()), Some(34));
    }

    let failed =
        || broker.metric("kafka_server_socket_server_metrics_failed_authentication_total{listener=\"SASL\"}").unwrap_or(0.0);
    let before = failed();
    // Wrong password and unknown user: SASL_AUTHENTICATION_FAILED with Kafka's message, then closed.
    for (m, user, password) in [
        (SHA512, "alice", "wrong"),
        (SHA256, "mallory", "x"),
        (SaslMechanism::Plain, "alice", "wrong"),
        (SaslMechanism::Plain, "mallory", "x"),
    ] {
        let stream = strata_client::dial(&sasl.to_string(), None, TIMEOUT).await.unwrap();
        let mut c = Connection::connect_over(&sasl.to_string(), stream, "sasl-test", TIMEOUT).await.unwrap();
        let err = c
            .authenticate(&SaslCredentials { mechanism: m, username: user.into(), password: password.into() })
            .await
            .unwrap_err();
        assert_eq!(kafka_code(&err), Some(58), "{m} {user}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {m}"
            )),
            "{text}"
        );
        assert!(c.send(3, &ApiVersionsRequest::default()).await.is_err(), "{m} {user}: the connection is closed");
    }
    // A mechanism not enabled on the listener: UNSUPPORTED_SASL_MECHANISM naming the enabled ones.
    let err = connect(secure, &security(Some(&tls), SaslMechanism::Plain, "alice", "wonderland")).await.err().unwrap();
    assert_eq!(kafka_code(&err), Some(33), "{err}");
    assert!(err.to_string().contains("SCRAM-SHA-512"), "{err}");
    // A client skipping authentication is closed without an answer.
    let mut raw = Client::connect(sasl).await;
    let req = raw.encode(ApiKey::Metadata, 12, &MetadataRequest::default().with_topics(None));
    raw.send_raw(&req).await;
    assert!(raw.is_closed().await, "a request before authentication closes the connection");
    assert_eq!(failed() - before, 5.0, "every refused client is counted");
    // The PLAINTEXT listener answers SASL requests with ILLEGAL_SASL_STATE.
    let mut plain = Connection::connect(&broker.addr.to_string(), "sasl-test", TIMEOUT).await.unwrap();
    let creds = SaslCredentials { mechanism: SHA512, username: "alice".into(), password: "wonderland".into() };
    assert_eq!(kafka_code(&plain.authenticate(&creds).await.unwrap_err()), Some(34));

    // Deleting a mechanism takes it away; the credentials kept survive a restart.
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![ScramCredentialDeletion::default().with_name(s("alice")).with_mechanism(1)]);
    assert_eq!(alter(&mut admin, req).await, [("alice".to_string(), 0)]);
    drop(admin);
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &settings).await;
    let sasl = address(&broker, "SASL");
    connect(sasl, &security(None, SHA512, "alice", "wonderland")).await.expect("SCRAM-SHA-512 after the restart");
    let err = connect(sasl, &security(None, SHA256, "alice", "wonderland")).await.err().unwrap();
    assert_eq!(kafka_code(&err), Some(58), "the deleted SCRAM-SHA-256 credential stays deleted: {err}");
    broker.stop().await;
}

/// Three nodes whose every listener (clients, replication, the controller quorum) is SASL_SSL with
/// SCRAM-SHA-512; the nodes authenticate to each other with the static credential of sasl.jaas.config.
#[test]
fn a_cluster_with_every_listener_sasl_ssl_replicates_and_shares_users() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new("Strata SASL Cluster CA");
    let (ca_path, ks_path) = write_pki(pki.path(), &ca, &ca.leaf("broker"));
    let tls = client_config(&ca.pem(), None, BOTH);
    let admin = security(Some(&tls), SHA512, "admin", "admin-secret");
    let voter_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut brokers: Vec<Option<TestBroker>> = (0..3)
        .map(|id| {
            let mut settings = quorum_settings(id, &voter_ports, "sasl-cluster");
            let listeners = format!("CLIENT://127.0.0.1:0,REPLICATION://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", voter_ports[id]);
            for (k, v) in [
                ("listeners", listeners.as_str()),
                ("listener.security.protocol.map", "CLIENT:SASL_SSL,REPLICATION:SASL_SSL,CONTROLLER:SASL_SSL"),
                ("inter.broker.listener.name", "REPLICATION"),
                ("ssl.keystore.location", &ks_path),
                ("ssl.truststore.location", &ca_path),
                ("sasl.jaas.config", ADMIN_JAAS),
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
    let client = |b: &TestBroker, sec: &Security| rt.block_on(connect(b.addr, sec));
    let metadata = |b: &TestBroker| -> MetadataResponse {
        rt.block_on(async {
            let mut c = connect(b.addr, &admin).await.unwrap();
            c.send(12, &MetadataRequest::default().with_topics(None)).await.unwrap()
        })
    };
    wait_for("every broker is in service", &|| brokers.iter().flatten().all(|b| metadata(b).brokers.len() == 3));

    // A user created through node 1 authenticates on every node.
    rt.block_on(async {
        let mut c = connect(brokers[1].as_ref().unwrap().addr, &admin).await.unwrap();
        let req =
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert("carol", Mechanism::Sha512, "c-pass", 4096)]);
        assert_eq!(alter(&mut c, req).await, [("carol".to_string(), 0)]);
    });
    let carol = security(Some(&tls), SHA512, "carol", "c-pass");
    wait_for("every broker knows carol", &|| brokers.iter().flatten().all(|b| client(b, &carol).is_ok()));

    let batch = record_batch(10, 200, 1_700_000_000_000);
    let leader = rt.block_on(async {
        let mut c = connect(brokers[0].as_ref().unwrap().addr, &carol).await.unwrap();
        let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s("replicated")))
                .with_num_partitions(1)
                .with_replication_factor(3),
        ]);
        let resp = c.send(7, &req).await.unwrap();
        assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
        let req = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("replicated"))))
        ]));
        c.send(12, &req).await.unwrap().topics[0].partitions[0].leader_id.0 as usize
    });
    let isr = |b: &TestBroker| partition0(&metadata(b), "replicated").map(|p| p.isr_nodes.len());
    wait_for("three in-sync replicas", &|| isr(brokers[leader].as_ref().unwrap()) == Some(3));
    rt.block_on(async {
        let mut c = connect(brokers[leader].as_ref().unwrap().addr, &carol).await.unwrap();
        for _ in 0..3 {
            let resp = c.send(9, &produce_request("replicated", 0, batch.clone(), -1)).await.unwrap();
            let p = &resp.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "acks=all needs the followers' fetches over SASL_SSL");
        }
    });
    let old = brokers[leader].take().unwrap();
    rt.block_on(old.stop());
    let survivor = (0..3).find(|id| *id != leader).unwrap();
    let new_leader = || {
        let l = partition0(&metadata(brokers[survivor].as_ref().unwrap()), "replicated")?.leader_id.0;
        usize::try_from(l).ok().filter(|l| *l != leader)
    };
    wait_for("a new leader, elected by the quorum over SASL_SSL", &|| new_leader().is_some());
    let new = new_leader().unwrap();
    // A new leader's high watermark may trail its log until the other in-sync replica fetches from it (Kafka's
    // rule), so the acknowledged batches are all readable a moment later, not necessarily at once.
    let served = || {
        rt.block_on(async {
            let mut c = connect(brokers[new].as_ref().unwrap().addr, &carol).await.unwrap();
            let md = c.send(12, &MetadataRequest::default().with_topics(None)).await.unwrap();
            let id = md.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "replicated")).unwrap().topic_id;
            let resp = c.send(13, &fetch_request("replicated", id, 0, 100)).await.unwrap();
            let p = &resp.responses[0].partitions[0];
            (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
        })
    };
    wait_for("the new leader serves every acknowledged batch", || served() == (0, 3 * batch.len()));
    for b in brokers.iter_mut().filter_map(Option::take) {
        rt.block_on(b.stop());
    }
}
