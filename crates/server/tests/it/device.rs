//! The device-code flow (`az login --use-device-code`): the device's code, polling while pending,
//! a person signing in on /devicelogin, the tokens once, and the refusals.

use crate::support::{TestServer, claims};

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const SCOPE: &str = "https://management.core.windows.net//.default offline_access openid profile";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn start_device(
    server: &TestServer,
    tenant: &str,
    client_id: &str,
) -> (u16, serde_json::Value) {
    let response = server
        .client
        .post(server.url(&format!("/{tenant}/oauth2/v2.0/devicecode")))
        .form(&[("client_id", client_id), ("scope", SCOPE), ("client_info", "1")])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn poll(server: &TestServer, device_code: &str) -> (u16, serde_json::Value) {
    server
        .token(
            "contoso-b.example",
            &[
                ("client_id", AZ_CLI),
                ("grant_type", GRANT),
                ("device_code", device_code),
                ("client_info", "1"),
            ],
        )
        .await
}

async fn device_login(server: &TestServer, form: &[(&str, &str)]) -> String {
    server
        .client
        .post(server.url("/devicelogin"))
        .form(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_device_gets_tokens_once_after_a_person_signs_in_with_its_code() {
    let server = TestServer::start().await;
    let (status, device) = start_device(&server, "contoso-b.example", AZ_CLI).await;
    assert_eq!(status, 200, "{device}");
    let (device_code, user_code) =
        (device["device_code"].as_str().unwrap(), device["user_code"].as_str().unwrap());
    assert_eq!(device["verification_uri"], server.url("/devicelogin"));
    assert!(device["message"].as_str().unwrap().contains(user_code));
    let (status, body) = poll(&server, device_code).await;
    assert_eq!(
        (status, body["error"].as_str(), body["error_codes"][0].as_u64()),
        (400, Some("authorization_pending"), Some(70016))
    );
    let page =
        server.client.get(server.url("/devicelogin")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"user_code\""));
    let page = device_login(&server, &[("user_code", &user_code.to_lowercase())]).await;
    assert!(page.contains("id=\"password\""), "{page}");
    let (username, password) = server.demo_user("B", "admin");
    let page = device_login(
        &server,
        &[("user_code", user_code), ("username", &username), ("password", "wrong")],
    )
    .await;
    assert!(page.contains("AADSTS50126"), "{page}");
    assert_eq!(poll(&server, device_code).await.0, 400, "a failed sign-in leaves it pending");
    let page = device_login(
        &server,
        &[("user_code", user_code), ("username", &username), ("password", &password)],
    )
    .await;
    assert!(page.contains("You're signed in"), "{page}");
    let (status, body) = poll(&server, device_code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], SCOPE, "the scopes sent to /devicecode are repeated");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["upn"], username.as_str());
    assert!(
        body["id_token"].is_string()
            && body["refresh_token"].is_string()
            && body["client_info"].is_string()
    );
    let (status, body) = poll(&server, device_code).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(70000)));
    // The code cannot be used for a second sign-in.
    let page = device_login(&server, &[("user_code", user_code)]).await;
    assert!(page.contains("not valid"), "{page}");
}

#[tokio::test]
async fn device_requests_are_refused_for_unknown_clients_tenants_and_codes() {
    let server = TestServer::start().await;
    let (status, body) =
        start_device(&server, "contoso-b.example", "11111111-2222-3333-4444-555555555555").await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(700016)));
    let (status, body) = start_device(&server, "nope.example", AZ_CLI).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(90002)));
    let (status, body) = poll(&server, "made-up").await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(70000)));
    let page = device_login(&server, &[("user_code", "NOPE12345")]).await;
    assert!(page.contains("not valid"), "{page}");
    // A user of tenant A cannot approve a device signing in to tenant B.
    let (_, device) = start_device(&server, "contoso-b.example", AZ_CLI).await;
    let (username, password) = server.demo_user("A", "admin");
    let page = device_login(
        &server,
        &[
            ("user_code", device["user_code"].as_str().unwrap()),
            ("username", &username),
            ("password", &password),
        ],
    )
    .await;
    assert!(page.contains("AADSTS50020"), "{page}");
}
