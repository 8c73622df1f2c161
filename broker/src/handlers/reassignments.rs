//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455). Changes go to the active controller,
//! which decides them (see [`crate::controller::reassignment`]) and commits them as one batch; the answer waits
//! until this broker has applied it, so a listing here right after shows the change. Listing reads this
//! broker's image.

use std::sync::Arc;

use kafka_protocol::messages::{
    alter_partition_reassignments_response, list_partition_reassignments_response, AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};

use super::admin::{call_each, timeout_of};
use super::{respond, respond_later, s};
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::controller::reassignment::{self, Reassign};
use crate::controller::service::ControllerRequest;
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};

fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

pub fn alter_partition_reassignments(
    state: &Arc<BrokerState>,
    peer: &Peer,
    header: &RequestHeader,
    req: AlterPartitionReassignmentsRequest,
) -> Reply {
    use alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
    if !state.authorizer.authorize(peer, Operation::Alter, Resource::cluster()) {
        // Kafka answers the top-level error and each partition asked for with it.
        let failed = code::CLUSTER_AUTHORIZATION_FAILED;
        let responses = req.topics.iter().map(|t| {
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        ReassignablePartitionResponse::default().with_partition_index(p.partition_index).with_error_code(failed)
                    })
                    .collect(),
            )
        });
        let response = AlterPartitionReassignmentsResponse::default().with_error_code(failed).with_responses(responses.collect());
        return respond(header, &response.with_error_message(Some(s("ALTER on the cluster is not allowed"))));
    }
    let state = state.clone();
    respond_later(header, async move {
        let partitions: Vec<Reassign> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Reassign {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                })
            })
            .collect();
        let count = partitions.len();
        let decided = match count {
            0 => vec![],
            _ => {
                let call = ControllerRequest::AlterPartitionReassignments { partitions };
                call_each(&state, call, count, timeout_of(req.timeout_ms)).await
            }
        };
        let mut decided = decided.into_iter();
        let responses = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let r = ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
                        match decided.next().unwrap_or(Ok(())) {
                            Ok(()) => r.with_error_message(None),
                            Err(e) => r.with_error_code(e.code).with_error_message(Some(s(e.message))),
                        }
                    })
                    .collect();
                ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
            })
            .collect();
        AlterPartitionReassignmentsResponse::default().with_error_message(None).with_responses(responses)
    })
}

pub fn list_partition_reassignments(
    state: &BrokerState,
    peer: &Peer,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    use list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
    if !state.authorizer.authorize(peer, Operation::Describe, Resource::cluster()) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(s("DESCRIBE on the cluster is not allowed")));
    }
    let asked: Option<Vec<(String, Vec<i32>)>> =
        req.topics.map(|topics| topics.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect());
    let topics = reassignment::ongoing(&state.image(), asked.as_deref())
        .into_iter()
        .map(|(name, partitions)| {
            OngoingTopicReassignment::default().with_name(TopicName(s(name))).with_partitions(
                partitions
                    .into_iter()
                    .map(|p| {
                        OngoingPartitionReassignment::default()
                            .with_partition_index(p.partition)
                            .with_replicas(brokers(&p.replicas))
                            .with_adding_replicas(brokers(&p.adding))
                            .with_removing_replicas(brokers(&p.removing))
                    })
                    .collect(),
            )
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_error_message(None).with_topics(topics)
}
