//! Fixtures shared by the unit tests.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use crate::config::BrokerSettings;
use crate::crd::{LogCluster, LogClusterSpec};
use crate::{membership, validation};

/// A minimal valid spec, as the apiserver would store it after defaulting.
pub fn spec() -> LogClusterSpec {
    serde_json::from_value(serde_json::json!({
        "image": "strata/broker:test",
        "storage": {"size": "10Gi"}
    }))
    .expect("fixture spec")
}

pub fn cluster(spec: LogClusterSpec) -> LogCluster {
    let mut lc = LogCluster::new("logs", spec);
    lc.metadata = ObjectMeta {
        name: Some("logs".into()),
        namespace: Some("prod".into()),
        uid: Some("0000-uid".into()),
        generation: Some(4),
        ..Default::default()
    };
    lc
}

pub fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// The settings the operator renders for a new cluster (valid spec, initial voters).
pub fn settings(lc: &LogCluster) -> BrokerSettings {
    let voters = membership::initial_voter_count(lc.spec.replicas);
    validation::validate(&lc.spec).expect("valid spec").with_quorum(membership::static_voters(lc, voters))
}
