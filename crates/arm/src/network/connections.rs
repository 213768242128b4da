//! The two halves of a cross-tenant connection (CONTRACT 4.1): tenant A's `scopeConnections`
//! under its network manager (`{tenantId, resourceId: /subscriptions/SB}`) and tenant B's
//! `networkManagerConnections` at its subscription (`{networkManagerId}`). A half is Connected
//! while its counterpart exists and matches; Revoked once a counterpart it was connected to is
//! gone; Pending otherwise. A Connected pair puts B's subscription in A's manager's scope.
//! Management-group scopes are stored and shown but never connect: crosspool has no
//! management groups.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::error::StoreError;
use store::{ReadTx, WriteTx};

use super::docs::{self, Doc, MANAGER_CONNECTION_TYPE, SCOPE_CONNECTION_TYPE};
use crate::error::ArmError;
use crate::path::ResourceRef;
use crate::request::{Ctx, opt_str, req_str};
use crate::response::json;

/// The manager id a scope connection's id lies under.
fn manager_of(scope_connection_id: &str) -> &str {
    let lower = scope_connection_id.to_ascii_lowercase();
    let at = lower.find("/scopeconnections/").unwrap_or(lower.len());
    &scope_connection_id[..at]
}

/// `/subscriptions/{id}` of a connection's `resourceId` (the example omits the leading slash),
/// lower-cased; `None` for a management group.
fn subscription_scope(resource_id: &str) -> Option<String> {
    let trimmed = resource_id.trim_matches('/');
    let mut parts = trimmed.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(first), Some(id), None) if first.eq_ignore_ascii_case("subscriptions") => {
            Some(format!("/subscriptions/{}", id.to_ascii_lowercase()))
        }
        _ => None,
    }
}

/// The B-side connections that match an A-side one.
fn counterparts_of_scope(tx: &mut ReadTx<'_>, doc: &Doc) -> Result<Vec<Doc>, StoreError> {
    let properties = &doc.body["properties"];
    let Some(scope) = subscription_scope(properties["resourceId"].as_str().unwrap_or_default())
    else {
        return Ok(Vec::new());
    };
    let subscription = scope.trim_start_matches("/subscriptions/");
    let tenant = properties["tenantId"].as_str().unwrap_or_default();
    if !tx.subscription_get(subscription)?.is_some_and(|s| s.tenant_id.eq_ignore_ascii_case(tenant))
    {
        return Ok(Vec::new());
    }
    let manager = manager_of(&doc.id);
    let prefix = format!("{scope}/providers/Microsoft.Network/networkManagerConnections/");
    Ok(docs::list(tx, MANAGER_CONNECTION_TYPE, &prefix, None, 10_000)?
        .into_iter()
        .filter(|other| {
            other.body["properties"]["networkManagerId"]
                .as_str()
                .is_some_and(|id| id.trim_end_matches('/').eq_ignore_ascii_case(manager))
        })
        .collect())
}

/// The A-side connections that match a B-side one.
fn counterparts_of_manager_connection(
    tx: &mut ReadTx<'_>,
    doc: &Doc,
) -> Result<Vec<Doc>, StoreError> {
    let manager = doc.body["properties"]["networkManagerId"].as_str().unwrap_or_default();
    let manager = manager.trim_end_matches('/').to_owned();
    let subscription = docs::subscription_of(&doc.id);
    let Some(record) = tx.subscription_get(&subscription)? else { return Ok(Vec::new()) };
    let prefix = format!("{manager}/scopeConnections/");
    Ok(docs::list(tx, SCOPE_CONNECTION_TYPE, &prefix, None, 10_000)?
        .into_iter()
        .filter(|other| {
            let properties = &other.body["properties"];
            subscription_scope(properties["resourceId"].as_str().unwrap_or_default())
                == Some(format!("/subscriptions/{subscription}"))
                && properties["tenantId"]
                    .as_str()
                    .is_some_and(|tenant| tenant.eq_ignore_ascii_case(&record.tenant_id))
        })
        .collect())
}

fn state(connected: bool, doc: &Doc) -> &'static str {
    match (connected, doc.body["crosspool"]["connectedOnce"].as_bool()) {
        (true, _) => "Connected",
        (false, Some(true)) => "Revoked",
        (false, _) => "Pending",
    }
}

/// A document as served, with its current state.
fn serve(tx: &mut ReadTx<'_>, doc: &Doc) -> Result<Value, StoreError> {
    let connected = if doc.body["type"].as_str() == Some(SCOPE_CONNECTION_TYPE) {
        !counterparts_of_scope(tx, doc)?.is_empty()
    } else {
        !counterparts_of_manager_connection(tx, doc)?.is_empty()
    };
    let mut body = doc.served();
    body["properties"]["connectionState"] = json!(state(connected, doc));
    Ok(body)
}

/// The subscriptions (with their tenants) a Connected pair puts in a manager's scope.
pub fn connected_subscriptions(
    tx: &mut ReadTx<'_>,
    manager_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    connected_where(tx, manager_id, |_| true)
}

/// Whether a Connected pair puts `scope` (`/subscriptions/{id}`, lower-case) of `tenant` in a
/// manager's scope. Only the scope connections that name it are checked for a counterpart.
pub fn is_connected(
    tx: &mut ReadTx<'_>,
    manager_id: &str,
    tenant: &str,
    scope: &str,
) -> Result<bool, StoreError> {
    let named = |(connected_tenant, connected): &(String, String)| {
        connected_tenant.eq_ignore_ascii_case(tenant) && connected == scope
    };
    Ok(!connected_where(tx, manager_id, named)?.is_empty())
}

/// The (tenant, subscription scope) pairs of a manager's scope connections that `wanted` keeps
/// and that have a counterpart.
fn connected_where(
    tx: &mut ReadTx<'_>,
    manager_id: &str,
    wanted: impl Fn(&(String, String)) -> bool,
) -> Result<Vec<(String, String)>, StoreError> {
    let prefix = format!("{manager_id}/scopeConnections/");
    let mut connected = Vec::new();
    for doc in docs::list(tx, SCOPE_CONNECTION_TYPE, &prefix, None, 10_000)? {
        let properties = &doc.body["properties"];
        let tenant = properties["tenantId"].as_str().unwrap_or_default().to_ascii_lowercase();
        let Some(scope) = subscription_scope(properties["resourceId"].as_str().unwrap_or_default())
        else {
            continue;
        };
        let pair = (tenant, scope);
        if wanted(&pair) && !counterparts_of_scope(tx, &doc)?.is_empty() {
            connected.push(pair);
        }
    }
    Ok(connected)
}

/// Marks documents as having been connected, so that losing the counterpart shows Revoked.
fn mark_connected(
    tx: &mut WriteTx<'_>,
    docs_to_mark: &[Doc],
    now: store::Timestamp,
) -> Result<(), ArmError> {
    for doc in docs_to_mark {
        if doc.body["crosspool"]["connectedOnce"].as_bool() == Some(true) {
            continue;
        }
        let mut body = doc.body.clone();
        body["crosspool"] = json!({ "connectedOnce": true });
        let kind = body["type"].as_str().unwrap_or_default().to_owned();
        let tenant = tx.resource_get(&doc.id)?.map(|stored| stored.tenant_id).unwrap_or_default();
        docs::put(tx, &kind, &tenant, &body, &store::resource::Precondition::None, now)?;
    }
    Ok(())
}

pub async fn scope_list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let manager = docs::require(ctx, docs::MANAGER_TYPE, &reference.id_at(1)).await?;
    let top = ctx.top(20, 20)?;
    let prefix = format!("{}/scopeConnections/", manager.id);
    let read = "Microsoft.Network/networkManagers/scopeConnections/read";
    docs::paged_list(ctx, SCOPE_CONNECTION_TYPE, &prefix, read, top, serve).await
}

pub async fn manager_list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let top = ctx.top(20, 20)?;
    let prefix = format!(
        "/subscriptions/{}/providers/Microsoft.Network/networkManagerConnections/",
        reference.subscription
    );
    let read = "Microsoft.Network/networkManagerConnections/read";
    docs::paged_list(ctx, MANAGER_CONNECTION_TYPE, &prefix, read, top, serve).await
}

pub async fn scope_one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let manager = docs::require(ctx, docs::MANAGER_TYPE, &reference.id_at(1)).await?;
    let id = format!("{}/scopeConnections/{}", manager.id, reference.names()[1]);
    one(ctx, SCOPE_CONNECTION_TYPE, &id, &["networkManagers", "scopeConnections"]).await
}

pub async fn manager_one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let id = format!(
        "/subscriptions/{}/providers/Microsoft.Network/networkManagerConnections/{}",
        reference.subscription,
        reference.names()[0]
    );
    one(ctx, MANAGER_CONNECTION_TYPE, &id, &["networkManagerConnections"]).await
}

async fn one(
    ctx: &Ctx,
    kind: &'static str,
    id: &str,
    types: &[&str],
) -> Result<Response, ArmError> {
    ctx.authorize(&docs::action(types, &ctx.method), id).await?;
    match ctx.method {
        Method::GET => {
            let served = docs::load_served(ctx, kind, id, serve).await?;
            Ok(with_etag(json(StatusCode::OK, &served), &served))
        }
        Method::PUT => put(ctx, kind, id).await,
        Method::DELETE => {
            let lookup = id.to_owned();
            let precondition = ctx.precondition();
            let deleted = ctx
                .write(move |tx| {
                    let existing = tx.resource_delete(&lookup, &precondition)?;
                    Ok::<_, ArmError>(existing.is_some())
                })
                .await?;
            Ok(crate::response::empty(if deleted {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            }))
        }
        _ => Err(ctx.method_not_allowed()),
    }
}

async fn put(ctx: &Ctx, kind: &'static str, id: &str) -> Result<Response, ArmError> {
    let body = ctx.json_body()?;
    let description = opt_str(&body, "properties.description")?.unwrap_or_default();
    let properties = if kind == SCOPE_CONNECTION_TYPE {
        let tenant = req_str(&body, "properties.tenantId")?;
        if uuid::Uuid::parse_str(tenant).is_err() {
            return Err(ArmError::invalid_field(
                "properties.tenantId",
                "must be a tenant id (a GUID)",
            ));
        }
        let resource_id = req_str(&body, "properties.resourceId")?;
        let is_group = resource_id
            .trim_start_matches('/')
            .to_ascii_lowercase()
            .starts_with("providers/microsoft.management/managementgroups/");
        if subscription_scope(resource_id).is_none() && !is_group {
            return Err(ArmError::invalid_field(
                "properties.resourceId",
                "must be /subscriptions/{id} or /providers/Microsoft.Management/managementGroups/{id}",
            ));
        }
        json!({ "tenantId": tenant.to_ascii_lowercase(), "resourceId": resource_id, "description": description })
    } else {
        let manager = req_str(&body, "properties.networkManagerId")?;
        let valid = crate::path::parse(manager).is_some_and(|target| {
            matches!(target, crate::path::Target::Provider(r) if r.is(&["networkManagers"]) && r.names().len() == 1 && r.resource_group.is_some())
        });
        if !valid {
            return Err(ArmError::invalid_field(
                "properties.networkManagerId",
                "must be the id of a network manager",
            ));
        }
        json!({ "networkManagerId": manager.trim_end_matches('/'), "description": description })
    };
    let existing = docs::load(ctx, kind, id).await?;
    let id = existing.as_ref().map_or_else(|| id.to_owned(), |doc| doc.id.clone());
    let mut document = json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or_default(),
        "type": kind,
        "systemData": ctx.system_data(existing.as_ref().map(|doc| &doc.body["systemData"])),
        "properties": properties,
    });
    if let Some(flags) =
        existing.as_ref().map(|doc| doc.body["crosspool"].clone()).filter(Value::is_object)
    {
        document["crosspool"] = flags;
    }
    let (tenant, now, precondition) =
        (ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
    let (served, created) = ctx
        .write(move |tx| {
            let (doc, created) = docs::put(tx, kind, &tenant, &document, &precondition, now)?;
            let counterparts = if kind == SCOPE_CONNECTION_TYPE {
                counterparts_of_scope(tx, &doc)?
            } else {
                counterparts_of_manager_connection(tx, &doc)?
            };
            if !counterparts.is_empty() {
                mark_connected(tx, &counterparts, now)?;
                mark_connected(tx, std::slice::from_ref(&doc), now)?;
            }
            let doc = docs::get(tx, kind, &doc.id)?.unwrap_or(doc);
            Ok::<_, ArmError>((serve(tx, &doc)?, created))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_etag(json(status, &served), &served))
}

/// The `ETag` header the connection examples carry.
fn with_etag(response: Response, body: &Value) -> Response {
    crate::response::with_header(response, "etag", body["etag"].as_str().unwrap_or_default())
}
