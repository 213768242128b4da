//! Resource groups and `Microsoft.Authorization` over HTTP, on both stores: case-insensitive
//! routing, ARM's errors, preconditions, paging, asynchronous deletes, and RBAC on every request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, both_backends};

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const GROUPS: &str = "api-version=2024-11-01";
const ASSIGNMENTS: &str = "api-version=2022-04-01";
const DEFINITIONS: &str = "api-version=2022-05-01-preview";

/// A demo user's ARM token: `role` is `admin` (Owner of the subscription) or
/// `network_contributor` (Network Contributor on the demo resource group).
pub async fn token(server: &TestServer, tenant: &str, role: &str) -> String {
    let (username, password) = server.demo_user(tenant, role);
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", "https://management.azure.com//.default"),
    ];
    let (status, body) = server.token(&server.demo(tenant, "domain"), &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Sends an ARM request with a bearer token and optional JSON body and extra headers.
pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let url = if path.starts_with("https://") { path.to_owned() } else { server.url(path) };
    let mut request = server.client.request(method, url).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    Answer { status, headers, body }
}

both_backends! {
    async fn resource_groups_are_created_read_listed_and_deleted(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let group = |name: &str| format!("/subscriptions/{subscription}/resourcegroups/{name}?{GROUPS}");
        let body = json!({"location": "West US", "tags": {"team": "net"}});

        let created = call(server, Method::PUT, &group("Rg-Test"), &admin, Some(&body), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["id"], format!("/subscriptions/{subscription}/resourceGroups/Rg-Test"));
        assert_eq!(created.body["location"], "westus");
        assert_eq!(created.body["properties"]["provisioningState"], "Succeeded");
        let again = call(server, Method::PUT, &group("rg-test"), &admin, Some(&body), &[]).await;
        assert_eq!((again.status, &again.body["name"]), (200, &json!("Rg-Test")), "the casing of creation stays");

        let read = call(server, Method::GET, &group("RG-TEST"), &admin, None, &[]).await;
        assert_eq!((read.status, &read.body["tags"]["team"]), (200, &json!("net")));
        assert_eq!(call(server, Method::HEAD, &group("rg-test"), &admin, None, &[]).await.status, 204);
        assert_eq!(call(server, Method::HEAD, &group("absent"), &admin, None, &[]).await.status, 404);
        let missing = call(server, Method::GET, &group("absent"), &admin, None, &[]).await;
        assert_eq!((missing.status, missing.code()), (404, "ResourceGroupNotFound"));

        let patched = call(server, Method::PATCH, &group("rg-test"), &admin, Some(&json!({"tags": {"a": "b"}})), &[]).await;
        assert_eq!((patched.status, &patched.body["tags"]), (200, &json!({"a": "b"})), "{}", patched.body);
        let moved = call(server, Method::PUT, &group("rg-test"), &admin, Some(&json!({"location": "eastus"})), &[]).await;
        assert_eq!((moved.status, moved.code()), (409, "InvalidResourceGroupLocation"));
        let exists = call(server, Method::PUT, &group("rg-test"), &admin, Some(&body), &[("if-none-match", "*")]).await;
        assert_eq!((exists.status, exists.code()), (412, "PreconditionFailed"));
        let stale = call(server, Method::PUT, &group("rg-test"), &admin, Some(&body), &[("if-match", "\"stale\"")]).await;
        assert_eq!((stale.status, stale.code()), (412, "PreconditionFailed"));
        let absent = call(server, Method::PUT, &group("new-one"), &admin, Some(&body), &[("if-match", "*")]).await;
        assert_eq!((absent.status, absent.code()), (412, "PreconditionFailed"));

        // Paging: one group per page, following nextLink, sees every group once.
        for name in ["rg-c", "rg-d"] {
            assert_eq!(call(server, Method::PUT, &group(name), &admin, Some(&body), &[]).await.status, 201);
        }
        let mut next = format!("/subscriptions/{subscription}/resourceGroups?{GROUPS}&$top=1");
        let mut names = Vec::new();
        loop {
            let page = call(server, Method::GET, &next, &admin, None, &[]).await;
            assert_eq!(page.status, 200, "{}", page.body);
            names.extend(page.body["value"].as_array().unwrap().iter().map(|group| group["name"].as_str().unwrap().to_owned()));
            match page.body["nextLink"].as_str() {
                Some(link) => next = link.to_owned(),
                None => break,
            }
        }
        assert_eq!(names, ["rg-a", "rg-c", "rg-d", "Rg-Test"], "in the order of their ids, case-insensitively");

        // Deleting: 202 and a Location that answers once it is done; the contents go too.
        let inside = format!("/subscriptions/{subscription}/resourceGroups/rg-c");
        let assignment = format!("{inside}/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4());
        let user = server.demo_user("A", "network_contributor").0;
        let principal = principal_id(server, "A", &user).await;
        let assign = json!({"properties": {"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": principal}});
        assert_eq!(call(server, Method::PUT, &assignment, &admin, Some(&assign), &[]).await.status, 201);
        let deleted = call(server, Method::DELETE, &group("rg-c"), &admin, None, &[]).await;
        assert_eq!(deleted.status, 202, "{}", deleted.body);
        assert_eq!(deleted.headers["retry-after"], "1");
        let location = deleted.headers["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(&server.url(&format!("/subscriptions/{subscription}/operationresults/"))), "{location}");
        let polled = call(server, Method::GET, &location, &admin, None, &[]).await;
        assert_eq!(polled.status, 200);
        let gone = call(server, Method::GET, &group("rg-c"), &admin, None, &[]).await;
        assert_eq!((gone.status, gone.code()), (404, "ResourceGroupNotFound"));
        let unknown = call(server, Method::GET, &location.replace("operationresults/", "operationresults/x"), &admin, None, &[]).await;
        assert_eq!(unknown.status, 404);
    }

    async fn bad_requests_get_arms_errors_naming_what_is_wrong(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let path = format!("/subscriptions/{subscription}/resourceGroups/rg-x");
        let no_version = call(server, Method::GET, &path, &admin, None, &[]).await;
        assert_eq!((no_version.status, no_version.code()), (400, "MissingApiVersionParameter"));
        let bad_version = call(server, Method::GET, &format!("{path}?api-version=1999-01-01"), &admin, None, &[]).await;
        assert_eq!((bad_version.status, bad_version.code()), (400, "InvalidApiVersionParameter"));
        assert!(bad_version.body["error"]["message"].as_str().unwrap().contains("2024-11-01"));

        let put = |body: &'static str| {
            let url = server.url(&format!("{path}?{GROUPS}"));
            server.client.put(url).bearer_auth(&admin).header("content-type", "application/json").body(body).send()
        };
        let malformed = put("{\"location\": ").await.unwrap();
        assert_eq!(malformed.status(), 400);
        assert_eq!(malformed.json::<Value>().await.unwrap()["error"]["code"], "InvalidRequestContent");
        let wrong_type = put("{\"location\": 7}").await.unwrap();
        assert_eq!(wrong_type.status(), 400);
        assert_eq!(wrong_type.json::<Value>().await.unwrap()["error"]["target"], "location");
        let no_location = put("{}").await.unwrap();
        assert_eq!(no_location.json::<Value>().await.unwrap()["error"]["code"], "LocationRequired");
        let bad_name = call(server, Method::PUT, &format!("/subscriptions/{subscription}/resourceGroups/bad%20name.?{GROUPS}"), &admin, Some(&json!({"location": "westus"})), &[]).await;
        assert_eq!(bad_name.status, 400, "{}", bad_name.body);

        let unknown = call(server, Method::GET, &format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/x?{GROUPS}"), &admin, None, &[]).await;
        assert_eq!((unknown.status, unknown.code()), (404, "SubscriptionNotFound"));
        let nowhere = call(server, Method::GET, &format!("/subscriptions/{subscription}/nothing/here?{GROUPS}"), &admin, None, &[]).await;
        assert_eq!(nowhere.status, 404);

        // A token of tenant B on A's subscription.
        let other = token(server, "B", "admin").await;
        let foreign = call(server, Method::GET, &format!("{path}?{GROUPS}"), &other, None, &[]).await;
        assert_eq!((foreign.status, foreign.code()), (401, "InvalidAuthenticationTokenTenant"));
        assert!(foreign.headers.contains_key("www-authenticate"));
        let anonymous = server.client.get(server.url(&format!("{path}?{GROUPS}"))).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
    }

    async fn every_request_is_checked_against_the_callers_roles(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let contributor = token(server, "A", "network_contributor").await;
        let subscription = server.demo("A", "subscription_id");
        let group = |name: &str| format!("/subscriptions/{subscription}/resourceGroups/{name}?{GROUPS}");
        let body = json!({"location": "westus"});
        assert_eq!(call(server, Method::PUT, &group("rg-other"), &admin, Some(&body), &[]).await.status, 201);

        // Network Contributor on rg-a: reads rg-a, nothing else; writes no groups.
        assert_eq!(call(server, Method::GET, &group("rg-a"), &contributor, None, &[]).await.status, 200);
        let denied = call(server, Method::GET, &group("rg-other"), &contributor, None, &[]).await;
        assert_eq!((denied.status, denied.code()), (403, "AuthorizationFailed"));
        let message = denied.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("'Microsoft.Resources/subscriptions/resourceGroups/read'"), "{message}");
        assert!(message.contains(&format!("'/subscriptions/{subscription}/resourceGroups/rg-other'")), "{message}");
        let write = call(server, Method::PUT, &group("rg-new"), &contributor, Some(&body), &[]).await;
        assert_eq!((write.status, write.code()), (403, "AuthorizationFailed"));
        let listed = call(server, Method::GET, &format!("/subscriptions/{subscription}/resourcegroups?{GROUPS}"), &contributor, None, &[]).await;
        let names: Vec<&str> = listed.body["value"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["rg-a"], "only what the caller may read is listed");

        // A Reader assignment at the subscription opens the other group to reading.
        let user = server.demo_user("A", "network_contributor").0;
        let principal = principal_id(server, "A", &user).await;
        let scope = format!("/subscriptions/{subscription}");
        let assignment = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4());
        let reader = json!({"properties": {"roleDefinitionId": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"), "principalId": principal}});
        let refused = call(server, Method::PUT, &assignment, &contributor, Some(&reader), &[]).await;
        assert_eq!((refused.status, refused.code()), (403, "AuthorizationFailed"), "Network Contributor may not assign roles");
        assert_eq!(call(server, Method::PUT, &assignment, &admin, Some(&reader), &[]).await.status, 201);
        assert_eq!(call(server, Method::GET, &group("rg-other"), &contributor, None, &[]).await.status, 200);
    }

    async fn role_definitions_are_the_built_in_roles_by_their_ids(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let scope = format!("/subscriptions/{subscription}/resourceGroups/rg-a");
        let filtered = call(server, Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?{DEFINITIONS}&$filter=roleName%20eq%20%27IPAM%20Pool%20User%27"), &admin, None, &[]).await;
        assert_eq!(filtered.status, 200, "{}", filtered.body);
        let value = filtered.body["value"].as_array().unwrap();
        assert_eq!(value.len(), 1);
        let id = format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/7b3e853f-ad5d-4fb5-a7b8-56a3581c7037");
        assert_eq!(value[0]["id"], id);
        assert_eq!(value[0]["properties"]["type"], "BuiltInRole");
        let all = call(server, Method::GET, &format!("{scope}/providers/microsoft.authorization/roledefinitions?{DEFINITIONS}"), &admin, None, &[]).await;
        let names: Vec<&str> = all.body["value"].as_array().unwrap().iter().map(|r| r["properties"]["roleName"].as_str().unwrap()).collect();
        for name in ["Owner", "Contributor", "Reader", "User Access Administrator", "Network Contributor", "IPAM Pool User"] {
            assert!(names.contains(&name), "{names:?}");
        }
        let one = call(server, Method::GET, &format!("{id}?{DEFINITIONS}"), &admin, None, &[]).await;
        assert_eq!((one.status, &one.body["properties"]["roleName"]), (200, &json!("IPAM Pool User")));
        let network = call(server, Method::GET, &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/4d97b98b-1d4f-4787-a291-c67834d212e7?{DEFINITIONS}"), &admin, None, &[]).await;
        assert_eq!(network.body["properties"]["roleName"], "Network Contributor");
        let unknown = call(server, Method::GET, &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}?{DEFINITIONS}", uuid::Uuid::new_v4()), &admin, None, &[]).await;
        assert_eq!((unknown.status, unknown.code()), (404, "RoleDefinitionDoesNotExist"));
        let bad_filter = call(server, Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?{DEFINITIONS}&$filter=nonsense"), &admin, None, &[]).await;
        assert_eq!(bad_filter.status, 400);
    }

    async fn role_assignments_are_made_listed_and_removed_as_the_az_cli_does(server: &TestServer) {
        let admin = token(server, "A", "admin").await;
        let subscription = server.demo("A", "subscription_id");
        let scope = format!("/subscriptions/{subscription}/resourceGroups/rg-a");
        let user = server.demo_user("A", "network_contributor").0;
        let principal = principal_id(server, "A", &user).await;
        let name = uuid::Uuid::new_v4().to_string();
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?{ASSIGNMENTS}");
        let definition = format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7");
        let body = json!({"properties": {"principalType": "User", "roleDefinitionId": definition, "principalId": principal}});

        let created = call(server, Method::PUT, &path, &admin, Some(&body), &[]).await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert_eq!(created.body["id"], format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"));
        assert_eq!(created.body["properties"]["scope"], scope);
        assert_eq!(created.body["properties"]["roleDefinitionId"], definition);
        assert_eq!(call(server, Method::PUT, &path, &admin, Some(&body), &[]).await.status, 200, "the same PUT again");
        let duplicate = call(server, Method::PUT, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4()), &admin, Some(&body), &[]).await;
        assert_eq!((duplicate.status, duplicate.code()), (409, "RoleAssignmentExists"));

        let read = call(server, Method::GET, &path, &admin, None, &[]).await;
        assert_eq!((read.status, &read.body["name"]), (200, &json!(name)));
        let names = |answer: &Answer| -> Vec<String> {
            answer.body["value"].as_array().unwrap().iter().map(|a| a["properties"]["scope"].as_str().unwrap().to_owned()).collect()
        };
        let at_scope = call(server, Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments?{ASSIGNMENTS}&$filter=atScope()"), &admin, None, &[]).await;
        let scopes = names(&at_scope);
        assert!(scopes.contains(&format!("/subscriptions/{subscription}")), "the Owner above is at scope: {scopes:?}");
        assert!(scopes.contains(&scope));
        let everything = call(server, Method::GET, &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments?{ASSIGNMENTS}"), &admin, None, &[]).await;
        assert!(names(&everything).contains(&scope), "a subscription's list includes scopes below it");
        let above_only = call(server, Method::GET, &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments?{ASSIGNMENTS}&$filter=atScope()"), &admin, None, &[]).await;
        assert!(!names(&above_only).contains(&scope));
        let by_principal = call(server, Method::GET, &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments?{ASSIGNMENTS}&$filter=principalId%20eq%20%27{principal}%27"), &admin, None, &[]).await;
        assert!(by_principal.body["value"].as_array().unwrap().iter().all(|a| a["properties"]["principalId"] == json!(principal)));
        assert_eq!(by_principal.body["value"].as_array().unwrap().len(), 2, "Network Contributor and Reader");

        let bad_name = call(server, Method::PUT, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/not-a-guid?{ASSIGNMENTS}"), &admin, Some(&body), &[]).await;
        assert_eq!((bad_name.status, bad_name.code()), (400, "InvalidRoleAssignmentId"));
        let stranger = json!({"properties": {"roleDefinitionId": definition, "principalId": uuid::Uuid::new_v4().to_string()}});
        let unknown = call(server, Method::PUT, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4()), &admin, Some(&stranger), &[]).await;
        assert_eq!((unknown.status, unknown.code()), (400, "PrincipalNotFound"));
        let bad_role = json!({"properties": {"roleDefinitionId": uuid::Uuid::new_v4().to_string(), "principalId": principal}});
        let no_role = call(server, Method::PUT, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4()), &admin, Some(&bad_role), &[]).await;
        assert_eq!((no_role.status, no_role.code()), (400, "RoleDefinitionDoesNotExist"));
        let missing_scope = call(server, Method::PUT, &format!("/subscriptions/{subscription}/resourceGroups/nope/providers/Microsoft.Authorization/roleAssignments/{}?{ASSIGNMENTS}", uuid::Uuid::new_v4()), &admin, Some(&body), &[]).await;
        assert_eq!((missing_scope.status, missing_scope.code()), (404, "ResourceGroupNotFound"));

        let deleted = call(server, Method::DELETE, &path, &admin, None, &[]).await;
        assert_eq!((deleted.status, &deleted.body["name"]), (200, &json!(name)));
        assert_eq!(call(server, Method::DELETE, &path, &admin, None, &[]).await.status, 204);
        let gone = call(server, Method::GET, &path, &admin, None, &[]).await;
        assert_eq!((gone.status, gone.code()), (404, "RoleAssignmentNotFound"));
    }
}

/// A demo user's object id, from its own token.
pub async fn principal_id(server: &TestServer, tenant: &str, upn: &str) -> String {
    let role = if upn.starts_with("admin@") { "admin" } else { "network_contributor" };
    let token = token(server, tenant, role).await;
    crate::support::claims(&token)["oid"].as_str().unwrap().to_owned()
}
