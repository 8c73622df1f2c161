//! Authorization with Kafka's ACL model (`authorizer.class.name`): the ACLs live in the metadata log (so every
//! broker decides alike, and they survive restarts), `super.users` may do everything, and
//! `allow.everyone.if.no.acl.found` decides for resources no ACL names. Off (no class name), everything is
//! allowed. Handlers ask one narrow question per resource; the rules are here.

mod acls;
mod resource;

use std::collections::HashSet;
use std::sync::Arc;

use prometheus::IntCounter;
use tokio::sync::watch;

pub use acls::{AclSet, Decision, Requester};
pub use resource::Resource;
pub use strata_client::acl::{
    check_principal, AclBinding, AclFilter, InvalidAcl, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};

use crate::controller::image::Image;
use crate::controller::state_machine::Published;
use crate::server::Peer;

/// The class names Kafka users configure; both mean this authorizer.
pub const CLASS_NAMES: &[&str] =
    &["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"];

/// The settings of an enabled authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSettings {
    pub super_users: HashSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerSettings {
    /// From `authorizer.class.name` (empty: no authorizer), `super.users` (`;`-separated principals) and
    /// `allow.everyone.if.no.acl.found`; an error names the setting at fault.
    pub fn parse(
        class_name: &str,
        super_users: &str,
        allow_everyone: bool,
    ) -> Result<Option<AuthorizerSettings>, (&'static str, String)> {
        match class_name.trim() {
            "" => return Ok(None),
            c if CLASS_NAMES.contains(&c) => {}
            c => {
                let reason = format!("unknown authorizer {c}; use {} (or leave it empty for none)", CLASS_NAMES[0]);
                return Err(("authorizer.class.name", reason));
            }
        }
        let super_users: HashSet<String> =
            super_users.split(';').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string).collect();
        if let Some(bad) = super_users.iter().find(|p| check_principal(p).is_err()) {
            return Err(("super.users", format!("{bad:?} is not a principal such as User:admin")));
        }
        Ok(Some(AuthorizerSettings { super_users, allow_everyone_if_no_acl_found: allow_everyone }))
    }

    /// The whole rule for one request.
    pub fn allows(&self, acls: &AclSet, who: Requester<'_>, operation: Operation, resource: Resource<'_>) -> bool {
        self.super_users.contains(who.principal)
            || match acls.decide(who, operation, resource) {
                Decision::Allow => true,
                Decision::Deny => false,
                Decision::NoAcl => self.allow_everyone_if_no_acl_found,
            }
    }
}

pub struct Authorizer {
    settings: Option<Arc<AuthorizerSettings>>,
    images: watch::Receiver<Published>,
    /// Requests (or parts of them) refused.
    denied: IntCounter,
}

impl Authorizer {
    pub fn new(settings: Option<AuthorizerSettings>, images: watch::Receiver<Published>, denied: IntCounter) -> Authorizer {
        Authorizer { settings: settings.map(Arc::new), images, denied }
    }

    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// The questions one request of `peer` asks, against the ACLs as of now (owned, so that a request
    /// answered later can keep asking).
    pub fn check(&self, peer: &Peer) -> Check {
        let rules = self.settings.as_ref().map(|s| (s.clone(), self.images.borrow().image.clone()));
        Check { rules, principal: peer.principal.clone(), host: peer.addr.ip(), denied: self.denied.clone() }
    }

    /// Whether `peer` may do `operation` on `resource` (a refusal is logged at debug and counted).
    pub fn authorize(&self, peer: &Peer, operation: Operation, resource: Resource<'_>) -> bool {
        self.check(peer).allows(operation, resource)
    }
}

/// One request's view of the authorizer.
pub struct Check {
    /// None: no authorizer, everything is allowed.
    rules: Option<(Arc<AuthorizerSettings>, Arc<Image>)>,
    principal: Arc<str>,
    host: std::net::IpAddr,
    denied: IntCounter,
}

impl Check {
    fn who(&self) -> Requester<'_> {
        Requester { principal: &self.principal, host: self.host }
    }

    /// Whether the request may do `operation` on `resource`; a refusal is logged at debug and counted.
    pub fn allows(&self, operation: Operation, resource: Resource<'_>) -> bool {
        let allowed = self.quietly_allows(operation, resource);
        if !allowed {
            self.denied.inc();
            tracing::debug!(principal = &*self.principal, host = %self.host, %operation, resource_type = %resource.resource_type,
                resource = resource.name, "denied");
        }
        allowed
    }

    /// As [`Check::allows`] without the log line and count: for leaving resources out of lists.
    pub fn quietly_allows(&self, operation: Operation, resource: Resource<'_>) -> bool {
        match &self.rules {
            None => true,
            Some((settings, image)) => settings.allows(&image.acls, self.who(), operation, resource),
        }
    }

    /// Whether the request may do `operation` on some resource of a type (Kafka's authorizeByResourceType).
    pub fn allows_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        match &self.rules {
            None => true,
            Some((settings, image)) => {
                settings.super_users.contains(&*self.principal) || image.acls.allows_any(self.who(), operation, resource_type)
            }
        }
    }

    /// Kafka's authorized-operations bit field of a resource: bit n set when operation code n is allowed; none
    /// for a resource the client may not describe.
    pub fn authorized_operations(&self, resource: Resource<'_>) -> i32 {
        if !self.quietly_allows(Operation::Describe, resource) {
            return 0;
        }
        Operation::reported_for(resource.resource_type)
            .iter()
            .filter(|op| self.quietly_allows(**op, resource))
            .fold(0, |bits, op| bits | 1 << op.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::{MetadataBatch, MetadataRecord};
    use std::net::SocketAddr;
    use uuid::Uuid;

    #[test]
    fn settings() {
        assert_eq!(AuthorizerSettings::parse("", "User:x", true), Ok(None));
        let s = AuthorizerSettings::parse(CLASS_NAMES[1], " User:admin ; User:CN=broker,O=x;", false).unwrap().unwrap();
        assert_eq!(s.super_users, HashSet::from(["User:admin".to_string(), "User:CN=broker,O=x".to_string()]));
        let (key, why) = AuthorizerSettings::parse("com.example.Mine", "", false).unwrap_err();
        assert!(key == "authorizer.class.name" && why.contains("com.example.Mine"), "{why}");
        let (key, why) = AuthorizerSettings::parse(CLASS_NAMES[0], "admin", false).unwrap_err();
        assert!(key == "super.users" && why.contains("admin"), "{why}");
    }

    fn image_with(bindings: &[AclBinding]) -> Published {
        let mut image = Image::default();
        let records =
            bindings.iter().enumerate().map(|(i, b)| MetadataRecord::Acl { id: Uuid::from_u128(i as u128), binding: b.clone() });
        image.apply(1, &MetadataBatch::new(records.collect())).unwrap();
        Published { image: Arc::new(image), applied: 1 }
    }

    fn peer(principal: &str) -> Peer {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        Peer { addr, listener: "PLAINTEXT".into(), principal: principal.into(), tls: false }
    }

    #[test]
    fn super_users_no_acl_rule_and_no_authorizer() {
        let read_t = AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 3).unwrap();
        let published = image_with(&[read_t]);
        let denied = IntCounter::new("d", "d").unwrap();
        let on = |allow_everyone| {
            let s = AuthorizerSettings::parse(CLASS_NAMES[0], "User:admin", allow_everyone).unwrap();
            Authorizer::new(s, watch::channel(published.clone()).1, denied.clone())
        };
        // (authorizer, principal, operation, topic, allowed)
        let strict = on(false);
        let lenient = on(true);
        let off = Authorizer::new(None, watch::channel(published.clone()).1, denied.clone());
        let cases = [
            (&strict, "User:a", Operation::Read, "t", true),
            (&strict, "User:b", Operation::Read, "t", false),
            (&strict, "User:a", Operation::Read, "u", false),
            (&strict, "User:admin", Operation::Delete, "t", true),
            (&lenient, "User:b", Operation::Read, "t", false),
            (&lenient, "User:b", Operation::Read, "u", true),
            (&off, "User:b", Operation::Delete, "t", true),
        ];
        for (authorizer, principal, op, topic, want) in cases {
            assert_eq!(authorizer.authorize(&peer(principal), op, Resource::topic(topic)), want, "{principal} {op} {topic}");
        }
        assert_eq!(denied.get(), 3, "refusals are counted");
        let p = peer("User:a");
        let bits = strict.check(&p).authorized_operations(Resource::topic("t"));
        assert_eq!(bits, 1 << 3 | 1 << 8, "READ and the DESCRIBE it implies");
        let settings = AuthorizerSettings::parse(CLASS_NAMES[0], "", false).unwrap();
        let create = AclBinding::from_wire(4, CLUSTER_NAME, 3, "User:a", "*", 5, 3).unwrap();
        let authorizer = Authorizer::new(settings, watch::channel(image_with(&[create])).1, denied.clone());
        assert_eq!(authorizer.check(&p).authorized_operations(Resource::cluster()), 0, "nothing without DESCRIBE");
        assert_eq!(denied.get(), 3, "listing operations counts nothing");
        assert!(strict.check(&peer("User:admin")).allows_any(Operation::Write, ResourceType::Topic));
        assert!(!strict.check(&p).allows_any(Operation::Write, ResourceType::Topic));
    }
}
