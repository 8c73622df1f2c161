//! Everything the operator assumes about the `strata-broker` binary and image, in one place.
//!
//! The broker is developed separately; these constants and the start script are the agreement
//! between the two. Changing anything here means changing the broker (or its image) too.
//!
//! # Process and configuration
//! * Binary `strata-broker` on `PATH` in the broker image, which also provides `/bin/sh`.
//! * Started as `strata-broker --config <file>`; the file uses Kafka `server.properties` syntax
//!   and Kafka key names ([`KNOWN_KEYS`]).
//! * The broker exits cleanly on SIGTERM (flush, close segments) within the pod's termination
//!   grace period; the start script `exec`s it so it is PID 1 and receives the signal directly.
//! * HTTP on `metrics.port` (default [`DEFAULT_METRICS_PORT`]): `/metrics` (Prometheus),
//!   `/healthz` (liveness: process serves requests), `/readyz` (readiness: accepts clients).
//!
//! # Node id and advertised address (decided here, not by the broker)
//! The broker does not derive its own `node.id`. The StatefulSet runs [`START_SCRIPT`] (shipped
//! in the ConfigMap) instead of the broker directly. It
//! * takes the pod ordinal from `$HOSTNAME` (`<statefulset>-<ordinal>`) as `node.id`, so ids are
//!   stable across restarts and re-scheduling and equal the ordinal (broker `k` is pod `<name>-k`);
//! * computes the advertised host from [`ENV_ADVERTISE`]: `pod-dns` gives the stable name
//!   `<pod>.<headless-service>.<namespace>.svc`, `pod-ip` the pod IP from the downward API
//!   (for clusters without DNS), `explicit` the line `ordinal + 1` of [`ADVERTISED_HOSTS_FILE`];
//! * appends `node.id` and `advertised.listeners` to the shared properties and writes the result
//!   to a writable emptyDir (the root filesystem is read-only), then `exec`s the broker.
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
//! (IncrementalAlterConfigs on resource type BROKER, resource name = node id); changing any other
//! key restarts the pods.
//!
//! # Cluster membership
//! Brokers form one cluster (every broker knows every topic; each partition lives on the broker it
//! is assigned to, the lowest id is the controller) from two settings:
//! * [`CLUSTER_ID`], shared by all brokers, from [`ENV_CLUSTER_ID`] in the pod template
//!   (derived from the LogCluster's namespace and name; a broker refuses a data directory of
//!   another cluster);
//! * [`CLUSTER_BROKERS`], `id@host:port,...` for every broker `0..replicas` with the host it
//!   advertises (pod DNS name, pod IP or explicit host, as the start script derives it) and the
//!   client port. Pod IPs exist only once pods run, so the operator sets it at run time with
//!   IncrementalAlterConfigs (SET on the BROKER resource, operator-owned), on every ready broker
//!   whenever the list changes, once every broker of the list has an address; the pod annotation
//!   `strata.io/cluster-brokers-applied` records the hash of the list a broker got. Brokers store
//!   the value in their data directory, so a restart keeps the last list until the next push.

/// Broker binary name inside the image.
pub const BINARY: &str = "strata-broker";
/// Default Kafka client port.
pub const DEFAULT_CLIENT_PORT: i32 = 9092;
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
pub const ENV_CLIENT_PORT: &str = "STRATA_CLIENT_PORT";
pub const ENV_POD_IP: &str = "POD_IP";
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// The broker reads `cluster.id` from this variable (its usual `STRATA_<KEY>` form).
pub const ENV_CLUSTER_ID: &str = "STRATA_CLUSTER_ID";
/// Overridable locations, so the script can be exercised outside a pod (tests).
pub const ENV_CONFIG_DIR: &str = "STRATA_CONFIG_DIR";
pub const ENV_RUNTIME_DIR: &str = "STRATA_RUNTIME_DIR";

/// Values of [`ENV_ADVERTISE`].
pub const ADVERTISE_POD_DNS: &str = "pod-dns";
pub const ADVERTISE_POD_IP: &str = "pod-ip";
pub const ADVERTISE_EXPLICIT: &str = "explicit";

/// The broker container's entry point; see the module docs.
pub const START_SCRIPT: &str = r#"#!/bin/sh
# Written by strata-operator (operator/src/broker_contract.rs). Derives node.id and the advertised
# address for this pod, then replaces itself with the broker so SIGTERM reaches it directly.
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
{
  cat "$conf_dir/server.properties"
  echo "node.id=$ordinal"
  echo "advertised.listeners=PLAINTEXT://$host:$STRATA_CLIENT_PORT"
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
    /// Integer with an inclusive lower bound.
    Int {
        min: i64,
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

pub const NODE_ID: &str = "node.id";
pub const LISTENERS: &str = "listeners";
pub const ADVERTISED_LISTENERS: &str = "advertised.listeners";
pub const LOG_DIRS: &str = "log.dirs";
pub const METRICS_PORT: &str = "metrics.port";
pub const LOG_RETENTION_MS: &str = "log.retention.ms";
pub const LOG_RETENTION_BYTES: &str = "log.retention.bytes";
pub const LOG_SEGMENT_BYTES: &str = "log.segment.bytes";
pub const LOG_ROLL_MS: &str = "log.roll.ms";
pub const LOG_CLEANUP_POLICY: &str = "log.cleanup.policy";
pub const NUM_PARTITIONS: &str = "num.partitions";
pub const AUTO_CREATE_TOPICS: &str = "auto.create.topics.enable";
pub const CLUSTER_ID: &str = "cluster.id";
pub const CLUSTER_BROKERS: &str = "cluster.brokers";

/// Every key the broker understands. Anything else in `spec.config` is rejected.
pub const KNOWN_KEYS: &[ConfigKey] = &[
    key(NODE_ID, ValueKind::Int { min: 0 }, Owner::Operator, false),
    key(LISTENERS, ValueKind::Text, Owner::Operator, false),
    key(ADVERTISED_LISTENERS, ValueKind::Text, Owner::Operator, false),
    key(LOG_DIRS, ValueKind::Text, Owner::Operator, false),
    key(METRICS_PORT, ValueKind::Int { min: 1 }, Owner::Operator, false),
    key(LOG_RETENTION_MS, ValueKind::Int { min: -1 }, Owner::User, true),
    key(LOG_RETENTION_BYTES, ValueKind::Int { min: -1 }, Owner::User, true),
    key(LOG_SEGMENT_BYTES, ValueKind::Int { min: 1 }, Owner::User, true),
    key(LOG_ROLL_MS, ValueKind::Int { min: 1 }, Owner::User, true),
    // The broker implements only deletion so far (no compaction).
    key(LOG_CLEANUP_POLICY, ValueKind::OneOf(&["delete"]), Owner::User, true),
    key(NUM_PARTITIONS, ValueKind::Int { min: 1 }, Owner::User, false),
    key(AUTO_CREATE_TOPICS, ValueKind::Bool, Owner::User, false),
    key(CLUSTER_ID, ValueKind::Text, Owner::Operator, false),
    // Set at run time by the operator, not from the spec: see "Cluster membership".
    key(CLUSTER_BROKERS, ValueKind::Text, Owner::Operator, true),
];

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
        ValueKind::Int { min } => match value.parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(v) => Err(format!("{} must be >= {min}, got {v}", key.name)),
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
        let b = lookup(AUTO_CREATE_TOPICS).unwrap();
        assert!(check_value(b, "yes").is_err());
        let p = lookup(LOG_CLEANUP_POLICY).unwrap();
        assert!(check_value(p, "delete").is_ok());
        assert!(check_value(p, "compact").unwrap_err().contains("must be one of delete"));
        assert!(lookup("no.such.key").is_none());
    }

    /// Runs the real start script with `sh`, a stub broker on PATH and temp dirs for the mounts.
    fn run_start_script(hostname: &str, env: &[(&str, &str)]) -> (bool, String, String) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let run = dir.path().join("run");
        let bin = dir.path().join("bin");
        for d in [&conf, &run, &bin] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(conf.join(SHARED_PROPERTIES_FILE), "log.dirs=/var/lib/strata/logs\n").unwrap();
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
            .env(ENV_CLIENT_PORT, "9092")
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
