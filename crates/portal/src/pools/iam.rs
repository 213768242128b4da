//! A pool's **Access control (IAM)**: its role assignments and **Add role assignment**.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{field, form_pairs, new_guid};
use crate::html::{self, encode, escape, name_of};
use crate::{SignedIn, Visit};

pub(super) async fn iam(visit: &mut Visit, tenant: &str, id: &str) -> String {
    let path = format!(
        "{id}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()"
    );
    let answer = visit.arm(tenant, None, Method::GET, &path, None).await;
    let mut out = String::from("<h2>Access control (IAM)</h2>");
    if !answer.ok() {
        out.push_str(&html::error(&answer.error_text()));
    }
    // Role names as the API defines them (built-in and any other), not a copy kept here.
    let path =
        format!("{id}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01");
    let definitions = visit.arm(tenant, None, Method::GET, &path, None).await;
    if !definitions.ok() {
        out.push_str(&html::error(&definitions.error_text()));
    }
    let roles: Vec<(String, String)> = definitions.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|definition| {
            let name = definition["name"].as_str()?.to_owned();
            let role_name = definition["properties"]["roleName"].as_str()?.to_owned();
            Some((name, role_name))
        })
        .collect();
    let names: HashMap<&str, &str> =
        roles.iter().map(|(name, role_name)| (name.as_str(), role_name.as_str())).collect();
    let rows: Vec<Vec<String>> = answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let p = &a["properties"];
            let role = name_of(p["roleDefinitionId"].as_str().unwrap_or_default());
            vec![
                escape(names.get(role).copied().unwrap_or(role)),
                escape(p["principalId"].as_str().unwrap_or_default()),
                escape(p["principalType"].as_str().unwrap_or_default()),
                escape(p["scope"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    out.push_str(&html::table("role-assignments", &["Role", "Principal", "Type", "Scope"], &rows));
    let options: String = roles
        .iter()
        .map(|(name, role_name)| {
            format!("<option value=\"{}\">{}</option>", escape(name), escape(role_name))
        })
        .collect();
    out.push_str(&format!(
        "<h3>Add role assignment</h3><form method=\"post\" action=\"/portal/t/{}/pool/iam?id={}\">{}\
         <label>Role <select name=\"role\" id=\"iam-role\">{options}</select></label>\
         <label>Member (object id of a user or service principal) <input name=\"principal\" id=\"iam-principal\" required></label>\
         <button type=\"submit\" id=\"iam-assign\">Review + assign</button></form>",
        escape(tenant),
        encode(id),
        visit.csrf_field()
    ));
    out
}

pub async fn add_role(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let values = form_pairs(&body);
    let subscription = id.split('/').nth(2).unwrap_or_default();
    let request = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}", field(&values, "role")),
        "principalId": field(&values, "principal"),
    }});
    let path = format!(
        "{id}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        new_guid()
    );
    let answer = visit.arm(&tenant, None, Method::PUT, &path, Some(&request)).await;
    let outcome = if answer.ok() {
        format!("message={}", encode("The role was assigned."))
    } else {
        format!("error={}", encode(&answer.error_text()))
    };
    Redirect::to(&format!("/portal/t/{tenant}/pool?id={}&tab=iam&{outcome}", encode(&id)))
        .into_response()
}
