//! The `LogCluster` custom resource (`strata.io/v1alpha1`).
//!
//! What the OpenAPI schema can express (types, ranges, enums, required fields, defaults) is put
//! into the schema so the apiserver rejects it up front; everything else is checked by
//! [`crate::validation`] and reported in the status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::broker_contract;

pub const GROUP: &str = "strata.io";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "LogCluster";

/// A Strata cluster: a set of Kafka-compatible brokers run as one StatefulSet.
// clippy reads the repeated `type_ = ...` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.io",
    version = "v1alpha1",
    kind = "LogCluster",
    namespaced,
    status = "LogClusterStatus",
    shortname = "lc",
    doc = "A Strata cluster: Kafka-compatible brokers run as one StatefulSet, managed by strata-operator.",
    category = "strata",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Bootstrap", type_ = "string", json_path = ".status.bootstrapServers"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LogClusterSpec {
    /// Number of brokers. The first `min(3, replicas)` brokers at creation are the controller
    /// voters, and stay so: a scale-down that would remove one is refused. Added brokers get a
    /// fair share of the partition replicas; removed brokers are drained first (refused when the
    /// rest cannot hold a topic's replication factor), unless the one-shot annotation
    /// `strata.io/force-scale-down: "true"` removes them as they are.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Broker container image.
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Broker container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Pod affinity; when unset, brokers prefer to run on different nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Extra annotations on broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Extra labels on broker pods (the operator's own selector labels cannot be overridden).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Secrets for pulling the broker image from a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// PriorityClass of the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub priority_class_name: Option<String>,
    /// ServiceAccount the broker pods run as (the namespace's `default` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub service_account_name: Option<String>,
    /// Extra environment variables of the broker container. Names the operator sets itself
    /// (`STRATA_*`, `POD_IP`, `POD_NAMESPACE`) are rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Seconds a broker gets to shut down cleanly after SIGTERM.
    #[serde(default = "default_grace")]
    #[schemars(range(min = 1, max = 3600))]
    pub termination_grace_period_seconds: i64,
    #[serde(default)]
    pub listeners: ListenersSpec,
    pub storage: StorageSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Other broker settings by their Kafka names, as YAML strings, numbers or booleans;
    /// unknown keys and values out of range are rejected (status condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, ConfigValue>>,
    #[serde(default)]
    pub tuning: TuningSpec,
    #[serde(default)]
    pub metrics: MetricsSpec,
    #[serde(default)]
    pub pod_disruption_budget: PodDisruptionBudgetSpec,
    /// How partition replicas move when brokers are added or removed.
    #[serde(default)]
    pub rebalancing: RebalancingSpec,
    /// The cluster CA of a secured cluster (any listener with TLS or authentication).
    #[serde(default)]
    pub certificate_authority: CertificateAuthoritySpec,
    /// Kafka ACLs (LogUsers carry them); needs a secured cluster. Unset: every client may do
    /// everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<ClusterAuthorization>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAuthorization {
    /// `simple`: Kafka's StandardAuthorizer; what no ACL allows is refused.
    #[serde(rename = "type")]
    pub type_: ClusterAuthorizationType,
    /// Principals allowed everything (`User:<name>`), besides the brokers and the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^User:[^;]+$")))]
    pub super_users: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClusterAuthorizationType {
    Simple,
}

/// Validity of the cluster CA and the certificates it signs, as Strimzi's `clusterCa`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAuthoritySpec {
    /// Days the CA and each broker and operator certificate are valid.
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 2, max = 36500))]
    pub validity_days: i64,
    /// Days before expiry a certificate is renewed (the CA with its own key, so clients keep
    /// trusting it); must be lower than `validityDays`.
    #[serde(default = "default_renewal_days")]
    #[schemars(range(min = 1, max = 36499))]
    pub renewal_days: i64,
}

impl Default for CertificateAuthoritySpec {
    fn default() -> Self {
        Self { validity_days: default_validity_days(), renewal_days: default_renewal_days() }
    }
}

fn default_validity_days() -> i64 {
    365
}
fn default_renewal_days() -> i64 {
    30
}

fn default_replicas() -> i32 {
    3
}
fn default_grace() -> i64 {
    60
}

/// One `config` value: a string, number or boolean, rendered to the broker as Kafka writes it.
/// Any JSON is accepted when reading, so that a stored object of another shape still reaches
/// validation (and a status condition) rather than failing to deserialize.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct ConfigValue(pub serde_json::Value);

impl ConfigValue {
    /// The value as the broker's properties file spells it; `None` for lists, objects and null.
    pub fn render(&self) -> Option<String> {
        match &self.0 {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(s: &str) -> Self {
        ConfigValue(serde_json::Value::String(s.to_string()))
    }
}

impl JsonSchema for ConfigValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigValue".into()
    }

    /// apiextensions/v1 cannot type a string-or-number-or-boolean union (only int-or-string),
    /// so the value is left open here and non-scalars are rejected by validation.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenersSpec {
    /// Kafka client port.
    #[serde(default = "default_client_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub client_port: i32,
    /// What brokers advertise to clients: `PodDNS` (`<pod>.<headless-service>.<namespace>.svc`),
    /// `PodIP` (for clusters without DNS), or `Explicit` (`advertisedHosts[ordinal]`).
    #[serde(default)]
    pub advertise: AdvertiseMode,
    /// Host names per broker ordinal, used with `advertise: Explicit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9.:-]{1,253}$")))]
    pub advertised_hosts: Option<Vec<String>>,
    /// Port of the controller listener on the controller voters (the first brokers, at most 3),
    /// which the brokers use among themselves for the controller quorum.
    #[serde(default = "default_controller_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub controller_port: i32,
    /// Port of the brokers' own listener (replication, the controller quorum's clients, the
    /// operator), which exists once any client listener has TLS or authentication: TLS with
    /// client certificates of the cluster CA only.
    #[serde(default = "default_replication_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub replication_port: i32,
    /// The client listeners. When empty: one internal listener `plain` on `clientPort`, without
    /// TLS or authentication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientListener>,
}

/// A listener for Kafka clients, as Strimzi's `listeners` entries.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientListener {
    /// Lower-case letters and digits, starting with a letter, at most 15 (it also names the
    /// container port); the broker's listener name is its upper case.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9]{0,14}$"))]
    pub name: String,
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// How clients reach it: `internal` (pod and Service addresses inside the cluster).
    #[serde(rename = "type", default)]
    pub type_: ListenerType,
    /// TLS with a broker certificate of the cluster CA (clients trust the CA certificate in
    /// the Secret `<cluster>-cluster-ca-cert`).
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub authentication: ListenerAuthentication,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerType {
    #[default]
    Internal,
}

/// How a listener's clients prove who they are.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ListenerAuthentication {
    /// Anyone who reaches the port (principal `User:ANONYMOUS`).
    #[default]
    #[serde(rename = "none")]
    None,
    /// SASL SCRAM-SHA-512 with a LogUser's password.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// A client certificate of the cluster CA (needs `tls: true`).
    #[serde(rename = "tls")]
    Tls,
}

impl Default for ListenersSpec {
    fn default() -> Self {
        Self {
            client_port: default_client_port(),
            advertise: AdvertiseMode::default(),
            advertised_hosts: None,
            controller_port: default_controller_port(),
            replication_port: default_replication_port(),
            clients: Vec::new(),
        }
    }
}

fn default_client_port() -> i32 {
    broker_contract::DEFAULT_CLIENT_PORT
}

fn default_controller_port() -> i32 {
    broker_contract::DEFAULT_CONTROLLER_PORT
}

fn default_replication_port() -> i32 {
    broker_contract::DEFAULT_REPLICATION_PORT
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AdvertiseMode {
    #[default]
    #[serde(rename = "PodDNS")]
    PodDns,
    #[serde(rename = "PodIP")]
    PodIp,
    Explicit,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's data volume. Raising it grows the claims when their StorageClass
    /// allows expansion (condition `StorageResized`); volumes never shrink.
    #[schemars(transform = crate::quantity::schema_pattern)]
    pub size: Quantity,
    /// StorageClass of the data volumes (cannot be combined with `local`, which makes its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Delete the brokers' PersistentVolumeClaims (and local PersistentVolumes) when brokers
    /// are scaled away or the LogCluster is deleted. Off by default: data outlives the resource.
    #[serde(default)]
    pub delete_claim: bool,
    /// Pre-provisioned local disks: one `local` PersistentVolume per entry, pinned to its node,
    /// in a no-provisioner StorageClass with `WaitForFirstConsumer` binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Vec<LocalVolume>>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalVolume {
    /// Node name (value of `kubernetes.io/hostname`).
    #[schemars(length(min = 1))]
    pub node: String,
    /// Absolute path of the disk's mount point on that node.
    #[schemars(regex(pattern = r"^/.*"))]
    pub path: String,
    /// Capacity of this volume; defaults to `storage.size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::quantity::schema_pattern)]
    pub capacity: Option<Quantity>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// `log.retention.ms`; -1 keeps data forever. Mutually exclusive with `hours`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub ms: Option<i64>,
    /// Retention in hours (converted to `log.retention.ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub hours: Option<i64>,
    /// `log.retention.bytes` per partition; -1 for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub bytes: Option<i64>,
    /// `log.segment.bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1048576))]
    pub segment_bytes: Option<i64>,
    /// `log.roll.ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub segment_ms: Option<i64>,
    /// `log.cleanup.policy`: only `delete` until the broker implements compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = broker_cleanup_policies)]
    pub cleanup_policy: Option<CleanupPolicy>,
}

/// The schema offers the cleanup policies the broker accepts (its config contract), not every
/// variant of [`CleanupPolicy`]. schemars also lists `null` among the values of an optional
/// enum, which apiextensions/v1 rejects (absence is expressed by `nullable`).
fn broker_cleanup_policies(schema: &mut schemars::Schema) {
    let accepted = match broker_contract::lookup(broker_contract::LOG_CLEANUP_POLICY).map(|k| k.kind) {
        Some(broker_contract::ValueKind::OneOf(values)) => values,
        _ => &[],
    };
    if let Some(serde_json::Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| v.as_str().is_some_and(|v| accepted.contains(&v)));
    }
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    Delete,
    // Not offered by the schema yet; kept so objects stored by an earlier CRD still read and
    // are reported invalid.
    Compact,
}

impl CleanupPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        }
    }
}

/// Node-level kernel tuning through a privileged init container (opt-in).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TuningSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_swappiness")]
    #[schemars(range(min = 0, max = 100))]
    pub vm_swappiness: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub vm_dirty_ratio: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub vm_dirty_background_ratio: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 65530))]
    pub vm_max_map_count: Option<i64>,
}

impl Default for TuningSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            vm_swappiness: default_swappiness(),
            vm_dirty_ratio: None,
            vm_dirty_background_ratio: None,
            vm_max_map_count: None,
        }
    }
}

fn default_swappiness() -> i64 {
    1
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Broker HTTP port for /metrics, /healthz and /readyz.
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub port: i32,
    /// Create a Prometheus-operator ServiceMonitor (only if that CRD is installed).
    #[serde(default)]
    pub service_monitor: bool,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        Self { port: default_metrics_port(), service_monitor: false }
    }
}

fn default_metrics_port() -> i32 {
    broker_contract::DEFAULT_METRICS_PORT
}

/// Replicas move by partition reassignment, throttled so the copying leaves room for clients
/// (Kafka's `leader/follower.replication.throttled.rate`; in-sync replicas are never throttled).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalancingSpec {
    /// Replication bytes per second each broker may send and fetch for moving replicas.
    #[serde(default = "default_throttle")]
    #[schemars(range(min = 1))]
    pub throttle_bytes_per_second: i64,
}

impl Default for RebalancingSpec {
    fn default() -> Self {
        Self { throttle_bytes_per_second: default_throttle() }
    }
}

fn default_throttle() -> i64 {
    50 << 20
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 0))]
    pub max_unavailable: i32,
}

impl Default for PodDisruptionBudgetSpec {
    fn default() -> Self {
        Self { enabled: true, max_unavailable: default_max_unavailable() }
    }
}

fn default_true() -> bool {
    true
}
fn default_max_unavailable() -> i32 {
    1
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Desired brokers.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Kafka bootstrap address of the first client listener, for clients inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Every client listener as clients reach it.
    #[serde(default)]
    pub listeners: Vec<ListenerStatus>,
    #[serde(default)]
    pub brokers: Vec<BrokerStatus>,
    /// Ids of the controller voters (`process.roles=broker,controller`), fixed at creation.
    // Never skipped when empty: the status is written with a merge patch, where an absent field
    // would keep the old value.
    #[serde(default)]
    pub controller_voters: Vec<i32>,
    /// Ids of brokers removed by a scale-down that are still to be unregistered from the
    /// controller quorum (after their pods are gone).
    #[serde(default)]
    pub brokers_to_unregister: Vec<i32>,
    /// When the last `strata.io/manual-rolling-update` of the whole cluster was taken up
    /// (the restart token stamped into the pod template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_manual_rolling_update: Option<String>,
}

/// A client listener: where clients bootstrap and how they connect.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    pub bootstrap_servers: String,
    /// Kafka's `security.protocol` for clients: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: String,
    /// `SCRAM-SHA-512` for SASL listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    /// The Secret whose `ca.crt` clients trust (TLS listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_secret: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Broker `node.id` (equals the pod ordinal).
    pub id: i32,
    pub pod: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub ready: bool,
    /// Runs the current pod template (restart-requiring settings applied).
    pub up_to_date: bool,
    /// Effective vm.* values reported by the tuning init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<BTreeMap<String, String>>,
}

/// The CRD as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    Ok(format!(
        "# Generated by `strata-operator crd` from operator/src/crd.rs; do not edit.\n{}",
        serde_yaml::to_string(&LogCluster::crd())?
    ))
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    fn spec_schema() -> serde_json::Value {
        let crd = serde_json::to_value(LogCluster::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
    }

    #[test]
    fn the_schema_offers_what_the_broker_accepts() {
        let spec = spec_schema();
        let cleanup = &spec["properties"]["retention"]["properties"]["cleanupPolicy"];
        assert_eq!(cleanup["enum"], serde_json::json!(["delete"]));
        assert_eq!(cleanup["nullable"], true);
        let storage = &spec["properties"]["storage"]["properties"];
        assert_eq!(storage["size"]["pattern"], crate::quantity::PATTERN);
        assert_eq!(storage["local"]["items"]["properties"]["capacity"]["pattern"], crate::quantity::PATTERN);
        let config = &spec["properties"]["config"]["additionalProperties"];
        assert_eq!(config, &serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}));
    }

    #[test]
    fn config_values_read_any_json_and_render_scalars() {
        let table = [
            (serde_json::json!("a"), Some("a")),
            (serde_json::json!(8), Some("8")),
            (serde_json::json!(-1), Some("-1")),
            (serde_json::json!(0.5), Some("0.5")),
            (serde_json::json!(true), Some("true")),
            (serde_json::json!(null), None),
            (serde_json::json!(["a"]), None),
            (serde_json::json!({"a": 1}), None),
        ];
        for (json, want) in table {
            let v: ConfigValue = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(v.render().as_deref(), want, "{json}");
            assert_eq!(serde_json::to_value(&v).unwrap(), json, "written back as read");
        }
    }
}
