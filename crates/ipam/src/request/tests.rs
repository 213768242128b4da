//! Tests for `request`: the sizing rule.

use expect_test::{Expect, expect};

use super::*;

fn check_blocks(family: Family, count: &str, expected: Expect) {
    let actual = match parse_count(count).and_then(|count| blocks_for_count(family, count)) {
        Ok(lens) => lens.iter().map(|len| format!("/{len}")).collect::<Vec<_>>().join(" + "),
        Err(error) => format!("Err({error})"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn ipv4_counts_round_up_to_eight_and_split_largest_first() {
    check_blocks(Family::V4, "144", expect!["/25 + /28"]);
    check_blocks(Family::V4, "100", expect!["/26 + /27 + /29"]);
    check_blocks(Family::V4, "80", expect!["/26 + /28"]);
    check_blocks(Family::V4, "64", expect!["/26"]);
    check_blocks(Family::V4, "256", expect!["/24"]);
    check_blocks(Family::V4, "1", expect!["/29"]);
    check_blocks(Family::V4, "8", expect!["/29"]);
    check_blocks(Family::V4, "9", expect!["/28"]);
    check_blocks(Family::V4, "4294967296", expect!["/0"]);
    check_blocks(Family::V4, "4294967295", expect!["/0"]);
}

#[test]
fn ipv6_counts_round_up_to_a_slash_64() {
    check_blocks(Family::V6, "1", expect!["/64"]);
    check_blocks(Family::V6, "18446744073709551616", expect!["/64"]);
    check_blocks(Family::V6, "18446744073709551617", expect!["/63"]);
    check_blocks(Family::V6, "55340232221128654848", expect!["/63 + /64"]);
    check_blocks(Family::V6, "340282366920938463463374607431768211456", expect!["/0"]);
}

#[test]
fn refuses_counts_that_are_not_positive_numbers_or_too_large() {
    check_blocks(
        Family::V4,
        "0",
        expect![[
            r#"Err("0" is not a valid number of IP addresses: it must be greater than zero)"#
        ]],
    );
    check_blocks(
        Family::V4,
        "-8",
        expect![[
            r#"Err("-8" is not a valid number of IP addresses: it must be a decimal number written as digits)"#
        ]],
    );
    check_blocks(
        Family::V4,
        "1.5",
        expect![[
            r#"Err("1.5" is not a valid number of IP addresses: it must be a decimal number written as digits)"#
        ]],
    );
    check_blocks(
        Family::V4,
        "4294967297",
        expect![[
            r#"Err("4294967297" is not a valid number of IP addresses: it is larger than the whole IPv4 address space)"#
        ]],
    );
    check_blocks(
        Family::V6,
        "340282366920938463463374607431768211457",
        expect![[
            r#"Err("340282366920938463463374607431768211457" is not a valid number of IP addresses: it is larger than the whole IPv6 address space)"#
        ]],
    );
}

#[test]
fn a_prefix_request_is_one_block_and_a_length_must_fit_the_family() {
    let prefix = Prefix::parse("10.1.0.0/16").unwrap();
    assert_eq!(block_lengths(Family::V4, &Request::Prefix(prefix)), Ok(vec![16]));
    assert_eq!(block_lengths(Family::V4, &Request::Length(30)), Ok(vec![30]));
    assert_eq!(
        block_lengths(Family::V4, &Request::Length(33)),
        Err(Error::InvalidLength { family: Family::V4, len: 33 })
    );
}
