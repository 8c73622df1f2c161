//! Sends the ISR changes partition leaders decide to the active controller (Kafka's AlterPartitionManager),
//! one task, in order; a partition has at most one change in flight (see [`crate::partition`]). It also runs
//! the periodic check for ISR members that stopped keeping up (replica.lag.time.max.ms).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::controller::service::{ControllerReply, ControllerRequest};
use crate::controller::Controller;
use crate::metrics::IsrMetrics;
use crate::partition::{IsrChange, Partition};
use crate::replica::ReplicaManager;

/// Where partitions hand their ISR changes.
#[derive(Clone)]
pub struct IsrChanges {
    tx: mpsc::UnboundedSender<(IsrChange, Arc<Partition>)>,
}

impl IsrChanges {
    pub fn new() -> (IsrChanges, mpsc::UnboundedReceiver<(IsrChange, Arc<Partition>)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (IsrChanges { tx }, rx)
    }

    pub fn send(&self, change: IsrChange, partition: Arc<Partition>) {
        if let Err(mpsc::error::SendError((change, partition))) = self.tx.send((change, partition)) {
            partition.isr_change_failed(&change);
        }
    }
}

/// Sends each change and, on failure, lets the partition ask again. The controller's answer is applied to
/// the partition by the publisher once this broker applied the metadata log up to it.
pub async fn run(
    controller: Arc<Controller>,
    node_id: i32,
    mut changes: mpsc::UnboundedReceiver<(IsrChange, Arc<Partition>)>,
    timeout: Duration,
    metrics: IsrMetrics,
) {
    while let Some((change, partition)) = changes.recv().await {
        let Some(broker_epoch) = controller.image().brokers.get(&node_id).map(|b| b.epoch) else {
            partition.isr_change_failed(&change);
            continue;
        };
        let req = ControllerRequest::AlterPartition {
            broker_id: node_id,
            broker_epoch,
            topic_id: change.topic_id,
            partition: change.tp.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change.new_isr.clone(),
        };
        match controller.call(req, timeout).await {
            Ok(ControllerReply::Partition { isr, .. }) => {
                tracing::info!(partition = %change.tp, ?isr, "the controller changed the ISR");
                // Normally the publisher already applied it; if the answer was a no-op, ask again later.
                if isr != change.new_isr {
                    partition.isr_change_failed(&change);
                } else if change.expands {
                    metrics.expands.inc();
                } else {
                    metrics.shrinks.inc();
                }
            }
            Ok(other) => {
                tracing::warn!(answer = ?other, "unexpected answer to AlterPartition");
                metrics.failed.inc();
                partition.isr_change_failed(&change);
            }
            Err(e) => {
                tracing::info!(partition = %change.tp, error = %e, "the controller refused an ISR change");
                metrics.failed.inc();
                partition.isr_change_failed(&change);
            }
        }
    }
}

/// Every half `lag_max`, shrinks the ISR of the partitions whose followers stopped keeping up.
pub async fn check_lagging(
    replicas: Arc<ReplicaManager>,
    changes: IsrChanges,
    lag_max: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let period = (lag_max / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        for partition in replicas.leaders() {
            if let Some(change) = partition.shrink_if_lagging(lag_max.as_millis() as i64) {
                changes.send(change, partition);
            }
        }
    }
}
