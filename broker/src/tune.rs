//! `strata-broker tune`: writes the requested vm.* sysctls and reports their effective values. An operator's
//! init container runs it; the /proc/sys root is a parameter so tests use a temporary directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The sysctls `tune` manages, in the order they are printed.
pub const KEYS: &[&str] = &["vm.swappiness", "vm.dirty_ratio", "vm.dirty_background_ratio", "vm.max_map_count"];

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{key} was set to {wanted} but reads back as {got} (the kernel clamped or refused it)")]
    NotApplied { key: String, wanted: u64, got: String },
}

/// `vm.dirty_ratio` -> `<root>/vm/dirty_ratio`.
pub fn sysctl_path(root: &Path, key: &str) -> PathBuf {
    key.split('.').fold(root.to_path_buf(), |p, part| p.join(part))
}

/// Writes each requested value, reads it back, and returns `(key, effective value)` for every managed key
/// that exists under `root` (requested ones must exist).
pub fn apply(root: &Path, requested: &[(&str, u64)]) -> Result<Vec<(String, String)>, TuneError> {
    for (key, value) in requested {
        let path = sysctl_path(root, key);
        // Never create: a sysctl that does not exist is an error, in /proc/sys and in tests alike.
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
            .map_err(|source| TuneError::Io { op: "write", path: path.clone(), source })?;
        let got = read(&path)?;
        if got != value.to_string() {
            return Err(TuneError::NotApplied { key: key.to_string(), wanted: *value, got });
        }
    }
    let mut out = Vec::new();
    for key in KEYS {
        let path = sysctl_path(root, key);
        match read(&path) {
            Ok(v) => out.push((key.to_string(), v)),
            Err(TuneError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, TuneError> {
    fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|source| TuneError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("vm")).unwrap();
        for (k, v) in [("swappiness", "60"), ("dirty_ratio", "20"), ("dirty_background_ratio", "10")] {
            fs::write(dir.path().join("vm").join(k), format!("{v}\n")).unwrap();
        }
        dir
    }

    #[test]
    fn writes_requested_and_reports_existing() {
        let root = fake_proc();
        let out = apply(root.path(), &[("vm.swappiness", 1), ("vm.dirty_ratio", 80)]).unwrap();
        let expect = [("vm.swappiness", "1"), ("vm.dirty_ratio", "80"), ("vm.dirty_background_ratio", "10")];
        assert_eq!(out, expect.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(fs::read_to_string(root.path().join("vm/swappiness")).unwrap(), "1\n");
    }

    #[test]
    fn missing_requested_sysctl_is_an_error() {
        let root = fake_proc();
        let err = apply(root.path(), &[("vm.max_map_count", 262144)]).unwrap_err();
        assert!(err.to_string().contains("vm/max_map_count"), "{err}");
    }
}
