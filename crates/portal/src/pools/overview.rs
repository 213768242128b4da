//! A pool's page: **Overview** (usage numbers and a picture of its address space) and its tabs.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::Method;
use axum::response::Response;
use serde_json::Value;

use super::allocations::allocations;
use super::iam::iam;
use super::{NET, manager_of, span};
use crate::html::{self, encode, escape, list, name_of};
use crate::{SignedIn, Visit};

/// A picture of a pool's space: one bar per prefix, 1000 columns, each coloured by what holds
/// most of it (resources over static CIDRs over child pools over free), so thousands of small
/// allocations stay visible and the picture stays small.
pub(super) fn picture(pool_prefixes: &[String], parts: &[(String, usize)]) -> String {
    const WIDTH: usize = 1000;
    const COLOURS: [(&str, &str); 4] = [
        ("Free", "#e6e6e6"),
        ("Child pools", "#8fb8de"),
        ("Static CIDRs", "#f2b134"),
        ("Resources", "#2e7d32"),
    ];
    let mut svg = String::new();
    let mut y = 0;
    for pool_prefix in pool_prefixes {
        let Some((base, size)) = span(pool_prefix) else { continue };
        let mut columns = vec![0usize; WIDTH];
        for (prefix, kind) in parts {
            let Some((start, length)) = span(prefix) else { continue };
            if start < base || start - base >= size {
                continue;
            }
            let scale = |offset: u128| -> usize {
                let column = offset.saturating_mul(WIDTH as u128) / size.max(1);
                usize::try_from(column).unwrap_or(WIDTH).min(WIDTH)
            };
            let (from, to) = (
                scale(start - base),
                scale((start - base).saturating_add(length)).max(scale(start - base) + 1),
            );
            for column in columns.iter_mut().take(to.min(WIDTH)).skip(from) {
                *column = (*column).max(*kind);
            }
        }
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 12,
            escape(pool_prefix)
        ));
        let mut at = 0;
        while at < WIDTH {
            let kind = columns[at];
            let run = columns[at..].iter().take_while(|k| **k == kind).count();
            svg.push_str(&format!(
                "<rect x=\"{at}\" y=\"{}\" width=\"{run}\" height=\"24\" fill=\"{}\"/>",
                y + 16,
                COLOURS[kind].1
            ));
            at += run;
        }
        y += 48;
    }
    let legend: String = COLOURS.iter().map(|(name, colour)| format!("<span style=\"display:inline-block;width:1em;height:1em;background:{colour};margin:0 .3em 0 1em\"></span>{name}")).collect();
    format!(
        "<figure><svg id=\"pool-picture\" role=\"img\" aria-label=\"The pool's address space by address: resources, static CIDRs, child pools and free space\" viewBox=\"0 0 {WIDTH} {y}\" width=\"100%\" preserveAspectRatio=\"none\">{svg}</svg><figcaption>{legend}</figcaption></figure>"
    )
}

pub async fn pool(
    SignedIn { mut visit, tenant }: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id = query.get("id").cloned().unwrap_or_default();
    let tab = query.get("tab").map_or("overview", String::as_str).to_owned();
    let manager_id = manager_of(&id);
    let t = escape(&tenant);
    let link = |tab: &str, label: &str, current: &str| {
        let mark = if tab == current { " aria-current=\"page\"" } else { "" };
        format!(
            "<a href=\"/portal/t/{t}/pool?id={}&amp;tab={tab}\"{mark} id=\"tab-{tab}\">{label}</a>",
            encode(&id)
        )
    };
    let mut body = format!(
        "<nav class=\"crumbs\"><a href=\"/portal/t/{t}/manager?id={}\">{}</a> › {}</nav>\
         <nav class=\"tabs\">{}{}{}</nav>\
         <p><a id=\"allocate-resources\" href=\"/portal/t/{t}/pool/allocate?id={}\">+ Create &gt; Allocate resources</a> · \
         <a id=\"allocate-cidrs\" href=\"/portal/t/{t}/pool/cidr?id={}\">+ Create &gt; Allocate static CIDRs</a></p>",
        encode(&manager_id),
        escape(name_of(&manager_id)),
        escape(name_of(&id)),
        link("overview", "Overview", &tab),
        link("allocations", "Allocations", &tab),
        link("iam", "Access control (IAM)", &tab),
        encode(&id),
        encode(&id),
    );
    for (key, text) in [("created", "The pool was created."), ("message", "")] {
        if let Some(value) = query.get(key) {
            body.push_str(&html::ok(if text.is_empty() { value } else { text }));
        }
    }
    if let Some(error) = query.get("error") {
        body.push_str(&html::error(error));
    }
    let pool = visit.arm(&tenant, None, Method::GET, &format!("{id}?{NET}"), None).await;
    if !pool.ok() {
        body.push_str(&html::error(&pool.error_text()));
        return visit.page(name_of(&id), &tenant, &body);
    }
    match tab.as_str() {
        "allocations" => body.push_str(
            &allocations(
                &mut visit,
                &tenant,
                &id,
                &pool.body,
                query.get("sub").map_or("resources", String::as_str),
            )
            .await,
        ),
        "iam" => body.push_str(&iam(&mut visit, &tenant, &id).await),
        _ => body.push_str(&overview(&mut visit, &tenant, &id, &pool.body).await),
    }
    visit.page(name_of(&id), &tenant, &body)
}

pub(super) async fn overview(visit: &mut Visit, tenant: &str, id: &str, pool: &Value) -> String {
    let usage =
        visit.arm(tenant, None, Method::POST, &format!("{id}/getPoolUsage?{NET}"), None).await;
    if !usage.ok() {
        return html::error(&usage.error_text());
    }
    let u = &usage.body;
    let number = |field: &str| u[field].as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0);
    let percent = if number("totalNumberOfIPAddresses") > 0.0 {
        100.0 * number("numberOfAllocatedIPAddresses") / number("totalNumberOfIPAddresses")
    } else {
        0.0
    };
    let mut parts = Vec::new();
    for child in u["childPools"].as_array().into_iter().flatten() {
        for prefix in
            child["addressPrefixes"].as_array().into_iter().flatten().filter_map(Value::as_str)
        {
            parts.push((prefix.to_owned(), 1));
        }
    }
    let cidrs =
        visit.arm(tenant, None, Method::GET, &format!("{id}/staticCidrs?{NET}"), None).await;
    for cidr in cidrs.body["value"].as_array().into_iter().flatten() {
        for prefix in cidr["properties"]["addressPrefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            parts.push((prefix.to_owned(), 2));
        }
    }
    let associated = visit
        .arm(tenant, None, Method::POST, &format!("{id}/listAssociatedResources?{NET}"), None)
        .await;
    for association in associated.body["value"].as_array().into_iter().flatten() {
        for prefix in association["addressPrefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            parts.push((prefix.to_owned(), 3));
        }
    }
    let prefixes: Vec<String> = u["addressPrefixes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    format!(
        "<h2>Overview</h2><dl id=\"pool-overview\">\
         <dt>Display name</dt><dd>{}</dd><dt>Pool address space</dt><dd>{}</dd>\
         <dt>Allocated address space</dt><dd>{}</dd><dt>Reserved address space</dt><dd>{}</dd>\
         <dt>Available address space</dt><dd>{}</dd><dt>Available address count</dt><dd id=\"available-count\">{}</dd>\
         <dt>IP allocation</dt><dd id=\"allocation-percent\">{percent:.2}% ({} of {} allocated)</dd></dl>{}",
        escape(pool["properties"]["displayName"].as_str().unwrap_or_default()),
        list(&u["addressPrefixes"]),
        list(&u["allocatedAddressPrefixes"]),
        list(&u["reservedAddressPrefixes"]),
        list(&u["availableAddressPrefixes"]),
        escape(u["numberOfAvailableIPAddresses"].as_str().unwrap_or_default()),
        escape(u["numberOfAllocatedIPAddresses"].as_str().unwrap_or_default()),
        escape(u["totalNumberOfIPAddresses"].as_str().unwrap_or_default()),
        picture(&prefixes, &parts),
    )
}
