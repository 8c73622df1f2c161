use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use strata_operator::leader::{self, LeaseConfig};
use strata_operator::reconcile::{self, Context};
use strata_operator::telemetry::{self, Health, Metrics};
use strata_operator::{topic, user};

#[derive(Parser)]
#[command(name = "strata-operator", version, about = "Kubernetes operator for Strata LogClusters, LogTopics and LogUsers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a CustomResourceDefinition as YAML.
    Crd {
        #[arg(value_enum, default_value_t = CrdKind::Cluster)]
        kind: CrdKind,
    },
    /// Print the objects the operator would create for a LogCluster manifest (YAML), without
    /// a cluster: a dry run for reviewing or validating them.
    Render {
        /// LogCluster manifest (YAML); `-` reads standard input.
        file: std::path::PathBuf,
    },
    /// Run the controller.
    Run(RunArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    #[value(name = "LogCluster")]
    Cluster,
    #[value(name = "LogTopic")]
    Topic,
    #[value(name = "LogUser")]
    User,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "strata-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the Lease; defaults to the pod name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a leader's lease is valid without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Timeout in seconds for talking to brokers (admin API).
    #[arg(long, default_value_t = 5)]
    broker_timeout: u64,
    /// Seconds a restarted broker may take to be back in service (registered, unfenced, no
    /// under-replicated partitions) before a rolling restart stops and says so in the status.
    #[arg(long, default_value_t = 300)]
    roll_timeout: u64,
    /// Log as JSON lines (default: human-readable text).
    #[arg(long, env = "LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { kind: CrdKind::Cluster } => print!("{}", strata_operator::crd::crd_yaml()?),
        Command::Crd { kind: CrdKind::Topic } => print!("{}", strata_operator::topic::crd::crd_yaml()?),
        Command::Crd { kind: CrdKind::User } => print!("{}", strata_operator::user::crd::crd_yaml()?),
        Command::Render { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            print!("{}", strata_operator::render::render_yaml(&text)?);
        }
        Command::Run(args) => run(args).await?,
    }
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; use SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init_logging(args.log_json);
    let metrics = Metrics::new()?;
    let health = Health::default();
    let bound = telemetry::serve(args.metrics_addr, metrics.clone(), health.clone())
        .await
        .with_context(|| format!("binding the metrics endpoint {}", args.metrics_addr))?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");

    let client = Client::try_default().await.context("loading the Kubernetes client configuration")?;
    let pdb_resource = loop {
        match reconcile::discover_pdb_resource(&client).await {
            Ok(ar) => break ar,
            Err(e) => {
                tracing::warn!(error = %e, "API discovery failed; retrying");
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    };
    health.set_ready();
    tracing::info!(pdb = %pdb_resource.api_version, namespace = ?args.namespace, "connected to the apiserver");

    let identity = match args.identity {
        Some(id) => id,
        None => format!("{}-{}", hostname(), std::process::id()),
    };
    let lease = LeaseConfig {
        name: args.lease_name,
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_duration.max(2)),
        renew_every: Duration::from_secs((args.lease_duration / 3).max(1)),
    };
    let lease_api: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);

    let mut stop = Box::pin(shutdown_signal());
    tokio::select! {
        _ = leader::acquire(&lease_api, &lease) => {}
        _ = &mut stop => {
            tracing::info!("stopping while standing by");
            return Ok(());
        }
    }
    metrics.leader.set(1);

    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let (api, cfg) = (lease_api.clone(), lease.clone());
        tokio::spawn(async move {
            leader::hold(&api, &cfg).await;
            let _ = lost_tx.send(());
        })
    };
    let lost = Arc::new(AtomicBool::new(false));
    let shutdown = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                _ = lost_rx => lost.store(true, Ordering::SeqCst),
                _ = stop => {}
            }
        }
    };

    let reporter = Reporter { controller: "strata-operator".into(), instance: Some(identity) };
    let ctx = Arc::new(Context::new(
        client,
        metrics.clone(),
        pdb_resource,
        (Duration::from_secs(args.broker_timeout), Duration::from_secs(args.roll_timeout)),
        reporter,
    ));
    let topics = Arc::new(topic::controller::Context::new(ctx.clone()));
    let users = Arc::new(user::controller::Context::new(ctx.clone()));
    let shutdown = shutdown.shared();
    tracing::info!("starting the LogCluster, LogTopic and LogUser controllers");
    tokio::join!(
        reconcile::run(ctx, args.namespace.clone(), shutdown.clone()),
        topic::controller::run(topics, args.namespace.clone(), shutdown.clone()),
        user::controller::run(users, args.namespace, shutdown)
    );
    holder.abort();
    metrics.leader.set(0);
    if lost.load(Ordering::SeqCst) {
        anyhow::bail!("lost the leader lease; exiting so a fresh start re-joins the election");
    }
    if let Err(e) = leader::release(&lease_api, &lease).await {
        tracing::warn!(error = %e, "could not release the lease");
    }
    tracing::info!("stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "strata-operator".to_string())
}
