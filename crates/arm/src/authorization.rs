//! `Microsoft.Authorization` at any scope: `roleDefinitions` (the built-in roles, by id or
//! `$filter=roleName eq '…'`) and `roleAssignments` (PUT, GET, DELETE, list with `atScope()` or
//! `principalId eq '…'`), in the shapes and api-versions the az CLI uses.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::authorization::{RoleAssignmentRecord, subscription_of_scope};
use store::error::StoreError;

use crate::api_version::ApiVersions;
use crate::error::{ArmError, ErrorCode};
use crate::rbac::{
    self, AssignError, BUILT_IN_ROLES, NewAssignment, RoleDefinition, scope_contains,
};
use crate::request::{Ctx, opt_str, req_str};
use crate::response::json;

pub const ROLE_DEFINITION_VERSIONS: ApiVersions = ApiVersions::new(
    "roleDefinitions",
    &["2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"],
);

pub const ROLE_ASSIGNMENT_VERSIONS: ApiVersions = ApiVersions::new(
    "roleAssignments",
    &[
        "2015-07-01",
        "2018-09-01-preview",
        "2020-04-01-preview",
        "2020-08-01-preview",
        "2020-10-01-preview",
        "2022-04-01",
    ],
);

pub async fn handle(
    ctx: &Ctx,
    scope: &str,
    kind: &str,
    name: Option<&str>,
) -> Result<Response, ArmError> {
    let scope = scope.trim_end_matches('/');
    if kind.eq_ignore_ascii_case("roleDefinitions") {
        return role_definitions(ctx, scope, name).await;
    }
    if kind.eq_ignore_ascii_case("roleAssignments") {
        return role_assignments(ctx, scope, name).await;
    }
    Err(ArmError::invalid_resource_type(&ctx.path))
}

/// A definition's id as seen from a scope: under the scope's subscription, if it has one.
fn definition_id(scope: &str, role: &RoleDefinition) -> String {
    match subscription_of_scope(scope) {
        Some(subscription) => format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
            role.id
        ),
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{}", role.id),
    }
}

fn definition_json(scope: &str, role: &RoleDefinition) -> Value {
    json!({
        "id": definition_id(scope, role),
        "name": role.id,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.role_name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": role.actions,
                "notActions": role.not_actions,
                "dataActions": [],
                "notDataActions": [],
            }],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-04-01T00:00:00.0000000Z",
            "createdBy": null,
            "updatedBy": null,
        },
    })
}

/// The subscription of a scope, checked against the caller's token, when the scope has one.
async fn check_scope(ctx: &Ctx, scope: &str) -> Result<Option<String>, ArmError> {
    let Some(subscription) = subscription_of_scope(scope) else { return Ok(None) };
    Ok(Some(ctx.subscription(&subscription).await?.id))
}

async fn role_definitions(
    ctx: &Ctx,
    scope: &str,
    name: Option<&str>,
) -> Result<Response, ArmError> {
    check_scope(ctx, scope).await?;
    ctx.api_version(&ROLE_DEFINITION_VERSIONS)?;
    if ctx.method != Method::GET {
        return Err(ctx.method_not_allowed());
    }
    if let Some(name) = name {
        let role = BUILT_IN_ROLES.iter().find(|role| role.id.eq_ignore_ascii_case(name));
        let role = role.ok_or_else(|| {
            ArmError::new(
                ErrorCode::RoleDefinitionNotFound,
                format!("The specified role definition with ID '{name}' does not exist."),
            )
        })?;
        return Ok(json(StatusCode::OK, &definition_json(scope, role)));
    }
    let wanted = match ctx.query.get("$filter").map(String::as_str) {
        None | Some("") => None,
        Some(filter) => Some(role_name_filter(filter)?),
    };
    let value: Vec<Value> = BUILT_IN_ROLES
        .iter()
        .filter(|role| {
            wanted.as_ref().is_none_or(|wanted| role.role_name.eq_ignore_ascii_case(wanted))
        })
        .map(|role| definition_json(scope, role))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "value": value })))
}

/// `roleName eq 'X'` (also `type eq 'BuiltInRole'` terms, which every role matches).
fn role_name_filter(filter: &str) -> Result<String, ArmError> {
    let mut name = None;
    for term in split_and(filter) {
        if let Some(value) = quoted_after(term, "rolename eq") {
            name = Some(value);
        } else if quoted_after(term, "type eq").is_none() {
            return Err(unsupported_filter(filter));
        }
    }
    name.ok_or_else(|| unsupported_filter(filter))
}

fn unsupported_filter(filter: &str) -> ArmError {
    ArmError::new(ErrorCode::UnsupportedQuery, format!("The $filter '{filter}' is not supported."))
}

fn split_and(filter: &str) -> Vec<&str> {
    let lower = filter.to_ascii_lowercase();
    let mut terms = Vec::new();
    let mut start = 0;
    while let Some(at) = lower[start..].find(" and ") {
        terms.push(filter[start..start + at].trim());
        start += at + 5;
    }
    terms.push(filter[start..].trim());
    terms
}

/// The quoted value after `keyword` (case-insensitive) in a term like `principalId eq 'x'`.
fn quoted_after(term: &str, keyword: &str) -> Option<String> {
    let rest = term.get(..keyword.len()).filter(|head| head.eq_ignore_ascii_case(keyword))?;
    let value = term[rest.len()..].trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(value.replace("''", "'"))
}

fn assignment_json(assignment: &RoleAssignmentRecord) -> Value {
    let role = rbac::built_in_role(&assignment.role_definition_id);
    let definition = role.map_or_else(
        || assignment.role_definition_id.clone(),
        |role| definition_id(&assignment.scope, role),
    );
    let at = identity::time::rfc3339(assignment.created_at);
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/roleAssignments/{}", assignment.scope, assignment.name),
        "name": assignment.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition,
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": at,
            "updatedOn": at,
            "createdBy": assignment.created_by,
            "updatedBy": assignment.created_by,
            "delegatedManagedIdentityResourceId": null,
            "description": null,
        },
    })
}

async fn role_assignments(
    ctx: &Ctx,
    scope: &str,
    name: Option<&str>,
) -> Result<Response, ArmError> {
    let subscription = check_scope(ctx, scope).await?.ok_or_else(|| {
        ArmError::new(
            ErrorCode::InvalidScope,
            format!(
                "The scope '{scope}' is not supported: role assignments live in a subscription."
            ),
        )
    })?;
    ctx.api_version(&ROLE_ASSIGNMENT_VERSIONS)?;
    match (ctx.method.clone(), name) {
        (Method::GET, None) => {
            ctx.authorize("Microsoft.Authorization/roleAssignments/read", scope).await?;
            list(ctx, scope, &subscription).await
        }
        (Method::GET, Some(name)) => {
            ctx.authorize("Microsoft.Authorization/roleAssignments/read", scope).await?;
            let found = find(ctx, scope, name).await?.ok_or_else(|| assignment_not_found(name))?;
            Ok(json(StatusCode::OK, &assignment_json(&found)))
        }
        (Method::PUT, Some(name)) => {
            ctx.authorize("Microsoft.Authorization/roleAssignments/write", scope).await?;
            put(ctx, scope, name).await
        }
        (Method::DELETE, Some(name)) => {
            ctx.authorize("Microsoft.Authorization/roleAssignments/delete", scope).await?;
            delete(ctx, scope, name).await
        }
        _ => Err(ctx.method_not_allowed()),
    }
}

fn assignment_not_found(name: &str) -> ArmError {
    ArmError::new(
        ErrorCode::RoleAssignmentNotFound,
        format!("The role assignment '{name}' is not found."),
    )
}

/// The assignment of this name made at exactly this scope.
async fn find(
    ctx: &Ctx,
    scope: &str,
    name: &str,
) -> Result<Option<RoleAssignmentRecord>, ArmError> {
    let lookup = name.to_owned();
    let found = ctx.read(move |tx| tx.role_assignment_get(&lookup)).await?;
    Ok(found.filter(|found| found.scope.eq_ignore_ascii_case(scope)))
}

async fn put(ctx: &Ctx, scope: &str, name: &str) -> Result<Response, ArmError> {
    if uuid::Uuid::parse_str(name).is_err() {
        return Err(ArmError::new(
            ErrorCode::InvalidRoleAssignmentId,
            format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ));
    }
    let body = ctx.json_body()?;
    let definition = req_str(&body, "properties.roleDefinitionId")?;
    let role = definition
        .rsplit('/')
        .next()
        .and_then(|id| BUILT_IN_ROLES.iter().find(|role| role.id.eq_ignore_ascii_case(id)))
        .ok_or_else(|| {
            ArmError::new(
                ErrorCode::RoleDefinitionDoesNotExist,
                format!("The specified role definition with ID '{definition}' does not exist."),
            )
            .with_target("properties.roleDefinitionId")
        })?;
    let principal_id = req_str(&body, "properties.principalId")?;
    let principal_type = principal_type_of(ctx, scope, principal_id).await?;
    if let Some(given) = opt_str(&body, "properties.principalType")?
        && !given.eq_ignore_ascii_case(principal_type)
    {
        return Err(ArmError::invalid_field(
            "properties.principalType",
            &format!("is '{given}', but principal '{principal_id}' is a {principal_type}"),
        ));
    }
    check_scope_exists(ctx, scope).await?;
    let new = NewAssignment {
        name: Some(name),
        scope,
        role,
        principal_id,
        principal_type,
        created_by: Some(ctx.caller.object_id()),
    };
    let (assignment, created) = rbac::assign(ctx.arm.identity().store(), new, ctx.now)
        .await
        .map_err(|error| match error {
            AssignError::Exists => ArmError::new(
                ErrorCode::RoleAssignmentExists,
                "The role assignment already exists.",
            ),
            AssignError::NameTaken => ArmError::new(
                ErrorCode::RoleAssignmentUpdateNotPermitted,
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ),
            AssignError::UnknownScope(scope) => ArmError::invalid_resource_type(&scope),
            AssignError::Store(error) => error.into(),
        })?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &assignment_json(&assignment)))
}

/// `User` or `ServicePrincipal`: the principal must exist in the scope's tenant.
async fn principal_type_of(
    ctx: &Ctx,
    scope: &str,
    principal_id: &str,
) -> Result<&'static str, ArmError> {
    let tenant = ctx.caller.tenant_id().to_owned();
    let lookup = principal_id.to_ascii_lowercase();
    let found = ctx
        .read(move |tx| {
            if tx.user_get(&lookup)?.is_some_and(|user| user.tenant_id == tenant) {
                return Ok::<_, StoreError>(Some("User"));
            }
            Ok(tx
                .service_principal_get(&lookup)?
                .filter(|principal| principal.tenant_id == tenant)
                .map(|_| "ServicePrincipal"))
        })
        .await?;
    found.ok_or_else(|| {
        ArmError::new(ErrorCode::PrincipalNotFound,
            format!(
                "Principal {principal_id} does not exist in the directory {}. Check that you have the correct principal ID (for scope '{scope}').",
                ctx.caller.tenant_id()
            ),
        )
    })
}

/// A resource group or resource scope must exist.
async fn check_scope_exists(ctx: &Ctx, scope: &str) -> Result<(), ArmError> {
    let segments: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() <= 2 {
        return Ok(());
    }
    let (group_scope, lookup) = (segments[..4.min(segments.len())].join("/"), scope.to_owned());
    let group_id = format!("/{group_scope}");
    let (group, resource) = ctx
        .read(move |tx| {
            Ok::<_, StoreError>((tx.resource_get(&group_id)?, tx.resource_get(&lookup)?))
        })
        .await?;
    if group.is_none() {
        return Err(ArmError::resource_group_not_found(
            segments.get(3).copied().unwrap_or_default(),
        ));
    }
    if resource.is_none() {
        return Err(ArmError::new(
            ErrorCode::ResourceNotFound,
            format!("The resource '{scope}' was not found."),
        ));
    }
    Ok(())
}

async fn delete(ctx: &Ctx, scope: &str, name: &str) -> Result<Response, ArmError> {
    let Some(found) = find(ctx, scope, name).await? else {
        return Ok(crate::response::empty(StatusCode::NO_CONTENT));
    };
    let lookup = found.name.clone();
    ctx.write(move |tx| tx.role_assignment_delete(&lookup)).await?;
    Ok(json(StatusCode::OK, &assignment_json(&found)))
}

/// Assignments at the scope and above it (`atScope()`), or also below it (no filter, or a
/// principal filter).
async fn list(ctx: &Ctx, scope: &str, subscription: &str) -> Result<Response, ArmError> {
    let mut at_scope = false;
    let mut principal = None;
    if let Some(filter) = ctx.query.get("$filter").filter(|filter| !filter.is_empty()) {
        for term in split_and(filter) {
            if term.eq_ignore_ascii_case("atScope()") {
                at_scope = true;
            } else if let Some(id) = quoted_after(term, "principalId eq") {
                principal = Some(id.to_ascii_lowercase());
            } else if let Some(id) = term
                .get(..12)
                .filter(|head| head.eq_ignore_ascii_case("assignedTo('"))
                .and_then(|_| term[12..].strip_suffix("')"))
            {
                principal = Some(id.to_ascii_lowercase());
            } else {
                return Err(unsupported_filter(filter));
            }
        }
    }
    let lookup = subscription.to_owned();
    let all = ctx.read(move |tx| tx.role_assignments_in_subscription(&lookup)).await?;
    let value: Vec<Value> = all
        .iter()
        .filter(|assignment| {
            scope_contains(&assignment.scope, scope)
                || (!at_scope && scope_contains(scope, &assignment.scope))
        })
        .filter(|assignment| principal.as_ref().is_none_or(|id| assignment.principal_id == *id))
        .map(assignment_json)
        .collect();
    Ok(json(StatusCode::OK, &json!({ "value": value })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_filters_the_az_cli_sends() {
        assert_eq!(role_name_filter("roleName eq 'IPAM Pool User'").unwrap(), "IPAM Pool User");
        assert_eq!(
            role_name_filter("roleName eq 'Reader' and type eq 'BuiltInRole'").unwrap(),
            "Reader"
        );
        assert!(role_name_filter("startswith(roleName,'x')").is_err());
        assert_eq!(
            split_and("atScope() and principalId eq 'a'"),
            ["atScope()", "principalId eq 'a'"]
        );
        assert_eq!(quoted_after("principalId eq 'o''k'", "principalid eq").as_deref(), Some("o'k"));
    }
}
