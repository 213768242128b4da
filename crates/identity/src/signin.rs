//! Signing a person in with a user name and password, the same way for the password grant, the
//! authorize page and the device-login page: the failure limit first, then an Argon2id check that
//! costs the same for unknown users, then tenant membership.

use store::identity::{TenantRecord, UserRecord};

use crate::Identity;
use crate::secret::password_matches;

/// An Argon2id hash of a random password nobody knows, checked when the user does not exist, so
/// timing does not tell which users exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J0W0KgqhGjJxwDHiH54N2hBWMcQ6PyZbqIwSOzHnbHQ";

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Too many failures for this user or address lately (AADSTS50053).
    LockedOut,
    /// Unknown user or wrong password (AADSTS50126).
    BadCredentials,
    /// The user belongs to another tenant (AADSTS50020).
    NotInTenant { upn: String },
    /// The directory could not be read.
    Unavailable,
}

impl Identity {
    /// Checks a user name and password; `tenant` is the tenant signed in to, `None` for
    /// `organizations`/`common` (the user's home tenant then).
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        tenant: Option<&TenantRecord>,
        client_address: Option<&str>,
    ) -> Result<UserRecord, SignInError> {
        let username = username.trim().to_ascii_lowercase();
        let now = self.now();
        let mut limit_keys = vec![format!("user:{username}")];
        limit_keys.extend(client_address.map(|address| format!("ip:{address}")));
        if self.limiter.is_locked(&limit_keys, now) {
            return Err(SignInError::LockedOut);
        }
        let lookup = username.clone();
        let user = self
            .store()
            .read(move |tx| tx.user_by_upn(&lookup))
            .await
            .map_err(|_| SignInError::Unavailable)?;
        let stored_hash =
            user.as_ref().map_or_else(|| DUMMY_HASH.to_owned(), |user| user.password_hash.clone());
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || password_matches(&password, &stored_hash))
                .await
                .map_err(|_| SignInError::Unavailable)?;
        let user = match user {
            Some(user) if matches => user,
            _ => {
                self.limiter.record_failure(&limit_keys, now);
                return Err(SignInError::BadCredentials);
            }
        };
        self.limiter.record_success(&limit_keys[0]);
        match tenant {
            Some(tenant) if tenant.id != user.tenant_id => {
                Err(SignInError::NotInTenant { upn: user.upn })
            }
            _ => Ok(user),
        }
    }
}
