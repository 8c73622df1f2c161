//! The wire codec: request headers, request bodies and response frames, over the `kafka-protocol` crate.
//! This is the one module that decodes with kafka-protocol; handlers build responses with the message types
//! re-exported here. Produce records stay zero-copy slices of the request frame.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use uuid::Uuid;

pub use kafka_protocol::messages;
pub use kafka_protocol::protocol::StrBytes;

/// APIs this broker implements, with the version ranges advertised in ApiVersions.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    // Consumer groups (classic protocol).
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // SASL authentication (answered by the authenticator on SASL listeners) and SCRAM credentials (KIP-554).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Authorization (v0, without pattern types, is gone from Kafka 4.0 and kafka-protocol).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// The advertised version range of an API, if this broker implements it.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request header truncated")]
    TruncatedHeader,
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

#[derive(Debug, Clone)]
pub struct RequestHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Reads `api_key`, `api_version` and `correlation_id`: enough to answer or log even when the rest is bad.
pub fn peek_ids(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let mut b = frame.get(..8)?;
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}

/// Parses a request header (v0-v2) and returns it with the offset where the body starts.
/// Versions outside the API's range are not checked here: ApiVersions must answer them.
pub fn decode_header(frame: &[u8]) -> Result<(RequestHeader, usize), DecodeError> {
    let (key, api_version, correlation_id) = peek_ids(frame).ok_or(DecodeError::TruncatedHeader)?;
    let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
    let mut b = &frame[8..];
    // Header v1+ has a nullable client id (a non-compact string even in flexible versions).
    let header_version = api_key.request_header_version(api_version);
    let mut client_id = None;
    if header_version >= 1 {
        if b.remaining() < 2 {
            return Err(DecodeError::TruncatedHeader);
        }
        let len = b.get_i16();
        if len >= 0 {
            let s = b.get(..len as usize).ok_or(DecodeError::TruncatedHeader)?;
            client_id = Some(String::from_utf8_lossy(s).into_owned());
            b.advance(len as usize);
        }
    }
    if header_version >= 2 {
        skip_tagged_fields(&mut b).ok_or(DecodeError::TruncatedHeader)?;
    }
    let body_start = frame.len() - b.len();
    Ok((RequestHeader { api_key, api_version, correlation_id, client_id }, body_start))
}

fn read_uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = *b.first()?;
        b.advance(1);
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn skip_tagged_fields(b: &mut &[u8]) -> Option<()> {
    for _ in 0..read_uvarint(b)? {
        read_uvarint(b)?;
        let size = usize::try_from(read_uvarint(b)?).ok()?;
        *b = b.get(size..)?;
    }
    Some(())
}

/// A decoded request body.
#[derive(Debug)]
pub enum Request {
    ApiVersions(m::ApiVersionsRequest),
    Metadata(m::MetadataRequest),
    Produce(ProduceRequest),
    Fetch(m::FetchRequest),
    ListOffsets(m::ListOffsetsRequest),
    CreateTopics(m::CreateTopicsRequest),
    DeleteTopics(m::DeleteTopicsRequest),
    CreatePartitions(m::CreatePartitionsRequest),
    DeleteRecords(m::DeleteRecordsRequest),
    DescribeConfigs(m::DescribeConfigsRequest),
    AlterConfigs(m::AlterConfigsRequest),
    IncrementalAlterConfigs(m::IncrementalAlterConfigsRequest),
    DescribeCluster(m::DescribeClusterRequest),
    DescribeQuorum(m::DescribeQuorumRequest),
    UnregisterBroker(m::UnregisterBrokerRequest),
    ElectLeaders(m::ElectLeadersRequest),
    AlterPartitionReassignments(m::AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(m::ListPartitionReassignmentsRequest),
    DescribeLogDirs(m::DescribeLogDirsRequest),
    OffsetForLeaderEpoch(m::OffsetForLeaderEpochRequest),
    FindCoordinator(m::FindCoordinatorRequest),
    InitProducerId(m::InitProducerIdRequest),
    OffsetCommit(m::OffsetCommitRequest),
    OffsetFetch(m::OffsetFetchRequest),
    JoinGroup(m::JoinGroupRequest),
    Heartbeat(m::HeartbeatRequest),
    LeaveGroup(m::LeaveGroupRequest),
    SyncGroup(m::SyncGroupRequest),
    DescribeGroups(m::DescribeGroupsRequest),
    ListGroups(m::ListGroupsRequest),
    DeleteGroups(m::DeleteGroupsRequest),
    OffsetDelete(m::OffsetDeleteRequest),
    SaslHandshake(m::SaslHandshakeRequest),
    SaslAuthenticate(m::SaslAuthenticateRequest),
    DescribeUserScramCredentials(m::DescribeUserScramCredentialsRequest),
    AlterUserScramCredentials(m::AlterUserScramCredentialsRequest),
    DescribeAcls(m::DescribeAclsRequest),
    CreateAcls(m::CreateAclsRequest),
    DeleteAcls(m::DeleteAclsRequest),
}

/// Produce with each partition's records as a mutable, zero-copy slice of the request frame (the storage
/// engine rewrites base offsets in place).
#[derive(Debug)]
pub struct ProduceRequest {
    pub transactional_id: Option<String>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<ProduceTopic>,
}

#[derive(Debug)]
pub struct ProduceTopic {
    /// Empty in v13+, which names topics by id.
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<ProducePartition>,
}

#[derive(Debug)]
pub struct ProducePartition {
    pub index: i32,
    pub records: Option<BytesMut>,
}

/// Decodes the body of a request whose header was parsed from `frame` (body at `body_start`).
/// Never panics: kafka-protocol's decoders are additionally guarded, so a panic there is a malformed request.
pub fn decode_request(header: &RequestHeader, frame: Bytes, body_start: usize) -> Result<Request, DecodeError> {
    let (api, version) = (header.api_key, header.api_version);
    match supported_versions(api) {
        Some((min, max)) if (min..=max).contains(&version) => {}
        _ => return Err(DecodeError::UnsupportedVersion { api, version }),
    }
    let malformed = |reason: String| DecodeError::Malformed { api, version, reason };
    if api == ApiKey::Produce {
        return decode_produce(frame, body_start, version).map(Request::Produce).map_err(malformed);
    }
    let mut body = frame.slice(body_start..);
    let decoded = catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<Request> {
        let b = &mut body;
        Ok(match api {
            ApiKey::ApiVersions => Request::ApiVersions(Decodable::decode(b, version)?),
            ApiKey::Metadata => Request::Metadata(Decodable::decode(b, version)?),
            ApiKey::Fetch => Request::Fetch(Decodable::decode(b, version)?),
            ApiKey::ListOffsets => Request::ListOffsets(Decodable::decode(b, version)?),
            ApiKey::CreateTopics => Request::CreateTopics(Decodable::decode(b, version)?),
            ApiKey::DeleteTopics => Request::DeleteTopics(Decodable::decode(b, version)?),
            ApiKey::CreatePartitions => Request::CreatePartitions(Decodable::decode(b, version)?),
            ApiKey::DeleteRecords => Request::DeleteRecords(Decodable::decode(b, version)?),
            ApiKey::DescribeConfigs => Request::DescribeConfigs(Decodable::decode(b, version)?),
            ApiKey::AlterConfigs => Request::AlterConfigs(Decodable::decode(b, version)?),
            ApiKey::IncrementalAlterConfigs => Request::IncrementalAlterConfigs(Decodable::decode(b, version)?),
            ApiKey::DescribeCluster => Request::DescribeCluster(Decodable::decode(b, version)?),
            ApiKey::DescribeQuorum => Request::DescribeQuorum(Decodable::decode(b, version)?),
            ApiKey::UnregisterBroker => Request::UnregisterBroker(Decodable::decode(b, version)?),
            ApiKey::ElectLeaders => Request::ElectLeaders(Decodable::decode(b, version)?),
            ApiKey::AlterPartitionReassignments => Request::AlterPartitionReassignments(Decodable::decode(b, version)?),
            ApiKey::ListPartitionReassignments => Request::ListPartitionReassignments(Decodable::decode(b, version)?),
            ApiKey::DescribeLogDirs => Request::DescribeLogDirs(Decodable::decode(b, version)?),
            ApiKey::OffsetForLeaderEpoch => Request::OffsetForLeaderEpoch(Decodable::decode(b, version)?),
            ApiKey::FindCoordinator => Request::FindCoordinator(Decodable::decode(b, version)?),
            ApiKey::InitProducerId => Request::InitProducerId(Decodable::decode(b, version)?),
            ApiKey::OffsetCommit => Request::OffsetCommit(Decodable::decode(b, version)?),
            ApiKey::OffsetFetch => Request::OffsetFetch(Decodable::decode(b, version)?),
            ApiKey::JoinGroup => Request::JoinGroup(Decodable::decode(b, version)?),
            ApiKey::Heartbeat => Request::Heartbeat(Decodable::decode(b, version)?),
            ApiKey::LeaveGroup => Request::LeaveGroup(Decodable::decode(b, version)?),
            ApiKey::SyncGroup => Request::SyncGroup(Decodable::decode(b, version)?),
            ApiKey::DescribeGroups => Request::DescribeGroups(Decodable::decode(b, version)?),
            ApiKey::ListGroups => Request::ListGroups(Decodable::decode(b, version)?),
            ApiKey::DeleteGroups => Request::DeleteGroups(Decodable::decode(b, version)?),
            ApiKey::OffsetDelete => Request::OffsetDelete(Decodable::decode(b, version)?),
            ApiKey::SaslHandshake => Request::SaslHandshake(Decodable::decode(b, version)?),
            ApiKey::SaslAuthenticate => Request::SaslAuthenticate(Decodable::decode(b, version)?),
            ApiKey::DescribeUserScramCredentials => Request::DescribeUserScramCredentials(Decodable::decode(b, version)?),
            ApiKey::AlterUserScramCredentials => Request::AlterUserScramCredentials(Decodable::decode(b, version)?),
            ApiKey::DescribeAcls => Request::DescribeAcls(Decodable::decode(b, version)?),
            ApiKey::CreateAcls => Request::CreateAcls(Decodable::decode(b, version)?),
            ApiKey::DeleteAcls => Request::DeleteAcls(Decodable::decode(b, version)?),
            other => anyhow::bail!("{other:?} has no decoder"),
        })
    }));
    match decoded {
        Ok(Ok(req)) => Ok(req),
        Ok(Err(e)) => Err(malformed(format!("{e:#}"))),
        Err(_) => Err(malformed("decoder panicked".into())),
    }
}

fn decode_produce(frame: Bytes, body_start: usize, version: i16) -> Result<ProduceRequest, String> {
    let base = frame.as_ptr() as usize;
    let mut body = frame.slice(body_start..);
    let decoded = catch_unwind(AssertUnwindSafe(|| m::ProduceRequest::decode(&mut body, version)))
        .map_err(|_| "decoder panicked".to_string())?
        .map_err(|e| format!("{e:#}"))?;
    drop(body);
    // Remember where each partition's records lie in the frame, then drop every decoded reference to it so
    // the frame is uniquely owned again and can be split into mutable pieces without copying.
    let mut ranges = Vec::new();
    let mut topics = Vec::with_capacity(decoded.topic_data.len());
    for t in decoded.topic_data {
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let range = p.records.as_ref().map(|r| (r.as_ptr() as usize - base, r.len()));
            if let Some(r) = range {
                ranges.push((r, topics.len(), partitions.len()));
            }
            partitions.push(ProducePartition { index: p.index, records: None });
        }
        topics.push(ProduceTopic { name: t.name.0.to_string(), topic_id: t.topic_id, partitions });
    }
    let transactional_id = decoded.transactional_id.map(|t| t.0.to_string());
    let (acks, timeout_ms) = (decoded.acks, decoded.timeout_ms);
    // Only a (practically impossible) lingering reference forces the copy.
    let mut rest = frame.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    ranges.sort_unstable_by_key(|((start, _), _, _)| *start);
    let mut consumed = 0;
    for ((start, len), t, p) in ranges {
        rest.advance(start - consumed);
        topics[t].partitions[p].records = Some(rest.split_to(len));
        consumed = start + len;
    }
    Ok(ProduceRequest { transactional_id, acks, timeout_ms, topics })
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a whole response frame: size prefix, response header (v0 or v1 per the API and version), body.
pub fn encode_response<R: Encodable>(header: &RequestHeader, body: &R) -> Result<Bytes, EncodeError> {
    let (api, version) = (header.api_key, header.api_version);
    let err = |e: anyhow::Error| EncodeError { api, version, reason: format!("{e:#}") };
    let header_version = api.response_header_version(version);
    let rh = ResponseHeader::default().with_correlation_id(header.correlation_id);
    let size = rh.compute_size(header_version).map_err(err)? + body.compute_size(version).map_err(err)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    rh.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    Ok(buf.freeze())
}

/// Bytes of a response header for `header`'s API and version (for responses we frame ourselves).
pub fn encode_response_header(header: &RequestHeader) -> Bytes {
    let mut buf = BytesMut::with_capacity(8);
    buf.put_i32(header.correlation_id);
    if header.api_key.response_header_version(header.api_version) >= 1 {
        buf.put_u8(0); // no tagged fields
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{produce_request, RequestHeader as KRequestHeader, TopicName};
    use kafka_protocol::protocol::Encodable;

    fn frame_of<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Bytes {
        let h = KRequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        h.encode(&mut buf, api.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn headers_of_every_version() {
        for (api, version) in [(ApiKey::Metadata, 0), (ApiKey::Metadata, 9), (ApiKey::Produce, 9), (ApiKey::ApiVersions, 3)] {
            let frame = frame_of(api, version, &m::MetadataRequest::default());
            let (h, _) = decode_header(&frame).unwrap();
            assert_eq!((h.api_key, h.api_version, h.correlation_id), (api, version, 7));
            assert_eq!(h.client_id.as_deref(), Some("test"));
        }
        assert!(matches!(decode_header(&[0, 3, 0]), Err(DecodeError::TruncatedHeader)));
        assert!(matches!(decode_header(&[0x7f, 0, 0, 0, 0, 0, 0, 1]), Err(DecodeError::UnknownApiKey(0x7f00))));
        // Client id length beyond the frame; tagged fields beyond the frame.
        assert!(decode_header(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 9, b'a']).is_err());
        assert!(decode_header(&[0, 3, 0, 9, 0, 0, 0, 1, 0, 0, 1, 0, 5]).is_err());
    }

    #[test]
    fn unsupported_versions_and_garbage_are_errors() {
        let frame = frame_of(ApiKey::Metadata, 1, &m::MetadataRequest::default());
        let (mut h, start) = decode_header(&frame).unwrap();
        h.api_version = 99;
        assert!(matches!(decode_request(&h, frame.clone(), start), Err(DecodeError::UnsupportedVersion { .. })));
        h.api_version = 1;
        let truncated = frame.slice(..start + 2);
        assert!(matches!(decode_request(&h, truncated, start), Err(DecodeError::Malformed { .. })));
        // A huge array count must fail cleanly (not try to allocate it all).
        let mut huge = BytesMut::from(&frame[..start]);
        huge.put_i32(i32::MAX);
        assert!(matches!(decode_request(&h, huge.freeze(), start), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn produce_records_are_zero_copy_mutable_slices_of_the_frame() {
        let records = |b: u8, n: usize| Some(Bytes::from(vec![b; n]));
        let part = |i, r| produce_request::PartitionProduceData::default().with_index(i).with_records(r);
        let req = m::ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_partition_data(vec![part(0, records(1, 10)), part(1, None), part(2, records(2, 3))]),
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("b")))
                .with_partition_data(vec![part(5, records(3, 7))]),
        ]);
        for version in [3, 8, 9, 12] {
            let frame = frame_of(ApiKey::Produce, version, &req);
            let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
            let (h, start) = decode_header(&frame).unwrap();
            let Request::Produce(p) = decode_request(&h, frame, start).unwrap() else { panic!() };
            assert_eq!((p.acks, p.timeout_ms), (-1, 1000));
            assert_eq!(p.topics[0].name, "a");
            assert_eq!(p.topics[1].partitions[0].index, 5);
            let a = &p.topics[0].partitions;
            assert_eq!(a[0].records.as_deref(), Some(&[1u8; 10][..]));
            assert!(a[1].records.is_none());
            assert_eq!(a[2].records.as_deref(), Some(&[2u8; 3][..]));
            assert_eq!(p.topics[1].partitions[0].records.as_deref(), Some(&[3u8; 7][..]));
            for r in [&a[0].records, &a[2].records, &p.topics[1].partitions[0].records] {
                assert!(range.contains(&(r.as_ref().unwrap().as_ptr() as usize)), "v{version}: records were copied");
            }
        }
    }

    #[test]
    fn response_frames_have_size_and_header() {
        let frame = frame_of(ApiKey::Metadata, 9, &m::MetadataRequest::default());
        let (h, _) = decode_header(&frame).unwrap();
        let out = encode_response(&h, &m::MetadataResponse::default()).unwrap();
        assert_eq!(i32::from_be_bytes(out[..4].try_into().unwrap()) as usize, out.len() - 4);
        assert_eq!(&out[4..8], &7i32.to_be_bytes());
        assert_eq!(out[8], 0, "flexible response header has tagged fields");
        assert_eq!(&encode_response_header(&h)[..], &[0, 0, 0, 7, 0]);
    }
}
