//! Portal sessions: a random id in an `HttpOnly`, `Secure`, `SameSite=Lax` cookie, and on the
//! server the tokens the person got by signing in to each tenant, and the sign-in in progress.
//! Sessions live in this process's memory (a replica behind a load balancer needs sticky
//! sessions; docs/portal.md).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use rand::RngCore;

pub const COOKIE: &str = "crosspool_portal";

/// What one tenant's sign-in gave.
#[derive(Debug, Clone)]
pub struct TenantTokens {
    pub tenant_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
    pub upn: String,
}

/// A sign-in waiting for its callback.
#[derive(Debug, Clone)]
pub struct Pending {
    pub tenant: String,
    pub verifier: String,
    pub return_to: String,
}

#[derive(Debug, Default, Clone)]
pub struct Session {
    /// By tenant id.
    pub tokens: HashMap<String, TenantTokens>,
    /// By state.
    pub pending: HashMap<String, Pending>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
}

/// A random URL-safe token.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The session id in a request's cookies.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for a session id.
pub fn cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/portal; HttpOnly; Secure; SameSite=Lax")
}

impl Sessions {
    pub fn get(&self, id: &str) -> Option<Session> {
        self.sessions.lock().ok()?.get(id).cloned()
    }

    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        if let Ok(mut sessions) = self.sessions.lock() {
            change(sessions.entry(id.to_owned()).or_default());
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }
}
