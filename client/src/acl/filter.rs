//! Filters of DescribeAcls and DeleteAcls: each field either fixed or any; a pattern type MATCH selects the
//! bindings that apply to a resource name (literal equal or `*`, prefixed a prefix of it), as Kafka's
//! AclBindingFilter does.

use serde::{Deserialize, Serialize};

use super::binding::{AclBinding, InvalidAcl, Operation, PatternType, Permission, ResourceType, ANY, MATCH, WILDCARD_RESOURCE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    Any,
    Match,
    Exactly(PatternType),
}

/// None in a field: any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// A filter field's code: ANY (None), or a value of the binding's type.
fn field<T>(code: i8, what: &str, parse: fn(i8) -> Option<T>) -> Result<Option<T>, InvalidAcl> {
    match code {
        ANY => Ok(None),
        c => parse(c).map(Some).ok_or_else(|| InvalidAcl(format!("invalid {what} {c} in a filter"))),
    }
}

impl AclFilter {
    /// A filter from DescribeAcls' or DeleteAcls' wire fields; UNKNOWN values are INVALID_REQUEST, as in Kafka.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, InvalidAcl> {
        let pattern = match pattern_type {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            c => PatternFilter::Exactly(
                PatternType::from_code(c).ok_or_else(|| InvalidAcl(format!("invalid pattern type {c} in a filter")))?,
            ),
        };
        Ok(AclFilter {
            resource_type: field(resource_type, "resource type", ResourceType::from_code)?,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: field(operation, "operation", Operation::from_code)?,
            permission: field(permission, "permission type", Permission::from_code)?,
        })
    }

    /// Every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Every binding of one principal.
    pub fn principal(principal: &str) -> AclFilter {
        AclFilter { principal: Some(principal.to_string()), ..AclFilter::any() }
    }

    /// Exactly this binding.
    pub fn exact(b: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: Some(b.resource_type),
            resource_name: Some(b.resource_name.clone()),
            pattern: PatternFilter::Exactly(b.pattern_type),
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: Some(b.operation),
            permission: Some(b.permission),
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        fn is<T: PartialEq>(want: &Option<T>, have: &T) -> bool {
            want.as_ref().is_none_or(|w| w == have)
        }
        is(&self.resource_type, &b.resource_type)
            && self.matches_pattern(b)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && is(&self.operation, &b.operation)
            && is(&self.permission, &b.permission)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        let name = match (&self.pattern, &self.resource_name) {
            (PatternFilter::Exactly(t), _) if *t != b.pattern_type => return false,
            (_, None) => return true,
            (_, Some(name)) => name,
        };
        match (self.pattern, b.pattern_type) {
            (PatternFilter::Match, PatternType::Literal) => *name == b.resource_name || b.resource_name == WILDCARD_RESOURCE,
            (PatternFilter::Match, PatternType::Prefixed) => name.starts_with(&b.resource_name),
            _ => *name == b.resource_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclBinding {
        AclBinding::from_wire(rt, name, pt, principal, "*", op, perm).unwrap()
    }

    #[test]
    fn filters_match_as_kafkas() {
        let lit = binding(2, "orders", 3, "User:a", 3, 3);
        let star = binding(2, "*", 3, "User:a", 3, 3);
        let pre = binding(2, "ord", 4, "User:b", 4, 2);
        let group = binding(3, "orders", 3, "User:a", 3, 3);
        let all = [&lit, &star, &pre, &group];
        let f = |rt, name: Option<&str>, pt, principal: Option<&str>, op, perm| {
            AclFilter::from_wire(rt, name, pt, principal, None, op, perm).unwrap()
        };
        // (filter, which of lit, star, pre, group match)
        let cases = [
            (f(ANY, None, ANY, None, ANY, ANY), [true, true, true, true]),
            (f(2, None, ANY, None, ANY, ANY), [true, true, true, false]),
            (f(ANY, Some("orders"), ANY, None, ANY, ANY), [true, false, false, true]),
            (f(2, Some("orders"), 3, None, ANY, ANY), [true, false, false, false]),
            (f(2, Some("ord"), 4, None, ANY, ANY), [false, false, true, false]),
            (f(2, Some("orders"), 4, None, ANY, ANY), [false, false, false, false]),
            (f(2, Some("orders"), MATCH, None, ANY, ANY), [true, true, true, false]),
            (f(2, Some("other"), MATCH, None, ANY, ANY), [false, true, false, false]),
            (f(2, None, MATCH, None, ANY, ANY), [true, true, true, false]),
            (f(ANY, None, ANY, Some("User:b"), ANY, ANY), [false, false, true, false]),
            (f(ANY, None, ANY, None, 4, ANY), [false, false, true, false]),
            (f(ANY, None, ANY, None, ANY, 3), [true, true, false, true]),
        ];
        for (filter, want) in cases {
            let got: Vec<bool> = all.iter().map(|b| filter.matches(b)).collect();
            assert_eq!(got, want, "{filter:?}");
        }
    }

    #[test]
    fn unknown_filter_values_are_invalid() {
        for (rt, pt, op, perm) in
            [(0, ANY, ANY, ANY), (ANY, 0, ANY, ANY), (ANY, ANY, 0, ANY), (ANY, ANY, ANY, 0), (9, ANY, ANY, ANY)]
        {
            assert!(AclFilter::from_wire(rt, None, pt, None, None, op, perm).is_err(), "{rt} {pt} {op} {perm}");
        }
    }
}
