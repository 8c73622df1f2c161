//! Partition assignment: which broker holds each partition. Without replication every partition has one
//! replica, its leader. New topics are spread round-robin like Kafka's rack-unaware assignment (partition p
//! on broker `(start + p) mod n`); new partitions of a topic continue the same rotation.

use uuid::Uuid;

/// Replica lists of partitions `first..first + count` over `brokers` (sorted ids), starting at `start`.
pub fn round_robin(brokers: &[i32], start: usize, first: i32, count: i32) -> Vec<Vec<i32>> {
    if brokers.is_empty() {
        return vec![];
    }
    (first..first + count).map(|p| vec![brokers[(start + p as usize) % brokers.len()]]).collect()
}

/// Where a new topic's rotation starts: taken from its (random) id, so that single-partition topics do not
/// all land on the same broker, and reproducible from stored metadata.
pub fn start_for_new(brokers: &[i32], id: Uuid) -> usize {
    (id.as_u128() % brokers.len().max(1) as u128) as usize
}

/// Where a grown topic's rotation continues: partition 0's broker is the start, as Kafka does.
pub fn start_for_existing(brokers: &[i32], existing: &[Vec<i32>]) -> usize {
    let first = existing.first().and_then(|r| r.first());
    first.and_then(|b| brokers.iter().position(|x| x == b)).unwrap_or(0)
}

/// Checks a requested replication factor: -1 (the default) or 1.
pub fn check_replication_factor(factor: i16) -> Result<(), String> {
    match factor {
        -1 | 1 => Ok(()),
        _ => Err(format!("replication factor {factor}: partitions are not replicated yet, each has exactly one replica")),
    }
}

/// Checks explicit replica lists (one per partition, in partition order) against the cluster's brokers.
pub fn check_explicit(brokers: &[i32], replicas: &[Vec<i32>]) -> Result<(), String> {
    for (p, r) in replicas.iter().enumerate() {
        match r.as_slice() {
            [b] if brokers.contains(b) => {}
            [b] => {
                return Err(format!("partition {p} assigned to broker {b}, which is not in the cluster (brokers {brokers:?})"))
            }
            _ => return Err(format!("partition {p} assigned to {r:?}: each partition needs exactly one replica")),
        }
    }
    Ok(())
}

/// Orders CreateTopics' `(partition, replicas)` assignments by partition, which must be exactly 0..n-1.
pub fn by_partition(mut assignments: Vec<(i32, Vec<i32>)>) -> Result<Vec<Vec<i32>>, String> {
    assignments.sort_by_key(|(p, _)| *p);
    for (expected, (p, _)) in assignments.iter().enumerate() {
        if *p != expected as i32 {
            return Err("assigned partitions must be 0..n-1, each once".into());
        }
    }
    Ok(assignments.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_spreads_and_continues() {
        let b = [0, 1, 2];
        assert_eq!(round_robin(&b, 0, 0, 4), vec![vec![0], vec![1], vec![2], vec![0]]);
        assert_eq!(round_robin(&b, 2, 0, 3), vec![vec![2], vec![0], vec![1]]);
        // Growing from 4 to 6 partitions continues where partition 3 left off.
        let existing = round_robin(&b, 1, 0, 4);
        let start = start_for_existing(&b, &existing);
        assert_eq!(start, 1);
        assert_eq!(round_robin(&b, start, 4, 2), vec![vec![2], vec![0]]);
        assert_eq!(round_robin(&[5], 0, 0, 2), vec![vec![5], vec![5]]);
        assert!(round_robin(&[], 0, 0, 2).is_empty());
    }

    #[test]
    fn new_topics_start_at_different_brokers() {
        let b = [0, 1, 2];
        let starts: std::collections::BTreeSet<usize> = (0..50).map(|_| start_for_new(&b, Uuid::new_v4())).collect();
        assert_eq!(starts.len(), 3);
        assert_eq!(start_for_new(&b, Uuid::from_u128(7)), 1);
        // A partition 0 on a broker that has left: start from the beginning.
        assert_eq!(start_for_existing(&b, &[vec![9]]), 0);
    }

    #[test]
    fn explicit_assignments_and_factors() {
        assert!(check_replication_factor(-1).is_ok() && check_replication_factor(1).is_ok());
        assert!(check_replication_factor(3).unwrap_err().contains("not replicated"));
        assert!(check_explicit(&[0, 1], &[vec![1], vec![0]]).is_ok());
        assert!(check_explicit(&[0, 1], &[vec![2]]).unwrap_err().contains("not in the cluster"));
        assert!(check_explicit(&[0, 1], &[vec![0, 1]]).unwrap_err().contains("exactly one"));
        assert!(check_explicit(&[0, 1], &[vec![]]).is_err());
        assert_eq!(by_partition(vec![(1, vec![0]), (0, vec![1])]).unwrap(), vec![vec![1], vec![0]]);
        assert!(by_partition(vec![(0, vec![0]), (2, vec![0])]).is_err());
        assert!(by_partition(vec![(0, vec![0]), (0, vec![1])]).is_err());
    }
}
