//! Kafka's ACL model: a binding is a resource pattern (type, name, literal or prefixed) and an entry
//! (principal, host, operation, allow/deny). Values carry Kafka's wire codes; ANY and MATCH exist only in
//! filters, so a binding can never hold them.

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name matching every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// A principal matching every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// A host matching every host.
pub const WILDCARD_HOST: &str = "*";

/// Defines an enum with Kafka's wire codes and names, parsing only the codes a binding may hold.
macro_rules! coded {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        // Serialized (metadata records, JSON output) by Kafka's names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        /// Kafka's names, case-insensitive, `-` for `_` (`idempotent-write`, `IDEMPOTENT_WRITE`).
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                let wanted = s.trim().to_ascii_uppercase().replace('-', "_");
                $name::ALL.iter().copied().find(|v| v.name() == wanted).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                    format!("{s:?}: expected one of {}", names.join(", "))
                })
            }
        }
    };
}

coded!(
    /// Kafka's ResourceType (0 UNKNOWN and 1 ANY are filter-only).
    ResourceType {
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded!(
    /// Kafka's PatternType of a binding (ANY = 1 and MATCH = 2 are filter-only).
    PatternType {
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded!(
    /// Kafka's AclOperation (ANY = 1 is filter-only).
    Operation {
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

coded!(
    /// Kafka's AclPermissionType (ANY = 1 is filter-only).
    Permission {
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// Filter codes shared by every enum above.
pub const ANY: i8 = 1;
/// The pattern type of a filter matching the bindings that apply to a resource name.
pub const MATCH: i8 = 2;

impl Operation {
    /// Whether an ALLOW binding for `self` allows `requested`: ALL allows everything, and as in Kafka READ,
    /// WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    pub fn allows(self, requested: Operation) -> bool {
        use Operation::*;
        self == All
            || self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY binding for `self` denies `requested`: denials imply nothing but ALL.
    pub fn denies(self, requested: Operation) -> bool {
        self == Operation::All || self == requested
    }

    /// The operations Kafka reports in authorized-operations fields for a resource type.
    pub fn reported_for(resource_type: ResourceType) -> &'static [Operation] {
        use Operation::*;
        match resource_type {
            ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// An ACL: who may (or may not) do what on which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`; `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why a binding cannot be created: Kafka answers INVALID_REQUEST with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// A binding from CreateAcls' wire fields, validated as Kafka validates new ACLs.
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let bad = |what: &str, code: i8| InvalidAcl(format!("invalid {what} {code}"));
        let resource_type = ResourceType::from_code(resource_type).ok_or_else(|| bad("resource type", resource_type))?;
        let pattern_type = PatternType::from_code(pattern_type).ok_or_else(|| bad("pattern type", pattern_type))?;
        let operation = Operation::from_code(operation).ok_or_else(|| bad("operation", operation))?;
        let permission = Permission::from_code(permission).ok_or_else(|| bad("permission type", permission))?;
        if resource_name.is_empty() {
            return Err(InvalidAcl("resource name should not be empty".into()));
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return Err(InvalidAcl(format!("the only valid name for the CLUSTER resource is {CLUSTER_NAME}")));
        }
        check_principal(principal)?;
        if host.is_empty() {
            return Err(InvalidAcl("host should not be empty (use * for any host)".into()));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        })
    }
}

/// A principal is `Type:name` with a non-empty type and name.
pub fn check_principal(principal: &str) -> Result<(), InvalidAcl> {
    match principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(InvalidAcl(format!("could not parse principal {principal:?}: expected Type:name, e.g. User:alice"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    #[test]
    fn codes_round_trip_and_filter_codes_are_not_binding_values() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_code(op.code()), Some(*op));
        }
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(t.code()), Some(*t));
        }
        for code in [0, ANY, 15, -1] {
            assert!(Operation::from_code(code).is_none(), "{code}");
        }
        for code in [0, ANY, 8, -1] {
            assert!(ResourceType::from_code(code).is_none(), "{code}");
        }
        for code in [0, ANY, MATCH, 5] {
            assert!(PatternType::from_code(code).is_none(), "{code}");
        }
        for code in [0, ANY, 4] {
            assert!(Permission::from_code(code).is_none(), "{code}");
        }
    }

    #[test]
    fn serialized_by_kafkas_names() {
        for op in Operation::ALL {
            assert_eq!(serde_json::to_string(op).unwrap(), format!("\"{}\"", op.name()));
        }
        for t in ResourceType::ALL {
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{}\"", t.name()));
        }
    }

    #[test]
    fn names_parse_as_kafka_tools_write_them() {
        assert_eq!("idempotent-write".parse::<Operation>(), Ok(IdempotentWrite));
        assert_eq!("Read".parse::<Operation>(), Ok(Read));
        assert_eq!("transactional_id".parse::<ResourceType>(), Ok(ResourceType::TransactionalId));
        assert_eq!("prefixed".parse::<PatternType>(), Ok(PatternType::Prefixed));
        let err = "any".parse::<Operation>().unwrap_err();
        assert!(err.contains("expected one of ALL, READ"), "{err}");
    }

    #[test]
    fn implied_operations() {
        // (granted, requested, allowed by ALLOW, denied by DENY)
        let cases = [
            (All, Write, true, true),
            (Read, Read, true, true),
            (Read, Describe, true, false),
            (Write, Describe, true, false),
            (Delete, Describe, true, false),
            (Alter, Describe, true, false),
            (Create, Describe, false, false),
            (AlterConfigs, DescribeConfigs, true, false),
            (DescribeConfigs, AlterConfigs, false, false),
            (Describe, Read, false, false),
            (Read, Write, false, false),
            (ClusterAction, IdempotentWrite, false, false),
        ];
        for (granted, requested, allows, denies) in cases {
            assert_eq!(granted.allows(requested), allows, "{granted} allows {requested}");
            assert_eq!(granted.denies(requested), denies, "{granted} denies {requested}");
        }
    }

    #[test]
    fn new_bindings_are_validated_as_kafka_does() {
        let ok = AclBinding::from_wire(2, "t", 3, "User:alice", "*", 3, 3).unwrap();
        assert_eq!(
            (ok.resource_type, ok.pattern_type, ok.operation, ok.permission),
            (ResourceType::Topic, PatternType::Literal, Read, Permission::Allow)
        );
        // (resource type, name, pattern type, principal, host, operation, permission, what the error names)
        type Case<'a> = (i8, &'a str, i8, &'a str, &'a str, i8, i8, &'a str);
        let cases: [Case; 12] = [
            (0, "t", 3, "User:a", "*", 3, 3, "resource type"),
            (1, "t", 3, "User:a", "*", 3, 3, "resource type"),
            (2, "t", 1, "User:a", "*", 3, 3, "pattern type"),
            (2, "t", 2, "User:a", "*", 3, 3, "pattern type"),
            (2, "t", 3, "User:a", "*", 1, 3, "operation"),
            (2, "t", 3, "User:a", "*", 0, 3, "operation"),
            (2, "t", 3, "User:a", "*", 3, 1, "permission"),
            (2, "", 3, "User:a", "*", 3, 3, "empty"),
            (4, "other", 3, "User:a", "*", 3, 3, "kafka-cluster"),
            (2, "t", 3, "alice", "*", 3, 3, "principal"),
            (2, "t", 3, "User:", "*", 3, 3, "principal"),
            (2, "t", 3, "User:a", "", 3, 3, "host"),
        ];
        for (rt, name, pt, principal, host, op, perm, why) in cases {
            let err = AclBinding::from_wire(rt, name, pt, principal, host, op, perm).unwrap_err();
            assert!(err.0.contains(why), "{err} should mention {why}");
        }
        AclBinding::from_wire(4, CLUSTER_NAME, 3, "User:*", "10.0.0.1", 9, 2).unwrap();
    }
}
