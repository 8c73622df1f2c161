//! Moving partition replicas when brokers come and go: a scale-up gives the new brokers a fair share of
//! every topic's replicas, a scale-down first drains the brokers it removes. Pure: plans over what the
//! cluster reported; the reconciler carries them out as throttled reassignments (KIP-455, KIP-73).
//!
//! The goals, in order (as Cruise Control's, in small): no replica outside the brokers that stay; each
//! topic's replicas spread evenly (counts within one); the brokers' replica counts within one; their bytes
//! within a tenth of the mean; preferred leaders spread. Replicas move in place in the replica list, so a
//! partition keeps its order, and only as many move as the goals need.

use std::collections::{BTreeMap, BTreeSet};

/// A partition as the cluster reports it; `bytes` is its size (the largest replica's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub bytes: u64,
}

/// A reassignment to make: partition, its replicas now, and the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

impl Move {
    /// Brokers that get a replica.
    pub fn adding(&self) -> impl Iterator<Item = i32> + '_ {
        self.to.iter().copied().filter(|b| !self.from.contains(b))
    }
}

/// A replica in the plan: (partition index, position in its replica list).
type Slot = (usize, usize);

#[derive(Clone, Copy, Debug, Default)]
struct Load {
    replicas: usize,
    leaders: usize,
    bytes: u64,
}

/// The plan being built: each partition's target, and the loads it gives the brokers that stay.
struct Work<'a> {
    parts: &'a [Placement],
    target: Vec<Vec<i32>>,
    load: BTreeMap<i32, Load>,
    per_topic: BTreeMap<(&'a str, i32), usize>,
}

impl<'a> Work<'a> {
    fn new(parts: &'a [Placement], brokers: &BTreeSet<i32>) -> Work<'a> {
        let mut work = Work {
            parts,
            target: parts.iter().map(|p| p.replicas.clone()).collect(),
            load: brokers.iter().map(|b| (*b, Load::default())).collect(),
            per_topic: BTreeMap::new(),
        };
        for (i, p) in parts.iter().enumerate() {
            for (slot, b) in p.replicas.iter().enumerate() {
                work.count(i, slot, *b, true);
            }
        }
        work
    }

    fn count(&mut self, i: usize, slot: usize, broker: i32, add: bool) {
        let part = &self.parts[i];
        let Some(load) = self.load.get_mut(&broker) else { return };
        let step = |n: usize| if add { n + 1 } else { n - 1 };
        load.replicas = step(load.replicas);
        load.bytes = if add { load.bytes + part.bytes } else { load.bytes - part.bytes };
        if slot == 0 {
            load.leaders = step(load.leaders);
        }
        let t = self.per_topic.entry((part.topic.as_str(), broker)).or_insert(0);
        *t = step(*t);
    }

    fn shift(&mut self, i: usize, slot: usize, to: i32) {
        let from = self.target[i][slot];
        self.count(i, slot, from, false);
        self.count(i, slot, to, true);
        self.target[i][slot] = to;
    }

    fn topic_load(&self, i: usize, broker: i32) -> usize {
        self.per_topic.get(&(self.parts[i].topic.as_str(), broker)).copied().unwrap_or(0)
    }

    /// Replicas on `from` that could go to `to`.
    fn movable(&self, from: i32, to: i32) -> impl Iterator<Item = Slot> + '_ {
        self.target.iter().enumerate().filter(move |(_, r)| !r.contains(&to)).filter_map(move |(i, r)| {
            let slot = r.iter().position(|b| *b == from)?;
            Some((i, slot))
        })
    }

    /// Among `candidates` for a move from `from` to `to`, the best: one that evens out preferred leaders,
    /// then the one that leaves the two brokers' bytes closest.
    fn pick(&self, from: i32, to: i32, candidates: impl Iterator<Item = Slot>) -> Option<Slot> {
        let (f, t) = (self.load[&from], self.load[&to]);
        candidates.min_by_key(|(i, slot)| {
            let leader_rank = match (*slot == 0, f.leaders > t.leaders + 1, f.leaders > t.leaders) {
                (true, true, _) => 0,
                (false, ..) | (true, false, true) => 1,
                (true, false, false) => 2,
            };
            let size = self.parts[*i].bytes;
            let gap = (f.bytes - size).abs_diff(t.bytes + size);
            (leader_rank, gap, *i)
        })
    }

    /// Makes the best move (by [`Work::pick`]) over the first pair of brokers, in `order`, that `allowed`
    /// admits and has a candidate; false if there is none.
    fn move_one(&mut self, pairs: Vec<(i32, i32)>, allowed: impl Fn(&Self, usize, i32, i32) -> bool) -> bool {
        for (from, to) in pairs {
            let candidates: Vec<Slot> = self.movable(from, to).filter(|(i, _)| allowed(self, *i, from, to)).collect();
            if let Some((i, slot)) = self.pick(from, to, candidates.into_iter()) {
                self.shift(i, slot, to);
                return true;
            }
        }
        false
    }

    /// Pairs (from, to) of brokers, the most loaded `from` and least loaded `to` first, by `key`.
    fn pairs<K: Ord>(&self, key: impl Fn(i32, &Load) -> K) -> Vec<(i32, i32)> {
        let mut by: Vec<(K, i32)> = self.load.iter().map(|(b, l)| (key(*b, l), *b)).collect();
        by.sort();
        let mut pairs = Vec::new();
        for (_, from) in by.iter().rev() {
            for (_, to) in &by {
                if from != to {
                    pairs.push((*from, *to));
                }
            }
        }
        pairs
    }
}

/// Targets that move every replica off brokers not in `brokers` and, with `balance`, even out the
/// replicas over `brokers`; an error when `brokers` cannot hold some partition's replication factor.
pub fn plan(parts: &[Placement], brokers: &BTreeSet<i32>, balance: bool) -> Result<Vec<Move>, String> {
    if let Some(p) = parts.iter().find(|p| p.replicas.len() > brokers.len()) {
        return Err(format!(
            "topic {} has {} replicas per partition, which {} brokers cannot hold",
            p.topic,
            p.replicas.len(),
            brokers.len()
        ));
    }
    let mut work = Work::new(parts, brokers);
    drain(&mut work, brokers);
    if balance {
        spread_topics(&mut work);
        spread_counts(&mut work);
        spread_bytes(&mut work);
    }
    Ok(parts
        .iter()
        .zip(work.target)
        .filter(|(p, to)| p.replicas != *to)
        .map(|(p, to)| Move { topic: p.topic.clone(), partition: p.partition, from: p.replicas.clone(), to })
        .collect())
}

/// Replaces each replica on a broker that goes by the broker of the fewest of the topic's replicas, then
/// the fewest replicas and bytes; the largest partitions are placed first.
fn drain(work: &mut Work, brokers: &BTreeSet<i32>) {
    let mut order: Vec<usize> = (0..work.parts.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(work.parts[*i].bytes), *i));
    for i in order {
        for slot in 0..work.target[i].len() {
            if brokers.contains(&work.target[i][slot]) {
                continue;
            }
            let to = brokers
                .iter()
                .filter(|b| !work.target[i].contains(b))
                .min_by_key(|b| (work.topic_load(i, **b), work.load[*b].replicas, work.load[*b].bytes, **b))
                .copied()
                .expect("checked: enough brokers for every partition");
            work.shift(i, slot, to);
        }
    }
}

/// Each topic's replica counts within one over the brokers.
fn spread_topics(work: &mut Work) {
    let topics: BTreeSet<&str> = work.parts.iter().map(|p| p.topic.as_str()).collect();
    for topic in topics {
        for _ in 0..work.parts.len() * 4 {
            let count = |w: &Work, b: i32| w.per_topic.get(&(topic, b)).copied().unwrap_or(0);
            let pairs = work.pairs(|b, l| (count(work, b), l.replicas, l.bytes));
            let pairs = pairs.into_iter().filter(|(f, t)| count(work, *f) > count(work, *t) + 1).collect();
            if !work.move_one(pairs, |w, i, _, _| w.parts[i].topic == topic) {
                break;
            }
        }
    }
}

/// The brokers' replica counts within one, without unevening any topic.
fn spread_counts(work: &mut Work) {
    for _ in 0..work.parts.len() * 4 {
        let pairs = work.pairs(|_, l| (l.replicas, l.bytes));
        let pairs = pairs.into_iter().filter(|(f, t)| work.load[f].replicas > work.load[t].replicas + 1).collect();
        if !work.move_one(pairs, |w, i, f, t| w.topic_load(i, f) > w.topic_load(i, t)) {
            break;
        }
    }
}

/// The brokers' bytes within a tenth of the mean: replicas move from a broker with more replicas (of
/// the cluster and of the topic) than the receiver, so counts stay even, or two replicas swap brokers
/// between the fullest and the emptiest; only moves that narrow the gap.
fn spread_bytes(work: &mut Work) {
    let total: u64 = work.load.values().map(|l| l.bytes).sum();
    let tolerance = (total / work.load.len().max(1) as u64 / 10).max(1);
    // Swaps look at every pair of replicas of two brokers: bounded, as a reconcile pass must be short.
    let mut swaps = 100;
    for _ in 0..work.parts.len() * 4 {
        let pairs = work.pairs(|_, l| l.bytes);
        let pairs: Vec<(i32, i32)> =
            pairs.into_iter().filter(|(f, t)| work.load[f].bytes > work.load[t].bytes + tolerance).collect();
        let Some(&(fullest, emptiest)) = pairs.first() else { break };
        let moved = work.move_one(pairs, |w, i, f, t| {
            let (from, to, size) = (w.load[&f], w.load[&t], w.parts[i].bytes);
            from.replicas > to.replicas && w.topic_load(i, f) > w.topic_load(i, t) && size > 0 && 2 * size < from.bytes - to.bytes
        });
        if moved {
            continue;
        }
        if swaps == 0 || !work.swap_one(fullest, emptiest) {
            break;
        }
        swaps -= 1;
    }
}

impl Work<'_> {
    /// Swaps a replica on `from` with a smaller one on `to` so their bytes get closest, keeping each
    /// topic even; false if no swap narrows the gap.
    fn swap_one(&mut self, from: i32, to: i32) -> bool {
        let gap = self.load[&from].bytes - self.load[&to].bytes;
        let big: Vec<Slot> = self.movable(from, to).collect();
        let small: Vec<Slot> = self.movable(to, from).collect();
        let mut best: Option<(u64, Slot, Slot)> = None;
        for &(i, si) in &big {
            for &(j, sj) in &small {
                let (a, b) = (self.parts[i].bytes, self.parts[j].bytes);
                if a <= b || a - b >= gap {
                    continue;
                }
                let same_topic = self.parts[i].topic == self.parts[j].topic;
                let even = same_topic
                    || (self.topic_load(i, from) > self.topic_load(i, to) && self.topic_load(j, to) > self.topic_load(j, from));
                let left = gap.abs_diff(2 * (a - b));
                if even && best.is_none_or(|(l, ..)| left < l) {
                    best = Some((left, (i, si), (j, sj)));
                }
            }
        }
        let Some((left, (i, si), (j, sj))) = best else { return false };
        if left >= gap {
            return false;
        }
        self.shift(i, si, to);
        self.shift(j, sj, from);
        true
    }
}

/// What the cluster reported for a rebalance pass.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub parts: Vec<Placement>,
    /// Partition reassignments in progress (any, not only the operator's).
    pub reassigning: usize,
    /// Registered, unfenced brokers.
    pub live: BTreeSet<i32>,
}

/// Why replicas move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// After a scale-up: even out over the brokers; `submitted` once this rebalance's moves were made (it
    /// then ends when they are done, rather than chasing sizes that keep changing).
    Balance { submitted: bool },
    /// Before a scale-down: take every replica off the brokers that go.
    Drain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing (more) to move.
    Done,
    /// Not now; why.
    Wait(String),
    /// Make these reassignments.
    Move(Vec<Move>),
    /// Impossible: why.
    Refuse(String),
}

/// The next step towards `goal` with `keep` the brokers that stay.
pub fn next(goal: &Goal, view: &View, keep: &BTreeSet<i32>) -> Next {
    let off: Vec<&Placement> = view.parts.iter().filter(|p| p.replicas.iter().any(|r| !keep.contains(r))).collect();
    if *goal == Goal::Drain {
        if let Err(why) = plan(&view.parts, keep, false) {
            return Next::Refuse(why);
        }
        if off.is_empty() {
            return Next::Done;
        }
    }
    if let Some(b) = keep.iter().find(|b| !view.live.contains(b)) {
        return Next::Wait(format!("broker {b} is not registered and unfenced yet"));
    }
    if view.reassigning > 0 {
        return Next::Wait(format!("{} partition reassignments in progress", view.reassigning));
    }
    if *goal == (Goal::Balance { submitted: true }) {
        return Next::Done;
    }
    match plan(&view.parts, keep, *goal != Goal::Drain) {
        Ok(moves) if moves.is_empty() => Next::Done,
        Ok(moves) => Next::Move(moves),
        Err(why) => Next::Refuse(why),
    }
}

/// The topic throttles (KIP-73) of `moves`, per topic: the replicas that may lead (all of the moving
/// partitions') and the ones being added, as Kafka's `partition:broker` lists.
pub fn throttled_replicas(moves: &[Move]) -> BTreeMap<&str, (String, String)> {
    let mut lists: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for m in moves {
        let (leaders, followers) = lists.entry(m.topic.as_str()).or_default();
        leaders.extend(m.from.iter().map(|b| format!("{}:{b}", m.partition)));
        followers.extend(m.adding().map(|b| format!("{}:{b}", m.partition)));
    }
    lists.into_iter().map(|(t, (l, f))| (t, (l.join(","), f.join(",")))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(topic: &str, partition: i32, replicas: &[i32], bytes: u64) -> Placement {
        Placement { topic: topic.into(), partition, replicas: replicas.to_vec(), bytes }
    }

    fn set(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    /// The replica lists after applying `moves`.
    fn after(parts: &[Placement], moves: &[Move]) -> Vec<Placement> {
        parts
            .iter()
            .map(|p| {
                let m = moves.iter().find(|m| m.topic == p.topic && m.partition == p.partition);
                Placement { replicas: m.map_or(p.replicas.clone(), |m| m.to.clone()), ..p.clone() }
            })
            .collect()
    }

    /// (replicas, preferred leaders, bytes) per broker of `brokers`.
    fn loads(parts: &[Placement], brokers: &[i32]) -> BTreeMap<i32, (usize, usize, u64)> {
        let mut out: BTreeMap<i32, (usize, usize, u64)> = brokers.iter().map(|b| (*b, (0, 0, 0))).collect();
        for p in parts {
            for (slot, b) in p.replicas.iter().enumerate() {
                let l = out.entry(*b).or_default();
                l.0 += 1;
                l.1 += usize::from(slot == 0);
                l.2 += p.bytes;
            }
        }
        out
    }

    fn topic_counts(parts: &[Placement], topic: &str, brokers: &[i32]) -> Vec<usize> {
        brokers.iter().map(|b| parts.iter().filter(|p| p.topic == topic && p.replicas.contains(b)).count()).collect()
    }

    fn spread(v: impl Iterator<Item = usize> + Clone) -> usize {
        v.clone().max().unwrap_or(0) - v.min().unwrap_or(0)
    }

    /// `n` partitions of `topic` with `rf` replicas, placed round-robin over `brokers` as Kafka would.
    fn topic(topic: &str, n: i32, rf: usize, brokers: &[i32], bytes: u64) -> Vec<Placement> {
        (0..n)
            .map(|p| {
                let replicas = (0..rf).map(|k| brokers[(p as usize + k) % brokers.len()]).collect::<Vec<_>>();
                part(topic, p, &replicas, bytes)
            })
            .collect()
    }

    #[test]
    fn a_new_broker_gets_a_fair_share_of_every_topic() {
        // (partitions of e2e, RF, old brokers, new brokers)
        for (n, rf, old, all) in [
            (6, 3, vec![0, 1, 2], vec![0, 1, 2, 3]),
            (50, 3, vec![0, 1, 2], vec![0, 1, 2, 3]),
            (12, 1, vec![0, 1], vec![0, 1, 2, 3, 4]),
            (8, 2, vec![0, 1, 2, 3], vec![0, 1, 2, 3, 4, 5]),
        ] {
            let mut parts = topic("e2e", n, rf, &old, 1000);
            parts.extend(topic("other", 3, 1, &old, 10));
            let moves = plan(&parts, &set(&all), true).unwrap();
            let done = after(&parts, &moves);
            let counts = topic_counts(&done, "e2e", &all);
            assert!(spread(counts.iter().copied()) <= 1, "{n}x{rf} over {all:?}: {counts:?}");
            let l = loads(&done, &all);
            assert!(spread(l.values().map(|l| l.0)) <= 1, "{l:?}");
            assert!(spread(l.values().map(|l| l.1)) <= 1, "preferred leaders spread too: {l:?}");
            // Only what the new brokers need moves: each move adds exactly one replica on a new broker.
            let new: Vec<i32> = all.iter().copied().filter(|b| !old.contains(b)).collect();
            let received: usize = new.iter().map(|b| l[b].0).sum();
            let added: usize = moves.iter().map(|m| m.adding().count()).sum();
            assert_eq!(added, received, "{moves:?}");
            for m in &moves {
                assert_eq!(m.to.len(), m.from.len());
                assert_eq!(m.to.iter().collect::<BTreeSet<_>>().len(), m.to.len(), "no broker twice: {m:?}");
            }
            assert_eq!(plan(&done, &set(&all), true).unwrap(), vec![], "balanced stays put");
        }
    }

    #[test]
    fn drains_the_brokers_that_go_onto_the_least_loaded() {
        let mut parts = topic("e2e", 6, 3, &[0, 1, 2, 3], 100);
        parts.push(part("big", 0, &[3], 10_000));
        let keep = set(&[0, 1, 2]);
        let moves = plan(&parts, &keep, false).unwrap();
        let done = after(&parts, &moves);
        assert!(done.iter().all(|p| p.replicas.iter().all(|r| keep.contains(r))), "{done:?}");
        assert!(moves.iter().all(|m| m.from.contains(&3)), "only partitions on broker 3 move: {moves:?}");
        assert_eq!(spread(topic_counts(&done, "e2e", &[0, 1, 2]).into_iter()), 0, "e2e: 6x3 over 3 brokers");
        let m = moves.iter().find(|m| m.topic == "big").unwrap();
        assert_eq!(m.to.len(), 1, "a partition keeps its replication factor");
        // Replaced in place: the others keep their slots.
        for m in &moves {
            for (slot, b) in m.from.iter().enumerate() {
                if *b != 3 {
                    assert_eq!(m.to[slot], *b, "{m:?}");
                }
            }
        }
    }

    #[test]
    fn bytes_even_out_once_counts_are_even() {
        // Broker 0 holds the big partitions; counts are even.
        let parts = vec![
            part("t", 0, &[0], 900),
            part("t", 1, &[0], 900),
            part("t", 2, &[1], 10),
            part("t", 3, &[1], 10),
            part("u", 0, &[0], 10),
            part("u", 1, &[1], 10),
        ];
        let brokers = set(&[0, 1]);
        let moves = plan(&parts, &brokers, true).unwrap();
        let l = loads(&after(&parts, &moves), &[0, 1]);
        assert!(l[&0].2.abs_diff(l[&1].2) < 900, "{l:?} after {moves:?}");
        assert!(spread(l.values().map(|l| l.0)) <= 1);
        // Nothing gained by moving: left alone.
        let even = vec![part("t", 0, &[0], 500), part("t", 1, &[1], 480)];
        assert_eq!(plan(&even, &brokers, true).unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_the_brokers_cannot_hold() {
        let parts = topic("e2e", 3, 3, &[0, 1, 2], 1);
        let err = plan(&parts, &set(&[0, 1]), false).unwrap_err();
        assert_eq!(err, "topic e2e has 3 replicas per partition, which 2 brokers cannot hold");
    }

    #[test]
    fn next_steps() {
        let keep = set(&[0, 1, 2]);
        let on_3 = topic("e2e", 6, 3, &[0, 1, 2, 3], 1);
        let off_3 = topic("e2e", 6, 3, &[0, 1, 2], 1);
        let view = |parts: &[Placement], reassigning, live: &[i32]| View { parts: parts.to_vec(), reassigning, live: set(live) };
        let balance = Goal::Balance { submitted: false };
        let submitted = Goal::Balance { submitted: true };
        let all4 = set(&[0, 1, 2, 3]);
        let two = set(&[0, 1]);
        // (goal, view, brokers that stay, expected: "done" | "wait: ..." | "move" | "refuse: ...")
        let table: Vec<(Goal, View, &BTreeSet<i32>, &str)> = vec![
            (Goal::Drain, view(&on_3, 0, &[0, 1, 2, 3]), &keep, "move"),
            (Goal::Drain, view(&on_3, 2, &[0, 1, 2, 3]), &keep, "wait: 2 partition reassignments in progress"),
            (Goal::Drain, view(&on_3, 0, &[0, 2, 3]), &keep, "wait: broker 1 is not registered and unfenced yet"),
            (Goal::Drain, view(&off_3, 1, &[0, 1, 2]), &keep, "done"),
            (
                Goal::Drain,
                view(&off_3, 0, &[0, 1]),
                &two,
                "refuse: topic e2e has 3 replicas per partition, which 2 brokers cannot hold",
            ),
            (balance.clone(), view(&off_3, 0, &[0, 1, 2]), &all4, "wait: broker 3 is not registered and unfenced yet"),
            (balance.clone(), view(&off_3, 0, &[0, 1, 2, 3]), &all4, "move"),
            (balance.clone(), view(&off_3, 1, &[0, 1, 2, 3]), &all4, "wait: 1 partition reassignments in progress"),
            (submitted.clone(), view(&off_3, 1, &[0, 1, 2, 3]), &all4, "wait: 1 partition reassignments in progress"),
            (submitted, view(&off_3, 0, &[0, 1, 2, 3]), &all4, "done"),
            (balance, view(&on_3, 0, &[0, 1, 2, 3]), &all4, "done"),
        ];
        for (goal, v, keep, want) in table {
            let got = match next(&goal, &v, keep) {
                Next::Done => "done".to_string(),
                Next::Wait(why) => format!("wait: {why}"),
                Next::Move(_) => "move".to_string(),
                Next::Refuse(why) => format!("refuse: {why}"),
            };
            assert_eq!(got, want, "{goal:?} {:?} live {:?}", v.reassigning, v.live);
        }
    }

    #[test]
    fn throttles_list_the_leaders_and_the_added_replicas() {
        let moves = vec![
            Move { topic: "a".into(), partition: 0, from: vec![0, 1], to: vec![0, 3] },
            Move { topic: "a".into(), partition: 2, from: vec![2, 0], to: vec![3, 0] },
            Move { topic: "b".into(), partition: 1, from: vec![1], to: vec![3] },
        ];
        let lists = throttled_replicas(&moves);
        assert_eq!(lists["a"], ("0:0,0:1,2:2,2:0".to_string(), "0:3,2:3".to_string()));
        assert_eq!(lists["b"], ("1:1".to_string(), "1:3".to_string()));
    }
}
