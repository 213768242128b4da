//! Tests for `tree`: the pool rules and usage.

use expect_test::{Expect, expect};

use super::*;
use crate::count::AddressCount;

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

fn spec(name: &str, parent: Option<PoolId>, prefixes: &[&str]) -> PoolSpec {
    PoolSpec {
        name: name.to_owned(),
        parent,
        prefixes: prefixes.iter().map(|text| prefix(text)).collect(),
        placement: Placement::BestFit,
    }
}

fn check_err<T: std::fmt::Debug>(result: Result<T, Error>, expected: Expect) {
    expected.assert_eq(&result.unwrap_err().to_string());
}

fn count(text: &str) -> Request {
    Request::Count(request::parse_count(text).unwrap())
}

#[test]
fn usage_matches_the_contracts_get_pool_usage_example() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(spec("TestPool", None, &["10.0.0.0/8", "192.0.0.0/8"])).unwrap();
    tree.create_pool(spec("TestPool1", Some(pool), &["10.0.2.0/26"])).unwrap();
    tree.create_pool(spec("TestPool2", Some(pool), &["10.0.3.0/26"])).unwrap();
    tree.allocate(pool, &Request::Prefix(prefix("10.0.0.0/24")), Holder::Reservation).unwrap();
    let usage = tree.usage(pool).unwrap();
    let show = |blocks: &[Prefix]| {
        blocks.iter().map(|block| block.to_string()).collect::<Vec<_>>().join(" ")
    };
    let summary = format!(
        "total {} allocated {} reserved {} available {}\nallocated: {}\nreserved: {}\navailable: {}\nchildren: {:?}",
        usage.total_number_of_ip_addresses(),
        usage.number_of_allocated_ip_addresses(),
        usage.number_of_reserved_ip_addresses(),
        usage.number_of_available_ip_addresses(),
        show(usage.allocated_address_prefixes()),
        show(usage.reserved_address_prefixes()),
        show(usage.available_address_prefixes()),
        usage.child_pools().iter().map(|child| show(&child.address_prefixes)).collect::<Vec<_>>(),
    );
    expect![[r#"
        total 33554432 allocated 128 reserved 256 available 33554048
        allocated: 10.0.2.0/26 10.0.3.0/26
        reserved: 10.0.0.0/24
        available: 10.0.1.0/24 10.0.2.64/26 10.0.2.128/25 10.0.3.64/26 10.0.3.128/25 10.0.4.0/22 10.0.8.0/21 10.0.16.0/20 10.0.32.0/19 10.0.64.0/18 10.0.128.0/17 10.1.0.0/16 10.2.0.0/15 10.4.0.0/14 10.8.0.0/13 10.16.0.0/12 10.32.0.0/11 10.64.0.0/10 10.128.0.0/9 192.0.0.0/8
        children: ["10.0.2.0/26", "10.0.3.0/26"]"#]]
    .assert_eq(&summary);
}

#[test]
fn a_count_of_100_becomes_three_blocks_at_the_lowest_addresses() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(spec("p", None, &["10.0.0.0/16"])).unwrap();
    let allocation = tree.allocate(pool, &count("100"), Holder::Resource).unwrap();
    expect!["[10.0.0.0/26, 10.0.0.64/27, 10.0.0.96/29]"]
        .assert_eq(&format!("{:?}", allocation.blocks()));
    assert_eq!(
        tree.usage(pool).unwrap().number_of_allocated_ip_addresses(),
        AddressCount::from(104)
    );
    tree.release(allocation);
    assert_eq!(tree.usage(pool).unwrap().available_address_prefixes(), &[prefix("10.0.0.0/16")]);
}

#[test]
fn pool_prefixes_must_be_one_family_and_disjoint() {
    let mut tree = PoolTree::new(TreeConfig::default());
    check_err(
        tree.create_pool(spec("p", None, &[])),
        expect!["a pool needs at least one address prefix"],
    );
    check_err(
        tree.create_pool(spec("p", None, &["10.0.0.0/8", "fd00::/8"])),
        expect!["a pool holds one IP family, but 10.0.0.0/8 is IPv4 and fd00::/8 is IPv6"],
    );
    check_err(
        tree.create_pool(spec("p", None, &["10.1.0.0/16", "10.0.0.0/8"])),
        expect!["the prefixes 10.0.0.0/8 and 10.1.0.0/16 overlap"],
    );
}

#[test]
fn root_pools_never_overlap() {
    let mut tree = PoolTree::new(TreeConfig::default());
    tree.create_pool(spec("a", None, &["10.0.0.0/16"])).unwrap();
    check_err(
        tree.create_pool(spec("b", None, &["10.0.0.0/8"])),
        expect!["the prefixes 10.0.0.0/16 and 10.0.0.0/8 overlap"],
    );
    check_err(
        tree.create_pool(spec("b", None, &["10.0.3.0/24"])),
        expect!["the prefixes 10.0.0.0/16 and 10.0.3.0/24 overlap"],
    );
    tree.create_pool(spec("c", None, &["10.1.0.0/16"])).unwrap();
}

#[test]
fn a_child_pool_lies_inside_its_parent_and_siblings_never_overlap() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let root = tree.create_pool(spec("root", None, &["10.0.0.0/16"])).unwrap();
    check_err(
        tree.create_pool(spec("out", Some(root), &["10.1.0.0/24"])),
        expect![[r#"10.1.0.0/24 is not inside the address space of pool "root""#]],
    );
    check_err(
        tree.create_pool(spec("v6", Some(root), &["fd00::/64"])),
        expect![[r#"fd00::/64 is IPv6 but pool "root" is IPv4"#]],
    );
    tree.create_pool(spec("a", Some(root), &["10.0.0.0/24"])).unwrap();
    check_err(
        tree.create_pool(spec("b", Some(root), &["10.0.1.0/24", "10.0.0.128/25"])),
        expect![[
            r#"10.0.0.128/25 in pool "root" is not free: it overlaps space that is allocated, reserved or given to a child pool"#
        ]],
    );
    // The refused pool took nothing: its other prefix is still free.
    tree.create_pool(spec("c", Some(root), &["10.0.1.0/24"])).unwrap();
}

#[test]
fn pools_nest_at_most_seven_levels_by_default() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let mut parent = tree.create_pool(spec("level1", None, &["10.0.0.0/8"])).unwrap();
    for level in 2..=7u8 {
        let child_prefix = format!("10.0.0.0/{}", 8 + level);
        parent = tree
            .create_pool(spec(&format!("level{level}"), Some(parent), &[&child_prefix]))
            .unwrap();
    }
    check_err(
        tree.create_pool(spec("level8", Some(parent), &["10.0.0.0/24"])),
        expect![[r#"a pool may be at most 7 levels deep; pool "level7" is already at level 7"#]],
    );
    let mut shallow = PoolTree::new(TreeConfig { max_depth: 2 });
    let root = shallow.create_pool(spec("r", None, &["10.0.0.0/8"])).unwrap();
    let child = shallow.create_pool(spec("c", Some(root), &["10.0.0.0/16"])).unwrap();
    assert!(shallow.create_pool(spec("g", Some(child), &["10.0.0.0/24"])).is_err());
}

#[test]
fn a_pool_cannot_drop_a_prefix_in_use() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let root = tree
        .create_pool(spec("root", None, &["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"]))
        .unwrap();
    tree.allocate(root, &Request::Prefix(prefix("10.0.5.0/24")), Holder::Resource).unwrap();
    tree.create_pool(spec("child", Some(root), &["10.1.0.0/20"])).unwrap();
    tree.allocate(root, &Request::Prefix(prefix("10.2.0.0/29")), Holder::StaticCidr).unwrap();
    for kept in [
        ["10.1.0.0/16", "10.2.0.0/16"],
        ["10.0.0.0/16", "10.2.0.0/16"],
        ["10.0.0.0/16", "10.1.0.0/16"],
    ] {
        let result = tree.set_prefixes(root, kept.iter().map(|text| prefix(text)).collect());
        assert!(matches!(result, Err(Error::PrefixInUse { .. })), "{result:?}");
    }
    // Adding space works, and so does dropping free space.
    let grown = ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"];
    tree.set_prefixes(root, grown.iter().map(|text| prefix(text)).collect()).unwrap();
    tree.set_prefixes(root, grown[..3].iter().map(|text| prefix(text)).collect()).unwrap();
    assert_eq!(tree.prefixes(root).unwrap().len(), 3);
}

#[test]
fn a_child_can_replace_a_prefix_with_the_one_around_it() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let root = tree.create_pool(spec("root", None, &["10.0.0.0/16"])).unwrap();
    let child = tree.create_pool(spec("child", Some(root), &["10.0.0.0/24"])).unwrap();
    tree.set_prefixes(child, vec![prefix("10.0.0.0/23")]).unwrap();
    assert_eq!(tree.usage(root).unwrap().allocated_address_prefixes(), &[prefix("10.0.0.0/23")]);
    // A refused change leaves the child's old space taken in the parent.
    tree.allocate(root, &Request::Prefix(prefix("10.0.4.0/24")), Holder::Resource).unwrap();
    assert!(tree.set_prefixes(child, vec![prefix("10.0.0.0/21")]).is_err());
    assert_eq!(
        tree.usage(root).unwrap().allocated_address_prefixes(),
        &[prefix("10.0.0.0/23"), prefix("10.0.4.0/24")]
    );
}

#[test]
fn deleting_a_pool_needs_it_empty_and_returns_its_space() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let root = tree.create_pool(spec("root", None, &["10.0.0.0/16"])).unwrap();
    let child = tree.create_pool(spec("child", Some(root), &["10.0.0.0/24"])).unwrap();
    check_err(tree.delete_pool(root), expect![[r#"pool "root" still has child pools"#]]);
    let allocation = tree.allocate(child, &count("8"), Holder::Resource).unwrap();
    check_err(
        tree.delete_pool(child),
        expect![[r#"pool "child" still has allocations or static CIDRs"#]],
    );
    tree.release(allocation);
    tree.delete_pool(child).unwrap();
    assert_eq!(tree.usage(root).unwrap().available_address_prefixes(), &[prefix("10.0.0.0/16")]);
    tree.delete_pool(root).unwrap();
    tree.create_pool(spec("again", None, &["10.0.0.0/8"])).unwrap();
}

#[test]
fn an_exhausted_pool_says_what_was_asked_and_the_largest_free_block() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(spec("small", None, &["10.0.0.0/24"])).unwrap();
    tree.allocate(pool, &count("128"), Holder::Resource).unwrap();
    check_err(
        tree.allocate(pool, &count("144"), Holder::Resource),
        expect![[
            r#"pool "small" cannot provide 144 IPv4 addresses: the largest free block is 10.0.0.128/25 (128 addresses)"#
        ]],
    );
    // Nothing was taken by the refused request.
    assert_eq!(
        tree.usage(pool).unwrap().number_of_available_ip_addresses(),
        AddressCount::from(128)
    );
    tree.allocate(pool, &count("128"), Holder::Resource).unwrap();
    check_err(
        tree.allocate(pool, &count("8"), Holder::Resource),
        expect![[r#"pool "small" cannot provide 8 IPv4 addresses: it has no free space"#]],
    );
}

#[test]
fn an_explicit_prefix_must_be_inside_and_free() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(spec("p", None, &["10.0.0.0/24"])).unwrap();
    tree.allocate(pool, &Request::Prefix(prefix("10.0.0.0/26")), Holder::StaticCidr).unwrap();
    check_err(
        tree.allocate(pool, &Request::Prefix(prefix("10.0.0.32/27")), Holder::Resource),
        expect![[
            r#"10.0.0.32/27 in pool "p" is not free: it overlaps space that is allocated, reserved or given to a child pool"#
        ]],
    );
    check_err(
        tree.allocate(pool, &Request::Prefix(prefix("10.0.1.0/27")), Holder::Resource),
        expect![[r#"10.0.1.0/27 is not inside the address space of pool "p""#]],
    );
    check_err(
        tree.allocate(pool, &Request::Prefix(prefix("fd00::/64")), Holder::Resource),
        expect![[r#"fd00::/64 is not inside the address space of pool "p""#]],
    );
    let by_length = tree.allocate(pool, &Request::Length(25), Holder::Resource).unwrap();
    assert_eq!(by_length.blocks(), &[prefix("10.0.0.128/25")]);
}

#[test]
fn ipv6_pools_hand_out_slash_64s() {
    let mut tree = PoolTree::new(TreeConfig::default());
    let pool = tree.create_pool(spec("v6", None, &["2001:db8::/48"])).unwrap();
    let allocation = tree.allocate(pool, &count("100"), Holder::Resource).unwrap();
    assert_eq!(allocation.blocks(), &[prefix("2001:db8::/64")]);
    let usage = tree.usage(pool).unwrap();
    assert_eq!(usage.total_number_of_ip_addresses().to_string(), "1208925819614629174706176");
    assert_eq!(usage.number_of_allocated_ip_addresses().to_string(), "18446744073709551616");
}
