//! ListOffsets (earliest, latest, by timestamp, max timestamp), OffsetForLeaderEpoch (answered from the log's
//! leader-epoch cache), and DeleteRecords.

use kafka_protocol::messages::{
    delete_records_response, list_offsets_response, offset_for_leader_epoch_response, DeleteRecordsRequest,
    DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::errors::{code, storage_error_code};
use crate::server::Peer;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The (timestamp, offset, leader epoch) answer for one partition, or an error code. The epoch is the one that
/// wrote the offset found (for LATEST, the latest epoch), as Kafka reports it.
fn lookup(state: &BrokerState, topic: &str, partition: i32, timestamp: i64) -> Result<(i64, i64, i32), i16> {
    let p = state.replicas.partition(topic, partition).ok_or_else(|| state.missing_partition_code(topic, partition))?;
    let log = &p.log;
    let (found_timestamp, offset) = match timestamp {
        // Read-committed clients get the last stable offset, which equals the high watermark without transactions.
        LATEST => (-1, log.high_watermark()),
        EARLIEST | EARLIEST_LOCAL => (-1, log.log_start_offset()),
        // Nothing is tiered: Kafka answers "no offset".
        LATEST_TIERED => (-1, -1),
        MAX_TIMESTAMP => match log.max_timestamp_offset() {
            Ok(found) => found.map_or((-1, -1), |t| (t.timestamp, t.offset)),
            Err(e) => return Err(storage_error_code(&e)),
        },
        ts if ts >= 0 => match log.offset_for_timestamp(ts) {
            Ok(found) => found.map_or((-1, -1), |t| (t.timestamp, t.offset)),
            Err(e) => return Err(storage_error_code(&e)),
        },
        _ => return Err(code::INVALID_REQUEST),
    };
    let epoch = match timestamp {
        _ if offset < 0 => None,
        LATEST => log.latest_epoch(),
        _ => log.epoch_for_offset(offset),
    };
    Ok((found_timestamp, offset, epoch.unwrap_or(-1)))
}

pub fn list_offsets(state: &BrokerState, peer: &Peer, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let auth = state.authorizer.check(peer);
    ListOffsetsResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let authorized = auth.allows(Operation::Describe, Resource::topic(&name));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let r = list_offsets_response::ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index);
                        let found = match authorized {
                            true => lookup(state, &name, p.partition_index, p.timestamp),
                            false => Err(code::TOPIC_AUTHORIZATION_FAILED),
                        };
                        match found {
                            Ok((timestamp, offset, epoch)) => r
                                .with_timestamp(timestamp)
                                .with_offset(offset)
                                .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                            Err(error_code) => r.with_error_code(error_code),
                        }
                    })
                    .collect();
                list_offsets_response::ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
            })
            .collect(),
    )
}

pub fn offset_for_leader_epoch(
    state: &BrokerState,
    peer: &Peer,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let auth = state.authorizer.check(peer);
    // A follower (replica id set, v3+) asks for replication, a consumer about a topic it reads.
    let follower = (req.replica_id.0 >= 0).then(|| auth.allows(Operation::ClusterAction, Resource::cluster()));
    OffsetForLeaderEpochResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.topic.0.to_string();
                let authorized = follower.unwrap_or_else(|| auth.allows(Operation::Describe, Resource::topic(&name)));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let r = offset_for_leader_epoch_response::EpochEndOffset::default().with_partition(p.partition);
                        match state.replicas.partition(&name, p.partition) {
                            _ if !authorized => {
                                r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED).with_leader_epoch(-1).with_end_offset(-1)
                            }
                            None => r
                                .with_error_code(state.missing_partition_code(&name, p.partition))
                                .with_leader_epoch(-1)
                                .with_end_offset(-1),
                            // The client knows a newer epoch than this leader's.
                            Some(part) if p.current_leader_epoch > part.leader_epoch() => {
                                r.with_error_code(code::UNKNOWN_LEADER_EPOCH).with_leader_epoch(-1).with_end_offset(-1)
                            }
                            // The client has seen an older leader (-1: the client does not say which it knows).
                            Some(part) if p.current_leader_epoch != -1 && p.current_leader_epoch < part.leader_epoch() => {
                                r.with_error_code(code::FENCED_LEADER_EPOCH).with_leader_epoch(-1).with_end_offset(-1)
                            }
                            Some(part) => {
                                let (epoch, end_offset) = part.log.end_offset_for_epoch(p.leader_epoch);
                                r.with_leader_epoch(epoch).with_end_offset(end_offset)
                            }
                        }
                    })
                    .collect();
                offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}

pub fn delete_records(state: &BrokerState, peer: &Peer, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let auth = state.authorizer.check(peer);
    DeleteRecordsResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let authorized = auth.allows(Operation::Delete, Resource::topic(&name));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let r = delete_records_response::DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index);
                        if !authorized {
                            return r.with_error_code(code::TOPIC_AUTHORIZATION_FAILED).with_low_watermark(-1);
                        }
                        // Kafka's rule: the broker's own records are not the client's to delete.
                        if crate::group::is_internal_topic(&name) {
                            return r.with_error_code(code::INVALID_TOPIC_EXCEPTION).with_low_watermark(-1);
                        }
                        let Some(part) = state.replicas.partition(&name, p.partition_index) else {
                            return r
                                .with_error_code(state.missing_partition_code(&name, p.partition_index))
                                .with_low_watermark(-1);
                        };
                        let hw = part.log.high_watermark();
                        // -1 means "up to the high watermark".
                        let offset = if p.offset == -1 { hw } else { p.offset };
                        if offset < 0 || offset > hw {
                            return r.with_error_code(code::OFFSET_OUT_OF_RANGE).with_low_watermark(-1);
                        }
                        match state.replicas.log_manager().delete_records(part.log.topic_partition(), offset) {
                            Ok(low) => r.with_low_watermark(low),
                            Err(e) => r.with_error_code(storage_error_code(&e)).with_low_watermark(-1),
                        }
                    })
                    .collect();
                delete_records_response::DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
            })
            .collect(),
    )
}
