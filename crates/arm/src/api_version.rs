//! api-versions: each resource type declares the versions it serves in one table; a request
//! without one, or with another, is refused with ARM's codes and the list of supported versions.

use crate::error::{ArmError, ErrorCode};

/// The api-versions one resource type serves.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersions {
    resource_type: &'static str,
    // Invariant: sorted oldest first.
    supported: &'static [&'static str],
}

impl ApiVersions {
    pub const fn new(
        resource_type: &'static str,
        supported: &'static [&'static str],
    ) -> ApiVersions {
        ApiVersions { resource_type, supported }
    }

    pub fn supported(&self) -> &'static [&'static str] {
        self.supported
    }

    /// The request's api-version if this type serves it.
    pub fn check(&self, given: Option<&str>) -> Result<&'static str, ArmError> {
        let given =
            given.filter(|given| !given.is_empty()).ok_or_else(ArmError::missing_api_version)?;
        self.supported.iter().find(|supported| supported.eq_ignore_ascii_case(given)).copied().ok_or_else(|| {
            ArmError::new(ErrorCode::InvalidApiVersionParameter,
                format!(
                    "The api-version '{given}' is invalid for '{}'. The supported versions are '{}'.",
                    self.resource_type,
                    self.supported.join(",")
                ),
            )
        })
    }
}

/// The api-versions of `GET /tenants` (and the subscription operations), as the az CLI and SDKs
/// send them.
pub const TENANTS_API_VERSIONS: ApiVersions = ApiVersions::new(
    "tenants",
    &["2016-06-01", "2019-11-01", "2020-01-01", "2021-01-01", "2022-01-01", "2022-12-01"],
);

#[cfg(test)]
mod tests {
    use super::*;

    const VERSIONS: ApiVersions = ApiVersions::new("tenants", &["2020-01-01", "2022-12-01"]);

    #[test]
    fn accepts_listed_versions_and_names_them_when_refusing() {
        assert_eq!(VERSIONS.check(Some("2022-12-01")), Ok("2022-12-01"));
        assert_eq!(VERSIONS.check(None).unwrap_err().code, ErrorCode::MissingApiVersionParameter);
        assert_eq!(
            VERSIONS.check(Some("")).unwrap_err().code,
            ErrorCode::MissingApiVersionParameter
        );
        let refused = VERSIONS.check(Some("2099-01-01")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidApiVersionParameter);
        assert!(refused.message.contains("'2020-01-01,2022-12-01'"), "{}", refused.message);
    }
}
