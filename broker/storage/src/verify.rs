//! Offline check of a data directory or one partition's log (what Kafka's `kafka-dump-log --verify-index-only`
//! and `--deep-iteration` do together): every batch's structure and CRC-32C, offsets increasing within and
//! across segments, and both indexes against the log. It only reads; beside a running broker the active
//! segments may change under it.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::error::{Result, StorageError};
use crate::file_records::FileRecords;
use crate::index_file::{i64_at, u32_at};
use crate::recovery::scan_valid_batches;
use crate::segment::{parse_segment_file_name, segment_file_name, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::{offset_index, time_index, TopicPartition};

/// What the check of one partition found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionCheck {
    pub dir: PathBuf,
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    /// Damage, each naming the file and where; empty when the log is sound.
    pub problems: Vec<String>,
}

/// The batches of one segment, as much as the check needs of them.
#[derive(Debug, Clone, Copy)]
struct Batch {
    position: u64,
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
}

/// Checks `path`: one partition directory (it holds `.log` files) or a data directory (each of its
/// `<topic>-<partition>` directories). Fails only when a directory cannot be listed.
pub fn verify_path(path: &Path) -> Result<Vec<PartitionCheck>> {
    if segment_bases(path)?.is_some() {
        return Ok(vec![verify_partition(path)?]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| StorageError::io("list", path, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && TopicPartition::from_dir_name(&name).is_some() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    dirs.iter().map(|d| verify_partition(d)).collect()
}

/// Base offsets of the segments in `dir`, or None if it holds no `.log` file.
fn segment_bases(dir: &Path) -> Result<Option<Vec<i64>>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(base) = parse_segment_file_name(&entry.file_name().to_string_lossy(), LOG_SUFFIX) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok((!bases.is_empty()).then_some(bases))
}

/// Checks one partition directory.
pub fn verify_partition(dir: &Path) -> Result<PartitionCheck> {
    let mut check = PartitionCheck { dir: dir.to_path_buf(), ..PartitionCheck::default() };
    let bases = segment_bases(dir)?.unwrap_or_default();
    check.segments = bases.len();
    let mut next_offset = i64::MIN;
    for base in bases {
        let path = dir.join(segment_file_name(base, LOG_SUFFIX));
        let file = File::open(&path).map_err(|e| StorageError::io("open segment", &path, e))?;
        let len = file.metadata().map_err(|e| StorageError::io("stat segment", &path, e))?.len();
        let log = FileRecords::new(path.clone(), file);
        let mut batches = Vec::new();
        let (end, problem) = scan_valid_batches(&log, len, next_offset.max(base), |position, h: &BatchHeader| {
            batches.push(Batch {
                position,
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
            });
            check.records += h.record_count as u64;
            Ok(())
        })?;
        if let Some(problem) = problem {
            check.problems.push(format!("{}: at byte {end} of {len}: {problem}", path.display()));
        }
        check.batches += batches.len() as u64;
        check.bytes += end;
        next_offset = batches.last().map_or(next_offset, |b| b.last_offset + 1);
        let offset_entries =
            read_entries(&dir.join(segment_file_name(base, INDEX_SUFFIX)), offset_index::ENTRY_SIZE, &mut check.problems);
        let time_entries =
            read_entries(&dir.join(segment_file_name(base, TIME_INDEX_SUFFIX)), time_index::ENTRY_SIZE, &mut check.problems);
        let index_path = dir.join(segment_file_name(base, INDEX_SUFFIX));
        for p in check_offset_index(base, &offset_entries, &batches) {
            check.problems.push(format!("{}: {p}", index_path.display()));
        }
        let time_path = dir.join(segment_file_name(base, TIME_INDEX_SUFFIX));
        for p in check_time_index(base, &time_entries, &batches) {
            check.problems.push(format!("{}: {p}", time_path.display()));
        }
    }
    Ok(check)
}

/// The entries of an index file without the zero-filled tail a crashed active segment's preallocated index
/// has (recovery rebuilds that one); a missing or wrongly sized file is a problem.
fn read_entries(path: &Path, entry_size: usize, problems: &mut Vec<String>) -> Vec<Vec<u8>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            problems.push(format!("{}: cannot be read: {e}", path.display()));
            return Vec::new();
        }
    };
    if bytes.len() % entry_size != 0 {
        problems.push(format!("{}: size {} is not a multiple of the entry size {entry_size}", path.display(), bytes.len()));
    }
    let mut entries: Vec<Vec<u8>> = bytes.chunks_exact(entry_size).map(<[u8]>::to_vec).collect();
    while entries.last().is_some_and(|e| e.iter().all(|b| *b == 0)) {
        entries.pop();
    }
    entries
}

/// Offset index entries: increasing, each at the start of the batch whose last offset it names.
fn check_offset_index(base: i64, entries: &[Vec<u8>], batches: &[Batch]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev: Option<(i64, u64)> = None;
    for (i, e) in entries.iter().enumerate() {
        let (offset, position) = (base + i64::from(u32_at(e, 0)), u64::from(u32_at(e, 4)));
        if prev.is_some_and(|(o, p)| offset <= o || position <= p) {
            problems.push(format!("entry {i} (offset {offset}, position {position}) is not after the previous one"));
        }
        match batches.binary_search_by_key(&position, |b| b.position) {
            Ok(at) if batches[at].last_offset == offset => {}
            Ok(at) => problems.push(format!(
                "entry {i} (offset {offset}, position {position}) points at the batch ending at offset {}",
                batches[at].last_offset
            )),
            Err(_) => problems.push(format!("entry {i} (offset {offset}, position {position}) does not point at a batch")),
        }
        prev = Some((offset, position));
    }
    problems
}

/// Time index entries: timestamps increasing, each naming (by base offset) a batch with that max timestamp.
fn check_time_index(base: i64, entries: &[Vec<u8>], batches: &[Batch]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev: Option<(i64, i64)> = None;
    for (i, e) in entries.iter().enumerate() {
        let (timestamp, offset) = (i64_at(e, 0), base + i64::from(u32_at(e, 8)));
        if prev.is_some_and(|(t, o)| timestamp <= t || offset < o) {
            problems.push(format!("entry {i} (timestamp {timestamp}, offset {offset}) is not after the previous one"));
        }
        match batches.binary_search_by_key(&offset, |b| b.base_offset) {
            Ok(at) if batches[at].max_timestamp == timestamp => {}
            Ok(at) => problems.push(format!(
                "entry {i} (timestamp {timestamp}, offset {offset}) names a batch whose max timestamp is {}",
                batches[at].max_timestamp
            )),
            Err(_) => problems.push(format!("entry {i} (timestamp {timestamp}, offset {offset}) does not name a batch")),
        }
        prev = Some((timestamp, offset));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(position: u64, base_offset: i64, last_offset: i64, max_timestamp: i64) -> Batch {
        Batch { position, base_offset, last_offset, max_timestamp }
    }

    fn offset_entry(rel: u32, position: u32) -> Vec<u8> {
        [rel.to_be_bytes(), position.to_be_bytes()].concat()
    }

    fn time_entry(ts: i64, rel: u32) -> Vec<u8> {
        [&ts.to_be_bytes()[..], &rel.to_be_bytes()].concat()
    }

    #[test]
    fn index_entries_must_name_the_batch_they_point_at() {
        let batches = [batch(0, 100, 104, 10), batch(300, 105, 109, 20), batch(700, 110, 110, 30)];
        assert!(check_offset_index(100, &[offset_entry(9, 300), offset_entry(10, 700)], &batches).is_empty());
        let cases = [
            (vec![offset_entry(9, 301)], "does not point at a batch"),
            (vec![offset_entry(4, 300)], "points at the batch ending at offset 109"),
            (vec![offset_entry(10, 700), offset_entry(9, 300)], "is not after"),
        ];
        for (entries, want) in cases {
            let problems = check_offset_index(100, &entries, &batches);
            assert!(problems.iter().any(|p| p.contains(want)), "{problems:?} lacks {want}");
        }
        assert!(check_time_index(100, &[time_entry(20, 5), time_entry(30, 10)], &batches).is_empty());
        let problems = check_time_index(100, &[time_entry(25, 5)], &batches);
        assert!(problems[0].contains("max timestamp is 20"), "{problems:?}");
        let problems = check_time_index(100, &[time_entry(30, 10), time_entry(20, 5)], &batches);
        assert!(problems[0].contains("is not after"), "{problems:?}");
    }
}
