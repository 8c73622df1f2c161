//! What the topic controller asks of a cluster, over the shared admin client: describe one topic,
//! make the planned changes, delete it.

use std::collections::BTreeMap;

use strata_client::admin::{ConfigResource, NewTopic, PerName};
pub use strata_client::ClientError as AdminError;
use strata_client::{Client, ErrorCode};

use super::plan::{Change, Described};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// DescribeConfigs' source of a topic's own overrides.
const TOPIC_OVERRIDE: &str = "DYNAMIC_TOPIC_CONFIG";

/// The cluster's broker ids and the topic, None if it does not exist.
pub async fn describe(client: &mut Client, name: &str) -> Result<(Vec<i32>, Option<Described>), AdminError> {
    let md = client.metadata(Some(&[name.to_string()])).await?;
    let brokers = md.brokers.iter().map(|b| b.id).collect();
    let Some(topic) = md.topics.into_iter().find(|t| t.name == name) else {
        return Ok((brokers, None));
    };
    match topic.error.0 {
        0 => {}
        UNKNOWN_TOPIC_OR_PARTITION => return Ok((brokers, None)),
        _ => client.any().check(topic.error.0, format!("topic {name}"), None)?,
    }
    let partitions: BTreeMap<i32, Vec<i32>> = topic.partitions.into_iter().map(|p| (p.partition, p.replicas)).collect();
    let conn = client.any();
    let overrides = conn
        .describe_configs(&ConfigResource::Topic(name.to_string()))
        .await?
        .into_iter()
        .filter(|e| e.source == TOPIC_OVERRIDE)
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    let keys: Vec<(String, i32)> = partitions.keys().map(|p| (name.to_string(), *p)).collect();
    let reassigning = conn.list_partition_reassignments(Some(&keys[..])).await?.into_iter().map(|r| r.partition).collect();
    Ok((brokers, Some(Described { id: topic.id, partitions, overrides, reassigning })))
}

/// The outcome for `name` among a request's per-topic outcomes.
fn outcome_of(results: PerName, name: &str) -> Result<(), AdminError> {
    results
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or_else(|| Err(AdminError::NotFound(format!("the broker's answer does not mention topic {name}"))), |(_, r)| r)
}

/// Makes one planned change to topic `name`.
pub async fn apply(client: &mut Client, name: &str, change: &Change) -> Result<(), AdminError> {
    let conn = client.any();
    match change {
        Change::Create { partitions, replicas, config } => {
            let topic = NewTopic {
                name: name.to_string(),
                partitions: *partitions,
                replication_factor: *replicas,
                configs: config.clone(),
            };
            match outcome_of(conn.create_topics(&[topic]).await?, name) {
                // Created meanwhile (by an earlier pass whose answer was lost): the next pass compares.
                Err(e) if e.code() == Some(ErrorCode(TOPIC_ALREADY_EXISTS)) => Ok(()),
                other => other,
            }
        }
        Change::Config(changes) => conn.alter_configs(&ConfigResource::Topic(name.to_string()), changes).await,
        Change::Partitions(total) => outcome_of(conn.create_partitions(&[(name.to_string(), *total)]).await?, name),
        Change::Reassign(moves) => {
            let targets: Vec<_> = moves.iter().map(|(p, r)| ((name.to_string(), *p), Some(r.clone()))).collect();
            conn.alter_partition_reassignments(&targets).await?.into_iter().try_for_each(|(_, r)| r)
        }
    }
}

/// Deletes topic `name`; false if it did not exist.
pub async fn delete(client: &mut Client, name: &str) -> Result<bool, AdminError> {
    match outcome_of(client.any().delete_topics(&[name.to_string()]).await?, name) {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(ErrorCode(UNKNOWN_TOPIC_OR_PARTITION)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A condition reason for a broker's answer: Kafka's error name in CamelCase (`InvalidConfig`).
pub fn reason_of(error: &AdminError) -> String {
    match error.code() {
        Some(code) => code.name().split('_').map(capitalized).collect(),
        None => "ClusterUnreachable".to_string(),
    }
}

fn capitalized(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn kafka(code: i16) -> AdminError {
        AdminError::Kafka {
            addr: "b:9092".into(),
            what: "changing configs of topic t".into(),
            code: ErrorCode(code),
            message: None,
        }
    }

    #[test]
    fn reasons_name_the_kafka_error() {
        // (error, reason)
        let table = [
            (kafka(40), "InvalidConfig"),
            (kafka(37), "InvalidPartitions"),
            (kafka(38), "InvalidReplicationFactor"),
            (kafka(44), "PolicyViolation"),
            (kafka(9999), "UnknownErrorCode"),
            (AdminError::Timeout { addr: "b".into(), timeout: Duration::from_secs(1) }, "ClusterUnreachable"),
            (AdminError::NoBroker(vec![]), "ClusterUnreachable"),
        ];
        for (error, want) in table {
            assert_eq!(reason_of(&error), want, "{error}");
        }
    }

    #[test]
    fn outcomes_are_picked_by_name() {
        let results = || -> PerName { vec![("a".into(), Ok(())), ("b".into(), Err(kafka(40)))] };
        assert!(outcome_of(results(), "a").is_ok());
        assert_eq!(outcome_of(results(), "b").unwrap_err().code(), Some(ErrorCode(40)));
        assert!(matches!(outcome_of(results(), "c"), Err(AdminError::NotFound(_))));
    }
}
