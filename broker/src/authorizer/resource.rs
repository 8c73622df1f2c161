//! The resource a request acts on, as handlers name it to the authorizer.

use strata_client::acl::{ResourceType, CLUSTER_NAME};

/// One resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Resource<'a> {
        Resource { resource_type: ResourceType::Topic, name }
    }

    pub fn group(name: &'a str) -> Resource<'a> {
        Resource { resource_type: ResourceType::Group, name }
    }

    pub fn transactional_id(name: &'a str) -> Resource<'a> {
        Resource { resource_type: ResourceType::TransactionalId, name }
    }

    pub fn cluster() -> Resource<'static> {
        Resource { resource_type: ResourceType::Cluster, name: CLUSTER_NAME }
    }
}
