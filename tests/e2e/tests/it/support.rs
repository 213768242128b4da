//! What the end-to-end tests share: a demo server on a free loopback port, its demo world, JWT
//! claims, and the lock for port 443.

use std::net::SocketAddr;

use base64::Engine;
use serde_json::Value;
use server::{Running, ServeConfig};
use store::identity::{ApplicationRecord, TenantRecord};

/// MSAL looks up the user realm on port 443 of the authority's host before a password sign-in
/// (AZ-CLI.md §0.1). Tests that serve 443 hold this lock so they never bind it at once.
pub static PORT_443: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const REALM_PORT: &str = "127.0.0.1:443";

/// Whether this process may listen on port 443; says why not on stderr.
pub fn can_serve_port_443() -> bool {
    match std::net::TcpListener::bind(REALM_PORT) {
        Ok(_) => true,
        Err(error) => {
            eprintln!(
                "skipping: cannot listen on {REALM_PORT} ({error}; needs root or CAP_NET_BIND_SERVICE), which MSAL's password sign-in calls"
            );
            false
        }
    }
}

/// A demo server in `dir`, also serving `also_listen`.
pub async fn start_server(dir: &tempfile::TempDir, also_listen: Vec<SocketAddr>) -> Running {
    let config =
        ServeConfig { also_listen, demo: true, ..ServeConfig::local(dir.path().to_owned()) };
    server::start(config).await.unwrap()
}

/// A field of a demo tenant, e.g. `demo(&running, "B", "tenant_id")`.
pub fn demo(running: &Running, tenant: &str, field: &str) -> String {
    running.demo.as_ref().unwrap()["tenants"][tenant][field].as_str().unwrap().to_owned()
}

/// A demo user's name and password.
pub fn demo_user(running: &Running, tenant: &str, role: &str) -> (String, String) {
    let user = &running.demo.as_ref().unwrap()["tenants"][tenant][role];
    (user["username"].as_str().unwrap().to_owned(), user["password"].as_str().unwrap().to_owned())
}

/// The claims of a JWT, unchecked.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
    )
    .unwrap()
}

/// A multi-tenant app registered in B with a client secret (no service principals yet):
/// `(tenant A, tenant B, the app, its secret)`.
pub async fn multi_tenant_app(
    running: &Running,
) -> (TenantRecord, TenantRecord, ApplicationRecord, String) {
    let app = server::demo::multi_tenant_app(&running.store, "sdk-app").await.unwrap();
    (app.tenant_a, app.tenant_b, app.application, app.secret)
}
