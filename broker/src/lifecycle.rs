//! This broker's life in the cluster, as Kafka's BrokerLifecycleManager: it registers with the active
//! controller (a new incarnation per process start; the registration's log offset is its broker epoch), then
//! heartbeats every `broker.heartbeat.interval.ms`. The controller unfences it once it has applied the log up to
//! its registration, and fences it when the heartbeats stop for `broker.session.timeout.ms` or when it says it
//! is shutting down. A stale epoch (the controller unregistered or lost it) means registering again.
//!
//! Controlled shutdown (Kafka's `controlled.shutdown.enable`): asked to leave, it heartbeats with
//! want_shutdown until the controller fenced it, which moves its leaderships to other in-sync replicas and
//! takes it out of every ISR, and this broker has acted on that; only then do its listeners close, so clients
//! see a new leader rather than a closed connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::controller::records::Endpoint;
use crate::controller::service::{ControllerReply, ControllerRequest};
use crate::controller::Controller;
use crate::errors::code;

pub struct Lifecycle {
    pub controller: Arc<Controller>,
    pub node_id: i32,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub inter_broker_listener: String,
    pub heartbeat_interval: Duration,
    /// Topics of an older release's data directory, imported before this broker registers (registering
    /// leads to deleting logs the metadata log does not know), and the files to remove afterwards.
    pub legacy: Option<(ControllerRequest, Vec<std::path::PathBuf>)>,
    /// Set once the controller unfenced this broker (it had caught up with the metadata log).
    pub caught_up: watch::Sender<bool>,
    /// Turns true when the broker wants to leave (controlled shutdown).
    pub leaving: watch::Receiver<bool>,
    /// Set once the controller fenced this broker for its shutdown and this broker acted on it.
    pub left: watch::Sender<bool>,
}

impl Lifecycle {
    /// A heartbeat may take a few intervals (an election, a slow disk) but ends well within the session.
    fn heartbeat_timeout(&self) -> Duration {
        (self.heartbeat_interval * 4).max(Duration::from_secs(1))
    }

    async fn register(&self, incarnation: Uuid, shutdown: &mut watch::Receiver<bool>) -> Option<i64> {
        loop {
            let req = ControllerRequest::RegisterBroker {
                id: self.node_id,
                incarnation,
                endpoints: self.endpoints.clone(),
                rack: self.rack.clone(),
                inter_broker_listener: self.inter_broker_listener.clone(),
            };
            match self.controller.call(req, self.heartbeat_interval * 5).await {
                Ok(ControllerReply::Registered { epoch }) => {
                    tracing::info!(epoch, "registered with the controller quorum");
                    return Some(epoch);
                }
                Ok(other) => tracing::warn!(answer = ?other, "unexpected answer to the broker registration"),
                Err(e) => tracing::info!(error = %e, "broker registration failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat_interval) => {}
                _ = shutdown.changed() => return None,
            }
        }
    }

    /// Imports the topics of an older release; false if shut down first.
    async fn import(&self, req: &ControllerRequest, files: &[std::path::PathBuf], shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            match self.controller.call(req.clone(), self.heartbeat_interval * 5).await {
                Ok(_) => match crate::topics::remove_all(files) {
                    Ok(()) => {
                        tracing::info!(files = files.len(), "imported the metadata of an older release into the metadata log");
                        return true;
                    }
                    Err(e) => tracing::error!(error = %e, "removing imported metadata files"),
                },
                Err(e) => tracing::info!(error = %e, "importing an older release's topics failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat_interval) => {}
                _ = shutdown.changed() => return false,
            }
        }
    }

    /// Registers and heartbeats until `shutdown`, then tells the controller this broker is going away (if it
    /// did not leave in a controlled shutdown already).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Some((req, files)) = &self.legacy {
            if !self.import(req, files, &mut shutdown).await {
                return;
            }
        }
        let incarnation = Uuid::new_v4();
        'register: loop {
            let Some(epoch) = self.register(incarnation, &mut shutdown).await else { return };
            loop {
                if *shutdown.borrow() {
                    if !*self.left.borrow() {
                        let req = ControllerRequest::Heartbeat {
                            id: self.node_id,
                            epoch,
                            applied: self.controller.applied(),
                            want_shutdown: true,
                        };
                        match self.controller.call_no_wait(req, Duration::from_secs(5)).await {
                            Ok(_) => tracing::info!("the controller fenced this broker for its shutdown"),
                            Err(e) => tracing::warn!(error = %e, "could not tell the controller about the shutdown"),
                        }
                    }
                    return;
                }
                let leaving = *self.leaving.borrow_and_update();
                let req = ControllerRequest::Heartbeat {
                    id: self.node_id,
                    epoch,
                    applied: self.controller.applied(),
                    want_shutdown: leaving,
                };
                // Answered once this broker acted on the result: when fenced for leaving, it leads nothing.
                match self.controller.call(req, self.heartbeat_timeout()).await {
                    Ok(ControllerReply::Heartbeat { fenced }) if leaving => {
                        if fenced {
                            self.left.send_replace(true);
                        }
                    }
                    Ok(ControllerReply::Heartbeat { fenced }) => {
                        self.caught_up.send_if_modified(|c| {
                            let changed = !*c && !fenced;
                            *c |= !fenced;
                            changed
                        });
                    }
                    Ok(other) => tracing::warn!(answer = ?other, "unexpected answer to a heartbeat"),
                    Err(e) if e.code == code::STALE_BROKER_EPOCH || e.code == code::BROKER_ID_NOT_REGISTERED => {
                        tracing::warn!(error = %e, "the controller no longer knows this registration; registering again");
                        continue 'register;
                    }
                    Err(e) => tracing::info!(error = %e, "heartbeat failed"),
                }
                if *self.left.borrow() {
                    // Fenced for good: nothing more to say until the listeners close.
                    let _ = shutdown.changed().await;
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.heartbeat_interval) => {}
                    _ = shutdown.changed() => {}
                    Ok(()) = self.leaving.changed() => {}
                }
            }
        }
    }
}
