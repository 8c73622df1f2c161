//! Producer ids for idempotent producers (InitProducerId), handed out from blocks the active controller
//! allocates in the metadata log (Kafka's AllocateProducerIds, KIP-730): an id is unique in the cluster, and
//! nothing is written here, since the log remembers every block given out (a restart takes a new block; the
//! rest of the old one is never used).
//!
//! An earlier release counted ids in `producer-ids.json` in the data directory, with the node id as the high
//! half of each id. While that file exists, this broker's blocks start above every id it may have given out
//! (its node's range up to the stored counter); the file goes once a block from the log was taken. Another
//! node's old ids start at a multiple of 2^32 the shared counter would need billions of producers to reach,
//! and that node raises the counter above them with its own first block.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use crate::controller::decisions::PRODUCER_ID_BLOCK;
use crate::controller::image::Refused;
use crate::controller::service::{ControllerReply, ControllerRequest};
use crate::controller::Controller;
use crate::errors::code;
use crate::topics::{self, MetaError};

const LEGACY_FILE: &str = "producer-ids.json";
/// Ids each node could hand out in the earlier release: the low half of an id.
const LEGACY_IDS_PER_NODE: i64 = 1 << 32;

#[derive(Debug, Deserialize)]
struct Legacy {
    /// Every id below this (plus the node's base) may have been used.
    next_block_start: i64,
}

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    node_id: i32,
    /// The earlier release's counter file, until a block from the log made it redundant.
    legacy: Mutex<Option<PathBuf>>,
    /// Blocks start at or above this: past the ids the earlier release may have handed out here.
    floor: i64,
    /// One allocation at a time: producers arriving while a block is requested wait for it.
    block: tokio::sync::Mutex<Block>,
}

/// The first id this node's blocks may use, after the earlier release's counter `next_block_start` (None: no
/// such file).
fn legacy_floor(node_id: i32, next_block_start: Option<i64>) -> i64 {
    next_block_start.map_or(0, |next| (i64::from(node_id) * LEGACY_IDS_PER_NODE).saturating_add(next))
}

impl ProducerIdManager {
    pub fn open(dir: &Path, node_id: i32) -> Result<ProducerIdManager, MetaError> {
        let path = dir.join(LEGACY_FILE);
        let stored = match topics::load_json::<Legacy>(&path)? {
            Some(l) if (0..=LEGACY_IDS_PER_NODE).contains(&l.next_block_start) => Some(l.next_block_start),
            Some(l) => {
                return Err(MetaError::Corrupt { path, reason: format!("next_block_start {} out of range", l.next_block_start) })
            }
            None => None,
        };
        Ok(ProducerIdManager {
            node_id,
            legacy: Mutex::new(stored.map(|_| path)),
            floor: legacy_floor(node_id, stored),
            block: tokio::sync::Mutex::new(Block { next: 0, end: 0 }),
        })
    }

    /// A producer id never handed out before in this cluster. Fails (retriably) while no block can be had:
    /// this broker is not registered yet, or the controller quorum does not answer within `timeout`.
    pub async fn next_id(&self, controller: &Controller, timeout: Duration) -> Result<i64, Refused> {
        let mut block = self.block.lock().await;
        if block.next == block.end {
            let broker_epoch = controller.image().brokers.get(&self.node_id).map(|b| b.epoch).ok_or_else(|| {
                Refused::new(code::COORDINATOR_LOAD_IN_PROGRESS, "this broker has not registered with the controller yet")
            })?;
            let request = ControllerRequest::AllocateProducerIds { broker_id: self.node_id, broker_epoch, floor: self.floor };
            let start = match controller.call(request, timeout).await? {
                ControllerReply::ProducerIds { start } => start,
                other => return Err(Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected controller answer {other:?}"))),
            };
            *block = Block { next: start, end: start + PRODUCER_ID_BLOCK };
            if let Some(path) = self.legacy.lock().expect("legacy lock").take() {
                match std::fs::remove_file(&path) {
                    Ok(()) => tracing::info!(path = %path.display(), "producer ids come from the metadata log now"),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "removing the earlier release's producer id file")
                    }
                }
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_start_past_the_earlier_releases_ids() {
        // (node, stored counter) -> floor
        let table = [(0, None, 0), (3, None, 0), (0, Some(5000), 5000), (2, Some(1000), (2 << 32) + 1000)];
        for (node, stored, floor) in table {
            assert_eq!(legacy_floor(node, stored), floor, "node {node} counter {stored:?}");
        }
        // The last node with its counter used up: no id is left above it (allocation then fails, no overflow).
        assert_eq!(legacy_floor(i32::MAX, Some(LEGACY_IDS_PER_NODE)), i64::MAX);
    }

    #[test]
    fn the_earlier_file_is_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ProducerIdManager::open(dir.path(), 1).unwrap().floor, 0);
        std::fs::write(dir.path().join(LEGACY_FILE), r#"{"next_block_start": 3000}"#).unwrap();
        assert_eq!(ProducerIdManager::open(dir.path(), 1).unwrap().floor, (1 << 32) + 3000);
        for corrupt in ["{", r#"{"next_block_start": -5}"#, r#"{"next_block_start": 8589934592}"#] {
            std::fs::write(dir.path().join(LEGACY_FILE), corrupt).unwrap();
            assert!(ProducerIdManager::open(dir.path(), 0).is_err(), "{corrupt}");
        }
    }
}
