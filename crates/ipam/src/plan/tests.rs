//! Tests for `plan`: choosing, splitting, carving and merging blocks.

use expect_test::expect;

use super::*;

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

fn prefixes(texts: &[&str]) -> Vec<Prefix> {
    texts.iter().map(|text| prefix(text)).collect()
}

#[test]
fn best_fit_takes_the_smallest_block_that_fits_then_the_lowest_address() {
    let free =
        prefixes(&["10.0.0.0/24", "10.0.1.0/28", "10.0.2.0/26", "10.0.3.0/26", "10.0.4.0/30"]);
    assert_eq!(choose(Placement::BestFit, 26, free.clone()), Some(prefix("10.0.2.0/26")));
    assert_eq!(choose(Placement::BestFit, 28, free.clone()), Some(prefix("10.0.1.0/28")));
    assert_eq!(choose(Placement::BestFit, 25, free.clone()), Some(prefix("10.0.0.0/24")));
    assert_eq!(choose(Placement::BestFit, 23, free), None);
}

#[test]
fn first_fit_and_last_fit_take_the_lowest_and_highest_block_that_fits() {
    let free = prefixes(&["10.0.0.0/28", "10.0.1.0/24", "10.0.2.0/26", "10.0.3.0/28"]);
    assert_eq!(choose(Placement::FirstFit, 26, free.clone()), Some(prefix("10.0.1.0/24")));
    assert_eq!(choose(Placement::FirstFit, 28, free.clone()), Some(prefix("10.0.0.0/28")));
    assert_eq!(choose(Placement::LastFit, 26, free.clone()), Some(prefix("10.0.2.0/26")));
    assert_eq!(choose(Placement::LastFit, 28, free), Some(prefix("10.0.3.0/28")));
}

fn show(split: Split) -> String {
    let remainder: Vec<String> = split.remainder().map(|block| block.to_string()).collect();
    format!("{} from {}, leaving {}", split.taken, split.free_block, remainder.join(" "))
}

#[test]
fn split_keeps_the_low_end_except_for_last_fit() {
    expect!["10.0.0.0/27 from 10.0.0.0/24, leaving 10.0.0.128/25 10.0.0.64/26 10.0.0.32/27"]
        .assert_eq(&show(split(prefix("10.0.0.0/24"), 27, Placement::BestFit)));
    expect!["10.0.0.224/27 from 10.0.0.0/24, leaving 10.0.0.0/25 10.0.0.128/26 10.0.0.192/27"]
        .assert_eq(&show(split(prefix("10.0.0.0/24"), 27, Placement::LastFit)));
    expect!["10.0.0.0/24 from 10.0.0.0/24, leaving "].assert_eq(&show(split(
        prefix("10.0.0.0/24"),
        24,
        Placement::FirstFit,
    )));
    let last_fit = split(prefix("8000::/1"), 64, Placement::LastFit);
    assert_eq!(last_fit.taken, prefix("ffff:ffff:ffff:ffff::/64"));
    let remainder: Vec<Prefix> = last_fit.remainder().collect();
    assert_eq!(
        (remainder.len(), remainder[0], remainder[62]),
        (63, prefix("8000::/2"), prefix("ffff:ffff:ffff:fffe::/64"))
    );
}

#[test]
fn carve_leaves_the_siblings_along_the_path() {
    expect!["10.0.0.96/27 from 10.0.0.0/24, leaving 10.0.0.128/25 10.0.0.0/26 10.0.0.64/27"]
        .assert_eq(&show(carve(prefix("10.0.0.0/24"), prefix("10.0.0.96/27"))));
    assert_eq!(carve(prefix("10.0.0.0/24"), prefix("10.0.0.0/24")).remainder().count(), 0);
}

#[test]
fn merge_climbs_while_the_buddy_is_free() {
    let free = prefixes(&["10.0.0.128/25", "10.0.0.0/26", "10.0.0.64/27", "10.0.1.0/24"]);
    let merged = merge(prefix("10.0.0.96/27"), |buddy| free.contains(buddy));
    assert_eq!(merged.merged, prefix("10.0.0.0/23"));
    expect![[r#"
        [
            10.0.0.64/27,
            10.0.0.0/26,
            10.0.0.128/25,
            10.0.1.0/24,
        ]
    "#]]
    .assert_debug_eq(&merged.absorbed().collect::<Vec<_>>());
    let alone = merge(prefix("10.0.0.96/27"), |_| false);
    assert_eq!((alone.merged, alone.absorbed().count()), (prefix("10.0.0.96/27"), 0));
}

#[test]
fn merge_candidates_stop_at_the_pool_prefix() {
    expect![[r#"
        [
            10.0.0.64/27,
            10.0.0.0/26,
            10.0.0.128/25,
        ]
    "#]]
    .assert_debug_eq(&merge_candidates(prefix("10.0.0.96/27"), 24));
    assert_eq!(merge_candidates(prefix("10.0.0.0/24"), 24), vec![]);
}

#[test]
fn placement_names_round_trip() {
    for placement in [Placement::BestFit, Placement::FirstFit, Placement::LastFit] {
        assert_eq!(Placement::parse(placement.name()), Some(placement));
    }
    assert_eq!(Placement::parse("lastfit"), Some(Placement::LastFit));
    assert_eq!(Placement::parse("worst"), None);
}
