//! Builders for tests and benchmarks: record batches made by the real Kafka codec (`kafka-protocol`), a
//! single-replica append, and a tiny tmpfs to fill up for disk-full tests.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

pub use kafka_protocol::records::Compression;

use crate::{AppendInfo, Log, Result};

/// A single replica's append, as the broker's partition makes it: leader epoch 0, then the high watermark
/// moves to the log end (nothing else has to acknowledge).
pub fn append_committed(log: &Log, records: &mut [u8]) -> Result<AppendInfo> {
    let info = log.append_as_leader(records, 0)?;
    log.maybe_increment_high_watermark(log.log_end_offset());
    Ok(info)
}

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

/// A tmpfs of `size` (mount's syntax: "4m") mounted on a temp dir, unmounted on drop. Needs root (CI runs the
/// disk-full tests as root).
pub struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    pub fn mount(size: &str) -> TinyFs {
        assert!(nix::unistd::geteuid().is_root(), "the disk-full tests mount a tmpfs and must run as root");
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs");
        TinyFs { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem refuses more; removing it gives the space back.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let chunk = vec![7u8; 64 * 1024];
        let mut f = std::fs::File::create(&filler).expect("create filler");
        while f.write_all(&chunk).is_ok() {}
        // Whatever a 64 KiB chunk left over.
        while f.write_all(&[7u8]).is_ok() {}
        filler
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}
