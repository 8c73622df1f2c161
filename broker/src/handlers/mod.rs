//! Request handlers, one module per API family, behind the [`Service`] the network server calls.

mod acls;
mod admin;
mod cluster;
mod configs;
mod fetch;
pub(crate) mod groups;
mod log_dirs;
mod offsets;
mod produce;
mod reassignments;
mod scram;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::controller::rpc;
use crate::protocol::{decode_header, decode_request, encode_response, DecodeError, Request, RequestHeader, StrBytes};
use crate::server::{Peer, Reply, Service};

pub struct Handler {
    state: Arc<BrokerState>,
}

impl Handler {
    pub fn new(state: Arc<BrokerState>) -> Handler {
        Handler { state }
    }
}

impl Service for Handler {
    fn call(&self, peer: &Peer, frame: Bytes) -> Reply {
        if let Some(internal) = rpc::internal_body(&frame) {
            return match internal {
                // Anyone able to talk to the quorum could rewrite the cluster's metadata: as Kafka's controller
                // APIs, these need CLUSTER_ACTION.
                Ok((correlation_id, _))
                    if !self.state.authorizer.authorize(peer, Operation::ClusterAction, Resource::cluster()) =>
                {
                    let refused = rpc::RpcResponse::Refused(format!(
                        "CLUSTER_AUTHORIZATION_FAILED: {} may not send controller requests (it must be a super user)",
                        peer.principal
                    ));
                    Reply::Ready(rpc::response_frame(correlation_id, &refused).into())
                }
                Ok((correlation_id, req)) => {
                    let controller = self.state.controller.clone();
                    Reply::Later(Box::pin(async move {
                        Some(rpc::response_frame(correlation_id, &controller.serve(req).await).into())
                    }))
                }
                Err(e) => Reply::Close(format!("{e} (from {})", peer.addr)),
            };
        }
        let (header, body_start) = match decode_header(&frame) {
            Ok(h) => h,
            Err(e) => return Reply::Close(e.to_string()),
        };
        let state = &self.state;
        // Observes the request's latency when dropped: at once, or when a parked reply completes.
        let timer = state.metrics.request(header.api_key).start_timer();
        let request = match decode_request(&header, frame, body_start) {
            Ok(r) => r,
            // Kafka answers an ApiVersions version it does not know with a v0 response listing what it supports,
            // so that newer clients can downgrade.
            Err(DecodeError::UnsupportedVersion { api: ApiKey::ApiVersions, .. }) => {
                let v0 = RequestHeader { api_version: 0, ..header };
                return respond(&v0, &cluster::api_versions(crate::errors::code::UNSUPPORTED_VERSION));
            }
            Err(e) => {
                state.metrics.request_error();
                return Reply::Close(format!("{e} (client {:?})", header.client_id));
            }
        };
        tracing::trace!(peer = %peer.addr, api = ?header.api_key, version = header.api_version, "request");
        let reply = match request {
            Request::ApiVersions(_) => respond(&header, &cluster::api_versions(0)),
            Request::Metadata(r) => cluster::metadata(state, peer, &header, r),
            Request::DescribeCluster(r) => respond(&header, &cluster::describe_cluster(state, peer, r)),
            Request::DescribeQuorum(r) => cluster::describe_quorum(state, peer, &header, r),
            Request::UnregisterBroker(r) => admin::unregister_broker(state, peer, &header, r),
            Request::ElectLeaders(r) => admin::elect_leaders(state, peer, &header, r),
            Request::FindCoordinator(r) => groups::find_coordinator(state, peer, &header, r),
            Request::InitProducerId(r) => groups::init_producer_id(state, peer, &header, r),
            Request::JoinGroup(r) => groups::join_group(state, peer, &header, r),
            Request::SyncGroup(r) => groups::sync_group(state, peer, &header, r),
            Request::Heartbeat(r) => respond(&header, &groups::heartbeat(state, peer, r)),
            Request::LeaveGroup(r) => respond(&header, &groups::leave_group(state, peer, &header, r)),
            Request::OffsetCommit(r) => groups::offset_commit(state, peer, &header, r),
            Request::OffsetFetch(r) => groups::offset_fetch(state, peer, &header, r),
            Request::ListGroups(r) => respond(&header, &groups::list_groups(state, peer, &header, r)),
            Request::DescribeGroups(r) => respond(&header, &groups::describe_groups(state, peer, &header, r)),
            Request::DeleteGroups(r) => groups::delete_groups(state, peer, &header, r),
            Request::OffsetDelete(r) => groups::offset_delete(state, peer, &header, r),
            Request::Produce(r) => produce::handle(state, peer, &header, r),
            Request::Fetch(r) => fetch::handle(state, peer, &header, r),
            Request::ListOffsets(r) => respond(&header, &offsets::list_offsets(state, peer, header.api_version, r)),
            Request::OffsetForLeaderEpoch(r) => respond(&header, &offsets::offset_for_leader_epoch(state, peer, r)),
            Request::DeleteRecords(r) => respond(&header, &offsets::delete_records(state, peer, r)),
            Request::CreateTopics(r) => admin::create_topics(state, peer, &header, r),
            Request::DeleteTopics(r) => admin::delete_topics(state, peer, &header, r),
            Request::CreatePartitions(r) => admin::create_partitions(state, peer, &header, r),
            Request::DescribeConfigs(r) => respond(&header, &configs::describe_configs(state, peer, &header, r)),
            Request::AlterConfigs(r) => configs::alter_configs(state, peer, &header, r),
            Request::IncrementalAlterConfigs(r) => configs::incremental_alter_configs(state, peer, &header, r),
            Request::AlterPartitionReassignments(r) => reassignments::alter_partition_reassignments(state, peer, &header, r),
            Request::ListPartitionReassignments(r) => {
                respond(&header, &reassignments::list_partition_reassignments(state, peer, r))
            }
            Request::DescribeLogDirs(r) => respond(&header, &log_dirs::describe_log_dirs(state, peer, header.api_version, r)),
            Request::DescribeAcls(r) => respond(&header, &acls::describe_acls(state, peer, r)),
            Request::CreateAcls(r) => acls::create_acls(state, peer, &header, r),
            Request::DeleteAcls(r) => acls::delete_acls(state, peer, &header, r),
            Request::SaslHandshake(_) => scram::sasl_handshake(&header),
            Request::SaslAuthenticate(_) => scram::sasl_authenticate(&header),
            Request::AlterUserScramCredentials(r) => scram::alter_user_scram_credentials(state, peer, &header, r),
            Request::DescribeUserScramCredentials(r) => scram::describe_user_scram_credentials(state, peer, &header, r),
        };
        match reply {
            Reply::Later(fut) => Reply::Later(Box::pin(async move {
                let frame = fut.await;
                drop(timer);
                frame
            })),
            other => other,
        }
    }
}

fn respond<R: Encodable>(header: &RequestHeader, body: &R) -> Reply {
    match encode_response(header, body) {
        Ok(b) => Reply::Ready(b.into()),
        Err(e) => {
            tracing::error!(error = %e, "response encoding failed");
            Reply::Close(e.to_string())
        }
    }
}

/// Answers once `body` is ready.
fn respond_later<R, F>(header: &RequestHeader, body: F) -> Reply
where
    R: Encodable,
    F: Future<Output = R> + Send + 'static,
{
    let header = header.clone();
    Reply::Later(Box::pin(async move {
        match encode_response(&header, &body.await) {
            Ok(b) => Some(b.into()),
            Err(e) => {
                tracing::error!(error = %e, "response encoding failed");
                None
            }
        }
    }))
}

/// Runs disk work that may block the thread (an append waiting on the file system's block reservation or on
/// dirty-page throttling) without holding up the other connections of this worker: on the multi-threaded
/// runtime the worker first hands its other tasks to another thread (block_in_place). It runs in place, so the
/// appends of one connection keep their order. A current-thread runtime (tests) has no other thread to hand to.
pub(crate) fn may_block<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Error messages go out only when the request version has the field; kafka-protocol rejects them otherwise.
fn message_if(supported: bool, msg: Option<String>) -> Option<StrBytes> {
    msg.filter(|_| supported).map(s)
}
