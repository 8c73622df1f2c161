//! Broker configuration with Kafka's setting names. Sources, strongest first: command-line flags
//! (`--log.dirs DIR`), environment variables (`STRATA_LOG_DIRS`), a properties file (`--config FILE`),
//! then the defaults below (topic-level log defaults come from strata-storage's `LogConfig::default()`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use strata_storage::LogConfig;

use crate::sasl::{dial_credentials, parse_mechanism, SaslSettings, SASL_KEYS};
use crate::tls::{parse_protocol_map, SecurityProtocol, SslSettings, SSL_KEYS};
use strata_client::{SaslCredentials, SaslMechanism};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("cannot read config file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected key=value")]
    Syntax { path: PathBuf, line: usize },
}

pub(crate) fn invalid(key: &str, value: &str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), reason: reason.to_string() }
}

/// One broker setting: its Kafka name, its default (None: none, or the storage default) and what it does.
pub struct Setting {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

const fn s(name: &'static str, default: Option<&'static str>, help: &'static str) -> Setting {
    Setting { name, default, help }
}

/// Broker-level log settings and the topic-level key each one is the default for (Kafka's pairs).
pub const LOG_DEFAULT_KEYS: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.index.size.max.bytes", "segment.index.bytes"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.segment.delete.delay.ms", "file.delete.delay.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.write.mode", "log.write.mode"),
    ("log.roll.jitter.ms", "segment.jitter.ms"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("compression.type", "compression.type"),
    ("log.message.timestamp.type", "message.timestamp.type"),
    ("log.message.timestamp.before.max.ms", "message.timestamp.before.max.ms"),
    ("log.message.timestamp.after.max.ms", "message.timestamp.after.max.ms"),
    ("unclean.leader.election.enable", "unclean.leader.election.enable"),
    ("log.preallocate", "preallocate"),
    ("log.message.downconversion.enable", "message.downconversion.enable"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms"),
    ("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio"),
];

/// The topic-level key a broker-level log setting is the default for.
pub fn topic_key_for(broker_key: &str) -> Option<&'static str> {
    LOG_DEFAULT_KEYS.iter().find(|(b, _)| *b == broker_key).map(|(_, t)| *t)
}

pub const SETTINGS: &[Setting] = &[
    s("node.id", Some("0"), "This broker's id, returned in Metadata."),
    s(
        "listeners",
        Some("PLAINTEXT://127.0.0.1:9092"),
        "Comma-separated NAME://HOST:PORT to listen on; an empty host or 0.0.0.0 binds all interfaces. Each NAME's \
         security protocol comes from listener.security.protocol.map.",
    ),
    s(
        "listener.security.protocol.map",
        Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        "NAME:PROTOCOL for each listener name (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL). While it is not set, \
         names it lacks (CONTROLLER, INTERNAL, ...) are PLAINTEXT; once set, it must name every listener.",
    ),
    s(
        "sasl.enabled.mechanisms",
        Some(crate::sasl::DEFAULT_MECHANISM),
        "The SASL mechanisms SASL_* listeners accept (per listener: listener.name.<name>.sasl.enabled.mechanisms): \
         PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. Kafka's default, GSSAPI, is not supported (nor OAUTHBEARER).",
    ),
    s(
        "sasl.mechanism.inter.broker.protocol",
        Some(crate::sasl::DEFAULT_MECHANISM),
        "The mechanism this node authenticates with on a SASL inter-broker listener of the others (replication, \
         forwarded requests), with the username and password of that listener's sasl.jaas.config for it.",
    ),
    s(
        "sasl.mechanism.controller.protocol",
        Some(crate::sasl::DEFAULT_MECHANISM),
        "The mechanism this node authenticates with on a SASL controller listener of the voters.",
    ),
    s(
        "sasl.jaas.config",
        None,
        "A login module and its options, as Kafka's: ScramLoginModule or PlainLoginModule required username=\"...\" \
         password=\"...\"; (PlainLoginModule also user_<name>=\"<password>\"). Per listener and mechanism: \
         listener.name.<name>.<mechanism lower-case>.sasl.jaas.config. Its username/password is what this node dials the \
         others with, and a user every node accepts without the metadata log (put it in super.users once ACLs are on).",
    ),
    s("ssl.keystore.type", Some("PEM"), "Format of the keystore: PEM only."),
    s(
        "ssl.keystore.location",
        None,
        "PEM file with the private key (unencrypted PKCS#8, PKCS#1 or SEC1) and the certificate chain of SSL \
         listeners. Re-read when it changes (checked at most once a second, on new connections).",
    ),
    s("ssl.keystore.certificate.chain", None, "The certificate chain as PEM text (with ssl.keystore.key, instead of a file)."),
    s("ssl.keystore.key", None, "The private key as PEM text (with ssl.keystore.certificate.chain)."),
    s("ssl.key.password", None, "Refused: encrypted private keys are not supported yet."),
    s("ssl.truststore.type", Some("PEM"), "Format of the truststore: PEM only."),
    s(
        "ssl.truststore.location",
        None,
        "PEM file of CA certificates that client certificates (ssl.client.auth) and, for this broker's connections \
         to other nodes, their server certificates must chain to. Re-read when it changes.",
    ),
    s("ssl.truststore.certificates", None, "CA certificates as PEM text, instead of ssl.truststore.location."),
    s(
        "ssl.client.auth",
        Some("none"),
        "none, requested (clients may present a certificate) or required (they must; one not signed by a trusted CA \
         fails the handshake). A client certificate's subject is the connection's principal.",
    ),
    s("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3"), "TLS versions accepted and offered: TLSv1.2 and/or TLSv1.3."),
    s(
        "ssl.principal.mapping.rules",
        Some("DEFAULT"),
        "Kafka's rules turning a client certificate's subject (RFC 2253, e.g. CN=app,O=Acme) into the principal's \
         name: DEFAULT, or RULE:pattern/replacement/[LU], comma-separated; the first that applies wins.",
    ),
    s(
        "ssl.endpoint.identification.algorithm",
        Some("https"),
        "https: this broker checks that another node's certificate names the host it dialed; empty: not checked.",
    ),
    s(
        "advertised.listeners",
        None,
        "NAME://HOST:PORT given to clients in Metadata, per listener name (default: listeners; a wildcard host becomes \
         this machine's hostname). Pods advertise their stable DNS name.",
    ),
    s("log.dirs", Some("./data"), "Directory holding the partition logs and topic metadata (one directory)."),
    s("num.partitions", Some("1"), "Partition count of auto-created topics and of CreateTopics with -1 partitions."),
    s(
        "default.replication.factor",
        Some("1"),
        "Replication factor of auto-created topics and of CreateTopics with -1 (at most the number of live brokers).",
    ),
    s("auto.create.topics.enable", Some("true"), "Create unknown topics on Metadata requests that allow it."),
    s(
        "authorizer.class.name",
        Some(""),
        "Empty: every request is allowed. org.apache.kafka.metadata.authorizer.StandardAuthorizer (or \
         kafka.security.authorizer.AclAuthorizer): requests are checked against the ACLs (CreateAcls), kept in the \
         metadata log.",
    ),
    s(
        "super.users",
        Some(""),
        "Principals allowed everything, separated by ';' (e.g. User:admin;User:CN=broker). The brokers' own \
         principal on the inter-broker and controller listeners must be one (User:ANONYMOUS on PLAINTEXT).",
    ),
    s(
        "allow.everyone.if.no.acl.found",
        Some("false"),
        "With the authorizer, allow requests on resources that no ACL names (instead of denying them).",
    ),
    s("log.retention.ms", None, "Default retention.ms of topics (-1: unlimited; default from .minutes/.hours)."),
    s("log.retention.minutes", None, "Default retention in minutes, used when log.retention.ms is not set."),
    s("log.retention.hours", None, "Default retention in hours, used when neither .ms nor .minutes is set (168)."),
    s("log.retention.bytes", None, "Default retention.bytes per partition (-1: unlimited)."),
    s("log.segment.bytes", None, "Default segment.bytes: roll a new segment file past this size."),
    s("log.roll.ms", None, "Default segment.ms: roll a new segment after this age (default from log.roll.hours)."),
    s("log.roll.hours", None, "Default segment age in hours, used when log.roll.ms is not set (168)."),
    s("log.index.size.max.bytes", None, "Default segment.index.bytes: maximum size of a segment's offset index."),
    s("log.index.interval.bytes", None, "Default index.interval.bytes: bytes between offset index entries."),
    s("log.flush.interval.messages", None, "Default flush.messages: fsync after this many records (default never)."),
    s("log.flush.interval.ms", None, "Default flush.ms: fsync data older than this (default never)."),
    s("log.segment.delete.delay.ms", None, "Default file.delete.delay.ms: delay before deleting removed segments."),
    s("log.cleanup.policy", None, "Default cleanup.policy (only delete is supported)."),
    s("message.max.bytes", None, "Default max.message.bytes: largest record batch accepted."),
    s(
        "log.write.mode",
        None,
        "How appends reach the page cache: write (pwrite) or mmap (each segment preallocated to segment.bytes and \
         mapped; a segment the disk lacks room to preallocate is written with pwrite, so appends go on while they fit).",
    ),
    s("log.roll.jitter.ms", None, "Default segment.jitter.ms: random time subtracted from log.roll.ms per segment."),
    s("log.roll.jitter.hours", None, "Default segment jitter in hours, used when log.roll.jitter.ms is not set (0)."),
    s(
        "min.insync.replicas",
        None,
        "Default min.insync.replicas (1): the in-sync replicas an acks=all produce needs (NOT_ENOUGH_REPLICAS \
         otherwise); while a partition has fewer, its high watermark does not move.",
    ),
    s(
        "compression.type",
        None,
        "Default compression.type: producer (store batches as sent), uncompressed, gzip, snappy, lz4 or zstd \
         (batches in another codec are re-encoded).",
    ),
    s("log.message.timestamp.type", None, "Default message.timestamp.type: CreateTime or LogAppendTime."),
    s(
        "log.message.timestamp.before.max.ms",
        None,
        "Default message.timestamp.before.max.ms: how far in the past a CreateTime timestamp may be (unbounded).",
    ),
    s(
        "log.message.timestamp.after.max.ms",
        None,
        "Default message.timestamp.after.max.ms: how far in the future a CreateTime timestamp may be (1 hour).",
    ),
    s(
        "unclean.leader.election.enable",
        None,
        "Default unclean.leader.election.enable (false): whether a partition whose in-sync replicas are all down elects \
         another live replica, which may lack acknowledged records.",
    ),
    s("log.preallocate", None, "Accepted for compatibility; no effect on the data (log.write.mode=mmap preallocates)."),
    s(
        "log.message.downconversion.enable",
        None,
        "Accepted for compatibility; no effect (batches are never down-converted: Fetch v4+ only).",
    ),
    s("log.cleaner.delete.retention.ms", None, "Accepted for compatibility; no effect (logs are never compacted)."),
    s("log.cleaner.min.compaction.lag.ms", None, "Accepted for compatibility; no effect (logs are never compacted)."),
    s("log.cleaner.max.compaction.lag.ms", None, "Accepted for compatibility; no effect (logs are never compacted)."),
    s("log.cleaner.min.cleanable.ratio", None, "Accepted for compatibility; no effect (logs are never compacted)."),
    s("log.retention.check.interval.ms", Some("300000"), "How often retention is enforced."),
    s("log.flush.scheduler.interval.ms", Some("1000"), "How often logs are checked for flush.ms."),
    s("log.flush.offset.checkpoint.interval.ms", Some("60000"), "How often recovery points are checkpointed."),
    s(
        "log.segment.close.idle.ms",
        Some("60000"),
        "A closed segment's files are opened for reads and closed again after this long without reads, so open \
         descriptors and memory maps grow with the partitions in use, not with the data kept.",
    ),
    s("socket.request.max.bytes", Some("104857600"), "Largest request accepted; bigger ones close the connection."),
    s(
        "connection.max.inflight.requests",
        Some("64"),
        "Pipelined requests read from one connection before its responses are written (backpressure bound).",
    ),
    s(
        "connections.max.idle.ms",
        Some("600000"),
        "Close connections with no bytes read or written for this long and no request in progress; a request whose \
         bytes stop arriving counts as idle.",
    ),
    s(
        "max.connections",
        Some("2147483647"),
        "Open client connections allowed per broker (all listeners together); more are closed at once, logged and \
         counted in strata_connections_refused_total. Keep it below the file descriptor limit.",
    ),
    s(
        "max.connections.per.ip",
        Some("2147483647"),
        "Open connections allowed from one IP address; more are closed at once, logged and counted.",
    ),
    s("socket.listen.backlog.size", Some("50"), "Pending connections the kernel queues per listener (SOMAXCONN caps it)."),
    s("fetch.mode", Some("sendfile"), "How Fetch sends record bytes: sendfile (zero-copy) or copy (read + write)."),
    s(
        "fetch.warmup.enable",
        Some("true"),
        "Read fetched ranges that are not in the page cache into it on num.io.threads blocking threads before \
         sending them, so a consumer reading old, evicted segments does not block the network threads that serve \
         other connections (false: send them at once, reading the disk on the network thread).",
    ),
    s(
        "num.io.threads",
        Some("4"),
        "Blocking threads doing the disk reads of fetches when fetch.warmup.enable is true: reading cold ranges into \
         the page cache and locating ranges in evicted segments. At most this many fetches read from disk at once, \
         with no buffer of their own (ranges are read with sendfile to /dev/null), and at most this many ranges \
         are read ahead.",
    ),
    s("metrics.port", Some("9644"), "Port of the HTTP endpoint: /metrics (Prometheus), /healthz, /readyz (0: disabled)."),
    s("metrics.bind.address", Some("0.0.0.0"), "Address the metrics.port endpoint binds to."),
    s(
        "metrics.pagecache.probe",
        Some("true"),
        "Measure page-cache hits of fetched bytes (cachestat(2), or mincore(2) on older kernels).",
    ),
    s(
        "metrics.consumer.lag.refresh.ms",
        Some("10000"),
        "How often a group coordinator asks the brokers that lead its groups' committed partitions for their high \
         watermarks (for kafka_consumergroup_lag; values older than 3 intervals are not exported).",
    ),
    s(
        "shutdown.timeout.ms",
        Some("15000"),
        "How long SIGTERM waits for the controlled shutdown, and then for in-flight requests before closing them \
         (a pod's termination grace period should exceed twice this).",
    ),
    s(
        "controlled.shutdown.enable",
        Some("true"),
        "On SIGTERM, first have the controller move this broker's leaderships to other in-sync replicas and take it \
         out of the ISRs (bounded by shutdown.timeout.ms), then close the listeners.",
    ),
    s(
        "cluster.id",
        None,
        "Id shared by every node of the cluster (1-64 characters of [A-Za-z0-9_-]); needed when controller.quorum.voters \
         lists other nodes. Default: a random id kept in the data directory.",
    ),
    s(
        "process.roles",
        Some("broker,controller"),
        "What this node does: broker (serves clients, hosts partitions), controller (a voter of the controller quorum), \
         or both.",
    ),
    s(
        "controller.quorum.voters",
        Some(""),
        "The controller quorum's voters as id@host:port,... (the port of each voter's controller listener). Empty: this \
         node alone is the quorum (a single node). Voter addresses (not ids) may be changed at run time with \
         IncrementalAlterConfigs on this broker's BROKER resource (stored in the data directory).",
    ),
    s(
        "controller.listener.names",
        Some("CONTROLLER"),
        "The listener (of listeners) the controller quorum's messages arrive on, on voters.",
    ),
    s(
        "inter.broker.listener.name",
        None,
        "The listener other nodes reach this broker on. Default: the first listener that is not a controller listener.",
    ),
    s(
        "security.inter.broker.protocol",
        None,
        "Instead of inter.broker.listener.name (not both): the inter-broker listener is the one named like this \
         protocol (PLAINTEXT or SSL).",
    ),
    s("broker.rack", None, "The rack of this broker (registered with the controller, reported in Metadata)."),
    s("broker.heartbeat.interval.ms", Some("2000"), "How often a broker heartbeats to the active controller."),
    s(
        "broker.session.timeout.ms",
        Some("9000"),
        "A broker without a heartbeat for this long is fenced: it leads no partition until it is back. One whose address \
         refuses connections (its process exited) is fenced at once.",
    ),
    s(
        "controller.quorum.election.timeout.ms",
        Some("1000"),
        "A voter that hears nothing from the quorum's leader for this long (plus a random part as long) starts an election.",
    ),
    s(
        "metadata.log.max.snapshot.interval.records",
        Some("10000"),
        "Metadata log entries after which a snapshot of the metadata is taken and older entries are dropped.",
    ),
    s(
        "replica.lag.time.max.ms",
        Some("30000"),
        "A follower that has not caught up with its leader's log end for this long leaves the in-sync replicas.",
    ),
    s("replica.fetch.max.bytes", Some("1048576"), "Bytes a follower asks for per partition in each fetch (at least one batch)."),
    s("replica.fetch.response.max.bytes", Some("10485760"), "Bytes a follower asks for per fetch, over all partitions."),
    s(
        "replica.fetch.wait.max.ms",
        Some("500"),
        "How long a follower's fetch waits at the leader for new records (keep it below replica.lag.time.max.ms).",
    ),
    s("replica.fetch.backoff.ms", Some("1000"), "How long a follower waits after a failed fetch before trying again."),
    s(
        "auto.leader.rebalance.enable",
        Some("true"),
        "Every leader.imbalance.check.interval.seconds the active controller moves each partition whose preferred \
         replica (the first) is live and in sync back to it.",
    ),
    s("leader.imbalance.check.interval.seconds", Some("300"), "How often the controller checks for leaders to move back."),
    s(
        "leader.imbalance.per.broker.percentage",
        None,
        "Accepted for compatibility: as Kafka's KRaft controller, every imbalanced partition is moved back, whatever \
         its broker's share.",
    ),
    s(
        "num.replica.fetchers",
        Some("1"),
        "Accepted for compatibility: a broker runs one fetcher task per leader it follows, multiplexing every \
         partition on one connection (tasks are cheap; Kafka uses this many threads per leader).",
    ),
];

/// How followers replicate (the `replica.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub lag_time_max: Duration,
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
    pub fetch_wait_max_ms: i32,
    pub fetch_backoff: Duration,
}

/// `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

impl Roles {
    pub fn parse(value: &str) -> Result<Roles, String> {
        let mut roles = Roles { broker: false, controller: false };
        for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match r {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => return Err(format!("unknown role {other:?}: expected broker and/or controller")),
            }
        }
        if !roles.broker && !roles.controller {
            return Err("no role".into());
        }
        Ok(roles)
    }
}

/// Parses `id@host:port,...` (Kafka's controller.quorum.voters).
pub fn parse_voters(value: &str) -> Result<BTreeMap<i32, String>, String> {
    let mut out = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (id, addr) = item.split_once('@').ok_or_else(|| format!("{item:?}: expected id@host:port"))?;
        let id: i32 = id.trim().parse().ok().filter(|i| *i >= 0).ok_or_else(|| format!("{item:?}: bad node id {id:?}"))?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{item:?}: missing :port"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() || bare.contains(char::is_whitespace) {
            return Err(format!("{item:?}: bad host {host:?}"));
        }
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| format!("{item:?}: bad port {port:?}"))?;
        let addr = if bare.contains(':') { format!("[{bare}]:{port}") } else { format!("{bare}:{port}") };
        if out.insert(id, addr).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    Ok(out)
}

/// A voter must be listed, a broker-only node must not be; several nodes need a shared cluster.id (each
/// data directory would otherwise have its own).
pub fn check_voters(voters: &BTreeMap<i32, String>, node_id: i32, roles: Roles, has_cluster_id: bool) -> Result<(), String> {
    match (voters.is_empty(), roles.controller, voters.contains_key(&node_id)) {
        (true, false, _) => return Err("a node without the controller role needs the voters to reach".into()),
        (false, true, false) => return Err(format!("does not list this controller (node.id {node_id})")),
        (false, false, true) => return Err(format!("lists node.id {node_id}, which does not have the controller role")),
        _ => {}
    }
    if (voters.len() > 1 || !roles.controller) && !has_cluster_id {
        return Err("several nodes need a shared cluster.id: set it, the same on every node".into());
    }
    Ok(())
}

/// How record bytes of Fetch responses reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// sendfile(2) from the segment file: no copy through user space.
    Sendfile,
    /// pread into a buffer, then write: for comparison (TLS connections always copy).
    Copy,
}

impl FromStr for FetchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sendfile" => Ok(FetchMode::Sendfile),
            "copy" => Ok(FetchMode::Copy),
            _ => Err("expected sendfile or copy".into()),
        }
    }
}

/// `NAME://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

impl Listener {
    /// True when the host binds every interface, so it cannot be advertised as is.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host.as_str(), "" | "0.0.0.0" | "::")
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            h if h.contains(':') => format!("[{h}]:{}", self.port),
            h => format!("{h}:{}", self.port),
        }
    }
}

/// Parses a comma-separated listener list.
pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, addr) = item.split_once("://").ok_or_else(|| invalid(key, value, "expected NAME://HOST:PORT"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(key, value, format!("bad listener name {name:?}")));
        }
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| invalid(key, value, "missing :PORT"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| invalid(key, value, format!("bad port {port:?}")))?;
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(key, value, format!("listener name {name} appears twice")));
        }
        out.push(Listener { name: name.into(), host: host.into(), port });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "no listener"));
    }
    Ok(out)
}

/// A listener's security: TLS settings for SSL and SASL_SSL, SASL settings for SASL_PLAINTEXT and SASL_SSL.
#[derive(Debug, Clone, Default)]
pub struct ListenerSecurity {
    pub ssl: Option<SslSettings>,
    pub sasl: Option<SaslSettings>,
}

/// The security of each of `names` from `listener.security.protocol.map`.
fn listener_security<'a>(
    names: impl Iterator<Item = &'a str>,
    served: &[Listener],
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, ListenerSecurity>, ConfigError> {
    let key = "listener.security.protocol.map";
    let explicit = get(key);
    let value = explicit
        .clone()
        .unwrap_or_else(|| SETTINGS.iter().find(|s| s.name == key).and_then(|s| s.default).unwrap_or_default().into());
    let map = parse_protocol_map(&value).map_err(|e| invalid(key, &value, e))?;
    let mut out = BTreeMap::new();
    for name in names {
        let protocol = match (map.get(name), &explicit) {
            (Some(p), _) => *p,
            (None, Some(_)) => return Err(invalid(key, &value, format!("no security protocol for listener {name}"))),
            (None, None) => SecurityProtocol::Plaintext,
        };
        let tls = matches!(protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl);
        let sasl = matches!(protocol, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl);
        let security = ListenerSecurity {
            ssl: if tls {
                let ssl = SslSettings::from_lookup(name, get)?;
                if ssl.keystore.is_none() && served.iter().any(|l| l.name == name) {
                    return Err(invalid(
                        "ssl.keystore.location",
                        "",
                        format!("SSL listener {name} needs a keystore (or ssl.keystore.certificate.chain and ssl.keystore.key)"),
                    ));
                }
                Some(ssl)
            } else {
                None
            },
            sasl: if sasl { Some(SaslSettings::from_lookup(name, get)?) } else { None },
        };
        out.insert(name.to_string(), security);
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    /// Same names as `listeners`; a port of 0 is replaced by the bound port at startup.
    pub advertised_listeners: Vec<Listener>,
    pub log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    /// None: no authorizer (authorizer.class.name empty).
    pub authorizer: Option<crate::authorizer::AuthorizerSettings>,
    /// Broker-level overrides of topic-level log settings, by topic key (e.g. "retention.ms").
    pub log_overrides: Vec<(String, String)>,
    /// `LogConfig::default()` with `log_overrides` applied: the config of topics without overrides.
    pub log_defaults: LogConfig,
    pub retention_check_interval_ms: u64,
    pub flush_check_interval_ms: u64,
    pub recovery_point_checkpoint_interval_ms: u64,
    pub segment_close_idle_ms: i64,
    pub socket_request_max_bytes: usize,
    pub max_inflight_requests: usize,
    pub fetch_mode: FetchMode,
    pub connections_max_idle: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub socket_listen_backlog: u32,
    pub fetch_warmup_enable: bool,
    pub num_io_threads: usize,
    pub metrics_port: u16,
    pub metrics_bind_address: String,
    pub metrics_pagecache_probe: bool,
    pub metrics_consumer_lag_refresh: Duration,
    pub shutdown_timeout: Duration,
    pub controlled_shutdown: bool,
    /// Consumer groups, committed offsets and idempotent producers.
    pub groups: crate::group::GroupConfig,
    /// Shared by the brokers of a cluster; None: each data directory gets its own.
    pub cluster_id: Option<String>,
    pub roles: Roles,
    /// Voter id -> `host:port`; empty: this node alone is the quorum.
    pub quorum_voters: BTreeMap<i32, String>,
    pub controller_listener: String,
    pub inter_broker_listener: String,
    /// The security of each listener and of the controller listener (which a broker-only node only dials).
    pub listener_security: BTreeMap<String, ListenerSecurity>,
    /// What this node authenticates with when it dials the inter-broker / controller listener of the others,
    /// if that listener is SASL.
    pub inter_broker_sasl: Option<SaslCredentials>,
    pub controller_sasl: Option<SaslCredentials>,
    pub rack: Option<String>,
    pub heartbeat_interval: Duration,
    pub session_timeout: Duration,
    /// auto.leader.rebalance.enable: Some(leader.imbalance.check.interval.seconds).
    pub leader_rebalance_interval: Option<Duration>,
    pub election_timeout: Duration,
    pub snapshot_interval_records: u64,
    pub replication: ReplicationConfig,
}

fn parse<T: FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e| invalid(key, value, e))
}

pub(crate) fn parse_range<T: FromStr + PartialOrd + fmt::Display + Copy>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    let v: T = parse(key, value)?;
    if v < min || v > max {
        return Err(invalid(key, value, format!("must be in [{min}, {max}]")));
    }
    Ok(v)
}

impl BrokerConfig {
    /// Builds the config from a lookup by Kafka name (the merged sources); unset names take the defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<BrokerConfig, ConfigError> {
        let val = |key: &str| -> String {
            get(key).unwrap_or_else(|| {
                SETTINGS.iter().find(|s| s.name == key).and_then(|s| s.default).unwrap_or_default().to_string()
            })
        };
        let listeners = parse_listeners("listeners", &val("listeners"))?;
        let advertised_listeners = match get("advertised.listeners") {
            Some(v) => {
                let adv = parse_listeners("advertised.listeners", &v)?;
                if let Some(l) = adv.iter().find(|a| !listeners.iter().any(|l| l.name == a.name)) {
                    return Err(invalid("advertised.listeners", &v, format!("{} is not in listeners", l.name)));
                }
                if let Some(l) = adv.iter().find(|a| a.is_wildcard()) {
                    return Err(invalid("advertised.listeners", &v, format!("{l}: cannot advertise a wildcard host")));
                }
                // Listeners without an advertised address advertise their own.
                listeners.iter().map(|l| adv.iter().find(|a| a.name == l.name).unwrap_or(l).clone()).collect()
            }
            None => listeners.clone(),
        };
        let log_dirs = val("log.dirs");
        if log_dirs.contains(',') {
            return Err(invalid("log.dirs", &log_dirs, "only one log directory is supported"));
        }
        if log_dirs.trim().is_empty() {
            return Err(invalid("log.dirs", &log_dirs, "empty"));
        }

        let mut log_overrides: Vec<(String, String)> = Vec::new();
        for (broker_key, topic_key) in LOG_DEFAULT_KEYS {
            if let Some(v) = get(broker_key) {
                log_overrides.push((topic_key.to_string(), v.trim().to_string()));
            }
        }
        // Kafka's precedence: .ms, then .minutes, then .hours.
        for (ms_key, topic_key, coarse) in [
            ("log.retention.ms", "retention.ms", &[("log.retention.minutes", 60_000i64), ("log.retention.hours", 3_600_000)][..]),
            ("log.roll.ms", "segment.ms", &[("log.roll.hours", 3_600_000)][..]),
            ("log.roll.jitter.ms", "segment.jitter.ms", &[("log.roll.jitter.hours", 3_600_000)][..]),
        ] {
            if get(ms_key).is_some() {
                continue;
            }
            if let Some((k, v, unit)) = coarse.iter().find_map(|(k, unit)| get(k).map(|v| (*k, v, *unit))) {
                let n: i64 = parse(k, &v)?;
                let ms = if n < 0 { -1 } else { n.checked_mul(unit).ok_or_else(|| invalid(k, &v, "too large"))? };
                log_overrides.push((topic_key.to_string(), ms.to_string()));
            }
        }
        let log_defaults = LogConfig::default()
            .with_overrides(log_overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| match e {
                strata_storage::StorageError::InvalidConfig { key, value, reason } => {
                    let broker_key = LOG_DEFAULT_KEYS.iter().find(|(_, t)| *t == key).map_or(key.clone(), |(b, _)| b.to_string());
                    ConfigError::Invalid { key: broker_key, value, reason }
                }
                other => invalid("log config", "", other),
            })?;

        let node_id = parse_range("node.id", &val("node.id"), 0, i32::MAX)?;
        let cluster_id = get("cluster.id").map(|v| v.trim().to_string());
        if let Some(id) = &cluster_id {
            check_cluster_id(id).map_err(|e| invalid("cluster.id", id, e))?;
        }
        let roles_value = val("process.roles");
        let roles = Roles::parse(&roles_value).map_err(|e| invalid("process.roles", &roles_value, e))?;
        let voters_value = val("controller.quorum.voters");
        let quorum_voters = parse_voters(&voters_value)
            .and_then(|v| check_voters(&v, node_id, roles, cluster_id.is_some()).map(|()| v))
            .map_err(|e| invalid("controller.quorum.voters", &voters_value, e))?;
        let controller_listener = val("controller.listener.names").trim().to_string();
        if roles.controller && quorum_voters.len() > 1 && !listeners.iter().any(|l| l.name == controller_listener) {
            return Err(invalid(
                "controller.listener.names",
                &controller_listener,
                "a voter needs this listener in listeners (e.g. CONTROLLER://0.0.0.0:9093)",
            ));
        }
        // Kafka's older way to choose it, security.inter.broker.protocol, names the listener called like the protocol.
        let (key, chosen) = match (get("inter.broker.listener.name"), get("security.inter.broker.protocol")) {
            (Some(_), Some(protocol)) => {
                return Err(invalid("security.inter.broker.protocol", &protocol, "set either it or inter.broker.listener.name"))
            }
            (Some(name), None) => ("inter.broker.listener.name", Some(name)),
            (None, protocol) => ("security.inter.broker.protocol", protocol),
        };
        let inter_broker_listener = match chosen {
            Some(name) if listeners.iter().any(|l| l.name == name.trim()) => name.trim().to_string(),
            Some(name) => return Err(invalid(key, &name, "not in listeners")),
            None => listeners.iter().find(|l| l.name != controller_listener).unwrap_or(&listeners[0]).name.clone(),
        };

        let names = listeners.iter().map(|l| l.name.as_str()).chain([controller_listener.as_str()]);
        let listener_security = listener_security(names, &listeners, &get)?;
        let dial_sasl = |key: &str, listener: &str| -> Result<Option<SaslCredentials>, ConfigError> {
            let Some(settings) = listener_security.get(listener).and_then(|s| s.sasl.as_ref()) else { return Ok(None) };
            let mechanism: SaslMechanism = parse_mechanism(key, &val(key))?;
            dial_credentials(key, mechanism, listener, settings).map(Some)
        };
        let inter_broker_sasl = dial_sasl("sasl.mechanism.inter.broker.protocol", &inter_broker_listener)?;
        let controller_sasl = dial_sasl("sasl.mechanism.controller.protocol", &controller_listener)?;

        let (class, super_users) = (val("authorizer.class.name"), val("super.users"));
        let allow_everyone = parse("allow.everyone.if.no.acl.found", &val("allow.everyone.if.no.acl.found"))?;
        let authorizer = crate::authorizer::AuthorizerSettings::parse(&class, &super_users, allow_everyone)
            .map_err(|(key, e)| invalid(key, &val(key), e))?;

        Ok(BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            log_dir: PathBuf::from(log_dirs.trim()),
            num_partitions: parse_range("num.partitions", &val("num.partitions"), 1, 1_000_000)?,
            default_replication_factor: parse_range(
                "default.replication.factor",
                &val("default.replication.factor"),
                1,
                i16::MAX,
            )?,
            auto_create_topics: parse("auto.create.topics.enable", &val("auto.create.topics.enable"))?,
            authorizer,
            log_overrides,
            log_defaults,
            retention_check_interval_ms: parse_range(
                "log.retention.check.interval.ms",
                &val("log.retention.check.interval.ms"),
                1,
                u64::MAX,
            )?,
            flush_check_interval_ms: parse_range(
                "log.flush.scheduler.interval.ms",
                &val("log.flush.scheduler.interval.ms"),
                1,
                u64::MAX,
            )?,
            recovery_point_checkpoint_interval_ms: parse_range(
                "log.flush.offset.checkpoint.interval.ms",
                &val("log.flush.offset.checkpoint.interval.ms"),
                1,
                u64::MAX,
            )?,
            segment_close_idle_ms: parse_range("log.segment.close.idle.ms", &val("log.segment.close.idle.ms"), 0, i64::MAX)?,
            socket_request_max_bytes: parse_range(
                "socket.request.max.bytes",
                &val("socket.request.max.bytes"),
                64,
                i32::MAX as usize,
            )?,
            max_inflight_requests: parse_range(
                "connection.max.inflight.requests",
                &val("connection.max.inflight.requests"),
                1,
                100_000,
            )?,
            fetch_mode: parse("fetch.mode", &val("fetch.mode"))?,
            connections_max_idle: Duration::from_millis(parse_range(
                "connections.max.idle.ms",
                &val("connections.max.idle.ms"),
                1,
                31_536_000_000, // a year: deadlines stay far from Instant overflow
            )?),
            max_connections: parse_range("max.connections", &val("max.connections"), 0, i32::MAX as usize)?,
            max_connections_per_ip: parse_range("max.connections.per.ip", &val("max.connections.per.ip"), 0, i32::MAX as usize)?,
            socket_listen_backlog: parse_range(
                "socket.listen.backlog.size",
                &val("socket.listen.backlog.size"),
                1,
                i32::MAX as u32,
            )?,
            fetch_warmup_enable: parse("fetch.warmup.enable", &val("fetch.warmup.enable"))?,
            num_io_threads: parse_range("num.io.threads", &val("num.io.threads"), 1, 1024)?,
            metrics_port: parse("metrics.port", &val("metrics.port"))?,
            metrics_bind_address: val("metrics.bind.address"),
            metrics_pagecache_probe: parse("metrics.pagecache.probe", &val("metrics.pagecache.probe"))?,
            metrics_consumer_lag_refresh: Duration::from_millis(parse_range(
                "metrics.consumer.lag.refresh.ms",
                &val("metrics.consumer.lag.refresh.ms"),
                10,
                3_600_000,
            )?),
            shutdown_timeout: Duration::from_millis(parse("shutdown.timeout.ms", &val("shutdown.timeout.ms"))?),
            controlled_shutdown: parse("controlled.shutdown.enable", &val("controlled.shutdown.enable"))?,
            groups: crate::group::GroupConfig::from_lookup(&get)?,
            cluster_id,
            roles,
            quorum_voters,
            controller_listener,
            inter_broker_listener,
            listener_security,
            inter_broker_sasl,
            controller_sasl,
            rack: get("broker.rack").map(|r| r.trim().to_string()).filter(|r| !r.is_empty()),
            heartbeat_interval: Duration::from_millis(parse_range(
                "broker.heartbeat.interval.ms",
                &val("broker.heartbeat.interval.ms"),
                10,
                600_000,
            )?),
            leader_rebalance_interval: parse::<bool>("auto.leader.rebalance.enable", &val("auto.leader.rebalance.enable"))?
                .then(|| {
                    parse_range(
                        "leader.imbalance.check.interval.seconds",
                        &val("leader.imbalance.check.interval.seconds"),
                        1,
                        86_400,
                    )
                })
                .transpose()?
                .map(Duration::from_secs),
            session_timeout: Duration::from_millis(parse_range(
                "broker.session.timeout.ms",
                &val("broker.session.timeout.ms"),
                50,
                3_600_000,
            )?),
            election_timeout: Duration::from_millis(parse_range(
                "controller.quorum.election.timeout.ms",
                &val("controller.quorum.election.timeout.ms"),
                50,
                600_000,
            )?),
            snapshot_interval_records: parse_range(
                "metadata.log.max.snapshot.interval.records",
                &val("metadata.log.max.snapshot.interval.records"),
                10,
                u64::MAX,
            )?,
            replication: ReplicationConfig {
                lag_time_max: Duration::from_millis(parse_range(
                    "replica.lag.time.max.ms",
                    &val("replica.lag.time.max.ms"),
                    10,
                    3_600_000,
                )?),
                fetch_max_bytes: parse_range("replica.fetch.max.bytes", &val("replica.fetch.max.bytes"), 1, i32::MAX)?,
                fetch_response_max_bytes: parse_range(
                    "replica.fetch.response.max.bytes",
                    &val("replica.fetch.response.max.bytes"),
                    1,
                    i32::MAX,
                )?,
                fetch_wait_max_ms: parse_range("replica.fetch.wait.max.ms", &val("replica.fetch.wait.max.ms"), 0, 600_000)?,
                fetch_backoff: Duration::from_millis(parse_range(
                    "replica.fetch.backoff.ms",
                    &val("replica.fetch.backoff.ms"),
                    0,
                    600_000,
                )?),
            },
        })
    }

    /// A config from explicit `key=value` pairs over the defaults (tests, embedding).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<BrokerConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BrokerConfig::from_lookup(|k| map.get(k).cloned())
    }
}

/// Kafka's cluster ids are 22 characters of URL-safe base64; any short id of those characters is accepted.
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    if (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        Ok(())
    } else {
        Err("expected 1-64 characters of [A-Za-z0-9_-]".into())
    }
}

/// Every name the broker understands, for warning about unknown ones.
pub fn is_known(key: &str) -> bool {
    let per_listener = key.strip_prefix("listener.name.").and_then(|k| k.split_once('.')).map(|(_, setting)| setting);
    let jaas = |k: &str| {
        k.strip_suffix(".sasl.jaas.config").is_some_and(|m| SaslMechanism::ALL.iter().any(|x| x.name().eq_ignore_ascii_case(m)))
    };
    all_settings().any(|s| s.name == key)
        || per_listener.is_some_and(|k| SSL_KEYS.contains(&k) || SASL_KEYS.contains(&k) || jaas(k))
}

/// The broker's settings and those of the group coordinator.
pub fn all_settings() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().chain(crate::group::config::SETTINGS)
}

/// Parses a Java-style properties file: `key=value` or `key: value`, `#`/`!` comments, blank lines.
pub fn parse_properties(path: &Path, text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).ok_or(ConfigError::Syntax { path: path.into(), line: i + 1 })?;
        let (k, v) = (line[..split].trim(), line[split + 1..].trim());
        if k.is_empty() {
            return Err(ConfigError::Syntax { path: path.into(), line: i + 1 });
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The environment variable for a setting: `STRATA_` + the name upper-cased with dots as underscores.
pub fn env_name(key: &str) -> String {
    format!("STRATA_{}", key.to_ascii_uppercase().replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_local_single_node_broker() {
        let c = BrokerConfig::from_pairs([]).unwrap();
        assert_eq!(c.node_id, 0);
        assert_eq!(c.listeners, vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }]);
        assert_eq!(c.advertised_listeners, c.listeners);
        assert_eq!(c.log_dir, PathBuf::from("./data"));
        assert_eq!(c.socket_request_max_bytes, 100 * 1024 * 1024);
        assert_eq!(c.fetch_mode, FetchMode::Sendfile);
        assert_eq!(c.log_defaults, LogConfig::default());
        assert_eq!((c.num_partitions, c.default_replication_factor), (1, 1));
        assert_eq!(c.metrics_consumer_lag_refresh, Duration::from_secs(10));
        assert_eq!(c.metrics_port, 9644, "Redpanda's metrics port, as the operator's default");
        assert_eq!(c.authorizer, None);
        assert_eq!(c.connections_max_idle, Duration::from_secs(600));
        assert_eq!(
            (c.max_connections, c.max_connections_per_ip, c.socket_listen_backlog),
            (i32::MAX as usize, i32::MAX as usize, 50)
        );
    }

    #[test]
    fn listeners_and_advertised_listeners() {
        let c = BrokerConfig::from_pairs([
            ("listeners", "INTERNAL://0.0.0.0:9092, EXTERNAL://:9094"),
            ("advertised.listeners", "INTERNAL://broker-0.strata.ns.svc:9092"),
        ])
        .unwrap();
        assert_eq!(c.listeners[0].bind_addr(), "0.0.0.0:9092");
        assert_eq!(c.listeners[1].bind_addr(), "0.0.0.0:9094");
        assert_eq!(c.advertised_listeners[0].host, "broker-0.strata.ns.svc");
        assert_eq!(c.advertised_listeners[1], c.listeners[1]);
        let v6 = parse_listeners("listeners", "PLAINTEXT://[::1]:9092").unwrap();
        assert_eq!(v6[0].bind_addr(), "[::1]:9092");
        assert_eq!(v6[0].to_string(), "PLAINTEXT://[::1]:9092");
        for bad in ["", "PLAINTEXT://host", "PLAINTEXT://h:x", "h:1", "A://h:1,A://h:2"] {
            assert!(parse_listeners("listeners", bad).is_err(), "{bad}");
        }
        for (l, adv) in [("A://:1", "B://h:1"), ("A://:1", "A://0.0.0.0:1")] {
            assert!(BrokerConfig::from_pairs([("listeners", l), ("advertised.listeners", adv)]).is_err(), "{adv}");
        }
    }

    #[test]
    fn listener_security_protocols() {
        let c = BrokerConfig::from_pairs([("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093,INTERNAL://:9095")]).unwrap();
        assert_eq!(c.listener_security.len(), 3);
        let plaintext = |s: &ListenerSecurity| s.ssl.is_none() && s.sasl.is_none();
        assert!(c.listener_security.values().all(plaintext), "unmapped names are plaintext");
        let ssl = [
            ("listeners", "CLIENT://:9094,REPLICATION://:9095"),
            ("listener.security.protocol.map", "CLIENT:SSL,REPLICATION:SSL,CONTROLLER:PLAINTEXT"),
            ("inter.broker.listener.name", "REPLICATION"),
            ("ssl.keystore.location", "/ks.pem"),
        ];
        let c = BrokerConfig::from_pairs(ssl).unwrap();
        assert!(c.listener_security["CLIENT"].ssl.is_some() && c.listener_security["CLIENT"].sasl.is_none());
        let by_protocol = [
            ("listeners", "PLAINTEXT://:9092,SSL://:9094"),
            ("security.inter.broker.protocol", "SSL"),
            ("ssl.keystore.location", "/ks.pem"),
        ];
        assert_eq!(BrokerConfig::from_pairs(by_protocol).unwrap().inter_broker_listener, "SSL");
        assert!(plaintext(&c.listener_security["CONTROLLER"]));
        assert!(is_known("listener.name.client.ssl.keystore.location") && !is_known("listener.name.client.x"));
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![ssl[0], ssl[1]], "needs a keystore"),
            (vec![ssl[0], ("listener.security.protocol.map", "CLIENT:SSL"), ssl[3]], "no security protocol for listener"),
            (vec![("listeners", "SASL_SSL://:9094")], "needs a keystore"),
            (vec![ssl[0], ("listener.security.protocol.map", "CLIENT:TLS")], "unknown security protocol"),
            (vec![by_protocol[0], by_protocol[1], by_protocol[2], ssl[2]], "either it or inter.broker.listener.name"),
            (vec![ssl[0], ssl[1], ssl[3], by_protocol[1]], "security.inter.broker.protocol"),
        ];
        for (pairs, want) in cases {
            let err = BrokerConfig::from_pairs(pairs.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn sasl_listeners_and_inter_broker_credentials() {
        let scram = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="pw";"#;
        let base = [
            ("listeners", "CLIENT://:9094,REPLICATION://:9095,CONTROLLER://:9093"),
            ("listener.security.protocol.map", "CLIENT:SASL_SSL,REPLICATION:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"),
            ("inter.broker.listener.name", "REPLICATION"),
            ("ssl.keystore.location", "/ks.pem"),
            ("listener.name.client.sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| BrokerConfig::from_pairs(base.iter().chain(extra).copied());
        let c = with(&[("sasl.jaas.config", scram)]).unwrap();
        let client = &c.listener_security["CLIENT"];
        assert!(client.ssl.is_some());
        assert_eq!(client.sasl.as_ref().unwrap().mechanisms.len(), 2);
        assert!(c.listener_security["REPLICATION"].ssl.is_none() && c.listener_security["REPLICATION"].sasl.is_some());
        let creds = c.inter_broker_sasl.clone().unwrap();
        assert_eq!((creds.mechanism.name(), creds.username.as_str()), ("SCRAM-SHA-512", "broker"));
        assert_eq!(c.controller_sasl.unwrap().username, "broker");
        assert!(is_known("listener.name.client.sasl.enabled.mechanisms"));
        assert!(is_known("listener.name.client.scram-sha-256.sasl.jaas.config"));
        assert!(!is_known("listener.name.client.gssapi.sasl.jaas.config"));
        for (extra, want) in [
            (vec![], "sasl.mechanism.inter.broker.protocol"),
            (
                vec![("sasl.jaas.config", scram), ("sasl.mechanism.inter.broker.protocol", "PLAIN")],
                "not in the sasl.enabled.mechanisms",
            ),
            (vec![("sasl.jaas.config", scram), ("sasl.mechanism.controller.protocol", "GSSAPI")], "GSSAPI is not supported"),
            (
                vec![("sasl.jaas.config", scram), ("sasl.enabled.mechanisms", "SCRAM-SHA-256")],
                "sasl.mechanism.inter.broker.protocol",
            ),
        ] {
            let err = with(&extra).unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
    }

    #[test]
    fn broker_log_settings_become_topic_defaults() {
        let c = BrokerConfig::from_pairs([
            ("log.retention.hours", "1"),
            ("log.segment.bytes", "1048576"),
            ("message.max.bytes", "2000000"),
            ("log.roll.ms", "60000"),
            ("log.roll.hours", "5"),
        ])
        .unwrap();
        assert_eq!(c.log_defaults.retention_ms, 3_600_000);
        assert_eq!(c.log_defaults.segment_bytes, 1_048_576);
        assert_eq!(c.log_defaults.max_message_bytes, 2_000_000);
        assert_eq!(c.log_defaults.segment_ms, 60_000, "log.roll.ms wins over log.roll.hours");
        let c = BrokerConfig::from_pairs([("log.retention.ms", "5"), ("log.retention.minutes", "1")]).unwrap();
        assert_eq!(c.log_defaults.retention_ms, 5);
        let c = BrokerConfig::from_pairs([("log.retention.minutes", "2"), ("log.retention.hours", "1")]).unwrap();
        assert_eq!(c.log_defaults.retention_ms, 120_000);
        let err = BrokerConfig::from_pairs([("log.segment.bytes", "abc")]).unwrap_err();
        assert!(err.to_string().contains("log.segment.bytes"), "{err}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (k, v) in [
            ("node.id", "-1"),
            ("num.partitions", "0"),
            ("default.replication.factor", "0"),
            ("default.replication.factor", "40000"),
            ("auto.create.topics.enable", "yes"),
            ("socket.request.max.bytes", "1"),
            ("fetch.mode", "mmap"),
            ("fetch.warmup.enable", "on"),
            ("num.io.threads", "0"),
            ("log.dirs", "/a,/b"),
            ("log.cleanup.policy", "compact"),
            ("metrics.port", "70000"),
            ("connections.max.idle.ms", "0"),
            ("max.connections", "-1"),
            ("max.connections.per.ip", "x"),
            ("socket.listen.backlog.size", "0"),
            ("cluster.id", "has space"),
            ("controller.quorum.voters", "0@h"),
            ("process.roles", "observer"),
            ("broker.session.timeout.ms", "0"),
            ("metrics.consumer.lag.refresh.ms", "0"),
            ("metrics.consumer.lag.refresh.ms", "3600001"),
            ("authorizer.class.name", "kafka.security.auth.SimpleAclAuthorizer"),
            ("allow.everyone.if.no.acl.found", "maybe"),
        ] {
            let err = BrokerConfig::from_pairs([(k, v)]).unwrap_err();
            assert!(err.to_string().contains(k), "{k}={v}: {err}");
        }
    }

    #[test]
    fn quorum_settings() {
        let c = BrokerConfig::from_pairs([]).unwrap();
        assert!(c.quorum_voters.is_empty() && c.roles.broker && c.roles.controller);
        assert_eq!((c.inter_broker_listener.as_str(), c.session_timeout), ("PLAINTEXT", Duration::from_secs(9)));
        let three = [
            ("node.id", "1"),
            ("cluster.id", "Jx1_-a"),
            ("controller.quorum.voters", "0@a:9093,1@[::1]:9093,2@c:9093"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ];
        let c = BrokerConfig::from_pairs(three).unwrap();
        assert_eq!(c.quorum_voters[&1], "[::1]:9093");
        assert_eq!(c.inter_broker_listener, "PLAINTEXT");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![three[0], three[2], three[3]], "cluster.id"),
            (vec![("node.id", "5"), three[1], three[2], three[3]], "node.id 5"),
            (vec![three[0], three[1], three[2]], "CONTROLLER://"),
            (vec![three[0], three[1], ("controller.quorum.voters", "0@a:1,0@b:1"), three[3]], "appears twice"),
            (vec![three[0], three[1], ("controller.quorum.voters", "x@a:1"), three[3]], "bad node id"),
            (vec![three[0], three[1], three[2], three[3], ("process.roles", "broker")], "does not have the controller role"),
            (vec![("process.roles", "broker")], "voters to reach"),
        ];
        for (pairs, want) in cases {
            let err = BrokerConfig::from_pairs(pairs.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
        let observer = BrokerConfig::from_pairs([
            ("node.id", "7"),
            ("cluster.id", "x"),
            ("process.roles", "broker"),
            ("controller.quorum.voters", "0@a:9093"),
        ])
        .unwrap();
        assert!(!observer.roles.controller);
    }

    #[test]
    fn properties_files() {
        let p = Path::new("server.properties");
        let m = parse_properties(p, "# c\n! c\n\nnode.id=3\nlog.dirs : /var/lib/strata\n a.b = x=y \n").unwrap();
        assert_eq!(m["node.id"], "3");
        assert_eq!(m["log.dirs"], "/var/lib/strata");
        assert_eq!(m["a.b"], "x=y");
        assert!(matches!(parse_properties(p, "ok=1\nnovalue\n"), Err(ConfigError::Syntax { line: 2, .. })));
        assert_eq!(env_name("log.retention.ms"), "STRATA_LOG_RETENTION_MS");
    }
}
