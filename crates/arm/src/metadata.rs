//! `GET /metadata/endpoints`: the cloud-metadata document `az cloud register
//! --endpoint-resource-manager <origin>/` fetches, pointing the az CLI at this server.
//!
//! The ARM audiences stay Microsoft's (`https://management.core.windows.net/` first), so ARM and
//! Graph tokens differ in audience; Graph is this server's own origin (AZ-CLI.md §1.1).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api_version::ApiVersions;
use crate::error::{ArmError, ErrorCode};
use crate::response::json;
use crate::state::Arm;

/// Versions answered with one cloud object, and the older ones answered with a list of clouds.
const SINGLE_CLOUD: ApiVersions = ApiVersions::new("metadata/endpoints", &["2022-09-01"]);
const CLOUD_LIST: [&str; 3] = ["2018-01-01", "2019-05-01", "2020-06-01"];

/// The metadata of the cloud this server is.
pub fn cloud(origin: &str) -> Value {
    let base = format!("{origin}/");
    json!({
        "name": "crosspool",
        "portal": format!("{origin}/portal"),
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": base,
        "graphAudience": base,
        "graph": base,
        "microsoftGraphResourceId": base,
        "resourceManager": base,
        "batch": base,
        "gallery": base,
        "sqlManagement": base,
        "vmImageAliasDoc": base,
        "suffixes": {
            "acrLoginServer": "azurecr.io",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "sqlServerHostname": "database.windows.net",
        },
    })
}

pub(crate) async fn endpoints(
    State(arm): State<Arc<Arm>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ArmError> {
    let given = query.get("api-version").map(String::as_str);
    let document = cloud(arm.identity().origin());
    if given.is_some_and(|version| CLOUD_LIST.contains(&version)) {
        return Ok(json(StatusCode::OK, &json!([document])));
    }
    SINGLE_CLOUD.check(given).map_err(|error| {
        if error.code == ErrorCode::InvalidApiVersionParameter {
            ArmError {
                message: format!(
                    "{} Older versions '{}' answer a list of clouds.",
                    error.message,
                    CLOUD_LIST.join(",")
                ),
                ..error
            }
        } else {
            error
        }
    })?;
    Ok(json(StatusCode::OK, &document))
}
