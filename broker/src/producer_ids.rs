//! Producer ids for idempotent producers (InitProducerId). Ids are handed out from blocks; the end of the
//! current block is written to `producer-ids.json` in the data directory (atomically) before any id of the
//! block is used, so a restart continues after it and no id is ever given out twice. In a cluster every
//! broker hands out ids, so the broker's node id is the high half of each id (node 0's ids are the plain
//! counter): a producer's id is unique on every partition leader it writes to.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::topics::{self, MetaError};

const FILE: &str = "producer-ids.json";
/// Ids per block (Kafka's block size): one file write per thousand producers.
pub const BLOCK_SIZE: i64 = 1000;
/// Ids each broker can hand out: the low half of an id.
const IDS_PER_NODE: i64 = 1 << 32;

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Every id below this may have been used.
    next_block_start: i64,
}

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    /// The node id as the high half of every id.
    base: i64,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    pub fn open(dir: &Path, node_id: i32) -> Result<ProducerIdManager, MetaError> {
        let path = dir.join(FILE);
        let start = match topics::load_json::<Stored>(&path)? {
            Some(s) if s.next_block_start >= 0 => s.next_block_start,
            Some(s) => {
                return Err(MetaError::Corrupt { path, reason: format!("negative next_block_start {}", s.next_block_start) })
            }
            None => 0,
        };
        let base = i64::from(node_id) * IDS_PER_NODE;
        Ok(ProducerIdManager { path, base, block: Mutex::new(Block { next: start, end: start }) })
    }

    /// A producer id never handed out before (by this data directory).
    pub fn next_id(&self) -> Result<i64, MetaError> {
        let mut block = self.block.lock().expect("producer id lock");
        if block.next == block.end {
            let end = block
                .end
                .checked_add(BLOCK_SIZE)
                .filter(|e| *e <= IDS_PER_NODE)
                .ok_or_else(|| MetaError::Corrupt { path: self.path.clone(), reason: "producer ids exhausted".into() })?;
            topics::save_json(&self.path, &Stored { next_block_start: end })?;
            block.end = end;
        }
        let id = self.base + block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path(), 0).unwrap();
        let first: Vec<i64> = (0..3).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(m);
        // A restart skips the rest of the block, which may have been handed out.
        let m = ProducerIdManager::open(dir.path(), 0).unwrap();
        assert_eq!(m.next_id().unwrap(), BLOCK_SIZE);
        for _ in 1..BLOCK_SIZE {
            m.next_id().unwrap();
        }
        assert_eq!(m.next_id().unwrap(), 2 * BLOCK_SIZE, "next block");
        drop(m);
        assert_eq!(ProducerIdManager::open(dir.path(), 0).unwrap().next_id().unwrap(), 3 * BLOCK_SIZE);
    }

    #[test]
    fn brokers_of_a_cluster_never_hand_out_the_same_id() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = ProducerIdManager::open(a.path(), 1).unwrap().next_id().unwrap();
        let other = ProducerIdManager::open(b.path(), 2).unwrap().next_id().unwrap();
        assert_eq!((first, other), (1 << 32, 2 << 32));
        let last = ProducerIdManager::open(a.path(), i32::MAX).unwrap().next_id().unwrap();
        assert_eq!(last, i64::from(i32::MAX) * (1 << 32) + BLOCK_SIZE, "fits an i64");
        // A broker's counter ends before the next broker's ids start.
        std::fs::write(a.path().join(FILE), format!(r#"{{"next_block_start": {}}}"#, IDS_PER_NODE)).unwrap();
        assert!(ProducerIdManager::open(a.path(), 1).unwrap().next_id().is_err());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{").unwrap();
        assert!(ProducerIdManager::open(dir.path(), 0).is_err());
        std::fs::write(dir.path().join(FILE), r#"{"next_block_start": -5}"#).unwrap();
        assert!(ProducerIdManager::open(dir.path(), 0).is_err());
    }
}
