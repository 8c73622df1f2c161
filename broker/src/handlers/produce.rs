//! Produce: appends each partition's record batches (validated by the storage engine) straight from the request
//! frame. acks=1 answers once the leader appended; acks=-1 (all) answers once the high watermark passed the
//! appended records, i.e. every in-sync replica has them (Kafka's delayed produce), or at the request's
//! timeout with REQUEST_TIMED_OUT.

use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeSet;

use kafka_protocol::messages::{produce_response, BrokerId, ProduceResponse, TopicName};
use strata_storage::StorageError;

use super::{message_if, respond, s};
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::errors::{code, storage_error_code};
use crate::partition::{AppendError, Partition};
use crate::protocol::{ProduceRequest, RequestHeader};
use crate::server::{Peer, Reply};

/// An acks=all append waiting for the in-sync replicas: (topic index, partition index in the response, the
/// partition, the offset the high watermark must reach, the leader epoch it was appended at).
struct Waiting {
    topic: usize,
    index: usize,
    partition: Arc<Partition>,
    offset: i64,
    leader_epoch: i32,
}

pub fn handle(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: ProduceRequest) -> Reply {
    let version = header.api_version;
    let valid_acks = matches!(req.acks, -1..=1);
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut waiting = Vec::new();
    let auth = state.authorizer.check(peer);
    for mut topic in req.topics {
        // v13+ names topics by id.
        let name = if version >= 13 { state.topic_name_by_id(topic.topic_id) } else { Some(topic.name.clone()) };
        let authorized = name.as_deref().is_none_or(|n| auth.allows(Operation::Write, Resource::topic(n)));
        let unknown = if version >= 13 { code::UNKNOWN_TOPIC_ID } else { code::UNKNOWN_TOPIC_OR_PARTITION };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &mut topic.partitions {
            let resp = produce_response::PartitionProduceResponse::default().with_index(p.index);
            let partition = name.as_deref().and_then(|n| state.replicas.partition(n, p.index));
            let outcome = match (valid_acks, partition, p.records.as_mut()) {
                (false, _, _) => Err((code::INVALID_REQUIRED_ACKS, format!("acks={} (expected -1, 0 or 1)", req.acks))),
                _ if !authorized => Err((code::TOPIC_AUTHORIZATION_FAILED, "WRITE on the topic is not allowed".to_string())),
                // Kafka's ReplicaManager: only the broker appends to its internal topics.
                _ if name.as_deref().is_some_and(crate::group::is_internal_topic) => Err((
                    code::INVALID_TOPIC_EXCEPTION,
                    format!("cannot append to internal topic {}", name.as_deref().unwrap_or_default()),
                )),
                // No transaction coordinator: see handlers::groups.
                _ if req.transactional_id.is_some() => Err((
                    code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "transactions are not supported by this broker".to_string(),
                )),
                (true, None, _) => match name.as_deref().map(|n| state.missing_partition_code(n, p.index)) {
                    Some(code::NOT_LEADER_OR_FOLLOWER) => {
                        Err((code::NOT_LEADER_OR_FOLLOWER, "another broker leads this partition".to_string()))
                    }
                    _ => Err((unknown, "unknown topic or partition".to_string())),
                },
                (true, Some(_), None) => Err((code::CORRUPT_MESSAGE, "null records".to_string())),
                (true, Some(partition), Some(records)) => {
                    let leader_epoch = partition.leader_epoch();
                    match super::may_block(|| partition.append(records, req.acks)) {
                        Ok(info) => {
                            if req.acks == -1 {
                                waiting.push(Waiting {
                                    topic: topics.len(),
                                    index: partitions.len(),
                                    partition: partition.clone(),
                                    offset: info.last_offset + 1,
                                    leader_epoch,
                                });
                            }
                            state.log_dir_space.write_succeeded();
                            state.metrics.topics.produced(&partition.log.topic_partition().topic, info.bytes, info.record_count);
                            Ok((info.first_offset, info.log_append_time, partition.log.log_start_offset()))
                        }
                        Err(AppendError::Storage(e @ StorageError::DiskFull { .. })) => {
                            // Said once per episode by the log dir's state, not once per batch.
                            state.log_dir_space.write_failed(&e);
                            Err((storage_error_code(&e), e.to_string()))
                        }
                        Err(e) => {
                            tracing::info!(topic = ?name, partition = p.index, error = %e, "produce rejected");
                            Err((e.code(), e.to_string()))
                        }
                    }
                }
            };
            partitions.push(match outcome {
                Ok((base_offset, log_append_time, log_start)) => resp
                    .with_base_offset(base_offset)
                    .with_log_append_time_ms(log_append_time)
                    .with_log_start_offset(if version >= 5 { log_start } else { -1 }),
                Err((error_code, msg)) => {
                    any_error = true;
                    if let Some(topic) = name.as_deref() {
                        state.metrics.topics.produce_failed(topic);
                    }
                    resp.with_error_code(error_code).with_base_offset(-1).with_error_message(message_if(version >= 8, Some(msg)))
                }
            });
        }
        topics.push(
            produce_response::TopicProduceResponse::default()
                .with_name(TopicName(s(if version >= 13 { String::new() } else { topic.name })))
                .with_topic_id(if version >= 13 { topic.topic_id } else { uuid::Uuid::nil() })
                .with_partition_responses(partitions),
        );
    }
    if req.acks == 0 {
        // There is no response to carry an error; Kafka closes the connection so the client notices.
        return if any_error { Reply::Close("acks=0 produce failed".into()) } else { Reply::None };
    }
    waiting.retain(|w| !settle(&mut topics, w, version, false));
    if waiting.is_empty() {
        return respond(header, &with_leader_hints(state, peer, version, ProduceResponse::default().with_responses(topics)));
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut shutdown = state.shutdown.clone();
    let (state, peer) = (state.clone(), peer.clone());
    let parked = Parked::new(&state.metrics.delayed_produce);
    // Subscribed now, before the response is polled (after the connection's earlier responses): a move of the
    // high watermark in between wakes it rather than waiting for the next move.
    let mut watches: Vec<_> = waiting.iter().map(|w| w.partition.watch_high_watermark()).collect();
    super::respond_later(header, async move {
        let _parked = parked;
        let deadline = tokio::time::Instant::now() + timeout;
        // Leadership changes do not move the high watermark: a periodic look catches them.
        let recheck = Duration::from_millis(200);
        loop {
            let keep: Vec<bool> = waiting.iter().map(|w| !settle(&mut topics, w, version, false)).collect();
            let mut it = keep.iter();
            waiting.retain(|_| *it.next().unwrap());
            let mut it = keep.iter();
            watches.retain(|_| *it.next().unwrap());
            if waiting.is_empty() {
                break;
            }
            let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(recheck) => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = crate::server::stopped(&mut shutdown) => break,
            }
        }
        for w in &waiting {
            settle(&mut topics, w, version, true);
        }
        with_leader_hints(&state, &peer, version, ProduceResponse::default().with_responses(topics))
    })
}

/// KIP-951 (v10+): a partition this broker does not lead names its current leader, and the response carries
/// that leader's endpoint on the client's listener, so the client moves without a metadata round trip.
fn with_leader_hints(state: &BrokerState, peer: &Peer, version: i16, mut resp: ProduceResponse) -> ProduceResponse {
    if version < 10 {
        return resp;
    }
    let image = state.image();
    let mut leaders = BTreeSet::new();
    for t in &mut resp.responses {
        let name = if version >= 13 { state.topic_name_by_id(t.topic_id) } else { Some(t.name.to_string()) };
        let Some(name) = name else { continue };
        for p in t.partition_responses.iter_mut().filter(|p| p.error_code == code::NOT_LEADER_OR_FOLLOWER) {
            if let Some(part) = image.partition(&name, p.index).filter(|part| part.leader >= 0) {
                p.current_leader = produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(part.leader))
                    .with_leader_epoch(part.leader_epoch);
                leaders.insert(part.leader);
            }
        }
    }
    resp.node_endpoints = super::cluster::brokers(state, &image, peer)
        .into_iter()
        .filter(|(id, ..)| leaders.contains(id))
        .map(|(id, host, port, rack)| {
            produce_response::NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(s(host))
                .with_port(port)
                .with_rack(rack.map(s))
        })
        .collect();
    resp
}

/// Completes an acks=all partition response if its outcome is known (or, when `timed_out`, with
/// REQUEST_TIMED_OUT); true if it is complete.
fn settle(topics: &mut [produce_response::TopicProduceResponse], w: &Waiting, version: i16, timed_out: bool) -> bool {
    let outcome = match w.partition.acks_all_outcome(w.offset, w.leader_epoch) {
        Some(o) => o,
        None if timed_out => Err(code::REQUEST_TIMED_OUT),
        None => return false,
    };
    if let Err(error_code) = outcome {
        let resp = &mut topics[w.topic].partition_responses[w.index];
        let msg = match error_code {
            code::REQUEST_TIMED_OUT => "the in-sync replicas did not all get the records in time",
            code::NOT_ENOUGH_REPLICAS_AFTER_APPEND => {
                "appended, but the ISR fell below min.insync.replicas before it was replicated"
            }
            _ => "this broker lost the leadership before the records were replicated",
        };
        resp.error_code = error_code;
        resp.error_message = message_if(version >= 8, Some(msg.to_string()));
    }
    true
}

/// Counts a produce waiting for its in-sync replicas while it lives (also when its connection goes first).
struct Parked(prometheus::IntGauge);

impl Parked {
    fn new(gauge: &prometheus::IntGauge) -> Parked {
        gauge.inc();
        Parked(gauge.clone())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.dec();
    }
}
