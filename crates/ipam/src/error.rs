//! The domain's errors, in IPAM words. The ARM layer maps each to a status and an ARM code.

use crate::count::AddressCount;
use crate::prefix::{Family, Prefix};

/// Everything the IPAM domain can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{input:?} is not a valid prefix: {reason}")]
    InvalidPrefix { input: String, reason: &'static str },

    #[error("{input:?} is not a valid number of IP addresses: {reason}")]
    InvalidCount { input: String, reason: &'static str },

    #[error("a /{len} block is not valid for {}: the length must be at most {}", family.arm_name(), family.bits())]
    InvalidLength { family: Family, len: u8 },

    #[error("a pool needs at least one address prefix")]
    NoPrefixes,

    #[error("a pool holds one IP family, but {first} is {} and {other} is {}", first.family().arm_name(), other.family().arm_name())]
    MixedFamilies { first: Prefix, other: Prefix },

    #[error("{prefix} is {} but pool {pool:?} is {}", prefix.family().arm_name(), family.arm_name())]
    WrongFamily { pool: String, prefix: Prefix, family: Family },

    #[error("the prefixes {first} and {other} overlap")]
    OverlappingPrefixes { first: Prefix, other: Prefix },

    #[error("{prefix} is not inside the address space of pool {pool:?}")]
    OutsidePool { pool: String, prefix: Prefix },

    #[error(
        "{prefix} in pool {pool:?} is not free: it overlaps space that is allocated, reserved or given to a child pool"
    )]
    NotFree { pool: String, prefix: Prefix },

    #[error(
        "pool {pool:?} cannot provide {requested} {} addresses: {}",
        family.arm_name(),
        match largest_free { Some(block) => format!("the largest free block is {block} ({} addresses)", block.size()), None => "it has no free space".to_owned() }
    )]
    PoolExhausted {
        pool: String,
        family: Family,
        requested: AddressCount,
        largest_free: Option<Prefix>,
    },

    #[error(
        "pool {pool:?} cannot drop {prefix}: part of it is allocated, reserved or given to a child pool"
    )]
    PrefixInUse { pool: String, prefix: Prefix },

    #[error(
        "a pool may be at most {max_depth} levels deep; pool {parent:?} is already at level {parent_depth}"
    )]
    TooDeep { parent: String, parent_depth: u8, max_depth: u8 },

    #[error("pool {pool:?} does not exist")]
    UnknownPool { pool: String },

    #[error("pool {pool:?} still has {what}")]
    PoolNotEmpty { pool: String, what: &'static str },
}
