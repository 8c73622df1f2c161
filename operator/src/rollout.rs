//! Decisions about restarting running brokers one at a time after a restart-requiring change, and
//! which claims the brokers a scale-down removed leave behind.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::roll_safety::{self, AfterRestart};
use crate::status::{is_ready, is_terminating, revision};
use crate::{annotations, names};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Every broker runs the current template.
    Done,
    /// A restart is due but would cost availability now; the reason says what it waits for.
    Wait(String),
    /// Delete this pod; the StatefulSet controller recreates it from the current template.
    Delete(String),
    /// Serving brokers are due: the cluster decides ([`crate::roll_safety`]) whether one may go now.
    AskCluster(RollStep),
    /// A restarted broker did not come back within the bound: the roll stops here.
    Stuck(String),
}

/// What the cluster is asked before the next serving broker is restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollStep {
    /// Outdated brokers (id, pod), highest ordinal first.
    pub candidates: Vec<(i32, String)>,
    /// The up-to-date broker created last (id, pod, creation time): it must be back in service
    /// before another goes. Taken from the pods, so an operator restart resumes where it was.
    pub last_restarted: Option<(i32, String, Timestamp)>,
}

/// Picks what to restart next. A ready broker is restarted only when every other wanted broker
/// is ready and nothing is terminating, so at most one serving broker is down at a time, and only
/// once the cluster agrees ([`Restart::AskCluster`]). Brokers that are not ready serve nothing,
/// so they may be restarted straight away. An up-to-date broker (restarted) that is still not
/// ready `bound` after its pod was created stops the roll.
pub fn next_restart(
    sts: &str,
    pods: &[Pod],
    replicas: i32,
    update_revision: Option<&str>,
    (now, bound): (Timestamp, Duration),
) -> Restart {
    let Some(update) = update_revision else {
        return Restart::Wait("the StatefulSet has no update revision yet".to_string());
    };
    let wanted: BTreeMap<i32, &Pod> = pods
        .iter()
        .filter_map(|p| Some((names::ordinal_of(sts, p.metadata.name.as_deref()?)?, p)))
        .filter(|(o, _)| *o < replicas)
        .collect();
    let outdated: Vec<(i32, &Pod)> = wanted
        .iter()
        .filter(|(_, p)| revision(p) != Some(update) || annotations::roll_requested(&p.metadata))
        .map(|(o, p)| (*o, *p))
        .collect();
    if outdated.is_empty() {
        return Restart::Done;
    }
    if let Some(p) = pods.iter().find(|p| is_terminating(p)) {
        return Restart::Wait(format!("pod {} is terminating", p.metadata.name.as_deref().unwrap_or("?")));
    }
    if let Some((_, p)) = outdated.iter().rev().find(|(_, p)| !is_ready(p)) {
        return Restart::Delete(p.metadata.name.clone().unwrap_or_default());
    }
    if let Some(missing) = (0..replicas).find(|o| !wanted.contains_key(o)) {
        return Restart::Wait(format!("broker {missing} has no pod yet"));
    }
    if let Some((o, p)) = wanted.iter().find(|(_, p)| !is_ready(p)) {
        let not_ready = format!("broker {o} is not ready");
        let restarted = p.metadata.creation_timestamp.as_ref().filter(|_| revision(p) == Some(update));
        return match restarted.map(|t| now.duration_since(t.0).unsigned_abs()) {
            Some(since) => match roll_safety::after_restart(*o, Some(not_ready.clone()), since, bound) {
                AfterRestart::Stuck(why) => Restart::Stuck(why),
                _ => Restart::Wait(not_ready),
            },
            None => Restart::Wait(not_ready),
        };
    }
    let last_restarted = wanted
        .iter()
        .filter(|(_, p)| revision(p) == Some(update))
        .filter_map(|(o, p)| Some((*o, p.metadata.name.clone()?, p.metadata.creation_timestamp.as_ref()?.0)))
        .max_by_key(|(_, _, created)| *created);
    let candidates = outdated.iter().rev().map(|(o, p)| (*o, p.metadata.name.clone().unwrap_or_default())).collect();
    Restart::AskCluster(RollStep { candidates, last_restarted })
}

/// Data claims of brokers that no longer exist (ordinal >= replicas and no pod left).
pub fn orphaned_claims(lc_sts: &str, claims: &[String], replicas: i32, pod_ordinals: &BTreeSet<i32>) -> Vec<String> {
    let prefix = format!("{}-", names::DATA_VOLUME);
    claims
        .iter()
        .filter(|c| {
            c.strip_prefix(&prefix)
                .and_then(|pod| names::ordinal_of(lc_sts, pod))
                .is_some_and(|o| o >= replicas && !pod_ordinals.contains(&o))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::status::tests::pod;

    #[test]
    fn nothing_to_do_when_current() {
        let pods = [pod("logs-0", "r2", true), pod("logs-1", "r2", false)];
        assert_eq!(next_restart("logs", &pods, 2, Some("r2"), at(100)), Restart::Done);
    }

    /// `now` in seconds since the epoch, with a bound of 60 s.
    fn at(now: i64) -> (Timestamp, Duration) {
        (Timestamp::from_second(now).unwrap(), Duration::from_secs(60))
    }

    fn created(mut p: Pod, secs: i64) -> Pod {
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(secs).unwrap()));
        p
    }

    #[test]
    fn serving_brokers_are_restarted_only_after_asking_the_cluster() {
        let pods = [
            created(pod("logs-0", "r1", true), 1),
            created(pod("logs-1", "r1", true), 2),
            created(pod("logs-2", "r2", true), 30),
            created(pod("logs-3", "r2", true), 20),
        ];
        let want = RollStep {
            candidates: vec![(1, "logs-1".into()), (0, "logs-0".into())],
            last_restarted: Some((2, "logs-2".into(), Timestamp::from_second(30).unwrap())),
        };
        assert_eq!(next_restart("logs", &pods, 4, Some("r2"), at(100)), Restart::AskCluster(want));
        // Nothing restarted yet: nothing to wait for.
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true)];
        let want = RollStep { candidates: vec![(1, "logs-1".into()), (0, "logs-0".into())], last_restarted: None };
        assert_eq!(next_restart("logs", &pods, 2, Some("r2"), at(100)), Restart::AskCluster(want));
    }

    #[test]
    fn waits_while_another_broker_is_down() {
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r2", false), pod("logs-2", "r2", true)];
        assert_eq!(next_restart("logs", &pods, 3, Some("r2"), at(100)), Restart::Wait("broker 1 is not ready".into()));
        let pods = [pod("logs-0", "r1", true), pod("logs-2", "r2", true)];
        assert_eq!(next_restart("logs", &pods, 3, Some("r2"), at(100)), Restart::Wait("broker 1 has no pod yet".into()));
        let mut terminating = pod("logs-2", "r2", true);
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r2", true), terminating];
        assert_eq!(next_restart("logs", &pods, 3, Some("r2"), at(100)), Restart::Wait("pod logs-2 is terminating".into()));
    }

    #[test]
    fn a_restarted_broker_not_ready_within_the_bound_stops_the_roll() {
        let pods = [created(pod("logs-0", "r1", true), 1), created(pod("logs-1", "r2", false), 50)];
        assert_eq!(next_restart("logs", &pods, 2, Some("r2"), at(100)), Restart::Wait("broker 1 is not ready".into()));
        let Restart::Stuck(why) = next_restart("logs", &pods, 2, Some("r2"), at(111)) else { panic!() };
        assert!(why.contains("broker 1 is not back in service within 60s") && why.ends_with("broker 1 is not ready"), "{why}");
        // An outdated broker is restarted at once, however long it has been down.
        let pods = [created(pod("logs-0", "r1", true), 1), created(pod("logs-1", "r1", false), 2)];
        assert_eq!(next_restart("logs", &pods, 2, Some("r2"), at(1000)), Restart::Delete("logs-1".into()));
    }

    #[test]
    fn not_ready_outdated_brokers_go_first() {
        let pods = [pod("logs-0", "r1", false), pod("logs-1", "r1", true)];
        assert_eq!(next_restart("logs", &pods, 2, Some("r2"), at(100)), Restart::Delete("logs-0".into()));
    }

    #[test]
    fn brokers_being_scaled_away_are_not_restarted() {
        let pods = [pod("logs-0", "r2", true), pod("logs-1", "r1", true)];
        assert_eq!(next_restart("logs", &pods, 1, Some("r2"), at(100)), Restart::Done);
        assert!(matches!(next_restart("logs", &pods, 1, None, at(100)), Restart::Wait(_)));
    }

    #[test]
    fn only_claims_of_removed_brokers_are_orphaned() {
        let claims: Vec<String> =
            ["data-logs-0", "data-logs-1", "data-logs-2", "data-other-3", "data-logs-x"].iter().map(|s| s.to_string()).collect();
        let pods = BTreeSet::from([0, 2]);
        assert_eq!(orphaned_claims("logs", &claims, 1, &pods), ["data-logs-1"]);
    }

    #[test]
    fn a_pod_annotated_for_a_manual_roll_is_restarted_like_an_outdated_one() {
        let mut pods = vec![pod("logs-0", "r1", true), pod("logs-1", "r1", true), pod("logs-2", "r1", true)];
        assert_eq!(next_restart("logs", &pods, 3, Some("r1"), at(100)), Restart::Done);
        pods[0].metadata.annotations =
            Some(BTreeMap::from([(names::MANUAL_ROLLING_UPDATE_ANNOTATION.to_string(), "true".to_string())]));
        // Serving: restarted once the cluster agrees, as an outdated broker.
        let want = RollStep { candidates: vec![(0, "logs-0".into())], last_restarted: None };
        assert_eq!(next_restart("logs", &pods, 3, Some("r1"), at(100)), Restart::AskCluster(want));
        pods[2] = pod("logs-2", "r1", false);
        assert_eq!(next_restart("logs", &pods, 3, Some("r1"), at(100)), Restart::Wait("broker 2 is not ready".into()));
        // Not ready itself: restarted at once.
        pods[2] = pod("logs-2", "r1", true);
        pods[0] = pod("logs-0", "r1", false);
        pods[0].metadata.annotations =
            Some(BTreeMap::from([(names::MANUAL_ROLLING_UPDATE_ANNOTATION.to_string(), "true".to_string())]));
        assert_eq!(next_restart("logs", &pods, 3, Some("r1"), at(100)), Restart::Delete("logs-0".into()));
    }
}
