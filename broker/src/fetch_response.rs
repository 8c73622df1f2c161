//! Fetch responses (v4-v18) laid out by hand so record bytes never pass through user space: everything but the
//! records is encoded into small buffers, and each partition's records are file ranges sent with sendfile(2).
//! Tests check the bytes against kafka-protocol's own encoder for every version.

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use crate::frame::{FileSlice, Payload, ResponseFrame};

pub const MIN_VERSION: i16 = 4;
pub const MAX_VERSION: i16 = 18;

pub struct FetchResponseData {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<TopicData>,
    /// KIP-951 (v16+, tagged field 0): (id, host, port, rack) of the leaders that `current_leader`s name.
    pub node_endpoints: Vec<NodeEndpoint>,
}

pub type NodeEndpoint = (i32, String, i32, Option<String>);

pub struct TopicData {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionData>,
}

pub struct PartitionData {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// To a follower whose log diverged: (epoch, end offset) of the leader's epoch (v12+, tagged field 0).
    pub diverging_epoch: Option<(i32, i64)>,
    /// To a client that asked a broker which does not lead: (leader id, leader epoch) (v12+, tagged field 1).
    pub current_leader: Option<(i32, i32)>,
    /// Whole record batches, in log order.
    pub records: Vec<FileSlice>,
}

impl PartitionData {
    pub fn records_len(&self) -> u64 {
        self.records.iter().map(|r| r.len).sum()
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, flexible: bool, n: usize) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

/// DivergingEpoch (tag 0) and CurrentLeader (tag 1), each a struct with its own empty tagged fields.
fn put_partition_tagged_fields(buf: &mut BytesMut, p: &PartitionData) {
    let count = p.diverging_epoch.is_some() as u64 + p.current_leader.is_some() as u64;
    put_uvarint(buf, count);
    if let Some((epoch, end_offset)) = p.diverging_epoch {
        put_uvarint(buf, 0);
        put_uvarint(buf, 4 + 8 + 1);
        buf.put_i32(epoch);
        buf.put_i64(end_offset);
        put_uvarint(buf, 0);
    }
    if let Some((leader, epoch)) = p.current_leader {
        put_uvarint(buf, 1);
        put_uvarint(buf, 4 + 4 + 1);
        buf.put_i32(leader);
        buf.put_i32(epoch);
        put_uvarint(buf, 0);
    }
}

fn put_compact_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

/// The response's tagged fields: NodeEndpoints (tag 0, v16+) when there are any.
fn put_node_endpoints(buf: &mut BytesMut, version: i16, endpoints: &[NodeEndpoint]) {
    if version < 16 || endpoints.is_empty() {
        put_uvarint(buf, 0);
        return;
    }
    let mut field = BytesMut::new();
    put_array_len(&mut field, true, endpoints.len());
    for (id, host, port, rack) in endpoints {
        field.put_i32(*id);
        put_compact_str(&mut field, Some(host));
        field.put_i32(*port);
        put_compact_str(&mut field, rack.as_deref());
        put_uvarint(&mut field, 0);
    }
    put_uvarint(buf, 1);
    put_uvarint(buf, 0);
    put_uvarint(buf, field.len() as u64);
    buf.put_slice(&field);
}

/// The whole response frame: size prefix, `response_header` (correlation id and, for flexible versions, its
/// tagged fields), then the body with record bytes as file ranges.
pub fn encode(version: i16, response_header: &[u8], data: &FetchResponseData) -> ResponseFrame {
    debug_assert!((MIN_VERSION..=MAX_VERSION).contains(&version));
    let flexible = version >= 12;
    let mut parts = Vec::new();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // size, patched below
    buf.put_slice(response_header);
    buf.put_i32(data.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(data.error_code);
        buf.put_i32(data.session_id);
    }
    put_array_len(&mut buf, flexible, data.topics.len());
    for t in &data.topics {
        if version >= 13 {
            buf.put_slice(t.topic_id.as_bytes());
        } else if flexible {
            put_uvarint(&mut buf, t.name.len() as u64 + 1);
            buf.put_slice(t.name.as_bytes());
        } else {
            buf.put_i16(t.name.len() as i16);
            buf.put_slice(t.name.as_bytes());
        }
        put_array_len(&mut buf, flexible, t.partitions.len());
        for p in &t.partitions {
            buf.put_i32(p.partition_index);
            buf.put_i16(p.error_code);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            put_array_len(&mut buf, flexible, 0); // aborted transactions: none without transactions
            if version >= 11 {
                buf.put_i32(-1); // preferred read replica: none
            }
            let len = p.records_len();
            if flexible {
                put_uvarint(&mut buf, len + 1);
            } else {
                buf.put_i32(len as i32);
            }
            if !p.records.is_empty() {
                parts.push(Payload::Bytes(buf.split().freeze()));
                parts.extend(p.records.iter().cloned().map(Payload::File));
            }
            if flexible {
                put_partition_tagged_fields(&mut buf, p);
            }
        }
        if flexible {
            put_uvarint(&mut buf, 0); // topic tagged fields
        }
    }
    if flexible {
        put_node_endpoints(&mut buf, version, &data.node_endpoints);
    }
    if !buf.is_empty() {
        parts.push(Payload::Bytes(buf.freeze()));
    }
    let mut frame = ResponseFrame { parts };
    let size = (frame.size() - 4) as i32;
    if let Some(Payload::Bytes(first)) = frame.parts.first_mut() {
        let mut patched = BytesMut::from(&first[..]);
        patched[..4].copy_from_slice(&size.to_be_bytes());
        *first = patched.freeze();
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    use bytes::Bytes;

    use kafka_protocol::messages::fetch_response as kf;
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn segment_file(content: &[u8]) -> Arc<std::fs::File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        Arc::new(f)
    }

    /// Our frame minus size prefix and header must equal kafka-protocol's encoding of the same response.
    fn check(version: i16, data: &FetchResponseData) {
        let header = [0u8, 0, 0, 9, 0];
        let header = if version >= 12 { &header[..] } else { &header[..4] };
        let frame = encode(version, header, data);
        let ours = frame.to_vec().unwrap();
        assert_eq!(i32::from_be_bytes(ours[..4].try_into().unwrap()) as usize, ours.len() - 4, "v{version} size");
        assert_eq!(&ours[4..4 + header.len()], header);

        let theirs = FetchResponse::default()
            .with_throttle_time_ms(data.throttle_time_ms)
            .with_error_code(if version >= 7 { data.error_code } else { 0 })
            .with_session_id(if version >= 7 { data.session_id } else { 0 })
            .with_responses(
                data.topics
                    .iter()
                    .map(|t| {
                        kf::FetchableTopicResponse::default()
                            .with_topic(if version < 13 {
                                TopicName(StrBytes::from_string(t.name.clone()))
                            } else {
                                Default::default()
                            })
                            .with_topic_id(if version >= 13 { t.topic_id } else { Uuid::nil() })
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        let records: Vec<u8> = p.records.iter().flat_map(|r| r.read_to_vec().unwrap()).collect();
                                        let (e, o) = p.diverging_epoch.filter(|_| version >= 12).unwrap_or((-1, -1));
                                        let (l, le) = p.current_leader.filter(|_| version >= 12).unwrap_or((-1, -1));
                                        kf::PartitionData::default()
                                            .with_diverging_epoch(kf::EpochEndOffset::default().with_epoch(e).with_end_offset(o))
                                            .with_current_leader(
                                                kf::LeaderIdAndEpoch::default()
                                                    .with_leader_id(kafka_protocol::messages::BrokerId(l))
                                                    .with_leader_epoch(le),
                                            )
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(p.error_code)
                                            .with_high_watermark(p.high_watermark)
                                            .with_last_stable_offset(p.last_stable_offset)
                                            .with_log_start_offset(p.log_start_offset)
                                            .with_aborted_transactions(Some(vec![]))
                                            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                                            .with_records(Some(Bytes::from(records)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )
            .with_node_endpoints(if version >= 16 {
                data.node_endpoints
                    .iter()
                    .map(|(id, host, port, rack)| {
                        kf::NodeEndpoint::default()
                            .with_node_id(kafka_protocol::messages::BrokerId(*id))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_port(*port)
                            .with_rack(rack.clone().map(StrBytes::from_string))
                    })
                    .collect()
            } else {
                vec![]
            });
        let mut expected = BytesMut::new();
        theirs.encode(&mut expected, version).unwrap();
        assert_eq!(&ours[4 + header.len()..], &expected[..], "fetch v{version} differs from kafka-protocol");
    }

    fn sample() -> FetchResponseData {
        let file = segment_file(&(0..=255u8).cycle().take(70_000).collect::<Vec<_>>());
        let slice = |position, len| FileSlice { file: file.clone(), position, len };
        let part = |index, error_code, records| PartitionData {
            partition_index: index,
            error_code,
            high_watermark: 1 << 40,
            last_stable_offset: 12345,
            log_start_offset: 7,
            diverging_epoch: None,
            current_leader: None,
            records,
        };
        FetchResponseData {
            throttle_time_ms: 3,
            error_code: 0,
            session_id: 0,
            topics: vec![
                TopicData {
                    name: "orders".into(),
                    topic_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
                    partitions: vec![
                        part(0, 0, vec![slice(0, 100), slice(500, 69_000)]),
                        part(1, 1, vec![]),
                        part(2, 0, vec![slice(3, 1)]),
                        PartitionData { diverging_epoch: Some((4, 1000)), ..part(3, 0, vec![]) },
                        PartitionData { current_leader: Some((2, 7)), ..part(4, 6, vec![]) },
                        PartitionData { diverging_epoch: Some((1, 5)), current_leader: Some((3, 9)), ..part(5, 0, vec![]) },
                    ],
                },
                TopicData { name: "t".repeat(200), topic_id: Uuid::from_u128(42), partitions: vec![part(9, 3, vec![])] },
                TopicData { name: "empty".into(), topic_id: Uuid::nil(), partitions: vec![] },
            ],
            node_endpoints: vec![(2, "broker-2.local".into(), 9092, Some("rack-a".into())), (3, "b3".into(), 1, None)],
        }
    }

    #[test]
    fn matches_kafka_protocol_for_every_version() {
        let data = sample();
        for version in MIN_VERSION..=MAX_VERSION {
            check(version, &data);
            check(
                version,
                &FetchResponseData { throttle_time_ms: 0, error_code: 0, session_id: 0, topics: vec![], node_endpoints: vec![] },
            );
        }
    }

    #[test]
    fn records_are_file_ranges_not_copies() {
        let data = sample();
        let frame = encode(12, &[0, 0, 0, 1, 0], &data);
        let files: Vec<(u64, u64)> =
            frame.parts.iter().filter_map(|p| if let Payload::File(f) = p { Some((f.position, f.len)) } else { None }).collect();
        assert_eq!(files, [(0, 100), (500, 69_000), (3, 1)]);
        let bytes: u64 = frame.parts.iter().filter(|p| matches!(p, Payload::Bytes(_))).map(Payload::size).sum();
        assert!(bytes < 1000, "only headers are encoded in memory: {bytes}");
    }
}
