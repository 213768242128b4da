//! Directory operations with their invariants, shared by Graph and `crosspool admin`: creating,
//! changing and deleting tenants, users, app registrations, client secrets and service
//! principals, and the levers against a compromised account (disable, delete, password reset,
//! revoking every token). Who may call them is the caller's business (Graph checks admins and
//! owners; the command line is the operator). Every change is in the store at once, so every
//! replica honours it on its next request.

use store::error::StoreError;
use store::identity::{
    ApplicationPassword, ApplicationRecord, ServicePrincipalRecord, TenantRecord, UserRecord,
};
use store::{Store, Timestamp};

use crate::client::check_registration;
use crate::secret::{client_secret_hash, new_client_secret, password_hash};

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("tenant {0:?} does not exist")]
    UnknownTenant(String),
    #[error("the appId '{0}' does not reference a valid application object")]
    UnknownApplication(String),
    #[error(
        "the application '{app_id}' is registered in another tenant with signInAudience {sign_in_audience}; only a multi-tenant application (AzureADMultipleOrgs) can have a service principal outside its home tenant"
    )]
    NotMultiTenant { app_id: String, sign_in_audience: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DirectoryError {
    fn from(error: StoreError) -> DirectoryError {
        match error {
            StoreError::AlreadyExists { what, id } => DirectoryError::AlreadyExists { what, id },
            StoreError::NotFound { what, id } => DirectoryError::NotFound { what, id },
            other => DirectoryError::Store(other),
        }
    }
}

/// The sign-in audiences an application may have.
pub const SIGN_IN_AUDIENCES: [&str; 2] = ["AzureADMyOrg", "AzureADMultipleOrgs"];

/// Finds a tenant by id or domain.
pub async fn tenant(store: &Store, id_or_domain: &str) -> Result<TenantRecord, DirectoryError> {
    let key = id_or_domain.to_owned();
    store
        .read(move |tx| tx.tenant_find(&key))
        .await?
        .ok_or_else(|| DirectoryError::UnknownTenant(id_or_domain.to_owned()))
}

/// Creates a tenant with a new GUID.
pub async fn create_tenant(
    store: &Store,
    domain: &str,
    display_name: &str,
    now: Timestamp,
) -> Result<TenantRecord, DirectoryError> {
    let valid = !domain.is_empty()
        && domain.contains('.')
        && domain.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
    if !valid {
        return Err(DirectoryError::Invalid(format!(
            "{domain:?} is not a domain name such as contoso.example"
        )));
    }
    let tenant = TenantRecord {
        id: uuid::Uuid::new_v4().to_string(),
        domain: domain.to_ascii_lowercase(),
        display_name: display_name.to_owned(),
    };
    let stored = tenant.clone();
    store.write(move |tx| tx.tenant_create(&stored, now)).await?;
    Ok(tenant)
}

/// Creates a user of a tenant; the password is kept only as an Argon2id hash.
pub async fn create_user(
    store: &Store,
    tenant: &TenantRecord,
    upn: &str,
    display_name: &str,
    password: &str,
    is_admin: bool,
    now: Timestamp,
) -> Result<UserRecord, DirectoryError> {
    let Some((_, domain)) = upn.split_once('@') else {
        return Err(DirectoryError::Invalid(format!(
            "{upn:?} is not a user principal name such as alice@contoso.example"
        )));
    };
    if !domain.eq_ignore_ascii_case(&tenant.domain) {
        return Err(DirectoryError::Invalid(format!(
            "{upn:?} must be in the tenant's domain {}",
            tenant.domain
        )));
    }
    if password.len() < 8 {
        return Err(DirectoryError::Invalid("a password needs at least 8 characters".to_owned()));
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password_hash(&password))
        .await
        .map_err(|_| StoreError::WorkerStopped)?;
    let user = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        upn: upn.to_ascii_lowercase(),
        display_name: display_name.to_owned(),
        password_hash: hash,
        is_admin,
        account_enabled: true,
        tokens_valid_after: 0,
    };
    let stored = user.clone();
    store.write(move |tx| tx.user_create(&stored, now)).await?;
    Ok(user)
}

/// Registers an application in its home tenant (with no service principal, as in Entra).
pub async fn register_application(
    store: &Store,
    tenant: &TenantRecord,
    display_name: &str,
    sign_in_audience: &str,
    owner_id: Option<&str>,
    redirect_uris: Vec<String>,
    now: Timestamp,
) -> Result<ApplicationRecord, DirectoryError> {
    if display_name.trim().is_empty() {
        return Err(DirectoryError::Invalid("an application needs a display name".to_owned()));
    }
    if !SIGN_IN_AUDIENCES.contains(&sign_in_audience) {
        return Err(DirectoryError::Invalid(format!(
            "signInAudience {sign_in_audience:?} is not supported; use AzureADMyOrg or AzureADMultipleOrgs"
        )));
    }
    check_redirect_uris(&redirect_uris)?;
    let application = ApplicationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        display_name: display_name.to_owned(),
        sign_in_audience: sign_in_audience.to_owned(),
        owner_id: owner_id.map(str::to_owned),
        redirect_uris,
        created_at: now,
    };
    let stored = application.clone();
    store.write(move |tx| tx.application_create(&stored)).await?;
    Ok(application)
}

/// Refuses redirect URIs that are not https or loopback http, as Entra does: a `javascript:`,
/// `data:` or plain-http URI would receive codes, or run script where the code is posted.
pub fn check_redirect_uris(uris: &[String]) -> Result<(), DirectoryError> {
    for (at, uri) in uris.iter().enumerate() {
        check_registration(uri).map_err(|reason| {
            DirectoryError::Invalid(format!(
                "web.redirectUris[{at}] {uri:?} is not a valid redirect URI: {reason}"
            ))
        })?;
    }
    Ok(())
}

/// Rewrites an application's changeable fields (display name, audience, redirect URIs).
pub async fn update_application(
    store: &Store,
    application: ApplicationRecord,
) -> Result<(), DirectoryError> {
    check_redirect_uris(&application.redirect_uris)?;
    if !SIGN_IN_AUDIENCES.contains(&application.sign_in_audience.as_str()) {
        return Err(DirectoryError::Invalid(format!(
            "signInAudience {:?} is not supported; use AzureADMyOrg or AzureADMultipleOrgs",
            application.sign_in_audience
        )));
    }
    store.write(move |tx| tx.application_update(&application)).await?;
    Ok(())
}

/// Deletes an app registration with its secrets: no token is issued to it or refreshed for it
/// from then on, in any tenant.
pub async fn delete_application(store: &Store, application_id: &str) -> Result<(), DirectoryError> {
    let id = application_id.to_owned();
    store.write(move |tx| tx.application_delete(&id)).await?;
    Ok(())
}

/// Deletes a service principal with the consents given to its app in its tenant: the app gets
/// no token there from then on, and ARM refuses the tokens it holds.
pub async fn delete_service_principal(store: &Store, id: &str) -> Result<(), DirectoryError> {
    let id = id.to_owned();
    store.write(move |tx| tx.service_principal_delete(&id)).await?;
    Ok(())
}

/// The user with this object id or UPN.
pub async fn user(store: &Store, id_or_upn: &str) -> Result<UserRecord, DirectoryError> {
    let key = id_or_upn.to_owned();
    store
        .read(move |tx| if key.contains('@') { tx.user_by_upn(&key) } else { tx.user_get(&key) })
        .await?
        .ok_or_else(|| DirectoryError::NotFound { what: "user", id: id_or_upn.to_owned() })
}

/// Enables or disables a user. Disabling refuses its sign-ins, refreshes and the tokens it
/// holds at once.
pub async fn set_user_enabled(
    store: &Store,
    user_id: &str,
    enabled: bool,
) -> Result<(), DirectoryError> {
    let id = user_id.to_owned();
    store.write(move |tx| tx.user_set_enabled(&id, enabled)).await?;
    Ok(())
}

/// Deletes a user with its consents and pending codes.
pub async fn delete_user(store: &Store, user_id: &str) -> Result<(), DirectoryError> {
    let id = user_id.to_owned();
    store.write(move |tx| tx.user_delete(&id)).await?;
    Ok(())
}

/// Revokes every token the user holds (Graph's `revokeSignInSessions`): tokens issued up to and
/// including `now`'s second are refused from then on (tokens carry whole seconds; new ones are
/// issued as of the next second, `token::user_tokens`).
pub async fn revoke_user_tokens(
    store: &Store,
    user_id: &str,
    now: Timestamp,
) -> Result<(), DirectoryError> {
    let id = user_id.to_owned();
    store.write(move |tx| tx.user_revoke_tokens(&id, now.0 / 1000 + 1, None)).await?;
    Ok(())
}

/// Sets a new password and revokes every token the user holds.
pub async fn reset_password(
    store: &Store,
    user_id: &str,
    password: &str,
    now: Timestamp,
) -> Result<(), DirectoryError> {
    if password.len() < 8 {
        return Err(DirectoryError::Invalid("a password needs at least 8 characters".to_owned()));
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password_hash(&password))
        .await
        .map_err(|_| StoreError::WorkerStopped)?;
    let id = user_id.to_owned();
    store.write(move |tx| tx.user_revoke_tokens(&id, now.0 / 1000 + 1, Some(&hash))).await?;
    Ok(())
}

/// Adds a client secret to an application; returns it with the secret text, which is not kept.
pub async fn add_password(
    store: &Store,
    application: &ApplicationRecord,
    display_name: Option<String>,
    start_at: Timestamp,
    end_at: Timestamp,
) -> Result<(ApplicationPassword, String), DirectoryError> {
    if end_at <= start_at {
        return Err(DirectoryError::Invalid("a secret must end after it starts".to_owned()));
    }
    let secret = new_client_secret();
    let password = ApplicationPassword {
        key_id: uuid::Uuid::new_v4().to_string(),
        application_id: application.id.clone(),
        display_name,
        hint: secret[..3].to_owned(),
        secret_sha256: client_secret_hash(&secret),
        start_at,
        end_at,
    };
    let stored = password.clone();
    store.write(move |tx| tx.application_password_add(&stored)).await?;
    Ok((password, secret))
}

/// Removes one of an application's secrets; returns whether it had it.
pub async fn remove_password(
    store: &Store,
    application: &ApplicationRecord,
    key_id: &str,
) -> Result<bool, DirectoryError> {
    let (application_id, key_id) = (application.id.clone(), key_id.to_owned());
    Ok(store.write(move |tx| tx.application_password_remove(&application_id, &key_id)).await?)
}

/// Creates an application's service principal in a tenant: always allowed in its home tenant,
/// elsewhere only for a multi-tenant application; at most one per tenant. The caller is an
/// administrator or the app's owner (Graph checks) or the operator, so this is consent for
/// every user of the tenant, as admin consent is.
pub async fn create_service_principal(
    store: &Store,
    tenant: &TenantRecord,
    app_id: &str,
    now: Timestamp,
) -> Result<(ServicePrincipalRecord, ApplicationRecord), DirectoryError> {
    let lookup = app_id.to_owned();
    let application = store
        .read(move |tx| tx.application_by_app_id(&lookup))
        .await?
        .ok_or_else(|| DirectoryError::UnknownApplication(app_id.to_owned()))?;
    if application.tenant_id != tenant.id && application.sign_in_audience != "AzureADMultipleOrgs" {
        return Err(DirectoryError::NotMultiTenant {
            app_id: application.app_id.clone(),
            sign_in_audience: application.sign_in_audience.clone(),
        });
    }
    let service_principal = ServicePrincipalRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        app_id: application.app_id.clone(),
        display_name: application.display_name.clone(),
    };
    let stored = service_principal.clone();
    store
        .write(move |tx| {
            tx.service_principal_create(&stored, now)?;
            tx.consent_grant(&stored.tenant_id, &stored.app_id, "", now)
        })
        .await?;
    Ok((service_principal, application))
}
