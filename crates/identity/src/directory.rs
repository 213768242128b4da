//! Directory operations with their invariants, shared by Graph and `crosspool admin`: creating
//! tenants, users, app registrations, client secrets and service principals. Who may call them is
//! the caller's business (Graph checks admins and owners; the command line is the operator).

use store::error::StoreError;
use store::identity::{
    ApplicationPassword, ApplicationRecord, ServicePrincipalRecord, TenantRecord, UserRecord,
};
use store::{Store, Timestamp};

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
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DirectoryError {
    fn from(error: StoreError) -> DirectoryError {
        match error {
            StoreError::AlreadyExists { what, id } => DirectoryError::AlreadyExists { what, id },
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

/// Creates an application's service principal in a tenant: always allowed in its home tenant,
/// elsewhere only for a multi-tenant application; at most one per tenant.
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
    store.write(move |tx| tx.service_principal_create(&stored, now)).await?;
    Ok((service_principal, application))
}
