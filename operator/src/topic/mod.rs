//! Topics as resources: the `LogTopic` custom resource and its controller, which creates and
//! changes Kafka topics through the shared admin client.

pub mod claim;
pub mod controller;
pub mod crd;
pub mod kafka;
pub mod plan;
pub mod replicas;
pub mod spec;
pub mod status;

#[cfg(test)]
mod testing;
