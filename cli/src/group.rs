//! `strata group list|describe|delete|seek`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use strata_client::admin::{GroupDescription, OffsetSpec};
use strata_client::Client;

use crate::options::Options;
use crate::table;
use crate::Outcome;

type Tp = (String, i32);

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the cluster's groups.
    List,
    /// Members, assignments, committed offsets and lag per partition.
    Describe { group: String },
    /// Delete groups (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets; shows the plan only, unless --execute (like kafka-consumer-groups
    /// --reset-offsets). The group must have no members.
    Seek(SeekArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp", "shift_by"])))]
pub struct SeekArgs {
    group: String,
    /// Topics to move (repeatable; all their partitions). Default: the topics the group has offsets for.
    #[arg(short, long = "topic")]
    topics: Vec<String>,
    /// To the log start offsets.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offsets.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to each partition's log).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// To the first record at or after this time (milliseconds since the epoch; the log end if none).
    #[arg(long, value_name = "MS")]
    to_timestamp: Option<i64>,
    /// By this many records from the committed offsets (negative: back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Commit the new offsets (without it, only the plan is shown).
    #[arg(long)]
    execute: bool,
}

pub async fn run(opts: &Options, command: Command) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    match command {
        Command::List => {
            let groups = client.list_groups().await?;
            if opts.json() {
                print!("{}", table::json(&groups));
            } else {
                let rows: Vec<Vec<String>> =
                    groups.iter().map(|g| vec![g.group.clone(), g.state.clone(), g.protocol_type.clone()]).collect();
                print!("{}", table::render(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows));
            }
            Ok(Outcome::Ok)
        }
        Command::Describe { group } => describe(opts, &mut client, &group).await,
        Command::Delete { groups } => {
            let results = client.delete_groups(&groups).await?;
            let mut failed = false;
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|(g, r)| {
                    if let Err(e) = r {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                    vec![g.clone(), if r.is_ok() { "deleted".into() } else { "FAILED".into() }]
                })
                .collect();
            if opts.json() {
                let items: Vec<_> = results
                    .iter()
                    .map(|(g, r)| serde_json::json!({"name": g, "ok": r.is_ok(), "error": r.as_ref().err().map(ToString::to_string)}))
                    .collect();
                print!("{}", table::json(&items));
            } else {
                print!("{}", table::render(&["NAME", "RESULT"], &rows));
            }
            Ok(if failed { Outcome::Failed } else { Outcome::Ok })
        }
        Command::Seek(args) => seek(opts, &mut client, args).await,
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    pub member: Option<String>,
}

/// One row per partition that has a committed offset or an owner.
pub fn lag_rows(group: &GroupDescription, committed: &BTreeMap<Tp, i64>, ends: &BTreeMap<Tp, i64>) -> Vec<LagRow> {
    let mut owner: BTreeMap<Tp, &str> = BTreeMap::new();
    for m in &group.members {
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owner.insert((topic.clone(), *p), &m.member_id);
            }
        }
    }
    let partitions: BTreeSet<&Tp> = committed.keys().chain(owner.keys()).collect();
    partitions
        .into_iter()
        .map(|tp| {
            let committed = committed.get(tp).copied();
            let log_end = ends.get(tp).copied();
            LagRow {
                topic: tp.0.clone(),
                partition: tp.1,
                committed,
                log_end,
                lag: committed.zip(log_end).map(|(c, e)| (e - c).max(0)),
                member: owner.get(tp).map(|m| m.to_string()),
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Described {
    #[serde(flatten)]
    group: GroupDescription,
    coordinator: String,
    offsets: Vec<LagRow>,
}

async fn describe(opts: &Options, client: &mut Client, group: &str) -> anyhow::Result<Outcome> {
    let coordinator = client.coordinator(group).await?;
    let addr = coordinator.addr().to_string();
    let description = coordinator.describe_group(group).await?;
    let committed = coordinator.fetch_offsets(group).await?;
    anyhow::ensure!(
        description.state != "Dead" || !committed.is_empty(),
        "{addr}: group {group} does not exist (no members, no committed offsets)"
    );
    let mut partitions: BTreeSet<Tp> = committed.keys().cloned().collect();
    partitions.extend(
        description.members.iter().flat_map(|m| m.assignment.iter().flat_map(|(t, ps)| ps.iter().map(|p| (t.clone(), *p)))),
    );
    let ends = client.list_offsets(&partitions.into_iter().collect::<Vec<_>>(), OffsetSpec::Latest).await?;
    let offsets = lag_rows(&description, &committed, &ends);
    let described = Described { group: description, coordinator: addr, offsets };
    if opts.json() {
        print!("{}", table::json(&described));
        return Ok(Outcome::Ok);
    }
    let g = &described.group;
    println!("group: {}", g.group);
    println!("coordinator: {}", described.coordinator);
    println!("state: {}", g.state);
    println!("protocol: {}", [g.protocol_type.as_str(), g.protocol.as_str()].join("/").trim_matches('/'));
    println!("members: {}", g.members.len());
    if !g.members.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = g
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<String> = m.assignment.iter().map(|(t, ps)| format!("{t}:{}", table::ids(ps))).collect();
                vec![m.member_id.clone(), m.client_id.clone(), m.host.clone(), assignment.join(" ")]
            })
            .collect();
        print!("{}", table::render(&["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"], &rows));
    }
    println!();
    let rows: Vec<Vec<String>> = described
        .offsets
        .iter()
        .map(|r| {
            vec![
                r.topic.clone(),
                r.partition.to_string(),
                table::opt(r.committed),
                table::opt(r.log_end),
                table::opt(r.lag),
                table::opt(r.member.as_deref()),
            ]
        })
        .collect();
    print!("{}", table::render(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER"], &rows));
    Ok(Outcome::Ok)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekTo {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    ShiftBy(i64),
}

impl SeekArgs {
    fn target(&self) -> SeekTo {
        match (self.to_offset, self.to_timestamp, self.shift_by) {
            (Some(o), _, _) => SeekTo::Offset(o),
            (_, Some(t), _) => SeekTo::Timestamp(t),
            (_, _, Some(n)) => SeekTo::ShiftBy(n),
            _ if self.to_earliest => SeekTo::Earliest,
            _ => SeekTo::Latest,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct SeekRow {
    pub topic: String,
    pub partition: i32,
    pub current: Option<i64>,
    pub new: i64,
}

/// The offsets log bounds of each partition a seek needs.
pub struct Bounds<'a> {
    pub earliest: &'a BTreeMap<Tp, i64>,
    pub latest: &'a BTreeMap<Tp, i64>,
    /// For [`SeekTo::Timestamp`]: ListOffsets' answer per partition (-1: no record that late).
    pub by_time: &'a BTreeMap<Tp, i64>,
}

/// New offsets, clamped to each partition's log as kafka-consumer-groups does. A shift from no committed
/// offset starts at the log end.
pub fn plan(partitions: &[Tp], current: &BTreeMap<Tp, i64>, bounds: &Bounds, to: SeekTo) -> Vec<SeekRow> {
    partitions
        .iter()
        .map(|tp| {
            let (low, high) = (bounds.earliest.get(tp).copied().unwrap_or(0), bounds.latest.get(tp).copied().unwrap_or(0));
            let committed = current.get(tp).copied();
            let wanted = match to {
                SeekTo::Earliest => low,
                SeekTo::Latest => high,
                SeekTo::Offset(o) => o,
                SeekTo::Timestamp(_) => bounds.by_time.get(tp).copied().filter(|o| *o >= 0).unwrap_or(high),
                SeekTo::ShiftBy(n) => committed.unwrap_or(high).saturating_add(n),
            };
            SeekRow { topic: tp.0.clone(), partition: tp.1, current: committed, new: wanted.clamp(low, high.max(low)) }
        })
        .collect()
}

async fn seek(opts: &Options, client: &mut Client, args: SeekArgs) -> anyhow::Result<Outcome> {
    let group = args.group.as_str();
    let coordinator = client.coordinator(group).await?;
    let addr = coordinator.addr().to_string();
    let description = coordinator.describe_group(group).await?;
    let current = coordinator.fetch_offsets(group).await?;
    let partitions: Vec<Tp> = if args.topics.is_empty() {
        current.keys().cloned().collect()
    } else {
        client
            .topics(&args.topics)
            .await?
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
            .collect()
    };
    anyhow::ensure!(!partitions.is_empty(), "group {group} has no committed offsets: name the topics to seek with --topic");
    let earliest = client.list_offsets(&partitions, OffsetSpec::Earliest).await?;
    let latest = client.list_offsets(&partitions, OffsetSpec::Latest).await?;
    let target = args.target();
    let by_time = match target {
        SeekTo::Timestamp(t) => client.list_offsets(&partitions, OffsetSpec::Timestamp(t)).await?,
        _ => BTreeMap::new(),
    };
    let rows = plan(&partitions, &current, &Bounds { earliest: &earliest, latest: &latest, by_time: &by_time }, target);
    if args.execute {
        // Members would overwrite the new offsets with their own next commit.
        anyhow::ensure!(
            matches!(description.state.as_str(), "Empty" | "Dead"),
            "{addr}: group {group} is {} with {} member(s): stop its consumers before moving its offsets",
            description.state,
            description.members.len()
        );
        let offsets: BTreeMap<Tp, i64> = rows.iter().map(|r| ((r.topic.clone(), r.partition), r.new)).collect();
        client.coordinator(group).await?.commit_offsets(group, &offsets).await?;
    }
    if opts.json() {
        print!("{}", table::json(&serde_json::json!({"group": group, "executed": args.execute, "offsets": rows})));
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.topic.clone(), r.partition.to_string(), table::opt(r.current), r.new.to_string()])
            .collect();
        print!("{}", table::render(&["TOPIC", "PARTITION", "CURRENT", "NEW"], &table_rows));
        if !args.execute {
            eprintln!("dry run: offsets unchanged; add --execute to commit them");
        }
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use strata_client::admin::GroupMember;

    use super::*;

    fn tp(t: &str, p: i32) -> Tp {
        (t.to_string(), p)
    }

    #[test]
    fn seek_plans_clamp_to_the_log() {
        let parts = [tp("a", 0), tp("a", 1)];
        let earliest = BTreeMap::from([(tp("a", 0), 10), (tp("a", 1), 0)]);
        let latest = BTreeMap::from([(tp("a", 0), 100), (tp("a", 1), 5)]);
        let by_time = BTreeMap::from([(tp("a", 0), 42), (tp("a", 1), -1)]);
        let bounds = Bounds { earliest: &earliest, latest: &latest, by_time: &by_time };
        let current = BTreeMap::from([(tp("a", 0), 50)]);
        let news = |to| plan(&parts, &current, &bounds, to).into_iter().map(|r| r.new).collect::<Vec<_>>();
        assert_eq!(news(SeekTo::Earliest), [10, 0]);
        assert_eq!(news(SeekTo::Latest), [100, 5]);
        assert_eq!(news(SeekTo::Offset(3)), [10, 3]);
        assert_eq!(news(SeekTo::Offset(1000)), [100, 5]);
        assert_eq!(news(SeekTo::Timestamp(7)), [42, 5]);
        assert_eq!(news(SeekTo::ShiftBy(-45)), [10, 0]);
        assert_eq!(news(SeekTo::ShiftBy(5)), [55, 5]);
        let rows = plan(&parts, &current, &bounds, SeekTo::Earliest);
        assert_eq!(rows[0], SeekRow { topic: "a".into(), partition: 0, current: Some(50), new: 10 });
        assert_eq!(rows[1].current, None);
    }

    #[test]
    fn lag_rows_join_offsets_ends_and_owners() {
        let group = GroupDescription {
            group: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![GroupMember {
                member_id: "m1".into(),
                instance_id: None,
                client_id: "c".into(),
                host: "/127.0.0.1".into(),
                assignment: BTreeMap::from([("a".to_string(), vec![1])]),
            }],
        };
        let committed = BTreeMap::from([(tp("a", 0), 4)]);
        let ends = BTreeMap::from([(tp("a", 0), 10), (tp("a", 1), 3)]);
        assert_eq!(
            lag_rows(&group, &committed, &ends),
            [
                LagRow { topic: "a".into(), partition: 0, committed: Some(4), log_end: Some(10), lag: Some(6), member: None },
                LagRow {
                    topic: "a".into(),
                    partition: 1,
                    committed: None,
                    log_end: Some(3),
                    lag: None,
                    member: Some("m1".into())
                },
            ]
        );
    }
}
