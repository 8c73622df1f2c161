//! Everything the operator assumes about the `strata-broker` binary and image, in one place.
//!
//! The broker is developed separately; these constants and the start script are the agreement
//! between the two. Changing anything here means changing the broker (or its image) too.
//!
//! # Process and configuration
//! * Binary `strata-broker` on `PATH` in the broker image, which also provides `/bin/sh`.
//! * Started as `strata-broker --config <file>`; the file uses Kafka `server.properties` syntax
//!   and Kafka key names ([`KNOWN_KEYS`]).
//! * The broker exits cleanly on SIGTERM (controlled shutdown, then flush, close segments) within
//!   the pod's termination grace period; the start script `exec`s it so it is PID 1 and receives
//!   the signal directly. [`ENV_SHUTDOWN_TIMEOUT_MS`] in the pod template, derived from the grace
//!   period, bounds each of its two waits (controlled shutdown, in-flight requests).
//! * HTTP on `metrics.port` (default [`DEFAULT_METRICS_PORT`]): `/metrics` (Prometheus),
//!   `/healthz` (liveness: process serves requests), `/readyz` (readiness: in service, i.e.
//!   registered and unfenced after catching up with the metadata log, Kafka's RUNNING state).
//!
//! # Node id, roles, listeners and advertised address (decided here, not by the broker)
//! The broker does not derive its own `node.id`. The StatefulSet runs [`START_SCRIPT`] (shipped
//! in the ConfigMap) instead of the broker directly. It
//! * takes the pod ordinal from `$HOSTNAME` (`<statefulset>-<ordinal>`) as `node.id`, so ids are
//!   stable across restarts and re-scheduling and equal the ordinal (broker `k` is pod `<name>-k`);
//! * makes the broker a controller voter (`process.roles=broker,controller`, and a
//!   `CONTROLLER://0.0.0.0:<`[`ENV_CONTROLLER_PORT`]`>` listener next to the client listener) when
//!   its id is listed in the shared [`CONTROLLER_QUORUM_VOTERS`], and a plain broker
//!   (`process.roles=broker`, client listener only) otherwise;
//! * computes the advertised host from [`ENV_ADVERTISE`]: `pod-dns` gives the stable name
//!   `<pod>.<headless-service>.<namespace>.svc`, `pod-ip` the pod IP from the downward API
//!   (for clusters without DNS), `explicit` the line `ordinal + 1` of [`ADVERTISED_HOSTS_FILE`];
//! * appends `node.id`, `process.roles`, `listeners` and `advertised.listeners` (every listener
//!   of [`ENV_LISTENER_PORTS`], the controller's not advertised) and, in secured clusters, the
//!   pod's `ssl.keystore.location` under [`ENV_TLS_DIR`] to the shared properties and writes the
//!   result to a writable emptyDir (the root filesystem is read-only), then `exec`s the broker.
//!
//! # Host tuning
//! `strata-broker tune` runs as a privileged init container when tuning is enabled, with the
//! flags `--vm-swappiness N`, `--vm-dirty-ratio N`, `--vm-dirty-background-ratio N`,
//! `--vm-max-map-count N` (each optional; only given ones are written to `/proc/sys/vm/*`). It
//! prints the effective values of the four sysctls as `vm.<name>=<value>` lines on stdout and
//! exits non-zero if a write fails. [`TUNE_SCRIPT`] copies that output to
//! `/dev/termination-log`, so Kubernetes puts it into the pod status
//! (`initContainerStatuses[].state.terminated.message`), where the operator reads it for the
//! LogCluster status without needing access to logs.
//!
//! # Dynamic configuration
//! Keys with [`ConfigKey::dynamic`] set are changed on running brokers through the Kafka admin API
//! (IncrementalAlterConfigs on resource type BROKER, resource name = node id, or the empty name
//! for [`CLUSTER_WIDE_KEYS`]); changing any other key restarts the pods.
//!
//! # Controller quorum (Raft, as Kafka's KRaft)
//! * [`CLUSTER_ID`], shared by all brokers, from [`ENV_CLUSTER_ID`] in the pod template
//!   (derived from the LogCluster's namespace and name; a broker refuses a data directory of
//!   another cluster).
//! * The voters are the first `min(3, replicas)` brokers (ids `0..n`), `n` fixed when the
//!   LogCluster is first created and recorded in the StatefulSet annotation
//!   `strata.io/controller-voters` and in `status.controllerVoters` (which outlives a StatefulSet
//!   deleted with `--cascade=orphan`). Changing the voter set is not supported yet: a scale-down
//!   that would remove a voter is refused, a scale-up adds plain brokers.
//! * [`CONTROLLER_LISTENER_NAMES`] is `CONTROLLER`; [`CONTROLLER_QUORUM_VOTERS`] is
//!   `id@host:port,...` for the voters, with the controller port. The shared properties carry a
//!   static value: pod DNS names (`PodDNS`, and as placeholders with the right ids in `PodIP`
//!   mode) or the explicit hosts (`Explicit`). In `PodIP` and `Explicit` modes the operator also
//!   sets it at run time with IncrementalAlterConfigs (SET on the BROKER resource = node id,
//!   operator-owned) on every running broker, ready or not (a broker may be not ready until its
//!   quorum forms), once every voter has an address and whenever an address changes; the pod annotation `strata.io/controller-quorum-voters-applied` records the
//!   hash of the value a broker got. The broker stores the pushed value in its data directory and
//!   uses it for the voters' addresses (the voter ids never change).
//! * Brokers removed by a scale-down are unregistered once their pods are gone: UnregisterBroker
//!   (API key 64) with their id, sent to any remaining ready broker. `BROKER_ID_NOT_REGISTERED`
//!   counts as done, and so does a broker that does not offer the API at all (a broker without a
//!   controller quorum keeps no registrations). Ids still to unregister are recorded in the
//!   StatefulSet annotation `strata.io/brokers-to-unregister`, so an operator restart resumes.

/// Broker binary name inside the image.
pub const BINARY: &str = "strata-broker";
/// Default Kafka client port.
pub const DEFAULT_CLIENT_PORT: i32 = 9092;
/// Default port of the controller listener (voters only).
pub const DEFAULT_CONTROLLER_PORT: i32 = 9093;
/// Default port of the brokers' own mTLS listener (secured clusters only).
pub const DEFAULT_REPLICATION_PORT: i32 = 9091;
/// Listener names: clients, and the controller quorum (`controller.listener.names`).
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";
/// Most controller voters a cluster gets (the first brokers).
pub const MAX_CONTROLLER_VOTERS: i32 = 3;
/// Kafka error code of UnregisterBroker for an id the controller does not know.
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
/// Default HTTP port for `/metrics`, `/healthz`, `/readyz`.
pub const DEFAULT_METRICS_PORT: i32 = 9644;
pub const HEALTH_PATH: &str = "/healthz";
pub const READY_PATH: &str = "/readyz";
pub const METRICS_PATH: &str = "/metrics";

/// Where the ConfigMap (shared properties, start script, advertised hosts) is mounted.
pub const CONFIG_DIR: &str = "/etc/strata";
/// File name (in the ConfigMap and [`CONFIG_DIR`]) of the properties shared by all brokers.
pub const SHARED_PROPERTIES_FILE: &str = "server.properties";
/// File name of the start script in the ConfigMap.
pub const START_SCRIPT_FILE: &str = "start.sh";
/// File name of the per-ordinal advertised host list (one host per line) in the ConfigMap.
pub const ADVERTISED_HOSTS_FILE: &str = "advertised-hosts";
/// Writable directory (emptyDir) where the start script writes the per-broker properties.
pub const RUNTIME_DIR: &str = "/var/run/strata";
/// Mount point of the data volume; `log.dirs` points below it.
pub const DATA_DIR: &str = "/var/lib/strata";
pub const LOG_DIR: &str = "/var/lib/strata/logs";
/// UID/GID the broker runs as (non-root); the image creates this user.
pub const RUN_AS_USER: i64 = 10001;

/// Environment read by [`START_SCRIPT`].
pub const ENV_ADVERTISE: &str = "STRATA_ADVERTISE";
pub const ENV_HEADLESS_SERVICE: &str = "STRATA_HEADLESS_SERVICE";
/// `NAME:port,...` of the listeners (but the controller's), from [`crate::listeners::Listeners::script_value`];
/// not a broker setting (the broker reads `STRATA_<KEY>` only for keys it knows).
pub const ENV_LISTENER_PORTS: &str = "STRATA_LISTENER_PORTS";
/// Set in secured clusters: the directory of the mounted certificates; the keystore is `<pod>.pem` there.
pub const ENV_TLS_DIR: &str = "STRATA_TLS_DIR";
pub const ENV_CONTROLLER_PORT: &str = "STRATA_CONTROLLER_PORT";
pub const ENV_POD_IP: &str = "POD_IP";
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// The broker reads `cluster.id` from this variable (its usual `STRATA_<KEY>` form).
pub const ENV_CLUSTER_ID: &str = "STRATA_CLUSTER_ID";
/// The broker reads any setting `a.b.c` from `STRATA_A_B_C`, over its properties file; the
/// operator owns every such variable, so extra env in the spec cannot bypass `spec.config`.
pub const ENV_BROKER_PREFIX: &str = "STRATA_";
/// `shutdown.timeout.ms`: how long SIGTERM waits for the controlled shutdown, then again for
/// in-flight requests; derived from the pod's termination grace period.
pub const ENV_SHUTDOWN_TIMEOUT_MS: &str = "STRATA_SHUTDOWN_TIMEOUT_MS";
/// Overridable locations, so the script can be exercised outside a pod (tests).
pub const ENV_CONFIG_DIR: &str = "STRATA_CONFIG_DIR";
pub const ENV_RUNTIME_DIR: &str = "STRATA_RUNTIME_DIR";

/// Values of [`ENV_ADVERTISE`].
pub const ADVERTISE_POD_DNS: &str = "pod-dns";
pub const ADVERTISE_POD_IP: &str = "pod-ip";
pub const ADVERTISE_EXPLICIT: &str = "explicit";

/// The broker container's entry point; see the module docs.
pub const START_SCRIPT: &str = r#"#!/bin/sh
# Written by strata-operator (operator/src/broker_contract.rs). Derives node.id, the roles, the
# listeners and the advertised address for this pod, then replaces itself with the broker so
# SIGTERM reaches it directly.
set -eu
conf_dir="${STRATA_CONFIG_DIR:-/etc/strata}"
run_dir="${STRATA_RUNTIME_DIR:-/var/run/strata}"
ordinal="${HOSTNAME##*-}"
case "$ordinal" in
  ''|*[!0-9]*) echo "strata: cannot derive node.id: HOSTNAME '$HOSTNAME' does not end in -<ordinal>" >&2; exit 64 ;;
esac
case "${STRATA_ADVERTISE:-pod-dns}" in
  pod-dns)  host="$HOSTNAME.$STRATA_HEADLESS_SERVICE.$POD_NAMESPACE.svc" ;;
  pod-ip)   host="${POD_IP:-}" ;;
  explicit) host="$(sed -n "$((ordinal + 1))p" "$conf_dir/advertised-hosts")" ;;
  *) echo "strata: unknown STRATA_ADVERTISE '$STRATA_ADVERTISE'" >&2; exit 64 ;;
esac
if [ -z "$host" ]; then
  echo "strata: no advertised host for ordinal $ordinal (mode ${STRATA_ADVERTISE:-pod-dns})" >&2; exit 64
fi
voters="$(sed -n 's/^controller\.quorum\.voters=//p' "$conf_dir/server.properties")"
if [ -z "$voters" ]; then
  echo "strata: no controller.quorum.voters in $conf_dir/server.properties" >&2; exit 64
fi
listeners=""
advertised=""
for l in $(printf '%s' "${STRATA_LISTENER_PORTS:-}" | tr ',' ' '); do
  listeners="$listeners,${l%%:*}://0.0.0.0:${l##*:}"
  advertised="$advertised,${l%%:*}://$host:${l##*:}"
done
listeners="${listeners#,}"
advertised="${advertised#,}"
if [ -z "$listeners" ]; then
  echo "strata: no listeners in STRATA_LISTENER_PORTS" >&2; exit 64
fi
case ",$voters," in
  *",$ordinal@"*) roles="broker,controller"; listeners="$listeners,CONTROLLER://0.0.0.0:$STRATA_CONTROLLER_PORT" ;;
  *) roles="broker" ;;
esac
{
  cat "$conf_dir/server.properties"
  echo "node.id=$ordinal"
  echo "process.roles=$roles"
  echo "listeners=$listeners"
  echo "advertised.listeners=$advertised"
  if [ -n "${STRATA_TLS_DIR:-}" ]; then echo "ssl.keystore.location=$STRATA_TLS_DIR/$HOSTNAME.pem"; fi
} > "$run_dir/server.properties.tmp"
mv "$run_dir/server.properties.tmp" "$run_dir/server.properties"
exec strata-broker --config "$run_dir/server.properties"
"#;

/// Where the tuning report goes: Kubernetes copies this file into the pod status.
pub const TUNE_REPORT_FILE: &str = "/dev/termination-log";

/// Runs `strata-broker tune` with the script's arguments and keeps its report; the exit status
/// is the broker's. `STRATA_TUNE_REPORT` exists for tests outside a pod.
pub const TUNE_SCRIPT: &str = r#"report="${STRATA_TUNE_REPORT:-/dev/termination-log}"
strata-broker tune "$@" > "$report"
rc=$?
cat "$report"
exit $rc"#;

/// The sysctls `tune` manages, in report order.
pub const TUNE_SYSCTLS: [&str; 4] = ["vm.swappiness", "vm.dirty_ratio", "vm.dirty_background_ratio", "vm.max_map_count"];

/// Desired sysctl values for `tune`; `None` leaves the node's value alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TuneValues {
    pub swappiness: Option<i64>,
    pub dirty_ratio: Option<i64>,
    pub dirty_background_ratio: Option<i64>,
    pub max_map_count: Option<i64>,
}

/// Full command line of the tuning init container.
pub fn tune_command(values: &TuneValues) -> Vec<String> {
    let mut args = vec!["/bin/sh".to_string(), "-c".to_string(), TUNE_SCRIPT.to_string(), "tune".to_string()];
    let flags = [
        ("--vm-swappiness", values.swappiness),
        ("--vm-dirty-ratio", values.dirty_ratio),
        ("--vm-dirty-background-ratio", values.dirty_background_ratio),
        ("--vm-max-map-count", values.max_map_count),
    ];
    for (flag, value) in flags {
        if let Some(v) = value {
            args.push(flag.to_string());
            args.push(v.to_string());
        }
    }
    args
}

/// Parses a `tune` report (`vm.x=N` lines); unknown or malformed lines are ignored so a newer
/// broker reporting more values does not break older operators.
pub fn parse_tune_report(report: &str) -> std::collections::BTreeMap<String, String> {
    report
        .lines()
        .filter_map(|line| line.trim().split_once('='))
        .filter(|(k, _)| TUNE_SYSCTLS.contains(&k.trim()))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Type of a broker configuration value, for validating user-supplied settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    /// Integer within inclusive bounds.
    Int {
        min: i64,
        max: i64,
    },
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// Anything non-empty (listener lists, paths).
    Text,
}

/// How a configuration key may be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Derived by the operator (from the spec or per pod); users cannot set it in `config`.
    Operator,
    /// Users may set it in `spec.config` (or through a dedicated spec field).
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: ValueKind,
    pub owner: Owner,
    /// Can be changed on a running broker with IncrementalAlterConfigs.
    pub dynamic: bool,
}

const fn key(name: &'static str, kind: ValueKind, owner: Owner, dynamic: bool) -> ConfigKey {
    ConfigKey { name, kind, owner, dynamic }
}

/// An integer setting with no upper bound of its own.
const fn int(min: i64) -> ValueKind {
    ValueKind::Int { min, max: i64::MAX }
}

/// A non-negative Java `int`, the type of most of Kafka's counts.
const INT_COUNT: ValueKind = ValueKind::Int { min: 0, max: i32::MAX as i64 };

pub const NODE_ID: &str = "node.id";
pub const PROCESS_ROLES: &str = "process.roles";
pub const LISTENERS: &str = "listeners";
pub const ADVERTISED_LISTENERS: &str = "advertised.listeners";
pub const LISTENER_SECURITY_PROTOCOL_MAP: &str = "listener.security.protocol.map";
pub const INTER_BROKER_LISTENER_NAME: &str = "inter.broker.listener.name";
pub const AUTHORIZER_CLASS_NAME: &str = "authorizer.class.name";
pub const SUPER_USERS: &str = "super.users";
pub const CONTROLLER_LISTENER_NAMES: &str = "controller.listener.names";
pub const CONTROLLER_QUORUM_VOTERS: &str = "controller.quorum.voters";
pub const LOG_DIRS: &str = "log.dirs";
pub const METRICS_PORT: &str = "metrics.port";
pub const LOG_RETENTION_MS: &str = "log.retention.ms";
pub const LOG_RETENTION_BYTES: &str = "log.retention.bytes";
pub const LOG_SEGMENT_BYTES: &str = "log.segment.bytes";
pub const LOG_ROLL_MS: &str = "log.roll.ms";
pub const LOG_CLEANUP_POLICY: &str = "log.cleanup.policy";
pub const NUM_PARTITIONS: &str = "num.partitions";
pub const DEFAULT_REPLICATION_FACTOR: &str = "default.replication.factor";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const OFFSETS_TOPIC_REPLICATION_FACTOR: &str = "offsets.topic.replication.factor";
pub const AUTO_CREATE_TOPICS: &str = "auto.create.topics.enable";
pub const CLUSTER_ID: &str = "cluster.id";
pub const BROKER_HEARTBEAT_INTERVAL_MS: &str = "broker.heartbeat.interval.ms";
pub const BROKER_SESSION_TIMEOUT_MS: &str = "broker.session.timeout.ms";

/// Every key the broker understands. Anything else in `spec.config` is rejected.
pub const KNOWN_KEYS: &[ConfigKey] = &[
    key(NODE_ID, int(0), Owner::Operator, false),
    // Per pod, from the start script: see "Node id, roles, listeners and advertised address".
    key(PROCESS_ROLES, ValueKind::OneOf(&["broker", "broker,controller"]), Owner::Operator, false),
    key(LISTENERS, ValueKind::Text, Owner::Operator, false),
    key(ADVERTISED_LISTENERS, ValueKind::Text, Owner::Operator, false),
    key(LISTENER_SECURITY_PROTOCOL_MAP, ValueKind::Text, Owner::Operator, false),
    key(INTER_BROKER_LISTENER_NAME, ValueKind::Text, Owner::Operator, false),
    key(AUTHORIZER_CLASS_NAME, ValueKind::Text, Owner::Operator, false),
    key(SUPER_USERS, ValueKind::Text, Owner::Operator, false),
    key(CONTROLLER_LISTENER_NAMES, ValueKind::Text, Owner::Operator, false),
    // Rendered, and set at run time in PodIP and Explicit modes: see "Controller quorum".
    key(CONTROLLER_QUORUM_VOTERS, ValueKind::Text, Owner::Operator, true),
    key(LOG_DIRS, ValueKind::Text, Owner::Operator, false),
    key(METRICS_PORT, int(1), Owner::Operator, false),
    key(LOG_RETENTION_MS, int(-1), Owner::User, true),
    key(LOG_RETENTION_BYTES, int(-1), Owner::User, true),
    key(LOG_SEGMENT_BYTES, int(1), Owner::User, true),
    key(LOG_ROLL_MS, int(1), Owner::User, true),
    // The broker implements only deletion so far (no compaction).
    key(LOG_CLEANUP_POLICY, ValueKind::OneOf(&["delete"]), Owner::User, true),
    key(NUM_PARTITIONS, int(1), Owner::User, false),
    // Dynamic, but on the cluster-wide default resource only ([`CLUSTER_WIDE_KEYS`]).
    key(DEFAULT_REPLICATION_FACTOR, ValueKind::Int { min: 1, max: i16::MAX as i64 }, Owner::User, true),
    key(MIN_INSYNC_REPLICAS, int(1), Owner::User, true),
    key(OFFSETS_TOPIC_REPLICATION_FACTOR, ValueKind::Int { min: 1, max: i16::MAX as i64 }, Owner::User, false),
    key(AUTO_CREATE_TOPICS, ValueKind::Bool, Owner::User, false),
    key(CLUSTER_ID, ValueKind::Text, Owner::Operator, false),
    // The controller quorum and broker registration (issue 13).
    key(BROKER_HEARTBEAT_INTERVAL_MS, int(1), Owner::User, false),
    key(BROKER_SESSION_TIMEOUT_MS, int(1), Owner::User, false),
    key("controller.quorum.election.timeout.ms", int(1), Owner::User, false),
    key("controller.quorum.fetch.timeout.ms", int(1), Owner::User, false),
    key("metadata.log.max.snapshot.interval.records", int(1), Owner::User, false),
    key("broker.rack", ValueKind::Text, Owner::User, false),
    // Resource limits and the read path, with the broker's bounds (broker/src/config.rs).
    key("log.segment.close.idle.ms", int(0), Owner::User, false),
    key("max.connections", INT_COUNT, Owner::User, false),
    key("max.connections.per.ip", INT_COUNT, Owner::User, false),
    key("connections.max.idle.ms", ValueKind::Int { min: 1, max: 31_536_000_000 }, Owner::User, false),
    key("socket.listen.backlog.size", ValueKind::Int { min: 1, max: i32::MAX as i64 }, Owner::User, false),
    key("fetch.warmup.enable", ValueKind::Bool, Owner::User, false),
    key("num.io.threads", ValueKind::Int { min: 1, max: 1024 }, Owner::User, false),
];

/// Dynamic keys set for the whole cluster (IncrementalAlterConfigs on the BROKER resource with
/// the empty name, kept in the metadata log) rather than per broker: the replication defaults,
/// which the operator derives from the broker count and which must not need a restart to change.
/// Replication throttles (KIP-73) the operator sets while it moves replicas: rates (bytes/s) as
/// cluster-wide broker defaults, and per topic the replicas they apply to.
pub const LEADER_THROTTLE_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_THROTTLE_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";
pub const CLUSTER_WIDE_KEYS: &[&str] = &[DEFAULT_REPLICATION_FACTOR, MIN_INSYNC_REPLICAS];

pub fn lookup(name: &str) -> Option<&'static ConfigKey> {
    KNOWN_KEYS.iter().find(|k| k.name == name)
}

/// Checks one value against its key's type; the error says what was expected.
pub fn check_value(key: &ConfigKey, value: &str) -> Result<(), String> {
    match key.kind {
        ValueKind::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(format!("{} must be true or false, got {value:?}", key.name)),
        },
        ValueKind::Int { min, max } => match value.parse::<i64>() {
            Ok(v) if v < min => Err(format!("{} must be >= {min}, got {v}", key.name)),
            Ok(v) if v > max => Err(format!("{} must be <= {max}, got {v}", key.name)),
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{} must be an integer, got {value:?}", key.name)),
        },
        ValueKind::OneOf(options) if options.contains(&value) => Ok(()),
        ValueKind::OneOf(options) => Err(format!("{} must be one of {}, got {value:?}", key.name, options.join(", "))),
        ValueKind::Text if value.trim().is_empty() => Err(format!("{} must not be empty", key.name)),
        ValueKind::Text => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_command_passes_only_requested_values() {
        let cmd = tune_command(&TuneValues { swappiness: Some(1), max_map_count: Some(262144), ..Default::default() });
        assert_eq!(cmd[..2], ["/bin/sh", "-c"]);
        assert_eq!(cmd[3..], ["tune", "--vm-swappiness", "1", "--vm-max-map-count", "262144"]);
    }

    /// Runs the real tune wrapper with `sh` and a stub broker that reports (or fails).
    fn run_tune(stub_body: &str) -> (Option<i32>, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join(BINARY);
        std::fs::write(&stub, format!("#!/bin/sh\n{stub_body}\n")).unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        let report = dir.path().join("termination-log");
        let cmd = tune_command(&TuneValues { swappiness: Some(1), ..Default::default() });
        let out = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .env("STRATA_TUNE_REPORT", &report)
            .output()
            .unwrap();
        (
            out.status.code(),
            std::fs::read_to_string(&report).unwrap_or_default(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn tune_script_keeps_the_report_and_the_exit_status() {
        let (code, report, stdout) = run_tune(r#"[ "$1 $2 $3" = "tune --vm-swappiness 1" ] || exit 9; echo vm.swappiness=1"#);
        assert_eq!(code, Some(0));
        assert_eq!(report, "vm.swappiness=1\n");
        assert_eq!(stdout, report, "the report is also logged");
        let (code, _, _) = run_tune("echo 'cannot write vm.swappiness' >&2; exit 3");
        assert_eq!(code, Some(3));
    }

    #[test]
    fn tune_report_keeps_known_sysctls_only() {
        let parsed = parse_tune_report("vm.swappiness=1\nvm.dirty_ratio = 20\ngarbage\nvm.other=3\n");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["vm.swappiness"], "1");
        assert_eq!(parsed["vm.dirty_ratio"], "20");
    }

    #[test]
    fn values_are_type_checked() {
        let k = lookup(LOG_RETENTION_MS).unwrap();
        assert!(check_value(k, "-1").is_ok());
        assert!(check_value(k, "-2").unwrap_err().contains(">= -1"));
        assert!(check_value(k, "7d").unwrap_err().contains("integer"));
        let threads = lookup("num.io.threads").unwrap();
        assert!(check_value(threads, "1024").is_ok());
        assert!(check_value(threads, "1025").unwrap_err().contains("<= 1024"));
        assert!(check_value(threads, "0").unwrap_err().contains(">= 1"));
        let b = lookup(AUTO_CREATE_TOPICS).unwrap();
        assert!(check_value(b, "yes").is_err());
        let p = lookup(LOG_CLEANUP_POLICY).unwrap();
        assert!(check_value(p, "delete").is_ok());
        assert!(check_value(p, "compact").unwrap_err().contains("must be one of delete"));
        assert!(lookup("no.such.key").is_none());
        assert!(lookup("cluster.brokers").is_none(), "gone with the controller quorum");
    }

    #[test]
    fn key_table_owners_and_dynamic_flags() {
        let operator: Vec<&str> = KNOWN_KEYS.iter().filter(|k| k.owner == Owner::Operator).map(|k| k.name).collect();
        assert_eq!(
            operator,
            [
                "node.id",
                "process.roles",
                "listeners",
                "advertised.listeners",
                "listener.security.protocol.map",
                "inter.broker.listener.name",
                "authorizer.class.name",
                "super.users",
                "controller.listener.names",
                "controller.quorum.voters",
                "log.dirs",
                "metrics.port",
                "cluster.id"
            ]
        );
        // (key, dynamic) for the keys the quorum and the hardening work added.
        let table = [
            ("controller.quorum.voters", true),
            ("broker.heartbeat.interval.ms", false),
            ("broker.session.timeout.ms", false),
            ("controller.quorum.election.timeout.ms", false),
            ("controller.quorum.fetch.timeout.ms", false),
            ("metadata.log.max.snapshot.interval.records", false),
            ("broker.rack", false),
            ("log.segment.close.idle.ms", false),
            ("max.connections", false),
            ("max.connections.per.ip", false),
            ("connections.max.idle.ms", false),
            ("socket.listen.backlog.size", false),
            ("fetch.warmup.enable", false),
            ("num.io.threads", false),
            ("default.replication.factor", true),
            ("min.insync.replicas", true),
            ("offsets.topic.replication.factor", false),
        ];
        for (name, dynamic) in table {
            assert_eq!(lookup(name).map(|k| k.dynamic), Some(dynamic), "{name}");
        }
        let mut names: Vec<&str> = KNOWN_KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN_KEYS.len(), "no key listed twice");
    }

    /// Runs the real start script with `sh`, a stub broker on PATH and temp dirs for the mounts.
    fn run_start_script(hostname: &str, env: &[(&str, &str)]) -> (bool, String, String) {
        run_start_script_with(SHARED, hostname, env)
    }

    /// Shared properties as the operator renders them: voters 0 and 1.
    const SHARED: &str = "log.dirs=/var/lib/strata/logs\ncontroller.listener.names=CONTROLLER\n\
                          controller.quorum.voters=0@logs-0.logs-headless.prod.svc:9093,1@logs-1.logs-headless.prod.svc:9093\n";

    fn run_start_script_with(shared: &str, hostname: &str, env: &[(&str, &str)]) -> (bool, String, String) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let run = dir.path().join("run");
        let bin = dir.path().join("bin");
        for d in [&conf, &run, &bin] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(conf.join(SHARED_PROPERTIES_FILE), shared).unwrap();
        std::fs::write(conf.join(ADVERTISED_HOSTS_FILE), "a.example\nb.example\n").unwrap();
        let stub = bin.join(BINARY);
        let mut f = std::fs::File::create(&stub).unwrap();
        writeln!(f, "#!/bin/sh\necho \"args: $*\"\ncat \"$2\"").unwrap();
        drop(f);
        std::process::Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        let script = dir.path().join(START_SCRIPT_FILE);
        std::fs::write(&script, START_SCRIPT).unwrap();
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOSTNAME", hostname)
            .env(ENV_CONFIG_DIR, &conf)
            .env(ENV_RUNTIME_DIR, &run)
            .env(ENV_LISTENER_PORTS, "PLAINTEXT:9092")
            .env(ENV_CONTROLLER_PORT, "9093")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn start_script_derives_node_id_and_dns_name() {
        let (ok, out, err) = run_start_script(
            "logs-12",
            &[(ENV_ADVERTISE, ADVERTISE_POD_DNS), (ENV_HEADLESS_SERVICE, "logs-headless"), (ENV_POD_NAMESPACE, "prod")],
        );
        assert!(ok, "{err}");
        assert!(out.contains("args: --config "), "{out}");
        assert!(out.contains("log.dirs=/var/lib/strata/logs\n"));
        assert!(out.contains("node.id=12\n"));
        assert!(out.contains("advertised.listeners=PLAINTEXT://logs-12.logs-headless.prod.svc:9092\n"), "{out}");
        assert!(out.contains("process.roles=broker\nlisteners=PLAINTEXT://0.0.0.0:9092\n"), "not a voter: {out}");
    }

    /// Voters are the ids listed in `controller.quorum.voters`; only they get the controller
    /// role and listener, and the advertised listener stays the client one.
    #[test]
    fn start_script_makes_the_listed_voters_controllers() {
        let dns = [(ENV_ADVERTISE, ADVERTISE_POD_DNS), (ENV_HEADLESS_SERVICE, "logs-headless"), (ENV_POD_NAMESPACE, "prod")];
        for (host, voter) in [("logs-0", true), ("logs-1", true), ("logs-2", false), ("logs-10", false)] {
            let (ok, out, err) = run_start_script(host, &dns);
            assert!(ok, "{err}");
            let (roles, listeners) = if voter {
                ("broker,controller", "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093")
            } else {
                ("broker", "PLAINTEXT://0.0.0.0:9092")
            };
            assert!(out.contains(&format!("\nprocess.roles={roles}\n")), "{host}: {out}");
            assert!(out.contains(&format!("\nlisteners={listeners}\n")), "{host}: {out}");
            assert!(out.contains(&format!("advertised.listeners=PLAINTEXT://{host}.logs-headless.prod.svc:9092\n")), "{out}");
            assert_eq!(out.matches("listeners=").count(), 2, "one listeners and one advertised.listeners line: {out}");
        }
        let (ok, _, err) = run_start_script_with("log.dirs=/x\n", "logs-0", &dns);
        assert!(!ok);
        assert!(err.contains("no controller.quorum.voters"), "{err}");
    }

    #[test]
    fn start_script_writes_every_listener_and_the_pods_keystore() {
        let env = [
            (ENV_ADVERTISE, ADVERTISE_POD_IP),
            (ENV_POD_IP, "10.1.2.3"),
            (ENV_LISTENER_PORTS, "SCRAM:9094,REPLICATION:9091"),
            (ENV_TLS_DIR, "/etc/strata/tls"),
        ];
        let (ok, out, err) = run_start_script("logs-0", &env);
        assert!(ok, "{err}");
        assert!(out.contains("\nlisteners=SCRAM://0.0.0.0:9094,REPLICATION://0.0.0.0:9091,CONTROLLER://0.0.0.0:9093\n"), "{out}");
        assert!(out.contains("\nadvertised.listeners=SCRAM://10.1.2.3:9094,REPLICATION://10.1.2.3:9091\n"), "{out}");
        assert!(out.contains("\nssl.keystore.location=/etc/strata/tls/logs-0.pem\n"), "{out}");
        let (ok, out, _) = run_start_script("logs-0", &[(ENV_ADVERTISE, ADVERTISE_POD_IP), (ENV_POD_IP, "10.1.2.3")]);
        assert!(ok);
        assert!(!out.contains("ssl.keystore.location"), "plaintext clusters have no keystore: {out}");
        let (ok, _, err) =
            run_start_script("logs-0", &[(ENV_ADVERTISE, ADVERTISE_POD_IP), (ENV_POD_IP, "10.1.2.3"), (ENV_LISTENER_PORTS, "")]);
        assert!(!ok);
        assert!(err.contains("no listeners"), "{err}");
    }

    #[test]
    fn start_script_advertises_pod_ip_or_explicit_host() {
        let (ok, out, _) = run_start_script("logs-0", &[(ENV_ADVERTISE, ADVERTISE_POD_IP), (ENV_POD_IP, "10.1.2.3")]);
        assert!(ok);
        assert!(out.contains("advertised.listeners=PLAINTEXT://10.1.2.3:9092\n"));
        let (ok, out, _) = run_start_script("logs-1", &[(ENV_ADVERTISE, ADVERTISE_EXPLICIT)]);
        assert!(ok);
        assert!(out.contains("advertised.listeners=PLAINTEXT://b.example:9092\n"));
    }

    #[test]
    fn start_script_refuses_what_it_cannot_derive() {
        let (ok, _, err) = run_start_script("broker", &[(ENV_ADVERTISE, ADVERTISE_POD_IP), (ENV_POD_IP, "10.1.2.3")]);
        assert!(!ok);
        assert!(err.contains("cannot derive node.id"), "{err}");
        let (ok, _, err) = run_start_script("logs-0", &[(ENV_ADVERTISE, ADVERTISE_POD_IP)]);
        assert!(!ok);
        assert!(err.contains("no advertised host"), "{err}");
        let (ok, _, err) = run_start_script("logs-5", &[(ENV_ADVERTISE, ADVERTISE_EXPLICIT)]);
        assert!(!ok, "only two explicit hosts exist");
        assert!(err.contains("no advertised host for ordinal 5"), "{err}");
    }
}
