//! A pool's **Allocations**: Resources, Static CIDRs and Child pools.

use axum::http::Method;
use serde_json::Value;

use super::{NET, connected_tenants, manager_of, span};
use crate::Visit;
use crate::html::{self, encode, escape, list, name_of};

pub(super) async fn allocations(
    visit: &mut Visit,
    tenant: &str,
    id: &str,
    pool: &Value,
    sub: &str,
) -> String {
    let t = escape(tenant);
    let link = |name: &str, label: &str| {
        let mark = if name == sub { " aria-current=\"page\"" } else { "" };
        format!(
            "<a href=\"/portal/t/{t}/pool?id={}&amp;tab=allocations&amp;sub={name}\"{mark} id=\"sub-{name}\">{label}</a>",
            encode(id)
        )
    };
    let mut out = format!(
        "<h2>Allocations</h2><nav class=\"tabs\">{}{}{}</nav>",
        link("resources", "Resources"),
        link("cidrs", "Static CIDRs"),
        link("children", "Child pools")
    );
    let status = |count: &str| -> String {
        let count: u128 = count.parse().unwrap_or(0);
        let bound =
            |field: &str| pool["properties"][field].as_str().and_then(|v| v.parse::<u128>().ok());
        let low = bound("minAllocationSize").is_some_and(|min| count < min);
        let high = bound("maxAllocationSize").is_some_and(|max| count > max);
        if low || high { "Non-compliant".to_owned() } else { "Allocated".to_owned() }
    };
    match sub {
        "cidrs" => {
            let answer = visit
                .arm(tenant, None, Method::GET, &format!("{id}/staticCidrs?{NET}"), None)
                .await;
            let rows: Vec<Vec<String>> = answer.body["value"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let count = c["properties"]["totalNumberOfIPAddresses"].as_str().unwrap_or("0");
                    vec![
                        escape(c["name"].as_str().unwrap_or_default()),
                        list(&c["properties"]["addressPrefixes"]),
                        escape(count),
                        t.clone(),
                        status(count),
                    ]
                })
                .collect();
            out.push_str(&html::table(
                "static-cidrs",
                &["Name", "Address space", "Address count", "Tenant", "Status"],
                &rows,
            ));
        }
        "children" => {
            let usage = visit
                .arm(tenant, None, Method::POST, &format!("{id}/getPoolUsage?{NET}"), None)
                .await;
            let rows: Vec<Vec<String>> = usage.body["childPools"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let child = c["resourceId"].as_str().unwrap_or_default();
                    let count: u128 = c["addressPrefixes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().and_then(span))
                        .map(|(_, size)| size)
                        .sum();
                    vec![
                        format!(
                            "<a href=\"/portal/t/{t}/pool?id={}\">{}</a>",
                            encode(child),
                            escape(name_of(child))
                        ),
                        list(&c["addressPrefixes"]),
                        count.to_string(),
                        t.clone(),
                        "Allocated".to_owned(),
                    ]
                })
                .collect();
            out.push_str(&html::table(
                "child-pools",
                &["Name", "Address space", "Address count", "Tenant", "Status"],
                &rows,
            ));
        }
        _ => {
            let answer = visit
                .arm(
                    tenant,
                    None,
                    Method::POST,
                    &format!("{id}/listAssociatedResources?{NET}"),
                    None,
                )
                .await;
            if !answer.ok() {
                out.push_str(&html::error(&answer.error_text()));
            }
            let tenants =
                connected_tenants(visit, tenant, &manager_of(id)).await.unwrap_or_default();
            let tenant_of = |resource: &str| -> String {
                let subscription =
                    resource.split('/').nth(2).unwrap_or_default().to_ascii_lowercase();
                tenants
                    .iter()
                    .find(|(_, subs)| subs.iter().any(|s| s.eq_ignore_ascii_case(&subscription)))
                    .map_or_else(|| "unknown".to_owned(), |(t, _)| t.clone())
            };
            let rows: Vec<Vec<String>> = answer.body["value"].as_array().into_iter().flatten().map(|a| {
                let resource = a["resourceId"].as_str().unwrap_or_default();
                let count = a["totalNumberOfIPAddresses"].as_str().unwrap_or("0");
                vec![
                    format!("<input type=\"checkbox\" name=\"vnet\" value=\"{}\" aria-label=\"Select {}\">", escape(resource), escape(name_of(resource))),
                    escape(name_of(resource)),
                    list(&a["addressPrefixes"]),
                    escape(count),
                    escape(&tenant_of(resource)),
                    status(count),
                ]
            }).collect();
            out.push_str(&format!(
                "<form method=\"get\" action=\"/portal/t/{t}/pool/remove\"><input type=\"hidden\" name=\"id\" value=\"{}\">{}\
                 <button type=\"submit\" id=\"remove\">X Remove</button></form>",
                escape(id),
                html::table("resources", &["", "Name", "Address space", "Address count", "Tenant", "Status"], &rows)
            ));
        }
    }
    out
}
