//! Topic metadata: name, id, partition count, partition assignment and per-topic config overrides, one JSON
//! file per topic in the log directory (`topic.<name>.json`), each written atomically (temp file, fsync,
//! rename, fsync dir).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const PREFIX: &str = "topic.";
const SUFFIX: &str = ".json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Replicas of each partition, leader first (one each until replication exists). Files written before
    /// clustering lack it; their partitions all belong to the broker that wrote them.
    #[serde(default)]
    pub assignment: Vec<Vec<i32>>,
    /// Topic-level overrides by Kafka key (e.g. "retention.ms"); unset keys follow the broker defaults.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("corrupt topic metadata {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MetaError + 'a {
    move |source| MetaError::Io { op, path: path.to_path_buf(), source }
}

/// Kafka's rule: 1-249 characters of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!("topic name is {} characters long (max 249)", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name {name:?} contains {c:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{name}{SUFFIX}"))
}

/// Every topic recorded in `dir`, by name. Leftover temp files of an interrupted write are removed.
pub fn load_all(dir: &Path) -> Result<BTreeMap<String, TopicMeta>, MetaError> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let entry = entry.map_err(io_err("read dir", dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !file_name.starts_with(PREFIX) {
            continue;
        }
        if file_name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            continue;
        }
        let Some(name) = file_name.strip_prefix(PREFIX).and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
        let text = fs::read(&path).map_err(io_err("read", &path))?;
        let meta: TopicMeta =
            serde_json::from_slice(&text).map_err(|e| MetaError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        let assigned = meta.assignment.is_empty() || meta.assignment.len() == meta.partitions as usize;
        if meta.name != name || meta.partitions < 1 || !assigned {
            let reason = format!("name {:?}, {} partitions, {} assigned", meta.name, meta.partitions, meta.assignment.len());
            return Err(MetaError::Corrupt { path, reason });
        }
        out.insert(meta.name.clone(), meta);
    }
    Ok(out)
}

/// Writes `meta` so that a crash leaves either the old or the new file, never a torn one.
pub fn save(dir: &Path, meta: &TopicMeta) -> Result<(), MetaError> {
    save_json(&path_of(dir, &meta.name), meta)
}

/// Atomically replaces `path` with `value` as JSON: temp file, fsync, rename, fsync of the directory.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), MetaError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec_pretty(value).map_err(|e| MetaError::Corrupt { path: path.into(), reason: e.to_string() })?;
    let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&json).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a JSON file written by [`save_json`]; `None` if it does not exist.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, MetaError> {
    match fs::read(path) {
        Ok(text) => {
            serde_json::from_slice(&text).map(Some).map_err(|e| MetaError::Corrupt { path: path.into(), reason: e.to_string() })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MetaError::Io { op: "read", path: path.into(), source: e }),
    }
}

pub fn remove(dir: &Path, name: &str) -> Result<(), MetaError> {
    let path = path_of(dir, name);
    fs::remove_file(&path).map_err(io_err("remove", &path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "orders.v1", "A_b-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let meta = TopicMeta {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 4,
            assignment: vec![vec![0], vec![1], vec![0], vec![1]],
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        };
        save(dir.path(), &meta).unwrap();
        fs::write(dir.path().join("topic.x.json.tmp"), "{").unwrap();
        fs::create_dir(dir.path().join("orders-0")).unwrap();
        let all = load_all(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all["orders"], meta);
        assert!(!dir.path().join("topic.x.json.tmp").exists(), "torn temp files are cleaned up");
        let updated = TopicMeta { partitions: 5, assignment: [meta.assignment.clone(), vec![vec![2]]].concat(), ..meta };
        save(dir.path(), &updated).unwrap();
        assert_eq!(load_all(dir.path()).unwrap()["orders"], updated);
        let torn = TopicMeta { partitions: 6, ..updated };
        save(dir.path(), &torn).unwrap();
        assert!(matches!(load_all(dir.path()), Err(MetaError::Corrupt { .. })), "assignment and count disagree");
        remove(dir.path(), "orders").unwrap();
        assert!(load_all(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn files_without_assignment_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let old = format!(r#"{{"name":"old","id":"{id}","partitions":2,"configs":{{}}}}"#);
        fs::write(dir.path().join("topic.old.json"), old).unwrap();
        let meta = &load_all(dir.path()).unwrap()["old"];
        assert_eq!((meta.partitions, meta.assignment.len()), (2, 0));
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("topic.a.json"), "not json").unwrap();
        assert!(matches!(load_all(dir.path()), Err(MetaError::Corrupt { .. })));
    }
}
