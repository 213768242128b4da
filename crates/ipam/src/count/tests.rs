//! Tests for `count`: exact decimal counts up to 2^128.

use expect_test::{Expect, expect};

use super::*;

fn check_parse(input: &str, expected: Expect) {
    expected.assert_eq(&format!(
        "{:?}",
        AddressCount::parse_decimal(input).map(|count| count.to_string())
    ));
}

#[test]
fn parses_decimal_strings() {
    check_parse("100", expect![[r#"Ok("100")"#]]);
    check_parse("0", expect![[r#"Ok("0")"#]]);
    check_parse("000", expect![[r#"Ok("0")"#]]);
    check_parse("0256", expect![[r#"Ok("256")"#]]);
    check_parse(
        "340282366920938463463374607431768211455",
        expect![[r#"Ok("340282366920938463463374607431768211455")"#]],
    );
    check_parse(
        "340282366920938463463374607431768211456",
        expect![[r#"Ok("340282366920938463463374607431768211456")"#]],
    );
    check_parse("340282366920938463463374607431768211457", expect!["Err(TooLarge)"]);
    check_parse("9".repeat(60).as_str(), expect!["Err(TooLarge)"]);
    check_parse("", expect!["Err(NotADecimalNumber)"]);
    check_parse("-1", expect!["Err(NotADecimalNumber)"]);
    check_parse("+1", expect!["Err(NotADecimalNumber)"]);
    check_parse("1e3", expect!["Err(NotADecimalNumber)"]);
    check_parse(" 1", expect!["Err(NotADecimalNumber)"]);
    check_parse("١٢", expect!["Err(NotADecimalNumber)"]);
}

#[test]
fn arithmetic_reaches_two_to_the_128_exactly() {
    let half = AddressCount::power_of_two(127);
    let all = half.checked_add(half).unwrap();
    assert_eq!(all, AddressCount::power_of_two(128));
    assert_eq!(all.as_u128(), None);
    assert_eq!(all.checked_add(AddressCount::from(1)), None);
    assert_eq!(all.checked_add(AddressCount::ZERO), Some(all));
    assert_eq!(all.checked_sub(half), Some(half));
    assert_eq!(all.checked_sub(AddressCount::from(1)).unwrap().as_u128(), Some(u128::MAX));
    assert_eq!(all.checked_sub(all), Some(AddressCount::ZERO));
    assert_eq!(half.checked_sub(all), None);
    assert_eq!(AddressCount::from(u128::MAX).checked_add(AddressCount::from(2)), None);
    assert!(AddressCount::from(u128::MAX) < all);
}

#[test]
fn blocks_multiply_up_to_two_to_the_128() {
    assert_eq!(AddressCount::blocks(3, 8), Some(AddressCount::from(768)));
    assert_eq!(AddressCount::blocks(0, 128), Some(AddressCount::ZERO));
    assert_eq!(AddressCount::blocks(1, 128), Some(AddressCount::power_of_two(128)));
    assert_eq!(AddressCount::blocks(2, 128), None);
    assert_eq!(AddressCount::blocks(2, 127), Some(AddressCount::power_of_two(128)));
    assert_eq!(AddressCount::blocks(3, 127), None);
    let most = AddressCount::blocks(u64::MAX, 64).and_then(AddressCount::as_u128);
    assert_eq!(most, Some(u128::from(u64::MAX) << 64));
    assert_eq!(AddressCount::blocks(1, 129), None);
    assert_eq!(AddressCount::power_of_two(128).as_f64(), 2f64.powi(128));
    assert_eq!(AddressCount::from(256).as_f64(), 256.0);
}
