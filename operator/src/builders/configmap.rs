use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::owned_meta;
use crate::broker_contract as contract;
use crate::config::BrokerSettings;
use crate::crd::{AdvertiseMode, LogCluster};
use crate::names;

/// Shared broker properties, the start script and (for `Explicit`) the advertised host list.
pub fn config_map(lc: &LogCluster, settings: &BrokerSettings) -> ConfigMap {
    let mut data = BTreeMap::from([
        (contract::SHARED_PROPERTIES_FILE.to_string(), settings.properties()),
        (contract::START_SCRIPT_FILE.to_string(), contract::START_SCRIPT.to_string()),
    ]);
    if let Some(hosts) = advertised_hosts(lc) {
        data.insert(contract::ADVERTISED_HOSTS_FILE.to_string(), hosts);
    }
    ConfigMap { metadata: owned_meta(lc, names::config_map(lc)), data: Some(data), ..Default::default() }
}

/// One host per line, line `n + 1` for ordinal `n`, as the start script reads it.
pub(super) fn advertised_hosts(lc: &LogCluster) -> Option<String> {
    let l = &lc.spec.listeners;
    match (l.advertise, &l.advertised_hosts) {
        (AdvertiseMode::Explicit, Some(hosts)) => Some(hosts.iter().map(|h| format!("{h}\n")).collect()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::assert_owned;
    use crate::crd::RetentionSpec;
    use crate::testing::{cluster, settings, spec};

    #[test]
    fn holds_properties_and_start_script() {
        let mut s = spec();
        s.retention = Some(RetentionSpec { ms: Some(3_600_000), ..Default::default() });
        let lc = cluster(s);
        let cm = config_map(&lc, &settings(&lc));
        assert_eq!(cm.metadata.name.as_deref(), Some("logs-config"));
        assert_owned(&cm.metadata);
        let data = cm.data.unwrap();
        assert!(data["server.properties"].contains("log.retention.ms=3600000\n"));
        assert!(!data["server.properties"].contains("listeners="), "per pod, from the start script");
        assert!(data["server.properties"].contains("\ncontroller.listener.names=CONTROLLER\n"));
        assert!(data["server.properties"].contains(
            "\ncontroller.quorum.voters=0@logs-0.logs-headless.prod.svc:9093,1@logs-1.logs-headless.prod.svc:9093,\
             2@logs-2.logs-headless.prod.svc:9093\n"
        ));
        assert_eq!(data["start.sh"], contract::START_SCRIPT);
        assert!(!data.contains_key("advertised-hosts"));
    }

    #[test]
    fn explicit_hosts_are_listed_by_ordinal() {
        let mut s = spec();
        s.replicas = 2;
        s.listeners.advertise = AdvertiseMode::Explicit;
        s.listeners.advertised_hosts = Some(vec!["b0.example".into(), "b1.example".into()]);
        let lc = cluster(s);
        let cm = config_map(&lc, &settings(&lc));
        let data = cm.data.unwrap();
        assert_eq!(data["advertised-hosts"], "b0.example\nb1.example\n");
        assert!(data["server.properties"].contains("\ncontroller.quorum.voters=0@b0.example:9093,1@b1.example:9093\n"));
    }
}
