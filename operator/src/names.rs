//! Names and labels of the objects the operator creates for a LogCluster.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::crd::LogCluster;

pub const FIELD_MANAGER: &str = "strata-operator";
pub const FINALIZER: &str = "strata.io/cleanup";
/// Annotation that lets one scale-down remove brokers without draining their replicas first.
pub const FORCE_SCALE_DOWN_ANNOTATION: &str = "strata.io/force-scale-down";
/// LogCluster annotation: while `"true"`, the operator changes nothing of the cluster.
pub const PAUSE_RECONCILIATION_ANNOTATION: &str = "strata.io/pause-reconciliation";
/// LogCluster or broker pod annotation: `"true"` restarts the brokers (or that one broker)
/// once, one at a time; the operator removes it from the LogCluster when it has acted.
pub const MANUAL_ROLLING_UPDATE_ANNOTATION: &str = "strata.io/manual-rolling-update";
/// Pod template annotation: when the last manual rolling update of the cluster was requested.
/// A new value changes the template, so every broker is restarted.
pub const RESTART_TOKEN_ANNOTATION: &str = "strata.io/restart-token";
/// Pod template annotation: hash of everything that needs a restart to take effect.
pub const CONFIG_HASH_ANNOTATION: &str = "strata.io/config-hash";
/// Pod annotation: hash of the dynamic settings last applied to that broker via the admin API.
pub const DYNAMIC_CONFIG_ANNOTATION: &str = "strata.io/dynamic-config-applied";
/// Pod annotation: hash of the cluster-wide settings last applied through that broker.
pub const CLUSTER_CONFIG_ANNOTATION: &str = "strata.io/cluster-config-applied";
/// Pod annotation: hash of the `controller.quorum.voters` value last given to that broker.
pub const QUORUM_VOTERS_ANNOTATION: &str = "strata.io/controller-quorum-voters-applied";
/// StatefulSet annotation: the number of controller voters (brokers `0..n`), fixed when the
/// cluster is created; the operator's durable record of it.
pub const CONTROLLER_VOTERS_ANNOTATION: &str = "strata.io/controller-voters";
/// StatefulSet annotation: ids of brokers removed by a scale-down and not unregistered yet
/// (comma-separated), so unregistration resumes after an operator restart.
pub const TO_UNREGISTER_ANNOTATION: &str = "strata.io/brokers-to-unregister";
/// StatefulSet annotation: a scale-up's rebalance in progress (`pending`, `moving`).
pub const REBALANCE_ANNOTATION: &str = "strata.io/rebalance";
/// StatefulSet annotation: topics whose replication the operator throttled while moving replicas,
/// cleared with the throttles once nothing moves.
pub const THROTTLED_TOPICS_ANNOTATION: &str = "strata.io/throttled-topics";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// On cluster-scoped objects, which have no owner references: the owning LogCluster's namespace.
pub const LABEL_CLUSTER_NAMESPACE: &str = "strata.io/cluster-namespace";
/// Distinguishes the two Services (the ServiceMonitor selects the headless one).
pub const LABEL_SERVICE_ROLE: &str = "strata.io/service";

pub const APP_NAME: &str = "strata";
pub const COMPONENT: &str = "broker";

pub fn cluster_name(lc: &LogCluster) -> String {
    lc.name_any()
}

pub fn namespace(lc: &LogCluster) -> String {
    lc.namespace().unwrap_or_else(|| "default".to_string())
}

pub fn statefulset(lc: &LogCluster) -> String {
    cluster_name(lc)
}
pub fn headless_service(lc: &LogCluster) -> String {
    format!("{}-headless", cluster_name(lc))
}
pub fn bootstrap_service(lc: &LogCluster) -> String {
    format!("{}-bootstrap", cluster_name(lc))
}
pub fn config_map(lc: &LogCluster) -> String {
    format!("{}-config", cluster_name(lc))
}
/// Secrets of a secured cluster: the CA's key and certificate (operator only), the CA certificate for
/// clients, the brokers' keystores, the operator's client certificate.
pub fn cluster_ca(lc: &LogCluster) -> String {
    format!("{}-cluster-ca", cluster_name(lc))
}
pub fn cluster_ca_cert(lc: &LogCluster) -> String {
    format!("{}-cluster-ca-cert", cluster_name(lc))
}
pub fn broker_certs(lc: &LogCluster) -> String {
    format!("{}-broker-certs", cluster_name(lc))
}
pub fn operator_cert(lc: &LogCluster) -> String {
    format!("{}-operator-cert", cluster_name(lc))
}

pub fn pod(lc: &LogCluster, ordinal: i32) -> String {
    format!("{}-{ordinal}", statefulset(lc))
}
/// Name of the StatefulSet's data volumeClaimTemplate.
pub const DATA_VOLUME: &str = "data";
/// PVC the StatefulSet controller creates for an ordinal.
pub fn data_claim(lc: &LogCluster, ordinal: i32) -> String {
    format!("{DATA_VOLUME}-{}", pod(lc, ordinal))
}
/// Cluster-scoped names carry the namespace so clusters of the same name do not collide.
pub fn local_storage_class(lc: &LogCluster) -> String {
    format!("strata-local-{}-{}", namespace(lc), cluster_name(lc))
}
pub fn local_volume(lc: &LogCluster, index: usize) -> String {
    format!("strata-{}-{}-{index}", namespace(lc), cluster_name(lc))
}
/// The bootstrap Service's address on `port`.
pub fn bootstrap_address(lc: &LogCluster, port: i32) -> String {
    format!("{}.{}.svc:{port}", bootstrap_service(lc), namespace(lc))
}

/// Keys of [`selector_labels`]; users cannot override them through `podLabels`.
pub fn selector_labels_keys() -> [&'static str; 3] {
    [LABEL_NAME, LABEL_INSTANCE, LABEL_COMPONENT]
}

/// Labels that select this cluster's broker pods (also on every object the operator creates).
pub fn selector_labels(lc: &LogCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_INSTANCE.to_string(), cluster_name(lc)),
        (LABEL_COMPONENT.to_string(), COMPONENT.to_string()),
    ])
}

pub fn labels(lc: &LogCluster) -> BTreeMap<String, String> {
    let mut l = selector_labels(lc);
    l.insert(LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string());
    l
}

/// Labels for cluster-scoped objects, which are found again by label on deletion.
pub fn cluster_scoped_labels(lc: &LogCluster) -> BTreeMap<String, String> {
    let mut l = labels(lc);
    l.insert(LABEL_CLUSTER_NAMESPACE.to_string(), namespace(lc));
    l
}

pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Ordinal of a StatefulSet pod name (`<sts>-<n>`), if it belongs to `sts`.
pub fn ordinal_of(sts: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_parsed_only_for_own_pods() {
        assert_eq!(ordinal_of("logs", "logs-3"), Some(3));
        assert_eq!(ordinal_of("logs", "logs-x"), None);
        assert_eq!(ordinal_of("logs", "logs2-1"), None);
        assert_eq!(ordinal_of("logs", "other-1"), None);
    }
}
