//! Checks of a LogCluster spec that the OpenAPI schema cannot express. Failures are reported
//! in the `Degraded` condition; the operator then leaves the existing objects alone.

use std::collections::BTreeSet;

use crate::broker_contract as contract;
use crate::config::{self, BrokerSettings};
use crate::crd::{AdvertiseMode, LogClusterSpec};
use crate::{listeners, names, quantity};

/// Returns the broker settings of a valid spec, or every problem found.
pub fn validate(spec: &LogClusterSpec) -> Result<BrokerSettings, Vec<String>> {
    let mut errors = Vec::new();
    let replicas = usize::try_from(spec.replicas).unwrap_or(0);

    let hosts = spec.listeners.advertised_hosts.as_deref();
    match (spec.listeners.advertise, hosts) {
        (AdvertiseMode::Explicit, None) => {
            errors.push("listeners.advertise is Explicit but listeners.advertisedHosts is empty".to_string())
        }
        (AdvertiseMode::Explicit, Some(h)) => {
            if h.len() < replicas {
                errors.push(format!(
                    "listeners.advertisedHosts has {} entries but replicas is {}; one host per broker is needed",
                    h.len(),
                    spec.replicas
                ));
            }
            if let Some(bad) = h.iter().find(|h| !is_host(h)) {
                errors.push(format!("listeners.advertisedHosts entry {bad:?} is not a host name or address"));
            }
        }
        (_, Some(_)) => errors.push("listeners.advertisedHosts is only used with listeners.advertise: Explicit".to_string()),
        (_, None) => {}
    }

    check_quantity("storage.size", &spec.storage.size.0, &mut errors);
    if let Some(local) = &spec.storage.local {
        if spec.storage.storage_class_name.is_some() {
            errors.push(
                "storage.storageClassName cannot be combined with storage.local (the operator creates the class)".to_string(),
            );
        }
        if local.len() < replicas {
            errors.push(format!(
                "storage.local lists {} volumes but replicas is {}; each broker needs its own volume",
                local.len(),
                spec.replicas
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, v) in local.iter().enumerate() {
            if !seen.insert((v.node.as_str(), v.path.as_str())) {
                errors.push(format!("storage.local[{i}] repeats node {:?} path {:?}", v.node, v.path));
            }
            if let Some(c) = &v.capacity {
                check_quantity(&format!("storage.local[{i}].capacity"), &c.0, &mut errors);
            }
        }
    }

    let reserved = names::selector_labels_keys();
    for key in spec.pod_labels.iter().flat_map(|l| l.keys()) {
        if reserved.contains(&key.as_str()) {
            errors.push(format!("podLabels cannot set {key:?}: the operator uses it to select broker pods"));
        }
    }

    errors.extend(env_problems(spec));

    if let (Some(bg), Some(dirty)) = (spec.tuning.vm_dirty_background_ratio, spec.tuning.vm_dirty_ratio) {
        if bg >= dirty {
            errors.push(format!("tuning.vmDirtyBackgroundRatio ({bg}) must be lower than tuning.vmDirtyRatio ({dirty})"));
        }
    }
    errors.extend(listeners::problems(&spec.listeners));
    if spec.authorization.is_some() && !listeners::plan(&spec.listeners).secured() {
        errors.push(
            "authorization needs a listener with tls or authentication: without one every client is User:ANONYMOUS \
             and the brokers could not tell each other from clients"
                .to_string(),
        );
    }
    let ca = &spec.certificate_authority;
    if ca.renewal_days >= ca.validity_days {
        errors.push(format!(
            "certificateAuthority.renewalDays ({}) must be lower than certificateAuthority.validityDays ({})",
            ca.renewal_days, ca.validity_days
        ));
    }
    let l = &spec.listeners;
    let mut ports: Vec<(String, i32)> = if l.clients.is_empty() {
        vec![("listeners.clientPort".to_string(), l.client_port)]
    } else {
        l.clients.iter().enumerate().map(|(i, c)| (format!("listeners.clients[{i}].port"), c.port)).collect()
    };
    if listeners::plan(l).secured() {
        ports.push(("listeners.replicationPort".to_string(), l.replication_port));
    }
    ports.push(("listeners.controllerPort".to_string(), l.controller_port));
    ports.push(("metrics.port".to_string(), spec.metrics.port));
    for (i, (a, port_a)) in ports.iter().enumerate() {
        for (b, port_b) in &ports[i + 1..] {
            if port_a == port_b {
                errors.push(format!("{a} and {b} are both {port_a}"));
            }
        }
    }
    errors.extend(heartbeat_within_session(spec));

    match config::broker_settings(spec) {
        Ok(settings) if errors.is_empty() => Ok(settings),
        Ok(_) => Err(errors),
        Err(mut config_errors) => {
            errors.append(&mut config_errors);
            Err(errors)
        }
    }
}

/// Extra env may not set what the operator sets (or what would override broker settings), nor
/// set a name twice.
fn env_problems(spec: &LogClusterSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for name in spec.env.iter().flatten().map(|e| e.name.as_str()) {
        if name.starts_with(contract::ENV_BROKER_PREFIX) || [contract::ENV_POD_IP, contract::ENV_POD_NAMESPACE].contains(&name) {
            errors.push(format!(
                "env {name:?} is set by the operator (names starting with {} and {}, {} are reserved); use spec.config for broker settings",
                contract::ENV_BROKER_PREFIX,
                contract::ENV_POD_IP,
                contract::ENV_POD_NAMESPACE
            ));
        } else if !seen.insert(name) {
            errors.push(format!("env {name:?} is listed twice"));
        }
    }
    errors
}

/// A broker that heartbeats less often than its session timeout would be fenced between
/// heartbeats. Checked only when both are set (the broker's defaults, 2 s and 9 s, agree).
fn heartbeat_within_session(spec: &LogClusterSpec) -> Option<String> {
    let config = spec.config.as_ref()?;
    let get = |k: &str| config.get(k)?.render()?.parse::<i64>().ok();
    let heartbeat = get(contract::BROKER_HEARTBEAT_INTERVAL_MS)?;
    let session = get(contract::BROKER_SESSION_TIMEOUT_MS)?;
    (heartbeat >= session).then(|| {
        format!(
            "config: {} ({heartbeat}) must be lower than {} ({session})",
            contract::BROKER_HEARTBEAT_INTERVAL_MS,
            contract::BROKER_SESSION_TIMEOUT_MS
        )
    })
}

fn check_quantity(field: &str, value: &str, errors: &mut Vec<String>) {
    if quantity::bytes(value).is_none() {
        errors.push(format!("{field} {value:?} is not a positive quantity like 10Gi"));
    }
}

/// The schema holds the same rule; this refuses hosts stored under an earlier CRD.
fn is_host(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::EnvVar;

    use super::*;
    use crate::crd::LocalVolume;
    use crate::testing::{quantity, spec};

    fn local(node: &str, path: &str) -> LocalVolume {
        LocalVolume { node: node.into(), path: path.into(), capacity: None }
    }

    #[test]
    fn the_fixture_is_valid() {
        assert!(validate(&spec()).is_ok());
    }

    #[test]
    fn explicit_hosts_must_cover_every_broker() {
        let mut s = spec();
        s.listeners.advertise = AdvertiseMode::Explicit;
        assert!(validate(&s).unwrap_err()[0].contains("advertisedHosts is empty"));
        s.listeners.advertised_hosts = Some(vec!["a.example".into(), "b example".into()]);
        let errs = validate(&s).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("has 2 entries but replicas is 3")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("\"b example\"")), "{errs:?}");
        s.listeners.advertise = AdvertiseMode::PodIp;
        assert!(validate(&s).unwrap_err()[0].contains("only used with"));
    }

    #[test]
    fn local_storage_needs_a_volume_per_broker() {
        let mut s = spec();
        s.storage.local = Some(vec![local("n1", "/mnt/a"), local("n1", "/mnt/a")]);
        s.storage.storage_class_name = Some("fast".into());
        let errs = validate(&s).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("cannot be combined")));
        assert!(errs.iter().any(|e| e.contains("lists 2 volumes but replicas is 3")));
        assert!(errs.iter().any(|e| e.contains("storage.local[1] repeats")));
    }

    #[test]
    fn quantities_are_checked() {
        let mut s = spec();
        s.storage.size = quantity("ten gigs");
        assert!(validate(&s).unwrap_err()[0].contains("not a positive quantity"));
        for ok in ["10Gi", "1.5T", "500M", "1024"] {
            s.storage.size = quantity(ok);
            assert!(validate(&s).is_ok(), "{ok}");
        }
        for bad in ["", "0", "Gi", "10Gb", "-1Gi"] {
            s.storage.size = quantity(bad);
            assert!(validate(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn selector_labels_and_tuning_order_are_protected() {
        let mut s = spec();
        s.pod_labels = Some(BTreeMap::from([("app.kubernetes.io/instance".into(), "x".into())]));
        s.tuning.vm_dirty_ratio = Some(10);
        s.tuning.vm_dirty_background_ratio = Some(20);
        s.metrics.port = 9092;
        s.config = Some(BTreeMap::from([("unknown".into(), "1".into())]));
        let errs = validate(&s).unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("podLabels cannot set")));
        assert!(errs.iter().any(|e| e.contains("must be lower than")));
        assert!(errs.iter().any(|e| e.contains("both 9092")));
        assert!(errs.iter().any(|e| e.contains("\"unknown\" is not a known broker setting")));
    }

    #[test]
    fn extra_env_cannot_take_operator_names() {
        let env = |name: &str| EnvVar { name: name.into(), value: Some("v".into()), value_from: None };
        // names -> errors
        let table: [(&[&str], &[&str]); 6] = [
            (&["JAVA_OPTS", "TZ"], &[]),
            (&["STRATA_ADVERTISE"], &["env \"STRATA_ADVERTISE\" is set by the operator"]),
            (&["STRATA_LOG_RETENTION_MS"], &["env \"STRATA_LOG_RETENTION_MS\" is set by the operator"]),
            (&["POD_IP"], &["env \"POD_IP\" is set by the operator"]),
            (&["POD_NAMESPACE", "TZ"], &["env \"POD_NAMESPACE\" is set by the operator"]),
            (&["TZ", "TZ"], &["env \"TZ\" is listed twice"]),
        ];
        for (names, want) in table {
            let mut s = spec();
            s.env = Some(names.iter().map(|n| env(n)).collect());
            let errs = validate(&s).err().unwrap_or_default();
            assert_eq!(errs.len(), want.len(), "{names:?}: {errs:?}");
            for (e, w) in errs.iter().zip(want) {
                assert!(e.starts_with(w), "{e}");
            }
        }
    }

    #[test]
    fn ports_must_differ() {
        // (client, controller, metrics) -> the errors
        let table: [(i32, i32, i32, &[&str]); 5] = [
            (9092, 9093, 9644, &[]),
            (9093, 9093, 9644, &["listeners.clientPort and listeners.controllerPort are both 9093"]),
            (9092, 9644, 9644, &["listeners.controllerPort and metrics.port are both 9644"]),
            (9092, 9093, 9092, &["listeners.clientPort and metrics.port are both 9092"]),
            (
                9092,
                9092,
                9092,
                &[
                    "listeners.clientPort and listeners.controllerPort are both 9092",
                    "listeners.clientPort and metrics.port are both 9092",
                    "listeners.controllerPort and metrics.port are both 9092",
                ],
            ),
        ];
        for (client, controller, metrics, want) in table {
            let mut s = spec();
            s.listeners.client_port = client;
            s.listeners.controller_port = controller;
            s.metrics.port = metrics;
            let errs = validate(&s).err().unwrap_or_default();
            assert_eq!(errs, want, "{client} {controller} {metrics}");
        }
    }

    #[test]
    fn quorum_timings() {
        let mut s = spec();
        let with = |hb: &str, session: &str| {
            BTreeMap::from([
                ("broker.heartbeat.interval.ms".to_string(), hb.into()),
                ("broker.session.timeout.ms".to_string(), session.into()),
            ])
        };
        s.config = Some(with("2000", "9000"));
        assert!(validate(&s).is_ok());
        s.config = Some(with("9000", "9000"));
        assert_eq!(
            validate(&s).unwrap_err(),
            ["config: broker.heartbeat.interval.ms (9000) must be lower than broker.session.timeout.ms (9000)"]
        );
        s.config = Some(BTreeMap::from([("broker.heartbeat.interval.ms".to_string(), "20000".into())]));
        assert!(validate(&s).is_ok(), "only checked when both are set");
        s.config = Some(BTreeMap::from([
            ("controller.quorum.election.timeout.ms".to_string(), "1000".into()),
            ("broker.rack".to_string(), "zone-a".into()),
            ("num.io.threads".to_string(), "8".into()),
        ]));
        assert!(validate(&s).is_ok());
        for owned in ["process.roles", "controller.quorum.voters", "controller.listener.names", "listeners"] {
            s.config = Some(BTreeMap::from([(owned.to_string(), "x".into())]));
            assert!(validate(&s).unwrap_err()[0].contains("managed by the operator"), "{owned}");
        }
    }
}
