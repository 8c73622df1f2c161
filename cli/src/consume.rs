//! `strata consume TOPIC`: reads with librdkafka, in a group (subscribe; offsets committed) or from chosen
//! partitions (assign), printing each record through a kcat-style template or as a JSON line.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use strata_client::admin::OffsetSpec;

use crate::options::Options;
use crate::progress::Progress;
use crate::template::{RecordView, Template, HELP};
use crate::Outcome;

#[derive(clap::Args)]
#[command(after_help = format!("Format tokens: {HELP}"))]
pub struct Args {
    topic: String,
    /// Where to start: beginning, end, OFFSET, -N (N before the end) or @MS (the first record at or after
    /// this time, milliseconds since the epoch). With --group: where a group without committed offsets
    /// starts (beginning or end).
    #[arg(short, long, default_value = "beginning", value_parser = parse_start, allow_hyphen_values = true)]
    offset: Start,
    /// Consume as a member of this group (partitions assigned by the group; offsets committed).
    #[arg(short, long, conflicts_with = "partitions")]
    group: Option<String>,
    /// Read only these partitions (repeatable; default: all).
    #[arg(short, long = "partition")]
    partitions: Vec<i32>,
    /// Record template (kcat's -f), e.g. '%k\t%s\n'.
    #[arg(short = 'f', long, default_value = "%s\\n")]
    template: String,
    /// Stop after this many records.
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop at the end of the partitions instead of waiting for new records.
    #[arg(short = 'e', long)]
    exit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
    Offset(i64),
    /// N records before the end.
    Tail(i64),
    Timestamp(i64),
}

pub fn parse_start(s: &str) -> Result<Start, String> {
    let number = |n: &str| n.parse::<i64>().ok().filter(|n| *n >= 0);
    let bad = || format!("{s:?}: expected beginning, end, OFFSET, -N or @MS");
    Ok(match s {
        "beginning" | "start" | "oldest" => Start::Beginning,
        "end" | "newest" => Start::End,
        _ => match (s.strip_prefix('-'), s.strip_prefix('@')) {
            (Some(n), _) => Start::Tail(number(n).ok_or_else(bad)?),
            (_, Some(ms)) => Start::Timestamp(number(ms).ok_or_else(bad)?),
            _ => Start::Offset(number(s).ok_or_else(bad)?),
        },
    })
}

pub fn run(opts: &Options, runtime: &tokio::runtime::Runtime, args: Args) -> anyhow::Result<Outcome> {
    let template = Template::parse(&args.template).context("--template")?;
    let topic = args.topic.clone();
    let mut assigned = TopicPartitionList::new();
    let consumer: BaseConsumer = match &args.group {
        Some(group) => {
            let reset = match args.offset {
                Start::Beginning => "earliest",
                Start::End => "latest",
                _ => bail!("with --group, --offset is beginning or end (where a group without committed offsets starts)"),
            };
            opts.check_topic(runtime, &topic)?;
            let consumer: BaseConsumer = opts
                // Offsets are stored as records are printed (below), not as librdkafka hands them over.
                .rdkafka_config(&[
                    ("group.id", group),
                    ("auto.offset.reset", reset),
                    ("enable.partition.eof", "true"),
                    ("enable.auto.offset.store", "false"),
                ])
                .create()
                .context("creating the consumer")?;
            consumer.subscribe(&[&topic])?;
            consumer
        }
        None => {
            assigned = runtime.block_on(assignment(opts, &topic, &args.partitions, args.offset))?;
            let consumer: BaseConsumer = opts
                // librdkafka assigns only with a group.id; nothing joins or commits under it.
                .rdkafka_config(&[("group.id", "strata-cli"), ("enable.auto.commit", "false"), ("enable.partition.eof", "true")])
                .create()
                .context("creating the consumer")?;
            consumer.assign(&assigned)?;
            consumer
        }
    };
    let result = consume(&consumer, &assigned, opts.json(), &template, &args);
    if args.group.is_some() {
        // Offsets of what was printed (auto-commit has its interval); nothing stored is fine.
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => eprintln!("error: committing offsets: {e}"),
        }
    }
    result
}

/// Partitions and start offsets for assign mode, from strata-client (unknown topics and partitions are
/// reported as the other commands report them; timestamps become offsets with ListOffsets).
async fn assignment(opts: &Options, topic: &str, only: &[i32], start: Start) -> anyhow::Result<TopicPartitionList> {
    let mut client = opts.client().await?;
    let info = client.topic(topic).await?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    for p in only {
        anyhow::ensure!(all.contains(p), "topic {topic} has no partition {p} (it has {})", all.len());
    }
    let partitions: Vec<(String, i32)> =
        all.into_iter().filter(|p| only.is_empty() || only.contains(p)).map(|p| (topic.to_string(), p)).collect();
    let by_time = match start {
        Start::Timestamp(ms) => client.list_offsets(&partitions, OffsetSpec::Timestamp(ms)).await?,
        _ => Default::default(),
    };
    let mut list = TopicPartitionList::new();
    for tp in &partitions {
        let offset = match start {
            Start::Beginning => Offset::Beginning,
            Start::End => Offset::End,
            Start::Offset(o) => Offset::Offset(o),
            Start::Tail(n) => Offset::OffsetTail(n),
            // -1: no record that late, so only new ones.
            Start::Timestamp(_) => by_time.get(tp).copied().filter(|o| *o >= 0).map_or(Offset::End, Offset::Offset),
        };
        list.add_partition_offset(topic, tp.1, offset)?;
    }
    Ok(list)
}

/// `assigned`: the partitions of assign mode (empty with a group).
fn consume(
    consumer: &BaseConsumer,
    assigned: &TopicPartitionList,
    json: bool,
    template: &Template,
    args: &Args,
) -> anyhow::Result<Outcome> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut progress = Progress::new("consumed", args.count);
    let mut at_end: BTreeSet<i32> = BTreeSet::new();
    let mut seen = 0u64;
    let mut buf = Vec::new();
    while args.count.is_none_or(|c| seen < c) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                buf.clear();
                if json {
                    serde_json::to_writer(&mut buf, &json_line(&m))?;
                    buf.push(b'\n');
                } else {
                    template.render(&view(&m), &mut buf);
                }
                if let Err(e) = out.write_all(&buf) {
                    // A closed pipe (`| head`) ends the run quietly.
                    return if e.kind() == ErrorKind::BrokenPipe { Ok(Outcome::Ok) } else { Err(e.into()) };
                }
                if args.group.is_some() {
                    consumer.store_offset_from_message(&m)?;
                }
                seen += 1;
                progress.update(seen);
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => bail!("consuming {}: {e}", args.topic),
        }
        // Idle or at a partition's end: show what we have, and stop if everything is read.
        let _ = out.flush();
        if args.exit {
            // Without a group librdkafka knows no assignment: it is what we assigned.
            let assigned = match &args.group {
                Some(_) => consumer.assignment()?,
                None => assigned.clone(),
            };
            if assigned.count() > 0 && assigned.elements().iter().all(|e| at_end.contains(&e.partition())) {
                break;
            }
        }
    }
    progress.finish();
    match out.flush() {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Outcome::Ok),
    }
}

fn headers<'a>(m: &'a BorrowedMessage) -> Vec<(&'a str, Option<&'a [u8]>)> {
    m.headers().map(|h| h.iter().map(|h| (h.key, h.value)).collect()).unwrap_or_default()
}

fn view<'a>(m: &'a BorrowedMessage) -> RecordView<'a> {
    RecordView {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp: m.timestamp().to_millis(),
        key: m.key(),
        value: m.payload(),
        headers: headers(m),
    }
}

/// One record as JSON, in the shape `produce --json` reads (plus where it was); bytes that are not UTF-8
/// are replaced.
fn json_line(m: &BorrowedMessage) -> serde_json::Value {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: serde_json::Map<String, serde_json::Value> =
        headers(m).into_iter().map(|(k, v)| (k.to_string(), text(v).into())).collect();
    serde_json::json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
        "key": text(m.key()),
        "value": text(m.payload()),
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions() {
        assert_eq!(parse_start("beginning"), Ok(Start::Beginning));
        assert_eq!(parse_start("end"), Ok(Start::End));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert_eq!(parse_start("-3"), Ok(Start::Tail(3)));
        assert_eq!(parse_start("@1700000000000"), Ok(Start::Timestamp(1700000000000)));
        for bad in ["", "x", "--1", "@", "@-5", "1.5"] {
            assert!(parse_start(bad).is_err(), "{bad}");
        }
    }
}
