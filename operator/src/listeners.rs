//! The brokers' listeners, derived from `spec.listeners`: the client listeners the user lists, and in a
//! secured cluster (any client listener with TLS or authentication) the brokers' own listener and the
//! controller listener, both TLS with client certificates of the cluster CA, as Strimzi's replication
//! listener. The brokers replicate, the controller quorum talks and the operator administers through them,
//! each with a certificate whose principal is a super user.

use std::collections::{BTreeMap, BTreeSet};

use crate::broker_contract as contract;
use crate::builders::METRICS_PORT_NAME;
use crate::certs::ORGANIZATION;
use crate::cluster_ca::{BROKER_COMMON_NAME, OPERATOR_COMMON_NAME};
use crate::crd::{AdvertiseMode, ClientListener, ListenerAuthentication, ListenerType, ListenersSpec};
use crate::crd::{ClusterAuthorization, ClusterAuthorizationType, ListenerStatus, LogCluster};
use crate::names;

/// Broker listener names of the brokers' own listeners.
pub const REPLICATION: &str = "REPLICATION";
/// Where the broker certificates and the CA certificate are mounted in secured clusters.
pub const TLS_DIR: &str = "/etc/strata/tls";
/// The CA certificate in [`TLS_DIR`] (the brokers' truststore).
pub const CA_FILE: &str = "ca.crt";
/// Name of the implicit listener of a spec that lists none (the broker listener `PLAINTEXT` of earlier
/// releases, so that an upgrade keeps the advertised endpoints).
pub const DEFAULT_NAME: &str = "plaintext";

/// One listener of every broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Lower case: the container port's name; the broker's listener is its upper case.
    pub name: String,
    pub port: i32,
    pub tls: bool,
    pub authentication: ListenerAuthentication,
}

impl Listener {
    pub fn broker_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }

    /// Kafka's security protocol of the listener.
    pub fn protocol(&self) -> &'static str {
        match (self.tls, self.authentication == ListenerAuthentication::ScramSha512) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }
}

/// The listeners of a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listeners {
    pub clients: Vec<Listener>,
    /// The brokers' own listener; present in secured clusters only.
    pub replication: Option<Listener>,
    pub controller_port: i32,
    /// Whether brokers check the names in each other's certificates (not when they advertise pod IPs).
    pub verify_hostnames: bool,
}

/// The spec's client listeners, or the implicit plaintext one.
fn client_listeners(spec: &ListenersSpec) -> Vec<ClientListener> {
    if spec.clients.is_empty() {
        vec![ClientListener {
            name: DEFAULT_NAME.to_string(),
            port: spec.client_port,
            type_: ListenerType::Internal,
            tls: false,
            authentication: ListenerAuthentication::None,
        }]
    } else {
        spec.clients.clone()
    }
}

pub fn plan(spec: &ListenersSpec) -> Listeners {
    let clients: Vec<Listener> = client_listeners(spec)
        .into_iter()
        .map(|c| Listener { name: c.name, port: c.port, tls: c.tls, authentication: c.authentication })
        .collect();
    let secured = clients.iter().any(|l| l.tls || l.authentication != ListenerAuthentication::None);
    let replication = secured.then(|| Listener {
        name: REPLICATION.to_ascii_lowercase(),
        port: spec.replication_port,
        tls: true,
        authentication: ListenerAuthentication::Tls,
    });
    let verify_hostnames = spec.advertise != AdvertiseMode::PodIp;
    Listeners { clients, replication, controller_port: spec.controller_port, verify_hostnames }
}

/// What the schema cannot check: unique names and ports, names the operator uses itself, client
/// certificates without TLS.
pub fn problems(spec: &ListenersSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for (i, l) in spec.clients.iter().enumerate() {
        let at = format!("listeners.clients[{i}] ({})", l.name);
        if !names.insert(l.name.as_str()) {
            errors.push(format!("{at}: the name is used twice"));
        }
        if [REPLICATION, contract::CONTROLLER_LISTENER, METRICS_PORT_NAME].iter().any(|n| n.eq_ignore_ascii_case(&l.name)) {
            errors.push(format!("{at}: the name is reserved for the brokers' own listeners and ports"));
        }
        if l.authentication == ListenerAuthentication::Tls && !l.tls {
            errors.push(format!("{at}: authentication tls (client certificates) needs tls: true"));
        }
    }
    errors
}

impl Listeners {
    pub fn secured(&self) -> bool {
        self.replication.is_some()
    }

    /// Every listener with its port: the clients', then the brokers' own.
    pub fn all(&self) -> impl Iterator<Item = &Listener> {
        self.clients.iter().chain(self.replication.iter())
    }

    /// `NAME:port,...` of every listener but the controller's, from which the start script writes
    /// `listeners` and `advertised.listeners`.
    pub fn script_value(&self) -> String {
        self.all().map(|l| format!("{}:{}", l.broker_name(), l.port)).collect::<Vec<_>>().join(",")
    }

    /// The listener the operator and the other brokers use: the brokers' own in a secured cluster, else the
    /// first client listener.
    pub fn inter_broker(&self) -> &Listener {
        self.replication.as_ref().unwrap_or(&self.clients[0])
    }

    /// Shared broker properties for the listeners (restart-requiring, operator-owned).
    pub fn properties(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let controller_protocol = if self.secured() { "SSL" } else { "PLAINTEXT" };
        let map = self
            .all()
            .map(|l| format!("{}:{}", l.broker_name(), l.protocol()))
            .chain(std::iter::once(format!("{}:{controller_protocol}", contract::CONTROLLER_LISTENER)))
            .collect::<Vec<_>>()
            .join(",");
        out.insert(contract::LISTENER_SECURITY_PROTOCOL_MAP.to_string(), map);
        out.insert(contract::INTER_BROKER_LISTENER_NAME.to_string(), self.inter_broker().broker_name());
        if !self.secured() {
            return out;
        }
        out.insert("ssl.keystore.type".to_string(), "PEM".to_string());
        out.insert("ssl.truststore.type".to_string(), "PEM".to_string());
        out.insert("ssl.truststore.location".to_string(), format!("{TLS_DIR}/{CA_FILE}"));
        if !self.verify_hostnames {
            // Brokers reach each other by pod IP, which their certificates cannot name (it changes with every
            // restart): the chain to the cluster's own CA identifies them instead.
            out.insert("ssl.endpoint.identification.algorithm".to_string(), String::new());
        }
        let client_auth = self
            .all()
            .filter(|l| l.authentication == ListenerAuthentication::Tls)
            .map(Listener::broker_name)
            .chain(std::iter::once(contract::CONTROLLER_LISTENER.to_string()));
        for name in client_auth {
            out.insert(format!("listener.name.{}.ssl.client.auth", name.to_ascii_lowercase()), "required".to_string());
        }
        // Certificates the operator issues name their holder `CN=<name>,O=strata.io`: its principal is
        // `User:<name>`, as a SCRAM user of the same name.
        out.insert(
            "ssl.principal.mapping.rules".to_string(),
            format!("RULE:^CN=([^,]+),O={}$/$1/,DEFAULT", ORGANIZATION.replace('.', "\\.")),
        );
        for l in self.all().filter(|l| l.authentication == ListenerAuthentication::ScramSha512) {
            out.insert(format!("listener.name.{}.sasl.enabled.mechanisms", l.name), "SCRAM-SHA-512".to_string());
        }
        out
    }
}

/// The client listeners as the status reports them.
pub fn status(lc: &LogCluster) -> Vec<ListenerStatus> {
    plan(&lc.spec.listeners)
        .clients
        .iter()
        .map(|l| ListenerStatus {
            name: l.name.clone(),
            bootstrap_servers: names::bootstrap_address(lc, l.port),
            security_protocol: l.protocol().to_string(),
            sasl_mechanism: (l.authentication == ListenerAuthentication::ScramSha512).then(|| "SCRAM-SHA-512".to_string()),
            ca_certificate_secret: l.tls.then(|| names::cluster_ca_cert(lc)),
        })
        .collect()
}

/// Kafka's class name of the ACL authorizer.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The authorizer settings: ACLs checked, the brokers, the operator and the listed principals super users.
pub fn authorization_properties(authz: &ClusterAuthorization) -> BTreeMap<String, String> {
    let ClusterAuthorizationType::Simple = authz.type_;
    let supers = [BROKER_COMMON_NAME, OPERATOR_COMMON_NAME]
        .iter()
        .map(|cn| format!("User:{cn}"))
        .chain(authz.super_users.iter().cloned())
        .collect::<Vec<_>>()
        .join(";");
    BTreeMap::from([
        (contract::AUTHORIZER_CLASS_NAME.to_string(), STANDARD_AUTHORIZER.to_string()),
        (contract::SUPER_USERS.to_string(), supers),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, port: i32, tls: bool, authentication: ListenerAuthentication) -> ClientListener {
        ClientListener { name: name.into(), port, type_: ListenerType::Internal, tls, authentication }
    }

    #[test]
    fn without_listeners_one_plaintext_listener_as_before() {
        let l = plan(&ListenersSpec::default());
        assert!(!l.secured());
        assert_eq!(l.script_value(), "PLAINTEXT:9092");
        assert_eq!(l.inter_broker().broker_name(), "PLAINTEXT");
        let props = l.properties();
        assert_eq!(props["listener.security.protocol.map"], "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        assert_eq!(props["inter.broker.listener.name"], "PLAINTEXT");
        assert_eq!(props.len(), 2);
    }

    #[test]
    fn a_secured_listener_brings_the_brokers_own_mtls_listener() {
        let spec = ListenersSpec {
            clients: vec![
                client("plain", 9092, false, ListenerAuthentication::None),
                client("scram", 9094, true, ListenerAuthentication::ScramSha512),
                client("mtls", 9095, true, ListenerAuthentication::Tls),
                client("sasl", 9096, false, ListenerAuthentication::ScramSha512),
            ],
            ..ListenersSpec::default()
        };
        let l = plan(&spec);
        assert!(l.secured());
        assert_eq!(l.script_value(), "PLAIN:9092,SCRAM:9094,MTLS:9095,SASL:9096,REPLICATION:9091");
        assert_eq!(l.inter_broker().broker_name(), "REPLICATION");
        let props = l.properties();
        assert_eq!(
            props["listener.security.protocol.map"],
            "PLAIN:PLAINTEXT,SCRAM:SASL_SSL,MTLS:SSL,SASL:SASL_PLAINTEXT,REPLICATION:SSL,CONTROLLER:SSL"
        );
        assert_eq!(props["inter.broker.listener.name"], "REPLICATION");
        assert_eq!(props["ssl.truststore.location"], "/etc/strata/tls/ca.crt");
        for name in ["mtls", "replication", "controller"] {
            assert_eq!(props[&format!("listener.name.{name}.ssl.client.auth")], "required", "{name}");
        }
        assert!(!props.contains_key("listener.name.scram.ssl.client.auth"));
        assert!(!props.contains_key("ssl.endpoint.identification.algorithm"), "pod DNS names are in the certificates");
        assert_eq!(props["listener.name.scram.sasl.enabled.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(props["listener.name.sasl.sasl.enabled.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(props["ssl.principal.mapping.rules"], r"RULE:^CN=([^,]+),O=strata\.io$/$1/,DEFAULT");
    }

    #[test]
    fn brokers_advertising_pod_ips_trust_the_ca_not_names() {
        let spec = ListenersSpec {
            advertise: AdvertiseMode::PodIp,
            clients: vec![client("tls", 9093, true, ListenerAuthentication::None)],
            ..ListenersSpec::default()
        };
        assert_eq!(plan(&spec).properties()["ssl.endpoint.identification.algorithm"], "");
    }

    #[test]
    fn authorization_makes_brokers_and_operator_super_users() {
        let authz = ClusterAuthorization { type_: ClusterAuthorizationType::Simple, super_users: vec!["User:admin".into()] };
        let props = authorization_properties(&authz);
        assert_eq!(props["authorizer.class.name"], STANDARD_AUTHORIZER);
        assert_eq!(props["super.users"], "User:strata-broker;User:strata-operator;User:admin");
    }

    #[test]
    fn the_status_says_how_clients_connect() {
        let mut spec = crate::testing::spec();
        spec.listeners.clients = vec![
            client("plain", 9092, false, ListenerAuthentication::None),
            client("scram", 9094, true, ListenerAuthentication::ScramSha512),
        ];
        let got = status(&crate::testing::cluster(spec));
        assert_eq!(
            got,
            [
                ListenerStatus {
                    name: "plain".into(),
                    bootstrap_servers: "logs-bootstrap.prod.svc:9092".into(),
                    security_protocol: "PLAINTEXT".into(),
                    sasl_mechanism: None,
                    ca_certificate_secret: None,
                },
                ListenerStatus {
                    name: "scram".into(),
                    bootstrap_servers: "logs-bootstrap.prod.svc:9094".into(),
                    security_protocol: "SASL_SSL".into(),
                    sasl_mechanism: Some("SCRAM-SHA-512".into()),
                    ca_certificate_secret: Some("logs-cluster-ca-cert".into()),
                },
            ]
        );
    }

    #[test]
    fn listener_problems() {
        let cases: Vec<(Vec<ClientListener>, Vec<&str>)> = vec![
            (vec![client("a", 9092, false, ListenerAuthentication::None)], vec![]),
            (
                vec![
                    client("a", 9092, false, ListenerAuthentication::None),
                    client("a", 9094, true, ListenerAuthentication::None),
                ],
                vec!["listeners.clients[1] (a): the name is used twice"],
            ),
            (
                vec![client("replication", 9092, true, ListenerAuthentication::None)],
                vec!["listeners.clients[0] (replication): the name is reserved for the brokers' own listeners and ports"],
            ),
            (
                vec![client("controller", 9092, true, ListenerAuthentication::None)],
                vec!["listeners.clients[0] (controller): the name is reserved for the brokers' own listeners and ports"],
            ),
            (
                vec![client("metrics", 9092, false, ListenerAuthentication::None)],
                vec!["listeners.clients[0] (metrics): the name is reserved for the brokers' own listeners and ports"],
            ),
            (
                vec![client("m", 9092, false, ListenerAuthentication::Tls)],
                vec!["listeners.clients[0] (m): authentication tls (client certificates) needs tls: true"],
            ),
        ];
        for (clients, expected) in cases {
            let spec = ListenersSpec { clients: clients.clone(), ..ListenersSpec::default() };
            assert_eq!(problems(&spec), expected, "{clients:?}");
        }
    }
}
