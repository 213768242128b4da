//! Resource groups: `/subscriptions/{s}/resourcegroups[/{rg}]` — PUT, GET, HEAD, PATCH, DELETE
//! (202 + `Location`, then 204 on the poll) and a paged list. Deleting a group deletes everything
//! in it, in one transaction, through the same clean-up each resource's own DELETE runs.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::resource::{Precondition, ResourceWrite, StoredResource};
use store::{Timestamp, WriteTx};

use crate::api_version::ApiVersions;
use crate::error::{ArmError, ErrorCode};
use crate::network::docs::{clean_up, deletion_rank};
use crate::operation::{self, Operation};
use crate::request::{Ctx, RESOURCE_GROUP_TYPE, opt_object, opt_str};
use crate::response::json;

pub const API_VERSIONS: ApiVersions = ApiVersions::new(
    "resourceGroups",
    &[
        "2019-10-01",
        "2020-06-01",
        "2020-10-01",
        "2021-04-01",
        "2022-09-01",
        "2023-07-01",
        "2024-03-01",
        "2024-07-01",
        "2024-11-01",
        "2025-03-01",
        "2025-04-01",
    ],
);

const READ: &str = "Microsoft.Resources/subscriptions/resourceGroups/read";
const WRITE: &str = "Microsoft.Resources/subscriptions/resourceGroups/write";
const DELETE: &str = "Microsoft.Resources/subscriptions/resourceGroups/delete";

/// A group's canonical id.
pub fn group_id(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{name}")
}

/// `1–90` letters, digits, `_`, `-`, `.`, `(`, `)`, not ending in `.`.
fn check_name(name: &str) -> Result<(), ArmError> {
    let valid = (1..=90).contains(&name.chars().count())
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || "_-.()".contains(c));
    if valid {
        return Ok(());
    }
    Err(ArmError::new(
        ErrorCode::InvalidResourceGroupName,
        format!(
            "The resource group name '{name}' is invalid: it must be 1 to 90 letters, digits, underscores, hyphens, periods or parentheses, and not end in a period."
        ),
    ))
}

pub async fn handle_one(ctx: &Ctx, subscription: &str, name: &str) -> Result<Response, ArmError> {
    let subscription = ctx.subscription(subscription).await?.id;
    ctx.api_version(&API_VERSIONS)?;
    let scope = group_id(&subscription, name);
    match ctx.method.clone() {
        Method::GET | Method::HEAD => {
            ctx.authorize(READ, &scope).await?;
            let group = ctx.resource_group(&subscription, name).await?;
            match (ctx.method == Method::HEAD, group) {
                (true, Some(_)) => Ok(crate::response::empty(StatusCode::NO_CONTENT)),
                (true, None) => Ok(crate::response::empty(StatusCode::NOT_FOUND)),
                (false, Some(group)) => Ok(json(StatusCode::OK, &group)),
                (false, None) => Err(ArmError::resource_group_not_found(name)),
            }
        }
        Method::PUT | Method::PATCH => {
            ctx.authorize(WRITE, &scope).await?;
            put(ctx, &subscription, name).await
        }
        Method::DELETE => {
            ctx.authorize(DELETE, &scope).await?;
            delete(ctx, &subscription, name).await
        }
        _ => Err(ctx.method_not_allowed()),
    }
}

async fn put(ctx: &Ctx, subscription: &str, name: &str) -> Result<Response, ArmError> {
    check_name(name)?;
    let body = ctx.json_body()?;
    let existing = ctx.resource_group(subscription, name).await?;
    let location = match (opt_str(&body, "location")?, &existing) {
        (Some(location), _) => crate::location::parse(location)?,
        (None, Some(existing)) if ctx.method == Method::PATCH => {
            existing["location"].as_str().unwrap_or_default().to_owned()
        }
        _ => {
            return Err(ArmError::new(
                ErrorCode::LocationRequired,
                "The location property is required for this definition.",
            )
            .with_target("location"));
        }
    };
    if ctx.method == Method::PATCH && existing.is_none() {
        return Err(ArmError::resource_group_not_found(name));
    }
    if let Some(existing) = &existing {
        let stored = existing["location"].as_str().unwrap_or_default();
        if !stored.eq_ignore_ascii_case(&location) {
            return Err(ArmError::new(
                ErrorCode::InvalidResourceGroupLocation,
                format!(
                    "Invalid resource group location '{location}'. The Resource group already exists in location '{stored}'."
                ),
            ));
        }
    }
    let tags = match opt_object(&body, "tags")? {
        Some(tags) => tags.clone(),
        None => existing.as_ref().map_or_else(|| json!({}), |existing| existing["tags"].clone()),
    };
    let managed_by = opt_str(&body, "managedBy")?;
    // The casing of a group's name is the one it was created with.
    let id = existing
        .as_ref()
        .and_then(|existing| existing["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| group_id(subscription, name));
    let mut group = json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or(name),
        "type": RESOURCE_GROUP_TYPE,
        "location": location,
        "tags": tags,
        "properties": { "provisioningState": "Succeeded" },
    });
    if let Some(managed_by) = managed_by {
        group["managedBy"] = json!(managed_by);
    }
    let (text, tenant, now, precondition) =
        (group.to_string(), ctx.caller.tenant_id().to_owned(), ctx.now, ctx.precondition());
    let write_id = id.clone();
    let (_, created) = ctx
        .write(move |tx| {
            let write = ResourceWrite {
                id: &write_id,
                resource_type: RESOURCE_GROUP_TYPE,
                tenant_id: &tenant,
                body: &text,
            };
            tx.resource_put(write, &precondition, now)
        })
        .await?;
    Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &group))
}

async fn delete(ctx: &Ctx, subscription: &str, name: &str) -> Result<Response, ArmError> {
    let group = ctx.require_resource_group(subscription, name).await?;
    let id = group["id"].as_str().unwrap_or_default().to_owned();
    let (contents, now, precondition) = (format!("{id}/"), ctx.now, ctx.precondition());
    let outcome = ctx
        .write(move |tx| {
            // The group's own precondition first: a failed one changes nothing.
            tx.resource_delete(&id, &precondition)?;
            delete_contents(tx, &contents, now)?;
            Ok::<_, ArmError>(())
        })
        .await;
    // A precondition that does not hold is the request's answer, not a failed operation.
    if let Err(error) = &outcome
        && error.status == StatusCode::PRECONDITION_FAILED
    {
        return Err(error.clone());
    }
    let operation = Operation {
        id: Operation::new_id(),
        status: if outcome.is_ok() { "Succeeded" } else { "Failed" },
        error: outcome.err(),
        final_status: StatusCode::OK,
        final_body: None,
    };
    operation::record(ctx, subscription, &operation).await?;
    let api_version = ctx.query.get("api-version").map_or("", String::as_str);
    let location = format!(
        "{}/subscriptions/{subscription}/operationresults/{}?api-version={api_version}",
        ctx.arm.identity().origin(),
        operation.id
    );
    let response = crate::response::with_header(
        crate::response::empty(StatusCode::ACCEPTED),
        "location",
        &location,
    );
    Ok(crate::response::with_header(response, "retry-after", "1"))
}

/// `GET /subscriptions/{s}/resourcegroups`: the groups the caller may read, paged.
pub async fn list(ctx: &Ctx, subscription: &str) -> Result<Response, ArmError> {
    let subscription = ctx.subscription(subscription).await?.id;
    ctx.api_version(&API_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    ctx.authorize_list(READ, &format!("/subscriptions/{subscription}")).await?;
    let top = ctx.top(1000, 1000)?;
    let (prefix, after) = (
        format!("/subscriptions/{subscription}/resourceGroups/"),
        ctx.skip_token().map(str::to_owned),
    );
    let page = ctx
        .read(move |tx| tx.resources_list(RESOURCE_GROUP_TYPE, &prefix, after.as_deref(), top))
        .await?;
    let assignments = ctx.role_assignments().await?;
    let next = (page.len() == top).then(|| page.last().map(|last| last.id.to_ascii_lowercase()));
    let value: Vec<Value> = page
        .iter()
        .filter(|stored| crate::rbac::allows(assignments, READ, &stored.id))
        .filter_map(|stored| serde_json::from_str(&stored.body).ok())
        .collect();
    let mut body = json!({ "value": value });
    if let Some(Some(last)) = next {
        body["nextLink"] = json!(ctx.next_link(&last, top));
    }
    Ok(json(StatusCode::OK, &body))
}

/// Deletes every resource whose id starts with `prefix`, running each type's clean-up (a VNet
/// gives its allocations back; a pool must be empty). Resources nested deepest go first, and
/// virtual networks before the pools that they hold space in.
fn delete_contents(tx: &mut WriteTx<'_>, prefix: &str, now: Timestamp) -> Result<(), ArmError> {
    let mut contents: Vec<StoredResource> = tx.resources_under(prefix)?;
    contents.sort_by_key(|resource| {
        (deletion_rank(resource), std::cmp::Reverse(resource.id.matches('/').count()))
    });
    for resource in contents {
        clean_up(tx, &resource, now)?;
        tx.resource_delete(&resource.id, &Precondition::None)?;
    }
    Ok(())
}
