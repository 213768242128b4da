//! Virtual networks and their subnets, with address space either static (`addressPrefixes`) or
//! allocated from IPAM pools (`ipamPoolPrefixAllocations`, CONTRACT 3.6 and 5.2).
//!
//! A VNet PUT is checked (RBAC on the VNet; linked authorization and manager scope for each pool
//! whose allocation it creates, grows or releases), then applied in one transaction that
//! serialises writes to the same VNet: allocations are taken, grown or released in the pools'
//! allocator, subnets are carved from the VNet's space, and the document is written. A subnet
//! PUT or DELETE rewrites its VNet through the same path.
//!
//! `spec` reads the body, `checks` decides whether the caller may make the write, `apply` is its
//! transaction; this file has the handlers.

mod apply;
mod checks;
mod spec;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::pool::Change;

use self::apply::{VnetWrite, apply, queue_key, write_queued};
use self::spec::{changes, parse_vnet};
use crate::error::{ArmError, ErrorCode};
use crate::network::docs::{self, Doc, VNET_TYPE};
use crate::network::linked;
use crate::operation::{self, Operation};
use crate::path::ResourceRef;
use crate::request::Ctx;
use crate::response::json;

/// The VNet id of a path, in the casing of its resource group and the VNet's creation, and the
/// VNet if it exists.
async fn vnet_id(ctx: &Ctx, reference: &ResourceRef) -> Result<(String, Option<Doc>), ArmError> {
    let group = reference.resource_group.as_deref().unwrap_or_default();
    let group = ctx.require_resource_group(&reference.subscription, group).await?;
    let id = format!(
        "{}/providers/Microsoft.Network/virtualNetworks/{}",
        group["id"].as_str().unwrap_or_default(),
        reference.names()[0]
    );
    let existing = docs::load(ctx, VNET_TYPE, &id).await?;
    Ok((existing.as_ref().map_or(id, |doc| doc.id.clone()), existing))
}

pub async fn list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let top = ctx.top(1000, 1000)?;
    let prefix = match &reference.resource_group {
        Some(_) => {
            format!("{}/providers/Microsoft.Network/virtualNetworks/", reference.parent_scope())
        }
        None => format!("/subscriptions/{}/", reference.subscription),
    };
    docs::paged_list(
        ctx,
        VNET_TYPE,
        &prefix,
        "Microsoft.Network/virtualNetworks/read",
        top,
        |_, doc| Ok(doc.served()),
    )
    .await
}

pub async fn one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let (id, existing) = vnet_id(ctx, reference).await?;
    ctx.authorize(&docs::action(&["virtualNetworks"], &ctx.method), &id).await?;
    match ctx.method {
        Method::GET => Ok(json(
            StatusCode::OK,
            &existing.ok_or_else(|| docs::not_found(VNET_TYPE, &id))?.served(),
        )),
        Method::PUT => {
            docs::check_name(reference.names()[0], "virtual network")?;
            let body = ctx.json_body()?;
            let (doc, created, operation) = write(ctx, &id, existing, &body).await?;
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(respond_async(ctx, &doc, &operation, status, &doc.served()))
        }
        Method::PATCH => {
            let body = ctx.json_body()?;
            let existing = existing.ok_or_else(|| docs::not_found(VNET_TYPE, &id))?;
            let tags = docs::tags(&body, Some(&existing))?;
            let (tenant, now, precondition) =
                (ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
            // The tags go onto the document as it is now, read locked: a PUT that changed its
            // allocations since the read above is kept.
            let (doc, _) = ctx
                .write(move |tx| {
                    let (stored, current) = docs::get_for_write(tx, VNET_TYPE, &id)?;
                    let Some(mut document) = current.map(|doc| doc.body) else {
                        return Err(docs::not_found(VNET_TYPE, &id));
                    };
                    document["tags"] = tags.clone();
                    docs::write_doc(tx, VNET_TYPE, &tenant, &document, |tx, write| {
                        tx.resource_put_over(write, stored, &precondition, now)
                    })
                })
                .await?;
            Ok(json(StatusCode::OK, &doc.served()))
        }
        Method::DELETE => delete(ctx, &id).await,
        _ => Err(ctx.method_not_allowed()),
    }
}

/// A 200/201 with `Azure-AsyncOperation` naming the (finished, recorded) operation `operation`,
/// as the az CLI polls.
fn respond_async(
    ctx: &Ctx,
    doc: &Doc,
    operation: &str,
    status: StatusCode,
    body: &Value,
) -> Response {
    let subscription = docs::subscription_of(&doc.id);
    let location = doc.body["location"].as_str().unwrap_or("global");
    let url = operation::network_url(ctx, &subscription, location, "operations", operation);
    let response = crate::response::with_header(json(status, body), "azure-asyncoperation", &url);
    crate::response::with_header(response, "retry-after", "1")
}

async fn delete(ctx: &Ctx, id: &str) -> Result<Response, ArmError> {
    // Auxiliary tokens, when sent, must be valid; releasing one's own VNet needs no linked
    // permission (docs/network.md).
    linked::auxiliary(ctx).await?;
    let Some(existing) = docs::load(ctx, VNET_TYPE, id).await? else {
        return Ok(crate::response::empty(StatusCode::NO_CONTENT));
    };
    let (lookup, now, precondition, request_id) =
        (existing.id.clone(), ctx.now, ctx.precondition(), ctx.ids.request_id.clone());
    let allocations = existing.body["properties"]["addressSpace"]["ipamPoolPrefixAllocations"]
        .as_array()
        .into_iter()
        .flatten();
    let queue = queue_key(allocations.filter_map(|allocation| allocation["pool"]["id"].as_str()));
    write_queued(ctx, queue, move |tx| {
        // The delete reads the VNet locked, so it takes its turn with a PUT of it; then the
        // allocations, as the PUTs before it left them, go.
        tx.resource_delete(&lookup, &precondition)?;
        docs::release_all(tx, &lookup, Change { now, request_id: &request_id })
    })
    .await?;
    let operation = Operation {
        id: Operation::new_id(),
        status: "Succeeded",
        error: None,
        final_status: StatusCode::NO_CONTENT,
        final_body: None,
    };
    let subscription = docs::subscription_of(&existing.id);
    operation::record(ctx, &subscription, &operation).await?;
    let base = format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Network/locations/{}",
        ctx.arm.identity().origin(),
        existing.body["location"].as_str().unwrap_or("global")
    );
    let version = ctx.query.get("api-version").map_or("", String::as_str);
    let mut response = crate::response::empty(StatusCode::ACCEPTED);
    response = crate::response::with_header(
        response,
        "azure-asyncoperation",
        &format!("{base}/operations/{}?api-version={version}", operation.id),
    );
    response = crate::response::with_header(
        response,
        "location",
        &format!("{base}/operationResults/{}?api-version={version}", operation.id),
    );
    Ok(crate::response::with_header(response, "retry-after", "1"))
}

async fn write(
    ctx: &Ctx,
    id: &str,
    existing: Option<Doc>,
    body: &Value,
) -> Result<(Doc, bool, String), ArmError> {
    let name = id.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err(ArmError::invalid_field("name", "must be 1 to 64 characters"));
    }
    let spec = parse_vnet(body, existing.as_ref())?;
    let auxiliary = linked::auxiliary(ctx).await?;
    let (associate, release) = changes(&spec, existing.as_ref());
    checks::check(ctx, id, &spec, &associate, &release, &auxiliary).await?;
    let (tenant, now, precondition, request_id) = (
        ctx.caller.tenant_id().to_owned(),
        ctx.now,
        ctx.precondition(),
        ctx.ids.request_id.clone(),
    );
    let id = id.to_owned();
    // The operation's record commits with the work it describes.
    let operation_id = Operation::new_id();
    let finished = Operation {
        id: operation_id.clone(),
        status: "Succeeded",
        error: None,
        final_status: StatusCode::OK,
        final_body: None,
    };
    let recording = operation::Recording::new(ctx, &docs::subscription_of(&id), &finished);
    let pools =
        spec.asks.iter().map(|ask| ask.pool_id.as_str()).chain(release.iter().map(String::as_str));
    let queue = queue_key(pools);
    let put = VnetWrite { id, spec, tenant, precondition, recording };
    // A VNet missing a moment ago is most likely missing still: the first attempt creates it
    // without reading it (`apply`).
    let mut missing = existing.is_none();
    write_queued(ctx, queue, move |tx| {
        let change = Change { now, request_id: &request_id };
        let (doc, created) = apply(tx, &put, change, std::mem::take(&mut missing))?;
        Ok((doc, created, operation_id.clone()))
    })
    .await
}

pub async fn subnet_list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let (id, existing) = vnet_id(ctx, reference).await?;
    ctx.authorize("Microsoft.Network/virtualNetworks/subnets/read", &id).await?;
    let doc = existing.ok_or_else(|| docs::not_found(VNET_TYPE, &id))?;
    let value = doc.body["properties"]["subnets"].clone();
    Ok(json(StatusCode::OK, &json!({ "value": if value.is_array() { value } else { json!([]) } })))
}

pub async fn subnet_one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::API_VERSIONS)?;
    let (id, existing) = vnet_id(ctx, reference).await?;
    let name = reference.names()[1].to_owned();
    let subnet_id = format!("{id}/subnets/{name}");
    ctx.authorize(&docs::action(&["virtualNetworks", "subnets"], &ctx.method), &subnet_id).await?;
    let doc = existing.ok_or_else(|| docs::not_found(VNET_TYPE, &id))?;
    let subnets = doc.body["properties"]["subnets"].as_array().cloned().unwrap_or_default();
    let at = subnets
        .iter()
        .position(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)));
    let not_found =
        || ArmError::new(ErrorCode::NotFound, format!("Resource '{subnet_id}' not found."));
    match ctx.method {
        Method::GET => Ok(json(StatusCode::OK, &subnets[at.ok_or_else(not_found)?])),
        Method::PUT | Method::DELETE => {
            let mut body = doc.served();
            let mut list = subnets.clone();
            let created = at.is_none();
            if ctx.method == Method::PUT {
                docs::check_name(&name, "subnet")?;
                let given = ctx.json_body()?;
                let entry = json!({"name": at.map_or(name.clone(), |at| subnets[at]["name"].as_str().unwrap_or_default().to_owned()), "properties": given["properties"].clone()});
                match at {
                    Some(at) => list[at] = entry,
                    None => list.push(entry),
                }
            } else if let Some(at) = at {
                list.remove(at);
            } else {
                return Ok(crate::response::empty(StatusCode::NO_CONTENT));
            }
            body["properties"]["subnets"] = json!(list);
            let (written, _, operation) = write(ctx, &id, Some(doc.clone()), &body).await?;
            if ctx.method == Method::DELETE {
                return Ok(crate::response::empty(StatusCode::OK));
            }
            let subnet = written.body["properties"]["subnets"]
                .as_array()
                .and_then(|all| {
                    all.iter()
                        .find(|s| s["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name)))
                        .cloned()
                })
                .unwrap_or(Value::Null);
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(respond_async(ctx, &written, &operation, status, &subnet))
        }
        _ => Err(ctx.method_not_allowed()),
    }
}
