//! Portal sessions: a random id in an `HttpOnly`, `Secure`, `SameSite=Lax` cookie, and on the
//! server the tokens the person got by signing in to each tenant, the sign-in in progress, and
//! the token every state-changing form must carry (CSRF). A session gets a new id, and a new
//! form token, at every sign-in, so an id planted before it is worth nothing after. Sessions
//! live in this process's memory for at most `SESSION_LIFETIME_SECONDS` (a replica behind a load
//! balancer needs sticky sessions; docs/portal.md).

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

/// How long a session lives after it starts, in seconds.
pub const SESSION_LIFETIME_SECONDS: i64 = 12 * 3600;

/// Sessions kept at most; past it the oldest go first.
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Session {
    /// By tenant id.
    pub tokens: HashMap<String, TenantTokens>,
    /// By state.
    pub pending: HashMap<String, Pending>,
    /// What every state-changing form of this session carries as `csrf`.
    pub csrf: String,
    /// Seconds since the epoch.
    pub started_at: i64,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live session with this id.
    pub fn get(&self, id: &str, now: i64) -> Option<Session> {
        self.lock()
            .get(id)
            .filter(|session| now - session.started_at < SESSION_LIFETIME_SECONDS)
            .cloned()
    }

    /// Starts a session; returns its id.
    pub fn create(&self, now: i64) -> String {
        let id = random_token();
        let mut sessions = self.lock();
        sessions.retain(|_, session| now - session.started_at < SESSION_LIFETIME_SECONDS);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.started_at)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                tokens: HashMap::new(),
                pending: HashMap::new(),
                csrf: random_token(),
                started_at: now,
            },
        );
        id
    }

    /// Changes the session with this id, if there is one.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        if let Some(session) = self.lock().get_mut(id) {
            change(session);
        }
    }

    /// Moves a session to a new id with a new form token (at sign-in); returns the new id.
    pub fn renew(&self, id: &str, now: i64) -> Option<String> {
        let mut sessions = self.lock();
        let mut session = sessions.remove(id)?;
        let new_id = random_token();
        session.csrf = random_token();
        session.started_at = now;
        sessions.insert(new_id.clone(), session);
        Some(new_id)
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Whether a form's `csrf` value is the session's, compared in constant time.
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    let expected = session.csrf.as_bytes();
    !expected.is_empty()
        && given.len() == expected.len()
        && given.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_session_has_a_new_id_and_form_token_and_the_old_id_is_gone() {
        let sessions = Sessions::default();
        let id = sessions.create(0);
        let before = sessions.get(&id, 0).unwrap();
        let renewed = sessions.renew(&id, 1).unwrap();
        assert_ne!(renewed, id);
        assert!(sessions.get(&id, 1).is_none());
        let after = sessions.get(&renewed, 1).unwrap();
        assert_ne!(after.csrf, before.csrf);
        assert!(csrf_matches(&after, &after.csrf.clone()));
        assert!(!csrf_matches(&after, &before.csrf));
        assert!(!csrf_matches(&after, ""));
        assert!(sessions.get(&renewed, 1 + SESSION_LIFETIME_SECONDS).is_none());
    }
}
