//! Network managers: PUT (200/201), PATCH (tags), GET, DELETE (refused while pools exist) and
//! lists by resource group and subscription. `crossTenantScopes` shows what Connected
//! connection pairs add to the manager's scope.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::ReadTx;
use store::error::StoreError;
use store::resource::Precondition;

use super::connections::{connected_subscriptions, is_connected};
use super::docs::{self, Doc, MANAGER_TYPE, POOL_TYPE, SCOPE_CONNECTION_TYPE};
use crate::error::{ArmError, ErrorCode};
use crate::path::ResourceRef;
use crate::request::{Ctx, opt_object, opt_str, opt_strings};
use crate::response::json;

const SCOPE_ACCESSES: [&str; 4] = ["SecurityAdmin", "Connectivity", "SecurityUser", "Routing"];

/// Whether a subscription (`/subscriptions/{id}`, in `tenant`) is in a manager's scope: named
/// in its `networkManagerScopes.subscriptions` (same tenant) or connected by a pair.
pub fn in_scope(
    tx: &mut ReadTx<'_>,
    manager: &Doc,
    subscription: &str,
    tenant: &str,
) -> Result<bool, StoreError> {
    let scope = format!("/subscriptions/{}", subscription.to_ascii_lowercase());
    let own = manager.body["properties"]["networkManagerScopes"]["subscriptions"]
        .as_array()
        .is_some_and(|subscriptions| {
            subscriptions
                .iter()
                .filter_map(Value::as_str)
                .any(|s| s.trim_end_matches('/').eq_ignore_ascii_case(&scope))
        });
    if own {
        let manager_tenant = tx
            .resource_of_type(docs::MANAGER_TYPE, &manager.id)?
            .map(|stored| stored.tenant_id)
            .unwrap_or_default();
        if manager_tenant.eq_ignore_ascii_case(tenant) {
            return Ok(true);
        }
    }
    is_connected(tx, &manager.id, tenant, &scope)
}

/// A manager as served: with `crossTenantScopes` from its Connected pairs.
fn serve(tx: &mut ReadTx<'_>, doc: &Doc) -> Result<Value, StoreError> {
    let mut by_tenant: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (tenant, subscription) in connected_subscriptions(tx, &doc.id)? {
        by_tenant.entry(tenant).or_default().push(subscription);
    }
    let cross: Vec<Value> = by_tenant
        .into_iter()
        .map(|(tenant, subscriptions)| json!({"tenantId": tenant, "subscriptions": subscriptions, "managementGroups": []}))
        .collect();
    let mut body = doc.served();
    body["properties"]["networkManagerScopes"]["crossTenantScopes"] = json!(cross);
    Ok(body)
}

pub async fn list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let top = ctx.top(20, 20)?;
    let prefix = match &reference.resource_group {
        Some(_) => {
            format!("{}/providers/Microsoft.Network/networkManagers/", reference.parent_scope())
        }
        None => format!("/subscriptions/{}/", reference.subscription),
    };
    docs::paged_list(
        ctx,
        MANAGER_TYPE,
        &prefix,
        "Microsoft.Network/networkManagers/read",
        top,
        serve,
    )
    .await
}

pub async fn one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let group = reference.resource_group.as_deref().unwrap_or_default();
    let group = ctx.require_resource_group(&reference.subscription, group).await?;
    let id = format!(
        "{}/providers/Microsoft.Network/networkManagers/{}",
        group["id"].as_str().unwrap_or_default(),
        reference.names()[0]
    );
    ctx.authorize(&docs::action(&["networkManagers"], &ctx.method), &id).await?;
    match ctx.method {
        Method::GET => {
            Ok(json(StatusCode::OK, &docs::load_served(ctx, MANAGER_TYPE, &id, serve).await?))
        }
        Method::PUT | Method::PATCH => put(ctx, &id).await,
        Method::DELETE => delete(ctx, &id).await,
        _ => Err(ctx.method_not_allowed()),
    }
}

async fn put(ctx: &Ctx, id: &str) -> Result<Response, ArmError> {
    let existing = docs::load(ctx, MANAGER_TYPE, id).await?;
    let body = ctx.json_body()?;
    let tags = docs::tags(&body, existing.as_ref())?;
    let (id, properties, location) = if ctx.method == Method::PATCH {
        // PATCH changes tags only.
        let doc = existing.as_ref().ok_or_else(|| docs::not_found(MANAGER_TYPE, id))?;
        (
            doc.id.clone(),
            doc.body["properties"].clone(),
            doc.body["location"].as_str().unwrap_or_default().to_owned(),
        )
    } else {
        docs::check_name(id.rsplit('/').next().unwrap_or_default(), "network manager")?;
        let location = docs::location(&body, existing.as_ref())?;
        if opt_object(&body, "properties.networkManagerScopes")?.is_none() {
            return Err(ArmError::invalid_field("properties.networkManagerScopes", "is required"));
        }
        let subscriptions = opt_strings(&body, "properties.networkManagerScopes.subscriptions")?
            .unwrap_or_default();
        for (at, subscription) in subscriptions.iter().enumerate() {
            let parts: Vec<&str> = subscription.split('/').filter(|s| !s.is_empty()).collect();
            if parts.len() != 2 || !parts[0].eq_ignore_ascii_case("subscriptions") {
                return Err(ArmError::invalid_field(
                    &format!("properties.networkManagerScopes.subscriptions[{at}]"),
                    "must be /subscriptions/{id}",
                ));
            }
        }
        let groups = opt_strings(&body, "properties.networkManagerScopes.managementGroups")?
            .unwrap_or_default();
        let accesses =
            opt_strings(&body, "properties.networkManagerScopeAccesses")?.unwrap_or_default();
        let mut canonical = Vec::new();
        for (at, access) in accesses.iter().enumerate() {
            let known = SCOPE_ACCESSES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(access))
                .ok_or_else(|| {
                    ArmError::invalid_field(
                        &format!("properties.networkManagerScopeAccesses[{at}]"),
                        &format!("is '{access}', not one of {}", SCOPE_ACCESSES.join(", ")),
                    )
                })?;
            canonical.push(*known);
        }
        let guid = existing
            .as_ref()
            .and_then(|doc| doc.body["properties"]["resourceGuid"].as_str().map(str::to_owned))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let properties = json!({
            "description": opt_str(&body, "properties.description")?.unwrap_or_default(),
            "networkManagerScopes": { "subscriptions": subscriptions, "managementGroups": groups },
            "networkManagerScopeAccesses": canonical,
            "provisioningState": "Succeeded",
            "resourceGuid": guid,
        });
        (
            existing.as_ref().map_or_else(|| id.to_owned(), |doc| doc.id.clone()),
            properties,
            location,
        )
    };
    let document =
        docs::tracked(ctx, &id, MANAGER_TYPE, &location, tags, properties, existing.as_ref());
    let (tenant, now, precondition) =
        (ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
    let (served, created) = ctx
        .write(move |tx| {
            let (doc, created) =
                docs::put(tx, MANAGER_TYPE, &tenant, &document, &precondition, now)?;
            Ok::<_, ArmError>((serve(tx, &doc)?, created))
        })
        .await?;
    Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &served))
}

async fn delete(ctx: &Ctx, id: &str) -> Result<Response, ArmError> {
    let (lookup, precondition) = (id.to_owned(), ctx.precondition());
    let deleted = ctx.write(move |tx| {
            let Some(doc) = docs::get(tx, MANAGER_TYPE, &lookup)? else { return Ok(false) };
            let pools = docs::list(tx, POOL_TYPE, &format!("{}/", doc.id), None, 1)?;
            if let Some(pool) = pools.first() {
                let name = doc.id.rsplit('/').next().unwrap_or_default();
                let pool_name = pool.id.rsplit('/').next().unwrap_or_default();
                return Err(ArmError::new(ErrorCode::CannotDeleteResource,
                    format!(
                        "Cannot delete resource while nested resources exist. Some existing nested resource IDs include: 'Microsoft.Network/networkManagers/{name}/ipamPools/{pool_name}'. Please delete all nested resources before deleting this resource."
                    ),
                ));
            }
            for connection in docs::list(tx, SCOPE_CONNECTION_TYPE, &format!("{}/", doc.id), None, 10_000)? {
                tx.resource_delete(&connection.id, &Precondition::None)?;
            }
            tx.resource_delete(&doc.id, &precondition)?;
            Ok::<_, ArmError>(true)
        })
        .await?;
    Ok(crate::response::empty(if deleted { StatusCode::OK } else { StatusCode::NO_CONTENT }))
}
