//! What a LogUser asks of the cluster, as Kafka ACL bindings, and the changes that bring the cluster's
//! ACLs of the user's principal there. Pure: the controller does the I/O.

use std::collections::BTreeSet;

use strata_client::acl::{AclBinding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME};

use crate::cluster_ca::{BROKER_COMMON_NAME, OPERATOR_COMMON_NAME};

use super::crd::{AclOperation, AclPatternType, AclResourceType, AclRuleType, UserAuthorization};

/// The Kafka principal of a user: its name, whether it authenticates with SCRAM or with a certificate
/// (the brokers map `CN=<name>,O=strata.io` to `<name>`).
pub fn principal(user: &str) -> String {
    format!("User:{user}")
}

/// Users may not take the brokers' or the operator's principal: those are super users.
pub fn reserved(user: &str) -> Option<String> {
    [BROKER_COMMON_NAME, OPERATOR_COMMON_NAME]
        .contains(&user)
        .then(|| format!("the name {user} is reserved: User:{user} is a super user of every cluster"))
}

fn resource_type(t: AclResourceType) -> ResourceType {
    match t {
        AclResourceType::Topic => ResourceType::Topic,
        AclResourceType::Group => ResourceType::Group,
        AclResourceType::Cluster => ResourceType::Cluster,
        AclResourceType::TransactionalId => ResourceType::TransactionalId,
    }
}

fn operation(o: AclOperation) -> Operation {
    match o {
        AclOperation::Read => Operation::Read,
        AclOperation::Write => Operation::Write,
        AclOperation::Create => Operation::Create,
        AclOperation::Delete => Operation::Delete,
        AclOperation::Alter => Operation::Alter,
        AclOperation::Describe => Operation::Describe,
        AclOperation::ClusterAction => Operation::ClusterAction,
        AclOperation::AlterConfigs => Operation::AlterConfigs,
        AclOperation::DescribeConfigs => Operation::DescribeConfigs,
        AclOperation::IdempotentWrite => Operation::IdempotentWrite,
        AclOperation::All => Operation::All,
    }
}

/// The bindings the spec asks for, or every problem with it.
pub fn bindings(user: &str, authz: Option<&UserAuthorization>) -> Result<BTreeSet<AclBinding>, Vec<String>> {
    let (mut out, mut errors) = (BTreeSet::new(), Vec::new());
    for (i, rule) in authz.map(|a| a.acls.as_slice()).unwrap_or_default().iter().enumerate() {
        let at = format!("authorization.acls[{i}]");
        let r = &rule.resource;
        let name = match (r.type_, r.name.as_deref()) {
            (AclResourceType::Cluster, None | Some(CLUSTER_NAME)) => CLUSTER_NAME.to_string(),
            (AclResourceType::Cluster, Some(other)) => {
                errors.push(format!("{at}: the cluster resource has no name (got {other:?})"));
                continue;
            }
            (_, None) => {
                errors.push(format!("{at}: resource.name is required for {:?}", r.type_));
                continue;
            }
            (_, Some(n)) => n.to_string(),
        };
        let pattern_type = match r.pattern_type {
            AclPatternType::Literal => PatternType::Literal,
            AclPatternType::Prefix if r.type_ == AclResourceType::Cluster => {
                errors.push(format!("{at}: the cluster resource cannot be a prefix"));
                continue;
            }
            AclPatternType::Prefix => PatternType::Prefixed,
        };
        if rule.host != "*" && rule.host.parse::<std::net::IpAddr>().is_err() {
            errors.push(format!("{at}: host {:?} is neither * nor an IP address", rule.host));
            continue;
        }
        for op in &rule.operations {
            let operation = operation(*op);
            if operation != Operation::All && !Operation::reported_for(resource_type(r.type_)).contains(&operation) {
                errors.push(format!("{at}: {op:?} does not apply to {:?} resources", r.type_));
                continue;
            }
            out.insert(AclBinding {
                resource_type: resource_type(r.type_),
                resource_name: name.clone(),
                pattern_type,
                principal: principal(user),
                host: rule.host.clone(),
                operation,
                permission: match rule.type_ {
                    AclRuleType::Allow => Permission::Allow,
                    AclRuleType::Deny => Permission::Deny,
                },
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// ACL changes that make `existing` (the principal's ACLs in the cluster) equal `desired`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclChanges {
    pub create: Vec<AclBinding>,
    pub delete: Vec<AclBinding>,
}

impl AclChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

pub fn acl_changes(desired: &BTreeSet<AclBinding>, existing: &[AclBinding]) -> AclChanges {
    let existing: BTreeSet<&AclBinding> = existing.iter().collect();
    AclChanges {
        create: desired.iter().filter(|b| !existing.contains(b)).cloned().collect(),
        delete: existing.into_iter().filter(|b| !desired.contains(*b)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::crd::{AclResource, AclRule, AuthorizationType};

    fn rule(type_: AclResourceType, name: Option<&str>, pattern: AclPatternType, ops: &[AclOperation]) -> AclRule {
        AclRule {
            resource: AclResource { type_, name: name.map(str::to_string), pattern_type: pattern },
            operations: ops.to_vec(),
            host: "*".into(),
            type_: AclRuleType::Allow,
        }
    }

    fn authz(acls: Vec<AclRule>) -> UserAuthorization {
        UserAuthorization { type_: AuthorizationType::Simple, acls }
    }

    #[test]
    fn rules_become_one_binding_per_operation() {
        let spec = authz(vec![
            rule(AclResourceType::Topic, Some("orders"), AclPatternType::Literal, &[AclOperation::Read, AclOperation::Describe]),
            rule(AclResourceType::Group, Some("billing-"), AclPatternType::Prefix, &[AclOperation::Read]),
            rule(AclResourceType::Cluster, None, AclPatternType::Literal, &[AclOperation::IdempotentWrite]),
        ]);
        let b = bindings("alice", Some(&spec)).unwrap();
        let got: Vec<String> = b
            .iter()
            .map(|b| {
                format!(
                    "{} {} {} {} {} {} {}",
                    b.principal, b.permission, b.operation, b.resource_type, b.pattern_type, b.resource_name, b.host
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "User:alice ALLOW READ TOPIC LITERAL orders *",
                "User:alice ALLOW DESCRIBE TOPIC LITERAL orders *",
                "User:alice ALLOW READ GROUP PREFIXED billing- *",
                "User:alice ALLOW IDEMPOTENT_WRITE CLUSTER LITERAL kafka-cluster *",
            ]
        );
        assert_eq!(bindings("alice", None).unwrap(), BTreeSet::new());
    }

    #[test]
    fn bad_rules_are_reported_each() {
        let mut bad_host = rule(AclResourceType::Topic, Some("t"), AclPatternType::Literal, &[AclOperation::Read]);
        bad_host.host = "example.com".into();
        let spec = authz(vec![
            rule(AclResourceType::Topic, None, AclPatternType::Literal, &[AclOperation::Read]),
            rule(AclResourceType::Cluster, Some("other"), AclPatternType::Literal, &[AclOperation::Alter]),
            rule(AclResourceType::Cluster, None, AclPatternType::Prefix, &[AclOperation::Alter]),
            rule(AclResourceType::Group, Some("g"), AclPatternType::Literal, &[AclOperation::Write]),
            bad_host,
        ]);
        assert_eq!(
            bindings("bob", Some(&spec)).unwrap_err(),
            [
                "authorization.acls[0]: resource.name is required for Topic",
                "authorization.acls[1]: the cluster resource has no name (got \"other\")",
                "authorization.acls[2]: the cluster resource cannot be a prefix",
                "authorization.acls[3]: Write does not apply to Group resources",
                "authorization.acls[4]: host \"example.com\" is neither * nor an IP address",
            ]
        );
    }

    #[test]
    fn the_brokers_and_operators_names_are_reserved() {
        assert!(reserved("strata-operator").is_some());
        assert!(reserved("strata-broker").is_some());
        assert_eq!(reserved("alice"), None);
    }

    #[test]
    fn changes_create_the_missing_and_delete_the_rest() {
        let spec = authz(vec![rule(
            AclResourceType::Topic,
            Some("a"),
            AclPatternType::Literal,
            &[AclOperation::Read, AclOperation::Write],
        )]);
        let desired = bindings("u", Some(&spec)).unwrap();
        let read = desired.iter().find(|b| b.operation == Operation::Read).unwrap().clone();
        let write = desired.iter().find(|b| b.operation == Operation::Write).unwrap().clone();
        let stray = AclBinding { operation: Operation::Delete, ..read.clone() };
        let changes = acl_changes(&desired, &[read.clone(), stray.clone()]);
        assert_eq!(changes, AclChanges { create: vec![write.clone()], delete: vec![stray] });
        assert!(acl_changes(&desired, &[write, read]).is_empty());
    }
}
