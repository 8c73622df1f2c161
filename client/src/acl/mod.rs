//! Kafka's ACL model, shared by the broker (which stores and enforces ACLs), the operator and the CLI: bindings
//! and their validation ([`binding`]), the filters of DescribeAcls and DeleteAcls ([`filter`]), and the admin
//! operations CreateAcls, DescribeAcls and DeleteAcls (KIP-140) over a [`Connection`].

mod binding;
mod filter;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

pub use binding::{
    check_principal, AclBinding, InvalidAcl, Operation, PatternType, Permission, ResourceType, ANY, CLUSTER_NAME, MATCH,
    WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};
pub use filter::{AclFilter, PatternFilter};

use crate::connection::Connection;
use crate::error::Result;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A binding as a broker answered it.
#[allow(clippy::too_many_arguments)]
fn binding(
    conn: &Connection,
    resource_type: i8,
    resource_name: &StrBytes,
    pattern_type: i8,
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> Result<AclBinding> {
    AclBinding::from_wire(resource_type, resource_name, pattern_type, principal, host, operation, permission)
        .map_err(|e| conn.protocol(format!("an ACL the broker answered: {e}")))
}

/// A filter's wire codes: (resource type, pattern type, operation, permission).
fn codes(f: &AclFilter) -> (i8, i8, i8, i8) {
    let pattern = match f.pattern {
        PatternFilter::Any => ANY,
        PatternFilter::Match => MATCH,
        PatternFilter::Exactly(t) => t.code(),
    };
    (
        f.resource_type.map_or(ANY, ResourceType::code),
        pattern,
        f.operation.map_or(ANY, Operation::code),
        f.permission.map_or(ANY, Permission::code),
    )
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
        let (resource_type, pattern_type, operation, permission) = codes(filter);
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(resource_type)
            .with_resource_name_filter(filter.resource_name.as_deref().map(s))
            .with_pattern_type_filter(pattern_type)
            .with_principal_filter(filter.principal.as_deref().map(s))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(operation)
            .with_permission_type(permission);
        let resp = self.send(version, &req).await?;
        self.check(resp.error_code, "describing ACLs", resp.error_message.as_ref())?;
        let mut out = Vec::new();
        for r in &resp.resources {
            for a in &r.acls {
                let b = binding(
                    self,
                    r.resource_type,
                    &r.resource_name,
                    r.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )?;
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
                    let (resource_type, pattern_type, operation, permission) = codes(f);
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(resource_type)
                        .with_resource_name_filter(f.resource_name.as_deref().map(s))
                        .with_pattern_type_filter(pattern_type)
                        .with_principal_filter(f.principal.as_deref().map(s))
                        .with_host_filter(f.host.as_deref().map(s))
                        .with_operation(operation)
                        .with_permission_type(permission)
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
                            self,
                            m.resource_type,
                            &m.resource_name,
                            m.pattern_type,
                            &m.principal,
                            &m.host,
                            m.operation,
                            m.permission_type,
                        )
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
    fn filters_go_out_with_any_for_what_they_leave_open() {
        assert_eq!(codes(&AclFilter::principal("User:a")), (ANY, ANY, ANY, ANY));
        let b = AclBinding::from_wire(2, "t", 4, "User:a", "*", 3, 2).unwrap();
        assert_eq!(codes(&AclFilter::exact(&b)), (2, 4, 3, 2));
    }
}
