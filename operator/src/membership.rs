//! Cluster membership as the brokers need it: a shared `cluster.id`, and `cluster.brokers`
//! (`id@host:port,...`, every broker with the address clients use for it), which the operator
//! pushes to running brokers because pod IPs are only known once pods run.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::config::hash_str;
use crate::crd::{AdvertiseMode, LogCluster};
use crate::names;

/// The id every broker of the cluster shares, stable for the LogCluster's namespace and name (a
/// LogCluster re-created over retained volumes finds its data again).
pub fn cluster_id(lc: &LogCluster) -> String {
    format!("strata-{}", hash_str(&format!("{}/{}", names::namespace(lc), lc.name_any())))
}

/// The host broker `ordinal` advertises, as the start script derives it; `None` while a pod-IP
/// broker has no IP.
fn advertised_host(lc: &LogCluster, ordinal: i32, pods: &[Pod]) -> Option<String> {
    let pod_name = names::pod(lc, ordinal);
    match lc.spec.listeners.advertise {
        AdvertiseMode::PodDns => Some(format!("{pod_name}.{}.{}.svc", names::headless_service(lc), names::namespace(lc))),
        AdvertiseMode::PodIp => {
            pods.iter().find(|p| p.name_any() == pod_name)?.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())
        }
        AdvertiseMode::Explicit => lc.spec.listeners.advertised_hosts.as_ref()?.get(usize::try_from(ordinal).ok()?).cloned(),
    }
}

/// `cluster.brokers` for brokers `0..replicas`, or `None` until every one of them has an address
/// (a partial list would make the brokers disagree about who the controller is).
pub fn cluster_brokers(lc: &LogCluster, pods: &[Pod], replicas: i32) -> Option<String> {
    let port = lc.spec.listeners.client_port;
    let entries: Option<Vec<String>> = (0..replicas)
        .map(|o| {
            let host = advertised_host(lc, o, pods)?;
            Some(if host.contains(':') { format!("{o}@[{host}]:{port}") } else { format!("{o}@{host}:{port}") })
        })
        .collect();
    entries.map(|e| e.join(","))
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
    fn pod_dns_names_need_no_pods() {
        let lc = cluster(spec());
        assert_eq!(
            cluster_brokers(&lc, &[], 2).as_deref(),
            Some("0@logs-0.logs-headless.prod.svc:9092,1@logs-1.logs-headless.prod.svc:9092")
        );
    }

    #[test]
    fn pod_ips_wait_for_every_pod() {
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::PodIp;
        s.listeners.client_port = 9093;
        let lc = cluster(s);
        let pods = [
            pod("logs-1", Some("10.0.0.7")),
            pod("logs-0", Some("fd00::3")),
            pod("logs-2", None),
            pod("other-2", Some("10.9.9.9")),
        ];
        assert_eq!(cluster_brokers(&lc, &pods, 2).as_deref(), Some("0@[fd00::3]:9093,1@10.0.0.7:9093"));
        assert_eq!(cluster_brokers(&lc, &pods, 3), None, "logs-2 has no IP yet");
        assert_eq!(cluster_brokers(&lc, &pods[..1], 2), None, "logs-0 is gone");
    }

    #[test]
    fn explicit_hosts_by_ordinal() {
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::Explicit;
        s.listeners.advertised_hosts = Some(vec!["a.example".into(), "b.example".into()]);
        let lc = cluster(s);
        assert_eq!(cluster_brokers(&lc, &[], 2).as_deref(), Some("0@a.example:9092,1@b.example:9092"));
        assert_eq!(cluster_brokers(&lc, &[], 3), None);
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
