//! Directory data: tenants, users, app registrations with their secrets, service principals, and
//! the signing keys every replica shares. The store keeps them; `identity` decides who may do what.

use crate::db::{Row, Value};
use crate::error::StoreError;
use crate::{ReadTx, Timestamp, WriteTx};

/// A tenant (directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// A GUID.
    pub id: String,
    /// A unique domain name such as `contoso-a.example`.
    pub domain: String,
    pub display_name: String,
}

/// A user of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub tenant_id: String,
    /// User principal name, unique across tenants (compared case-insensitively).
    pub upn: String,
    pub display_name: String,
    /// An Argon2id PHC string; never the password.
    pub password_hash: String,
    /// Tenant administrators may manage every app registration of the tenant.
    pub is_admin: bool,
    /// A disabled user cannot sign in, refresh, or use a token issued before.
    pub account_enabled: bool,
    /// Tokens issued before this second (since the epoch) are refused: set when the password is
    /// reset or the user's sessions are revoked.
    pub tokens_valid_after: i64,
}

/// An app registration in its home tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    /// The object id.
    pub id: String,
    /// The application (client) id.
    pub app_id: String,
    pub tenant_id: String,
    pub display_name: String,
    /// `AzureADMyOrg` or `AzureADMultipleOrgs`.
    pub sign_in_audience: String,
    /// The object id of the user who created it, if a user did.
    pub owner_id: Option<String>,
    pub redirect_uris: Vec<String>,
    pub created_at: Timestamp,
}

/// A client secret of an application. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationPassword {
    pub key_id: String,
    pub application_id: String,
    pub display_name: Option<String>,
    /// The first three characters of the secret, as Graph shows them.
    pub hint: String,
    pub secret_sha256: Vec<u8>,
    pub start_at: Timestamp,
    pub end_at: Timestamp,
}

/// An application's service principal in one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePrincipalRecord {
    /// The object id, which role assignments name.
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub display_name: String,
}

/// A token signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_key: PrivateKey,
    pub created_at: Timestamp,
    /// When it stops verifying tokens; `None` while it is the active key.
    pub retire_at: Option<Timestamp>,
}

/// A signing key's private half as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateKey {
    /// PKCS#8 DER in clear, as versions before schema 9 wrote it; sealed at the next start.
    Plain(Vec<u8>),
    /// PKCS#8 DER sealed with the key-encryption key (`identity::kek`).
    Sealed(Vec<u8>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKey::Plain(_) => f.write_str("Plain(..)"),
            PrivateKey::Sealed(bytes) => write!(f, "Sealed({} bytes)", bytes.len()),
        }
    }
}

/// Whether a principal may still use the tokens it holds, as ARM checks on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalStatus {
    pub account_enabled: bool,
    /// Tokens issued before this second are refused.
    pub tokens_valid_after: i64,
}

/// An issued, not yet redeemed authorization code. The code itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_sha256: Vec<u8>,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: String,
    pub tenant_id: String,
    pub scope: String,
    /// The PKCE S256 challenge, if the client sent one.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub expires_at: Timestamp,
}

/// A device-code sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_code_sha256: Vec<u8>,
    /// What the person types on the device-login page.
    pub user_code: String,
    pub client_id: String,
    /// The tenant segment of the `/devicecode` URL.
    pub tenant_segment: String,
    pub scope: String,
    /// Set when a person has signed in for it.
    pub user_id: Option<String>,
    pub expires_at: Timestamp,
}

const DEVICE_CODE: &str = "SELECT device_code_sha256, user_code, client_id, tenant_segment, scope, user_id, expires_at FROM device_codes";

fn device_code_from(row: &Row) -> DeviceCode {
    DeviceCode {
        device_code_sha256: row.blob(0).to_vec(),
        user_code: row.text(1).to_owned(),
        client_id: row.text(2).to_owned(),
        tenant_segment: row.text(3).to_owned(),
        scope: row.text(4).to_owned(),
        user_id: row.opt_text(5).map(str::to_owned),
        expires_at: Timestamp(row.int(6)),
    }
}

fn tenant_from(row: &Row) -> TenantRecord {
    TenantRecord {
        id: row.text(0).to_owned(),
        domain: row.text(1).to_owned(),
        display_name: row.text(2).to_owned(),
    }
}

fn user_from(row: &Row) -> UserRecord {
    UserRecord {
        id: row.text(0).to_owned(),
        tenant_id: row.text(1).to_owned(),
        upn: row.text(2).to_owned(),
        display_name: row.text(3).to_owned(),
        password_hash: row.text(4).to_owned(),
        is_admin: row.int(5) != 0,
        account_enabled: row.int(6) != 0,
        tokens_valid_after: row.int(7),
    }
}

fn application_from(row: &Row) -> ApplicationRecord {
    ApplicationRecord {
        id: row.text(0).to_owned(),
        app_id: row.text(1).to_owned(),
        tenant_id: row.text(2).to_owned(),
        display_name: row.text(3).to_owned(),
        sign_in_audience: row.text(4).to_owned(),
        owner_id: row.opt_text(5).map(str::to_owned),
        redirect_uris: row
            .text(6)
            .split('\n')
            .filter(|uri| !uri.is_empty())
            .map(str::to_owned)
            .collect(),
        created_at: Timestamp(row.int(7)),
    }
}

fn service_principal_from(row: &Row) -> ServicePrincipalRecord {
    ServicePrincipalRecord {
        id: row.text(0).to_owned(),
        tenant_id: row.text(1).to_owned(),
        app_id: row.text(2).to_owned(),
        display_name: row.text(3).to_owned(),
    }
}

const TENANT: &str = "SELECT id, domain, display_name FROM tenants";
const USER: &str = "SELECT id, tenant_id, upn, display_name, password_hash, is_admin, account_enabled, tokens_valid_after FROM users";
const APPLICATION: &str = "SELECT id, app_id, tenant_id, display_name, sign_in_audience, owner_id, redirect_uris, created_at FROM applications";
const SERVICE_PRINCIPAL: &str =
    "SELECT id, tenant_id, app_id, display_name FROM service_principals";

impl ReadTx<'_> {
    /// The tenant whose id or domain is `id_or_domain` (case-insensitive).
    pub fn tenant_find(&mut self, id_or_domain: &str) -> Result<Option<TenantRecord>, StoreError> {
        let key = id_or_domain.to_ascii_lowercase();
        let row =
            self.tx.query_opt(&format!("{TENANT} WHERE id = $1 OR domain = $1"), &[key.into()])?;
        Ok(row.as_ref().map(tenant_from))
    }

    pub fn tenants_list(&mut self) -> Result<Vec<TenantRecord>, StoreError> {
        Ok(self
            .tx
            .query(&format!("{TENANT} ORDER BY domain"), &[])?
            .iter()
            .map(tenant_from)
            .collect())
    }

    /// The user with this UPN (case-insensitive).
    pub fn user_by_upn(&mut self, upn: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = self
            .tx
            .query_opt(&format!("{USER} WHERE upn = $1"), &[upn.to_ascii_lowercase().into()])?;
        Ok(row.as_ref().map(user_from))
    }

    pub fn user_get(&mut self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = self.tx.query_opt(&format!("{USER} WHERE id = $1"), &[id.into()])?;
        Ok(row.as_ref().map(user_from))
    }

    pub fn users_of_tenant(&mut self, tenant_id: &str) -> Result<Vec<UserRecord>, StoreError> {
        let rows = self
            .tx
            .query(&format!("{USER} WHERE tenant_id = $1 ORDER BY upn"), &[tenant_id.into()])?;
        Ok(rows.iter().map(user_from).collect())
    }

    /// The application with this application (client) id, in whichever tenant it lives.
    pub fn application_by_app_id(
        &mut self,
        app_id: &str,
    ) -> Result<Option<ApplicationRecord>, StoreError> {
        let key = app_id.to_ascii_lowercase();
        let row = self.tx.query_opt(&format!("{APPLICATION} WHERE app_id = $1"), &[key.into()])?;
        Ok(row.as_ref().map(application_from))
    }

    /// The application with this object id.
    pub fn application_get(&mut self, id: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{APPLICATION} WHERE id = $1"),
            &[id.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(application_from))
    }

    pub fn applications_of_tenant(
        &mut self,
        tenant_id: &str,
    ) -> Result<Vec<ApplicationRecord>, StoreError> {
        let rows = self.tx.query(
            &format!("{APPLICATION} WHERE tenant_id = $1 ORDER BY created_at, id"),
            &[tenant_id.into()],
        )?;
        Ok(rows.iter().map(application_from).collect())
    }

    /// An application's secrets (hashes only), oldest first.
    pub fn application_passwords(
        &mut self,
        application_id: &str,
    ) -> Result<Vec<ApplicationPassword>, StoreError> {
        let rows = self.tx.query(
            "SELECT key_id, application_id, display_name, hint, secret_sha256, start_at, end_at \
             FROM application_passwords WHERE application_id = $1 ORDER BY start_at, key_id",
            &[application_id.into()],
        )?;
        Ok(rows
            .iter()
            .map(|row| ApplicationPassword {
                key_id: row.text(0).to_owned(),
                application_id: row.text(1).to_owned(),
                display_name: row.opt_text(2).map(str::to_owned),
                hint: row.text(3).to_owned(),
                secret_sha256: row.blob(4).to_vec(),
                start_at: Timestamp(row.int(5)),
                end_at: Timestamp(row.int(6)),
            })
            .collect())
    }

    /// The service principal of `app_id` in `tenant_id`, if it has one there.
    pub fn service_principal_find(
        &mut self,
        tenant_id: &str,
        app_id: &str,
    ) -> Result<Option<ServicePrincipalRecord>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{SERVICE_PRINCIPAL} WHERE tenant_id = $1 AND app_id = $2"),
            &[tenant_id.into(), app_id.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(service_principal_from))
    }

    pub fn service_principal_get(
        &mut self,
        id: &str,
    ) -> Result<Option<ServicePrincipalRecord>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{SERVICE_PRINCIPAL} WHERE id = $1"),
            &[id.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(service_principal_from))
    }

    pub fn service_principals_of_tenant(
        &mut self,
        tenant_id: &str,
    ) -> Result<Vec<ServicePrincipalRecord>, StoreError> {
        let rows = self.tx.query(
            &format!("{SERVICE_PRINCIPAL} WHERE tenant_id = $1 ORDER BY created_at, id"),
            &[tenant_id.into()],
        )?;
        Ok(rows.iter().map(service_principal_from).collect())
    }

    /// The device-code sign-in with this device code (by hash).
    pub fn device_code_get(
        &mut self,
        device_code_sha256: &[u8],
    ) -> Result<Option<DeviceCode>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{DEVICE_CODE} WHERE device_code_sha256 = $1"),
            &[device_code_sha256.to_vec().into()],
        )?;
        Ok(row.as_ref().map(device_code_from))
    }

    /// The device-code sign-in with this user code.
    pub fn device_code_by_user_code(
        &mut self,
        user_code: &str,
    ) -> Result<Option<DeviceCode>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{DEVICE_CODE} WHERE user_code = $1"),
            &[user_code.to_ascii_uppercase().into()],
        )?;
        Ok(row.as_ref().map(device_code_from))
    }

    /// Every signing key, newest first.
    pub fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = self
            .tx
            .query("SELECT kid, pkcs8_der, created_at, retire_at, sealed_key FROM signing_keys ORDER BY created_at DESC, kid", &[])?;
        Ok(rows
            .iter()
            .map(|row| SigningKeyRecord {
                kid: row.text(0).to_owned(),
                private_key: match row.opt_blob(4) {
                    Some(sealed) => PrivateKey::Sealed(sealed.to_vec()),
                    None => PrivateKey::Plain(row.blob(1).to_vec()),
                },
                created_at: Timestamp(row.int(2)),
                retire_at: row.opt_int(3).map(Timestamp),
            })
            .collect())
    }

    /// Whether `principal_id` (a user's object id) or an administrator for everyone consented to
    /// `app_id` in `tenant_id`.
    pub fn consent_exists(
        &mut self,
        tenant_id: &str,
        app_id: &str,
        principal_id: &str,
    ) -> Result<bool, StoreError> {
        let row = self.tx.query_opt(
            "SELECT 1 FROM consents WHERE tenant_id = $1 AND app_id = $2 AND principal_id IN ('', $3)",
            &[tenant_id.into(), app_id.to_ascii_lowercase().into(), principal_id.into()],
        )?;
        Ok(row.is_some())
    }

    /// Whether the user or service principal with this object id exists and may use its tokens,
    /// through the cache of authorization reads: ARM asks on every request.
    pub fn principal_status(
        &mut self,
        object_id: &str,
    ) -> Result<Option<PrincipalStatus>, StoreError> {
        let id = object_id.to_ascii_lowercase();
        self.cached(
            || format!("principal_status {id:?}"),
            |tx| {
                let row = tx.tx.query_opt(
                    "SELECT account_enabled, tokens_valid_after FROM users WHERE id = $1 \
                     UNION ALL SELECT 1, 0 FROM service_principals WHERE id = $1",
                    &[id.as_str().into()],
                )?;
                Ok(row.map(|row| PrincipalStatus {
                    account_enabled: row.int(0) != 0,
                    tokens_valid_after: row.int(1),
                }))
            },
        )
    }
}

impl WriteTx<'_> {
    /// Creates a tenant; its id and domain are stored in lower case.
    pub fn tenant_create(
        &mut self,
        tenant: &TenantRecord,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if self.tenant_find(&tenant.id)?.is_some() || self.tenant_find(&tenant.domain)?.is_some() {
            return Err(StoreError::AlreadyExists { what: "tenant", id: tenant.domain.clone() });
        }
        self.tx.execute(
            "INSERT INTO tenants (id, domain, display_name, created_at) VALUES ($1, $2, $3, $4)",
            &[
                tenant.id.to_ascii_lowercase().into(),
                tenant.domain.to_ascii_lowercase().into(),
                tenant.display_name.as_str().into(),
                Value::Int(now.0),
            ],
        )?;
        Ok(())
    }

    /// Creates a user; the UPN is stored in lower case.
    pub fn user_create(&mut self, user: &UserRecord, now: Timestamp) -> Result<(), StoreError> {
        if self.user_by_upn(&user.upn)?.is_some() {
            return Err(StoreError::AlreadyExists { what: "user", id: user.upn.clone() });
        }
        self.tx.execute(
            "INSERT INTO users (id, tenant_id, upn, display_name, password_hash, is_admin, created_at, account_enabled, tokens_valid_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                user.id.as_str().into(),
                user.tenant_id.as_str().into(),
                user.upn.to_ascii_lowercase().into(),
                user.display_name.as_str().into(),
                user.password_hash.as_str().into(),
                Value::Int(i64::from(user.is_admin)),
                Value::Int(now.0),
                Value::Int(i64::from(user.account_enabled)),
                Value::Int(user.tokens_valid_after),
            ],
        )?;
        Ok(())
    }

    /// Enables or disables a user.
    pub fn user_set_enabled(&mut self, id: &str, enabled: bool) -> Result<(), StoreError> {
        let n_updated = self.tx.execute(
            "UPDATE users SET account_enabled = $1 WHERE id = $2",
            &[Value::Int(i64::from(enabled)), id.into()],
        )?;
        if n_updated == 0 {
            return Err(StoreError::NotFound { what: "user", id: id.to_owned() });
        }
        Ok(())
    }

    /// Refuses every token the user holds: tokens issued before `valid_after` (seconds), and
    /// any issued since the last revocation (the mark always moves forward, by at least a
    /// second, because tokens issued after a revocation in the same second carry its mark);
    /// with a new password hash, sets the password too.
    pub fn user_revoke_tokens(
        &mut self,
        id: &str,
        valid_after: i64,
        new_password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        const NEXT: &str =
            "CASE WHEN tokens_valid_after + 1 > $1 THEN tokens_valid_after + 1 ELSE $1 END";
        let n_updated = match new_password_hash {
            Some(hash) => self.tx.execute(
                &format!(
                    "UPDATE users SET tokens_valid_after = {NEXT}, password_hash = $2 WHERE id = $3"
                ),
                &[Value::Int(valid_after), hash.into(), id.into()],
            )?,
            None => self.tx.execute(
                &format!("UPDATE users SET tokens_valid_after = {NEXT} WHERE id = $2"),
                &[Value::Int(valid_after), id.into()],
            )?,
        };
        if n_updated == 0 {
            return Err(StoreError::NotFound { what: "user", id: id.to_owned() });
        }
        Ok(())
    }

    /// Deletes a user with the consents it gave and its pending codes. Role assignments naming
    /// it stay, as in Azure, and no longer match anyone.
    pub fn user_delete(&mut self, id: &str) -> Result<(), StoreError> {
        self.tx.execute("DELETE FROM consents WHERE principal_id = $1", &[id.into()])?;
        self.tx.execute("DELETE FROM authorization_codes WHERE user_id = $1", &[id.into()])?;
        self.tx.execute("DELETE FROM device_codes WHERE user_id = $1", &[id.into()])?;
        if self.tx.execute("DELETE FROM users WHERE id = $1", &[id.into()])? == 0 {
            return Err(StoreError::NotFound { what: "user", id: id.to_owned() });
        }
        Ok(())
    }

    /// Records consent to `app_id` in `tenant_id`: for one user, or for everyone with
    /// `principal_id` `""`. Consenting twice changes nothing.
    pub fn consent_grant(
        &mut self,
        tenant_id: &str,
        app_id: &str,
        principal_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO consents (tenant_id, app_id, principal_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, app_id, principal_id) DO NOTHING",
            &[
                tenant_id.into(),
                app_id.to_ascii_lowercase().into(),
                principal_id.into(),
                Value::Int(now.0),
            ],
        )?;
        Ok(())
    }

    /// Deletes the device and authorization codes that expired before `now`.
    pub fn codes_delete_expired(&mut self, now: Timestamp) -> Result<(), StoreError> {
        self.tx.execute("DELETE FROM device_codes WHERE expires_at <= $1", &[Value::Int(now.0)])?;
        self.tx.execute(
            "DELETE FROM authorization_codes WHERE expires_at <= $1",
            &[Value::Int(now.0)],
        )?;
        Ok(())
    }

    /// Replaces a key's clear private half with its sealed form.
    pub fn signing_key_seal(&mut self, kid: &str, sealed: &[u8]) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE signing_keys SET sealed_key = $1, pkcs8_der = $2 WHERE kid = $3",
            &[sealed.to_vec().into(), Vec::<u8>::new().into(), kid.into()],
        )?;
        Ok(())
    }

    /// Creates an app registration.
    pub fn application_create(
        &mut self,
        application: &ApplicationRecord,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO applications (id, app_id, tenant_id, display_name, sign_in_audience, owner_id, redirect_uris, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                application.id.to_ascii_lowercase().into(),
                application.app_id.to_ascii_lowercase().into(),
                application.tenant_id.as_str().into(),
                application.display_name.as_str().into(),
                application.sign_in_audience.as_str().into(),
                application.owner_id.as_deref().into(),
                application.redirect_uris.join("\n").into(),
                Value::Int(application.created_at.0),
            ],
        )?;
        Ok(())
    }

    /// Rewrites an app registration's changeable fields.
    pub fn application_update(
        &mut self,
        application: &ApplicationRecord,
    ) -> Result<(), StoreError> {
        let n_updated = self.tx.execute(
            "UPDATE applications SET display_name = $1, sign_in_audience = $2, redirect_uris = $3 WHERE id = $4",
            &[
                application.display_name.as_str().into(),
                application.sign_in_audience.as_str().into(),
                application.redirect_uris.join("\n").into(),
                application.id.to_ascii_lowercase().into(),
            ],
        )?;
        if n_updated == 0 {
            return Err(StoreError::NotFound { what: "application", id: application.id.clone() });
        }
        Ok(())
    }

    /// Deletes an app registration with its secrets (its service principals stay, as in Entra,
    /// but can no longer get tokens).
    pub fn application_delete(&mut self, id: &str) -> Result<(), StoreError> {
        let id = id.to_ascii_lowercase();
        self.tx.execute(
            "DELETE FROM application_passwords WHERE application_id = $1",
            &[id.as_str().into()],
        )?;
        if self.tx.execute("DELETE FROM applications WHERE id = $1", &[id.as_str().into()])? == 0 {
            return Err(StoreError::NotFound { what: "application", id });
        }
        Ok(())
    }

    pub fn application_password_add(
        &mut self,
        password: &ApplicationPassword,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO application_passwords (key_id, application_id, display_name, hint, secret_sha256, start_at, end_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                password.key_id.to_ascii_lowercase().into(),
                password.application_id.to_ascii_lowercase().into(),
                password.display_name.as_deref().into(),
                password.hint.as_str().into(),
                password.secret_sha256.clone().into(),
                Value::Int(password.start_at.0),
                Value::Int(password.end_at.0),
            ],
        )?;
        Ok(())
    }

    /// Removes one secret; returns whether it existed.
    pub fn application_password_remove(
        &mut self,
        application_id: &str,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let n_removed = self.tx.execute(
            "DELETE FROM application_passwords WHERE application_id = $1 AND key_id = $2",
            &[application_id.to_ascii_lowercase().into(), key_id.to_ascii_lowercase().into()],
        )?;
        Ok(n_removed > 0)
    }

    /// Creates a service principal; there is at most one per (tenant, app).
    pub fn service_principal_create(
        &mut self,
        service_principal: &ServicePrincipalRecord,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if self
            .service_principal_find(&service_principal.tenant_id, &service_principal.app_id)?
            .is_some()
        {
            return Err(StoreError::AlreadyExists {
                what: "service principal for app",
                id: service_principal.app_id.clone(),
            });
        }
        self.tx.execute(
            "INSERT INTO service_principals (id, tenant_id, app_id, display_name, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                service_principal.id.to_ascii_lowercase().into(),
                service_principal.tenant_id.as_str().into(),
                service_principal.app_id.to_ascii_lowercase().into(),
                service_principal.display_name.as_str().into(),
                Value::Int(now.0),
            ],
        )?;
        Ok(())
    }

    /// Deletes a service principal with the consents given to its app in its tenant.
    pub fn service_principal_delete(&mut self, id: &str) -> Result<(), StoreError> {
        let id = id.to_ascii_lowercase();
        let Some(service_principal) = self.service_principal_get(&id)? else {
            return Err(StoreError::NotFound { what: "service principal", id });
        };
        self.tx.execute(
            "DELETE FROM consents WHERE tenant_id = $1 AND app_id = $2",
            &[
                service_principal.tenant_id.as_str().into(),
                service_principal.app_id.as_str().into(),
            ],
        )?;
        self.tx.execute("DELETE FROM service_principals WHERE id = $1", &[id.as_str().into()])?;
        Ok(())
    }

    pub fn signing_key_insert(&mut self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let (plain, sealed) = match &key.private_key {
            PrivateKey::Plain(der) => (der.clone(), None),
            PrivateKey::Sealed(sealed) => (Vec::new(), Some(sealed.clone())),
        };
        self.tx.execute(
            "INSERT INTO signing_keys (kid, pkcs8_der, created_at, retire_at, sealed_key) VALUES ($1, $2, $3, $4, $5)",
            &[
                key.kid.as_str().into(),
                plain.into(),
                Value::Int(key.created_at.0),
                key.retire_at.map(|at| at.0).into(),
                sealed.into(),
            ],
        )?;
        Ok(())
    }

    pub fn authorization_code_insert(
        &mut self,
        code: &AuthorizationCode,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO authorization_codes (code_sha256, client_id, redirect_uri, user_id, tenant_id, scope, code_challenge, nonce, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                code.code_sha256.clone().into(),
                code.client_id.as_str().into(),
                code.redirect_uri.as_str().into(),
                code.user_id.as_str().into(),
                code.tenant_id.as_str().into(),
                code.scope.as_str().into(),
                code.code_challenge.as_deref().into(),
                code.nonce.as_deref().into(),
                Value::Int(code.expires_at.0),
            ],
        )?;
        Ok(())
    }

    /// Redeems a code: removes it and returns it, so a second redemption finds nothing.
    pub fn authorization_code_take(
        &mut self,
        code_sha256: &[u8],
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = self.tx.query_opt(
            "DELETE FROM authorization_codes WHERE code_sha256 = $1 \
             RETURNING code_sha256, client_id, redirect_uri, user_id, tenant_id, scope, code_challenge, nonce, expires_at",
            &[code_sha256.to_vec().into()],
        )?;
        Ok(row.map(|row| AuthorizationCode {
            code_sha256: row.blob(0).to_vec(),
            client_id: row.text(1).to_owned(),
            redirect_uri: row.text(2).to_owned(),
            user_id: row.text(3).to_owned(),
            tenant_id: row.text(4).to_owned(),
            scope: row.text(5).to_owned(),
            code_challenge: row.opt_text(6).map(str::to_owned),
            nonce: row.opt_text(7).map(str::to_owned),
            expires_at: Timestamp(row.int(8)),
        }))
    }

    pub fn device_code_insert(&mut self, code: &DeviceCode) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO device_codes (device_code_sha256, user_code, client_id, tenant_segment, scope, user_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                code.device_code_sha256.clone().into(),
                code.user_code.to_ascii_uppercase().into(),
                code.client_id.as_str().into(),
                code.tenant_segment.as_str().into(),
                code.scope.as_str().into(),
                code.user_id.as_deref().into(),
                Value::Int(code.expires_at.0),
            ],
        )?;
        Ok(())
    }

    /// Records who signed in for a user code; returns whether a pending one was found.
    pub fn device_code_approve(
        &mut self,
        user_code: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let n_updated = self.tx.execute(
            "UPDATE device_codes SET user_id = $1 WHERE user_code = $2 AND user_id IS NULL",
            &[user_id.into(), user_code.to_ascii_uppercase().into()],
        )?;
        Ok(n_updated > 0)
    }

    /// Removes a device code once its tokens are issued.
    pub fn device_code_delete(&mut self, device_code_sha256: &[u8]) -> Result<bool, StoreError> {
        let n_deleted = self.tx.execute(
            "DELETE FROM device_codes WHERE device_code_sha256 = $1",
            &[device_code_sha256.to_vec().into()],
        )?;
        Ok(n_deleted > 0)
    }

    /// Marks a key as retiring: it verifies until `retire_at` and no longer signs.
    pub fn signing_key_retire(
        &mut self,
        kid: &str,
        retire_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE signing_keys SET retire_at = $1 WHERE kid = $2",
            &[Value::Int(retire_at.0), kid.into()],
        )?;
        Ok(())
    }
}
