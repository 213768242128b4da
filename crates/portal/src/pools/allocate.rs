//! **+ Create > Allocate resources**: a connected tenant, its virtual networks, a size, **Associate**.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::{NET, connected_tenants, field, form_pairs, here, manager_of};
use crate::html::{self, encode, escape, list, name_of};
use crate::{SignedIn, sign_in_first};

/// **+ Create > Allocate resources**: choose a connected tenant, Apply, Authenticate, pick
/// virtual networks in the manager's scope there, a size, Associate.
pub async fn allocate(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let return_to = here(&tenant, "pool/allocate", &query);
    let id = query.get("id").cloned().unwrap_or_default();
    let target = query.get("target").cloned().unwrap_or_default();
    let t = escape(&tenant);
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/portal/t/{t}/pool?id={}\">{}</a> › Allocate resources</nav>",
        encode(&id),
        escape(name_of(&id))
    );
    let tenants = match connected_tenants(&mut visit, &tenant, &manager_of(&id)).await {
        Ok(tenants) => tenants,
        Err(error) => {
            body.push_str(&html::error(&error));
            return visit.page("Allocate resources", &tenant, &body);
        }
    };
    let options: String = tenants
        .iter()
        .map(|(id, _)| {
            let selected = if *id == target { " selected" } else { "" };
            let label =
                visit.tokens.get(id).map_or_else(|| id.clone(), |t| format!("{id} ({})", t.upn));
            format!("<option value=\"{}\"{selected}>{}</option>", escape(id), escape(&label))
        })
        .collect();
    body.push_str(&format!(
        "<form method=\"get\" action=\"/portal/t/{t}/pool/allocate\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
         <label>Tenant : <select name=\"target\" id=\"allocate-tenant\">{options}</select></label>\
         <button type=\"submit\" id=\"allocate-apply\">Apply</button></form>",
        escape(&id)
    ));
    if target.is_empty() {
        return visit.page("Allocate resources", &tenant, &body);
    }
    if !visit.tokens.contains_key(&target) {
        body.push_str(&format!(
            "<p>Sign in to tenant {} with an account that has Network Contributor on its virtual networks.</p>\
             <p><a id=\"authenticate\" href=\"/portal/signin?tenant={}&amp;return={}\">Authenticate</a></p>",
            escape(&target),
            encode(&target),
            encode(&return_to)
        ));
        return visit.page("Allocate resources", &tenant, &body);
    }
    let subscriptions =
        tenants.iter().find(|(t, _)| *t == target).map(|(_, s)| s.clone()).unwrap_or_default();
    let mut rows = Vec::new();
    for subscription in subscriptions {
        let path = format!(
            "/subscriptions/{subscription}/providers/Microsoft.Network/virtualNetworks?{NET}"
        );
        let answer = visit.arm(&target, None, Method::GET, &path, None).await;
        if !answer.ok() {
            body.push_str(&html::error(&answer.error_text()));
        }
        for vnet in answer.body["value"].as_array().into_iter().flatten() {
            let vnet_id = vnet["id"].as_str().unwrap_or_default();
            rows.push(vec![
                format!("<input type=\"checkbox\" name=\"vnet\" value=\"{}\" id=\"vnet-{}\" aria-label=\"Select {}\">", escape(vnet_id), escape(name_of(vnet_id)), escape(name_of(vnet_id))),
                escape(name_of(vnet_id)),
                list(&vnet["properties"]["addressSpace"]["addressPrefixes"]),
                escape(&subscription),
            ]);
        }
    }
    let sizes: String =
        ["8", "16", "32", "64", "100", "128", "256", "512", "1024", "4096", "65536"]
            .iter()
            .map(|size| {
                format!(
                    "<option value=\"{size}\"{}>{size}</option>",
                    if *size == "256" { " selected" } else { "" }
                )
            })
            .collect();
    body.push_str(&format!(
        "<form method=\"post\" action=\"/portal/t/{t}/pool/allocate?id={}&amp;target={}\">{}{}\
         <label>Number of IP addresses <select name=\"size\" id=\"allocate-size\">{sizes}</select></label>\
         <button type=\"submit\" id=\"associate\">Associate</button></form>",
        encode(&id),
        encode(&target),
        visit.csrf_field(),
        html::table("vnets", &["", "Virtual network", "Address space", "Subscription"], &rows)
    ));
    visit.page("Allocate resources", &tenant, &body)
}

pub async fn associate(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let target = query.get("target").cloned().unwrap_or_default();
    let return_to =
        format!("/portal/t/{tenant}/pool/allocate?id={}&target={}", encode(&id), encode(&target));
    if !visit.tokens.contains_key(&target) {
        return sign_in_first(&target, &return_to);
    }
    let values = form_pairs(&body);
    let size = field(&values, "size").to_owned();
    let vnets: Vec<String> =
        values.iter().filter(|(k, _)| k == "vnet").map(|(_, v)| v.clone()).collect();
    if vnets.is_empty() {
        return Redirect::to(&format!(
            "/portal/t/{tenant}/pool?id={}&error={}",
            encode(&id),
            encode("Select at least one virtual network.")
        ))
        .into_response();
    }
    let aux = (target != tenant).then_some(tenant.as_str());
    let mut errors = Vec::new();
    for vnet_id in &vnets {
        let current =
            visit.arm(&target, None, Method::GET, &format!("{vnet_id}?{NET}"), None).await;
        if !current.ok() {
            errors.push(format!("{}: {}", name_of(vnet_id), current.error_text()));
            continue;
        }
        let mut allocations: Vec<Value> =
            current.body["properties"]["addressSpace"]["ipamPoolPrefixAllocations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| !a["pool"]["id"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&id)))
                .collect();
        allocations.push(json!({"numberOfIpAddresses": size, "pool": {"id": id}}));
        let request = json!({
            "location": current.body["location"],
            "tags": current.body["tags"],
            "properties": {"addressSpace": {"ipamPoolPrefixAllocations": allocations}, "subnets": current.body["properties"]["subnets"]},
        });
        let answer =
            visit.arm(&target, aux, Method::PUT, &format!("{vnet_id}?{NET}"), Some(&request)).await;
        if !answer.ok() {
            errors.push(format!("{}: {}", name_of(vnet_id), answer.error_text()));
        }
    }
    let outcome = if errors.is_empty() {
        format!("message={}", encode(&format!("Associated {} virtual network(s).", vnets.len())))
    } else {
        format!("error={}", encode(&errors.join(" ")))
    };
    Redirect::to(&format!(
        "/portal/t/{tenant}/pool?id={}&tab=allocations&sub=resources&{outcome}",
        encode(&id)
    ))
    .into_response()
}
