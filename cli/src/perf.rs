//! `strata perf produce TOPIC`: a load generator like Kafka's producer-perf-test, with librdkafka. At a
//! fixed rate, each record is due at `start + i / rate` and its latency counts from then, not from when
//! it was handed to the client: a stalled broker or a full client queue shows as latency instead of
//! hiding as a lower send rate (coordinated omission).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::options::Options;
use crate::{table, Outcome};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write generated records at a fixed rate (or as fast as possible) and report throughput and the
    /// latency percentiles of their acknowledgements.
    Produce(ProduceArgs),
}

#[derive(clap::Args)]
pub struct ProduceArgs {
    topic: String,
    /// Records to write.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    records: u64,
    /// Value size in bytes (no key).
    #[arg(short, long, default_value_t = 1024)]
    size: usize,
    /// Records per second; 0 writes as fast as the client can.
    #[arg(short, long, default_value_t = 0)]
    rate: u64,
    /// Acknowledgements to wait for: all (-1), 1 (the leader) or 0 (none).
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "0", "1"], allow_hyphen_values = true)]
    acks: String,
}

/// When record `i` is due, in nanoseconds after the start, at `rate` records per second.
pub fn due_ns(i: u64, rate: u64) -> u64 {
    u64::try_from(u128::from(i) * 1_000_000_000 / u128::from(rate.max(1))).unwrap_or(u64::MAX)
}

/// The `q` quantile (0..=1) of sorted values, by nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latencies (µs) of acknowledged records and the failures, measured in the delivery callback from
/// `start`.
struct Stats {
    start: Instant,
    latencies: Vec<u64>,
    failed: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new(start: Instant, records: u64) -> Stats {
        Stats { start, latencies: Vec::with_capacity(records as usize), failed: 0, first_error: None }
    }
}

struct Latencies(Mutex<Stats>);

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    /// When the record was due, in µs after the start.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, due_us: usize) {
        let mut stats = self.0.lock().expect("never poisoned");
        let now_us = stats.start.elapsed().as_micros() as u64;
        match result {
            Ok(_) => stats.latencies.push(now_us.saturating_sub(due_us as u64)),
            Err((e, _)) => {
                stats.failed += 1;
                stats.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub fn run(opts: &Options, runtime: &tokio::runtime::Runtime, command: Command) -> anyhow::Result<Outcome> {
    let Command::Produce(args) = command;
    opts.check_topic(runtime, &args.topic)?;
    let context = Latencies(Mutex::new(Stats::new(Instant::now(), 0)));
    // A thread of its own serves the delivery callbacks, so an acknowledgement is timed when it arrives.
    let producer: ThreadedProducer<Latencies> = opts
        .rdkafka_config(&[("acks", &args.acks), ("linger.ms", "0"), ("message.timeout.ms", "60000")])
        .create_with_context(context)
        .context("creating the producer")?;
    // Bytes that do not compress, as real payloads rarely do (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let value: Vec<u8> = (0..args.size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();

    // One record first, so connecting and fetching metadata are not counted as latency.
    producer.send::<(), [u8]>(BaseRecord::with_opaque_to(&args.topic, 0).payload(&value[..])).map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30)).context("writing the first record")?;
    let start = Instant::now();
    *producer.context().0.lock().expect("never poisoned") = Stats::new(start, args.records);
    for i in 0..args.records {
        let due_us = if args.rate > 0 {
            let due = start + Duration::from_nanos(due_ns(i, args.rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            due.duration_since(start).as_micros() as usize
        } else {
            start.elapsed().as_micros() as usize
        };
        let mut record = BaseRecord::with_opaque_to(&args.topic, due_us).payload(&value[..]);
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("producing to {}: {e}", args.topic),
            }
        }
    }
    producer.flush(rdkafka::util::Timeout::Never).context("flushing")?;
    let elapsed = start.elapsed();
    let Stats { mut latencies, failed, first_error, .. } =
        std::mem::replace(&mut *producer.context().0.lock().expect("never poisoned"), Stats::new(start, 0));
    latencies.sort_unstable();
    let acked = latencies.len() as u64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| quantile(&latencies, q) as f64 / 1000.0;
    let report = serde_json::json!({
        "topic": args.topic,
        "records": args.records,
        "acked": acked,
        "failed": failed,
        "seconds": secs,
        "records_per_sec": acked as f64 / secs,
        "mb_per_sec": (acked * args.size as u64) as f64 / secs / 1e6,
        "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0)},
        "rate": args.rate,
        "size": args.size,
        "acks": args.acks,
    });
    if opts.json() {
        print!("{}", table::json(&report));
    } else {
        println!(
            "{acked} records acked in {secs:.2} s: {:.0} records/s, {:.2} MB/s; latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            acked as f64 / secs,
            (acked * args.size as u64) as f64 / secs / 1e6,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            ms(1.0)
        );
    }
    if let Some(e) = first_error {
        eprintln!("{failed} of {} records failed; the first error: {e}", args.records);
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_due_on_a_fixed_schedule() {
        // (record, rate, due ns)
        for (i, rate, want) in
            [(0, 1000, 0), (1, 1000, 1_000_000), (3, 3, 1_000_000_000), (1, 3, 333_333_333), (5, 0, 5_000_000_000)]
        {
            assert_eq!(due_ns(i, rate), want, "{i} at {rate}/s");
        }
        assert_eq!(due_ns(u64::MAX, 1), u64::MAX, "saturates");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        // (quantile, value)
        for (q, want) in [(0.5, 50), (0.99, 99), (0.999, 100), (1.0, 100), (0.0, 1), (0.01, 1)] {
            assert_eq!(quantile(&v, q), want, "{q}");
        }
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }
}
