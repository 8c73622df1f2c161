//! The controller: drives the cluster toward what the builders describe and reports the truth
//! in the LogCluster status. All decisions are made by the pure modules; this one does the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use strata_client::Security;

use crate::annotations;
use crate::broker_contract;
use crate::builders;
use crate::certs::KeyAndCert;
use crate::cluster_ca;
use crate::config::{self, hash_str, BrokerSettings};
use crate::crd::{LogCluster, LogClusterStatus};
use crate::kafka_admin::{self, dynamic_changes, Access, AdminError, ConfigChange, ConfigResource, Unregistration};
use crate::listeners;
use crate::membership;
use crate::names::{self, FIELD_MANAGER};
use crate::rebalance::View;
use crate::resize::{self, Expansion};
use crate::roll_safety::{self, AfterRestart};
use crate::rollout::{self, Restart};
use crate::scaling;
use crate::status::{self, is_ready, is_terminating, Observed, Problem};
use crate::telemetry::Metrics;
use crate::validation;

/// Re-check interval while something is changing (pods starting, a restart in flight).
const BUSY_REQUEUE: Duration = Duration::from_secs(10);
/// Re-check interval of a settled cluster (watches trigger earlier on any change).
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("broker {node}: {source}")]
    Admin { node: i32, source: AdminError },
    #[error("cluster: {0}")]
    Cluster(#[from] AdminError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner) | kube::runtime::finalizer::Error::CleanupFailed(inner) => {
                    inner.kind()
                }
                _ => "finalizer",
            },
            Error::Admin { .. } | Error::Cluster(_) => "broker_admin",
            Error::Invalid(_) => "invalid",
        }
    }
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// PodDisruptionBudget API the cluster serves (policy/v1, or v1beta1 before 1.21).
    pub pdb_resource: ApiResource,
    pub admin_timeout: Duration,
    /// How long a restarted broker may take to be back in service before a roll stops.
    pub roll_timeout: Duration,
    failures: Failures,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Metrics,
        pdb_resource: ApiResource,
        (admin_timeout, roll_timeout): (Duration, Duration),
        reporter: Reporter,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            pdb_resource,
            admin_timeout,
            roll_timeout,
            failures: Failures::default(),
        }
    }
}

/// Finds the PodDisruptionBudget API version the cluster serves.
pub async fn discover_pdb_resource(client: &Client) -> Result<ApiResource, Error> {
    let group = kube::discovery::group(client, "policy").await?;
    for version in ["v1", "v1beta1"] {
        if let Some((ar, _)) = group.versioned_resources(version).into_iter().find(|(ar, _)| ar.kind == "PodDisruptionBudget") {
            return Ok(ar);
        }
    }
    Err(Error::Invalid("the cluster serves no PodDisruptionBudget API".into()))
}

fn key(lc: &LogCluster) -> String {
    format!("{}/{}", names::namespace(lc), lc.name_any())
}

/// Consecutive failures per object (`namespace/name`), for exponential back-off.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A success: the next failure starts the back-off over.
    pub fn clear(&self, key: &str) {
        self.counts().remove(key);
    }

    /// One more failure: how long to wait before the next try.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut counts = self.counts();
        let n = counts.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff(*n)
    }
}

/// Back-off after failures: 5 s doubling to 5 min.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.min(7).saturating_sub(1));
    Duration::from_secs(secs.min(300))
}

pub async fn reconcile(lc: Arc<LogCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let api: Api<LogCluster> = Api::namespaced(ctx.client.clone(), &names::namespace(&lc));
    let result = finalizer(&api, names::FINALIZER, lc.clone(), |event| async {
        match event {
            FinalizerEvent::Apply(lc) => apply(&lc, &ctx).await,
            FinalizerEvent::Cleanup(lc) => cleanup(&lc, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.observe(if result.is_ok() { "ok" } else { "error" }, started.elapsed());
    if result.is_ok() {
        ctx.failures.clear(&key(&lc));
    }
    result
}

pub fn error_policy(lc: Arc<LogCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.with_label_values(&[error.kind()]).inc();
    let delay = ctx.failures.next_delay(&key(&lc));
    tracing::warn!(cluster = %key(&lc), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn publish(ctx: &Context, lc: &LogCluster, type_: EventType, reason: &str, note: String) {
    publish_event(&ctx.recorder, lc, type_, reason, note).await
}

/// Publishes an event about `obj`; a failure is only logged (events are best effort).
pub async fn publish_event<K>(recorder: &Recorder, obj: &K, type_: EventType, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event { type_, reason: reason.to_string(), note: Some(note), action: reason.to_string(), secondary: None };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

async fn apply_object<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?)
}

async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn selector(lc: &LogCluster) -> ListParams {
    ListParams::default().labels(&names::label_selector(&names::selector_labels(lc)))
}

fn cluster_scoped_selector(lc: &LogCluster) -> ListParams {
    let mut labels = names::selector_labels(lc);
    labels.insert(names::LABEL_CLUSTER_NAMESPACE.to_string(), names::namespace(lc));
    ListParams::default().labels(&names::label_selector(&labels))
}

/// What one pass of [`converge`] found.
struct Outcome {
    problem: Option<Problem>,
    busy: bool,
    storage: resize::Report,
    /// Why the next restart of a roll waits for the cluster.
    roll_held: Option<String>,
    /// Replicas moving for a scale-up or scale-down.
    moving: Option<scaling::Moving>,
}

async fn apply(lc: &LogCluster, ctx: &Context) -> Result<Action, Error> {
    if annotations::paused(&lc.metadata) {
        report_paused(lc, ctx).await?;
        // Removing the annotation is a change of the LogCluster, which the watch brings.
        return Ok(Action::await_change());
    }
    let settings = match validation::validate(&lc.spec) {
        Ok(s) => s,
        Err(errors) => {
            let already_reported = lc.status.as_ref().is_some_and(|s| {
                s.observed_generation == lc.metadata.generation
                    && s.conditions.iter().any(|c| c.type_ == status::DEGRADED && c.reason == "InvalidSpec")
            });
            if !already_reported {
                publish(ctx, lc, EventType::Warning, "InvalidSpec", errors.join("; ")).await;
            }
            write_status(lc, ctx, Some(Problem::InvalidSpec(errors)), None, (None, None)).await?;
            // Nothing will change until the spec does; the watch brings the next generation.
            return Ok(Action::await_change());
        }
    };
    match converge(lc, &settings, ctx).await {
        Ok(outcome) => {
            // Claims are not watched: a resize in flight is looked at again soon.
            let busy = outcome.busy || outcome.problem.is_some() || !outcome.storage.resized;
            let progress = (outcome.roll_held, outcome.moving);
            let status = write_status(lc, ctx, outcome.problem, Some(outcome.storage), progress).await?;
            let settled = !busy && status.conditions.iter().any(|c| c.type_ == status::READY && c.status == "True");
            Ok(Action::requeue(if settled { IDLE_REQUEUE } else { BUSY_REQUEUE }))
        }
        Err(e) => {
            // Report the failure, then let the error policy back off.
            if let Err(status_err) =
                write_status(lc, ctx, Some(Problem::ReconcileFailed(e.to_string())), None, (None, None)).await
            {
                tracing::warn!(error = %status_err, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

async fn converge(lc: &LogCluster, settings: &BrokerSettings, ctx: &Context) -> Result<Outcome, Error> {
    let ns = names::namespace(lc);
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let pods = pods_api.list(&selector(lc)).await?.items;
    let existing = sts_api.get_opt(&names::statefulset(lc)).await?;
    let mut problem = None;

    // The controller voters, fixed when the cluster was created (recorded on the StatefulSet).
    let desired = lc.spec.replicas;
    let current = existing.as_ref().and_then(|s| s.spec.replicas);
    let recorded = |key: &str| existing.as_ref().and_then(|s| s.annotations().get(key)).map(String::as_str);
    let voters = membership::voter_count(recorded_voters(lc, existing.as_ref()), current, desired);
    // Certificates first: new brokers need theirs to start, and the operator its own to ask the brokers.
    // Brokers being drained by a scale-down keep theirs until they are gone.
    let access = if listeners::plan(&lc.spec.listeners).secured() {
        let material = apply_certificates(lc, current.unwrap_or(0).max(desired), ctx).await?;
        operator_access(lc, &material.operator, &material.ca.cert, ctx)?
    } else {
        Access::new(lc, Security::default(), ctx.admin_timeout)
    };

    // Replicas: a scale-down keeps every voter and drains the brokers it removes first; a
    // scale-up moves replicas onto the new brokers once they serve.
    let forced = lc.annotations().get(names::FORCE_SCALE_DOWN_ANNOTATION).map(String::as_str) == Some("true");
    let rebalance = scaling::Rebalance::parse(recorded(names::REBALANCE_ANNOTATION));
    let mut throttled = membership::parse_names(recorded(names::THROTTLED_TOPICS_ANNOTATION));
    let mut cluster = if scaling::needs_view(current, desired, voters, forced, rebalance, !throttled.is_empty()) {
        Some(ask_where_replicas_are(lc, &pods, &access).await)
    } else {
        None
    };
    let view = cluster.as_ref().map(|c| c.as_ref().map(|(_, view)| view).map_err(String::as_str));
    let scale =
        scaling::decide(&scaling::Inputs { current, desired, voters, forced, rebalance, throttled: !throttled.is_empty(), view });
    let replicas = scale.replicas;
    if let Some(why) = &scale.blocked {
        let already =
            lc.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "ScaleDownBlocked" && &c.message == why));
        if !already {
            publish(ctx, lc, EventType::Warning, "ScaleDownBlocked", why.clone()).await;
        }
        problem = Some(Problem::ScaleDownBlocked(why.clone()));
    }
    match current {
        Some(cur) if replicas < cur => {
            publish(ctx, lc, EventType::Normal, "ScalingDown", format!("scaling from {cur} to {replicas} brokers")).await;
        }
        Some(cur) if replicas > cur => {
            publish(ctx, lc, EventType::Normal, "ScalingUp", format!("scaling from {cur} to {replicas} brokers")).await;
        }
        _ => {}
    }
    if let (true, Some(Ok((client, _)))) = (scale.clear_throttles, cluster.as_mut()) {
        match kafka_admin::clear_throttles(client, &throttled).await {
            Ok(()) => throttled.clear(),
            Err(e) => tracing::warn!(cluster = %key(lc), error = %e, "could not remove the replication throttles"),
        }
    }
    // Recorded before the moves start, so the throttles are removed even if the operator stops now.
    throttled.extend(scale.moves.iter().map(|m| m.topic.clone()));

    // Brokers removed by a scale-down leave the quorum's registrations once their pods are gone;
    // the ones still to do are recorded with the new replica count, in the same apply.
    let recorded_removed = membership::parse_ids(recorded(names::TO_UNREGISTER_ANNOTATION));
    let mut to_unregister = membership::to_unregister(&recorded_removed, current, replicas);
    let sts_name = names::statefulset(lc);
    let pod_ordinals: BTreeSet<i32> =
        pods.iter().filter_map(|p| names::ordinal_of(&sts_name, p.metadata.name.as_deref()?)).collect();
    let (unregistered, unregister_error) =
        unregister_brokers(lc, &pods, replicas, &membership::unregister_now(&to_unregister, &pod_ordinals), (ctx, &access)).await;
    for (id, _) in &unregistered {
        to_unregister.remove(id);
    }
    let settings = settings.clone().with_quorum(membership::static_voters(lc, voters)).with_offsets_topic_replication(voters);
    let settings = &settings;

    apply_local_storage(lc, ctx).await?;
    apply_object(&Api::<ConfigMap>::namespaced(client.clone(), &ns), &builders::config_map(lc, settings)).await?;
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns);
    apply_object(&svc_api, &builders::headless_service(lc)).await?;
    apply_object(&svc_api, &builders::bootstrap_service(lc)).await?;
    let mut sts = builders::statefulset(lc, settings);
    sts.spec.replicas = Some(replicas);
    builders::record_membership(&mut sts, voters, &to_unregister);
    builders::record_scaling(&mut sts, scale.rebalance, &throttled);
    builders::keep_claim_templates(&mut sts, existing.as_ref());
    let roll_requested = annotations::roll_requested(&lc.metadata);
    let token = annotations::restart_token(
        roll_requested,
        annotations::current_restart_token(existing.as_ref()),
        &Timestamp::now().to_string(),
    );
    annotations::stamp_restart_token(&mut sts, token.as_deref());
    if existing.is_none() {
        publish(ctx, lc, EventType::Normal, "Created", format!("created StatefulSet with {replicas} brokers")).await;
    }
    let sts = apply_object(&sts_api, &sts).await?;
    if roll_requested {
        // Only after the new token is stored: a failure before this point retries the request.
        take_manual_roll_request(lc, ctx).await?;
    }
    if scale.force_used {
        remove_annotation(lc, ctx, names::FORCE_SCALE_DOWN_ANNOTATION).await?;
    }
    if let (false, Some(Ok((client, _)))) = (scale.moves.is_empty(), cluster.as_mut()) {
        kafka_admin::start_moves(client, &scale.moves, lc.spec.rebalancing.throttle_bytes_per_second).await?;
        if let Some(m) = &scale.moving {
            publish(ctx, lc, EventType::Normal, m.reason, m.message.clone()).await;
        }
    }
    apply_pdb(lc, ctx).await?;
    if let Some(p) = apply_service_monitor(lc, ctx).await? {
        problem.get_or_insert(p);
    }

    // Restarts under operator control (OnDelete), only once the StatefulSet controller has seen
    // the latest template, so its update revision is current.
    let sts_status = sts.status.as_ref();
    let observed_latest = sts_status.and_then(|s| s.observed_generation) >= sts.metadata.generation;
    let update_revision = sts_status.and_then(|s| s.update_revision.as_deref()).filter(|_| observed_latest);
    let mut busy = !to_unregister.is_empty() || scale.moving.is_some() || !throttled.is_empty();
    let mut roll_held = None;
    let clock = (Timestamp::now(), ctx.roll_timeout);
    let pending = match rollout::next_restart(&names::statefulset(lc), &pods, replicas, update_revision, clock) {
        Restart::Done => None,
        Restart::Wait(why) => Some(why),
        Restart::Stuck(why) => Some(roll_stuck(lc, ctx, why, &mut problem).await),
        Restart::Delete(pod) => Some(restart_broker(lc, &pods_api, &pod, ctx).await?),
        Restart::AskCluster(step) => match ask_cluster(&pods, &step, ctx, &access).await {
            Roll::Go(pod) => Some(restart_broker(lc, &pods_api, &pod, ctx).await?),
            Roll::Held(why) => {
                roll_held = Some(why.clone());
                Some(why)
            }
            Roll::Stuck(why) => Some(roll_stuck(lc, ctx, why, &mut problem).await),
        },
    };
    if let Some(why) = pending {
        tracing::info!(cluster = %key(lc), %why, "restart pending");
        busy = true;
    }

    // Each is tried even if another fails.
    let voters_pushed = apply_quorum_voters(lc, &pods, replicas, voters, (ctx, &access)).await;
    let cluster_pushed = apply_cluster_config(lc, settings, &pods, replicas, (ctx, &access)).await;
    apply_dynamic_config(lc, settings, &pods, replicas, (ctx, &access)).await?;
    voters_pushed?;
    cluster_pushed?;
    unregister_error.map_or(Ok(()), Err)?;
    delete_orphaned_claims(lc, &pods, replicas, ctx).await?;
    let storage = resize_claims(lc, ctx).await;
    Ok(Outcome { problem, busy, storage, roll_held, moving: scale.moving })
}

/// Says in the status (and once in an event) that reconciliation is paused; nothing else.
async fn report_paused(lc: &LogCluster, ctx: &Context) -> Result<(), Error> {
    let status = status::paused(lc, Time(Timestamp::now()));
    if lc.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let newly = lc.status.as_ref().is_none_or(|s| s.conditions.iter().all(|c| c.type_ != status::RECONCILIATION_PAUSED));
    if newly {
        let note = format!("{} is set: the operator changes nothing until it is removed", names::PAUSE_RECONCILIATION_ANNOTATION);
        publish(ctx, lc, EventType::Normal, "ReconciliationPaused", note).await;
    }
    patch_status(lc, ctx, &status).await
}

/// Removes a one-shot annotation from the LogCluster once it has acted.
async fn remove_annotation(lc: &LogCluster, ctx: &Context, key: &str) -> Result<(), Error> {
    let api: Api<LogCluster> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let patch = json!({"metadata": {"annotations": {key: null}}});
    api.patch(&lc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// Removes the LogCluster's `strata.io/manual-rolling-update` annotation once its restart token
/// is on the pod template, so the request acts once.
async fn take_manual_roll_request(lc: &LogCluster, ctx: &Context) -> Result<(), Error> {
    remove_annotation(lc, ctx, names::MANUAL_ROLLING_UPDATE_ANNOTATION).await?;
    publish(
        ctx,
        lc,
        EventType::Normal,
        "ManualRollingUpdate",
        format!("restarting every broker, one at a time, as {} asked", names::MANUAL_ROLLING_UPDATE_ANNOTATION),
    )
    .await;
    Ok(())
}

/// Grows the wanted brokers' data claims to `storage.size` where their StorageClass allows it
/// ([`resize`]). Never fails: what goes wrong is in the report, and the rest is reconciled.
async fn resize_claims(lc: &LogCluster, ctx: &Context) -> resize::Report {
    let desired = lc.spec.storage.size.0.as_str();
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let listed = match pvc_api.list(&selector(lc)).await {
        Ok(list) => list.items,
        Err(e) => {
            let plan = resize::Plan::default();
            return resize::report(desired, &plan, &[format!("cannot list the data claims: {e}")]);
        }
    };
    let wanted: BTreeSet<String> = (0..lc.spec.replicas).map(|o| names::data_claim(lc, o)).collect();
    let claims: Vec<resize::Claim> = listed.iter().filter(|c| wanted.contains(&c.name_any())).map(observed_claim).collect();
    let sc_api: Api<StorageClass> = Api::all(ctx.client.clone());
    let mut classes = BTreeMap::new();
    for class in claims.iter().filter_map(|c| c.storage_class.clone()) {
        if classes.contains_key(&class) {
            continue;
        }
        let expansion = match sc_api.get_opt(&class).await {
            Ok(Some(sc)) if sc.allow_volume_expansion == Some(true) => Expansion::Allowed,
            Ok(Some(_)) => Expansion::NotAllowed,
            Ok(None) => Expansion::Unknown(format!("StorageClass {class} does not exist")),
            Err(e) => Expansion::Unknown(format!("cannot read StorageClass {class}: {e}")),
        };
        classes.insert(class, expansion);
    }
    let plan = resize::plan(desired, &claims, &classes);
    let mut failed = Vec::new();
    for claim in &plan.grow {
        let patch = json!({"spec": {"resources": {"requests": {"storage": desired}}}});
        match pvc_api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                publish(ctx, lc, EventType::Normal, "ResizingClaim", format!("growing {claim} to {desired}")).await;
            }
            Err(e) => failed.push(format!("{claim} could not be resized: {e}")),
        }
    }
    resize::report(desired, &plan, &failed)
}

fn observed_claim(pvc: &PersistentVolumeClaim) -> resize::Claim {
    let storage = |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        m.and_then(|m| m.get("storage")).map(|q| q.0.clone())
    };
    let spec = pvc.spec.as_ref();
    let status = pvc.status.as_ref();
    resize::Claim {
        name: pvc.name_any(),
        requested: storage(spec.and_then(|s| s.resources.as_ref()?.requests.as_ref())),
        capacity: storage(status.and_then(|s| s.capacity.as_ref())),
        bound: status.and_then(|s| s.phase.as_deref()) == Some("Bound"),
        storage_class: spec.and_then(|s| s.storage_class_name.clone()),
    }
}

/// Deletes a broker's pod (the StatefulSet controller recreates it from the current template).
/// Returns what the roll now waits for.
async fn restart_broker(lc: &LogCluster, pods_api: &Api<Pod>, pod: &str, ctx: &Context) -> Result<String, Error> {
    publish(ctx, lc, EventType::Normal, "RestartingBroker", format!("restarting {pod} to apply a new pod template")).await;
    delete_if_present(pods_api, pod).await?;
    Ok(format!("{pod} restarting"))
}

/// Reports a stopped roll (status and, once per message, a warning event). Returns what it waits for.
async fn roll_stuck(lc: &LogCluster, ctx: &Context, why: String, problem: &mut Option<Problem>) -> String {
    if !lc.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "RollStuck" && c.message == why)) {
        publish(ctx, lc, EventType::Warning, "RollStuck", why.clone()).await;
    }
    problem.get_or_insert(Problem::RollStuck(why.clone()));
    why
}

/// What the cluster says about the next restart of a roll.
enum Roll {
    Go(String),
    Held(String),
    Stuck(String),
}

/// Asks the brokers whether the next serving broker may be restarted ([`roll_safety`]): the one
/// restarted last must be back in service (bounded by the roll timeout), then the candidate (the
/// active controller last) must not take any partition below min.insync.replicas nor the quorum
/// below a caught-up majority. A broker that cannot be asked holds the roll.
async fn ask_cluster(pods: &[Pod], step: &rollout::RollStep, ctx: &Context, access: &Access) -> Roll {
    let addr_of = |name: &str| pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)).and_then(|p| access.addr(p));
    if let Some((id, pod, created)) = &step.last_restarted {
        let why_not = match addr_of(pod) {
            None => Some(format!("pod {pod} has no IP")),
            Some(addr) => match access.rejoin(&addr, *id).await {
                Ok(r) => roll_safety::not_back(*id, &r),
                Err(e) => Some(format!("broker {id} does not answer: {e}")),
            },
        };
        let since = Timestamp::now().duration_since(*created).unsigned_abs();
        match roll_safety::after_restart(*id, why_not, since, ctx.roll_timeout) {
            AfterRestart::Back => {}
            AfterRestart::Waiting(why) => return Roll::Held(why),
            AfterRestart::Stuck(why) => return Roll::Stuck(why),
        }
    }
    // The first answer names the active controller; if that is the first candidate, the next goes first.
    let Some(first) = step.candidates.first() else { return Roll::Held("no broker to restart".to_string()) };
    let (verdict, leader) = match may_restart(pods, first, access).await {
        Ok(answer) => answer,
        Err(why) => return Roll::Held(why),
    };
    let (pod, verdict) = match roll_safety::pick_candidate(&step.candidates, leader) {
        Some(other) if other != first => match may_restart(pods, other, access).await {
            Ok((verdict, _)) => (&other.1, verdict),
            Err(why) => return Roll::Held(why),
        },
        _ => (&first.1, verdict),
    };
    match verdict {
        Ok(()) => Roll::Go(pod.clone()),
        Err(why) => Roll::Held(why),
    }
}

/// Asks broker `id` (pod `pod`) whether it may be restarted now, and which voter to restart last.
async fn may_restart(
    pods: &[Pod],
    (id, pod): &(i32, String),
    access: &Access,
) -> Result<(Result<(), String>, Option<i32>), String> {
    let addr = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod))
        .and_then(|p| access.addr(p))
        .ok_or_else(|| format!("pod {pod} has no IP"))?;
    let (partitions, quorum) =
        access.roll_check(&addr, *id).await.map_err(|e| format!("cannot ask broker {id} whether it may restart: {e}"))?;
    let leader = quorum.as_ref().and_then(roll_safety::deferred_leader);
    Ok((roll_safety::may_restart(*id, &partitions, quorum.as_ref()), leader))
}

/// A client of the cluster and where the replicas are, through the ready brokers.
async fn ask_where_replicas_are(lc: &LogCluster, pods: &[Pod], access: &Access) -> Result<(strata_client::Client, View), String> {
    let addrs = access.ready_brokers(lc, pods);
    if addrs.is_empty() {
        return Err("no broker is ready".to_string());
    }
    let mut client = access.client(addrs).await.map_err(|e| e.to_string())?;
    let view = kafka_admin::cluster_view(&mut client).await.map_err(|e| e.to_string())?;
    Ok((client, view))
}

/// Sends the cluster-wide settings (replication defaults) to every ready broker that has not got
/// the current ones yet (each passes them to the controller; brokers without a shared quorum each
/// keep their own), and records the applied version on the pod.
async fn apply_cluster_config(
    lc: &LogCluster,
    settings: &BrokerSettings,
    pods: &[Pod],
    replicas: i32,
    (ctx, access): (&Context, &Access),
) -> Result<(), Error> {
    let desired = settings.cluster_wide(replicas);
    let changes = kafka_admin::cluster_changes(&desired);
    let target = BrokerPush {
        annotation: names::CLUSTER_CONFIG_ANNOTATION,
        hash: config::hash_map(&desired),
        changes: &changes,
        include_unready: false,
        cluster_wide: true,
    };
    let list: Vec<String> = desired.iter().map(|(k, v)| format!("{k}={v}")).collect();
    push_and_announce(lc, pods, replicas, (ctx, access), target, "ClusterConfigApplied", |ids| {
        format!("applied cluster-wide settings {} through brokers {ids}", list.join(", "))
    })
    .await
}

/// Sends the dynamic settings to every ready broker that has not got the current ones yet, and
/// records the applied version on the pod.
async fn apply_dynamic_config(
    lc: &LogCluster,
    settings: &BrokerSettings,
    pods: &[Pod],
    replicas: i32,
    (ctx, access): (&Context, &Access),
) -> Result<(), Error> {
    let changes = dynamic_changes(&settings.dynamic);
    let target = BrokerPush {
        annotation: names::DYNAMIC_CONFIG_ANNOTATION,
        hash: settings.dynamic_hash(),
        changes: &changes,
        include_unready: false,
        cluster_wide: false,
    };
    push_and_announce(lc, pods, replicas, (ctx, access), target, "ConfigApplied", |ids| {
        format!("applied dynamic settings (retention etc.) to brokers {ids} without restart")
    })
    .await
}

/// In `PodIP` and `Explicit` modes, tells every running broker (ready or not: see
/// [`push_target`]) the voters' current addresses (`controller.quorum.voters`) once every voter
/// has one; `PodDNS` needs no push (the rendered names are final).
async fn apply_quorum_voters(
    lc: &LogCluster,
    pods: &[Pod],
    replicas: i32,
    voters: i32,
    (ctx, access): (&Context, &Access),
) -> Result<(), Error> {
    let Some(value) = membership::runtime_voters(lc, pods, voters) else {
        return Ok(());
    };
    let changes = [ConfigChange::Set(broker_contract::CONTROLLER_QUORUM_VOTERS.to_string(), value.clone())];
    let target = BrokerPush {
        annotation: names::QUORUM_VOTERS_ANNOTATION,
        hash: hash_str(&value),
        changes: &changes,
        include_unready: true,
        cluster_wide: false,
    };
    push_and_announce(lc, pods, replicas, (ctx, access), target, "QuorumVotersApplied", |ids| {
        format!("told brokers {ids} the controller quorum voters: {value}")
    })
    .await
}

/// Unregisters `ids` (brokers a scale-down removed, pods gone) through the first ready broker
/// that answers. Returns the ids done and the first failure; with no ready broker, nothing
/// happens (retried on a later pass).
async fn unregister_brokers(
    lc: &LogCluster,
    pods: &[Pod],
    replicas: i32,
    ids: &[i32],
    (ctx, access): (&Context, &Access),
) -> (Vec<(i32, Unregistration)>, Option<Error>) {
    if ids.is_empty() {
        return (Vec::new(), None);
    }
    let sts = names::statefulset(lc);
    let mut done = Vec::new();
    let mut error = None;
    for pod in pods.iter().filter(|p| is_ready(p) && !is_terminating(p)) {
        let (Some(node), Some(addr)) = (names::ordinal_of(&sts, &pod.name_any()).filter(|o| *o < replicas), access.addr(pod))
        else {
            continue;
        };
        error = None;
        let mut unreachable = false;
        for &id in ids {
            match access.unregister_broker(&addr, id).await {
                Ok(outcome) => done.push((id, outcome)),
                // This broker cannot be asked: the next ready one may.
                Err(source @ (AdminError::Connect { .. } | AdminError::Timeout { .. })) if done.is_empty() => {
                    tracing::info!(broker = id, via = node, error = %source, "cannot unregister a removed broker through this one");
                    error = Some(Error::Admin { node, source });
                    unreachable = true;
                    break;
                }
                Err(source) => {
                    tracing::warn!(broker = id, via = node, error = %source, "could not unregister a removed broker");
                    error = Some(Error::Admin { node, source });
                    break;
                }
            }
        }
        if unreachable {
            continue;
        }
        break;
    }
    if !done.is_empty() {
        let describe = |(id, outcome): &(i32, Unregistration)| match outcome {
            Unregistration::Removed => format!("{id}"),
            Unregistration::NotRegistered => format!("{id} (was not registered)"),
            Unregistration::Unsupported => format!("{id} (the brokers keep no registrations)"),
        };
        let list: Vec<String> = done.iter().map(describe).collect();
        publish(ctx, lc, EventType::Normal, "BrokersUnregistered", format!("unregistered removed brokers {}", list.join(", ")))
            .await;
    }
    (done, error)
}

/// Pushes `target` to the brokers and records an event naming the brokers (comma-separated ids)
/// that got it; the first push error, if any, is returned after the event.
async fn push_and_announce(
    lc: &LogCluster,
    pods: &[Pod],
    replicas: i32,
    (ctx, access): (&Context, &Access),
    target: BrokerPush<'_>,
    reason: &str,
    describe: impl FnOnce(&str) -> String,
) -> Result<(), Error> {
    let (applied, error) = push_to_brokers(lc, pods, replicas, (ctx, access), target).await;
    if !applied.is_empty() {
        let ids: Vec<String> = applied.iter().map(i32::to_string).collect();
        publish(ctx, lc, EventType::Normal, reason, describe(&ids.join(","))).await;
    }
    error.map_or(Ok(()), Err)
}

/// Config changes for running brokers, and the pod annotation that records (as `hash`) which
/// version a broker has got.
struct BrokerPush<'a> {
    annotation: &'static str,
    hash: String,
    changes: &'a [ConfigChange],
    /// Also send to brokers that are not ready (see [`push_target`]).
    include_unready: bool,
    /// The changes are for every broker (the cluster-wide default resource), not the one asked.
    cluster_wide: bool,
}

/// Whether a pod should get a push recorded as `hash` in `annotation`: a wanted broker
/// (ordinal below `replicas`), not terminating, with an IP, not recorded as having it, and ready
/// unless `include_unready`. The voters need it unready too: a broker that is not ready until
/// its quorum forms, which in PodIP mode needs these addresses, would otherwise never get them.
/// Returns the broker id and the address's host.
fn push_target<'p>(
    sts: &str,
    pod: &'p Pod,
    replicas: i32,
    annotation: &str,
    hash: &str,
    include_unready: bool,
) -> Option<(i32, &'p str)> {
    let node = names::ordinal_of(sts, pod.metadata.name.as_deref()?).filter(|o| *o < replicas)?;
    let wanted = !is_terminating(pod) && (include_unready || is_ready(pod));
    let done = pod.annotations().get(annotation).map(String::as_str) == Some(hash);
    let ip = pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    (wanted && !done).then_some((node, ip))
}

/// Sends `target.changes` to every broker [`push_target`] picks, and records it. Returns the
/// brokers reached and the first failure (a broker that is not ready may not listen yet: its
/// failures are retried on a later pass without being errors).
async fn push_to_brokers(
    lc: &LogCluster,
    pods: &[Pod],
    replicas: i32,
    (ctx, access): (&Context, &Access),
    target: BrokerPush<'_>,
) -> (Vec<i32>, Option<Error>) {
    let BrokerPush { annotation, hash, changes, include_unready, cluster_wide } = target;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let sts = names::statefulset(lc);
    let mut first_error = None;
    let mut applied = Vec::new();
    for pod in pods {
        let Some((node, ip)) = push_target(&sts, pod, replicas, annotation, &hash, include_unready) else {
            continue;
        };
        let name = pod.name_any();
        let addr = access.addr_at(ip);
        let resource = if cluster_wide { ConfigResource::BrokerDefault } else { ConfigResource::Broker(node) };
        match access.alter_broker_configs(&addr, &resource, changes).await {
            Ok(()) => {
                let patch = json!({"metadata": {"annotations": {annotation: hash}}});
                match pods_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => applied.push(node),
                    Err(e) => {
                        first_error.get_or_insert(e.into());
                    }
                }
            }
            Err(source) if !is_ready(pod) => {
                tracing::debug!(pod = %name, error = %source, %annotation, "broker not ready for its settings yet");
            }
            Err(source) => {
                tracing::warn!(pod = %name, error = %source, %annotation, "could not change broker settings");
                first_error.get_or_insert(Error::Admin { node, source });
            }
        }
    }
    (applied, first_error)
}

/// Makes, renews and re-issues the cluster's certificates (`cluster_ca`) and stores them. Secrets are
/// read by name only: the operator may not list the namespace's Secrets.
async fn apply_certificates(lc: &LogCluster, brokers: i32, ctx: &Context) -> Result<cluster_ca::Material, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let ca = api.get_opt(&names::cluster_ca(lc)).await?;
    let broker_certs = api.get_opt(&names::broker_certs(lc)).await?;
    let operator = api.get_opt(&names::operator_cert(lc)).await?;
    let stored = builders::stored_certificates(ca.as_ref(), broker_certs.as_ref(), operator.as_ref());
    let days = |d: i64| time::Duration::days(d);
    let ca_spec = &lc.spec.certificate_authority;
    let validity = cluster_ca::Validity {
        ca: days(ca_spec.validity_days),
        leaf: days(ca_spec.validity_days),
        renew_before: days(ca_spec.renewal_days),
    };
    let material = cluster_ca::converge(lc, brokers, &stored, time::OffsetDateTime::now_utc(), validity)
        .map_err(|e| Error::Invalid(format!("secret {}: {e}", names::cluster_ca(lc))))?;
    if material.changes.is_empty() {
        return Ok(material);
    }
    // The CA first: a crash after it leaves leaves that the next reconcile re-issues, never leaves of a CA
    // that was not stored.
    apply_object(&api, &builders::cluster_ca_secret(lc, &material)).await?;
    apply_object(&api, &builders::cluster_ca_cert_secret(lc, &material)).await?;
    apply_object(&api, &builders::broker_certs_secret(lc, &material)).await?;
    apply_object(&api, &builders::operator_cert_secret(lc, &material)).await?;
    publish(ctx, lc, EventType::Normal, "CertificatesUpdated", material.changes.join("; ")).await;
    Ok(material)
}

/// How the operator reaches `lc`'s brokers: in a secured cluster over the brokers' own listener with the
/// operator's certificate from its Secret (made by the LogCluster's reconcile).
pub async fn admin_access(lc: &LogCluster, ctx: &Context) -> Result<Access, Error> {
    if !listeners::plan(&lc.spec.listeners).secured() {
        return Ok(Access::new(lc, Security::default(), ctx.admin_timeout));
    }
    let name = names::operator_cert(lc);
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &names::namespace(lc)).get_opt(&name).await?;
    let (cert, ca) = secret
        .as_ref()
        .and_then(builders::operator_identity)
        .ok_or_else(|| Error::Invalid(format!("Secret {name} with the operator's certificate is missing or incomplete")))?;
    operator_access(lc, &cert, &ca, ctx)
}

/// A client of `lc` through its ready brokers, as the operator reaches them.
pub async fn connect_cluster(lc: &LogCluster, ctx: &Context) -> Result<strata_client::Client, Error> {
    let access = admin_access(lc, ctx).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let addrs = access.ready_brokers(lc, &pods.list(&selector(lc)).await?.items);
    if addrs.is_empty() {
        return Err(Error::Invalid(format!("no broker of LogCluster {} is ready", lc.name_any())));
    }
    Ok(access.client(addrs).await?)
}

fn operator_access(lc: &LogCluster, cert: &KeyAndCert, ca: &str, ctx: &Context) -> Result<Access, Error> {
    // The operator dials pod IPs, which no certificate names: the chain to the cluster's CA identifies brokers.
    let tls = strata_client::tls::client_config_from_pem(ca, Some((&cert.cert, &cert.key)), false)
        .map_err(|e| Error::Invalid(format!("the operator's certificate for {}: {e}", names::cluster_name(lc))))?;
    Ok(Access::new(lc, Security { tls: Some(tls), sasl: None }, ctx.admin_timeout))
}

async fn apply_local_storage(lc: &LogCluster, ctx: &Context) -> Result<(), Error> {
    let Some(class) = builders::local_storage_class(lc) else {
        return Ok(());
    };
    apply_object(&Api::<StorageClass>::all(ctx.client.clone()), &class).await?;
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let wanted = builders::local_persistent_volumes(lc);
    for pv in &wanted {
        apply_object(&pv_api, pv).await?;
    }
    // Entries removed from storage.local: drop their volumes unless a claim still uses them.
    let wanted_names: BTreeSet<String> = wanted.iter().filter_map(|p| p.metadata.name.clone()).collect();
    for pv in pv_api.list(&cluster_scoped_selector(lc)).await?.items {
        let bound = pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some());
        if !wanted_names.contains(&pv.name_any()) && !bound {
            delete_if_present(&pv_api, &pv.name_any()).await?;
        }
    }
    Ok(())
}

async fn apply_pdb(lc: &LogCluster, ctx: &Context) -> Result<(), Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &names::namespace(lc), &ctx.pdb_resource);
    match builders::pod_disruption_budget(lc) {
        Some(pdb) => {
            let mut value = serde_json::to_value(&pdb).map_err(|e| Error::Invalid(e.to_string()))?;
            value["apiVersion"] = json!(ctx.pdb_resource.api_version);
            let name = names::cluster_name(lc);
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value)).await?;
        }
        None => {
            delete_if_present(&api, &names::cluster_name(lc)).await?;
        }
    }
    Ok(())
}

/// Creates (or removes) the ServiceMonitor. Returns a problem when one is requested but the
/// Prometheus-operator CRD is missing.
async fn apply_service_monitor(lc: &LogCluster, ctx: &Context) -> Result<Option<Problem>, Error> {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", builders::SERVICE_MONITOR_KIND);
    let resource = match kube::discovery::pinned_kind(&ctx.client, &gvk).await {
        Ok((ar, _)) => Some(ar),
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(kube::Error::Discovery(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let name = names::cluster_name(lc);
    match (lc.spec.metrics.service_monitor, resource) {
        (true, Some(ar)) => {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &names::namespace(lc), &ar);
            let sm = builders::service_monitor(lc);
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&sm)).await?;
            Ok(None)
        }
        (true, None) => Ok(Some(Problem::MissingApi(
            "metrics.serviceMonitor is set but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed; \
             install the Prometheus operator or set it to false"
                .into(),
        ))),
        (false, Some(ar)) => {
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &names::namespace(lc), &ar);
            delete_if_present(&api, &name).await?;
            Ok(None)
        }
        (false, None) => Ok(None),
    }
}

async fn delete_orphaned_claims(lc: &LogCluster, pods: &[Pod], replicas: i32, ctx: &Context) -> Result<(), Error> {
    if !lc.spec.storage.delete_claim {
        return Ok(());
    }
    let sts = names::statefulset(lc);
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    let claims: Vec<String> = pvc_api.list(&selector(lc)).await?.items.iter().map(|c| c.name_any()).collect();
    let pod_ordinals: BTreeSet<i32> = pods.iter().filter_map(|p| names::ordinal_of(&sts, p.metadata.name.as_deref()?)).collect();
    for claim in rollout::orphaned_claims(&sts, &claims, replicas, &pod_ordinals) {
        if delete_if_present(&pvc_api, &claim).await? {
            publish(
                ctx,
                lc,
                EventType::Normal,
                "DeletedClaim",
                format!("deleted {claim} of a removed broker (storage.deleteClaim)"),
            )
            .await;
        }
    }
    Ok(())
}

/// The voter count recorded on the StatefulSet, else in the LogCluster status.
fn recorded_voters(lc: &LogCluster, sts: Option<&StatefulSet>) -> Option<i32> {
    let annotation = sts.and_then(|s| s.annotations().get(names::CONTROLLER_VOTERS_ANNOTATION)).map(String::as_str);
    let in_status = lc.status.as_ref().map_or(0, |s| s.controller_voters.len());
    membership::parse_voters(annotation).or_else(|| i32::try_from(in_status).ok().filter(|n| *n >= 1))
}

/// Computes the status from the current pods and StatefulSet and writes it if it changed.
async fn write_status(
    lc: &LogCluster,
    ctx: &Context,
    problem: Option<Problem>,
    storage: Option<resize::Report>,
    (roll_held, moving): (Option<String>, Option<scaling::Moving>),
) -> Result<LogClusterStatus, Error> {
    let ns = names::namespace(lc);
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns).list(&selector(lc)).await?.items;
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns).get_opt(&names::statefulset(lc)).await?;
    let update_revision = sts.as_ref().and_then(|s| s.status.as_ref()?.update_revision.clone());
    let recorded = |key: &str| sts.as_ref().and_then(|s| s.annotations().get(key)).map(String::as_str);
    let voters = match &sts {
        Some(s) => Some(membership::voter_count(recorded_voters(lc, Some(s)), s.spec.replicas, lc.spec.replicas)),
        None => recorded_voters(lc, None),
    };
    let observed = Observed {
        pods: &pods,
        update_revision: update_revision.as_deref(),
        problem,
        voters,
        to_unregister: membership::parse_ids(recorded(names::TO_UNREGISTER_ANNOTATION)).into_iter().collect(),
        storage,
        restart_token: annotations::current_restart_token(sts.as_ref()).map(str::to_string),
        roll_held,
        moving,
    };
    let new = status::compute(lc, &observed, Time(Timestamp::now()));
    if lc.status.as_ref() != Some(&new) {
        patch_status(lc, ctx, &new).await?;
    }
    Ok(new)
}

async fn patch_status(lc: &LogCluster, ctx: &Context, status: &LogClusterStatus) -> Result<(), Error> {
    let api: Api<LogCluster> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    api.patch_status(&lc.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await?;
    Ok(())
}

/// Deletion: namespaced objects go with the owner references; the finalizer handles what
/// garbage collection cannot (cluster-scoped objects) and what it must not (data, by policy).
async fn cleanup(lc: &LogCluster, ctx: &Context) -> Result<Action, Error> {
    if !lc.spec.storage.delete_claim {
        let kept = if lc.spec.storage.local.is_some() {
            "PersistentVolumeClaims, local PersistentVolumes and their StorageClass"
        } else {
            "PersistentVolumeClaims"
        };
        publish(
            ctx,
            lc,
            EventType::Normal,
            "VolumesRetained",
            format!("kept the brokers' {kept} (storage.deleteClaim is false)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let pvc_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names::namespace(lc));
    for claim in pvc_api.list(&selector(lc)).await?.items {
        delete_if_present(&pvc_api, &claim.name_any()).await?;
    }
    let pv_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    for pv in pv_api.list(&cluster_scoped_selector(lc)).await?.items {
        delete_if_present(&pv_api, &pv.name_any()).await?;
    }
    if lc.spec.storage.local.is_some() {
        delete_if_present(&Api::<StorageClass>::all(ctx.client.clone()), &names::local_storage_class(lc)).await?;
    }
    publish(ctx, lc, EventType::Normal, "VolumesDeleted", "deleted the brokers' volumes (storage.deleteClaim)".into()).await;
    Ok(Action::await_change())
}

/// Pod events map to their LogCluster through the instance label.
fn pod_owner(pod: Pod) -> Option<ObjectRef<LogCluster>> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get(names::LABEL_NAME).map(String::as_str) != Some(names::APP_NAME) {
        return None;
    }
    let instance = labels.get(names::LABEL_INSTANCE)?;
    Some(ObjectRef::new(instance).within(pod.metadata.namespace.as_deref()?))
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let client = &ctx.client;
    let owned = watcher::Config::default().labels(&format!("{}={}", names::LABEL_MANAGED_BY, FIELD_MANAGER));
    let pods = watcher::Config::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_NAME,
        names::APP_NAME,
        names::LABEL_COMPONENT,
        names::COMPONENT
    ));
    Controller::new(api::<LogCluster>(client, &namespace), watcher::Config::default())
        .owns(api::<StatefulSet>(client, &namespace), owned.clone())
        .owns(api::<ConfigMap>(client, &namespace), owned.clone())
        .owns(api::<Service>(client, &namespace), owned)
        .watches(api::<Pod>(client, &namespace), pods, pod_owner)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(cluster = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {} // logged by error_policy
                // A child changed after its LogCluster was deleted: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(%obj, "owner gone")
                }
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_targets() {
        use crate::status::tests::pod;
        let with = |name: &str, ready: bool, ip: Option<&str>, applied: Option<&str>| {
            let mut p = pod(name, "r1", ready);
            p.status.as_mut().unwrap().pod_ip = ip.map(String::from);
            if let Some(hash) = applied {
                p.metadata.annotations = Some(BTreeMap::from([("a".to_string(), hash.to_string())]));
            }
            p
        };
        let mut terminating = with("logs-1", true, Some("10.0.0.2"), None);
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        // (pod, include_unready) -> target
        let table = [
            (with("logs-0", true, Some("10.0.0.1"), None), false, Some((0, "10.0.0.1"))),
            (with("logs-0", true, Some("10.0.0.1"), Some("h")), false, None), // already has it
            (with("logs-0", true, Some("10.0.0.1"), Some("old")), false, Some((0, "10.0.0.1"))),
            (with("logs-0", false, Some("10.0.0.1"), None), false, None), // not ready: settings wait
            (with("logs-0", false, Some("10.0.0.1"), None), true, Some((0, "10.0.0.1"))), // voters do not
            (with("logs-0", false, None, None), true, None),              // no IP yet
            (with("logs-0", true, Some(""), None), true, None),
            (with("logs-3", true, Some("10.0.0.4"), None), true, None), // being scaled away
            (with("other-0", true, Some("10.0.0.9"), None), true, None),
            (terminating, true, None),
        ];
        for (p, include_unready, want) in &table {
            let got = push_target("logs", p, 3, "a", "h", *include_unready);
            assert_eq!(got, *want, "{:?} unready={include_unready}", p.metadata.name);
        }
    }

    #[test]
    fn failures_back_off_per_object_until_cleared() {
        let f = Failures::default();
        let delays: Vec<u64> = (0..3).map(|_| f.next_delay("ns/a").as_secs()).collect();
        assert_eq!(delays, [5, 10, 20]);
        assert_eq!(f.next_delay("ns/b").as_secs(), 5, "counted per object");
        f.clear("ns/a");
        assert_eq!(f.next_delay("ns/a").as_secs(), 5);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert!(backoff(u32::MAX) <= Duration::from_secs(300));
    }
}
