//! Partition reassignment (KIP-455) as pure decisions over the image, with the rules of Kafka's KRaft controller
//! (ReplicationControlManager, PartitionReassignmentReplicas, PartitionReassignmentRevert, PartitionChangeBuilder):
//!
//! 1. AlterPartitionReassignments records the target: the replicas become the target's followed by the ones it
//!    removes, and the partition remembers which it adds and which it removes. Brokers host the new replicas,
//!    which fetch from the leader like any follower.
//! 2. The leader's AlterPartition adds them to the ISR as they catch up. Once the ISR without the removed
//!    replicas holds every target replica, the same change completes the reassignment: replicas = the target
//!    (in its order), ISR without the removed ones, and a new leader if the current one is removed. Brokers no
//!    longer among the replicas delete their copies.
//! 3. A null target cancels: the added replicas leave the replicas and the ISR (refused when that would leave
//!    the ISR empty, unless unclean leader election is allowed).
//!
//! The state lives in the metadata log (PartitionChange's `replicas`), so a new active controller carries on
//! where the last one stopped.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strata_storage::LogConfig;
use uuid::Uuid;

use super::decisions::{check_replica_list, elect_leader, unclean_allowed};
use super::image::{Image, PartitionImage, Refused, NO_LEADER};
use super::records::{MetadataBatch, MetadataRecord, ReplicaChange};
use crate::errors::code;

/// One partition of an AlterPartitionReassignments request: its target replicas, or None to cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// A reassignment in progress, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The replica lists of a reassignment from `part` to `target` (Kafka's PartitionReassignmentReplicas): the
/// target first, so that elections meanwhile prefer replicas that stay, then the removed replicas. Replacing a
/// reassignment in progress starts from its whole replica list; a target replica it was still adding stays
/// listed as added (so a cancel removes it).
fn moving(part: &PartitionImage, target: &[i32]) -> ReplicaChange {
    let removing: BTreeSet<i32> = part.replicas.iter().copied().filter(|r| !target.contains(r)).collect();
    let adding: BTreeSet<i32> =
        target.iter().copied().filter(|r| !part.replicas.contains(r) || part.adding.contains(r)).collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    ReplicaChange { replicas, adding: adding.into_iter().collect(), removing: removing.into_iter().collect() }
}

/// Kafka's completion rule: a reassignment is done once the ISR without the removed replicas is not empty and
/// holds every remaining replica (so it is exactly them). The replicas it completes with: the target.
fn completed(change: &ReplicaChange, isr: &[i32]) -> Option<Vec<i32>> {
    if change.adding.is_empty() && change.removing.is_empty() {
        return None;
    }
    let staying = |r: &&i32| !change.removing.contains(r);
    let target: Vec<i32> = change.replicas.iter().filter(staying).copied().collect();
    (isr.iter().any(|r| staying(&r)) && target.iter().all(|r| isr.contains(r))).then_some(target)
}

/// The record that gives partition `partition` of `topic_id` (now `part`) the replica lists `change` and ISR
/// `isr`, as Kafka's PartitionChangeBuilder does for replica changes: the reassignment completes if the ISR
/// allows; the leader stays if it is still a live ISR member, else the first live ISR member in replica order
/// leads (with `unclean`, any live replica), else none; removing a replica bumps the leader epoch even when the
/// leader stays, so that the leader and its followers start over without it. None: nothing changes.
fn change_replicas(
    image: &Image,
    topic_id: Uuid,
    partition: i32,
    part: &PartitionImage,
    mut change: ReplicaChange,
    mut isr: Vec<i32>,
    unclean: bool,
) -> Option<MetadataRecord> {
    if let Some(target) = completed(&change, &isr) {
        isr.clone_from(&target);
        change = ReplicaChange { replicas: target, adding: vec![], removing: vec![] };
    }
    let live = |b: i32| image.is_live(b);
    let (leader, isr) = if isr.contains(&part.leader) && live(part.leader) {
        (part.leader, isr)
    } else {
        elect_leader(&change.replicas, &isr, live, unclean).unwrap_or((NO_LEADER, isr))
    };
    let bump = leader != part.leader || part.replicas.iter().any(|r| !change.replicas.contains(r));
    let replicas_change = (&change.replicas, &change.adding, &change.removing) != (&part.replicas, &part.adding, &part.removing);
    let isr_change = isr != part.isr;
    (bump || replicas_change || isr_change).then(|| MetadataRecord::PartitionChange {
        topic_id,
        partition,
        leader: bump.then_some(leader),
        isr: isr_change.then_some(isr),
        replicas: replicas_change.then_some(change),
    })
}

/// After a leader's AlterPartition: the record that completes the partition's reassignment with this new ISR,
/// if it does.
pub fn complete_with_isr(
    image: &Image,
    topic_id: Uuid,
    partition: i32,
    part: &PartitionImage,
    isr: &[i32],
) -> Option<MetadataRecord> {
    let current = ReplicaChange { replicas: part.replicas.clone(), adding: part.adding.clone(), removing: part.removing.clone() };
    completed(&current, isr)?;
    change_replicas(image, topic_id, partition, part, current, isr.to_vec(), false)
}

/// One partition's reassignment change: its record (None: nothing to change), or Kafka's error.
fn alter_one(image: &Image, item: &Reassign, defaults: &LogConfig) -> Result<Option<MetadataRecord>, Refused> {
    let name = format!("{}-{}", item.topic, item.partition);
    let unknown = || Refused::new(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no partition {name}"));
    let topic = image.topic(&item.topic).ok_or_else(unknown)?;
    let part = image.partition(&item.topic, item.partition).ok_or_else(unknown)?;
    let Some(target) = &item.target else {
        if !part.is_reassigning() {
            return Err(Refused::new(code::NO_REASSIGNMENT_IN_PROGRESS, format!("no reassignment of {name} is in progress")));
        }
        // Kafka's PartitionReassignmentRevert: back to the replicas without those being added.
        let adding = |r: &&i32| part.adding.contains(r);
        let replicas: Vec<i32> = part.replicas.iter().filter(|r| !adding(r)).copied().collect();
        let mut isr: Vec<i32> = part.isr.iter().filter(|r| !adding(r)).copied().collect();
        let unclean = unclean_allowed(image, topic, defaults);
        if isr.is_empty() {
            if !unclean {
                return Err(Refused::new(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("cancelling the reassignment of {name} would need an unclean leader election: only replicas it adds are in sync"),
                ));
            }
            isr = replicas.first().copied().into_iter().collect();
        }
        let change = ReplicaChange { replicas, adding: vec![], removing: vec![] };
        return Ok(change_replicas(image, topic.id, item.partition, part, change, isr, unclean));
    };
    check_replica_list(image, target).map_err(|why| Refused::new(code::INVALID_REPLICA_ASSIGNMENT, format!("{name}: {why}")))?;
    Ok(change_replicas(image, topic.id, item.partition, part, moving(part, target), part.isr.clone(), false))
}

/// Kafka's AlterPartitionReassignments: the records of every accepted change (to commit as one batch) and each
/// item's outcome, in order. Each item sees the changes of those before it (a partition named twice ends with
/// the second target).
pub fn alter(image: &Image, items: &[Reassign], defaults: &LogConfig) -> (Vec<MetadataRecord>, Vec<Result<(), Refused>>) {
    let mut scratch = image.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for item in items {
        let outcome = alter_one(&scratch, item, defaults).and_then(|record| {
            if let Some(record) = record {
                scratch.apply(0, &MetadataBatch::new(vec![record.clone()]))?;
                records.push(record);
            }
            Ok(())
        });
        if let Err(e) = &outcome {
            tracing::info!(topic = %item.topic, partition = item.partition, error = %e, "partition reassignment refused");
        }
        outcomes.push(outcome);
    }
    (records, outcomes)
}

/// Kafka's ListPartitionReassignments: the reassignments in progress, by topic, of every partition (`topics`
/// None) or of the partitions asked for; unknown topics and partitions are left out, as are topics without any.
pub fn ongoing(image: &Image, topics: Option<&[(String, Vec<i32>)]>) -> Vec<(String, Vec<Ongoing>)> {
    let wanted: Vec<(String, Vec<i32>)> = match topics {
        Some(t) => t.to_vec(),
        None => image.topics.values().map(|t| (t.name.clone(), (0..t.partition_count()).collect())).collect(),
    };
    wanted
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let found: Vec<Ongoing> = partitions
                .into_iter()
                .filter_map(|p| {
                    let part = image.partition(&topic, p).filter(|part| part.is_reassigning())?;
                    Some(Ongoing {
                        partition: p,
                        replicas: part.replicas.clone(),
                        adding: part.adding.clone(),
                        removing: part.removing.clone(),
                    })
                })
                .collect();
            (!found.is_empty()).then_some((topic, found))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decisions::tests::{image, with_topic};
    use crate::controller::decisions::{alter_partition, create_partitions, IsrChange};

    /// (replicas, adding, removing, isr, leader, leader epoch) of t-0.
    type State = (Vec<i32>, Vec<i32>, Vec<i32>, Vec<i32>, i32, i32);

    fn state(i: &Image) -> State {
        let p = i.partition("t", 0).unwrap();
        (p.replicas.clone(), p.adding.clone(), p.removing.clone(), p.isr.clone(), p.leader, p.leader_epoch)
    }

    fn reassign(target: Option<&[i32]>) -> Reassign {
        Reassign { topic: "t".into(), partition: 0, target: target.map(<[i32]>::to_vec) }
    }

    /// Applies the reassignment of t-0 to `target` and returns its outcome's code.
    fn apply(i: &mut Image, target: Option<&[i32]>) -> i16 {
        let (records, outcomes) = alter(i, &[reassign(target)], &LogConfig::default());
        i.apply(900, &MetadataBatch::new(records)).unwrap();
        outcomes[0].as_ref().err().map_or(code::NONE, |e| e.code)
    }

    /// The leader of t-0 asks for `isr`.
    fn expand(i: &mut Image, isr: &[i32]) {
        let p = i.partition("t", 0).unwrap().clone();
        let req = IsrChange {
            broker_id: p.leader,
            broker_epoch: i.brokers[&p.leader].epoch,
            topic_id: i.topic("t").unwrap().id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr.to_vec(),
        };
        let records = alter_partition(i, &req).unwrap();
        i.apply(901, &MetadataBatch::new(records)).unwrap();
    }

    fn s(replicas: &[i32], adding: &[i32], removing: &[i32], isr: &[i32], leader: i32, epoch: i32) -> State {
        (replicas.to_vec(), adding.to_vec(), removing.to_vec(), isr.to_vec(), leader, epoch)
    }

    enum Step {
        Reassign(&'static [i32]),
        Cancel,
        Isr(&'static [i32]),
    }

    #[test]
    fn reassignments_start_complete_on_the_isr_and_cancel() {
        use Step::*;
        // Brokers 0..=4 live, 5 fenced. Each case: t-0's (replicas, isr, leader) at epoch 0, the steps, and the
        // state after each.
        type Case = (&'static [i32], &'static [i32], i32, Vec<(Step, State)>);
        let cases: Vec<Case> = vec![
            // Moving one replica: the leader is removed, so the first target replica in the ISR takes over.
            (
                &[0, 1, 2],
                &[0, 1, 2],
                0,
                vec![
                    (Reassign(&[1, 2, 3]), s(&[1, 2, 3, 0], &[3], &[0], &[0, 1, 2], 0, 0)),
                    (Isr(&[0, 1, 2, 3]), s(&[1, 2, 3], &[], &[], &[1, 2, 3], 1, 1)),
                ],
            ),
            // The leader stays; removing broker 2 still bumps its epoch.
            (
                &[0, 1, 2],
                &[0, 1, 2],
                0,
                vec![
                    (Reassign(&[0, 1, 3]), s(&[0, 1, 3, 2], &[3], &[2], &[0, 1, 2], 0, 0)),
                    (Isr(&[0, 1, 2, 3]), s(&[0, 1, 3], &[], &[], &[0, 1, 3], 0, 1)),
                ],
            ),
            // Every added replica must be in sync: one of two is not enough.
            (
                &[0, 1],
                &[0, 1],
                1,
                vec![
                    (Reassign(&[2, 3]), s(&[2, 3, 0, 1], &[2, 3], &[0, 1], &[0, 1], 1, 0)),
                    (Isr(&[0, 1, 2]), s(&[2, 3, 0, 1], &[2, 3], &[0, 1], &[2, 0, 1], 1, 0)),
                    (Isr(&[0, 1, 2, 3]), s(&[2, 3], &[], &[], &[2, 3], 2, 1)),
                ],
            ),
            // Replication factor up (KIP-455 allows it), then down at once: the ISR already holds the target.
            (
                &[0],
                &[0],
                0,
                vec![
                    (Reassign(&[0, 1, 2]), s(&[0, 1, 2], &[1, 2], &[], &[0], 0, 0)),
                    (Isr(&[0, 1, 2]), s(&[0, 1, 2], &[], &[], &[0, 1, 2], 0, 0)),
                    (Reassign(&[2, 1]), s(&[2, 1], &[], &[], &[2, 1], 2, 1)),
                ],
            ),
            // Reordering needs no data: done at once, the leader stays (it is in the ISR) and no epoch bump.
            (&[0, 1, 2], &[0, 1, 2], 0, vec![(Reassign(&[2, 1, 0]), s(&[2, 1, 0], &[], &[], &[0, 1, 2], 0, 0))]),
            // The same replicas: nothing to record.
            (&[0, 1], &[0, 1], 0, vec![(Reassign(&[0, 1]), s(&[0, 1], &[], &[], &[0, 1], 0, 0))]),
            // Cancelling: back to the original replicas (target order first, as Kafka); the added replica leaves.
            (
                &[0, 1, 2],
                &[0, 1, 2],
                0,
                vec![
                    (Reassign(&[1, 2, 3]), s(&[1, 2, 3, 0], &[3], &[0], &[0, 1, 2], 0, 0)),
                    (Cancel, s(&[1, 2, 0], &[], &[], &[0, 1, 2], 0, 1)),
                ],
            ),
            // An added replica already in sync leaves the ISR too.
            (
                &[0, 1],
                &[0, 1],
                0,
                vec![
                    (Reassign(&[1, 2, 3]), s(&[1, 2, 3, 0], &[2, 3], &[0], &[0, 1], 0, 0)),
                    (Isr(&[0, 1, 2]), s(&[1, 2, 3, 0], &[2, 3], &[0], &[1, 2, 0], 0, 0)),
                    (Cancel, s(&[1, 0], &[], &[], &[1, 0], 0, 1)),
                ],
            ),
            // A new target replaces the one in progress; a replica still being added stays listed as added.
            (
                &[0, 1, 2],
                &[0, 1, 2],
                0,
                vec![
                    (Reassign(&[1, 2, 3]), s(&[1, 2, 3, 0], &[3], &[0], &[0, 1, 2], 0, 0)),
                    (Reassign(&[3, 4, 1]), s(&[3, 4, 1, 0, 2], &[3, 4], &[0, 2], &[0, 1, 2], 0, 0)),
                    (Isr(&[0, 1, 2, 3, 4]), s(&[3, 4, 1], &[], &[], &[3, 4, 1], 3, 1)),
                ],
            ),
            // A fenced target broker (registered) is accepted, as in Kafka; it cannot join the ISR meanwhile.
            (&[0, 1], &[0, 1], 0, vec![(Reassign(&[0, 5]), s(&[0, 5, 1], &[5], &[1], &[0, 1], 0, 0))]),
        ];
        for (n, (replicas, isr, leader, steps)) in cases.into_iter().enumerate() {
            let mut i = image(&[(0, false), (1, false), (2, false), (3, false), (4, false), (5, true)]);
            with_topic(&mut i, "t", &[], &[(replicas, isr, leader)]);
            for (k, (step, want)) in steps.into_iter().enumerate() {
                match step {
                    Reassign(target) => assert_eq!(apply(&mut i, Some(target)), code::NONE, "case {n} step {k}"),
                    Cancel => assert_eq!(apply(&mut i, None), code::NONE, "case {n} step {k}"),
                    Isr(isr) => expand(&mut i, isr),
                }
                assert_eq!(state(&i), want, "case {n} step {k}");
            }
        }
    }

    #[test]
    fn a_cancel_that_leaves_only_added_replicas_in_sync_needs_unclean_election() {
        for unclean in [false, true] {
            let mut i = image(&[(0, false), (1, false)]);
            let configs: &[(&str, &str)] = if unclean { &[("unclean.leader.election.enable", "true")] } else { &[] };
            with_topic(&mut i, "t", configs, &[(&[0], &[0], 0)]);
            assert_eq!(apply(&mut i, Some(&[1])), code::NONE);
            // Broker 0 fell out of the ISR after broker 1 joined it and took over.
            let id = i.topic("t").unwrap().id;
            let lost = MetadataRecord::PartitionChange {
                topic_id: id,
                partition: 0,
                leader: Some(1),
                isr: Some(vec![1]),
                replicas: None,
            };
            i.apply(902, &MetadataBatch::new(vec![lost])).unwrap();
            assert_eq!(state(&i), s(&[1, 0], &[1], &[0], &[1], 1, 1));
            if unclean {
                assert_eq!(apply(&mut i, None), code::NONE);
                assert_eq!(state(&i), s(&[0], &[], &[], &[0], 0, 2));
            } else {
                assert_eq!(apply(&mut i, None), code::INVALID_REPLICA_ASSIGNMENT);
                assert!(i.partition("t", 0).unwrap().is_reassigning());
            }
        }
    }

    #[test]
    fn requests_are_validated_with_kafkas_codes() {
        let mut i = image(&[(0, false), (1, false), (2, true)]);
        with_topic(&mut i, "t", &[], &[(&[0, 1], &[0, 1], 0)]);
        let item = |topic: &str, partition: i32, target: Option<&[i32]>| Reassign {
            topic: topic.into(),
            partition,
            target: target.map(<[i32]>::to_vec),
        };
        let unknown = code::UNKNOWN_TOPIC_OR_PARTITION;
        let invalid = code::INVALID_REPLICA_ASSIGNMENT;
        let cases: Vec<(Reassign, i16)> = vec![
            (item("u", 0, Some(&[0])), unknown),
            (item("t", 1, Some(&[0])), unknown),
            (item("t", -1, Some(&[0])), unknown),
            (item("t", 0, Some(&[])), invalid),
            (item("t", 0, Some(&[0, 1, 0])), invalid),
            (item("t", 0, Some(&[0, 7])), invalid),
            (item("t", 0, None), code::NO_REASSIGNMENT_IN_PROGRESS),
            (item("u", 0, None), unknown),
        ];
        for (req, want) in cases {
            let (records, outcomes) = alter(&i, std::slice::from_ref(&req), &LogConfig::default());
            assert_eq!(outcomes[0].as_ref().unwrap_err().code, want, "{req:?}");
            assert!(records.is_empty());
        }
        // One request: refusals do not stop the others, and a partition named twice ends at the second target.
        let (records, outcomes) = alter(
            &i,
            &[item("t", 0, Some(&[1, 2])), item("t", 0, Some(&[])), item("t", 0, Some(&[2, 0]))],
            &LogConfig::default(),
        );
        let codes: Vec<i16> = outcomes.iter().map(|o| o.as_ref().err().map_or(code::NONE, |e| e.code)).collect();
        assert_eq!(codes, vec![code::NONE, invalid, code::NONE]);
        i.apply(903, &MetadataBatch::new(records)).unwrap();
        assert_eq!(state(&i), s(&[2, 0, 1], &[2], &[1], &[0, 1], 0, 0));
    }

    #[test]
    fn new_partitions_take_the_replication_factor_of_the_target() {
        let mut i = image(&[(0, false), (1, false), (2, false), (3, false)]);
        with_topic(&mut i, "t", &[], &[(&[0, 1, 2], &[0, 1, 2], 0)]);
        assert_eq!(apply(&mut i, Some(&[1, 2, 3])), code::NONE);
        let records = create_partitions(&i, "t", 2, None).unwrap();
        assert!(matches!(&records[..], [MetadataRecord::Partition { replicas, .. }] if replicas.len() == 3), "{records:?}");
    }

    #[test]
    fn listing_shows_reassignments_in_progress_only() {
        let mut i = image(&[(0, false), (1, false), (2, false)]);
        with_topic(&mut i, "t", &[], &[(&[0], &[0], 0), (&[1], &[1], 1), (&[2], &[2], 2)]);
        let items: Vec<Reassign> = [(0, vec![1]), (2, vec![2, 0])]
            .into_iter()
            .map(|(partition, target)| Reassign { topic: "t".into(), partition, target: Some(target) })
            .collect();
        let (records, _) = alter(&i, &items, &LogConfig::default());
        i.apply(904, &MetadataBatch::new(records)).unwrap();
        let ongoing_of = |p: i32, replicas: &[i32], adding: &[i32], removing: &[i32]| Ongoing {
            partition: p,
            replicas: replicas.to_vec(),
            adding: adding.to_vec(),
            removing: removing.to_vec(),
        };
        let all = vec![("t".to_string(), vec![ongoing_of(0, &[1, 0], &[1], &[0]), ongoing_of(2, &[2, 0], &[0], &[])])];
        assert_eq!(ongoing(&i, None), all);
        let asked = [("t".to_string(), vec![1, 2, 9]), ("nope".to_string(), vec![0])];
        assert_eq!(ongoing(&i, Some(&asked)), vec![("t".to_string(), vec![ongoing_of(2, &[2, 0], &[0], &[])])]);
        assert!(ongoing(&i, Some(&[("t".to_string(), vec![1])])).is_empty());
    }
}
