//! The token endpoint's grants — `client_credentials`, `password`, `refresh_token`,
//! `authorization_code` and the device code — and the tokens they mint: access tokens for a
//! resource, and for users an id token, a refresh token and `client_info`, as MSAL expects.
//!
//! A registered application is a confidential client: it authenticates with its secret for every
//! grant (AADSTS7000218 without one), and gets a user's tokens only while it has consent in the
//! user's tenant. A user's tokens stop being issued, refreshed and accepted once the user is
//! deleted or disabled or its tokens are revoked (`tokens_valid_after`); a refresh token is bound
//! to its client and user.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use store::Timestamp;
use store::error::StoreError;
use store::identity::{TenantRecord, UserRecord};

use crate::client::{Client, ClientError, is_first_party_client};
use crate::error::OAuthError;
use crate::secret::{client_secret_hash, client_secret_matches};
use crate::signin::SignInError;
use crate::{Identity, TOKEN_LIFETIME_SECONDS};

/// How long an authorization code may wait to be redeemed.
pub const CODE_LIFETIME_MS: i64 = 5 * 60 * 1000;

/// How long a device code can wait for its sign-in.
pub const DEVICE_CODE_LIFETIME_SECONDS: i64 = 900;

/// How long a refresh token lives.
pub const REFRESH_LIFETIME_SECONDS: i64 = 90 * 24 * 3600;

/// The device flow's grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The audience of refresh tokens: no resource accepts it, so a refresh token is never an
/// access token.
pub const REFRESH_AUDIENCE: &str = "urn:crosspool:refresh";

/// One request to `POST /{tenant}/oauth2/v2.0/token`.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    /// The tenant segment of the URL: an id, a domain, `organizations` or `common`.
    pub tenant: &'a str,
    /// The form parameters.
    pub params: &'a HashMap<String, String>,
    /// `client_id` and `client_secret` from an `Authorization: Basic` header, if sent.
    pub basic_credentials: Option<(String, String)>,
    /// The caller's address, for limiting failed sign-ins.
    pub client_address: Option<String>,
}

/// Whether a URL tenant segment names no tenant in particular.
pub fn is_multi_tenant_segment(tenant: &str) -> bool {
    ["organizations", "common"].iter().any(|segment| segment.eq_ignore_ascii_case(tenant))
}

/// The resource a scope list asks for: the one `<resource>/.default` scope, with the resource's
/// own trailing slash kept (`https://management.core.windows.net//.default` asks for
/// `https://management.core.windows.net/`).
pub fn resource_of(scope: &str) -> Result<&str, OAuthError> {
    scope
        .split(' ')
        .find_map(|one| one.strip_suffix("/.default"))
        .filter(|resource| !resource.is_empty())
        .ok_or_else(|| OAuthError::bad_scope(scope))
}

/// Whether crosspool issues tokens for this resource: the ARM audiences and the Graph audiences
/// (Microsoft's and this server's own origin, which the az CLI uses as a custom cloud's Graph).
pub fn is_known_resource(resource: &str, origin: &str) -> bool {
    let resource = resource.trim_end_matches('/').to_ascii_lowercase();
    [
        "https://management.core.windows.net",
        "https://management.azure.com",
        "https://graph.microsoft.com",
    ]
    .contains(&resource.as_str())
        || resource == origin.trim_end_matches('/').to_ascii_lowercase()
}

fn param<'a>(request: &'a TokenRequest<'_>, name: &str) -> Result<&'a str, OAuthError> {
    request
        .params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter(name))
}

fn store_failure(error: StoreError) -> OAuthError {
    error.into()
}

/// Answers a token request with the response JSON, or the platform's error.
pub async fn token(identity: &Identity, request: TokenRequest<'_>) -> Result<Value, OAuthError> {
    let grant = match request.params.get("grant_type").map(String::as_str) {
        Some("client_credentials") => "client_credentials",
        Some("password") => "password",
        Some("refresh_token") => "refresh_token",
        Some("authorization_code") => "authorization_code",
        Some(DEVICE_CODE_GRANT) => "device_code",
        _ => "other",
    };
    let answer = issue(identity, request).await;
    if answer.is_ok() {
        crate::telemetry::token_issued(grant);
    }
    answer
}

async fn issue(identity: &Identity, request: TokenRequest<'_>) -> Result<Value, OAuthError> {
    identity.reload_keys_if_stale().await;
    let grant_type = param(&request, "grant_type")?;
    let tenant = match is_multi_tenant_segment(request.tenant) {
        true => None,
        false => {
            let segment = request.tenant.to_owned();
            let found = identity
                .store()
                .read(move |tx| tx.tenant_find(&segment))
                .await
                .map_err(store_failure)?;
            Some(found.ok_or_else(|| OAuthError::unknown_tenant(request.tenant))?)
        }
    };
    // The device flow's scope was given to /devicecode; its poll carries none.
    if grant_type == DEVICE_CODE_GRANT {
        return device_code(identity, request.params, request.tenant).await;
    }
    let scope = param(&request, "scope")?;
    let resource = resource_of(scope)?;
    if !is_known_resource(resource, identity.origin()) {
        return Err(OAuthError::unknown_resource(resource, request.tenant));
    }
    match grant_type {
        "client_credentials" => {
            client_credentials(identity, &request, tenant, resource, scope).await
        }
        "password" => password(identity, &request, tenant, resource, scope).await,
        "refresh_token" => refresh(identity, &request, tenant, resource, scope).await,
        "authorization_code" => {
            authorization_code(identity, &request, tenant, resource, scope).await
        }
        other => Err(OAuthError::unsupported_grant(other)),
    }
}

async fn client_credentials(
    identity: &Identity,
    request: &TokenRequest<'_>,
    tenant: Option<TenantRecord>,
    resource: &str,
    scope: &str,
) -> Result<Value, OAuthError> {
    let tenant = tenant.ok_or_else(|| OAuthError::unknown_tenant(request.tenant))?;
    let (client_id, client_secret) =
        match (&request.basic_credentials, request.params.get("client_id")) {
            (Some((id, secret)), _) => (id.clone(), secret.clone()),
            (None, Some(id)) => {
                let secret =
                    request.params.get("client_secret").filter(|secret| !secret.is_empty());
                (id.clone(), secret.ok_or_else(OAuthError::missing_client_secret)?.clone())
            }
            (None, None) => return Err(OAuthError::missing_parameter("client_id")),
        };
    let (tenant_id, app_id) = (tenant.id.clone(), client_id.clone());
    let found = identity
        .store()
        .read(move |tx| {
            let Some(application) = tx.application_by_app_id(&app_id)? else { return Ok(None) };
            let Some(service_principal) = tx.service_principal_find(&tenant_id, &app_id)? else {
                return Ok(None);
            };
            let passwords = tx.application_passwords(&application.id)?;
            Ok::<_, StoreError>(Some((service_principal, passwords)))
        })
        .await
        .map_err(store_failure)?;
    // An app needs a service principal in the tenant it asks a token of.
    let (service_principal, passwords) =
        found.ok_or_else(|| OAuthError::unknown_application(&client_id, &tenant.id))?;
    let now = identity.now();
    let secret_ok = passwords
        .iter()
        .filter(|password| password.start_at <= now && now < password.end_at)
        .any(|password| client_secret_matches(&client_secret, &password.secret_sha256));
    if !secret_ok {
        return Err(OAuthError::bad_client_secret(&client_id));
    }
    let mut claims = base_claims(identity, &tenant.id, resource, now, TOKEN_LIFETIME_SECONDS);
    claims.insert("oid".to_owned(), json!(service_principal.id));
    claims.insert("sub".to_owned(), json!(service_principal.id));
    claims.insert("appid".to_owned(), json!(service_principal.app_id));
    claims.insert("azp".to_owned(), json!(service_principal.app_id));
    claims.insert("appidacr".to_owned(), json!("1"));
    claims.insert("idtyp".to_owned(), json!("app"));
    let access_token = identity.signer().sign(&claims);
    Ok(json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS,
        "access_token": access_token,
    }))
}

async fn password(
    identity: &Identity,
    request: &TokenRequest<'_>,
    tenant: Option<TenantRecord>,
    resource: &str,
    scope: &str,
) -> Result<Value, OAuthError> {
    let client_id = param(request, "client_id")?;
    if !is_first_party_client(client_id) {
        return Err(OAuthError::unknown_application(client_id, request.tenant));
    }
    let username = param(request, "username")?;
    let password = param(request, "password")?;
    let user = identity
        .sign_in(username, password, tenant.as_ref(), request.client_address.as_deref())
        .await
        .map_err(|error| sign_in_error(&error, request.tenant))?;
    Ok(tokens_for_user(identity, &user, client_id, resource, scope, request.params))
}

/// The token endpoint's error for a failed sign-in.
fn sign_in_error(error: &SignInError, tenant: &str) -> OAuthError {
    match error {
        SignInError::LockedOut => OAuthError::locked_out(),
        SignInError::BadCredentials => OAuthError::bad_password(),
        SignInError::Disabled => OAuthError::disabled(),
        SignInError::Throttled => OAuthError::throttled(),
        SignInError::NotInTenant { upn } => OAuthError::user_not_in_tenant(upn, tenant),
        SignInError::Unavailable => OAuthError::unavailable(),
    }
}

async fn refresh(
    identity: &Identity,
    request: &TokenRequest<'_>,
    tenant: Option<TenantRecord>,
    resource: &str,
    scope: &str,
) -> Result<Value, OAuthError> {
    let client_id = param(request, "client_id")?;
    let refresh_token = param(request, "refresh_token")?;
    let claims =
        identity.verify(refresh_token).await.map_err(|_| OAuthError::bad_refresh_token())?;
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    if claim("aud") != REFRESH_AUDIENCE
        || claim("idtyp") != "refresh"
        || !claim("appid").eq_ignore_ascii_case(client_id)
    {
        return Err(OAuthError::bad_refresh_token());
    }
    // An application deleted since is no client any more.
    let client = find_client(identity, client_id, OAuthError::bad_refresh_token()).await?;
    authenticate_client(identity, request, &client, client_id).await?;
    let user =
        user_in_tenant(identity, claim("oid"), tenant.as_ref(), OAuthError::bad_refresh_token())
            .await?;
    let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    user_may_have_tokens(&user, issued_at, OAuthError::bad_refresh_token())?;
    require_consent(identity, &client, &user, client_id).await?;
    Ok(tokens_for_user(identity, &user, client_id, resource, scope, request.params))
}

/// The client with this id; `missing` when there is none.
async fn find_client(
    identity: &Identity,
    client_id: &str,
    missing: OAuthError,
) -> Result<Client, OAuthError> {
    match Client::find(identity, client_id).await {
        Ok(client) => Ok(client),
        Err(ClientError::Unknown) => Err(missing),
        Err(ClientError::Unavailable) => Err(OAuthError::unavailable()),
    }
}

/// A confidential client (a registered application) proves itself with its secret on every
/// grant; a public one has nothing to prove.
async fn authenticate_client(
    identity: &Identity,
    request: &TokenRequest<'_>,
    client: &Client,
    client_id: &str,
) -> Result<(), OAuthError> {
    if client.is_public() {
        return Ok(());
    }
    client_secret_check(identity, request, client_id).await
}

/// Refuses a user who is disabled, or whose tokens issued at `issued_at` (seconds) were revoked
/// since.
fn user_may_have_tokens(
    user: &UserRecord,
    issued_at: i64,
    revoked: OAuthError,
) -> Result<(), OAuthError> {
    if !user.account_enabled {
        return Err(OAuthError::disabled());
    }
    if issued_at < user.tokens_valid_after {
        return Err(revoked);
    }
    Ok(())
}

/// Refuses a registered application without consent in the user's tenant.
async fn require_consent(
    identity: &Identity,
    client: &Client,
    user: &UserRecord,
    client_id: &str,
) -> Result<(), OAuthError> {
    if !client.serves_tenant(&user.tenant_id) {
        return Err(OAuthError::unknown_application(client_id, &user.tenant_id));
    }
    match client.has_consent(identity, user).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(OAuthError::consent_required(client_id, &user.tenant_id)),
        Err(error) => Err(error.into()),
    }
}

async fn authorization_code(
    identity: &Identity,
    request: &TokenRequest<'_>,
    tenant: Option<TenantRecord>,
    resource: &str,
    scope: &str,
) -> Result<Value, OAuthError> {
    let client_id = param(request, "client_id")?;
    let code = param(request, "code")?;
    let redirect_uri = param(request, "redirect_uri")?;
    let code_sha256 = client_secret_hash(code);
    // Taking the code removes it: a second redemption finds nothing.
    let record = identity
        .store()
        .write(move |tx| tx.authorization_code_take(&code_sha256))
        .await
        .map_err(store_failure)?
        .ok_or_else(|| OAuthError::bad_code("it is unknown or was already redeemed"))?;
    let now = identity.now();
    if record.expires_at <= now {
        return Err(OAuthError::expired_code());
    }
    if !record.client_id.eq_ignore_ascii_case(client_id) {
        return Err(OAuthError::bad_code("it was issued to another client"));
    }
    if record.redirect_uri != redirect_uri {
        return Err(OAuthError::bad_code(
            "the redirect_uri differs from the authorization request's",
        ));
    }
    let client =
        find_client(identity, client_id, OAuthError::bad_code("its application no longer exists"))
            .await?;
    authenticate_client(identity, request, &client, client_id).await?;
    match &record.code_challenge {
        Some(challenge) => {
            let verifier = param(request, "code_verifier")?;
            let computed = URL_SAFE_NO_PAD
                .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
            if &computed != challenge {
                return Err(OAuthError::code_verifier_mismatch());
            }
        }
        // The authorize page requires PKCE of public clients; a code without it is a
        // confidential client's, which has just proved itself with its secret.
        None if client.is_public() => {
            return Err(OAuthError::bad_code("it was issued without PKCE to a public client"));
        }
        None => {}
    }
    if let Some(tenant) = &tenant
        && tenant.id != record.tenant_id
    {
        return Err(OAuthError::bad_code("it was issued by another tenant"));
    }
    // The code's tenant was checked above; the user is the code's.
    let user = user_in_tenant(
        identity,
        &record.user_id,
        None,
        OAuthError::bad_code("its user no longer exists"),
    )
    .await?;
    let issued_at = (record.expires_at.0 - CODE_LIFETIME_MS) / 1000;
    user_may_have_tokens(
        &user,
        issued_at,
        OAuthError::bad_code("its user's sessions were revoked"),
    )?;
    require_consent(identity, &client, &user, client_id).await?;
    Ok(user_tokens(
        identity,
        &user,
        &UserGrant {
            client_id,
            resource,
            scope,
            nonce: record.nonce.as_deref(),
            client_info: wants_client_info(request),
        },
        now,
    ))
}

/// The user with this object id, who must belong to `tenant` when one is given; `missing` is the
/// error when there is no such user.
async fn user_in_tenant(
    identity: &Identity,
    user_id: &str,
    tenant: Option<&TenantRecord>,
    missing: OAuthError,
) -> Result<UserRecord, OAuthError> {
    let lookup = user_id.to_owned();
    let user = identity
        .store()
        .read(move |tx| tx.user_get(&lookup))
        .await
        .map_err(store_failure)?
        .ok_or(missing)?;
    match tenant {
        Some(tenant) if tenant.id != user.tenant_id => {
            Err(OAuthError::user_not_in_tenant(&user.upn, &tenant.id))
        }
        _ => Ok(user),
    }
}

/// Checks a registered app's client secret from the form or HTTP Basic.
async fn client_secret_check(
    identity: &Identity,
    request: &TokenRequest<'_>,
    client_id: &str,
) -> Result<(), OAuthError> {
    let secret = match &request.basic_credentials {
        Some((id, secret)) if id.eq_ignore_ascii_case(client_id) => secret.clone(),
        Some(_) => return Err(OAuthError::bad_client_secret(client_id)),
        None => request
            .params
            .get("client_secret")
            .filter(|secret| !secret.is_empty())
            .cloned()
            .ok_or_else(OAuthError::missing_client_secret)?,
    };
    let app_id = client_id.to_owned();
    let passwords = identity
        .store()
        .read(move |tx| match tx.application_by_app_id(&app_id)? {
            Some(application) => tx.application_passwords(&application.id),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(store_failure)?;
    let now = identity.now();
    let matches = passwords
        .iter()
        .filter(|password| password.start_at <= now && now < password.end_at)
        .any(|password| client_secret_matches(&secret, &password.secret_sha256));
    if matches { Ok(()) } else { Err(OAuthError::bad_client_secret(client_id)) }
}

/// The claims every token has.
pub(crate) fn base_claims(
    identity: &Identity,
    tenant_id: &str,
    audience: &str,
    now: Timestamp,
    lifetime: i64,
) -> Map<String, Value> {
    let iat = now.0 / 1000;
    let Value::Object(claims) = json!({
        "aud": audience,
        "iss": identity.issuer(tenant_id),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "tid": tenant_id,
        "ver": "2.0",
    }) else {
        unreachable!("a JSON object literal is an object")
    };
    claims
}

/// A user's tokens for a client and resource, with `client_info` if `params` ask for it.
pub(crate) fn tokens_for_user(
    identity: &Identity,
    user: &UserRecord,
    client_id: &str,
    resource: &str,
    scope: &str,
    params: &HashMap<String, String>,
) -> Value {
    let client_info = params.get("client_info").is_some_and(|value| value == "1");
    user_tokens(
        identity,
        user,
        &UserGrant { client_id, resource, scope, nonce: None, client_info },
        identity.now(),
    )
}

/// What a user's tokens are for.
struct UserGrant<'a> {
    client_id: &'a str,
    resource: &'a str,
    scope: &'a str,
    /// Goes into the id token (the code flow's `nonce`).
    nonce: Option<&'a str>,
    /// Whether the client asked for `client_info`.
    client_info: bool,
}

fn wants_client_info(request: &TokenRequest<'_>) -> bool {
    request.params.get("client_info").is_some_and(|value| value == "1")
}

/// Access, id and refresh tokens for a user, with `client_info` when asked.
fn user_tokens(
    identity: &Identity,
    user: &UserRecord,
    grant: &UserGrant<'_>,
    now: Timestamp,
) -> Value {
    let UserGrant { client_id, resource, scope, nonce, client_info } = *grant;
    // Tokens of a user whose tokens were revoked this very second are issued as of the next one,
    // so that they are told apart from the revoked ones.
    let now = Timestamp(now.0.max(user.tokens_valid_after.saturating_mul(1000)));
    let signer = identity.signer();
    let mut access = base_claims(identity, &user.tenant_id, resource, now, TOKEN_LIFETIME_SECONDS);
    for (name, value) in [
        ("oid", json!(user.id)),
        ("sub", json!(user.id)),
        ("upn", json!(user.upn)),
        ("unique_name", json!(user.upn)),
        ("preferred_username", json!(user.upn)),
        ("name", json!(user.display_name)),
        ("appid", json!(client_id)),
        ("azp", json!(client_id)),
        ("appidacr", json!("0")),
        ("idtyp", json!("user")),
        ("scp", json!("user_impersonation")),
    ] {
        access.insert(name.to_owned(), value);
    }
    let mut id_token =
        base_claims(identity, &user.tenant_id, client_id, now, TOKEN_LIFETIME_SECONDS);
    for (name, value) in [
        ("oid", json!(user.id)),
        ("sub", json!(user.id)),
        ("preferred_username", json!(user.upn)),
        ("name", json!(user.display_name)),
    ] {
        id_token.insert(name.to_owned(), value);
    }
    if let Some(nonce) = nonce {
        id_token.insert("nonce".to_owned(), json!(nonce));
    }
    let mut refresh =
        base_claims(identity, &user.tenant_id, REFRESH_AUDIENCE, now, REFRESH_LIFETIME_SECONDS);
    for (name, value) in [
        ("oid", json!(user.id)),
        ("sub", json!(user.id)),
        ("appid", json!(client_id)),
        ("idtyp", json!("refresh")),
        ("jti", json!(uuid::Uuid::new_v4().to_string())),
    ] {
        refresh.insert(name.to_owned(), value);
    }
    let mut response = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS,
        "access_token": signer.sign(&access),
        "refresh_token": signer.sign(&refresh),
        "id_token": signer.sign(&id_token),
    });
    if client_info {
        let info = json!({ "uid": user.id, "utid": user.tenant_id }).to_string();
        response["client_info"] = json!(URL_SAFE_NO_PAD.encode(info));
    }
    response
}

/// The token endpoint's answer to a device polling with its device code.
async fn device_code(
    identity: &Identity,
    params: &HashMap<String, String>,
    tenant: &str,
) -> Result<serde_json::Value, OAuthError> {
    let device_code = params
        .get("device_code")
        .filter(|code| !code.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter("device_code"))?;
    let client_id = params
        .get("client_id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| OAuthError::missing_parameter("client_id"))?;
    let hash = client_secret_hash(device_code);
    let lookup = hash.clone();
    let record = identity
        .store()
        .read(move |tx| tx.device_code_get(&lookup))
        .await
        .map_err(store_failure)?
        .ok_or_else(OAuthError::bad_device_code)?;
    if !record.client_id.eq_ignore_ascii_case(client_id)
        || !record.tenant_segment.eq_ignore_ascii_case(tenant)
    {
        return Err(OAuthError::bad_device_code());
    }
    if record.expires_at <= identity.now() {
        return Err(OAuthError::expired_device_code());
    }
    let Some(user_id) = record.user_id.clone() else {
        return Err(OAuthError::authorization_pending());
    };
    // Only one poll gets the tokens.
    let taken = identity
        .store()
        .write(move |tx| tx.device_code_delete(&hash))
        .await
        .map_err(store_failure)?;
    if !taken {
        return Err(OAuthError::bad_device_code());
    }
    let user = identity
        .store()
        .read(move |tx| tx.user_get(&user_id))
        .await
        .map_err(store_failure)?
        .ok_or_else(OAuthError::bad_device_code)?;
    let issued_at = (record.expires_at.0 / 1000) - DEVICE_CODE_LIFETIME_SECONDS;
    user_may_have_tokens(&user, issued_at, OAuthError::bad_device_code())?;
    let resource = resource_of(&record.scope)?;
    // The response repeats the scopes sent to /devicecode, as MSAL expects.
    Ok(tokens_for_user(identity, &user, &record.client_id, resource, &record.scope, params))
}
