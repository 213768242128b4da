//! The checks of a VNet write before its transaction, on what one read transaction finds:
//! auxiliary tokens only for the linked pools' tenants, the linked permission on each pool the
//! write associates with or releases from, each asked pool existing and (when the allocation is
//! new or grows) in a manager whose scope holds the VNet's subscription, and one pool per IP
//! family.

use std::collections::HashMap;

use ipam::prefix::Family;
use store::authorization::RoleAssignmentRecord;
use store::error::StoreError;

use super::spec::{PoolAsk, VnetSpec, manager_of};
use crate::auth::Caller;
use crate::error::{ArmError, ErrorCode};
use crate::network::docs;
use crate::network::{linked, managers};
use crate::request::Ctx;
use crate::telemetry::{self, Refusal};

/// Refuses the write unless the caller, with its auxiliary tokens, may link the VNet `id` to the
/// pools `associate` takes space from and `release` gives it back to, and the pools asked of can
/// hold it.
pub(super) async fn check(
    ctx: &Ctx,
    id: &str,
    spec: &VnetSpec,
    associate: &[String],
    release: &[String],
    auxiliary: &[Caller],
) -> Result<(), ArmError> {
    let found = find(ctx, id, spec, associate, release, auxiliary).await?;
    let tenant_of = |pool_id: &str| -> Result<String, ArmError> {
        found.tenants.get(pool_id).cloned().flatten().ok_or_else(|| pool_not_found(pool_id))
    };
    // Auxiliary tokens are for the tenants of the pools the request links to; one for any other
    // tenant is refused, as ARM refuses a token it cannot use.
    let linked_tenants = associate
        .iter()
        .chain(release)
        .map(|pool| tenant_of(pool))
        .collect::<Result<Vec<_>, _>>()?;
    if !linked_tenants.is_empty()
        && let Some(stray) = auxiliary
            .iter()
            .find(|aux| !linked_tenants.iter().any(|t| t.eq_ignore_ascii_case(aux.tenant_id())))
    {
        let origin = ctx.arm.identity().origin();
        let refusal = ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationTokenTenant,
            format!(
                "The auxiliary token of client '{}' is from tenant '{}', which owns none of the resources this request links to (tenant(s) '{}').",
                stray.name(),
                stray.tenant_id(),
                linked_tenants.join("', '")
            ),
            &format!("{origin}/{}", linked_tenants[0]),
        );
        return Err(telemetry::refused(Refusal::Auxiliary, refusal));
    }
    let primary_action = "Microsoft.Network/virtualNetworks/write";
    for (pools, action, same_identity) in
        [(associate, linked::ASSOCIATE, true), (release, linked::DISASSOCIATE, false)]
    {
        for pool_id in pools {
            let check = linked::Check { same_identity, primary_action, primary_scope: id, action };
            linked::authorize(
                ctx,
                auxiliary,
                &found.assignments,
                &check,
                pool_id,
                &tenant_of(pool_id)?,
            )?;
        }
    }
    // Every pool asked of must exist, be in a manager whose scope holds this VNet's
    // subscription (for new or grown allocations), and no two may share an IP family.
    let facts = found.facts?;
    for (at, fact) in facts.iter().enumerate() {
        if facts[..at].iter().any(|other| other.family == fact.family) {
            return Err(ArmError::new(
                ErrorCode::OnlyOneAssociationOfEachIpTypeAllowed,
                format!(
                    "Only one association of each IP type is allowed: two pools of this virtual network are {}.",
                    fact.family.arm_name()
                ),
            ));
        }
    }
    Ok(())
}

/// What the checks before the transaction found out about a pool.
struct PoolFacts {
    family: Family,
}

/// What the checks before a VNet write read from the store, in one read transaction.
struct Found {
    /// The tenant owning each linked pool's subscription, by the pool id as written.
    tenants: HashMap<String, Option<String>>,
    /// Role assignments of the caller and of each auxiliary principal, by object id.
    assignments: HashMap<String, Vec<RoleAssignmentRecord>>,
    /// The pools asked of, or the first reason one can't be used.
    facts: Result<Vec<PoolFacts>, ArmError>,
}

/// Reads, in one transaction, what the checks of a VNet write need: the linked pools' tenants,
/// the role assignments of the caller and its auxiliary principals, and the pools' facts.
async fn find(
    ctx: &Ctx,
    vnet_id: &str,
    spec: &VnetSpec,
    associate: &[String],
    release: &[String],
    auxiliary: &[Caller],
) -> Result<Found, ArmError> {
    let linked: Vec<String> = associate.iter().chain(release).cloned().collect();
    // The caller's assignments are the request's; only the auxiliary principals' are read.
    let principals: Vec<String> = auxiliary.iter().map(|aux| aux.object_id().to_owned()).collect();
    let (caller, caller_assignments) =
        (ctx.caller.object_id().to_owned(), ctx.role_assignments().await?.to_vec());
    let (vnet_subscription, vnet_tenant) =
        (docs::subscription_of(vnet_id), ctx.caller.tenant_id().to_owned());
    let (asks, touched) = (spec.asks.clone(), associate.to_vec());
    Ok(ctx
        .read(move |tx| {
            let mut tenants = HashMap::new();
            for pool_id in &linked {
                let subscription = tx.subscription_get(&docs::subscription_of(pool_id))?;
                tenants.insert(pool_id.clone(), subscription.map(|s| s.tenant_id));
            }
            let mut assignments = HashMap::from([(caller.clone(), caller_assignments.clone())]);
            for principal in &principals {
                assignments
                    .insert(principal.clone(), tx.role_assignments_for_principal(principal)?);
            }
            let facts = pool_facts(tx, &asks, &touched, &vnet_subscription, &vnet_tenant)?;
            Ok::<_, StoreError>(Found { tenants, assignments, facts })
        })
        .await?)
}

/// The asked pools' families; a pool that is missing, or (for a new or grown allocation) whose
/// manager's scope lacks the VNet's subscription, is the error.
fn pool_facts(
    tx: &mut store::ReadTx<'_>,
    asks: &[PoolAsk],
    touched: &[String],
    vnet_subscription: &str,
    vnet_tenant: &str,
) -> Result<Result<Vec<PoolFacts>, ArmError>, StoreError> {
    let mut facts = Vec::new();
    for ask in asks {
        // A pool's record is written and removed with its document: one read tells both.
        let Some(record) = docs::pool_record(tx, &ask.pool_id)? else {
            return Ok(Err(pool_not_found(&ask.pool_id)));
        };
        if touched.iter().any(|id| id.eq_ignore_ascii_case(&ask.pool_id)) {
            let manager_id = manager_of(&ask.pool_id);
            let manager = docs::get(tx, docs::MANAGER_TYPE, manager_id)?;
            let in_scope = match &manager {
                Some(manager) => managers::in_scope(tx, manager, vnet_subscription, vnet_tenant)?,
                None => false,
            };
            if !in_scope {
                return Ok(Err(ArmError::new(
                    ErrorCode::SubscriptionNotInNetworkManagerScope,
                    format!(
                        "The subscription '{vnet_subscription}' is not in the scope of network manager '{manager_id}', which owns pool '{}'. Add the subscription to the manager's scopes, or connect it: a scope connection under the manager and a network manager connection in the subscription.",
                        ask.pool_id
                    ),
                )));
            }
        }
        facts.push(PoolFacts { family: record.family() });
    }
    Ok(Ok(facts))
}

pub(super) fn pool_not_found(pool_id: &str) -> ArmError {
    ArmError::new(
        ErrorCode::LinkedIpamPoolNotFound,
        format!(
            "Ipam API call failed with status NotFound with error message Pool with ARM ID {pool_id} not found., please check the parameters and retry."
        ),
    )
}
