//! Cold-read warm-up: before a response frame is written, its file ranges that are not fully in the page cache
//! are read into it on a bounded set of blocking threads, so that sendfile(2) (or the copy path) on the network
//! worker finds them resident and never waits for the disk. A consumer catching up on evicted segments then
//! delays only its own responses, not every connection served by the same worker (Kafka's KAFKA-7504, fixed at
//! LINE the same way). Resident ranges cost a page-cache probe (two for a consumer catching up, whose read-ahead
//! is kept going) and take the usual path.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use nix::sys::sendfile::sendfile;
use strata_storage::{PageCacheProbe, ProbeMethod};
use tokio::sync::Semaphore;

use crate::frame::{FileSlice, Payload, ResponseFrame};
use crate::metrics::WarmupMetrics;

/// Reads cold ranges into the page cache, and runs the other disk reads of fetches, on at most `num.io.threads`
/// blocking threads; one per broker (BrokerState), present when fetch.warmup.enable is true.
pub struct Warmer {
    /// mincore(2), not cachestat(2): cachestat counts pages whose read is still in flight (readahead of an
    /// earlier fetch) as cached, and sendfile would wait for them; mincore counts only pages holding their data.
    probe: PageCacheProbe,
    /// cachestat(2) where the kernel has it: whether read-ahead bytes are cached or already being read.
    requested: PageCacheProbe,
    /// One permit per read in progress: bounds the threads busy with fetch disk reads.
    permits: Arc<Semaphore>,
    metrics: WarmupMetrics,
    /// Where warm-ups send the ranges they read.
    null: Arc<File>,
}

impl Warmer {
    /// `threads`: how many ranges may be read at once (`num.io.threads`).
    pub fn new(threads: usize, metrics: WarmupMetrics) -> std::io::Result<Warmer> {
        let null = Arc::new(File::options().write(true).open("/dev/null")?);
        let probe = PageCacheProbe::with_method(ProbeMethod::Mincore);
        Ok(Warmer { probe, requested: PageCacheProbe::detect(), permits: Arc::new(Semaphore::new(threads)), metrics, null })
    }

    /// Runs `f`, which may wait for the disk, on a blocking thread once one of the `num.io.threads` permits is
    /// free (a panic in `f` resumes here).
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        done.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Returns once every file range of `frame` is resident. Ranges are warmed one after another: a connection's
    /// responses go out in order anyway, and other connections get the remaining permits. A range that cannot be
    /// probed or read is left to the writer, which fails the connection as it did before.
    pub async fn warm(&self, frame: &ResponseFrame) {
        let mut counted = false;
        for f in frame.parts.iter().filter_map(|p| if let Payload::File(f) = p { Some(f) } else { None }) {
            if !self.is_cold(f) {
                self.keep_reading_ahead(f);
                continue;
            }
            if !counted {
                self.metrics.cold_fetches.inc();
                counted = true;
            }
            let (f, metrics, null) = (f.clone(), self.metrics.clone(), self.null.clone());
            let read = self.run(move || {
                let start = Instant::now();
                let read = read_into_cache(&f, &null);
                metrics.seconds.inc_by(start.elapsed().as_secs_f64());
                metrics.bytes.inc_by(f.len);
                read
            });
            if let Err(e) = read.await {
                tracing::debug!(error = %e, "cold range warm-up failed; the writer will read it");
            }
        }
    }

    /// A consumer fetching what the warm-up read ahead finds its ranges resident and would reach cold data again
    /// only after the disk idled; so when the page halfway into the next READ_AHEAD bytes after a catch-up-sized
    /// range is not even being read (cachestat counts pages in flight), those bytes are requested now, on a free
    /// I/O thread, without waiting (none free: the next cold range reads ahead anyway).
    fn keep_reading_ahead(&self, f: &FileSlice) {
        let next = f.position + f.len + READ_AHEAD / 2;
        if f.len < CATCH_UP_BYTES || next >= f.file.size() {
            return;
        }
        if self.requested.probe(&f.file.fd(), next, 1).is_ok_and(|r| r.resident_bytes > 0) {
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else { return };
        let f = f.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _ = posix_fadvise(f.file.fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM);
            let _ = will_need(&f, f.position + f.len, READ_AHEAD);
        });
    }

    fn is_cold(&self, f: &FileSlice) -> bool {
        f.len > 0 && self.probe.probe(&f.file.fd(), f.position, f.len).is_ok_and(|r| r.resident_bytes < r.total_bytes)
    }
}

/// Bytes read ahead after a cold range, for the next fetches of a catching-up consumer, so the disk stays busy
/// (a consumer that stops there leaves this much unused cache). Enough for a disk of a few hundred MB/s; on a
/// disk of GB/s a catching-up consumer gets about two thirds of what the kernel's readahead gave it (BENCHMARKS.md).
const READ_AHEAD: u64 = 32 << 20;

/// Ranges at least this long are a consumer catching up (tail reads are small), whose read-ahead is kept going.
const CATCH_UP_BYTES: u64 = 1 << 20;

/// Reads the range into the page cache by sending it to /dev/null with sendfile(2): the call returns once the
/// pages hold their data, and /dev/null takes them without copying them anywhere (no buffer, no memcpy).
///
/// The file is first marked POSIX_FADV_RANDOM, which stops the kernel's own readahead on it (for every reader of
/// this descriptor, the network threads' sendfile included): readahead leaves marks on the pages it reads, and a
/// sendfile reaching a mark starts the next readahead itself, on the network thread, where it was measured to
/// wait for the disk as before. The readahead is done here instead: WILLNEED queues the range so the disk sees
/// large requests, and READ_AHEAD bytes after it keep the disk busy while this response is sent and the
/// consumer asks for the next ones.
fn read_into_cache(f: &FileSlice, null: &File) -> std::io::Result<()> {
    let fd = f.file.fd();
    let (start, end) = (f.position, f.position + f.len);
    posix_fadvise(fd, 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM)?;
    will_need(f, start, f.len)?;
    let mut offset = start as i64;
    while (offset as u64) < end {
        let count = (end - offset as u64) as usize;
        if sendfile(null, fd, Some(&mut offset), count)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    will_need(f, end, READ_AHEAD)
}

/// POSIX_FADV_WILLNEED in steps the kernel reads in full (it reads at most the device's readahead or request
/// size per call, as little as 128 KiB, and ignores the rest).
fn will_need(f: &FileSlice, from: u64, len: u64) -> std::io::Result<()> {
    const STEP: u64 = 128 << 10;
    let mut at = from;
    while at < from + len {
        posix_fadvise(f.file.fd(), at as i64, STEP.min(from + len - at) as i64, PosixFadviseAdvice::POSIX_FADV_WILLNEED)?;
        at += STEP;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use bytes::Bytes;

    use crate::frame::RecordsFile;
    use crate::metrics::Metrics;

    const CHUNK: usize = 1 << 20;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn evicted_ranges_become_resident_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![5u8; 3 * CHUNK + 123]).unwrap();
        f.sync_all().unwrap();
        posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        let file: Arc<dyn RecordsFile> = Arc::new(std::fs::File::open(&path).unwrap());
        let probe = PageCacheProbe::with_method(ProbeMethod::Mincore);
        let metrics = Metrics::new(None);
        let warmer = Warmer::new(2, metrics.warmup.clone()).unwrap();
        let range = |position, len| Payload::File(FileSlice { file: file.clone(), position, len });
        let frame =
            ResponseFrame { parts: vec![Payload::Bytes(Bytes::from_static(b"head")), range(10, 2 * CHUNK as u64), range(0, 0)] };
        assert!(probe.probe(&file.fd(), 10, 2 * CHUNK as u64).unwrap().resident_bytes < 2 * CHUNK as u64);
        warmer.warm(&frame).await;
        let r = probe.probe(&file.fd(), 10, 2 * CHUNK as u64).unwrap();
        assert_eq!(r.resident_bytes, r.total_bytes);
        assert_eq!((metrics.warmup.cold_fetches.get(), metrics.warmup.bytes.get()), (1, 2 * CHUNK as u64));
        // Resident now: nothing more to do or count.
        warmer.warm(&frame).await;
        assert_eq!((metrics.warmup.cold_fetches.get(), metrics.warmup.bytes.get()), (1, 2 * CHUNK as u64));
        assert!(metrics.warmup.seconds.get() > 0.0);
    }
}
