//! What the LogCluster status says, computed from what the operator observed. Pure: the
//! reconciler gathers the inputs and writes the result.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::broker_contract;
use crate::crd::{BrokerStatus, LogCluster, LogClusterStatus};
use crate::names;
use crate::resize;
use crate::scaling;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Whether the claims request `storage.size` (present once the operator looked at them).
pub const STORAGE_RESIZED: &str = "StorageResized";
/// Present (True) only while `strata.io/pause-reconciliation` is set.
pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";

/// Label the StatefulSet controller puts on each pod: the revision it was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
const TUNE_CONTAINER: &str = "tune";

/// Something wrong that the status must report (at most one, the most important).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The spec fails validation; nothing was changed.
    InvalidSpec(Vec<String>),
    /// A scale-down is held back.
    ScaleDownBlocked(String),
    /// Applying objects or talking to brokers failed; retried with back-off.
    ReconcileFailed(String),
    /// Something the spec asks for needs an API the cluster does not serve.
    MissingApi(String),
    /// A restarted broker did not come back in service within the bound: the roll stopped.
    RollStuck(String),
}

/// Inputs of [`compute`].
pub struct Observed<'a> {
    /// Pods of this cluster (any ordinal).
    pub pods: &'a [Pod],
    /// `status.updateRevision` of the StatefulSet, if it exists yet.
    pub update_revision: Option<&'a str>,
    pub problem: Option<Problem>,
    /// Controller voters recorded on the StatefulSet (`None` before it exists).
    pub voters: Option<i32>,
    /// Removed brokers not unregistered yet, as recorded on the StatefulSet.
    pub to_unregister: Vec<i32>,
    /// How the data claims stand against `storage.size`, when they were looked at.
    pub storage: Option<resize::Report>,
    /// The restart token on the pod template (the last manual rolling update).
    pub restart_token: Option<String>,
    /// Why the next restart of a rolling restart waits for the cluster, if it does.
    pub roll_held: Option<String>,
    /// Partition replicas moving because brokers were added or are being removed.
    pub moving: Option<scaling::Moving>,
}

/// The Ready condition of a LogTopic or LogUser, as one pass found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl Report {
    pub fn ready(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { ready: true, reason: reason.into(), message: message.into() }
    }

    pub fn not_ready(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { ready: false, reason: reason.into(), message: message.into() }
    }

    /// The Ready condition, its transition time kept from `previous` while its status stays.
    pub fn condition(&self, previous: &[Condition], generation: Option<i64>, now: Time) -> Condition {
        let kept = previous.iter().find(|c| c.type_ == READY && (c.status == "True") == self.ready);
        Condition {
            type_: READY.to_string(),
            status: if self.ready { "True" } else { "False" }.to_string(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            observed_generation: generation,
            last_transition_time: kept.map_or(now, |c| c.last_transition_time.clone()),
        }
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}

fn tuning_report(pod: &Pod) -> Option<std::collections::BTreeMap<String, String>> {
    let statuses = pod.status.as_ref()?.init_container_statuses.as_ref()?;
    let tune = statuses.iter().find(|s| s.name == TUNE_CONTAINER)?;
    let message = tune.state.as_ref()?.terminated.as_ref()?.message.as_deref()?;
    let values = broker_contract::parse_tune_report(message);
    (!values.is_empty()).then_some(values)
}

fn broker_status(sts: &str, pod: &Pod, update_revision: Option<&str>) -> Option<BrokerStatus> {
    let name = pod.metadata.name.clone()?;
    let id = names::ordinal_of(sts, &name)?;
    Some(BrokerStatus {
        id,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready: is_ready(pod) && !is_terminating(pod),
        up_to_date: update_revision.is_some() && revision(pod) == update_revision,
        tuning: tuning_report(pod),
        pod: name,
    })
}

fn condition(type_: &str, status: bool, reason: &str, message: String, generation: Option<i64>, now: &Time) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// Keeps the previous transition time when a condition's status did not change.
fn carry_transition_times(conditions: &mut [Condition], previous: Option<&LogClusterStatus>) {
    let Some(prev) = previous else { return };
    for c in conditions {
        if let Some(p) = prev.conditions.iter().find(|p| p.type_ == c.type_ && p.status == c.status) {
            c.last_transition_time = p.last_transition_time.clone();
        }
    }
}

pub fn compute(lc: &LogCluster, observed: &Observed, now: Time) -> LogClusterStatus {
    let generation = lc.metadata.generation;
    let desired = lc.spec.replicas;
    let sts = names::statefulset(lc);
    let mut brokers: Vec<BrokerStatus> =
        observed.pods.iter().filter_map(|p| broker_status(&sts, p, observed.update_revision)).collect();
    brokers.sort_by_key(|b| b.id);
    let wanted = |b: &&BrokerStatus| b.id < desired;
    let ready = brokers.iter().filter(wanted).filter(|b| b.ready).count() as i32;
    let present = brokers.iter().filter(wanted).count() as i32;
    let current = brokers.iter().filter(wanted).filter(|b| b.up_to_date).count() as i32;
    let extra = brokers.len() as i32 - present;

    let degraded = match &observed.problem {
        Some(Problem::InvalidSpec(errors)) => condition(
            DEGRADED,
            true,
            "InvalidSpec",
            format!("spec rejected, existing objects left unchanged: {}", errors.join("; ")),
            generation,
            &now,
        ),
        Some(Problem::ScaleDownBlocked(why)) => condition(DEGRADED, true, "ScaleDownBlocked", why.clone(), generation, &now),
        Some(Problem::ReconcileFailed(why)) => condition(DEGRADED, true, "ReconcileFailed", why.clone(), generation, &now),
        Some(Problem::MissingApi(why)) => condition(DEGRADED, true, "MissingAPI", why.clone(), generation, &now),
        Some(Problem::RollStuck(why)) => condition(DEGRADED, true, "RollStuck", why.clone(), generation, &now),
        None => condition(DEGRADED, false, "AsExpected", "no problems".to_string(), generation, &now),
    };

    let progressing = if matches!(observed.problem, Some(Problem::InvalidSpec(_))) {
        condition(PROGRESSING, false, "InvalidSpec", "waiting for a valid spec".to_string(), generation, &now)
    } else if let Some(m) = &observed.moving {
        condition(PROGRESSING, true, m.reason, m.message.clone(), generation, &now)
    } else if present < desired || extra > 0 {
        condition(
            PROGRESSING,
            true,
            "Scaling",
            format!("{present} of {desired} brokers exist, {extra} to remove"),
            generation,
            &now,
        )
    } else if !observed.to_unregister.is_empty() {
        let ids: Vec<String> = observed.to_unregister.iter().map(i32::to_string).collect();
        condition(
            PROGRESSING,
            true,
            "UnregisteringBrokers",
            format!("removed brokers {} are being unregistered from the controller quorum", ids.join(",")),
            generation,
            &now,
        )
    } else if let (true, Some(why)) = (current < desired, &observed.roll_held) {
        condition(
            PROGRESSING,
            true,
            "RollBlocked",
            format!("{current} of {desired} brokers run the current pod template; the next restart waits: {why}"),
            generation,
            &now,
        )
    } else if current < desired {
        condition(
            PROGRESSING,
            true,
            "RollingRestart",
            format!("{current} of {desired} brokers run the current pod template; restarting one at a time"),
            generation,
            &now,
        )
    } else if ready < desired {
        condition(PROGRESSING, true, "WaitingForBrokers", format!("{ready} of {desired} brokers ready"), generation, &now)
    } else {
        condition(PROGRESSING, false, "Stable", format!("{desired} brokers up to date"), generation, &now)
    };

    let all_ready = ready == desired && current == desired;
    let ready_cond = condition(
        READY,
        all_ready,
        if all_ready { "AllBrokersReady" } else { "BrokersNotReady" },
        format!("{ready}/{desired} brokers ready"),
        generation,
        &now,
    );

    let mut conditions = vec![ready_cond, progressing, degraded];
    if let Some(r) = &observed.storage {
        conditions.push(condition(STORAGE_RESIZED, r.resized, &r.reason, r.message.clone(), generation, &now));
    }
    carry_transition_times(&mut conditions, lc.status.as_ref());
    let listeners = crate::listeners::status(lc);
    LogClusterStatus {
        observed_generation: generation,
        conditions,
        replicas: desired,
        ready_replicas: ready,
        bootstrap_servers: listeners.first().map(|l| l.bootstrap_servers.clone()),
        listeners,
        brokers,
        controller_voters: (0..observed.voters.unwrap_or(0)).collect(),
        brokers_to_unregister: observed.to_unregister.clone(),
        last_manual_rolling_update: observed.restart_token.clone(),
    }
}

/// The status while reconciliation is paused: the last one written, describing the generation
/// it described, plus the `ReconciliationPaused` condition. Nothing was looked at or changed.
pub fn paused(lc: &LogCluster, now: Time) -> LogClusterStatus {
    let mut status = lc.status.clone().unwrap_or_default();
    status.conditions.retain(|c| c.type_ != RECONCILIATION_PAUSED);
    let message = format!(
        "annotation {}: \"true\" is set; the operator changes nothing until it is removed",
        names::PAUSE_RECONCILIATION_ANNOTATION
    );
    status.conditions.push(condition(RECONCILIATION_PAUSED, true, "PausedByAnnotation", message, lc.metadata.generation, &now));
    carry_transition_times(&mut status.conditions, lc.status.as_ref());
    status
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec, PodStatus,
    };
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::testing::{cluster, spec};

    pub fn pod(name: &str, revision: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(REVISION_LABEL.into(), revision.into())])),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("node-a".into()), ..Default::default() }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn observe(
        lc: &LogCluster,
        pods: &[Pod],
        update_revision: Option<&str>,
        problem: Option<Problem>,
        secs: i64,
    ) -> LogClusterStatus {
        let observed = Observed {
            pods,
            update_revision,
            problem,
            voters: Some(3),
            to_unregister: Vec::new(),
            storage: None,
            restart_token: None,
            roll_held: None,
            moving: None,
        };
        compute(lc, &observed, at(secs))
    }

    fn get<'a>(s: &'a LogClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_brokers_ready_and_current() {
        let lc = cluster(spec());
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true), pod("logs-2", "r1", true)];
        let s = observe(&lc, &pods, Some("r1"), None, 10);
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!((s.replicas, s.ready_replicas), (3, 3));
        assert_eq!(s.bootstrap_servers.as_deref(), Some("logs-bootstrap.prod.svc:9092"));
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(get(&s, PROGRESSING).reason, "Stable");
        assert_eq!(get(&s, DEGRADED).status, "False");
        assert_eq!(s.brokers.iter().map(|b| b.id).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(s.brokers.iter().all(|b| b.ready && b.up_to_date && b.node.as_deref() == Some("node-a")));
        assert_eq!(s.controller_voters, [0, 1, 2]);
        assert!(s.brokers_to_unregister.is_empty());
    }

    #[test]
    fn unregistration_is_reported_until_done() {
        let mut lc = cluster(spec());
        lc.spec.replicas = 2;
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true)];
        let observed = Observed {
            pods: &pods,
            update_revision: Some("r1"),
            problem: None,
            voters: Some(2),
            to_unregister: vec![2, 3],
            storage: None,
            restart_token: None,
            roll_held: None,
            moving: None,
        };
        let s = compute(&lc, &observed, at(1));
        assert_eq!(s.brokers_to_unregister, [2, 3]);
        assert_eq!(s.controller_voters, [0, 1]);
        let p = get(&s, PROGRESSING);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "UnregisteringBrokers"));
        assert!(p.message.contains("brokers 2,3"), "{}", p.message);
        assert_eq!(get(&s, READY).status, "True", "serving brokers are all ready");
        let done = Observed { to_unregister: vec![], ..observed };
        let json = serde_json::to_value(compute(&lc, &done, at(2))).unwrap();
        assert_eq!(json["brokersToUnregister"], serde_json::json!([]), "written as empty, so the merge patch clears it");
    }

    #[test]
    fn pending_pods_are_not_ready() {
        let lc = cluster(spec());
        let pods = [pod("logs-0", "r1", false), pod("logs-1", "r1", true)];
        let s = observe(&lc, &pods, Some("r1"), None, 10);
        assert_eq!(s.ready_replicas, 1);
        assert_eq!(get(&s, READY).status, "False");
        assert_eq!(get(&s, READY).message, "1/3 brokers ready");
        let p = get(&s, PROGRESSING);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Scaling"));
    }

    #[test]
    fn outdated_brokers_mean_a_rolling_restart() {
        let lc = cluster(spec());
        let pods = [pod("logs-0", "r2", true), pod("logs-1", "r1", true), pod("logs-2", "r1", true)];
        let s = observe(&lc, &pods, Some("r2"), None, 10);
        assert_eq!(get(&s, PROGRESSING).reason, "RollingRestart");
        assert!(get(&s, PROGRESSING).message.starts_with("1 of 3"));
        assert_eq!(get(&s, READY).status, "False");
    }

    #[test]
    fn a_held_or_stuck_roll_says_why() {
        let lc = cluster(spec());
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true), pod("logs-2", "r2", true)];
        let held = Observed {
            pods: &pods,
            update_revision: Some("r2"),
            problem: None,
            voters: Some(3),
            to_unregister: vec![],
            storage: None,
            restart_token: None,
            roll_held: Some("t-0 has 2 in-sync replicas".into()),
            moving: None,
        };
        let s = compute(&lc, &held, at(1));
        let p = get(&s, PROGRESSING);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "RollBlocked"));
        assert_eq!(p.message, "1 of 3 brokers run the current pod template; the next restart waits: t-0 has 2 in-sync replicas");
        assert_eq!(get(&s, DEGRADED).status, "False", "waiting for the cluster is no fault");
        let stuck = Observed { problem: Some(Problem::RollStuck("broker 2 is fenced".into())), roll_held: None, ..held };
        let s = compute(&lc, &stuck, at(2));
        let d = get(&s, DEGRADED);
        assert_eq!((d.status.as_str(), d.reason.as_str(), d.message.as_str()), ("True", "RollStuck", "broker 2 is fenced"));
        // Once every broker is current, a stale hold says nothing.
        let done = [pod("logs-0", "r2", true), pod("logs-1", "r2", true), pod("logs-2", "r2", true)];
        let s = compute(&lc, &Observed { pods: &done, problem: None, roll_held: Some("old".into()), ..stuck }, at(3));
        assert_eq!(get(&s, PROGRESSING).reason, "Stable");
    }

    #[test]
    fn invalid_spec_is_degraded_with_every_message() {
        let lc = cluster(spec());
        let problem = Some(Problem::InvalidSpec(vec!["a is wrong".into(), "b is wrong".into()]));
        let s = observe(&lc, &[], None, problem, 10);
        let d = get(&s, DEGRADED);
        assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "InvalidSpec"));
        assert!(d.message.ends_with("a is wrong; b is wrong"), "{}", d.message);
        assert_eq!(get(&s, PROGRESSING).status, "False");
    }

    #[test]
    fn scale_down_in_progress_and_blocked() {
        let mut lc = cluster(spec());
        lc.spec.replicas = 2;
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true), pod("logs-2", "r1", true)];
        let problem = Some(Problem::ScaleDownBlocked("broker 2 hosts partitions".into()));
        let s = observe(&lc, &pods, Some("r1"), problem, 10);
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(get(&s, PROGRESSING).message, "2 of 2 brokers exist, 1 to remove");
        assert_eq!(get(&s, DEGRADED).reason, "ScaleDownBlocked");
        // Draining first: the moves are what is happening.
        let moving =
            Some(scaling::Moving { reason: "Draining", message: "draining brokers 2: moving 4 partitions off them".into() });
        let observed = Observed {
            pods: &pods,
            update_revision: Some("r1"),
            problem: None,
            voters: Some(2),
            to_unregister: vec![],
            storage: None,
            restart_token: None,
            roll_held: None,
            moving,
        };
        let s = compute(&lc, &observed, at(11));
        let p = get(&s, PROGRESSING);
        assert_eq!((p.status.as_str(), p.reason.as_str()), ("True", "Draining"));
        assert_eq!(p.message, "draining brokers 2: moving 4 partitions off them");
        assert_eq!((get(&s, READY).status.as_str(), get(&s, DEGRADED).status.as_str()), ("True", "False"));
    }

    #[test]
    fn transition_time_moves_only_on_change() {
        let mut lc = cluster(spec());
        let pods = [pod("logs-0", "r1", true)];
        lc.spec.replicas = 1;
        let first = observe(&lc, &pods, Some("r1"), None, 10);
        lc.status = Some(first);
        let failing = Some(Problem::ReconcileFailed("boom".into()));
        let second = observe(&lc, &pods, Some("r1"), failing, 20);
        assert_eq!(get(&second, READY).last_transition_time, at(10));
        assert_eq!(get(&second, DEGRADED).last_transition_time, at(20));
    }

    #[test]
    fn storage_and_manual_roll_are_reported() {
        let lc = cluster(spec());
        let pods = [pod("logs-0", "r1", true)];
        let report = resize::Report { resized: false, reason: "ExpansionNotAllowed".into(), message: "no".into() };
        let observed = Observed {
            pods: &pods,
            update_revision: Some("r1"),
            problem: None,
            voters: Some(3),
            to_unregister: vec![],
            storage: Some(report),
            restart_token: Some("2026-12-03T12:00:00Z".into()),
            roll_held: None,
            moving: None,
        };
        let s = compute(&lc, &observed, at(1));
        let c = get(&s, STORAGE_RESIZED);
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.message.as_str()), ("False", "ExpansionNotAllowed", "no"));
        assert_eq!(get(&s, DEGRADED).status, "False", "a refused resize degrades nothing else");
        assert_eq!(s.last_manual_rolling_update.as_deref(), Some("2026-12-03T12:00:00Z"));
        let none = Observed { storage: None, ..observed };
        assert!(compute(&lc, &none, at(1)).conditions.iter().all(|c| c.type_ != STORAGE_RESIZED));
    }

    #[test]
    fn paused_keeps_the_last_status_and_says_so() {
        let mut lc = cluster(spec());
        let pods = [pod("logs-0", "r1", true), pod("logs-1", "r1", true), pod("logs-2", "r1", true)];
        lc.status = Some(observe(&lc, &pods, Some("r1"), None, 10));
        lc.metadata.generation = Some(5);
        let s = paused(&lc, at(20));
        assert_eq!(s.observed_generation, Some(4), "the new generation was not acted on");
        let p = get(&s, RECONCILIATION_PAUSED);
        assert_eq!((p.status.as_str(), p.reason.as_str(), p.observed_generation), ("True", "PausedByAnnotation", Some(5)));
        assert!(p.message.contains("strata.io/pause-reconciliation"), "{}", p.message);
        assert_eq!(get(&s, READY).status, "True");
        assert_eq!(s.brokers, lc.status.as_ref().unwrap().brokers);
        lc.status = Some(s.clone());
        let again = paused(&lc, at(30));
        assert_eq!(again, s, "unchanged while still paused: no status write");
        let resumed = observe(&lc, &pods, Some("r1"), None, 40);
        assert!(resumed.conditions.iter().all(|c| c.type_ != RECONCILIATION_PAUSED), "gone once reconciled again");
        lc.status = None;
        assert_eq!(paused(&lc, at(1)).conditions.len(), 1, "paused before the first reconcile");
    }

    #[test]
    fn tuning_report_comes_from_the_init_container() {
        let lc = cluster(spec());
        let mut p = pod("logs-0", "r1", true);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![ContainerStatus {
            name: "tune".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    message: Some("vm.swappiness=1\nvm.max_map_count=262144\n".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let s = observe(&lc, &[p], Some("r1"), None, 1);
        let t = s.brokers[0].tuning.as_ref().unwrap();
        assert_eq!(t["vm.swappiness"], "1");
        assert_eq!(t["vm.max_map_count"], "262144");
    }
}
