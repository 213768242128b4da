//! Virtual networks of the signed-in tenant: the list, a VNet's **Overview** and **Subnets**
//! (with the **IPAM pool** each address range comes from), and **+ Create** with "Allocate
//! using IP address pools".

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::html::{self, encode, escape, name_of};
use crate::pools::{field, form_pairs};
use crate::{SignedIn, across_subscriptions, subscriptions};

const NET: &str = "api-version=2025-07-01";

pub async fn list(SignedIn { mut visit, tenant }: SignedIn) -> Response {
    let t = escape(&tenant);
    let mut body =
        format!("<p><a id=\"create-vnet\" href=\"/portal/t/{t}/vnet/new\">+ Create</a></p>");
    let (vnets, errors) = across_subscriptions(&mut visit, &tenant, "virtualNetworks").await;
    body.push_str(&errors);
    let rows: Vec<Vec<String>> = vnets
        .iter()
        .map(|(subscription, vnet)| {
            let id = vnet["id"].as_str().unwrap_or_default();
            vec![
                format!(
                    "<a href=\"/portal/t/{t}/vnet?id={}\">{}</a>",
                    encode(id),
                    escape(name_of(id))
                ),
                html::list(&vnet["properties"]["addressSpace"]["addressPrefixes"]),
                escape(vnet["location"].as_str().unwrap_or_default()),
                escape(subscription),
            ]
        })
        .collect();
    body.push_str(&html::table(
        "virtual-networks",
        &["Name", "Address space", "Region", "Subscription"],
        &rows,
    ));
    visit.page("Virtual networks", &tenant, &body)
}

/// The pool name each allocated prefix of an `ipamPoolPrefixAllocations` list comes from.
fn pool_rows(allocations: &Value) -> Vec<(String, String)> {
    allocations
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            let pool = name_of(a["pool"]["id"].as_str().unwrap_or_default()).to_owned();
            a["allocatedAddressPrefixes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(move |p| p.as_str().map(|p| (p.to_owned(), pool.clone())))
        })
        .collect()
}

pub async fn show(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let tab = query.get("tab").map_or("overview", String::as_str).to_owned();
    let t = escape(&tenant);
    let link = |name: &str, label: &str| {
        let mark = if name == tab { " aria-current=\"page\"" } else { "" };
        format!(
            "<a href=\"/portal/t/{t}/vnet?id={}&amp;tab={name}\"{mark} id=\"tab-{name}\">{label}</a>",
            encode(&id)
        )
    };
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/portal/t/{t}/vnets\">Virtual networks</a> › {}</nav><nav class=\"tabs\">{}{}</nav>",
        escape(name_of(&id)),
        link("overview", "Overview"),
        link("subnets", "Subnets")
    );
    let vnet = visit.arm(&tenant, None, Method::GET, &format!("{id}?{NET}"), None).await;
    if !vnet.ok() {
        body.push_str(&html::error(&vnet.error_text()));
        return visit.page(name_of(&id), &tenant, &body);
    }
    let p = &vnet.body["properties"];
    let pools = pool_rows(&p["addressSpace"]["ipamPoolPrefixAllocations"]);
    let pool_of = |prefix: &str| {
        pools
            .iter()
            .find(|(p, _)| p == prefix)
            .map_or_else(|| "—".to_owned(), |(_, pool)| escape(pool))
    };
    if tab == "subnets" {
        let space: Vec<Vec<String>> = p["addressSpace"]["addressPrefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|prefix| vec![escape(prefix), pool_of(prefix)])
            .collect();
        body.push_str("<h2>Address space</h2>");
        body.push_str(&html::table("address-space", &["Address range", "IPAM pool"], &space));
        let rows: Vec<Vec<String>> = p["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|subnet| {
                let sp = &subnet["properties"];
                let prefixes = if sp["addressPrefix"].is_string() {
                    escape(sp["addressPrefix"].as_str().unwrap_or_default())
                } else {
                    html::list(&sp["addressPrefixes"])
                };
                let subnet_pools: Vec<String> = sp["ipamPoolPrefixAllocations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| escape(name_of(a["pool"]["id"].as_str().unwrap_or_default())))
                    .collect();
                vec![
                    escape(subnet["name"].as_str().unwrap_or_default()),
                    prefixes,
                    if subnet_pools.is_empty() {
                        "—".to_owned()
                    } else {
                        subnet_pools.join(", ")
                    },
                ]
            })
            .collect();
        body.push_str("<h2>Subnets</h2>");
        body.push_str(&html::table("subnets", &["Name", "Address range", "IPAM pool"], &rows));
    } else {
        body.push_str(&format!(
            "<dl><dt>Region</dt><dd>{}</dd><dt>Address space</dt><dd id=\"vnet-address-space\">{}</dd><dt>IPAM pools</dt><dd>{}</dd></dl>",
            escape(vnet.body["location"].as_str().unwrap_or_default()),
            html::list(&p["addressSpace"]["addressPrefixes"]),
            escape(&pools.iter().map(|(_, pool)| pool.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ")),
        ));
    }
    visit.page(name_of(&id), &tenant, &body)
}

fn vnet_form(
    tenant: &str,
    subscriptions: &[String],
    values: &[(String, String)],
    extra: &str,
    csrf: &str,
) -> String {
    let v = |name: &str| escape(field(values, name));
    let options: String = subscriptions
        .iter()
        .map(|s| {
            format!(
                "<option value=\"{0}\"{1}>{0}</option>",
                escape(s),
                if field(values, "subscription") == s { " selected" } else { "" }
            )
        })
        .collect();
    let checked = if field(values, "ipam") == "on" { " checked" } else { "" };
    format!(
        "{extra}<form method=\"post\" action=\"/portal/t/{}/vnet/new\">{csrf}\
         <fieldset><legend>Basics</legend><label>Subscription <select name=\"subscription\" id=\"vnet-subscription\">{options}</select></label>\
         <label>Resource group <input name=\"group\" id=\"vnet-group\" required value=\"{}\"></label>\
         <label>Name <input name=\"name\" id=\"vnet-name\" required value=\"{}\"></label>\
         <label>Region <input name=\"location\" id=\"vnet-region\" required value=\"{}\"></label></fieldset>\
         <fieldset><legend>IP addresses</legend>\
         <label>Address space <input name=\"prefix\" id=\"vnet-prefix\" value=\"{}\" placeholder=\"10.0.0.0/16\"></label>\
         <label><input type=\"checkbox\" name=\"ipam\" id=\"vnet-ipam\"{checked}> Allocate using IP address pools</label>\
         <label>IP address pool (id) <input name=\"pool\" id=\"vnet-pool\" value=\"{}\" size=\"80\"></label>\
         <label>Number of IP addresses <input name=\"count\" id=\"vnet-count\" value=\"{}\"></label></fieldset>\
         <button type=\"submit\" id=\"vnet-submit\">Create</button></form>",
        escape(tenant),
        v("group"),
        v("name"),
        if field(values, "location").is_empty() { "centralus".to_owned() } else { v("location") },
        v("prefix"),
        v("pool"),
        if field(values, "count").is_empty() { "256".to_owned() } else { v("count") },
    )
}

pub async fn new_vnet(SignedIn { mut visit, tenant }: SignedIn) -> Response {
    let subscriptions = subscriptions(&mut visit, &tenant).await.unwrap_or_default();
    visit.page(
        "Create virtual network",
        &tenant,
        &vnet_form(&tenant, &subscriptions, &[], "", &visit.csrf_field()),
    )
}

pub async fn create_vnet(SignedIn { mut visit, tenant }: SignedIn, body: Bytes) -> Response {
    let values = form_pairs(&body);
    let own = subscriptions(&mut visit, &tenant).await.unwrap_or_default();
    let address_space = if field(&values, "ipam") == "on" {
        json!({"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": field(&values, "count"), "pool": {"id": field(&values, "pool")}}]})
    } else {
        json!({"addressPrefixes": [field(&values, "prefix")]})
    };
    // A pool in another tenant needs that tenant's token as auxiliary: the signed-in tenant
    // whose subscriptions hold the pool's.
    let mut aux = None;
    let pool_subscription = field(&values, "pool").split('/').nth(2).unwrap_or_default().to_owned();
    if field(&values, "ipam") == "on"
        && !own.iter().any(|s| s.eq_ignore_ascii_case(&pool_subscription))
    {
        let others: Vec<String> = visit.tokens.keys().filter(|t| **t != tenant).cloned().collect();
        for other in others {
            if subscriptions(&mut visit, &other)
                .await
                .unwrap_or_default()
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&pool_subscription))
            {
                aux = Some(other);
            }
        }
    }
    let id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}",
        field(&values, "subscription"),
        encode(field(&values, "group")),
        encode(field(&values, "name"))
    );
    let request = json!({"location": field(&values, "location"), "properties": {"addressSpace": address_space}});
    let answer = visit
        .arm(&tenant, aux.as_deref(), Method::PUT, &format!("{id}?{NET}"), Some(&request))
        .await;
    if !answer.ok() {
        return visit.page(
            "Create virtual network",
            &tenant,
            &vnet_form(
                &tenant,
                &own,
                &values,
                &html::error(&answer.error_text()),
                &visit.csrf_field(),
            ),
        );
    }
    Redirect::to(&format!(
        "/portal/t/{tenant}/vnet?id={}",
        encode(answer.body["id"].as_str().unwrap_or(&id))
    ))
    .into_response()
}
