//! Idempotent-producer state of one partition (Kafka's ProducerStateManager): per producer id, the epoch
//! and the metadata of its last five batches, so a retried batch is recognised as a duplicate (and answered
//! with its original offsets) and a gap in sequence numbers is refused. The state is rebuilt after a restart
//! from `<offset>.snapshot` files, taken at every segment roll and at clean shutdown, plus a replay of the
//! batch headers after the snapshot: recovery never decompresses or reads record bodies.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};
use crate::segment::{parse_segment_file_name, segment_file_name};

pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Batches remembered per producer: the idempotent producer keeps at most five in flight.
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;
const SNAPSHOT_VERSION: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// Latest batch timestamp, for `producer.id.expiration.ms`.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn push(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == MAX_BATCHES_PER_PRODUCER {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = self.last_timestamp.max(batch.max_timestamp);
    }
}

/// The last sequence number of a batch: sequences wrap from i32::MAX to 0.
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    if first_seq > i32::MAX - last_offset_delta {
        first_seq - (i32::MAX - last_offset_delta) - 1
    } else {
        first_seq + last_offset_delta
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == last_seq.wrapping_add(1) || (last_seq == i32::MAX && next_seq == 0)
}

/// What an append of idempotent batches must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Valid: append.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Validates the batches of one append (Kafka's rules, before offsets are assigned): a batch that matches
    /// one of its producer's last five makes the whole append a duplicate; an older epoch is fenced; with the
    /// same epoch the sequence must follow on; a new epoch starts at sequence 0. An unknown producer (state
    /// expired or deleted with its segments) may start at any sequence, as in Kafka since KIP-360.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<ProducerCheck> {
        // (epoch, last sequence) as batches earlier in this append leave them.
        let mut staged: HashMap<i64, (i16, Option<i32>)> = HashMap::new();
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let pid = h.producer_id;
            let entry = self.producers.get(&pid);
            if let Some(e) = entry {
                let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
                if let Some(dup) = e
                    .batches
                    .iter()
                    .find(|b| h.producer_epoch == e.epoch && b.first_seq == h.base_sequence && b.last_seq == last_seq)
                {
                    return Ok(ProducerCheck::Duplicate(*dup));
                }
            }
            let (epoch, last_seq) =
                staged.get(&pid).copied().or_else(|| entry.map(|e| (e.epoch, e.last_seq()))).unwrap_or((-1, None));
            if h.producer_epoch < epoch {
                return Err(StorageError::InvalidProducerEpoch { producer_id: pid, epoch: h.producer_epoch, current: epoch });
            }
            if h.producer_epoch != epoch {
                if h.base_sequence != 0 && epoch != -1 {
                    return Err(StorageError::OutOfOrderSequence { producer_id: pid, expected: 0, received: h.base_sequence });
                }
            } else if let Some(last) = last_seq {
                if !in_sequence(last, h.base_sequence) {
                    return Err(StorageError::OutOfOrderSequence {
                        producer_id: pid,
                        expected: last.wrapping_add(1),
                        received: h.base_sequence,
                    });
                }
            }
            staged.insert(pid, (h.producer_epoch, Some(last_sequence(h.base_sequence, h.last_offset_delta))));
        }
        Ok(ProducerCheck::Append)
    }

    /// Records appended batches (offsets assigned). Also used to replay the log, without checks.
    pub fn update(&mut self, headers: &[BatchHeader]) {
        for h in headers.iter().filter(|h| h.producer_id >= 0) {
            let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: h.max_timestamp,
            });
            entry.push(
                h.producer_epoch,
                BatchMetadata {
                    first_seq: h.base_sequence,
                    last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
                    first_offset: h.base_offset,
                    last_offset: h.last_offset(),
                    max_timestamp: h.max_timestamp,
                },
            );
        }
    }

    /// Forgets producers whose last batch is below the log start offset (deleted by retention or DeleteRecords).
    pub fn truncate_head(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= log_start_offset));
    }

    /// Forgets producers idle for `expiration_ms` (Kafka's producer.id.expiration.ms); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Serialized state: version, CRC-32C of the rest, then the producers.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend((self.producers.len() as u32).to_be_bytes());
        let ordered: BTreeMap<_, _> = self.producers.iter().collect();
        for (pid, e) in ordered {
            body.extend(pid.to_be_bytes());
            body.extend(e.epoch.to_be_bytes());
            body.extend(e.last_timestamp.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend(b.first_seq.to_be_bytes());
                body.extend(b.last_seq.to_be_bytes());
                body.extend(b.first_offset.to_be_bytes());
                body.extend(b.last_offset.to_be_bytes());
                body.extend(b.max_timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 6);
        out.extend(SNAPSHOT_VERSION.to_be_bytes());
        out.extend(crc32c::crc32c(&body).to_be_bytes());
        out.extend(body);
        out
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<ProducerStateManager, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.u16()? != SNAPSHOT_VERSION {
            return Err("unknown snapshot version".into());
        }
        let crc = r.u32()?;
        if crc32c::crc32c(&bytes[r.at..]) != crc {
            return Err("snapshot CRC mismatch".into());
        }
        let mut producers = HashMap::new();
        for _ in 0..r.u32()? {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let n = r.u8()? as usize;
            if n > MAX_BATCHES_PER_PRODUCER {
                return Err(format!("{n} batches for producer {pid}"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            producers.insert(pid, ProducerEntry { epoch, batches, last_timestamp });
        }
        if r.at != bytes.len() {
            return Err("trailing bytes".into());
        }
        Ok(ProducerStateManager { producers })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let end = self.at + N;
        let b = self.bytes.get(self.at..end).ok_or("snapshot is truncated")?;
        self.at = end;
        Ok(b.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn i16(&mut self) -> std::result::Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(offset) = parse_segment_file_name(&entry.file_name().to_string_lossy(), SNAPSHOT_SUFFIX) {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment_file_name(offset, SNAPSHOT_SUFFIX))
}

/// Writes the state as of `offset` (everything below it applied) atomically. Not fsynced: a lost snapshot
/// only means a longer replay, since recovery falls back to an older one.
pub fn write_snapshot(dir: &Path, offset: i64, state: &ProducerStateManager) -> Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&state.encode()))
        .map_err(|e| StorageError::io("write producer snapshot", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| StorageError::io("rename producer snapshot", &path, e))
}

/// The newest readable snapshot at or below `max_offset`, deleting the ones above it (a truncated future)
/// and any that fail to decode.
pub fn load_latest_snapshot(dir: &Path, max_offset: i64) -> Result<Option<(i64, ProducerStateManager)>> {
    let offsets = list_snapshots(dir)?;
    for &offset in offsets.iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > max_offset {
            remove(&path)?;
            continue;
        }
        let decoded = fs::read(&path).map_err(|e| e.to_string()).and_then(|b| ProducerStateManager::decode(&b));
        match decoded {
            Ok(state) => return Ok(Some((offset, state))),
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "ignoring unreadable producer snapshot");
                remove(&path)?;
            }
        }
    }
    Ok(None)
}

/// Deletes snapshots below `offset` (their segments are gone).
pub fn delete_snapshots_below(dir: &Path, offset: i64) -> Result<()> {
    for s in list_snapshots(dir)?.into_iter().filter(|s| *s < offset) {
        remove(&snapshot_path(dir, s))?;
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io("remove producer snapshot", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000 + base_offset,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    #[test]
    fn sequences_must_follow_on_and_retries_are_duplicates() {
        let mut s = ProducerStateManager::default();
        let b0 = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&[b0]).unwrap(), ProducerCheck::Append);
        s.update(&[b0]);
        let b1 = header(7, 0, 3, 2, 3);
        s.update(&[b1]);
        // A retry of either batch is a duplicate with its original offsets.
        match s.check(&[header(7, 0, 0, 3, -1)]).unwrap() {
            ProducerCheck::Duplicate(m) => assert_eq!((m.first_offset, m.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.check(&[header(7, 0, 3, 2, -1)]).unwrap(), ProducerCheck::Duplicate(_)));
        // A gap, or a sequence going back that is not an exact retry, is out of order.
        assert!(matches!(
            s.check(&[header(7, 0, 6, 1, -1)]),
            Err(StorageError::OutOfOrderSequence { expected: 5, received: 6, .. })
        ));
        assert!(matches!(s.check(&[header(7, 0, 1, 1, -1)]), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(s.check(&[header(7, 0, 5, 1, -1)]).unwrap(), ProducerCheck::Append);
        // Two batches in one append are checked in order.
        assert_eq!(s.check(&[header(7, 0, 5, 1, -1), header(7, 0, 6, 1, -1)]).unwrap(), ProducerCheck::Append);
        assert!(s.check(&[header(7, 0, 5, 1, -1), header(7, 0, 7, 1, -1)]).is_err());
    }

    #[test]
    fn epochs_fence_and_reset_sequences() {
        let mut s = ProducerStateManager::default();
        s.update(&[header(7, 3, 0, 1, 0)]);
        assert!(matches!(
            s.check(&[header(7, 2, 1, 1, -1)]),
            Err(StorageError::InvalidProducerEpoch { epoch: 2, current: 3, .. })
        ));
        assert!(matches!(s.check(&[header(7, 4, 5, 1, -1)]), Err(StorageError::OutOfOrderSequence { expected: 0, .. })));
        assert_eq!(s.check(&[header(7, 4, 0, 1, -1)]).unwrap(), ProducerCheck::Append);
        // Unknown producers (expired, or never seen) may start anywhere.
        assert_eq!(s.check(&[header(8, 0, 42, 1, -1)]).unwrap(), ProducerCheck::Append);
        // Non-idempotent batches are not tracked.
        s.update(&[header(-1, -1, -1, 1, 5)]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keeps_five_batches_and_wraps_sequences() {
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.update(&[header(1, 0, i, 1, i as i64)]);
        }
        assert_eq!(s.get(1).unwrap().batches.len(), 5);
        // The oldest batches are forgotten: a retry of batch 0 is no longer recognised.
        assert!(matches!(s.check(&[header(1, 0, 0, 1, -1)]), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
        let mut w = ProducerStateManager::default();
        w.update(&[header(1, 0, i32::MAX, 1, 0)]);
        assert_eq!(w.check(&[header(1, 0, 0, 1, -1)]).unwrap(), ProducerCheck::Append);
    }

    #[test]
    fn snapshots_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::default();
        for pid in 0..10 {
            s.update(&[header(pid, 1, 0, 2, pid * 2)]);
        }
        write_snapshot(dir.path(), 20, &s).unwrap();
        write_snapshot(dir.path(), 30, &ProducerStateManager::default()).unwrap();
        std::fs::write(snapshot_path(dir.path(), 25), b"garbage").unwrap();
        let (offset, loaded) = load_latest_snapshot(dir.path(), 29).unwrap().unwrap();
        assert_eq!(offset, 20);
        assert_eq!(loaded.producers, s.producers);
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![20], "above max and unreadable ones are deleted");
        s.truncate_head(10);
        assert_eq!(s.len(), 5);
        // Last timestamps are now 1_010, 1_012, ..., 1_018: at 1_100 with 89 ms only 1_010 is idle too long.
        assert_eq!(s.expire(1_100, 89), 1);
    }
}
