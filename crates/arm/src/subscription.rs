//! Subscriptions: `GET /subscriptions` lists those in the token's tenant where the caller holds a
//! role at or below the subscription (as the az CLI needs: an IPAM Pool User assignment on a pool
//! makes its subscription visible); `GET /subscriptions/{id}` shows one, refusing a token of
//! another tenant with ARM's `InvalidAuthenticationTokenTenant`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use store::authorization::{SubscriptionRecord, subscription_of_scope};
use store::error::StoreError;

use crate::api_version::{ApiVersions, TENANTS_API_VERSIONS};
use crate::auth::{Caller, check_token_tenant, traced};
use crate::error::{ArmError, ErrorCode};
use crate::rbac::has_role_at_or_below;
use crate::response::json;
use crate::state::Arm;

/// The api-versions of the subscription operations: the same as the tenant list's.
pub const SUBSCRIPTIONS_API_VERSIONS: ApiVersions = TENANTS_API_VERSIONS;

/// A subscription on the wire, as the az CLI reads it.
pub fn subscription_json(subscription: &SubscriptionRecord) -> Value {
    json!({
        "id": format!("/subscriptions/{}", subscription.id),
        "subscriptionId": subscription.id,
        "tenantId": subscription.tenant_id,
        "displayName": subscription.display_name,
        "state": subscription.state,
        "subscriptionPolicies": { "locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off" },
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "tags": {},
    })
}

pub(crate) async fn list(
    State(arm): State<Arc<Arm>>,
    Query(query): Query<HashMap<String, String>>,
    caller: Caller,
) -> Response {
    traced(caller.trace(), list_for(&arm, &query, &caller).await)
}

async fn list_for(
    arm: &Arm,
    query: &HashMap<String, String>,
    caller: &Caller,
) -> Result<Response, ArmError> {
    SUBSCRIPTIONS_API_VERSIONS.check(query.get("api-version").map(String::as_str))?;
    let (principal_id, tenant_id) = (caller.object_id().to_owned(), caller.tenant_id().to_owned());
    let subscriptions = arm
        .identity()
        .store()
        .read(move |tx| {
            let assignments = tx.role_assignments_for_principal(&principal_id)?;
            let ids: BTreeSet<String> = assignments
                .iter()
                .filter_map(|assignment| subscription_of_scope(&assignment.scope))
                .collect();
            let mut visible = Vec::new();
            for id in ids {
                if let Some(subscription) = tx
                    .subscription_get(&id)?
                    .filter(|subscription| subscription.tenant_id == tenant_id)
                {
                    visible.push(subscription);
                }
            }
            Ok::<_, StoreError>(visible)
        })
        .await?;
    let value: Vec<Value> = subscriptions.iter().map(subscription_json).collect();
    Ok(json(StatusCode::OK, &json!({ "value": value })))
}

pub(crate) async fn get(
    State(arm): State<Arc<Arm>>,
    Path(subscription_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    caller: Caller,
) -> Response {
    traced(caller.trace(), get_for(&arm, &subscription_id, &query, &caller).await)
}

async fn get_for(
    arm: &Arm,
    subscription_id: &str,
    query: &HashMap<String, String>,
    caller: &Caller,
) -> Result<Response, ArmError> {
    SUBSCRIPTIONS_API_VERSIONS.check(query.get("api-version").map(String::as_str))?;
    let (lookup, principal_id) = (subscription_id.to_owned(), caller.object_id().to_owned());
    let (subscription, assignments) = arm
        .identity()
        .store()
        .read(move |tx| {
            Ok::<_, StoreError>((
                tx.subscription_get(&lookup)?,
                tx.role_assignments_for_principal(&principal_id)?,
            ))
        })
        .await?;
    let subscription = subscription.ok_or_else(|| {
        ArmError::new(
            ErrorCode::SubscriptionNotFound,
            format!("The subscription '{subscription_id}' could not be found."),
        )
    })?;
    check_token_tenant(arm, caller, &subscription)?;
    let scope = format!("/subscriptions/{}", subscription.id);
    if !has_role_at_or_below(&assignments, &scope) {
        return Err(ArmError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "The client '{}' with object id '{}' does not have authorization to perform action 'Microsoft.Resources/subscriptions/read' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                caller.app_id(),
                caller.object_id()
            ),
        ));
    }
    Ok(json(StatusCode::OK, &subscription_json(&subscription)))
}

/// `GET /tenants`: the token's tenant.
pub(crate) async fn tenants_list(
    State(arm): State<Arc<Arm>>,
    Query(query): Query<HashMap<String, String>>,
    caller: Caller,
) -> Response {
    traced(caller.trace(), tenants_for(&arm, &query, &caller).await)
}

async fn tenants_for(
    arm: &Arm,
    query: &HashMap<String, String>,
    caller: &Caller,
) -> Result<Response, ArmError> {
    TENANTS_API_VERSIONS.check(query.get("api-version").map(String::as_str))?;
    let tenant_id = caller.tenant_id().to_owned();
    let tenant = arm
        .identity()
        .store()
        .read(move |tx| tx.tenant_find(&tenant_id))
        .await?
        .ok_or_else(|| ArmError::invalid_token("the token's tenant does not exist"))?;
    let body = json!({
        "value": [{
            "id": format!("/tenants/{}", tenant.id),
            "tenantId": tenant.id,
            "countryCode": "US",
            "displayName": tenant.display_name,
            "domains": [tenant.domain],
            "tenantCategory": "Home",
            "defaultDomain": tenant.domain,
            "tenantType": "AAD",
        }]
    });
    Ok(json(StatusCode::OK, &body))
}
