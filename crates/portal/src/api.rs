//! The portal's way to the API: requests through the server's own router, in process, with the
//! session's bearer tokens — the same routes, checks and errors a CLI meets — and the token
//! endpoint for the code and refresh grants.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

/// An API answer: status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error in words: `Code: message`.
    pub fn error_text(&self) -> String {
        let error = &self.body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => match self.body["error_description"].as_str() {
                Some(description) => description.to_owned(),
                None => format!("The request failed with status {}.", self.status),
            },
        }
    }
}

/// Sends a request to the API router.
pub async fn send(
    api: &Router,
    method: Method,
    path: &str,
    token: &str,
    aux: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(aux) = aux {
        request = request.header("x-ms-authorization-auxiliary", format!("Bearer {aux}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let Ok(request) = request.body(body) else {
        return Answer { status: 400, body: Value::Null };
    };
    answer(api, request).await
}

/// Posts a form to a tenant's token endpoint.
pub async fn token(api: &Router, tenant: &str, form: &[(&str, &str)]) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/{tenant}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body));
    match request {
        Ok(request) => answer(api, request).await,
        Err(_) => Answer { status: 400, body: Value::Null },
    }
}

async fn answer(api: &Router, request: Request<Body>) -> Answer {
    let Ok(response) = api.clone().oneshot(request).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body }
}
