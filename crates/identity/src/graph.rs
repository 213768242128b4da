//! The Microsoft Graph v1.0 subset the az CLI uses: the signed-in user, the organization,
//! applications (with passwords), service principals, users and `directoryObjects/getByIds`.
//! Collections are those of the token's tenant; errors are Graph's `{"error":{"code","message"}}`.
//!
//! Who may write: any user may register an app and becomes its owner; the tenant's administrators
//! and the app's owners may change it, delete it and manage its secrets. A service principal is
//! created by an administrator or owner for an app of the tenant, and by the tenant's
//! administrator for another tenant's app only if that app is `AzureADMultipleOrgs`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use store::Timestamp;
use store::error::StoreError;
use store::identity::{
    ApplicationPassword, ApplicationRecord, ServicePrincipalRecord, TenantRecord, UserRecord,
};

use crate::Identity;
use crate::directory::{self, DirectoryError};
use crate::time::{parse_rfc3339, rfc3339};

/// The routes, to merge into the server's router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/organization", get(organization))
        .route("/v1.0/applications", get(applications_list).post(application_create))
        .route(
            "/v1.0/applications/{id}",
            get(application_get).patch(application_patch).delete(application_delete),
        )
        .route("/v1.0/applications/{id}/addPassword", post(application_add_password))
        .route("/v1.0/applications/{id}/removePassword", post(application_remove_password))
        .route(
            "/v1.0/servicePrincipals",
            get(service_principals_list).post(service_principal_create),
        )
        .route(
            "/v1.0/servicePrincipals/{id}",
            get(service_principal_get).delete(service_principal_delete),
        )
        .route("/v1.0/users", get(users_list))
        .route("/v1.0/users/{id}", get(user_get).patch(user_patch).delete(user_delete))
        .route("/v1.0/users/{id}/revokeSignInSessions", post(user_revoke_sessions))
        .route("/v1.0/directoryObjects/getByIds", post(get_by_ids))
        .with_state(identity)
}

/// A Graph error response.
#[derive(Debug)]
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For a failure of the store: its cause, for the server's log only.
    cause: Option<String>,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError { status, code, message: message.into(), cause: None }
    }

    fn not_found(id: &str) -> GraphError {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    fn denied() -> GraphError {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    fn bad_request(message: impl Into<String>) -> GraphError {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }
}

impl From<DirectoryError> for GraphError {
    fn from(error: DirectoryError) -> GraphError {
        match error {
            DirectoryError::AlreadyExists { .. } => GraphError::new(
                StatusCode::CONFLICT,
                "Request_MultipleObjectsWithSameKeyValue",
                "Another object with the same value for property servicePrincipalNames already exists.",
            ),
            DirectoryError::NotFound { id, .. } => GraphError::not_found(&id),
            DirectoryError::Store(error) => error.into(),
            other => GraphError::bad_request(format!("{}.", other)),
        }
    }
}

impl From<StoreError> for GraphError {
    /// A store that can't be reached is a 503 the client may retry; any other failure a 500.
    fn from(error: StoreError) -> GraphError {
        let cause = Some(crate::trace::error_chain(&error));
        let answer = match error.is_unavailable() {
            true => GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service_Unavailable",
                "The directory is unavailable; retry the request after the time in the Retry-After header.",
            ),
            false => GraphError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Service_InternalServerError",
                "The directory failed to answer; quote the request-id when reporting it.",
            ),
        };
        GraphError { cause, ..answer }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
                .into_response();
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(crate::trace::InternalCause(cause));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from(store::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Who is calling, from a verified Graph token.
#[derive(Debug)]
struct Caller {
    tenant: TenantRecord,
    object_id: String,
    /// The user record for user tokens; `None` for applications.
    user: Option<UserRecord>,
}

impl Caller {
    fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|user| user.is_admin)
    }

    fn may_manage(&self, application: &ApplicationRecord) -> bool {
        application.tenant_id == self.tenant.id
            && (self.is_admin()
                || (self.user.is_some()
                    && application.owner_id.as_deref() == Some(self.object_id.as_str())))
    }
}

/// Whether `audience` is one of the Graph audiences: Microsoft's or this server's origin.
fn is_graph_audience(identity: &Identity, audience: &str) -> bool {
    let audience = audience.trim_end_matches('/').to_ascii_lowercase();
    audience == "https://graph.microsoft.com" || audience == identity.origin().to_ascii_lowercase()
}

async fn caller(identity: &Identity, headers: &HeaderMap) -> Result<Caller, GraphError> {
    let unauthenticated = |message: &str| {
        GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message)
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| unauthenticated("Access token is empty."))?;
    let claims = identity
        .verify(token.trim())
        .await
        .map_err(|error| unauthenticated(&format!("Access token validation failure: {error}.")))?;
    let claim =
        |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    if !is_graph_audience(identity, &claim("aud")) {
        return Err(unauthenticated("Access token validation failure. Invalid audience."));
    }
    let (tenant_id, object_id, token_type) = (claim("tid"), claim("oid"), claim("idtyp"));
    let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    let principal_id = object_id.clone();
    let (tenant, user, service_principal) = identity
        .store()
        .read(move |tx| {
            let tenant = tx.tenant_find(&tenant_id)?;
            let (user, service_principal) = match token_type.as_str() {
                "user" => (tx.user_get(&principal_id)?, None),
                _ => (None, tx.service_principal_get(&principal_id)?),
            };
            Ok::<_, StoreError>((tenant, user, service_principal))
        })
        .await?;
    let tenant = tenant
        .ok_or_else(|| unauthenticated("Access token validation failure: unknown tenant."))?;
    // A deleted or disabled principal, or a token issued before its sessions were revoked, is
    // refused at once.
    let current = match (&user, &service_principal) {
        (Some(user), _) => user.account_enabled && issued_at >= user.tokens_valid_after,
        (None, Some(_)) => true,
        (None, None) => false,
    };
    if !current {
        return Err(unauthenticated(
            "Access token validation failure: the token's principal no longer exists, is disabled, or its sessions were revoked.",
        ));
    }
    Ok(Caller { tenant, object_id, user })
}

async fn body_json(body: &Bytes) -> Result<Value, GraphError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|error| {
        GraphError::bad_request(format!("The request body is not valid JSON: {error}"))
    })
}

// Objects on the wire.

fn application_json(
    application: &ApplicationRecord,
    tenant: &TenantRecord,
    passwords: &[ApplicationPassword],
) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.application",
        "id": application.id,
        "appId": application.app_id,
        "displayName": application.display_name,
        "signInAudience": application.sign_in_audience,
        "publisherDomain": tenant.domain,
        "createdDateTime": rfc3339(application.created_at),
        "identifierUris": [],
        "keyCredentials": [],
        "passwordCredentials": passwords.iter().map(|password| json!({
            "customKeyIdentifier": null,
            "displayName": password.display_name,
            "endDateTime": rfc3339(password.end_at),
            "hint": password.hint,
            "keyId": password.key_id,
            "secretText": null,
            "startDateTime": rfc3339(password.start_at),
        })).collect::<Vec<_>>(),
        "publicClient": { "redirectUris": [] },
        "spa": { "redirectUris": [] },
        "web": { "redirectUris": application.redirect_uris, "implicitGrantSettings": { "enableIdTokenIssuance": false, "enableAccessTokenIssuance": false } },
        "requiredResourceAccess": [],
        "tags": [],
    })
}

fn service_principal_json(
    service_principal: &ServicePrincipalRecord,
    application: Option<&ApplicationRecord>,
) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": service_principal.id,
        "appId": service_principal.app_id,
        "displayName": service_principal.display_name,
        "appDisplayName": service_principal.display_name,
        "appOwnerOrganizationId": application.map(|application| application.tenant_id.clone()),
        "signInAudience": application.map(|application| application.sign_in_audience.clone()),
        "servicePrincipalNames": [service_principal.app_id],
        "servicePrincipalType": "Application",
        "accountEnabled": true,
        "tags": [],
    })
}

fn user_json(user: &UserRecord) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": user.id,
        "userPrincipalName": user.upn,
        "displayName": user.display_name,
        "mail": null,
        "accountEnabled": user.account_enabled,
        "userType": "Member",
    })
}

fn collection(value: Vec<Value>) -> Value {
    json!({ "value": value })
}

/// The one equality a `$filter` asks for, e.g. `appId eq 'x'` → ("appId", "x"); also the
/// `startswith(displayName,'x')` and `…/any(c:c eq 'x')` forms the az CLI sends.
fn parse_filter(filter: &str) -> Option<(String, String)> {
    parse_filter_borrowed(filter).map(|(field, value)| (field.to_owned(), value))
}

fn parse_filter_borrowed(filter: &str) -> Option<(&str, String)> {
    let filter = filter.trim();
    let quoted = |text: &str| -> Option<String> {
        let inner = text.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("''", "'"))
    };
    if let Some(rest) =
        filter.strip_prefix("startswith(displayName,").and_then(|rest| rest.strip_suffix(')'))
    {
        return Some(("startswith(displayName)", quoted(rest)?));
    }
    if let Some((collection, rest)) = filter.split_once("/any(")
        && let Some((_, condition)) = rest.strip_suffix(')').and_then(|rest| rest.split_once(':'))
        && let Some((_, value)) = condition.split_once(" eq ")
    {
        return Some((collection, quoted(value)?));
    }
    let (field, value) = filter.split_once(" eq ")?;
    Some((field.trim(), quoted(value)?))
}

type Params = Query<std::collections::HashMap<String, String>>;

async fn me(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let user = caller.user.ok_or_else(|| {
        GraphError::bad_request("/me is only valid with a delegated (user) token.")
    })?;
    Ok(ok(StatusCode::OK, user_json(&user)))
}

async fn organization(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let tenant = &caller.tenant;
    let organization = json!({
        "id": tenant.id,
        "displayName": tenant.display_name,
        "verifiedDomains": [{ "name": tenant.domain, "isDefault": true, "isInitial": true, "type": "Managed" }],
    });
    Ok(ok(StatusCode::OK, collection(vec![organization])))
}

async fn applications_list(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let filter = filter_param(&params)?;
    let tenant = caller.tenant.clone();
    let listed = identity
        .store()
        .read(move |tx| {
            let mut listed = Vec::new();
            let filter = filter.as_ref().map(|(field, value)| (field.as_str(), value));
            for application in tx.applications_of_tenant(&tenant.id)? {
                let keep = match filter {
                    None => true,
                    Some(("appId", value)) => application.app_id.eq_ignore_ascii_case(value),
                    Some(("startswith(displayName)", value)) => {
                        application.display_name.starts_with(value.as_str())
                    }
                    Some(("displayName", value)) => application.display_name == *value,
                    // No identifier URIs are kept, so no application matches one.
                    Some(_) => false,
                };
                if keep {
                    let passwords = tx.application_passwords(&application.id)?;
                    listed.push(application_json(&application, &tenant, &passwords));
                }
            }
            Ok::<_, StoreError>(listed)
        })
        .await?;
    Ok(ok(StatusCode::OK, collection(listed)))
}

/// The application `id` names in the caller's tenant: an object id or `(appId='…')`.
async fn find_application(
    identity: &Identity,
    caller: &Caller,
    id: &str,
) -> Result<ApplicationRecord, GraphError> {
    let by_app_id =
        id.strip_prefix("(appId='").and_then(|rest| rest.strip_suffix("')")).map(str::to_owned);
    let key = id.to_owned();
    let found = identity
        .store()
        .read(move |tx| match &by_app_id {
            Some(app_id) => tx.application_by_app_id(app_id),
            None => tx.application_get(&key),
        })
        .await?;
    found
        .filter(|application| application.tenant_id == caller.tenant.id)
        .ok_or_else(|| GraphError::not_found(id))
}

/// The caller and an application of its tenant that it may manage (404 if not in its tenant,
/// 403 if it is neither an administrator nor an owner).
async fn managed_application(
    identity: &Identity,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, ApplicationRecord), GraphError> {
    let caller = caller(identity, headers).await?;
    let application = find_application(identity, &caller, id).await?;
    if !caller.may_manage(&application) {
        return Err(GraphError::denied());
    }
    Ok((caller, application))
}

/// The request's `$filter`, if any, parsed; an unsupported one is a 400.
fn filter_param(
    params: &std::collections::HashMap<String, String>,
) -> Result<Option<(String, String)>, GraphError> {
    match params.get("$filter") {
        Some(filter) => parse_filter(filter)
            .map(Some)
            .ok_or_else(|| GraphError::bad_request(format!("Unsupported filter: {filter}"))),
        None => Ok(None),
    }
}

async fn application_get(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let application = find_application(&identity, &caller, &id).await?;
    let application_id = application.id.clone();
    let passwords =
        identity.store().read(move |tx| tx.application_passwords(&application_id)).await?;
    Ok(ok(StatusCode::OK, application_json(&application, &caller.tenant, &passwords)))
}

fn sign_in_audience(body: &Value, default: &str) -> Result<String, GraphError> {
    match body.get("signInAudience") {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(audience))
            if audience == "AzureADMyOrg" || audience == "AzureADMultipleOrgs" =>
        {
            Ok(audience.clone())
        }
        Some(other) => Err(GraphError::bad_request(format!(
            "Property signInAudience has an unsupported value {other}; use AzureADMyOrg or AzureADMultipleOrgs."
        ))),
    }
}

fn redirect_uris(body: &Value) -> Result<Option<Vec<String>>, GraphError> {
    match body.pointer("/web/redirectUris") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(uris)) => uris
            .iter()
            .map(|uri| {
                uri.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| GraphError::bad_request("web.redirectUris must be strings."))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(GraphError::bad_request("web.redirectUris must be an array of strings.")),
    }
}

async fn application_create(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    if caller.user.is_none() {
        return Err(GraphError::denied());
    }
    let body = body_json(&body).await?;
    let display_name = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| GraphError::bad_request("Property displayName is required."))?;
    let application = directory::register_application(
        identity.store(),
        &caller.tenant,
        display_name,
        &sign_in_audience(&body, "AzureADMyOrg")?,
        Some(&caller.object_id),
        redirect_uris(&body)?.unwrap_or_default(),
        identity.now(),
    )
    .await?;
    Ok(ok(StatusCode::CREATED, application_json(&application, &caller.tenant, &[])))
}

async fn application_patch(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let (_, mut application) = managed_application(&identity, &headers, &id).await?;
    let body = body_json(&body).await?;
    if let Some(name) = body.get("displayName") {
        application.display_name = name
            .as_str()
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| {
                GraphError::bad_request("Property displayName must be a non-empty string.")
            })?
            .to_owned();
    }
    application.sign_in_audience = sign_in_audience(&body, &application.sign_in_audience)?;
    if let Some(uris) = redirect_uris(&body)? {
        application.redirect_uris = uris;
    }
    directory::update_application(identity.store(), application).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn application_delete(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let (_, application) = managed_application(&identity, &headers, &id).await?;
    directory::delete_application(identity.store(), &application.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn application_add_password(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let (_, application) = managed_application(&identity, &headers, &id).await?;
    let body = body_json(&body).await?;
    let now = identity.now();
    let requested = body.get("passwordCredential").cloned().unwrap_or_else(|| json!({}));
    let time = |field: &str, default: Timestamp| -> Result<Timestamp, GraphError> {
        match requested.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(text)) => parse_rfc3339(text).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "passwordCredential.{field} {text:?} is not an RFC 3339 UTC time."
                ))
            }),
            Some(_) => Err(GraphError::bad_request(format!(
                "passwordCredential.{field} must be a string."
            ))),
        }
    };
    // Two years, as Entra's default.
    let start_at = time("startDateTime", now)?;
    let end_at = time("endDateTime", Timestamp(now.0 + 2 * 365 * 24 * 3600 * 1000))?;
    if end_at <= start_at {
        return Err(GraphError::bad_request(
            "passwordCredential.endDateTime must be after startDateTime.",
        ));
    }
    let display_name = requested.get("displayName").and_then(Value::as_str).map(str::to_owned);
    let (password, secret) =
        directory::add_password(identity.store(), &application, display_name, start_at, end_at)
            .await?;
    Ok(ok(
        StatusCode::OK,
        json!({
            "customKeyIdentifier": null,
            "displayName": password.display_name,
            "endDateTime": rfc3339(password.end_at),
            "hint": password.hint,
            "keyId": password.key_id,
            "secretText": secret,
            "startDateTime": rfc3339(password.start_at),
        }),
    ))
}

async fn application_remove_password(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let (_, application) = managed_application(&identity, &headers, &id).await?;
    let body = body_json(&body).await?;
    let key_id = body
        .get("keyId")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Property keyId is required."))?
        .to_owned();
    if !directory::remove_password(identity.store(), &application, &key_id).await? {
        return Err(GraphError::bad_request(
            "No password credential with that keyId exists on the application.",
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn service_principals_list(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let filter = filter_param(&params)?;
    let tenant_id = caller.tenant.id.clone();
    let listed = identity
        .store()
        .read(move |tx| {
            let mut listed = Vec::new();
            let filter = filter.as_ref().map(|(field, value)| (field.as_str(), value));
            for service_principal in tx.service_principals_of_tenant(&tenant_id)? {
                let keep = match filter {
                    None => true,
                    Some(("appId" | "servicePrincipalNames", value)) => {
                        service_principal.app_id.eq_ignore_ascii_case(value)
                    }
                    Some(("displayName", value)) => service_principal.display_name == *value,
                    Some(("startswith(displayName)", value)) => {
                        service_principal.display_name.starts_with(value.as_str())
                    }
                    Some(_) => false,
                };
                if keep {
                    let application = tx.application_by_app_id(&service_principal.app_id)?;
                    listed.push(service_principal_json(&service_principal, application.as_ref()));
                }
            }
            Ok::<_, StoreError>(listed)
        })
        .await?;
    Ok(ok(StatusCode::OK, collection(listed)))
}

async fn service_principal_create(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let body = body_json(&body).await?;
    let app_id = body
        .get("appId")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Property appId is required."))?
        .to_owned();
    // Permission first: the home tenant's admins and the app's owners, or another tenant's admins.
    let lookup = app_id.clone();
    if let Some(application) =
        identity.store().read(move |tx| tx.application_by_app_id(&lookup)).await?
    {
        let is_home = application.tenant_id == caller.tenant.id;
        let allowed = if is_home { caller.may_manage(&application) } else { caller.is_admin() };
        if !allowed && (is_home || application.sign_in_audience == "AzureADMultipleOrgs") {
            return Err(GraphError::denied());
        }
    }
    let (service_principal, application) = directory::create_service_principal(
        identity.store(),
        &caller.tenant,
        &app_id,
        identity.now(),
    )
    .await?;
    Ok(ok(StatusCode::CREATED, service_principal_json(&service_principal, Some(&application))))
}

async fn find_service_principal(
    identity: &Identity,
    caller: &Caller,
    id: &str,
) -> Result<ServicePrincipalRecord, GraphError> {
    let key = id.to_owned();
    let found = identity.store().read(move |tx| tx.service_principal_get(&key)).await?;
    found
        .filter(|service_principal| service_principal.tenant_id == caller.tenant.id)
        .ok_or_else(|| GraphError::not_found(id))
}

async fn service_principal_get(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let service_principal = find_service_principal(&identity, &caller, &id).await?;
    let app_id = service_principal.app_id.clone();
    let application = identity.store().read(move |tx| tx.application_by_app_id(&app_id)).await?;
    Ok(ok(StatusCode::OK, service_principal_json(&service_principal, application.as_ref())))
}

async fn service_principal_delete(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let service_principal = find_service_principal(&identity, &caller, &id).await?;
    if !caller.is_admin() {
        return Err(GraphError::denied());
    }
    directory::delete_service_principal(identity.store(), &service_principal.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn users_list(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let filter = filter_param(&params)?;
    let filter = filter.as_ref().map(|(field, value)| (field.as_str(), value));
    let tenant_id = caller.tenant.id.clone();
    let users = identity.store().read(move |tx| tx.users_of_tenant(&tenant_id)).await?;
    let listed = users
        .iter()
        .filter(|user| match filter {
            Some(("userPrincipalName", value)) => user.upn.eq_ignore_ascii_case(value),
            Some(("displayName", value)) => user.display_name == *value,
            Some(("startswith(displayName)", value)) => {
                user.display_name.starts_with(value.as_str())
            }
            _ => true,
        })
        .map(user_json)
        .collect();
    Ok(ok(StatusCode::OK, collection(listed)))
}

async fn user_get(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let key = id.clone();
    let user = identity
        .store()
        .read(move |tx| if key.contains('@') { tx.user_by_upn(&key) } else { tx.user_get(&key) })
        .await?
        .filter(|user| user.tenant_id == caller.tenant.id)
        .ok_or_else(|| GraphError::not_found(&id))?;
    Ok(ok(StatusCode::OK, user_json(&user)))
}

/// A user of the caller's tenant that the caller, an administrator, may manage.
async fn managed_user(
    identity: &Identity,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, UserRecord), GraphError> {
    let caller = caller(identity, headers).await?;
    let user = directory::user(identity.store(), id)
        .await
        .ok()
        .filter(|user| user.tenant_id == caller.tenant.id)
        .ok_or_else(|| GraphError::not_found(id))?;
    if !caller.is_admin() {
        return Err(GraphError::denied());
    }
    Ok((caller, user))
}

async fn user_patch(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, GraphError> {
    let (_, user) = managed_user(&identity, &headers, &id).await?;
    let body = body_json(&body).await?;
    let Some(object) = body.as_object() else {
        return Err(GraphError::bad_request("The request body must be a JSON object."));
    };
    for (field, value) in object {
        match (field.as_str(), value) {
            ("accountEnabled", Value::Bool(enabled)) => {
                directory::set_user_enabled(identity.store(), &user.id, *enabled).await?;
            }
            ("accountEnabled", _) => {
                return Err(GraphError::bad_request("Property accountEnabled must be a boolean."));
            }
            (other, _) => {
                return Err(GraphError::bad_request(format!(
                    "Property {other} cannot be changed here; only accountEnabled can."
                )));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user_delete(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let (caller, user) = managed_user(&identity, &headers, &id).await?;
    if user.id == caller.object_id {
        return Err(GraphError::bad_request("An administrator cannot delete itself."));
    }
    directory::delete_user(identity.store(), &user.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{id}/revokeSignInSessions`: every token the user holds stops working. The user
/// may revoke its own; an administrator anyone's in its tenant.
async fn user_revoke_sessions(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let user = directory::user(identity.store(), &id)
        .await
        .ok()
        .filter(|user| user.tenant_id == caller.tenant.id)
        .ok_or_else(|| GraphError::not_found(&id))?;
    if !(caller.is_admin() || (caller.user.is_some() && caller.object_id == user.id)) {
        return Err(GraphError::denied());
    }
    directory::revoke_user_tokens(identity.store(), &user.id, identity.now()).await?;
    Ok(ok(
        StatusCode::OK,
        json!({ "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true }),
    ))
}

async fn get_by_ids(
    State(identity): State<Arc<Identity>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GraphError> {
    let caller = caller(&identity, &headers).await?;
    let body = body_json(&body).await?;
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::bad_request("Property ids is required."))?
        .iter()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let tenant_id = caller.tenant.id.clone();
    // Unknown ids are left out, not errors: the az CLI asks for every principal it lists.
    let found = identity
        .store()
        .read(move |tx| {
            let mut found = Vec::new();
            for id in &ids {
                if let Some(user) = tx.user_get(id)?.filter(|user| user.tenant_id == tenant_id) {
                    found.push(user_json(&user));
                } else if let Some(service_principal) = tx
                    .service_principal_get(id)?
                    .filter(|service_principal| service_principal.tenant_id == tenant_id)
                {
                    let application = tx.application_by_app_id(&service_principal.app_id)?;
                    found.push(service_principal_json(&service_principal, application.as_ref()));
                }
            }
            Ok::<_, StoreError>(found)
        })
        .await?;
    Ok(ok(StatusCode::OK, collection(found)))
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn reads_the_filters_the_az_cli_sends() {
        let parsed =
            |filter: &str| parse_filter(filter).map(|(field, value)| format!("{field}={value}"));
        assert_eq!(parsed("appId eq '1234'").as_deref(), Some("appId=1234"));
        assert_eq!(
            parsed("startswith(displayName,'my app')").as_deref(),
            Some("startswith(displayName)=my app")
        );
        assert_eq!(
            parsed("servicePrincipalNames/any(c:c eq 'abc')").as_deref(),
            Some("servicePrincipalNames=abc")
        );
        assert_eq!(
            parsed("identifierUris/any(s:s eq 'api://x')").as_deref(),
            Some("identifierUris=api://x")
        );
        assert_eq!(
            parsed("userPrincipalName eq 'o''brien@x'").as_deref(),
            Some("userPrincipalName=o'brien@x")
        );
        assert_eq!(parse_filter("appId gt 3"), None);
        assert_eq!(parse_filter("garbage"), None);
    }
}
