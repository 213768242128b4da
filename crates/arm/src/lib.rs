//! The ARM-style API: the conventions every resource shares (errors, request ids, api-versions,
//! authentication), the cloud metadata the az CLI registers, tenants, subscriptions, resource
//! groups, role-based access and the network resources.
//!
//! Modules import one way (ARCHITECTURE.md): `error` imports nothing of `arm`; `response`,
//! `state`, `path`, `rbac`, `api_version`, `location` and `telemetry` only `error`; above them `auth`, then
//! `request`, then `operation`, then the resources, then `dispatch`; this file only declares the
//! modules and builds the router, and nothing imports it or `dispatch`.

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
pub mod response;
pub mod routes;
pub mod state;
pub mod subscription;
pub mod telemetry;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{any, get};

/// The ARM routes, to merge into the server's router. `arm::routes::all()` lists what they
/// serve.
pub fn router(arm: Arc<state::Arm>) -> Router {
    Router::new()
        .route("/metadata/endpoints", get(metadata::endpoints))
        .route("/tenants", get(subscription::tenants_list))
        .route("/subscriptions", get(subscription::list))
        .route("/subscriptions/{subscription_id}", get(subscription::get))
        .route("/subscriptions/{subscription_id}/{*rest}", any(dispatch::handle))
        .route("/providers/{*rest}", any(dispatch::handle))
        .layer(middleware::from_fn(state::request_ids))
        .with_state(arm)
}
