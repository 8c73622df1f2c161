//! Crash recovery of one segment: every batch is checked (structure, CRC-32C, offsets increasing), the
//! indexes are rebuilt, and the log is truncated at the first invalid or torn batch. A preallocated tail of
//! an mmap-mode segment (zeros) ends the scan like a torn write.

use crate::batch::{self, BatchCheck, BatchHeader, HEADER_SIZE};
use crate::error::{Result, StorageError};
use crate::file_records::FileRecords;
use crate::segment::LogSegment;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// Offset after the last valid batch; `None` if the segment holds none.
    pub next_offset: Option<i64>,
    pub valid_bytes: u64,
    pub truncated_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub problem: Option<String>,
}

const READ_CHUNK: usize = 1 << 20;

/// Sequential reads of a file in large chunks, handing out slices.
struct ChunkReader<'a> {
    log: &'a FileRecords,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl ChunkReader<'_> {
    /// Up to `len` bytes at `position` (fewer at the end of the file).
    fn at(&mut self, position: u64, len: usize) -> Result<&[u8]> {
        let want_end = (position + len as u64).min(self.file_len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || want_end > buf_end {
            let read_len = (self.file_len - position).min(len.max(READ_CHUNK) as u64) as usize;
            self.buf.resize(read_len, 0);
            self.log.read_at(&mut self.buf, position)?;
            self.buf_start = position;
        }
        let from = (position - self.buf_start) as usize;
        Ok(&self.buf[from..from + (want_end - position) as usize])
    }
}

/// Checks the batch at `position` without reading a body whose claimed length runs past the file.
fn check_at(reader: &mut ChunkReader<'_>, position: u64) -> Result<BatchCheck> {
    let head = reader.at(position, HEADER_SIZE)?;
    if head.len() < HEADER_SIZE {
        return Ok(BatchCheck::Truncated);
    }
    match batch::check_stored_batch(head) {
        BatchCheck::Truncated => {
            let size = BatchHeader::parse(head).expect("a whole header").size();
            if position + size as u64 > reader.file_len {
                return Ok(BatchCheck::Truncated);
            }
            Ok(batch::check_stored_batch(reader.at(position, size)?))
        }
        other => Ok(other),
    }
}

/// The valid batches of `log` (`file_len` bytes) from its start, each handed to `each` with its position,
/// until the first batch that is torn, fails its checks (structure, CRC-32C) or has a base offset below
/// `min_offset` or its predecessor's end. Returns the end of the valid batches and why the scan stopped early.
pub(crate) fn scan_valid_batches(
    log: &FileRecords,
    file_len: u64,
    min_offset: i64,
    mut each: impl FnMut(u64, &BatchHeader) -> Result<()>,
) -> Result<(u64, Option<String>)> {
    let mut reader = ChunkReader { log, file_len, buf: Vec::new(), buf_start: 0 };
    let mut position = 0u64;
    let mut expected = min_offset;
    while position < file_len {
        let problem = match check_at(&mut reader, position)? {
            BatchCheck::Valid(h) if h.base_offset >= expected => {
                each(position, &h)?;
                position += h.size() as u64;
                expected = h.next_offset();
                continue;
            }
            BatchCheck::Valid(h) => format!("batch base offset {} is below {expected}", h.base_offset),
            BatchCheck::Truncated => format!("torn batch: {} bytes at the end", file_len - position),
            BatchCheck::Invalid(reason) => reason,
        };
        return Ok((position, Some(problem)));
    }
    Ok((position, None))
}

/// Rebuilds `segment`'s indexes from its log and cuts the log after the last valid batch. `min_offset` is the
/// offset the segment's first batch may not be below (the previous segment's end).
pub fn recover_segment(segment: &LogSegment, min_offset: i64, index_interval_bytes: u64) -> Result<RecoveredSegment> {
    let files = segment.files()?;
    let log = files.log();
    let file_len = log.file().metadata().map_err(|e| StorageError::io("stat segment", log.path(), e))?.len();
    files.offset_index().reset();
    files.time_index().reset();
    segment.reset_timestamps();

    let mut next_offset = None;
    let mut bytes_since_index = 0u64;
    let (position, problem) = scan_valid_batches(log, file_len, min_offset.max(segment.base_offset()), |position, h| {
        segment.index_appended(&files, &mut bytes_since_index, &[*h], position, index_interval_bytes)?;
        segment.record_timestamps(&[*h]);
        next_offset = Some(h.next_offset());
        Ok(())
    })?;
    if position < file_len {
        segment.truncate_log(position)?;
    } else {
        segment.publish_size(position);
    }
    Ok(RecoveredSegment { next_offset, valid_bytes: position, truncated_bytes: file_len - position, problem })
}
