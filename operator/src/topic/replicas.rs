//! Replica assignments for a replication-factor change: existing replicas stay (the first, the
//! preferred leader, always), brokers are added or removed so that each broker ends up with about
//! the same number of this topic's replicas. Pure.

use std::collections::BTreeMap;

/// New replica lists for the partitions of `current` (partition -> replicas) whose replication
/// factor is not `factor`, over the live `brokers`. Partitions already at `factor` are left out.
/// `factor` must be between 1 and `brokers.len()` (the caller refuses other values).
pub fn change_factor(current: &BTreeMap<i32, Vec<i32>>, brokers: &[i32], factor: usize) -> BTreeMap<i32, Vec<i32>> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for replicas in current.values() {
        for r in replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    let mut plan = BTreeMap::new();
    for (partition, replicas) in current {
        let mut target = replicas.clone();
        while target.len() > factor.max(1) {
            // Not the preferred leader; replicas on gone brokers first, then the busiest broker,
            // the last in the list among equals.
            let drop = (1..target.len())
                .max_by_key(|i| (!load.contains_key(&target[*i]), load.get(&target[*i]).copied().unwrap_or(0), *i))
                .expect("more than one replica");
            if let Some(n) = load.get_mut(&target[drop]) {
                *n -= 1;
            }
            target.remove(drop);
        }
        while target.len() < factor {
            // The least busy broker without a replica; among equals, the one after the partition's
            // number in broker order, so equal loads do not all land on the lowest id.
            let start = usize::try_from(*partition).unwrap_or(0) % brokers.len().max(1);
            let pick = brokers
                .iter()
                .enumerate()
                .filter(|(_, b)| !target.contains(b))
                .min_by_key(|(i, b)| (load[*b], (i + brokers.len() - start) % brokers.len()))
                .map(|(_, b)| *b);
            let Some(b) = pick else { break };
            *load.get_mut(&b).expect("a live broker") += 1;
            target.push(b);
        }
        if target != *replicas {
            plan.insert(*partition, target);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(lists: &[&[i32]]) -> BTreeMap<i32, Vec<i32>> {
        lists.iter().enumerate().map(|(i, r)| (i as i32, r.to_vec())).collect()
    }

    fn counts(current: &BTreeMap<i32, Vec<i32>>, plan: &BTreeMap<i32, Vec<i32>>) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for (p, r) in current {
            for b in plan.get(p).unwrap_or(r) {
                *out.entry(*b).or_insert(0) += 1;
            }
        }
        out
    }

    /// (current replica lists, brokers, factor, expected plan as partition -> replicas)
    type Case<'a> = (Vec<&'a [i32]>, Vec<i32>, usize, Vec<(i32, Vec<i32>)>);

    #[test]
    fn plans_by_case() {
        let table: Vec<Case> = vec![
            // 1 -> 3 on 3 brokers: everyone gets the other two, leaders unchanged.
            (vec![&[0], &[1], &[2]], vec![0, 1, 2], 3, vec![(0, vec![0, 1, 2]), (1, vec![1, 0, 2]), (2, vec![2, 0, 1])]),
            // 1 -> 2 on 3 brokers: one more replica each, spread (each broker ends with two).
            (vec![&[0], &[1], &[2]], vec![0, 1, 2], 2, vec![(0, vec![0, 1]), (1, vec![1, 2]), (2, vec![2, 0])]),
            // Already there: nothing to do.
            (vec![&[0, 1], &[1, 2]], vec![0, 1, 2], 2, vec![]),
            // 3 -> 2: the leader stays, the busiest other replica goes (each broker ends with two).
            (vec![&[0, 1, 2], &[1, 2, 0], &[2, 0, 1]], vec![0, 1, 2], 2, vec![(0, vec![0, 1]), (1, vec![1, 2]), (2, vec![2, 0])]),
            // 3 -> 1: only the leaders remain.
            (vec![&[0, 1, 2], &[1, 2, 0]], vec![0, 1, 2], 1, vec![(0, vec![0]), (1, vec![1])]),
            // A replica on a broker that is gone goes first.
            (vec![&[0, 7, 1]], vec![0, 1, 2], 2, vec![(0, vec![0, 1])]),
            // New brokers (3, 4) with no replicas get the added ones.
            (
                vec![&[0, 1], &[1, 2], &[2, 0]],
                vec![0, 1, 2, 3, 4],
                3,
                vec![(0, vec![0, 1, 3]), (1, vec![1, 2, 4]), (2, vec![2, 0, 3])],
            ),
            // Partitions with mixed factors: each is brought to the target.
            (vec![&[0], &[1, 2, 0]], vec![0, 1, 2], 2, vec![(0, vec![0, 1]), (1, vec![1, 2])]),
        ];
        for (current, brokers, factor, want) in table {
            let current = parts(&current);
            let got = change_factor(&current, &brokers, factor);
            let want: BTreeMap<i32, Vec<i32>> = want.into_iter().collect();
            assert_eq!(got, want, "{current:?} on {brokers:?} to {factor}");
        }
    }

    #[test]
    fn loads_end_even_and_leaders_stay() {
        // 12 partitions, factor 1 -> 3 on 4 brokers: 36 replicas, 9 per broker.
        let current: BTreeMap<i32, Vec<i32>> = (0..12).map(|p| (p, vec![p % 4])).collect();
        let plan = change_factor(&current, &[0, 1, 2, 3], 3);
        assert_eq!(plan.len(), 12);
        for (p, r) in &plan {
            assert_eq!(r[0], current[p][0], "leader of {p} kept");
            let mut distinct = r.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{r:?}");
        }
        assert!(counts(&current, &plan).values().all(|n| *n == 9), "{:?}", counts(&current, &plan));
        // ... and back down to 2: 24 replicas, 6 per broker.
        let grown: BTreeMap<i32, Vec<i32>> = current.keys().map(|p| (*p, plan[p].clone())).collect();
        let shrunk = change_factor(&grown, &[0, 1, 2, 3], 2);
        assert!(counts(&grown, &shrunk).values().all(|n| *n == 6), "{:?}", counts(&grown, &shrunk));
        assert!(shrunk.iter().all(|(p, r)| r[0] == current[p][0]));
    }
}
