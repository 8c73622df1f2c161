//! What the controllers of per-cluster resources (LogTopic, LogUser) share: their context, the finalizer
//! around each pass with a per-object back-off, and a controller that also wakes the resources of a
//! LogCluster as soon as it becomes ready (instead of after their back-off).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_client::{Client, ClientError};

use crate::crd::LogCluster;
use crate::reconcile::{self, Failures};
use crate::status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<FinalizerError<Error>>),
    #[error("{0}")]
    Kafka(#[from] ClientError),
    /// The LogCluster is missing, has no ready broker, or cannot hold the resource.
    #[error("{0}")]
    Cluster(String),
}

pub struct Context {
    pub base: Arc<reconcile::Context>,
    failures: Failures,
}

impl Context {
    pub fn new(base: Arc<reconcile::Context>) -> Self {
        Self { base, failures: Failures::default() }
    }
}

/// A resource that belongs to a LogCluster of its namespace.
pub trait OfCluster:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// What logs and metrics call it (`topic`, `user`).
    const KIND: &'static str;
    fn cluster(&self) -> &str;
}

pub fn namespace(obj: &impl ResourceExt) -> String {
    obj.namespace().unwrap_or_else(|| "default".to_string())
}

pub fn key(obj: &impl ResourceExt) -> String {
    format!("{}/{}", namespace(obj), obj.name_any())
}

/// A client of `lc` through its ready brokers.
pub async fn connect(lc: &LogCluster, ctx: &Context) -> Result<Client, Error> {
    reconcile::connect_cluster(lc, &ctx.base).await.map_err(|e| match e {
        reconcile::Error::Cluster(e) => Error::Kafka(e),
        reconcile::Error::Kube(e) => Error::Kube(e),
        other => Error::Cluster(other.to_string()),
    })
}

/// One pass: `run` applies (or, for an object being deleted, cleans up and then lets the finalizer
/// `name` go); a success clears the object's back-off.
pub async fn reconcile<K, F, Fut>(obj: Arc<K>, ctx: &Context, name: &str, run: F) -> Result<Action, Error>
where
    K: OfCluster,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let api: Api<K> = Api::namespaced(ctx.base.client.clone(), &namespace(obj.as_ref()));
    let result = finalizer(&api, name, obj.clone(), run).await.map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.failures.clear(&key(obj.as_ref()));
    }
    result
}

/// Counts the failure and retries the object after its back-off.
fn error_policy<K: OfCluster>(obj: &K, error: &Error, ctx: &Context) -> Action {
    ctx.base.metrics.reconcile_errors.with_label_values(&[K::KIND]).inc();
    let delay = ctx.failures.next_delay(&key(obj));
    tracing::warn!(kind = K::KIND, object = %key(obj), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the controller of `K` until `shutdown` resolves.
pub async fn run<K, R, RF>(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: R,
) where
    K: OfCluster,
    R: FnMut(Arc<K>, Arc<Context>) -> RF,
    RF: Future<Output = Result<Action, Error>> + Send + 'static,
{
    let client = ctx.base.client.clone();
    let (api, clusters): (Api<K>, Api<LogCluster>) = match &namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let controller = Controller::new(api, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(clusters, watcher::Config::default(), move |lc: LogCluster| {
            let ready =
                lc.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == status::READY && c.status == "True"));
            let (ns, name) = (lc.namespace(), lc.name_any());
            store
                .state()
                .iter()
                .filter(|o| ready && o.namespace() == ns && o.cluster() == name)
                .map(|o| ObjectRef::from_obj(o.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, |obj: Arc<K>, e: &Error, ctx: Arc<Context>| error_policy(obj.as_ref(), e, &ctx), ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(kind = K::KIND, object = %obj, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {} // logged by error_policy
                Err(e) => tracing::warn!(kind = K::KIND, error = %e, "controller"),
            }
        })
        .await;
}
