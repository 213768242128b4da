//! IPAM pools: PUT (201 + `Azure-AsyncOperation` on create, 200 on update), PATCH, GET, list
//! (`skip`, `top`, `skipToken`), DELETE (202 + `Location`; refused while the pool has child
//! pools, static CIDRs or associated resources), `getPoolUsage` and `listAssociatedResources`.
//! A pool's space lives in the store's allocator, keyed by the pool's lower-cased id.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use ipam::count::AddressCount;
use ipam::plan::Placement;
use ipam::prefix::{Family, Prefix};
use ipam::usage::Holder;
use serde_json::{Value, json};
use store::error::StoreError;
use store::pool::{Change, NewPool};

use super::docs::{self, Doc, POOL_TYPE};
use crate::error::{ArmError, ErrorCode};
use crate::operation::{self, Operation};
use crate::path::ResourceRef;
use crate::request::{Ctx, opt_str, opt_strings};
use crate::response::json;

/// Levels of pools, counting the root (CONTRACT 5.1).
pub const MAX_DEPTH: u8 = 7;

/// The manager id and pool id of a path `…/networkManagers/{nm}/ipamPools/{pool}[/…]`, in the
/// casing of the stored manager.
async fn ids(ctx: &Ctx, reference: &ResourceRef) -> Result<(Doc, String), ArmError> {
    ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    let manager_id = reference.id_at(1);
    let manager = docs::load(ctx, docs::MANAGER_TYPE, &manager_id).await?.ok_or_else(|| {
        ArmError::new(ErrorCode::ParentResourceNotFound,
            format!(
                "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                reference.names()[0]
            ),
        )
    })?;
    let pool_id = format!("{}/ipamPools/{}", manager.id, reference.names()[1]);
    Ok((manager, pool_id))
}

/// A pool as served in the request's api-version (allocation sizes exist from 2026-01-01).
fn serve(doc: &Doc, api_version: &str) -> Value {
    let mut body = doc.served();
    if let Some(properties) = body["properties"].as_object_mut() {
        properties.retain(|_, value| !value.is_null());
    }
    if api_version < "2026-01-01"
        && let Some(properties) = body["properties"].as_object_mut()
    {
        properties.remove("minAllocationSize");
        properties.remove("maxAllocationSize");
    }
    body
}

pub async fn list(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    let manager = docs::load(ctx, docs::MANAGER_TYPE, &reference.id_at(1)).await?;
    let manager =
        manager.ok_or_else(|| docs::not_found(docs::MANAGER_TYPE, &reference.id_at(1)))?;
    let top = ctx.top(50, 1000)?;
    let version = ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    let prefix = format!("{}/ipamPools/", manager.id);
    docs::paged_list(
        ctx,
        POOL_TYPE,
        &prefix,
        "Microsoft.Network/networkManagers/ipamPools/read",
        top,
        move |_, doc| Ok(serve(doc, version)),
    )
    .await
}

pub async fn one(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    let (manager, pool_id) = ids(ctx, reference).await?;
    ctx.authorize(&docs::action(&["networkManagers", "ipamPools"], &ctx.method), &pool_id).await?;
    let version = ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    match ctx.method {
        Method::GET => Ok(json(
            StatusCode::OK,
            &serve(&docs::require(ctx, POOL_TYPE, &pool_id).await?, version),
        )),
        Method::PUT => put(ctx, &manager, &pool_id).await,
        Method::PATCH => patch(ctx, &pool_id).await,
        Method::DELETE => delete(ctx, &pool_id).await,
        _ => Err(ctx.method_not_allowed()),
    }
}

/// `minAllocationSize`/`maxAllocationSize`: decimal strings, min ≤ max. `""` clears.
fn allocation_sizes(body: &Value, existing: Option<&Doc>) -> Result<(Value, Value), ArmError> {
    let mut sizes = Vec::new();
    for field in ["minAllocationSize", "maxAllocationSize"] {
        let path = format!("properties.{field}");
        let value = match opt_str(body, &path)? {
            Some("") => Value::Null,
            Some(text) => {
                ipam::request::parse_count(text)
                    .map_err(|error| ArmError::invalid_field(&path, &error.to_string()))?;
                json!(text)
            }
            None => existing.map_or(Value::Null, |doc| doc.body["properties"][field].clone()),
        };
        sizes.push(value);
    }
    let count =
        |value: &Value| value.as_str().and_then(|text| AddressCount::parse_decimal(text).ok());
    if let (Some(min), Some(max)) = (count(&sizes[0]), count(&sizes[1]))
        && min > max
    {
        return Err(ArmError::invalid_field(
            "properties.minAllocationSize",
            "must be less than or equal to maxAllocationSize",
        ));
    }
    Ok((sizes[0].clone(), sizes[1].clone()))
}

/// The prefixes of a body, parsed; errors name the field and the input.
fn prefixes(body: &Value) -> Result<Vec<Prefix>, ArmError> {
    let texts = opt_strings(body, "properties.addressPrefixes")?
        .filter(|texts| !texts.is_empty())
        .ok_or_else(|| {
            ArmError::invalid_field(
                "properties.addressPrefixes",
                "is required and must name at least one prefix",
            )
        })?;
    texts
        .iter()
        .enumerate()
        .map(|(at, text)| {
            Prefix::parse(text).map_err(|error| {
                ArmError::from(&error).with_target(format!("properties.addressPrefixes[{at}]"))
            })
        })
        .collect()
}

async fn put(ctx: &Ctx, manager: &Doc, pool_id: &str) -> Result<Response, ArmError> {
    let name = pool_id.rsplit('/').next().unwrap_or_default().to_owned();
    docs::check_name(&name, "IPAM pool")?;
    let body = ctx.json_body()?;
    if !body["properties"].is_object() {
        return Err(ArmError::invalid_field("properties", "is required"));
    }
    let existing = docs::load(ctx, POOL_TYPE, pool_id).await?;
    let location = docs::location(&body, existing.as_ref())?;
    let tags = docs::tags(&body, existing.as_ref())?;
    let prefixes = prefixes(&body)?;
    let parent_name = opt_str(&body, "properties.parentPoolName")?.unwrap_or_default().to_owned();
    if let Some(existing) = &existing {
        let stored = existing.body["properties"]["parentPoolName"].as_str().unwrap_or_default();
        if !stored.eq_ignore_ascii_case(&parent_name) {
            return Err(ArmError::invalid_field(
                "properties.parentPoolName",
                &format!(
                    "cannot change from '{stored}' to '{parent_name}'; create a new pool instead"
                ),
            ));
        }
    }
    let (min, max) = allocation_sizes(&body, existing.as_ref())?;
    let family = prefixes.first().map(Prefix::family).unwrap_or(Family::V4);
    let properties = json!({
        "addressPrefixes": docs::prefix_strings(&prefixes),
        "description": opt_str(&body, "properties.description")?.unwrap_or_default(),
        "displayName": opt_str(&body, "properties.displayName")?.unwrap_or_default(),
        "parentPoolName": parent_name,
        "ipAddressType": [family.arm_name()],
        "provisioningState": "Succeeded",
        "minAllocationSize": min,
        "maxAllocationSize": max,
    });
    let id = existing.as_ref().map_or_else(|| pool_id.to_owned(), |doc| doc.id.clone());
    let document =
        docs::tracked(ctx, &id, POOL_TYPE, &location, tags, properties, existing.as_ref());
    let parent_id =
        (!parent_name.is_empty()).then(|| format!("{}/ipamPools/{parent_name}", manager.id));
    let (tenant, now, precondition) =
        (ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
    let (scope_key, request_id) = (manager.id.to_ascii_lowercase(), ctx.ids.request_id.clone());
    let (doc, created) = ctx.write(move |tx| {
            let change = Change { now, request_id: &request_id };
            let (doc, created) = docs::put(tx, POOL_TYPE, &tenant, &document, &precondition, now)?;
            match docs::pool_record(tx, &doc.id)? {
                Some(pool) => {
                    tx.pool_set_prefixes(pool.id(), prefixes.clone(), change)?;
                }
                None => {
                    let parent = match &parent_id {
                        Some(parent_id) => Some(
                            docs::pool_record(tx, parent_id)?
                                .ok_or_else(|| {
                                    ArmError::invalid_field(
                                        "properties.parentPoolName",
                                        &format!("names pool '{}', which does not exist in this network manager", parent_id.rsplit('/').next().unwrap_or_default()),
                                    )
                                })?
                                .id(),
                        ),
                        None => None,
                    };
                    let new = NewPool {
                        resource_key: doc.id.to_ascii_lowercase(),
                        name: doc.id.rsplit('/').next().unwrap_or_default().to_owned(),
                        scope_key: scope_key.clone(),
                        parent,
                        prefixes: prefixes.clone(),
                        placement: Placement::BestFit,
                        max_depth: MAX_DEPTH,
                    };
                    tx.pool_create(&new, change)?;
                }
            }
            Ok::<_, ArmError>((doc, created))
        })
        .await?;
    let version = ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    let response =
        json(if created { StatusCode::CREATED } else { StatusCode::OK }, &serve(&doc, version));
    let url = operation_url(ctx, &doc, "ipamPoolOperationResults").await?;
    Ok(crate::response::with_header(response, "azure-asyncoperation", &url))
}

/// Records a finished pool operation and returns its status URL (CONTRACT 2.3's shape).
async fn operation_url(ctx: &Ctx, doc: &Doc, kind: &str) -> Result<String, ArmError> {
    let operation = Operation {
        id: Operation::new_id(),
        status: "Succeeded",
        error: None,
        final_status: StatusCode::OK,
        final_body: None,
    };
    let subscription = docs::subscription_of(&doc.id);
    operation::record(ctx, &subscription, &operation).await?;
    let location = doc.body["location"].as_str().unwrap_or("global");
    Ok(format!(
        "{}/subscriptions/{subscription}/resourceGroups/{}/providers/Microsoft.Network/locations/{location}/{kind}/{}?api-version={}",
        ctx.arm.identity().origin(),
        docs::group_of(&doc.id),
        operation.id,
        ctx.query.get("api-version").map_or("", String::as_str)
    ))
}

async fn patch(ctx: &Ctx, pool_id: &str) -> Result<Response, ArmError> {
    let existing = docs::require(ctx, POOL_TYPE, pool_id).await?;
    let body =
        if ctx.body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { ctx.json_body()? };
    let mut document = existing.body.clone();
    document["tags"] = docs::tags(&body, Some(&existing))?;
    for field in ["description", "displayName"] {
        if let Some(value) = opt_str(&body, &format!("properties.{field}"))? {
            document["properties"][field] = json!(value);
        }
    }
    let (min, max) = allocation_sizes(&body, Some(&existing))?;
    document["properties"]["minAllocationSize"] = min;
    document["properties"]["maxAllocationSize"] = max;
    document["systemData"] = ctx.system_data(Some(&existing.body["systemData"]));
    let (tenant, now, precondition) =
        (ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
    let (doc, _) = ctx
        .write(move |tx| docs::put(tx, POOL_TYPE, &tenant, &document, &precondition, now))
        .await?;
    let version = ctx.api_version(&docs::IPAM_API_VERSIONS)?;
    Ok(json(StatusCode::OK, &serve(&doc, version)))
}

async fn delete(ctx: &Ctx, pool_id: &str) -> Result<Response, ArmError> {
    let Some(existing) = docs::load(ctx, POOL_TYPE, pool_id).await? else {
        return Ok(crate::response::empty(StatusCode::NO_CONTENT));
    };
    let (id, now, precondition, request_id) =
        (existing.id.clone(), ctx.now, ctx.precondition(), ctx.ids.request_id.clone());
    ctx.write(move |tx| {
        let change = Change { now, request_id: &request_id };
        docs::remove_pool_from_allocator(tx, &id, change)?;
        tx.resource_delete(&id, &precondition)?;
        Ok::<_, ArmError>(())
    })
    .await?;
    let url = operation_url(ctx, &existing, "ipamPoolOperationResults").await?;
    let response = crate::response::with_header(
        crate::response::empty(StatusCode::ACCEPTED),
        "location",
        &url,
    );
    Ok(crate::response::with_header(response, "retry-after", "1"))
}

pub async fn usage(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    let (_, pool_id) = ids(ctx, reference).await?;
    if ctx.method != Method::POST {
        return Err(ctx.method_not_allowed());
    }
    ctx.authorize("Microsoft.Network/networkManagers/ipamPools/getPoolUsage/action", &pool_id)
        .await?;
    let doc = docs::require(ctx, POOL_TYPE, &pool_id).await?;
    let id = doc.id.clone();
    let body = ctx.read(move |tx| {
            let Some(pool) = docs::pool_record(tx, &id)? else { return Ok(None) };
            let usage = tx.pool_usage(pool.id())?;
            let mut children = Vec::new();
            for child in usage.child_pools() {
                let resource_id = tx.resource_get(&child.child)?.map_or_else(|| child.child.clone(), |stored| stored.id);
                children.push(json!({"resourceId": resource_id, "addressPrefixes": docs::prefix_strings(&child.address_prefixes)}));
            }
            Ok::<_, StoreError>(Some(json!({
                "addressPrefixes": docs::prefix_strings(usage.address_prefixes()),
                "childPools": children,
                "allocatedAddressPrefixes": docs::prefix_strings(usage.allocated_address_prefixes()),
                "reservedAddressPrefixes": docs::prefix_strings(usage.reserved_address_prefixes()),
                "availableAddressPrefixes": docs::prefix_strings(usage.available_address_prefixes()),
                "totalNumberOfIPAddresses": usage.total_number_of_ip_addresses().to_string(),
                "numberOfAllocatedIPAddresses": usage.number_of_allocated_ip_addresses().to_string(),
                "numberOfReservedIPAddresses": usage.number_of_reserved_ip_addresses().to_string(),
                "numberOfAvailableIPAddresses": usage.number_of_available_ip_addresses().to_string(),
            })))
        })
        .await?;
    Ok(json(StatusCode::OK, &body.ok_or_else(|| docs::not_found(POOL_TYPE, &pool_id))?))
}

/// `listAssociatedResources`: one entry per resource holding space in the pool (a VNet that
/// grew holds several allocations; they are summed), oldest first.
pub async fn associated(ctx: &Ctx, reference: &ResourceRef) -> Result<Response, ArmError> {
    let (_, pool_id) = ids(ctx, reference).await?;
    if ctx.method != Method::POST && ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    ctx.authorize(
        "Microsoft.Network/networkManagers/ipamPools/listAssociatedResources/action",
        &pool_id,
    )
    .await?;
    let doc = docs::require(ctx, POOL_TYPE, &pool_id).await?;
    let id = doc.id.clone();
    let allocations = ctx
        .read(move |tx| match docs::pool_record(tx, &id)? {
            Some(pool) => tx.allocations_of_pool(pool.id()),
            None => Ok(Vec::new()),
        })
        .await?;
    let mut by_owner: BTreeMap<String, (String, store::Timestamp, Vec<Prefix>)> = BTreeMap::new();
    for allocation in allocations.iter().filter(|a| a.holder() == Holder::Resource) {
        let entry =
            by_owner.entry(allocation.owner_id().to_ascii_lowercase()).or_insert_with(|| {
                (allocation.owner_id().to_owned(), allocation.created_at(), Vec::new())
            });
        entry.1 = entry.1.min(allocation.created_at());
        entry.2.extend_from_slice(allocation.blocks());
    }
    let mut entries: Vec<_> = by_owner.into_values().collect();
    entries.sort_by_key(|(owner, at, _)| (*at, owner.to_ascii_lowercase()));
    let value: Vec<Value> = entries
        .into_iter()
        .map(|(owner, at, mut blocks)| {
            blocks.sort();
            json!({
                "resourceId": owner,
                "poolId": doc.id,
                "description": "",
                "addressPrefixes": docs::prefix_strings(&blocks),
                "reservedPrefixes": [],
                "totalNumberOfIPAddresses": ipam::usage::sum(&blocks).to_string(),
                "numberOfReservedIPAddresses": "0",
                "createdAt": identity::time::rfc3339(at),
                "reservationExpiresAt": null,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "value": value })))
}
