//! The identity platform endpoints over HTTPS: discovery, JWKS and every grant and error of the
//! token endpoint, against a server started with the demo world.

use identity::secret::{client_secret_hash, new_client_secret};
use serde_json::Value;
use store::Timestamp;
use store::identity::{ApplicationPassword, ApplicationRecord, ServicePrincipalRecord};

use crate::support::{TestServer, claims};

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const ARM_SCOPE: &str =
    "https://management.core.windows.net//.default offline_access openid profile";

/// Registers an app in `home` with one secret; returns (app id, secret).
async fn register_app(server: &TestServer, home: &str, sign_in_audience: &str) -> (String, String) {
    let tenant_id = server.demo(home, "tenant_id");
    let app_id = uuid::Uuid::new_v4().to_string();
    let secret = new_client_secret();
    let application = ApplicationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        app_id: app_id.clone(),
        tenant_id,
        display_name: "cross-tenant-app".to_owned(),
        sign_in_audience: sign_in_audience.to_owned(),
        owner_id: None,
        redirect_uris: Vec::new(),
        created_at: Timestamp(0),
    };
    let password = ApplicationPassword {
        key_id: uuid::Uuid::new_v4().to_string(),
        application_id: application.id.clone(),
        display_name: None,
        hint: secret[..3].to_owned(),
        secret_sha256: client_secret_hash(&secret),
        start_at: Timestamp(0),
        end_at: Timestamp(i64::MAX),
    };
    server
        .running
        .store
        .write(move |tx| {
            tx.application_create(&application)?;
            tx.application_password_add(&password)
        })
        .await
        .unwrap();
    (app_id, secret)
}

/// Creates the app's service principal in `tenant`; returns its object id.
async fn create_service_principal(server: &TestServer, tenant: &str, app_id: &str) -> String {
    let service_principal = ServicePrincipalRecord {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: server.demo(tenant, "tenant_id"),
        app_id: app_id.to_owned(),
        display_name: "cross-tenant-app".to_owned(),
    };
    let id = service_principal.id.clone();
    server
        .running
        .store
        .write(move |tx| tx.service_principal_create(&service_principal, Timestamp(0)))
        .await
        .unwrap();
    id
}

fn assert_platform_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} missing: {body}");
    }
}

#[tokio::test]
async fn discovery_names_the_tenant_issuer_and_endpoints_for_id_and_domain() {
    let server = TestServer::start().await;
    let tenant_id = server.demo("B", "tenant_id");
    for segment in [tenant_id.as_str(), "contoso-b.example", "CONTOSO-B.EXAMPLE"] {
        let (status, body) =
            server.get_json(&format!("/{segment}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(status, 200);
        assert_eq!(body["issuer"], format!("{}/{tenant_id}/v2.0", server.running.origin));
        assert_eq!(body["token_endpoint"], server.url(&format!("/{segment}/oauth2/v2.0/token")));
        assert_eq!(body["jwks_uri"], server.url(&format!("/{segment}/discovery/v2.0/keys")));
        assert!(
            body["authorization_endpoint"].is_string()
                && body["device_authorization_endpoint"].is_string()
        );
    }
    let (status, body) =
        server.get_json("/organizations/v2.0/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(body["issuer"], format!("{}/{{tenantid}}/v2.0", server.running.origin));
    let (status, body) =
        server.get_json("/nope.example/v2.0/.well-known/openid-configuration").await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "invalid_request", 90002);
}

#[tokio::test]
async fn password_grant_issues_what_msal_needs_and_tokens_verify_against_jwks() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "admin");
    let tenant_id = server.demo("B", "tenant_id");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("client_info", "1"),
        ("username", &username),
        ("password", &password),
        ("scope", ARM_SCOPE),
    ];
    let (status, body) = server.token("contoso-b.example", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_i64()),
        (Some("Bearer"), Some(3600))
    );
    assert_eq!(body["scope"], ARM_SCOPE, "the response repeats the scopes asked for");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://management.core.windows.net/");
    assert_eq!(access["tid"], tenant_id.as_str());
    assert_eq!(access["iss"], format!("{}/{tenant_id}/v2.0", server.running.origin));
    assert_eq!(
        (access["idtyp"].as_str(), access["upn"].as_str(), access["appid"].as_str()),
        (Some("user"), Some(username.as_str()), Some(AZ_CLI))
    );
    let id_token = claims(body["id_token"].as_str().unwrap());
    assert_eq!(
        (id_token["aud"].as_str(), id_token["oid"].clone()),
        (Some(AZ_CLI), access["oid"].clone())
    );
    use base64::Engine;
    let client_info: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body["client_info"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (client_info["uid"].clone(), client_info["utid"].as_str()),
        (access["oid"].clone(), Some(tenant_id.as_str()))
    );
    // The token's key is published in the tenant's JWKS.
    let (_, jwks) = server.get_json(&format!("/{tenant_id}/discovery/v2.0/keys")).await;
    let header: Value = {
        let part = body["access_token"].as_str().unwrap().split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "RS256");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == header["kid"] && key["kty"] == "RSA")
    );
}

#[tokio::test]
async fn a_wrong_password_is_aadsts50126_and_repeated_failures_lock_the_user() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("A", "network_contributor");
    let attempt = |password: String| {
        let username = username.clone();
        let server = &server;
        async move {
            let form = [
                ("client_id", AZ_CLI),
                ("grant_type", "password"),
                ("username", username.as_str()),
                ("password", password.as_str()),
                ("scope", ARM_SCOPE),
            ];
            server.token("contoso-a.example", &form).await
        }
    };
    let (status, body) = attempt("wrong".to_owned()).await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "invalid_grant", 50126);
    assert_eq!(
        body["correlation_id"], "0f6a7c8e-1111-4222-8333-944455556666",
        "the client's request id is echoed"
    );
    for _ in 1..identity::limiter::MAX_FAILURES_PER_ACCOUNT_AND_SOURCE {
        attempt("wrong".to_owned()).await;
    }
    let (status, body) = attempt(password).await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "invalid_grant", 50053);
}

#[tokio::test]
async fn a_user_signs_in_only_to_their_own_tenant() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("A", "admin");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", ARM_SCOPE),
    ];
    let (status, body) = server.token("contoso-b.example", &form).await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "invalid_grant", 50020);
    // Through `organizations` the home tenant is used.
    let (status, body) = server.token("organizations", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["tid"],
        server.demo("A", "tenant_id").as_str()
    );
}

/// Tenant segment, form, expected status, OAuth error and AADSTS code.
type ErrorCase = (&'static str, Vec<(&'static str, &'static str)>, u16, &'static str, u64);

#[tokio::test]
async fn malformed_requests_get_the_platforms_errors() {
    let server = TestServer::start().await;
    let cases: Vec<ErrorCase> = vec![
        (
            "contoso-a.example",
            vec![("client_id", AZ_CLI), ("scope", ARM_SCOPE)],
            400,
            "invalid_request",
            900144,
        ),
        (
            "contoso-a.example",
            vec![("grant_type", "implicit"), ("scope", ARM_SCOPE)],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            "contoso-a.example",
            vec![("grant_type", "password"), ("scope", "https://storage.azure.com//.default")],
            400,
            "invalid_resource",
            500011,
        ),
        (
            "contoso-a.example",
            vec![("grant_type", "password"), ("scope", "openid profile")],
            400,
            "invalid_scope",
            70011,
        ),
        (
            "nope.example",
            vec![("grant_type", "password"), ("scope", ARM_SCOPE)],
            400,
            "invalid_request",
            90002,
        ),
        (
            "contoso-a.example",
            vec![
                ("grant_type", "password"),
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                ("username", "x"),
                ("password", "y"),
                ("scope", ARM_SCOPE),
            ],
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "contoso-a.example",
            vec![
                ("grant_type", "refresh_token"),
                ("client_id", AZ_CLI),
                ("refresh_token", "not-a-token"),
                ("scope", ARM_SCOPE),
            ],
            400,
            "invalid_grant",
            9002313,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        let (actual_status, body) = server.token(tenant, &form).await;
        assert_eq!(actual_status, status, "{form:?}: {body}");
        assert_platform_error(&body, error, code);
    }
}

#[tokio::test]
async fn client_credentials_need_the_apps_service_principal_in_the_tenant() {
    let server = TestServer::start().await;
    let (app_id, secret) = register_app(&server, "B", "AzureADMultipleOrgs").await;
    let form = |secret: &str| {
        vec![
            ("client_id", app_id.clone()),
            ("client_secret", secret.to_owned()),
            ("grant_type", "client_credentials".to_owned()),
            ("scope", "https://management.azure.com//.default".to_owned()),
        ]
    };
    let send = |tenant: &'static str, form: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(name, value)| (*name, value.as_str())).collect();
            server.token(tenant, &form).await
        }
    };
    // No service principal yet, even in the home tenant (creating an app creates none).
    let (status, body) = send("contoso-b.example", form(&secret)).await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "unauthorized_client", 700016);
    let service_principal_b = create_service_principal(&server, "B", &app_id).await;
    let (status, body) = send("contoso-b.example", form(&secret)).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (access["idtyp"].as_str(), access["oid"].as_str(), access["sub"].as_str()),
        (Some("app"), Some(service_principal_b.as_str()), Some(service_principal_b.as_str()))
    );
    assert_eq!(
        (access["appid"].as_str(), access["aud"].as_str()),
        (Some(app_id.as_str()), Some("https://management.azure.com/"))
    );
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    // A wrong secret is a 401.
    let (status, body) = send("contoso-b.example", form("not-the-secret")).await;
    assert_eq!(status, 401);
    assert_platform_error(&body, "invalid_client", 7000215);
    // In tenant A the app needs its own service principal there, and then gets A's token.
    let (status, _) = send("contoso-a.example", form(&secret)).await;
    assert_eq!(status, 400);
    let service_principal_a = create_service_principal(&server, "A", &app_id).await;
    let (status, body) = send("contoso-a.example", form(&secret)).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(
        (access["tid"].as_str(), access["oid"].as_str()),
        (Some(server.demo("A", "tenant_id").as_str()), Some(service_principal_a.as_str()))
    );
    // HTTP Basic client authentication works too.
    let response = server
        .client
        .post(server.url("/contoso-a.example/oauth2/v2.0/token"))
        .basic_auth(&app_id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com//.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn refresh_tokens_renew_user_tokens_for_other_resources_and_refuse_tampering() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "network_contributor");
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", ARM_SCOPE),
    ];
    let (_, body) = server.token("contoso-b.example", &form).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let graph_scope = format!("{}/.default offline_access openid profile", server.running.origin);
    let refresh = [
        ("client_id", AZ_CLI),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("scope", graph_scope.as_str()),
    ];
    let (status, body) = server.token("contoso-b.example", &refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        server.running.origin.as_str()
    );
    // A refresh token is not an access token, and a changed one does not verify.
    assert_eq!(claims(&refresh_token)["aud"], identity::token::REFRESH_AUDIENCE);
    let mut parts: Vec<String> = refresh_token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let tampered = parts.join(".");
    let refresh = [
        ("client_id", AZ_CLI),
        ("grant_type", "refresh_token"),
        ("refresh_token", tampered.as_str()),
        ("scope", ARM_SCOPE),
    ];
    let (status, body) = server.token("contoso-b.example", &refresh).await;
    assert_eq!(status, 400);
    assert_platform_error(&body, "invalid_grant", 9002313);
}
