//! A strata-broker process on 127.0.0.1 (the binary of this package), for tests of crashes, signals and
//! limits; killed (-9) if the test ends without stopping it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Client;

pub const BIN: &str = env!("CARGO_BIN_EXE_strata-broker");

pub struct BrokerProcess {
    child: Option<Child>,
    /// Kept open: the broker prints a line per listener, and a closed pipe would fail its later prints.
    _stdout: Option<BufReader<ChildStdout>>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl BrokerProcess {
    /// Starts the binary on `data` with `args` (and unless they say otherwise, a PLAINTEXT listener on port 0;
    /// no metrics endpoint) and RLIMIT_NOFILE (soft, hard) if given; waits for its PLAINTEXT listening line.
    pub fn start(data: &Path, log: &Path, args: &[String], nofile: Option<(u64, u64)>) -> BrokerProcess {
        BrokerProcess::spawn(data, log, args, nofile, None)
    }

    /// [`BrokerProcess::start`] as user and group `uid` (the test runs as root), so that firewall rules can
    /// match this broker's packets by owner.
    pub fn start_as(data: &Path, log: &Path, args: &[String], uid: u32) -> BrokerProcess {
        BrokerProcess::spawn(data, log, args, None, Some(uid))
    }

    fn spawn(data: &Path, log: &Path, args: &[String], nofile: Option<(u64, u64)>, uid: Option<u32>) -> BrokerProcess {
        let mut cmd = Command::new(BIN);
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        if !args.iter().any(|a| a == "--listeners") {
            cmd.args(["--listeners", "PLAINTEXT://127.0.0.1:0"]);
        }
        if !args.iter().any(|a| a == "--metrics.port") {
            cmd.args(["--metrics.port", "0"]);
        }
        cmd.args(["--log.dirs"])
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap());
        if let Some((soft, hard)) = nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe { cmd.pre_exec(move || setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(std::io::Error::from)) };
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut process =
            BrokerProcess { child: Some(child), _stdout: None, addr: "127.0.0.1:0".parse().unwrap(), log: log.to_path_buf() };
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("no listening line; log:\n{}", process.log_text());
            }
            if let Some(addr) = line.trim().strip_prefix("strata-broker listening on PLAINTEXT://") {
                process.addr = addr.parse().unwrap();
                break;
            }
        }
        process._stdout = Some(stdout);
        process
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// The exit status if the process has ended by itself.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn stop(mut self, signal: Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        child.wait().unwrap()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
