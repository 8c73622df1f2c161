use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use super::configmap::advertised_hosts;
use super::{owned_meta, CONTROLLER_PORT_NAME, METRICS_PORT_NAME};
use crate::broker_contract::{self as contract, TuneValues};
use crate::config::{hash_str, BrokerSettings};
use crate::crd::{AdvertiseMode, LogCluster};
use crate::scaling::Rebalance;
use crate::{listeners, membership, names};

const CONFIG_VOLUME: &str = "config";
const RUNTIME_VOLUME: &str = "run";
const TMP_VOLUME: &str = "tmp";
/// The broker certificates and the CA certificate (secured clusters).
const TLS_VOLUME: &str = "tls";

/// Hash of everything in the ConfigMap that brokers read only at start-up. A change rolls the
/// pods; dynamic settings are left out so retention changes never restart anything.
pub fn restart_hash(lc: &LogCluster, settings: &BrokerSettings) -> String {
    let restart = BrokerSettings { restart: settings.restart.clone(), dynamic: BTreeMap::new() };
    hash_str(&format!("{}\0{}\0{}", restart.properties(), contract::START_SCRIPT, advertised_hosts(lc).unwrap_or_default()))
}

/// The brokers. `OnDelete` updates: the operator restarts pods itself, one at a time, each only
/// after the previous one is ready again. `Parallel` start-up: brokers must see each other to
/// become ready, which ordered start-up would prevent.
pub fn statefulset(lc: &LogCluster, settings: &BrokerSettings) -> StatefulSet {
    let spec = &lc.spec;
    let mut pod_labels = spec.pod_labels.clone().unwrap_or_default();
    pod_labels.extend(names::selector_labels(lc));
    let mut annotations = spec.pod_annotations.clone().unwrap_or_default();
    annotations.insert(names::CONFIG_HASH_ANNOTATION.to_string(), restart_hash(lc, settings));

    let storage_class =
        if spec.storage.local.is_some() { Some(names::local_storage_class(lc)) } else { spec.storage.storage_class_name.clone() };

    StatefulSet {
        metadata: owned_meta(lc, names::statefulset(lc)),
        spec: StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names::headless_service(lc)),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".to_string()), rolling_update: None }),
            selector: LabelSelector { match_labels: Some(names::selector_labels(lc)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), annotations: Some(annotations), ..Default::default() }),
                spec: Some(pod_spec(lc)),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(names::DATA_VOLUME.to_string()),
                    labels: Some(names::selector_labels(lc)),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: storage_class,
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_string(), spec.storage.size.clone())])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Keeps the volumeClaimTemplates of an existing StatefulSet: the apiserver refuses any change
/// to them, which would fail the whole apply. A new `storage.size` reaches the existing claims
/// through [`crate::resize`] instead.
pub fn keep_claim_templates(sts: &mut StatefulSet, existing: Option<&StatefulSet>) {
    if let Some(templates) = existing.and_then(|e| e.spec.volume_claim_templates.clone()) {
        sts.spec.volume_claim_templates = Some(templates);
    }
}

/// Records the cluster's membership state on the StatefulSet, where it survives operator
/// restarts: the voter count and the brokers still to unregister (annotation left out if none).
pub fn record_membership(sts: &mut StatefulSet, voters: i32, to_unregister: &BTreeSet<i32>) {
    let annotations = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(names::CONTROLLER_VOTERS_ANNOTATION.to_string(), voters.to_string());
    if to_unregister.is_empty() {
        annotations.remove(names::TO_UNREGISTER_ANNOTATION);
    } else {
        annotations.insert(names::TO_UNREGISTER_ANNOTATION.to_string(), membership::format_ids(to_unregister));
    }
}

/// Records a scale-up's rebalance and the topics the operator throttled on the StatefulSet, so an
/// operator restart resumes them.
pub fn record_scaling(sts: &mut StatefulSet, rebalance: Option<Rebalance>, throttled: &BTreeSet<String>) {
    let annotations = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match rebalance {
        Some(r) => annotations.insert(names::REBALANCE_ANNOTATION.to_string(), r.as_str().to_string()),
        None => annotations.remove(names::REBALANCE_ANNOTATION),
    };
    if throttled.is_empty() {
        annotations.remove(names::THROTTLED_TOPICS_ANNOTATION);
    } else {
        annotations.insert(names::THROTTLED_TOPICS_ANNOTATION.to_string(), membership::format_names(throttled));
    }
}

fn pod_spec(lc: &LogCluster) -> PodSpec {
    let spec = &lc.spec;
    let mut volumes = vec![
        Volume {
            name: CONFIG_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(lc),
                // The start script is run through `sh`, so it needs no exec bit.
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir(RUNTIME_VOLUME),
        empty_dir(TMP_VOLUME),
    ];
    if listeners::plan(&spec.listeners).secured() {
        // The kubelet refreshes a Secret volume in place; the broker re-reads changed certificates.
        volumes.push(Volume {
            name: TLS_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::broker_certs(lc)),
                // Readable by the broker's group (fsGroup), by no one else.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    PodSpec {
        init_containers: spec.tuning.enabled.then(|| vec![tune_container(lc)]),
        containers: vec![broker_container(lc)],
        termination_grace_period_seconds: Some(spec.termination_grace_period_seconds),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(contract::RUN_AS_USER),
            run_as_group: Some(contract::RUN_AS_USER),
            fs_group: Some(contract::RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_string(), localhost_profile: None }),
            ..Default::default()
        }),
        image_pull_secrets: spec.image_pull_secrets.clone(),
        priority_class_name: spec.priority_class_name.clone(),
        service_account_name: spec.service_account_name.clone(),
        node_selector: spec.node_selector.clone(),
        tolerations: spec.tolerations.clone(),
        affinity: Some(spec.affinity.clone().unwrap_or_else(|| default_affinity(lc))),
        topology_spread_constraints: spec.topology_spread_constraints.clone(),
        volumes: Some(volumes),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.to_string(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

/// Prefer one broker per node, so a node failure takes out at most one replica.
fn default_affinity(lc: &LogCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector { match_labels: Some(names::selector_labels(lc)), ..Default::default() }),
                    topology_key: "kubernetes.io/hostname".to_string(),
                    ..Default::default()
                },
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value), value_from: None }
}

fn env_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field_path.to_string(), api_version: None }),
            ..Default::default()
        }),
    }
}

fn http_probe(path: &str, period: i32, failures: i32, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(METRICS_PORT_NAME.to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// The broker's `shutdown.timeout.ms` for a pod termination grace period: on SIGTERM the broker
/// waits up to this long for the controlled shutdown (leaderships moved away), then up to this
/// long again for in-flight requests, then flushes its logs. Both waits plus a margin for the
/// flush (a fifth of the grace period, 1-10 s) fit in the grace period, so the kubelet's SIGKILL
/// never cuts a controlled shutdown short.
pub fn shutdown_timeout_ms(grace_seconds: i64) -> i64 {
    const MIN_MS: i64 = 250;
    let grace_ms = grace_seconds.saturating_mul(1000);
    let margin_ms = (grace_ms / 5).clamp(1000, 10_000);
    ((grace_ms - margin_ms) / 2).max(MIN_MS)
}

fn broker_container(lc: &LogCluster) -> Container {
    let spec = &lc.spec;
    let listeners = listeners::plan(&spec.listeners);
    let advertise = match spec.listeners.advertise {
        AdvertiseMode::PodDns => contract::ADVERTISE_POD_DNS,
        AdvertiseMode::PodIp => contract::ADVERTISE_POD_IP,
        AdvertiseMode::Explicit => contract::ADVERTISE_EXPLICIT,
    };
    // The user's extra variables come last; validation keeps them off the operator's names.
    let mut env_vars = vec![
        env(contract::ENV_ADVERTISE, advertise.to_string()),
        env(contract::ENV_HEADLESS_SERVICE, names::headless_service(lc)),
        env(contract::ENV_LISTENER_PORTS, listeners.script_value()),
        env(contract::ENV_CONTROLLER_PORT, spec.listeners.controller_port.to_string()),
        env_field(contract::ENV_POD_NAMESPACE, "metadata.namespace"),
        env_field(contract::ENV_POD_IP, "status.podIP"),
        env(contract::ENV_CLUSTER_ID, membership::cluster_id(lc)),
        env(contract::ENV_SHUTDOWN_TIMEOUT_MS, shutdown_timeout_ms(spec.termination_grace_period_seconds).to_string()),
    ];
    if listeners.secured() {
        env_vars.push(env(contract::ENV_TLS_DIR, listeners::TLS_DIR.to_string()));
    }
    env_vars.extend(spec.env.iter().flatten().cloned());
    let tcp = |name: &str, port: i32| ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    };
    let mut ports: Vec<ContainerPort> = listeners.all().map(|l| tcp(&l.name, l.port)).collect();
    ports.push(tcp(METRICS_PORT_NAME, spec.metrics.port));
    // Served by the voters only (the start script decides); one template for all pods.
    ports.push(tcp(CONTROLLER_PORT_NAME, spec.listeners.controller_port));
    let mut mounts = vec![
        mount(names::DATA_VOLUME, contract::DATA_DIR, false),
        mount(CONFIG_VOLUME, contract::CONFIG_DIR, true),
        mount(RUNTIME_VOLUME, contract::RUNTIME_DIR, false),
        mount(TMP_VOLUME, "/tmp", false),
    ];
    if listeners.secured() {
        mounts.push(mount(TLS_VOLUME, listeners::TLS_DIR, true));
    }
    Container {
        name: "broker".to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.as_str().to_string()),
        command: Some(vec!["/bin/sh".to_string(), format!("{}/{}", contract::CONFIG_DIR, contract::START_SCRIPT_FILE)]),
        env: Some(env_vars),
        ports: Some(ports),
        readiness_probe: Some(http_probe(contract::READY_PATH, 5, 3, 5)),
        // Generous: log recovery after an unclean stop can take a while before /healthz answers.
        liveness_probe: Some(http_probe(contract::HEALTH_PATH, 10, 6, 60)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_string()]), add: None }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// Writes the node's vm.* sysctls. These are node-wide and not namespaced, so the pod
/// securityContext cannot set them; this container alone runs privileged, and only when the
/// user opts in.
fn tune_container(lc: &LogCluster) -> Container {
    let t = &lc.spec.tuning;
    let values = TuneValues {
        swappiness: Some(t.vm_swappiness),
        dirty_ratio: t.vm_dirty_ratio,
        dirty_background_ratio: t.vm_dirty_background_ratio,
        max_map_count: t.vm_max_map_count,
    };
    Container {
        name: "tune".to_string(),
        image: Some(lc.spec.image.clone()),
        image_pull_policy: Some(lc.spec.image_pull_policy.as_str().to_string()),
        command: Some(contract::tune_command(&values)),
        termination_message_path: Some(contract::TUNE_REPORT_FILE.to_string()),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::assert_owned;
    use k8s_openapi::api::core::v1::LocalObjectReference;

    use crate::crd::{LocalVolume, RetentionSpec};
    use crate::testing::{cluster, settings, spec};

    fn build(lc: &LogCluster) -> StatefulSet {
        statefulset(lc, &settings(lc))
    }

    fn pod(sts: &StatefulSet) -> &PodSpec {
        sts.spec.template.spec.as_ref().unwrap()
    }

    #[test]
    fn runs_brokers_under_operator_controlled_updates() {
        let lc = cluster(spec());
        let sts = build(&lc);
        assert_owned(&sts.metadata);
        let s = &sts.spec;
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.service_name.as_deref(), Some("logs-headless"));
        assert_eq!(s.update_strategy.as_ref().unwrap().type_.as_deref(), Some("OnDelete"));
        assert_eq!(s.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(s.selector.match_labels.as_ref().unwrap(), &names::selector_labels(&lc));
        let claim = &s.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("data"));
        let claim_spec = claim.spec.as_ref().unwrap();
        assert_eq!(claim_spec.storage_class_name, None);
        assert_eq!(claim_spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "10Gi");
    }

    #[test]
    fn shutdown_fits_in_the_grace_period() {
        // (grace seconds) -> shutdown.timeout.ms
        for (grace, want) in [(60, 25_000), (30, 12_000), (10, 4_000), (5, 2_000), (3, 1_000), (1, 250), (3600, 1_795_000)] {
            assert_eq!(shutdown_timeout_ms(grace), want, "grace {grace}s");
        }
        for grace in 1..=3600 {
            let t = shutdown_timeout_ms(grace);
            assert!(2 * t < grace * 1000, "grace {grace}s: two waits of {t} ms leave no margin");
        }
        let mut s = spec();
        s.termination_grace_period_seconds = 30;
        let sts = build(&cluster(s));
        let p = pod(&sts);
        assert_eq!(p.termination_grace_period_seconds, Some(30));
        let env = p.containers[0].env.as_ref().unwrap();
        let timeout = env.iter().find(|e| e.name == "STRATA_SHUTDOWN_TIMEOUT_MS").unwrap();
        assert_eq!(timeout.value.as_deref(), Some("12000"));
    }

    #[test]
    fn broker_container_is_locked_down_and_probed() {
        let lc = cluster(spec());
        let sts = build(&lc);
        let p = pod(&sts);
        assert!(p.init_containers.is_none(), "tuning is opt-in");
        assert_eq!(p.termination_grace_period_seconds, Some(60));
        assert_eq!(p.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let c = &p.containers[0];
        assert_eq!(c.command.as_ref().unwrap(), &["/bin/sh", "/etc/strata/start.sh"]);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let ready = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        let live = c.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(ready.port, IntOrString::String("metrics".into()));
        let env = c.env.as_ref().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("STRATA_ADVERTISE").value.as_deref(), Some("pod-dns"));
        assert_eq!(get("STRATA_HEADLESS_SERVICE").value.as_deref(), Some("logs-headless"));
        assert_eq!(get("POD_IP").value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path, "status.podIP");
        assert_eq!(get("STRATA_CONTROLLER_PORT").value.as_deref(), Some("9093"));
        let ports: Vec<_> = c.ports.as_ref().unwrap().iter().map(|p| (p.name.as_deref().unwrap(), p.container_port)).collect();
        assert_eq!(ports, [("plaintext", 9092), ("metrics", 9644), ("controller", 9093)]);
        let mounts: Vec<_> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/var/lib/strata", "/etc/strata", "/var/run/strata", "/tmp"]);
        let anti = p.affinity.as_ref().unwrap().pod_anti_affinity.as_ref().unwrap();
        let term = &anti.preferred_during_scheduling_ignored_during_execution.as_ref().unwrap()[0];
        assert_eq!(term.pod_affinity_term.topology_key, "kubernetes.io/hostname");
    }

    #[test]
    fn tuning_adds_a_privileged_init_container() {
        let mut s = spec();
        s.tuning.enabled = true;
        s.tuning.vm_max_map_count = Some(262144);
        let sts = build(&cluster(s));
        let init = &pod(&sts).init_containers.as_ref().unwrap()[0];
        assert_eq!(init.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(
            init.command.as_ref().unwrap(),
            &contract::tune_command(&TuneValues { swappiness: Some(1), max_map_count: Some(262144), ..Default::default() })
        );
        assert_eq!(init.termination_message_path.as_deref(), Some("/dev/termination-log"));
        let broker = &pod(&sts).containers[0];
        assert_eq!(broker.security_context.as_ref().unwrap().privileged, None);
    }

    #[test]
    fn user_scheduling_and_labels_are_kept() {
        let mut s = spec();
        s.pod_labels = Some(BTreeMap::from([("team".into(), "data".into())]));
        s.pod_annotations = Some(BTreeMap::from([("note".into(), "x".into())]));
        s.affinity = Some(Affinity::default());
        s.node_selector = Some(BTreeMap::from([("disk".into(), "nvme".into())]));
        let sts = build(&cluster(s));
        let t = &sts.spec.template;
        let meta = t.metadata.as_ref().unwrap();
        assert_eq!(meta.labels.as_ref().unwrap()["team"], "data");
        assert_eq!(meta.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "logs");
        assert_eq!(meta.annotations.as_ref().unwrap()["note"], "x");
        assert!(meta.annotations.as_ref().unwrap().contains_key(names::CONFIG_HASH_ANNOTATION));
        let p = t.spec.as_ref().unwrap();
        assert_eq!(p.affinity, Some(Affinity::default()));
        assert_eq!(p.node_selector.as_ref().unwrap()["disk"], "nvme");
    }

    #[test]
    fn pod_extras_reach_the_pod_and_the_broker_container() {
        let mut s = spec();
        s.image_pull_secrets = Some(vec![LocalObjectReference { name: "registry".into() }]);
        s.priority_class_name = Some("brokers".into());
        s.service_account_name = Some("strata-broker".into());
        s.env = Some(vec![EnvVar { name: "TZ".into(), value: Some("UTC".into()), value_from: None }]);
        let sts = build(&cluster(s));
        let p = pod(&sts);
        assert_eq!(p.image_pull_secrets.as_ref().unwrap()[0].name, "registry");
        assert_eq!(p.priority_class_name.as_deref(), Some("brokers"));
        assert_eq!(p.service_account_name.as_deref(), Some("strata-broker"));
        let env = p.containers[0].env.as_ref().unwrap();
        assert_eq!(env.last().unwrap().name, "TZ", "after the operator's own");
        assert_eq!(env.iter().filter(|e| e.name.starts_with("STRATA_")).count(), 6);

        let plain = build(&cluster(spec()));
        let p = pod(&plain);
        assert_eq!(
            (p.image_pull_secrets.as_ref(), p.priority_class_name.as_ref(), p.service_account_name.as_ref()),
            (None, None, None)
        );
        assert_eq!(p.containers[0].env.as_ref().unwrap().len(), 8);
    }

    #[test]
    fn claim_templates_of_an_existing_statefulset_are_kept() {
        let old = build(&cluster(spec()));
        let mut s = spec();
        s.storage.size = crate::testing::quantity("20Gi");
        let size = |sts: &StatefulSet| {
            let claim = &sts.spec.volume_claim_templates.as_ref().unwrap()[0];
            claim.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0.clone()
        };
        let mut grown = build(&cluster(s));
        keep_claim_templates(&mut grown, None);
        assert_eq!(size(&grown), "20Gi", "a new StatefulSet takes the spec's size");
        keep_claim_templates(&mut grown, Some(&old));
        assert_eq!(size(&grown), "10Gi");
        assert_eq!(grown.spec.template, old.spec.template);
    }

    #[test]
    fn retention_changes_keep_the_pod_template_but_restart_settings_change_it() {
        let base = cluster(spec());
        let mut retention = base.clone();
        retention.spec.retention = Some(RetentionSpec { ms: Some(1000), ..Default::default() });
        let mut partitions = base.clone();
        partitions.spec.config = Some(BTreeMap::from([("num.partitions".into(), "12".into())]));
        let template = |lc: &LogCluster| build(lc).spec.template;
        assert_eq!(template(&base), template(&retention));
        assert_ne!(template(&base), template(&partitions));
    }

    #[test]
    fn membership_is_recorded_in_annotations() {
        let mut sts = build(&cluster(spec()));
        record_membership(&mut sts, 3, &BTreeSet::from([4, 3]));
        let a = sts.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["strata.io/controller-voters"], "3");
        assert_eq!(a["strata.io/brokers-to-unregister"], "3,4");
        record_membership(&mut sts, 3, &BTreeSet::new());
        assert!(!sts.metadata.annotations.unwrap().contains_key("strata.io/brokers-to-unregister"));
    }

    #[test]
    fn local_storage_uses_the_generated_class() {
        let mut s = spec();
        s.replicas = 1;
        s.storage.local = Some(vec![LocalVolume { node: "n1".into(), path: "/mnt/d".into(), capacity: None }]);
        let sts = build(&cluster(s));
        let claim = &sts.spec.volume_claim_templates.unwrap()[0];
        assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("strata-local-prod-logs"));
    }
}
