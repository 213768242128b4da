//! Network managers and their IP address pools: the pools list and **+ Create**, a pool's
//! **Overview** (usage numbers and a picture of its address space), **Allocations** (Resources,
//! Static CIDRs, Child pools), **+ Create > Allocate resources** (across tenants), **X Remove**,
//! **Allocate static CIDRs**, and **Access control (IAM)**: a module per page; this one has what
//! they share.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::http::Method;
use serde_json::Value;

use crate::Visit;

pub(crate) mod allocate;
pub(crate) mod allocations;
pub(crate) mod cidrs;
pub(crate) mod create;
pub(crate) mod iam;
pub(crate) mod managers;
pub(crate) mod overview;
pub(crate) mod remove;

pub(crate) const NET: &str = "api-version=2025-07-01";

/// The pairs of a form body (a name may repeat, as checkboxes do).
pub(crate) fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub(crate) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
}

pub(crate) fn here(tenant: &str, path: &str, query: &HashMap<String, String>) -> String {
    let query: String =
        form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
    format!("/portal/t/{tenant}/{path}?{query}")
}

/// A new role assignment name: a random GUID.
pub(crate) fn new_guid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The manager id a pool id lies under.
pub(crate) fn manager_of(pool_id: &str) -> String {
    let lower = pool_id.to_ascii_lowercase();
    pool_id[..lower.find("/ipampools/").unwrap_or(pool_id.len())].to_owned()
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

/// A prefix as (first address, size), for the picture.
pub(crate) fn span(prefix: &str) -> Option<(u128, u128)> {
    let (address, len) = prefix.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let (bits, value) = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (32, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (128, u128::from(v6)),
    };
    let size = if bits - len >= 128 { u128::MAX } else { 1u128 << (bits - len) };
    Some((value, size))
}

/// The tenants connected to a manager, with the subscriptions each puts in its scope; the
/// manager's own tenant first.
pub(crate) async fn connected_tenants(
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

#[cfg(test)]
mod tests {
    use super::overview::picture;
    use super::range;

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
