//! Tests for `prefix`: parsing, display and the buddy relations.

use expect_test::{Expect, expect};

use super::*;

fn check_parse(input: &str, expected: Expect) {
    let actual = match Prefix::parse(input) {
        Ok(prefix) => format!("Ok({prefix})"),
        Err(error) => format!("Err({error})"),
    };
    expected.assert_eq(&actual);
}

#[test]
fn parses_ipv4_and_ipv6() {
    check_parse("10.0.0.0/8", expect!["Ok(10.0.0.0/8)"]);
    check_parse("0.0.0.0/0", expect!["Ok(0.0.0.0/0)"]);
    check_parse("192.168.1.7/32", expect!["Ok(192.168.1.7/32)"]);
    check_parse("2001:db8::/32", expect!["Ok(2001:db8::/32)"]);
    check_parse("2001:0db8:0000::/48", expect!["Ok(2001:db8::/48)"]);
    check_parse("::/0", expect!["Ok(::/0)"]);
    check_parse("::1/128", expect!["Ok(::1/128)"]);
}

#[test]
fn rejects_host_bits() {
    check_parse(
        "10.0.0.1/8",
        expect![[r#"Err("10.0.0.1/8" is not a valid prefix: host bits set)"#]],
    );
    check_parse(
        "2001:db8::1/64",
        expect![[r#"Err("2001:db8::1/64" is not a valid prefix: host bits set)"#]],
    );
}

#[test]
fn rejects_bad_lengths() {
    check_parse(
        "10.0.0.0/33",
        expect![[
            r#"Err("10.0.0.0/33" is not a valid prefix: the length must be 0 to 32 for IPv4)"#
        ]],
    );
    check_parse(
        "::/129",
        expect![[r#"Err("::/129" is not a valid prefix: the length must be 0 to 128 for IPv6)"#]],
    );
    check_parse(
        "10.0.0.0/",
        expect![[r#"Err("10.0.0.0/" is not a valid prefix: the length is not a number)"#]],
    );
    check_parse(
        "10.0.0.0/-1",
        expect![[r#"Err("10.0.0.0/-1" is not a valid prefix: the length is not a number)"#]],
    );
    check_parse(
        "10.0.0.0/+8",
        expect![[r#"Err("10.0.0.0/+8" is not a valid prefix: the length is not a number)"#]],
    );
    check_parse(
        "10.0.0.0/0008",
        expect![[r#"Err("10.0.0.0/0008" is not a valid prefix: the length is not a number)"#]],
    );
}

#[test]
fn rejects_garbage() {
    check_parse("", expect![[r#"Err("" is not a valid prefix: missing /length)"#]]);
    check_parse("10.0.0.0", expect![[r#"Err("10.0.0.0" is not a valid prefix: missing /length)"#]]);
    check_parse(
        "banana/8",
        expect![[r#"Err("banana/8" is not a valid prefix: not an IP address)"#]],
    );
    check_parse(
        "10.0.0/8",
        expect![[r#"Err("10.0.0/8" is not a valid prefix: not an IP address)"#]],
    );
    check_parse(
        "256.0.0.0/8",
        expect![[r#"Err("256.0.0.0/8" is not a valid prefix: not an IP address)"#]],
    );
    check_parse(
        " 10.0.0.0/8",
        expect![[r#"Err(" 10.0.0.0/8" is not a valid prefix: not an IP address)"#]],
    );
    check_parse(
        "10.0.0.0/8/8",
        expect![[r#"Err("10.0.0.0/8/8" is not a valid prefix: the length is not a number)"#]],
    );
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

#[test]
fn sizes_are_exact_up_to_all_of_ipv6() {
    let sizes: Vec<String> =
        ["10.0.0.0/8", "0.0.0.0/0", "1.2.3.4/32", "::/0", "::/1", "2001:db8::/64"]
            .map(|text| prefix(text).size().to_string())
            .into();
    expect![[r#"
        [
            "16777216",
            "4294967296",
            "1",
            "340282366920938463463374607431768211456",
            "170141183460469231731687303715884105728",
            "18446744073709551616",
        ]
    "#]]
    .assert_debug_eq(&sizes);
}

#[test]
fn halves_parent_and_buddy_are_consistent() {
    let block = prefix("10.0.0.0/24");
    let (low, high) = block.halves().unwrap();
    assert_eq!((low, high), (prefix("10.0.0.0/25"), prefix("10.0.0.128/25")));
    assert_eq!(low.buddy(), Some(high));
    assert_eq!(high.buddy(), Some(low));
    assert_eq!(high.parent(), Some(block));
    assert_eq!(prefix("1.2.3.4/32").halves(), None);
    assert_eq!(prefix("0.0.0.0/0").parent(), None);
    assert_eq!(prefix("::/0").buddy(), None);
    let (low, high) = prefix("::/0").halves().unwrap();
    assert_eq!((low.to_string(), high.to_string()), ("::/1".to_owned(), "8000::/1".to_owned()));
}

#[test]
fn containment_is_per_family() {
    assert!(prefix("10.0.0.0/8").contains(&prefix("10.1.0.0/16")));
    assert!(prefix("10.0.0.0/8").contains(&prefix("10.0.0.0/8")));
    assert!(!prefix("10.1.0.0/16").contains(&prefix("10.0.0.0/8")));
    assert!(!prefix("10.0.0.0/8").contains(&prefix("11.0.0.0/16")));
    // ::a00:0/104 has the same low bits as 10.0.0.0/8 but is another family.
    assert!(!prefix("::a00:0/104").overlaps(&prefix("10.0.0.0/8")));
    assert!(prefix("::/0").contains(&prefix("ffff::/16")));
    assert_eq!(
        prefix("10.0.0.0/8").last_addr(),
        u128::from(u32::from_be_bytes([10, 255, 255, 255]))
    );
    assert_eq!(prefix("10.1.2.0/24").truncate(16), prefix("10.1.0.0/16"));
}

#[test]
fn new_refuses_what_parse_refuses() {
    assert_eq!(Prefix::new(Family::V4, 1 << 32, 0), None);
    assert_eq!(Prefix::new(Family::V4, 1, 24), None);
    assert_eq!(Prefix::new(Family::V4, 0, 33), None);
    assert_eq!(
        Prefix::new(Family::V6, u128::MAX, 128).map(|p| p.to_string()),
        Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128".to_owned())
    );
}
