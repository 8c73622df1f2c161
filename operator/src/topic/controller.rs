//! The LogTopic controller: compares each LogTopic with its topic as the cluster describes it and
//! makes the planned changes, reporting in the status. Every decision is in the pure modules, and
//! everything it needs to resume is in the cluster or the status (no progress kept in memory).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::ResourceExt;
use serde_json::json;

use super::claim;
use super::crd::{DeletionPolicy, LogTopic};
use super::kafka::{self, AdminError};
use super::plan::{self, Change, Described};
use super::spec::{self, Desired};
use super::status::{self, Report};
use crate::crd::LogCluster;
use crate::reconcile;

/// Deleting the resource deletes the topic first (per `deletionPolicy`).
pub const FINALIZER: &str = "strata.io/topic";
/// Re-check interval while a reassignment runs.
const BUSY_REQUEUE: Duration = Duration::from_secs(10);
/// Re-check interval of a settled topic: changes made with Kafka tools are undone this late.
const IDLE_REQUEUE: Duration = Duration::from_secs(120);

use crate::cluster_resource::{self, connect, namespace, OfCluster};
pub use crate::cluster_resource::{Context, Error};

impl OfCluster for LogTopic {
    const KIND: &'static str = "topic";
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
}

pub async fn reconcile(lt: Arc<LogTopic>, ctx: Arc<Context>) -> Result<Action, Error> {
    cluster_resource::reconcile(lt, &ctx, FINALIZER, |event| async {
        match event {
            FinalizerEvent::Apply(lt) => apply(&lt, &ctx).await,
            FinalizerEvent::Cleanup(lt) => cleanup(&lt, &ctx).await,
        }
    })
    .await
}

async fn publish(ctx: &Context, lt: &LogTopic, type_: EventType, reason: &str, note: String) {
    reconcile::publish_event(&ctx.base.recorder, lt, type_, reason, note).await
}

/// Writes the status if it changed: this pass's Ready condition, the topic's facts if described,
/// the managed config keys if known.
async fn write_status(
    lt: &LogTopic,
    ctx: &Context,
    report: &Report,
    topic: Option<&Described>,
    managed: Option<&BTreeSet<String>>,
) -> Result<(), Error> {
    let new = status::next(lt.status.as_ref(), lt.metadata.generation, report, topic, managed, Time(Timestamp::now()));
    if lt.status.as_ref() != Some(&new) {
        let mut body = json!(new);
        if managed.is_none() {
            // `lt` may predate this pass's record of the keys about to be set: keep that record.
            if let Some(fields) = body.as_object_mut() {
                fields.remove("managedConfig");
            }
        }
        let api: Api<LogTopic> = Api::namespaced(ctx.base.client.clone(), &namespace(lt));
        api.patch_status(&lt.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": body}))).await?;
    }
    Ok(())
}

/// Reports a refusal (a Warning event when it is new) and writes it to the status.
async fn refuse(lt: &LogTopic, ctx: &Context, report: Report, topic: Option<&Described>) -> Result<(), Error> {
    let same = lt.status.as_ref().is_some_and(|s| {
        s.observed_generation == lt.metadata.generation
            && s.conditions.iter().any(|c| c.reason == report.reason && c.message == report.message)
    });
    if !same {
        publish(ctx, lt, EventType::Warning, &report.reason, report.message.clone()).await;
    }
    write_status(lt, ctx, &report, topic, None).await
}

fn cluster_api(lt: &LogTopic, ctx: &Context) -> Api<LogCluster> {
    Api::namespaced(ctx.base.client.clone(), &namespace(lt))
}

/// The Ready condition for a failure to reach or use the cluster.
fn failure_report(e: &Error) -> Report {
    match e {
        Error::Kafka(e) => Report::not_ready(kafka::reason_of(e), e.to_string()),
        Error::Cluster(why) => Report::not_ready("ClusterUnavailable", why.clone()),
        other => Report::not_ready("ReconcileFailed", other.to_string()),
    }
}

async fn apply(lt: &LogTopic, ctx: &Context) -> Result<Action, Error> {
    let desired = match spec::desired(lt) {
        Ok(d) => d,
        Err(errors) => {
            let report = Report::not_ready("InvalidSpec", format!("spec rejected, nothing changed: {}", errors.join("; ")));
            refuse(lt, ctx, report, None).await?;
            // Nothing will change until the spec does; the watch brings the next generation.
            return Ok(Action::await_change());
        }
    };
    if let Some(why) = claim::moved(lt) {
        refuse(lt, ctx, Report::not_ready("TopicMoved", why), None).await?;
        return Ok(Action::await_change());
    }
    let api: Api<LogTopic> = Api::namespaced(ctx.base.client.clone(), &namespace(lt));
    let others = api.list(&ListParams::default()).await?.items;
    if let Some(owner) = claim::managed_by_other(lt, &others) {
        let (cluster, topic) = claim::target(lt);
        let why = format!("topic {topic} of LogCluster {cluster} is managed by the older LogTopic {}", owner.name_any());
        refuse(lt, ctx, Report::not_ready("ResourceConflict", why), None).await?;
        return Ok(Action::requeue(IDLE_REQUEUE));
    }
    // Recorded before the topic is touched, so an edit or a deletion finds it even after a crash.
    if lt.status.as_ref().is_none_or(|s| s.cluster.is_none() || s.topic_name.is_none()) {
        let patch = json!({"status": {"cluster": lt.spec.cluster, "topicName": desired.name}});
        api.patch_status(&lt.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    match converge(lt, &desired, ctx).await {
        Ok(action) => Ok(action),
        Err(e) => {
            let report = failure_report(&e);
            // A broker's refusal (e.g. INVALID_CONFIG) is about the spec: the user hears of it.
            let written = match &e {
                Error::Kafka(k) if k.code().is_some() => refuse(lt, ctx, report, None).await,
                _ => write_status(lt, ctx, &report, None, None).await,
            };
            if let Err(status_err) = written {
                tracing::warn!(error = %status_err, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

async fn converge(lt: &LogTopic, desired: &Desired, ctx: &Context) -> Result<Action, Error> {
    let cluster = &lt.spec.cluster;
    let Some(lc) = cluster_api(lt, ctx).get_opt(cluster).await? else {
        return Err(Error::Cluster(format!("LogCluster {cluster} does not exist in namespace {}", namespace(lt))));
    };
    let mut client = connect(&lc, ctx).await?;
    let (brokers, topic) = kafka::describe(&mut client, &desired.name).await?;
    let managed: BTreeSet<String> = lt.status.as_ref().map(|s| s.managed_config.iter().cloned().collect()).unwrap_or_default();
    let changes = match plan::plan(desired, topic.as_ref(), &managed, &brokers) {
        Ok(changes) => changes,
        Err(refusal) => {
            refuse(lt, ctx, Report::not_ready(refusal.reason(), refusal.message()), topic.as_ref()).await?;
            return Ok(Action::requeue(IDLE_REQUEUE));
        }
    };
    // Keys about to be set are recorded first: if the operator stops half-way, a later removal
    // from the spec still deletes them.
    let desired_keys: BTreeSet<String> = desired.config.keys().cloned().collect();
    let may_be_set: BTreeSet<String> = managed.union(&desired_keys).cloned().collect();
    if may_be_set != managed {
        let api: Api<LogTopic> = Api::namespaced(ctx.base.client.clone(), &namespace(lt));
        let patch = json!({"status": {"managedConfig": may_be_set}});
        api.patch_status(&lt.name_any(), &PatchParams::default(), &Patch::Merge(patch)).await?;
    }
    for change in &changes {
        kafka::apply(&mut client, &desired.name, change).await?;
        let (reason, note) = describe_change(&desired.name, change);
        publish(ctx, lt, EventType::Normal, reason, note).await;
    }
    // What the cluster says now decides the status (and whether more is to come).
    let (brokers, topic) = kafka::describe(&mut client, &desired.name).await?;
    let Some(topic) = topic else {
        return Err(Error::Kafka(AdminError::NotFound(format!("topic {} is missing after it was created", desired.name))));
    };
    let pending = plan::plan(desired, Some(&topic), &desired_keys, &brokers).map(|c| c.len()).unwrap_or(0);
    let (report, next) = if !topic.reassigning.is_empty() {
        let parts: Vec<String> = topic.reassigning.iter().map(i32::to_string).collect();
        let message = format!(
            "reassigning partitions {} to replication factor {}",
            parts.join(","),
            desired.replicas.map_or_else(|| "unchanged".to_string(), |r| r.to_string())
        );
        (Report::not_ready("Reassigning", message), BUSY_REQUEUE)
    } else if pending > 0 {
        (Report::not_ready("Progressing", format!("{pending} more changes to make")), BUSY_REQUEUE)
    } else {
        let message =
            format!("topic {} has {} partitions, replication factor {}", desired.name, topic.partitions.len(), topic.factor());
        (Report::ready("TopicReady", message), IDLE_REQUEUE)
    };
    write_status(lt, ctx, &report, Some(&topic), Some(&desired_keys)).await?;
    Ok(Action::requeue(next))
}

/// Event reason and text of a change made.
fn describe_change(topic: &str, change: &Change) -> (&'static str, String) {
    match change {
        Change::Create { .. } => ("TopicCreated", format!("created topic {topic}")),
        Change::Config(changes) => ("ConfigChanged", format!("changed {} config entries of topic {topic}", changes.len())),
        Change::Partitions(n) => ("PartitionsAdded", format!("topic {topic} now has {n} partitions")),
        Change::Reassign(moves) => {
            ("ReassignmentStarted", format!("reassigning {} partitions of topic {topic} for the replication factor", moves.len()))
        }
    }
}

/// Deletion: the topic goes first (per `deletionPolicy`); a cluster that cannot be reached keeps
/// the finalizer and is retried with back-off.
async fn cleanup(lt: &LogTopic, ctx: &Context) -> Result<Action, Error> {
    let (cluster, topic) = claim::target(lt);
    if lt.spec.deletion_policy == DeletionPolicy::Retain {
        publish(ctx, lt, EventType::Normal, "TopicRetained", format!("kept topic {topic} (deletionPolicy Retain)")).await;
        return Ok(Action::await_change());
    }
    let api: Api<LogTopic> = Api::namespaced(ctx.base.client.clone(), &namespace(lt));
    if claim::managed_by_other(lt, &api.list(&ListParams::default()).await?.items).is_some()
        || spec::check_topic_name(&topic).is_err()
    {
        // Another resource manages the topic, or no topic could have been made.
        return Ok(Action::await_change());
    }
    let Some(lc) = cluster_api(lt, ctx).get_opt(&cluster).await? else {
        let note = format!("LogCluster {cluster} no longer exists; nothing to delete topic {topic} from");
        publish(ctx, lt, EventType::Warning, "ClusterGone", note).await;
        return Ok(Action::await_change());
    };
    let deleted = match connect(&lc, ctx).await {
        Ok(mut client) => kafka::delete(&mut client, &topic).await.map_err(Error::from),
        Err(e) => Err(e),
    };
    match deleted {
        Ok(existed) => {
            let note = if existed { format!("deleted topic {topic}") } else { format!("topic {topic} was already gone") };
            publish(ctx, lt, EventType::Normal, "TopicDeleted", note).await;
            Ok(Action::await_change())
        }
        Err(e) if lc.metadata.deletion_timestamp.is_some() => {
            let note =
                format!("LogCluster {cluster} is being deleted and cannot delete topic {topic}: {e}; leaving it to the cluster");
            publish(ctx, lt, EventType::Warning, "ClusterGone", note).await;
            Ok(Action::await_change())
        }
        Err(e) => {
            let report = Report::not_ready("DeletionFailed", format!("cannot delete topic {topic} yet, retrying: {e}"));
            if let Err(status_err) = write_status(lt, ctx, &report, None, None).await {
                tracing::warn!(error = %status_err, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    cluster_resource::run::<LogTopic, _, _>(ctx, namespace, shutdown, reconcile).await
}
