//! The ARM-style API: the conventions every resource shares (errors, request ids, api-versions,
//! authentication) and, so far, the cloud metadata the az CLI registers, tenants, subscriptions
//! and role-based access.
//! Resources, RBAC and the network resources build on these.

pub mod api_version;
pub mod auth;
pub mod authorization;
pub mod dispatch;
pub mod error;
pub mod groups;
pub mod location;
pub mod metadata;
pub mod network;
pub mod operation;
pub mod path;
pub mod rbac;
pub mod request;
pub mod routes;
pub mod subscription;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get};
use identity::Identity;
use serde_json::json;

use crate::api_version::ApiVersions;
use crate::auth::Caller;
use crate::error::ArmError;

/// What the ARM handlers share.
#[derive(Debug)]
pub struct Arm {
    identity: Arc<Identity>,
}

impl Arm {
    pub fn new(identity: Arc<Identity>) -> Arm {
        Arm { identity }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// The ARM routes, to merge into the server's router.
pub fn router(arm: Arc<Arm>) -> Router {
    Router::new()
        .route("/metadata/endpoints", get(metadata::endpoints))
        .route("/tenants", get(tenants_list))
        .route("/subscriptions", get(subscription::list))
        .route("/subscriptions/{subscription_id}", get(subscription::get))
        .route("/subscriptions/{subscription_id}/{*rest}", any(dispatch::handle))
        .route("/providers/{*rest}", any(dispatch::handle))
        .layer(middleware::from_fn(request_ids))
        .with_state(arm)
}

/// The request id a response carries, and the correlation id it echoes.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
}

/// Gives every ARM response `x-ms-request-id` and `x-ms-correlation-request-id` (the client's
/// `x-ms-client-request-id` when it sent one, as ARM does).
async fn request_ids(mut request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = request
        .headers()
        .get("x-ms-correlation-request-id")
        .or_else(|| request.headers().get("x-ms-client-request-id"))
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map_or_else(|| request_id.clone(), str::to_owned);
    request.extensions_mut().insert(RequestIds {
        request_id: request_id.clone(),
        correlation_id: correlation_id.clone(),
    });
    let mut response = next.run(request).await;
    for (name, value) in
        [("x-ms-request-id", request_id), ("x-ms-correlation-request-id", correlation_id)]
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The api-versions of `GET /tenants` (and `/subscriptions`), as the az CLI and SDKs send them.
pub const TENANTS_API_VERSIONS: ApiVersions = ApiVersions::new(
    "tenants",
    &["2016-06-01", "2019-11-01", "2020-01-01", "2021-01-01", "2022-01-01", "2022-12-01"],
);

async fn tenants_list(
    State(arm): State<Arc<Arm>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    caller: Caller,
) -> Result<Response, ArmError> {
    TENANTS_API_VERSIONS.check(query.get("api-version").map(String::as_str))?;
    let tenant_id = caller.tenant_id().to_owned();
    let tenant = arm
        .identity()
        .store()
        .read(move |tx| tx.tenant_find(&tenant_id))
        .await?
        .ok_or_else(|| ArmError::invalid_token("the token's tenant does not exist"))?;
    let body = json!({
        "value": [{
            "id": format!("/tenants/{}", tenant.id),
            "tenantId": tenant.id,
            "countryCode": "US",
            "displayName": tenant.display_name,
            "domains": [tenant.domain],
            "tenantCategory": "Home",
            "defaultDomain": tenant.domain,
            "tenantType": "AAD",
        }]
    });
    Ok(error::json(axum::http::StatusCode::OK, &body))
}
