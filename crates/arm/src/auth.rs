//! Authentication of ARM requests: `Authorization: Bearer <token>` from the identity service, for
//! an ARM audience. Missing, malformed, invalid, expired and wrong-audience tokens are 401s with
//! ARM's codes and a `WWW-Authenticate` challenge naming where to get a token. As ARM does with
//! continuous access evaluation, a token is refused at once when its principal has been deleted
//! or disabled or its sessions revoked (read through the store's cache, whose generation those
//! changes move).

use std::sync::Arc;

use store::cache::Ticket;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use identity::trace::CallerTrace;
use serde_json::Value;
use store::authorization::SubscriptionRecord;

use crate::error::{ArmError, ErrorCode};
use crate::state::Arm;

/// The audiences ARM accepts, compared without a trailing slash.
pub const ARM_AUDIENCES: [&str; 2] =
    ["https://management.core.windows.net", "https://management.azure.com"];

/// Whether a token's `aud` is an ARM audience.
pub fn is_arm_audience(audience: &str) -> bool {
    let audience = audience.trim_end_matches('/').to_ascii_lowercase();
    ARM_AUDIENCES.contains(&audience.as_str())
}

/// Whether the principal is a user or an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Application,
}

/// The authenticated caller of an ARM request.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant_id: String,
    object_id: String,
    app_id: String,
    /// The user's UPN, or the application's id: how ARM's messages name the client.
    name: String,
    kind: PrincipalKind,
    /// The request's use of the store's cache, from its first read (`store::cache`).
    ticket: Arc<Ticket>,
}

impl Caller {
    /// A user acting in its tenant without a token: for requests the server makes itself (the
    /// demo world), which then pass the same checks as a client's.
    pub fn user(tenant_id: &str, object_id: &str, upn: &str) -> Caller {
        Caller {
            tenant_id: tenant_id.to_owned(),
            object_id: object_id.to_owned(),
            app_id: String::new(),
            name: upn.to_owned(),
            kind: PrincipalKind::User,
            ticket: Arc::default(),
        }
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    /// The user's or service principal's object id in `tenant_id`.
    pub fn object_id(&self) -> &str {
        &self.object_id
    }
    /// The client application's id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }
    /// How ARM's messages name the caller: a user's UPN, an application's id.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The caller as the request log names it.
    pub fn trace(&self) -> CallerTrace {
        CallerTrace { tenant_id: self.tenant_id.clone(), object_id: self.object_id.clone() }
    }

    /// The request's ticket for the store's cache, which its authentication started.
    pub fn ticket(&self) -> Arc<Ticket> {
        self.ticket.clone()
    }
}

/// Checks a bearer token for ARM and returns its caller; `ticket` is the request's use of the
/// store's cache.
pub async fn authenticate(
    arm: &Arm,
    token: &str,
    ticket: &Arc<Ticket>,
) -> Result<Caller, ArmError> {
    let authorization_uri = format!("{}/common", arm.identity().origin());
    let claims = arm
        .identity()
        .verify(token)
        .await
        .map_err(|error| ArmError::token_refused(error, &authorization_uri))?;
    let claim =
        |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let tenant_id = claim("tid");
    let authorization_uri = format!("{}/{tenant_id}", arm.identity().origin());
    let audience = claim("aud");
    if !is_arm_audience(&audience) {
        return Err(ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationTokenAudience,
            format!(
                "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            ),
            &authorization_uri,
        ));
    }
    let kind = match claim("idtyp").as_str() {
        "user" => PrincipalKind::User,
        "app" => PrincipalKind::Application,
        other => {
            return Err(ArmError::unauthorized(
                ErrorCode::InvalidAuthenticationToken,
                format!(
                    "The access token is invalid: it is not an access token (idtyp {other:?})."
                ),
                &authorization_uri,
            ));
        }
    };
    if tenant_id.is_empty() || claim("oid").is_empty() {
        return Err(ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationToken,
            "The access token is invalid: it names no tenant or principal.",
            &authorization_uri,
        ));
    }
    let name = match kind {
        PrincipalKind::User => ["upn", "unique_name", "preferred_username"]
            .iter()
            .map(|name| claim(name))
            .find(|value| !value.is_empty())
            .unwrap_or_else(|| claim("oid")),
        PrincipalKind::Application => claim("appid"),
    };
    let object_id = claim("oid");
    let lookup = object_id.clone();
    let status =
        arm.identity().store().read_cached(ticket, move |tx| tx.principal_status(&lookup)).await?;
    let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
    let current = status
        .is_some_and(|status| status.account_enabled && issued_at >= status.tokens_valid_after);
    if !current {
        return Err(ArmError::unauthorized(
            ErrorCode::InvalidAuthenticationToken,
            "The access token is invalid: its principal no longer exists, is disabled, or its sessions were revoked.",
            &authorization_uri,
        ));
    }
    Ok(Caller { tenant_id, object_id, app_id: claim("appid"), name, kind, ticket: ticket.clone() })
}

impl FromRequestParts<Arc<Arm>> for Caller {
    type Rejection = ArmError;

    async fn from_request_parts(parts: &mut Parts, arm: &Arc<Arm>) -> Result<Caller, ArmError> {
        let authorization_uri = format!("{}/common", arm.identity().origin());
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ArmError::unauthorized(
                ErrorCode::AuthenticationFailed,
                "Authentication failed. The 'Authorization' header is missing.",
                &authorization_uri,
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty());
        let Some(token) = token else {
            return Err(ArmError::unauthorized(
                ErrorCode::AuthenticationFailed,
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                &authorization_uri,
            ));
        };
        authenticate(arm, token, &Arc::default()).await
    }
}

/// A token must come from the tenant that owns the subscription it addresses.
pub fn check_token_tenant(
    arm: &Arm,
    caller: &Caller,
    subscription: &SubscriptionRecord,
) -> Result<(), ArmError> {
    if caller.tenant_id() == subscription.tenant_id {
        return Ok(());
    }
    let origin = arm.identity().origin();
    Err(ArmError::unauthorized(
        ErrorCode::InvalidAuthenticationTokenTenant,
        format!(
            "The access token is from the wrong issuer '{origin}/{}/v2.0'. It must match the tenant '{origin}/{}/v2.0' associated with this subscription. Please use the authority (URL) '{origin}/{}' to get the token.",
            caller.tenant_id(),
            subscription.tenant_id,
            subscription.tenant_id
        ),
        &format!("{origin}/{}", subscription.tenant_id),
    ))
}

/// The answer to a request of `caller`, naming the caller for the request log.
pub fn traced(caller: CallerTrace, answer: Result<Response, ArmError>) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(caller);
    response
}
