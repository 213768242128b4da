//! Virtual networks and their subnets, with address space either static (`addressPrefixes`) or
//! allocated from IPAM pools (`ipamPoolPrefixAllocations`, CONTRACT 3.6 and 5.2).
//!
//! A VNet PUT is checked (RBAC on the VNet; linked authorization and manager scope for each pool
//! whose allocation it creates, grows or releases), then applied in one transaction that
//! serialises writes to the same VNet: allocations are taken, grown or released in the pools'
//! allocator, subnets are carved from the VNet's space, and the document is written. A subnet
//! PUT or DELETE rewrites its VNet through the same path.

use std::collections::{BTreeMap, HashMap};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use ipam::count::AddressCount;
use ipam::plan::Placement;
use ipam::prefix::{Family, Prefix};
use ipam::request::Request;
use ipam::tree::{PoolSpec, PoolTree, TreeConfig};
use ipam::usage::Holder;
use serde_json::{Value, json};
use store::WriteTx;
use store::authorization::RoleAssignmentRecord;
use store::error::StoreError;
use store::pool::{Change, Owner};
use store::resource::Precondition;

use super::docs::{self, Doc, VNET_TYPE};
use super::linked;
use crate::error::{ArmError, ErrorCode};
use crate::operation::{self, Operation};
use crate::path::ResourceRef;
use crate::request::{Ctx, opt_array, opt_str, opt_strings};
use crate::response::json;

const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";

/// One `ipamPoolPrefixAllocations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolAsk {
    /// The pool id as the client wrote it.
    pool_id: String,
    count_text: String,
    count: AddressCount,
}

impl PoolAsk {
    fn key(&self) -> String {
        self.pool_id.trim_end_matches('/').to_ascii_lowercase()
    }
}

#[derive(Debug, Clone)]
struct SubnetSpec {
    name: String,
    prefixes: Vec<Prefix>,
    asks: Vec<PoolAsk>,
}

#[derive(Debug, Clone)]
struct VnetSpec {
    location: String,
    tags: Value,
    prefixes: Vec<Prefix>,
    asks: Vec<PoolAsk>,
    subnets: Vec<SubnetSpec>,
    flags: Value,
}

fn parse_prefixes(texts: &[String], path: &str) -> Result<Vec<Prefix>, ArmError> {
    let prefixes = texts
        .iter()
        .enumerate()
        .map(|(at, text)| {
            Prefix::parse(text)
                .map_err(|error| ArmError::from(&error).with_target(format!("{path}[{at}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (at, prefix) in prefixes.iter().enumerate() {
        if let Some(other) = prefixes[..at].iter().find(|other| other.overlaps(prefix)) {
            return Err(ArmError::new(
                ErrorCode::NetcfgInvalidAddressPrefix,
                format!("The address prefixes {other} and {prefix} in '{path}' overlap."),
            )
            .with_target(path));
        }
    }
    Ok(prefixes)
}

fn parse_asks(body: &Value, path: &str) -> Result<Vec<PoolAsk>, ArmError> {
    let Some(items) = opt_array(body, path)? else { return Ok(Vec::new()) };
    let mut asks: Vec<PoolAsk> = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let here = format!("{path}[{at}]");
        let pool_id = opt_str(item, "pool.id")?
            .or(opt_str(item, "id")?)
            .ok_or_else(|| ArmError::invalid_field(&format!("{here}.pool.id"), "is required"))?;
        let count_text = match item.get("numberOfIpAddresses") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(_)) => {
                return Err(ArmError::invalid_field(
                    &format!("{here}.numberOfIpAddresses"),
                    "must be a string, e.g. \"256\"",
                ));
            }
            _ => {
                return Err(ArmError::invalid_field(
                    &format!("{here}.numberOfIpAddresses"),
                    "is required",
                ));
            }
        };
        let count = ipam::request::parse_count(&count_text).map_err(|error| {
            ArmError::from(&error).with_target(format!("{here}.numberOfIpAddresses"))
        })?;
        let ask = PoolAsk { pool_id: pool_id.trim_end_matches('/').to_owned(), count_text, count };
        if asks.iter().any(|other| other.key() == ask.key()) {
            return Err(ArmError::new(
                ErrorCode::CannotHaveDuplicatePoolIds,
                format!("The pool '{}' appears more than once in '{path}'.", ask.pool_id),
            )
            .with_target(here));
        }
        asks.push(ask);
    }
    Ok(asks)
}

/// The allocated prefixes a document shows for its pools (what a client echoes back).
fn allocated_in(doc_properties: &Value, path: &str) -> Vec<Prefix> {
    let mut prefixes: Vec<Prefix> = doc_properties
        .pointer(path)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .flat_map(|item| {
                    item["allocatedAddressPrefixes"].as_array().cloned().unwrap_or_default()
                })
                .filter_map(|text| text.as_str().and_then(|text| Prefix::parse(text).ok()))
                .collect()
        })
        .unwrap_or_default();
    prefixes.sort();
    prefixes
}

/// Static prefixes next to pool allocations are allowed only when they are what the resource
/// already holds from its pools (a client echoing a GET back).
fn check_mix(
    prefixes: &[Prefix],
    asks: &[PoolAsk],
    echo: &[Prefix],
    path: &str,
) -> Result<(), ArmError> {
    let mut sorted = prefixes.to_vec();
    sorted.sort();
    if asks.is_empty() || prefixes.is_empty() || sorted == echo {
        return Ok(());
    }
    Err(ArmError::new(
        ErrorCode::CannotMixAddressPrefixAndPoolInPayload,
        format!(
            "'{path}' gives both address prefixes and IPAM pool allocations; give one or the other."
        ),
    ))
}

fn parse_subnet(item: &Value, at: usize, existing: Option<&Value>) -> Result<SubnetSpec, ArmError> {
    let here = format!("properties.subnets[{at}]");
    let name = opt_str(item, "name")?
        .ok_or_else(|| ArmError::invalid_field(&format!("{here}.name"), "is required"))?;
    docs::check_name(name, "subnet").map_err(|error| error.with_target(format!("{here}.name")))?;
    let mut texts = opt_strings(item, "properties.addressPrefixes")?.unwrap_or_default();
    if let Some(single) = opt_str(item, "properties.addressPrefix")?
        && !texts.iter().any(|text| text == single)
    {
        texts.push(single.to_owned());
    }
    let prefixes = parse_prefixes(&texts, &format!("{here}.properties.addressPrefixes"))?;
    let asks = parse_asks(item, "properties.ipamPoolPrefixAllocations")
        .map_err(|error| retarget(error, &here))?;
    let echo = existing
        .map(|subnet| allocated_in(subnet, "/properties/ipamPoolPrefixAllocations"))
        .unwrap_or_default();
    check_mix(&prefixes, &asks, &echo, &here)?;
    let prefixes = if asks.is_empty() { prefixes } else { Vec::new() };
    Ok(SubnetSpec { name: name.to_owned(), prefixes, asks })
}

fn retarget(mut error: ArmError, prefix: &str) -> ArmError {
    if let Some(target) = &error.target {
        error.target = Some(format!("{prefix}.{target}"));
    }
    error
}

fn parse_vnet(body: &Value, existing: Option<&Doc>) -> Result<VnetSpec, ArmError> {
    let location = docs::location(body, existing)?;
    let tags = docs::tags(body, existing)?;
    if body.pointer("/properties/addressSpace").is_none_or(Value::is_null) {
        return Err(ArmError::invalid_field("properties.addressSpace", "is required"));
    }
    let texts = opt_strings(body, "properties.addressSpace.addressPrefixes")?.unwrap_or_default();
    let prefixes = parse_prefixes(&texts, "properties.addressSpace.addressPrefixes")?;
    let asks = parse_asks(body, "properties.addressSpace.ipamPoolPrefixAllocations")?;
    let echo = existing
        .map(|doc| allocated_in(&doc.body, "/properties/addressSpace/ipamPoolPrefixAllocations"))
        .unwrap_or_default();
    check_mix(&prefixes, &asks, &echo, "properties.addressSpace")?;
    if asks.is_empty() && prefixes.is_empty() {
        return Err(ArmError::invalid_field(
            "properties.addressSpace",
            "must give addressPrefixes or ipamPoolPrefixAllocations",
        ));
    }
    let prefixes = if asks.is_empty() { prefixes } else { Vec::new() };
    let existing_subnets = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default();
    let mut subnets: Vec<SubnetSpec> = Vec::new();
    for (at, item) in
        opt_array(body, "properties.subnets")?.cloned().unwrap_or_default().iter().enumerate()
    {
        let name = item["name"].as_str().unwrap_or_default();
        let old = existing_subnets
            .iter()
            .find(|subnet| subnet["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
        let subnet = parse_subnet(item, at, old)?;
        if subnets.iter().any(|other| other.name.eq_ignore_ascii_case(&subnet.name)) {
            return Err(ArmError::invalid_field(
                &format!("properties.subnets[{at}].name"),
                "repeats another subnet's name",
            ));
        }
        subnets.push(subnet);
    }
    let mut flags = json!({});
    for flag in ["enableDdosProtection", "enableVmProtection"] {
        flags[flag] = match body["properties"].get(flag) {
            None | Some(Value::Null) => json!(false),
            Some(Value::Bool(value)) => json!(value),
            Some(_) => {
                return Err(ArmError::invalid_field(
                    &format!("properties.{flag}"),
                    "must be a boolean",
                ));
            }
        };
    }
    Ok(VnetSpec { location, tags, prefixes, asks, subnets, flags })
}

/// The pools a document allocates from, with the count asked of each (lower-cased id → count).
fn asks_of(doc_allocations: Option<&Value>) -> BTreeMap<String, String> {
    doc_allocations
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some((
                        item["pool"]["id"].as_str()?.to_ascii_lowercase(),
                        item["numberOfIpAddresses"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Pools whose use changes: (pools to associate or grow, pools to release), lower-cased ids,
/// with their ids as written.
fn changes(spec: &VnetSpec, existing: Option<&Doc>) -> (Vec<String>, Vec<String>) {
    let old =
        asks_of(existing.and_then(|doc| {
            doc.body.pointer("/properties/addressSpace/ipamPoolPrefixAllocations")
        }));
    let old_subnets: BTreeMap<String, BTreeMap<String, String>> = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|subnet| {
            (
                subnet["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
                asks_of(subnet.pointer("/properties/ipamPoolPrefixAllocations")),
            )
        })
        .collect();
    let mut associate: Vec<String> = Vec::new();
    for ask in &spec.asks {
        if old.get(&ask.key()) != Some(&ask.count_text) {
            associate.push(ask.pool_id.clone());
        }
    }
    for subnet in &spec.subnets {
        let before =
            old_subnets.get(&subnet.name.to_ascii_lowercase()).cloned().unwrap_or_default();
        for ask in &subnet.asks {
            let known = associate.iter().any(|id| id.eq_ignore_ascii_case(&ask.pool_id));
            if before.get(&ask.key()) != Some(&ask.count_text) && !known {
                associate.push(ask.pool_id.clone());
            }
        }
    }
    let release =
        old.keys().filter(|key| !spec.asks.iter().any(|ask| ask.key() == **key)).cloned().collect();
    (associate, release)
}

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

/// What the checks before the transaction found out about a pool.
struct PoolFacts {
    family: Family,
}

/// Checks a VNet PUT body and applies it. Returns the stored document and whether it was created.
/// What the checks before a VNet write read from the store, in one read transaction.
struct Found {
    /// The tenant owning each linked pool's subscription, by the pool id as written.
    tenants: HashMap<String, Option<String>>,
    /// Role assignments of the caller and of each auxiliary principal, by object id.
    assignments: HashMap<String, Vec<RoleAssignmentRecord>>,
    /// The pools asked of, or the first reason one can't be used.
    facts: Result<Vec<PoolFacts>, ArmError>,
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
    let found = find(ctx, id, &spec, &associate, &release, &auxiliary).await?;
    let tenant_of = |pool_id: &str| -> Result<String, ArmError> {
        found.tenants.get(pool_id).cloned().flatten().ok_or_else(|| pool_not_found(pool_id))
    };
    // Auxiliary tokens are for the tenants of the pools the request links to; one for any other
    // tenant is refused, as ARM refuses a token it cannot use.
    let linked_tenants = associate
        .iter()
        .chain(&release)
        .map(|pool| tenant_of(pool))
        .collect::<Result<Vec<_>, _>>()?;
    if !linked_tenants.is_empty()
        && let Some(stray) = auxiliary
            .iter()
            .find(|aux| !linked_tenants.iter().any(|t| t.eq_ignore_ascii_case(aux.tenant_id())))
    {
        let origin = ctx.arm.identity().origin();
        return Err(ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationTokenTenant,
            format!(
                "The auxiliary token of client '{}' is from tenant '{}', which owns none of the resources this request links to (tenant(s) '{}').",
                stray.name(),
                stray.tenant_id(),
                linked_tenants.join("', '")
            ),
            &format!("{origin}/{}", linked_tenants[0]),
        ));
    }
    let primary_action = "Microsoft.Network/virtualNetworks/write";
    for (pools, action, same_identity) in
        [(&associate, linked::ASSOCIATE, true), (&release, linked::DISASSOCIATE, false)]
    {
        for pool_id in pools {
            let check = linked::Check { same_identity, primary_action, primary_scope: id, action };
            linked::authorize(
                ctx,
                &auxiliary,
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

/// What a VNet PUT's transaction writes.
struct VnetWrite {
    id: String,
    spec: VnetSpec,
    tenant: String,
    precondition: Precondition,
    /// The record of the PUT's operation, written with the VNet's document in one statement.
    recording: operation::Recording,
}

/// The network manager of the first pool a VNet write allocates in or releases to: on
/// PostgreSQL, writes that lock one manager's pool trees share transactions
/// (`store::Store::write_on`). A write touching several managers' pools is queued by the first.
fn queue_key<'a>(mut pools: impl Iterator<Item = &'a str>) -> Option<String> {
    pools.next().map(|pool_id| manager_of(pool_id).to_owned())
}

/// The id of the network manager a pool id is under (the id itself if it names no pool).
fn manager_of(pool_id: &str) -> &str {
    &pool_id[..pool_id.to_ascii_lowercase().find("/ipampools/").unwrap_or(pool_id.len())]
}

/// A write transaction, in the queue of `key` when there is one (`queue_key`).
async fn write_queued<T, F>(ctx: &Ctx, key: Option<String>, f: F) -> Result<T, ArmError>
where
    F: FnMut(&mut WriteTx<'_>) -> Result<T, ArmError> + Send + 'static,
    T: Send + 'static,
{
    let store = ctx.arm.identity().store();
    match key {
        Some(key) => store.write_on(&key, f).await,
        None => store.write(f).await,
    }
}

/// Reads, in one transaction, what the checks of a VNet write need: the linked pools' tenants,
/// the role assignments of the caller and its auxiliary principals, and the pools' facts.
async fn find(
    ctx: &Ctx,
    vnet_id: &str,
    spec: &VnetSpec,
    associate: &[String],
    release: &[String],
    auxiliary: &[crate::auth::Caller],
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
                Some(manager) => {
                    super::managers::in_scope(tx, manager, vnet_subscription, vnet_tenant)?
                }
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

fn pool_not_found(pool_id: &str) -> ArmError {
    ArmError::new(
        ErrorCode::LinkedIpamPoolNotFound,
        format!(
            "Ipam API call failed with status NotFound with error message Pool with ARM ID {pool_id} not found., please check the parameters and retry."
        ),
    )
}

/// The sum of the blocks a count becomes in a family (the count rounded up to whole blocks).
fn rounded(family: Family, count: AddressCount) -> Result<AddressCount, ArmError> {
    let lens =
        ipam::request::blocks_for_count(family, count).map_err(|error| ArmError::from(&error))?;
    let blocks: Vec<Prefix> = lens.iter().filter_map(|len| Prefix::new(family, 0, *len)).collect();
    Ok(blocks.iter().fold(AddressCount::ZERO, |sum, block| sum.add_disjoint(block.size())))
}

/// The transaction of a VNet PUT.
fn apply(
    tx: &mut WriteTx<'_>,
    put: &VnetWrite,
    change: Change<'_>,
    missing: bool,
) -> Result<(Doc, bool), ArmError> {
    let VnetWrite { id, spec, tenant, precondition, recording } = put;
    // Read locked: writes to this VNet take turns, across processes. A VNet that was `missing`
    // when the request began is created without that read, a round trip fewer; if it has been
    // created meanwhile, the insert finds it and the transaction runs again, reading it.
    let (stored, existing) =
        if missing { (None, None) } else { docs::get_for_write(tx, VNET_TYPE, id)? };
    // A VNet's allocations live and die with its document, in the same transactions (every
    // delete releases them), so where nothing is stored nothing is held.
    let held = if stored.is_some() { tx.allocations_of_owner(id)? } else { Vec::new() };
    let mut blocks_by_pool: BTreeMap<String, Vec<Prefix>> = BTreeMap::new();
    let mut kept = Vec::new();
    for ask in &spec.asks {
        // Read with its tree locked, as allocating in it would lock it: one look-up, not two.
        let pool =
            tx.pool_lock_by_key(&ask.pool_id)?.ok_or_else(|| pool_not_found(&ask.pool_id))?;
        let record = pool.record();
        let mine: Vec<_> = held.iter().filter(|a| a.pool() == record.id()).collect();
        let have = mine
            .iter()
            .flat_map(|a| a.blocks())
            .fold(AddressCount::ZERO, |sum, b| sum.add_disjoint(b.size()));
        let want = rounded(record.family(), ask.count)?;
        let owner = Owner { id, tenant };
        let mut now_held: Vec<Prefix> = mine.iter().flat_map(|a| a.blocks().to_vec()).collect();
        if want > have {
            let more = want.sub_contained(have);
            // Written with the VNet's document, in one statement on PostgreSQL.
            let added = tx.pool_allocate_blocks(
                &pool,
                &Request::Count(more),
                Holder::Resource,
                owner,
                change,
            )?;
            now_held.extend_from_slice(&added);
        } else if want < have {
            return Err(ArmError::new(
                ErrorCode::IpamAllocationCannotBeDecreased,
                format!(
                    "The virtual network holds {have} addresses from pool '{}'; numberOfIpAddresses '{}' would decrease it, which is not allowed. Release the allocation and allocate again instead.",
                    ask.pool_id, ask.count_text
                ),
            ));
        }
        kept.push(record.id());
        blocks_by_pool.insert(ask.key(), now_held);
    }
    for allocation in held.iter().filter(|a| !kept.contains(&a.pool())) {
        tx.allocation_release(allocation.id(), change)?;
    }
    let mut vnet_prefixes: Vec<Prefix> = if spec.asks.is_empty() {
        spec.prefixes.clone()
    } else {
        blocks_by_pool.values().flatten().copied().collect()
    };
    vnet_prefixes.sort();
    let subnets = carve_subnets(id, spec, &vnet_prefixes, &blocks_by_pool, existing.as_ref())?;
    let allocations: Vec<Value> = spec
        .asks
        .iter()
        .map(|ask| {
            let mut blocks = blocks_by_pool.get(&ask.key()).cloned().unwrap_or_default();
            blocks.sort();
            json!({"numberOfIpAddresses": ask.count_text, "pool": {"id": ask.pool_id}, "allocatedAddressPrefixes": docs::prefix_strings(&blocks)})
        })
        .collect();
    let guid = existing
        .as_ref()
        .and_then(|doc| doc.body["properties"]["resourceGuid"].as_str().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut properties = json!({
        "addressSpace": {"addressPrefixes": docs::prefix_strings(&vnet_prefixes)},
        "subnets": subnets,
        "virtualNetworkPeerings": [],
        "provisioningState": "Succeeded",
        "resourceGuid": guid,
    });
    if !allocations.is_empty() {
        properties["addressSpace"]["ipamPoolPrefixAllocations"] = json!(allocations);
    }
    for (flag, value) in spec.flags.as_object().into_iter().flatten() {
        properties[flag] = value.clone();
    }
    let document = json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or_default(),
        "type": VNET_TYPE,
        "location": spec.location,
        "tags": spec.tags,
        "properties": properties,
    });
    docs::write_doc(tx, VNET_TYPE, tenant, &document, |tx, write| {
        tx.resource_put_over_creating(
            write,
            stored,
            precondition,
            change.now,
            Some(recording.write()),
        )
    })
}

/// A subnet's space from one pool (lower-cased pool id), or its static space (`None`).
type Carved = (Option<String>, Vec<Prefix>);

/// The subnets of a VNet: static ones inside its space, pool ones carved from the space the VNet
/// holds from that pool (kept when their ask is unchanged), none overlapping another.
fn carve_subnets(
    vnet_id: &str,
    spec: &VnetSpec,
    vnet_prefixes: &[Prefix],
    blocks_by_pool: &BTreeMap<String, Vec<Prefix>>,
    existing: Option<&Doc>,
) -> Result<Vec<Value>, ArmError> {
    let old_subnets = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default();
    // First the space that is decided: static prefixes and unchanged pool allocations.
    let mut decided: Vec<Option<Vec<Carved>>> = Vec::new();
    for subnet in &spec.subnets {
        for prefix in &subnet.prefixes {
            if !vnet_prefixes.iter().any(|space| space.contains(prefix)) {
                return Err(ArmError::new(
                    ErrorCode::NetcfgSubnetRangeOutsideVnet,
                    format!(
                        "Subnet '{}' has address prefix {prefix}, which is outside the virtual network's address space.",
                        subnet.name
                    ),
                ));
            }
        }
        for ask in &subnet.asks {
            if !blocks_by_pool.contains_key(&ask.key()) {
                let code = if spec.asks.is_empty() {
                    ErrorCode::SubnetsCannotReferToPoolsIfVnetDoeNot
                } else {
                    ErrorCode::SubnetPoolsMustBeSubsetOfVnetPools
                };
                return Err(ArmError::new(
                    code,
                    format!(
                        "Subnet '{}' uses pool '{}', which its virtual network does not use.",
                        subnet.name, ask.pool_id
                    ),
                ));
            }
        }
        let old = old_subnets
            .iter()
            .find(|old| old["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&subnet.name)));
        let unchanged = old.is_some_and(|old| {
            asks_of(old.pointer("/properties/ipamPoolPrefixAllocations"))
                == subnet
                    .asks
                    .iter()
                    .map(|ask| (ask.key(), ask.count_text.clone()))
                    .collect::<BTreeMap<_, _>>()
        });
        if subnet.asks.is_empty() {
            decided.push(Some(vec![(None, subnet.prefixes.clone())]));
        } else if let (true, Some(old)) = (unchanged, old) {
            let mut parts = Vec::new();
            for item in old
                .pointer("/properties/ipamPoolPrefixAllocations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let key = item["pool"]["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                let prefixes: Vec<Prefix> = item["allocatedAddressPrefixes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.as_str().and_then(|t| Prefix::parse(t).ok()))
                    .collect();
                let inside = blocks_by_pool.get(&key).is_some_and(|space| {
                    prefixes.iter().all(|p| space.iter().any(|s| s.contains(p)))
                });
                if !inside {
                    parts.clear();
                    break;
                }
                parts.push((Some(key), prefixes));
            }
            decided.push((!parts.is_empty()).then_some(parts));
        } else {
            decided.push(None);
        }
    }
    let mut taken: Vec<Prefix> =
        decided.iter().flatten().flatten().flat_map(|(_, prefixes)| prefixes.clone()).collect();
    for (at, prefix) in taken.iter().enumerate() {
        if let Some(other) = taken[..at].iter().find(|other| other.overlaps(prefix)) {
            return Err(ArmError::new(
                ErrorCode::NetcfgSubnetRangesOverlap,
                format!("Subnet address prefixes {other} and {prefix} overlap."),
            ));
        }
    }
    // Then carve the rest, each from the VNet's space of its pool minus everything taken.
    let mut result = Vec::new();
    for (subnet, decided) in spec.subnets.iter().zip(decided) {
        let parts = match decided {
            Some(parts) => parts,
            None => {
                let mut parts = Vec::new();
                for ask in &subnet.asks {
                    let space = blocks_by_pool.get(&ask.key()).cloned().unwrap_or_default();
                    let blocks = carve(
                        &format!("{}'s space from pool {}", subnet.name, ask.pool_id),
                        &space,
                        &taken,
                        ask.count,
                    )?;
                    taken.extend_from_slice(&blocks);
                    parts.push((Some(ask.key()), blocks));
                }
                parts
            }
        };
        let mut prefixes: Vec<Prefix> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
        prefixes.sort();
        let mut properties = json!({"provisioningState": "Succeeded"});
        if prefixes.len() == 1 {
            properties["addressPrefix"] = json!(prefixes[0].to_string());
        } else {
            properties["addressPrefixes"] = json!(docs::prefix_strings(&prefixes));
        }
        if !subnet.asks.is_empty() {
            let allocations: Vec<Value> = subnet
                .asks
                .iter()
                .map(|ask| {
                    let blocks = parts.iter().find(|(key, _)| key.as_deref() == Some(ask.key().as_str())).map(|(_, b)| b.clone()).unwrap_or_default();
                    json!({"numberOfIpAddresses": ask.count_text, "pool": {"id": ask.pool_id}, "allocatedAddressPrefixes": docs::prefix_strings(&blocks)})
                })
                .collect();
            properties["ipamPoolPrefixAllocations"] = json!(allocations);
        }
        result.push(json!({
            "id": format!("{vnet_id}/subnets/{}", subnet.name),
            "name": subnet.name,
            "type": SUBNET_TYPE,
            "properties": properties,
        }));
    }
    Ok(result)
}

/// Carves `count` addresses from `space` avoiding `taken`, with the allocator's rules.
fn carve(
    name: &str,
    space: &[Prefix],
    taken: &[Prefix],
    count: AddressCount,
) -> Result<Vec<Prefix>, ArmError> {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree
        .create_pool(PoolSpec {
            name: name.to_owned(),
            parent: None,
            prefixes: space.to_vec(),
            placement: Placement::BestFit,
        })
        .map_err(|error| ArmError::from(&error))?;
    let mut holds = Vec::new();
    for prefix in taken.iter().filter(|prefix| space.iter().any(|s| s.contains(prefix))) {
        holds.push(
            tree.allocate(pool, &Request::Prefix(*prefix), Holder::Resource)
                .map_err(|error| ArmError::from(&error))?,
        );
    }
    let carved = tree
        .allocate(pool, &Request::Count(count), Holder::Resource)
        .map_err(|error| ArmError::from(&error))?;
    Ok(carved.blocks().to_vec())
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
