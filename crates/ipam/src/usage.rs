//! A pool's usage, shaped as the contract's `PoolUsage`: its prefixes, child pools, allocated,
//! reserved and available prefixes, and the four counts.

use crate::count::AddressCount;
use crate::prefix::Prefix;

/// What occupies a block of a pool (other than a child pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A resource such as a virtual network or subnet. Counts as allocated.
    Resource,
    /// A static CIDR. Counts as allocated.
    StaticCidr,
    /// A reservation that may be reclaimed when it expires. Counts as reserved.
    Reservation,
}

/// One child pool as its parent's usage lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPoolUsage<C> {
    pub child: C,
    /// Sorted by address.
    pub address_prefixes: Vec<Prefix>,
}

/// Usage of one pool. `C` identifies child pools (an in-memory id, or an ARM resource id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage<C> {
    address_prefixes: Vec<Prefix>,
    child_pools: Vec<ChildPoolUsage<C>>,
    allocated_address_prefixes: Vec<Prefix>,
    reserved_address_prefixes: Vec<Prefix>,
    available_address_prefixes: Vec<Prefix>,
    // Invariant: total = allocated + reserved + available, each the size of its prefixes.
    total: AddressCount,
    allocated: AddressCount,
    reserved: AddressCount,
    available: AddressCount,
}

impl<C> PoolUsage<C> {
    /// Assembles usage from a pool's prefixes, its child pools, the blocks its holders occupy and
    /// its free blocks. Child pool prefixes count as allocated, as in the contract's example.
    ///
    /// Precondition: the blocks and free blocks are disjoint and together cover the prefixes.
    pub fn new(
        mut address_prefixes: Vec<Prefix>,
        mut child_pools: Vec<ChildPoolUsage<C>>,
        held: impl IntoIterator<Item = (Prefix, Holder)>,
        free: impl IntoIterator<Item = Prefix>,
    ) -> PoolUsage<C> {
        address_prefixes.sort();
        let mut allocated_address_prefixes = Vec::new();
        let mut reserved_address_prefixes = Vec::new();
        for (block, holder) in held {
            match holder {
                Holder::Resource | Holder::StaticCidr => allocated_address_prefixes.push(block),
                Holder::Reservation => reserved_address_prefixes.push(block),
            }
        }
        for child_pool in &mut child_pools {
            child_pool.address_prefixes.sort();
            allocated_address_prefixes.extend_from_slice(&child_pool.address_prefixes);
        }
        child_pools.sort_by_key(|child_pool| child_pool.address_prefixes.first().copied());
        allocated_address_prefixes.sort();
        reserved_address_prefixes.sort();
        let mut available_address_prefixes: Vec<Prefix> = free.into_iter().collect();
        available_address_prefixes.sort();

        let total = sum(&address_prefixes);
        let allocated = sum(&allocated_address_prefixes);
        let reserved = sum(&reserved_address_prefixes);
        let available = sum(&available_address_prefixes);
        debug_assert_eq!(allocated.add_disjoint(reserved).add_disjoint(available), total);
        PoolUsage {
            address_prefixes,
            child_pools,
            allocated_address_prefixes,
            reserved_address_prefixes,
            available_address_prefixes,
            total,
            allocated,
            reserved,
            available,
        }
    }

    pub fn address_prefixes(&self) -> &[Prefix] {
        &self.address_prefixes
    }

    /// Sorted by their first prefix.
    pub fn child_pools(&self) -> &[ChildPoolUsage<C>] {
        &self.child_pools
    }

    /// Blocks of resources, static CIDRs and child pools, in address order.
    pub fn allocated_address_prefixes(&self) -> &[Prefix] {
        &self.allocated_address_prefixes
    }

    pub fn reserved_address_prefixes(&self) -> &[Prefix] {
        &self.reserved_address_prefixes
    }

    /// Free space as maximal aligned blocks, in address order.
    pub fn available_address_prefixes(&self) -> &[Prefix] {
        &self.available_address_prefixes
    }

    pub fn total_number_of_ip_addresses(&self) -> AddressCount {
        self.total
    }

    pub fn number_of_allocated_ip_addresses(&self) -> AddressCount {
        self.allocated
    }

    pub fn number_of_reserved_ip_addresses(&self) -> AddressCount {
        self.reserved
    }

    pub fn number_of_available_ip_addresses(&self) -> AddressCount {
        self.available
    }
}

/// The number of addresses in disjoint blocks of one family.
pub fn sum(blocks: &[Prefix]) -> AddressCount {
    blocks.iter().fold(AddressCount::ZERO, |total, block| total.add_disjoint(block.size()))
}
