//! `strata produce TOPIC`: records from stdin, one per line (optionally `KEY<SEP>VALUE`) or one JSON object
//! per line, written with librdkafka (its partitioner, batching, compression and retries).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::options::{parse_key_value, Options};
use crate::progress::Progress;
use crate::template::unescape;
use crate::{table, Outcome};

#[derive(clap::Args)]
pub struct Args {
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP have no key); escapes such
    /// as \t work.
    #[arg(short = 'K', long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Each line is a JSON object: {"key": "...", "value": "...", "headers": {"k": "v"}, "partition": 0}; all
    /// fields optional, null key/value for none.
    #[arg(short, long, conflicts_with = "key_separator")]
    json: bool,
    /// A header for every record (repeatable).
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write to this partition (default: Kafka's partitioner, by key).
    #[arg(short, long)]
    partition: Option<i32>,
    #[arg(short = 'z', long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Acknowledgements to wait for: all (-1), 1 (the leader) or 0 (none).
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "0", "1"], allow_hyphen_values = true)]
    acks: String,
}

/// A header's key and value (None: a null value).
pub type RecordHeader = (String, Option<Vec<u8>>);

/// One record to write.
#[derive(Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    #[serde(default, with = "opt_text")]
    pub key: Option<Vec<u8>>,
    #[serde(default, with = "opt_text")]
    pub value: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "headers_text")]
    pub headers: Vec<RecordHeader>,
    #[serde(default)]
    pub partition: Option<i32>,
}

/// JSON strings as bytes.
mod opt_text {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(String::into_bytes))
    }
}

fn headers_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<RecordHeader>, D::Error> {
    let map: BTreeMap<String, Option<String>> = serde::Deserialize::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.map(String::into_bytes))).collect())
}

/// A line (without its newline) as a record: `KEY<SEP>VALUE` with a separator, else all value.
pub fn parse_line(line: &[u8], separator: Option<&[u8]>) -> Record {
    let split = separator.filter(|s| !s.is_empty()).and_then(|sep| {
        let at = line.windows(sep.len()).position(|w| w == sep)?;
        Some((line[..at].to_vec(), line[at + sep.len()..].to_vec()))
    });
    match split {
        Some((key, value)) => Record { key: Some(key), value: Some(value), ..Record::default() },
        None => Record { value: Some(line.to_vec()), ..Record::default() },
    }
}

pub fn parse_json(line: &[u8]) -> anyhow::Result<Record> {
    Ok(serde_json::from_slice(line)?)
}

/// Counts deliveries; keeps the first failure to report.
#[derive(Default)]
struct Deliveries {
    state: Mutex<(u64, u64, Option<String>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut state = self.state.lock().expect("never poisoned");
        match result {
            Ok(_) => state.0 += 1,
            Err((e, _)) => {
                state.1 += 1;
                state.2.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub fn run(opts: &Options, runtime: &tokio::runtime::Runtime, args: Args) -> anyhow::Result<Outcome> {
    opts.check_topic(runtime, &args.topic)?;
    let common: Vec<RecordHeader> = args
        .headers
        .iter()
        .map(|kv| parse_key_value(kv).map(|(k, v)| (k, Some(v.into_bytes()))).with_context(|| format!("--header {kv}")))
        .collect::<Result<_, _>>()?;
    let separator = args.key_separator.as_deref().map(unescape);
    let producer: BaseProducer<Deliveries> = opts
        .rdkafka_config(&[("acks", &args.acks), ("compression.codec", &args.compression), ("message.timeout.ms", "30000")])
        .create_with_context(Deliveries::default())
        .context("creating the producer")?;

    let mut progress = Progress::new("produced", None);
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).context("reading stdin")? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let mut record = if args.json {
            parse_json(&line).with_context(|| format!("line {}: not a record object", sent + 1))?
        } else {
            parse_line(&line, separator.as_deref())
        };
        record.headers.extend(common.iter().cloned());
        send(&producer, &args, &record)?;
        sent += 1;
        progress.update(sent);
    }
    producer.flush(rdkafka::util::Timeout::Never).context("flushing")?;
    progress.finish();
    let (delivered, failed, first_error) = producer.context().state.lock().expect("never poisoned").clone();
    if let Some(e) = first_error {
        bail!("{failed} of {sent} records were not written; the first error: {e}");
    }
    if opts.json() {
        print!("{}", table::json(&serde_json::json!({"topic": args.topic, "produced": delivered})));
    } else {
        println!("produced {delivered} records to {}", args.topic);
    }
    Ok(Outcome::Ok)
}

/// Queues one record, waiting while librdkafka's queue is full.
fn send(producer: &BaseProducer<Deliveries>, args: &Args, record: &Record) -> anyhow::Result<()> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header { key, value: value.as_deref() });
    }
    let mut base = BaseRecord::to(&args.topic).headers(headers);
    if let Some(key) = &record.key {
        base = base.key(key);
    }
    if let Some(value) = &record.value {
        base = base.payload(value);
    }
    if let Some(p) = record.partition.or(args.partition) {
        base = base.partition(p);
    }
    loop {
        match producer.send(base) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base = back;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => bail!("producing to {}: {e}", args.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let r = parse_line(b"k1\tv\t1", Some(b"\t"));
        assert_eq!((r.key.as_deref(), r.value.as_deref()), (Some(&b"k1"[..]), Some(&b"v\t1"[..])));
        let r = parse_line(b"no separator", Some(b"::"));
        assert_eq!((r.key, r.value.as_deref()), (None, Some(&b"no separator"[..])));
        let r = parse_line(b"::v", Some(b"::"));
        assert_eq!((r.key.as_deref(), r.value.as_deref()), (Some(&b""[..]), Some(&b"v"[..])));
        assert_eq!(parse_line(b"", None).value.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn json_records() {
        let r = parse_json(br#"{"key":"k","value":"v","headers":{"h":"1","n":null},"partition":2}"#).unwrap();
        assert_eq!(
            r,
            Record {
                key: Some(b"k".to_vec()),
                value: Some(b"v".to_vec()),
                headers: vec![("h".into(), Some(b"1".to_vec())), ("n".into(), None)],
                partition: Some(2)
            }
        );
        assert_eq!(parse_json(br#"{"value":null}"#).unwrap(), Record::default());
        assert!(parse_json(br#"{"valeu":"typo"}"#).is_err());
        assert!(parse_json(b"plain text").is_err());
    }
}
