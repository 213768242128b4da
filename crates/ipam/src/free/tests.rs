//! Tests for `free`: the in-memory free-block index.

use expect_test::expect;

use super::*;

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

fn pool(texts: &[&str]) -> FreeBlocks {
    let mut free = FreeBlocks::new(prefix(texts[0]).family());
    for text in texts {
        free.release(prefix(text));
    }
    free
}

fn blocks(free: &FreeBlocks) -> Vec<String> {
    free.iter().map(|block| block.to_string()).collect()
}

#[test]
fn release_merges_buddies_back_into_a_slash_24() {
    let mut free = pool(&["10.0.0.0/24"]);
    let taken: Vec<Prefix> = [26, 27, 29, 25]
        .iter()
        .map(|len| free.take_len(*len, Placement::BestFit).unwrap())
        .collect();
    expect![[r#"
        [
            10.0.0.0/26,
            10.0.0.64/27,
            10.0.0.96/29,
            10.0.0.128/25,
        ]
    "#]]
    .assert_debug_eq(&taken);
    expect![[r#"
        [
            "10.0.0.104/29",
            "10.0.0.112/28",
        ]
    "#]]
    .assert_debug_eq(&blocks(&free));
    for block in taken {
        free.release(block);
    }
    assert_eq!(blocks(&free), vec!["10.0.0.0/24"]);
    assert_eq!(free.n_free_addresses().to_string(), "256");
}

#[test]
fn best_fit_keeps_large_blocks_whole() {
    let mut free = pool(&["10.0.0.0/24"]);
    let small = free.take_len(28, Placement::BestFit).unwrap();
    let _middle = free.take_len(26, Placement::BestFit).unwrap();
    free.release(small);
    // The /28 hole is reused for the next /29 instead of cutting into the /25.
    assert_eq!(free.take_len(29, Placement::BestFit), Some(prefix("10.0.0.0/29")));
    assert_eq!(free.largest(), Some(prefix("10.0.0.128/25")));
}

#[test]
fn first_fit_and_last_fit_choose_by_address() {
    let mut free = pool(&["10.0.0.0/24", "10.0.2.0/28"]);
    assert_eq!(free.take_len(28, Placement::FirstFit), Some(prefix("10.0.0.0/28")));
    assert_eq!(free.take_len(29, Placement::LastFit), Some(prefix("10.0.2.8/29")));
    assert_eq!(free.take_len(25, Placement::LastFit), Some(prefix("10.0.0.128/25")));
}

#[test]
fn take_prefix_needs_the_whole_prefix_free() {
    let mut free = pool(&["10.0.0.0/24"]);
    assert_eq!(free.take_prefix(prefix("10.0.0.64/26")), Some(prefix("10.0.0.64/26")));
    assert_eq!(free.take_prefix(prefix("10.0.0.0/25")), None);
    assert_eq!(free.take_prefix(prefix("10.0.1.0/29")), None);
    assert_eq!(free.containing(&prefix("10.0.0.8/29")), Some(prefix("10.0.0.0/26")));
    assert_eq!(free.take_len(24, Placement::BestFit), None);
}

#[test]
fn ipv6_slash_zero_is_counted_exactly() {
    let mut free = pool(&["::/0"]);
    assert_eq!(free.n_free_addresses().to_string(), "340282366920938463463374607431768211456");
    let block = free.take_len(64, Placement::BestFit).unwrap();
    assert_eq!(block.to_string(), "::/64");
    assert_eq!(free.n_free_addresses().to_string(), "340282366920938463444927863358058659840");
    free.release(block);
    assert_eq!(blocks(&free), vec!["::/0"]);
}
