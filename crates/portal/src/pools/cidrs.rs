//! **+ Create > Allocate static CIDRs**.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{NET, field, form_pairs, range};
use crate::SignedIn;
use crate::html::{self, encode, escape, list};

pub async fn new_cidr(
    SignedIn { visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    visit.page(
        "Allocate static CIDRs",
        &tenant,
        &cidr_form(&tenant, &id, &[], "", &visit.csrf_field()),
    )
}

pub(super) fn cidr_form(
    tenant: &str,
    id: &str,
    values: &[(String, String)],
    extra: &str,
    csrf: &str,
) -> String {
    let v = |name: &str| escape(field(values, name));
    format!(
        "{extra}<form method=\"post\" action=\"/portal/t/{}/pool/cidr?id={}\">{csrf}\
         <label>Name <input name=\"name\" id=\"cidr-name\" required value=\"{}\"></label>\
         <label>Description <input name=\"description\" id=\"cidr-description\" value=\"{}\"></label>\
         <label>Starting address <input name=\"start\" id=\"cidr-start\" value=\"{}\"></label>\
         <label>Size (prefix length) <input name=\"size\" id=\"cidr-size\" value=\"{}\" size=\"4\"></label>\
         <p class=\"muted\">Or leave the starting address empty and give a number of addresses:</p>\
         <label>Number of IP addresses <input name=\"count\" id=\"cidr-count\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"cidr-allocate\">Allocate</button></form>",
        escape(tenant),
        encode(id),
        v("name"),
        v("description"),
        v("start"),
        v("size"),
        v("count"),
    )
}

pub async fn create_cidr(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let values = form_pairs(&body);
    let properties = if field(&values, "start").is_empty() {
        json!({"numberOfIPAddressesToAllocate": field(&values, "count"), "description": field(&values, "description")})
    } else {
        match range(field(&values, "start"), field(&values, "size")) {
            Ok((prefix, ..)) => {
                json!({"addressPrefixes": [prefix], "description": field(&values, "description")})
            }
            Err(error) => {
                return visit.page(
                    "Allocate static CIDRs",
                    &tenant,
                    &cidr_form(&tenant, &id, &values, &html::error(&error), &visit.csrf_field()),
                );
            }
        }
    };
    let path = format!("{id}/staticCidrs/{}?{NET}", encode(field(&values, "name")));
    let answer = visit
        .arm(&tenant, None, Method::PUT, &path, Some(&json!({"properties": properties})))
        .await;
    if !answer.ok() {
        return visit.page(
            "Allocate static CIDRs",
            &tenant,
            &cidr_form(
                &tenant,
                &id,
                &values,
                &html::error(&answer.error_text()),
                &visit.csrf_field(),
            ),
        );
    }
    let message = format!(
        "Static CIDR {} holds {}.",
        field(&values, "name"),
        list(&answer.body["properties"]["addressPrefixes"])
    );
    Redirect::to(&format!(
        "/portal/t/{tenant}/pool?id={}&tab=allocations&sub=cidrs&message={}",
        encode(&id),
        encode(&message)
    ))
    .into_response()
}
