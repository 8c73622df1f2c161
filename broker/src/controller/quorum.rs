//! The controller quorum on openraft: the type configuration, the transport between nodes, and starting a
//! node's Raft instance (voters form the quorum from `controller.quorum.voters`; other brokers follow the log
//! as learners once the active controller adds them). Nothing outside `controller/` sees openraft's types.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::records::MetadataBatch;
use super::rpc::{Connection, RpcRequest, RpcResponse};
use super::state_machine::{Applied, Published, StateMachine};
use crate::tls::Dialer;

pub type NodeId = u64;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = MetadataBatch,
        R = Applied,
        NodeId = NodeId,
        Node = BasicNode,
);

pub type MetadataRaft = Raft<TypeConfig>;

/// Where each node is reached: voters at their `controller.quorum.voters` address (which the operator may
/// update at run time, pod IPs being known late), other brokers at the inter-broker listener they registered.
pub struct AddressBook {
    voters: RwLock<BTreeMap<i32, String>>,
    image: watch::Receiver<Published>,
    inter_broker_listener: String,
    dialers: PeerDialers,
}

/// How this node connects to the others: to a voter's controller listener, to a broker's inter-broker one.
#[derive(Debug, Clone, Default)]
pub struct PeerDialers {
    pub controller: Dialer,
    pub inter_broker: Dialer,
}

impl AddressBook {
    pub fn new(
        voters: BTreeMap<i32, String>,
        image: watch::Receiver<Published>,
        inter_broker_listener: String,
        dialers: PeerDialers,
    ) -> AddressBook {
        AddressBook { voters: RwLock::new(voters), image, inter_broker_listener, dialers }
    }

    pub fn voters(&self) -> BTreeMap<i32, String> {
        self.voters.read().expect("voters lock").clone()
    }

    pub fn voter_ids(&self) -> BTreeSet<i32> {
        self.voters.read().expect("voters lock").keys().copied().collect()
    }

    /// New addresses for the same voters.
    pub fn set_voters(&self, voters: BTreeMap<i32, String>) {
        *self.voters.write().expect("voters lock") = voters;
    }

    /// Where node `id` is reached, and how to connect there.
    pub fn address(&self, id: i32) -> Option<(String, &Dialer)> {
        if let Some(a) = self.voters.read().expect("voters lock").get(&id) {
            return Some((a.clone(), &self.dialers.controller));
        }
        let image = self.image.borrow().image.clone();
        let endpoint = image.brokers.get(&id).and_then(|b| b.endpoint(&self.inter_broker_listener));
        endpoint.map(|e| (host_port(&e.host, e.port), &self.dialers.inter_broker))
    }
}

pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// For each node, the highest metadata offset this node had applied when a connection to it was refused:
/// nothing listened at its address. A broker binds its listeners before it registers and keeps them until it
/// has shut down, so a refusal seen after its registration was applied here means the process that registered
/// has exited (a crash or kill -9), and the active controller fences it without waiting out its session:
/// failover after a crash then takes about a second rather than `broker.session.timeout.ms`. A stopped or
/// cut-off process does not refuse (its socket is still open, or packets are dropped); those still wait for
/// the session to end.
#[derive(Default)]
pub struct Refusals {
    marks: Mutex<HashMap<i32, u64>>,
    /// Wakes the fencer: a crashed broker is fenced at once rather than at its next check.
    noted: tokio::sync::Notify,
}

impl Refusals {
    fn note(&self, id: i32, applied: u64) {
        let mut marks = self.marks.lock().expect("refusals lock");
        let at = marks.entry(id).or_insert(applied);
        *at = (*at).max(applied);
        self.noted.notify_one();
    }

    /// Resolves at the next refusal (or at once if one came since the last call).
    pub async fn noted(&self) {
        self.noted.notified().await
    }

    /// Whether the process that registered `id` with broker epoch `epoch` is known to have exited.
    pub fn gone(&self, id: i32, epoch: i64) -> bool {
        self.marks.lock().expect("refusals lock").get(&id).is_some_and(|&applied| applied as i64 >= epoch)
    }
}

pub struct Network {
    pub book: Arc<AddressBook>,
    pub refusals: Arc<Refusals>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> PeerClient {
        PeerClient { target, book: self.book.clone(), refusals: self.refusals.clone(), conn: None }
    }
}

/// openraft's client of one other node.
pub struct PeerClient {
    target: NodeId,
    book: Arc<AddressBook>,
    refusals: Arc<Refusals>,
    conn: Option<Connection>,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn send<E: std::error::Error>(&mut self, req: RpcRequest, option: &RPCOption) -> RpcResult<RpcResponse, E> {
        // Before the address is looked up: a refusal counts against the registrations applied by then only.
        let applied = self.book.image.borrow().applied;
        let (addr, dialer) = self.book.address(self.target as i32).ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&io::Error::other(format!("no address for node {}", self.target))))
        })?;
        if self.conn.as_ref().is_some_and(|c| c.addr() != addr) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let c = Connection::open(dialer, &addr, option.hard_ttl()).await.map_err(|e| {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    self.refusals.note(self.target as i32, applied);
                }
                RPCError::Unreachable(Unreachable::new(&e))
            })?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected");
        match conn.call(&req, option.hard_ttl()).await {
            Ok(RpcResponse::Refused(msg)) => Err(RPCError::Network(NetworkError::new(&io::Error::other(msg)))),
            Ok(r) => Ok(r),
            Err(e) => {
                self.conn = None;
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self, what: &str) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::Network(NetworkError::new(&io::Error::other(format!(
            "node {} answered {what} with another message",
            self.target
        ))))
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<NodeId, E>) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.send(RpcRequest::AppendEntries(rpc), &option).await? {
            RpcResponse::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("append entries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.send(RpcRequest::InstallSnapshot(rpc), &option).await? {
            RpcResponse::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("install snapshot")),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(RpcRequest::Vote(rpc), &option).await? {
            RpcResponse::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(self.unexpected("vote")),
        }
    }
}

/// A voter's or observer's replication state, for DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaState {
    pub id: i32,
    /// Index of the last entry known to be on that node (-1: unknown).
    pub log_end_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumState {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}

/// The quorum as `raft` on node `me` sees it; replication progress is known on the leader only.
pub fn describe(raft: &MetadataRaft, me: i32) -> QuorumState {
    let m = raft.metrics().borrow().clone();
    let progress = |id: i32| -> i64 {
        if id == me {
            return m.last_log_index.map_or(-1, |i| i as i64);
        }
        m.replication.as_ref().and_then(|r| r.get(&(id as NodeId)).cloned().flatten()).map_or(-1, |l| l.index as i64)
    };
    let membership = m.membership_config.membership();
    QuorumState {
        leader: m.current_leader.map_or(-1, |l| l as i32),
        epoch: m.current_term as i32,
        high_watermark: m.last_applied.map_or(-1, |l| l.index as i64),
        voters: membership.voter_ids().map(|id| ReplicaState { id: id as i32, log_end_offset: progress(id as i32) }).collect(),
        observers: membership
            .learner_ids()
            .map(|id| ReplicaState { id: id as i32, log_end_offset: progress(id as i32) })
            .collect(),
    }
}

/// Timing of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumTiming {
    /// `controller.quorum.election.timeout.ms`: a follower that hears nothing from the leader for this long
    /// (plus up to as much again, at random) starts an election.
    pub election_timeout: Duration,
    /// Entries after which a snapshot is taken (`metadata.log.max.snapshot.interval.records`).
    pub snapshot_interval_records: u64,
}

/// Starts this node's Raft instance over the log and state machine in the data directory. Voters of a new
/// quorum initialize it with the configured voters (each may; the same membership is safe to propose twice).
pub async fn start(
    node_id: i32,
    cluster_id: &str,
    timing: &QuorumTiming,
    network: Network,
    log: LogStore,
    state_machine: StateMachine,
) -> anyhow::Result<MetadataRaft> {
    let election = timing.election_timeout.as_millis() as u64;
    let config = openraft::Config {
        cluster_name: cluster_id.to_string(),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        heartbeat_interval: (election / 5).max(10),
        install_snapshot_timeout: election.max(1000) * 5,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(timing.snapshot_interval_records),
        // Entries kept behind a snapshot, for followers slightly behind: as many as between two snapshots.
        max_in_snapshot_log_to_keep: timing.snapshot_interval_records.min(1000),
        ..Default::default()
    }
    .validate()?;
    let is_voter = network.book.voter_ids().contains(&node_id);
    let voters: BTreeMap<NodeId, BasicNode> =
        network.book.voters().into_iter().map(|(id, addr)| (id as NodeId, BasicNode { addr })).collect();
    let raft = Raft::new(node_id as NodeId, Arc::new(config), network, log, state_machine).await?;
    if is_voter && !raft.is_initialized().await? {
        match raft.initialize(voters).await {
            Ok(()) => tracing::info!("initialized a new controller quorum"),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(raft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_counts_against_registrations_applied_before_it() {
        let r = Refusals::default();
        assert!(!r.gone(1, 5), "never refused");
        // Refused while this node had applied up to offset 7: broker 1's registration at 5 is gone, one at 8
        // (a restart registering again after that) is not.
        r.note(1, 7);
        assert!(r.gone(1, 5));
        assert!(r.gone(1, 7));
        assert!(!r.gone(1, 8));
        assert!(!r.gone(2, 5), "another node");
        // An attempt that started earlier and was refused later does not move the mark back.
        r.note(1, 3);
        assert!(r.gone(1, 7));
    }
}
