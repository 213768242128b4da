//! The request log: one line per request — method, route template, status, latency, the
//! `x-ms-request-id` the client can quote, and the caller's tenant and object id — and for an
//! internal error its cause, under the same request id. Never a token, password or secret: the
//! line is built from the route and what the response says (`identity::trace`), not from the
//! request's headers or body. JSON lines with `--log-format json`, readable text otherwise; the
//! level comes from `RUST_LOG` (default `info`).

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use identity::trace::{CallerTrace, InternalCause, RouteTrace};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process's log subscriber, writing to stderr. A second call changes nothing.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
}

/// Middleware: logs every request once, and an internal error's cause with its request id. A
/// response without `x-ms-request-id` (the identity platform's, the portal's) gets one.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let request_id = match response.headers().get("x-ms-request-id").and_then(|id| id.to_str().ok())
    {
        Some(id) => id.to_owned(),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-ms-request-id", value);
            }
            id
        }
    };
    let route = response
        .extensions()
        .get::<RouteTrace>()
        .map(|route| route.0.clone())
        .or(matched)
        .unwrap_or_else(|| "(no route)".to_owned());
    let (tenant_id, object_id) = response
        .extensions()
        .get::<CallerTrace>()
        .map_or((String::new(), String::new()), |caller| {
            (caller.tenant_id.clone(), caller.object_id.clone())
        });
    let status = response.status().as_u16();
    crate::metrics::record_request(&route, &method, status, latency_ms / 1000.0);
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(request_id = %request_id, method = %method, route = %route, status, cause = %cause, "internal error");
    }
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_ms,
        tenant_id = %tenant_id,
        object_id = %object_id,
        "request"
    );
    response
}
