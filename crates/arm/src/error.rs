//! `ArmError`, the only error that becomes an ARM response: a status, ARM's code and message in
//! the envelope `{"error":{"code","message","target","details"}}`, and for 401s the
//! `WWW-Authenticate` challenge. Every conversion into it lives in this file.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use store::error::StoreError;

/// An ARM error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub target: Option<String>,
    /// For 401s: the `WWW-Authenticate` value.
    pub www_authenticate: Option<String>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ArmError {
        ArmError { status, code, message: message.into(), target: None, www_authenticate: None }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> ArmError {
        self.target = Some(target.into());
        self
    }

    /// A 401 with ARM's challenge.
    pub fn unauthorized(
        code: &'static str,
        message: impl Into<String>,
        authorization_uri: &str,
    ) -> ArmError {
        let message = message.into();
        let challenge = format!(
            "Bearer authorization_uri=\"{authorization_uri}\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        );
        ArmError {
            www_authenticate: Some(challenge),
            ..ArmError::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    pub fn invalid_token(reason: &str) -> ArmError {
        ArmError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("The access token is invalid: {reason}."),
        )
    }

    pub fn missing_api_version() -> ArmError {
        ArmError::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    }

    /// An unexpected failure: the client gets a generic message and the request id to quote.
    pub fn internal() -> ArmError {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The server encountered an internal error; quote the x-ms-request-id when reporting it.",
        )
    }
}

impl From<StoreError> for ArmError {
    fn from(error: StoreError) -> ArmError {
        match error {
            StoreError::Busy { .. } | StoreError::Retryable { .. } => ArmError::new(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                "Another operation on this resource is in progress; retry the request.",
            ),
            // The allocator's refusals are the client's to fix, wherever they surface.
            StoreError::Ipam(error) => crate::network::ipam_error(&error),
            StoreError::EtagMismatch { id, expected } => ArmError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                format!(
                    "The condition '{expected}' in the If-Match header was not met for '{id}'."
                ),
            ),
            _ => ArmError::internal(),
        }
    }
}

/// A store error from a write with a precondition: `If-Match: *` on a missing resource and
/// `If-None-Match: *` on an existing one are 412s too.
pub fn precondition_failed(error: StoreError) -> ArmError {
    match error {
        StoreError::NotFound { id, .. } => ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("The If-Match condition was not met: '{id}' does not exist."),
        ),
        StoreError::AlreadyExists { id, .. } => ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("The If-None-Match condition was not met: '{id}' already exists."),
        ),
        other => other.into(),
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(target) = &self.target {
            error["target"] = json!(target);
        }
        let mut response = json(self.status, &json!({ "error": error }));
        if let Some(challenge) =
            self.www_authenticate.and_then(|value| HeaderValue::from_str(&value).ok())
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        // A conflict with another operation is worth retrying shortly.
        if self.code == "AnotherOperationInProgress" {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
