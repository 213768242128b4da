//! Static CIDRs of a pool: space taken by prefix (`addressPrefixes`) or by count
//! (`numberOfIPAddressesToAllocate`), exactly one of the two. PUT answers 200 (synchronously,
//! as observed), DELETE 204 and frees the space.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use ipam::prefix::Prefix;
use ipam::request::Request;
use ipam::usage::Holder;
use serde_json::{Value, json};
use store::pool::{Change, Owner};

use super::docs::{self, Doc, STATIC_CIDR_TYPE};
use crate::error::ArmError;
use crate::path::ResourceRef;
use crate::request::{Ctx, opt_str, opt_strings};
use crate::response::json;

/// The pool id and static CIDR id (or collection prefix) of a path.
async fn pool_of(ctx: &Ctx, reference: &ResourceRef) -> Result<Doc, ArmError> {
    ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    let manager = docs::require(ctx, docs::MANAGER_TYPE, &reference.id_at(1)).await?;
    docs::require(
        ctx,
        docs::POOL_TYPE,
        &format!("{}/ipamPools/{}", manager.id, reference.names()[1]),
    )
    .await
}

pub async fn list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    let pool = pool_of(ctx, reference).await?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let top = ctx.top(50, 1000)?;
    let read = "Microsoft.Network/networkManagers/ipamPools/staticCidrs/read";
    docs::paged_list(
        ctx,
        STATIC_CIDR_TYPE,
        &format!("{}/staticCidrs/", pool.id),
        read,
        top,
        |_, doc| Ok(strip_etag(doc.served())),
    )
    .await
}

pub async fn one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    let pool = pool_of(ctx, reference).await?;
    let id = format!("{}/staticCidrs/{}", pool.id, reference.names()[2]);
    ctx.authorize(
        &docs::action(&["networkManagers", "ipamPools", "staticCidrs"], &ctx.method),
        &id,
    )
    .await?;
    match ctx.method {
        Method::GET => {
            let doc = docs::load(ctx, STATIC_CIDR_TYPE, &id).await?;
            let doc = doc.ok_or_else(|| docs::not_found(STATIC_CIDR_TYPE, &id))?;
            Ok(json(StatusCode::OK, &strip_etag(doc.served())))
        }
        Method::PUT => put(ctx, &pool, &id).await,
        Method::DELETE => {
            let (lookup, now, request_id, precondition) =
                (id.clone(), ctx.now, ctx.ids.request_id.clone(), ctx.precondition());
            ctx.write(move |tx| {
                // The precondition is checked as the document is deleted; the space goes back
                // in the same transaction, or not at all.
                let deleted = tx.resource_delete(&lookup, &precondition)?;
                if let Some(deleted) = deleted {
                    docs::release_all(tx, &deleted.id, Change { now, request_id: &request_id })?;
                }
                Ok::<_, ArmError>(())
            })
            .await?;
            Ok(crate::response::empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ctx.method_not_allowed()),
    }
}

async fn put(ctx: &Ctx, pool: &Doc, id: &str) -> Result<Response, ArmError> {
    docs::check_name(id.rsplit('/').next().unwrap_or_default(), "static CIDR")?;
    let body =
        if ctx.body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { ctx.json_body()? };
    let prefixes = opt_strings(&body, "properties.addressPrefixes")?.unwrap_or_default();
    let count = opt_str(&body, "properties.numberOfIPAddressesToAllocate")?.unwrap_or_default();
    let requests: Vec<Request> = match (prefixes.is_empty(), count.is_empty()) {
        (false, true) => prefixes
            .iter()
            .enumerate()
            .map(|(at, text)| {
                Prefix::parse(text).map(Request::Prefix).map_err(|error| {
                    ArmError::from(&error).with_target(format!("properties.addressPrefixes[{at}]"))
                })
            })
            .collect::<Result<_, _>>()?,
        (true, false) => {
            vec![Request::Count(ipam::request::parse_count(count).map_err(|error| {
                ArmError::from(&error).with_target("properties.numberOfIPAddressesToAllocate")
            })?)]
        }
        _ => {
            return Err(ArmError::invalid_field(
                "properties",
                "must give exactly one of addressPrefixes and numberOfIPAddressesToAllocate",
            ));
        }
    };
    let existing = docs::load(ctx, STATIC_CIDR_TYPE, id).await?;
    let id = existing.as_ref().map_or_else(|| id.to_owned(), |doc| doc.id.clone());
    let description = opt_str(&body, "properties.description")?.unwrap_or_default().to_owned();
    let system_data = ctx.system_data(existing.as_ref().map(|doc| &doc.body["systemData"]));
    let (pool_id, tenant, now, request_id) =
        (pool.id.clone(), ctx.caller.tenant_id().to_owned(), ctx.now, ctx.ids.request_id.clone());
    let doc = ctx
        .write(move |tx| {
            let change = Change { now, request_id: &request_id };
            let record = docs::pool_record(tx, &pool_id)?
                .ok_or_else(|| docs::not_found(docs::POOL_TYPE, &pool_id))?;
            // A PUT replaces the static CIDR's space: what it held goes back first.
            docs::release_all(tx, &id, change)?;
            let mut blocks = Vec::new();
            for request in &requests {
                let owner = Owner { id: &id, tenant: &tenant };
                let allocation =
                    tx.pool_allocate(record.id(), request, Holder::StaticCidr, owner, change)?;
                blocks.extend_from_slice(allocation.blocks());
            }
            blocks.sort();
            let document = json!({
                "id": id,
                "name": id.rsplit('/').next().unwrap_or_default(),
                "type": STATIC_CIDR_TYPE,
                "systemData": system_data,
                "properties": {
                    "description": description,
                    "addressPrefixes": docs::prefix_strings(&blocks),
                    "numberOfIPAddressesToAllocate": "",
                    "totalNumberOfIPAddresses": ipam::usage::sum(&blocks).to_string(),
                    "provisioningState": "Succeeded",
                },
            });
            let (doc, _) = docs::put(
                tx,
                STATIC_CIDR_TYPE,
                &tenant,
                &document,
                &store::resource::Precondition::None,
                now,
            )?;
            Ok::<_, ArmError>(doc)
        })
        .await?;
    Ok(json(StatusCode::OK, &strip_etag(doc.served())))
}

/// Static CIDRs are proxy resources: no etag on the wire.
fn strip_etag(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.remove("etag");
    }
    body
}
