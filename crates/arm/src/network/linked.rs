//! Linked authorization (CONTRACT 4.2): a VNet in tenant B that uses a pool in tenant A needs,
//! besides B's token in `Authorization`, a token of the same identity for A in
//! `x-ms-authorization-auxiliary` (`Bearer t1, Bearer t2`, up to three, `,` or `;` between), and
//! that identity must hold the linked action on the pool. Every auxiliary token given must be
//! valid (else 401), whether or not the request needs it.

use axum::http::StatusCode;

use crate::auth::{Caller, PrincipalKind, authenticate};
use crate::error::ArmError;
use crate::request::Ctx;

pub const ASSOCIATE: &str =
    "Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action";
pub const DISASSOCIATE: &str =
    "Microsoft.Network/networkManagers/ipamPools/disassociateResourcesFromPool/action";

/// The request's auxiliary tokens, verified.
pub async fn auxiliary(ctx: &Ctx) -> Result<Vec<Caller>, ArmError> {
    let Some(header) = ctx.headers.get("x-ms-authorization-auxiliary") else {
        return Ok(Vec::new());
    };
    let origin = ctx.arm.identity().origin().to_owned();
    let refuse = |message: String| {
        ArmError::unauthorized("InvalidAuthenticationToken", message, &format!("{origin}/common"))
    };
    let text = header.to_str().map_err(|_| {
        refuse("The x-ms-authorization-auxiliary header is not valid text.".to_owned())
    })?;
    let entries: Vec<&str> =
        text.split([',', ';']).map(str::trim).filter(|entry| !entry.is_empty()).collect();
    if entries.len() > 3 {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAuxiliaryTokens",
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
        let aux = authenticate(&ctx.arm, token).await.map_err(|error| {
            refuse(format!(
                "Auxiliary token {} in the x-ms-authorization-auxiliary header is invalid: {}",
                at + 1,
                error.message
            ))
        })?;
        let same = match (ctx.caller.kind(), aux.kind()) {
            (PrincipalKind::Application, PrincipalKind::Application) => {
                aux.app_id().eq_ignore_ascii_case(ctx.caller.app_id())
            }
            (PrincipalKind::User, PrincipalKind::User) => {
                aux.name().eq_ignore_ascii_case(ctx.caller.name())
            }
            _ => false,
        };
        if !same {
            return Err(refuse(format!(
                "Auxiliary token {} (client '{}', tenant '{}') is not for the identity of the primary token ('{}'); all tokens must be from the same user or application.",
                at + 1,
                aux.name(),
                aux.tenant_id(),
                ctx.caller.name()
            )));
        }
        callers.push(aux);
    }
    Ok(callers)
}

/// Checks that the caller may use `linked_action` on `pool_id`, a pool in `pool_tenant`: as
/// itself in its own tenant, or through its auxiliary token for that tenant.
pub async fn authorize(
    ctx: &Ctx,
    auxiliary: &[Caller],
    primary_action: &str,
    primary_scope: &str,
    linked_action: &str,
    pool_id: &str,
    pool_tenant: &str,
) -> Result<(), ArmError> {
    let principal = if ctx.caller.tenant_id().eq_ignore_ascii_case(pool_tenant) {
        Some(ctx.caller.object_id().to_owned())
    } else {
        auxiliary
            .iter()
            .find(|aux| aux.tenant_id().eq_ignore_ascii_case(pool_tenant))
            .map(|aux| aux.object_id().to_owned())
    };
    let allowed = match principal {
        Some(principal) => {
            let assignments = ctx
                .arm
                .identity()
                .store()
                .read(move |tx| tx.role_assignments_for_principal(&principal))
                .await?;
            crate::rbac::allows(&assignments, linked_action, pool_id)
        }
        None => false,
    };
    if allowed {
        return Ok(());
    }
    Err(ArmError::new(
        StatusCode::FORBIDDEN,
        "LinkedAuthorizationFailed",
        format!(
            "The client '{}' with object id '{}' has permission to perform action '{primary_action}' on scope '{primary_scope}'; however, it does not have permission to perform action '{linked_action}' on the linked scope(s) '{pool_id}' or the linked scope(s) are invalid.",
            ctx.caller.name(),
            ctx.caller.object_id()
        ),
    ))
}
