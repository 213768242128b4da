//! Subscriptions and role assignments. The store keeps them and finds a principal's assignments
//! through an index; `arm::rbac` decides what they allow.

use crate::db::{Row, Value};
use crate::error::StoreError;
use crate::{ReadTx, Timestamp, WriteTx};

/// A subscription of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// A GUID.
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    /// `Enabled` normally.
    pub state: String,
}

/// A role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignmentRecord {
    /// The assignment's name (a GUID chosen by the client).
    pub name: String,
    /// The scope as created, e.g. `/subscriptions/S/resourceGroups/RG`.
    pub scope: String,
    /// The GUID of the role definition.
    pub role_definition_id: String,
    /// The object id of the user or service principal.
    pub principal_id: String,
    /// `User`, `ServicePrincipal` or `Group`.
    pub principal_type: String,
    /// The tenant the scope belongs to.
    pub tenant_id: String,
    pub created_at: Timestamp,
    pub created_by: Option<String>,
}

/// The subscription id a scope lies in, lower-cased, if any.
pub fn subscription_of_scope(scope: &str) -> Option<String> {
    let mut segments = scope.split('/').filter(|segment| !segment.is_empty());
    match (segments.next(), segments.next()) {
        (Some(first), Some(id)) if first.eq_ignore_ascii_case("subscriptions") => {
            Some(id.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn subscription_from(row: &Row) -> SubscriptionRecord {
    SubscriptionRecord {
        id: row.text(0).to_owned(),
        tenant_id: row.text(1).to_owned(),
        display_name: row.text(2).to_owned(),
        state: row.text(3).to_owned(),
    }
}

fn assignment_from(row: &Row) -> RoleAssignmentRecord {
    RoleAssignmentRecord {
        name: row.text(0).to_owned(),
        scope: row.text(1).to_owned(),
        role_definition_id: row.text(2).to_owned(),
        principal_id: row.text(3).to_owned(),
        principal_type: row.text(4).to_owned(),
        tenant_id: row.text(5).to_owned(),
        created_at: Timestamp(row.int(6)),
        created_by: row.opt_text(7).map(str::to_owned),
    }
}

const SUBSCRIPTION: &str = "SELECT id, tenant_id, display_name, state FROM subscriptions";
const ASSIGNMENT: &str = "SELECT name, scope, role_definition_id, principal_id, principal_type, tenant_id, created_at, created_by \
     FROM role_assignments";

impl ReadTx<'_> {
    /// The subscription with this id (cached, see `cache`).
    pub fn subscription_get(&mut self, id: &str) -> Result<Option<SubscriptionRecord>, StoreError> {
        let id = id.to_ascii_lowercase();
        self.cached(
            || format!("subscription {id:?}"),
            |read| {
                let row = read
                    .tx
                    .query_opt(&format!("{SUBSCRIPTION} WHERE id = $1"), &[id.as_str().into()])?;
                Ok(row.as_ref().map(subscription_from))
            },
        )
    }

    pub fn subscriptions_of_tenant(
        &mut self,
        tenant_id: &str,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let rows = self.tx.query(
            &format!("{SUBSCRIPTION} WHERE tenant_id = $1 ORDER BY id"),
            &[tenant_id.into()],
        )?;
        Ok(rows.iter().map(subscription_from).collect())
    }

    /// Every assignment naming a principal, through the principal index (cached, see `cache`).
    pub fn role_assignments_for_principal(
        &mut self,
        principal_id: &str,
    ) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
        let principal_id = principal_id.to_ascii_lowercase();
        self.cached(
            || format!("assignments {principal_id:?}"),
            |read| {
                let rows = read.tx.query(
                    &format!("{ASSIGNMENT} WHERE principal_id = $1 ORDER BY scope_key, name"),
                    &[principal_id.as_str().into()],
                )?;
                Ok(rows.iter().map(assignment_from).collect())
            },
        )
    }

    /// The assignments made exactly at a scope.
    pub fn role_assignments_at_scope(
        &mut self,
        scope: &str,
    ) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
        let rows = self.tx.query(
            &format!("{ASSIGNMENT} WHERE scope_key = $1 ORDER BY name"),
            &[scope.to_ascii_lowercase().into()],
        )?;
        Ok(rows.iter().map(assignment_from).collect())
    }

    /// The assignments at a subscription and every scope below it.
    pub fn role_assignments_in_subscription(
        &mut self,
        subscription_id: &str,
    ) -> Result<Vec<RoleAssignmentRecord>, StoreError> {
        let rows = self.tx.query(
            &format!("{ASSIGNMENT} WHERE subscription_id = $1 ORDER BY scope_key, name"),
            &[subscription_id.to_ascii_lowercase().into()],
        )?;
        Ok(rows.iter().map(assignment_from).collect())
    }

    pub fn role_assignment_get(
        &mut self,
        name: &str,
    ) -> Result<Option<RoleAssignmentRecord>, StoreError> {
        let row = self.tx.query_opt(
            &format!("{ASSIGNMENT} WHERE name = $1"),
            &[name.to_ascii_lowercase().into()],
        )?;
        Ok(row.as_ref().map(assignment_from))
    }
}

impl WriteTx<'_> {
    pub fn subscription_create(
        &mut self,
        subscription: &SubscriptionRecord,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if self.subscription_get(&subscription.id)?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "subscription",
                id: subscription.id.clone(),
            });
        }
        self.tx.execute(
            "INSERT INTO subscriptions (id, tenant_id, display_name, state, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                subscription.id.to_ascii_lowercase().into(),
                subscription.tenant_id.as_str().into(),
                subscription.display_name.as_str().into(),
                subscription.state.as_str().into(),
                Value::Int(now.0),
            ],
        )?;
        Ok(())
    }

    /// Stores an assignment; its name must be new.
    pub fn role_assignment_create(
        &mut self,
        assignment: &RoleAssignmentRecord,
    ) -> Result<(), StoreError> {
        if self.role_assignment_get(&assignment.name)?.is_some() {
            return Err(StoreError::AlreadyExists {
                what: "role assignment",
                id: assignment.name.clone(),
            });
        }
        self.tx.execute(
            "INSERT INTO role_assignments (name, scope_key, scope, subscription_id, role_definition_id, principal_id, principal_type, tenant_id, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                assignment.name.to_ascii_lowercase().into(),
                assignment.scope.to_ascii_lowercase().into(),
                assignment.scope.as_str().into(),
                subscription_of_scope(&assignment.scope).into(),
                assignment.role_definition_id.to_ascii_lowercase().into(),
                assignment.principal_id.to_ascii_lowercase().into(),
                assignment.principal_type.as_str().into(),
                assignment.tenant_id.as_str().into(),
                Value::Int(assignment.created_at.0),
                assignment.created_by.as_deref().into(),
            ],
        )?;
        Ok(())
    }

    /// Deletes an assignment; returns it if it existed.
    pub fn role_assignment_delete(
        &mut self,
        name: &str,
    ) -> Result<Option<RoleAssignmentRecord>, StoreError> {
        let existing = self.role_assignment_get(name)?;
        if existing.is_some() {
            self.tx.execute(
                "DELETE FROM role_assignments WHERE name = $1",
                &[name.to_ascii_lowercase().into()],
            )?;
        }
        Ok(existing)
    }
}

#[cfg(test)]
mod tests {
    use super::subscription_of_scope;

    #[test]
    fn finds_the_subscription_of_a_scope() {
        assert_eq!(
            subscription_of_scope("/subscriptions/ABC/resourceGroups/rg").as_deref(),
            Some("abc")
        );
        assert_eq!(subscription_of_scope("/subscriptions/abc").as_deref(), Some("abc"));
        assert_eq!(subscription_of_scope("/").as_deref(), None);
        assert_eq!(
            subscription_of_scope("/providers/Microsoft.Management/managementGroups/mg").as_deref(),
            None
        );
    }
}
