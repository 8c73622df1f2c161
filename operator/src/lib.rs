//! Strata operator: reconciles `LogCluster` resources into broker StatefulSets and everything
//! around them, and `LogTopic` resources into Kafka topics. Pure logic (builders, validation,
//! status, rollout decisions) is kept apart from the code that talks to the apiserver and to
//! brokers.

pub mod annotations;
pub mod broker_contract;
pub mod builders;
pub mod certs;
pub mod cluster_ca;
pub mod cluster_resource;
pub mod config;
pub mod crd;
pub mod kafka_admin;
pub mod leader;
pub mod listeners;
pub mod membership;
pub mod names;
pub mod quantity;
pub mod rebalance;
pub mod reconcile;
pub mod render;
pub mod resize;
pub mod roll_safety;
pub mod rollout;
pub mod scaling;
pub mod status;
pub mod telemetry;
pub mod topic;
pub mod user;
pub mod validation;

#[cfg(test)]
mod testing;
