//! Records of the `__consumer_offsets` log, in Kafka's formats (so the log reads like Kafka's): keys are
//! OffsetCommitKey (version 1: group, topic, partition) and GroupMetadataKey (version 2: group); values are
//! OffsetCommitValue (version 3, or 1 when an expire timestamp must be kept) and GroupMetadataValue (version 3);
//! a null value is a tombstone. Batches are RecordBatch v2 built by kafka-protocol's encoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
use strata_storage::TopicPartition;

use super::offsets::CommittedOffset;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A stored member of a group (Kafka's MemberMetadata v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A stored group (Kafka's GroupMetadataValue v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Empty when the group has none.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberRecord>,
}

/// One decoded record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Offset { group: String, tp: TopicPartition, value: Option<CommittedOffset> },
    Group { group: String, value: Option<GroupRecord> },
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// Longest string the format holds (int16 length); longer ones are refused before they are stored.
pub const MAX_STRING: usize = i16::MAX as usize;

pub fn offset_key(group: &str, tp: &TopicPartition) -> Bytes {
    let mut b = BytesMut::with_capacity(10 + group.len() + tp.topic.len());
    b.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut b, group);
    put_str(&mut b, &tp.topic);
    b.put_i32(tp.partition);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + group.len());
    b.put_i16(GROUP_KEY_VERSION);
    put_str(&mut b, group);
    b.freeze()
}

pub fn offset_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::with_capacity(32 + o.metadata.len());
    match o.expire_timestamp {
        Some(expire) => {
            b.put_i16(1);
            b.put_i64(o.offset);
            put_str(&mut b, &o.metadata);
            b.put_i64(o.commit_timestamp);
            b.put_i64(expire);
        }
        None => {
            b.put_i16(3);
            b.put_i64(o.offset);
            b.put_i32(o.leader_epoch);
            put_str(&mut b, &o.metadata);
            b.put_i64(o.commit_timestamp);
        }
    }
    b.freeze()
}

pub fn group_value(g: &GroupRecord) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable_str(&mut b, g.protocol.as_deref());
    put_nullable_str(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// A bounds-checked reader over one key or value.
struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.b.len() < n {
            return Err(RecordError::Truncated(self.what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(self.take(2)?.get_i16())
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(self.take(4)?.get_i32())
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(self.take(8)?.get_i64())
    }
    fn nullable_str(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|_| RecordError::Invalid(self.what))
    }
    fn str(&mut self) -> Result<String, RecordError> {
        self.nullable_str()?.ok_or(RecordError::Invalid(self.what))
    }
    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = usize::try_from(self.i32()?).map_err(|_| RecordError::Invalid(self.what))?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

fn decode_offset_value(v: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut r = Reader { b: v, what: "offset commit value" };
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = match version {
        0 | 2 | 3 => None,
        1 => Some(r.i64()?),
        _ => return Err(RecordError::UnsupportedVersion { what: "offset commit value", version }),
    };
    Ok(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

fn decode_group_value(v: &[u8]) -> Result<GroupRecord, RecordError> {
    let mut r = Reader { b: v, what: "group metadata value" };
    let version = r.i16()?;
    if version != 3 {
        return Err(RecordError::UnsupportedVersion { what: "group metadata value", version });
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let state_timestamp = r.i64()?;
    let count = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        members.push(MemberRecord {
            member_id: r.str()?,
            instance_id: r.nullable_str()?,
            client_id: r.str()?,
            client_host: r.str()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupRecord { protocol_type, generation, protocol, leader, state_timestamp, members })
}

pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
    let mut r = Reader { b: key, what: "key" };
    match r.i16()? {
        0 | 1 => {
            let group = r.str()?;
            let topic = r.str()?;
            let partition = r.i32()?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Record::Offset { group, tp: TopicPartition::new(topic, partition), value })
        }
        2 => {
            let group = r.str()?;
            Ok(Record::Group { group, value: value.map(decode_group_value).transpose()? })
        }
        version => Err(RecordError::UnsupportedVersion { what: "key", version }),
    }
}

/// One RecordBatch v2 holding `records` (key, value-or-tombstone) stamped `timestamp`.
pub fn batch(records: &[(Bytes, Option<Bytes>)], timestamp: i64) -> BytesMut {
    let records: Vec<KRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| strata_storage::batch::plain_record(i, timestamp, Some(key.clone()), value.clone()))
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("encoding uncompressed v2 records cannot fail");
    buf
}

/// The (offset, key, value) of every record of whole record batches read back from the log.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<(i64, Bytes, Option<Bytes>)>, RecordError> {
    let mut out = Vec::new();
    while bytes.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|_| RecordError::Invalid("record batch"))?;
        for r in set.records {
            match r.key {
                Some(key) => out.push((r.offset, key, r.value)),
                None => return Err(RecordError::Invalid("record without key")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> MemberRecord {
        MemberRecord {
            member_id: "m-1".into(),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        }
    }

    #[test]
    fn records_round_trip_through_batches() {
        let tp = TopicPartition::new("orders", 3);
        let offset =
            CommittedOffset { offset: 42, leader_epoch: 7, metadata: "m".into(), commit_timestamp: 9, expire_timestamp: None };
        let expiring = CommittedOffset { leader_epoch: -1, expire_timestamp: Some(99), ..offset.clone() };
        let group = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp: 1234,
            members: vec![member(), MemberRecord { instance_id: None, ..member() }],
        };
        let empty = GroupRecord { protocol: None, leader: None, members: vec![], ..group.clone() };
        let pairs = [
            (offset_key("g", &tp), Some(offset_value(&offset))),
            (offset_key("g", &tp), Some(offset_value(&expiring))),
            (offset_key("g", &tp), None),
            (group_key("g"), Some(group_value(&group))),
            (group_key("g"), Some(group_value(&empty))),
            (group_key("g"), None),
        ];
        let mut log = batch(&pairs[..3], 1);
        let headers = RecordBatchDecoder::decode_batch_info(&mut log.clone().freeze()).unwrap();
        assert_eq!((headers.len(), headers[0].record_count, headers[0].base_sequence), (1, 3, -1), "one batch per append");
        log.extend_from_slice(&batch(&pairs[3..], 2));
        let read = decode_batches(log.freeze()).unwrap();
        assert_eq!(read.iter().map(|(o, _, _)| *o).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2], "offsets as encoded");
        let decoded: Vec<Record> = read.iter().map(|(_, k, v)| decode(k, v.as_deref()).unwrap()).collect();
        let g = || "g".to_string();
        assert_eq!(
            decoded,
            vec![
                Record::Offset { group: g(), tp: tp.clone(), value: Some(offset) },
                Record::Offset { group: g(), tp: tp.clone(), value: Some(expiring) },
                Record::Offset { group: g(), tp, value: None },
                Record::Group { group: g(), value: Some(group) },
                Record::Group { group: g(), value: Some(empty) },
                Record::Group { group: g(), value: None },
            ]
        );
    }

    #[test]
    fn kafkas_older_offset_values_are_read() {
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i64(10);
        put_str(&mut v0, "meta");
        v0.put_i64(77);
        let key = offset_key("g", &TopicPartition::new("t", 0));
        let Record::Offset { value: Some(o), .. } = decode(&key, Some(&v0)).unwrap() else { panic!() };
        assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str(), o.commit_timestamp), (10, -1, "meta", 77));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let key = offset_key("g", &TopicPartition::new("t", 0));
        let value = group_value(&GroupRecord {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            state_timestamp: 0,
            members: vec![member()],
        });
        for cut in 0..key.len() {
            assert!(decode(&key[..cut], None).is_err());
        }
        for cut in 0..value.len() {
            assert!(decode(&group_key("g"), Some(&value[..cut])).is_err(), "{cut}");
        }
        assert_eq!(decode(&[0, 9], None), Err(RecordError::UnsupportedVersion { what: "key", version: 9 }));
        let mut bad_len = BytesMut::from(&value[..]);
        bad_len[2] = 0x7f; // protocol type length far beyond the value
        assert!(decode(&group_key("g"), Some(&bad_len)).is_err());
        assert!(decode_batches(Bytes::from_static(&[0; 70])).is_err());
    }
}
