//! Every ARM route this server answers, as methods and a path template: the routes the router
//! and `dispatch` serve, and the `Microsoft.Network` table (`network::ROUTES`). The
//! authorization coverage test has a row for each, and fails when one is added without a row.

use axum::http::Method;

/// One route: the methods it answers and its path, with `{…}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub methods: Vec<Method>,
    pub template: String,
}

/// The routes outside `Microsoft.Network`. `{scope}` is any scope inside a subscription (or
/// `/` for role definitions).
const OTHER_ROUTES: &[(&[Method], &str)] = &[
    (&[Method::GET], "/metadata/endpoints"),
    (&[Method::GET], "/tenants"),
    (&[Method::GET], "/subscriptions"),
    (&[Method::GET], "/subscriptions/{subscriptionId}"),
    (&[Method::GET], "/subscriptions/{subscriptionId}/resourcegroups"),
    (
        &[Method::GET, Method::HEAD, Method::PUT, Method::PATCH, Method::DELETE],
        "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}",
    ),
    (&[Method::GET], "/subscriptions/{subscriptionId}/operationresults/{operationId}"),
    (&[Method::GET], "{scope}/providers/Microsoft.Authorization/roleAssignments"),
    (
        &[Method::GET, Method::PUT, Method::DELETE],
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
    ),
    (&[Method::GET], "{scope}/providers/Microsoft.Authorization/roleDefinitions"),
    (
        &[Method::GET],
        "{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}",
    ),
];

/// Every route, the `Microsoft.Network` ones once per place they may sit.
pub fn all() -> Vec<RouteInfo> {
    let mut routes: Vec<RouteInfo> = OTHER_ROUTES
        .iter()
        .map(|(methods, template)| RouteInfo {
            methods: methods.to_vec(),
            template: (*template).to_owned(),
        })
        .collect();
    for route in crate::network::ROUTES {
        for template in route.templates() {
            routes.push(RouteInfo { methods: route.methods.to_vec(), template });
        }
    }
    routes
}
