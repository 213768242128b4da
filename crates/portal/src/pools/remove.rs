//! **X Remove** on Resources: the confirmation, then the VNet written back with static space.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use super::{NET, connected_tenants, field, form_pairs, manager_of};
use crate::SignedIn;
use crate::html::{self, encode, escape, name_of};

pub async fn confirm_remove(
    SignedIn { mut visit, tenant }: SignedIn,
    query: axum::extract::RawQuery,
) -> Response {
    let raw = query.0.unwrap_or_default();
    let return_to = format!("/portal/t/{tenant}/pool/remove?{raw}");
    let values = form_pairs(&Bytes::from(raw.clone()));
    let id = field(&values, "id").to_owned();
    let vnets: Vec<String> =
        values.iter().filter(|(k, _)| k == "vnet").map(|(_, v)| v.clone()).collect();
    let t = escape(&tenant);
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/portal/t/{t}/pool?id={}&amp;tab=allocations\">{}</a> › Remove</nav>",
        encode(&id),
        escape(name_of(&id))
    );
    if vnets.is_empty() {
        body.push_str(&html::error("Select the allocations to remove first."));
        return visit.page("Remove allocation", &tenant, &body);
    }
    let tenants =
        connected_tenants(&mut visit, &tenant, &manager_of(&id)).await.unwrap_or_default();
    let mut missing = Vec::new();
    for vnet in &vnets {
        let subscription = vnet.split('/').nth(2).unwrap_or_default();
        let owner = tenants
            .iter()
            .find(|(_, subs)| subs.iter().any(|s| s.eq_ignore_ascii_case(subscription)))
            .map_or_else(|| tenant.clone(), |(t, _)| t.clone());
        if !visit.tokens.contains_key(&owner) && !missing.contains(&owner) {
            missing.push(owner);
        }
    }
    let names: Vec<String> = vnets.iter().map(|v| escape(name_of(v))).collect();
    body.push_str(&format!(
        "<p>Remove the allocation of <b>{}</b> from pool {}?</p>",
        names.join(", "),
        escape(name_of(&id))
    ));
    if let Some(owner) = missing.first() {
        body.push_str(&format!(
            "<p>The virtual network is in tenant {}; authenticate to it first.</p><p><a id=\"authenticate\" href=\"/portal/signin?tenant={}&amp;return={}\">Authenticate</a></p>",
            escape(owner),
            encode(owner),
            encode(&return_to)
        ));
        return visit.page("Remove allocation", &tenant, &body);
    }
    let hidden: String = vnets
        .iter()
        .map(|v| format!("<input type=\"hidden\" name=\"vnet\" value=\"{}\">", escape(v)))
        .collect();
    body.push_str(&format!(
        "<form method=\"post\" action=\"/portal/t/{t}/pool/remove\">{}<input type=\"hidden\" name=\"id\" value=\"{}\">{hidden}\
         <button type=\"submit\" id=\"remove-yes\">Yes</button> <a href=\"/portal/t/{t}/pool?id={}&amp;tab=allocations\">No</a></form>",
        visit.csrf_field(),
        escape(&id),
        encode(&id)
    ));
    visit.page("Remove allocation", &tenant, &body)
}

/// **X Remove**: a GET shows the confirmation (and asks to authenticate where needed); the POST
/// (**Yes**) gives each selected VNet's space back, keeping its prefixes as static space.
pub async fn remove(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut values = form_pairs(&body);
    values.extend(query.iter().map(|(k, v)| (k.clone(), v.clone())));
    let id = field(&values, "id").to_owned();
    let vnets: Vec<String> =
        values.iter().filter(|(k, _)| k == "vnet").map(|(_, v)| v.clone()).collect();
    let tenants =
        connected_tenants(&mut visit, &tenant, &manager_of(&id)).await.unwrap_or_default();
    let tenant_of = |vnet: &str| -> String {
        let subscription = vnet.split('/').nth(2).unwrap_or_default();
        tenants
            .iter()
            .find(|(_, subs)| subs.iter().any(|s| s.eq_ignore_ascii_case(subscription)))
            .map_or_else(|| tenant.clone(), |(t, _)| t.clone())
    };
    let mut errors = Vec::new();
    for vnet_id in &vnets {
        let owner = tenant_of(vnet_id);
        let current = visit.arm(&owner, None, Method::GET, &format!("{vnet_id}?{NET}"), None).await;
        if !current.ok() {
            errors.push(format!("{}: {}", name_of(vnet_id), current.error_text()));
            continue;
        }
        let space = &current.body["properties"]["addressSpace"];
        let remaining: Vec<Value> = space["ipamPoolPrefixAllocations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a["pool"]["id"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(&id)))
            .collect();
        let address_space = if remaining.is_empty() {
            json!({"addressPrefixes": space["addressPrefixes"]})
        } else {
            json!({"ipamPoolPrefixAllocations": remaining})
        };
        let request = json!({"location": current.body["location"], "tags": current.body["tags"], "properties": {"addressSpace": address_space, "subnets": current.body["properties"]["subnets"]}});
        let aux = (owner != tenant).then_some(tenant.as_str());
        let answer =
            visit.arm(&owner, aux, Method::PUT, &format!("{vnet_id}?{NET}"), Some(&request)).await;
        if !answer.ok() {
            errors.push(format!("{}: {}", name_of(vnet_id), answer.error_text()));
        }
    }
    let outcome = if errors.is_empty() {
        format!("message={}", encode("The allocation was removed."))
    } else {
        format!("error={}", encode(&errors.join(" ")))
    };
    Redirect::to(&format!(
        "/portal/t/{tenant}/pool?id={}&tab=allocations&sub=resources&{outcome}",
        encode(&id)
    ))
    .into_response()
}
