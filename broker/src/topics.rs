//! Small JSON files in the data directory, written atomically (temp file, fsync, rename, fsync dir), and the
//! import of what an older release kept there: one `topic.<name>.json` per topic (name, id, partition count,
//! assignment, config overrides) and `broker-config.json`. The metadata log holds these now; a data directory
//! of an older release is imported into it once, then the files are removed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::controller::service::{ControllerRequest, ImportedTopic};

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

/// Files of older releases that the metadata log replaces.
const LEGACY_FILES: &[&str] = &["broker-config.json", "deleted-topics.json", "cluster-brokers.json"];

/// What an older release kept in `dir` (topics, this broker's dynamic defaults), as the request that imports it
/// into the metadata log, and the files to remove once it is imported; None if there is nothing.
pub fn legacy_import(dir: &Path, node_id: i32) -> Result<Option<(ControllerRequest, Vec<PathBuf>)>, MetaError> {
    let topics = load_all(dir)?;
    let broker_config: Option<BTreeMap<String, String>> = load_json(&dir.join(LEGACY_FILES[0]))?;
    let mut files: Vec<PathBuf> = topics.keys().map(|n| path_of(dir, n)).collect();
    files.extend(LEGACY_FILES.iter().map(|f| dir.join(f)).filter(|p| p.exists()));
    if files.is_empty() {
        return Ok(None);
    }
    let topics = topics
        .into_values()
        .map(|t| ImportedTopic {
            id: t.id,
            assignment: if t.assignment.is_empty() { vec![vec![node_id]; t.partitions as usize] } else { t.assignment },
            name: t.name,
            configs: t.configs,
        })
        .collect();
    let broker_configs = broker_config.filter(|c| !c.is_empty()).map(|c| (node_id.to_string(), c)).into_iter().collect();
    Ok(Some((ControllerRequest::Import { topics, broker_configs }, files)))
}

/// Removes imported files.
pub fn remove_all(files: &[PathBuf]) -> Result<(), MetaError> {
    for f in files {
        match fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(MetaError::Io { op: "remove", path: f.clone(), source: e }),
        }
    }
    match files.first().and_then(|f| f.parent()) {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), MetaError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_data_directory_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(legacy_import(dir.path(), 0).unwrap().is_none());
        let meta = TopicMeta {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            assignment: vec![],
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        };
        save_json(&path_of(dir.path(), "orders"), &meta).unwrap();
        fs::write(dir.path().join("topic.x.json.tmp"), "{").unwrap();
        save_json(&dir.path().join("broker-config.json"), &BTreeMap::from([("retention.ms", "5")])).unwrap();
        fs::create_dir(dir.path().join("orders-0")).unwrap();
        let (req, files) = legacy_import(dir.path(), 3).unwrap().unwrap();
        let ControllerRequest::Import { topics, broker_configs } = req else { panic!("{req:?}") };
        assert_eq!((topics[0].id, topics[0].assignment.clone()), (meta.id, vec![vec![3], vec![3]]));
        assert_eq!(broker_configs["3"]["retention.ms"], "5");
        assert!(!dir.path().join("topic.x.json.tmp").exists(), "torn temp files are cleaned up");
        remove_all(&files).unwrap();
        assert!(legacy_import(dir.path(), 3).unwrap().is_none());
        assert!(dir.path().join("orders-0").exists());
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
