//! `strata`: the command-line tool for Strata clusters (and any Kafka cluster), like Redpanda's rpk. It speaks
//! only the Kafka protocol: admin commands through strata-client, produce and consume through librdkafka
//! (groups, compression and Kafka's partitioner come with it).
//!
//! Exit codes: 0 success, 1 error, 2 bad usage, 3 `cluster health` found the cluster unhealthy.

mod acl;
mod cluster;
mod consume;
mod group;
mod options;
mod perf;
mod produce;
mod progress;
mod table;
mod template;
mod topic;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::options::GlobalOptions;

#[derive(Parser)]
#[command(name = "strata", version, about = "Manage and use a Strata (or any Kafka) cluster over the Kafka protocol")]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Brokers, controller, quorum and health of the cluster.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// Create, list, describe, configure, grow and delete topics.
    #[command(subcommand)]
    Topic(topic::Command),
    /// List, describe, delete consumer groups and move their committed offsets.
    #[command(subcommand)]
    Group(group::Command),
    /// Write records read from stdin (one per line, or JSON objects) to a topic.
    Produce(produce::Args),
    /// Read records of a topic and print them (a template per record, or JSON lines).
    Consume(consume::Args),
    /// Load generators that measure throughput and latency.
    #[command(subcommand)]
    Perf(perf::Command),
    /// List, add and remove ACLs.
    #[command(subcommand)]
    Acl(acl::Command),
    /// Set, describe and delete users' SCRAM credentials.
    #[command(subcommand)]
    User(user::Command),
}

/// What a command reports besides success: unhealthy for `cluster health`, failed when some items failed
/// (already printed).
pub enum Outcome {
    Ok,
    Failed,
    Unhealthy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Unhealthy) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let opts = cli.global.resolve()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Command::Cluster(c) => runtime.block_on(cluster::run(&opts, c)),
        Command::Topic(c) => runtime.block_on(topic::run(&opts, c)),
        Command::Group(c) => runtime.block_on(group::run(&opts, c)),
        Command::Acl(c) => runtime.block_on(acl::run(&opts, c)),
        Command::User(c) => runtime.block_on(user::run(&opts, c)),
        Command::Produce(a) => produce::run(&opts, &runtime, a),
        Command::Consume(a) => consume::run(&opts, &runtime, a),
        Command::Perf(c) => perf::run(&opts, &runtime, c),
    }
}
