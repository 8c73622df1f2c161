//! What a log's configs do to the batches produced to it, as Kafka's LogValidator does for magic 2:
//! `message.timestamp.before/after.max.ms` (checked), `compression.type` (batches in another codec are
//! re-encoded) and `message.timestamp.type` (LogAppendTime batches are stamped with the append time).
//! Pure functions over batch bytes; [`crate::log::Log::append`] applies them.
//!
//! Only what a config asks for is done: with the defaults (`producer`, CreateTime without a lower time bound)
//! nothing is decoded and batches are stored as received (the log assigns only the base offset and leader epoch).

use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

use crate::batch::{self, BatchHeader};
use crate::config::{CompressionType, LogConfig, TimestampType};
use crate::error::{Result, StorageError};

/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record without a create time, exempt from the bounds.
const NO_TIMESTAMP: i64 = -1;

/// Why one record's timestamp is refused (Kafka's `validateTimestamp`), if it is.
fn timestamp_problem(timestamp: i64, producer_set_log_append_time: bool, config: &LogConfig, now: i64) -> Option<String> {
    match config.timestamp_type {
        TimestampType::CreateTime if timestamp != NO_TIMESTAMP => {
            let (before, after) = (config.timestamp_before_max_ms, config.timestamp_after_max_ms);
            (now.saturating_sub(timestamp) > before || timestamp.saturating_sub(now) > after).then(|| {
                format!(
                    "timestamp {timestamp} is out of range: message.timestamp.before.max.ms and after.max.ms allow [{}, {}]",
                    now.saturating_sub(before),
                    now.saturating_add(after)
                )
            })
        }
        _ if producer_set_log_append_time => Some("producers must not set the timestamp type to LogAppendTime".into()),
        _ => None,
    }
}

/// Checks one batch's record timestamps against the log's timestamp rules at time `now`.
///
/// The header decides without decoding in the usual cases: the upper bound only needs the largest timestamp,
/// and on a LogAppendTime log only the producer's timestamp-type flag matters (every record fails alike).
/// The lower bound (message.timestamp.before.max.ms below Long.MAX) and a producer's LogAppendTime flag on a
/// CreateTime log (refused only for records without a timestamp) need every record, so the batch is decoded.
pub fn check_timestamps(batch: &[u8], header: &BatchHeader, config: &LogConfig, now: i64) -> Result<()> {
    let flagged = header.is_log_append_time();
    let per_record =
        config.timestamp_type == TimestampType::CreateTime && (config.timestamp_before_max_ms != i64::MAX || flagged);
    let problem = if per_record {
        batch::decode_records(batch)?.iter().find_map(|r| timestamp_problem(r.timestamp, flagged, config, now))
    } else {
        timestamp_problem(header.max_timestamp, flagged, config, now)
    };
    problem.map_or(Ok(()), |p| Err(StorageError::InvalidTimestamp(p)))
}

/// One batch re-encoded with `codec` (Kafka's rebuild in LogValidator): the same records (keys, values,
/// headers, timestamps) with offset deltas 0..n, the same producer id, epoch and base sequence, transactional
/// flag and partition leader epoch; a CreateTime batch with a fresh max timestamp and CRC.
pub fn recompress(batch: &[u8], header: &BatchHeader, codec: Compression) -> Result<Vec<u8>> {
    let mut records = batch::decode_records(batch)?;
    for (i, r) in records.iter_mut().enumerate() {
        // Consecutive offsets, and sequences that follow them: the encoder keeps such records in one batch.
        r.offset = header.base_offset + i as i64;
        r.sequence = header.base_sequence.wrapping_add(i as i32);
    }
    let mut out = bytes::BytesMut::with_capacity(batch.len());
    RecordBatchEncoder::encode(&mut out, &records, &RecordEncodeOptions { version: batch::MAGIC_V2, compression: codec })
        .map_err(|e| StorageError::CorruptBatch {
            position: 0,
            reason: format!("cannot re-encode records as {codec:?}: {e:#}"),
        })?;
    match BatchHeader::parse(&out) {
        Some(h) if h.size() == out.len() && h.record_count == header.record_count => Ok(out.to_vec()),
        _ => Err(StorageError::CorruptBatch { position: 0, reason: "re-encoding did not give exactly one batch".into() }),
    }
}

/// Applies `compression.type` to a produce request's batches (`headers` as validated): `None` when every batch
/// may stay as received (`producer`, or already in the topic's codec), else the request with the other batches
/// re-encoded. Control batches are never re-encoded (Kafka leaves uncompressed ones alone).
pub fn recompress_batches(records: &[u8], headers: &[BatchHeader], compression: CompressionType) -> Result<Option<Vec<u8>>> {
    let Some(codec) = compression.codec() else { return Ok(None) };
    let needs = |h: &BatchHeader| h.compression() != codec as u8 && !h.is_control();
    if !headers.iter().any(needs) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut position = 0;
    for h in headers {
        let batch = &records[position..position + h.size()];
        if needs(h) {
            let rewritten = recompress(batch, h, codec).map_err(|e| match e {
                StorageError::CorruptBatch { reason, .. } => StorageError::CorruptBatch { position, reason },
                other => other,
            })?;
            out.extend_from_slice(&rewritten);
        } else {
            out.extend_from_slice(batch);
        }
        position += h.size();
    }
    Ok(Some(out))
}

/// Applies `message.timestamp.type` to validated batches in place: with LogAppendTime each batch is marked so and
/// its max timestamp becomes `now`; with CreateTime a producer's LogAppendTime flag is cleared (as Kafka does).
/// `headers` follow the bytes. Returns the log append time (-1 with CreateTime), for the Produce response.
pub fn stamp_timestamp_type(records: &mut [u8], headers: &mut [BatchHeader], timestamp_type: TimestampType, now: i64) -> i64 {
    let mut position = 0;
    for h in headers.iter_mut() {
        let size = h.size();
        let batch = &mut records[position..position + size];
        match timestamp_type {
            TimestampType::LogAppendTime => batch::set_max_timestamp(batch, h, true, now),
            TimestampType::CreateTime => {
                let max = h.max_timestamp;
                batch::set_max_timestamp(batch, h, false, max)
            }
        }
        position += size;
    }
    match timestamp_type {
        TimestampType::LogAppendTime => now,
        TimestampType::CreateTime => NO_TIMESTAMP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{check_stored_batch, validate_batches, BatchCheck};
    use crate::test_util::{encode_batch, set_producer};

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    fn header(b: &[u8]) -> BatchHeader {
        validate_batches(b, u32::MAX).unwrap()[0]
    }

    fn config(pairs: &[(&str, &str)]) -> LogConfig {
        LogConfig::default().with_overrides(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn recompression_between_every_pair_of_codecs_keeps_records_and_producer_fields() {
        for from in CODECS {
            let mut original = encode_batch(20, 50, 1_000, from);
            set_producer(&mut original, 77, 3, 40);
            let h = header(&original);
            let before = batch::decode_records(&original).unwrap();
            for to in CODECS {
                let out = recompress(&original, &h, to).unwrap();
                assert!(matches!(check_stored_batch(&out), BatchCheck::Valid(_)), "{from:?} -> {to:?}: CRC");
                let n = header(&out);
                assert_eq!(n.compression(), to as u8, "{from:?} -> {to:?}");
                assert_eq!((n.producer_id, n.producer_epoch, n.base_sequence), (77, 3, 40));
                assert_eq!((n.record_count, n.last_offset_delta, n.max_timestamp), (20, 19, 1_019));
                assert_eq!(n.partition_leader_epoch, h.partition_leader_epoch);
                assert!(!n.is_log_append_time() && !n.is_transactional());
                let after = batch::decode_records(&out).unwrap();
                assert_eq!(after.len(), before.len());
                for (a, b) in after.iter().zip(&before) {
                    assert_eq!((a.offset, a.sequence, a.timestamp), (b.offset, b.sequence, b.timestamp));
                    assert_eq!((&a.key, &a.value, &a.headers), (&b.key, &b.value, &b.headers));
                }
            }
        }
    }

    #[test]
    fn only_batches_in_another_codec_are_rewritten() {
        let mut req = encode_batch(3, 10, 0, Compression::Zstd);
        let zstd_len = req.len();
        req.extend(encode_batch(4, 1_000, 0, Compression::None));
        let hs = validate_batches(&req, u32::MAX).unwrap();
        assert!(recompress_batches(&req, &hs, CompressionType::Producer).unwrap().is_none());
        let zstd_only = &req[..zstd_len];
        assert!(recompress_batches(zstd_only, &hs[..1], CompressionType::Zstd).unwrap().is_none());
        let out = recompress_batches(&req, &hs, CompressionType::Zstd).unwrap().unwrap();
        assert_eq!(&out[..zstd_len], zstd_only, "the zstd batch stays byte for byte");
        let new = validate_batches(&out, u32::MAX).unwrap();
        assert_eq!(new.iter().map(|h| (h.compression(), h.record_count)).collect::<Vec<_>>(), vec![(4, 3), (4, 4)]);
        assert!(out.len() < req.len(), "the repetitive values compress");
        // A batch whose records cannot be decoded (one more declared than present, under a valid CRC) is a
        // corrupt batch at its position.
        let mut bad = req.clone();
        let second = &mut bad[zstd_len..];
        second[23..27].copy_from_slice(&4i32.to_be_bytes()); // last offset delta
        second[57..61].copy_from_slice(&5i32.to_be_bytes()); // record count
        batch::update_crc(second);
        let bad_headers = validate_batches(&bad, u32::MAX).unwrap();
        let err = recompress_batches(&bad, &bad_headers, CompressionType::Gzip).unwrap_err();
        assert!(matches!(err, StorageError::CorruptBatch { position, .. } if position == zstd_len), "{err:?}");
    }

    #[test]
    fn log_append_time_stamping_keeps_the_crc_valid_and_create_time_clears_a_producer_flag() {
        for codec in CODECS {
            let mut req = encode_batch(5, 10, 1_000, codec);
            req.extend(encode_batch(2, 10, 2_000, codec));
            let mut hs = validate_batches(&req, u32::MAX).unwrap();
            assert_eq!(stamp_timestamp_type(&mut req, &mut hs, TimestampType::LogAppendTime, 99_000), 99_000);
            let stamped = validate_batches(&req, u32::MAX).unwrap();
            assert_eq!(stamped, hs, "headers follow the bytes");
            assert!(stamped
                .iter()
                .all(|h| h.is_log_append_time() && h.max_timestamp == 99_000 && h.compression() == codec as u8));
            let records = batch::decode_records(&req[..hs[0].size()]).unwrap();
            assert_eq!(
                records.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
                (1_000..1_005).collect::<Vec<_>>(),
                "deltas kept"
            );

            assert_eq!(stamp_timestamp_type(&mut req, &mut hs, TimestampType::CreateTime, 5), -1);
            let cleared = validate_batches(&req, u32::MAX).unwrap();
            assert!(cleared.iter().all(|h| !h.is_log_append_time() && h.max_timestamp == 99_000));
        }
        // CreateTime on a CreateTime batch changes nothing.
        let mut b = encode_batch(2, 10, 1_000, Compression::None);
        let copy = b.clone();
        let mut hs = validate_batches(&b, u32::MAX).unwrap();
        stamp_timestamp_type(&mut b, &mut hs, TimestampType::CreateTime, 5);
        assert_eq!(b, copy);
    }

    #[test]
    fn timestamp_bounds_follow_kafka() {
        let now = 10_000_000;
        let b = encode_batch(3, 1, now - 1_000, Compression::Lz4); // timestamps now-1000 ..= now-998
        let h = header(&b);
        let check = |c: &LogConfig, b: &[u8], h: &BatchHeader| check_timestamps(b, h, c, now);
        assert!(check(&LogConfig::default(), &b, &h).is_ok());
        assert!(check(&config(&[("message.timestamp.before.max.ms", "1000")]), &b, &h).is_ok());
        let err = check(&config(&[("message.timestamp.before.max.ms", "999")]), &b, &h).unwrap_err();
        assert!(matches!(err, StorageError::InvalidTimestamp(ref m) if m.contains(&(now - 1_000).to_string())), "{err}");

        let future = encode_batch(3, 1, now + 3_600_000 - 2, Compression::None); // up to now + 1 h
        assert!(check(&LogConfig::default(), &future, &header(&future)).is_ok(), "the default allows one hour ahead");
        let too_far = encode_batch(3, 1, now + 3_600_000 - 1, Compression::None);
        assert!(matches!(check(&LogConfig::default(), &too_far, &header(&too_far)), Err(StorageError::InvalidTimestamp(_))));
        let lat = config(&[("message.timestamp.type", "LogAppendTime")]);
        assert!(check(&lat, &too_far, &header(&too_far)).is_ok(), "bounds apply to CreateTime only");

        // A producer's LogAppendTime flag: refused on a LogAppendTime log, cleared later on a CreateTime one.
        let mut flagged = b.clone();
        let mut fh = header(&flagged);
        let max = fh.max_timestamp;
        batch::set_max_timestamp(&mut flagged, &mut fh, true, max);
        assert!(matches!(check(&lat, &flagged, &fh), Err(StorageError::InvalidTimestamp(_))));
        assert!(check(&LogConfig::default(), &flagged, &fh).is_ok());
        // Records without a timestamp pass the bounds, but not under a producer's LogAppendTime flag.
        let mut untimed = encode_batch(2, 1, NO_TIMESTAMP, Compression::None);
        let mut uh = header(&untimed);
        let strict = config(&[("message.timestamp.before.max.ms", "0"), ("message.timestamp.after.max.ms", "0")]);
        let untimed_records = batch::decode_records(&untimed).unwrap();
        assert_eq!(untimed_records[0].timestamp, NO_TIMESTAMP);
        assert!(check(&strict, &untimed[..], &uh).is_err(), "the second record has timestamp 0, far before now");
        let max = uh.max_timestamp;
        batch::set_max_timestamp(&mut untimed, &mut uh, true, max);
        assert!(matches!(check(&LogConfig::default(), &untimed, &uh), Err(StorageError::InvalidTimestamp(_))));
    }
}
