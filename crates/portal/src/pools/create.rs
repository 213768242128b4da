//! A pool's **+ Create**: Basics and IP addresses, **Review**, **Create**.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{NET, field, form_pairs, range};
use crate::html::{self, encode, escape};
use crate::{SignedIn, Visit};

pub(super) fn pool_form(
    tenant: &str,
    manager_id: &str,
    pools: &[String],
    values: &[(String, String)],
    extra: &str,
    csrf: &str,
) -> String {
    let v = |name: &str| escape(field(values, name));
    let parents: String = std::iter::once("<option value=\"\">None</option>".to_owned())
        .chain(pools.iter().map(|p| {
            let selected = if field(values, "parent") == p { " selected" } else { "" };
            format!("<option value=\"{0}\"{selected}>{0}</option>", escape(p))
        }))
        .collect();
    let sizes: String = (8..=29)
        .map(|len| {
            let selected = if field(values, "size") == len.to_string()
                || (field(values, "size").is_empty() && len == 16)
            {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{len}\"{selected}>/{len} ({} addresses)</option>",
                1u64 << (32 - len)
            )
        })
        .collect();
    format!(
        "{extra}<form method=\"post\" action=\"/portal/t/{}/pool/new?manager={}\">{csrf}\
         <fieldset><legend>Basics</legend>\
         <label>Name <input name=\"name\" id=\"pool-name\" required value=\"{}\"></label>\
         <label>Display name <input name=\"displayName\" id=\"pool-display-name\" value=\"{}\"></label>\
         <label>Region <input name=\"location\" id=\"pool-region\" required value=\"{}\"></label>\
         <label>Description <input name=\"description\" id=\"pool-description\" value=\"{}\"></label>\
         <label>Parent pool <select name=\"parent\" id=\"pool-parent\">{parents}</select></label></fieldset>\
         <fieldset><legend>IP addresses</legend>\
         <label>Starting address <input name=\"start\" id=\"pool-start\" required value=\"{}\"></label>\
         <label>Size <select name=\"size\" id=\"pool-size\">{sizes}</select></label>\
         <p class=\"muted\">IPv6: type the length, e.g. <code>48</code>, in a starting address like <code>fd00::</code> and choose any size; the length typed wins.</p>\
         <label>Length (overrides Size) <input name=\"length\" id=\"pool-length\" value=\"{}\" size=\"4\"></label></fieldset>\
         <button type=\"submit\" name=\"action\" value=\"review\" id=\"pool-review\">Review</button> \
         <button type=\"submit\" name=\"action\" value=\"create\" id=\"pool-submit\">Create</button></form>",
        escape(tenant),
        encode(manager_id),
        v("name"),
        v("displayName"),
        if field(values, "location").is_empty() { "centralus".to_owned() } else { v("location") },
        v("description"),
        v("start"),
        v("length"),
    )
}

pub(super) async fn pool_names(visit: &mut Visit, tenant: &str, manager_id: &str) -> Vec<String> {
    let answer =
        visit.arm(tenant, None, Method::GET, &format!("{manager_id}/ipamPools?{NET}"), None).await;
    answer.body["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

pub async fn new_pool(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let manager_id = query.get("manager").cloned().unwrap_or_default();
    let pools = pool_names(&mut visit, &tenant, &manager_id).await;
    let body = pool_form(&tenant, &manager_id, &pools, &[], "", &visit.csrf_field());
    visit.page("Create an IP address pool", &tenant, &body)
}

pub async fn create_pool(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let manager_id = query.get("manager").cloned().unwrap_or_default();
    let values = form_pairs(&body);
    let pools = pool_names(&mut visit, &tenant, &manager_id).await;
    let size = if field(&values, "length").is_empty() {
        field(&values, "size")
    } else {
        field(&values, "length")
    };
    let computed = range(field(&values, "start"), size);
    let summary = match &computed {
        Ok((prefix, first, last, count)) => html::ok(&format!(
            "Address range: {first} – {last} ({count} addresses), prefix {prefix}."
        )),
        Err(error) => html::error(error),
    };
    if field(&values, "action") != "create" || computed.is_err() {
        let page = pool_form(&tenant, &manager_id, &pools, &values, &summary, &visit.csrf_field());
        return visit.page("Create an IP address pool", &tenant, &page);
    }
    let prefix = computed.map(|(prefix, ..)| prefix).unwrap_or_default();
    let name = field(&values, "name");
    let request = json!({
        "location": field(&values, "location"),
        "properties": {
            "addressPrefixes": [prefix],
            "displayName": field(&values, "displayName"),
            "description": field(&values, "description"),
            "parentPoolName": field(&values, "parent"),
        }
    });
    let path = format!("{manager_id}/ipamPools/{}?{NET}", encode(name));
    let answer = visit.arm(&tenant, None, Method::PUT, &path, Some(&request)).await;
    if !answer.ok() {
        let page = pool_form(
            &tenant,
            &manager_id,
            &pools,
            &values,
            &html::error(&answer.error_text()),
            &visit.csrf_field(),
        );
        return visit.page("Create an IP address pool", &tenant, &page);
    }
    let id = answer.body["id"].as_str().unwrap_or_default();
    Redirect::to(&format!("/portal/t/{tenant}/pool?id={}&created=1", encode(id))).into_response()
}
