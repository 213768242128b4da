//! Tests for `rbac`: wildcards, not-actions, scopes and the roles the seeds use.

use store::Timestamp;
use store::authorization::RoleAssignmentRecord;

use super::*;

fn assignment(scope: &str, role: &RoleDefinition) -> RoleAssignmentRecord {
    RoleAssignmentRecord {
        name: "a".to_owned(),
        scope: scope.to_owned(),
        role_definition_id: role.id.to_owned(),
        principal_id: "p".to_owned(),
        principal_type: "ServicePrincipal".to_owned(),
        tenant_id: "t".to_owned(),
        created_at: Timestamp(0),
        created_by: None,
    }
}

const POOL: &str = "/subscriptions/sa/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm/ipamPools/pool";
const ASSOCIATE: &str =
    "Microsoft.Network/networkManagers/ipamPools/associateResourcesToPool/action";

#[test]
fn wildcards_match_any_run_of_characters_case_insensitively() {
    assert!(action_matches("*", "Microsoft.Network/virtualNetworks/write"));
    assert!(action_matches("Microsoft.Network/*", "microsoft.network/virtualNetworks/write"));
    assert!(action_matches("*/read", "Microsoft.Network/virtualNetworks/read"));
    assert!(!action_matches("*/read", "Microsoft.Network/virtualNetworks/write"));
    assert!(action_matches("Microsoft.Network/networkManagers/ipamPools/*/action", ASSOCIATE));
    assert!(!action_matches(
        "Microsoft.Network/networkManagers/ipamPools/*/read",
        "Microsoft.Network/networkManagers/ipamPools/read"
    ));
    assert!(action_matches(
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/roleAssignments/write"
    ));
    assert!(!action_matches("Microsoft.Network/*", "Microsoft.Networking/x/read"));
    assert!(
        action_matches("a*b*c", "axxbyyc")
            && !action_matches("a*b*c", "axxbyy")
            && !action_matches("abc", "abcd")
    );
}

#[test]
fn contributor_cannot_write_role_assignments_but_owner_can() {
    let action = "Microsoft.Authorization/roleAssignments/write";
    assert!(!role_allows(&CONTRIBUTOR, action));
    assert!(role_allows(&OWNER, action));
    assert!(role_allows(&USER_ACCESS_ADMINISTRATOR, action));
    assert!(role_allows(&CONTRIBUTOR, "Microsoft.Network/virtualNetworks/write"));
}

#[test]
fn scopes_contain_their_descendants_on_segment_boundaries() {
    assert!(scope_contains("/subscriptions/sa", POOL));
    assert!(scope_contains("/SUBSCRIPTIONS/SA/", "/subscriptions/sa"));
    assert!(scope_contains("/", POOL));
    assert!(!scope_contains("/subscriptions/s", "/subscriptions/sa"));
    assert!(!scope_contains(POOL, "/subscriptions/sa"));
}

#[test]
fn ipam_pool_user_on_the_pool_may_associate_but_not_manage_networks() {
    let assignments = [assignment(POOL, &IPAM_POOL_USER)];
    assert!(allows(&assignments, ASSOCIATE, POOL));
    assert!(!allows(
        &assignments,
        ASSOCIATE,
        "/subscriptions/sa/resourceGroups/rg/providers/Microsoft.Network/networkManagers/nm/ipamPools/other"
    ));
    assert!(!allows(&assignments, "Microsoft.Network/virtualNetworks/write", POOL));
    assert!(has_role_at_or_below(&assignments, "/subscriptions/sa"));
    assert!(!has_role_at_or_below(&assignments, "/subscriptions/sb"));
}

#[test]
fn network_contributor_on_a_resource_group_writes_vnets_there_only() {
    let assignments = [assignment("/subscriptions/sb/resourceGroups/rg-b", &NETWORK_CONTRIBUTOR)];
    let vnet =
        "/subscriptions/sb/resourceGroups/rg-b/providers/Microsoft.Network/virtualNetworks/v";
    assert!(allows(&assignments, "Microsoft.Network/virtualNetworks/write", vnet));
    assert!(!allows(
        &assignments,
        "Microsoft.Network/virtualNetworks/write",
        "/subscriptions/sb/resourceGroups/other/providers/Microsoft.Network/virtualNetworks/v"
    ));
    assert!(!allows(&assignments, "Microsoft.Authorization/roleAssignments/write", vnet));
    assert_eq!(built_in_role("network contributor"), Some(&NETWORK_CONTRIBUTOR));
    assert_eq!(built_in_role("7b3e853f-ad5d-4fb5-a7b8-56a3581c7037"), Some(&IPAM_POOL_USER));
}
