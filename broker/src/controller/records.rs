//! The records of the metadata log, shaped like Kafka's KIP-631 records (TopicRecord, PartitionRecord,
//! PartitionChangeRecord, RegisterBrokerRecord, FenceBrokerRecord, ConfigRecord, ProducerIdsRecord, ...).
//! A log entry carries one [`MetadataBatch`]: records applied together or not at all.
//!
//! Records are JSON (the log is small; every entry is read back at startup and on a new broker), tagged by
//! type, with every field required and unknown fields refused, and the batch carries a format version:
//! an entry this broker does not understand is an error, never skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The newest batch format this broker writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataBatch {
    pub version: u16,
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    pub fn new(records: Vec<MetadataRecord>) -> MetadataBatch {
        MetadataBatch { version: FORMAT_VERSION, records }
    }

    /// Refuses a batch written by a newer broker.
    pub fn check_version(&self) -> Result<(), String> {
        match self.version {
            1..=FORMAT_VERSION => Ok(()),
            v => Err(format!("metadata batch format version {v}; this broker reads 1..={FORMAT_VERSION}")),
        }
    }
}

/// A listener a broker advertises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum MetadataRecord {
    /// A new topic (its partitions follow in the same batch).
    Topic {
        id: Uuid,
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A new partition: the next one of its topic.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A leader or ISR change; a new leader bumps the leader epoch, every change the partition epoch.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
    },
    RemoveTopic {
        id: Uuid,
    },
    /// A topic's complete config overrides.
    TopicConfig {
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// A broker resource's complete dynamic configs ("" is the cluster-wide default, else a node id).
    BrokerConfig {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// A broker (re)registers; its epoch is the index of this record's entry. It starts fenced.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    UnregisterBroker {
        id: i32,
    },
    /// Producer ids below `next` are handed out (a block went to `broker_id`).
    ProducerIds {
        broker_id: i32,
        broker_epoch: i64,
        next: i64,
    },
    /// Written by a new controller leader, so that it commits an entry of its own term.
    NoOp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_fields_and_versions_are_refused() {
        let ok = r#"{"version":1,"records":[{"type":"UnregisterBroker","id":3}]}"#;
        let b: MetadataBatch = serde_json::from_str(ok).unwrap();
        assert_eq!(b.records, vec![MetadataRecord::UnregisterBroker { id: 3 }]);
        b.check_version().unwrap();
        for bad in [
            r#"{"version":1,"records":[{"type":"Mystery","id":3}]}"#,
            r#"{"version":1,"records":[{"type":"UnregisterBroker","id":3,"extra":1}]}"#,
            r#"{"version":1,"records":[{"type":"UnregisterBroker"}]}"#,
            r#"{"version":1}"#,
        ] {
            assert!(serde_json::from_str::<MetadataBatch>(bad).is_err(), "{bad}");
        }
        let newer: MetadataBatch = serde_json::from_str(r#"{"version":9,"records":[]}"#).unwrap();
        assert!(newer.check_version().unwrap_err().contains("version 9"));
    }
}
