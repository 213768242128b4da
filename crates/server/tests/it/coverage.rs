//! Authorization coverage (issue 19): every route × {no token, another tenant's token, a token of
//! this tenant without any role} → the exact status and code, in one table. The resources the
//! paths name mostly do not exist, so a caller without rights must get 403 (not 404): the
//! answer may not tell what exists. A second test fails when a route is served that has no row:
//! the ARM routes come from `arm::routes::all()` (the table the dispatcher serves), the others
//! from every `.route("…")` in the crates' sources.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;

/// An expected answer: the status and, when the answer has a body worth naming, its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want(u16, Option<&'static str>);

/// One route and what each of the three callers gets.
#[derive(Debug, Clone, Copy)]
struct Row {
    method: &'static str,
    template: &'static str,
    no_token: Want,
    other_tenant: Want,
    no_role: Want,
}

const NO_TOKEN: Want = Want(401, Some("AuthenticationFailed"));
const WRONG_TENANT: Want = Want(401, Some("InvalidAuthenticationTokenTenant"));
const FORBIDDEN: Want = Want(403, Some("AuthorizationFailed"));
const NO_OPERATION: Want = Want(404, Some("OperationNotFound"));
const OK: Want = Want(200, None);
const GRAPH_NO_TOKEN: Want = Want(401, Some("InvalidAuthenticationToken"));
const GRAPH_NOT_FOUND: Want = Want(404, Some("Request_ResourceNotFound"));
const GRAPH_DENIED: Want = Want(403, Some("Authorization_RequestDenied"));

/// A route of a subscription's resources: the usual three refusals.
const fn arm(method: &'static str, template: &'static str) -> Row {
    Row { method, template, no_token: NO_TOKEN, other_tenant: WRONG_TENANT, no_role: FORBIDDEN }
}

/// An operation's status: only its starter sees it; to anyone else of the tenant it is not there.
const fn operation(template: &'static str) -> Row {
    Row {
        method: "GET",
        template,
        no_token: NO_TOKEN,
        other_tenant: WRONG_TENANT,
        no_role: NO_OPERATION,
    }
}

/// A route anyone may call, token or not.
const fn public(method: &'static str, template: &'static str, want: Want) -> Row {
    Row { method, template, no_token: want, other_tenant: want, no_role: want }
}

/// A Graph route.
const fn graph(
    method: &'static str,
    template: &'static str,
    other_tenant: Want,
    no_role: Want,
) -> Row {
    Row { method, template, no_token: GRAPH_NO_TOKEN, other_tenant, no_role }
}

const NM: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkManagers";

// `concat!` takes literals (and macros that expand to them), so the stems the network paths
// share are macros.
macro_rules! nm_one {
    () => {
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/networkManagers/{networkManagerName}"
    };
}
macro_rules! vnet {
    () => {
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}"
    };
}

const ROWS: &[Row] = &[
    public("GET", "/metadata/endpoints", OK),
    // Health for load balancers and orchestrators, without authentication.
    public("GET", "/healthz", OK),
    public("GET", "/readyz", OK),
    // Metrics: to loopback clients (these tests are) without a token; others get 403
    // (`server::metrics`'s unit test).
    public("GET", "/metrics", OK),
    Row { method: "GET", template: "/tenants", no_token: NO_TOKEN, other_tenant: OK, no_role: OK },
    Row {
        method: "GET",
        template: "/subscriptions",
        no_token: NO_TOKEN,
        other_tenant: OK,
        no_role: OK,
    },
    arm("GET", "/subscriptions/{subscriptionId}"),
    arm("GET", "/subscriptions/{subscriptionId}/resourcegroups"),
    arm("GET", "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"),
    Row {
        method: "HEAD",
        template: "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}",
        no_token: Want(401, None),
        other_tenant: Want(401, None),
        no_role: Want(403, None),
    },
    arm("PUT", "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"),
    arm("PATCH", "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"),
    arm("DELETE", "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"),
    operation("/subscriptions/{subscriptionId}/operationresults/{operationId}"),
    arm("GET", "{scope}/providers/Microsoft.Authorization/roleAssignments"),
    arm("GET", "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}"),
    arm("PUT", "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}"),
    arm("DELETE", "{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}"),
    // Built-in role definitions are no secret: any caller of the scope's tenant reads them.
    Row {
        method: "GET",
        template: "{scope}/providers/Microsoft.Authorization/roleDefinitions",
        no_token: NO_TOKEN,
        other_tenant: WRONG_TENANT,
        no_role: OK,
    },
    Row {
        method: "GET",
        template: "{scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}",
        no_token: NO_TOKEN,
        other_tenant: WRONG_TENANT,
        no_role: OK,
    },
    arm("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Network/networkManagers"),
    arm("GET", NM_LIST),
    arm("GET", NM_ONE),
    arm("PUT", NM_ONE),
    arm("PATCH", NM_ONE),
    arm("DELETE", NM_ONE),
    arm("GET", POOLS),
    arm("GET", POOL),
    arm("PUT", POOL),
    arm("PATCH", POOL),
    arm("DELETE", POOL),
    arm("POST", concat!(nm_one!(), "/ipamPools/{ipamPoolName}/getPoolUsage")),
    arm("POST", concat!(nm_one!(), "/ipamPools/{ipamPoolName}/listAssociatedResources")),
    arm("GET", concat!(nm_one!(), "/ipamPools/{ipamPoolName}/listAssociatedResources")),
    arm("GET", concat!(nm_one!(), "/ipamPools/{ipamPoolName}/staticCidrs")),
    arm("GET", STATIC_CIDR),
    arm("PUT", STATIC_CIDR),
    arm("DELETE", STATIC_CIDR),
    arm("GET", concat!(nm_one!(), "/scopeConnections")),
    arm("GET", SCOPE_CONNECTION),
    arm("PUT", SCOPE_CONNECTION),
    arm("DELETE", SCOPE_CONNECTION),
    arm(
        "GET",
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/networkManagerConnections",
    ),
    arm("GET", MANAGER_CONNECTION),
    arm("PUT", MANAGER_CONNECTION),
    arm("DELETE", MANAGER_CONNECTION),
    arm("GET", "/subscriptions/{subscriptionId}/providers/Microsoft.Network/virtualNetworks"),
    arm(
        "GET",
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks",
    ),
    arm("GET", VNET),
    arm("PUT", VNET),
    arm("PATCH", VNET),
    arm("DELETE", VNET),
    arm("GET", concat!(vnet!(), "/subnets")),
    arm("GET", SUBNET),
    arm("PUT", SUBNET),
    arm("DELETE", SUBNET),
    operation(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/locations/{locationName}/operations/{operationName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/locations/{locationName}/operations/{operationName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/locations/{locationName}/ipamPoolOperations/{ipamPoolOperationName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/locations/{locationName}/ipamPoolOperations/{ipamPoolOperationName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/locations/{locationName}/operationResults/{operationResultName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/locations/{locationName}/operationResults/{operationResultName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/providers/Microsoft.Network/locations/{locationName}/ipamPoolOperationResults/{ipamPoolOperationResultName}",
    ),
    operation(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/locations/{locationName}/ipamPoolOperationResults/{ipamPoolOperationResultName}",
    ),
    // Microsoft Graph: a token of another tenant sees its own directory, never this one's; a
    // user who is neither an administrator nor the owner reads but does not change.
    graph("GET", "/v1.0/me", OK, OK),
    graph("GET", "/v1.0/organization", OK, OK),
    graph("GET", "/v1.0/applications", OK, OK),
    // Any user may register an application (and becomes its owner), as in Entra.
    graph("POST", "/v1.0/applications", Want(201, None), Want(201, None)),
    graph("GET", "/v1.0/applications/{id}", GRAPH_NOT_FOUND, OK),
    graph("PATCH", "/v1.0/applications/{id}", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("DELETE", "/v1.0/applications/{id}", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("POST", "/v1.0/applications/{id}/addPassword", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("POST", "/v1.0/applications/{id}/removePassword", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("GET", "/v1.0/servicePrincipals", OK, OK),
    // Another tenant's administrator may not create a service principal of a single-tenant app.
    graph("POST", "/v1.0/servicePrincipals", Want(400, Some("Request_BadRequest")), GRAPH_DENIED),
    graph("GET", "/v1.0/servicePrincipals/{id}", GRAPH_NOT_FOUND, OK),
    graph("DELETE", "/v1.0/servicePrincipals/{id}", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("GET", "/v1.0/users", OK, OK),
    graph("GET", "/v1.0/users/{id}", GRAPH_NOT_FOUND, OK),
    graph("PATCH", "/v1.0/users/{id}", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("DELETE", "/v1.0/users/{id}", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("POST", "/v1.0/users/{id}/revokeSignInSessions", GRAPH_NOT_FOUND, GRAPH_DENIED),
    graph("POST", "/v1.0/directoryObjects/getByIds", OK, OK),
    // The identity platform's own endpoints take no bearer token.
    public("GET", "/{tenant}/v2.0/.well-known/openid-configuration", OK),
    public("GET", "/{tenant}/discovery/v2.0/keys", OK),
    public("POST", "/{tenant}/oauth2/v2.0/token", Want(400, None)),
    public("GET", "/common/userrealm/{user}", OK),
    public("GET", "/{tenant}/oauth2/v2.0/authorize", Want(400, None)),
    public("POST", "/{tenant}/oauth2/v2.0/authorize", Want(400, None)),
    public("GET", "/{tenant}/adminconsent", Want(400, None)),
    public("POST", "/{tenant}/adminconsent", Want(400, None)),
    public("GET", "/{tenant}/v2.0/adminconsent", Want(400, None)),
    public("POST", "/{tenant}/v2.0/adminconsent", Want(400, None)),
    public("POST", "/{tenant}/oauth2/v2.0/devicecode", Want(400, None)),
    public("GET", "/devicelogin", OK),
    public("POST", "/devicelogin", OK),
    // The portal: without a session every page sends the person to sign in, and every form
    // without the session's token is refused.
    public("GET", "/portal", OK),
    public("GET", "/portal/signin", SIGN_IN),
    public("GET", "/portal/callback", SIGN_IN),
    public("POST", "/portal/signout", REFUSED),
    public("GET", "/portal/switch", SIGN_IN),
    public("GET", "/portal/t/{tenant}", SIGN_IN),
    public("GET", "/portal/t/{tenant}/managers", SIGN_IN),
    public("GET", "/portal/t/{tenant}/manager", SIGN_IN),
    public("GET", "/portal/t/{tenant}/pool/new", SIGN_IN),
    public("POST", "/portal/t/{tenant}/pool/new", REFUSED),
    public("GET", "/portal/t/{tenant}/pool", SIGN_IN),
    public("GET", "/portal/t/{tenant}/pool/allocate", SIGN_IN),
    public("POST", "/portal/t/{tenant}/pool/allocate", REFUSED),
    public("GET", "/portal/t/{tenant}/pool/remove", SIGN_IN),
    public("POST", "/portal/t/{tenant}/pool/remove", REFUSED),
    public("GET", "/portal/t/{tenant}/pool/cidr", SIGN_IN),
    public("POST", "/portal/t/{tenant}/pool/cidr", REFUSED),
    public("POST", "/portal/t/{tenant}/pool/iam", REFUSED),
    public("GET", "/portal/t/{tenant}/vnets", SIGN_IN),
    public("GET", "/portal/t/{tenant}/vnet", SIGN_IN),
    public("GET", "/portal/t/{tenant}/vnet/new", SIGN_IN),
    public("POST", "/portal/t/{tenant}/vnet/new", REFUSED),
];

const SIGN_IN: Want = Want(303, None);
const REFUSED: Want = Want(403, None);
const NM_LIST: &str = NM;
const NM_ONE: &str = nm_one!();
const POOLS: &str = concat!(nm_one!(), "/ipamPools");
const POOL: &str = concat!(nm_one!(), "/ipamPools/{ipamPoolName}");
const STATIC_CIDR: &str =
    concat!(nm_one!(), "/ipamPools/{ipamPoolName}/staticCidrs/{staticCidrName}");
const SCOPE_CONNECTION: &str = concat!(nm_one!(), "/scopeConnections/{scopeConnectionName}");
const MANAGER_CONNECTION: &str = "/subscriptions/{subscriptionId}/providers/Microsoft.Network/networkManagerConnections/{networkManagerConnectionName}";
const VNET: &str = vnet!();
const SUBNET: &str = concat!(vnet!(), "/subnets/{subnetName}");

/// The callers and the concrete values the placeholders stand for.
struct Fixture {
    /// ARM and Graph tokens of tenant B's administrator.
    other_tenant: (String, String),
    /// ARM and Graph tokens of a user of tenant A who holds no role and administers nothing.
    no_role: (String, String),
    subscription: String,
    app_object_id: String,
    app_id: String,
    service_principal_id: String,
    user_id: String,
}

async fn tokens(
    server: &TestServer,
    tenant: &str,
    username: &str,
    password: &str,
) -> (String, String) {
    let mut both = Vec::new();
    for scope in ["https://management.azure.com//.default", "https://graph.microsoft.com//.default"]
    {
        let form = [
            ("client_id", identity::AZURE_CLI_CLIENT_ID),
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", scope),
        ];
        let (status, body) = server.token(tenant, &form).await;
        assert_eq!(status, 200, "{body}");
        both.push(body["access_token"].as_str().unwrap().to_owned());
    }
    (both[0].clone(), both[1].clone())
}

async fn fixture(server: &TestServer) -> Fixture {
    let store = &server.running.store;
    let now = identity::Clock::now(&server::SystemClock);
    let tenant_a = identity::directory::tenant(store, "contoso-a.example").await.unwrap();
    identity::directory::create_user(
        store,
        &tenant_a,
        "norole@contoso-a.example",
        "No Role",
        "No-Role-Pass-1",
        false,
        now,
    )
    .await
    .unwrap();
    let (admin_b, password_b) = server.demo_user("B", "admin");
    let (admin_a, _) = server.demo_user("A", "admin");
    let admin_a = identity::directory::user(store, &admin_a).await.unwrap();
    let application = identity::directory::register_application(
        store,
        &tenant_a,
        "coverage app",
        "AzureADMyOrg",
        Some(&admin_a.id),
        Vec::new(),
        now,
    )
    .await
    .unwrap();
    let (service_principal, _) =
        identity::directory::create_service_principal(store, &tenant_a, &application.app_id, now)
            .await
            .unwrap();
    Fixture {
        other_tenant: tokens(server, "contoso-b.example", &admin_b, &password_b).await,
        no_role: tokens(server, "contoso-a.example", "norole@contoso-a.example", "No-Role-Pass-1")
            .await,
        subscription: server.demo("A", "subscription_id"),
        app_object_id: application.id,
        app_id: application.app_id,
        service_principal_id: service_principal.id,
        user_id: admin_a.id,
    }
}

/// The template with its placeholders filled: names that do not exist (but for the
/// subscription and the directory objects Graph rows address), so that a 404 would give away
/// what a 403 must hide.
fn concrete(template: &str, fixture: &Fixture) -> String {
    let segments: Vec<&str> = template.split('/').collect();
    let mut path = Vec::new();
    for (at, segment) in segments.iter().enumerate() {
        let Some(name) = segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')) else {
            path.push((*segment).to_owned());
            continue;
        };
        let before = at.checked_sub(1).map_or("", |at| segments[at]);
        let value = match (name, before) {
            ("scope", _) => {
                format!("/subscriptions/{}/resourceGroups/rg-missing", fixture.subscription)
                    .trim_start_matches('/')
                    .to_owned()
            }
            ("subscriptionId", _) => fixture.subscription.clone(),
            ("resourceGroupName", _) => "rg-missing".to_owned(),
            ("tenant", _) => "contoso-a.example".to_owned(),
            ("user", _) => "someone@contoso-a.example".to_owned(),
            ("roleDefinitionId", _) => arm::rbac::READER.id.to_owned(),
            ("locationName", _) => "westus".to_owned(),
            ("id", "applications") => fixture.app_object_id.clone(),
            ("id", "servicePrincipals") => fixture.service_principal_id.clone(),
            ("id", "users") => fixture.user_id.clone(),
            (name, _)
                if name.starts_with("operation")
                    || name.starts_with("ipamPoolOperation")
                    || name == "roleAssignmentName" =>
            {
                uuid::Uuid::new_v4().to_string()
            }
            _ => "missing".to_owned(),
        };
        path.push(value);
    }
    let path = path.join("/");
    if path.starts_with('/') { path } else { format!("/{path}") }
}

/// What a row sends as its body.
fn body_for(row: &Row, fixture: &Fixture) -> Option<Value> {
    match (row.method, row.template) {
        ("PUT" | "PATCH", template) if template.starts_with("/v1.0/users") => {
            Some(json!({"accountEnabled": true}))
        }
        ("PATCH", _) if row.template.starts_with("/v1.0/") => {
            Some(json!({"displayName": "renamed"}))
        }
        ("POST", "/v1.0/applications") => Some(json!({"displayName": "coverage"})),
        ("POST", "/v1.0/servicePrincipals") => Some(json!({"appId": fixture.app_id})),
        ("POST", "/v1.0/directoryObjects/getByIds") => Some(json!({"ids": []})),
        ("POST", template) if template.ends_with("removePassword") => {
            Some(json!({"keyId": uuid::Uuid::new_v4().to_string()}))
        }
        ("PUT" | "PATCH", _) => Some(json!({"location": "westus", "properties": {}})),
        _ => None,
    }
}

/// The answer's status and error code (`error.code`, Graph's and ARM's alike).
async fn send(
    server: &TestServer,
    row: &Row,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&server.running.ca_cert).unwrap())
                .unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api_version = if path.contains("/Microsoft.Network/") {
        Some("2024-05-01")
    } else if path.contains("/Microsoft.Authorization/") {
        Some("2022-04-01")
    } else if path.contains("/resourcegroups") {
        Some("2021-04-01")
    } else if path == "/metadata/endpoints" {
        Some("2022-09-01")
    } else if path.starts_with("/subscriptions") || path == "/tenants" {
        Some("2022-12-01")
    } else {
        None
    };
    let url = match api_version {
        Some(version) => server.url(&format!("{path}?api-version={version}")),
        None => server.url(path),
    };
    let mut request = client.request(Method::from_bytes(row.method.as_bytes()).unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|body| body["error"]["code"].as_str().map(str::to_owned));
    (status, code)
}

// Regression test for issue 19: `vnets` and `managers` read the resource group before
// authorizing, so a caller without rights got 404 where ARM answers 403 — and learnt what exists.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_callers_without_rights_before_it_reads_anything() {
    let server = TestServer::start().await;
    let fixture = fixture(&server).await;
    let mut mismatches = Vec::new();
    for row in ROWS {
        let path = concrete(row.template, &fixture);
        let body = body_for(row, &fixture);
        let graph = row.template.starts_with("/v1.0/");
        let pick =
            |tokens: &(String, String)| if graph { tokens.1.clone() } else { tokens.0.clone() };
        for (caller, token, want) in [
            ("no token", None, row.no_token),
            ("another tenant's token", Some(pick(&fixture.other_tenant)), row.other_tenant),
            ("a token without a role", Some(pick(&fixture.no_role)), row.no_role),
        ] {
            let (status, code) = send(&server, row, &path, token.as_deref(), body.as_ref()).await;
            let code_ok = want.1.is_none_or(|want| code.as_deref() == Some(want));
            if status != want.0 || !code_ok {
                mismatches.push(format!(
                    "{} {} with {caller}: got {status} {code:?}, want {} {:?}",
                    row.method, row.template, want.0, want.1
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}

// The refusals above must not cost the callers who have rights below a list's scope: a role on
// a resource group shows the subscription's list, filtered.
#[tokio::test(flavor = "multi_thread")]
async fn a_role_on_a_group_lists_at_the_subscription_what_it_may_read() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "network_contributor");
    let (token, _) = tokens(&server, "contoso-b.example", &username, &password).await;
    let path = format!(
        "/subscriptions/{}/providers/Microsoft.Network/virtualNetworks?api-version=2024-05-01",
        server.demo("B", "subscription_id")
    );
    let response = server.client.get(server.url(&path)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"][0]["id"].as_str(), Some(server.demo("B", "vnet_id").as_str()));
}

/// `{anything}` → `{}`, so that templates compare whatever their placeholders are called.
fn shape(template: &str) -> String {
    let mut shaped = String::new();
    let mut in_placeholder = false;
    for character in template.chars() {
        match character {
            '{' => {
                in_placeholder = true;
                shaped.push('{');
            }
            '}' => {
                in_placeholder = false;
                shaped.push('}');
            }
            _ if in_placeholder => {}
            other => shaped.push(other),
        }
    }
    shaped
}

/// Every `.route("path", get(…).post(…))` in the crates' sources, as (method, path shape).
fn routes_in_sources() -> BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target")
                    && !path.ends_with("tests")
                    && !path.ends_with("benches")
                {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices(".route(") {
                let call = &text[at + ".route(".len()..];
                let Some(start) = call.find('"') else { continue };
                let Some(length) = call[start + 1..].find('"') else { continue };
                let route_path = &call[start + 1..start + 1 + length];
                // The methods are the method routers named up to the end of the call.
                let end = call
                    .find("\n        .")
                    .unwrap_or(call.len())
                    .min(call.find(";\n").unwrap_or(call.len()));
                let methods = &call[start + 1 + length..end];
                for (name, method) in [
                    ("get(", "GET"),
                    ("post(", "POST"),
                    ("put(", "PUT"),
                    ("patch(", "PATCH"),
                    ("delete(", "DELETE"),
                    ("any(", "ANY"),
                ] {
                    if methods.contains(name) {
                        found.insert((method.to_owned(), shape(route_path)));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_route_has_a_row() {
    let rows: BTreeSet<(String, String)> =
        ROWS.iter().map(|row| (row.method.to_owned(), shape(row.template))).collect();
    let mut served = BTreeSet::new();
    for route in arm::routes::all() {
        for method in &route.methods {
            served.insert((method.to_string(), shape(&route.template)));
        }
    }
    for (method, path) in routes_in_sources() {
        // The catch-alls `arm::dispatch` answers: their routes are `arm::routes::all()`'s.
        if method == "ANY" && (path == "/subscriptions/{}/{}" || path == "/providers/{}") {
            continue;
        }
        // The router's own table of top-level ARM routes is `arm::routes::all()` too.
        served.insert((method, path));
    }
    let missing: Vec<_> = served.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&served).collect();
    assert!(missing.is_empty(), "routes without a row in the coverage table: {missing:#?}");
    assert!(stale.is_empty(), "rows for routes that are not served: {stale:#?}");
}
