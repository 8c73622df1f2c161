//! Pure functions from a LogCluster (and its validated settings) to the objects that run it.
//! Nothing here talks to the apiserver; the reconciler applies the results.

mod configmap;
mod pdb;
mod secrets;
mod servicemonitor;
mod services;
mod statefulset;
mod storage;

pub use configmap::config_map;
pub use pdb::pod_disruption_budget;
pub use secrets::{
    broker_certs_secret, cluster_ca_cert_secret, cluster_ca_secret, operator_cert_secret, operator_identity,
    stored as stored_certificates,
};
pub use servicemonitor::{service_monitor, SERVICE_MONITOR_API_VERSION, SERVICE_MONITOR_KIND};
pub use services::{bootstrap_service, headless_service};
pub use statefulset::{keep_claim_templates, record_membership, record_scaling, restart_hash, statefulset};
pub use storage::{local_persistent_volumes, local_storage_class};

use kube::api::ObjectMeta;
use kube::Resource;

use crate::crd::LogCluster;
use crate::names;

pub const METRICS_PORT_NAME: &str = "metrics";
/// The controller listener; only the voters listen on it, but all pods share one template.
pub const CONTROLLER_PORT_NAME: &str = "controller";

/// Metadata for a namespaced object owned (and garbage-collected with) the LogCluster.
fn owned_meta(lc: &LogCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names::namespace(lc)),
        labels: Some(names::labels(lc)),
        owner_references: lc.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
}

/// Metadata for a cluster-scoped object: no owner reference is possible, so it is labelled
/// with the owner's namespace and name and removed by the finalizer.
fn cluster_scoped_meta(lc: &LogCluster, name: String) -> ObjectMeta {
    ObjectMeta { name: Some(name), labels: Some(names::cluster_scoped_labels(lc)), ..Default::default() }
}

#[cfg(test)]
fn assert_owned(meta: &ObjectMeta) {
    let refs = meta.owner_references.as_ref().expect("owner references");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].kind, "LogCluster");
    assert_eq!(refs[0].name, "logs");
    assert_eq!(refs[0].uid, "0000-uid");
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(meta.namespace.as_deref(), Some("prod"));
    assert_eq!(meta.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "logs");
}
