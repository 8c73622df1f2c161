//! The `strata-broker` command: runs the broker (default), tunes vm sysctls (`tune`) or checks logs offline
//! (`verify-log`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use strata_broker::broker::Broker;
use strata_broker::config::{self, BrokerConfig};
use strata_broker::tune;

fn command() -> Command {
    let mut cmd = Command::new("strata-broker")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Kafka-compatible log broker. Settings use Kafka's names; each can be given as a flag (--log.dirs DIR), \
                an environment variable (STRATA_LOG_DIRS) or in the --config properties file, strongest first.",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Java-style properties file with broker settings (key=value)"),
        )
        .arg(
            Arg::new("override")
                .long("override")
                .value_name("KEY=VALUE")
                .action(ArgAction::Append)
                .help("Sets any setting, like a flag (repeatable)"),
        )
        .subcommand(
            Command::new("tune")
                .about("Writes vm.* sysctls for a broker host and prints the effective values as key=value lines")
                .arg(
                    Arg::new("proc-sys")
                        .long("proc-sys")
                        .value_name("DIR")
                        .default_value("/proc/sys")
                        .value_parser(value_parser!(PathBuf))
                        .help("Root of the sysctl tree"),
                )
                .arg(Arg::new("vm-swappiness").long("vm-swappiness").value_parser(value_parser!(u64).range(0..=200)))
                .arg(Arg::new("vm-dirty-ratio").long("vm-dirty-ratio").value_parser(value_parser!(u64).range(0..=100)))
                .arg(
                    Arg::new("vm-dirty-background-ratio")
                        .long("vm-dirty-background-ratio")
                        .value_parser(value_parser!(u64).range(0..=100)),
                )
                .arg(
                    Arg::new("vm-max-map-count")
                        .long("vm-max-map-count")
                        .value_parser(value_parser!(u64).range(65530..=i32::MAX as u64)),
                ),
        )
        .subcommand(
            Command::new("verify-log")
                .about(
                    "Checks logs offline: every batch's CRC and offsets, and the indexes against the log. Prints \
                        what it finds and exits 1 if anything is damaged (like kafka-dump-log --verify-index-only \
                        --deep-iteration)",
                )
                .arg(
                    Arg::new("path")
                        .required(true)
                        .value_name("DIR")
                        .value_parser(value_parser!(PathBuf))
                        .help("A data directory (log.dirs) or one partition's directory (<topic>-<partition>)"),
                ),
        );
    for s in config::all_settings() {
        let help = match s.default {
            Some(d) => format!("{} [default: {d}]", s.help),
            None => s.help.to_string(),
        };
        cmd = cmd.arg(Arg::new(s.name).long(s.name).value_name("VALUE").env(config::env_name(s.name)).help(help));
    }
    cmd
}

/// Merges flags/env (strongest), --override, then the properties file.
fn load_config(m: &ArgMatches) -> anyhow::Result<BrokerConfig> {
    let mut merged: HashMap<String, String> = HashMap::new();
    if let Some(path) = m.get_one::<PathBuf>("config") {
        let text = std::fs::read_to_string(path).map_err(|source| config::ConfigError::File { path: path.clone(), source })?;
        merged = config::parse_properties(path, &text)?;
    }
    for kv in m.get_many::<String>("override").into_iter().flatten() {
        let (k, v) = kv.split_once('=').with_context(|| format!("--override {kv}: expected KEY=VALUE"))?;
        merged.insert(k.trim().to_string(), v.trim().to_string());
    }
    for s in config::all_settings() {
        if let Some(v) = m.get_one::<String>(s.name) {
            merged.insert(s.name.to_string(), v.clone());
        }
    }
    for key in merged.keys().filter(|k| !config::is_known(k)) {
        tracing::warn!(setting = %key, "ignoring unknown setting");
    }
    Ok(BrokerConfig::from_lookup(|k| merged.get(k).cloned())?)
}

/// Returns whether every partition under the path is sound.
fn run_verify_log(m: &ArgMatches) -> anyhow::Result<bool> {
    let path = m.get_one::<PathBuf>("path").expect("required");
    let checks = strata_storage::verify::verify_path(path).with_context(|| format!("checking {}", path.display()))?;
    let damaged = checks.iter().filter(|c| !c.problems.is_empty()).count();
    for c in &checks {
        let name = c.dir.file_name().map_or_else(|| c.dir.display().to_string(), |n| n.to_string_lossy().into_owned());
        let verdict = if c.problems.is_empty() { "ok".to_string() } else { format!("{} problems", c.problems.len()) };
        println!("{name}: {} segments, {} batches, {} records, {} bytes: {verdict}", c.segments, c.batches, c.records, c.bytes);
        for p in &c.problems {
            println!("  {p}");
        }
    }
    println!("{} partitions checked, {damaged} damaged", checks.len());
    Ok(damaged == 0)
}

fn run_tune(m: &ArgMatches) -> anyhow::Result<()> {
    let root = m.get_one::<PathBuf>("proc-sys").expect("has a default");
    let requested: Vec<(&str, u64)> = [
        ("vm-swappiness", "vm.swappiness"),
        ("vm-dirty-ratio", "vm.dirty_ratio"),
        ("vm-dirty-background-ratio", "vm.dirty_background_ratio"),
        ("vm-max-map-count", "vm.max_map_count"),
    ]
    .into_iter()
    .filter_map(|(flag, key)| m.get_one::<u64>(flag).map(|v| (key, *v)))
    .collect();
    for (key, value) in tune::apply(root, &requested)? {
        println!("{key}={value}");
    }
    Ok(())
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    // Handlers first: whoever sees the listening line may send SIGTERM/SIGINT at once.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let broker = Broker::start(config).await?;
    for (name, addr) in &broker.addresses {
        // A stable line for scripts and tests that start the broker on port 0.
        println!("strata-broker listening on {name}://{addr}");
    }
    let failure = tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); None }
        _ = int.recv() => { tracing::info!("SIGINT: shutting down"); None }
        reason = broker.failed() => Some(reason),
    };
    match failure {
        None => broker.shutdown().await,
        // As Kafka halts when its metadata log directory fails: exit rather than serve stale metadata; a
        // restart (by the orchestrator) catches up once the directory is writable again.
        Some(reason) => {
            tracing::error!(%reason, "the metadata log failed; shutting down");
            if let Err(e) = broker.shutdown_failed().await {
                tracing::error!(error = %e, "shutting down after the metadata log failed");
            }
            anyhow::bail!("the metadata log failed: {reason}")
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let matches = command().get_matches();
    match matches.subcommand() {
        Some(("tune", m)) => return run_tune(m),
        Some(("verify-log", m)) => std::process::exit(if run_verify_log(m)? { 0 } else { 1 }),
        _ => {}
    }
    let config = load_config(&matches)?;
    // Each partition keeps descriptors open: use all the process may have (see resources.rs).
    match strata_broker::resources::raise_descriptor_limit() {
        Ok((before, soft, hard)) => tracing::info!(soft_before = before, soft, hard, "file descriptor limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(config))
}
