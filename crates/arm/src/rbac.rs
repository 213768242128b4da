//! Role-based access: the built-in role definitions (their real ids and actions), matching of
//! actions against `actions`/`notActions` with ARM's `*` wildcard, scope containment, and the
//! check itself. A principal's assignments come from the store's principal index, so a decision
//! never scans all assignments.

#[cfg(test)]
mod tests;

use store::authorization::RoleAssignmentRecord;

/// A role definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleDefinition {
    /// The definition's GUID.
    pub id: &'static str,
    pub role_name: &'static str,
    pub description: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

pub const OWNER: RoleDefinition = RoleDefinition {
    id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    role_name: "Owner",
    description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
    actions: &["*"],
    not_actions: &[],
};

pub const CONTRIBUTOR: RoleDefinition = RoleDefinition {
    id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
    role_name: "Contributor",
    description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
    actions: &["*"],
    not_actions: &[
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
    ],
};

pub const READER: RoleDefinition = RoleDefinition {
    id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    role_name: "Reader",
    description: "View all resources, but does not allow you to make any changes.",
    actions: &["*/read"],
    not_actions: &[],
};

pub const USER_ACCESS_ADMINISTRATOR: RoleDefinition = RoleDefinition {
    id: "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    role_name: "User Access Administrator",
    description: "Lets you manage user access to Azure resources.",
    actions: &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
    not_actions: &[],
};

pub const NETWORK_CONTRIBUTOR: RoleDefinition = RoleDefinition {
    id: "4d97b98b-1d4f-4787-a291-c67834d212e7",
    role_name: "Network Contributor",
    description: "Lets you manage networks, but not access to them.",
    actions: &[
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Network/*",
        "Microsoft.ResourceHealth/availabilityStatuses/read",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Support/*",
    ],
    not_actions: &[],
};

pub const IPAM_POOL_USER: RoleDefinition = RoleDefinition {
    id: "7b3e853f-ad5d-4fb5-a7b8-56a3581c7037",
    role_name: "IPAM Pool User",
    description: "Read IPAM Pools and child resources. Create and remove associations. This role is in preview and subject to change.",
    actions: &[
        "Microsoft.Network/networkManagers/ipamPools/*/read",
        "Microsoft.Network/networkManagers/ipamPools/*/action",
        "Microsoft.Network/networkManagers/ipamPools/*/write",
    ],
    not_actions: &[],
};

/// Every built-in role.
pub const BUILT_IN_ROLES: [RoleDefinition; 6] =
    [OWNER, CONTRIBUTOR, READER, USER_ACCESS_ADMINISTRATOR, NETWORK_CONTRIBUTOR, IPAM_POOL_USER];

/// The built-in role with this GUID or name (case-insensitive).
pub fn built_in_role(id_or_name: &str) -> Option<&'static RoleDefinition> {
    BUILT_IN_ROLES.iter().find(|role| {
        role.id.eq_ignore_ascii_case(id_or_name) || role.role_name.eq_ignore_ascii_case(id_or_name)
    })
}

/// Whether an action pattern matches an action: case-insensitive, `*` standing for any run of
/// characters (including `/`), as in ARM role definitions.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = action.to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = action.strip_prefix(first) else { return false };
    let Some((last, middle)) = rest.split_last() else { return remaining.is_empty() };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Whether a role grants an action.
pub fn role_allows(role: &RoleDefinition, action: &str) -> bool {
    role.actions.iter().any(|pattern| action_matches(pattern, action))
        && !role.not_actions.iter().any(|pattern| action_matches(pattern, action))
}

/// Whether `outer` is `inner` or one of its ancestors (compared case-insensitively, on segment
/// boundaries; `/` contains everything).
pub fn scope_contains(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/').to_ascii_lowercase();
    let inner = inner.trim_end_matches('/').to_ascii_lowercase();
    outer.is_empty()
        || inner == outer
        || inner.strip_prefix(&outer).is_some_and(|rest| rest.starts_with('/'))
}

/// Whether any of a principal's assignments grants `action` on `scope`: the assignment's scope
/// contains `scope` and its role allows the action.
pub fn allows(assignments: &[RoleAssignmentRecord], action: &str, scope: &str) -> bool {
    assignments.iter().any(|assignment| {
        scope_contains(&assignment.scope, scope)
            && built_in_role(&assignment.role_definition_id)
                .is_some_and(|role| role_allows(role, action))
    })
}

/// Whether any of a principal's assignments grants `action` at `scope`, above it, or on
/// something below it: what a list at `scope` needs to show anything.
pub fn allows_at_or_below(assignments: &[RoleAssignmentRecord], action: &str, scope: &str) -> bool {
    assignments.iter().any(|assignment| {
        (scope_contains(&assignment.scope, scope) || scope_contains(scope, &assignment.scope))
            && built_in_role(&assignment.role_definition_id)
                .is_some_and(|role| role_allows(role, action))
    })
}

/// Whether a principal holds any role at `scope`, below it, or above it (any of these makes a
/// subscription visible).
pub fn has_role_at_or_below(assignments: &[RoleAssignmentRecord], scope: &str) -> bool {
    assignments.iter().any(|assignment| {
        scope_contains(scope, &assignment.scope) || scope_contains(&assignment.scope, scope)
    })
}

/// Why a role assignment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("the scope {0:?} is not inside an existing subscription")]
    UnknownScope(String),
    #[error("the role assignment already exists")]
    Exists,
    #[error("a role assignment with this name exists with other properties")]
    NameTaken,
    #[error(transparent)]
    Store(#[from] store::error::StoreError),
}

/// A role assignment to make.
#[derive(Debug, Clone)]
pub struct NewAssignment<'a> {
    /// The assignment's name; a new GUID when `None`.
    pub name: Option<&'a str>,
    pub scope: &'a str,
    pub role: &'a RoleDefinition,
    pub principal_id: &'a str,
    pub principal_type: &'a str,
    pub created_by: Option<&'a str>,
}

/// Assigns a built-in role to a principal at a scope inside a subscription (the assignment's
/// tenant is the subscription's). Repeating an assignment under its own name returns it
/// (`false`: not created); the same scope, role and principal under another name is `Exists`.
pub async fn assign(
    store: &store::Store,
    new: NewAssignment<'_>,
    now: store::Timestamp,
) -> Result<(RoleAssignmentRecord, bool), AssignError> {
    let subscription_id = store::authorization::subscription_of_scope(new.scope)
        .ok_or_else(|| AssignError::UnknownScope(new.scope.to_owned()))?;
    let assignment = RoleAssignmentRecord {
        name: new.name.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_ascii_lowercase),
        scope: new.scope.trim_end_matches('/').to_owned(),
        role_definition_id: new.role.id.to_owned(),
        principal_id: new.principal_id.to_ascii_lowercase(),
        principal_type: new.principal_type.to_owned(),
        tenant_id: String::new(),
        created_at: now,
        created_by: new.created_by.map(str::to_owned),
    };
    store
        .write(move |tx| {
            let Some(subscription) = tx.subscription_get(&subscription_id)? else {
                return Err(AssignError::UnknownScope(assignment.scope.clone()));
            };
            let same = |other: &RoleAssignmentRecord| {
                other.principal_id == assignment.principal_id
                    && other.role_definition_id.eq_ignore_ascii_case(&assignment.role_definition_id)
                    && other.scope.eq_ignore_ascii_case(&assignment.scope)
            };
            if let Some(existing) = tx.role_assignment_get(&assignment.name)? {
                return if same(&existing) {
                    Ok((existing, false))
                } else {
                    Err(AssignError::NameTaken)
                };
            }
            if tx.role_assignments_at_scope(&assignment.scope)?.iter().any(same) {
                return Err(AssignError::Exists);
            }
            let stored =
                RoleAssignmentRecord { tenant_id: subscription.tenant_id, ..assignment.clone() };
            tx.role_assignment_create(&stored)?;
            Ok((stored, true))
        })
        .await
}
