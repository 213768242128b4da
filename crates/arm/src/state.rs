//! What every ARM request shares: the service (`Arm`, the identity service and its store) and
//! the ids each request and response carry (`RequestIds`, set by the `request_ids` middleware).
//! This module imports nothing of `arm`.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use identity::Identity;

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

/// The request id a response carries, and the correlation id it echoes.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub correlation_id: String,
}

/// Gives every ARM response `x-ms-request-id` and `x-ms-correlation-request-id` (the client's
/// `x-ms-client-request-id` when it sent one, as ARM does).
pub async fn request_ids(mut request: Request, next: Next) -> Response {
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
