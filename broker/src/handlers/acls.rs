//! CreateAcls, DescribeAcls and DeleteAcls. Creations and deletions go through the active controller into the
//! metadata log (every broker applies them); descriptions read this broker's image. Without an authorizer
//! they answer SECURITY_DISABLED, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    create_acls_response, delete_acls_response, describe_acls_response, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest,
    DeleteAclsResponse, DescribeAclsRequest, DescribeAclsResponse,
};

use super::{respond_later, s};
use crate::authorizer::{AclBinding, AclFilter, InvalidAcl, Operation, Resource};
use crate::broker::BrokerState;
use crate::controller::image::Refused;
use crate::controller::service::{ControllerReply, ControllerRequest};
use crate::errors::code;
use crate::protocol::RequestHeader;
use crate::server::{Peer, Reply};

/// Kafka's default request timeout: these requests carry none.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request is not served before looking at its contents.
fn refusal(state: &BrokerState, peer: &Peer, operation: Operation) -> Option<Refused> {
    if !state.authorizer.enabled() {
        Some(Refused::new(code::SECURITY_DISABLED, "no authorizer is configured (authorizer.class.name)"))
    } else if !state.authorizer.authorize(peer, operation, Resource::cluster()) {
        Some(Refused::new(code::CLUSTER_AUTHORIZATION_FAILED, format!("{operation} on the cluster is not allowed")))
    } else {
        None
    }
}

fn invalid(e: InvalidAcl) -> Refused {
    Refused::new(code::INVALID_REQUEST, e.0)
}

pub fn create_acls(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: CreateAclsRequest) -> Reply {
    let refused = refusal(state, peer, Operation::Alter);
    let state = state.clone();
    respond_later(header, async move {
        let parsed: Vec<Result<AclBinding, Refused>> = req
            .creations
            .iter()
            .map(|c| match &refused {
                Some(r) => Err(r.clone()),
                None => AclBinding::from_wire(
                    c.resource_type,
                    &c.resource_name,
                    c.resource_pattern_type,
                    &c.principal,
                    &c.host,
                    c.operation,
                    c.permission_type,
                )
                .map_err(invalid),
            })
            .collect();
        let bindings: Vec<AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let committed = match bindings.is_empty() {
            true => Ok(()),
            false => state.controller.call(ControllerRequest::CreateAcls { bindings }, TIMEOUT).await.map(|_| ()),
        };
        let results = parsed
            .into_iter()
            .map(|p| {
                let result = create_acls_response::AclCreationResult::default();
                match p.and_then(|_| committed.clone()) {
                    Ok(()) => result,
                    Err(e) => result.with_error_code(e.code).with_error_message(Some(s(e.message))),
                }
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    })
}

pub fn describe_acls(state: &BrokerState, peer: &Peer, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    let filter = match (refusal(state, peer, Operation::Describe), filter) {
        (Some(e), _) => return DescribeAclsResponse::default().with_error_code(e.code).with_error_message(Some(s(e.message))),
        (None, Err(e)) => {
            return DescribeAclsResponse::default().with_error_code(code::INVALID_REQUEST).with_error_message(Some(s(e.0)))
        }
        (None, Ok(f)) => f,
    };
    let image = state.image();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<describe_acls_response::AclDescription>> = BTreeMap::new();
    for (_, b) in image.acls.matching(&filter) {
        by_resource.entry((b.resource_type.code(), &b.resource_name, b.pattern_type.code())).or_default().push(
            describe_acls_response::AclDescription::default()
                .with_principal(s(b.principal.clone()))
                .with_host(s(b.host.clone()))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code()),
        );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            describe_acls_response::DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub fn delete_acls(state: &Arc<BrokerState>, peer: &Peer, header: &RequestHeader, req: DeleteAclsRequest) -> Reply {
    let refused = refusal(state, peer, Operation::Alter);
    let state = state.clone();
    respond_later(header, async move {
        let parsed: Vec<Result<AclFilter, Refused>> = req
            .filters
            .iter()
            .map(|f| match &refused {
                Some(r) => Err(r.clone()),
                None => AclFilter::from_wire(
                    f.resource_type_filter,
                    f.resource_name_filter.as_deref(),
                    f.pattern_type_filter,
                    f.principal_filter.as_deref(),
                    f.host_filter.as_deref(),
                    f.operation,
                    f.permission_type,
                )
                .map_err(invalid),
            })
            .collect();
        let filters: Vec<AclFilter> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let count = filters.len();
        let mut deleted = match count {
            0 => Ok(vec![]),
            _ => match state.controller.call(ControllerRequest::DeleteAcls { filters }, TIMEOUT).await {
                Ok(ControllerReply::DeletedAcls(d)) if d.len() == count => Ok(d),
                Ok(other) => Err(Refused::new(code::UNKNOWN_SERVER_ERROR, format!("unexpected controller answer {other:?}"))),
                Err(e) => Err(e),
            },
        }
        .map(Vec::into_iter);
        let filter_results = parsed
            .into_iter()
            .map(|p| {
                let result = delete_acls_response::DeleteAclsFilterResult::default();
                let bindings = p.and_then(|_| match &mut deleted {
                    Ok(each) => Ok(each.next().unwrap_or_default()),
                    Err(e) => Err(e.clone()),
                });
                match bindings {
                    Ok(bindings) => result.with_matching_acls(bindings.iter().map(matching_acl).collect()),
                    Err(e) => result.with_error_code(e.code).with_error_message(Some(s(e.message))),
                }
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(filter_results)
    })
}

fn matching_acl(b: &AclBinding) -> delete_acls_response::DeleteAclsMatchingAcl {
    delete_acls_response::DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(s(b.resource_name.clone()))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(s(b.principal.clone()))
        .with_host(s(b.host.clone()))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}
