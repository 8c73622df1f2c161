//! A segment's open `.log` file and the batch-header scans over it. How many of its bytes readers may see is
//! the segment's published size ([`crate::segment::LogSegment::size`]).
//!
//! The file handle is shared (`Arc`) with in-flight read ranges, so a segment that retention deletes or that
//! is closed for being idle meanwhile stays readable through its open descriptor until the last range is dropped.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::error::{Result, StorageError};

#[derive(Debug)]
pub struct FileRecords {
    path: PathBuf,
    file: File,
}

impl FileRecords {
    pub(crate) fn new(path: PathBuf, file: File) -> FileRecords {
        FileRecords { path, file }
    }

    /// Path at open time (a deleted segment's file is renamed, but reads go through the descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The file's length now (fstat): the published data, and in an active mmap-mode segment also its
    /// preallocated tail.
    pub fn file_len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    /// Reads exactly `buf.len()` bytes at `position` (the copy path and recovery).
    pub fn read_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file.read_exact_at(buf, position).map_err(|e| StorageError::io("read", &self.path, e))
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| StorageError::io("fdatasync", &self.path, e))
    }

    /// `read_at`, or with [`ReadIo::NoWait`] `StorageError::WouldBlock` unless every byte is in the page cache
    /// now (preadv2 with RWF_NOWAIT: no disk read is started and none in flight is waited for).
    pub fn read_at_io(&self, buf: &mut [u8], position: u64, io: ReadIo) -> Result<()> {
        if io == ReadIo::Wait || buf.is_empty() {
            return self.read_at(buf, position);
        }
        let iov = nix::libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: one iovec over `buf`, which outlives the call.
        let n = unsafe { nix::libc::preadv2(self.file.as_raw_fd(), &iov, 1, position as i64, nix::libc::RWF_NOWAIT) };
        match n {
            n if n >= 0 && n as usize == buf.len() => Ok(()),
            // A short read or EAGAIN: part is not cached. EOPNOTSUPP (a file system without RWF_NOWAIT): unknown,
            // so the caller reads it where waiting is allowed.
            n if n >= 0 => Err(StorageError::WouldBlock),
            _ => match std::io::Error::last_os_error() {
                e if matches!(e.raw_os_error(), Some(nix::libc::EAGAIN | nix::libc::EOPNOTSUPP)) => Err(StorageError::WouldBlock),
                e => Err(StorageError::io("read", &self.path, e)),
            },
        }
    }

    /// Batch headers from `position` up to `end`, reading ahead in chunks so small batches cost one read per chunk.
    pub(crate) fn headers(&self, position: u64, end: u64, io: ReadIo) -> HeaderScan<'_> {
        HeaderScan { records: self, position, end, io, buf: Vec::new(), buf_start: 0 }
    }
}

impl AsRawFd for FileRecords {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for FileRecords {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether a read may wait for the disk. A network thread reads with `NoWait` and, on
/// `StorageError::WouldBlock`, reads again with `Wait` on a thread that may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadIo {
    Wait,
    NoWait,
}

/// About one index interval: a lookup scans at most that far from its index entry.
const SCAN_CHUNK: usize = 4096 + crate::batch::HEADER_SIZE;

/// Iterates `(position, header)` over whole batches in `[position, end)`. A batch that does not fit before
/// `end` or whose header is malformed ends the scan with a `CorruptLog` error: below the published size that
/// means the file changed under us or an index pointed into the middle of a batch.
pub(crate) struct HeaderScan<'a> {
    records: &'a FileRecords,
    position: u64,
    end: u64,
    io: ReadIo,
    buf: Vec<u8>,
    buf_start: u64,
}

impl HeaderScan<'_> {
    fn header_bytes(&mut self) -> Result<&[u8]> {
        let in_buf =
            self.position >= self.buf_start && self.position + HEADER_SIZE as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let len = (self.end - self.position).min(SCAN_CHUNK as u64) as usize;
            self.buf.resize(len, 0);
            self.records.read_at_io(&mut self.buf, self.position, self.io)?;
            self.buf_start = self.position;
        }
        let at = (self.position - self.buf_start) as usize;
        Ok(&self.buf[at..at + HEADER_SIZE])
    }

    fn corrupt(&self, reason: String) -> StorageError {
        StorageError::CorruptLog { path: self.records.path.clone(), position: self.position, reason }
    }
}

impl Iterator for HeaderScan<'_> {
    type Item = Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.end {
            return None;
        }
        if self.end - self.position < HEADER_SIZE as u64 {
            let err = self.corrupt(format!("{} trailing bytes are not a batch", self.end - self.position));
            self.position = self.end;
            return Some(Err(err));
        }
        let header = match self.header_bytes() {
            Ok(bytes) => BatchHeader::parse(bytes).expect("HEADER_SIZE bytes"),
            Err(e) => {
                self.position = self.end;
                return Some(Err(e));
            }
        };
        let size = header.size() as u64;
        if header.magic != crate::batch::MAGIC_V2 || size < HEADER_SIZE as u64 || self.position + size > self.end {
            let err = self.corrupt(format!("bad batch header {header:?}"));
            self.position = self.end;
            return Some(Err(err));
        }
        let at = self.position;
        self.position += size;
        Some(Ok((at, header)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_wait_read_fails_on_evicted_bytes_and_succeeds_once_they_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        std::fs::write(&path, vec![3u8; 1 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        nix::fcntl::posix_fadvise(&file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
        let records = FileRecords::new(path, file);
        let mut buf = vec![0u8; 4096];
        assert!(matches!(records.read_at_io(&mut buf, 8192, ReadIo::NoWait), Err(StorageError::WouldBlock)));
        records.read_at_io(&mut buf, 8192, ReadIo::Wait).unwrap();
        buf.fill(0);
        records.read_at_io(&mut buf, 8192, ReadIo::NoWait).unwrap();
        assert_eq!(buf, vec![3u8; 4096]);
    }
}
