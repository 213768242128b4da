//! Exact address counts up to 2^128 (all of IPv6), written as the decimal strings ARM uses for
//! `numberOfIpAddresses`, `totalNumberOfIPAddresses` and the other usage numbers.

#[cfg(test)]
mod tests;

use std::fmt;

/// A number of IP addresses, from 0 to 2^128 inclusive.
///
/// `u128` stops one short of `::/0`, so 2^128 has its own representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AddressCount(Repr);

// Invariant: `Finite` holds every value below 2^128; `All` is exactly 2^128. The derived order is
// numeric because `All` comes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Repr {
    Finite(u128),
    All,
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Finite(0)
    }
}

const TWO_POW_128_DECIMAL: &str = "340282366920938463463374607431768211456";

/// Why a decimal count could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountParseError {
    NotADecimalNumber,
    TooLarge,
}

impl AddressCount {
    pub const ZERO: AddressCount = AddressCount(Repr::Finite(0));

    /// `2^exponent` for `exponent <= 128`.
    pub fn power_of_two(exponent: u8) -> AddressCount {
        assert!(exponent <= 128, "an address count never exceeds 2^128");
        match 1u128.checked_shl(u32::from(exponent)) {
            Some(value) => AddressCount(Repr::Finite(value)),
            None => AddressCount(Repr::All),
        }
    }

    /// Reads a non-negative decimal integer (digits only) no larger than 2^128.
    pub fn parse_decimal(text: &str) -> Result<AddressCount, CountParseError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CountParseError::NotADecimalNumber);
        }
        let digits = text.trim_start_matches('0');
        if digits == TWO_POW_128_DECIMAL {
            return Ok(AddressCount(Repr::All));
        }
        match digits.parse::<u128>() {
            Ok(value) => Ok(AddressCount(Repr::Finite(value))),
            Err(_) if digits.is_empty() => Ok(AddressCount::ZERO),
            Err(_) => Err(CountParseError::TooLarge),
        }
    }

    /// The value if it is below 2^128.
    pub fn as_u128(self) -> Option<u128> {
        match self.0 {
            Repr::Finite(value) => Some(value),
            Repr::All => None,
        }
    }

    /// `count` blocks of `2^exponent` addresses each, or `None` past 2^128.
    pub fn blocks(count: u64, exponent: u8) -> Option<AddressCount> {
        if exponent > 128 {
            return None;
        }
        if count == 0 {
            return Some(AddressCount::ZERO);
        }
        // count · 2^exponent is 2^128 exactly when count is 2^(128 - exponent).
        let to_all = 128 - u32::from(exponent);
        if count.is_power_of_two() && count.trailing_zeros() == to_all {
            return Some(AddressCount(Repr::All));
        }
        match exponent {
            128 => None,
            _ => u128::from(count)
                .checked_mul(1u128 << exponent)
                .map(|total| AddressCount(Repr::Finite(total))),
        }
    }

    /// The count as a float, for metrics: exact up to 2^53, then the nearest float.
    pub fn as_f64(self) -> f64 {
        match self.0 {
            Repr::Finite(value) => value as f64,
            Repr::All => 2f64.powi(128),
        }
    }

    pub fn is_zero(self) -> bool {
        self == AddressCount::ZERO
    }

    /// `self + other`, or `None` past 2^128.
    pub fn checked_add(self, other: AddressCount) -> Option<AddressCount> {
        match (self.0, other.0) {
            (Repr::Finite(a), Repr::Finite(b)) => match a.checked_add(b) {
                Some(sum) => Some(AddressCount(Repr::Finite(sum))),
                // a + b overflowed u128: it is exactly 2^128 only when the wrapped sum is zero.
                None => (a.wrapping_add(b) == 0).then_some(AddressCount(Repr::All)),
            },
            (Repr::All, Repr::Finite(0)) | (Repr::Finite(0), Repr::All) => {
                Some(AddressCount(Repr::All))
            }
            _ => None,
        }
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: AddressCount) -> Option<AddressCount> {
        match (self.0, other.0) {
            (Repr::Finite(a), Repr::Finite(b)) => {
                a.checked_sub(b).map(|d| AddressCount(Repr::Finite(d)))
            }
            (Repr::All, Repr::Finite(0)) => Some(self),
            (Repr::All, Repr::Finite(b)) => Some(AddressCount(Repr::Finite(0u128.wrapping_sub(b)))),
            (Repr::All, Repr::All) => Some(AddressCount::ZERO),
            (Repr::Finite(_), Repr::All) => None,
        }
    }

    /// Adds counts that are known to describe disjoint space in one family, so they cannot pass 2^128.
    pub fn add_disjoint(self, other: AddressCount) -> AddressCount {
        self.checked_add(other).expect("disjoint blocks of one family hold at most 2^128 addresses")
    }

    /// Subtracts a count known to describe part of the space `self` counts.
    pub fn sub_contained(self, other: AddressCount) -> AddressCount {
        self.checked_sub(other).expect("a part never holds more addresses than the whole")
    }
}

impl fmt::Display for AddressCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Finite(value) => write!(f, "{value}"),
            Repr::All => f.write_str(TWO_POW_128_DECIMAL),
        }
    }
}

impl From<u128> for AddressCount {
    fn from(value: u128) -> Self {
        AddressCount(Repr::Finite(value))
    }
}
