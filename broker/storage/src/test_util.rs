//! Builders for tests and benchmarks: record batches made by the real Kafka codec (`kafka-protocol`).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

pub use kafka_protocol::records::Compression;

/// One RecordBatch v2 of `count` records, as a producer sends it: record i has key `key-i`, a header
/// `h: i`, a value of `value_len` bytes and timestamp `ts0 + i`.
pub fn encode_batch(count: usize, value_len: usize, ts0: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut headers = IndexMap::new();
            headers.insert(StrBytes::from_static_str("h"), Some(Bytes::from(i.to_string())));
            let key = Some(Bytes::from(format!("key-{i}")));
            let value = Some(Bytes::from((0..value_len).map(|j| (i + j) as u8).collect::<Vec<u8>>()));
            Record { headers, ..crate::batch::plain_record(i, ts0 + i as i64, key, value) }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression })
        .expect("the Kafka codec encodes what we give it");
    buf.to_vec()
}

/// Sets the producer id, epoch and base sequence of an encoded batch, as an idempotent producer sends them,
/// and recomputes the CRC-32C.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    crate::batch::update_crc(batch);
}
