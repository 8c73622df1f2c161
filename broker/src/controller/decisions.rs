//! The active controller's decisions, as pure functions of the image: the records that create a topic or
//! grow one (with the replicas spread round-robin over the live brokers, as Kafka's rack-unaware assignment
//! does), and the leader changes when a broker is fenced or comes back. Each partition has one replica until
//! replication exists.

use std::collections::BTreeMap;

use strata_storage::LogConfig;
use uuid::Uuid;

use super::image::{Image, Refused, NO_LEADER};
use super::records::MetadataRecord;
use crate::errors::code;

/// Most partitions one topic may have (a bound on what a single request can make brokers create).
pub const MAX_PARTITIONS: i32 = 10_000;

/// A topic to create, as CreateTopics asks for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit replicas of partitions 0..n-1, instead of a count.
    pub assignment: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
}

/// New partitions for a topic, as CreatePartitions asks for them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartitions {
    pub topic: String,
    /// The new partition count.
    pub count: i32,
    /// Explicit replicas of the new partitions, instead of the rotation.
    pub assignment: Option<Vec<Vec<i32>>>,
}

/// Kafka's rule: 1-249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!("topic name is {} characters long (max 249)", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name {name:?} contains {c:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// Replica lists of partitions `first..first + count` over `brokers` (sorted ids), starting at `start`.
pub fn round_robin(brokers: &[i32], start: usize, first: i32, count: i32) -> Vec<Vec<i32>> {
    if brokers.is_empty() {
        return vec![];
    }
    (first..first + count).map(|p| vec![brokers[(start + p as usize) % brokers.len()]]).collect()
}

fn check_replication_factor(factor: i16) -> Result<(), Refused> {
    match factor {
        -1 | 1 => Ok(()),
        _ => Err(Refused::new(
            code::INVALID_REPLICATION_FACTOR,
            format!("replication factor {factor}: partitions are not replicated yet, each has exactly one replica"),
        )),
    }
}

fn check_explicit(image: &Image, replicas: &[Vec<i32>], first: i32) -> Result<(), Refused> {
    for (p, r) in replicas.iter().enumerate() {
        let p = first as usize + p;
        match r.as_slice() {
            [b] if image.brokers.contains_key(b) => {}
            [b] => {
                return Err(Refused::new(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("partition {p} assigned to broker {b}, which is not registered"),
                ))
            }
            _ => {
                return Err(Refused::new(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("partition {p} assigned to {r:?}: each partition needs exactly one replica"),
                ))
            }
        }
    }
    Ok(())
}

fn partition_records(image: &Image, topic_id: Uuid, first: i32, assignment: Vec<Vec<i32>>) -> Vec<MetadataRecord> {
    let live = |b: &i32| image.brokers.get(b).is_some_and(|b| !b.fenced);
    assignment
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| MetadataRecord::Partition {
            topic_id,
            partition: first + i as i32,
            leader: replicas.iter().copied().find(live).unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
        })
        .collect()
}

fn live_ids(image: &Image) -> Vec<i32> {
    image.live_brokers().map(|b| b.id).collect()
}

/// The records that create `t` with id `id`; `defaults` validates its configs.
pub fn create_topic(
    image: &Image,
    t: &NewTopic,
    id: Uuid,
    default_partitions: i32,
    defaults: &LogConfig,
) -> Result<Vec<MetadataRecord>, Refused> {
    let name = &t.name;
    validate_topic_name(name).map_err(|m| Refused::new(code::INVALID_TOPIC_EXCEPTION, m))?;
    if crate::group::is_internal_topic(name) {
        return Err(Refused::new(code::INVALID_TOPIC_EXCEPTION, format!("{name} is the broker's internal topic")));
    }
    if image.topic(name).is_some() {
        return Err(Refused::new(code::TOPIC_ALREADY_EXISTS, format!("topic {name} already exists")));
    }
    // Kafka refuses names that differ only in '.' versus '_' (they collide in metric names).
    let normalized = name.replace('.', "_");
    if let Some(other) = image.topics.keys().find(|o| o.replace('.', "_") == normalized) {
        return Err(Refused::new(code::INVALID_TOPIC_EXCEPTION, format!("topic {name} collides with existing topic {other}")));
    }
    defaults
        .with_overrides(t.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Refused::new(code::INVALID_CONFIG, e.to_string()))?;
    check_replication_factor(t.replication_factor)?;
    let assignment = match (&t.assignment, t.partitions) {
        (Some(a), -1) => {
            check_explicit(image, a, 0)?;
            a.clone()
        }
        (Some(_), _) => return Err(Refused::new(code::INVALID_REQUEST, "give either num_partitions or assignments, not both")),
        (None, n) => {
            let n = if n == -1 { default_partitions } else { n };
            if !(1..=MAX_PARTITIONS).contains(&n) {
                return Err(Refused::new(
                    code::INVALID_PARTITIONS,
                    format!("partition count {n} is not in [1, {MAX_PARTITIONS}]"),
                ));
            }
            let brokers = live_ids(image);
            if brokers.is_empty() {
                return Err(Refused::new(code::INVALID_REPLICATION_FACTOR, "no broker is available (all are fenced)"));
            }
            // The rotation starts where the (random) id says, so single-partition topics spread too.
            let start = (id.as_u128() % brokers.len() as u128) as usize;
            round_robin(&brokers, start, 0, n)
        }
    };
    if assignment.is_empty() || assignment.len() > MAX_PARTITIONS as usize {
        return Err(Refused::new(code::INVALID_PARTITIONS, format!("{} partitions assigned", assignment.len())));
    }
    let mut records = vec![MetadataRecord::Topic { id, name: name.clone(), configs: t.configs.clone() }];
    records.extend(partition_records(image, id, 0, assignment));
    Ok(records)
}

/// The records that grow topic `name` to `count` partitions.
pub fn create_partitions(
    image: &Image,
    name: &str,
    count: i32,
    assignment: Option<&[Vec<i32>]>,
) -> Result<Vec<MetadataRecord>, Refused> {
    let topic =
        image.topic(name).ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}")))?;
    let now = topic.partition_count();
    if count <= now {
        return Err(Refused::new(
            code::INVALID_PARTITIONS,
            format!("topic {name} has {now} partitions; the new count {count} must be larger"),
        ));
    }
    if count > MAX_PARTITIONS {
        return Err(Refused::new(code::INVALID_PARTITIONS, format!("partition count {count} exceeds {MAX_PARTITIONS}")));
    }
    let added = match assignment {
        Some(a) => {
            if a.len() != (count - now) as usize {
                return Err(Refused::new(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("{} assignments for {} new partitions", a.len(), count - now),
                ));
            }
            check_explicit(image, a, now)?;
            a.to_vec()
        }
        None => {
            let brokers = live_ids(image);
            if brokers.is_empty() {
                return Err(Refused::new(code::INVALID_REPLICATION_FACTOR, "no broker is available (all are fenced)"));
            }
            // New partitions continue the rotation from partition 0's broker, as Kafka does.
            let first = topic.partitions.first().and_then(|p| p.replicas.first());
            let start = first.and_then(|b| brokers.iter().position(|x| x == b)).unwrap_or(0);
            round_robin(&brokers, start, now, count - now)
        }
    };
    Ok(partition_records(image, topic.id, now, added))
}

/// A fenced broker leads nothing: its partitions get another live replica of the ISR as leader, or none.
pub fn fence(image: &Image, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::FenceBroker { id: broker, epoch }];
    let live = |b: &i32| *b != broker && image.brokers.get(b).is_some_and(|b| !b.fenced);
    for topic in image.topics.values() {
        for (p, part) in topic.partitions.iter().enumerate() {
            if part.leader == broker {
                let leader = part.isr.iter().copied().find(live).unwrap_or(NO_LEADER);
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.id,
                    partition: p as i32,
                    leader: Some(leader),
                    isr: None,
                });
            }
        }
    }
    records
}

/// A broker back in service leads the partitions without a leader whose ISR it is in.
pub fn unfence(image: &Image, broker: i32, epoch: i64) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::UnfenceBroker { id: broker, epoch }];
    for topic in image.topics.values() {
        for (p, part) in topic.partitions.iter().enumerate() {
            if part.leader == NO_LEADER && part.isr.contains(&broker) {
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.id,
                    partition: p as i32,
                    leader: Some(broker),
                    isr: None,
                });
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{Endpoint, MetadataBatch};

    fn image(brokers: &[(i32, bool)]) -> Image {
        let mut i = Image::default();
        for (n, (id, fenced)) in brokers.iter().enumerate() {
            let reg = MetadataRecord::RegisterBroker {
                id: *id,
                incarnation: Uuid::nil(),
                endpoints: vec![Endpoint { name: "PLAINTEXT".into(), host: "h".into(), port: 1 }],
                rack: None,
            };
            i.apply(n as u64 + 1, &MetadataBatch::new(vec![reg])).unwrap();
            if !fenced {
                let epoch = i.brokers[id].epoch;
                i.apply(100 + n as u64, &MetadataBatch::new(vec![MetadataRecord::UnfenceBroker { id: *id, epoch }])).unwrap();
            }
        }
        i
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic { name: name.into(), partitions, replication_factor: -1, assignment: None, configs: BTreeMap::new() }
    }

    fn created(i: &mut Image, t: &NewTopic, id: u128) -> Result<(), Refused> {
        let records = create_topic(i, t, Uuid::from_u128(id), 3, &LogConfig::default())?;
        i.apply(1000 + id as u64, &MetadataBatch::new(records))
    }

    #[test]
    fn topics_spread_over_live_brokers_only() {
        let mut i = image(&[(0, false), (1, true), (2, false)]);
        created(&mut i, &new_topic("t", 4), 0).unwrap();
        let leaders: Vec<i32> = i.topic("t").unwrap().partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![0, 2, 0, 2]);
        created(&mut i, &new_topic("d", -1), 1).unwrap();
        assert_eq!(i.topic("d").unwrap().partition_count(), 3, "num.partitions");
        let records = create_partitions(&i, "t", 6, None).unwrap();
        i.apply(2000, &MetadataBatch::new(records)).unwrap();
        let leaders: Vec<i32> = i.topic("t").unwrap().partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![0, 2, 0, 2, 0, 2]);
    }

    #[test]
    fn bad_requests_are_refused_with_kafkas_codes() {
        let mut i = image(&[(0, false)]);
        created(&mut i, &new_topic("a.b", 1), 0).unwrap();
        let cases: Vec<(NewTopic, i16)> = vec![
            (new_topic("a.b", 1), code::TOPIC_ALREADY_EXISTS),
            (new_topic("a_b", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("bad name", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("__consumer_offsets", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("zero", 0), code::INVALID_PARTITIONS),
            (new_topic("huge", MAX_PARTITIONS + 1), code::INVALID_PARTITIONS),
            (NewTopic { replication_factor: 3, ..new_topic("rf", 1) }, code::INVALID_REPLICATION_FACTOR),
            (NewTopic { assignment: Some(vec![vec![7]]), ..new_topic("x", -1) }, code::INVALID_REPLICA_ASSIGNMENT),
            (NewTopic { assignment: Some(vec![vec![0, 0]]), ..new_topic("x", -1) }, code::INVALID_REPLICA_ASSIGNMENT),
            (NewTopic { assignment: Some(vec![vec![0]]), ..new_topic("x", 1) }, code::INVALID_REQUEST),
            (
                NewTopic { configs: BTreeMap::from([("retention.ms".into(), "x".into())]), ..new_topic("c", 1) },
                code::INVALID_CONFIG,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(created(&mut i, &t, 9).unwrap_err().code, want, "{t:?}");
        }
        assert_eq!(create_partitions(&i, "a.b", 1, None).unwrap_err().code, code::INVALID_PARTITIONS);
        assert_eq!(create_partitions(&i, "nope", 2, None).unwrap_err().code, code::UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(create_partitions(&i, "a.b", 3, Some(&[vec![0]])).unwrap_err().code, code::INVALID_REPLICA_ASSIGNMENT);
        let none = image(&[(0, true)]);
        assert_eq!(
            create_topic(&none, &new_topic("t", 1), Uuid::nil(), 1, &LogConfig::default()).unwrap_err().code,
            code::INVALID_REPLICATION_FACTOR
        );
    }

    #[test]
    fn fencing_takes_leadership_away_and_unfencing_gives_it_back() {
        let mut i = image(&[(0, false), (1, false)]);
        created(&mut i, &new_topic("t", 4), 0).unwrap();
        let epoch = i.brokers[&1].epoch;
        i.apply(3000, &MetadataBatch::new(fence(&i, 1, epoch))).unwrap();
        let parts = &i.topic("t").unwrap().partitions;
        assert_eq!(parts.iter().map(|p| p.leader).collect::<Vec<_>>(), vec![0, NO_LEADER, 0, NO_LEADER]);
        assert_eq!(parts.iter().map(|p| p.leader_epoch).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
        assert!(i.brokers[&1].fenced);
        i.apply(3001, &MetadataBatch::new(unfence(&i, 1, epoch))).unwrap();
        let parts = &i.topic("t").unwrap().partitions;
        assert_eq!(parts.iter().map(|p| p.leader).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
        assert_eq!(parts.iter().map(|p| p.leader_epoch).collect::<Vec<_>>(), vec![0, 2, 0, 2]);
        // A stale epoch is refused as a whole: no partition changes either.
        assert!(i.apply(3002, &MetadataBatch::new(fence(&i, 1, epoch - 1))).is_err());
        assert!(!i.brokers[&1].fenced);
    }
}
