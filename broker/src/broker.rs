//! Wiring: opens the storage and topic metadata, binds the listeners, runs the server, and shuts down cleanly
//! (stop accepting, finish in-flight requests, flush, clean-shutdown marker).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use strata_storage::LogManagerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::alter_partition::{self, IsrChanges};
use crate::authorizer::Authorizer;
use crate::config::{BrokerConfig, Listener, ListenerSecurity};
use crate::controller::image::Image;
use crate::controller::quorum::{PeerDialers, QuorumTiming};
use crate::controller::records::Endpoint;
use crate::controller::service::Settings;
use crate::controller::{Controller, ControllerConfig};
use crate::fetcher::{FetcherManager, FetcherSettings};
use crate::group::coordinator::run_timers;
use crate::group::lag::{self, RemoteHighWatermarks};
use crate::group::GroupCoordinator;
use crate::handlers::Handler;
use crate::lifecycle::Lifecycle;
use crate::log_dir_space::LogDirSpace;
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdManager;
use crate::publisher::{dynamic_overrides, Publisher};
use crate::replica::{Defaults, ReplicaManager};
use crate::sasl::authenticator::SaslServer;
use crate::sasl::credentials::{CredentialStore, MetadataLookup};
use crate::server::{self, ConnectionOptions};
use crate::tls::{Dialer, TlsContext};
use crate::warmup::Warmer;
use strata_client::scram::{Credential, Mechanism};

/// Everything handlers need.
pub struct BrokerState {
    /// With advertised ports resolved (a configured port 0 becomes the bound port).
    pub config: BrokerConfig,
    pub cluster_id: String,
    pub controller: Arc<Controller>,
    /// Checks each request against the ACLs of the image (allows everything when off).
    pub authorizer: Authorizer,
    pub replicas: Arc<ReplicaManager>,
    /// Topics whose automatic creation is under way, so repeated Metadata requests ask the controller once.
    pub auto_creating: Mutex<HashSet<String>>,
    pub metrics: Metrics,
    /// Whether produce requests find room in the log directory.
    pub log_dir_space: LogDirSpace,
    pub groups: Arc<GroupCoordinator>,
    /// High watermarks of the partitions peers lead, for the lag of the groups this broker coordinates.
    pub remote_high_watermarks: RemoteHighWatermarks,
    pub producer_ids: ProducerIdManager,
    /// Fetch disk reads off the network threads (fetch.warmup.enable); None: they read on the network threads.
    pub warmer: Option<Arc<Warmer>>,
    /// Where partition leaders send ISR changes for the controller.
    pub isr_changes: IsrChanges,
    /// How this broker connects to the other nodes (TLS where their listener is SSL).
    pub dialers: PeerDialers,
    /// Turns true at shutdown; waiting fetches answer at once.
    pub shutdown: watch::Receiver<bool>,
    /// True once this broker is registered and unfenced (in service, Kafka's RUNNING), for `/readyz`;
    /// always true for a node without the broker role.
    pub in_service: watch::Receiver<bool>,
}

impl BrokerState {
    /// The cluster's metadata as this broker last applied it.
    pub fn image(&self) -> Arc<Image> {
        self.controller.image()
    }

    /// The controller id clients are told (Metadata, DescribeCluster of brokers): this broker, which passes
    /// admin requests on to the active controller, as Kafka's KRaft brokers name a live broker rather than the
    /// quorum's leader. A client then never waits on a controller that went away (after a crash, the others
    /// may name it until a new leader is elected, and librdkafka keeps sending to the controller it knows).
    /// A node that is only a controller names the active controller.
    pub fn controller_for_clients(&self) -> i32 {
        match self.config.roles.broker {
            true => self.config.node_id,
            false => self.controller.leader_id(),
        }
    }

    /// The error for a partition this broker does not lead: another broker does (or none, while its broker
    /// is fenced; the client refreshes its metadata), or it does not exist.
    pub fn missing_partition_code(&self, topic: &str, partition: i32) -> i16 {
        match self.image().partition(topic, partition) {
            Some(_) => crate::errors::code::NOT_LEADER_OR_FOLLOWER,
            None => crate::errors::code::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }

    pub fn topic_name_by_id(&self, id: uuid::Uuid) -> Option<String> {
        self.image().topic_by_id(id).map(|t| t.name.clone())
    }

    /// The address advertised on the listener a client connected to.
    pub fn advertised(&self, listener: &str) -> &Listener {
        let adv = &self.config.advertised_listeners;
        adv.iter().find(|l| l.name == listener).unwrap_or(&adv[0])
    }
}

/// A running broker.
pub struct Broker {
    state: Arc<BrokerState>,
    stop: watch::Sender<bool>,
    /// Starts the controlled shutdown, and whether it completed; None without one (not a broker, or
    /// controlled.shutdown.enable=false).
    leaving: Option<(watch::Sender<bool>, watch::Receiver<bool>)>,
    servers: JoinSet<()>,
    background: Option<strata_storage::BackgroundTasks>,
    /// Bound address per listener name.
    pub addresses: Vec<(String, SocketAddr)>,
}

/// Reads or creates `meta.properties` (cluster id and node id), as Kafka keeps in each log directory. A
/// configured `cluster.id` must match the stored one: a data directory never changes clusters.
fn cluster_id(dir: &Path, node_id: i32, configured: Option<&str>) -> anyhow::Result<String> {
    let path = dir.join("meta.properties");
    if path.exists() {
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let props = crate::config::parse_properties(&path, &text)?;
        let stored: i32 = props.get("node.id").and_then(|v| v.parse().ok()).context("meta.properties without node.id")?;
        if stored != node_id {
            bail!("{} belongs to node.id {stored}, but this broker is node.id {node_id}", dir.display());
        }
        let stored = props.get("cluster.id").cloned().context("meta.properties without cluster.id")?;
        if let Some(c) = configured.filter(|c| *c != stored) {
            bail!("{} belongs to cluster {stored}, but cluster.id is {c}", dir.display());
        }
        return Ok(stored);
    }
    // Kafka's format: a random UUID in URL-safe base64 without padding (22 characters).
    let id = configured.map_or_else(|| base64_url(uuid::Uuid::new_v4().as_bytes()), str::to_string);
    let tmp = dir.join("meta.properties.tmp");
    fs::write(&tmp, format!("version=1\ncluster.id={id}\nnode.id={node_id}\n"))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(id)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The TLS state of each SSL listener, the controller listener included (a broker-only node dials it).
fn load_tls(config: &BrokerConfig) -> anyhow::Result<HashMap<String, Arc<TlsContext>>> {
    let mut out = HashMap::new();
    for (name, security) in &config.listener_security {
        if let ListenerSecurity { ssl: Some(settings), .. } = security {
            let tls = TlsContext::load(name, settings.clone())
                .with_context(|| format!("loading the TLS settings of listener {name}"))?;
            out.insert(name.clone(), tls);
        }
    }
    Ok(out)
}

/// The SASL side of each SASL listener: its mechanisms, its static users and the metadata log's credentials.
fn sasl_servers(config: &BrokerConfig, controller: &Arc<Controller>) -> HashMap<String, Arc<SaslServer>> {
    let mut out = HashMap::new();
    for (name, security) in &config.listener_security {
        let Some(settings) = &security.sasl else { continue };
        let controller = controller.clone();
        let metadata: MetadataLookup = Arc::new(move |user: &str, m: Mechanism| {
            let image = controller.image();
            let c = image.scram_credentials.get(user)?.get(m.name())?;
            Some(Credential {
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            })
        });
        let store = CredentialStore::new(settings.static_users(), metadata);
        out.insert(name.clone(), Arc::new(SaslServer { mechanisms: settings.mechanisms.clone(), store }));
    }
    out
}

/// Where voters were last told to be reached at run time (the operator learns pod IPs late).
pub const DYNAMIC_VOTERS_FILE: &str = "quorum-voters.json";

/// Starts this node's part of the controller quorum; a single node without voters is its own quorum.
async fn start_controller(config: &BrokerConfig, cluster_id: &str, dialers: PeerDialers) -> anyhow::Result<Controller> {
    let mut voters = config.quorum_voters.clone();
    if voters.is_empty() {
        // Never contacted: a one-voter quorum sends no messages.
        voters.insert(config.node_id, "127.0.0.1:0".into());
    }
    let stored: Option<BTreeMap<i32, String>> =
        crate::topics::load_json(&config.log_dir.join(DYNAMIC_VOTERS_FILE)).context("reading the stored voter addresses")?;
    match stored {
        Some(s) if s.keys().eq(voters.keys()) => voters = s,
        Some(s) => tracing::warn!(stored = ?s, configured = ?voters, "ignoring stored voter addresses for other voters"),
        None => {}
    }
    let log_defaults = config.log_defaults.clone();
    let settings = Settings {
        node_id: config.node_id,
        session_timeout: config.session_timeout,
        leader_rebalance_interval: config.leader_rebalance_interval,
        default_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
        log_defaults,
        voters: voters.keys().copied().collect(),
    };
    let controller_config = ControllerConfig {
        node_id: config.node_id,
        cluster_id: cluster_id.to_string(),
        voters,
        timing: QuorumTiming {
            election_timeout: config.election_timeout,
            snapshot_interval_records: config.snapshot_interval_records,
        },
        settings,
        inter_broker_listener: config.inter_broker_listener.clone(),
        dialers,
    };
    Controller::start(&config.log_dir, controller_config).await
}

/// Whether an upgraded broker may have `__consumer_offsets` created for its earlier release's groups: once
/// every registered broker, and at least as many as there are voters, is in service, so that the replication
/// factor is not capped by brokers still starting and each partition's first replica is the broker that
/// coordinated it (see [`crate::controller::offsets_topic`]).
pub fn legacy_creation_ready(image: &Image, voters: usize) -> bool {
    image.brokers.len() >= voters && image.live_brokers().count() == image.brokers.len()
}

/// Once this broker is in service, has `__consumer_offsets` created (retried until it exists or shutdown).
async fn ensure_offsets_topic(
    state: Arc<BrokerState>,
    mut in_service: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = in_service.wait_for(|c| *c) => {}
        _ = server::stopped(&mut shutdown) => return,
    }
    let voters = state.config.quorum_voters.len();
    while state.image().topic(crate::group::OFFSETS_TOPIC).is_none() {
        if !legacy_creation_ready(&state.image(), voters) {
            tracing::info!("waiting for every registered broker before creating __consumer_offsets");
        } else if let Err(e) = crate::handlers::groups::ensure_offsets_topic(&state, Duration::from_secs(10)).await {
            tracing::info!(error = %e, "creating __consumer_offsets; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = server::stopped(&mut shutdown) => return,
        }
    }
}

impl Broker {
    /// Opens the data directory and starts serving on every listener.
    pub async fn start(mut config: BrokerConfig) -> anyhow::Result<Broker> {
        fs::create_dir_all(&config.log_dir).with_context(|| format!("creating log.dirs {}", config.log_dir.display()))?;
        let cluster_id = cluster_id(&config.log_dir, config.node_id, config.cluster_id.as_deref())?;
        let tls = load_tls(&config)?;
        let dialer = |name: &str, sasl: &Option<_>| Dialer::new(tls.get(name).cloned(), sasl.clone());
        let dialers = PeerDialers {
            controller: dialer(&config.controller_listener, &config.controller_sasl),
            inter_broker: dialer(&config.inter_broker_listener, &config.inter_broker_sasl),
        };
        let controller = Arc::new(start_controller(&config, &cluster_id, dialers.clone()).await?);
        let logs_config = LogManagerConfig {
            retention_check_interval_ms: config.retention_check_interval_ms,
            flush_check_interval_ms: config.flush_check_interval_ms,
            recovery_point_checkpoint_interval_ms: config.recovery_point_checkpoint_interval_ms,
            producer_id_expiration_ms: config.groups.producer_id_expiration_ms,
            segment_close_idle_ms: config.segment_close_idle_ms,
            ..LogManagerConfig::new(&config.log_dir)
        };
        let static_overrides: BTreeMap<String, String> = config.log_overrides.iter().cloned().collect();
        let defaults = Defaults::new(static_overrides, dynamic_overrides(&controller.image(), config.node_id))
            .context("the broker's log settings")?;
        let replicas = Arc::new(
            ReplicaManager::open(config.node_id, logs_config, defaults)
                .with_context(|| format!("opening the logs in {}", config.log_dir.display()))?,
        );
        let groups = GroupCoordinator::open(config.groups.clone(), &config.log_dir).context("opening the group coordinator")?;
        let producer_ids = ProducerIdManager::open(&config.log_dir, config.node_id).context("opening the producer id block")?;
        let background = replicas.log_manager().start_background();

        let mut bound = Vec::new();
        for l in &config.listeners {
            let listener = server::bind(&l.bind_addr(), config.socket_listen_backlog)
                .await
                .with_context(|| format!("binding listener {l}"))?;
            bound.push((l.name.clone(), listener.local_addr()?, listener));
        }
        let ports: HashMap<&str, u16> = bound.iter().map(|(n, a, _)| (n.as_str(), a.port())).collect();
        let hostname = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into());
        for adv in &mut config.advertised_listeners {
            if adv.port == 0 {
                adv.port = ports[adv.name.as_str()];
            }
            if adv.is_wildcard() {
                adv.host = hostname.clone();
            }
        }

        let (stop, shutdown) = watch::channel(false);
        let limits = server::Limits { max_connections: config.max_connections, max_per_ip: config.max_connections_per_ip };
        let grace = config.shutdown_timeout;
        let metrics_port = config.metrics_port;
        let metrics_addr = config.metrics_bind_address.clone();
        let config_pagecache_probe = config.metrics_pagecache_probe;
        let lag_refresh = config.metrics_consumer_lag_refresh;
        let groups = Arc::new(groups);
        let metrics = Metrics::new(config_pagecache_probe.then(strata_storage::PageCacheProbe::detect));
        let log_dir_space = LogDirSpace::new(config.log_dir.clone(), metrics.log_dir_full.clone());
        let warmer = match config.fetch_warmup_enable {
            true => Some(Arc::new(
                Warmer::new(config.num_io_threads, metrics.warmup.clone()).context("opening /dev/null for the warm-up")?,
            )),
            false => None,
        };
        let (caught_up_tx, caught_up) = watch::channel(false);
        let r = &config.replication;
        let fetcher_settings = FetcherSettings {
            node_id: config.node_id,
            dialer: dialers.inter_broker.clone(),
            max_bytes: r.fetch_max_bytes,
            response_max_bytes: r.fetch_response_max_bytes,
            max_wait_ms: r.fetch_wait_max_ms,
            backoff: r.fetch_backoff,
        };
        let fetchers = Arc::new(FetcherManager::new(fetcher_settings, replicas.throttles().clone(), shutdown.clone()));
        let (isr_changes, isr_change_rx) = IsrChanges::new();
        let publisher = Publisher {
            node_id: config.node_id,
            replicas: replicas.clone(),
            groups: groups.clone(),
            fetchers: fetchers.clone(),
            inter_broker_listener: config.inter_broker_listener.clone(),
            caught_up: caught_up.clone(),
            acted: controller.acted(),
        };
        // The partitions of the image replayed from the local log exist before clients connect.
        publisher.publish(&controller.subscribe().borrow());
        let in_service = if config.roles.broker { caught_up.clone() } else { watch::channel(true).1 };
        let authorizer = Authorizer::new(config.authorizer.clone(), controller.subscribe(), metrics.authorization_denied.clone());
        let state = Arc::new(BrokerState {
            authorizer,
            config,
            cluster_id,
            controller: controller.clone(),
            replicas,
            auto_creating: Mutex::new(HashSet::new()),
            metrics,
            log_dir_space,
            groups: groups.clone(),
            remote_high_watermarks: RemoteHighWatermarks::new(lag_refresh),
            producer_ids,
            warmer,
            isr_changes: isr_changes.clone(),
            dialers,
            shutdown: shutdown.clone(),
            in_service,
        });
        let config = &state.config;
        let opts = ConnectionOptions {
            max_request_bytes: config.socket_request_max_bytes,
            max_inflight: config.max_inflight_requests,
            fetch_mode: config.fetch_mode,
            max_idle: config.connections_max_idle,
            warmer: state.warmer.clone(),
            tls: None,
            sasl: None,
        };
        let sasl = sasl_servers(config, &controller);
        let handler: Arc<dyn server::Service> = Arc::new(Handler::new(state.clone()));
        let connections = server::Connections::new(limits, state.metrics.connections.clone());
        let mut servers = JoinSet::new();
        let mut addresses = Vec::new();
        for (name, addr, listener) in bound {
            tracing::info!(listener = %name, %addr, tls = tls.contains_key(&name), "listening");
            addresses.push((name.clone(), addr));
            let opts = ConnectionOptions { tls: tls.get(&name).cloned(), sasl: sasl.get(&name).cloned(), ..opts.clone() };
            servers.spawn(server::serve(
                listener,
                name.into(),
                handler.clone(),
                opts,
                connections.clone(),
                shutdown.clone(),
                grace,
            ));
        }
        // Ends at shutdown, answering parked JoinGroup/SyncGroup requests so connections can drain.
        servers.spawn(run_timers(groups, shutdown.clone()));
        servers.spawn(publisher.run(controller.subscribe(), shutdown.clone()));
        tokio::spawn(alter_partition::run(
            controller.clone(),
            config.node_id,
            isr_change_rx,
            config.session_timeout,
            state.metrics.isr.clone(),
        ));
        servers.spawn(alter_partition::check_lagging(
            state.replicas.clone(),
            isr_changes,
            config.replication.lag_time_max,
            shutdown.clone(),
        ));
        let (leaving_tx, leaving) = watch::channel(false);
        let (left, left_rx) = watch::channel(false);
        if config.roles.broker {
            let lifecycle = Lifecycle {
                controller: controller.clone(),
                node_id: config.node_id,
                endpoints: config
                    .advertised_listeners
                    .iter()
                    .filter(|l| l.name != config.controller_listener)
                    .map(|l| Endpoint { name: l.name.clone(), host: l.host.clone(), port: l.port })
                    .collect(),
                rack: config.rack.clone(),
                inter_broker_listener: config.inter_broker_listener.clone(),
                heartbeat_interval: config.heartbeat_interval,
                legacy: crate::topics::legacy_import(&config.log_dir, config.node_id)
                    .context("reading the topics of an older release")?,
                caught_up: caught_up_tx,
                leaving,
                left,
            };
            servers.spawn(lifecycle.run(shutdown.clone()));
        }
        servers.spawn(lag::run(state.clone(), shutdown.clone()));
        if metrics_port != 0 {
            let metrics_listener =
                TcpListener::bind((metrics_addr.as_str(), metrics_port)).await.context("binding metrics.port")?;
            servers.spawn(crate::http::serve(metrics_listener, state.clone(), shutdown.clone()));
        }
        // A node that is the whole quorum is in service (registered, unfenced) before it is handed out.
        let mut caught_up = caught_up;
        let alone = config.quorum_voters.is_empty() || config.quorum_voters.keys().eq([config.node_id].iter());
        if config.roles.broker
            && alone
            && tokio::time::timeout(Duration::from_secs(30), caught_up.wait_for(|c| *c)).await.is_err()
        {
            tracing::warn!("not yet in service 30 s after starting");
        }
        // A single node has its groups at once (as before __consumer_offsets was a topic); an earlier release's
        // groups are brought into the topic without waiting for a client to ask for a coordinator.
        if config.roles.broker && (alone || state.groups.legacy_partitions().is_some()) {
            let create = ensure_offsets_topic(state.clone(), caught_up, shutdown.clone());
            if alone {
                if tokio::time::timeout(Duration::from_secs(30), create).await.is_err() {
                    tracing::warn!("__consumer_offsets not created 30 s after starting");
                }
            } else {
                servers.spawn(create);
            }
        }
        let leaving = (config.roles.broker && config.controlled_shutdown).then_some((leaving_tx, left_rx));
        Ok(Broker { state, stop, leaving, servers, background: Some(background), addresses })
    }

    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Resolves when the metadata log failed for good (see [`Controller::failed`]).
    pub async fn failed(&self) -> String {
        self.state.controller.failed().await
    }

    /// Shutdown after the metadata log failed: no controlled shutdown (this broker's view of the cluster no
    /// longer moves), the rest as [`Broker::shutdown`].
    pub async fn shutdown_failed(mut self) -> anyhow::Result<()> {
        self.leaving = None;
        self.shutdown().await
    }

    /// Graceful shutdown: the controlled shutdown (leaderships moved away, bounded by shutdown.timeout.ms),
    /// then stop accepting, let in-flight requests finish (bounded by shutdown.timeout.ms), stop background
    /// storage work, then flush every log and write the clean-shutdown marker.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some((leaving, mut left)) = self.leaving.take() {
            let started = std::time::Instant::now();
            leaving.send_replace(true);
            match tokio::time::timeout(self.state.config.shutdown_timeout, left.wait_for(|l| *l)).await {
                Ok(Ok(_)) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    leaderships = self.state.replicas.leaders().len(),
                    "controlled shutdown: the controller moved this broker's leaderships away"
                ),
                _ => tracing::warn!(
                    leaderships = self.state.replicas.leaders().len(),
                    "controlled shutdown incomplete after shutdown.timeout.ms; closing anyway"
                ),
            }
        }
        self.stop.send_replace(true);
        while self.servers.join_next().await.is_some() {}
        self.state.controller.shutdown().await;
        if let Some(bg) = self.background.take() {
            bg.stop();
        }
        let logs = self.state.replicas.log_manager().clone();
        tokio::task::spawn_blocking(move || logs.shutdown()).await?.context("flushing logs at shutdown")?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_groups_wait_for_every_registered_broker() {
        use crate::controller::records::{MetadataBatch, MetadataRecord};
        let mut image = Image::default();
        let register = |id| MetadataRecord::RegisterBroker { id, incarnation: uuid::Uuid::nil(), endpoints: vec![], rack: None };
        image.apply(1, &MetadataBatch::new(vec![register(0), register(1)])).unwrap();
        assert!(!legacy_creation_ready(&image, 0), "registered, not in service");
        image.apply(2, &MetadataBatch::new(vec![MetadataRecord::UnfenceBroker { id: 0, epoch: 1 }])).unwrap();
        assert!(!legacy_creation_ready(&image, 0), "broker 1 is fenced");
        image.apply(3, &MetadataBatch::new(vec![MetadataRecord::UnfenceBroker { id: 1, epoch: 1 }])).unwrap();
        assert!(legacy_creation_ready(&image, 2));
        assert!(!legacy_creation_ready(&image, 3), "a voter has not registered yet");
    }

    #[test]
    fn cluster_ids_look_like_kafkas_and_persist() {
        assert_eq!(base64_url(&[0xfb, 0xff, 0x00]), "-_8A");
        assert_eq!(base64_url(&[0u8; 16]).len(), 22);
        let dir = tempfile::tempdir().unwrap();
        let id = cluster_id(dir.path(), 3, None).unwrap();
        assert_eq!(id.len(), 22);
        assert_eq!(cluster_id(dir.path(), 3, None).unwrap(), id);
        assert_eq!(cluster_id(dir.path(), 3, Some(&id)).unwrap(), id);
        assert!(cluster_id(dir.path(), 4, None).unwrap_err().to_string().contains("node.id 3"));
        assert!(cluster_id(dir.path(), 3, Some("other")).unwrap_err().to_string().contains("cluster.id is other"));
        let configured = tempfile::tempdir().unwrap();
        assert_eq!(cluster_id(configured.path(), 0, Some("shared")).unwrap(), "shared");
        assert_eq!(cluster_id(configured.path(), 0, None).unwrap(), "shared");
    }
}
