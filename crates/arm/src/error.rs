//! `ArmError`, the only error that becomes an ARM response: one of ARM's codes (`ErrorCode`, each
//! with its one status), a message and a target, in the envelope
//! `{"error":{"code","message","target"}}`, and for 401s the `WWW-Authenticate` challenge. Every
//! conversion of another crate's error into it lives in this file, so a store, allocator or token
//! failure always gets the same answer. This module imports nothing of `arm`.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use identity::jwt::TokenError;
use ipam::error::Error as IpamError;
use serde_json::json;
use store::error::StoreError;

macro_rules! error_codes {
    ($($(#[$meta:meta])* $variant:ident = $code:literal, $status:ident;)*) => {
        /// ARM's error codes, each with the one status it is answered with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$meta])* $variant,)*
        }

        impl ErrorCode {
            /// The code on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    AddressPrefixNotAvailable = "AddressPrefixNotAvailable", CONFLICT;
    AddressPrefixNotInPool = "AddressPrefixNotInPool", BAD_REQUEST;
    AnotherOperationInProgress = "AnotherOperationInProgress", CONFLICT;
    AuthenticationFailed = "AuthenticationFailed", UNAUTHORIZED;
    AuthorizationFailed = "AuthorizationFailed", FORBIDDEN;
    BadRequest = "BadRequest", BAD_REQUEST;
    CannotDeleteResource = "CannotDeleteResource", CONFLICT;
    CannotHaveDuplicatePoolIds = "CannotHaveDuplicatePoolIds", BAD_REQUEST;
    CannotMixAddressPrefixAndPoolInPayload = "CannotMixAddressPrefixAndPoolInPayload", BAD_REQUEST;
    ExpiredAuthenticationToken = "ExpiredAuthenticationToken", UNAUTHORIZED;
    InternalServerError = "InternalServerError", INTERNAL_SERVER_ERROR;
    InvalidAddressPrefixFormat = "InvalidAddressPrefixFormat", BAD_REQUEST;
    InvalidApiVersionParameter = "InvalidApiVersionParameter", BAD_REQUEST;
    InvalidAuthenticationToken = "InvalidAuthenticationToken", UNAUTHORIZED;
    InvalidAuthenticationTokenAudience = "InvalidAuthenticationTokenAudience", UNAUTHORIZED;
    InvalidAuthenticationTokenTenant = "InvalidAuthenticationTokenTenant", UNAUTHORIZED;
    InvalidAuxiliaryTokens = "InvalidAuxiliaryTokens", BAD_REQUEST;
    InvalidLocation = "InvalidLocation", BAD_REQUEST;
    InvalidNumberOfIpAddresses = "InvalidNumberOfIpAddresses", BAD_REQUEST;
    InvalidParameter = "InvalidParameter", BAD_REQUEST;
    InvalidRequestContent = "InvalidRequestContent", BAD_REQUEST;
    InvalidResourceGroupLocation = "InvalidResourceGroupLocation", CONFLICT;
    InvalidResourceGroupName = "InvalidResourceGroupName", BAD_REQUEST;
    InvalidResourceName = "InvalidResourceName", BAD_REQUEST;
    InvalidResourceType = "InvalidResourceType", NOT_FOUND;
    InvalidRoleAssignmentId = "InvalidRoleAssignmentId", BAD_REQUEST;
    InvalidScope = "InvalidScope", BAD_REQUEST;
    IpamAllocationCannotBeDecreased = "IpamAllocationCannotBeDecreased", BAD_REQUEST;
    IpamPoolAddressFamilyMismatch = "IpamPoolAddressFamilyMismatch", BAD_REQUEST;
    IpamPoolAddressPrefixInUse = "IpamPoolAddressPrefixInUse", BAD_REQUEST;
    IpamPoolAddressPrefixesRequired = "IpamPoolAddressPrefixesRequired", BAD_REQUEST;
    IpamPoolExhausted = "IpamPoolExhausted", CONFLICT;
    IpamPoolHasChildPools = "IpamPoolHasChildPools", BAD_REQUEST;
    IpamPoolHasStaticCidrs = "IpamPoolHasStaticCidrs", BAD_REQUEST;
    IpamPoolHierarchyTooDeep = "IpamPoolHierarchyTooDeep", BAD_REQUEST;
    IpamPoolNotEmpty = "IpamPoolNotEmpty", BAD_REQUEST;
    IpamPoolNotFound = "IpamPoolNotFound", NOT_FOUND;
    /// A pool a request body names does not exist: the body is at fault.
    LinkedIpamPoolNotFound = "IpamPoolNotFound", BAD_REQUEST;
    LinkedAuthorizationFailed = "LinkedAuthorizationFailed", FORBIDDEN;
    LocationCannotBeChanged = "LocationCannotBeChanged", BAD_REQUEST;
    LocationRequired = "LocationRequired", BAD_REQUEST;
    MethodNotAllowed = "MethodNotAllowed", METHOD_NOT_ALLOWED;
    MissingApiVersionParameter = "MissingApiVersionParameter", BAD_REQUEST;
    NetcfgInvalidAddressPrefix = "NetcfgInvalidAddressPrefix", BAD_REQUEST;
    NetcfgSubnetRangeOutsideVnet = "NetcfgSubnetRangeOutsideVnet", BAD_REQUEST;
    NetcfgSubnetRangesOverlap = "NetcfgSubnetRangesOverlap", BAD_REQUEST;
    NoRegisteredProviderFound = "NoRegisteredProviderFound", NOT_FOUND;
    NotFound = "NotFound", NOT_FOUND;
    OnlyOneAssociationOfEachIpTypeAllowed = "OnlyOneAssociationOfEachIpTypeAllowed", BAD_REQUEST;
    OperationNotFound = "OperationNotFound", NOT_FOUND;
    OverlappingAddressPrefixes = "OverlappingAddressPrefixes", BAD_REQUEST;
    ParentResourceNotFound = "ParentResourceNotFound", NOT_FOUND;
    PreconditionFailed = "PreconditionFailed", PRECONDITION_FAILED;
    PrincipalNotFound = "PrincipalNotFound", BAD_REQUEST;
    RequestEntityTooLarge = "RequestEntityTooLarge", PAYLOAD_TOO_LARGE;
    ResourceGroupNotFound = "ResourceGroupNotFound", NOT_FOUND;
    ResourceNotFound = "ResourceNotFound", NOT_FOUND;
    RoleAssignmentExists = "RoleAssignmentExists", CONFLICT;
    RoleAssignmentNotFound = "RoleAssignmentNotFound", NOT_FOUND;
    RoleAssignmentUpdateNotPermitted = "RoleAssignmentUpdateNotPermitted", CONFLICT;
    /// The database can't be reached now; `Retry-After` says when to try again.
    ServiceUnavailable = "ServiceUnavailable", SERVICE_UNAVAILABLE;
    /// A role definition a request body names does not exist: the body is at fault.
    RoleDefinitionDoesNotExist = "RoleDefinitionDoesNotExist", BAD_REQUEST;
    /// The role definition the path names does not exist.
    RoleDefinitionNotFound = "RoleDefinitionDoesNotExist", NOT_FOUND;
    SubnetPoolsMustBeSubsetOfVnetPools = "SubnetPoolsMustBeSubsetOfVnetPools", BAD_REQUEST;
    SubnetsCannotReferToPoolsIfVnetDoeNot = "SubnetsCannotReferToPoolsIfVnetDoeNot", BAD_REQUEST;
    SubscriptionNotFound = "SubscriptionNotFound", NOT_FOUND;
    SubscriptionNotInNetworkManagerScope = "SubscriptionNotInNetworkManagerScope", FORBIDDEN;
    UnsupportedQuery = "UnsupportedQuery", BAD_REQUEST;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ARM error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// The code's status.
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub target: Option<String>,
    /// For 401s: the `WWW-Authenticate` value.
    pub www_authenticate: Option<String>,
    /// For an internal error: its cause, for the server's log only.
    pub cause: Option<String>,
}

impl ArmError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ArmError {
        ArmError {
            status: code.status(),
            code,
            message: message.into(),
            target: None,
            www_authenticate: None,
            cause: None,
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> ArmError {
        self.target = Some(target.into());
        self
    }

    /// The same error with its target under `prefix` (`properties.subnets[0]` + `.name`).
    pub fn under(mut self, prefix: &str) -> ArmError {
        if let Some(target) = &self.target {
            self.target = Some(format!("{prefix}.{target}"));
        }
        self
    }

    /// A 401 with ARM's challenge.
    pub fn unauthorized(
        code: ErrorCode,
        message: impl Into<String>,
        authorization_uri: &str,
    ) -> ArmError {
        let message = message.into();
        let challenge = format!(
            "Bearer authorization_uri=\"{authorization_uri}\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        );
        ArmError { www_authenticate: Some(challenge), ..ArmError::new(code, message) }
    }

    /// A refused bearer token (`InvalidAuthenticationToken`, or `ExpiredAuthenticationToken`).
    pub fn token_refused(error: TokenError, authorization_uri: &str) -> ArmError {
        match error {
            TokenError::Expired { exp } => ArmError::unauthorized(
                ErrorCode::ExpiredAuthenticationToken,
                format!("The access token expired at {exp} (seconds since the epoch)."),
                authorization_uri,
            ),
            other => ArmError::unauthorized(
                ErrorCode::InvalidAuthenticationToken,
                format!("The access token is invalid: {other}."),
                authorization_uri,
            ),
        }
    }

    pub fn invalid_token(reason: &str) -> ArmError {
        ArmError::new(
            ErrorCode::InvalidAuthenticationToken,
            format!("The access token is invalid: {reason}."),
        )
    }

    pub fn missing_api_version() -> ArmError {
        ArmError::new(
            ErrorCode::MissingApiVersionParameter,
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    }

    /// An unexpected failure: the client gets a generic message and the request id to quote;
    /// the log gets `cause` under that id.
    pub fn internal(cause: String) -> ArmError {
        ArmError {
            cause: Some(cause),
            ..ArmError::new(
                ErrorCode::InternalServerError,
                "The server encountered an internal error; quote the x-ms-request-id when reporting it.",
            )
        }
    }

    /// A 404 for a path that addresses nothing.
    pub fn invalid_resource_type(path: &str) -> ArmError {
        ArmError::new(
            ErrorCode::InvalidResourceType,
            format!(
                "The resource path '{path}' does not address a resource type this server serves."
            ),
        )
    }

    /// A 405 naming the method.
    pub fn method_not_allowed(method: &Method, path: &str) -> ArmError {
        ArmError::new(
            ErrorCode::MethodNotAllowed,
            format!("The method '{method}' is not allowed on '{path}'."),
        )
    }

    /// ARM's 404 for a missing resource group.
    pub fn resource_group_not_found(name: &str) -> ArmError {
        ArmError::new(
            ErrorCode::ResourceGroupNotFound,
            format!("Resource group '{name}' could not be found."),
        )
    }

    /// ARM's 403 for a missing permission.
    pub fn authorization_failed(
        client_name: &str,
        object_id: &str,
        action: &str,
        scope: &str,
    ) -> ArmError {
        ArmError::new(
            ErrorCode::AuthorizationFailed,
            format!(
                "The client '{client_name}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        )
    }

    /// A 400 `InvalidRequestContent`.
    pub fn invalid_content(reason: &str) -> ArmError {
        ArmError::new(
            ErrorCode::InvalidRequestContent,
            format!("The request content was invalid and could not be deserialized: {reason}."),
        )
    }

    /// A 400 naming the field at fault.
    pub fn invalid_field(field: &str, reason: &str) -> ArmError {
        ArmError::new(
            ErrorCode::InvalidRequestContent,
            format!("The request content was invalid: '{field}' {reason}."),
        )
        .with_target(field)
    }
}

impl From<StoreError> for ArmError {
    fn from(error: StoreError) -> ArmError {
        match error {
            // A conflict with a concurrent writer is worth retrying, whichever check caught it.
            StoreError::Busy { .. }
            | StoreError::Retryable { .. }
            | StoreError::Constraint { .. } => ArmError::new(
                ErrorCode::AnotherOperationInProgress,
                "Another operation on this resource or pool is in progress; retry the request.",
            ),
            StoreError::Unavailable { .. } => ArmError {
                cause: Some(identity::trace::error_chain(&error)),
                ..ArmError::new(
                    ErrorCode::ServiceUnavailable,
                    "The service's database is unavailable; retry the request after the time in the Retry-After header.",
                )
            },
            // The allocator's refusals are the client's to fix, wherever they surface.
            StoreError::Ipam(error) => error.into(),
            StoreError::EtagMismatch { id, expected } => ArmError::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "The condition '{expected}' in the If-Match header was not met for '{id}'."
                ),
            ),
            // A resource is missing or present where a write's precondition says otherwise:
            // `If-Match: *` on a missing resource, `If-None-Match: *` on an existing one.
            StoreError::NotFound { what: "resource", id } => ArmError::new(
                ErrorCode::PreconditionFailed,
                format!("The If-Match condition was not met: '{id}' does not exist."),
            ),
            StoreError::AlreadyExists { what: "resource", id } => ArmError::new(
                ErrorCode::PreconditionFailed,
                format!("The If-None-Match condition was not met: '{id}' already exists."),
            ),
            other => ArmError::internal(identity::trace::error_chain(&other)),
        }
    }
}

impl From<IpamError> for ArmError {
    fn from(error: IpamError) -> ArmError {
        ArmError::from(&error)
    }
}

impl From<&IpamError> for ArmError {
    fn from(error: &IpamError) -> ArmError {
        let code = match error {
            IpamError::InvalidPrefix { .. } => ErrorCode::InvalidAddressPrefixFormat,
            IpamError::InvalidCount { .. } | IpamError::InvalidLength { .. } => {
                ErrorCode::InvalidNumberOfIpAddresses
            }
            IpamError::NoPrefixes => ErrorCode::IpamPoolAddressPrefixesRequired,
            IpamError::MixedFamilies { .. } | IpamError::WrongFamily { .. } => {
                ErrorCode::IpamPoolAddressFamilyMismatch
            }
            IpamError::OverlappingPrefixes { .. } => ErrorCode::OverlappingAddressPrefixes,
            IpamError::OutsidePool { .. } => ErrorCode::AddressPrefixNotInPool,
            IpamError::NotFree { .. } => ErrorCode::AddressPrefixNotAvailable,
            IpamError::PoolExhausted { .. } => ErrorCode::IpamPoolExhausted,
            IpamError::PrefixInUse { .. } => ErrorCode::IpamPoolAddressPrefixInUse,
            IpamError::TooDeep { .. } => ErrorCode::IpamPoolHierarchyTooDeep,
            IpamError::UnknownPool { .. } => ErrorCode::IpamPoolNotFound,
            IpamError::PoolNotEmpty { .. } => ErrorCode::IpamPoolNotEmpty,
        };
        let mut message = error.to_string();
        if let Some(first) = message.get(..1) {
            message = first.to_uppercase() + &message[1..];
        }
        ArmError::new(code, format!("{message}."))
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(target) = &self.target {
            error["target"] = json!(target);
        }
        let mut response = (self.status, json!({ "error": error }).to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(challenge) =
            self.www_authenticate.and_then(|value| HeaderValue::from_str(&value).ok())
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        // A conflict with another operation is worth retrying shortly; a database that is away,
        // a little later.
        let retry_after = match self.code {
            ErrorCode::AnotherOperationInProgress => Some(1),
            ErrorCode::ServiceUnavailable => Some(store::error::UNAVAILABLE_RETRY_AFTER_SECONDS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(identity::trace::InternalCause(cause));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_store_failure_gets_one_answer() {
        let constraint = StoreError::Constraint { source: "unique".into() };
        assert_eq!(ArmError::from(constraint).status, StatusCode::CONFLICT);
        let retryable = StoreError::Retryable { source: "serialization".into() };
        assert_eq!(ArmError::from(retryable).code, ErrorCode::AnotherOperationInProgress);
        let missing = StoreError::NotFound { what: "resource", id: "/x".to_owned() };
        assert_eq!(ArmError::from(missing).status, StatusCode::PRECONDITION_FAILED);
        let unknown_pool = IpamError::UnknownPool { pool: "p".to_owned() };
        assert_eq!(ArmError::from(&unknown_pool).status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn codes_with_two_statuses_are_two_variants() {
        assert_eq!(ErrorCode::RoleDefinitionNotFound.as_str(), "RoleDefinitionDoesNotExist");
        assert_eq!(ErrorCode::RoleDefinitionNotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(ErrorCode::RoleDefinitionDoesNotExist.status(), StatusCode::BAD_REQUEST);
    }
}
