//! A VNet PUT's body as a spec: its address space (static prefixes or pool allocations), its
//! subnets, and which pools the write associates with or releases from.

use std::collections::BTreeMap;

use ipam::count::AddressCount;
use ipam::prefix::Prefix;
use serde_json::{Value, json};

use crate::error::{ArmError, ErrorCode};
use crate::network::docs::{self, Doc};
use crate::request::{opt_array, opt_str, opt_strings};

/// One `ipamPoolPrefixAllocations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PoolAsk {
    /// The pool id as the client wrote it.
    pub(super) pool_id: String,
    pub(super) count_text: String,
    pub(super) count: AddressCount,
}

impl PoolAsk {
    pub(super) fn key(&self) -> String {
        self.pool_id.trim_end_matches('/').to_ascii_lowercase()
    }
}

#[derive(Debug, Clone)]
pub(super) struct SubnetSpec {
    pub(super) name: String,
    pub(super) prefixes: Vec<Prefix>,
    pub(super) asks: Vec<PoolAsk>,
}

#[derive(Debug, Clone)]
pub(super) struct VnetSpec {
    pub(super) location: String,
    pub(super) tags: Value,
    pub(super) prefixes: Vec<Prefix>,
    pub(super) asks: Vec<PoolAsk>,
    pub(super) subnets: Vec<SubnetSpec>,
    pub(super) flags: Value,
}

pub(super) fn parse_prefixes(texts: &[String], path: &str) -> Result<Vec<Prefix>, ArmError> {
    let prefixes = texts
        .iter()
        .enumerate()
        .map(|(at, text)| {
            Prefix::parse(text)
                .map_err(|error| ArmError::from(&error).with_target(format!("{path}[{at}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (at, prefix) in prefixes.iter().enumerate() {
        if let Some(other) = prefixes[..at].iter().find(|other| other.overlaps(prefix)) {
            return Err(ArmError::new(
                ErrorCode::NetcfgInvalidAddressPrefix,
                format!("The address prefixes {other} and {prefix} in '{path}' overlap."),
            )
            .with_target(path));
        }
    }
    Ok(prefixes)
}

pub(super) fn parse_asks(body: &Value, path: &str) -> Result<Vec<PoolAsk>, ArmError> {
    let Some(items) = opt_array(body, path)? else { return Ok(Vec::new()) };
    let mut asks: Vec<PoolAsk> = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let here = format!("{path}[{at}]");
        let pool_id = opt_str(item, "pool.id")?
            .or(opt_str(item, "id")?)
            .ok_or_else(|| ArmError::invalid_field(&format!("{here}.pool.id"), "is required"))?;
        let count_text = match item.get("numberOfIpAddresses") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(_)) => {
                return Err(ArmError::invalid_field(
                    &format!("{here}.numberOfIpAddresses"),
                    "must be a string, e.g. \"256\"",
                ));
            }
            _ => {
                return Err(ArmError::invalid_field(
                    &format!("{here}.numberOfIpAddresses"),
                    "is required",
                ));
            }
        };
        let count = ipam::request::parse_count(&count_text).map_err(|error| {
            ArmError::from(&error).with_target(format!("{here}.numberOfIpAddresses"))
        })?;
        let ask = PoolAsk { pool_id: pool_id.trim_end_matches('/').to_owned(), count_text, count };
        if asks.iter().any(|other| other.key() == ask.key()) {
            return Err(ArmError::new(
                ErrorCode::CannotHaveDuplicatePoolIds,
                format!("The pool '{}' appears more than once in '{path}'.", ask.pool_id),
            )
            .with_target(here));
        }
        asks.push(ask);
    }
    Ok(asks)
}

/// The allocated prefixes a document shows for its pools (what a client echoes back).
pub(super) fn allocated_in(doc_properties: &Value, path: &str) -> Vec<Prefix> {
    let mut prefixes: Vec<Prefix> = doc_properties
        .pointer(path)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .flat_map(|item| {
                    item["allocatedAddressPrefixes"].as_array().cloned().unwrap_or_default()
                })
                .filter_map(|text| text.as_str().and_then(|text| Prefix::parse(text).ok()))
                .collect()
        })
        .unwrap_or_default();
    prefixes.sort();
    prefixes
}

/// Static prefixes next to pool allocations are allowed only when they are what the resource
/// already holds from its pools (a client echoing a GET back).
pub(super) fn check_mix(
    prefixes: &[Prefix],
    asks: &[PoolAsk],
    echo: &[Prefix],
    path: &str,
) -> Result<(), ArmError> {
    let mut sorted = prefixes.to_vec();
    sorted.sort();
    if asks.is_empty() || prefixes.is_empty() || sorted == echo {
        return Ok(());
    }
    Err(ArmError::new(
        ErrorCode::CannotMixAddressPrefixAndPoolInPayload,
        format!(
            "'{path}' gives both address prefixes and IPAM pool allocations; give one or the other."
        ),
    ))
}

pub(super) fn parse_subnet(
    item: &Value,
    at: usize,
    existing: Option<&Value>,
) -> Result<SubnetSpec, ArmError> {
    let here = format!("properties.subnets[{at}]");
    let name = opt_str(item, "name")?
        .ok_or_else(|| ArmError::invalid_field(&format!("{here}.name"), "is required"))?;
    docs::check_name(name, "subnet").map_err(|error| error.with_target(format!("{here}.name")))?;
    let mut texts = opt_strings(item, "properties.addressPrefixes")?.unwrap_or_default();
    if let Some(single) = opt_str(item, "properties.addressPrefix")?
        && !texts.iter().any(|text| text == single)
    {
        texts.push(single.to_owned());
    }
    let prefixes = parse_prefixes(&texts, &format!("{here}.properties.addressPrefixes"))?;
    let asks = parse_asks(item, "properties.ipamPoolPrefixAllocations")
        .map_err(|error| retarget(error, &here))?;
    let echo = existing
        .map(|subnet| allocated_in(subnet, "/properties/ipamPoolPrefixAllocations"))
        .unwrap_or_default();
    check_mix(&prefixes, &asks, &echo, &here)?;
    let prefixes = if asks.is_empty() { prefixes } else { Vec::new() };
    Ok(SubnetSpec { name: name.to_owned(), prefixes, asks })
}

pub(super) fn retarget(mut error: ArmError, prefix: &str) -> ArmError {
    if let Some(target) = &error.target {
        error.target = Some(format!("{prefix}.{target}"));
    }
    error
}

pub(super) fn parse_vnet(body: &Value, existing: Option<&Doc>) -> Result<VnetSpec, ArmError> {
    let location = docs::location(body, existing)?;
    let tags = docs::tags(body, existing)?;
    if body.pointer("/properties/addressSpace").is_none_or(Value::is_null) {
        return Err(ArmError::invalid_field("properties.addressSpace", "is required"));
    }
    let texts = opt_strings(body, "properties.addressSpace.addressPrefixes")?.unwrap_or_default();
    let prefixes = parse_prefixes(&texts, "properties.addressSpace.addressPrefixes")?;
    let asks = parse_asks(body, "properties.addressSpace.ipamPoolPrefixAllocations")?;
    let echo = existing
        .map(|doc| allocated_in(&doc.body, "/properties/addressSpace/ipamPoolPrefixAllocations"))
        .unwrap_or_default();
    check_mix(&prefixes, &asks, &echo, "properties.addressSpace")?;
    if asks.is_empty() && prefixes.is_empty() {
        return Err(ArmError::invalid_field(
            "properties.addressSpace",
            "must give addressPrefixes or ipamPoolPrefixAllocations",
        ));
    }
    let prefixes = if asks.is_empty() { prefixes } else { Vec::new() };
    let existing_subnets = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default();
    let mut subnets: Vec<SubnetSpec> = Vec::new();
    for (at, item) in
        opt_array(body, "properties.subnets")?.cloned().unwrap_or_default().iter().enumerate()
    {
        let name = item["name"].as_str().unwrap_or_default();
        let old = existing_subnets
            .iter()
            .find(|subnet| subnet["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
        let subnet = parse_subnet(item, at, old)?;
        if subnets.iter().any(|other| other.name.eq_ignore_ascii_case(&subnet.name)) {
            return Err(ArmError::invalid_field(
                &format!("properties.subnets[{at}].name"),
                "repeats another subnet's name",
            ));
        }
        subnets.push(subnet);
    }
    let mut flags = json!({});
    for flag in ["enableDdosProtection", "enableVmProtection"] {
        flags[flag] = match body["properties"].get(flag) {
            None | Some(Value::Null) => json!(false),
            Some(Value::Bool(value)) => json!(value),
            Some(_) => {
                return Err(ArmError::invalid_field(
                    &format!("properties.{flag}"),
                    "must be a boolean",
                ));
            }
        };
    }
    Ok(VnetSpec { location, tags, prefixes, asks, subnets, flags })
}

/// The pools a document allocates from, with the count asked of each (lower-cased id → count).
pub(super) fn asks_of(doc_allocations: Option<&Value>) -> BTreeMap<String, String> {
    doc_allocations
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    Some((
                        item["pool"]["id"].as_str()?.to_ascii_lowercase(),
                        item["numberOfIpAddresses"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Pools whose use changes: (pools to associate or grow, pools to release), lower-cased ids,
/// with their ids as written.
pub(super) fn changes(spec: &VnetSpec, existing: Option<&Doc>) -> (Vec<String>, Vec<String>) {
    let old =
        asks_of(existing.and_then(|doc| {
            doc.body.pointer("/properties/addressSpace/ipamPoolPrefixAllocations")
        }));
    let old_subnets: BTreeMap<String, BTreeMap<String, String>> = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|subnet| {
            (
                subnet["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
                asks_of(subnet.pointer("/properties/ipamPoolPrefixAllocations")),
            )
        })
        .collect();
    let mut associate: Vec<String> = Vec::new();
    for ask in &spec.asks {
        if old.get(&ask.key()) != Some(&ask.count_text) {
            associate.push(ask.pool_id.clone());
        }
    }
    for subnet in &spec.subnets {
        let before =
            old_subnets.get(&subnet.name.to_ascii_lowercase()).cloned().unwrap_or_default();
        for ask in &subnet.asks {
            let known = associate.iter().any(|id| id.eq_ignore_ascii_case(&ask.pool_id));
            if before.get(&ask.key()) != Some(&ask.count_text) && !known {
                associate.push(ask.pool_id.clone());
            }
        }
    }
    let release =
        old.keys().filter(|key| !spec.asks.iter().any(|ask| ask.key() == **key)).cloned().collect();
    (associate, release)
}

/// The id of the network manager a pool id is under (the id itself if it names no pool).
pub(super) fn manager_of(pool_id: &str) -> &str {
    &pool_id[..pool_id.to_ascii_lowercase().find("/ipampools/").unwrap_or(pool_id.len())]
}
