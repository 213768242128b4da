//! `/healthz` and `/readyz`, without authentication, for load balancers and orchestrators:
//! `/healthz` answers while the process serves; `/readyz` only while the store answers with
//! this build's schema and the server is not stopping (503 otherwise, with the reason).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use store::Store;

/// How long `/readyz` waits for the store before it says the store is not answering.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health routes look at.
#[derive(Debug, Clone)]
pub struct Health {
    store: Store,
    stopping: Arc<AtomicBool>,
}

impl Health {
    pub fn new(store: Store) -> Health {
        Health { store, stopping: Arc::default() }
    }

    /// From now on `/readyz` says the server is stopping.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// The routes, to merge into the server's router.
pub fn router(health: Health) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(health)
}

fn answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

async fn healthz() -> Response {
    answer(StatusCode::OK, &json!({ "status": "ok" }))
}

async fn readyz(State(health): State<Health>) -> Response {
    if health.stopping.load(Ordering::Relaxed) {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "stopping", "reason": "the server is stopping" }),
        );
    }
    let supported = Store::schema_version_supported();
    match tokio::time::timeout(READY_TIMEOUT, health.store.schema_version()).await {
        Ok(Ok(version)) if version == supported => {
            answer(StatusCode::OK, &json!({ "status": "ready", "schemaVersion": version }))
        }
        Ok(Ok(version)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "status": "unavailable",
                "reason": format!("the store's schema is version {version}; this build uses {supported}"),
            }),
        ),
        Ok(Err(error)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unavailable", "reason": format!("the store does not answer: {}", identity::trace::error_chain(&error)) }),
        ),
        Err(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unavailable", "reason": format!("the store did not answer within {} s", READY_TIMEOUT.as_secs()) }),
        ),
    }
}
