//! The controller quorum, as Kafka's KRaft: cluster metadata is a replicated Raft log (openraft) in
//! `__cluster_metadata/`, applied by every node to the same [`image::Image`]. The voters
//! (`controller.quorum.voters`) elect a leader, the active controller, which alone decides topic changes,
//! broker registrations and fencing ([`service`], [`decisions`]); other brokers follow the log as learners.
//! The rest of the broker sees only [`Controller`]: the current image, and `call` to have the active
//! controller decide something.

pub mod acls;
pub mod decisions;
pub mod image;
pub mod log_store;
pub mod offsets_topic;
pub mod quorum;
pub mod reassignment;
pub mod records;
pub mod rpc;
pub mod scram_credentials;
pub mod service;
pub mod state_machine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::errors::code;
use image::{Image, Refused};
use log_store::LogStore;
use quorum::{AddressBook, MetadataRaft, NodeId, PeerDialers, QuorumTiming};
use rpc::{Connection, RpcRequest, RpcResponse};
use service::{not_controller, Active, ControllerReply, ControllerRequest, Settings};
use state_machine::{Published, StateMachine};

/// The metadata log's directory in the data directory.
pub use strata_storage::log_manager::METADATA_LOG_DIR as METADATA_DIR;

/// How this node takes part.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: i32,
    pub cluster_id: String,
    /// Voter id -> `host:port` of its controller listener.
    pub voters: BTreeMap<i32, String>,
    pub timing: QuorumTiming,
    pub settings: Settings,
    /// The listener other nodes reach this broker on (a learner's address).
    pub inter_broker_listener: String,
    pub dialers: PeerDialers,
}

pub struct Controller {
    node_id: i32,
    raft: MetadataRaft,
    published: watch::Receiver<Published>,
    book: Arc<AddressBook>,
    active: Arc<Active>,
    /// The index up to which this broker has acted on the image (the publisher's progress).
    acted: Arc<watch::Sender<u64>>,
    stop: watch::Sender<bool>,
}

pub use quorum::{QuorumState, ReplicaState};

impl Controller {
    /// Opens the metadata log in `data_dir` and starts this node's part of the quorum.
    pub async fn start(data_dir: &std::path::Path, config: ControllerConfig) -> anyhow::Result<Controller> {
        let dir = data_dir.join(METADATA_DIR);
        let log = LogStore::open(&dir).context("opening the metadata log")?;
        let state_machine = StateMachine::open(&dir).context("opening the metadata snapshot")?;
        let published = state_machine.subscribe();
        let book = Arc::new(AddressBook::new(
            config.voters.clone(),
            published.clone(),
            config.inter_broker_listener.clone(),
            config.dialers.clone(),
        ));
        let refusals = Arc::new(quorum::Refusals::default());
        let network = quorum::Network { book: book.clone(), refusals: refusals.clone() };
        let raft = quorum::start(config.node_id, &config.cluster_id, &config.timing, network, log, state_machine)
            .await
            .context("starting the controller quorum")?;
        let active = Arc::new(Active::new(raft.clone(), published.clone(), config.settings.clone(), refusals.clone()));
        let (stop, mut stopped) = watch::channel(false);
        let fencer = active.clone();
        // Often, so that a broker is fenced soon after its session ends or its process is seen gone (failover time
        // is that plus this).
        let tick = (config.settings.session_timeout / 20).max(std::time::Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => fencer.fence_expired().await,
                    _ = refusals.noted() => fencer.fence_expired().await,
                    _ = stopped.changed() => return,
                }
            }
        });
        if let Some(interval) = config.settings.leader_rebalance_interval {
            let (balancer, mut stopped) = (active.clone(), stop.subscribe());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => balancer.balance_leaders().await,
                        _ = stopped.changed() => return,
                    }
                }
            });
        }
        Ok(Controller { node_id: config.node_id, raft, published, book, active, acted: Arc::new(watch::channel(0).0), stop })
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> Arc<Image> {
        self.published.borrow().image.clone()
    }

    pub fn applied(&self) -> u64 {
        self.published.borrow().applied
    }

    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.published.clone()
    }

    /// The active controller's node id, -1 if there is none.
    pub fn leader_id(&self) -> i32 {
        self.raft.metrics().borrow().current_leader.map_or(-1, |l| l as i32)
    }

    pub fn voters(&self) -> BTreeMap<i32, String> {
        self.book.voters()
    }

    /// New addresses for the voters (the operator learns pod IPs late); the ids must stay the same.
    pub fn set_voter_addresses(&self, voters: BTreeMap<i32, String>) -> Result<(), String> {
        let now = self.book.voter_ids();
        let given: std::collections::BTreeSet<i32> = voters.keys().copied().collect();
        if given != now {
            return Err(format!("the voters are {now:?}; only their addresses can change, not the ids {given:?}"));
        }
        self.book.set_voters(voters);
        Ok(())
    }

    /// Where the publisher reports the index up to which this broker acted on the image.
    pub fn acted(&self) -> Arc<watch::Sender<u64>> {
        self.acted.clone()
    }

    /// Waits (up to `timeout`) until this broker has acted on the log up to `index` (its logs exist, its
    /// leaderships are taken), so that the caller's next request here sees the change.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.acted.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index)).await.is_ok_and(|r| r.is_ok())
    }

    /// Has the active controller decide `req`, wherever it runs, and waits until this node has applied the
    /// result, so that what the caller reads next reflects it. Retries while there is no active controller
    /// or the request reached a node that no longer is one; REQUEST_TIMED_OUT after `timeout`.
    pub async fn call(&self, req: ControllerRequest, timeout: Duration) -> Result<ControllerReply, Refused> {
        self.call_and_wait(req, timeout, true).await
    }

    /// [`Controller::call`] without waiting for this broker to act on the result (a broker shutting down).
    pub async fn call_no_wait(&self, req: ControllerRequest, timeout: Duration) -> Result<ControllerReply, Refused> {
        self.call_and_wait(req, timeout, false).await
    }

    async fn call_and_wait(&self, req: ControllerRequest, timeout: Duration, wait: bool) -> Result<ControllerReply, Refused> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_error = not_controller(None);
        let mut conn: Option<Connection> = None;
        let voters: Vec<NodeId> = self.book.voter_ids().into_iter().map(|v| v as NodeId).collect();
        // After a refusal, the voters are asked in turn: this node's idea of the leader may be stale (a broker
        // that follows the log is reached at the address it registered, so after a restart it hears from the
        // leader only once it registered again, and it registers through whichever voter leads).
        let mut next_voter: Option<usize> = None;
        loop {
            let known = self.raft.metrics().borrow().current_leader;
            let leader = match next_voter {
                Some(i) => voters.get(i % voters.len().max(1)).copied(),
                None => known.or_else(|| voters.first().copied()),
            };
            let response = match leader {
                Some(l) if l == self.node_id as NodeId => {
                    match tokio::time::timeout(deadline - tokio::time::Instant::now(), self.active.handle(req.clone())).await {
                        Ok(r) => Some(r),
                        Err(_) => return Err(Refused::new(code::REQUEST_TIMED_OUT, format!("no decision within {timeout:?}"))),
                    }
                }
                Some(l) => match self.book.address(l as i32) {
                    None => None,
                    Some((addr, dialer)) => {
                        if conn.as_ref().is_none_or(|c| c.addr() != addr) {
                            conn = Connection::open(dialer, &addr, Duration::from_secs(2)).await.ok();
                        }
                        match conn.as_mut() {
                            None => None,
                            Some(c) => {
                                match c.call(&RpcRequest::Controller(req.clone()), deadline - tokio::time::Instant::now()).await {
                                    Ok(RpcResponse::Controller(r)) => Some(r),
                                    Ok(other) => {
                                        conn = None;
                                        last_error =
                                            Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected answer {other:?}"));
                                        None
                                    }
                                    // Sent, and no answer: the outcome is unknown, so it is not retried.
                                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                                        return Err(Refused::new(
                                            code::REQUEST_TIMED_OUT,
                                            format!("the active controller, node {l}: {e}"),
                                        ))
                                    }
                                    Err(e) => {
                                        conn = None;
                                        last_error =
                                            Refused::new(code::NOT_CONTROLLER, format!("the active controller, node {l}: {e}"));
                                        None
                                    }
                                }
                            }
                        }
                    }
                },
                None => None,
            };
            let asked = leader.and_then(|l| voters.iter().position(|v| *v == l));
            match response {
                Some(r) if r.result.as_ref().is_err_and(|e| e.code == code::NOT_CONTROLLER) => {
                    last_error = r.result.expect_err("checked");
                    next_voter = Some(asked.map_or(0, |i| i + 1));
                }
                Some(r) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if wait && !self.wait_applied(r.index, left).await {
                        return Err(Refused::new(
                            code::REQUEST_TIMED_OUT,
                            format!("decided at metadata offset {}, which this broker has not applied yet", r.index),
                        ));
                    }
                    return r.result;
                }
                None => next_voter = Some(asked.map_or(0, |i| i + 1)),
            }
            if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
                return Err(Refused::new(
                    code::REQUEST_TIMED_OUT,
                    format!("no answer from the controller quorum within {timeout:?}: {last_error}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers a message from another node.
    pub async fn serve(&self, req: RpcRequest) -> RpcResponse {
        match req {
            RpcRequest::AppendEntries(r) => RpcResponse::AppendEntries(self.raft.append_entries(r).await),
            RpcRequest::Vote(r) => RpcResponse::Vote(self.raft.vote(r).await),
            RpcRequest::InstallSnapshot(r) => RpcResponse::InstallSnapshot(self.raft.install_snapshot(r).await),
            RpcRequest::Controller(r) => {
                let leader = self.raft.metrics().borrow().current_leader;
                if leader == Some(self.node_id as NodeId) {
                    RpcResponse::Controller(self.active.handle(r).await)
                } else {
                    RpcResponse::Controller(service::ControllerResponse { index: 0, result: Err(not_controller(leader)) })
                }
            }
        }
    }

    /// The quorum as the active controller sees it (replication progress is known there only).
    pub async fn quorum_state(&self, timeout: Duration) -> Result<QuorumState, Refused> {
        match self.call_no_wait(ControllerRequest::DescribeQuorum, timeout).await? {
            ControllerReply::Quorum(q) => Ok(q),
            other => Err(Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected answer {other:?}"))),
        }
    }

    /// Resolves when this node's part of the quorum stopped for good (e.g. its metadata log could not be
    /// written: a full disk), with the reason. The broker must not go on with metadata that no longer moves.
    pub async fn failed(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the controller quorum stopped".to_string();
            }
        }
    }

    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping the controller quorum");
        }
    }
}
