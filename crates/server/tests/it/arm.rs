//! The ARM conventions so far: cloud metadata, the tenant list, authentication with ARM's 401s,
//! api-version checks and request ids.

use serde_json::Value;

use crate::support::TestServer;

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

async fn user_token(server: &TestServer, tenant: &str, scope: &str) -> (String, String) {
    let (username, password) = server.demo_user(tenant, "admin");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", scope),
    ];
    let (status, body) = server.token(&server.demo(tenant, "domain"), &form).await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn get(
    server: &TestServer,
    path: &str,
    authorization: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client
        .get(server.url(path))
        .header("x-ms-client-request-id", "9a1b2c3d-0000-4000-8000-000000000001");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn cloud_metadata_points_the_az_cli_at_this_server() {
    let server = TestServer::start().await;
    let origin = &server.running.origin;
    let (status, _, document) =
        get(&server, "/metadata/endpoints?api-version=2022-09-01", None).await;
    assert_eq!(status, 200);
    for (field, expected) in [
        ("/name", "crosspool".to_owned()),
        ("/resourceManager", format!("{origin}/")),
        ("/authentication/loginEndpoint", format!("{origin}/")),
        ("/authentication/audiences/0", "https://management.core.windows.net/".to_owned()),
        ("/microsoftGraphResourceId", format!("{origin}/")),
    ] {
        assert_eq!(
            document.pointer(field).and_then(Value::as_str),
            Some(expected.as_str()),
            "{field}"
        );
    }
    assert!(document["suffixes"].is_object(), "the az CLI fails without suffixes");
    let (status, _, clouds) =
        get(&server, "/metadata/endpoints?api-version=2019-05-01", None).await;
    assert_eq!((status, clouds[0]["name"].as_str()), (200, Some("crosspool")));
    // The az CLI asks for `//metadata/endpoints` when given an endpoint ending in a slash.
    let (status, _, document) =
        get(&server, "//metadata/endpoints?api-version=2022-09-01", None).await;
    assert_eq!((status, document["name"].as_str()), (200, Some("crosspool")));
    let (status, _, body) = get(&server, "//no/such//path", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NotFound")));
    let (status, _, body) = get(&server, "/metadata/endpoints?api-version=1999-01-01", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InvalidApiVersionParameter")));
}

#[tokio::test]
async fn tenants_lists_the_callers_tenant_with_request_ids() {
    let server = TestServer::start().await;
    let (token, _) =
        user_token(&server, "B", "https://management.core.windows.net//.default").await;
    let (status, headers, body) =
        get(&server, "/tenants?api-version=2022-12-01", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "{body}");
    let tenant_id = server.demo("B", "tenant_id");
    assert_eq!(body["value"][0]["tenantId"], tenant_id.as_str());
    assert_eq!(body["value"][0]["defaultDomain"], "contoso-b.example");
    assert_eq!(body["value"][0]["id"], format!("/tenants/{tenant_id}"));
    assert!(headers.contains_key("x-ms-request-id"));
    assert_eq!(headers["x-ms-correlation-request-id"], "9a1b2c3d-0000-4000-8000-000000000001");
    let (status, _, body) = get(&server, "/tenants", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("MissingApiVersionParameter")));
    let (status, _, body) =
        get(&server, "/tenants?api-version=2099-01-01", Some(&format!("Bearer {token}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("InvalidApiVersionParameter")));
}

#[tokio::test]
async fn bad_authentication_is_arms_401_with_a_challenge() {
    let server = TestServer::start().await;
    let (graph_token, refresh_token) =
        user_token(&server, "B", &format!("{}/.default", server.running.origin)).await;
    let cases = [
        (None, "AuthenticationFailed"),
        (Some("Basic abc".to_owned()), "AuthenticationFailed"),
        (Some("Bearer ".to_owned()), "AuthenticationFailed"),
        (Some("Bearer not.a.jwt".to_owned()), "InvalidAuthenticationToken"),
        (Some(format!("Bearer {graph_token}")), "InvalidAuthenticationTokenAudience"),
        (Some(format!("Bearer {refresh_token}")), "InvalidAuthenticationTokenAudience"),
    ];
    for (authorization, code) in cases {
        let (status, headers, body) =
            get(&server, "/tenants?api-version=2022-12-01", authorization.as_deref()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some(code)),
            "{authorization:?}: {body}"
        );
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge
                .starts_with(&format!("Bearer authorization_uri=\"{}/", server.running.origin)),
            "{challenge}"
        );
    }
}

async fn subscriptions(server: &TestServer, token: &str) -> Vec<Value> {
    let (status, _, body) =
        get(server, "/subscriptions?api-version=2022-12-01", Some(&format!("Bearer {token}")))
            .await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().clone()
}

#[tokio::test]
async fn subscriptions_are_listed_where_the_caller_holds_a_role_at_or_below_them() {
    let server = TestServer::start().await;
    let scope = "https://management.core.windows.net//.default";
    let subscription_b = server.demo("B", "subscription_id");
    assert_eq!(server.demo("B", "resource_group"), "rg-b");
    // The administrator is Owner of the subscription; the network contributor holds a role on
    // the resource group below it: both see it.
    let (admin_b, _) = user_token(&server, "B", scope).await;
    let listed = subscriptions(&server, &admin_b).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["subscriptionId"].as_str(), listed[0]["tenantId"].as_str()),
        (Some(subscription_b.as_str()), Some(server.demo("B", "tenant_id").as_str()))
    );
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["displayName"].as_str()),
        (Some("Enabled"), Some("Subscription B"))
    );
    let (username, password) = server.demo_user("B", "network_contributor");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", scope),
    ];
    let (_, body) = server.token("contoso-b.example", &form).await;
    let contributor_b = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        subscriptions(&server, &contributor_b).await[0]["subscriptionId"],
        subscription_b.as_str()
    );
    // A role on one resource deep inside A's subscription is enough to see it (az CLI §0.4).
    let store = &server.running.store;
    let tenant_a = identity::directory::tenant(store, "contoso-a.example").await.unwrap();
    let now = store::Timestamp(0);
    let user = identity::directory::create_user(
        store,
        &tenant_a,
        "pooluser@contoso-a.example",
        "Pool user",
        "Pool-User-Pass-1",
        false,
        now,
    )
    .await
    .unwrap();
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", "pooluser@contoso-a.example"),
        ("password", "Pool-User-Pass-1"),
        ("scope", scope),
    ];
    let (_, body) = server.token("contoso-a.example", &form).await;
    let pool_user = body["access_token"].as_str().unwrap().to_owned();
    assert!(subscriptions(&server, &pool_user).await.is_empty(), "no role, no subscription");
    let subscription_a = server.demo("A", "subscription_id");
    let (status, _, body) = get(
        &server,
        &format!("/subscriptions/{subscription_a}?api-version=2022-12-01"),
        Some(&format!("Bearer {pool_user}")),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("AuthorizationFailed")));
    let pool = format!(
        "/subscriptions/{subscription_a}/resourceGroups/rg-a/providers/Microsoft.Network/networkManagers/nm/ipamPools/pool"
    );
    let new = arm::rbac::NewAssignment {
        name: None,
        scope: &pool,
        role: &arm::rbac::IPAM_POOL_USER,
        principal_id: &user.id,
        principal_type: "User",
        created_by: None,
    };
    arm::rbac::assign(store, new.clone(), now).await.unwrap();
    assert_eq!(
        subscriptions(&server, &pool_user).await[0]["subscriptionId"],
        subscription_a.as_str()
    );
    let again = arm::rbac::assign(store, new, now).await;
    assert!(matches!(again, Err(arm::rbac::AssignError::Exists)));
}

#[tokio::test]
async fn a_subscription_is_shown_only_to_tokens_of_its_tenant() {
    let server = TestServer::start().await;
    let scope = "https://management.core.windows.net//.default";
    let subscription_b = server.demo("B", "subscription_id");
    let (admin_b, _) = user_token(&server, "B", scope).await;
    let (status, _, body) = get(
        &server,
        &format!("/subscriptions/{subscription_b}?api-version=2022-12-01"),
        Some(&format!("Bearer {admin_b}")),
    )
    .await;
    assert_eq!((status, body["subscriptionId"].as_str()), (200, Some(subscription_b.as_str())));
    let (admin_a, _) = user_token(&server, "A", scope).await;
    let (status, headers, body) = get(
        &server,
        &format!("/subscriptions/{subscription_b}?api-version=2022-12-01"),
        Some(&format!("Bearer {admin_a}")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationTokenTenant")),
        "{body}"
    );
    assert!(headers["www-authenticate"].to_str().unwrap().contains(&server.demo("B", "tenant_id")));
    let (status, _, body) = get(
        &server,
        "/subscriptions/00000000-0000-0000-0000-000000000000?api-version=2022-12-01",
        Some(&format!("Bearer {admin_a}")),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("SubscriptionNotFound")));
}

/// A token signed with the server's own key, with the given issuer.
async fn forged_token(server: &TestServer, issuer: &str) -> String {
    let keys = server.running.store.read(|tx| tx.signing_keys()).await.unwrap();
    let record = keys.iter().find(|key| key.retire_at.is_none()).unwrap();
    let key = identity::jwt::SigningKey::from_record(record, &server.kek()).unwrap();
    let now = identity::Clock::now(&server::SystemClock).0 / 1000;
    let tenant_id = server.demo("B", "tenant_id");
    let (upn, _) = server.demo_user("B", "admin");
    let user = server.running.store.read(move |tx| tx.user_by_upn(&upn)).await.unwrap().unwrap();
    let serde_json::Value::Object(claims) = serde_json::json!({
        "aud": "https://management.azure.com/", "iss": issuer, "iat": now, "nbf": now, "exp": now + 600,
        "tid": tenant_id, "oid": user.id, "idtyp": "user", "ver": "2.0",
    }) else {
        unreachable!()
    };
    key.sign(&claims)
}

#[tokio::test]
async fn a_token_with_another_issuer_is_refused_even_with_a_valid_signature() {
    let server = TestServer::start().await;
    let tenant_id = server.demo("B", "tenant_id");
    let right = forged_token(&server, &format!("{}/{tenant_id}/v2.0", server.running.origin)).await;
    let (status, _, _) =
        get(&server, "/tenants?api-version=2022-12-01", Some(&format!("Bearer {right}"))).await;
    assert_eq!(status, 200, "the forged token is otherwise valid");
    let wrong = forged_token(&server, &format!("https://evil.example/{tenant_id}/v2.0")).await;
    let (status, _, body) =
        get(&server, "/tenants?api-version=2022-12-01", Some(&format!("Bearer {wrong}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")));
    assert!(body["error"]["message"].as_str().unwrap().contains("wrong issuer"), "{body}");
}
