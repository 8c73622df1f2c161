//! strata-broker: a Kafka-compatible broker over the strata-storage engine.

pub mod alloc_guard;
pub mod alter_partition;
pub mod authorizer;
pub mod broker;
pub mod config;
pub mod config_ops;
pub mod controller;
pub mod episode;
pub mod errors;
pub mod fetch_response;
pub mod fetcher;
pub mod frame;
pub mod group;
pub mod handlers;
pub mod http;
pub mod lifecycle;
pub mod log_dir_space;
pub mod metrics;
pub mod node_stats;
pub mod partition;
pub mod producer_ids;
pub mod protocol;
pub mod publisher;
pub mod replica;
pub mod resources;
pub mod sasl;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod topics;
pub mod tune;
pub mod warmup;

#[global_allocator]
static GLOBAL: alloc_guard::GuardedAlloc = alloc_guard::GuardedAlloc;
