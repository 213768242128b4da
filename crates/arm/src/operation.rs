//! Long-running operations. crosspool finishes every operation inside the request that starts
//! it, in one transaction, and records its outcome; the status URLs the response names
//! (`Azure-AsyncOperation`, `Location`) then answer from that record, as ARM's clients poll them.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use store::resource::{Precondition, ResourceWrite};

use crate::error::{ArmError, ErrorCode};
use crate::request::Ctx;
use crate::response::json;

const OPERATION_TYPE: &str = "crosspool/operations";

/// A finished operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    /// `Succeeded` or `Failed`.
    pub status: &'static str,
    /// The error of a failed operation.
    pub error: Option<ArmError>,
    /// The status a `Location` poll answers with once the operation is done (200 or 204).
    pub final_status: StatusCode,
    /// The body of that final answer, if any.
    pub final_body: Option<Value>,
}

impl Operation {
    /// A new operation id.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

fn key(subscription: &str, id: &str) -> String {
    format!("/subscriptions/{subscription}/crosspoolOperations/{id}")
}

/// Stores an operation's outcome, for the status URLs.
pub async fn record(ctx: &Ctx, subscription: &str, operation: &Operation) -> Result<(), ArmError> {
    let write = Recording::new(ctx, subscription, operation);
    ctx.write(move |tx| write.apply(tx)).await?;
    Ok(())
}

/// An operation record to write inside another transaction (the one that did the work), so the
/// outcome and the work commit together.
#[derive(Debug, Clone)]
pub struct Recording {
    id: String,
    tenant: String,
    body: String,
    now: store::Timestamp,
}

impl Recording {
    pub fn new(ctx: &Ctx, subscription: &str, operation: &Operation) -> Recording {
        let body = json!({
            "status": operation.status,
            "error": operation.error.as_ref().map(|error| json!({
                "code": error.code.as_str(), "message": error.message, "status": error.status.as_u16(),
            })),
            "finalStatus": operation.final_status.as_u16(),
            "finalBody": operation.final_body,
            "startTime": identity::time::rfc3339(ctx.now),
            "principal": ctx.caller.object_id(),
        })
        .to_string();
        Recording {
            id: key(subscription, &operation.id),
            tenant: ctx.caller.tenant_id().to_owned(),
            body,
            now: ctx.now,
        }
    }

    pub fn apply(&self, tx: &mut store::WriteTx<'_>) -> Result<(), store::error::StoreError> {
        tx.resource_put(self.write(), &Precondition::Absent, self.now).map(|_| ())
    }

    /// The record as a resource to create (with another write: `resource_put_over_creating`).
    pub fn write(&self) -> ResourceWrite<'_> {
        ResourceWrite {
            id: &self.id,
            resource_type: OPERATION_TYPE,
            tenant_id: &self.tenant,
            body: &self.body,
        }
    }
}

/// The URL of an operation under a subscription's `Microsoft.Network/locations/{location}`.
pub fn network_url(ctx: &Ctx, subscription: &str, location: &str, kind: &str, id: &str) -> String {
    format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Network/locations/{location}/{kind}/{id}?api-version={}",
        ctx.arm.identity().origin(),
        ctx.query.get("api-version").map_or("", String::as_str)
    )
}

/// The stored record of an operation, if there is one and the caller started it: its final body
/// is the resource it wrote, which only its writer is known to may read. Anyone else is told it
/// does not exist.
async fn load(ctx: &Ctx, subscription: &str, id: &str) -> Result<Value, ArmError> {
    let key = key(subscription, id);
    let stored = ctx.read(move |tx| tx.resource_get(&key)).await?;
    let caller = ctx.caller.object_id().to_owned();
    stored
        .filter(|stored| stored.resource_type == OPERATION_TYPE)
        .and_then(|stored| serde_json::from_str::<Value>(&stored.body).ok())
        .filter(|record| {
            // Records written before the starter was kept are for anyone of the tenant.
            record["principal"]
                .as_str()
                .is_none_or(|principal| principal.eq_ignore_ascii_case(&caller))
        })
        .ok_or_else(|| {
            ArmError::new(
                ErrorCode::OperationNotFound,
                format!("The operation '{id}' could not be found."),
            )
        })
}

/// An `Azure-AsyncOperation` poll: always 200 with `{status}` (and `error` when it failed).
pub async fn status(ctx: &Ctx, subscription: &str, id: &str) -> Result<Response, ArmError> {
    let record = load(ctx, subscription, id).await?;
    let mut body = json!({
        "id": ctx.path,
        "name": id,
        "status": record["status"],
        "startTime": record["startTime"],
        "endTime": record["startTime"],
    });
    if let Some(error) = record.get("error").filter(|error| error.is_object()) {
        body["error"] = json!({ "code": error["code"], "message": error["message"] });
    }
    Ok(json(StatusCode::OK, &body))
}

/// A `Location` poll: the operation's final answer, or its error with the error's status.
pub async fn result(ctx: &Ctx, subscription: &str, id: &str) -> Result<Response, ArmError> {
    let record = load(ctx, subscription, id).await?;
    if let Some(error) = record.get("error").filter(|error| error.is_object()) {
        let status = error["status"]
            .as_u64()
            .and_then(|status| StatusCode::from_u16(u16::try_from(status).ok()?).ok())
            .unwrap_or(StatusCode::CONFLICT);
        let body = json!({ "error": { "code": error["code"], "message": error["message"] } });
        return Ok(json(status, &body));
    }
    let status = record["finalStatus"]
        .as_u64()
        .and_then(|status| StatusCode::from_u16(u16::try_from(status).ok()?).ok())
        .unwrap_or(StatusCode::NO_CONTENT);
    Ok(match record.get("finalBody").filter(|body| !body.is_null()) {
        Some(body) => json(status, body),
        None => empty(status),
    })
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = status;
    response
}

/// Adds a header whose value is a URL the server made.
pub fn with_header(mut response: Response, name: &'static str, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}
