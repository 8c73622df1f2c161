//! Kafka's ACL vocabulary as plain types and the ACL admin operations (CreateAcls, DescribeAcls,
//! DeleteAcls; KIP-140), so the operator and the CLI speak them the same way.

use std::fmt;
use std::str::FromStr;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use crate::connection::Connection;
use crate::error::Result;

/// Declares an enum with Kafka's wire codes and names (upper case, as Kafka's tools print them).
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant,)+ }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)+ }
            }
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Case-insensitive; `-` and `_` are the same (`transactional-id`, `TRANSACTIONAL_ID`).
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
                [$($name::$variant,)+]
                    .into_iter()
                    .find(|v| v.name() == wanted)
                    .ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }
    };
}

kafka_enum!(
    /// What an ACL is about.
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches: exactly (`*` for all), or as a prefix. ANY and MATCH only in filters.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    Operation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    Permission {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The name of the cluster resource, as Kafka names it.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// One ACL: `principal` may (or may not) do `operation` on the resources `pattern_type` `resource_name`
/// matches, from `host` (`*`: any).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Which ACLs to describe or delete: `None` and the ANY values match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// Every ACL of one principal.
    pub fn principal(principal: &str) -> AclFilter {
        AclFilter { principal: Some(principal.to_string()), ..AclFilter::any() }
    }

    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// Exactly this binding.
    pub fn exact(b: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: b.resource_type,
            resource_name: Some(b.resource_name.clone()),
            pattern_type: b.pattern_type,
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: b.operation,
            permission: b.permission,
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A binding as a broker answered it; codes this client does not know make it unreadable.
#[allow(clippy::too_many_arguments)]
fn binding(
    resource_type: i8,
    resource_name: &StrBytes,
    pattern_type: i8,
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> Option<AclBinding> {
    Some(AclBinding {
        resource_type: ResourceType::from_code(resource_type)?,
        resource_name: resource_name.to_string(),
        pattern_type: PatternType::from_code(pattern_type)?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_code(operation)?,
        permission: Permission::from_code(permission)?,
    })
}

impl Connection {
    /// Creates ACLs; one outcome per binding, in order.
    pub async fn create_acls(&mut self, bindings: &[AclBinding]) -> Result<Vec<(AclBinding, Result<()>)>> {
        use create_acls_request::AclCreation;
        // v1 added pattern types; v2 is flexible.
        let version = self.version_in::<CreateAclsRequest>(1, 3)?;
        let req = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(s(&b.resource_name))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(s(&b.principal))
                        .with_host(s(&b.host))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        if resp.results.len() != bindings.len() {
            return Err(self.protocol(format!("{} results for {} ACLs", resp.results.len(), bindings.len())));
        }
        Ok(bindings
            .iter()
            .zip(&resp.results)
            .map(|(b, r)| (b.clone(), self.check(r.error_code, "creating an ACL", r.error_message.as_ref())))
            .collect())
    }

    /// The ACLs matching `filter`.
    pub async fn describe_acls(&mut self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let version = self.version_in::<DescribeAclsRequest>(1, 3)?;
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.resource_name.as_deref().map(s))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_deref().map(s))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "describing ACLs", resp.error_message.as_ref())?;
        let mut out = Vec::new();
        for r in &resp.resources {
            for a in &r.acls {
                let b = binding(
                    r.resource_type,
                    &r.resource_name,
                    r.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )
                .ok_or_else(|| self.protocol(format!("an ACL with unknown codes on {}", r.resource_name)))?;
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Deletes the ACLs each filter matches; per filter, the bindings deleted.
    pub async fn delete_acls(&mut self, filters: &[AclFilter]) -> Result<Vec<Result<Vec<AclBinding>>>> {
        use delete_acls_request::DeleteAclsFilter;
        let version = self.version_in::<DeleteAclsRequest>(1, 3)?;
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(f.resource_name.as_deref().map(s))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(f.principal.as_deref().map(s))
                        .with_host_filter(f.host.as_deref().map(s))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let resp = self.send(version, &req).await?;
        if resp.filter_results.len() != filters.len() {
            return Err(self.protocol(format!("{} results for {} filters", resp.filter_results.len(), filters.len())));
        }
        Ok(resp
            .filter_results
            .iter()
            .map(|r| {
                self.check(r.error_code, "deleting ACLs", r.error_message.as_ref())?;
                r.matching_acls
                    .iter()
                    .filter(|m| m.error_code == 0)
                    .map(|m| {
                        binding(
                            m.resource_type,
                            &m.resource_name,
                            m.pattern_type,
                            &m.principal,
                            &m.host,
                            m.operation,
                            m.permission_type,
                        )
                        .ok_or_else(|| self.protocol("a deleted ACL with unknown codes".to_string()))
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for code in 1..=14 {
            let op = Operation::from_code(code).unwrap();
            assert_eq!(op.code(), code);
            assert_eq!(op.name().parse::<Operation>().unwrap(), op);
        }
        assert_eq!(Operation::from_code(0), None);
        assert_eq!("transactional-id".parse::<ResourceType>(), Ok(ResourceType::TransactionalId));
        assert_eq!("Prefixed".parse::<PatternType>(), Ok(PatternType::Prefixed));
        assert_eq!("allow".parse::<Permission>(), Ok(Permission::Allow));
        assert!("reads".parse::<Operation>().unwrap_err().contains("unknown Operation \"reads\""));
        assert_eq!(ResourceType::Cluster.to_string(), "CLUSTER");
    }
}
