//! The `strata-broker` binary: help, config errors, the `tune` subcommand, SIGTERM, the metrics endpoint, and
//! accepting again after running out of file descriptors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http_get;

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
    let (mut child, guard, line) =
        start_listening(dir.path(), &["--listeners", "PLAINTEXT://127.0.0.1:0", "--metrics.port", &metrics_port.to_string()]);
    assert!(line.starts_with("strata-broker listening on PLAINTEXT://127.0.0.1:"), "{line}");

    let page = http_get(metrics_port, "/metrics");
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 OK"), "{page}");
    assert!(page.contains("# TYPE "), "Prometheus text exposition: {page}");
    // A single node is its own quorum: in service (registered, unfenced) before it says it listens.
    assert!(http_get(metrics_port, "/readyz").contains(" 200 OK"));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    std::mem::forget(guard); // reaped: never signal a pid that may be reused
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(dir.path().join(".kafka_cleanshutdown").exists());
}

/// Starts the binary with `args` and its data in `dir` (log in `dir/broker.log`); returns once it printed its
/// first line (the listening one), with the guard that kills it if the test fails.
fn start_listening(dir: &std::path::Path, args: &[&str]) -> (std::process::Child, KillOnDrop, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--log.dirs")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("broker.log")).unwrap())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, guard, line)
}

/// A voter whose quorum cannot form (its peer is not running) listens and is alive, but is not ready: it is
/// not registered and unfenced, so it serves no partitions yet.
#[test]
fn not_ready_until_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (metrics_port, own, peer) = (free(), free(), free());
    let voters = format!("0@127.0.0.1:{own},1@127.0.0.1:{peer}");
    let (listeners, metrics) = (format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{own}"), metrics_port.to_string());
    let args = ["--node.id", "0", "--cluster.id", "c", "--controller.quorum.voters", &voters, "--listeners", &listeners];
    let (mut child, guard, line) = start_listening(dir.path(), &[&args[..], &["--metrics.port", &metrics]].concat());
    assert!(line.starts_with("strata-broker listening on"), "{line}");
    assert!(http_get(metrics_port, "/healthz").contains(" 200 OK"));
    let ready = http_get(metrics_port, "/readyz");
    assert!(ready.contains(" 503 ") && ready.contains("not in service yet"), "{ready}");
    drop(guard);
    let _ = child.wait();
}

/// ApiVersions v0 (correlation id 1, null client id): answered by any accepted connection.
const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];

/// True if `c` gets a response to ApiVersions within `wait`.
fn answered(c: &mut std::net::TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    c.write_all(&API_VERSIONS).unwrap();
    let mut size = [0u8; 4];
    c.read_exact(&mut size).is_ok()
}

/// With both descriptor limits low (the broker may raise its soft limit to the hard one), connections beyond
/// the limit wait in the backlog while accept fails; once some close, the waiting client is served, and the
/// log says so once (not once per failed accept), plus one recovery line.
#[test]
fn accept_recovers_after_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("broker.log");
    let mut child = Command::new("prlimit")
        .args(["--nofile=24:24", "--", BIN, "--listeners", "PLAINTEXT://127.0.0.1:0", "--metrics.port", "0", "--log.dirs"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit_once("//").expect("listening line").1.to_string();

    let mut served = Vec::new();
    let mut waiting = loop {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        if !answered(&mut c, Duration::from_secs(3)) {
            break c;
        }
        served.push(c);
        assert!(served.len() < 30, "the descriptor limit was never reached");
    };
    let log = || std::fs::read_to_string(&log_path).unwrap();
    let count = |needle: &str| log().lines().filter(|l| l.contains(needle)).count();
    // Failed accepts go on (backing off) while nothing closes; still one line.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count("accept failed: out of file descriptors"), 1, "{}", log());
    served.truncate(served.len() - 2);
    let mut size = [0u8; 4];
    waiting.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    waiting.read_exact(&mut size).expect("the waiting client is served once descriptors are free");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count("accepting connections again") == 0 {
        assert!(std::time::Instant::now() < deadline, "no recovery line: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count("accept failed: out of file descriptors"), 1, "{}", log());
    assert_eq!(count("accepting connections again"), 1, "{}", log());
    drop(guard);
    let _ = child.wait();
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), nix::sys::signal::Signal::SIGKILL);
    }
}
