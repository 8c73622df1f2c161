//! The active controller's decisions, as pure functions of the image, with Kafka's KRaft rules: the records
//! that create a topic or grow one (replicas placed over the live brokers and their racks), the leader and ISR
//! changes when a broker leaves service or comes back, a leader's ISR changes (AlterPartition) and requested
//! elections (ElectLeaders).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;

use strata_storage::LogConfig;
use uuid::Uuid;

use super::image::{Image, PartitionImage, Refused, TopicImage, NO_LEADER};
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
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replicas of partitions 0..n-1, instead of counts (which are then -1).
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
    /// Explicit replicas of the new partitions, instead of the placement.
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

/// A broker replicas may be placed on: its id and rack.
pub type Placeable<'a> = (i32, Option<&'a str>);

/// `brokers` (sorted by id) ordered so that neighbours are on different racks while possible: the first broker
/// of every rack (racks by name; brokers without a rack count as one rack), then the second of every rack, ...
pub fn rack_alternated<'a>(brokers: &[Placeable<'a>]) -> Vec<Placeable<'a>> {
    let mut by_rack: BTreeMap<Option<&str>, VecDeque<i32>> = BTreeMap::new();
    for &(id, rack) in brokers {
        by_rack.entry(rack).or_default().push_back(id);
    }
    let mut out = Vec::with_capacity(brokers.len());
    while out.len() < brokers.len() {
        for (rack, ids) in &mut by_rack {
            out.extend(ids.pop_front().map(|id| (id, *rack)));
        }
    }
    out
}

/// Replica lists of `partitions`, `factor` replicas each (1..=brokers.len()), over `brokers` as
/// [`rack_alternated`] orders them, as Kafka's assignment does. The first replica (the preferred leader) of partition p is broker
/// `start + p`, so leaders rotate over all brokers and racks. Follower k sits `1 + (shift + k) % (n - 1)`
/// brokers after it, the shift growing by one every n partitions, so that one broker's followers vary and every
/// broker holds as many replicas as any other; a broker on a rack the partition is already on is passed over
/// while the partition is not on every rack.
pub fn place_replicas(brokers: &[Placeable], factor: usize, partitions: Range<i32>, start: usize, shift: usize) -> Vec<Vec<i32>> {
    let n = brokers.len();
    debug_assert!((1..=n).contains(&factor), "replication factor {factor} over {n} brokers");
    let racks = brokers.iter().map(|b| b.1).collect::<BTreeSet<_>>().len();
    partitions
        .map(|p| {
            let first = (start + p as usize) % n;
            // In whole turns over the racks, so that the followers' racks keep alternating too.
            let shift = (shift + p as usize / n) * racks;
            let mut replicas = vec![brokers[first].0];
            let mut used_racks = BTreeSet::from([brokers[first].1]);
            let mut k = 0;
            while replicas.len() < factor {
                let (id, rack) = brokers[(first + 1 + (shift + k) % (n - 1)) % n];
                if !replicas.contains(&id) && (used_racks.len() == racks || !used_racks.contains(&rack)) {
                    replicas.push(id);
                    used_racks.insert(rack);
                }
                k += 1;
            }
            replicas
        })
        .collect()
}

fn live_placeable(image: &Image) -> Vec<Placeable<'_>> {
    image.live_brokers().map(|b| (b.id, b.rack.as_deref())).collect()
}

/// The replication factor to create partitions with: `requested`, -1 for `default`, at most `live` brokers.
fn replication_factor(requested: i16, default: i16, live: usize) -> Result<usize, Refused> {
    let factor = if requested == -1 { default } else { requested };
    if factor < 1 {
        return Err(Refused::new(
            code::INVALID_REPLICATION_FACTOR,
            format!("replication factor {factor}: it must be at least 1, or -1 for default.replication.factor"),
        ));
    }
    if factor as usize > live {
        return Err(Refused::new(
            code::INVALID_REPLICATION_FACTOR,
            format!(
                "Unable to replicate the partition {factor} time(s): the target replication factor of {factor} cannot be \
                 reached because only {live} broker(s) are registered and unfenced"
            ),
        ));
    }
    Ok(factor as usize)
}

/// Kafka's checks of explicit replica lists (of partitions from `first` on): each non-empty, without duplicates,
/// on registered brokers of which one at least is live, and all of `factor` replicas (a topic has one
/// replication factor; None: the first list's).
fn check_assignment(image: &Image, assignment: &[Vec<i32>], first: i32, factor: Option<usize>) -> Result<(), Refused> {
    let invalid = |p: usize, why: String| {
        Err(Refused::new(code::INVALID_REPLICA_ASSIGNMENT, format!("partition {}: {why}", first as usize + p)))
    };
    let factor = factor.unwrap_or_else(|| assignment.first().map_or(0, Vec::len));
    for (p, replicas) in assignment.iter().enumerate() {
        check_replica_list(image, replicas).or_else(|why| invalid(p, why))?;
        if replicas.len() != factor {
            return invalid(p, format!("{} replica(s), but the topic's partitions have {factor}", replicas.len()));
        }
        if !replicas.iter().any(|b| image.is_live(*b)) {
            return invalid(p, format!("all of the assigned brokers {replicas:?} are fenced"));
        }
    }
    Ok(())
}

/// Kafka's checks of any explicit replica list (new partitions', a reassignment's target): not empty, no broker
/// twice, every broker registered. The reason if not.
pub fn check_replica_list(image: &Image, replicas: &[i32]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("the assignment has no replicas".into());
    }
    if let Some(b) = replicas.iter().enumerate().find_map(|(i, b)| replicas[..i].contains(b).then_some(b)) {
        return Err(format!("broker {b} is assigned more than once"));
    }
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(format!("broker {b} is not registered"));
    }
    Ok(())
}

/// New partitions lead on their first live replica, with the live replicas in sync (as KRaft creates them).
pub(super) fn partition_records(image: &Image, topic_id: Uuid, first: i32, assignment: Vec<Vec<i32>>) -> Vec<MetadataRecord> {
    assignment
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| {
            let isr: Vec<i32> = replicas.iter().copied().filter(|b| image.is_live(*b)).collect();
            MetadataRecord::Partition {
                topic_id,
                partition: first + i as i32,
                leader: isr.first().copied().unwrap_or(NO_LEADER),
                isr,
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            }
        })
        .collect()
}

pub const DEFAULT_REPLICATION_FACTOR: &str = "default.replication.factor";

/// The replication factor of topics created with -1: the cluster-wide dynamic broker config, else
/// `configured` (the static one). Dynamic so that an operator can raise it as the cluster grows
/// without restarting every broker (Kafka keeps it static).
pub fn default_replication_factor(image: &Image, configured: i16) -> i16 {
    let dynamic = image.broker_configs.get("").and_then(|c| c.get(DEFAULT_REPLICATION_FACTOR));
    dynamic.and_then(|v| parse_replication_factor(v).ok()).unwrap_or(configured)
}

fn parse_replication_factor(value: &str) -> Result<i16, String> {
    match value.trim().parse::<i16>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("{DEFAULT_REPLICATION_FACTOR}={value}: not a replication factor (1 to {})", i16::MAX)),
    }
}

/// Dynamic broker configs that are not log defaults, kept beside them in the image's broker configs.
pub fn is_broker_setting(key: &str) -> bool {
    crate::throttle::RATE_KEYS.contains(&key) || key == DEFAULT_REPLICATION_FACTOR
}

/// Validates the dynamic broker configs of `resource` (a node id, or "" for the cluster-wide
/// default) and returns the log defaults among them. default.replication.factor is cluster-wide
/// only: the active controller decides with it, whichever broker passed the request on.
pub fn split_broker_configs(resource: &str, configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut rest = crate::throttle::split_rates(configs)?;
    if let Some(v) = rest.remove(DEFAULT_REPLICATION_FACTOR) {
        if !resource.is_empty() {
            return Err(format!(
                "{DEFAULT_REPLICATION_FACTOR} is a cluster-wide setting: set it on the default broker resource (empty name), \
                 not on broker {resource}"
            ));
        }
        parse_replication_factor(&v)?;
    }
    Ok(rest)
}

/// The records that create `t` with id `id`; `defaults` validates its configs.
pub fn create_topic(
    image: &Image,
    t: &NewTopic,
    id: Uuid,
    default_partitions: i32,
    default_replication_factor: i16,
    defaults: &LogConfig,
) -> Result<Vec<MetadataRecord>, Refused> {
    let name = &t.name;
    validate_topic_name(name).map_err(|m| Refused::new(code::INVALID_TOPIC_EXCEPTION, m))?;
    refuse_internal(name, "created by clients")?;
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
    let assignment = match (&t.assignment, t.partitions, t.replication_factor) {
        (Some(a), -1, -1) => {
            check_assignment(image, a, 0, None)?;
            a.clone()
        }
        (Some(_), _, _) => {
            return Err(Refused::new(
                code::INVALID_REQUEST,
                "with explicit assignments, num_partitions and replication_factor must be -1",
            ))
        }
        (None, n, factor) => {
            let n = if n == -1 { default_partitions } else { n };
            if !(1..=MAX_PARTITIONS).contains(&n) {
                return Err(Refused::new(
                    code::INVALID_PARTITIONS,
                    format!("partition count {n} is not in [1, {MAX_PARTITIONS}]"),
                ));
            }
            let brokers = rack_alternated(&live_placeable(image));
            let default = self::default_replication_factor(image, default_replication_factor);
            let factor = replication_factor(factor, default, brokers.len())?;
            // Where the rotation starts and how followers are spaced come from the (random) id, as Kafka's
            // random start, so that topics with few partitions spread over the brokers too.
            let random = id.as_u128();
            let (start, shift) = ((random % brokers.len() as u128) as usize, ((random >> 64) % brokers.len() as u128) as usize);
            place_replicas(&brokers, factor, 0..n, start, shift)
        }
    };
    if assignment.is_empty() || assignment.len() > MAX_PARTITIONS as usize {
        return Err(Refused::new(code::INVALID_PARTITIONS, format!("{} partitions assigned", assignment.len())));
    }
    let mut records = vec![MetadataRecord::Topic { id, name: name.clone(), configs: t.configs.clone() }];
    records.extend(partition_records(image, id, 0, assignment));
    Ok(records)
}

/// Clients may not create, delete or grow the broker's internal topic (groups map to its partitions).
fn refuse_internal(name: &str, what: &str) -> Result<(), Refused> {
    match crate::group::is_internal_topic(name) {
        true => Err(Refused::new(code::INVALID_TOPIC_EXCEPTION, format!("{name} is an internal topic and cannot be {what}"))),
        false => Ok(()),
    }
}

/// The record that deletes topic `name`.
pub fn delete_topic(image: &Image, name: &str) -> Result<Vec<MetadataRecord>, Refused> {
    let topic =
        image.topic(name).ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}")))?;
    refuse_internal(name, "deleted")?;
    Ok(vec![MetadataRecord::RemoveTopic { id: topic.id }])
}

/// The records that grow topic `name` to `count` partitions, with its replication factor (partition 0's).
pub fn create_partitions(
    image: &Image,
    name: &str,
    count: i32,
    assignment: Option<&[Vec<i32>]>,
) -> Result<Vec<MetadataRecord>, Refused> {
    let topic =
        image.topic(name).ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}")))?;
    refuse_internal(name, "grown")?;
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
    let first_replicas = topic.partitions.first().map_or(&[][..], |p| &p.replicas);
    // A reassignment in progress lists the replicas it removes too: the topic's factor is its target's.
    let factor = topic.partitions.first().map_or(0, |p| p.replicas.len() - p.removing.len()).max(1);
    let added = match assignment {
        Some(a) => {
            if a.len() != (count - now) as usize {
                return Err(Refused::new(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("{} assignments for {} new partitions", a.len(), count - now),
                ));
            }
            check_assignment(image, a, now, Some(factor))?;
            a.to_vec()
        }
        None => {
            let brokers = rack_alternated(&live_placeable(image));
            // The topic's replication factor must still fit on the live brokers.
            replication_factor(factor as i16, 1, brokers.len())?;
            // New partitions continue the rotation from partition 0's first replica, as Kafka does.
            let start = first_replicas.first().and_then(|b| brokers.iter().position(|x| x.0 == *b)).unwrap_or(0);
            place_replicas(&brokers, factor, now..count, start, start)
        }
    };
    Ok(partition_records(image, topic.id, now, added))
}

/// Kafka's leader election over a partition's replicas: the first one (in replica order, so the preferred
/// leader wins when it can) that is live and in the ISR, keeping the ISR; else, when unclean election is
/// allowed, the first live replica, alone in the ISR (it may lack acknowledged records, and the others may
/// have records it lacks). None: no replica can lead.
pub fn elect_leader(replicas: &[i32], isr: &[i32], live: impl Fn(i32) -> bool, unclean: bool) -> Option<(i32, Vec<i32>)> {
    if let Some(leader) = replicas.iter().copied().find(|r| isr.contains(r) && live(*r)) {
        return Some((leader, isr.to_vec()));
    }
    let leader = replicas.iter().copied().find(|r| unclean && live(*r))?;
    Some((leader, vec![leader]))
}

const UNCLEAN: &str = "unclean.leader.election.enable";

/// Whether `topic` may elect a leader outside its ISR: the topic's `unclean.leader.election.enable`, else the
/// cluster-wide dynamic broker config, else the broker's (`defaults`).
pub fn unclean_allowed(image: &Image, topic: &TopicImage, defaults: &LogConfig) -> bool {
    let dynamic = image.broker_configs.get("").and_then(|c| c.get(UNCLEAN));
    let value = topic.configs.get(UNCLEAN).or(dynamic).cloned().or_else(|| defaults.get(UNCLEAN));
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The record that gives a partition `leader` and `isr`; none if it has them already.
fn change_to(topic_id: Uuid, partition: usize, now: &PartitionImage, leader: i32, isr: Vec<i32>) -> Option<MetadataRecord> {
    let leader = (leader != now.leader).then_some(leader);
    let isr = (isr != now.isr).then_some(isr);
    (leader.is_some() || isr.is_some()).then_some(MetadataRecord::PartitionChange {
        topic_id,
        partition: partition as i32,
        leader,
        isr,
        replicas: None,
    })
}

/// The leader and ISR changes that take `broker` out of service (fenced, shutting down, registering again after
/// a restart, unregistered), as Kafka's handleBrokerFenced: it leaves every ISR, except as the last member (the
/// partition then waits without a leader for the one replica known to have all its records); where it led,
/// the first live ISR member leads, or with unclean election the first live replica, or none.
pub fn remove_broker(image: &Image, broker: i32, defaults: &LogConfig) -> Vec<MetadataRecord> {
    let live = |b: i32| b != broker && image.is_live(b);
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(image, topic, defaults);
        for (p, part) in topic.partitions.iter().enumerate() {
            if part.leader != broker && !part.isr.contains(&broker) {
                continue;
            }
            let mut isr: Vec<i32> = part.isr.iter().copied().filter(|b| *b != broker).collect();
            if isr.is_empty() {
                isr.clone_from(&part.isr);
            }
            let (leader, isr) = match part.leader {
                l if l == broker || l == NO_LEADER => {
                    elect_leader(&part.replicas, &isr, live, unclean).unwrap_or((NO_LEADER, isr))
                }
                l => (l, isr),
            };
            records.extend(change_to(topic.id, p, part, leader, isr));
        }
    }
    records
}

/// A fenced broker leads nothing and is in no ISR but as the last member (see [`remove_broker`]).
pub fn fence(image: &Image, broker: i32, epoch: i64, defaults: &LogConfig) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::FenceBroker { id: broker, epoch }];
    records.extend(remove_broker(image, broker, defaults));
    records
}

/// Leaders for the partitions without one, among the brokers `live` says are.
fn leaderless_elections(image: &Image, defaults: &LogConfig, live: impl Fn(i32) -> bool + Copy) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(image, topic, defaults);
        for (p, part) in topic.partitions.iter().enumerate().filter(|(_, part)| part.leader == NO_LEADER) {
            if let Some((leader, isr)) = elect_leader(&part.replicas, &part.isr, live, unclean) {
                records.extend(change_to(topic.id, p, part, leader, isr));
            }
        }
    }
    records
}

/// A broker back in service leads the partitions without a leader that it may lead: those whose ISR it is in,
/// and with unclean election those it is a replica of while no ISR member is live.
pub fn unfence(image: &Image, broker: i32, epoch: i64, defaults: &LogConfig) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::UnfenceBroker { id: broker, epoch }];
    records.extend(leaderless_elections(image, defaults, |b| b == broker || image.is_live(b)));
    records
}

/// Leaders for the partitions without one that can have one now (after unclean election was allowed).
pub fn elect_leaderless(image: &Image, defaults: &LogConfig) -> Vec<MetadataRecord> {
    leaderless_elections(image, defaults, |b| image.is_live(b))
}

/// A partition leader's request for a new ISR (Kafka's AlterPartition), with the epochs it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Kafka's AlterPartition: the leader of the partition, at its current leader and partition epochs, sets a new
/// ISR of replicas that includes itself; a broker joins it only if live. The ISR is kept in replica order; an
/// unchanged one needs no record.
pub fn alter_partition(image: &Image, req: &IsrChange) -> Result<Vec<MetadataRecord>, Refused> {
    let broker = req.broker_id;
    image.registered(broker, req.broker_epoch)?;
    let topic = image
        .topic_by_id(req.topic_id)
        .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_ID, format!("no topic has id {}", req.topic_id)))?;
    let name = format!("{}-{}", topic.name, req.partition);
    let part = image
        .partition_by_id(req.topic_id, req.partition)
        .ok_or_else(|| Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no partition {name}")))?;
    if req.leader_epoch != part.leader_epoch {
        return Err(Refused::new(
            code::FENCED_LEADER_EPOCH,
            format!("{name} is at leader epoch {}, not {}", part.leader_epoch, req.leader_epoch),
        ));
    }
    if broker != part.leader {
        return Err(Refused::new(
            code::NOT_LEADER_OR_FOLLOWER,
            format!("broker {broker} does not lead {name} (its leader is {})", part.leader),
        ));
    }
    if req.partition_epoch != part.partition_epoch {
        return Err(Refused::new(
            code::INVALID_UPDATE_VERSION,
            format!("{name} is at partition epoch {}, not {}", part.partition_epoch, req.partition_epoch),
        ));
    }
    let invalid = |why: String| Err(Refused::new(code::INVALID_REQUEST, format!("new ISR {:?} of {name}: {why}", req.new_isr)));
    if let Some(b) = req.new_isr.iter().find(|b| !part.replicas.contains(b)) {
        return invalid(format!("broker {b} is not a replica"));
    }
    if let Some(b) = req.new_isr.iter().enumerate().find_map(|(i, b)| req.new_isr[..i].contains(b).then_some(b)) {
        return invalid(format!("broker {b} is in it more than once"));
    }
    if !req.new_isr.contains(&broker) {
        return invalid("the leader must be in its ISR".into());
    }
    if let Some(b) = req.new_isr.iter().find(|b| !part.isr.contains(b) && !image.is_live(**b)) {
        let state = if image.brokers.contains_key(b) { "fenced" } else { "not registered" };
        return Err(Refused::new(code::INELIGIBLE_REPLICA, format!("broker {b} cannot join the ISR of {name}: it is {state}")));
    }
    let isr: Vec<i32> = part.replicas.iter().copied().filter(|b| req.new_isr.contains(b)).collect();
    // An ISR that now holds every replica a reassignment adds completes it (KIP-455).
    if let Some(done) = super::reassignment::complete_with_isr(image, req.topic_id, req.partition, part, &isr) {
        return Ok(vec![done]);
    }
    Ok(change_to(req.topic_id, req.partition as usize, part, part.leader, isr).into_iter().collect())
}

/// ElectLeaders' election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica, if it is live and in the ISR.
    Preferred,
    /// For a partition without a leader: an ISR member, else any live replica.
    Unclean,
}

impl TryFrom<i8> for ElectionType {
    type Error = Refused;

    fn try_from(v: i8) -> Result<ElectionType, Refused> {
        match v {
            0 => Ok(ElectionType::Preferred),
            1 => Ok(ElectionType::Unclean),
            _ => Err(Refused::new(code::INVALID_REQUEST, format!("unknown election type {v}"))),
        }
    }
}

/// One partition's ElectLeaders outcome: topic, partition, and whether a leader was elected.
pub type Election = (String, i32, Result<(), Refused>);

fn elect_one(image: &Image, topic: &str, partition: i32, election: ElectionType) -> Result<MetadataRecord, Refused> {
    let unknown = || Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no partition {topic}-{partition}"));
    let t = image.topic(topic).ok_or_else(unknown)?;
    let part = image.partition(topic, partition).ok_or_else(unknown)?;
    let not_needed = || Refused::new(code::ELECTION_NOT_NEEDED, format!("{topic}-{partition} has the leader asked for"));
    let live = |b: i32| image.is_live(b);
    let (leader, isr) = match election {
        ElectionType::Preferred => {
            let preferred = part.replicas.get(..1).unwrap_or_default();
            if preferred.first() == Some(&part.leader) {
                return Err(not_needed());
            }
            elect_leader(preferred, &part.isr, live, false).ok_or_else(|| {
                Refused::new(
                    code::PREFERRED_LEADER_NOT_AVAILABLE,
                    format!("the preferred leader {preferred:?} of {topic}-{partition} is not live and in the ISR"),
                )
            })?
        }
        ElectionType::Unclean if part.leader != NO_LEADER => return Err(not_needed()),
        ElectionType::Unclean => elect_leader(&part.replicas, &part.isr, live, true).ok_or_else(|| {
            Refused::new(code::ELIGIBLE_LEADERS_NOT_AVAILABLE, format!("no replica of {topic}-{partition} is live"))
        })?,
    };
    change_to(t.id, partition as usize, part, leader, isr).ok_or_else(not_needed)
}

/// Ids a block of producer ids holds (Kafka's block size): one metadata record per thousand producers.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// The next block of producer ids for broker `broker_id` (Kafka's AllocateProducerIds, KIP-730): its first id
/// and the record that takes it. `floor`: ids below it may have been used outside the log (a broker's ids of a
/// release that kept them in its data directory), so the block starts at or above it.
pub fn allocate_producer_ids(
    image: &Image,
    broker_id: i32,
    broker_epoch: i64,
    floor: i64,
) -> Result<(i64, Vec<MetadataRecord>), Refused> {
    image.registered(broker_id, broker_epoch)?;
    let start = image.next_producer_id.max(floor);
    let next =
        start.checked_add(PRODUCER_ID_BLOCK).ok_or_else(|| Refused::new(code::UNKNOWN_SERVER_ERROR, "producer ids exhausted"))?;
    Ok((start, vec![MetadataRecord::ProducerIds { broker_id, broker_epoch, next }]))
}

/// Kafka's ElectLeaders: the records of the elections and each partition's outcome. With `partitions` None,
/// every partition is tried and those that did not need an election are left out of the outcomes.
pub fn elect_leaders(
    image: &Image,
    partitions: Option<&[(String, i32)]>,
    election_type: i8,
) -> Result<(Vec<MetadataRecord>, Vec<Election>), Refused> {
    let election = ElectionType::try_from(election_type)?;
    let all = partitions.is_none();
    let wanted: Vec<(String, i32)> = match partitions {
        Some(p) => p.to_vec(),
        None => image.topics.values().flat_map(|t| (0..t.partition_count()).map(|p| (t.name.clone(), p))).collect(),
    };
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for (topic, partition) in wanted {
        let result = match elect_one(image, &topic, partition, election) {
            Ok(record) => {
                records.push(record);
                Ok(())
            }
            Err(e) => Err(e),
        };
        if !(all && result.as_ref().is_err_and(|e| e.code == code::ELECTION_NOT_NEEDED)) {
            outcomes.push((topic, partition, result));
        }
    }
    Ok((records, outcomes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::controller::records::MetadataBatch;

    #[test]
    fn producer_id_blocks_follow_each_other_above_any_floor() {
        let mut image = crate::controller::image::tests::with_brokers(&[(0, true, None), (1, false, None)]);
        let epoch = |image: &Image, id: i32| image.brokers[&id].epoch;
        // (broker, floor) -> first id of its block
        let table = [(0, 0, 0), (1, 0, 1000), (0, 0, 2000), (1, 5 << 32, 5 << 32), (0, 7, (5 << 32) + 1000)];
        for (n, (broker, floor, start)) in table.into_iter().enumerate() {
            let (got, records) = allocate_producer_ids(&image, broker, epoch(&image, broker), floor).unwrap();
            assert_eq!(got, start, "block {n}");
            image.apply(1000 + n as u64, &MetadataBatch::new(records)).unwrap();
            assert_eq!(image.next_producer_id, start + PRODUCER_ID_BLOCK);
        }
        let stale = allocate_producer_ids(&image, 0, epoch(&image, 0) + 1, 0).unwrap_err();
        assert_eq!(stale.code, code::STALE_BROKER_EPOCH);
        assert_eq!(allocate_producer_ids(&image, 9, 1, 0).unwrap_err().code, code::STALE_BROKER_EPOCH);
        assert!(allocate_producer_ids(&image, 0, epoch(&image, 0), i64::MAX - 10).is_err(), "exhausted");
    }

    proptest::proptest! {
        /// Kafka's election rules: a clean election picks the first live ISR member in replica order and keeps
        /// the ISR; none when no ISR member is live, unless unclean election is allowed, which then picks the
        /// first live replica and makes it the whole ISR.
        #[test]
        fn elections_follow_kafkas_rules(
            replicas in proptest::strategy::Strategy::prop_shuffle(proptest::sample::subsequence((0..6).collect::<Vec<i32>>(), 1..=5)),
            isr_mask in proptest::collection::vec(proptest::bool::ANY, 5),
            live_mask in proptest::collection::vec(proptest::bool::ANY, 6),
            unclean in proptest::bool::ANY,
        ) {
            use proptest::prelude::*;
            let isr: Vec<i32> = replicas.iter().zip(&isr_mask).filter(|(_, m)| **m).map(|(r, _)| *r).collect();
            let live = |b: i32| live_mask[b as usize];
            let first_live_isr = replicas.iter().copied().find(|r| isr.contains(r) && live(*r));
            match (elect_leader(&replicas, &isr, live, unclean), first_live_isr) {
                (Some((leader, new_isr)), Some(expected)) => {
                    prop_assert_eq!(leader, expected);
                    prop_assert_eq!(new_isr, isr.clone());
                }
                (Some((leader, new_isr)), None) => {
                    prop_assert!(unclean, "an unclean election without unclean.leader.election.enable");
                    prop_assert_eq!(Some(leader), replicas.iter().copied().find(|r| live(*r)));
                    prop_assert_eq!(new_isr, vec![leader]);
                }
                (None, expected) => {
                    prop_assert!(expected.is_none(), "no leader though ISR member {:?} is live", expected);
                    prop_assert!(!unclean || !replicas.iter().any(|r| live(*r)), "no leader though unclean and a replica is live");
                }
            }
        }
    }

    /// Brokers by id, fenced or not, with their racks.
    fn image_with_racks(brokers: &[(i32, bool, Option<&str>)]) -> Image {
        let live: Vec<(i32, bool, Option<&str>)> = brokers.iter().map(|(id, fenced, rack)| (*id, !*fenced, *rack)).collect();
        crate::controller::image::tests::with_brokers(&live)
    }

    pub(crate) fn image(brokers: &[(i32, bool)]) -> Image {
        image_with_racks(&brokers.iter().map(|(id, fenced)| (*id, *fenced, None)).collect::<Vec<_>>())
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic { name: name.into(), partitions, replication_factor: -1, assignment: None, configs: BTreeMap::new() }
    }

    /// Creates `t` with `num.partitions` 3 and `default.replication.factor` 1.
    fn created(i: &mut Image, t: &NewTopic, id: u128) -> Result<(), Refused> {
        let records = create_topic(i, t, Uuid::from_u128(id), 3, 1, &LogConfig::default())?;
        i.apply(1000 + id as u64, &MetadataBatch::new(records))
    }

    /// Adds topic `name` (id 7) with partitions of the given (replicas, isr, leader), at epochs 0.
    pub(crate) fn with_topic(i: &mut Image, name: &str, configs: &[(&str, &str)], parts: &[(&[i32], &[i32], i32)]) -> Uuid {
        let id = Uuid::from_u128(7);
        let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut records = vec![MetadataRecord::Topic { id, name: name.into(), configs }];
        records.extend(parts.iter().enumerate().map(|(p, (replicas, isr, leader))| MetadataRecord::Partition {
            topic_id: id,
            partition: p as i32,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader: *leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }));
        i.apply(500, &MetadataBatch::new(records)).unwrap();
        id
    }

    fn state(i: &Image, topic: &str, p: i32) -> (i32, Vec<i32>) {
        let part = i.partition(topic, p).unwrap();
        (part.leader, part.isr.clone())
    }

    #[test]
    fn racks_alternate() {
        let cases: Vec<(Vec<Placeable>, Vec<i32>)> = vec![
            (vec![(0, None), (1, None), (2, None)], vec![0, 1, 2]),
            ((0..9).map(|b| (b, Some(["r1", "r2", "r3"][b as usize / 3]))).collect(), vec![0, 3, 6, 1, 4, 7, 2, 5, 8]),
            // Brokers without a rack are one rack of their own; racks run out unevenly.
            (vec![(0, Some("a")), (1, Some("a")), (2, Some("a")), (3, Some("b")), (4, None), (5, None)], vec![4, 0, 3, 5, 1, 2]),
            (vec![], vec![]),
        ];
        for (brokers, want) in cases {
            assert_eq!(rack_alternated(&brokers).iter().map(|b| b.0).collect::<Vec<_>>(), want, "{brokers:?}");
        }
    }

    #[test]
    fn placement_follows_kafkas_rotation() {
        let brokers: Vec<Placeable> = (0..5).map(|b| (b, None)).collect();
        // Kafka's documented example: 5 brokers, 10 partitions, replication factor 3.
        let want = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(place_replicas(&brokers, 3, 0..10, 0, 0), want);
        // Placing only the later partitions gives them the same replicas.
        assert_eq!(place_replicas(&brokers, 3, 6..10, 0, 0), want[6..]);
        assert_eq!(place_replicas(&brokers, 1, 0..3, 2, 4), vec![vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn placement_is_distinct_balanced_and_rack_aware() {
        let racks = |spec: &[(&'static str, i32)]| -> Vec<Placeable<'static>> {
            let mut id = 0;
            let mut out = Vec::new();
            for (rack, n) in spec {
                for _ in 0..*n {
                    out.push((id, (!rack.is_empty()).then_some(*rack)));
                    id += 1;
                }
            }
            out
        };
        // (brokers, replication factor, partitions)
        let cases: Vec<(Vec<Placeable>, usize, i32)> = vec![
            (racks(&[("", 1)]), 1, 4),
            (racks(&[("", 3)]), 3, 12),
            (racks(&[("", 5)]), 3, 20),
            (racks(&[("", 6)]), 2, 30),
            (racks(&[("", 4)]), 4, 8),
            (racks(&[("a", 2), ("b", 2), ("c", 2)]), 3, 12),
            (racks(&[("a", 2), ("b", 2), ("c", 2)]), 2, 18),
            (racks(&[("a", 3), ("b", 3)]), 3, 12),
            (racks(&[("a", 2), ("b", 2), ("c", 2), ("d", 2)]), 3, 16),
            (racks(&[("a", 1), ("b", 1), ("c", 1)]), 3, 6),
        ];
        for (brokers, factor, count) in cases {
            let rack_count = brokers.iter().map(|b| b.1).collect::<BTreeSet<_>>().len();
            let arranged = rack_alternated(&brokers);
            for (start, shift) in [(0, 0), (1, 3), (4, 1)] {
                let what = format!("{brokers:?} factor {factor} start {start} shift {shift}");
                let placed = place_replicas(&arranged, factor, 0..count, start % brokers.len(), shift % brokers.len());
                assert_eq!(placed.len(), count as usize, "{what}");
                let mut leaders = BTreeMap::new();
                let mut replicas = BTreeMap::new();
                for r in &placed {
                    assert_eq!(r.len(), factor, "{what}");
                    assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), factor, "distinct brokers: {r:?} {what}");
                    let on_racks: BTreeSet<_> = r.iter().map(|b| brokers.iter().find(|x| x.0 == *b).unwrap().1).collect();
                    assert_eq!(on_racks.len(), factor.min(rack_count), "distinct racks: {r:?} {what}");
                    *leaders.entry(r[0]).or_insert(0) += 1;
                    for b in r {
                        *replicas.entry(*b).or_insert(0) += 1;
                    }
                }
                // Every count is a whole number of turns over the brokers: exactly balanced.
                let even =
                    |counts: &BTreeMap<i32, i32>, each: i32| counts.len() == brokers.len() && counts.values().all(|c| *c == each);
                let n = brokers.len() as i32;
                assert!(even(&leaders, count / n), "leaders {leaders:?} {what}");
                assert!(even(&replicas, count * factor as i32 / n), "replicas {replicas:?} {what}");
            }
        }
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
    fn default_replication_factor_is_dynamic_and_cluster_wide() {
        let mut i = image(&[(0, false), (1, false), (2, false)]);
        assert_eq!(default_replication_factor(&i, 1), 1, "the static setting without a dynamic one");
        let set = |i: &mut Image, resource: &str, v: &str| {
            i.broker_configs
                .insert(resource.to_string(), BTreeMap::from([(DEFAULT_REPLICATION_FACTOR.to_string(), v.to_string())]));
        };
        set(&mut i, "", "3");
        assert_eq!(default_replication_factor(&i, 1), 3);
        let records = create_topic(&i, &new_topic("t", 2), Uuid::from_u128(9), 3, 1, &LogConfig::default()).unwrap();
        i.apply(3000, &MetadataBatch::new(records)).unwrap();
        assert!(i.topic("t").unwrap().partitions.iter().all(|p| p.replicas.len() == 3));
        set(&mut i, "", "junk");
        assert_eq!(default_replication_factor(&i, 2), 2, "an unparsable stored value falls back");
        // (resource, value) -> accepted
        let table =
            [("", "3", true), ("", "1", true), ("", "0", false), ("", "x", false), ("", "40000", false), ("1", "3", false)];
        for (resource, value, ok) in table {
            let configs = BTreeMap::from([
                (DEFAULT_REPLICATION_FACTOR.to_string(), value.to_string()),
                ("min.insync.replicas".to_string(), "2".to_string()),
            ]);
            let got = split_broker_configs(resource, &configs);
            assert_eq!(got.is_ok(), ok, "{resource:?} {value}: {got:?}");
            if let Ok(rest) = got {
                assert_eq!(rest, BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]), "log defaults only");
            }
        }
        assert!(is_broker_setting(DEFAULT_REPLICATION_FACTOR) && is_broker_setting(crate::throttle::LEADER_RATE));
        assert!(!is_broker_setting("min.insync.replicas"));
    }

    #[test]
    fn replicated_topics_start_with_every_replica_in_sync() {
        let mut i = image(&[(0, false), (1, false), (2, false), (3, true)]);
        created(&mut i, &NewTopic { replication_factor: 3, ..new_topic("t", 6) }, 5).unwrap();
        for p in &i.topic("t").unwrap().partitions {
            assert_eq!(p.replicas.iter().collect::<BTreeSet<_>>(), BTreeSet::from([&0, &1, &2]), "{p:?}");
            assert_eq!((p.leader, &p.isr), (p.replicas[0], &p.replicas), "{p:?}");
        }
        // More partitions keep the topic's replication factor; -1 is default.replication.factor.
        i.apply(2000, &MetadataBatch::new(create_partitions(&i, "t", 8, None).unwrap())).unwrap();
        assert!(i.topic("t").unwrap().partitions.iter().all(|p| p.replicas.len() == 3));
        let records = create_topic(&i, &new_topic("d", 2), Uuid::from_u128(6), 3, 2, &LogConfig::default()).unwrap();
        i.apply(2001, &MetadataBatch::new(records)).unwrap();
        assert!(i.topic("d").unwrap().partitions.iter().all(|p| p.replicas.len() == 2));
        // An explicit assignment may name a fenced broker: it is no leader and not in sync.
        let explicit = NewTopic { assignment: Some(vec![vec![3, 1], vec![2, 0]]), ..new_topic("x", -1) };
        created(&mut i, &explicit, 7).unwrap();
        assert_eq!(state(&i, "x", 0), (1, vec![1]));
        assert_eq!(state(&i, "x", 1), (2, vec![2, 0]));
        // With a broker fenced, three replicas no longer fit.
        let epoch = i.brokers[&2].epoch;
        i.apply(2002, &MetadataBatch::new(fence(&i, 2, epoch, &LogConfig::default()))).unwrap();
        let refused = create_partitions(&i, "t", 9, None).unwrap_err();
        assert_eq!(refused.code, code::INVALID_REPLICATION_FACTOR);
        assert!(refused.message.contains("only 2 broker(s)"), "{refused}");
    }

    #[test]
    fn bad_requests_are_refused_with_kafkas_codes() {
        let mut i = image(&[(0, false), (1, false), (2, true)]);
        created(&mut i, &new_topic("a.b", 1), 0).unwrap();
        let assigned = |a: Vec<Vec<i32>>| NewTopic { assignment: Some(a), ..new_topic("x", -1) };
        let cases: Vec<(NewTopic, i16)> = vec![
            (new_topic("a.b", 1), code::TOPIC_ALREADY_EXISTS),
            (new_topic("a_b", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("bad name", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("__consumer_offsets", 1), code::INVALID_TOPIC_EXCEPTION),
            (new_topic("zero", 0), code::INVALID_PARTITIONS),
            (new_topic("huge", MAX_PARTITIONS + 1), code::INVALID_PARTITIONS),
            (NewTopic { replication_factor: 3, ..new_topic("rf", 1) }, code::INVALID_REPLICATION_FACTOR),
            (NewTopic { replication_factor: 0, ..new_topic("rf", 1) }, code::INVALID_REPLICATION_FACTOR),
            (NewTopic { replication_factor: -2, ..new_topic("rf", 1) }, code::INVALID_REPLICATION_FACTOR),
            (assigned(vec![vec![7]]), code::INVALID_REPLICA_ASSIGNMENT),
            (assigned(vec![vec![0, 0]]), code::INVALID_REPLICA_ASSIGNMENT),
            (assigned(vec![vec![]]), code::INVALID_REPLICA_ASSIGNMENT),
            (assigned(vec![vec![0, 1], vec![1]]), code::INVALID_REPLICA_ASSIGNMENT),
            (assigned(vec![vec![2]]), code::INVALID_REPLICA_ASSIGNMENT),
            (assigned(vec![]), code::INVALID_PARTITIONS),
            (NewTopic { assignment: Some(vec![vec![0]]), ..new_topic("x", 1) }, code::INVALID_REQUEST),
            (NewTopic { replication_factor: 1, ..assigned(vec![vec![0]]) }, code::INVALID_REQUEST),
            (
                NewTopic { configs: BTreeMap::from([("retention.ms".into(), "x".into())]), ..new_topic("c", 1) },
                code::INVALID_CONFIG,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(created(&mut i, &t, 9).unwrap_err().code, want, "{t:?}");
        }
        let refused = created(&mut i, &NewTopic { replication_factor: 3, ..new_topic("rf", 1) }, 9).unwrap_err();
        assert_eq!(
            refused.message,
            "Unable to replicate the partition 3 time(s): the target replication factor of 3 cannot be reached because \
             only 2 broker(s) are registered and unfenced"
        );
        assert_eq!(create_partitions(&i, "a.b", 1, None).unwrap_err().code, code::INVALID_PARTITIONS);
        assert_eq!(create_partitions(&i, "nope", 2, None).unwrap_err().code, code::UNKNOWN_TOPIC_OR_PARTITION);
        for bad in [vec![vec![0]], vec![vec![0, 1]], vec![vec![2]]] {
            let extra = bad.len() as i32;
            assert_eq!(
                create_partitions(&i, "a.b", 1 + extra + 1, Some(&bad)).unwrap_err().code,
                code::INVALID_REPLICA_ASSIGNMENT,
                "{bad:?}"
            );
        }
        assert_eq!(create_partitions(&i, "a.b", 2, Some(&[vec![0, 1]])).unwrap_err().code, code::INVALID_REPLICA_ASSIGNMENT);
        assert_eq!(create_partitions(&i, "a.b", 2, Some(&[vec![2]])).unwrap_err().code, code::INVALID_REPLICA_ASSIGNMENT);
        create_partitions(&i, "a.b", 2, Some(&[vec![1]])).unwrap();
        // The internal topic exists, but clients may neither delete nor grow it.
        let mut with_offsets = i.clone();
        with_topic(&mut with_offsets, "__consumer_offsets", &[], &[(&[1], &[1], 1)]);
        assert_eq!(delete_topic(&with_offsets, "__consumer_offsets").unwrap_err().code, code::INVALID_TOPIC_EXCEPTION);
        assert_eq!(
            create_partitions(&with_offsets, "__consumer_offsets", 2, None).unwrap_err().code,
            code::INVALID_TOPIC_EXCEPTION
        );
        assert_eq!(delete_topic(&with_offsets, "nope").unwrap_err().code, code::UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(delete_topic(&with_offsets, "a.b").unwrap().len(), 1);
        let none = image(&[(0, true)]);
        assert_eq!(
            create_topic(&none, &new_topic("t", 1), Uuid::nil(), 1, 1, &LogConfig::default()).unwrap_err().code,
            code::INVALID_REPLICATION_FACTOR
        );
    }

    #[test]
    fn election_prefers_replica_order_within_the_isr() {
        let live = |b: i32| b != 1;
        // (replicas, isr, unclean, leader and ISR elected)
        type Case = (&'static [i32], &'static [i32], bool, Option<(i32, Vec<i32>)>);
        let cases: Vec<Case> = vec![
            (&[1, 2, 3], &[1, 2, 3], false, Some((2, vec![1, 2, 3]))),
            (&[3, 2], &[2, 3], false, Some((3, vec![2, 3]))),
            (&[1, 2, 3], &[1, 3], false, Some((3, vec![1, 3]))),
            (&[1, 2, 3], &[1], false, None),
            (&[1, 2, 3], &[1], true, Some((2, vec![2]))),
            (&[1, 3, 2], &[1], true, Some((3, vec![3]))),
            (&[1], &[1], true, None),
            // An ISR member is elected even when unclean election is allowed.
            (&[2, 3], &[3], true, Some((3, vec![3]))),
        ];
        for (replicas, isr, unclean, want) in cases {
            assert_eq!(elect_leader(replicas, isr, live, unclean), want, "{replicas:?} {isr:?} {unclean}");
        }
    }

    #[test]
    fn unclean_election_follows_topic_then_cluster_then_broker_config() {
        let mut i = image(&[(1, false)]);
        with_topic(&mut i, "t", &[], &[(&[1], &[1], 1)]);
        let topic = i.topic("t").unwrap().clone();
        let on = LogConfig::default().with_overrides([(UNCLEAN, "true")]).unwrap();
        assert!(!unclean_allowed(&i, &topic, &LogConfig::default()));
        assert!(unclean_allowed(&i, &topic, &on));
        i.broker_configs.insert(String::new(), BTreeMap::from([(UNCLEAN.to_string(), "TRUE".to_string())]));
        assert!(unclean_allowed(&i, &topic, &LogConfig::default()));
        let mut off = (*topic).clone();
        off.configs.insert(UNCLEAN.into(), "false".into());
        assert!(!unclean_allowed(&i, &off, &on));
    }

    enum Act {
        Fence(i32),
        Unfence(i32),
    }

    #[test]
    fn fencing_shrinks_the_isr_and_elects_and_unfencing_fills_leaderless_partitions() {
        use Act::*;
        // (replicas, isr, leader, fenced brokers of 1..=3, unclean, act, leader and ISR after)
        type Case = (&'static [i32], &'static [i32], i32, &'static [i32], bool, Act, (i32, Vec<i32>));
        let cases: Vec<Case> = vec![
            (&[1, 2, 3], &[1, 2, 3], 1, &[], false, Fence(1), (2, vec![2, 3])),
            (&[1, 2, 3], &[1, 2, 3], 1, &[], false, Fence(2), (1, vec![1, 3])),
            (&[1, 2, 3], &[3, 1], 3, &[], false, Fence(3), (1, vec![1])),
            // The last ISR member stays in it: the partition waits for it without a leader.
            (&[1, 2], &[1], 1, &[], false, Fence(1), (NO_LEADER, vec![1])),
            (&[1, 2], &[1], 1, &[], true, Fence(1), (2, vec![2])),
            (&[1, 2], &[1], 1, &[3], false, Fence(3), (1, vec![1])),
            (&[1, 2], &[1], NO_LEADER, &[1], false, Unfence(1), (1, vec![1])),
            (&[1, 2], &[1], NO_LEADER, &[1, 2], false, Unfence(2), (NO_LEADER, vec![1])),
            (&[1, 2], &[1], NO_LEADER, &[1, 2], true, Unfence(2), (2, vec![2])),
            (&[1, 2], &[1, 2], 1, &[2], true, Unfence(2), (1, vec![1, 2])),
        ];
        for (replicas, isr, leader, fenced, unclean, act, want) in cases {
            let mut i = image(&[(1, fenced.contains(&1)), (2, fenced.contains(&2)), (3, fenced.contains(&3))]);
            let configs: &[(&str, &str)] = if unclean { &[(UNCLEAN, "true")] } else { &[] };
            with_topic(&mut i, "t", configs, &[(replicas, isr, leader)]);
            let (records, what) = match act {
                Fence(b) => (fence(&i, b, i.brokers[&b].epoch, &LogConfig::default()), format!("fence {b}")),
                Unfence(b) => (unfence(&i, b, i.brokers[&b].epoch, &LogConfig::default()), format!("unfence {b}")),
            };
            i.apply(600, &MetadataBatch::new(records)).unwrap();
            assert_eq!(state(&i, "t", 0), want, "{replicas:?} {isr:?} {leader} {fenced:?} {unclean} {what}");
        }
    }

    #[test]
    fn leader_changes_bump_the_leader_epoch_and_stale_fencing_changes_nothing() {
        let mut i = image(&[(0, false), (1, false)]);
        created(&mut i, &new_topic("t", 4), 0).unwrap();
        let epoch = i.brokers[&1].epoch;
        i.apply(3000, &MetadataBatch::new(fence(&i, 1, epoch, &LogConfig::default()))).unwrap();
        let parts = &i.topic("t").unwrap().partitions;
        assert_eq!(parts.iter().map(|p| p.leader).collect::<Vec<_>>(), vec![0, NO_LEADER, 0, NO_LEADER]);
        assert_eq!(parts.iter().map(|p| p.leader_epoch).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
        assert!(i.brokers[&1].fenced);
        i.apply(3001, &MetadataBatch::new(unfence(&i, 1, epoch, &LogConfig::default()))).unwrap();
        let parts = &i.topic("t").unwrap().partitions;
        assert_eq!(parts.iter().map(|p| p.leader).collect::<Vec<_>>(), vec![0, 1, 0, 1]);
        assert_eq!(parts.iter().map(|p| p.leader_epoch).collect::<Vec<_>>(), vec![0, 2, 0, 2]);
        // A stale epoch is refused as a whole: no partition changes either.
        assert!(i.apply(3002, &MetadataBatch::new(fence(&i, 1, epoch - 1, &LogConfig::default()))).is_err());
        assert!(!i.brokers[&1].fenced);
        // A follower leaving the ISR changes the partition epoch only.
        let mut i = image(&[(0, false), (1, false)]);
        with_topic(&mut i, "r", &[], &[(&[0, 1], &[0, 1], 0)]);
        i.apply(3003, &MetadataBatch::new(remove_broker(&i, 1, &LogConfig::default()))).unwrap();
        let p = i.partition("r", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()), (0, 0, 1, vec![0]));
        // Turning unclean election on gives a partition waiting for its ISR a leader.
        let mut i = image(&[(0, true), (1, false)]);
        with_topic(&mut i, "w", &[], &[(&[0, 1], &[0], NO_LEADER)]);
        assert!(elect_leaderless(&i, &LogConfig::default()).is_empty());
        let on = LogConfig::default().with_overrides([(UNCLEAN, "true")]).unwrap();
        i.apply(3004, &MetadataBatch::new(elect_leaderless(&i, &on))).unwrap();
        assert_eq!(state(&i, "w", 0), (1, vec![1]));
    }

    #[test]
    fn alter_partition_follows_kafkas_validation() {
        // Broker 4 is fenced, 5 is not registered.
        let mut i = image(&[(1, false), (2, false), (3, false), (4, true)]);
        let id = with_topic(&mut i, "t", &[], &[(&[1, 2, 3, 4], &[1, 2], 1)]);
        let ok = IsrChange {
            broker_id: 1,
            broker_epoch: i.brokers[&1].epoch,
            topic_id: id,
            partition: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![1, 2, 3],
        };
        // The request, and the new ISR (None: unchanged) or the error code.
        type Case = (IsrChange, Result<Option<Vec<i32>>, i16>);
        let cases: Vec<Case> = vec![
            (ok.clone(), Ok(Some(vec![1, 2, 3]))),
            (IsrChange { new_isr: vec![3, 1], ..ok.clone() }, Ok(Some(vec![1, 3]))),
            (IsrChange { new_isr: vec![2, 1], ..ok.clone() }, Ok(None)),
            (IsrChange { broker_epoch: 99, ..ok.clone() }, Err(code::STALE_BROKER_EPOCH)),
            (IsrChange { broker_id: 5, ..ok.clone() }, Err(code::STALE_BROKER_EPOCH)),
            (IsrChange { topic_id: Uuid::from_u128(8), ..ok.clone() }, Err(code::UNKNOWN_TOPIC_ID)),
            (IsrChange { partition: 1, ..ok.clone() }, Err(code::UNKNOWN_TOPIC_OR_PARTITION)),
            (IsrChange { partition: -1, ..ok.clone() }, Err(code::UNKNOWN_TOPIC_OR_PARTITION)),
            (IsrChange { leader_epoch: 1, ..ok.clone() }, Err(code::FENCED_LEADER_EPOCH)),
            (IsrChange { broker_id: 2, broker_epoch: i.brokers[&2].epoch, ..ok.clone() }, Err(code::NOT_LEADER_OR_FOLLOWER)),
            (IsrChange { partition_epoch: 3, ..ok.clone() }, Err(code::INVALID_UPDATE_VERSION)),
            (IsrChange { new_isr: vec![1, 5], ..ok.clone() }, Err(code::INVALID_REQUEST)),
            (IsrChange { new_isr: vec![1, 1], ..ok.clone() }, Err(code::INVALID_REQUEST)),
            (IsrChange { new_isr: vec![2, 3], ..ok.clone() }, Err(code::INVALID_REQUEST)),
            (IsrChange { new_isr: vec![], ..ok.clone() }, Err(code::INVALID_REQUEST)),
            (IsrChange { new_isr: vec![1, 4], ..ok.clone() }, Err(code::INELIGIBLE_REPLICA)),
        ];
        for (req, want) in cases {
            let got = alter_partition(&i, &req).map_err(|e| e.code);
            let isr = got.map(|records| match records.as_slice() {
                [] => None,
                [MetadataRecord::PartitionChange { leader: None, isr: Some(isr), .. }] => Some(isr.clone()),
                other => panic!("{other:?}"),
            });
            assert_eq!(isr, want, "{req:?}");
        }
        i.apply(700, &MetadataBatch::new(alter_partition(&i, &ok).unwrap())).unwrap();
        let p = i.partition("t", 0).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
        // The old partition epoch is now stale; a fenced broker already in the ISR may stay in it.
        assert_eq!(alter_partition(&i, &ok).unwrap_err().code, code::INVALID_UPDATE_VERSION);
    }

    #[test]
    fn elect_leaders_answers_each_partition_with_kafkas_codes() {
        let mut i = image(&[(1, false), (2, false), (3, false), (4, true)]);
        with_topic(
            &mut i,
            "t",
            &[],
            &[
                (&[1, 2], &[1, 2], 2),
                (&[1, 2], &[1, 2], 1),
                (&[3, 2], &[2], 2),
                (&[4, 3], &[4], NO_LEADER),
                (&[4], &[4], NO_LEADER),
            ],
        );
        let elect = |i: &Image, partitions: Option<&[(String, i32)]>, kind: i8| {
            let (records, outcomes) = elect_leaders(i, partitions, kind).unwrap();
            let codes: Vec<(String, i32, i16)> =
                outcomes.into_iter().map(|(t, p, r)| (t, p, r.err().map_or(code::NONE, |e| e.code))).collect();
            (records, codes)
        };
        let asked: Vec<(String, i32)> = [("t", 0), ("t", 1), ("t", 2), ("t", 3), ("t", 4), ("t", 9), ("u", 0)]
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        let with = |codes: [i16; 7]| -> Vec<(String, i32, i16)> {
            asked.iter().zip(codes).map(|((t, p), c)| (t.clone(), *p, c)).collect()
        };
        let unknown = code::UNKNOWN_TOPIC_OR_PARTITION;
        let (records, codes) = elect(&i, Some(&asked), 0);
        assert_eq!(
            codes,
            with([
                code::NONE,
                code::ELECTION_NOT_NEEDED,
                code::PREFERRED_LEADER_NOT_AVAILABLE,
                code::PREFERRED_LEADER_NOT_AVAILABLE,
                code::PREFERRED_LEADER_NOT_AVAILABLE,
                unknown,
                unknown
            ])
        );
        assert_eq!(
            records,
            vec![MetadataRecord::PartitionChange {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                leader: Some(1),
                isr: None,
                replicas: None
            }]
        );
        let (records, codes) = elect(&i, Some(&asked), 1);
        assert_eq!(
            codes,
            with([
                code::ELECTION_NOT_NEEDED,
                code::ELECTION_NOT_NEEDED,
                code::ELECTION_NOT_NEEDED,
                code::NONE,
                code::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                unknown,
                unknown
            ])
        );
        i.apply(800, &MetadataBatch::new(records)).unwrap();
        assert_eq!(state(&i, "t", 3), (3, vec![3]));
        // All partitions: those that need no election are left out.
        let (_, codes) = elect(&i, None, 0);
        let partitions: Vec<i32> = codes.iter().map(|c| c.1).collect();
        assert_eq!(partitions, vec![0, 2, 3, 4]);
        assert_eq!(elect_leaders(&i, None, 2).unwrap_err().code, code::INVALID_REQUEST);
    }
}
