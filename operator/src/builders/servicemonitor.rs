use serde_json::{json, Value};

use super::{owned_meta, METRICS_PORT_NAME};
use crate::broker_contract as contract;
use crate::crd::LogCluster;
use crate::names;

pub const SERVICE_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";
pub const SERVICE_MONITOR_KIND: &str = "ServiceMonitor";

/// Prometheus-operator ServiceMonitor scraping every broker through the headless Service.
/// A JSON value because that CRD's types are not part of k8s-openapi.
pub fn service_monitor(lc: &LogCluster) -> Value {
    let mut selector = names::selector_labels(lc);
    selector.insert(names::LABEL_SERVICE_ROLE.to_string(), "headless".to_string());
    json!({
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": SERVICE_MONITOR_KIND,
        "metadata": owned_meta(lc, names::cluster_name(lc)),
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": METRICS_PORT_NAME, "path": contract::METRICS_PATH}],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cluster, spec};

    #[test]
    fn scrapes_the_headless_service_metrics_port() {
        let sm = service_monitor(&cluster(spec()));
        assert_eq!(sm["kind"], "ServiceMonitor");
        assert_eq!(sm["metadata"]["ownerReferences"][0]["kind"], "LogCluster");
        assert_eq!(sm["spec"]["selector"]["matchLabels"]["strata.io/service"], "headless");
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
        assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    }
}
