//! Signing a person in with a user name and password, the same way for the password grant, the
//! authorize page and the device-login page: an attempt reserved with the failure limiter, a
//! place at the hashing gate, an Argon2id check that costs the same for unknown users, then the
//! account's state and tenant membership.
//!
//! The hashing gate (`limiter::HashingGate`) bounds how many checks run at once.

use store::identity::{TenantRecord, UserRecord};

use crate::Identity;
use crate::limiter::Throttled;
use crate::secret::password_matches;
use crate::telemetry;

/// An Argon2id hash of a random password nobody knows, checked when the user does not exist, so
/// timing does not tell which users exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J0W0KgqhGjJxwDHiH54N2hBWMcQ6PyZbqIwSOzHnbHQ";

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Too many failures for this account or address lately (AADSTS50053).
    LockedOut,
    /// Unknown user or wrong password (AADSTS50126).
    BadCredentials,
    /// The account is disabled (AADSTS50057).
    Disabled,
    /// The user belongs to another tenant (AADSTS50020).
    NotInTenant { upn: String },
    /// Too many sign-ins at once: try again after `limiter::THROTTLE_RETRY_AFTER_SECONDS`.
    Throttled,
    /// The directory could not be read.
    Unavailable,
}

impl SignInError {
    /// The reason's metric label (`telemetry::SIGN_IN_FAILURES`).
    fn label(&self) -> &'static str {
        match self {
            SignInError::LockedOut => "locked_out",
            SignInError::BadCredentials => "bad_credentials",
            SignInError::Disabled => "disabled",
            SignInError::NotInTenant { .. } => "not_in_tenant",
            SignInError::Throttled => "throttled",
            SignInError::Unavailable => "unavailable",
        }
    }
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
        let outcome = self.check_sign_in(username, password, tenant, client_address).await;
        if let Err(error) = &outcome {
            telemetry::sign_in_failed(error.label());
        }
        outcome
    }

    async fn check_sign_in(
        &self,
        username: &str,
        password: &str,
        tenant: Option<&TenantRecord>,
        client_address: Option<&str>,
    ) -> Result<UserRecord, SignInError> {
        let username = username.trim().to_ascii_lowercase();
        let attempt = self
            .limiter
            .reserve(&username, client_address, self.now())
            .map_err(|_| SignInError::LockedOut)?;
        let lookup = username.clone();
        let user = match self.store().read(move |tx| tx.user_by_upn(&lookup)).await {
            Ok(user) => user,
            Err(_) => {
                attempt.withdrawn();
                return Err(SignInError::Unavailable);
            }
        };
        let stored_hash =
            user.as_ref().map_or_else(|| DUMMY_HASH.to_owned(), |user| user.password_hash.clone());
        let password = password.to_owned();
        let matches =
            match self.hashing.run(move || password_matches(&password, &stored_hash)).await {
                Ok(matches) => matches,
                Err(error) => {
                    attempt.withdrawn();
                    return Err(match error {
                        Throttled::Busy => SignInError::Throttled,
                        Throttled::Stopped => SignInError::Unavailable,
                    });
                }
            };
        let user = match user {
            Some(user) if matches => user,
            _ => {
                attempt.failed();
                return Err(SignInError::BadCredentials);
            }
        };
        attempt.succeeded();
        if !user.account_enabled {
            return Err(SignInError::Disabled);
        }
        match tenant {
            Some(tenant) if tenant.id != user.tenant_id => {
                Err(SignInError::NotInTenant { upn: user.upn })
            }
            _ => Ok(user),
        }
    }
}
