//! The cluster's ACLs, as the metadata image holds them: by id, and indexed by resource type and name so that
//! a decision looks only at the bindings that can apply (the literal name, the literal `*`, and one lookup per
//! prefix of the name for prefixed bindings) instead of scanning every ACL.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use strata_client::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType, WILDCARD_HOST, WILDCARD_PRINCIPAL, WILDCARD_RESOURCE,
};

use super::Resource;

type ByName = HashMap<ResourceType, HashMap<String, Vec<Entry>>>;

/// A binding as indexed: with its id, and its host parsed once rather than at every decision.
#[derive(Debug, Clone)]
struct Entry {
    id: Uuid,
    binding: Arc<AclBinding>,
    host: Host,
}

#[derive(Debug, Clone, Copy)]
enum Host {
    Any,
    Ip(IpAddr),
    /// Not an address (Kafka compares the client's address with the text): matches no client.
    Never,
}

impl Host {
    fn of(host: &str) -> Host {
        match host {
            WILDCARD_HOST => Host::Any,
            h => h.parse::<IpAddr>().map_or(Host::Never, |ip| Host::Ip(ip.to_canonical())),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AclSet {
    by_id: BTreeMap<Uuid, Arc<AclBinding>>,
    literal: ByName,
    prefixed: ByName,
}

/// What the bindings say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No binding names the resource at all (allow.everyone.if.no.acl.found decides).
    NoAcl,
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: IpAddr,
}

impl Requester<'_> {
    fn matches(&self, e: &Entry) -> bool {
        (e.binding.principal == self.principal || e.binding.principal == WILDCARD_PRINCIPAL)
            && match e.host {
                Host::Any => true,
                Host::Ip(ip) => ip == self.host.to_canonical(),
                Host::Never => false,
            }
    }
}

impl PartialEq for AclSet {
    fn eq(&self, other: &AclSet) -> bool {
        self.by_id == other.by_id
    }
}

impl Eq for AclSet {}

impl AclSet {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    fn index(&mut self, pattern_type: PatternType) -> &mut ByName {
        match pattern_type {
            PatternType::Literal => &mut self.literal,
            PatternType::Prefixed => &mut self.prefixed,
        }
    }

    /// The id of a binding equal to `b`, if there is one.
    pub fn find(&self, b: &AclBinding) -> Option<Uuid> {
        let index = match b.pattern_type {
            PatternType::Literal => &self.literal,
            PatternType::Prefixed => &self.prefixed,
        };
        index.get(&b.resource_type)?.get(&b.resource_name)?.iter().find(|e| *e.binding == *b).map(|e| e.id)
    }

    /// Adds a binding under `id`; false if the id is taken.
    pub fn insert(&mut self, id: Uuid, binding: AclBinding) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        let binding = Arc::new(binding);
        let entry = Entry { id, binding: binding.clone(), host: Host::of(&binding.host) };
        self.index(binding.pattern_type)
            .entry(binding.resource_type)
            .or_default()
            .entry(binding.resource_name.clone())
            .or_default()
            .push(entry);
        self.by_id.insert(id, binding);
        true
    }

    /// Removes the binding with `id`; false if there is none.
    pub fn remove(&mut self, id: Uuid) -> bool {
        let Some(binding) = self.by_id.remove(&id) else { return false };
        let names = self.index(binding.pattern_type).get_mut(&binding.resource_type).expect("indexed type");
        let entries = names.get_mut(&binding.resource_name).expect("indexed name");
        entries.retain(|e| e.id != id);
        if entries.is_empty() {
            names.remove(&binding.resource_name);
        }
        true
    }

    /// The bindings a filter selects, with their ids.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = (Uuid, &'a AclBinding)> + 'a {
        self.by_id.iter().filter(|(_, b)| filter.matches(b)).map(|(id, b)| (*id, &**b))
    }

    /// Every binding that applies to `resource`, whoever asks.
    fn applying<'a>(&'a self, resource: Resource<'a>) -> impl Iterator<Item = &'a Entry> + 'a {
        let literal = self.literal.get(&resource.resource_type);
        let prefixed = self.prefixed.get(&resource.resource_type);
        // A resource named `*` gets its bindings twice, which decides the same.
        let literal_hits = [resource.name, WILDCARD_RESOURCE].into_iter().filter_map(move |n| literal?.get(n));
        let prefixes = resource.name.char_indices().map(|(i, c)| &resource.name[..i + c.len_utf8()]);
        let prefixed_hits = prefixes.filter_map(move |p| prefixed?.get(p));
        literal_hits.chain(prefixed_hits).flatten()
    }

    /// Kafka's rule: a matching DENY wins over any ALLOW; an ALLOW (or one implying the operation) allows;
    /// else the request is denied, unless no binding names the resource at all.
    pub fn decide(&self, who: Requester<'_>, operation: Operation, resource: Resource<'_>) -> Decision {
        let mut named = false;
        let mut allowed = false;
        for e in self.applying(resource) {
            named = true;
            if !who.matches(e) {
                continue;
            }
            let b = &e.binding;
            match b.permission {
                Permission::Deny if b.operation.denies(operation) => return Decision::Deny,
                Permission::Allow if b.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        match (allowed, named) {
            (true, _) => Decision::Allow,
            (false, true) => Decision::Deny,
            (false, false) => Decision::NoAcl,
        }
    }

    /// Whether `who` may do `operation` on some resource of a type (Kafka's authorizeByResourceType, used by
    /// InitProducerId for WRITE on any topic): some ALLOW binding not covered by a DENY of `*` or of a prefix
    /// of its name.
    pub fn allows_any(&self, who: Requester<'_>, operation: Operation, resource_type: ResourceType) -> bool {
        fn relevant<'a>(
            index: &'a ByName,
            who: Requester<'_>,
            operation: Operation,
            resource_type: ResourceType,
            permission: Permission,
        ) -> Vec<&'a str> {
            let Some(names) = index.get(&resource_type) else { return vec![] };
            names
                .iter()
                .filter(|(_, entries)| {
                    entries.iter().any(|e| {
                        let b = &e.binding;
                        b.permission == permission
                            && (b.operation == operation || b.operation == Operation::All)
                            && who.matches(e)
                    })
                })
                .map(|(n, _)| n.as_str())
                .collect()
        }
        let relevant = |index, permission| relevant(index, who, operation, resource_type, permission);
        let (deny_literal, deny_prefixed) =
            (relevant(&self.literal, Permission::Deny), relevant(&self.prefixed, Permission::Deny));
        if deny_literal.contains(&WILDCARD_RESOURCE) {
            return false;
        }
        let dominated = |name: &str| deny_prefixed.iter().any(|p| name.starts_with(p));
        relevant(&self.literal, Permission::Allow)
            .into_iter()
            .any(|n| n == WILDCARD_RESOURCE || (!deny_literal.contains(&n) && !dominated(n)))
            || relevant(&self.prefixed, Permission::Allow).into_iter().any(|n| !dominated(n))
    }
}

impl Serialize for AclSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_id.serialize(s)
    }
}

impl<'de> Deserialize<'de> for AclSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AclSet, D::Error> {
        let by_id = BTreeMap::<Uuid, AclBinding>::deserialize(d)?;
        let mut set = AclSet::default();
        for (id, b) in by_id {
            set.insert(id, b);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        host: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        }
    }

    fn set(bindings: &[AclBinding]) -> AclSet {
        let mut s = AclSet::default();
        for (i, b) in bindings.iter().enumerate() {
            assert!(s.insert(Uuid::from_u128(i as u128 + 1), b.clone()));
        }
        s
    }

    const LIT: PatternType = PatternType::Literal;
    const PRE: PatternType = PatternType::Prefixed;
    const TOPIC: ResourceType = ResourceType::Topic;
    const ALLOW: Permission = Permission::Allow;
    const DENY: Permission = Permission::Deny;

    fn who(principal: &str) -> Requester<'_> {
        Requester { principal, host: "10.0.0.1".parse().unwrap() }
    }

    #[test]
    fn decisions() {
        use Decision::{Allow as A, Deny as D, NoAcl as N};
        // (bindings, principal, operation, topic, decision)
        let cases: Vec<(Vec<AclBinding>, &str, Operation, &str, Decision)> = vec![
            (vec![], "User:a", Read, "t", N),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], "User:a", Read, "t", A),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], "User:b", Read, "t", D),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], "User:a", Write, "t", D),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], "User:a", Describe, "t", A),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], "User:a", Read, "u", N),
            // Wildcards: resource `*`, principal `User:*`.
            (vec![acl(TOPIC, "*", LIT, "User:a", "*", Write, ALLOW)], "User:a", Write, "any", A),
            (vec![acl(TOPIC, "t", LIT, "User:*", "*", Write, ALLOW)], "User:z", Write, "t", A),
            // Prefixed: a prefix of the name, not the other way round; not another resource type.
            (vec![acl(TOPIC, "ord", PRE, "User:a", "*", Read, ALLOW)], "User:a", Read, "orders", A),
            (vec![acl(TOPIC, "orders-", PRE, "User:a", "*", Read, ALLOW)], "User:a", Read, "orders", N),
            (vec![acl(ResourceType::Group, "ord", PRE, "User:a", "*", Read, ALLOW)], "User:a", Read, "orders", N),
            (vec![acl(TOPIC, "ørd", PRE, "User:a", "*", Read, ALLOW)], "User:a", Read, "ørders", A),
            // Deny wins, whatever the order and the pattern.
            (
                vec![acl(TOPIC, "t", LIT, "User:a", "*", All, ALLOW), acl(TOPIC, "t", PRE, "User:a", "*", Write, DENY)],
                "User:a",
                Write,
                "t",
                D,
            ),
            (
                vec![acl(TOPIC, "*", LIT, "User:*", "*", All, DENY), acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)],
                "User:a",
                Read,
                "t",
                D,
            ),
            // A DENY of READ does not deny DESCRIBE (implication is for ALLOW only).
            (
                vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, DENY), acl(TOPIC, "t", LIT, "User:a", "*", Describe, ALLOW)],
                "User:a",
                Describe,
                "t",
                A,
            ),
            // Someone else's DENY names the resource but does not apply.
            (vec![acl(TOPIC, "t", LIT, "User:b", "*", All, DENY)], "User:a", Read, "t", D),
            // Hosts.
            (vec![acl(TOPIC, "t", LIT, "User:a", "10.0.0.1", Read, ALLOW)], "User:a", Read, "t", A),
            (vec![acl(TOPIC, "t", LIT, "User:a", "10.0.0.2", Read, ALLOW)], "User:a", Read, "t", D),
            (vec![acl(TOPIC, "t", LIT, "User:a", "10.0.0.2", Read, DENY)], "User:a", Read, "t", D),
            (vec![acl(TOPIC, "t", LIT, "User:a", "client.example.com", Read, ALLOW)], "User:a", Read, "t", D),
            (
                vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW), acl(TOPIC, "t", LIT, "User:a", "10.0.0.2", Read, DENY)],
                "User:a",
                Read,
                "t",
                A,
            ),
            // ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL covers everything.
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", AlterConfigs, ALLOW)], "User:a", DescribeConfigs, "t", A),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", All, ALLOW)], "User:a", Delete, "t", A),
        ];
        for (bindings, principal, op, topic, want) in cases {
            let got = set(&bindings).decide(who(principal), op, Resource::topic(topic));
            assert_eq!(got, want, "{principal} {op} {topic} with {bindings:?}");
        }
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_hosts() {
        let s = set(&[acl(TOPIC, "t", LIT, "User:a", "127.0.0.1", Read, ALLOW)]);
        let mapped = Requester { principal: "User:a", host: "::ffff:127.0.0.1".parse().unwrap() };
        assert_eq!(s.decide(mapped, Read, Resource::topic("t")), Decision::Allow);
    }

    #[test]
    fn removal_find_and_serialization_keep_the_index() {
        let a = acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW);
        let b = acl(TOPIC, "t", PRE, "User:a", "*", Read, ALLOW);
        let mut s = set(&[a.clone(), b.clone()]);
        assert!(!s.insert(Uuid::from_u128(1), a.clone()), "ids are unique");
        assert_eq!(s.find(&a), Some(Uuid::from_u128(1)));
        assert_eq!(s.find(&b), Some(Uuid::from_u128(2)));
        assert!(s.remove(Uuid::from_u128(1)) && !s.remove(Uuid::from_u128(1)));
        assert_eq!(s.find(&a), None);
        assert_eq!(s.decide(who("User:a"), Read, Resource::topic("tx")), Decision::Allow);
        let back: AclSet = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.decide(who("User:a"), Read, Resource::topic("tx")), Decision::Allow);
        assert!(s.remove(Uuid::from_u128(2)));
        assert_eq!(s.decide(who("User:a"), Read, Resource::topic("tx")), Decision::NoAcl);
        assert!(s.literal[&TOPIC].is_empty() && s.prefixed[&TOPIC].is_empty());
    }

    #[test]
    fn any_resource_of_a_type() {
        // (bindings, allowed to WRITE some topic)
        let cases = [
            (vec![], false),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Write, ALLOW)], true),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Read, ALLOW)], false),
            (vec![acl(TOPIC, "t", PRE, "User:*", "*", All, ALLOW)], true),
            (vec![acl(TOPIC, "t", LIT, "User:b", "*", Write, ALLOW)], false),
            (vec![acl(ResourceType::Group, "t", LIT, "User:a", "*", Write, ALLOW)], false),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Write, ALLOW), acl(TOPIC, "*", LIT, "User:a", "*", Write, DENY)], false),
            (vec![acl(TOPIC, "t", LIT, "User:a", "*", Write, ALLOW), acl(TOPIC, "t", LIT, "User:a", "*", Write, DENY)], false),
            (vec![acl(TOPIC, "tx", PRE, "User:a", "*", Write, ALLOW), acl(TOPIC, "t", PRE, "User:a", "*", All, DENY)], false),
            (vec![acl(TOPIC, "t", PRE, "User:a", "*", Write, ALLOW), acl(TOPIC, "tx", PRE, "User:a", "*", Write, DENY)], true),
            (vec![acl(TOPIC, "*", LIT, "User:a", "*", Write, ALLOW), acl(TOPIC, "t", PRE, "User:a", "*", Write, DENY)], true),
        ];
        for (bindings, want) in cases {
            assert_eq!(set(&bindings).allows_any(who("User:a"), Write, TOPIC), want, "{bindings:?}");
        }
    }
}
