//! IPv4 and IPv6 prefixes (CIDR blocks) with 128-bit arithmetic: parsing that names bad input, and
//! the buddy relations (halves, parent, buddy) the allocator walks.

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::count::AddressCount;
use crate::error::Error;

/// An IP address family. Every pool, prefix and allocation belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Number of bits in an address of this family.
    pub const fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    /// The ARM name of the family, as in `ipAddressType`.
    pub const fn arm_name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An aligned CIDR block: a family, a network address with no host bits set, and a length.
///
/// Invariant: `len <= family.bits()`, `addr` fits the family, and every bit after `len` is zero.
/// IPv4 addresses live in the low 32 bits of `addr`. Ordering is by family, address, then length,
/// so a sorted list of disjoint prefixes is in address order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    family: Family,
    addr: u128,
    len: u8,
}

/// The bits of an address of `family` that lie after the first `len` bits.
const fn host_mask(family: Family, len: u8) -> u128 {
    let host_bits = (family.bits() - len) as u32;
    match 1u128.checked_shl(host_bits) {
        Some(block) => block - 1,
        None => u128::MAX,
    }
}

impl Prefix {
    /// Parses `a.b.c.d/len` or `ipv6/len`. Rejects host bits, bad lengths and anything else, with
    /// a message that quotes the input.
    pub fn parse(input: &str) -> Result<Prefix, Error> {
        let invalid =
            |reason: &'static str| Error::InvalidPrefix { input: input.to_owned(), reason };
        let (address_text, len_text) =
            input.split_once('/').ok_or_else(|| invalid("missing /length"))?;
        let address: IpAddr = address_text.parse().map_err(|_| invalid("not an IP address"))?;
        let (family, addr) = match address {
            IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
        };
        if len_text.is_empty()
            || len_text.len() > 3
            || !len_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid("the length is not a number"));
        }
        let len: u8 = len_text.parse().map_err(|_| invalid("the length is not a number"))?;
        if len > family.bits() {
            return Err(invalid(match family {
                Family::V4 => "the length must be 0 to 32 for IPv4",
                Family::V6 => "the length must be 0 to 128 for IPv6",
            }));
        }
        if addr & host_mask(family, len) != 0 {
            return Err(invalid("host bits set"));
        }
        Ok(Prefix { family, addr, len })
    }

    /// Builds a prefix from parts, or `None` if `len` is too long or host bits are set.
    pub fn new(family: Family, addr: u128, len: u8) -> Option<Prefix> {
        let fits = match family {
            Family::V4 => addr <= u128::from(u32::MAX),
            Family::V6 => true,
        };
        (len <= family.bits() && fits && addr & host_mask(family, len) == 0).then_some(Prefix {
            family,
            addr,
            len,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The network address as an integer (IPv4 in the low 32 bits).
    pub fn addr(&self) -> u128 {
        self.addr
    }

    /// The prefix length (the number after the slash). A prefix is never empty, so there is no
    /// `is_empty`.
    #[allow(clippy::len_without_is_empty)] // Reason: `len` is the CIDR length, not a container size.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// The last address in the block.
    pub fn last_addr(&self) -> u128 {
        self.addr | host_mask(self.family, self.len)
    }

    /// How many addresses the block holds: `2^(bits - len)`, exact even for `::/0`.
    pub fn size(&self) -> AddressCount {
        AddressCount::power_of_two(self.family.bits() - self.len)
    }

    /// Whether `other` lies entirely inside `self` (a prefix contains itself).
    pub fn contains(&self, other: &Prefix) -> bool {
        self.family == other.family
            && self.len <= other.len
            && other.addr & !host_mask(self.family, self.len) == self.addr
    }

    /// Whether the two blocks share at least one address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The two blocks of length `len + 1` that make up this one, or `None` for a single address.
    pub fn halves(&self) -> Option<(Prefix, Prefix)> {
        if self.len == self.family.bits() {
            return None;
        }
        let len = self.len + 1;
        let high_bit = host_mask(self.family, len) + 1;
        let low = Prefix { family: self.family, addr: self.addr, len };
        Some((low, Prefix { addr: self.addr | high_bit, ..low }))
    }

    /// The block of length `len - 1` that contains this one, or `None` for `/0`.
    pub fn parent(&self) -> Option<Prefix> {
        let len = self.len.checked_sub(1)?;
        Some(Prefix { family: self.family, addr: self.addr & !host_mask(self.family, len), len })
    }

    /// The other half of this block's parent, or `None` for `/0`.
    pub fn buddy(&self) -> Option<Prefix> {
        self.len.checked_sub(1)?;
        let own_bit = host_mask(self.family, self.len) + 1;
        Some(Prefix { addr: self.addr ^ own_bit, ..*self })
    }

    /// The block of length `len` that contains this prefix's network address.
    ///
    /// Callers pass `len <= self.len()`; longer lengths return the prefix unchanged.
    pub fn truncate(&self, len: u8) -> Prefix {
        let len = len.min(self.len);
        Prefix { family: self.family, addr: self.addr & !host_mask(self.family, len), len }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::V4 => {
                let octets = u32::try_from(self.addr).expect("an IPv4 prefix fits in 32 bits");
                write!(f, "{}/{}", Ipv4Addr::from(octets), self.len)
            }
            Family::V6 => write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.len),
        }
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
