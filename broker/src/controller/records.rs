//! The records of the metadata log, shaped like Kafka's KIP-631 records (TopicRecord, PartitionRecord,
//! PartitionChangeRecord, RegisterBrokerRecord, FenceBrokerRecord, ConfigRecord, ProducerIdsRecord, ...).
//! A log entry carries one [`MetadataBatch`]: records applied together or not at all.
//!
//! Records are JSON (the log is small; every entry is read back at startup and on a new broker), tagged by
//! type, with every field required and unknown fields refused, and the batch carries a format version:
//! an entry this broker does not understand is an error, never skipped. A batch is written at the lowest
//! version its records need, so brokers of the previous release read everything but what they cannot apply.
//!
//! Versions: 1, the first; 2 adds PartitionChange's `replicas` (partition reassignment, KIP-455), absent
//! when unchanged; 3 adds security records: SCRAM credentials and ACLs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::authorizer::AclBinding;

/// The newest batch format this broker writes and reads.
pub const FORMAT_VERSION: u16 = 3;

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataBatch {
    pub version: u16,
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    pub fn new(records: Vec<MetadataRecord>) -> MetadataBatch {
        let version = records.iter().map(MetadataRecord::version).max().unwrap_or(1);
        MetadataBatch { version, records }
    }

    /// Refuses a batch written by a newer broker, and one whose records need a newer version than it says.
    pub fn check_version(&self) -> Result<(), String> {
        if !(1..=FORMAT_VERSION).contains(&self.version) {
            return Err(format!("metadata batch format version {}; this broker reads 1..={FORMAT_VERSION}", self.version));
        }
        match self.records.iter().position(|r| r.version() > self.version) {
            Some(i) => Err(format!(
                "record {i} of a metadata batch of format version {} needs version {}",
                self.version,
                self.records[i].version()
            )),
            None => Ok(()),
        }
    }
}

/// A partition's new replica list, with the replicas a reassignment in progress adds and removes (both also
/// in `replicas`; both empty when none is in progress), as Kafka's PartitionChangeRecord carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaChange {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
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
    /// A leader, ISR or (version 2) replica change; a leader (new or not) bumps the leader epoch, every change
    /// the partition epoch.
    PartitionChange {
        topic_id: Uuid,
        partition: i32,
        leader: Option<i32>,
        isr: Option<Vec<i32>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<ReplicaChange>,
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
    // Security records (version 3).
    /// A user's SCRAM credential for one mechanism (`SCRAM-SHA-256` or `SCRAM-SHA-512`), created or replaced
    /// (KIP-554's UserScramCredentialRecord): never the password, only what verifies it.
    UserScramCredential {
        name: String,
        mechanism: String,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// A user's SCRAM credential for one mechanism removed.
    RemoveUserScramCredential {
        name: String,
        mechanism: String,
    },
    /// An ACL, under an id no other ACL had.
    Acl {
        id: Uuid,
        binding: AclBinding,
    },
    RemoveAcl {
        id: Uuid,
    },
}

impl MetadataRecord {
    /// The batch format version this record needs.
    pub fn version(&self) -> u16 {
        match self {
            MetadataRecord::UserScramCredential { .. } | MetadataRecord::RemoveUserScramCredential { .. } => 3,
            MetadataRecord::PartitionChange { replicas: Some(_), .. } => 2,
            MetadataRecord::Acl { .. } | MetadataRecord::RemoveAcl { .. } => 3,
            _ => 1,
        }
    }
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

    #[test]
    fn batches_take_the_version_their_records_need() {
        let change = |replicas: Option<ReplicaChange>| MetadataRecord::PartitionChange {
            topic_id: Uuid::nil(),
            partition: 0,
            leader: None,
            isr: Some(vec![1]),
            replicas,
        };
        // Without replicas, a PartitionChange is written as version 1 wrote it.
        let v1 = MetadataBatch::new(vec![change(None), MetadataRecord::NoOp]);
        assert_eq!(v1.version, 1);
        let json = serde_json::to_string(&v1).unwrap();
        assert!(!json.contains("replicas"), "{json}");
        let moved = ReplicaChange { replicas: vec![1, 2], adding: vec![2], removing: vec![] };
        let v2 = MetadataBatch::new(vec![MetadataRecord::NoOp, change(Some(moved))]);
        assert_eq!(v2.version, 2);
        let back: MetadataBatch = serde_json::from_str(&serde_json::to_string(&v2).unwrap()).unwrap();
        assert_eq!(back, v2);
        back.check_version().unwrap();
        let mislabelled = MetadataBatch { version: 1, ..v2 };
        assert!(mislabelled.check_version().unwrap_err().contains("record 1"), "{mislabelled:?}");
        let scram = MetadataBatch::new(vec![MetadataRecord::RemoveUserScramCredential {
            name: "a".into(),
            mechanism: "SCRAM-SHA-256".into(),
        }]);
        assert_eq!(scram.version, 3);
        let acl = MetadataRecord::Acl {
            id: Uuid::nil(),
            binding: AclBinding::from_wire(4, "kafka-cluster", 3, "User:a", "*", 7, 3).unwrap(),
        };
        let v3 = MetadataBatch::new(vec![MetadataRecord::NoOp, acl, MetadataRecord::RemoveAcl { id: Uuid::nil() }]);
        assert_eq!(v3.version, 3);
        let back: MetadataBatch = serde_json::from_str(&serde_json::to_string(&v3).unwrap()).unwrap();
        assert_eq!(back, v3);
        assert!(MetadataBatch { version: 2, ..v3 }.check_version().is_err());
        let unknown = r#"{"version":2,"records":[{"type":"PartitionChange","topic_id":"00000000-0000-0000-0000-000000000000",
            "partition":0,"leader":null,"isr":null,"replicas":{"replicas":[1],"adding":[],"removing":[],"extra":1}}]}"#;
        assert!(serde_json::from_str::<MetadataBatch>(unknown).is_err());
    }
}
