//! One ARM request as the resource handlers see it: who calls, with which api-version, body and
//! preconditions, the checks every resource shares (subscription and token tenant, RBAC), the
//! resource group a path names, and the request's reads and writes of the store.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};
use store::Timestamp;
use store::authorization::{RoleAssignmentRecord, SubscriptionRecord};
use store::resource::Precondition;

use crate::api_version::ApiVersions;
use crate::auth::{Caller, PrincipalKind, check_token_tenant};
use crate::error::{ArmError, ErrorCode};
use crate::rbac;
use crate::state::{Arm, RequestIds};

/// The type of resource groups' documents.
pub const RESOURCE_GROUP_TYPE: &str = "Microsoft.Resources/resourceGroups";

/// An ARM request, parsed.
#[derive(Debug)]
pub struct Ctx {
    pub arm: Arc<Arm>,
    pub method: Method,
    /// The path as sent.
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub caller: Caller,
    pub ids: RequestIds,
    pub now: Timestamp,
    /// The caller's role assignments, read once per request (with the subscription).
    pub assignments: std::sync::OnceLock<Vec<RoleAssignmentRecord>>,
    /// The request's use of the store's cache of what authorization reads (`store::cache`).
    pub ticket: Arc<store::cache::Ticket>,
}

impl Ctx {
    /// A read transaction of this request, through the store's cache (`store::cache`).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut store::ReadTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<store::error::StoreError> + Send + 'static,
    {
        self.arm.identity().store().read_cached(&self.ticket, f).await
    }

    /// A write transaction of this request (`Store::write`).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&mut store::WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<store::error::StoreError> + Send + 'static,
    {
        self.arm.identity().store().write(f).await
    }

    /// A write transaction of this request that locks the pool trees of the network manager
    /// `key` names (`Store::write_on`).
    pub async fn write_on<T, E, F>(&self, key: &str, f: F) -> Result<T, E>
    where
        F: FnMut(&mut store::WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<store::error::StoreError> + Send + 'static,
    {
        self.arm.identity().store().write_on(key, f).await
    }

    /// The 405 for this request's method and path.
    pub fn method_not_allowed(&self) -> ArmError {
        ArmError::method_not_allowed(&self.method, &self.path)
    }

    /// The stored resource group `name` of `subscription`, if it exists.
    pub async fn resource_group(
        &self,
        subscription: &str,
        name: &str,
    ) -> Result<Option<Value>, ArmError> {
        let id = format!("/subscriptions/{subscription}/resourceGroups/{name}");
        let stored = self.read(move |tx| tx.resource_of_type(RESOURCE_GROUP_TYPE, &id)).await?;
        Ok(stored.and_then(|stored| serde_json::from_str(&stored.body).ok()))
    }

    /// The resource group, which must exist: a resource inside a missing group is
    /// `ResourceGroupNotFound`.
    pub async fn require_resource_group(
        &self,
        subscription: &str,
        name: &str,
    ) -> Result<Value, ArmError> {
        self.resource_group(subscription, name)
            .await?
            .ok_or_else(|| ArmError::resource_group_not_found(name))
    }

    /// The request's api-version, if `versions` serves it.
    pub fn api_version(&self, versions: &ApiVersions) -> Result<&'static str, ArmError> {
        versions.check(self.query.get("api-version").map(String::as_str))
    }

    /// The body as a JSON object.
    pub fn json_body(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ArmError::invalid_content("the request body is empty"));
        }
        let value: Value = serde_json::from_slice(&self.body).map_err(|error| {
            ArmError::invalid_content(&format!("the body is not valid JSON: {error}"))
        })?;
        if !value.is_object() {
            return Err(ArmError::invalid_content("the body must be a JSON object"));
        }
        Ok(value)
    }

    /// `If-Match` / `If-None-Match: *` as a store precondition.
    pub fn precondition(&self) -> Precondition {
        let header = |name: &str| {
            self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
        };
        match (header("if-match"), header("if-none-match")) {
            (Some("*"), _) => Precondition::Exists,
            (Some(etag), _) if !etag.is_empty() => Precondition::IfMatch(etag.to_owned()),
            (_, Some("*")) => Precondition::Absent,
            _ => Precondition::None,
        }
    }

    /// The subscription addressed, which must exist and belong to the token's tenant.
    pub async fn subscription(&self, id: &str) -> Result<SubscriptionRecord, ArmError> {
        let (lookup, principal) = (id.to_owned(), self.caller.object_id().to_owned());
        // The caller's assignments come along: nearly every request checks a role next.
        let (subscription, assignments) = self
            .read(move |tx| {
                Ok::<_, store::error::StoreError>((
                    tx.subscription_get(&lookup)?,
                    tx.role_assignments_for_principal(&principal)?,
                ))
            })
            .await?;
        let _ = self.assignments.set(assignments);
        let subscription = subscription.ok_or_else(|| {
            ArmError::new(
                ErrorCode::SubscriptionNotFound,
                format!("The subscription '{id}' could not be found."),
            )
        })?;
        check_token_tenant(&self.arm, &self.caller, &subscription)?;
        Ok(subscription)
    }

    /// Refuses the request unless the caller's roles grant `action` on `scope`.
    pub async fn authorize(&self, action: &str, scope: &str) -> Result<(), ArmError> {
        if self.allowed(action, scope).await? {
            return Ok(());
        }
        Err(ArmError::authorization_failed(
            self.caller.name(),
            self.caller.object_id(),
            action,
            scope,
        ))
    }

    /// Refuses a list unless the caller's roles grant `action` at `scope` or somewhere below it
    /// (the list then shows only what it may read): a caller without rights there learns
    /// nothing of what exists.
    pub async fn authorize_list(&self, action: &str, scope: &str) -> Result<(), ArmError> {
        if rbac::allows_at_or_below(self.role_assignments().await?, action, scope) {
            return Ok(());
        }
        Err(ArmError::authorization_failed(
            self.caller.name(),
            self.caller.object_id(),
            action,
            scope,
        ))
    }

    /// Whether the caller's roles grant `action` on `scope`.
    pub async fn allowed(&self, action: &str, scope: &str) -> Result<bool, ArmError> {
        Ok(rbac::allows(self.role_assignments().await?, action, scope))
    }

    /// The caller's role assignments, read once per request (usually with the subscription).
    pub async fn role_assignments(&self) -> Result<&[RoleAssignmentRecord], ArmError> {
        if let Some(assignments) = self.assignments.get() {
            return Ok(assignments);
        }
        let principal = self.caller.object_id().to_owned();
        let assignments =
            self.read(move |tx| tx.role_assignments_for_principal(&principal)).await?;
        Ok(self.assignments.get_or_init(|| assignments))
    }

    /// `systemData` for a resource created (or last changed) by this request.
    pub fn system_data(&self, created: Option<&Value>) -> Value {
        let (who, kind) = (self.caller.name(), principal_type(self.caller.kind()));
        let at = identity::time::rfc3339(self.now);
        let mut data = json!({
            "createdBy": who, "createdByType": kind, "createdAt": at,
            "lastModifiedBy": who, "lastModifiedByType": kind, "lastModifiedAt": at,
        });
        if let Some(created) = created.filter(|created| created.is_object()) {
            for field in ["createdBy", "createdByType", "createdAt"] {
                data[field] = created[field].clone();
            }
        }
        data
    }

    /// `$top` (or `top`) within 1..=`max`, `default` when absent.
    pub fn top(&self, default: usize, max: usize) -> Result<usize, ArmError> {
        let Some(text) = self.query.get("$top").or_else(|| self.query.get("top")) else {
            return Ok(default);
        };
        text.parse::<usize>().ok().filter(|top| (1..=max).contains(top)).ok_or_else(|| {
            ArmError::new(ErrorCode::InvalidParameter,
                format!("The value '{text}' of '$top' is invalid: it must be an integer from 1 to {max}."),
            )
        })
    }

    /// The `$skipToken` (or `skipToken`) of a paged list: the last key of the previous page.
    pub fn skip_token(&self) -> Option<&str> {
        self.query
            .get("$skipToken")
            .or_else(|| self.query.get("skipToken"))
            .map(String::as_str)
            .filter(|token| !token.is_empty())
    }

    /// The `nextLink` of a page that ended at `last_key`: this request's URL with its
    /// api-version, `$top` and the new `$skipToken`.
    pub fn next_link(&self, last_key: &str, top: usize) -> String {
        format!(
            "{}{}?api-version={}&$top={top}&$skipToken={}",
            self.arm.identity().origin(),
            self.path,
            encode(self.query.get("api-version").map_or("", String::as_str)),
            encode(last_key)
        )
    }
}

/// The `systemData` kind of a principal.
pub fn principal_type(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Application => "Application",
    }
}

/// The optional string at a dotted `path` of a body; any other type is a 400 naming the field.
pub fn opt_str<'a>(body: &'a Value, path: &str) -> Result<Option<&'a str>, ArmError> {
    match lookup(body, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ArmError::invalid_field(path, "must be a string")),
    }
}

/// The required string at `path`.
pub fn req_str<'a>(body: &'a Value, path: &str) -> Result<&'a str, ArmError> {
    opt_str(body, path)?.ok_or_else(|| ArmError::invalid_field(path, "is required"))
}

/// The optional array at `path`.
pub fn opt_array<'a>(body: &'a Value, path: &str) -> Result<Option<&'a Vec<Value>>, ArmError> {
    match lookup(body, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(ArmError::invalid_field(path, "must be an array")),
    }
}

/// The optional object at `path`.
pub fn opt_object<'a>(body: &'a Value, path: &str) -> Result<Option<&'a Value>, ArmError> {
    match lookup(body, path) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value)),
        Some(_) => Err(ArmError::invalid_field(path, "must be an object")),
    }
}

/// The optional string array at `path`.
pub fn opt_strings(body: &Value, path: &str) -> Result<Option<Vec<String>>, ArmError> {
    let Some(items) = opt_array(body, path)? else { return Ok(None) };
    items
        .iter()
        .enumerate()
        .map(|(at, item)| {
            item.as_str().map(str::to_owned).ok_or_else(|| {
                ArmError::invalid_field(&format!("{path}[{at}]"), "must be a string")
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn lookup<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(body, |value, key| value.get(key))
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_in_errors() {
        let body = json!({"properties": {"a": 1, "b": "x", "c": ["y", 2]}});
        assert_eq!(opt_str(&body, "properties.b").unwrap(), Some("x"));
        assert_eq!(opt_str(&body, "properties.z").unwrap(), None);
        assert_eq!(
            opt_str(&body, "properties.a").unwrap_err().target.as_deref(),
            Some("properties.a")
        );
        assert_eq!(req_str(&body, "location").unwrap_err().target.as_deref(), Some("location"));
        assert_eq!(
            opt_strings(&body, "properties.c").unwrap_err().target.as_deref(),
            Some("properties.c[1]")
        );
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("/subscriptions/a b"), "%2Fsubscriptions%2Fa%20b");
    }
}
