//! DescribeLogDirs: this broker's log directory with the size of each partition replica in it (what tools and
//! the operator use to see where data is), and from v4 the file system's total and usable bytes. As in Kafka,
//! partitions asked for that this broker does not hold are left out rather than answered with an error, and
//! replicas are never "future" ones (no moves between directories), so their offset lag is 0.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::s;
use crate::authorizer::{Operation, Resource};
use crate::broker::BrokerState;
use crate::errors::code;
use crate::server::Peer;

pub fn describe_log_dirs(state: &BrokerState, peer: &Peer, version: i16, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if !state.authorizer.authorize(peer, Operation::Describe, Resource::cluster()) {
        // As Kafka: no directories, and from v3 the error.
        let response = DescribeLogDirsResponse::default();
        return if version >= 3 { response.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED) } else { response };
    }
    let wanted: Option<HashSet<(String, i32)>> =
        req.topics.map(|topics| topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p))).collect());
    let logs = state.replicas.log_manager();
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for log in logs.logs() {
        let tp = log.topic_partition();
        if wanted.as_ref().is_some_and(|w| !w.contains(&(tp.topic.clone(), tp.partition))) {
            continue;
        }
        by_topic.entry(tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(log.size_bytes() as i64)
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default().with_name(TopicName(s(name))).with_partitions(partitions)
        })
        .collect();
    // Kafka names the directory by its absolute path.
    let dir = std::path::absolute(logs.log_dir()).unwrap_or_else(|_| logs.log_dir().to_path_buf());
    let mut result = DescribeLogDirsResult::default().with_log_dir(s(dir.display().to_string()));
    match (version >= 4, crate::node_stats::disk_space(&dir)) {
        (false, _) => result = result.with_topics(topics),
        (true, Some((usable, total))) => {
            result = result.with_topics(topics).with_total_bytes(total as i64).with_usable_bytes(usable as i64);
        }
        (true, None) => result = result.with_error_code(code::KAFKA_STORAGE_ERROR),
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}
