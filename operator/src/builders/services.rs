use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, CONTROLLER_PORT_NAME, METRICS_PORT_NAME};
use crate::crd::LogCluster;
use crate::{listeners, names};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// Gives each broker its stable DNS name, which the controller voters use to reach each other.
/// Not-ready addresses are published because brokers must find each other before they report
/// ready.
pub fn headless_service(lc: &LogCluster) -> Service {
    let mut meta = owned_meta(lc, names::headless_service(lc));
    meta.labels.get_or_insert_with(Default::default).insert(names::LABEL_SERVICE_ROLE.to_string(), "headless".to_string());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(lc)),
            ports: Some(
                listeners::plan(&lc.spec.listeners)
                    .all()
                    .map(|l| port(&l.name, l.port))
                    .chain([
                        port(METRICS_PORT_NAME, lc.spec.metrics.port),
                        port(CONTROLLER_PORT_NAME, lc.spec.listeners.controller_port),
                    ])
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The address clients bootstrap from: any ready broker, on every client listener.
pub fn bootstrap_service(lc: &LogCluster) -> Service {
    let mut meta = owned_meta(lc, names::bootstrap_service(lc));
    meta.labels.get_or_insert_with(Default::default).insert(names::LABEL_SERVICE_ROLE.to_string(), "bootstrap".to_string());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(names::selector_labels(lc)),
            ports: Some(listeners::plan(&lc.spec.listeners).clients.iter().map(|l| port(&l.name, l.port)).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::assert_owned;
    use crate::testing::{cluster, spec};

    #[test]
    fn headless_service_publishes_all_brokers() {
        let mut s = spec();
        s.listeners.client_port = 19092;
        let lc = cluster(s);
        let svc = headless_service(&lc);
        assert_eq!(svc.metadata.name.as_deref(), Some("logs-headless"));
        assert_owned(&svc.metadata);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector.unwrap(), names::selector_labels(&lc));
        let ports = spec.ports.unwrap();
        assert_eq!((ports[0].name.as_deref(), ports[0].port), (Some("plaintext"), 19092));
        assert_eq!((ports[1].name.as_deref(), ports[1].port), (Some("metrics"), 9644));
        assert_eq!((ports[2].name.as_deref(), ports[2].port), (Some("controller"), 9093));
        assert_eq!(ports[2].target_port, Some(IntOrString::String("controller".into())));
    }

    #[test]
    fn bootstrap_service_exposes_only_the_client_port() {
        let lc = cluster(spec());
        let svc = bootstrap_service(&lc);
        assert_eq!(svc.metadata.name.as_deref(), Some("logs-bootstrap"));
        assert_owned(&svc.metadata);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.ports.unwrap().len(), 1);
        assert_eq!(svc.metadata.labels.unwrap()["strata.io/service"], "bootstrap");
    }
}
