//! `/metrics`: the process's metrics in the Prometheus text format, rendered by
//! `metrics-exporter-prometheus` from what every crate records through the `metrics` facade:
//!
//! - requests by route template, method and status, with latency histograms (here, from the
//!   request log's middleware);
//! - allocations and releases by pool, commit latency and writes per commit
//!   (`store::telemetry`);
//! - each pool's size, allocated, reserved and available addresses and largest free block, read
//!   from the store at each scrape, so every replica reports the same numbers (here);
//! - tokens issued by grant, failed sign-ins by reason and lockouts (`identity::telemetry`);
//! - auxiliary-token and linked-check refusals by code (`arm::telemetry`).
//!
//! Labels are bounded: route templates (never paths), methods from a fixed list, pools (never
//! VNets), codes and reasons from fixed lists.
//!
//! The metrics name every pool of every tenant, so the main port serves them to loopback clients
//! only; `--metrics-listen` serves them on an address of the operator's choosing (plain HTTP, as
//! Prometheus scrapes), for a scraper elsewhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use store::Store;

/// Requests answered, by route template, method and status.
pub const HTTP_REQUESTS: &str = "crosspool_http_requests_total";
/// Seconds from a request's arrival to its response's head, by route template, method and status.
pub const HTTP_SECONDS: &str = "crosspool_http_request_duration_seconds";
/// A pool's addresses, by pool.
pub const POOL_SIZE: &str = "crosspool_pool_size_addresses";
/// A pool's allocated addresses (VNets, static CIDRs and child pools), by pool.
pub const POOL_ALLOCATED: &str = "crosspool_pool_allocated_addresses";
/// A pool's reserved addresses, by pool.
pub const POOL_RESERVED: &str = "crosspool_pool_reserved_addresses";
/// A pool's available addresses, by pool.
pub const POOL_AVAILABLE: &str = "crosspool_pool_available_addresses";
/// The size of a pool's largest free block, by pool: the largest allocation it can still take.
pub const POOL_LARGEST_FREE: &str = "crosspool_pool_largest_free_block_addresses";

/// Latency buckets, in seconds.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Writes-per-commit buckets (a commit carries at most 64).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// How long a pool's gauges outlive the pool: they are set at each scrape, so a deleted pool's
/// series ends this long after its last scrape.
const GAUGE_IDLE: Duration = Duration::from_secs(60);
/// How long a scrape waits for the store's pool numbers before it answers without them.
const POOLS_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's recorder: installed by the first server started in it, shared by any later
/// one (tests start many). `None` if something else installed a recorder first.
fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(store::telemetry::BATCH_WRITES.to_owned()),
                        BATCH_BUCKETS,
                    )
                });
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(error = %error, "no metrics: the Prometheus recorder could not be installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The help text of every metric.
fn describe() {
    describe_counter!(HTTP_REQUESTS, "Requests answered, by route template, method and status.");
    describe_histogram!(HTTP_SECONDS, Unit::Seconds, "Time to answer a request.");
    describe_counter!(store::telemetry::ALLOCATIONS, "Allocations made, by pool and holder.");
    describe_counter!(store::telemetry::RELEASES, "Allocations released, by pool and holder.");
    describe_histogram!(
        store::telemetry::COMMIT_SECONDS,
        Unit::Seconds,
        "Time a write transaction's commit took."
    );
    describe_histogram!(store::telemetry::BATCH_WRITES, "Writes carried by one commit.");
    describe_gauge!(POOL_SIZE, "Addresses in the pool.");
    describe_gauge!(POOL_ALLOCATED, "Allocated addresses: VNets, static CIDRs, child pools.");
    describe_gauge!(POOL_RESERVED, "Reserved addresses.");
    describe_gauge!(POOL_AVAILABLE, "Available addresses.");
    describe_gauge!(POOL_LARGEST_FREE, "Addresses in the pool's largest free block.");
    describe_counter!(identity::telemetry::TOKENS_ISSUED, "Tokens issued, by grant.");
    describe_counter!(identity::telemetry::SIGN_IN_FAILURES, "Sign-ins refused, by reason.");
    describe_counter!(identity::telemetry::LOCKOUTS, "Lockouts begun, by what is locked.");
    describe_counter!(
        arm::telemetry::LINKED_REFUSALS,
        "Cross-tenant refusals, by check (auxiliary token or linked permission) and error code."
    );
}

/// Installs the recorder (once per process) and keeps its histograms drained while nobody
/// scrapes. Call from within the runtime.
pub fn install() {
    if let Some(handle) = recorder() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// Counts an answered request.
pub fn record_request(route: &str, method: &Method, status: u16, seconds: f64) {
    let method = match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_SECONDS, &labels).record(seconds);
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// On the main port, to loopback clients only.
    Loopback,
    /// On a listener of its own, to anyone who reaches it.
    Anyone,
}

#[derive(Debug, Clone)]
struct Scrape {
    store: Store,
    exposure: Exposure,
}

/// The `/metrics` route.
pub fn router(store: Store, exposure: Exposure) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(Scrape { store, exposure })
}

/// Serves `/metrics` alone over plain HTTP on `listener`, until the process ends.
pub fn serve(listener: tokio::net::TcpListener, store: Store) {
    let app = router(store, Exposure::Anyone).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(error = %error, "the metrics listener stopped");
        }
    });
}

async fn metrics(
    State(scrape): State<Scrape>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !may_scrape(scrape.exposure, peer.ip()) {
        let body = serde_json::json!({ "error": { "code": "Forbidden", "message": "/metrics on this port answers loopback clients only; serve it elsewhere with --metrics-listen." } });
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response();
    }
    let Some(handle) = recorder() else {
        let body = serde_json::json!({ "error": { "code": "ServiceUnavailable", "message": "Metrics are off: another recorder was installed in this process." } });
        return (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    };
    set_pool_gauges(&scrape.store).await;
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Whether a client at `ip` may read the metrics where they are exposed so.
fn may_scrape(exposure: Exposure, ip: IpAddr) -> bool {
    exposure == Exposure::Anyone || ip.to_canonical().is_loopback()
}

/// Sets every pool's gauges from the store. Without an answer the pools' series are left as
/// they were (and end after `GAUGE_IDLE`); the other metrics are served regardless.
async fn set_pool_gauges(store: &Store) {
    let read = tokio::time::timeout(POOLS_TIMEOUT, store.read(|tx| tx.pools_space())).await;
    let spaces = match read {
        Ok(Ok(spaces)) => spaces,
        Ok(Err(error)) => {
            tracing::warn!(error = %identity::trace::error_chain(&error), "metrics: the pools could not be read");
            return;
        }
        Err(_) => {
            tracing::warn!("metrics: the pools were not read in time");
            return;
        }
    };
    for space in spaces {
        let pool = space.resource_key;
        for (name, count) in [
            (POOL_SIZE, space.size),
            (POOL_ALLOCATED, space.allocated),
            (POOL_RESERVED, space.reserved),
            (POOL_AVAILABLE, space.available),
            (POOL_LARGEST_FREE, space.largest_free),
        ] {
            metrics::gauge!(name, "pool" => pool.clone()).set(count.as_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_port_serves_metrics_to_loopback_clients_only() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for loopback in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(may_scrape(Exposure::Loopback, ip(loopback)), "{loopback}");
        }
        for remote in ["10.0.0.1", "192.0.2.7", "2001:db8::1", "::ffff:10.0.0.1", "0.0.0.0"] {
            assert!(!may_scrape(Exposure::Loopback, ip(remote)), "{remote}");
            assert!(may_scrape(Exposure::Anyone, ip(remote)), "{remote}");
        }
    }
}
