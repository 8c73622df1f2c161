//! Consumer groups (Kafka's classic group protocol): the group state machine ([`state`], [`member`],
//! [`offsets`]), their durable form in the internal, replicated `__consumer_offsets` topic ([`records`],
//! [`store`]; the coordinator of a group is the leader of its partition), the coordinator that serves the group
//! APIs from them ([`coordinator`]), and the lag of the groups it coordinates ([`lag`]).

pub mod config;
pub mod coordinator;
pub mod lag;
pub mod member;
pub mod offsets;
pub mod records;
pub mod state;
pub mod store;

pub use config::GroupConfig;
pub use coordinator::{GroupCoordinator, Pending};
pub use store::OFFSETS_TOPIC;

/// Topics the broker writes itself (Kafka's internal topics): listed with is_internal, readable, but clients
/// may not create, delete, grow, produce to or delete records of them.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC
}
