//! Which broker coordinates which groups. Kafka's rule: the coordinator of a group is the leader of the group's
//! `__consumer_offsets` partition. Here that log is not a cluster topic but kept by each broker for itself, so
//! the owner of each partition is computed from the membership, the same way on every broker: rendezvous
//! hashing (the broker with the highest weight for the partition). Unlike `partition mod brokers`, a membership
//! change moves only the partitions of brokers that left, or to brokers that joined; that matters because a
//! partition's state is not handed over when it moves (there is no replication to hand it over with).

/// The broker of `brokers` that coordinates the groups of `__consumer_offsets` partition `partition`; None
/// without brokers. The order of `brokers` does not matter.
pub fn owner(partition: i32, brokers: &[i32]) -> Option<i32> {
    brokers.iter().copied().max_by_key(|b| weight(partition, *b))
}

/// A pseudo-random weight of (partition, broker), fixed forever (every broker of every version must agree):
/// SplitMix64's finalizer, a bijection, so distinct pairs never tie.
fn weight(partition: i32, broker: i32) -> u64 {
    let mut z = (u64::from(partition as u32) << 32 | u64::from(broker as u32)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(partitions: i32, brokers: &[i32]) -> Vec<i32> {
        (0..partitions).map(|p| owner(p, brokers).unwrap()).collect()
    }

    #[test]
    fn a_single_broker_owns_everything_and_none_owns_nothing() {
        assert_eq!(owners(50, &[7]), vec![7; 50]);
        assert_eq!(owner(0, &[]), None);
    }

    #[test]
    fn every_broker_gets_a_share_whatever_the_order() {
        let a = owners(50, &[0, 1, 2]);
        assert_eq!(a, owners(50, &[2, 0, 1]));
        for b in 0..3 {
            let n = a.iter().filter(|o| **o == b).count();
            assert!((8..=25).contains(&n), "broker {b} owns {n} of 50: {a:?}");
        }
        // Fixed values: a change of the hash would split groups between brokers of different versions.
        assert_eq!(owners(6, &[0, 1, 2, 3]), vec![0, 0, 3, 1, 0, 3]);
    }

    #[test]
    fn membership_changes_move_only_what_they_must() {
        let three = owners(50, &[0, 1, 2]);
        // Broker 3 joins: partitions move only to it.
        let four = owners(50, &[0, 1, 2, 3]);
        for (before, after) in three.iter().zip(&four) {
            assert!(after == before || *after == 3, "{three:?} -> {four:?}");
        }
        assert!(four.contains(&3));
        // Broker 1 leaves: only its partitions move.
        let two = owners(50, &[0, 2]);
        for (before, after) in three.iter().zip(&two) {
            assert!(after == before || *before == 1, "{three:?} -> {two:?}");
        }
    }
}
