//! Cold reads (issue 19): a fetch of segments evicted from the page cache must not stall the other connections
//! of the broker, and its response must be the same bytes as the warm one, in both fetch modes. The broker runs
//! on one worker thread, so a worker blocked on the disk would stop every other connection; the clients run on
//! their own threads with blocking sockets, outside the broker's runtime.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{create_topic, fetch_request, produce, record_batch, Client, TestBroker};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, FetchResponse};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use strata_storage::PageCacheProbe;
use uuid::Uuid;

const TOPIC: &str = "cold";
const FETCH_VERSION: i16 = 12;

/// A data directory on the build's disk: DONTNEED cannot evict a tmpfs.
fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Appends `batches` batches of `records` 1000-byte records to partition 0 of TOPIC (created here).
async fn fill(b: &TestBroker, batches: usize, records: usize) {
    let mut c = b.client().await;
    create_topic(&mut c, TOPIC, 1, &[]).await;
    for i in 0..batches {
        // Batch sizes vary, so fetches end inside and at the ends of batches.
        let p = produce(&mut c, TOPIC, 0, record_batch(records - i % 7, 1000, 1_700_000_000_000 + i as i64)).await;
        assert_eq!(p.error_code, 0);
    }
}

/// Writes the partition's segment back to disk and drops it from the page cache, as an old segment would be.
fn evict(dir: &Path) {
    let path = dir.join(format!("{TOPIC}-0")).join("00000000000000000000.log");
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
    let len = f.metadata().unwrap().len();
    let resident = PageCacheProbe::detect().probe(&f, 0, len).unwrap().resident_bytes;
    assert!(resident < len / 10, "{} could not be evicted ({resident} of {len} bytes still cached)", path.display());
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).unwrap();
    frame
}

/// One fetch of up to `max_bytes` from offset 0, sent by a blocking client: the response frame (without the size
/// prefix) and when the request went out and the response was in.
fn fetch(addr: std::net::SocketAddr, request: &[u8]) -> (Vec<u8>, Instant, Instant) {
    let mut s = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    s.write_all(request).unwrap();
    let frame = read_frame(&mut s);
    (frame, start, Instant::now())
}

async fn fetch_request_bytes(b: &TestBroker, max_bytes: i32) -> Vec<u8> {
    let mut req = fetch_request(TOPIC, Uuid::nil(), 0, 0).with_max_bytes(max_bytes);
    req.topics[0].partitions[0].partition_max_bytes = max_bytes;
    b.client().await.encode(ApiKey::Fetch, FETCH_VERSION, &req)
}

/// While a cold fetch of `max_bytes` is in progress on one connection, another connection sends ApiVersions
/// requests one after another: how many of them were answered between the fetch's request and its response.
async fn answered_during_cold_fetch(b: &TestBroker, max_bytes: i32) -> usize {
    let fetch_req = fetch_request_bytes(b, max_bytes).await;
    let ping = b.client().await.encode(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let addr = b.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            let mut answered = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                s.write_all(&ping).unwrap();
                read_frame(&mut s);
                answered.push(Instant::now());
            }
            answered
        }
    });
    let (frame, start, end) = tokio::task::spawn_blocking(move || {
        // Once the other connection is being answered.
        std::thread::sleep(std::time::Duration::from_millis(100));
        fetch(addr, &fetch_req)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = pinger.join().unwrap();
    let (_, resp) = Client::decode::<FetchResponse>(ApiKey::Fetch, FETCH_VERSION, frame.into());
    let records = resp.responses[0].partitions[0].records.as_ref().map_or(0, |r| r.len());
    assert!(records > max_bytes as usize / 2, "the fetch returned {records} bytes");
    answered.iter().filter(|t| **t > start && **t < end).count()
}

/// Bytes the broker's only worker thread read from storage (its /proc io accounting): the disk reads that
/// thread waited for, and every other connection with it.
async fn worker_disk_read_bytes() -> u64 {
    tokio::spawn(async {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines().find_map(|l| l.strip_prefix("read_bytes: ")).unwrap().trim().parse().unwrap()
    })
    .await
    .unwrap()
}

/// Counts, not times: the worker thread reads (next to) nothing from disk for a fetch of a 64 MiB evicted range
/// (without the warm-up it reads all of it, in sendfile or pread), and another connection keeps being answered
/// during the fetch (hundreds of times on an idle machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_cold_fetch_does_not_stall_other_connections() {
    const MIN_ANSWERED: usize = 10;
    const FETCH_BYTES: i32 = 64 << 20;
    let mut dir = data_dir();
    for (i, mode) in ["sendfile", "copy"].into_iter().enumerate() {
        let b = TestBroker::start_in(dir, &[("fetch.mode", mode), ("fetch.warmup.enable", "true")]).await;
        if i == 0 {
            fill(&b, 64, 1024).await;
        }
        evict(b.dir.path());
        let cold_before = b.broker.as_ref().unwrap().state().metrics.warmup.cold_fetches.get();
        let read_before = worker_disk_read_bytes().await;
        let answered = answered_during_cold_fetch(&b, FETCH_BYTES).await;
        let worker_read = worker_disk_read_bytes().await - read_before;
        let cold = b.broker.as_ref().unwrap().state().metrics.warmup.cold_fetches.get() - cold_before;
        eprintln!("{mode}: the worker read {worker_read} bytes from disk; {answered} requests of another connection answered");
        assert!(worker_read < FETCH_BYTES as u64 / 16, "{mode}: the network thread read {worker_read} bytes from disk");
        assert!(
            answered >= MIN_ANSWERED,
            "{mode}: only {answered} requests of another connection were answered during a cold fetch"
        );
        assert_eq!(cold, 1, "{mode}: the fetch found its range cold");
        dir = b.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn cold_and_warm_fetch_responses_are_the_same_bytes_in_both_modes() {
    let mut dir = data_dir();
    let mut frames = Vec::new();
    for (i, mode) in ["sendfile", "copy"].into_iter().enumerate() {
        let b = TestBroker::start_in(dir, &[("fetch.mode", mode), ("fetch.warmup.enable", "true")]).await;
        if i == 0 {
            fill(&b, 24, 300).await;
        }
        evict(b.dir.path());
        // A limit inside the log: the response ends at a batch boundary before it.
        let req = fetch_request_bytes(&b, 5 << 20).await;
        let cold_before = b.broker.as_ref().unwrap().state().metrics.warmup.cold_fetches.get();
        for _ in 0..2 {
            let addr = b.addr;
            let req = req.clone();
            let (frame, _, _) = tokio::task::spawn_blocking(move || fetch(addr, &req)).await.unwrap();
            frames.push((mode, frame));
        }
        let cold = b.broker.as_ref().unwrap().state().metrics.warmup.cold_fetches.get() - cold_before;
        assert_eq!(cold, 1, "{mode}: the first fetch was cold, the second warm");
        dir = b.stop().await;
    }
    let (_, first) = &frames[0];
    assert!(first.len() > 4 << 20, "{} bytes", first.len());
    for (mode, frame) in &frames[1..] {
        assert!(frame == first, "{mode}: a response differs from the cold sendfile one");
    }
}
