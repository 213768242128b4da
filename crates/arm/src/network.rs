//! `Microsoft.Network`: network managers, IPAM pools, static CIDRs, connections, virtual
//! networks and subnets.

use axum::response::Response;
use store::Timestamp;
use store::WriteTx;
use store::resource::StoredResource;

use crate::error::ArmError;
use crate::path::ResourceRef;
use crate::request::Ctx;

pub async fn handle(ctx: &Ctx, _reference: &ResourceRef) -> Result<Response, ArmError> {
    Err(crate::dispatch::not_found(&ctx.path))
}

/// Where a resource goes in a group's deletion: lower first.
pub fn deletion_rank(_resource: &StoredResource) -> u8 {
    0
}

/// What deleting a resource must also undo, in the deleting transaction.
pub fn clean_up(
    _tx: &mut WriteTx<'_>,
    _resource: &StoredResource,
    _now: Timestamp,
) -> Result<(), ArmError> {
    Ok(())
}
