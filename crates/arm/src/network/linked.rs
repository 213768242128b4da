//! Linked authorization (CONTRACT 4.2): a VNet in tenant B that uses a pool in tenant A needs,
//! besides B's token in `Authorization`, a token for A in `x-ms-authorization-auxiliary`
//! (`Bearer t1, Bearer t2`, up to three, `,` or `;` between) whose identity holds the linked
//! action on the pool. Every auxiliary token given must be valid (else 401), whether or not the
//! request needs it. Taking space (associate) needs, for an application, its own token for the
//! pool's tenant, and for a user a user token of that tenant; giving it back (disassociate)
//! accepts any identity of the pool's tenant that holds the action, as in the seeds' removal
//! step, where a user of A releases what an application of B took (docs/network.md).

use std::collections::HashMap;

use store::authorization::RoleAssignmentRecord;

use crate::auth::{Caller, PrincipalKind, authenticate};
use crate::error::{ArmError, ErrorCode};
use crate::request::Ctx;
use crate::telemetry::{self, Refusal};

pub const ASSOCIATE: &str =
    "Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action";
pub const DISASSOCIATE: &str =
    "Microsoft.Network/networkManagers/ipamPools/disassociateResourcesFromPool/action";

/// The request's auxiliary tokens, verified.
pub async fn auxiliary(ctx: &Ctx) -> Result<Vec<Caller>, ArmError> {
    verify_auxiliary(ctx).await.map_err(|error| telemetry::refused(Refusal::Auxiliary, error))
}

async fn verify_auxiliary(ctx: &Ctx) -> Result<Vec<Caller>, ArmError> {
    let mut headers = ctx.headers.get_all("x-ms-authorization-auxiliary").iter();
    let Some(header) = headers.next() else {
        return Ok(Vec::new());
    };
    // One header carries every auxiliary token; a second one would otherwise go unchecked.
    if headers.next().is_some() {
        return Err(ArmError::new(
            ErrorCode::InvalidAuxiliaryTokens,
            "The x-ms-authorization-auxiliary header appears more than once; send every auxiliary token in one header, separated by commas.",
        ));
    }
    let origin = ctx.arm.identity().origin().to_owned();
    let refuse = |message: String| {
        ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationToken,
            message,
            &format!("{origin}/common"),
        )
    };
    let text = header.to_str().map_err(|_| {
        refuse("The x-ms-authorization-auxiliary header is not valid text.".to_owned())
    })?;
    let entries: Vec<&str> =
        text.split([',', ';']).map(str::trim).filter(|entry| !entry.is_empty()).collect();
    if entries.len() > 3 {
        return Err(ArmError::new(
            ErrorCode::InvalidAuxiliaryTokens,
            format!(
                "The x-ms-authorization-auxiliary header carries {} tokens; at most 3 are allowed.",
                entries.len()
            ),
        ));
    }
    let mut callers = Vec::new();
    for (at, entry) in entries.iter().enumerate() {
        let Some(token) = entry.strip_prefix("Bearer ").map(str::trim) else {
            return Err(refuse(format!(
                "Auxiliary token {} is not of the form 'Bearer <token>' (EncryptedBearer is not supported).",
                at + 1
            )));
        };
        let aux = authenticate(&ctx.arm, token, &ctx.ticket).await.map_err(|error| {
            refuse(format!(
                "Auxiliary token {} in the x-ms-authorization-auxiliary header is invalid: {}",
                at + 1,
                error.message
            ))
        })?;
        callers.push(aux);
    }
    Ok(callers)
}

/// A linked check: the action needed on the pool, and what the request does itself.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// Whether the auxiliary token must be of the caller's own identity.
    pub same_identity: bool,
    pub primary_action: &'a str,
    pub primary_scope: &'a str,
    pub action: &'a str,
}

/// Checks that the caller may use the linked action on `pool_id`, a pool in `pool_tenant`: as
/// itself in its own tenant, or through an auxiliary token for that tenant. `assignments` has
/// the role assignments of the caller and of each auxiliary principal, by object id.
pub fn authorize(
    ctx: &Ctx,
    auxiliary: &[Caller],
    assignments: &HashMap<String, Vec<RoleAssignmentRecord>>,
    check: &Check<'_>,
    pool_id: &str,
    pool_tenant: &str,
) -> Result<(), ArmError> {
    let principal = if ctx.caller.tenant_id().eq_ignore_ascii_case(pool_tenant) {
        Some(ctx.caller.object_id())
    } else {
        auxiliary
            .iter()
            .filter(|aux| aux.tenant_id().eq_ignore_ascii_case(pool_tenant))
            .find(|aux| !check.same_identity || same_identity_as(&ctx.caller, aux))
            .map(Caller::object_id)
    };
    let allowed = principal
        .and_then(|principal| assignments.get(principal))
        .is_some_and(|held| crate::rbac::allows(held, check.action, pool_id));
    if allowed {
        return Ok(());
    }
    let (primary_action, primary_scope, linked_action) =
        (check.primary_action, check.primary_scope, check.action);
    Err(telemetry::refused(
        Refusal::Linked,
        ArmError::new(
            ErrorCode::LinkedAuthorizationFailed,
            format!(
                "The client '{}' with object id '{}' has permission to perform action '{primary_action}' on scope '{primary_scope}'; however, it does not have permission to perform action '{linked_action}' on the linked scope(s) '{pool_id}' or the linked scope(s) are invalid.",
                ctx.caller.name(),
                ctx.caller.object_id()
            ),
        ),
    ))
}

/// Whether an auxiliary token may lend its rights to the primary one for taking space: an
/// application must be the same application (the multi-tenant app of the CLI flow); a user may
/// be any user of the pool's tenant, because crosspool has no guest accounts — a person who
/// works in two tenants has a user in each (the portal flow signs in to each).
fn same_identity_as(primary: &Caller, aux: &Caller) -> bool {
    match (primary.kind(), aux.kind()) {
        (PrincipalKind::Application, PrincipalKind::Application) => {
            aux.app_id().eq_ignore_ascii_case(primary.app_id())
        }
        (PrincipalKind::User, PrincipalKind::User) => true,
        _ => false,
    }
}
