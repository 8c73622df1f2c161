//! The `LogUser` custom resource (`strata.io/v1alpha1`), like Strimzi's KafkaUser: a user of a LogCluster
//! in the same namespace, with its credentials (a SCRAM-SHA-512 password or a client certificate of the
//! cluster CA, handed over in a Secret named like the resource) and its ACLs. The Kafka principal is
//! `User:<metadata.name>` either way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka user managed by strata-operator.
// clippy reads the repeated `type_ = ...` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "strata.io",
    version = "v1alpha1",
    kind = "LogUser",
    namespaced,
    status = "LogUserStatus",
    shortname = "lu",
    doc = "A Kafka user of a LogCluster in the same namespace: credentials in a Secret and ACLs, managed by strata-operator.",
    category = "strata",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Authentication", type_ = "string", json_path = ".spec.authentication.type"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LogUserSpec {
    /// Name of the LogCluster (in this namespace) the user belongs to.
    #[schemars(length(min = 1))]
    pub cluster: String,
    pub authentication: UserAuthentication,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct UserAuthentication {
    /// `scram-sha-512`: a generated password (Secret keys `password` and `sasl.jaas.config`);
    /// `tls`: a client certificate of the cluster CA (Secret keys `user.crt`, `user.key`, `ca.crt`).
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticationType {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct UserAuthorization {
    /// `simple`: Kafka ACLs, kept exactly as listed (ACLs of this principal made elsewhere are removed).
    #[serde(rename = "type")]
    pub type_: AuthorizationType,
    #[serde(default)]
    pub acls: Vec<AclRule>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationType {
    Simple,
}

/// One rule: the operations allowed (or denied) on a resource, from a host.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// `*` for any host, else an IP address.
    #[serde(default = "any_host")]
    #[schemars(length(min = 1))]
    pub host: String,
    #[serde(rename = "type", default)]
    pub type_: AclRuleType,
}

fn any_host() -> String {
    "*".to_string()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// The resource's name (`*` for all); not used for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub name: Option<String>,
    /// `literal` (the name exactly, or `*`) or `prefix` (names starting with it).
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclPatternType {
    #[default]
    Literal,
    Prefix,
}

/// Kafka's operations, named as Strimzi names them.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AclOperation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    AlterConfigs,
    DescribeConfigs,
    IdempotentWrite,
    All,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AclRuleType {
    #[default]
    Allow,
    Deny,
}

/// Observed state, written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogUserStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the credentials and ACLs are in the cluster as the spec says.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The Kafka principal (`User:<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The CRD as committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    Ok(format!(
        "# Generated by `strata-operator crd LogUser` from operator/src/user/crd.rs; do not edit.\n{}",
        serde_yaml::to_string(&LogUser::crd())?
    ))
}
