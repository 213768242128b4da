//! Identity: tenants, users, app registrations, service principals, signing keys and tokens,
//! served compatibly with the Microsoft identity platform's v2 endpoints (OIDC discovery, JWKS,
//! the token endpoint) as far as MSAL, the az CLI and azure-identity need.
//!
//! `Identity` is the service: it signs tokens with keys kept in the store (so every replica signs
//! and verifies alike) and verifies them for the ARM layer. `routes` is its HTTP face.

pub mod authorize;
pub mod client;
pub mod device;
pub mod directory;
pub mod error;
pub mod graph;
pub mod jwt;
pub mod kek;
pub mod limiter;
pub mod pages;
pub mod routes;
pub mod secret;
pub mod signin;
pub mod telemetry;
pub mod time;
pub mod token;
pub mod trace;

use std::sync::{Arc, RwLock};

use store::error::StoreError;
use store::identity::PrivateKey;
use store::{Store, Timestamp};

use crate::jwt::{SigningKey, TokenError, Verifier};
use crate::kek::Kek;

/// Where the current time comes from; tests pass a fixed clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The az CLI's client id, also azure-identity's default for user flows. It exists in every tenant.
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/// Azure PowerShell's client id. It exists in every tenant.
pub const AZURE_POWERSHELL_CLIENT_ID: &str = "1950a258-227b-4e31-a9cf-717495945fc2";
/// The Azure portal's client id, which crosspool's own portal signs in as. It exists in every
/// tenant; its one redirect URI is `{origin}/portal/callback`.
pub const PORTAL_CLIENT_ID: &str = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c";
/// The path of the portal's redirect URI.
pub const PORTAL_CALLBACK_PATH: &str = "/portal/callback";

/// How long access and id tokens live.
pub const TOKEN_LIFETIME_SECONDS: i64 = 3600;

/// How old a replica's copy of the signing keys may be before it signs: a key added by another
/// replica or by `crosspool admin keys rotate` signs everywhere within this time.
pub const KEY_RELOAD_MS: i64 = 60 * 1000;

/// The identity service.
pub struct Identity {
    store: Store,
    // The public origin, e.g. `https://127.0.0.1:8443`, without a trailing slash.
    origin: String,
    clock: Arc<dyn Clock>,
    kek: Kek,
    keys: RwLock<Keys>,
    limiter: limiter::FailureLimiter,
    hashing: limiter::HashingGate,
    /// Device codes asked for per client address.
    device_code_rate: limiter::RequestRate,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("origin", &self.origin).finish_non_exhaustive()
    }
}

struct Keys {
    signer: Arc<SigningKey>,
    verifier: Verifier,
    loaded_at: Timestamp,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid} in the store cannot be read: {reason}")]
    BadKey { kid: String, reason: String },
}

impl From<tokio::task::JoinError> for StartError {
    fn from(_: tokio::task::JoinError) -> StartError {
        StartError::Store(StoreError::WorkerStopped)
    }
}

impl Identity {
    /// Starts the service: loads the signing keys, creating the first one if the store has none
    /// and sealing with `kek` any key an older version stored in clear.
    pub async fn start(
        store: Store,
        origin: &str,
        clock: Arc<dyn Clock>,
        kek: Kek,
    ) -> Result<Identity, StartError> {
        let now = clock.now();
        let has_active_key = store
            .read(move |tx| {
                Ok::<_, StoreError>(tx.signing_keys()?.iter().any(|key| key.retire_at.is_none()))
            })
            .await?;
        if !has_active_key {
            let sealing = kek.clone();
            let record = tokio::task::spawn_blocking(move || {
                jwt::generate_key(&mut rand::rngs::OsRng, now, &sealing)
            })
            .await?;
            // Another replica may have created one meanwhile; then this one is not needed.
            store
                .write(move |tx| {
                    if !tx.signing_keys()?.iter().any(|key| key.retire_at.is_none()) {
                        tx.signing_key_insert(&record)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .await?;
        }
        // A key an older version stored in clear may linger in the database's free pages and in
        // old backups even once sealed: it is retired, and a key sealed from birth signs.
        if seal_plain_keys(&store, &kek).await? {
            rotate_keys(&store, &kek, now).await?;
        }
        let keys = load_keys(&store, &kek, now).await?;
        Ok(Identity {
            store,
            origin: origin.trim_end_matches('/').to_owned(),
            clock,
            kek,
            keys: RwLock::new(keys),
            limiter: limiter::FailureLimiter::default(),
            hashing: limiter::HashingGate::for_this_machine(),
            device_code_rate: limiter::RequestRate::new(
                limiter::MAX_DEVICE_CODES_PER_MINUTE,
                60 * 1000,
            ),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The public origin, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The host of the public origin, e.g. `127.0.0.1`, as discovery names the cloud.
    pub fn host(&self) -> String {
        url::Url::parse(&self.origin)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".to_owned())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The issuer of a tenant's tokens, as its discovery document says.
    pub fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}/v2.0", self.origin)
    }

    /// The JWKS document, with the keys as the store has them now (a key rotated by another
    /// replica or `crosspool admin keys rotate` is published at once).
    pub async fn jwks(&self) -> serde_json::Value {
        if let Ok(keys) = load_keys(&self.store, &self.kek, self.now()).await {
            *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
        }
        let keys = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let jwks: Vec<serde_json::Value> =
            keys.verifier.published(self.now()).iter().map(|key| key.jwk()).collect();
        serde_json::json!({ "keys": jwks })
    }

    fn signer(&self) -> Arc<SigningKey> {
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).signer.clone()
    }

    /// Reloads the signing keys if this replica's copy is older than `KEY_RELOAD_MS`, so a key
    /// rotated elsewhere signs here soon after. A failed reload keeps the keys it has.
    pub async fn reload_keys_if_stale(&self) {
        let now = self.now();
        let loaded_at = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).loaded_at;
        if now.0 - loaded_at.0 < KEY_RELOAD_MS {
            return;
        }
        if let Ok(keys) = load_keys(&self.store, &self.kek, now).await {
            *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
        }
    }

    /// Verifies a token's signature, lifetime and issuer (which must be this server's issuer for
    /// the token's tenant), not its audience. A key another replica created after this one loaded
    /// its keys is picked up from the store.
    pub async fn verify(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
        let claims = self.verify_signature(token).await?;
        let claim =
            |name: &str| claims.get(name).and_then(serde_json::Value::as_str).unwrap_or_default();
        let tenant_id = claim("tid");
        if tenant_id.is_empty() {
            return Err(TokenError::MissingClaim { claim: "tid" });
        }
        if claim("iss") != self.issuer(tenant_id) {
            return Err(TokenError::WrongIssuer { iss: claim("iss").to_owned() });
        }
        Ok(claims)
    }

    async fn verify_signature(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
        let now = self.now();
        let first = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .verifier
            .verify(token, now);
        match first {
            Err(TokenError::UnknownKey { .. }) => {
                if let Ok(keys) = load_keys(&self.store, &self.kek, now).await {
                    *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
                }
                self.keys
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .verifier
                    .verify(token, now)
            }
            other => other,
        }
    }

    /// Replaces the signing key (`crosspool admin keys rotate` does the same on the store).
    pub async fn rotate_keys(&self) -> Result<String, StartError> {
        let kid = rotate_keys(&self.store, &self.kek, self.now()).await?;
        let keys = load_keys(&self.store, &self.kek, self.now()).await?;
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
        Ok(kid)
    }
}

/// Adds a new signing key sealed with `kek` and makes it the one that signs; returns its kid.
/// The old key keeps verifying (and stays in JWKS) until every token it signed has expired,
/// counting the time other replicas may still sign with it (`KEY_RELOAD_MS`).
pub async fn rotate_keys(store: &Store, kek: &Kek, now: Timestamp) -> Result<String, StartError> {
    let sealing = kek.clone();
    let record = tokio::task::spawn_blocking(move || {
        jwt::generate_key(&mut rand::rngs::OsRng, now, &sealing)
    })
    .await?;
    let kid = record.kid.clone();
    let retire_at = Timestamp(
        now.0 + KEY_RELOAD_MS + (TOKEN_LIFETIME_SECONDS + jwt::CLOCK_SKEW_SECONDS) * 1000,
    );
    store
        .write(move |tx| {
            for key in tx.signing_keys()?.into_iter().filter(|key| key.retire_at.is_none()) {
                tx.signing_key_retire(&key.kid, retire_at)?;
            }
            tx.signing_key_insert(&record)
        })
        .await?;
    Ok(kid)
}

/// Seals, with `kek`, every signing key stored in clear; returns whether there was any.
async fn seal_plain_keys(store: &Store, kek: &Kek) -> Result<bool, StartError> {
    let records = store.read(|tx| tx.signing_keys()).await?;
    let mut sealed = Vec::new();
    for record in records {
        if let PrivateKey::Plain(der) = &record.private_key {
            sealed.push((record.kid.clone(), kek.seal(der, &record.kid)));
        }
    }
    if sealed.is_empty() {
        return Ok(false);
    }
    store
        .write(move |tx| {
            for (kid, sealed_key) in &sealed {
                tx.signing_key_seal(kid, sealed_key)?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(true)
}

async fn load_keys(store: &Store, kek: &Kek, now: Timestamp) -> Result<Keys, StartError> {
    let records = store.read(|tx| tx.signing_keys()).await?;
    let mut signer = None;
    let mut public_keys = Vec::with_capacity(records.len());
    for record in &records {
        let key = SigningKey::from_record(record, kek)
            .map_err(|reason| StartError::BadKey { kid: record.kid.clone(), reason })?;
        public_keys.push(key.public().clone());
        // Records come newest first: the newest active key signs.
        if record.retire_at.is_none() && signer.is_none() {
            signer = Some(Arc::new(key));
        }
    }
    let signer = signer.ok_or_else(|| StartError::BadKey {
        kid: "(none)".to_owned(),
        reason: "no active signing key".to_owned(),
    })?;
    Ok(Keys { signer, verifier: Verifier::new(public_keys), loaded_at: now })
}
