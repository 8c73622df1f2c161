//! Cluster membership as the brokers need it: a shared `cluster.id`, the controller quorum's
//! voters (`controller.quorum.voters`, `id@host:port,...`, the first brokers, fixed at creation),
//! which the operator also pushes to running brokers when addresses are only known once pods run,
//! and the brokers a scale-down removed that still have to be unregistered. All pure; see
//! `broker_contract` ("Controller quorum") for what the broker does with them.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::broker_contract::MAX_CONTROLLER_VOTERS;
use crate::config::hash_str;
use crate::crd::{AdvertiseMode, LogCluster};
use crate::names;

/// The id every broker of the cluster shares, stable for the LogCluster's namespace and name (a
/// LogCluster re-created over retained volumes finds its data again).
pub fn cluster_id(lc: &LogCluster) -> String {
    format!("strata-{}", hash_str(&format!("{}/{}", names::namespace(lc), lc.name_any())))
}

/// Voters of a new cluster of `replicas` brokers: the first three, or all of a smaller cluster.
pub fn initial_voter_count(replicas: i32) -> i32 {
    replicas.clamp(1, MAX_CONTROLLER_VOTERS)
}

/// A recorded voter count (the StatefulSet annotation); one that does not parse, or is not
/// positive, counts as missing (the annotation is the operator's own, rewritten on every pass).
pub fn parse_voters(recorded: Option<&str>) -> Option<i32> {
    recorded.and_then(|r| r.trim().parse::<i32>().ok()).filter(|n| *n >= 1)
}

/// The voter count of a cluster: the recorded one (StatefulSet annotation, else the LogCluster
/// status, which outlives a StatefulSet deleted with `--cascade=orphan`); for a StatefulSet made
/// before voters were recorded, what a new cluster of its current size would get; for a new
/// cluster, what its desired size gets.
pub fn voter_count(recorded: Option<i32>, existing_replicas: Option<i32>, desired: i32) -> i32 {
    match (recorded.filter(|n| *n >= 1), existing_replicas) {
        (Some(n), _) => n,
        (None, Some(current)) => initial_voter_count(current),
        (None, None) => initial_voter_count(desired),
    }
}

/// Whether broker `id` is a controller voter.
pub fn is_voter(id: i32, voters: i32) -> bool {
    (0..voters).contains(&id)
}

/// The pod DNS name of broker `ordinal`, as the start script derives it in `pod-dns` mode.
fn pod_dns_name(lc: &LogCluster, ordinal: i32) -> String {
    format!("{}.{}.{}.svc", names::pod(lc, ordinal), names::headless_service(lc), names::namespace(lc))
}

/// The host broker `ordinal` advertises, as the start script derives it; `None` while a pod-IP
/// broker has no IP.
fn advertised_host(lc: &LogCluster, ordinal: i32, pods: &[Pod]) -> Option<String> {
    let pod_name = names::pod(lc, ordinal);
    match lc.spec.listeners.advertise {
        AdvertiseMode::PodDns => Some(pod_dns_name(lc, ordinal)),
        AdvertiseMode::PodIp => {
            pods.iter().find(|p| p.name_any() == pod_name)?.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())
        }
        AdvertiseMode::Explicit => lc.spec.listeners.advertised_hosts.as_ref()?.get(usize::try_from(ordinal).ok()?).cloned(),
    }
}

/// `id@host:port,...` for voters `0..voters`, or `None` if a host is missing.
fn voters_string(voters: i32, port: i32, host: impl Fn(i32) -> Option<String>) -> Option<String> {
    let entries: Option<Vec<String>> = (0..voters)
        .map(|id| {
            let host = host(id)?;
            Some(if host.contains(':') { format!("{id}@[{host}]:{port}") } else { format!("{id}@{host}:{port}") })
        })
        .collect();
    entries.map(|e| e.join(","))
}

/// `controller.quorum.voters` as rendered into the shared properties, known before any pod runs:
/// pod DNS names (in `PodIP` mode as placeholders, so the value is valid and has the right ids
/// until the operator pushes the pod IPs), or the explicit hosts.
pub fn static_voters(lc: &LogCluster, voters: i32) -> String {
    let port = lc.spec.listeners.controller_port;
    let explicit =
        lc.spec.listeners.advertised_hosts.as_deref().filter(|_| lc.spec.listeners.advertise == AdvertiseMode::Explicit);
    let host = |id: i32| {
        let explicit_host = explicit.and_then(|hosts| hosts.get(usize::try_from(id).ok()?).cloned());
        Some(explicit_host.unwrap_or_else(|| pod_dns_name(lc, id)))
    };
    voters_string(voters, port, host).expect("every voter has a static host")
}

/// `controller.quorum.voters` to push to running brokers: `None` in `PodDNS` mode (the rendered
/// value is final) and until every voter has an address (a partial list would make the brokers
/// disagree about the quorum).
pub fn runtime_voters(lc: &LogCluster, pods: &[Pod], voters: i32) -> Option<String> {
    if lc.spec.listeners.advertise == AdvertiseMode::PodDns {
        return None;
    }
    voters_string(voters, lc.spec.listeners.controller_port, |id| advertised_host(lc, id, pods))
}

/// Broker ids in the `brokers-to-unregister` annotation (`"3,4"`); malformed entries are dropped.
pub fn parse_ids(value: Option<&str>) -> BTreeSet<i32> {
    value.unwrap_or_default().split(',').filter_map(|id| id.trim().parse().ok()).filter(|id| *id >= 0).collect()
}

pub fn format_ids(ids: &BTreeSet<i32>) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Topic names in a comma-separated annotation (Kafka topic names have no commas).
pub fn parse_names(value: Option<&str>) -> BTreeSet<String> {
    value.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

pub fn format_names(names: &BTreeSet<String>) -> String {
    names.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// Brokers still to unregister: those recorded before, plus `current..replicas_after` when this
/// pass scales down, minus any the cluster (scaled back up) runs again.
pub fn to_unregister(recorded: &BTreeSet<i32>, current: Option<i32>, replicas_after: i32) -> BTreeSet<i32> {
    let removed_now = replicas_after..current.unwrap_or(replicas_after).max(replicas_after);
    recorded.iter().copied().chain(removed_now).filter(|id| *id >= replicas_after).collect()
}

/// Of the brokers to unregister, those whose pods are gone (a broker must not be unregistered
/// while it still runs, or it would register again).
pub fn unregister_now(pending: &BTreeSet<i32>, pod_ordinals: &BTreeSet<i32>) -> Vec<i32> {
    pending.iter().copied().filter(|id| !pod_ordinals.contains(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cluster, spec};
    use k8s_openapi::api::core::v1::PodStatus;

    fn pod(name: &str, ip: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus { pod_ip: ip.map(String::from), ..Default::default() });
        p
    }

    #[test]
    fn voter_counts() {
        // (replicas of a new cluster, voters)
        for (replicas, voters) in [(1, 1), (2, 2), (3, 3), (4, 3), (1000, 3)] {
            assert_eq!(initial_voter_count(replicas), voters, "{replicas}");
        }
        // (recorded count, existing StatefulSet replicas, desired replicas) -> voters
        let table: [(Option<i32>, Option<i32>, i32, i32); 8] = [
            (None, None, 5, 3),       // new cluster
            (None, None, 1, 1),       // new one-broker cluster
            (Some(1), Some(1), 3, 1), // scaling 1 -> 3 keeps one voter
            (Some(1), Some(3), 3, 1), // ... also after the operator restarts
            (Some(3), Some(5), 2, 3), // a refused scale-down does not change it
            (None, Some(2), 5, 2),    // made by an operator that did not record voters
            (Some(1), None, 5, 1),    // StatefulSet re-created: the status still knows
            (Some(0), None, 2, 2),    // zero voters is not a quorum: as if missing
        ];
        for (recorded, existing, desired, want) in table {
            assert_eq!(voter_count(recorded, existing, desired), want, "{recorded:?} {existing:?} {desired}");
        }
        for (annotation, want) in
            [(Some("3"), Some(3)), (Some(" 1 "), Some(1)), (Some("x"), None), (Some("0"), None), (None, None)]
        {
            assert_eq!(parse_voters(annotation), want, "{annotation:?}");
        }
        assert!(is_voter(0, 1) && !is_voter(1, 1) && is_voter(2, 3) && !is_voter(3, 3) && !is_voter(-1, 3));
    }

    #[test]
    fn static_voters_per_advertise_mode() {
        let lc = cluster(spec());
        let dns =
            "0@logs-0.logs-headless.prod.svc:9093,1@logs-1.logs-headless.prod.svc:9093,2@logs-2.logs-headless.prod.svc:9093";
        assert_eq!(static_voters(&lc, 3), dns);
        assert_eq!(static_voters(&lc, 1), "0@logs-0.logs-headless.prod.svc:9093");
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::PodIp;
        s.listeners.controller_port = 19093;
        assert_eq!(static_voters(&cluster(s), 2), "0@logs-0.logs-headless.prod.svc:19093,1@logs-1.logs-headless.prod.svc:19093");
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::Explicit;
        s.listeners.advertised_hosts = Some(vec!["a.example".into(), "fd00::1".into()]);
        assert_eq!(
            static_voters(&cluster(s), 3),
            "0@a.example:9093,1@[fd00::1]:9093,2@logs-2.logs-headless.prod.svc:9093",
            "a missing explicit host falls back to the DNS name"
        );
    }

    #[test]
    fn pod_dns_voters_are_never_pushed() {
        let lc = cluster(spec());
        assert_eq!(runtime_voters(&lc, &[pod("logs-0", Some("10.0.0.1"))], 1), None);
    }

    #[test]
    fn pod_ip_voters_wait_for_every_voter() {
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::PodIp;
        s.listeners.controller_port = 9094;
        let lc = cluster(s);
        let pods = [
            pod("logs-1", Some("10.0.0.7")),
            pod("logs-0", Some("fd00::3")),
            pod("logs-2", None),
            pod("logs-3", None),
            pod("other-2", Some("10.9.9.9")),
        ];
        assert_eq!(runtime_voters(&lc, &pods, 2).as_deref(), Some("0@[fd00::3]:9094,1@10.0.0.7:9094"));
        assert_eq!(runtime_voters(&lc, &pods, 3), None, "voter logs-2 has no IP yet");
        assert_eq!(runtime_voters(&lc, &pods[..1], 2), None, "logs-0 is gone");
        assert_eq!(
            runtime_voters(&lc, &pods[..2], 2).as_deref(),
            Some("0@[fd00::3]:9094,1@10.0.0.7:9094"),
            "non-voters do not matter"
        );
    }

    #[test]
    fn explicit_voters_by_ordinal() {
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::Explicit;
        s.listeners.advertised_hosts = Some(vec!["a.example".into(), "b.example".into()]);
        let lc = cluster(s);
        assert_eq!(runtime_voters(&lc, &[], 2).as_deref(), Some("0@a.example:9093,1@b.example:9093"));
        assert_eq!(runtime_voters(&lc, &[], 3), None);
    }

    #[test]
    fn brokers_to_unregister() {
        let ids = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(parse_ids(Some("4, 3,x,-1,,3")), ids(&[3, 4]));
        assert_eq!(parse_ids(None), ids(&[]));
        assert_eq!(format_ids(&ids(&[4, 3])), "3,4");
        let topics = parse_names(Some("b, a,,a"));
        assert_eq!(format_names(&topics), "a,b");
        assert!(parse_names(None).is_empty());
        // (recorded, current StatefulSet replicas, replicas after this pass) -> to unregister
        type Row = (&'static [i32], Option<i32>, i32, &'static [i32]);
        let table: [Row; 6] = [
            (&[], None, 3, &[]),            // new cluster
            (&[], Some(3), 3, &[]),         // steady
            (&[], Some(5), 3, &[3, 4]),     // scale-down 5 -> 3
            (&[4], Some(4), 2, &[2, 3, 4]), // another scale-down before 4 was unregistered
            (&[3, 4], Some(3), 4, &[4]),    // scaled back up to 4: broker 3 runs again
            (&[3], Some(3), 3, &[3]),       // waiting for the pod to go
        ];
        for (recorded, current, after, want) in table {
            assert_eq!(to_unregister(&ids(recorded), current, after), ids(want), "{recorded:?} {current:?} {after}");
        }
        assert_eq!(unregister_now(&ids(&[2, 3, 4]), &ids(&[0, 1, 3])), [2, 4]);
    }

    #[test]
    fn cluster_ids_are_stable_per_namespace_and_name() {
        let lc = cluster(spec());
        let id = cluster_id(&lc);
        assert_eq!(id, cluster_id(&cluster(spec())));
        assert!(id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let mut other = cluster(spec());
        other.metadata.namespace = Some("staging".into());
        assert_ne!(cluster_id(&other), id);
    }
}
