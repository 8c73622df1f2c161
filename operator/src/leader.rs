//! Leader election on a coordination.k8s.io/v1 Lease, so several operator replicas can run and
//! exactly one reconciles. Updates use the Lease's resourceVersion (optimistic concurrency), so
//! two candidates can never both win the same term.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal; a standby takes over after that.
    pub duration: Duration,
    /// How often the leader renews (well below `duration`).
    pub renew_every: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take (or keep) the lease; `transition` when it changes hands.
    Take { transition: bool },
    /// Someone else holds a valid lease.
    Wait { holder: String },
}

/// Whether `identity` may hold the lease at `now`, given its current spec. Pure.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let holder = spec.and_then(|s| s.holder_identity.as_deref()).filter(|h| !h.is_empty());
    match holder {
        None => Decision::Take { transition: true },
        Some(h) if h == identity => Decision::Take { transition: false },
        Some(h) => {
            let spec = spec.expect("holder implies spec");
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
            let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
            match renewed {
                Some(t) if t + duration > now => Decision::Wait { holder: h.to_string() },
                _ => Decision::Take { transition: true },
            }
        }
    }
}

/// The spec after `identity` takes or renews the lease.
pub fn taken(previous: Option<&LeaseSpec>, cfg: &LeaseConfig, now: Timestamp, transition: bool) -> LeaseSpec {
    let prev = previous.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.duration.as_secs().max(1) as i32),
        acquire_time: if transition { Some(MicroTime(now)) } else { prev.acquire_time.clone() },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(prev.lease_transitions.unwrap_or(0) + i32::from(transition && prev.holder_identity.is_some())),
        ..prev
    }
}

/// One attempt to take or renew. `Ok(true)`: we hold the lease until `now + duration`.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<bool> {
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(cfg.name.clone()), ..Default::default() },
                spec: Some(taken(None, cfg, now, true)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => match decide(lease.spec.as_ref(), &cfg.identity, now) {
            Decision::Wait { .. } => Ok(false),
            Decision::Take { transition } => {
                lease.spec = Some(taken(lease.spec.as_ref(), cfg, now, transition));
                // `replace` carries the resourceVersion we read: a concurrent writer makes it 409.
                match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        },
    }
}

/// Blocks until this replica is the leader.
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig) {
    let mut logged_wait = false;
    loop {
        match try_acquire(api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired leadership");
                return;
            }
            Ok(false) if !logged_wait => {
                tracing::info!(lease = %cfg.name, "another replica is leader; standing by");
                logged_wait = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: lease update failed"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// Renews until the lease can no longer be trusted, then returns: the caller must stop
/// reconciling. It gives up one renewal interval before the lease would expire (a standby may
/// take over at expiry), and bounds each attempt by that interval so a hanging apiserver
/// cannot stretch it.
pub async fn hold(api: &Api<Lease>, cfg: &LeaseConfig) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match tokio::time::timeout(cfg.renew_every, try_acquire(api, cfg)).await {
            Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
            Ok(Ok(false)) => {
                tracing::error!(lease = %cfg.name, "lease taken by another replica");
                return;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
            Err(_) => tracing::warn!("lease renewal timed out"),
        }
        if last_ok.elapsed() + cfg.renew_every >= cfg.duration {
            tracing::error!(lease = %cfg.name, "could not renew the lease in time");
            return;
        }
    }
}

/// Gives the lease up on clean shutdown so a standby takes over at once.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> kube::Result<()> {
    if let Some(mut lease) = api.get_opt(&cfg.name).await? {
        let ours = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(cfg.identity.as_str());
        if ours {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
            }
            api.replace(&cfg.name, &PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaseConfig {
        LeaseConfig {
            name: "strata-operator".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_transitions: Some(2),
            ..Default::default()
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn free_or_expired_leases_are_taken() {
        assert_eq!(decide(None, "me", t(100)), Decision::Take { transition: true });
        let mut released = held_by("other", 100);
        released.holder_identity = None;
        assert_eq!(decide(Some(&released), "me", t(101)), Decision::Take { transition: true });
        assert_eq!(decide(Some(&held_by("other", 100)), "me", t(115)), Decision::Take { transition: true });
    }

    #[test]
    fn valid_leases_of_others_are_respected_and_own_renewed() {
        assert_eq!(decide(Some(&held_by("other", 100)), "me", t(114)), Decision::Wait { holder: "other".into() });
        assert_eq!(decide(Some(&held_by("me", 100)), "me", t(500)), Decision::Take { transition: false });
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let prev = held_by("other", 100);
        let took = taken(Some(&prev), &cfg(), t(120), true);
        assert_eq!(took.holder_identity.as_deref(), Some("me"));
        assert_eq!(took.lease_transitions, Some(3));
        assert_eq!(took.acquire_time, Some(MicroTime(t(120))));
        let renewed = taken(Some(&took), &cfg(), t(125), false);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t(120))));
        assert_eq!(renewed.renew_time, Some(MicroTime(t(125))));
        assert_eq!(renewed.lease_duration_seconds, Some(15));
    }
}
