//! A minimal Kafka admin client over a plain TCP connection: just what the operator needs from
//! running brokers (apply dynamic settings, find which brokers host partitions). Versions are
//! negotiated with ApiVersions, so it works with any broker that implements the APIs.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker_contract;

const CLIENT_ID: &str = "strata-operator";
/// Kafka config resource type of a broker.
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// Largest response accepted; metadata of very large clusters stays well below.
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("talking to the broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("broker does not support {api:?} versions {ours:?} (it offers {theirs:?})")]
    Unsupported { api: ApiKey, ours: (i16, i16), theirs: Option<(i16, i16)> },
    #[error("malformed response: {0}")]
    Protocol(String),
    #[error("broker rejected {what}: error code {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Rejected { what: String, code: i16, message: Option<String> },
}

pub type Result<T, E = AdminError> = std::result::Result<T, E>;

/// One change to a broker setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the broker's default.
    Delete(String),
}

/// Changes that make a broker's dynamic user settings equal `desired`: every such key not in
/// `desired` is reset, so removing a setting from the spec takes effect too. Operator-owned
/// dynamic keys (the membership) are pushed on their own.
pub fn dynamic_changes(desired: &BTreeMap<String, String>) -> Vec<ConfigChange> {
    broker_contract::KNOWN_KEYS
        .iter()
        .filter(|k| k.dynamic && k.owner == broker_contract::Owner::User)
        .map(|k| match desired.get(k.name) {
            Some(v) => ConfigChange::Set(k.name.to_string(), v.clone()),
            None => ConfigChange::Delete(k.name.to_string()),
        })
        .collect()
}

pub fn alter_configs_request(node_id: i32, changes: &[ConfigChange]) -> IncrementalAlterConfigsRequest {
    let configs = changes
        .iter()
        .map(|c| match c {
            ConfigChange::Set(k, v) => AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(v.clone()))),
            ConfigChange::Delete(k) => AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_DELETE)
                .with_value(None),
        })
        .collect();
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(RESOURCE_BROKER)
        .with_resource_name(StrBytes::from_string(node_id.to_string()))
        .with_configs(configs)])
}

/// A size-prefixed request frame.
pub fn encode_frame<T: Encodable + HeaderVersion>(api: ApiKey, version: i16, correlation_id: i32, body: &T) -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, T::header_version(version)).map_err(|e| AdminError::Protocol(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| AdminError::Protocol(e.to_string()))?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| AdminError::Protocol("request too large".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Highest version both sides support.
pub fn pick_version(ours: (i16, i16), theirs: (i16, i16)) -> Option<i16> {
    let max = ours.1.min(theirs.1);
    (max >= ours.0.max(theirs.0)).then_some(max)
}

/// Partition replicas per broker id (a few `topic-partition` names each, for messages).
pub fn partitions_by_broker(metadata: &MetadataResponse) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for topic in &metadata.topics {
        let name = topic.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?");
        for p in &topic.partitions {
            for replica in &p.replica_nodes {
                out.entry(replica.0).or_default().push(format!("{name}-{}", p.partition_index));
            }
        }
    }
    for parts in out.values_mut() {
        if parts.len() > 5 {
            let more = parts.len() - 3;
            parts.truncate(3);
            parts.push(format!("and {more} more"));
        }
    }
    out
}

pub struct AdminClient {
    stream: TcpStream,
    correlation_id: i32,
    versions: BTreeMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl AdminClient {
    /// Connects and negotiates API versions.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| AdminError::Timeout(timeout))?
            .map_err(|source| AdminError::Connect { addr: addr.to_string(), source })?;
        let mut client = Self { stream, correlation_id: 0, versions: BTreeMap::new(), timeout };
        // v0 is understood by every broker and needs no version knowledge yet.
        let resp: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await?;
        if resp.error_code != 0 {
            return Err(AdminError::Rejected { what: "ApiVersions".into(), code: resp.error_code, message: None });
        }
        client.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(client)
    }

    fn version<M: Message>(&self, api: ApiKey) -> Result<i16> {
        let ours = (M::VERSIONS.min, M::VERSIONS.max);
        let theirs = self.versions.get(&(api as i16)).copied();
        theirs.and_then(|t| pick_version(ours, t)).ok_or(AdminError::Unsupported { api, ours, theirs })
    }

    async fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange(api, version, request)).await.map_err(|_| AdminError::Timeout(timeout))?
    }

    async fn exchange<Req, Resp>(&mut self, api: ApiKey, version: i16, request: &Req) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_frame(api, version, self.correlation_id, request)?;
        self.stream.write_all(&frame).await?;
        let len = self.stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE)
            .ok_or_else(|| AdminError::Protocol(format!("response size {len}")))?;
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, Resp::header_version(version))
            .map_err(|e| AdminError::Protocol(format!("response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(AdminError::Protocol(format!(
                "correlation id {} does not match request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        let resp = Resp::decode(&mut buf, version).map_err(|e| AdminError::Protocol(format!("{api:?} response: {e}")))?;
        if buf.has_remaining() {
            return Err(AdminError::Protocol(format!("{} trailing bytes after {api:?} response", buf.remaining())));
        }
        Ok(resp)
    }

    /// Applies dynamic settings to broker `node_id` (IncrementalAlterConfigs, BROKER resource).
    pub async fn alter_broker_configs(&mut self, node_id: i32, changes: &[ConfigChange]) -> Result<()> {
        let version = self.version::<IncrementalAlterConfigsRequest>(ApiKey::IncrementalAlterConfigs)?;
        let resp: IncrementalAlterConfigsResponse =
            self.call(ApiKey::IncrementalAlterConfigs, version, &alter_configs_request(node_id, changes)).await?;
        match resp.responses.iter().find(|r| r.error_code != 0) {
            Some(r) => Err(AdminError::Rejected {
                what: format!("config change for broker {}", r.resource_name.as_str()),
                code: r.error_code,
                message: r.error_message.as_ref().map(|m| m.to_string()),
            }),
            None if resp.responses.is_empty() => {
                Err(AdminError::Protocol("IncrementalAlterConfigs response has no result".into()))
            }
            None => Ok(()),
        }
    }

    /// Which brokers hold replicas of which partitions, from the cluster metadata.
    pub async fn partitions_by_broker(&mut self) -> Result<BTreeMap<i32, Vec<String>>> {
        let version = self.version::<MetadataRequest>(ApiKey::Metadata)?;
        // `topics: None` asks for all topics from v1 on; v0 used an empty list for that.
        let topics = if version == 0 { Some(Vec::new()) } else { None };
        let request = MetadataRequest::default().with_topics(topics);
        let resp: MetadataResponse = self.call(ApiKey::Metadata, version, &request).await?;
        Ok(partitions_by_broker(&resp))
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    use kafka_protocol::messages::metadata_response::{MetadataResponsePartition, MetadataResponseTopic};
    use kafka_protocol::messages::{BrokerId, TopicName};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn changes_set_desired_and_reset_the_rest() {
        let desired = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let changes = dynamic_changes(&desired);
        assert!(changes.contains(&ConfigChange::Set("log.retention.ms".into(), "1000".into())));
        assert!(changes.contains(&ConfigChange::Delete("log.retention.bytes".into())));
        for key in ["num.partitions", "controller.quorum.voters"] {
            assert!(!changes.iter().any(|c| matches!(c, ConfigChange::Delete(k) | ConfigChange::Set(k, _) if k == key)), "{key}");
        }
    }

    #[test]
    fn alter_request_targets_the_broker_resource() {
        let req = alter_configs_request(
            2,
            &[ConfigChange::Set("log.retention.ms".into(), "5".into()), ConfigChange::Delete("log.roll.ms".into())],
        );
        let r = &req.resources[0];
        assert_eq!((r.resource_type, r.resource_name.as_str()), (4, "2"));
        assert_eq!(r.configs[0].config_operation, 0);
        assert_eq!(r.configs[0].value.as_ref().map(|v| v.as_str()), Some("5"));
        assert_eq!((r.configs[1].name.as_str(), r.configs[1].config_operation), ("log.roll.ms", 1));
        assert_eq!(r.configs[1].value, None);
        assert!(!req.validate_only);
    }

    #[test]
    fn frame_is_size_prefixed_and_decodes_as_sent() {
        let req = alter_configs_request(7, &[ConfigChange::Set("log.segment.bytes".into(), "1048576".into())]);
        for version in [0, 1] {
            let frame = encode_frame(ApiKey::IncrementalAlterConfigs, version, 42, &req).unwrap();
            let mut buf = frame.clone();
            assert_eq!(buf.get_i32() as usize, frame.len() - 4);
            let header = RequestHeader::decode(&mut buf, IncrementalAlterConfigsRequest::header_version(version)).unwrap();
            assert_eq!((header.request_api_key, header.request_api_version, header.correlation_id), (44, version, 42));
            assert_eq!(header.client_id.unwrap().as_str(), "strata-operator");
            assert_eq!(IncrementalAlterConfigsRequest::decode(&mut buf, version).unwrap(), req);
            assert!(!buf.has_remaining());
        }
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(pick_version((0, 1), (0, 3)), Some(1));
        assert_eq!(pick_version((0, 13), (1, 9)), Some(9));
        assert_eq!(pick_version((2, 3), (0, 1)), None);
    }

    fn topic(name: &str, partitions: &[(i32, &[i32])]) -> MetadataResponseTopic {
        MetadataResponseTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.into())))).with_partitions(
            partitions
                .iter()
                .map(|(i, replicas)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(*i)
                        .with_replica_nodes(replicas.iter().map(|r| BrokerId(*r)).collect())
                })
                .collect(),
        )
    }

    #[test]
    fn placement_lists_partitions_per_broker() {
        let md = MetadataResponse::default().with_topics(vec![
            topic("a", &[(0, &[0, 1]), (1, &[1, 2])]),
            topic("big", &(0..8).map(|i| (i, &[2][..])).collect::<Vec<_>>()),
        ]);
        let placement = partitions_by_broker(&md);
        assert_eq!(placement[&0], ["a-0"]);
        assert_eq!(placement[&1], ["a-0", "a-1"]);
        assert_eq!(placement[&2], ["a-1", "big-0", "big-1", "and 6 more"]);
    }

    /// Reads one request frame on the fake broker side.
    async fn read_request(sock: &mut TcpStream) -> (RequestHeader, Bytes) {
        let len = sock.read_i32().await.unwrap() as usize;
        let mut buf = vec![0; len];
        sock.read_exact(&mut buf).await.unwrap();
        let mut buf = Bytes::from(buf);
        let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
        (header, buf)
    }

    async fn respond<T: Encodable + HeaderVersion>(sock: &mut TcpStream, header: &RequestHeader, body: &T) {
        let version = header.request_api_version;
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut buf, T::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        sock.write_i32(buf.len() as i32).await.unwrap();
        sock.write_all(&buf).await.unwrap();
    }

    /// Round trip against an in-process fake broker: negotiation, then IncrementalAlterConfigs
    /// with a per-resource error, which must surface as a rejection.
    #[tokio::test]
    async fn talks_to_a_broker_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (h, _) = read_request(&mut sock).await;
            assert_eq!((h.request_api_key, h.request_api_version), (18, 0));
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                ApiVersion::default().with_api_key(44).with_min_version(0).with_max_version(1),
                ApiVersion::default().with_api_key(3).with_min_version(0).with_max_version(12),
            ]);
            respond(&mut sock, &h, &versions).await;
            let mut seen = Vec::new();
            for code in [0i16, 40] {
                let (h, mut body) = read_request(&mut sock).await;
                assert_eq!((h.request_api_key, h.request_api_version), (44, 1));
                let req = IncrementalAlterConfigsRequest::decode(&mut body, 1).unwrap();
                seen.push(req.clone());
                let resp =
                    IncrementalAlterConfigsResponse::default().with_responses(vec![AlterConfigsResourceResponse::default()
                        .with_error_code(code)
                        .with_error_message((code != 0).then(|| StrBytes::from_static_str("bad value")))
                        .with_resource_type(4)
                        .with_resource_name(req.resources[0].resource_name.clone())]);
                respond(&mut sock, &h, &resp).await;
            }
            seen
        });
        let mut client = AdminClient::connect(&addr, Duration::from_secs(5)).await.unwrap();
        let changes = [ConfigChange::Set("log.retention.ms".into(), "60000".into())];
        client.alter_broker_configs(3, &changes).await.unwrap();
        let err = client.alter_broker_configs(3, &changes).await.unwrap_err();
        assert_eq!(err.to_string(), "broker rejected config change for broker 3: error code 40 (bad value)");
        let seen = broker.await.unwrap();
        assert_eq!(seen[0], alter_configs_request(3, &changes));
    }

    #[tokio::test]
    async fn unsupported_api_and_silence_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (h, _) = read_request(&mut sock).await;
            respond(&mut sock, &h, &ApiVersionsResponse::default()).await;
            // Second connection: accept and never answer.
            let (mut silent, _) = listener.accept().await.unwrap();
            let _ = read_request(&mut silent).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let mut client = AdminClient::connect(&addr, Duration::from_secs(5)).await.unwrap();
        let err = client.partitions_by_broker().await.unwrap_err();
        assert!(matches!(err, AdminError::Unsupported { api: ApiKey::Metadata, theirs: None, .. }), "{err}");
        let err = AdminClient::connect(&addr, Duration::from_millis(300)).await.err().unwrap();
        assert!(matches!(err, AdminError::Timeout(_)), "{err}");
        broker.abort();
    }
}

// UnregisterBroker, for brokers a scale-down removed (controller quorum, issue 13). Kept apart
// from the code above so the admin client can move into a shared crate without conflicts.

/// What became of an UnregisterBroker request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unregistration {
    /// The controller removed the broker's registration.
    Removed,
    /// The controller did not know the broker (`BROKER_ID_NOT_REGISTERED`): already done.
    NotRegistered,
    /// The broker does not offer UnregisterBroker at all: a broker without a controller quorum,
    /// which keeps no registrations.
    Unsupported,
}

/// The outcome of an UnregisterBroker response's error code; other codes are errors (retriable
/// ones such as NOT_CONTROLLER or REQUEST_TIMED_OUT included: the operator retries later).
pub fn unregistration_outcome(broker_id: i32, error_code: i16, message: Option<String>) -> Result<Unregistration> {
    /// UNSUPPORTED_VERSION: the API exists but the broker cannot serve it (e.g. no quorum).
    const UNSUPPORTED_VERSION: i16 = 35;
    match error_code {
        0 => Ok(Unregistration::Removed),
        broker_contract::BROKER_ID_NOT_REGISTERED => Ok(Unregistration::NotRegistered),
        UNSUPPORTED_VERSION => Ok(Unregistration::Unsupported),
        code => Err(AdminError::Rejected { what: format!("unregistering broker {broker_id}"), code, message }),
    }
}

impl AdminClient {
    /// Removes broker `broker_id`'s registration from the controller quorum (UnregisterBroker,
    /// API key 64, to any broker, which forwards it to the active controller). Idempotent.
    pub async fn unregister_broker(&mut self, broker_id: i32) -> Result<Unregistration> {
        use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest, UnregisterBrokerResponse};
        let version = match self.version::<UnregisterBrokerRequest>(ApiKey::UnregisterBroker) {
            Ok(v) => v,
            Err(AdminError::Unsupported { theirs: None, .. }) => return Ok(Unregistration::Unsupported),
            Err(e) => return Err(e),
        };
        let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker_id));
        let resp: UnregisterBrokerResponse = self.call(ApiKey::UnregisterBroker, version, &request).await?;
        unregistration_outcome(broker_id, resp.error_code, resp.error_message.map(|m| m.to_string()))
    }
}

#[cfg(test)]
mod unregister_tests {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn outcomes_by_error_code() {
        // (error code, outcome; None: an error)
        let table = [
            (0, Some(Unregistration::Removed)),
            (102, Some(Unregistration::NotRegistered)),
            (35, Some(Unregistration::Unsupported)),
            (41, None), // NOT_CONTROLLER: retried later
            (7, None),  // REQUEST_TIMED_OUT
            (42, None), // INVALID_REQUEST
        ];
        for (code, want) in table {
            assert_eq!(unregistration_outcome(3, code, None).ok(), want, "{code}");
        }
        let err = unregistration_outcome(3, 41, Some("no leader".into())).unwrap_err();
        assert_eq!(err.to_string(), "broker rejected unregistering broker 3: error code 41 (no leader)");
    }

    /// One connection of a fake broker: answers ApiVersions with `apis` (key, min, max), then
    /// each UnregisterBroker with the next of `codes`; returns the broker ids asked for.
    async fn fake_broker(listener: TcpListener, apis: Vec<(i16, i16, i16)>, codes: Vec<i16>) -> Vec<i32> {
        async fn read(sock: &mut TcpStream) -> (RequestHeader, Bytes) {
            let len = sock.read_i32().await.unwrap() as usize;
            let mut buf = vec![0; len];
            sock.read_exact(&mut buf).await.unwrap();
            let mut buf = Bytes::from(buf);
            let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
            let version = i16::from_be_bytes([buf[2], buf[3]]);
            let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
            (header, buf)
        }
        async fn reply<T: Encodable + HeaderVersion>(sock: &mut TcpStream, header: &RequestHeader, body: &T) {
            let version = header.request_api_version;
            let mut buf = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut buf, T::header_version(version))
                .unwrap();
            body.encode(&mut buf, version).unwrap();
            sock.write_i32(buf.len() as i32).await.unwrap();
            sock.write_all(&buf).await.unwrap();
        }
        let (mut sock, _) = listener.accept().await.unwrap();
        let (h, _) = read(&mut sock).await;
        let versions = ApiVersionsResponse::default().with_api_keys(
            apis.iter()
                .map(|(k, min, max)| ApiVersion::default().with_api_key(*k).with_min_version(*min).with_max_version(*max))
                .collect(),
        );
        reply(&mut sock, &h, &versions).await;
        let mut asked = Vec::new();
        for code in codes {
            let (h, mut body) = read(&mut sock).await;
            assert_eq!((h.request_api_key, h.request_api_version), (64, 0));
            asked.push(UnregisterBrokerRequest::decode(&mut body, 0).unwrap().broker_id.0);
            reply(&mut sock, &h, &UnregisterBrokerResponse::default().with_error_code(code)).await;
        }
        asked
    }

    #[tokio::test]
    async fn unregisters_over_tcp() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(fake_broker(listener, vec![(64, 0, 0)], vec![0, 102, 41]));
        let mut client = AdminClient::connect(&addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(client.unregister_broker(3).await.unwrap(), Unregistration::Removed);
        assert_eq!(client.unregister_broker(3).await.unwrap(), Unregistration::NotRegistered, "again: already done");
        assert!(matches!(client.unregister_broker(4).await, Err(AdminError::Rejected { code: 41, .. })));
        assert_eq!(broker.await.unwrap(), [3, 3, 4]);
    }

    #[tokio::test]
    async fn a_broker_without_the_api_has_nothing_to_unregister() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = tokio::spawn(fake_broker(listener, vec![(3, 0, 12)], vec![]));
        let mut client = AdminClient::connect(&addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(client.unregister_broker(2).await.unwrap(), Unregistration::Unsupported);
        broker.await.unwrap();
    }
}
