//! Turning what a client asks for (`numberOfIpAddresses`, a prefix, a length) into aligned blocks.
//!
//! The sizing rule (docs/ipam-allocation.md): a count is rounded up to the family's granularity
//! (IPv4: 8 addresses, a /29; IPv6: 2^64 addresses, a /64) and split into aligned power-of-two
//! blocks whose sizes add up to the rounded count, largest first. `"144"` is a /25 and a /28;
//! `"100"` rounds to 104, a /26, a /27 and a /29.

#[cfg(test)]
mod tests;

use crate::count::{AddressCount, CountParseError};
use crate::error::Error;
use crate::prefix::{Family, Prefix};

/// Host bits of the smallest block a pool of `family` hands out: 3 (a /29) for IPv4, 64 (a /64)
/// for IPv6.
pub const fn granule_bits(family: Family) -> u8 {
    match family {
        Family::V4 => 3,
        Family::V6 => 64,
    }
}

/// What one allocation asks a pool for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A number of addresses, rounded up and split into blocks by the sizing rule.
    Count(AddressCount),
    /// Exactly this block, which must be inside the pool and free.
    Prefix(Prefix),
    /// One block of this length, wherever the pool's placement puts it.
    Length(u8),
}

/// Reads a `numberOfIpAddresses`-style decimal string: digits only, greater than zero.
pub fn parse_count(text: &str) -> Result<AddressCount, Error> {
    let invalid = |reason: &'static str| Error::InvalidCount { input: text.to_owned(), reason };
    match AddressCount::parse_decimal(text) {
        Ok(count) if count.is_zero() => Err(invalid("it must be greater than zero")),
        Ok(count) => Ok(count),
        Err(CountParseError::NotADecimalNumber) => {
            Err(invalid("it must be a decimal number written as digits"))
        }
        Err(CountParseError::TooLarge) => {
            Err(invalid("it is larger than the whole IPv6 address space"))
        }
    }
}

/// Rounds `count` up to the granularity of `family` and splits it into block lengths, largest
/// block (shortest length) first.
///
/// Fails when the count is zero or larger than the family's whole address space.
pub fn blocks_for_count(family: Family, count: AddressCount) -> Result<Vec<u8>, Error> {
    let invalid = |reason: &'static str| Error::InvalidCount { input: count.to_string(), reason };
    if count.is_zero() {
        return Err(invalid("it must be greater than zero"));
    }
    let granule = granule_bits(family);
    // The count in granules, rounded up. `count <= 2^128` and `granule >= 3`, so it fits a u128.
    let granules = match count.as_u128() {
        Some(value) => (value >> granule) + u128::from(value & ((1u128 << granule) - 1) != 0),
        None => 1u128 << (128 - granule),
    };
    let space_granules = 1u128 << (family.bits() - granule);
    if granules > space_granules {
        return Err(invalid(match family {
            Family::V4 => "it is larger than the whole IPv4 address space",
            Family::V6 => "it is larger than the whole IPv6 address space",
        }));
    }
    let mut lens = Vec::with_capacity(granules.count_ones() as usize);
    for bit in (0..=(family.bits() - granule)).rev() {
        if granules & (1u128 << bit) != 0 {
            lens.push(family.bits() - granule - bit);
        }
    }
    Ok(lens)
}

/// The block lengths a request needs in a pool of `family`, largest first; a `Prefix` request
/// is one block of its own length.
pub fn block_lengths(family: Family, request: &Request) -> Result<Vec<u8>, Error> {
    match *request {
        Request::Count(count) => blocks_for_count(family, count),
        Request::Prefix(prefix) => Ok(vec![prefix.len()]),
        Request::Length(len) if len <= family.bits() => Ok(vec![len]),
        Request::Length(len) => Err(Error::InvalidLength { family, len }),
    }
}
