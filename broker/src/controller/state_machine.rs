//! The state machine openraft drives: applies committed metadata batches to the [`Image`], publishes each new
//! image to the broker (a watch channel the publisher and the handlers read), and takes and installs
//! snapshots (`__cluster_metadata/snapshot.json`: the image and the log position it is at).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::{Image, Refused};
use super::log_store::{write_atomic, LogStoreError};
use super::quorum::{NodeId, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";
const SNAPSHOT_VERSION: u16 = 1;

/// What applying an entry gave: the proposer answers its client with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Result<(), Refused>);

/// The image as of the last applied entry.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub image: Arc<Image>,
    /// Index of the last applied entry (0: none).
    pub applied: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    version: u16,
    meta: SnapshotMeta<NodeId, BasicNode>,
    image: Image,
}

struct State {
    image: Image,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The last snapshot, as stored.
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
    snapshots_taken: u64,
}

#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    published: Arc<watch::Sender<Published>>,
}

fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotFile, String> {
    let file: SnapshotFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != SNAPSHOT_VERSION {
        return Err(format!("snapshot format version {}; this broker reads {SNAPSHOT_VERSION}", file.version));
    }
    Ok(file)
}

impl StateMachine {
    /// Restores the last snapshot in `dir`, if any.
    pub fn open(dir: &Path) -> Result<StateMachine, LogStoreError> {
        let path = dir.join(SNAPSHOT_FILE);
        let mut state = State {
            image: Image::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            snapshot: None,
            snapshots_taken: 0,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(LogStoreError::Io { op: "read", path, source }),
        };
        if let Some(bytes) = bytes {
            let file = decode_snapshot(&bytes).map_err(|reason| LogStoreError::Corrupt { path, offset: 0, reason })?;
            state.image = file.image.reindexed();
            state.last_applied = file.meta.last_log_id;
            state.membership = file.meta.last_membership.clone();
            state.snapshot = Some((file.meta, bytes));
        }
        let published = Published { image: Arc::new(state.image.clone()), applied: state.last_applied.map_or(0, |l| l.index) };
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            state: Arc::new(Mutex::new(state)),
            published: Arc::new(watch::channel(published).0),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state machine lock")
    }

    fn publish(&self, state: &State) {
        let applied = state.last_applied.map_or(0, |l| l.index);
        self.published.send_replace(Published { image: Arc::new(state.image.clone()), applied });
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, bytes) = {
            let mut state = self.lock();
            state.snapshots_taken += 1;
            let last = state.last_applied;
            let snapshot_id = format!("{}-{}", last.map_or(0, |l| l.index), state.snapshots_taken);
            let meta = SnapshotMeta { last_log_id: last, last_membership: state.membership.clone(), snapshot_id };
            let file = SnapshotFile { version: SNAPSHOT_VERSION, meta: meta.clone(), image: state.image.clone() };
            (meta, serde_json::to_vec(&file).map_err(|e| StorageIOError::write_snapshot(None, &e))?)
        };
        crate::handlers::may_block(|| write_atomic(&self.dir, SNAPSHOT_FILE, &bytes, true))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.lock().snapshot = Some((meta.clone(), bytes.clone()));
        tracing::info!(upto = ?meta.last_log_id.map(|l| l.index), bytes = bytes.len(), "took a metadata snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let state = self.lock();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            out.push(Applied(match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(batch) => {
                    let result = state.image.apply(entry.log_id.index, &batch);
                    if let Err(e) = &result {
                        tracing::debug!(index = entry.log_id.index, error = %e, "metadata batch refused");
                    }
                    result
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(())
                }
            }));
        }
        self.publish(&state);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let file = decode_snapshot(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e)))?;
        crate::handlers::may_block(|| write_atomic(&self.dir, SNAPSHOT_FILE, &bytes, true))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut state = self.lock();
        state.image = file.image.reindexed();
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        state.snapshot = Some((meta.clone(), bytes));
        tracing::info!(upto = ?meta.last_log_id.map(|l| l.index), "installed a metadata snapshot from the leader");
        self.publish(&state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|(meta, bytes)| Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) }))
    }
}
