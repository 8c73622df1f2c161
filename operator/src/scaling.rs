//! Changing the number of brokers without losing availability or data: a scale-up gives the new
//! brokers a fair share of the replicas once they serve, a scale-down first drains the brokers it
//! removes (and never removes a controller voter). Pure: the reconciler asks the cluster
//! ([`crate::kafka_admin::cluster_view`]), this decides, the reconciler acts. Progress lives in the
//! cluster (reassignments) and on the StatefulSet (annotations), so an operator restart resumes it.

use std::collections::BTreeSet;

use crate::names;
use crate::rebalance::{self, Goal, Move, Next, View};

/// Why there is no view when the caller did not follow [`needs_view`].
const NOT_ASKED: &str = "the brokers were not asked";

/// A scale-up's rebalance, recorded on the StatefulSet (`strata.io/rebalance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebalance {
    /// Brokers were added; their share moves once they serve.
    Pending,
    /// The moves were started; done when no reassignment is left.
    Moving,
}

impl Rebalance {
    pub fn parse(recorded: Option<&str>) -> Option<Rebalance> {
        match recorded {
            Some("pending") => Some(Rebalance::Pending),
            Some("moving") => Some(Rebalance::Moving),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rebalance::Pending => "pending",
            Rebalance::Moving => "moving",
        }
    }
}

/// What a reconcile pass knows before deciding.
pub struct Inputs<'a> {
    /// The StatefulSet's replicas (None before it exists).
    pub current: Option<i32>,
    pub desired: i32,
    pub voters: i32,
    /// `strata.io/force-scale-down: "true"`: scale down without draining.
    pub forced: bool,
    pub rebalance: Option<Rebalance>,
    /// Whether the operator has throttles to remove (topics recorded on the StatefulSet).
    pub throttled: bool,
    /// The cluster, when [`needs_view`] asked for it.
    pub view: Option<Result<&'a View, &'a str>>,
}

/// Whether deciding needs the cluster's view.
pub fn needs_view(
    current: Option<i32>,
    desired: i32,
    voters: i32,
    forced: bool,
    rebalance: Option<Rebalance>,
    throttled: bool,
) -> bool {
    match current {
        Some(cur) if desired < cur => !forced && check_voters_kept(cur, desired, voters).is_ok(),
        Some(cur) if desired > cur => false,
        Some(_) => rebalance.is_some() || throttled,
        None => false,
    }
}

/// Moving replicas, for the status: the reason (`Rebalancing` or `Draining`) and what happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moving {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The StatefulSet's replicas after this pass.
    pub replicas: i32,
    /// To record on the StatefulSet.
    pub rebalance: Option<Rebalance>,
    /// Reassignments to start (after the StatefulSet records the topics they throttle).
    pub moves: Vec<Move>,
    pub moving: Option<Moving>,
    /// Why the scale-down waits for the user (a `ScaleDownBlocked` condition).
    pub blocked: Option<String>,
    /// The force annotation acted: remove it.
    pub force_used: bool,
    /// Nothing moves any more: the throttles can go.
    pub clear_throttles: bool,
}

pub fn decide(i: &Inputs) -> Decision {
    let mut d = Decision {
        replicas: i.desired,
        rebalance: None,
        moves: Vec::new(),
        moving: None,
        blocked: None,
        force_used: false,
        clear_throttles: false,
    };
    match i.current {
        Some(cur) if i.desired < cur => scale_down(i, cur, &mut d),
        Some(cur) if i.desired > cur => {
            d.rebalance = Some(Rebalance::Pending);
            d.moving = Some(Moving {
                reason: "Rebalancing",
                message: format!("brokers {} added; replicas move onto them once they serve", range(cur, i.desired)),
            });
        }
        Some(_) => {
            if let Some(state) = i.rebalance {
                rebalance(i, state, &mut d);
            }
        }
        None => {}
    }
    let idle = matches!(i.view, Some(Ok(v)) if v.reassigning == 0);
    d.clear_throttles = i.throttled && idle && d.moves.is_empty() && d.moving.is_none();
    d
}

fn scale_down(i: &Inputs, cur: i32, d: &mut Decision) {
    d.replicas = cur;
    if let Err(why) = check_voters_kept(cur, i.desired, i.voters) {
        d.blocked = Some(why);
        return;
    }
    if i.forced {
        d.replicas = i.desired;
        d.force_used = true;
        return;
    }
    let removed = range(i.desired, cur);
    let refused = |why: &str| format!("scale-down from {cur} to {} refused: {why}", i.desired);
    let view = match i.view {
        Some(Ok(view)) => view,
        other => {
            let e = other.and_then(Result::err).unwrap_or(NOT_ASKED);
            let e = format!("cannot verify that brokers {removed} host no partitions ({e})");
            d.blocked = Some(format!("{}; {}", refused(&e), force_hint()));
            return;
        }
    };
    let keep: BTreeSet<i32> = (0..i.desired).collect();
    let draining = |message: String| Some(Moving { reason: "Draining", message });
    match rebalance::next(&Goal::Drain, view, &keep) {
        Next::Done => d.replicas = i.desired,
        Next::Refuse(why) => d.blocked = Some(format!("{}; {}", refused(&why), force_hint())),
        Next::Wait(why) => d.moving = draining(format!("draining brokers {removed} before removing them: {why}")),
        Next::Move(moves) => {
            d.moving = draining(format!("draining brokers {removed}: moving {} partitions off them", moves.len()));
            d.moves = moves;
        }
    }
}

fn rebalance(i: &Inputs, state: Rebalance, d: &mut Decision) {
    d.rebalance = Some(state);
    let rebalancing = |message: String| Some(Moving { reason: "Rebalancing", message });
    let view = match i.view {
        Some(Ok(view)) => view,
        other => {
            let e = other.and_then(Result::err).unwrap_or(NOT_ASKED);
            d.moving = rebalancing(format!("cannot ask the brokers where replicas are: {e}"));
            return;
        }
    };
    let keep: BTreeSet<i32> = (0..i.desired).collect();
    match rebalance::next(&Goal::Balance { submitted: state == Rebalance::Moving }, view, &keep) {
        Next::Done => d.rebalance = None,
        Next::Refuse(why) => {
            tracing::warn!(%why, "rebalance abandoned");
            d.rebalance = None;
        }
        Next::Wait(why) => d.moving = rebalancing(format!("evening out replicas over brokers {}: {why}", range(0, i.desired))),
        Next::Move(moves) => {
            d.moving = rebalancing(format!(
                "evening out replicas over brokers {}: moving {} partitions",
                range(0, i.desired),
                moves.len()
            ));
            d.rebalance = Some(Rebalance::Moving);
            d.moves = moves;
        }
    }
}

/// Whether a scale-down keeps every controller voter (brokers `0..voters`). Changing the voter
/// set is not supported, so nothing overrides this, not even the force annotation.
pub fn check_voters_kept(current: i32, desired: i32, voters: i32) -> Result<(), String> {
    if desired >= current || desired >= voters {
        return Ok(());
    }
    let removed: BTreeSet<i32> = (desired.max(0)..voters.min(current)).collect();
    let ids = removed.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let (noun, verb) =
        if removed.len() == 1 { ("broker", "is a controller voter") } else { ("brokers", "are controller voters") };
    Err(format!(
        "scale-down from {current} to {desired} refused: {noun} {ids} {verb}; the voters (brokers 0-{}) are fixed when the \
         cluster is created and changing them is not supported, so replicas cannot go below {voters}",
        voters - 1
    ))
}

fn force_hint() -> String {
    format!(
        "set annotation {}: \"true\" to remove the brokers without moving their replicas (acts once)",
        names::FORCE_SCALE_DOWN_ANNOTATION
    )
}

/// Brokers `from..to` as `3` or `3-5`.
fn range(from: i32, to: i32) -> String {
    if to - from == 1 {
        from.to_string()
    } else {
        format!("{from}-{}", to - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rebalance::Placement;

    fn view(on: &[&[i32]], reassigning: usize, live: &[i32]) -> View {
        let parts = on
            .iter()
            .enumerate()
            .map(|(p, r)| Placement { topic: "t".into(), partition: p as i32, replicas: r.to_vec(), bytes: 1 })
            .collect();
        View { parts, reassigning, live: live.iter().copied().collect() }
    }

    fn inputs<'a>(
        current: i32,
        desired: i32,
        rebalance: Option<Rebalance>,
        throttled: bool,
        view: Option<Result<&'a View, &'a str>>,
    ) -> Inputs<'a> {
        Inputs { current: Some(current), desired, voters: 3, forced: false, rebalance, throttled, view }
    }

    #[test]
    fn scale_down_drains_first() {
        let on_3 = view(&[&[0, 1, 3], &[3, 2, 1]], 0, &[0, 1, 2, 3]);
        let d = decide(&inputs(4, 3, None, false, Some(Ok(&on_3))));
        assert_eq!(d.replicas, 4, "brokers stay until drained");
        assert_eq!(d.moves.len(), 2);
        assert_eq!(
            d.moving.as_ref().map(|m| (m.reason, m.message.as_str())),
            Some(("Draining", "draining brokers 3: moving 2 partitions off them"))
        );
        let moving = view(&[&[0, 1, 3], &[3, 2, 1]], 2, &[0, 1, 2, 3]);
        let d = decide(&inputs(4, 3, None, false, Some(Ok(&moving))));
        assert_eq!((d.replicas, d.moves.len()), (4, 0));
        assert_eq!(d.moving.unwrap().message, "draining brokers 3 before removing them: 2 partition reassignments in progress");
        let drained = view(&[&[0, 1, 2], &[1, 2, 0]], 0, &[0, 1, 2, 3]);
        let d = decide(&inputs(5, 3, None, false, Some(Ok(&drained))));
        assert_eq!((d.replicas, d.moving, d.blocked), (3, None, None), "drained: the brokers go");
        let d = decide(&inputs(4, 3, None, false, Some(Err("connection refused"))));
        assert_eq!(d.replicas, 4);
        let why = d.blocked.unwrap();
        assert!(why.starts_with("scale-down from 4 to 3 refused: cannot verify that brokers 3 host no partitions (connection refused); set annotation strata.io/force-scale-down"), "{why}");
    }

    #[test]
    fn scale_down_refused_when_the_rest_cannot_hold_the_replication_factor() {
        let rf4 = view(&[&[0, 1, 2, 3]], 0, &[0, 1, 2, 3]);
        let d = decide(&inputs(4, 3, None, false, Some(Ok(&rf4))));
        assert_eq!(d.replicas, 4);
        let why = d.blocked.unwrap();
        assert!(
            why.starts_with("scale-down from 4 to 3 refused: topic t has 4 replicas per partition, which 3 brokers cannot hold"),
            "{why}"
        );
    }

    #[test]
    fn force_acts_once_and_never_removes_a_voter() {
        let mut i = inputs(5, 3, None, false, None);
        i.forced = true;
        let d = decide(&i);
        assert_eq!((d.replicas, d.force_used), (3, true));
        i.desired = 2;
        let d = decide(&i);
        assert_eq!((d.replicas, d.force_used), (5, false));
        assert!(d.blocked.unwrap().contains("broker 2 is a controller voter"));
    }

    #[test]
    fn scale_up_then_rebalance() {
        let d = decide(&inputs(3, 4, None, false, None));
        assert_eq!((d.replicas, d.rebalance), (4, Some(Rebalance::Pending)));
        assert_eq!(d.moving.unwrap().message, "brokers 3 added; replicas move onto them once they serve");
        let unbalanced = view(&[&[0, 1, 2], &[1, 2, 0], &[2, 0, 1], &[0, 1, 2]], 0, &[0, 1, 2]);
        let d = decide(&inputs(4, 4, Some(Rebalance::Pending), false, Some(Ok(&unbalanced))));
        assert_eq!(d.rebalance, Some(Rebalance::Pending), "waits for broker 3");
        assert!(d.moves.is_empty());
        assert_eq!(
            d.moving.unwrap().message,
            "evening out replicas over brokers 0-3: broker 3 is not registered and unfenced yet"
        );
        let serving = View { live: [0, 1, 2, 3].into(), ..unbalanced };
        let d = decide(&inputs(4, 4, Some(Rebalance::Pending), false, Some(Ok(&serving))));
        assert_eq!(d.rebalance, Some(Rebalance::Moving));
        assert_eq!(d.moves.len(), 3, "broker 3 gets 3 of the 12 replicas: {:?}", d.moves);
        let moving = View { reassigning: 3, ..serving.clone() };
        let d = decide(&inputs(4, 4, Some(Rebalance::Moving), false, Some(Ok(&moving))));
        assert_eq!((d.rebalance, d.moves.len()), (Some(Rebalance::Moving), 0));
        let d = decide(&inputs(4, 4, Some(Rebalance::Moving), false, Some(Ok(&serving))));
        assert_eq!((d.rebalance, d.moving), (None, None), "moved once: done even if sizes changed meanwhile");
    }

    #[test]
    fn throttles_are_cleared_once_nothing_moves() {
        let balanced = view(&[&[0, 1, 2]], 0, &[0, 1, 2]);
        let d = decide(&inputs(3, 3, None, true, Some(Ok(&balanced))));
        assert!(d.clear_throttles);
        let busy = view(&[&[0, 1, 2]], 1, &[0, 1, 2]);
        assert!(!decide(&inputs(3, 3, None, true, Some(Ok(&busy)))).clear_throttles, "someone's reassignment runs");
        assert!(!decide(&inputs(3, 3, None, false, Some(Ok(&balanced)))).clear_throttles, "none set");
        assert!(!decide(&inputs(3, 3, None, true, Some(Err("down")))).clear_throttles);
    }

    #[test]
    fn the_cluster_is_asked_only_when_needed() {
        // (current, desired, voters, forced, rebalance, throttled) -> needs the view
        let table = [
            (Some(4), 3, 3, false, None, false, true),
            (Some(4), 3, 3, true, None, false, false),
            (Some(3), 2, 3, false, None, false, false), // a voter: refused without asking
            (Some(3), 4, 3, false, None, false, false),
            (Some(4), 4, 3, false, Some(Rebalance::Pending), false, true),
            (Some(4), 4, 3, false, None, true, true),
            (Some(4), 4, 3, false, None, false, false),
            (None, 3, 3, false, None, false, false),
        ];
        for (current, desired, voters, forced, rebalance, throttled, want) in table {
            assert_eq!(needs_view(current, desired, voters, forced, rebalance, throttled), want, "{current:?} -> {desired}");
        }
    }

    #[test]
    fn scale_down_never_removes_a_voter() {
        // (current, desired, voters) -> allowed
        let table = [(5, 3, 3, true), (3, 2, 3, false), (5, 1, 3, false), (3, 1, 1, true), (2, 1, 2, false), (1, 3, 1, true)];
        for (current, desired, voters, allowed) in table {
            assert_eq!(check_voters_kept(current, desired, voters).is_ok(), allowed, "{current} -> {desired} with {voters}");
        }
        let msg = check_voters_kept(3, 2, 3).unwrap_err();
        assert!(msg.starts_with("scale-down from 3 to 2 refused: broker 2 is a controller voter;"), "{msg}");
        assert!(msg.contains("brokers 0-2") && msg.contains("cannot go below 3"), "{msg}");
        let msg = check_voters_kept(5, 1, 3).unwrap_err();
        assert!(msg.contains("brokers 1,2 are controller voters"), "{msg}");
        for (rebalance, text) in [(Rebalance::Pending, "pending"), (Rebalance::Moving, "moving")] {
            assert_eq!(Rebalance::parse(Some(text)), Some(rebalance));
            assert_eq!(rebalance.as_str(), text);
        }
        assert_eq!(Rebalance::parse(Some("x")), None);
    }
}
