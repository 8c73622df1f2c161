//! The metadata image: the cluster's metadata as of one offset of the metadata log (topics, partitions with
//! their leaders, epochs and in-sync replicas, registered brokers, dynamic configs, producer id blocks).
//! Every broker builds the same image by applying the same batches in the same order; a snapshot is this
//! image serialized. Applying is a pure function: it checks each record's preconditions against the image
//! and applies a batch entirely or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{Endpoint, MetadataBatch, MetadataRecord};
use crate::authorizer::AclSet;

/// No leader (Kafka's -1).
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// While a reassignment is in progress (KIP-455), the replicas it adds and removes, both also in `replicas`;
    /// empty otherwise. Left out of snapshots when empty, so that snapshots without reassignments are as the
    /// previous release wrote them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionImage {
    pub fn is_reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicImage {
    pub id: Uuid,
    pub name: String,
    /// Topic-level overrides by Kafka key; unset keys follow the broker defaults.
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionImage>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerImage {
    pub id: i32,
    /// Random per process start: a second process with the same id is told apart.
    pub incarnation: Uuid,
    /// The offset of its registration; requests carrying an older epoch are stale.
    pub epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Not a leader of anything, not in Metadata answers: not yet caught up, or no heartbeat for the session
    /// timeout, or shut down.
    pub fenced: bool,
}

impl BrokerImage {
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener).or(self.endpoints.first())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// By name; shared with older images until changed, so an image is cheap to copy.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    #[serde(skip)]
    names_by_id: BTreeMap<Uuid, String>,
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// Dynamic broker configs by resource name ("" for the cluster-wide default, else a node id).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism name (KIP-554). Left out of snapshots when empty, so that
    /// snapshots without them are as the previous release wrote them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredentialImage>>,
    /// Shared with older images until changed; left out of snapshots when empty, as earlier releases wrote them.
    #[serde(default, skip_serializing_if = "no_acls")]
    pub acls: Arc<AclSet>,
}

fn no_acls(acls: &Arc<AclSet>) -> bool {
    acls.is_empty()
}

/// What verifies a user's password for one SCRAM mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramCredentialImage {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Why a batch was not applied (the same on every broker, so the proposer can answer with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub code: i16,
    pub message: String,
}

impl Refused {
    pub fn new(code: i16, message: impl Into<String>) -> Refused {
        Refused { code, message: message.into() }
    }
}

use crate::errors::code;

impl Image {
    /// Rebuilds the derived indexes of a deserialized image.
    pub fn reindexed(mut self) -> Image {
        self.names_by_id = self.topics.values().map(|t| (t.id, t.name.clone())).collect();
        self
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.names_by_id.get(&id).and_then(|n| self.topics.get(n))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    pub fn partition_by_id(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionImage> {
        self.topic_by_id(topic_id)?.partitions.get(usize::try_from(partition).ok()?)
    }

    /// Registered brokers that are not fenced: those that lead partitions and that clients are told about.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether broker `id` is registered and not fenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Applies one log entry at `index`: every record, or (when one is refused) none.
    pub fn apply(&mut self, index: u64, batch: &MetadataBatch) -> Result<(), Refused> {
        let mut next = self.clone();
        for record in &batch.records {
            next.apply_record(index, record)?;
        }
        *self = next;
        Ok(())
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, Refused> {
        let name = self.names_by_id.get(&id).ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_ID, format!("no topic id {id}")))?;
        let topic = self.topics.get_mut(name).expect("indexed topic");
        Ok(Arc::make_mut(topic))
    }

    /// Broker `id` as registered with broker epoch `epoch`: a request of an older registration, or of a broker
    /// not registered at all, is STALE_BROKER_EPOCH (the broker registers again).
    pub fn registered(&self, id: i32, epoch: i64) -> Result<&BrokerImage, Refused> {
        match self.brokers.get(&id) {
            Some(b) if b.epoch == epoch => Ok(b),
            Some(b) => Err(Refused::new(code::STALE_BROKER_EPOCH, format!("broker {id} has epoch {}, not {epoch}", b.epoch))),
            None => Err(Refused::new(code::STALE_BROKER_EPOCH, format!("broker {id} is not registered"))),
        }
    }

    fn broker_mut(&mut self, id: i32, epoch: i64) -> Result<&mut BrokerImage, Refused> {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => Ok(b),
            Some(b) => Err(Refused::new(code::STALE_BROKER_EPOCH, format!("broker {id} has epoch {}, not {epoch}", b.epoch))),
            None => Err(Refused::new(code::BROKER_ID_NOT_REGISTERED, format!("broker {id} is not registered"))),
        }
    }

    fn apply_record(&mut self, index: u64, record: &MetadataRecord) -> Result<(), Refused> {
        match record {
            MetadataRecord::Topic { id, name, configs } => {
                if self.topics.contains_key(name) {
                    return Err(Refused::new(code::TOPIC_ALREADY_EXISTS, format!("topic {name} already exists")));
                }
                if self.names_by_id.contains_key(id) {
                    return Err(Refused::new(code::INVALID_REQUEST, format!("topic id {id} is taken")));
                }
                let topic = TopicImage { id: *id, name: name.clone(), configs: configs.clone(), partitions: vec![] };
                self.names_by_id.insert(*id, name.clone());
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::Partition { topic_id, partition, replicas, isr, leader, leader_epoch, partition_epoch } => {
                let topic = self.topic_mut(*topic_id)?;
                if *partition != topic.partition_count() {
                    return Err(Refused::new(
                        code::INVALID_PARTITIONS,
                        format!("topic {} has {} partitions, not {partition}", topic.name, topic.partitions.len()),
                    ));
                }
                topic.partitions.push(PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding: vec![],
                    removing: vec![],
                });
            }
            MetadataRecord::PartitionChange { topic_id, partition, leader, isr, replicas } => {
                let topic = self.topic_mut(*topic_id)?;
                let name = topic.name.clone();
                let p = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| topic.partitions.get_mut(p))
                    .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no partition {name}-{partition}")))?;
                if let Some(l) = leader {
                    p.leader = *l;
                    p.leader_epoch += 1;
                }
                if let Some(isr) = isr {
                    p.isr = isr.clone();
                }
                if let Some(r) = replicas {
                    if r.replicas.is_empty() || !r.adding.iter().chain(&r.removing).all(|b| r.replicas.contains(b)) {
                        return Err(Refused::new(
                            code::INVALID_REPLICA_ASSIGNMENT,
                            format!("{name}-{partition}: replicas {r:?} must be non-empty and hold those added and removed"),
                        ));
                    }
                    p.replicas.clone_from(&r.replicas);
                    p.adding.clone_from(&r.adding);
                    p.removing.clone_from(&r.removing);
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { id } => {
                let name = self
                    .names_by_id
                    .remove(id)
                    .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_ID, format!("no topic id {id}")))?;
                self.topics.remove(&name);
            }
            MetadataRecord::TopicConfig { topic_id, configs } => self.topic_mut(*topic_id)?.configs = configs.clone(),
            MetadataRecord::BrokerConfig { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(resource);
                } else {
                    self.broker_configs.insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::RegisterBroker { id, incarnation, endpoints, rack } => {
                let broker = BrokerImage {
                    id: *id,
                    incarnation: *incarnation,
                    epoch: index as i64,
                    endpoints: endpoints.clone(),
                    rack: rack.clone(),
                    fenced: true,
                };
                self.brokers.insert(*id, broker);
            }
            MetadataRecord::UserScramCredential { name, mechanism, salt, stored_key, server_key, iterations } => {
                let credential = ScramCredentialImage {
                    salt: salt.clone(),
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                    iterations: *iterations,
                };
                self.scram_credentials.entry(name.clone()).or_default().insert(mechanism.clone(), credential);
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                let user = self.scram_credentials.get_mut(name);
                if user.and_then(|u| u.remove(mechanism)).is_none() {
                    return Err(Refused::new(code::RESOURCE_NOT_FOUND, format!("user {name:?} has no {mechanism} credential")));
                }
                if self.scram_credentials.get(name).is_some_and(BTreeMap::is_empty) {
                    self.scram_credentials.remove(name);
                }
            }
            MetadataRecord::FenceBroker { id, epoch } => self.broker_mut(*id, *epoch)?.fenced = true,
            MetadataRecord::UnfenceBroker { id, epoch } => self.broker_mut(*id, *epoch)?.fenced = false,
            MetadataRecord::UnregisterBroker { id } => {
                if self.brokers.remove(id).is_none() {
                    return Err(Refused::new(code::BROKER_ID_NOT_REGISTERED, format!("broker {id} is not registered")));
                }
            }
            MetadataRecord::ProducerIds { broker_id, broker_epoch, next } => {
                self.broker_mut(*broker_id, *broker_epoch)?;
                if *next <= self.next_producer_id {
                    return Err(Refused::new(
                        code::UNKNOWN_SERVER_ERROR,
                        format!("producer ids up to {} are taken already", self.next_producer_id),
                    ));
                }
                self.next_producer_id = *next;
            }
            MetadataRecord::NoOp => {}
            MetadataRecord::Acl { id, binding } => {
                if !Arc::make_mut(&mut self.acls).insert(*id, binding.clone()) {
                    return Err(Refused::new(code::INVALID_REQUEST, format!("ACL id {id} is taken")));
                }
            }
            MetadataRecord::RemoveAcl { id } => {
                if !Arc::make_mut(&mut self.acls).remove(*id) {
                    return Err(Refused::new(code::INVALID_REQUEST, format!("no ACL has id {id}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::authorizer::AclBinding;
    use crate::controller::records::{Endpoint, MetadataBatch, ReplicaChange};
    use proptest::prelude::*;

    /// An image with these brokers registered, as (id, in service (unfenced), rack).
    pub(crate) fn with_brokers(brokers: &[(i32, bool, Option<&str>)]) -> Image {
        let mut i = Image::default();
        for (n, (id, live, rack)) in brokers.iter().enumerate() {
            let reg = MetadataRecord::RegisterBroker {
                id: *id,
                incarnation: Uuid::nil(),
                endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host: "h".into(), port: 1 }],
                rack: rack.map(String::from),
            };
            i.apply(n as u64 + 1, &MetadataBatch::new(vec![reg])).unwrap();
            if *live {
                let epoch = i.brokers[id].epoch;
                i.apply(100 + n as u64, &MetadataBatch::new(vec![MetadataRecord::UnfenceBroker { id: *id, epoch }])).unwrap();
            }
        }
        i
    }

    fn topic(id: u128, name: &str, partitions: i32) -> Vec<MetadataRecord> {
        let id = Uuid::from_u128(id);
        let mut r = vec![MetadataRecord::Topic { id, name: name.into(), configs: BTreeMap::new() }];
        r.extend((0..partitions).map(|p| MetadataRecord::Partition {
            topic_id: id,
            partition: p,
            replicas: vec![p % 3],
            isr: vec![p % 3],
            leader: p % 3,
            leader_epoch: 0,
            partition_epoch: 0,
        }));
        r
    }

    fn apply(image: &mut Image, index: u64, records: Vec<MetadataRecord>) -> Result<(), Refused> {
        image.apply(index, &MetadataBatch::new(records))
    }

    #[test]
    fn every_record_type_applies() {
        let mut i = Image::default();
        let reg = |id| MetadataRecord::RegisterBroker {
            id,
            incarnation: Uuid::from_u128(id as u128),
            endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host: "h".into(), port: 9092 }],
            rack: None,
        };
        apply(&mut i, 1, vec![reg(0), reg(1)]).unwrap();
        assert!(i.brokers[&0].fenced && i.brokers[&1].epoch == 1);
        apply(&mut i, 2, vec![MetadataRecord::UnfenceBroker { id: 0, epoch: 1 }]).unwrap();
        assert_eq!(i.live_brokers().map(|b| b.id).collect::<Vec<_>>(), vec![0]);
        let stale = apply(&mut i, 3, vec![MetadataRecord::FenceBroker { id: 0, epoch: 7 }]).unwrap_err();
        assert_eq!(stale.code, code::STALE_BROKER_EPOCH);

        apply(&mut i, 4, topic(1, "t", 3)).unwrap();
        assert_eq!(i.topic("t").unwrap().partition_count(), 3);
        assert_eq!(i.topic_by_id(Uuid::from_u128(1)).unwrap().name, "t");
        assert_eq!(apply(&mut i, 5, topic(2, "t", 1)).unwrap_err().code, code::TOPIC_ALREADY_EXISTS);
        // A refused batch changes nothing, also the records before the refused one.
        let before = i.clone();
        let mut mixed = topic(3, "u", 1);
        mixed.push(MetadataRecord::RemoveTopic { id: Uuid::from_u128(99) });
        assert!(apply(&mut i, 6, mixed).is_err());
        assert_eq!(i, before);

        let t = Uuid::from_u128(1);
        apply(
            &mut i,
            7,
            vec![MetadataRecord::PartitionChange {
                topic_id: t,
                partition: 1,
                leader: Some(NO_LEADER),
                isr: None,
                replicas: None,
            }],
        )
        .unwrap();
        let p = i.partition("t", 1).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (NO_LEADER, 1, 1));
        apply(
            &mut i,
            8,
            vec![MetadataRecord::PartitionChange { topic_id: t, partition: 1, leader: None, isr: Some(vec![]), replicas: None }],
        )
        .unwrap();
        let p = i.partition("t", 1).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch, p.isr.len()), (1, 2, 0));
        let moving = ReplicaChange { replicas: vec![2, 1], adding: vec![2], removing: vec![1] };
        let change = |replicas| MetadataRecord::PartitionChange { topic_id: t, partition: 1, leader: None, isr: None, replicas };
        apply(&mut i, 8, vec![change(Some(moving))]).unwrap();
        let p = i.partition("t", 1).unwrap();
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone(), p.partition_epoch),
            (vec![2, 1], vec![2], vec![1], 3)
        );
        assert!(p.is_reassigning());
        for bad in [
            ReplicaChange { replicas: vec![], adding: vec![], removing: vec![] },
            ReplicaChange { replicas: vec![2], adding: vec![3], removing: vec![] },
        ] {
            assert_eq!(apply(&mut i, 8, vec![change(Some(bad))]).unwrap_err().code, code::INVALID_REPLICA_ASSIGNMENT);
        }
        apply(&mut i, 8, vec![change(Some(ReplicaChange { replicas: vec![2], adding: vec![], removing: vec![] }))]).unwrap();
        assert!(!i.partition("t", 1).unwrap().is_reassigning());
        let configs = BTreeMap::from([("retention.ms".to_string(), "1".to_string())]);
        apply(&mut i, 9, vec![MetadataRecord::TopicConfig { topic_id: t, configs: configs.clone() }]).unwrap();
        assert_eq!(i.topic("t").unwrap().configs, configs);
        apply(&mut i, 10, vec![MetadataRecord::BrokerConfig { resource: "0".into(), configs: configs.clone() }]).unwrap();
        assert_eq!(i.broker_configs["0"], configs);
        apply(&mut i, 11, vec![MetadataRecord::BrokerConfig { resource: "0".into(), configs: BTreeMap::new() }]).unwrap();
        assert!(i.broker_configs.is_empty());
        apply(&mut i, 12, vec![MetadataRecord::ProducerIds { broker_id: 0, broker_epoch: 1, next: 1000 }]).unwrap();
        assert!(apply(&mut i, 13, vec![MetadataRecord::ProducerIds { broker_id: 0, broker_epoch: 1, next: 1000 }]).is_err());
        assert_eq!(i.next_producer_id, 1000);
        apply(&mut i, 14, vec![MetadataRecord::RemoveTopic { id: t }, MetadataRecord::NoOp]).unwrap();
        assert!(i.topic("t").is_none() && i.topic_by_id(t).is_none());
        let binding = AclBinding::from_wire(2, "t", 3, "User:u", "*", 3, 3).unwrap();
        let acl = |id| MetadataRecord::Acl { id: Uuid::from_u128(id), binding: binding.clone() };
        apply(&mut i, 14, vec![acl(1)]).unwrap();
        let shared = i.acls.clone();
        assert_eq!(apply(&mut i, 14, vec![acl(1)]).unwrap_err().code, code::INVALID_REQUEST, "ids are unique");
        assert!(Arc::ptr_eq(&shared, &i.acls), "a refused batch leaves the ACLs as they were");
        apply(&mut i, 14, vec![MetadataRecord::RemoveAcl { id: Uuid::from_u128(1) }]).unwrap();
        assert!(i.acls.is_empty() && shared.len() == 1, "older images keep theirs");
        let gone = apply(&mut i, 14, vec![MetadataRecord::RemoveAcl { id: Uuid::from_u128(1) }]).unwrap_err();
        assert_eq!(gone.code, code::INVALID_REQUEST);
        apply(&mut i, 15, vec![MetadataRecord::UnregisterBroker { id: 1 }]).unwrap();
        assert_eq!(i.brokers.keys().copied().collect::<Vec<_>>(), vec![0]);
        assert_eq!(
            apply(&mut i, 16, vec![MetadataRecord::UnregisterBroker { id: 1 }]).unwrap_err().code,
            code::BROKER_ID_NOT_REGISTERED
        );
    }

    #[test]
    fn scram_credentials() {
        let mut i = Image::default();
        let upsert = |name: &str, mechanism: &str, iterations| MetadataRecord::UserScramCredential {
            name: name.into(),
            mechanism: mechanism.into(),
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations,
        };
        let remove = |name: &str, mechanism: &str| MetadataRecord::RemoveUserScramCredential {
            name: name.into(),
            mechanism: mechanism.into(),
        };
        apply(&mut i, 1, vec![upsert("alice", "SCRAM-SHA-256", 4096), upsert("alice", "SCRAM-SHA-512", 8192)]).unwrap();
        apply(&mut i, 2, vec![upsert("alice", "SCRAM-SHA-256", 5000)]).unwrap();
        assert_eq!(i.scram_credentials["alice"]["SCRAM-SHA-256"].iterations, 5000, "replaced");
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(serde_json::from_str::<Image>(&json).unwrap(), i);
        apply(&mut i, 3, vec![remove("alice", "SCRAM-SHA-256")]).unwrap();
        assert_eq!(apply(&mut i, 4, vec![remove("alice", "SCRAM-SHA-256")]).unwrap_err().code, code::RESOURCE_NOT_FOUND);
        assert_eq!(apply(&mut i, 4, vec![remove("bob", "SCRAM-SHA-256")]).unwrap_err().code, code::RESOURCE_NOT_FOUND);
        apply(&mut i, 5, vec![remove("alice", "SCRAM-SHA-512")]).unwrap();
        assert!(i.scram_credentials.is_empty(), "a user without credentials is gone");
        assert!(!serde_json::to_string(&i).unwrap().contains("scram"), "absent from snapshots when empty");
    }

    /// Records over a small space of ids and names, so that many apply and many are refused.
    pub(crate) fn arb_record() -> impl Strategy<Value = MetadataRecord> {
        let id = (0u128..4).prop_map(Uuid::from_u128);
        let name = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
        let configs = prop::collection::btree_map(
            prop::sample::select(vec!["retention.ms", "segment.bytes"]).prop_map(String::from),
            "[0-9]{1,3}",
            0..2,
        );
        let ids = prop::collection::vec(0i32..3, 0..3);
        prop_oneof![
            (id.clone(), name, configs.clone()).prop_map(|(id, name, configs)| MetadataRecord::Topic { id, name, configs }),
            (id.clone(), 0i32..3, ids.clone(), -1i32..3).prop_map(|(topic_id, partition, replicas, leader)| {
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    isr: replicas.clone(),
                    replicas,
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }
            }),
            (
                id.clone(),
                0i32..3,
                prop::option::of(-1i32..3),
                prop::option::of(ids.clone()),
                prop::option::of((ids.clone(), ids.clone(), ids))
            )
                .prop_map(|(topic_id, partition, leader, isr, replicas)| MetadataRecord::PartitionChange {
                    topic_id,
                    partition,
                    leader,
                    isr,
                    replicas: replicas.map(|(replicas, adding, removing)| ReplicaChange { replicas, adding, removing }),
                }),
            id.clone().prop_map(|id| MetadataRecord::RemoveTopic { id }),
            (id, configs.clone()).prop_map(|(topic_id, configs)| MetadataRecord::TopicConfig { topic_id, configs }),
            (prop::sample::select(vec!["", "0", "1"]).prop_map(String::from), configs)
                .prop_map(|(resource, configs)| MetadataRecord::BrokerConfig { resource, configs }),
            (0i32..3, 0u128..3).prop_map(|(id, inc)| MetadataRecord::RegisterBroker {
                id,
                incarnation: Uuid::from_u128(inc),
                endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host: format!("h{id}"), port: 9092 }],
                rack: None,
            }),
            (0i32..3, 0i64..20).prop_map(|(id, epoch)| MetadataRecord::FenceBroker { id, epoch }),
            (0i32..3, 0i64..20).prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker { id, epoch }),
            (0i32..3).prop_map(|id| MetadataRecord::UnregisterBroker { id }),
            (0i32..3, 0i64..20, 0i64..5000).prop_map(|(broker_id, broker_epoch, next)| MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next
            }),
            Just(MetadataRecord::NoOp),
            (prop::sample::select(vec!["a", "b"]), prop::sample::select(vec!["SCRAM-SHA-256", "SCRAM-SHA-512"]), 4096i32..4100)
                .prop_map(|(name, mechanism, iterations)| MetadataRecord::UserScramCredential {
                    name: name.into(),
                    mechanism: mechanism.into(),
                    salt: vec![1, 2],
                    stored_key: vec![3],
                    server_key: vec![4],
                    iterations,
                }),
            (prop::sample::select(vec!["a", "b"]), prop::sample::select(vec!["SCRAM-SHA-256", "SCRAM-SHA-512"])).prop_map(
                |(name, mechanism)| MetadataRecord::RemoveUserScramCredential { name: name.into(), mechanism: mechanism.into() }
            ),
            (0u128..3, prop::sample::select(vec!["a", "b"]), any::<bool>()).prop_map(|(id, name, prefixed)| {
                MetadataRecord::Acl {
                    id: Uuid::from_u128(id),
                    binding: AclBinding::from_wire(2, name, if prefixed { 4 } else { 3 }, "User:u", "*", 3, 3).unwrap(),
                }
            }),
            (0u128..3).prop_map(|id| MetadataRecord::RemoveAcl { id: Uuid::from_u128(id) }),
        ]
    }

    proptest! {
        /// A broker that loads a snapshot taken at any point and replays the rest of the log has the image of
        /// a broker that applied everything live.
        #[test]
        fn snapshot_plus_replay_equals_the_live_image(
            batches in prop::collection::vec(prop::collection::vec(arb_record(), 1..4), 0..40),
            cut in 0usize..40,
        ) {
            let mut live = Image::default();
            let mut snapshot = None;
            for (i, records) in batches.iter().enumerate() {
                if i == cut {
                    snapshot = Some(serde_json::to_vec(&live).unwrap());
                }
                let _ = apply(&mut live, i as u64 + 1, records.clone());
            }
            let cut = cut.min(batches.len());
            let mut restored = match snapshot {
                Some(bytes) => serde_json::from_slice::<Image>(&bytes).unwrap().reindexed(),
                None => serde_json::from_slice::<Image>(&serde_json::to_vec(&live).unwrap()).unwrap().reindexed(),
            };
            if cut < batches.len() {
                for (i, records) in batches.iter().enumerate().skip(cut) {
                    let _ = apply(&mut restored, i as u64 + 1, records.clone());
                }
            }
            prop_assert_eq!(restored, live);
        }
    }
}
