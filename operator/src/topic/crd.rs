//! The `LogTopic` custom resource (`strata.io/v1alpha1`): one Kafka topic of a LogCluster in the
//! same namespace, like Strimzi's KafkaTopic. The cluster is named by `spec.cluster` (a field, not
//! a label, so the schema can require it).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka topic managed by strata-operator.
// clippy reads the repeated `type_ = ...` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.io",
    version = "v1alpha1",
    kind = "LogTopic",
    namespaced,
    status = "LogTopicStatus",
    shortname = "lt",
    doc = "A Kafka topic of a LogCluster in the same namespace, managed by strata-operator.",
    category = "strata",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Topic", type_ = "string", json_path = ".status.topicName"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".status.partitions"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LogTopicSpec {
    /// Name of the LogCluster (in this namespace) that holds the topic. Fixed once the topic exists.
    #[schemars(length(min = 1))]
    pub cluster: String,
    /// Kafka topic name; defaults to `metadata.name`. Fixed once the topic exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic_name: Option<String>,
    /// Number of partitions (the broker's `num.partitions` when unset). Can grow, never shrink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub partitions: Option<i32>,
    /// Replication factor (the broker's `default.replication.factor` when unset); changed by
    /// reassigning partitions, at most the number of brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replicas: Option<i32>,
    /// Topic settings by their Kafka names (`retention.ms`, `cleanup.policy`, ...). Values are YAML
    /// strings, numbers or booleans (lists of them are joined with commas); the broker judges
    /// names and values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "config_schema")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// What deleting this resource does to the Kafka topic: `Delete` it (and its data) first, or
    /// `Retain` it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// A map of scalars of mixed types, which a structural schema cannot type (no `anyOf` of types);
/// the operator checks the values.
fn config_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogTopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the topic exists as the spec says (False with the reason otherwise).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The LogCluster this resource manages a topic of, recorded before the operator first touches
    /// the topic; a later change of `spec.cluster` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The Kafka topic this resource manages, recorded like `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Kafka's topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// Partitions as the cluster reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor as the cluster reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Config keys the operator may have set on the topic: a key removed from `spec.config` is
    /// deleted from the topic only if listed here (overrides set by others are left alone).
    // Never skipped when empty: the status is written with a merge patch.
    #[serde(default)]
    pub managed_config: Vec<String>,
    /// Partitions being reassigned for a replication-factor change.
    #[serde(default)]
    pub reassigning_partitions: Vec<i32>,
}

/// The CRD as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    Ok(format!(
        "# Generated by `strata-operator crd LogTopic` from operator/src/topic/crd.rs; do not edit.\n{}",
        serde_yaml::to_string(&LogTopic::crd())?
    ))
}
