//! Errors of the token endpoint, in the identity platform's shape:
//! `{"error","error_description":"AADSTSnnn: …","error_codes":[n],"timestamp","trace_id","correlation_id"}`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::Timestamp;
use store::error::StoreError;

use crate::time::error_timestamp;

/// A refusal of the token endpoint, with its real AADSTS number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status: 400 or 401 for the client's mistakes, 429, 500 or 503 for the server's.
    pub status: u16,
    /// The OAuth error code, e.g. `invalid_client`.
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// The description after `AADSTSnnn: `.
    pub message: String,
    /// For a server error: its cause, for the server's log only.
    pub cause: Option<String>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, code: u32, message: String) -> OAuthError {
        OAuthError { status, error, code, message, cause: None }
    }

    pub fn unknown_tenant(tenant: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        )
    }

    pub fn unknown_application(app_id: &str, tenant: &str) -> OAuthError {
        Self::new(
            400,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{app_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    pub fn bad_client_secret(app_id: &str) -> OAuthError {
        Self::new(
            401,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app_id}'."
            ),
        )
    }

    pub fn missing_client_secret() -> OAuthError {
        Self::new(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_owned())
    }

    pub fn bad_password() -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.".to_owned(),
        )
    }

    pub fn disabled() -> OAuthError {
        Self::new(400, "invalid_grant", 50057, "The user account is disabled.".to_owned())
    }

    /// Too many sign-ins at once; the response carries `Retry-After`.
    pub fn throttled() -> OAuthError {
        Self::new(
            429,
            "temporarily_unavailable",
            90055,
            "There are too many incoming requests. Retry after the time the Retry-After header gives.".to_owned(),
        )
    }

    pub fn consent_required(app_id: &str, tenant: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID '{app_id}' in tenant '{tenant}'. Send an interactive authorization request for this user and resource."
            ),
        )
    }

    pub fn not_multi_tenant(app_id: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_request",
            50194,
            format!(
                "Application '{app_id}' is not configured as a multi-tenant application. Usage of the /common or /organizations endpoint, or a sign-in of another tenant's user, is not supported for such applications."
            ),
        )
    }

    pub fn too_many_device_codes() -> OAuthError {
        Self::new(
            429,
            "temporarily_unavailable",
            90055,
            "Too many device codes were requested from this address. Retry after the time the Retry-After header gives.".to_owned(),
        )
    }

    pub fn locked_out() -> OAuthError {
        Self::new(400, "invalid_grant", 50053, "Your account is locked because you've tried to sign in too many times with an incorrect user ID or password.".to_owned())
    }

    pub fn user_not_in_tenant(upn: &str, tenant: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            50020,
            format!(
                "User account '{upn}' from identity provider 'crosspool' does not exist in tenant '{tenant}' and cannot access the application in that tenant."
            ),
        )
    }

    pub fn bad_refresh_token() -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid: the refresh token is not valid."
                .to_owned(),
        )
    }

    pub fn bad_code(reason: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            70000,
            format!("The provided authorization code is not valid: {reason}."),
        )
    }

    pub fn expired_code() -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code has expired.".to_owned(),
        )
    }

    pub fn code_verifier_mismatch() -> OAuthError {
        Self::new(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.".to_owned())
    }

    pub fn authorization_pending() -> OAuthError {
        Self::new(
            400,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.".to_owned(),
        )
    }

    pub fn expired_device_code() -> OAuthError {
        Self::new(
            400,
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is expired.".to_owned(),
        )
    }

    pub fn bad_device_code() -> OAuthError {
        Self::new(
            400,
            "invalid_grant",
            70000,
            "The provided value for the input parameter 'device_code' is not valid.".to_owned(),
        )
    }

    pub fn unsupported_grant(grant_type: &str) -> OAuthError {
        Self::new(
            400,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        )
    }

    pub fn missing_parameter(name: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub fn bad_scope(scope: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter naming a resource as '<resource>/.default'; got '{scope}'."
            ),
        )
    }

    pub fn unknown_resource(resource: &str, tenant: &str) -> OAuthError {
        Self::new(
            400,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// A 503: the directory (the store) can't be reached now.
    pub fn unavailable() -> OAuthError {
        Self::new(
            503,
            "temporarily_unavailable",
            90033,
            "The directory is temporarily unavailable; retry the request after the time in the Retry-After header.".to_owned(),
        )
    }

    pub fn server_error() -> OAuthError {
        Self::new(
            500,
            "server_error",
            90100,
            "An internal error occurred; the request can be retried.".to_owned(),
        )
    }

    /// The response: the JSON body with a new trace id and the client's `client-request-id` as
    /// correlation id, and for a 429 the `Retry-After` to honour.
    pub fn response(&self, now: Timestamp, headers: &HeaderMap) -> Response {
        let trace_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|value| value.to_str().ok())
            .filter(|value| uuid::Uuid::parse_str(value).is_ok())
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = json_response(status, &self.body(now, &trace_id, &correlation_id));
        if let Some(cause) = &self.cause {
            response.extensions_mut().insert(crate::trace::InternalCause(cause.clone()));
        }
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS => Some(crate::limiter::THROTTLE_RETRY_AFTER_SECONDS),
            StatusCode::SERVICE_UNAVAILABLE => Some(store::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The JSON body.
    pub fn body(&self, now: Timestamp, trace_id: &str, correlation_id: &str) -> Value {
        let timestamp = error_timestamp(now);
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        })
    }
}

/// A JSON response that no cache keeps (token responses carry tokens).
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response
}

impl From<StoreError> for OAuthError {
    /// A store that can't be reached is a 503 the client may retry; any other failure a 500.
    /// The cause goes to the log only.
    fn from(error: StoreError) -> OAuthError {
        let cause = Some(crate::trace::error_chain(&error));
        match error.is_unavailable() {
            true => OAuthError { cause, ..OAuthError::unavailable() },
            false => OAuthError { cause, ..OAuthError::server_error() },
        }
    }
}
