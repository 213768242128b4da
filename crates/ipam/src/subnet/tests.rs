//! Tests for `subnet`: carving around what is taken, and overlaps.

use expect_test::{Expect, expect};

use super::*;

fn prefixes(texts: &[&str]) -> Vec<Prefix> {
    texts.iter().map(|text| Prefix::parse(text).unwrap()).collect()
}

fn check_carve(space: &[&str], taken: &[&str], count: &str, expected: Expect) {
    let count = crate::request::parse_count(count).unwrap();
    let carved = carve("vnet's space", &prefixes(space), &prefixes(taken), count);
    let shown = match carved {
        Ok(blocks) => blocks.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
        Err(error) => format!("Err({error})"),
    };
    expected.assert_eq(&shown);
}

#[test]
fn carves_the_first_fitting_aligned_blocks() {
    check_carve(&["10.0.0.0/24"], &[], "64", expect!["10.0.0.0/26"]);
    check_carve(&["10.0.0.0/24"], &[], "100", expect!["10.0.0.0/26 10.0.0.64/27 10.0.0.96/29"]);
}

#[test]
fn carves_around_what_other_subnets_hold() {
    check_carve(&["10.0.0.0/24"], &["10.0.0.0/26"], "64", expect!["10.0.0.64/26"]);
    // Taken prefixes outside the space are no concern of it.
    check_carve(&["10.0.0.0/24"], &["10.9.0.0/16"], "64", expect!["10.0.0.0/26"]);
}

#[test]
fn a_full_space_is_the_allocators_refusal() {
    check_carve(
        &["10.0.0.0/26"],
        &["10.0.0.0/27"],
        "64",
        expect![[
            r#"Err(pool "vnet's space" cannot provide 64 IPv4 addresses: the largest free block is 10.0.0.32/27 (32 addresses))"#
        ]],
    );
}

#[test]
fn finds_the_first_overlap() {
    assert_eq!(first_overlap(&prefixes(&["10.0.0.0/24", "10.1.0.0/24"])), None);
    assert_eq!(
        first_overlap(&prefixes(&["10.0.0.0/24", "10.1.0.0/24", "10.0.0.128/25"])),
        Some((Prefix::parse("10.0.0.0/24").unwrap(), Prefix::parse("10.0.0.128/25").unwrap()))
    );
}
