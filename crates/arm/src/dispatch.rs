//! The one entry for resource requests: every path under `/subscriptions/{s}/…` (and
//! `…/providers/Microsoft.Authorization/…` at any scope) comes here, is authenticated, parsed
//! case-insensitively into a `Target`, and handed to the resource's module.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, Request, State};
use axum::response::{IntoResponse, Response};

use identity::trace::{CallerTrace, RouteTrace};

use crate::auth::Caller;
use crate::error::{ArmError, ErrorCode};
use crate::path::{self, Target};
use crate::request::Ctx;
use crate::state::{Arm, RequestIds};
use crate::{authorization, groups, network, operation};

/// The largest request body accepted.
const MAX_BODY: usize = 4 << 20;

/// Axum handler for every resource path.
pub async fn handle(State(arm): State<Arc<Arm>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &arm).await {
        Ok(caller) => call(arm, caller, Request::from_parts(parts, body)).await,
        Err(error) => error.into_response(),
    }
}

/// Runs a request as `caller` inside the server, through the same routing and checks as a
/// client's request (the demo world is made this way). The response carries the caller and the
/// route's template for the request log (`identity::trace`).
pub async fn call(arm: Arc<Arm>, caller: Caller, request: Request) -> Response {
    let trace = CallerTrace {
        tenant_id: caller.tenant_id().to_owned(),
        object_id: caller.object_id().to_owned(),
    };
    let route = route_template(request.uri().path());
    let mut response = match run_as(arm, caller, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(trace);
    if let Some(route) = route {
        response.extensions_mut().insert(RouteTrace(route));
    }
    response
}

/// The template of the route a path takes, e.g.
/// `/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}`.
fn route_template(path: &str) -> Option<String> {
    Some(match path::parse(path)? {
        Target::ResourceGroups { .. } => {
            "/subscriptions/{subscriptionId}/resourcegroups".to_owned()
        }
        Target::ResourceGroup { .. } => {
            "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}".to_owned()
        }
        Target::OperationResult { .. } => {
            "/subscriptions/{subscriptionId}/operationresults/{operationId}".to_owned()
        }
        Target::Authorization { kind, name, .. } => match name {
            Some(_) => format!("{{scope}}/providers/Microsoft.Authorization/{kind}/{{name}}"),
            None => format!("{{scope}}/providers/Microsoft.Authorization/{kind}"),
        },
        Target::Provider(reference) => network::route_of(&reference)
            .map(|route| route.template(reference.resource_group.is_some()))?,
    })
}

async fn run_as(arm: Arc<Arm>, caller: Caller, request: Request) -> Result<Response, ArmError> {
    let (parts, body) = request.into_parts();
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map_err(|_| ArmError::invalid_content("the query string is malformed"))?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ArmError::new(
            ErrorCode::RequestEntityTooLarge,
            format!("The request body is larger than {MAX_BODY} bytes."),
        )
    })?;
    let ids = parts
        .extensions
        .get::<RequestIds>()
        .cloned()
        .unwrap_or_else(|| RequestIds { request_id: String::new(), correlation_id: String::new() });
    let target = path::parse(parts.uri.path());
    let ticket = caller.ticket();
    let ctx = Ctx {
        now: arm.identity().now(),
        arm,
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
        caller,
        ids,
        assignments: std::sync::OnceLock::new(),
        ticket,
    };
    match target {
        Some(Target::ResourceGroups { subscription }) => groups::list(&ctx, &subscription).await,
        Some(Target::ResourceGroup { subscription, name }) => {
            groups::handle_one(&ctx, &subscription, &name).await
        }
        Some(Target::OperationResult { subscription, id }) => {
            let subscription = ctx.subscription(&subscription).await?.id;
            operation::result(&ctx, &subscription, &id).await
        }
        Some(Target::Authorization { scope, kind, name }) => {
            authorization::handle(&ctx, &scope, &kind, name.as_deref()).await
        }
        Some(Target::Provider(reference)) => network::handle(&ctx, &reference).await,
        None => Err(ArmError::invalid_resource_type(&ctx.path)),
    }
}
