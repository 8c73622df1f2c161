//! Whether restarting a serving broker keeps the cluster available, following Strimzi's
//! KafkaRoller: no partition may drop below `min.insync.replicas` (acks=all producers would get
//! NOT_ENOUGH_REPLICAS), the controller quorum must keep a caught-up majority, and a restarted
//! broker must be back in service (registered, unfenced, nothing under-replicated) before the
//! next one goes. Pure: the reconciler asks the brokers and passes the answers in.

use std::time::Duration;

/// One partition as the cluster reports it, with its effective `min.insync.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionIsr {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_insync: i32,
}

impl PartitionIsr {
    fn name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// Why restarting `broker` would leave `p` refusing acks=all writes, if it would:
/// its ISR is already below min.insync and `broker` holds a replica (it would stay there longer),
/// or its ISR is exactly min.insync and `broker` is in it. A partition with no more replicas than
/// min.insync never blocks: no restart of any replica can keep it writable, so waiting would
/// never end (Strimzi skips these too).
pub fn would_block(broker: i32, p: &PartitionIsr) -> Option<String> {
    let (rf, isr, min) = (p.replicas.len(), p.isr.len(), usize::try_from(p.min_insync).unwrap_or(0));
    if rf <= min {
        return None;
    }
    if isr < min && p.replicas.contains(&broker) {
        return Some(format!("{} has {isr} in-sync replicas, below min.insync.replicas={min}", p.name()));
    }
    if isr == min && p.isr.contains(&broker) {
        return Some(format!("{} has {isr} in-sync replicas including broker {broker}, min.insync.replicas={min}", p.name()));
    }
    None
}

/// The reasons of every partition that blocks restarting `broker` (at most `limit` listed, then a
/// count of the rest, so a status message stays short).
pub fn blocking_partitions(broker: i32, partitions: &[PartitionIsr], limit: usize) -> Vec<String> {
    let all: Vec<String> = partitions.iter().filter_map(|p| would_block(broker, p)).collect();
    shorten(all, limit)
}

fn shorten(mut items: Vec<String>, limit: usize) -> Vec<String> {
    if items.len() > limit {
        let more = items.len() - limit;
        items.truncate(limit);
        items.push(format!("and {more} more"));
    }
    items
}

/// Partitions named in a status message before the rest are counted.
const LISTED: usize = 5;

/// Whether serving broker `broker` may be restarted now (`quorum` None: the brokers run no
/// metadata quorum); the error says what blocks it.
pub fn may_restart(broker: i32, partitions: &[PartitionIsr], quorum: Option<&QuorumProgress>) -> Result<(), String> {
    let blocking = blocking_partitions(broker, partitions, LISTED);
    if !blocking.is_empty() {
        return Err(format!(
            "restarting broker {broker} would leave partitions without enough in-sync replicas for acks=all: {}",
            blocking.join("; ")
        ));
    }
    quorum.map_or(Ok(()), |q| quorum_allows(broker, q))
}

/// The metadata quorum as DescribeQuorum reports it: the leader, its high watermark, and each
/// voter's log end offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumProgress {
    pub leader: i32,
    pub high_watermark: i64,
    pub voters: Vec<(i32, i64)>,
}

/// Whether voter `broker` may be restarted: the other voters that have everything committed (log
/// end offset at or past the leader's high watermark; the leader counts itself) must still be a
/// majority of all voters. A quorum of fewer than three voters cannot lose any voter, so waiting
/// would never make it safe: its restarts go ahead (as before this check). Non-voters always may.
pub fn quorum_allows(broker: i32, q: &QuorumProgress) -> Result<(), String> {
    let total = q.voters.len();
    if total < 3 || !q.voters.iter().any(|(id, _)| *id == broker) {
        return Ok(());
    }
    if !q.voters.iter().any(|(id, _)| *id == q.leader) {
        return Err("the controller quorum has no leader".to_string());
    }
    let caught_up: Vec<i32> = q
        .voters
        .iter()
        .filter(|(id, leo)| *id != broker && (*id == q.leader || *leo >= q.high_watermark))
        .map(|(id, _)| *id)
        .collect();
    if caught_up.len() > total / 2 {
        return Ok(());
    }
    let lagging: Vec<String> = q
        .voters
        .iter()
        .filter(|(id, _)| *id != broker && !caught_up.contains(id))
        .map(|(id, leo)| format!("{id} (log end {leo})"))
        .collect();
    Err(format!(
        "restarting controller voter {broker} would leave {} of {total} voters caught up with the quorum's high watermark {} \
         (lagging: {})",
        caught_up.len(),
        q.high_watermark,
        lagging.join(", ")
    ))
}

/// The voter to restart last: the active controller of a quorum of several voters (restarting it
/// forces an election, so once per roll). A one-voter quorum elects nobody else either way.
pub fn deferred_leader(q: &QuorumProgress) -> Option<i32> {
    (q.voters.len() > 1 && q.voters.iter().any(|(id, _)| *id == q.leader)).then_some(q.leader)
}

/// Orders voters so that the active controller goes last (one leader election per roll): among
/// `candidates` (broker id and pod, highest ordinal first), the first that is not `leader`, else
/// `leader`.
pub fn pick_candidate<T>(candidates: &[(i32, T)], leader: Option<i32>) -> Option<&(i32, T)> {
    candidates.iter().find(|(c, _)| Some(*c) != leader).or_else(|| candidates.first())
}

/// A restarted broker as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejoin {
    /// None: not registered; Some(fenced).
    pub fenced: Option<bool>,
    /// Partitions whose ISR is smaller than their replica set.
    pub under_replicated: Vec<String>,
}

/// Why `broker` is not back in service yet, if it is not.
pub fn not_back(broker: i32, r: &Rejoin) -> Option<String> {
    match r.fenced {
        None => Some(format!("broker {broker} is not registered with the controller")),
        Some(true) => Some(format!("broker {broker} is fenced (not caught up with the metadata log)")),
        Some(false) if !r.under_replicated.is_empty() => Some(format!(
            "{} partitions are under-replicated: {}",
            r.under_replicated.len(),
            shorten(r.under_replicated.clone(), 3).join(", ")
        )),
        Some(false) => None,
    }
}

/// What to do about the last restarted broker before restarting another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRestart {
    /// Back in service: the roll may go on.
    Back,
    /// Still catching up, within the bound.
    Waiting(String),
    /// Past the bound: the roll stops here (and resumes by itself if the broker recovers).
    Stuck(String),
}

/// `why_not`: why the broker is not back ([`not_back`], or why it could not be asked); `since`: how
/// long ago it was restarted (its pod created); `bound`: how long it may take.
pub fn after_restart(broker: i32, why_not: Option<String>, since: Duration, bound: Duration) -> AfterRestart {
    match why_not {
        None => AfterRestart::Back,
        Some(why) if since <= bound => AfterRestart::Waiting(format!("waiting for restarted broker {broker}: {why}")),
        // No elapsed time in the message: it lands in the status and events, which must not
        // change on every pass.
        Some(why) => AfterRestart::Stuck(format!(
            "rolling restart stopped: broker {broker} is not back in service within {}s of its restart: {why}",
            bound.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(replicas: &[i32], isr: &[i32], min: i32) -> PartitionIsr {
        PartitionIsr { topic: "t".into(), partition: 0, replicas: replicas.to_vec(), isr: isr.to_vec(), min_insync: min }
    }

    /// Replicas, ISR, min.insync, broker to restart, whether it blocks.
    type Case = (&'static [i32], &'static [i32], i32, i32, bool);

    #[test]
    fn partition_rules_follow_strimzi() {
        let table: &[Case] = &[
            (&[0, 1, 2], &[0, 1, 2], 2, 1, false), // one spare in-sync replica
            (&[0, 1, 2], &[0, 1], 2, 1, true),     // ISR == min and the broker is in it
            (&[0, 1, 2], &[0, 1], 2, 2, false),    // ISR == min, the broker is out of it already
            (&[0, 1, 2], &[0], 2, 2, true),        // already below min, the broker has a replica
            (&[0, 1, 2], &[0], 2, 0, true),
            (&[0, 1, 2], &[0], 2, 3, false),       // no replica on the broker
            (&[0, 1, 2], &[0, 1, 2], 3, 0, false), // RF == min: can never be kept writable
            (&[0], &[0], 1, 0, false),             // RF 1
            (&[0], &[0], 2, 0, false),             // RF below min
            (&[0, 1], &[0, 1], 1, 0, false),
            (&[0, 1], &[0], 1, 0, true),
            (&[0, 1, 2, 3], &[0, 1, 2], 3, 1, true),
            (&[0, 1, 2, 3], &[0, 1, 2, 3], 3, 1, false),
            (&[0, 1, 2], &[], 2, 1, true),      // offline: nothing in sync
            (&[0, 1, 2], &[0, 1], 0, 1, false), // min.insync 0 (treated as none)
        ];
        for (replicas, isr, min, broker, blocks) in table {
            let got = would_block(*broker, &p(replicas, isr, *min));
            assert_eq!(got.is_some(), *blocks, "replicas {replicas:?} isr {isr:?} min {min} broker {broker}: {got:?}");
        }
        let why = would_block(1, &p(&[0, 1, 2], &[0, 1], 2)).unwrap();
        assert_eq!(why, "t-0 has 2 in-sync replicas including broker 1, min.insync.replicas=2");
    }

    #[test]
    fn blocking_list_is_bounded() {
        let parts: Vec<PartitionIsr> = (0..6).map(|i| PartitionIsr { partition: i, ..p(&[0, 1, 2], &[0, 1], 2) }).collect();
        let got = blocking_partitions(0, &parts, 2);
        assert_eq!(got.len(), 3);
        assert!(got[0].starts_with("t-0 ") && got[1].starts_with("t-1 "), "{got:?}");
        assert_eq!(got[2], "and 4 more");
        assert!(blocking_partitions(2, &parts, 2).is_empty());
    }

    #[test]
    fn quorum_keeps_a_caught_up_majority() {
        let q = |leader, voters: &[(i32, i64)]| QuorumProgress { leader, high_watermark: 100, voters: voters.to_vec() };
        // (quorum, voter to restart) -> allowed
        let table = [
            (q(0, &[(0, 100), (1, 100), (2, 100)]), 1, true),
            (q(0, &[(0, 100), (1, 100), (2, 100)]), 0, true), // the leader may go once the others are caught up
            (q(0, &[(0, 100), (1, 100), (2, 90)]), 1, false), // 2 lags: only the leader would be left
            (q(0, &[(0, 100), (1, 100), (2, 90)]), 2, true),  // the lagging one itself
            (q(0, &[(0, 100), (1, 120), (2, 90)]), 2, true),
            (q(0, &[(0, 100), (1, 90), (2, 90)]), 1, false),
            (q(-1, &[(0, 100), (1, 100), (2, 100)]), 1, false), // no leader
            (q(0, &[(0, 100), (1, 100), (2, 100), (3, 50), (4, 100)]), 4, true),
            (q(0, &[(0, 100), (1, 100), (2, 60), (3, 50), (4, 100)]), 4, false),
            (q(0, &[(0, 100), (1, 10)]), 0, true), // two voters: no restart keeps a majority
            (q(0, &[(0, 100)]), 0, true),          // one voter
            (q(0, &[(0, 100), (1, 10), (2, 10)]), 5, true), // not a voter
        ];
        for (quorum, broker, allowed) in table {
            let got = quorum_allows(broker, &quorum);
            assert_eq!(got.is_ok(), allowed, "{quorum:?} restart {broker}: {got:?}");
        }
        let err = quorum_allows(1, &q(0, &[(0, 100), (1, 100), (2, 90)])).unwrap_err();
        assert!(err.contains("1 of 3 voters") && err.contains("2 (log end 90)"), "{err}");
    }

    #[test]
    fn partitions_are_checked_before_the_quorum() {
        let healthy = QuorumProgress { leader: 0, high_watermark: 10, voters: vec![(0, 10), (1, 10), (2, 10)] };
        let lagging = QuorumProgress { leader: 0, high_watermark: 10, voters: vec![(0, 10), (1, 10), (2, 5)] };
        let tight = [p(&[0, 1, 2], &[0, 1], 2)];
        let spare = [p(&[0, 1, 2], &[0, 1, 2], 2)];
        assert_eq!(may_restart(1, &spare, Some(&healthy)), Ok(()));
        assert_eq!(may_restart(1, &spare, None), Ok(()));
        let err = may_restart(1, &tight, Some(&healthy)).unwrap_err();
        assert!(err.starts_with("restarting broker 1 would leave partitions") && err.contains("t-0 has 2"), "{err}");
        assert!(may_restart(1, &tight, Some(&lagging)).unwrap_err().contains("t-0"));
        assert!(may_restart(1, &spare, Some(&lagging)).unwrap_err().contains("controller voter 1"));
    }

    #[test]
    fn only_an_active_controller_with_peers_is_deferred() {
        let q = |leader, voters: &[i32]| QuorumProgress {
            leader,
            high_watermark: 1,
            voters: voters.iter().map(|v| (*v, 1)).collect(),
        };
        assert_eq!(deferred_leader(&q(1, &[0, 1, 2])), Some(1));
        assert_eq!(deferred_leader(&q(0, &[0])), None);
        assert_eq!(deferred_leader(&q(-1, &[0, 1, 2])), None);
    }

    #[test]
    fn active_controller_goes_last() {
        let pick = |ids: &[i32], leader| {
            let candidates: Vec<(i32, ())> = ids.iter().map(|i| (*i, ())).collect();
            pick_candidate(&candidates, leader).map(|(id, _)| *id)
        };
        assert_eq!(pick(&[2, 1, 0], Some(2)), Some(1));
        assert_eq!(pick(&[2, 1, 0], Some(0)), Some(2));
        assert_eq!(pick(&[2], Some(2)), Some(2));
        assert_eq!(pick(&[4, 2], None), Some(4));
        assert_eq!(pick(&[], Some(1)), None);
    }

    #[test]
    fn restarted_broker_must_be_back_within_the_bound() {
        let back = Rejoin { fenced: Some(false), under_replicated: vec![] };
        let fenced = Rejoin { fenced: Some(true), under_replicated: vec![] };
        let missing = Rejoin { fenced: None, under_replicated: vec![] };
        let urp = Rejoin { fenced: Some(false), under_replicated: (0..5).map(|i| format!("t-{i}")).collect() };
        let (short, long, bound) = (Duration::from_secs(10), Duration::from_secs(400), Duration::from_secs(300));
        // (state, time since the restart) -> outcome kind
        let table = [
            (&back, short, "back"),
            (&back, long, "back"),
            (&fenced, short, "waiting"),
            (&missing, short, "waiting"),
            (&urp, short, "waiting"),
            (&fenced, long, "stuck"),
            (&urp, long, "stuck"),
        ];
        for (state, since, want) in table {
            let got = after_restart(1, not_back(1, state), since, bound);
            let kind = match &got {
                AfterRestart::Back => "back",
                AfterRestart::Waiting(_) => "waiting",
                AfterRestart::Stuck(_) => "stuck",
            };
            assert_eq!(kind, want, "{state:?} after {since:?}: {got:?}");
        }
        let AfterRestart::Stuck(msg) = after_restart(1, not_back(1, &urp), long, bound) else { panic!() };
        assert!(msg.starts_with("rolling restart stopped: broker 1 is not back in service within 300s of its restart"), "{msg}");
        assert_eq!(after_restart(1, not_back(1, &urp), long * 2, bound), AfterRestart::Stuck(msg.clone()), "stable over time");
        assert!(msg.contains("5 partitions are under-replicated: t-0, t-1, t-2, and 2 more"), "{msg}");
        let AfterRestart::Waiting(msg) = after_restart(2, not_back(2, &missing), short, bound) else { panic!() };
        assert!(msg.contains("broker 2 is not registered"), "{msg}");
    }
}
