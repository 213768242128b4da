//! **Network managers** and a manager's **IP address pools**.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Method;
use axum::response::Response;

use super::NET;
use crate::html::{self, encode, escape, list, name_of};
use crate::{SignedIn, across_subscriptions};

pub async fn managers(SignedIn { mut visit, tenant }: SignedIn) -> Response {
    let (managers, mut body) = across_subscriptions(&mut visit, &tenant, "networkManagers").await;
    let rows: Vec<Vec<String>> = managers
        .iter()
        .map(|(subscription, manager)| {
            let id = manager["id"].as_str().unwrap_or_default();
            vec![
                format!(
                    "<a href=\"/portal/t/{}/manager?id={}\">{}</a>",
                    escape(&tenant),
                    encode(id),
                    escape(name_of(id))
                ),
                escape(manager["location"].as_str().unwrap_or_default()),
                escape(subscription),
            ]
        })
        .collect();
    body.push_str(&html::table("managers", &["Name", "Region", "Subscription"], &rows));
    visit.page("Network managers", &tenant, &body)
}

/// A manager: its **IP address pools**.
pub async fn manager(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/portal/t/{}/managers\">Network managers</a> › {}</nav>",
        escape(&tenant),
        escape(name_of(&id))
    );
    body.push_str("<h2>IP address management</h2><h3>IP address pools</h3>");
    body.push_str(&format!(
        "<p><a id=\"create-pool\" href=\"/portal/t/{}/pool/new?manager={}\">+ Create</a></p>",
        escape(&tenant),
        encode(&id)
    ));
    let answer =
        visit.arm(&tenant, None, Method::GET, &format!("{id}/ipamPools?{NET}"), None).await;
    if !answer.ok() {
        body.push_str(&html::error(&answer.error_text()));
    }
    let rows: Vec<Vec<String>> = answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pool| {
            let pool_id = pool["id"].as_str().unwrap_or_default();
            let p = &pool["properties"];
            vec![
                format!(
                    "<a href=\"/portal/t/{}/pool?id={}\">{}</a>",
                    escape(&tenant),
                    encode(pool_id),
                    escape(name_of(pool_id))
                ),
                escape(p["displayName"].as_str().unwrap_or_default()),
                list(&p["addressPrefixes"]),
                escape(p["parentPoolName"].as_str().filter(|n| !n.is_empty()).unwrap_or("None")),
                escape(pool["location"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    body.push_str(&html::table(
        "pools",
        &["Name", "Display name", "Address space", "Parent pool", "Region"],
        &rows,
    ));
    visit.page(&format!("{} | IP address pools", name_of(&id)), &tenant, &body)
}
