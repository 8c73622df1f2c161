//! Kafka RecordBatch v2 headers: the part of a batch the storage engine parses on every append. Records are
//! decoded only where a lookup or a topic config needs them ([`decode_records`]).
//!
//! Layout (big-endian): baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 | producerId i64 |
//! producerEpoch i16 | baseSequence i32 | recordCount i32. The CRC-32C covers everything from attributes on,
//! so rewriting baseOffset (and the leader epoch) never invalidates it.

use crate::error::{Result, StorageError};
use crate::time_index::TimestampOffset;

/// Size of the fixed batch header.
pub const HEADER_SIZE: usize = 61;
/// baseOffset + batchLength: the prefix that `batchLength` does not count.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

const BATCH_LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// The parsed fixed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header from the first [`HEADER_SIZE`] bytes; `None` if fewer bytes are given.
    /// No validation beyond the length: see [`validate_batch`].
    pub fn parse(bytes: &[u8]) -> Option<BatchHeader> {
        if bytes.len() < HEADER_SIZE {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64_at(bytes, 0),
            batch_length: i32_at(bytes, BATCH_LENGTH_OFFSET),
            partition_leader_epoch: i32_at(bytes, PARTITION_LEADER_EPOCH_OFFSET),
            magic: bytes[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(bytes[CRC_OFFSET..CRC_OFFSET + 4].try_into().expect("4 bytes")),
            attributes: i16_at(bytes, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: i64_at(bytes, BASE_TIMESTAMP_OFFSET),
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(bytes, PRODUCER_ID_OFFSET),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH_OFFSET),
            base_sequence: i32_at(bytes, BASE_SEQUENCE_OFFSET),
            record_count: i32_at(bytes, RECORD_COUNT_OFFSET),
        })
    }

    /// Whole size of the batch on disk, header included. Only meaningful once `batch_length` was checked.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }
}

/// Why a stored batch cannot be read back, as found by [`check_stored_batch`] during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchCheck {
    /// A whole, valid batch.
    Valid(BatchHeader),
    /// The bytes end before the batch does (a torn write).
    Truncated,
    /// Present but invalid (bad length, magic or CRC; or a zero-filled preallocated tail).
    Invalid(String),
}

/// Checks the batch at the start of `bytes` (which may hold more after it): header sanity and CRC-32C.
pub fn check_stored_batch(bytes: &[u8]) -> BatchCheck {
    let Some(header) = BatchHeader::parse(bytes) else {
        return BatchCheck::Truncated;
    };
    if let Err(reason) = header_problem(&header) {
        return BatchCheck::Invalid(reason);
    }
    if bytes.len() < header.size() {
        return BatchCheck::Truncated;
    }
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..header.size()]);
    if computed != header.crc {
        return BatchCheck::Invalid(format!("CRC-32C mismatch: stored {:#010x}, computed {:#010x}", header.crc, computed));
    }
    BatchCheck::Valid(header)
}

/// Structural checks that need only the header (Kafka's LogValidator rules for magic 2).
fn header_problem(h: &BatchHeader) -> std::result::Result<(), String> {
    if h.magic != MAGIC_V2 {
        return Err(format!("magic {} is not 2", h.magic));
    }
    if (h.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
        return Err(format!("batch length {} is shorter than the header", h.batch_length));
    }
    if h.last_offset_delta < 0 || h.record_count <= 0 || i64::from(h.last_offset_delta) + 1 != i64::from(h.record_count) {
        return Err(format!("record count {} does not match last offset delta {}", h.record_count, h.last_offset_delta));
    }
    Ok(())
}

/// Validates every batch of a produce request's records, Kafka's rules, before anything is written.
/// Returns the headers in order. `position` in errors is the byte position inside `records`.
pub fn validate_batches(records: &[u8], max_batch_size: u32) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let mut position = 0;
    while position < records.len() {
        let rest = &records[position..];
        if rest.len() >= HEADER_SIZE && rest[MAGIC_OFFSET] as i8 != MAGIC_V2 {
            return Err(StorageError::InvalidMagic { position, magic: rest[MAGIC_OFFSET] as i8 });
        }
        let header = match check_stored_batch(rest) {
            BatchCheck::Valid(h) => h,
            BatchCheck::Truncated => {
                return Err(StorageError::CorruptBatch {
                    position,
                    reason: format!("batch is truncated ({} bytes left)", rest.len()),
                })
            }
            BatchCheck::Invalid(reason) => return Err(StorageError::CorruptBatch { position, reason }),
        };
        if header.size() > max_batch_size as usize {
            return Err(StorageError::RecordTooLarge { size: header.size(), max: max_batch_size });
        }
        headers.push(header);
        position += header.size();
    }
    if headers.is_empty() {
        return Err(StorageError::CorruptBatch { position: 0, reason: "no record batch in the request".into() });
    }
    Ok(headers)
}

/// Rewrites the base offset of the batch starting at `batch` (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch starting at `batch` (outside the CRC). Producers send -1
/// (Java) or 0 (librdkafka); the log stamps its own.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the timestamp type attribute and the max timestamp of `batch` (exactly one whole batch) and recomputes
/// its CRC-32C (Kafka's `setMaxTimestamp`); `header` is kept in step. Records are untouched: with
/// LogAppendTime, readers take every record's timestamp from the batch's max timestamp.
pub fn set_max_timestamp(batch: &mut [u8], header: &mut BatchHeader, log_append_time: bool, max_timestamp: i64) {
    let attributes =
        if log_append_time { header.attributes | TIMESTAMP_TYPE_MASK } else { header.attributes & !TIMESTAMP_TYPE_MASK };
    if attributes == header.attributes && max_timestamp == header.max_timestamp {
        return;
    }
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    header.attributes = attributes;
    header.max_timestamp = max_timestamp;
    header.crc = update_crc(batch);
}

/// Recomputes the CRC-32C of `batch` (exactly one whole batch) after a change to the bytes it covers.
pub fn update_crc(batch: &mut [u8]) -> u32 {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    crc
}

/// Every record takes at least 7 bytes (length, attributes, timestamp and offset deltas, key and value lengths,
/// header count: one byte each at the least).
const MIN_RECORD_SIZE: usize = 7;
/// Most records a compressed batch may declare: librdkafka's largest batch.num.messages. The decoder reserves
/// memory for the declared count before reading, so a small batch must not declare billions.
const MAX_COMPRESSED_RECORDS: usize = 1_000_000;

/// The records of one stored or produced batch (decompressed if needed), with absolute offsets and timestamps.
pub fn decode_records(batch: &[u8]) -> Result<Vec<kafka_protocol::records::Record>> {
    let header =
        BatchHeader::parse(batch).ok_or_else(|| StorageError::CorruptBatch { position: 0, reason: "short batch".into() })?;
    let count = header.record_count.max(0) as usize;
    let max_count = match header.compression() {
        0 => batch.len().saturating_sub(HEADER_SIZE) / MIN_RECORD_SIZE,
        _ => MAX_COMPRESSED_RECORDS,
    };
    if count > max_count {
        let reason = format!("{count} records declared, at most {max_count} can be in this batch");
        return Err(StorageError::CorruptBatch { position: 0, reason });
    }
    let mut buf = bytes::Bytes::copy_from_slice(batch);
    kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| StorageError::CorruptBatch { position: 0, reason: format!("cannot decode records: {e:#}") })
}

/// Record `i` of a batch written without a producer id (no idempotence), for encoding with kafka-protocol's
/// `RecordBatchEncoder`: offset `i`, no headers.
pub fn plain_record(
    i: usize,
    timestamp: i64,
    key: Option<bytes::Bytes>,
    value: Option<bytes::Bytes>,
) -> kafka_protocol::records::Record {
    kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: i as i64,
        // The encoder starts a new batch wherever offset - sequence changes; this keeps one batch, whose base
        // sequence is -1 as without a producer id.
        sequence: i as i32 - 1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Finds the offset and timestamp of the first record of a stored batch whose timestamp is at least `target`
/// and whose offset is at least `min_offset`.
/// Records are decoded (decompressing if needed): ListOffsets by time wants the exact record, as Kafka
/// returns it. For log-append-time batches every record carries the batch's max timestamp.
pub fn first_record_at_or_after(batch: &[u8], target: i64, min_offset: i64) -> Result<Option<TimestampOffset>> {
    let header =
        BatchHeader::parse(batch).ok_or_else(|| StorageError::CorruptBatch { position: 0, reason: "short batch".into() })?;
    if header.is_log_append_time() {
        let offset = header.base_offset.max(min_offset);
        return Ok((header.max_timestamp >= target && offset <= header.last_offset())
            .then_some(TimestampOffset { timestamp: header.max_timestamp, offset }));
    }
    Ok(decode_records(&batch[..header.size()])?
        .iter()
        .find(|r| r.timestamp >= target && r.offset >= min_offset)
        .map(|r| TimestampOffset { timestamp: r.timestamp, offset: r.offset }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::encode_batch;
    use kafka_protocol::records::Compression;

    #[test]
    fn parses_and_validates_real_batches_of_every_codec() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode_batch(10, 100, 1_000, c);
            let headers = validate_batches(&b, 1 << 20).unwrap();
            assert_eq!(headers.len(), 1);
            let h = headers[0];
            assert_eq!(h.record_count, 10);
            assert_eq!(h.last_offset_delta, 9);
            assert_eq!(h.compression(), c as u8);
            assert_eq!(h.max_timestamp, 1_009);
            assert_eq!(h.size(), b.len());
            let at = |timestamp, offset| Some(TimestampOffset { timestamp, offset });
            assert_eq!(first_record_at_or_after(&b, 1_004, 0).unwrap(), at(1_004, 4));
            assert_eq!(first_record_at_or_after(&b, 1_004, 6).unwrap(), at(1_006, 6));
            assert_eq!(first_record_at_or_after(&b, 5_000, 0).unwrap(), None);
        }
    }

    #[test]
    fn base_offset_rewrite_keeps_crc_valid() {
        let mut b = encode_batch(3, 10, 0, Compression::None);
        set_base_offset(&mut b, 1234);
        let h = validate_batches(&b, 1 << 20).unwrap()[0];
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.last_offset(), 1236);
    }

    #[test]
    fn rejects_flipped_byte_wrong_magic_truncation_and_oversize() {
        let good = encode_batch(5, 50, 0, Compression::None);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x40;
        assert!(matches!(validate_batches(&flipped, 1 << 20), Err(StorageError::CorruptBatch { .. })));

        let mut magic = good.clone();
        magic[MAGIC_OFFSET] = 1;
        assert!(matches!(validate_batches(&magic, 1 << 20), Err(StorageError::InvalidMagic { magic: 1, .. })));

        assert!(matches!(validate_batches(&good[..good.len() - 1], 1 << 20), Err(StorageError::CorruptBatch { .. })));
        assert!(matches!(validate_batches(&good[..10], 1 << 20), Err(StorageError::CorruptBatch { .. })));
        assert!(matches!(validate_batches(&[], 1 << 20), Err(StorageError::CorruptBatch { .. })));
        assert!(matches!(validate_batches(&good, 20), Err(StorageError::RecordTooLarge { max: 20, .. })));

        let mut bad_len = good.clone();
        bad_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(validate_batches(&bad_len, 1 << 20), Err(StorageError::CorruptBatch { .. })));
    }

    #[test]
    fn validates_several_batches_in_one_request() {
        let mut req = encode_batch(2, 5, 0, Compression::None);
        req.extend(encode_batch(3, 5, 0, Compression::Gzip));
        let hs = validate_batches(&req, 1 << 20).unwrap();
        assert_eq!(hs.iter().map(|h| h.record_count).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn record_counts_beyond_what_the_bytes_can_hold_are_refused_before_decoding() {
        let mut b = encode_batch(3, 1, 0, Compression::None);
        let fits = (b.len() - HEADER_SIZE) / MIN_RECORD_SIZE;
        for declared in [fits as i32 + 1, i32::MAX] {
            b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&(declared - 1).to_be_bytes());
            b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&declared.to_be_bytes());
            update_crc(&mut b);
            validate_batches(&b, u32::MAX).unwrap();
            let err = decode_records(&b).unwrap_err();
            assert!(err.to_string().contains(&format!("{declared} records declared")), "{err}");
        }
        let mut z = encode_batch(3, 1, 0, Compression::Zstd);
        z[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        update_crc(&mut z);
        assert!(matches!(decode_records(&z), Err(StorageError::CorruptBatch { .. })));
    }

    #[test]
    fn zero_filled_tail_is_invalid_not_truncated() {
        assert!(matches!(check_stored_batch(&[0u8; 100]), BatchCheck::Invalid(_)));
        assert_eq!(check_stored_batch(&[0u8; 30]), BatchCheck::Truncated);
    }
}
