//! What the network resources share: their api-versions and actions, their stored documents,
//! envelopes and names, and what deleting one must undo.

use axum::http::{Method, StatusCode};
use ipam::usage::Holder;
use serde_json::{Value, json};
use store::error::StoreError;
use store::pool::{Change, PoolRecord};
use store::resource::{Precondition, ResourceWrite, StoredResource};
use store::{ReadTx, Timestamp, WriteTx};

use crate::api_version::ApiVersions;
use crate::error::{ArmError, ErrorCode};
use crate::request::Ctx;

pub const MANAGER_TYPE: &str = "Microsoft.Network/networkManagers";
pub const POOL_TYPE: &str = "Microsoft.Network/networkManagers/ipamPools";
pub const STATIC_CIDR_TYPE: &str = "Microsoft.Network/networkManagers/ipamPools/staticCidrs";
pub const SCOPE_CONNECTION_TYPE: &str = "Microsoft.Network/networkManagers/scopeConnections";
pub const MANAGER_CONNECTION_TYPE: &str = "Microsoft.Network/networkManagerConnections";
pub const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";

/// The api-versions of the network resources: every stable version from 2022-07-01 (the seeds'
/// VNet PUT) to 2026-01-01.
pub const API_VERSIONS: ApiVersions = ApiVersions::new(
    "Microsoft.Network",
    &[
        "2022-07-01",
        "2022-09-01",
        "2022-11-01",
        "2023-02-01",
        "2023-04-01",
        "2023-05-01",
        "2023-06-01",
        "2023-09-01",
        "2023-11-01",
        "2024-01-01",
        "2024-01-01-preview",
        "2024-03-01",
        "2024-05-01",
        "2024-07-01",
        "2024-10-01",
        "2025-01-01",
        "2025-03-01",
        "2025-05-01",
        "2025-07-01",
        "2026-01-01",
    ],
);

/// IPAM pools and static CIDRs exist from 2024-01-01-preview on.
pub const IPAM_API_VERSIONS: ApiVersions = ApiVersions::new(
    "Microsoft.Network/networkManagers/ipamPools",
    &[
        "2024-01-01-preview",
        "2024-05-01",
        "2024-07-01",
        "2024-10-01",
        "2025-01-01",
        "2025-03-01",
        "2025-05-01",
        "2025-07-01",
        "2026-01-01",
    ],
);

/// A stored document: its id as created, its body (without `etag`) and its etag.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: String,
    pub body: Value,
    pub etag: String,
}

impl Doc {
    /// The document parsed from a stored resource's text (only its id and etag are copied).
    fn from_stored(stored: &StoredResource) -> Option<Doc> {
        let body = serde_json::from_str(&stored.body).ok()?;
        Some(Doc { id: stored.id.clone(), body, etag: stored.etag.clone() })
    }

    /// The body as served: with its etag, without crosspool's own bookkeeping.
    pub fn served(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("crosspool");
        }
        body["etag"] = json!(self.etag);
        body
    }
}

/// The document of `kind` at `id`, if there is one.
pub fn get(tx: &mut ReadTx<'_>, kind: &str, id: &str) -> Result<Option<Doc>, StoreError> {
    Ok(tx.resource_of_type(kind, id)?.and_then(|stored| Doc::from_stored(&stored)))
}

/// The same, outside a transaction.
pub async fn load(ctx: &Ctx, kind: &'static str, id: &str) -> Result<Option<Doc>, ArmError> {
    let id = id.to_owned();
    Ok(ctx.read(move |tx| get(tx, kind, &id)).await?)
}

/// The document of `kind` at `id` as `serve` presents it (with what it computes from other
/// documents), or `ResourceNotFound`.
pub async fn load_served<F>(
    ctx: &Ctx,
    kind: &'static str,
    id: &str,
    serve: F,
) -> Result<Value, ArmError>
where
    F: Fn(&mut ReadTx<'_>, &Doc) -> Result<Value, StoreError> + Send + 'static,
{
    let lookup = id.to_owned();
    let served = ctx
        .read(move |tx| match get(tx, kind, &lookup)? {
            Some(doc) => serve(tx, &doc).map(Some),
            None => Ok(None),
        })
        .await?;
    served.ok_or_else(|| not_found(kind, id))
}

/// The document of `kind` at `id`, which must exist (`ResourceNotFound`).
pub async fn require(ctx: &Ctx, kind: &'static str, id: &str) -> Result<Doc, ArmError> {
    load(ctx, kind, id).await?.ok_or_else(|| not_found(kind, id))
}

/// The pool's record in the allocator.
pub fn pool_record(tx: &mut ReadTx<'_>, pool_id: &str) -> Result<Option<PoolRecord>, StoreError> {
    tx.pool_by_key(&pool_id.to_ascii_lowercase())
}

/// Takes a pool out of the allocator; refused while it has child pools, associated resources or
/// static CIDRs.
pub fn remove_pool_from_allocator(
    tx: &mut WriteTx<'_>,
    pool_id: &str,
    change: Change<'_>,
) -> Result<(), ArmError> {
    let Some(pool) = pool_record(tx, pool_id)? else { return Ok(()) };
    let name = pool.name().to_owned();
    // Refused while anything is held, in the contract's words (CONTRACT 5.5, 7).
    if let Some(child) = tx.pool_children(pool.id())?.first() {
        return Err(ArmError::new(
            ErrorCode::IpamPoolHasChildPools,
            format!(
                "Ipam pool '{name}' has child pools (for example '{}'); delete them first.",
                child.name()
            ),
        ));
    }
    let allocations = tx.allocations_of_pool(pool.id())?;
    if let Some(held) = allocations.iter().find(|a| a.holder() == Holder::Resource) {
        return Err(ArmError::new(
            ErrorCode::BadRequest,
            format!(
                "Ipam pool '{name}' has Azure resources associated (for example '{}'); remove the associations first.",
                held.owner_id()
            ),
        ));
    }
    if let Some(held) = allocations.iter().find(|a| a.holder() == Holder::StaticCidr) {
        return Err(ArmError::new(
            ErrorCode::IpamPoolHasStaticCidrs,
            format!(
                "Ipam pool '{name}' has static CIDRs (for example '{}'); delete them first.",
                held.owner_id()
            ),
        ));
    }
    tx.pool_delete(pool.id(), change)?;
    Ok(())
}

/// Documents of `kind` whose ids start with `prefix`, a page after `after`.
pub fn list(
    tx: &mut ReadTx<'_>,
    kind: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Doc>, StoreError> {
    Ok(tx
        .resources_list(kind, prefix, after, limit)?
        .into_iter()
        .filter_map(|stored| Doc::from_stored(&stored))
        .collect())
}

/// Writes a document; returns it as stored and whether it was created.
pub fn put(
    tx: &mut WriteTx<'_>,
    kind: &str,
    tenant: &str,
    body: &Value,
    precondition: &Precondition,
    now: Timestamp,
) -> Result<(Doc, bool), ArmError> {
    write_doc(tx, kind, tenant, body, |tx, write| tx.resource_put(write, precondition, now))
}

/// The resource stored at `id` (of any type), locked until the transaction ends, and its
/// document if it is of `kind`: what a write reads once, then writes over
/// (`WriteTx::resource_put_over`). Writes that read a resource this way take turns
/// (`WriteTx::resource_get_locked`).
pub fn get_for_write(
    tx: &mut WriteTx<'_>,
    kind: &str,
    id: &str,
) -> Result<(Option<StoredResource>, Option<Doc>), StoreError> {
    let stored = tx.resource_get_locked(id)?;
    let doc = stored
        .as_ref()
        .filter(|stored| stored.resource_type.eq_ignore_ascii_case(kind))
        .and_then(Doc::from_stored);
    Ok((stored, doc))
}

/// Writes `body` (its `id` names it) with `write`; returns it as stored and whether it was created.
pub fn write_doc(
    tx: &mut WriteTx<'_>,
    kind: &str,
    tenant: &str,
    body: &Value,
    write: impl FnOnce(
        &mut WriteTx<'_>,
        ResourceWrite<'_>,
    ) -> Result<(StoredResource, bool), StoreError>,
) -> Result<(Doc, bool), ArmError> {
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let text = body.to_string();
    let resource = ResourceWrite { id: &id, resource_type: kind, tenant_id: tenant, body: &text };
    let (stored, created) = write(tx, resource)?;
    Ok((Doc { id: stored.id, body: body.clone(), etag: stored.etag }, created))
}

/// `^[0-9a-zA-Z]([0-9a-zA-Z_.-]{0,62}[0-9a-zA-Z_])?$`, the names of managers, pools and CIDRs.
pub fn check_name(name: &str, what: &str) -> Result<(), ArmError> {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || b"_.-".contains(b);
    let valid = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(inner)
        && (bytes.len() == 1
            || bytes[bytes.len() - 1].is_ascii_alphanumeric()
            || bytes[bytes.len() - 1] == b'_');
    if valid {
        return Ok(());
    }
    Err(ArmError::new(
        ErrorCode::InvalidResourceName,
        format!(
            "The {what} name '{name}' is invalid: it must be 1 to 64 letters, digits, '_', '.' or '-', start with a letter or digit and end with a letter, digit or '_'."
        ),
    ))
}

/// A resource that is not there.
pub fn not_found(kind: &str, id: &str) -> ArmError {
    let name = id.rsplit('/').next().unwrap_or(id);
    ArmError::new(
        ErrorCode::ResourceNotFound,
        format!(
            "The Resource '{kind}/{name}' under resource group '{}' was not found.",
            group_of(id)
        ),
    )
}

/// The resource group named in an id.
pub fn group_of(id: &str) -> &str {
    let segments: Vec<&str> = id.split('/').collect();
    segments
        .iter()
        .position(|s| s.eq_ignore_ascii_case("resourceGroups"))
        .and_then(|at| segments.get(at + 1).copied())
        .unwrap_or_default()
}

/// The subscription named in an id.
pub fn subscription_of(id: &str) -> String {
    store::authorization::subscription_of_scope(id).unwrap_or_default()
}

/// The envelope of a tracked resource: id, name, type, location, tags, systemData and the
/// given properties.
pub fn tracked(
    ctx: &Ctx,
    id: &str,
    kind: &str,
    location: &str,
    tags: Value,
    properties: Value,
    existing: Option<&Doc>,
) -> Value {
    json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or_default(),
        "type": kind,
        "location": location,
        "tags": tags,
        "systemData": ctx.system_data(existing.map(|doc| &doc.body["systemData"])),
        "properties": properties,
    })
}

/// The tags of a body (an object of strings), or the existing ones when it has none.
pub fn tags(body: &Value, existing: Option<&Doc>) -> Result<Value, ArmError> {
    match body.get("tags") {
        None | Some(Value::Null) => {
            Ok(existing.map_or_else(|| json!({}), |doc| doc.body["tags"].clone()))
        }
        Some(Value::Object(map)) => {
            if let Some((key, _)) = map.iter().find(|(_, value)| !value.is_string()) {
                return Err(ArmError::invalid_field(&format!("tags.{key}"), "must be a string"));
            }
            Ok(Value::Object(map.clone()))
        }
        Some(_) => Err(ArmError::invalid_field("tags", "must be an object of strings")),
    }
}

/// A location from the body, required unless the resource exists (then it may not change).
pub fn location(body: &Value, existing: Option<&Doc>) -> Result<String, ArmError> {
    let given =
        crate::request::opt_str(body, "location")?.map(crate::location::parse).transpose()?;
    let stored = existing.and_then(|doc| doc.body["location"].as_str()).map(str::to_owned);
    match (given, stored) {
        (Some(given), Some(stored)) if given != stored => Err(ArmError::new(
            ErrorCode::LocationCannotBeChanged,
            format!(
                "The location of an existing resource cannot change from '{stored}' to '{given}'."
            ),
        )
        .with_target("location")),
        (Some(location), _) | (None, Some(location)) => Ok(location),
        (None, None) => Err(ArmError::new(
            ErrorCode::LocationRequired,
            "The location property is required for this definition.",
        )
        .with_target("location")),
    }
}

/// Gives back every allocation `owner` holds.
pub fn release_all(tx: &mut WriteTx<'_>, owner: &str, change: Change<'_>) -> Result<(), ArmError> {
    for allocation in tx.allocations_of_owner(owner)? {
        tx.allocation_release(allocation.id(), change)?;
    }
    Ok(())
}

/// Prefixes as strings.
pub fn prefix_strings(prefixes: &[ipam::prefix::Prefix]) -> Vec<String> {
    prefixes.iter().map(ToString::to_string).collect()
}

/// A paged list of the documents of `kind` under `prefix` that the caller may read
/// (`read_action` at each one's id): `{value, nextLink}`. `top` is the page size asked for.
pub async fn paged_list<F>(
    ctx: &Ctx,
    kind: &'static str,
    prefix: &str,
    read_action: &str,
    top: usize,
    serve: F,
) -> Result<axum::response::Response, ArmError>
where
    F: Fn(&mut ReadTx<'_>, &Doc) -> Result<Value, StoreError> + Send + 'static,
{
    let (prefix, after) = (prefix.to_owned(), ctx.skip_token().map(str::to_owned));
    let (assignments, action) = (ctx.role_assignments().await?.to_vec(), read_action.to_owned());
    // `skip` (the pool and static CIDR lists' offset) skips that many before the page.
    let skip = match ctx.query.get("skip").or_else(|| ctx.query.get("$skip")) {
        None => 0,
        Some(text) => text.parse::<usize>().ok().filter(|skip| *skip <= 100_000).ok_or_else(|| {
            ArmError::new(ErrorCode::InvalidParameter,
                format!("The value '{text}' of 'skip' is invalid: it must be an integer from 0 to 100000."),
            )
        })?,
    };
    let (value, last) = ctx
        .read(move |tx| {
            let mut page = list(tx, kind, &prefix, after.as_deref(), skip + top)?;
            page.drain(..skip.min(page.len()));
            let last = (page.len() == top)
                .then(|| page.last().map(|doc| doc.id.to_ascii_lowercase()))
                .flatten();
            let mut value = Vec::new();
            for doc in page.iter().filter(|doc| crate::rbac::allows(&assignments, &action, &doc.id))
            {
                value.push(serve(tx, doc)?);
            }
            Ok::<_, StoreError>((value, last))
        })
        .await?;
    let mut body = json!({ "value": value });
    if let Some(last) = last {
        body["nextLink"] = json!(ctx.next_link(&last, top));
    }
    Ok(crate::response::json(StatusCode::OK, &body))
}

/// The action string ARM checks for a request on a resource of `types` (e.g.
/// `["networkManagers", "ipamPools"]`), in the casing the client sent (actions match
/// case-insensitively).
pub fn action(types: &[&str], method: &Method) -> String {
    let verb = match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        Method::POST => "action",
        _ => "write",
    };
    format!("Microsoft.Network/{}/{verb}", types.join("/"))
}

/// Where a resource goes in a group's deletion: lower first. Virtual networks release their
/// space before static CIDRs, then pools (deepest first, by the caller's id-depth order), then
/// connections and managers.
pub fn deletion_rank(resource: &StoredResource) -> u8 {
    match resource.resource_type.as_str() {
        t if t.eq_ignore_ascii_case(VNET_TYPE) => 0,
        t if t.eq_ignore_ascii_case(STATIC_CIDR_TYPE) => 1,
        t if t.eq_ignore_ascii_case(POOL_TYPE) => 2,
        t if t.eq_ignore_ascii_case(MANAGER_TYPE) => 4,
        _ => 3,
    }
}

/// What deleting a resource must also undo, in the deleting transaction: a VNet's and a static
/// CIDR's allocations go back to their pools; a pool leaves the allocator (refused while it
/// still holds anything another resource group owns).
pub fn clean_up(
    tx: &mut WriteTx<'_>,
    resource: &StoredResource,
    now: Timestamp,
) -> Result<(), ArmError> {
    let change = store::pool::Change { now, request_id: "resource-group-delete" };
    let kind = resource.resource_type.as_str();
    if kind.eq_ignore_ascii_case(VNET_TYPE) || kind.eq_ignore_ascii_case(STATIC_CIDR_TYPE) {
        release_all(tx, &resource.id, change)?;
    } else if kind.eq_ignore_ascii_case(POOL_TYPE) {
        remove_pool_from_allocator(tx, &resource.id, change)?;
    }
    Ok(())
}
