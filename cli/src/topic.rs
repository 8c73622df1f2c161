//! `strata topic create|list|describe|alter-config|add-partitions|reassign|reassignments|delete`.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use strata_client::admin::{
    ConfigChange, ConfigEntry, ConfigResource, NewTopic, OffsetSpec, PartitionInfo, PerName, ReassignTarget, Reassignment,
};

use crate::options::{parse_key_value, Options};
use crate::table;
use crate::Outcome;

/// Kafka's ELECTION_NOT_NEEDED.
const ELECTION_NOT_NEEDED: i16 = 84;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create topics.
    Create {
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions of each topic (default: the broker's num.partitions).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (default: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replicas: i16,
        /// A topic config (repeatable), e.g. -c retention.ms=60000.
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts and replication factors.
    List {
        /// Include internal topics (__consumer_offsets and the like).
        #[arg(short, long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, ISR, log start/end offsets, sizes when the broker reports them) and configs.
    Describe {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Set or reset topic configs.
    AlterConfig {
        topic: String,
        /// Set a config (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Reset a config to the default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Add partitions to a topic.
    AddPartitions {
        topic: String,
        /// How many partitions to add.
        #[arg(short, long, value_parser = clap::value_parser!(i32).range(1..))]
        num: i32,
    },
    /// Move partitions to other brokers, or change their replication factor (a reassignment, KIP-455): the new
    /// replicas copy the data and join the in-sync replicas, then the others are removed and delete their copies.
    Reassign {
        topic: String,
        /// A partition to move (repeatable).
        #[arg(short, long = "partition", required = true)]
        partitions: Vec<i32>,
        /// The brokers to hold it, e.g. 1,2,3; the first is the preferred leader.
        #[arg(short, long, value_delimiter = ',', required_unless_present = "cancel", conflicts_with = "cancel")]
        replicas: Vec<i32>,
        /// Cancel the reassignment in progress: back to the replicas it started from.
        #[arg(long)]
        cancel: bool,
        /// Wait until the reassignment is complete (interrupting stops the waiting, not the reassignment).
        #[arg(short, long, conflicts_with = "cancel")]
        wait: bool,
    },
    /// Reassignments in progress: every replica meanwhile, those being added and those being removed.
    Reassignments {
        /// Only these topics (default: all).
        topics: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Move leaderships back to the preferred replicas (or, with --unclean, elect any live replica of
    /// partitions without a leader, which may lose acknowledged records).
    ElectLeaders {
        /// Topics (all partitions of each); none: every partition of the cluster.
        topics: Vec<String>,
        #[arg(long)]
        unclean: bool,
    },
}

pub async fn run(opts: &Options, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Create { topics, partitions, replicas, configs } => {
            let configs: Vec<(String, String)> = configs
                .iter()
                .map(|kv| parse_key_value(kv).with_context(|| format!("--config {kv}")))
                .collect::<Result<_, _>>()?;
            let new: Vec<NewTopic> = topics
                .iter()
                .map(|name| NewTopic { name: name.clone(), partitions, replication_factor: replicas, configs: configs.clone() })
                .collect();
            let mut client = opts.client().await?;
            let results = client.controller().await?.create_topics(&new).await?;
            Ok(report(opts, "created", results))
        }
        Command::List { internal } => list(opts, internal).await,
        Command::Describe { topics } => describe(opts, &topics).await,
        Command::AlterConfig { topic, set, delete } => {
            let mut changes = Vec::new();
            for kv in &set {
                let (k, v) = parse_key_value(kv).with_context(|| format!("--set {kv}"))?;
                changes.push(ConfigChange::Set(k, v));
            }
            changes.extend(delete.into_iter().map(ConfigChange::Delete));
            anyhow::ensure!(!changes.is_empty(), "nothing to change: give --set KEY=VALUE or --delete KEY");
            let mut client = opts.client().await?;
            client.topic(&topic).await?;
            client.controller().await?.alter_configs(&ConfigResource::Topic(topic.clone()), &changes).await?;
            Ok(report(opts, "altered", vec![(topic, Ok(()))]))
        }
        Command::AddPartitions { topic, num } => {
            let mut client = opts.client().await?;
            let current = client.topic(&topic).await?.partitions.len();
            let total = i32::try_from(current)? + num;
            let results = client.controller().await?.create_partitions(&[(topic, total)]).await?;
            Ok(report(opts, &format!("now {total} partitions"), results))
        }
        Command::Reassign { topic, partitions, replicas, cancel, wait } => {
            let target = (!cancel).then_some(replicas);
            let targets: Vec<ReassignTarget> = partitions.iter().map(|p| ((topic.clone(), *p), target.clone())).collect();
            let mut client = opts.client().await?;
            let outcomes = client.controller().await?.alter_partition_reassignments(&targets).await?;
            let results: PerName = outcomes.into_iter().map(|((t, p), r)| (format!("{t}-{p}"), r)).collect();
            let failed = results.iter().any(|(_, r)| r.is_err());
            let outcome = report(opts, if cancel { "cancelled" } else { "reassigning" }, results);
            if wait && !failed {
                let asked: Vec<(String, i32)> = targets.into_iter().map(|(tp, _)| tp).collect();
                while !client.controller().await?.list_partition_reassignments(Some(&asked)).await?.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                if !opts.json() {
                    println!("reassignment complete");
                }
            }
            Ok(outcome)
        }
        Command::Reassignments { topics } => reassignments(opts, &topics).await,
        Command::Delete { topics } => {
            let mut client = opts.client().await?;
            let results = client.controller().await?.delete_topics(&topics).await?;
            Ok(report(opts, "deleted", results))
        }
        Command::ElectLeaders { topics, unclean } => {
            let mut client = opts.client().await?;
            let partitions: Option<Vec<(String, i32)>> = match topics.is_empty() {
                true => None,
                false => Some(
                    client
                        .topics(&topics)
                        .await?
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
                        .collect(),
                ),
            };
            let results = client.controller().await?.elect_leaders(partitions.as_deref(), unclean).await?;
            // ELECTION_NOT_NEEDED: the partition already has the leader asked for, which is what was wanted.
            let (not_needed, results): (PerName, PerName) = results
                .into_iter()
                .map(|((t, p), r)| (format!("{t}-{p}"), r))
                .partition(|(_, r)| r.as_ref().is_err_and(|e| e.code().is_some_and(|c| c.0 == ELECTION_NOT_NEEDED)));
            if !not_needed.is_empty() && !opts.json() {
                let names: Vec<String> = not_needed.into_iter().map(|(n, _)| n).collect();
                eprintln!("already led as asked: {}", names.join(", "));
            }
            Ok(report(opts, "elected", results))
        }
    }
}

#[derive(Serialize)]
struct ItemResult {
    name: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Prints each item's outcome (a table, or JSON) and errors on stderr; Failed when any failed.
fn report(opts: &Options, done: &str, results: PerName) -> Outcome {
    let items: Vec<ItemResult> =
        results.into_iter().map(|(name, r)| ItemResult { name, ok: r.is_ok(), error: r.err().map(|e| e.to_string()) }).collect();
    if opts.json() {
        print!("{}", table::json(&items));
    } else {
        let rows: Vec<Vec<String>> =
            items.iter().map(|i| vec![i.name.clone(), if i.ok { done.to_string() } else { "FAILED".to_string() }]).collect();
        print!("{}", table::render(&["NAME", "RESULT"], &rows));
    }
    for e in items.iter().filter_map(|i| i.error.as_ref()) {
        eprintln!("error: {e}");
    }
    if items.iter().all(|i| i.ok) {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

#[derive(Serialize)]
struct Listed {
    name: String,
    partitions: usize,
    replication_factor: usize,
    internal: bool,
}

async fn list(opts: &Options, internal: bool) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let mut topics: Vec<Listed> = client
        .metadata(None)
        .await?
        .topics
        .into_iter()
        .filter(|t| internal || !t.internal)
        .map(|t| Listed {
            replication_factor: t.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(0),
            partitions: t.partitions.len(),
            internal: t.internal,
            name: t.name,
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if opts.json() {
        print!("{}", table::json(&topics));
    } else {
        let rows: Vec<Vec<String>> =
            topics.iter().map(|t| vec![t.name.clone(), t.partitions.to_string(), t.replication_factor.to_string()]).collect();
        print!("{}", table::render(&["NAME", "PARTITIONS", "REPLICAS"], &rows));
    }
    Ok(Outcome::Ok)
}

async fn reassignments(opts: &Options, topics: &[String]) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let mut listed: Vec<Reassignment> = client.controller().await?.list_partition_reassignments(None).await?;
    listed.retain(|r| topics.is_empty() || topics.contains(&r.topic));
    listed.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    if opts.json() {
        print!("{}", table::json(&listed));
    } else {
        let rows: Vec<Vec<String>> = listed
            .iter()
            .map(|r| {
                vec![
                    r.topic.clone(),
                    r.partition.to_string(),
                    table::ids(&r.replicas),
                    table::ids(&r.adding),
                    table::ids(&r.removing),
                ]
            })
            .collect();
        print!("{}", table::render(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"], &rows));
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct Described {
    name: String,
    id: String,
    partitions: Vec<DescribedPartition>,
    configs: Vec<ConfigEntry>,
}

#[derive(Serialize)]
struct DescribedPartition {
    #[serde(flatten)]
    info: PartitionInfo,
    log_start_offset: Option<i64>,
    log_end_offset: Option<i64>,
    /// The leader replica's size; None when brokers do not answer DescribeLogDirs.
    size_bytes: Option<i64>,
}

async fn describe(opts: &Options, names: &[String]) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let topics = client.topics(names).await?;
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().filter(|p| p.leader >= 0).map(|p| (t.name.clone(), p.partition)))
        .collect();
    let starts = client.list_offsets(&partitions, OffsetSpec::Earliest).await?;
    let ends = client.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let sizes = replica_sizes(&mut client).await?;
    let mut described = Vec::new();
    for t in topics {
        let configs = client.any().describe_configs(&ConfigResource::Topic(t.name.clone())).await?;
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                let tp = (t.name.clone(), p.partition);
                DescribedPartition {
                    log_start_offset: starts.get(&tp).copied(),
                    log_end_offset: ends.get(&tp).copied(),
                    size_bytes: sizes.as_ref().and_then(|s| s.get(&(tp.0, tp.1, p.leader)).copied()),
                    info: p,
                }
            })
            .collect();
        described.push(Described { name: t.name, id: t.id, partitions, configs });
    }
    if opts.json() {
        print!("{}", table::json(&described));
        return Ok(Outcome::Ok);
    }
    for (i, t) in described.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("topic: {} ({})", t.name, t.id);
        println!();
        let with_sizes = sizes.is_some();
        let mut headers = vec!["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END"];
        if with_sizes {
            headers.push("SIZE");
        }
        let rows: Vec<Vec<String>> = t
            .partitions
            .iter()
            .map(|p| {
                let mut row = vec![
                    p.info.partition.to_string(),
                    p.info.leader.to_string(),
                    p.info.leader_epoch.to_string(),
                    table::ids(&p.info.replicas),
                    table::ids(&p.info.isr),
                    table::opt(p.log_start_offset),
                    table::opt(p.log_end_offset),
                ];
                if with_sizes {
                    row.push(table::opt(p.size_bytes));
                }
                row
            })
            .collect();
        print!("{}", table::render(&headers, &rows));
        println!();
        let rows: Vec<Vec<String>> = t
            .configs
            .iter()
            .map(|c| {
                let value = if c.sensitive { "(sensitive)".to_string() } else { table::opt(c.value.as_deref()) };
                vec![c.name.clone(), value, c.source.to_string()]
            })
            .collect();
        print!("{}", table::render(&["CONFIG", "VALUE", "SOURCE"], &rows));
    }
    Ok(Outcome::Ok)
}

/// (topic, partition, broker) -> bytes from every broker's DescribeLogDirs; None if a broker does not offer it.
async fn replica_sizes(client: &mut strata_client::Client) -> anyhow::Result<Option<BTreeMap<(String, i32, i32), i64>>> {
    let mut sizes = BTreeMap::new();
    for id in client.broker_ids() {
        let Some(replicas) = client.broker(id).await?.describe_log_dirs().await? else {
            return Ok(None);
        };
        for r in replicas {
            *sizes.entry((r.topic, r.partition, id)).or_insert(0) += r.bytes;
        }
    }
    Ok(Some(sizes))
}
