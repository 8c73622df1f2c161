//! Kafka's offset checkpoint files of a data directory (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`): a version line (0), a count line, then
//! `topic partition offset` lines. Written atomically. The frame is shared with the per-partition
//! `leader-epoch-checkpoint` ([`crate::leader_epoch`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::log::fsync_dir;
use crate::TopicPartition;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Each log's high watermark.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";

/// The frame shared by Kafka's checkpoint files: a version line (0), a count line, then `count` entry lines.
pub(crate) fn parse_lines<T>(
    text: &str,
    mut parse_line: impl FnMut(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Vec<T>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some("0") => {}
        other => return Err(format!("unsupported version line {other:?}")),
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or("missing entry count")?;
    let entries = lines.by_ref().take(count).map(&mut parse_line).collect::<std::result::Result<Vec<T>, String>>()?;
    if entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return Err(format!("expected {count} entries"));
    }
    Ok(entries)
}

pub(crate) fn format_lines(lines: impl ExactSizeIterator<Item = String>) -> String {
    let mut text = format!("0\n{}\n", lines.len());
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

pub fn parse_checkpoint(text: &str) -> std::result::Result<BTreeMap<TopicPartition, i64>, String> {
    let entries = parse_lines(text, |line| {
        let mut fields = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed line {line:?}"));
        };
        let partition = partition.parse().map_err(|_| format!("bad partition in {line:?}"))?;
        let offset = offset.parse().map_err(|_| format!("bad offset in {line:?}"))?;
        Ok((TopicPartition::new(topic, partition), offset))
    })?;
    let count = entries.len();
    let offsets: BTreeMap<TopicPartition, i64> = entries.into_iter().collect();
    if offsets.len() != count {
        return Err("a partition appears twice".into());
    }
    Ok(offsets)
}

pub fn format_checkpoint(offsets: &BTreeMap<TopicPartition, i64>) -> String {
    format_lines(offsets.iter().map(|(tp, offset)| format!("{} {} {offset}", tp.topic, tp.partition)))
}

/// Reads a checkpoint file; a missing file is an empty checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<BTreeMap<TopicPartition, i64>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            parse_checkpoint(&text).map_err(|reason| StorageError::CorruptCheckpoint { path: path.to_path_buf(), reason })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(StorageError::io("read checkpoint", path, e)),
    }
}

/// Replaces the checkpoint file atomically ([`write_atomically`]).
pub fn write_checkpoint(path: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
    write_atomically(path, &format_checkpoint(offsets))
}

/// Writes to a temporary file, fsyncs it, renames it over the old one and fsyncs the directory.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| StorageError::io("write checkpoint", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename checkpoint", path, e))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed() {
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new("a-b", 0), 42);
        offsets.insert(TopicPartition::new("c", 7), 0);
        let text = format_checkpoint(&offsets);
        assert_eq!(text, "0\n2\na-b 0 42\nc 7 0\n");
        assert_eq!(parse_checkpoint(&text).unwrap(), offsets);
        for bad in ["", "1\n0\n", "0\n2\na 0 1\n", "0\n1\na 0\n", "0\n1\na x 1\n", "0\n1\na 0 1\nb 0 2\n", "0\n2\na 0 1\na 0 2\n"]
        {
            assert!(parse_checkpoint(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read_checkpoint(&path).unwrap().is_empty());
        write_checkpoint(&path, &offsets).unwrap();
        assert_eq!(read_checkpoint(&path).unwrap(), offsets);
    }
}
