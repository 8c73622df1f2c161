//! Users as resources: the `LogUser` custom resource and its controller, which keeps a user's
//! credentials and ACLs in the cluster through the shared admin client.

pub mod controller;
pub mod crd;
pub mod credentials;
pub mod plan;
