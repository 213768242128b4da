//! The Graph subset over HTTPS, following the az CLI's sequences: `az ad app create`,
//! `credential reset`, `update --set signInAudience=…`, `az ad sp create` at home and in another
//! tenant, and the lookups `az role assignment` makes; plus who may do what.

use serde_json::{Value, json};

use crate::support::{TestServer, claims};

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// A user's token for `scope_resource` (Graph is the server's own origin).
async fn user_token(server: &TestServer, tenant: &str, role: &str, scope_resource: &str) -> String {
    let (username, password) = server.demo_user(tenant, role);
    let domain = server.demo(tenant, "domain");
    let scope = format!("{scope_resource}/.default offline_access openid profile");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", &username),
        ("password", &password),
        ("scope", &scope),
    ];
    let (status, body) = server.token(&domain, &form).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn graph_token(server: &TestServer, tenant: &str, role: &str) -> String {
    user_token(server, tenant, role, &server.running.origin.clone()).await
}

async fn call(
    server: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.client.request(method, server.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn client_credentials(
    server: &TestServer,
    tenant: &str,
    app_id: &str,
    secret: &str,
) -> (u16, Value) {
    let form = [
        ("client_id", app_id),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
        ("scope", "https://management.azure.com//.default"),
    ];
    server.token(tenant, &form).await
}

#[tokio::test]
async fn the_az_ad_app_sequence_creates_an_app_resets_its_secret_and_makes_it_multi_tenant() {
    let server = TestServer::start().await;
    let token = graph_token(&server, "B", "admin").await;
    use reqwest::Method;
    // az ad app create --display-name x
    let (status, listed) = call(
        &server,
        &token,
        Method::GET,
        "/v1.0/applications?$filter=startswith(displayName,'ipam-app')",
        None,
    )
    .await;
    assert_eq!((status, listed["value"].as_array().unwrap().len()), (200, 0));
    let (status, application) = call(
        &server,
        &token,
        Method::POST,
        "/v1.0/applications",
        Some(json!({ "displayName": "ipam-app", "keyCredentials": [] })),
    )
    .await;
    assert_eq!(status, 201, "{application}");
    let (object_id, app_id) = (
        application["id"].as_str().unwrap().to_owned(),
        application["appId"].as_str().unwrap().to_owned(),
    );
    assert_eq!(application["signInAudience"], "AzureADMyOrg");
    // az ad app credential reset --id APP
    let (_, listed) = call(
        &server,
        &token,
        Method::GET,
        &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        None,
    )
    .await;
    assert_eq!(listed["value"][0]["id"], object_id.as_str());
    let (status, _) =
        call(&server, &token, Method::GET, &format!("/v1.0/applications/{app_id}"), None).await;
    assert_eq!(status, 404, "an app id is not an object id");
    let (status, password) = call(
        &server,
        &token,
        Method::POST,
        &format!("/v1.0/applications/{object_id}/addPassword"),
        Some(json!({ "passwordCredential": { "displayName": null, "endDateTime": "2099-01-01T00:00:00Z", "startDateTime": "2020-01-01T00:00:00.000000Z" } })),
    )
    .await;
    assert_eq!(status, 200, "{password}");
    let secret = password["secretText"].as_str().unwrap().to_owned();
    assert_eq!(password["hint"], &secret[..3]);
    let (_, shown) =
        call(&server, &token, Method::GET, &format!("/v1.0/applications/{object_id}"), None).await;
    assert_eq!(shown["passwordCredentials"][0]["keyId"], password["keyId"]);
    assert_eq!(
        shown["passwordCredentials"][0]["secretText"],
        Value::Null,
        "a secret is shown once"
    );
    // az ad sp create --id APP (home tenant), then the secret works.
    let (status, service_principal) = call(
        &server,
        &token,
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({ "appId": app_id, "accountEnabled": true })),
    )
    .await;
    assert_eq!(status, 201, "{service_principal}");
    assert_eq!(service_principal["servicePrincipalNames"], json!([app_id]));
    let (status, body) = client_credentials(&server, "contoso-b.example", &app_id, &secret).await;
    assert_eq!(status, 200, "{body}");
    // az ad app update --id APP --set signInAudience=AzureADMultipleOrgs
    let (status, _) = call(
        &server,
        &token,
        Method::PATCH,
        &format!("/v1.0/applications/{object_id}"),
        Some(json!({ "signInAudience": "AzureADMultipleOrgs" })),
    )
    .await;
    assert_eq!(status, 204);
    let (_, shown) =
        call(&server, &token, Method::GET, &format!("/v1.0/applications/(appId='{app_id}')"), None)
            .await;
    assert_eq!(shown["signInAudience"], "AzureADMultipleOrgs");
    let (status, body) = call(
        &server,
        &token,
        Method::PATCH,
        &format!("/v1.0/applications/{object_id}"),
        Some(json!({ "signInAudience": "Everyone" })),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("Request_BadRequest")));
    // Removing the secret (credential reset removes old ones) makes it stop working.
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        &format!("/v1.0/applications/{object_id}/removePassword"),
        Some(json!({ "keyId": password["keyId"] })),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = client_credentials(&server, "contoso-b.example", &app_id, &secret).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn another_tenants_admin_creates_a_service_principal_only_for_a_multi_tenant_app() {
    let server = TestServer::start().await;
    use reqwest::Method;
    let token_b = graph_token(&server, "B", "admin").await;
    let (_, application) = call(
        &server,
        &token_b,
        Method::POST,
        "/v1.0/applications",
        Some(json!({ "displayName": "cross" })),
    )
    .await;
    let (object_id, app_id) = (
        application["id"].as_str().unwrap().to_owned(),
        application["appId"].as_str().unwrap().to_owned(),
    );
    let token_a = graph_token(&server, "A", "admin").await;
    // As `az ad sp create` does in A: the app is not in A's directory.
    let (_, listed) = call(
        &server,
        &token_a,
        Method::GET,
        &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        None,
    )
    .await;
    assert_eq!(listed["value"], json!([]));
    let (status, body) = call(
        &server,
        &token_a,
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({ "appId": app_id, "accountEnabled": true })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Request_BadRequest")),
        "single-tenant app: {body}"
    );
    call(
        &server,
        &token_b,
        Method::PATCH,
        &format!("/v1.0/applications/{object_id}"),
        Some(json!({ "signInAudience": "AzureADMultipleOrgs" })),
    )
    .await;
    let token_a_user = graph_token(&server, "A", "network_contributor").await;
    let (status, body) = call(
        &server,
        &token_a_user,
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({ "appId": app_id })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    let (status, service_principal) = call(
        &server,
        &token_a,
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({ "appId": app_id, "accountEnabled": true })),
    )
    .await;
    assert_eq!(status, 201, "{service_principal}");
    assert_eq!(service_principal["appOwnerOrganizationId"], server.demo("B", "tenant_id").as_str());
    let (status, body) = call(
        &server,
        &token_a,
        Method::POST,
        "/v1.0/servicePrincipals",
        Some(json!({ "appId": app_id })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("Request_MultipleObjectsWithSameKeyValue"))
    );
    // The lookups `az role assignment create --assignee APP` makes in A.
    let (_, listed) = call(
        &server,
        &token_a,
        Method::GET,
        &format!("/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq '{app_id}')"),
        None,
    )
    .await;
    assert_eq!(listed["value"][0]["id"], service_principal["id"]);
    let (status, objects) = call(
        &server,
        &token_a,
        Method::POST,
        "/v1.0/directoryObjects/getByIds",
        Some(json!({ "ids": [service_principal["id"], "00000000-0000-0000-0000-000000000000"], "types": ["user", "group", "servicePrincipal", "directoryObjectPartnerReference"] })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(objects["value"].as_array().unwrap().len(), 1, "unknown ids are left out");
    assert_eq!(objects["value"][0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    // Tenant B's service principals are not A's.
    let (_, listed) = call(
        &server,
        &token_b,
        Method::GET,
        &format!("/v1.0/servicePrincipals?$filter=appId eq '{app_id}'"),
        None,
    )
    .await;
    assert_eq!(listed["value"], json!([]));
}

#[tokio::test]
async fn only_admins_and_owners_change_an_app_and_graph_refuses_arm_tokens() {
    let server = TestServer::start().await;
    use reqwest::Method;
    let admin = graph_token(&server, "B", "admin").await;
    let (_, application) = call(
        &server,
        &admin,
        Method::POST,
        "/v1.0/applications",
        Some(json!({ "displayName": "admins-app" })),
    )
    .await;
    let object_id = application["id"].as_str().unwrap().to_owned();
    let member = graph_token(&server, "B", "network_contributor").await;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1.0/applications/{object_id}"),
            Some(json!({ "displayName": "taken" })),
        ),
        (Method::POST, format!("/v1.0/applications/{object_id}/addPassword"), Some(json!({}))),
        (Method::DELETE, format!("/v1.0/applications/{object_id}"), None),
    ] {
        let (status, body) = call(&server, &member, method, &path, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("Authorization_RequestDenied")),
            "{path}"
        );
    }
    // A member may register an app of their own and owns it.
    let (status, own) = call(
        &server,
        &member,
        Method::POST,
        "/v1.0/applications",
        Some(json!({ "displayName": "mine" })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &server,
        &member,
        Method::DELETE,
        &format!("/v1.0/applications/{}", own["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    // An ARM token, no token and a garbage token are refused.
    let arm = user_token(&server, "B", "admin", "https://management.core.windows.net/").await;
    assert_eq!(claims(&arm)["aud"], "https://management.core.windows.net/");
    for token in [arm.as_str(), "", "garbage"] {
        let (status, body) = call(&server, token, Method::GET, "/v1.0/applications", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("InvalidAuthenticationToken"))
        );
    }
    // The signed-in user and the organization.
    let (_, me) = call(&server, &admin, Method::GET, "/v1.0/me", None).await;
    assert_eq!(me["userPrincipalName"], server.demo_user("B", "admin").0.as_str());
    let (_, organization) = call(&server, &admin, Method::GET, "/v1.0/organization", None).await;
    assert_eq!(organization["value"][0]["verifiedDomains"][0]["name"], "contoso-b.example");
    let (status, _) = call(
        &server,
        &admin,
        Method::POST,
        "/v1.0/applications",
        Some(json!({ "displayName": 7 })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) =
        call(&server, &admin, Method::GET, "/v1.0/users?$filter=mail gt 'x'", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Request_BadRequest")),
        "an unsupported filter is refused, not ignored"
    );
    let filter = "/v1.0/users?$filter=userPrincipalName eq 'admin@contoso-b.example'";
    let (status, users) = call(&server, &admin, Method::GET, filter, None).await;
    assert_eq!((status, users["value"].as_array().map(Vec::len)), (200, Some(1)));
}
