//! The LogUser controller: keeps each user's credential (a SCRAM-SHA-512 password, or a client certificate
//! of the cluster CA) and its ACLs in the cluster and its Secret as the spec says, and reports in the status.
//! Deleting the resource removes the credential and the ACLs first (a finalizer); the Secret goes with the
//! resource (owner reference).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::ResourceExt;
use serde_json::json;
use strata_client::acl::AclFilter;
use strata_client::scram::Mechanism;

use super::crd::{AuthenticationType, LogUser, LogUserStatus};
use super::credentials::{self, PASSWORD_KEY};
use super::plan;
use crate::certs::{self, KeyAndCert};
use crate::cluster_ca::{CA_CERT_KEY, CA_KEY_KEY};
use crate::crd::LogCluster;
use crate::names::{self, FIELD_MANAGER};
use crate::reconcile;
use crate::status::Report;
use crate::{listeners, status};

/// Deleting the resource removes the user's credential and ACLs from the cluster first.
pub const FINALIZER: &str = "strata.io/user";
/// Re-check interval of a settled user: certificates near expiry are renewed, drift undone.
const IDLE_REQUEUE: Duration = Duration::from_secs(300);

use crate::cluster_resource::{self, connect, namespace, OfCluster};
pub use crate::cluster_resource::{Context, Error};

impl OfCluster for LogUser {
    const KIND: &'static str = "user";
    fn cluster(&self) -> &str {
        &self.spec.cluster
    }
}

pub async fn reconcile(lu: Arc<LogUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    cluster_resource::reconcile(lu, &ctx, FINALIZER, |event| async {
        match event {
            FinalizerEvent::Apply(lu) => apply(&lu, &ctx).await,
            FinalizerEvent::Cleanup(lu) => cleanup(&lu, &ctx).await,
        }
    })
    .await
}

/// Writes the status if it changed (a Warning event for a new refusal).
async fn report(lu: &LogUser, ctx: &Context, report: &Report) -> Result<(), Error> {
    let previous = lu.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let new = LogUserStatus {
        observed_generation: lu.metadata.generation,
        conditions: vec![report.condition(&previous.conditions, lu.metadata.generation, now)],
        username: Some(plan::principal(&lu.name_any())),
        secret: Some(lu.name_any()),
    };
    if previous == new {
        return Ok(());
    }
    let was = previous.conditions.iter().find(|c| c.type_ == status::READY);
    if !report.ready && was.is_none_or(|c| c.reason != report.reason || c.message != report.message) {
        reconcile::publish_event(&ctx.base.recorder, lu, EventType::Warning, &report.reason, report.message.clone()).await;
    }
    let api: Api<LogUser> = Api::namespaced(ctx.base.client.clone(), &namespace(lu));
    api.patch_status(&lu.name_any(), &PatchParams::default(), &Patch::Merge(json!({ "status": new }))).await?;
    Ok(())
}

async fn cluster(lu: &LogUser, ctx: &Context) -> Result<Option<LogCluster>, Error> {
    Ok(Api::<LogCluster>::namespaced(ctx.base.client.clone(), &namespace(lu)).get_opt(&lu.spec.cluster).await?)
}

async fn apply(lu: &LogUser, ctx: &Context) -> Result<Action, Error> {
    let user = lu.name_any();
    let desired =
        match plan::reserved(&user).map_or_else(|| plan::bindings(&user, lu.spec.authorization.as_ref()), |e| Err(vec![e])) {
            Ok(b) => b,
            Err(errors) => {
                let why = format!("spec rejected, nothing changed: {}", errors.join("; "));
                report(lu, ctx, &Report::not_ready("InvalidSpec", why)).await?;
                return Ok(Action::await_change());
            }
        };
    match converge(lu, &desired, ctx).await {
        Ok(message) => {
            report(lu, ctx, &Report::ready("UserReady", message)).await?;
            Ok(Action::requeue(IDLE_REQUEUE))
        }
        Err(e) => {
            let reason = match &e {
                Error::Cluster(_) => "ClusterUnavailable",
                Error::Kafka(k) if k.code().is_some() => "Refused",
                _ => "ReconcileFailed",
            };
            if let Err(status_err) = report(lu, ctx, &Report::not_ready(reason, e.to_string())).await {
                tracing::warn!(error = %status_err, "could not record the failure in the status");
            }
            Err(e)
        }
    }
}

async fn converge(
    lu: &LogUser,
    desired: &std::collections::BTreeSet<strata_client::acl::AclBinding>,
    ctx: &Context,
) -> Result<String, Error> {
    let user = lu.name_any();
    let Some(lc) = cluster(lu, ctx).await? else {
        return Err(Error::Cluster(format!("LogCluster {} does not exist in namespace {}", lu.spec.cluster, namespace(lu))));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.base.client.clone(), &namespace(lu));
    let existing = secrets.get_opt(&user).await?;
    let mut client = connect(&lc, ctx).await?;
    let conn = client.any();
    let scram = conn.describe_scram_credentials(&user).await?;
    let has_scram = scram.iter().any(|c| c.mechanism == Mechanism::Sha512.name());
    match lu.spec.authentication.type_ {
        AuthenticationType::ScramSha512 => {
            let password = credentials::text(existing.as_ref(), PASSWORD_KEY).unwrap_or_else(credentials::new_password);
            if credentials::needs_upsert(existing.as_ref(), &password, has_scram) {
                // The Secret first: a password in the cluster that no Secret holds would be lost.
                apply_secret(&secrets, &credentials::scram_secret(lu, &password, false)).await?;
                conn.upsert_scram_credential(&user, Mechanism::Sha512, &password, credentials::ITERATIONS).await?;
                apply_secret(&secrets, &credentials::scram_secret(lu, &password, true)).await?;
                reconcile::publish_event(
                    &ctx.base.recorder,
                    lu,
                    EventType::Normal,
                    "CredentialSet",
                    format!("SCRAM-SHA-512 credential of {user} set"),
                )
                .await;
            }
        }
        AuthenticationType::Tls => {
            if !listeners::plan(&lc.spec.listeners).secured() {
                return Err(Error::Cluster(format!(
                    "LogCluster {} has no listener with TLS or authentication, so no CA to sign a client certificate",
                    lu.spec.cluster
                )));
            }
            // A user switched from SCRAM to certificates keeps no password.
            for c in &scram {
                if let Some(m) = Mechanism::from_name(&c.mechanism) {
                    conn.delete_scram_credential(&user, m).await?;
                }
            }
            let ca_secret = secrets.get_opt(&names::cluster_ca(&lc)).await?;
            let ca = match (credentials::text(ca_secret.as_ref(), CA_CERT_KEY), credentials::text(ca_secret.as_ref(), CA_KEY_KEY))
            {
                (Some(cert), Some(key)) => KeyAndCert { cert, key },
                _ => return Err(Error::Cluster(format!("the cluster CA of LogCluster {} is not made yet", lu.spec.cluster))),
            };
            if let Some(cert) = user_certificate(&lc, lu, existing.as_ref(), &ca)? {
                apply_secret(&secrets, &credentials::tls_secret(lu, &cert, &ca.cert)).await?;
                reconcile::publish_event(
                    &ctx.base.recorder,
                    lu,
                    EventType::Normal,
                    "CertificateIssued",
                    format!("client certificate of {user} issued"),
                )
                .await;
            }
        }
    }
    let existing_acls = conn.describe_acls(&AclFilter::principal(&plan::principal(&user))).await?;
    let changes = plan::acl_changes(desired, &existing_acls);
    if !changes.create.is_empty() {
        for (binding, outcome) in conn.create_acls(&changes.create).await? {
            outcome.map_err(|e| Error::Cluster(format!("ACL {binding:?}: {e}")))?;
        }
    }
    if !changes.delete.is_empty() {
        let filters: Vec<AclFilter> = changes.delete.iter().map(AclFilter::exact).collect();
        for outcome in conn.delete_acls(&filters).await? {
            outcome?;
        }
    }
    let mut message = format!("{} with {} ACLs", plan::principal(&user), desired.len());
    if lu.spec.authorization.is_some() && lc.spec.authorization.is_none() {
        message.push_str(&format!("; LogCluster {} has no authorization, so the ACLs are not enforced", lu.spec.cluster));
    }
    Ok(message)
}

/// A new client certificate when the user has none, or its certificate nears expiry, names another
/// subject or was signed by another CA key.
fn user_certificate(
    lc: &LogCluster,
    lu: &LogUser,
    secret: Option<&Secret>,
    ca: &KeyAndCert,
) -> Result<Option<KeyAndCert>, Error> {
    let spec = certs::LeafSpec { common_name: lu.name_any(), dns_names: Vec::new(), server: false, client: true };
    let invalid = |e: certs::CertError| Error::Cluster(format!("the cluster CA of LogCluster {}: {e}", lu.spec.cluster));
    let ca_key_id = certs::facts(&ca.cert).map_err(invalid)?.subject_key_id;
    let existing = credentials::text(secret, credentials::USER_CERT_KEY).and_then(|pem| certs::facts(&pem).ok());
    let days = |d: i64| time::Duration::days(d);
    let v = &lc.spec.certificate_authority;
    let now = time::OffsetDateTime::now_utc();
    // The CA certificate in the Secret follows a renewed CA too.
    let stale_ca = credentials::text(secret, CA_CERT_KEY).as_deref() != Some(ca.cert.as_str());
    let renewal = certs::leaf_renewal(existing.as_ref(), &spec, ca_key_id.as_deref(), now, days(v.renewal_days));
    if !renewal.needed() && !stale_ca {
        return Ok(None);
    }
    if !renewal.needed() {
        let cert = KeyAndCert {
            cert: credentials::text(secret, credentials::USER_CERT_KEY).unwrap_or_default(),
            key: credentials::text(secret, credentials::USER_KEY_KEY).unwrap_or_default(),
        };
        return Ok(Some(cert));
    }
    certs::issue(ca, &spec, now, days(v.validity_days)).map(Some).map_err(invalid)
}

async fn apply_secret(api: &Api<Secret>, secret: &Secret) -> Result<(), Error> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(secret)).await?;
    Ok(())
}

/// Removes the user's credentials and ACLs from the cluster. A LogCluster that is gone (or being
/// deleted) took them with it.
async fn cleanup(lu: &LogUser, ctx: &Context) -> Result<Action, Error> {
    let user = lu.name_any();
    let lc = match cluster(lu, ctx).await? {
        Some(lc) if lc.metadata.deletion_timestamp.is_none() => lc,
        _ => return Ok(Action::await_change()),
    };
    let mut client = connect(&lc, ctx).await?;
    let conn = client.any();
    for c in conn.describe_scram_credentials(&user).await? {
        if let Some(m) = Mechanism::from_name(&c.mechanism) {
            conn.delete_scram_credential(&user, m).await?;
        }
    }
    for outcome in conn.delete_acls(&[AclFilter::principal(&plan::principal(&user))]).await? {
        outcome?;
    }
    reconcile::publish_event(
        &ctx.base.recorder,
        lu,
        EventType::Normal,
        "UserRemoved",
        format!("credentials and ACLs of {user} removed"),
    )
    .await;
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    cluster_resource::run::<LogUser, _, _>(ctx, namespace, shutdown, reconcile).await
}
