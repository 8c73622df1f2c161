//! The internal `__consumer_offsets` topic: the active controller creates it when a broker first needs it (Kafka
//! creates it on the first FindCoordinator), with the asking broker's `offsets.topic.num.partitions` and
//! `offsets.topic.replication.factor` (capped by the registered brokers, so a single node works with the default
//! of 3; refused while fewer brokers are live, as Kafka refuses). The coordinator of a group is the leader of
//! the group's partition.
//!
//! Placement is the usual rotation over the live brokers and racks, except for where it starts: the first
//! replica (the preferred leader, and the leader at epoch 0) of partition p is the broker that coordinated p's
//! groups before the topic existed, under the earlier releases' rule (rendezvous hashing over the brokers). That
//! broker holds the newest copy of p's groups in its local log, so an upgraded cluster keeps its committed
//! offsets: the epoch-0 leader adopts its local log, every other replica discards its own (see
//! [`crate::publisher::legacy_offsets_fate`]), so no replica mixes two histories.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::decisions::{partition_records, place_replicas, rack_alternated, Placeable, MAX_PARTITIONS};
use super::image::{Image, Refused};
use super::records::MetadataRecord;
use crate::errors::code;
use crate::group::OFFSETS_TOPIC;

/// The broker of `brokers` that coordinated `__consumer_offsets` partition `partition` before the topic was
/// replicated: the one with the highest rendezvous weight (None without brokers). The order of `brokers` does
/// not matter.
pub fn legacy_coordinator(partition: i32, brokers: &[i32]) -> Option<i32> {
    brokers.iter().copied().max_by_key(|b| weight(partition, *b))
}

/// A pseudo-random weight of (partition, broker), fixed forever (the earlier releases computed the same):
/// SplitMix64's finalizer, a bijection, so distinct pairs never tie.
fn weight(partition: i32, broker: i32) -> u64 {
    let mut z = (u64::from(partition as u32) << 32 | u64::from(broker as u32)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The records that create `__consumer_offsets` with id `id`; none if it exists.
pub fn create(
    image: &Image,
    id: Uuid,
    partitions: i32,
    replication_factor: i16,
    configs: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, Refused> {
    if image.topic(OFFSETS_TOPIC).is_some() {
        return Ok(vec![]);
    }
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(Refused::new(
            code::INVALID_PARTITIONS,
            format!("offsets.topic.num.partitions={partitions} is not in [1, {MAX_PARTITIONS}]"),
        ));
    }
    let live: Vec<Placeable> = image.live_brokers().map(|b| (b.id, b.rack.as_deref())).collect();
    let factor = (replication_factor.max(1) as usize).min(image.brokers.len());
    if factor == 0 || factor > live.len() {
        return Err(Refused::new(
            code::INVALID_REPLICATION_FACTOR,
            format!(
                "{OFFSETS_TOPIC} needs {factor} live broker(s) (offsets.topic.replication.factor={replication_factor}, \
                 capped by the {} registered), {} are",
                image.brokers.len(),
                live.len()
            ),
        ));
    }
    let brokers = rack_alternated(&live);
    let ids: Vec<i32> = brokers.iter().map(|b| b.0).collect();
    let n = brokers.len();
    // Followers are spaced as for other topics, from the random id.
    let shift = ((id.as_u128() >> 64) % n as u128) as usize;
    let assignment: Vec<Vec<i32>> = (0..partitions)
        .map(|p| {
            let owner = legacy_coordinator(p, &ids).expect("live brokers");
            let at = ids.iter().position(|b| *b == owner).expect("owner is live");
            // place_replicas puts partition p's first replica at brokers[(start + p) % n].
            let start = (at + n - p as usize % n) % n;
            place_replicas(&brokers, factor, p..p + 1, start, shift).remove(0)
        })
        .collect();
    let mut records = vec![MetadataRecord::Topic { id, name: OFFSETS_TOPIC.to_string(), configs: configs.clone() }];
    records.extend(partition_records(image, id, 0, assignment));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::MetadataBatch;

    fn owners(partitions: i32, brokers: &[i32]) -> Vec<i32> {
        (0..partitions).map(|p| legacy_coordinator(p, brokers).unwrap()).collect()
    }

    #[test]
    fn legacy_owners_are_the_earlier_releases() {
        assert_eq!(owners(50, &[7]), vec![7; 50]);
        assert_eq!(legacy_coordinator(0, &[]), None);
        assert_eq!(owners(50, &[0, 1, 2]), owners(50, &[2, 0, 1]), "order does not matter");
        // Fixed values: the earlier releases placed groups so; a change would lose an upgrade's offsets.
        assert_eq!(owners(6, &[0, 1, 2, 3]), vec![0, 0, 3, 1, 0, 3]);
    }

    /// Brokers (id, live, rack).
    fn image(brokers: &[(i32, bool, Option<&str>)]) -> Image {
        crate::controller::image::tests::with_brokers(brokers)
    }

    /// (replicas, isr, leader) of a partition.
    type Placed = (Vec<i32>, Vec<i32>, i32);

    /// Each partition created.
    fn created(i: &Image, partitions: i32, factor: i16) -> Result<Vec<Placed>, i16> {
        let records = create(i, Uuid::from_u128(99), partitions, factor, &BTreeMap::new()).map_err(|e| e.code)?;
        Ok(records
            .into_iter()
            .filter_map(|r| match r {
                MetadataRecord::Partition { replicas, isr, leader, .. } => Some((replicas, isr, leader)),
                _ => None,
            })
            .collect())
    }

    #[test]
    fn creation_caps_the_factor_by_registered_brokers_and_waits_for_live_ones() {
        let a = None;
        // (brokers, partitions, factor) -> replicas per partition, or the refusal's code
        type Case = (Vec<(i32, bool, Option<&'static str>)>, i32, i16, Result<usize, i16>);
        let cases: Vec<Case> = vec![
            // A single node: the default of 3 becomes 1.
            (vec![(0, true, a)], 4, 3, Ok(1)),
            (vec![(0, true, a), (1, true, a), (2, true, a)], 6, 3, Ok(3)),
            (vec![(0, true, a), (1, true, a), (2, true, a), (3, true, a)], 6, 3, Ok(3)),
            (vec![(0, true, a), (1, true, a)], 6, 1, Ok(1)),
            // Three registered, one fenced: 3 replicas cannot be placed yet.
            (vec![(0, true, a), (1, true, a), (2, false, a)], 6, 3, Err(code::INVALID_REPLICATION_FACTOR)),
            (vec![(0, false, a)], 6, 3, Err(code::INVALID_REPLICATION_FACTOR)),
            (vec![], 6, 3, Err(code::INVALID_REPLICATION_FACTOR)),
            (vec![(0, true, a)], 0, 3, Err(code::INVALID_PARTITIONS)),
        ];
        for (brokers, partitions, factor, want) in cases {
            let got = created(&image(&brokers), partitions, factor).map(|ps| {
                assert_eq!(ps.len(), partitions as usize);
                ps[0].0.len()
            });
            assert_eq!(got, want, "{brokers:?} {partitions} {factor}");
        }
    }

    #[test]
    fn each_partition_starts_on_its_legacy_coordinator_and_spreads_over_racks() {
        let brokers = [(0, true, Some("a")), (1, true, Some("a")), (2, true, Some("b")), (3, true, Some("b"))];
        let i = image(&brokers);
        let parts = created(&i, 20, 2).unwrap();
        for (p, (replicas, isr, leader)) in parts.iter().enumerate() {
            assert_eq!(replicas[0], legacy_coordinator(p as i32, &[0, 1, 2, 3]).unwrap(), "partition {p}");
            assert_eq!((leader, isr), (&replicas[0], replicas), "leads at epoch 0 with every replica in sync");
            let racks: Vec<_> = replicas.iter().map(|r| brokers[*r as usize].2).collect();
            assert_ne!(racks[0], racks[1], "partition {p}: {replicas:?} on one rack");
        }
        // Existing: nothing to do.
        let mut with = i.clone();
        with.apply(500, &MetadataBatch::new(create(&i, Uuid::from_u128(1), 20, 2, &BTreeMap::new()).unwrap())).unwrap();
        assert_eq!(create(&with, Uuid::from_u128(2), 20, 2, &BTreeMap::new()).unwrap(), vec![]);
    }
}
