//! Consumer groups (Kafka's classic group protocol): the group state machine ([`state`], [`member`],
//! [`offsets`]), their durable form in the internal `__consumer_offsets` log ([`records`], [`store`]), which
//! broker of a cluster coordinates which groups ([`placement`]), the coordinator that serves the group APIs
//! from them ([`coordinator`]), and the lag of the groups it coordinates ([`lag`]).

pub mod config;
pub mod coordinator;
pub mod lag;
pub mod member;
pub mod offsets;
pub mod placement;
pub mod records;
pub mod state;
pub mod store;

pub use config::GroupConfig;
pub use coordinator::{GroupCoordinator, Pending};
pub use store::OFFSETS_TOPIC;

/// Topics the broker keeps for itself: not listed, not creatable by clients.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC
}
