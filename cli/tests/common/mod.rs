//! Harness for the `strata` tests: real `strata-broker` processes on 127.0.0.1 (port 0, the port read from
//! the broker's "listening on" line), each with a temporary data dir, killed when dropped (also when a test
//! fails); and a runner for the `strata` binary.
#![allow(dead_code)] // each test binary uses part of this module

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The broker binary: $STRATA_BROKER_BIN, else `strata-broker` in this test's target dir (`cargo test
/// --workspace` builds it; with `-p strata-cli` run `cargo build -p strata-broker` first).
pub fn broker_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("STRATA_BROKER_BIN") {
        return bin.into();
    }
    // target/debug/deps/<test> -> target/debug/strata-broker
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("strata-broker");
    assert!(bin.exists(), "{} is missing: run `cargo build -p strata-broker` first (or set STRATA_BROKER_BIN)", bin.display());
    bin
}

pub struct TestBroker {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts one broker with extra settings (given as `--key value` flags).
    pub fn start(settings: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let mut cmd = Command::new(broker_binary());
        if !settings.iter().any(|(k, _)| *k == "listeners") {
            cmd.args(["--listeners", "PLAINTEXT://127.0.0.1:0"]);
        }
        cmd.args(["--metrics.port", "0"]).arg("--log.dirs").arg(dir.path().join("data"));
        for (k, v) in settings {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log).spawn().expect("starting strata-broker");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("strata-broker listening on PLAINTEXT://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let mut broker = TestBroker { child, addr: String::new(), dir };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => broker.addr = addr,
            Err(_) => {
                let log = std::fs::read_to_string(broker.dir.path().join("broker.log")).unwrap_or_default();
                panic!("strata-broker did not start listening within 30 s; its log:\n{log}");
            }
        }
        broker
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster a test runs against: one broker, or three that are each a voter of the controller quorum.
pub struct Cluster {
    pub brokers: Vec<TestBroker>,
}

impl Cluster {
    pub fn start() -> Cluster {
        // No wait before a new group's first rebalance: the tests' consumers join alone.
        Cluster { brokers: vec![TestBroker::start(&[("group.initial.rebalance.delay.ms", "0")])] }
    }

    /// Three brokers, each a voter (a CONTROLLER listener on a port picked here), once all three are in service.
    pub fn start_three() -> Cluster {
        let ports: Vec<u16> =
            (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
        let voters: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("{i}@127.0.0.1:{p}")).collect();
        let voters = voters.join(",");
        let brokers = (0..3)
            .map(|i| {
                let (id, listeners) = (i.to_string(), format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[i]));
                TestBroker::start(&[
                    ("node.id", &id),
                    ("cluster.id", "cli-three"),
                    ("controller.quorum.voters", &voters),
                    ("listeners", &listeners),
                    ("group.initial.rebalance.delay.ms", "0"),
                ])
            })
            .collect();
        let c = Cluster { brokers };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = c.strata(&["cluster", "info", "--format", "json"], b"");
            let in_service = out.code == 0
                && serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
                    v["brokers"].as_array().is_some_and(|b| b.len() == 3 && b.iter().all(|b| b["fenced"] == false))
                });
            if in_service {
                return c;
            }
            assert!(std::time::Instant::now() < deadline, "three brokers not in service: {}", out.text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn bootstrap(&self) -> String {
        self.brokers.iter().map(|b| b.addr.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Runs `strata ARGS` against this cluster with `stdin`.
    pub fn strata(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_strata(&self.bootstrap(), args, stdin)
    }

    /// Like [`Cluster::strata`] without input, requiring success; stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args, b"");
        assert_eq!(out.code, 0, "strata {args:?} failed: {}", out.stderr);
        out.text()
    }

    /// `--format json` output, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let args: Vec<&str> = args.iter().copied().chain(["--format", "json"]).collect();
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("strata {args:?}: not JSON ({e}):\n{out}"))
    }
}

pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("UTF-8 output")
    }
}

pub fn run_strata(brokers: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_BROKERS", brokers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting strata");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A command that does not read stdin may exit first: a failed write is no error here.
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
