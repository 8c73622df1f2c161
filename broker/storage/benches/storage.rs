//! Storage engine benchmark: append throughput and latency (write vs mmap mode, with and without a flush per
//! batch) next to this machine's raw sequential write() baseline on the same disk, read-range lookup latency,
//! and startup time with 1,000 segments (clean vs after a crash).
//!
//! Run: `cargo bench -p strata-storage --bench storage` (env: STRATA_BENCH_MB=512 per append run,
//! STRATA_BENCH_DIR=<dir on the disk to measure>, default the system temp dir).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_storage::test_util::{encode_batch, Compression};
use strata_storage::{LogConfig, LogManager, LogManagerConfig, TopicPartition, WriteMode};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

struct Stats {
    bytes: u64,
    ops: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Stats {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64()
    }
    fn ops_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> f64 {
        self.latencies_ns.sort_unstable();
        let i = ((self.latencies_ns.len() as f64 * p) as usize).min(self.latencies_ns.len() - 1);
        self.latencies_ns[i] as f64 / 1000.0
    }
}

/// Runs `op` until `bytes_total` bytes or `max_time` pass; `op` returns the bytes it wrote.
fn measure(bytes_total: u64, max_time: Duration, mut op: impl FnMut() -> u64) -> Stats {
    let start = Instant::now();
    let mut stats = Stats { bytes: 0, ops: 0, elapsed: Duration::ZERO, latencies_ns: Vec::new() };
    while stats.bytes < bytes_total && start.elapsed() < max_time {
        let t = Instant::now();
        stats.bytes += op();
        stats.latencies_ns.push(t.elapsed().as_nanos() as u64);
        stats.ops += 1;
    }
    stats.elapsed = start.elapsed();
    stats
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn print_row(name: &str, s: &mut Stats, baseline: Option<f64>) {
    let vs = baseline.map_or(String::from("    -"), |b| format!("{:5.0}%", 100.0 * s.mb_s() / b));
    println!(
        "{name:<44} {:>9.1} MB/s {:>10.0} ops/s  p50 {:>8.1} us  p99 {:>9.1} us  {vs} of raw  RSS {:>6.1} MiB",
        s.mb_s(),
        s.ops_s(),
        s.pct(0.50),
        s.pct(0.99),
        rss_mib()
    );
}

/// Raw sequential write(2) of `chunk`-sized buffers to one file (with fdatasync after each if `sync`).
fn raw_write(dir: &Path, chunk: usize, total: u64, max_time: Duration, sync: bool) -> Stats {
    let path = dir.join("raw.bin");
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&path).unwrap();
    let buf = vec![0x5au8; chunk];
    let stats = measure(total, max_time, || {
        f.write_all(&buf).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
        chunk as u64
    });
    drop(f);
    fs::remove_file(path).unwrap();
    stats
}

fn append_run(dir: &Path, batch: &[u8], mode: WriteMode, total: u64, max_time: Duration, sync: bool) -> Stats {
    let mut c = LogManagerConfig::new(dir);
    c.default_config = LogConfig { write_mode: mode, retention_ms: -1, ..LogConfig::default() };
    let manager = LogManager::open(c).unwrap();
    let log = manager.get_or_create(&TopicPartition::new("bench", 0), manager.default_config().clone()).unwrap();
    let mut buf = batch.to_vec();
    let stats = measure(total, max_time, || {
        log.append_as_leader(&mut buf, 0).unwrap();
        if sync {
            log.flush().unwrap();
        }
        buf.len() as u64
    });
    manager.shutdown().unwrap();
    stats
}

/// A batch of about `size` bytes (uncompressed records, as a producer sends them).
fn batch_of(size: usize) -> Vec<u8> {
    let records = (size / 1024).max(1) * 8;
    let overhead = encode_batch(records, 0, 0, Compression::None).len();
    encode_batch(records, (size.saturating_sub(overhead)) / records, 0, Compression::None)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let root = PathBuf::from(
        std::env::var("STRATA_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().join("strata-storage-bench").display().to_string()),
    );
    let total = env_u64("STRATA_BENCH_MB", 512) << 20;
    let max_time = Duration::from_secs(env_u64("STRATA_BENCH_SECS", 20));
    let sync_time = Duration::from_secs(3);
    fs::create_dir_all(&root).unwrap();
    println!(
        "strata-storage bench: dir {} ({} MiB per run, {} cores)",
        root.display(),
        total >> 20,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("== append (baseline: raw sequential write(2) of the same size, same disk, same run)");
    for size in [1024usize, 16 * 1024] {
        let batch = batch_of(size);
        let dir = fresh_dir(&root, "append");
        let mut raw = raw_write(&dir, batch.len(), total, max_time, false);
        let raw_mb = raw.mb_s();
        print_row(&format!("raw write() {}B", batch.len()), &mut raw, Some(raw_mb));
        for mode in [WriteMode::Write, WriteMode::Mmap] {
            let dir = fresh_dir(&root, "append");
            let mut s = append_run(&dir, &batch, mode, total, max_time, false);
            print_row(&format!("append {}B batches, {mode} mode", batch.len()), &mut s, Some(raw_mb));
        }
        let dir = fresh_dir(&root, "append");
        let mut raw_sync = raw_write(&dir, batch.len(), total, sync_time, true);
        let raw_sync_mb = raw_sync.mb_s();
        print_row(&format!("raw write()+fdatasync {}B", batch.len()), &mut raw_sync, Some(raw_sync_mb));
        for mode in [WriteMode::Write, WriteMode::Mmap] {
            let dir = fresh_dir(&root, "append");
            let mut s = append_run(&dir, &batch, mode, total, sync_time, true);
            print_row(&format!("append {}B + flush per batch, {mode}", batch.len()), &mut s, Some(raw_sync_mb));
        }
    }
    let _ = fs::remove_dir_all(root.join("append"));

    println!();
    println!("== read-range lookup (offset -> file ranges of up to 1 MiB), 1 KiB batches, 64 MiB segments");
    let dir = fresh_dir(&root, "lookup");
    let mut c = LogManagerConfig::new(&dir);
    c.default_config = LogConfig { segment_bytes: 64 << 20, retention_ms: -1, ..LogConfig::default() };
    let manager = LogManager::open(c).unwrap();
    let log = manager.get_or_create(&TopicPartition::new("bench", 0), manager.default_config().clone()).unwrap();
    let batch = batch_of(1024);
    let mut buf = batch.clone();
    for _ in 0..(256 << 20) / batch.len() {
        log.append_as_leader(&mut buf, 0).unwrap();
    }
    let end = log.log_end_offset();
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut s = measure(u64::MAX, Duration::from_secs(3), || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = log.read((x % end as u64) as i64, 1 << 20, i64::MAX).unwrap();
        r.bytes
    });
    println!(
        "read(offset, 1 MiB) over {} segments, {} offsets: {:>10.0} lookups/s  p50 {:>6.1} us  p99 {:>6.1} us",
        log.segment_count(),
        end,
        s.ops_s(),
        s.pct(0.5),
        s.pct(0.99)
    );
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);

    println!();
    println!("== page-cache probe (the broker probes a 64 KiB window of 1 fetched range in 8)");
    let seg = dir.join("probe.bin");
    fs::write(&seg, vec![7u8; 64 << 20]).unwrap();
    let file = fs::File::open(&seg).unwrap();
    let mut raw = [0u8; 64 * 1024];
    let mut read = measure(u64::MAX, Duration::from_secs(2), || {
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut raw, 0).unwrap();
        raw.len() as u64
    });
    println!("baseline: pread of the same 64 KiB (cached)        p50 {:>6.2} us  p99 {:>6.2} us", read.pct(0.5), read.pct(0.99));
    for method in [strata_storage::ProbeMethod::Cachestat, strata_storage::ProbeMethod::Mincore] {
        let probe = strata_storage::PageCacheProbe::with_method(method);
        let mut s = measure(u64::MAX, Duration::from_secs(2), || probe.probe(&file, 0, 64 * 1024).unwrap().resident_bytes);
        println!("{:<50} p50 {:>6.2} us  p99 {:>6.2} us", format!("{} of 64 KiB", method.as_str()), s.pct(0.5), s.pct(0.99));
    }

    println!();
    println!("== startup with 1,000 segments (16 KiB batches, 64 KiB segments)");
    let dir = fresh_dir(&root, "startup");
    let open = |dir: &Path| {
        let mut c = LogManagerConfig::new(dir);
        c.default_config = LogConfig { segment_bytes: 64 << 10, retention_ms: -1, ..LogConfig::default() };
        LogManager::open(c).unwrap()
    };
    let manager = open(&dir);
    let tp = TopicPartition::new("bench", 0);
    let log = manager.get_or_create(&tp, manager.default_config().clone()).unwrap();
    let mut buf = batch_of(16 * 1024);
    while log.segment_count() < 1000 {
        log.append_as_leader(&mut buf, 0).unwrap();
    }
    drop(log);
    manager.shutdown().unwrap();
    drop(manager);
    let t = Instant::now();
    let manager = open(&dir);
    let clean = t.elapsed();
    let log = manager.get(&tp).unwrap();
    println!(
        "clean shutdown marker present: open {} segments in {:>8.1} ms (no scan)",
        log.segment_count(),
        clean.as_secs_f64() * 1e3
    );
    drop(log);
    drop(manager); // crash: no marker, recovery point at the end of the last flush
                   // Forget the recovery point too, so every segment is scanned and its indexes rebuilt.
    fs::write(dir.join("recovery-point-offset-checkpoint"), "0\n0\n").unwrap();
    let t = Instant::now();
    let manager = open(&dir);
    let unclean = t.elapsed();
    let report = manager.load_reports()[&tp].clone();
    println!(
        "after a crash (recovery from offset 0): {} segments recovered in {:>8.1} ms",
        report.recovered_segments,
        unclean.as_secs_f64() * 1e3
    );
    manager.shutdown().unwrap();
    drop(manager);
    let _ = fs::remove_dir_all(&root);
}
