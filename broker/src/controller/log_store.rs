//! The metadata log on disk (`__cluster_metadata/` in the data directory), the storage openraft replicates:
//!
//! * `log`: entries as `[length u32][crc32c u32][JSON entry]`, little-endian, appended and fdatasync'ed
//!   before openraft is told they are durable (a Raft append is acknowledged only once on disk);
//! * `vote.json`, `committed.json`, `purged.json`: small files replaced atomically (temp file, rename).
//!
//! Opening checks every entry. A damaged entry at the end of the file is a torn write of a crash, never
//! acknowledged, and is cut off; one with intact entries after it, one at or below the committed index, or
//! one that does not decode is an error naming the file and offset: committed metadata is never dropped
//! silently. The log is kept in memory too (it is small, and snapshots bound it).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::quorum::{NodeId, TypeConfig};

const LOG_FILE: &str = "log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";
const HEADER: usize = 8;
/// Larger entries are refused on write and taken for damage on read.
pub const MAX_ENTRY_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt metadata log {path} at byte {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogStoreError + 'a {
    move |source| LogStoreError::Io { op, path: path.to_path_buf(), source }
}

/// Writes `value` as JSON to `dir/name` atomically; with `sync`, durably.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T, sync: bool) -> io::Result<()> {
    write_atomic(dir, name, &serde_json::to_vec(value).map_err(io::Error::other)?, sync)
}

/// Replaces `dir/name` with `bytes` (temp file, rename); with `sync`, durably.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_data()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads `dir/name` as JSON; None if it does not exist.
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, LogStoreError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| LogStoreError::Corrupt {
            path,
            offset: 0,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogStoreError::Io { op: "read", path, source: e }),
    }
}

fn encode(entry: &Entry<TypeConfig>) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
    if json.len() > MAX_ENTRY_BYTES {
        return Err(io::Error::other(format!("metadata log entry of {} bytes exceeds {MAX_ENTRY_BYTES}", json.len())));
    }
    let mut out = Vec::with_capacity(HEADER + json.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Decodes an entry's JSON strictly: unknown record types or a newer batch format are errors.
fn decode(json: &[u8]) -> Result<Entry<TypeConfig>, String> {
    let entry: Entry<TypeConfig> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    if let EntryPayload::Normal(batch) = &entry.payload {
        batch.check_version()?;
    }
    Ok(entry)
}

/// What reading the log file found.
#[derive(Debug)]
struct Scanned {
    entries: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    /// Where the valid entries end (the rest is a torn tail).
    valid_end: u64,
}

/// Reads every entry of `bytes`; see the module comment for what is damage and what is a torn tail.
fn scan(path: &Path, bytes: &[u8], committed: Option<u64>) -> Result<Scanned, LogStoreError> {
    let mut entries = BTreeMap::new();
    let (mut pos, mut valid_end) = (0usize, 0usize);
    let corrupt =
        |offset: usize, reason: String| LogStoreError::Corrupt { path: path.to_path_buf(), offset: offset as u64, reason };
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let torn = |why: &str| -> Result<(), LogStoreError> {
            // Damage with an intact entry after it is not a torn tail; nor is the loss of a committed entry.
            let last = entries.keys().next_back().copied();
            if committed.is_some_and(|c| last.is_none_or(|l| l < c)) {
                return Err(corrupt(pos, format!("{why}; entries up to {} were committed", committed.unwrap_or(0))));
            }
            Ok(())
        };
        if rest.len() < HEADER {
            torn("a partial entry header")?;
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_ENTRY_BYTES || HEADER + len > rest.len() {
            if len <= MAX_ENTRY_BYTES && HEADER + len > rest.len() {
                torn("a partial entry")?;
                break;
            }
            return Err(corrupt(pos, format!("entry length {len} exceeds {MAX_ENTRY_BYTES}")));
        }
        let json = &rest[HEADER..HEADER + len];
        if crc32c::crc32c(json) != crc {
            if pos + HEADER + len == bytes.len() {
                torn("a checksum mismatch in the last entry")?;
                break;
            }
            return Err(corrupt(pos, "checksum mismatch in an entry followed by others".into()));
        }
        let entry = decode(json).map_err(|e| corrupt(pos, e))?;
        let index = entry.log_id.index;
        if entries.keys().next_back().is_some_and(|last| *last + 1 != index) {
            return Err(corrupt(pos, format!("entry {index} does not follow entry {}", entries.keys().next_back().unwrap())));
        }
        entries.insert(index, (entry, pos as u64));
        pos += HEADER + len;
        valid_end = pos;
    }
    Ok(Scanned { entries, valid_end: valid_end as u64 })
}

struct Inner {
    dir: PathBuf,
    file: File,
    /// Entries by index, with the file offset of each.
    entries: BTreeMap<u64, (Entry<TypeConfig>, u64)>,
    end: u64,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

/// The metadata log; clones share it (openraft's log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn write_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, LogStoreError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let vote = read_json(dir, VOTE_FILE)?;
        let committed: Option<LogId<NodeId>> = read_json(dir, COMMITTED_FILE)?;
        let purged: Option<LogId<NodeId>> = read_json(dir, PURGED_FILE)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io_err("open", &path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read", &path))?;
        let mut scanned = scan(&path, &bytes, committed.map(|c| c.index))?;
        if scanned.valid_end < bytes.len() as u64 {
            tracing::warn!(path = %path.display(), offset = scanned.valid_end, bytes = bytes.len() as u64 - scanned.valid_end,
                "cutting off a torn write at the end of the metadata log");
            file.set_len(scanned.valid_end).map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("sync", &path))?;
        }
        // A purge interrupted after purged.json was written: the entries it covers are gone.
        if let Some(p) = purged {
            scanned.entries.retain(|i, _| *i > p.index);
        }
        if let (Some(p), Some(first)) = (purged, scanned.entries.keys().next()) {
            if *first != p.index + 1 {
                return Err(LogStoreError::Corrupt {
                    path,
                    offset: 0,
                    reason: format!("the log starts at entry {first}, but entries up to {} were purged", p.index),
                });
            }
        }
        let inner =
            Inner { dir: dir.to_path_buf(), file, entries: scanned.entries, end: scanned.valid_end, vote, committed, purged };
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("metadata log lock")
    }

    /// Runs blocking file work without stalling the other tasks of this worker thread.
    fn blocking<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        crate::handlers::may_block(|| f(&mut self.lock()))
    }
}

impl Inner {
    /// Rewrites the log file with the entries kept in memory (after a purge).
    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for (entry, _) in self.entries.values() {
            offsets.push(out.len() as u64);
            out.extend(encode(entry)?);
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_data()?;
        fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        File::open(&self.dir)?.sync_all()?;
        self.file = OpenOptions::new().read(true).append(true).open(self.dir.join(LOG_FILE))?;
        for ((_, (_, off)), new) in self.entries.iter_mut().zip(offsets) {
            *off = new;
        }
        self.end = out.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().entries.range(range).map(|(_, (e, _))| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|(e, _)| e.log_id).or(inner.purged);
        Ok(LogState { last_purged_log_id: inner.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(|inner| {
            write_json(&inner.dir, VOTE_FILE, vote, true)?;
            inner.vote = Some(*vote);
            Ok(())
        })
        .map_err(|e: io::Error| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not synced: a stale value after a crash is only a smaller hint (Raft re-learns the commit index).
        self.blocking(|inner| {
            write_json(&inner.dir, COMMITTED_FILE, &committed, false)?;
            inner.committed = committed;
            Ok(())
        })
        .map_err(|e: io::Error| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let result = self.blocking(|inner| -> io::Result<()> {
            let mut buf = Vec::new();
            let mut placed = Vec::new();
            for e in entries {
                placed.push((e.log_id.index, inner.end + buf.len() as u64));
                buf.extend(encode(&e)?);
                inner.entries.insert(e.log_id.index, (e, 0));
            }
            inner.file.write_all(&buf)?;
            inner.file.sync_data()?;
            for (index, off) in placed {
                if let Some((_, o)) = inner.entries.get_mut(&index) {
                    *o = off;
                }
            }
            inner.end += buf.len() as u64;
            Ok(())
        });
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(|inner| {
            let Some(off) = inner.entries.get(&log_id.index).map(|(_, o)| *o) else { return Ok(()) };
            inner.file.set_len(off).and_then(|()| inner.file.sync_data())?;
            inner.entries.split_off(&log_id.index);
            inner.end = off;
            Ok(())
        })
        .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(|inner| {
            write_json(&inner.dir, PURGED_FILE, &Some(log_id), true)?;
            inner.purged = Some(log_id);
            inner.entries = inner.entries.split_off(&(log_id.index + 1));
            inner.rewrite()
        })
        .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{MetadataBatch, MetadataRecord};
    use openraft::CommittedLeaderId;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(MetadataBatch::new(vec![MetadataRecord::UnregisterBroker { id: index as i32 }])),
        }
    }

    fn write_raw(dir: &Path, entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for e in entries {
            offsets.push(out.len() as u64);
            out.extend(encode(e).unwrap());
        }
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(LOG_FILE), out).unwrap();
        offsets
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_damage_before_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<_> = (1..=3).map(entry).collect();
        let offsets = write_raw(dir.path(), &entries);
        let path = dir.path().join(LOG_FILE);
        let full = fs::read(&path).unwrap();

        // Torn: the last entry half written.
        fs::write(&path, &full[..full.len() - 5]).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![1, 2]);
        assert_eq!(fs::metadata(&path).unwrap().len(), offsets[2], "the torn tail is gone from the file");
        drop(store);

        // A flipped byte in entry 1, with entry 2 after it: damage, named.
        let mut bad = full.clone();
        bad[offsets[1] as usize - 3] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        let e = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("corrupt metadata log") && e.contains(&format!("at byte {}", offsets[0])), "{e}");

        // The same flip in the last entry is a torn write, unless that entry was committed.
        let mut last = full.clone();
        let n = last.len();
        last[n - 2] ^= 0xff;
        fs::write(&path, &last).unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2]);
        fs::write(&path, &last).unwrap();
        write_json(dir.path(), COMMITTED_FILE, &Some(entries[2].log_id), true).unwrap();
        let e = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("were committed"), "{e}");
    }

    #[test]
    fn unknown_records_are_an_error_not_a_skip() {
        let dir = tempfile::tempdir().unwrap();
        let json = br#"{"log_id":{"leader_id":{"term":1,"node_id":0},"index":1},"payload":{"Normal":{"version":1,"records":[{"type":"FromTheFuture"}]}}}"#;
        let mut raw = Vec::new();
        raw.extend_from_slice(&(json.len() as u32).to_le_bytes());
        raw.extend_from_slice(&crc32c::crc32c(json).to_le_bytes());
        raw.extend_from_slice(json);
        fs::write(dir.path().join(LOG_FILE), raw).unwrap();
        let e = LogStore::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("FromTheFuture"), "{e}");
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), &(1..=6).map(entry).collect::<Vec<_>>());
        let mut store = LogStore::open(dir.path()).unwrap();
        store.truncate(entry(5).log_id).await.unwrap();
        store.purge(entry(2).log_id).await.unwrap();
        assert_eq!(indexes(&store), vec![3, 4]);
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&reopened), vec![3, 4]);
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!((state.last_purged_log_id.map(|l| l.index), state.last_log_id.map(|l| l.index)), (Some(2), Some(4)));
        let got = reopened.try_get_log_entries(3..5).await.unwrap();
        assert_eq!(got, vec![entry(3), entry(4)]);
    }
}
