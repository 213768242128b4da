//! The identity platform's HTTP endpoints: OIDC discovery, JWKS, the token endpoint, and the
//! user-realm probe MSAL makes before a password sign-in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::Identity;
use crate::error::{OAuthError, json_response};
use crate::token::{TokenRequest, is_multi_tenant_segment};

/// The largest token request body accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The routes, to merge into the server's router.
pub fn router(identity: Arc<Identity>) -> Router {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/common/userrealm/{user}", get(user_realm))
        .with_state(identity)
}

async fn discovery(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    // For `organizations` and `common` the issuer is a template, as in Entra.
    let tenant_id = if is_multi_tenant_segment(&tenant) {
        "{tenantid}".to_owned()
    } else {
        let segment = tenant.clone();
        match identity.store().read(move |tx| tx.tenant_find(&segment)).await {
            Ok(Some(found)) => found.id,
            Ok(None) => {
                return OAuthError::unknown_tenant(&tenant).response(identity.now(), &headers);
            }
            Err(error) => return OAuthError::from(error).response(identity.now(), &headers),
        }
    };
    let origin = identity.origin();
    let host = identity.host();
    let endpoint = |path: &str| format!("{origin}/{tenant}/{path}");
    let body = json!({
        "issuer": identity.issuer(&tenant_id),
        "authorization_endpoint": endpoint("oauth2/v2.0/authorize"),
        "token_endpoint": endpoint("oauth2/v2.0/token"),
        "device_authorization_endpoint": endpoint("oauth2/v2.0/devicecode"),
        "end_session_endpoint": endpoint("oauth2/v2.0/logout"),
        "jwks_uri": endpoint("discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "oid", "name", "preferred_username"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": "NA",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
    });
    json_response(StatusCode::OK, &body)
}

async fn jwks(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_multi_tenant_segment(&tenant) {
        let segment = tenant.clone();
        match identity.store().read(move |tx| tx.tenant_find(&segment)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return OAuthError::unknown_tenant(&tenant).response(identity.now(), &headers);
            }
            Err(error) => return OAuthError::from(error).response(identity.now(), &headers),
        }
    }
    json_response(StatusCode::OK, &identity.jwks().await)
}

async fn token(
    State(identity): State<Arc<Identity>>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let client_address =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    let headers = request.headers().clone();
    let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return OAuthError::missing_parameter("grant_type").response(identity.now(), &headers);
        }
    };
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let basic_credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            pair.split_once(':').map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    let token_request =
        TokenRequest { tenant: &tenant, params: &params, basic_credentials, client_address };
    match crate::token::token(&identity, token_request).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error.response(identity.now(), &headers),
    }
}

/// MSAL's question before a password sign-in. Answered by the domain alone, as Entra does:
/// whether a tenant has that domain, never whether the user exists.
async fn user_realm(State(identity): State<Arc<Identity>>, Path(user): Path<String>) -> Response {
    let domain =
        user.rsplit_once('@').map(|(_, domain)| domain.to_ascii_lowercase()).unwrap_or_default();
    let lookup = domain.clone();
    let known = !domain.is_empty()
        && matches!(identity.store().read(move |tx| tx.tenant_find(&lookup)).await, Ok(Some(_)));
    let body = json!({
        "ver": "1.0",
        "account_type": if known { "Managed" } else { "Unknown" },
        "domain_name": domain,
        "cloud_instance_name": identity.host(),
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    });
    json_response(StatusCode::OK, &body)
}
