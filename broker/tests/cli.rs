//! The `strata-broker` binary: help, config errors, the `tune` subcommand, SIGTERM and the metrics endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_strata-broker");

#[test]
fn help_explains_kafka_settings() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for s in ["--log.dirs", "--advertised.listeners", "--socket.request.max.bytes", "STRATA_LOG_DIRS", "--config", "tune"] {
        assert!(help.contains(s), "--help lacks {s}");
    }
}

#[test]
fn bad_settings_fail_with_a_clear_message() {
    let out = Command::new(BIN).args(["--num.partitions", "zero"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("num.partitions"));
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("server.properties");
    std::fs::write(&props, "log.segment.bytes=1\n").unwrap();
    let out = Command::new(BIN).arg("--config").arg(&props).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.segment.bytes"));
}

#[test]
fn tune_writes_sysctls_under_the_given_root() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("vm")).unwrap();
    for (k, v) in [("swappiness", "60"), ("dirty_ratio", "20"), ("dirty_background_ratio", "10"), ("max_map_count", "65530")] {
        std::fs::write(root.path().join("vm").join(k), v).unwrap();
    }
    let out = Command::new(BIN)
        .args(["tune", "--vm-swappiness", "1", "--vm-max-map-count", "262144", "--proc-sys"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "vm.swappiness=1\nvm.dirty_ratio=20\nvm.dirty_background_ratio=10\nvm.max_map_count=262144\n"
    );
    let out = Command::new(BIN).args(["tune", "--vm-swappiness", "500", "--proc-sys"]).arg(root.path()).output().unwrap();
    assert!(!out.status.success(), "out-of-range values are refused");
}

/// Starts the binary on port 0 with a free metrics port, checks /metrics, then SIGTERM: exit 0, clean marker.
#[test]
fn serves_metrics_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(BIN)
        .args(["--listeners", "PLAINTEXT://127.0.0.1:0", "--metrics.port", &metrics_port.to_string(), "--log.dirs"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("strata-broker listening on PLAINTEXT://127.0.0.1:"), "{line}");

    let mut http = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 OK"), "{page}");
    assert!(page.contains("# TYPE "), "Prometheus text exposition: {page}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    std::mem::forget(guard); // reaped: never signal a pid that may be reused
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(dir.path().join(".kafka_cleanshutdown").exists());
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), nix::sys::signal::Signal::SIGKILL);
    }
}
