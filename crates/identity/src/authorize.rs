//! The authorization endpoint of the code flow, `GET/POST /{tenant}/oauth2/v2.0/authorize`, and
//! the admin-consent endpoint, `GET/POST /{tenant}[/v2.0]/adminconsent`.
//!
//! The page names the tenant and, for a registered application, the application and its
//! publisher; its form posts back here. A right password yields a single-use code sent to the
//! client's redirect URI (as a query string, or an auto-submitted form for
//! `response_mode=form_post`, which MSAL uses), redeemed at the token endpoint with the PKCE
//! verifier or the application's secret.
//!
//! A registered application gets a user's code only where it has consent (`client::Client::
//! has_consent`): a single-tenant application only in its own tenant (AADSTS700016 elsewhere); a
//! multi-tenant one after the user — or an administrator, for everyone — accepts a page that
//! names the application, its publisher and the permissions, which creates its service
//! principal in the user's tenant. The step between the password and that page is carried by
//! a signed, short-lived consent ticket, never by the password.
//!
//! An unacceptable client or redirect URI is shown as an error page and never redirected to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use store::Timestamp;
use store::error::StoreError;
use store::identity::{AuthorizationCode, ServicePrincipalRecord, TenantRecord, UserRecord};
use url::Url;

use crate::Identity;
use crate::client::{Client, ClientError, RedirectRefusal};
use crate::pages::{
    credential_fields, error_page, error_paragraph, escape, hidden_inputs, sign_in_failure,
    sign_in_message,
};
use crate::secret::client_secret_hash;
use crate::signin::SignInError;
use crate::token::{CODE_LIFETIME_MS, is_multi_tenant_segment};

/// How long a consent page may wait for its answer.
pub const CONSENT_TICKET_LIFETIME_SECONDS: i64 = 10 * 60;

/// The audience of consent tickets: no resource and no grant accepts it.
pub const CONSENT_AUDIENCE: &str = "urn:crosspool:consent";

/// The largest sign-in form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The routes, to merge into the server's router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/authorize", get(show_code).post(submit_code))
        .route("/{tenant}/adminconsent", get(show_admin_consent).post(submit_admin_consent))
        .route("/{tenant}/v2.0/adminconsent", get(show_admin_consent).post(submit_admin_consent))
        .with_state(identity)
}

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The code flow: a code for the client.
    Code,
    /// Admin consent: an administrator consents for the whole tenant; no code.
    AdminConsent,
}

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Flow::Code => "code",
            Flow::AdminConsent => "adminconsent",
        }
    }

    /// The request parameters the sign-in and consent forms carry through.
    fn carried(self) -> &'static [&'static str] {
        match self {
            Flow::Code => &[
                "client_id",
                "redirect_uri",
                "response_type",
                "response_mode",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method",
            ],
            Flow::AdminConsent => &["client_id", "redirect_uri", "scope", "state"],
        }
    }
}

/// A checked request: the tenant of the URL (none for `common`/`organizations`), the client and
/// its redirect URI.
struct Checked {
    tenant: Option<TenantRecord>,
    client: Client,
    redirect: Url,
}

fn unavailable() -> Response {
    error_page(StatusCode::SERVICE_UNAVAILABLE, 90100, "The directory is unavailable; try again.")
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or("")
}

/// The tenant, client and redirect URI of a request, or the page to show instead.
async fn check_request(
    identity: &Identity,
    tenant: &str,
    params: &HashMap<String, String>,
    flow: Flow,
) -> Result<Checked, Response> {
    let tenant_record = if is_multi_tenant_segment(tenant) {
        None
    } else {
        let segment = tenant.to_owned();
        match identity.store().read(move |tx| tx.tenant_find(&segment)).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    90002,
                    &format!("Tenant '{tenant}' not found."),
                ));
            }
            Err(_) => return Err(unavailable()),
        }
    };
    let client_id = param(params, "client_id");
    let redirect_uri = param(params, "redirect_uri");
    if flow == Flow::Code && param(params, "response_type") != "code" {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request must contain response_type=code.",
        ));
    }
    let not_found = || {
        error_page(
            StatusCode::BAD_REQUEST,
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        )
    };
    let client = match Client::find(identity, client_id).await {
        Ok(client) => client,
        Err(ClientError::Unknown) => return Err(not_found()),
        Err(ClientError::Unavailable) => return Err(unavailable()),
    };
    if flow == Flow::AdminConsent && client.is_public() {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            90094,
            &format!("Application '{client_id}' is a first-party client and needs no consent."),
        ));
    }
    let redirect = match client.redirect_uri(identity.origin(), redirect_uri) {
        Ok(redirect) => redirect,
        Err(RedirectRefusal::Invalid(reason)) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                900971,
                &format!("The redirect URI in the request is not acceptable: {reason}."),
            ));
        }
        Err(RedirectRefusal::NotRegistered) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                50011,
                &format!(
                    "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
                ),
            ));
        }
    };
    if let Client::Registered { application, .. } = &client {
        // A single-tenant application exists in its own tenant only.
        match &tenant_record {
            Some(tenant) if !client.serves_tenant(&tenant.id) => return Err(not_found()),
            None if application.sign_in_audience != "AzureADMultipleOrgs" => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    50194,
                    &format!(
                        "Application '{client_id}' is not configured as a multi-tenant application. Usage of the /common and /organizations endpoints is not supported for such applications; use a tenant-specific endpoint."
                    ),
                ));
            }
            _ => {}
        }
    }
    if flow == Flow::Code {
        match params.get("code_challenge_method").map(String::as_str) {
            None | Some("S256") => {}
            Some(_) => {
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    501491,
                    "Only code_challenge_method=S256 is supported.",
                ));
            }
        }
        if client.is_public() && params.get("code_challenge").is_none_or(String::is_empty) {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                9002325,
                "Proof Key for Code Exchange is required for public clients.",
            ));
        }
    }
    Ok(Checked { tenant: tenant_record, client, redirect })
}

/// The words for the tenant signed in to and the application asking.
fn heading(tenant: &str, checked: &Checked) -> String {
    let tenant_name =
        checked.tenant.as_ref().map_or_else(|| escape(tenant), |found| escape(&found.display_name));
    let mut heading = format!("<h1>Sign in</h1><p>to <strong>{tenant_name}</strong> (crosspool)");
    if let Client::Registered { application, publisher } = &checked.client {
        heading.push_str(&format!(
            " to continue to <strong id=\"app-name\">{}</strong>, published by {} ({})",
            escape(&application.display_name),
            escape(&publisher.display_name),
            escape(&publisher.domain)
        ));
    }
    heading.push_str("</p>");
    heading
}

fn sign_in_form(
    tenant: &str,
    checked: &Checked,
    params: &HashMap<String, String>,
    flow: Flow,
    username: &str,
    error: Option<&str>,
) -> Response {
    let carried = flow
        .carried()
        .iter()
        .filter_map(|name| params.get(*name).map(|value| (*name, value.as_str())));
    let body = format!(
        "{}{}<form method=\"post\">{}{}</form>",
        heading(tenant, checked),
        error_paragraph(error),
        hidden_inputs(carried),
        credential_fields(username),
    );
    crate::pages::page(StatusCode::OK, "Sign in", &body)
}

/// What each requested scope lets the application do, in words.
fn permissions(scope: &str, origin: &str) -> Vec<&'static str> {
    let mut described = Vec::new();
    for one in scope.split(' ').filter(|one| !one.is_empty()) {
        let resource = one.strip_suffix("/.default").unwrap_or(one).trim_end_matches('/');
        let words = match resource.to_ascii_lowercase().as_str() {
            "https://management.azure.com" | "https://management.core.windows.net" => {
                "Access Azure Resource Manager as you (user_impersonation): your subscriptions, resource groups, role assignments and network resources"
            }
            "https://graph.microsoft.com" => {
                "Read and change the directory as you (Microsoft Graph): your profile, users, applications and service principals"
            }
            "openid" | "profile" | "email" => "Sign you in and read your profile",
            "offline_access" => "Keep access to what you have given it access to",
            other if other == origin.to_ascii_lowercase() => {
                "Read and change the directory as you (Microsoft Graph): your profile, users, applications and service principals"
            }
            _ => "Access the resource it names, as you",
        };
        if !described.contains(&words) {
            described.push(words);
        }
    }
    if described.is_empty() {
        described.push("Sign you in and read your profile");
    }
    described
}

/// The consent page: the application, its publisher, the permissions, and Accept / Cancel.
fn consent_page(
    identity: &Identity,
    checked: &Checked,
    params: &HashMap<String, String>,
    flow: Flow,
    user: &UserRecord,
) -> Response {
    let Client::Registered { application, publisher } = &checked.client else {
        return unavailable();
    };
    let ticket = consent_ticket(identity, user, params, flow);
    let carried = flow
        .carried()
        .iter()
        .filter_map(|name| params.get(*name).map(|value| (*name, value.as_str())))
        .chain(std::iter::once(("consent_ticket", ticket.as_str())));
    let items: String = permissions(param(params, "scope"), identity.origin())
        .iter()
        .map(|words| format!("<li>{}</li>", escape(words)))
        .collect();
    let for_everyone = match flow {
        Flow::AdminConsent => {
            "<p><strong>You are consenting on behalf of your organization:</strong> every user of your tenant will be able to sign in to this application.</p>".to_owned()
        }
        Flow::Code if user.is_admin => "<label><input type=\"checkbox\" name=\"consent_org\" value=\"1\" id=\"consent-org\"> Consent on behalf of your organization</label>".to_owned(),
        Flow::Code => String::new(),
    };
    let body = format!(
        "<h1>Permissions requested</h1>\
         <p><strong id=\"app-name\">{}</strong> (application id {})</p>\
         <p>Published by <strong id=\"app-publisher\">{}</strong> ({}, tenant {}). {}</p>\
         <p>Signed in as {}. This application would like to:</p><ul class=\"permissions\">{items}</ul>{for_everyone}\
         <p class=\"muted\">Accepting creates the application's service principal in your tenant if it has none. Only accept if you trust the publisher.</p>\
         <form method=\"post\">{}\
         <button type=\"submit\" name=\"consent\" value=\"accept\" id=\"accept\">Accept</button>\
         <button type=\"submit\" name=\"consent\" value=\"decline\" id=\"decline\">Cancel</button></form>",
        escape(&application.display_name),
        escape(&application.app_id),
        escape(&publisher.display_name),
        escape(&publisher.domain),
        escape(&publisher.id),
        if publisher.id == user.tenant_id {
            "It is registered in your own tenant."
        } else {
            "It is registered in another tenant than yours."
        },
        escape(&user.upn),
        hidden_inputs(carried),
    );
    crate::pages::page(StatusCode::OK, "Permissions requested", &body)
}

/// A signed ticket saying that `user` signed in for this request and may answer its consent
/// page: the identity service's own JWT with an audience nothing else accepts.
fn consent_ticket(
    identity: &Identity,
    user: &UserRecord,
    params: &HashMap<String, String>,
    flow: Flow,
) -> String {
    let mut claims = crate::token::base_claims(
        identity,
        &user.tenant_id,
        CONSENT_AUDIENCE,
        identity.now(),
        CONSENT_TICKET_LIFETIME_SECONDS,
    );
    for (name, value) in [
        ("oid", json!(user.id)),
        ("sub", json!(user.id)),
        ("appid", json!(param(params, "client_id").to_ascii_lowercase())),
        ("redirect_uri", json!(param(params, "redirect_uri"))),
        ("scope", json!(param(params, "scope"))),
        ("flow", json!(flow.name())),
        ("idtyp", json!("consent")),
    ] {
        claims.insert(name.to_owned(), value);
    }
    identity.signer().sign(&claims)
}

/// The user a consent ticket names, if the ticket is valid for this request.
async fn redeem_ticket(
    identity: &Identity,
    ticket: &str,
    params: &HashMap<String, String>,
    flow: Flow,
) -> Option<UserRecord> {
    let claims = identity.verify(ticket).await.ok()?;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    let matches = claim("aud") == CONSENT_AUDIENCE
        && claim("idtyp") == "consent"
        && claim("flow") == flow.name()
        && claim("appid").eq_ignore_ascii_case(param(params, "client_id"))
        && claim("redirect_uri") == param(params, "redirect_uri")
        && claim("scope") == param(params, "scope");
    if !matches {
        return None;
    }
    let user_id = claim("oid").to_owned();
    let user = identity.store().read(move |tx| tx.user_get(&user_id)).await.ok()??;
    let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    (user.account_enabled && issued_at >= user.tokens_valid_after).then_some(user)
}

/// Records consent: the application's service principal in the user's tenant (if missing) and
/// the consent of the user, or of everyone when `for_everyone`.
async fn grant_consent(
    identity: &Identity,
    application: &store::identity::ApplicationRecord,
    user: &UserRecord,
    for_everyone: bool,
) -> Result<(), StoreError> {
    let now = identity.now();
    let service_principal = ServicePrincipalRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: user.tenant_id.clone(),
        app_id: application.app_id.clone(),
        display_name: application.display_name.clone(),
    };
    let principal = if for_everyone { String::new() } else { user.id.clone() };
    identity
        .store()
        .write(move |tx| {
            if tx
                .service_principal_find(&service_principal.tenant_id, &service_principal.app_id)?
                .is_none()
            {
                tx.service_principal_create(&service_principal, now)?;
            }
            tx.consent_grant(
                &service_principal.tenant_id,
                &service_principal.app_id,
                &principal,
                now,
            )
        })
        .await
}

/// Sends `fields` to the client's redirect URI, by the response mode the request asked for.
fn deliver(redirect: &Url, params: &HashMap<String, String>, fields: &[(&str, &str)]) -> Response {
    if param(params, "response_mode") == "form_post" {
        return crate::pages::form_post(
            redirect.as_str(),
            &redirect.origin().ascii_serialization(),
            fields,
        );
    }
    let mut target = redirect.clone();
    target.query_pairs_mut().extend_pairs(fields);
    let mut response = Redirect::to(target.as_str()).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn declined(redirect: &Url, params: &HashMap<String, String>) -> Response {
    let mut fields = vec![
        ("error", "access_denied"),
        ("error_description", "AADSTS65004: User declined to consent to access the app."),
    ];
    if let Some(state) = params.get("state") {
        fields.push(("state", state));
    }
    deliver(redirect, params, &fields)
}

/// Issues a code for `user` and sends it to the client.
async fn issue_code(
    identity: &Identity,
    checked: &Checked,
    params: &HashMap<String, String>,
    user: &UserRecord,
) -> Response {
    let now = identity.now();
    let mut code_bytes = [0u8; 32];
    if SystemRandom::new().fill(&mut code_bytes).is_err() {
        return unavailable();
    }
    use base64::Engine;
    let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(code_bytes);
    let record = AuthorizationCode {
        code_sha256: client_secret_hash(&code),
        client_id: param(params, "client_id").to_owned(),
        redirect_uri: param(params, "redirect_uri").to_owned(),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        scope: param(params, "scope").to_owned(),
        code_challenge: params
            .get("code_challenge")
            .filter(|challenge| !challenge.is_empty())
            .cloned(),
        nonce: params.get("nonce").filter(|nonce| !nonce.is_empty()).cloned(),
        expires_at: Timestamp(now.0 + CODE_LIFETIME_MS),
    };
    let stored = identity
        .store()
        .write(move |tx| {
            tx.codes_delete_expired(now)?;
            tx.authorization_code_insert(&record)
        })
        .await;
    if stored.is_err() {
        return unavailable();
    }
    let mut fields = vec![("code", code.as_str())];
    if let Some(state) = params.get("state") {
        fields.push(("state", state));
    }
    deliver(&checked.redirect, params, &fields)
}

/// What follows a sign-in or an accepted consent: the code, or for admin consent the answer.
async fn finish(
    identity: &Identity,
    checked: &Checked,
    params: &HashMap<String, String>,
    flow: Flow,
    user: &UserRecord,
) -> Response {
    match flow {
        Flow::Code => issue_code(identity, checked, params, user).await,
        Flow::AdminConsent => {
            let mut fields = vec![("admin_consent", "True"), ("tenant", user.tenant_id.as_str())];
            if let Some(scope) = params.get("scope") {
                fields.push(("scope", scope));
            }
            if let Some(state) = params.get("state") {
                fields.push(("state", state));
            }
            deliver(&checked.redirect, params, &fields)
        }
    }
}

async fn show(
    identity: &Identity,
    tenant: &str,
    params: &HashMap<String, String>,
    flow: Flow,
) -> Response {
    match check_request(identity, tenant, params, flow).await {
        Ok(checked) => {
            let login_hint = param(params, "login_hint");
            sign_in_form(tenant, &checked, params, flow, login_hint, None)
        }
        Err(page) => page,
    }
}

async fn submit(identity: &Identity, tenant: &str, request: Request, flow: Flow) -> Response {
    let client_address =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await else {
        return error_page(StatusCode::BAD_REQUEST, 900144, "The sign-in form could not be read.");
    };
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let checked = match check_request(identity, tenant, &params, flow).await {
        Ok(checked) => checked,
        Err(page) => return page,
    };
    if let Some(ticket) = params.get("consent_ticket") {
        return answer_consent(identity, &checked, &params, flow, ticket).await;
    }
    let username = param(&params, "username");
    let password = param(&params, "password");
    let user = match identity
        .sign_in(username, password, checked.tenant.as_ref(), client_address.as_deref())
        .await
    {
        Ok(user) => user,
        Err(SignInError::Unavailable) => return unavailable(),
        Err(error) => {
            let form = sign_in_form(
                tenant,
                &checked,
                &params,
                flow,
                username,
                Some(&sign_in_message(&error, tenant)),
            );
            return sign_in_failure(form, &error);
        }
    };
    if !checked.client.serves_tenant(&user.tenant_id) {
        return error_page(
            StatusCode::BAD_REQUEST,
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{}'. A single-tenant application signs in only its own tenant's users.",
                param(&params, "client_id"),
                user.tenant_id
            ),
        );
    }
    if flow == Flow::AdminConsent {
        if !user.is_admin {
            return error_page(
                StatusCode::FORBIDDEN,
                90094,
                "The grant requires admin permission: only an administrator of the tenant can consent for everyone.",
            );
        }
        return consent_page(identity, &checked, &params, flow, &user);
    }
    match checked.client.has_consent(identity, &user).await {
        Ok(true) => issue_code(identity, &checked, &params, &user).await,
        Ok(false) => consent_page(identity, &checked, &params, flow, &user),
        Err(_) => unavailable(),
    }
}

async fn answer_consent(
    identity: &Identity,
    checked: &Checked,
    params: &HashMap<String, String>,
    flow: Flow,
    ticket: &str,
) -> Response {
    let Client::Registered { application, .. } = &checked.client else {
        return error_page(StatusCode::BAD_REQUEST, 90094, "This client needs no consent.");
    };
    let Some(user) = redeem_ticket(identity, ticket, params, flow).await else {
        return error_page(
            StatusCode::BAD_REQUEST,
            90094,
            "The consent page expired or does not belong to this request; sign in again.",
        );
    };
    if param(params, "consent") != "accept" {
        return declined(&checked.redirect, params);
    }
    let for_everyone = match flow {
        Flow::AdminConsent => user.is_admin,
        Flow::Code => user.is_admin && param(params, "consent_org") == "1",
    };
    if flow == Flow::AdminConsent && !for_everyone {
        return error_page(StatusCode::FORBIDDEN, 90094, "The grant requires admin permission.");
    }
    if grant_consent(identity, application, &user, for_everyone).await.is_err() {
        return unavailable();
    }
    finish(identity, checked, params, flow, &user).await
}

async fn show_code(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    show(&identity, &tenant, &params, Flow::Code).await
}

async fn submit_code(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    submit(&identity, &tenant, request, Flow::Code).await
}

async fn show_admin_consent(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    show(&identity, &tenant, &params, Flow::AdminConsent).await
}

async fn submit_admin_consent(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    submit(&identity, &tenant, request, Flow::AdminConsent).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_describes_each_permission_once() {
        assert_eq!(
            permissions(
                "https://management.azure.com//.default openid profile offline_access",
                "https://127.0.0.1:8443"
            ),
            vec![
                "Access Azure Resource Manager as you (user_impersonation): your subscriptions, resource groups, role assignments and network resources",
                "Sign you in and read your profile",
                "Keep access to what you have given it access to",
            ]
        );
        assert_eq!(permissions("", "x"), vec!["Sign you in and read your profile"]);
    }
}
