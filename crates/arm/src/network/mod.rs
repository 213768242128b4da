//! `Microsoft.Network`: network managers, IPAM pools and their static CIDRs, the two halves of a
//! cross-tenant connection, virtual networks and subnets, and the operation-status URLs their
//! long-running operations name.
//!
//! Each resource is a JSON document in the store (`store::resource`); a pool is also a pool of
//! the store's allocator, keyed by its lower-cased id, and a VNet's or static CIDR's space is an
//! allocation owned by its id. Every change to both happens in one transaction.

mod connections;
mod docs;
mod linked;
mod managers;
mod pools;
mod static_cidrs;
mod vnets;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use store::Timestamp;
use store::WriteTx;
use store::resource::StoredResource;

use crate::api_version::ApiVersions;
use crate::error::ArmError;
use crate::operation;
use crate::path::ResourceRef;
use crate::request::Ctx;

pub use docs::{MANAGER_TYPE, POOL_TYPE, STATIC_CIDR_TYPE, VNET_TYPE, ipam_error};

/// The api-versions of the network resources: every stable version from 2022-07-01 (the seeds'
/// VNet PUT) to 2026-01-01.
pub const API_VERSIONS: ApiVersions = ApiVersions::new(
    "Microsoft.Network",
    &[
        "2022-07-01",
        "2022-09-01",
        "2022-11-01",
        "2023-02-01",
        "2023-04-01",
        "2023-05-01",
        "2023-06-01",
        "2023-09-01",
        "2023-11-01",
        "2024-01-01",
        "2024-01-01-preview",
        "2024-03-01",
        "2024-05-01",
        "2024-07-01",
        "2024-10-01",
        "2025-01-01",
        "2025-03-01",
        "2025-05-01",
        "2025-07-01",
        "2026-01-01",
    ],
);

/// IPAM pools and static CIDRs exist from 2024-01-01-preview on.
pub const IPAM_API_VERSIONS: ApiVersions = ApiVersions::new(
    "Microsoft.Network/networkManagers/ipamPools",
    &[
        "2024-01-01-preview",
        "2024-05-01",
        "2024-07-01",
        "2024-10-01",
        "2025-01-01",
        "2025-03-01",
        "2025-05-01",
        "2025-07-01",
        "2026-01-01",
    ],
);

pub async fn handle(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    if !reference.namespace.eq_ignore_ascii_case("Microsoft.Network") {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for namespace '{}'. This server serves Microsoft.Network, Microsoft.Resources and Microsoft.Authorization.",
                reference.namespace
            ),
        ));
    }
    let subscription = ctx.subscription(&reference.subscription).await?.id;
    let types: Vec<String> =
        reference.types().iter().map(|kind| kind.to_ascii_lowercase()).collect();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    let names = reference.names();
    let in_group = reference.resource_group.is_some();
    match (in_group, types.as_slice(), names.len()) {
        (_, ["networkmanagers"], 0) => managers::list(ctx, reference).await,
        (true, ["networkmanagers"], 1) => managers::one(ctx, reference).await,
        (true, ["networkmanagers", "ipampools"], 1) => pools::list(ctx, reference).await,
        (true, ["networkmanagers", "ipampools"], 2) => pools::one(ctx, reference).await,
        (true, ["networkmanagers", "ipampools", "getpoolusage"], 2) => {
            pools::usage(ctx, reference).await
        }
        (true, ["networkmanagers", "ipampools", "listassociatedresources"], 2) => {
            pools::associated(ctx, reference).await
        }
        (true, ["networkmanagers", "ipampools", "staticcidrs"], 2) => {
            static_cidrs::list(ctx, reference).await
        }
        (true, ["networkmanagers", "ipampools", "staticcidrs"], 3) => {
            static_cidrs::one(ctx, reference).await
        }
        (true, ["networkmanagers", "scopeconnections"], 1) => {
            connections::scope_list(ctx, reference).await
        }
        (true, ["networkmanagers", "scopeconnections"], 2) => {
            connections::scope_one(ctx, reference).await
        }
        (false, ["networkmanagerconnections"], 0) => {
            connections::manager_list(ctx, reference).await
        }
        (false, ["networkmanagerconnections"], 1) => connections::manager_one(ctx, reference).await,
        (_, ["virtualnetworks"], 0) => vnets::list(ctx, reference).await,
        (true, ["virtualnetworks"], 1) => vnets::one(ctx, reference).await,
        (true, ["virtualnetworks", "subnets"], 1) => vnets::subnet_list(ctx, reference).await,
        (true, ["virtualnetworks", "subnets"], 2) => vnets::subnet_one(ctx, reference).await,
        (_, ["locations", "operations" | "ipampooloperations"], 2) => {
            ctx.api_version(&API_VERSIONS)?;
            operation::status(ctx, &subscription, names[1]).await
        }
        (_, ["locations", "operationresults" | "ipampooloperationresults"], 2) => {
            ctx.api_version(&API_VERSIONS)?;
            if types[1] == "ipampooloperationresults" {
                // The IPAM provider answers its Location with the status body (CONTRACT 2.3).
                return operation::status(ctx, &subscription, names[1]).await;
            }
            operation::result(ctx, &subscription, names[1]).await
        }
        _ => Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace 'Microsoft.Network'.",
                reference.types().join("/")
            ),
        )),
    }
}

/// The action string ARM checks for a request on a resource of `types` (e.g.
/// `["networkManagers", "ipamPools"]`).
pub fn action(types: &[&str], method: &Method) -> String {
    let verb = match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        Method::POST => "action",
        _ => "write",
    };
    format!("Microsoft.Network/{}/{verb}", types.join("/"))
}

/// Where a resource goes in a group's deletion: lower first. Virtual networks release their
/// space before static CIDRs, then pools (deepest first, by the caller's id-depth order), then
/// connections and managers.
pub fn deletion_rank(resource: &StoredResource) -> u8 {
    match resource.resource_type.as_str() {
        t if t.eq_ignore_ascii_case(VNET_TYPE) => 0,
        t if t.eq_ignore_ascii_case(STATIC_CIDR_TYPE) => 1,
        t if t.eq_ignore_ascii_case(POOL_TYPE) => 2,
        t if t.eq_ignore_ascii_case(MANAGER_TYPE) => 4,
        _ => 3,
    }
}

/// What deleting a resource must also undo, in the deleting transaction: a VNet's and a static
/// CIDR's allocations go back to their pools; a pool leaves the allocator (refused while it
/// still holds anything another resource group owns).
pub fn clean_up(
    tx: &mut WriteTx<'_>,
    resource: &StoredResource,
    now: Timestamp,
) -> Result<(), ArmError> {
    let change = store::pool::Change { now, request_id: "resource-group-delete" };
    let kind = resource.resource_type.as_str();
    if kind.eq_ignore_ascii_case(VNET_TYPE) || kind.eq_ignore_ascii_case(STATIC_CIDR_TYPE) {
        docs::release_all(tx, &resource.id, change)?;
    } else if kind.eq_ignore_ascii_case(POOL_TYPE) {
        pools::remove_from_allocator(tx, &resource.id, change)?;
    }
    Ok(())
}
