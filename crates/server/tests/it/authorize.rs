//! The authorization-code flow with PKCE, as MSAL's interactive sign-in (`az login --tenant …`)
//! and the portal use it: sign-in page, code by form_post or redirect, redemption with the
//! verifier, and every refusal.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::support::{TestServer, claims};

const AZ_CLI: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const REDIRECT: &str = "http://localhost:51234";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-pkce-0123456789abcdef";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

fn authorize_query(response_mode: &str, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", AZ_CLI.to_owned()),
        ("response_type", "code".to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        (
            "scope",
            "https://management.core.windows.net//.default offline_access openid profile"
                .to_owned(),
        ),
        ("state", state.to_owned()),
        ("nonce", "nonce-123".to_owned()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
        ("response_mode", response_mode.to_owned()),
        ("prompt", "select_account".to_owned()),
    ]
}

/// A client that shows redirects instead of following them.
fn no_redirects(server: &TestServer) -> reqwest::Client {
    let ca = std::fs::read(&server.running.ca_cert).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of a hidden input in an HTML page.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}

/// Signs in through the page; returns the response to the form post.
async fn sign_in(
    server: &TestServer,
    query: &[(&str, String)],
    username: &str,
    password: &str,
) -> reqwest::Response {
    let url = server.url("/contoso-b.example/oauth2/v2.0/authorize");
    let page = server.client.get(&url).query(query).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\">") && html.contains("id=\"password\""), "{html}");
    let mut form: Vec<(String, String)> =
        query.iter().map(|(name, value)| (name.to_string(), value.clone())).collect();
    form.push(("username".to_owned(), username.to_owned()));
    form.push(("password".to_owned(), password.to_owned()));
    no_redirects(server).post(&url).form(&form).send().await.unwrap()
}

async fn redeem(server: &TestServer, code: &str, verifier: &str) -> (u16, serde_json::Value) {
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
        ("client_info", "1"),
        ("scope", "https://management.core.windows.net//.default offline_access openid profile"),
    ];
    server.token("contoso-b.example", &form).await
}

#[tokio::test]
async fn msals_interactive_flow_signs_in_posts_the_code_back_and_redeems_it_once() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "admin");
    let response =
        sign_in(&server, &authorize_query("form_post", "state-1"), &username, &password).await;
    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT}/\"")), "{html}");
    assert_eq!(hidden(&html, "state").as_deref(), Some("state-1"));
    let code = hidden(&html, "code").unwrap();
    let (status, body) = redeem(&server, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    let id_token = claims(body["id_token"].as_str().unwrap());
    assert_eq!(
        (id_token["nonce"].as_str(), id_token["aud"].as_str()),
        (Some("nonce-123"), Some(AZ_CLI))
    );
    assert_eq!(claims(body["access_token"].as_str().unwrap())["upn"], username.as_str());
    assert!(body["refresh_token"].is_string() && body["client_info"].is_string());
    // A code is good once.
    let (status, body) = redeem(&server, &code, VERIFIER).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(70000)));
}

#[tokio::test]
async fn a_query_mode_code_needs_the_right_verifier() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "network_contributor");
    let response = sign_in(&server, &authorize_query("query", "s"), &username, &password).await;
    assert_eq!(response.status().as_u16(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{REDIRECT}/?code=")) && location.ends_with("&state=s"),
        "{location}"
    );
    let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let (status, body) =
        redeem(&server, &code, "another-verifier-of-sufficient-length-0000000000000").await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(501481)));
}

#[tokio::test]
async fn a_wrong_password_shows_the_error_on_the_page_and_gives_no_code() {
    let server = TestServer::start().await;
    let (username, _) = server.demo_user("B", "admin");
    let response = sign_in(&server, &authorize_query("form_post", "s"), &username, "wrong").await;
    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("AADSTS50126: Your account or password is incorrect."), "{html}");
    assert!(hidden(&html, "code").is_none());
    // A user of tenant A cannot sign in to B's page.
    let (username, password) = server.demo_user("A", "admin");
    let html = sign_in(&server, &authorize_query("form_post", "s"), &username, &password)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("AADSTS50020"), "{html}");
}

#[tokio::test]
async fn unsafe_requests_get_an_error_page_and_no_redirect() {
    let server = TestServer::start().await;
    let url = server.url("/contoso-b.example/oauth2/v2.0/authorize");
    let with = |name: &'static str, value: &str| {
        let mut query = authorize_query("form_post", "s");
        query.retain(|(existing, _)| *existing != name);
        if !value.is_empty() {
            query.push((name, value.to_owned()));
        }
        query
    };
    for (query, code) in [
        (with("redirect_uri", "https://evil.example/callback"), "AADSTS50011"),
        (with("code_challenge", ""), "AADSTS9002325"),
        (with("code_challenge_method", "plain"), "AADSTS501491"),
        (with("response_type", "token"), "AADSTS900144"),
        (with("client_id", "11111111-2222-3333-4444-555555555555"), "AADSTS700016"),
    ] {
        let response = no_redirects(&server).get(&url).query(&query).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{code}");
        assert!(response.text().await.unwrap().contains(code), "{code}");
    }
    let response = server
        .client
        .get(server.url("/nope.example/oauth2/v2.0/authorize"))
        .query(&authorize_query("query", "s"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn hostile_values_are_escaped_in_the_pages() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("B", "admin");
    let state = "\"><script>alert(1)</script>";
    let html = sign_in(&server, &authorize_query("form_post", state), &username, &password)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
}
