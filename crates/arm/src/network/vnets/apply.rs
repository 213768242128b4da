//! The transaction of a VNet write: the VNet read locked, its allocations taken, grown or
//! released in the pools' allocator, its subnets carved from its space (`ipam::subnet`), and its
//! document written with the operation's record.

use std::collections::BTreeMap;

use ipam::count::AddressCount;
use ipam::prefix::{Family, Prefix};
use ipam::request::Request;
use ipam::usage::Holder;
use serde_json::{Value, json};
use store::WriteTx;
use store::pool::{Change, Owner};
use store::resource::Precondition;

use super::checks::pool_not_found;
use super::spec::{VnetSpec, asks_of, manager_of};
use crate::error::{ArmError, ErrorCode};
use crate::network::docs::{self, Doc, VNET_TYPE};
use crate::operation;
use crate::request::Ctx;

const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";

/// What a VNet PUT's transaction writes.
pub(super) struct VnetWrite {
    pub(super) id: String,
    pub(super) spec: VnetSpec,
    pub(super) tenant: String,
    pub(super) precondition: Precondition,
    /// The record of the PUT's operation, written with the VNet's document in one statement.
    pub(super) recording: operation::Recording,
}

/// The network manager of the first pool a VNet write allocates in or releases to: on
/// PostgreSQL, writes that lock one manager's pool trees share transactions
/// (`store::Store::write_on`). A write touching several managers' pools is queued by the first.
pub(super) fn queue_key<'a>(mut pools: impl Iterator<Item = &'a str>) -> Option<String> {
    pools.next().map(|pool_id| manager_of(pool_id).to_owned())
}

/// A write transaction, in the queue of `key` when there is one (`queue_key`).
pub(super) async fn write_queued<T, F>(ctx: &Ctx, key: Option<String>, f: F) -> Result<T, ArmError>
where
    F: FnMut(&mut WriteTx<'_>) -> Result<T, ArmError> + Send + 'static,
    T: Send + 'static,
{
    match key {
        Some(key) => ctx.write_on(&key, f).await,
        None => ctx.write(f).await,
    }
}

/// The sum of the blocks a count becomes in a family (the count rounded up to whole blocks).
fn rounded(family: Family, count: AddressCount) -> Result<AddressCount, ArmError> {
    let lens =
        ipam::request::blocks_for_count(family, count).map_err(|error| ArmError::from(&error))?;
    let blocks: Vec<Prefix> = lens.iter().filter_map(|len| Prefix::new(family, 0, *len)).collect();
    Ok(blocks.iter().fold(AddressCount::ZERO, |sum, block| sum.add_disjoint(block.size())))
}

/// The transaction of a VNet PUT.
pub(super) fn apply(
    tx: &mut WriteTx<'_>,
    put: &VnetWrite,
    change: Change<'_>,
    missing: bool,
) -> Result<(Doc, bool), ArmError> {
    let VnetWrite { id, spec, tenant, precondition, recording } = put;
    // Read locked: writes to this VNet take turns, across processes. A VNet that was `missing`
    // when the request began is created without that read, a round trip fewer; if it has been
    // created meanwhile, the insert finds it and the transaction runs again, reading it.
    let (stored, existing) =
        if missing { (None, None) } else { docs::get_for_write(tx, VNET_TYPE, id)? };
    // A VNet's allocations live and die with its document, in the same transactions (every
    // delete releases them), so where nothing is stored nothing is held.
    let held = if stored.is_some() { tx.allocations_of_owner(id)? } else { Vec::new() };
    let mut blocks_by_pool: BTreeMap<String, Vec<Prefix>> = BTreeMap::new();
    let mut kept = Vec::new();
    for ask in &spec.asks {
        // Read with its tree locked, as allocating in it would lock it: one look-up, not two.
        let pool =
            tx.pool_lock_by_key(&ask.pool_id)?.ok_or_else(|| pool_not_found(&ask.pool_id))?;
        let record = pool.record();
        let mine: Vec<_> = held.iter().filter(|a| a.pool() == record.id()).collect();
        let have = mine
            .iter()
            .flat_map(|a| a.blocks())
            .fold(AddressCount::ZERO, |sum, b| sum.add_disjoint(b.size()));
        let want = rounded(record.family(), ask.count)?;
        let owner = Owner { id, tenant };
        let mut now_held: Vec<Prefix> = mine.iter().flat_map(|a| a.blocks().to_vec()).collect();
        if want > have {
            let more = want.sub_contained(have);
            // Written with the VNet's document, in one statement on PostgreSQL.
            let added = tx.pool_allocate_blocks(
                &pool,
                &Request::Count(more),
                Holder::Resource,
                owner,
                change,
            )?;
            now_held.extend_from_slice(&added);
        } else if want < have {
            return Err(ArmError::new(
                ErrorCode::IpamAllocationCannotBeDecreased,
                format!(
                    "The virtual network holds {have} addresses from pool '{}'; numberOfIpAddresses '{}' would decrease it, which is not allowed. Release the allocation and allocate again instead.",
                    ask.pool_id, ask.count_text
                ),
            ));
        }
        kept.push(record.id());
        blocks_by_pool.insert(ask.key(), now_held);
    }
    for allocation in held.iter().filter(|a| !kept.contains(&a.pool())) {
        tx.allocation_release(allocation.id(), change)?;
    }
    let mut vnet_prefixes: Vec<Prefix> = if spec.asks.is_empty() {
        spec.prefixes.clone()
    } else {
        blocks_by_pool.values().flatten().copied().collect()
    };
    vnet_prefixes.sort();
    let subnets = carve_subnets(id, spec, &vnet_prefixes, &blocks_by_pool, existing.as_ref())?;
    let allocations: Vec<Value> = spec
        .asks
        .iter()
        .map(|ask| {
            let mut blocks = blocks_by_pool.get(&ask.key()).cloned().unwrap_or_default();
            blocks.sort();
            json!({"numberOfIpAddresses": ask.count_text, "pool": {"id": ask.pool_id}, "allocatedAddressPrefixes": docs::prefix_strings(&blocks)})
        })
        .collect();
    let guid = existing
        .as_ref()
        .and_then(|doc| doc.body["properties"]["resourceGuid"].as_str().map(str::to_owned))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut properties = json!({
        "addressSpace": {"addressPrefixes": docs::prefix_strings(&vnet_prefixes)},
        "subnets": subnets,
        "virtualNetworkPeerings": [],
        "provisioningState": "Succeeded",
        "resourceGuid": guid,
    });
    if !allocations.is_empty() {
        properties["addressSpace"]["ipamPoolPrefixAllocations"] = json!(allocations);
    }
    for (flag, value) in spec.flags.as_object().into_iter().flatten() {
        properties[flag] = value.clone();
    }
    let document = json!({
        "id": id,
        "name": id.rsplit('/').next().unwrap_or_default(),
        "type": VNET_TYPE,
        "location": spec.location,
        "tags": spec.tags,
        "properties": properties,
    });
    docs::write_doc(tx, VNET_TYPE, tenant, &document, |tx, write| {
        tx.resource_put_over_creating(
            write,
            stored,
            precondition,
            change.now,
            Some(recording.write()),
        )
    })
}

/// A subnet's space from one pool (lower-cased pool id), or its static space (`None`).
type Carved = (Option<String>, Vec<Prefix>);

/// The subnets of a VNet: static ones inside its space, pool ones carved from the space the VNet
/// holds from that pool (kept when their ask is unchanged), none overlapping another.
fn carve_subnets(
    vnet_id: &str,
    spec: &VnetSpec,
    vnet_prefixes: &[Prefix],
    blocks_by_pool: &BTreeMap<String, Vec<Prefix>>,
    existing: Option<&Doc>,
) -> Result<Vec<Value>, ArmError> {
    let old_subnets = existing
        .and_then(|doc| doc.body["properties"]["subnets"].as_array().cloned())
        .unwrap_or_default();
    // First the space that is decided: static prefixes and unchanged pool allocations.
    let mut decided: Vec<Option<Vec<Carved>>> = Vec::new();
    for subnet in &spec.subnets {
        for prefix in &subnet.prefixes {
            if !vnet_prefixes.iter().any(|space| space.contains(prefix)) {
                return Err(ArmError::new(
                    ErrorCode::NetcfgSubnetRangeOutsideVnet,
                    format!(
                        "Subnet '{}' has address prefix {prefix}, which is outside the virtual network's address space.",
                        subnet.name
                    ),
                ));
            }
        }
        for ask in &subnet.asks {
            if !blocks_by_pool.contains_key(&ask.key()) {
                let code = if spec.asks.is_empty() {
                    ErrorCode::SubnetsCannotReferToPoolsIfVnetDoeNot
                } else {
                    ErrorCode::SubnetPoolsMustBeSubsetOfVnetPools
                };
                return Err(ArmError::new(
                    code,
                    format!(
                        "Subnet '{}' uses pool '{}', which its virtual network does not use.",
                        subnet.name, ask.pool_id
                    ),
                ));
            }
        }
        let old = old_subnets
            .iter()
            .find(|old| old["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&subnet.name)));
        let unchanged = old.is_some_and(|old| {
            asks_of(old.pointer("/properties/ipamPoolPrefixAllocations"))
                == subnet
                    .asks
                    .iter()
                    .map(|ask| (ask.key(), ask.count_text.clone()))
                    .collect::<BTreeMap<_, _>>()
        });
        if subnet.asks.is_empty() {
            decided.push(Some(vec![(None, subnet.prefixes.clone())]));
        } else if let (true, Some(old)) = (unchanged, old) {
            let mut parts = Vec::new();
            for item in old
                .pointer("/properties/ipamPoolPrefixAllocations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let key = item["pool"]["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                let prefixes: Vec<Prefix> = item["allocatedAddressPrefixes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|t| t.as_str().and_then(|t| Prefix::parse(t).ok()))
                    .collect();
                let inside = blocks_by_pool.get(&key).is_some_and(|space| {
                    prefixes.iter().all(|p| space.iter().any(|s| s.contains(p)))
                });
                if !inside {
                    parts.clear();
                    break;
                }
                parts.push((Some(key), prefixes));
            }
            decided.push((!parts.is_empty()).then_some(parts));
        } else {
            decided.push(None);
        }
    }
    let mut taken: Vec<Prefix> =
        decided.iter().flatten().flatten().flat_map(|(_, prefixes)| prefixes.clone()).collect();
    if let Some((other, prefix)) = ipam::subnet::first_overlap(&taken) {
        return Err(ArmError::new(
            ErrorCode::NetcfgSubnetRangesOverlap,
            format!("Subnet address prefixes {other} and {prefix} overlap."),
        ));
    }
    // Then carve the rest, each from the VNet's space of its pool minus everything taken.
    let mut result = Vec::new();
    for (subnet, decided) in spec.subnets.iter().zip(decided) {
        let parts = match decided {
            Some(parts) => parts,
            None => {
                let mut parts = Vec::new();
                for ask in &subnet.asks {
                    let space = blocks_by_pool.get(&ask.key()).cloned().unwrap_or_default();
                    let blocks = ipam::subnet::carve(
                        &format!("{}'s space from pool {}", subnet.name, ask.pool_id),
                        &space,
                        &taken,
                        ask.count,
                    )?;
                    taken.extend_from_slice(&blocks);
                    parts.push((Some(ask.key()), blocks));
                }
                parts
            }
        };
        let mut prefixes: Vec<Prefix> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
        prefixes.sort();
        let mut properties = json!({"provisioningState": "Succeeded"});
        if prefixes.len() == 1 {
            properties["addressPrefix"] = json!(prefixes[0].to_string());
        } else {
            properties["addressPrefixes"] = json!(docs::prefix_strings(&prefixes));
        }
        if !subnet.asks.is_empty() {
            let allocations: Vec<Value> = subnet
                .asks
                .iter()
                .map(|ask| {
                    let blocks = parts.iter().find(|(key, _)| key.as_deref() == Some(ask.key().as_str())).map(|(_, b)| b.clone()).unwrap_or_default();
                    json!({"numberOfIpAddresses": ask.count_text, "pool": {"id": ask.pool_id}, "allocatedAddressPrefixes": docs::prefix_strings(&blocks)})
                })
                .collect();
            properties["ipamPoolPrefixAllocations"] = json!(allocations);
        }
        result.push(json!({
            "id": format!("{vnet_id}/subnets/{}", subnet.name),
            "name": subnet.name,
            "type": SUBNET_TYPE,
            "properties": properties,
        }));
    }
    Ok(result)
}
