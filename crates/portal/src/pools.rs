//! Network managers and their IP address pools: the pools list and **+ Create**, a pool's
//! **Overview** (usage numbers and a picture of its address space), **Allocations** (Resources,
//! Static CIDRs, Child pools), **+ Create > Allocate resources** (across tenants), **X Remove**,
//! **Allocate static CIDRs**, and **Access control (IAM)**.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::html::{self, encode, escape, list, name_of};
use crate::{Portal, Visit, across_subscriptions, require_signed_in, sign_in_first};

const NET: &str = "api-version=2025-07-01";

/// The pairs of a form body (a name may repeat, as checkboxes do).
pub(crate) fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
}

fn here(tenant: &str, path: &str, query: &HashMap<String, String>) -> String {
    let query: String =
        form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
    format!("/portal/t/{tenant}/{path}?{query}")
}

/// A new role assignment name: a random GUID.
fn new_guid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The manager id a pool id lies under.
fn manager_of(pool_id: &str) -> String {
    let lower = pool_id.to_ascii_lowercase();
    pool_id[..lower.find("/ipampools/").unwrap_or(pool_id.len())].to_owned()
}

pub async fn managers(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    if let Some(redirect) =
        require_signed_in(&visit, &tenant, &format!("/portal/t/{tenant}/managers"))
    {
        return redirect;
    }
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    if let Some(redirect) = require_signed_in(&visit, &tenant, &here(&tenant, "manager", &query)) {
        return redirect;
    }
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

/// `start` and `size` (a prefix length) as a prefix and its first and last address.
pub(crate) fn range(start: &str, size: &str) -> Result<(String, String, String, u128), String> {
    let address: IpAddr = start.parse().map_err(|_| format!("'{start}' is not an IP address."))?;
    let len: u32 = size
        .trim_start_matches('/')
        .parse()
        .map_err(|_| format!("'{size}' is not a prefix length."))?;
    let (bits, value) = match address {
        IpAddr::V4(v4) => (32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (128, u128::from(v6)),
    };
    if len > bits {
        return Err(format!("/{len} is longer than an {}-bit address.", bits));
    }
    let count = if bits - len == 128 { u128::MAX } else { 1u128 << (bits - len) };
    let last = value.saturating_add(count - 1);
    let show = |value: u128| match address {
        IpAddr::V4(_) => {
            std::net::Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX)).to_string()
        }
        IpAddr::V6(_) => std::net::Ipv6Addr::from(value).to_string(),
    };
    Ok((format!("{address}/{len}"), show(value), show(last), count))
}

fn pool_form(
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

async fn pool_names(visit: &mut Visit, tenant: &str, manager_id: &str) -> Vec<String> {
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    if let Some(redirect) = require_signed_in(&visit, &tenant, &here(&tenant, "pool/new", &query)) {
        return redirect;
    }
    let manager_id = query.get("manager").cloned().unwrap_or_default();
    let pools = pool_names(&mut visit, &tenant, &manager_id).await;
    let body = pool_form(&tenant, &manager_id, &pools, &[], "", &visit.csrf_field());
    visit.page("Create an IP address pool", &tenant, &body)
}

pub async fn create_pool(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    if let Some(redirect) =
        require_signed_in(&visit, &tenant, &format!("/portal/t/{tenant}/managers"))
    {
        return redirect;
    }
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

/// A prefix as (first address, size), for the picture.
fn span(prefix: &str) -> Option<(u128, u128)> {
    let (address, len) = prefix.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let (bits, value) = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (128, u128::from(v6)),
    };
    let size = if bits - len >= 128 { u128::MAX } else { 1u128 << (bits - len) };
    Some((value, size))
}

/// A picture of a pool's space: one bar per prefix, 1000 columns, each coloured by what holds
/// most of it (resources over static CIDRs over child pools over free), so thousands of small
/// allocations stay visible and the picture stays small.
fn picture(pool_prefixes: &[String], parts: &[(String, usize)]) -> String {
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    if let Some(redirect) = require_signed_in(&visit, &tenant, &here(&tenant, "pool", &query)) {
        return redirect;
    }
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

async fn overview(visit: &mut Visit, tenant: &str, id: &str, pool: &Value) -> String {
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

/// The tenants connected to a manager, with the subscriptions each puts in its scope; the
/// manager's own tenant first.
async fn connected_tenants(
    visit: &mut Visit,
    tenant: &str,
    manager_id: &str,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let manager = visit.arm(tenant, None, Method::GET, &format!("{manager_id}?{NET}"), None).await;
    if !manager.ok() {
        return Err(manager.error_text());
    }
    let scopes = &manager.body["properties"]["networkManagerScopes"];
    let ids = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| s.trim_start_matches("/subscriptions/").to_owned())
            .collect()
    };
    let mut tenants = vec![(tenant.to_owned(), ids(&scopes["subscriptions"]))];
    for cross in scopes["crossTenantScopes"].as_array().into_iter().flatten() {
        tenants.push((
            cross["tenantId"].as_str().unwrap_or_default().to_owned(),
            ids(&cross["subscriptions"]),
        ));
    }
    Ok(tenants)
}

async fn allocations(visit: &mut Visit, tenant: &str, id: &str, pool: &Value, sub: &str) -> String {
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

async fn iam(visit: &mut Visit, tenant: &str, id: &str) -> String {
    let path = format!(
        "{id}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()"
    );
    let answer = visit.arm(tenant, None, Method::GET, &path, None).await;
    let mut out = String::from("<h2>Access control (IAM)</h2>");
    if !answer.ok() {
        out.push_str(&html::error(&answer.error_text()));
    }
    let names: HashMap<&str, &str> = [
        ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
        ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
        ("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader"),
        ("18d7d88d-d35e-4fb5-a7b8-56a3581c7037", "User Access Administrator"),
        ("4d97b98b-1d4f-4787-a291-c67834d212e7", "Network Contributor"),
        ("7b3e853f-ad5d-4fb5-a7b8-56a3581c7037", "IPAM Pool User"),
    ]
    .into_iter()
    .collect();
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
    let options: String =
        ["IPAM Pool User", "Network Contributor", "Reader", "Contributor", "Owner"]
            .iter()
            .map(|name| {
                let id = names.iter().find(|(_, n)| *n == name).map_or("", |(id, _)| *id);
                format!("<option value=\"{id}\">{name}</option>")
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    let id = query.get("id").cloned().unwrap_or_default();
    if let Some(redirect) = require_signed_in(
        &visit,
        &tenant,
        &format!("/portal/t/{tenant}/pool?id={}&tab=iam", encode(&id)),
    ) {
        return redirect;
    }
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

/// **+ Create > Allocate resources**: choose a connected tenant, Apply, Authenticate, pick
/// virtual networks in the manager's scope there, a size, Associate.
pub async fn allocate(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    let return_to = here(&tenant, "pool/allocate", &query);
    if let Some(redirect) = require_signed_in(&visit, &tenant, &return_to) {
        return redirect;
    }
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
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

pub async fn confirm_remove(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    query: axum::extract::RawQuery,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    let raw = query.0.unwrap_or_default();
    let return_to = format!("/portal/t/{tenant}/pool/remove?{raw}");
    if let Some(redirect) = require_signed_in(&visit, &tenant, &return_to) {
        return redirect;
    }
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
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

pub async fn new_cidr(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let visit = Visit::from(&portal, &headers);
    if let Some(redirect) = require_signed_in(&visit, &tenant, &here(&tenant, "pool/cidr", &query))
    {
        return redirect;
    }
    let id = query.get("id").cloned().unwrap_or_default();
    visit.page(
        "Allocate static CIDRs",
        &tenant,
        &cidr_form(&tenant, &id, &[], "", &visit.csrf_field()),
    )
}

fn cidr_form(
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
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mut visit = Visit::from(&portal, &headers);
    let id = query.get("id").cloned().unwrap_or_default();
    if let Some(redirect) = require_signed_in(
        &visit,
        &tenant,
        &format!("/portal/t/{tenant}/pool/cidr?id={}", encode(&id)),
    ) {
        return redirect;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_pictures() {
        assert_eq!(
            range("10.1.0.0", "16").unwrap(),
            ("10.1.0.0/16".into(), "10.1.0.0".into(), "10.1.255.255".into(), 65536)
        );
        assert!(range("nonsense", "16").is_err());
        assert_eq!(range("fd00::", "64").unwrap().3, 1u128 << 64);
        let svg = picture(&["10.0.0.0/8".into()], &[("10.0.0.0/26".into(), 3)]);
        assert!(svg.contains("#2e7d32"), "a tiny allocation still shows");
    }
}
