//! Regression tests for the holes an outside security probe found (issue 19): redirect URIs,
//! consent, registration of redirect URIs, failed-sign-in limits, confidential clients and
//! refresh tokens, the levers against a compromised account, security headers, user realm,
//! device codes, auxiliary headers, ARM input checks and DELETE preconditions. Each test names
//! the item it covers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, claims};

const AZ_CLI: &str = identity::AZURE_CLI_CLIENT_ID;
const ARM_SCOPE: &str = "https://management.azure.com//.default offline_access openid profile";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-pkce-0123456789abcdef";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
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
    Some(html[start..].split('"').next()?.replace("&amp;", "&"))
}

/// A user's token response (password grant, az CLI) for `scope`.
async fn password_grant(
    server: &TestServer,
    tenant: &str,
    username: &str,
    password: &str,
    scope: &str,
) -> (u16, Value) {
    let form = [
        ("client_id", AZ_CLI),
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("scope", scope),
    ];
    server.token(tenant, &form).await
}

async fn demo_tokens(server: &TestServer, tenant: &str, role: &str) -> Value {
    let (username, password) = server.demo_user(tenant, role);
    password_tokens(server, tenant, &username, &password).await
}

/// A user's tokens for ARM (with a refresh token).
async fn password_tokens(
    server: &TestServer,
    tenant: &str,
    username: &str,
    password: &str,
) -> Value {
    let (status, body) =
        password_grant(server, &server.demo(tenant, "domain"), username, password, ARM_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET {path}` on ARM with a bearer token; the status and error code.
async fn arm_get(server: &TestServer, path: &str, token: &str) -> (u16, Option<String>) {
    let response = server.client.get(server.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

fn subscription_path(server: &TestServer, tenant: &str) -> String {
    format!("/subscriptions/{}?api-version=2022-12-01", server.demo(tenant, "subscription_id"))
}

async fn graph(
    server: &TestServer,
    token: &str,
    method: Method,
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
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn graph_token(server: &TestServer, tenant: &str, role: &str) -> String {
    let (username, password) = server.demo_user(tenant, role);
    let scope = format!("{}/.default", server.running.origin);
    let (status, body) =
        password_grant(server, &server.demo(tenant, "domain"), &username, &password, &scope).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

// Issue 19 (1): a redirect URI whose userinfo holds a loopback address passed as loopback, and
// the code went to the host after the `@`.
#[tokio::test]
async fn issue_19_loopback_redirects_with_userinfo_get_an_error_page_and_no_code() {
    let server = TestServer::start().await;
    for redirect_uri in [
        "http://127.0.0.1:80@attacker.example/",
        "http://localhost:1@attacker.example/",
        "http://[::1]:1@attacker.example/",
        "http://127.0.0.1:@attacker.example/",
    ] {
        let response = no_redirects(&server)
            .get(server.url("/contoso-b.example/oauth2/v2.0/authorize"))
            .query(&[
                ("client_id", AZ_CLI),
                ("response_type", "code"),
                ("redirect_uri", redirect_uri),
                ("scope", ARM_SCOPE),
                ("code_challenge", &challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{redirect_uri}");
        assert!(response.headers().get("location").is_none(), "{redirect_uri}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("AADSTS900971") && !html.contains("id=\"password\""),
            "{redirect_uri}: {html}"
        );
    }
}

/// Registers an app in tenant A through Graph as A's admin, with a redirect URI and a secret.
async fn register_app(server: &TestServer, audience: &str, redirect: &str) -> (String, String) {
    let token = graph_token(server, "A", "admin").await;
    let (status, app) = graph(
        server,
        &token,
        Method::POST,
        "/v1.0/applications",
        Some(json!({"displayName": "Fabrikam Reports", "signInAudience": audience, "web": {"redirectUris": [redirect]}})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let path = format!("/v1.0/applications/{}/addPassword", app["id"].as_str().unwrap());
    let (status, secret) = graph(server, &token, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, 200, "{secret}");
    (app["appId"].as_str().unwrap().to_owned(), secret["secretText"].as_str().unwrap().to_owned())
}

/// Signs in through an app's authorize page of `tenant`; returns the answer to the form post.
async fn sign_in_for_app(
    server: &TestServer,
    tenant: &str,
    app_id: &str,
    redirect: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let url = server.url(&format!("/{tenant}/oauth2/v2.0/authorize"));
    let query = [
        ("client_id", app_id),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("scope", ARM_SCOPE),
        ("state", "s1"),
    ];
    let page = no_redirects(server).get(&url).query(&query).send().await.unwrap();
    let status = page.status().as_u16();
    let html = page.text().await.unwrap();
    if status != 200 {
        return no_redirects(server).get(&url).query(&query).send().await.unwrap();
    }
    assert!(html.contains("Fabrikam Reports"), "the page names the app: {html}");
    let mut form: Vec<(&str, &str)> = query.to_vec();
    form.push(("username", username));
    form.push(("password", password));
    no_redirects(server).post(&url).form(&form).send().await.unwrap()
}

fn code_of(response: &reqwest::Response) -> Option<String> {
    let location = response.headers().get("location")?.to_str().ok()?;
    let url = url_of(location);
    url.query_pairs().find(|(name, _)| name == "code").map(|(_, value)| value.into_owned())
}

fn url_of(text: &str) -> reqwest::Url {
    reqwest::Url::parse(text).unwrap()
}

// Issue 19 (2): tenant B's administrator signed in through another tenant's app link and the
// app got B's tokens, with no service principal in B and no consent.
#[tokio::test]
async fn issue_19_an_app_gets_a_users_code_only_in_its_tenant_or_after_consent() {
    let server = TestServer::start().await;
    let redirect = "https://reports.fabrikam.example/callback";
    let (username_b, password_b) = server.demo_user("B", "admin");

    // A single-tenant app of A does not exist for B's users.
    let (single, _) = register_app(&server, "AzureADMyOrg", redirect).await;
    let response =
        sign_in_for_app(&server, "contoso-b.example", &single, redirect, &username_b, &password_b)
            .await;
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.text().await.unwrap().contains("AADSTS700016"));

    // A multi-tenant app asks B's administrator for consent, naming itself and its publisher.
    let (multi, secret) = register_app(&server, "AzureADMultipleOrgs", redirect).await;
    let response =
        sign_in_for_app(&server, "contoso-b.example", &multi, redirect, &username_b, &password_b)
            .await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(code_of(&response).is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains("Permissions requested") && html.contains("Fabrikam Reports"), "{html}");
    assert!(
        html.contains("contoso-a.example") && html.contains("Access Azure Resource Manager as you"),
        "{html}"
    );
    let ticket = hidden(&html, "consent_ticket").unwrap();
    let service_principal = |server: &TestServer| {
        let (store, app_id, tenant) =
            (server.running.store.clone(), multi.clone(), server.demo("B", "tenant_id"));
        async move { store.read(move |tx| tx.service_principal_find(&tenant, &app_id)).await.unwrap() }
    };
    assert!(service_principal(&server).await.is_none(), "no service principal before consent");

    // Declining sends the app an error, not a code.
    let url = server.url("/contoso-b.example/oauth2/v2.0/authorize");
    let mut form = vec![
        ("client_id", multi.as_str()),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("scope", ARM_SCOPE),
        ("state", "s1"),
        ("consent_ticket", ticket.as_str()),
    ];
    let mut declined = form.clone();
    declined.push(("consent", "decline"));
    let response = no_redirects(&server).post(&url).form(&declined).send().await.unwrap();
    let location = url_of(response.headers()["location"].to_str().unwrap());
    assert!(
        location.query_pairs().any(|(name, value)| name == "error" && value == "access_denied")
    );
    assert!(code_of(&response).is_none());

    // A forged ticket is refused.
    let mut forged = form.clone();
    forged.retain(|(name, _)| *name != "consent_ticket");
    forged.push(("consent_ticket", "not-a-ticket"));
    forged.push(("consent", "accept"));
    let response = no_redirects(&server).post(&url).form(&forged).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);

    // Accepting creates the service principal in B and sends the code.
    form.push(("consent", "accept"));
    let response = no_redirects(&server).post(&url).form(&form).send().await.unwrap();
    let code = code_of(&response).expect("a code after consent");
    assert!(service_principal(&server).await.is_some());
    // The code is redeemed with the app's secret only (a confidential client, item 8).
    let redeem = |secret: Option<&str>| {
        let mut form = vec![
            ("client_id", multi.clone()),
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("scope", ARM_SCOPE.to_owned()),
        ];
        if let Some(secret) = secret {
            form.push(("client_secret", secret.to_owned()));
        }
        form
    };
    let form: Vec<(&str, String)> = redeem(Some(&secret));
    let form: Vec<(&str, &str)> =
        form.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let (status, body) = server.token("contoso-b.example", &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["tid"],
        server.demo("B", "tenant_id").as_str()
    );

    // The next sign-in needs no consent: the administrator's consent was for itself only, so
    // another user of B is asked again.
    let response =
        sign_in_for_app(&server, "contoso-b.example", &multi, redirect, &username_b, &password_b)
            .await;
    assert!(code_of(&response).is_some());
    let (username, password) = server.demo_user("B", "network_contributor");
    let response =
        sign_in_for_app(&server, "contoso-b.example", &multi, redirect, &username, &password).await;
    assert!(code_of(&response).is_none());
    assert!(response.text().await.unwrap().contains("Permissions requested"));
}

// Issue 19 (2): admin consent through the `adminconsent` endpoint consents for every user.
#[tokio::test]
async fn issue_19_admin_consent_lets_every_user_of_the_tenant_sign_in() {
    let server = TestServer::start().await;
    let redirect = "https://reports.fabrikam.example/callback";
    let (multi, _) = register_app(&server, "AzureADMultipleOrgs", redirect).await;
    let url = server.url("/contoso-b.example/adminconsent");
    let query = [("client_id", multi.as_str()), ("redirect_uri", redirect), ("state", "a1")];
    let page = server.client.get(&url).query(&query).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Fabrikam Reports") && page.contains("id=\"password\""), "{page}");
    // A user who is not an administrator cannot consent for everyone.
    let (username, password) = server.demo_user("B", "network_contributor");
    let mut form = query.to_vec();
    form.extend([("username", username.as_str()), ("password", password.as_str())]);
    let response = no_redirects(&server).post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let (username, password) = server.demo_user("B", "admin");
    let mut form = query.to_vec();
    form.extend([("username", username.as_str()), ("password", password.as_str())]);
    let html =
        no_redirects(&server).post(&url).form(&form).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("on behalf of your organization"), "{html}");
    let ticket = hidden(&html, "consent_ticket").unwrap();
    let mut form = query.to_vec();
    form.extend([("consent_ticket", ticket.as_str()), ("consent", "accept")]);
    let response = no_redirects(&server).post(&url).form(&form).send().await.unwrap();
    let location = url_of(response.headers()["location"].to_str().unwrap());
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("admin_consent".to_owned(), "True".to_owned())), "{location}");
    assert!(pairs.contains(&("tenant".to_owned(), server.demo("B", "tenant_id"))), "{location}");
    // Now the network contributor signs in without a consent page.
    let (username, password) = server.demo_user("B", "network_contributor");
    let response =
        sign_in_for_app(&server, "contoso-b.example", &multi, redirect, &username, &password).await;
    assert!(code_of(&response).is_some());
}

// Issue 19 (3): Graph accepted `javascript:`, `data:` and plain http redirect URIs, which a
// form_post page would then submit to.
#[tokio::test]
async fn issue_19_graph_refuses_redirect_uris_that_are_not_https_or_loopback() {
    let server = TestServer::start().await;
    let token = graph_token(&server, "A", "admin").await;
    for uri in [
        "javascript:alert(document.domain)//",
        "data:text/html,<script>alert(1)</script>",
        "http://evil.example/cb",
        "https://app.example/cb#x",
        "https://app.example/\r\ncb",
    ] {
        let body = json!({"displayName": "x", "web": {"redirectUris": [uri]}});
        let (status, answer) =
            graph(&server, &token, Method::POST, "/v1.0/applications", Some(body)).await;
        assert_eq!(status, 400, "{uri}: {answer}");
        assert_eq!(answer["error"]["code"], "Request_BadRequest", "{uri}");
    }
    let body = json!({"displayName": "x", "web": {"redirectUris": ["https://app.example/cb", "http://localhost:8400/"]}});
    let (status, app) =
        graph(&server, &token, Method::POST, "/v1.0/applications", Some(body)).await;
    assert_eq!(status, 201, "{app}");
    let path = format!("/v1.0/applications/{}", app["id"].as_str().unwrap());
    let (status, _) = graph(
        &server,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"web": {"redirectUris": ["javascript:x"]}})),
    )
    .await;
    assert_eq!(status, 400);
}

// Issue 19 (7): the limit was checked before the hash and counted after it, so parallel wrong
// passwords were all checked; and one address's failures locked out every user behind it.
#[tokio::test]
async fn issue_19_parallel_wrong_passwords_are_counted_before_they_are_checked() {
    let server = TestServer::start().await;
    let (username, password) = server.demo_user("A", "network_contributor");
    let answers = parallel_password_grants(&server, 40, &username, "wrong-password").await;
    let checked = answers.iter().filter(|body| body["error_codes"][0] == 50126).count();
    let locked = answers.iter().filter(|body| body["error_codes"][0] == 50053).count();
    assert_eq!(
        (checked, locked),
        (identity::limiter::MAX_FAILURES_PER_ACCOUNT_AND_SOURCE as usize, 30)
    );
    // Locked for this address, even with the right password…
    let (_, body) =
        password_grant(&server, "contoso-a.example", &username, &password, ARM_SCOPE).await;
    assert_eq!(body["error_codes"][0], 50053);
    // …but not every other user behind it.
    let (other, other_password) = server.demo_user("A", "admin");
    let (status, body) =
        password_grant(&server, "contoso-a.example", &other, &other_password, ARM_SCOPE).await;
    assert_eq!(status, 200, "{body}");
}

/// `count` password grants sent at once; their JSON answers.
async fn parallel_password_grants(
    server: &TestServer,
    count: usize,
    username: &str,
    password: &str,
) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, url) =
            (server.client.clone(), server.url("/contoso-a.example/oauth2/v2.0/token"));
        let form = [
            ("client_id", AZ_CLI.to_owned()),
            ("grant_type", "password".to_owned()),
            ("username", username.to_owned()),
            ("password", password.to_owned()),
            ("scope", ARM_SCOPE.to_owned()),
        ];
        tasks.spawn(async move {
            client.post(url).form(&form).send().await.unwrap().json::<Value>().await.unwrap()
        });
    }
    tasks.join_all().await
}

/// An ARM request; the status and body.
async fn arm_call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = server.client.request(method, server.url(path)).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn refresh(
    server: &TestServer,
    tenant: &str,
    client_id: &str,
    refresh_token: &str,
    secret: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("client_id", client_id),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("scope", ARM_SCOPE),
    ];
    if let Some(secret) = secret {
        form.push(("client_secret", secret));
    }
    server.token(tenant, &form).await
}

// Issue 19 (8): a confidential app's refresh token redeemed without its secret and kept working
// after the app was deleted; a web app's code redeemed with PKCE alone.
#[tokio::test]
async fn issue_19_confidential_clients_prove_themselves_and_refresh_tokens_die_with_their_app() {
    let server = TestServer::start().await;
    let redirect = "https://reports.fabrikam.example/callback";
    let (app_id, secret) = register_app(&server, "AzureADMyOrg", redirect).await;
    let (username, password) = server.demo_user("A", "admin");
    // The home tenant's user consents once (the app has no service principal yet).
    let url = server.url("/contoso-a.example/oauth2/v2.0/authorize");
    let query = vec![
        ("client_id", app_id.clone()),
        ("response_type", "code".to_owned()),
        ("redirect_uri", redirect.to_owned()),
        ("scope", ARM_SCOPE.to_owned()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let mut form = query.clone();
    form.extend([("username", username.clone()), ("password", password.clone())]);
    let html =
        no_redirects(&server).post(&url).form(&form).send().await.unwrap().text().await.unwrap();
    let ticket = hidden(&html, "consent_ticket").expect("a consent page");
    let mut form = query.clone();
    form.extend([("consent_ticket", ticket), ("consent", "accept".to_owned())]);
    let response = no_redirects(&server).post(&url).form(&form).send().await.unwrap();
    let code = code_of(&response).unwrap();
    let redeem = |secret: Option<&str>| {
        let mut form = vec![
            ("client_id", app_id.clone()),
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
            ("scope", ARM_SCOPE.to_owned()),
        ];
        form.extend(secret.map(|secret| ("client_secret", secret.to_owned())));
        form
    };
    // PKCE alone is not enough for a confidential client.
    let form = redeem(None);
    let (status, body) = server
        .token("contoso-a.example", &form.iter().map(|(n, v)| (*n, v.as_str())).collect::<Vec<_>>())
        .await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (401, Some(7000218)), "{body}");
    let code = {
        // That attempt spent the code (codes are single-use); sign in again, now consented.
        let mut form = query.clone();
        form.extend([("username", username.clone()), ("password", password.clone())]);
        code_of(&no_redirects(&server).post(&url).form(&form).send().await.unwrap()).unwrap()
    };
    let form = vec![
        ("client_id", app_id.as_str()),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
        ("client_secret", secret.as_str()),
        ("scope", ARM_SCOPE),
    ];
    let (status, body) = server.token("contoso-a.example", &form).await;
    assert_eq!(status, 200, "{body}");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&server, "contoso-a.example", &app_id, &refresh_token, None).await;
    assert_eq!((status, body["error_codes"][0].as_u64()), (401, Some(7000218)), "{body}");
    let (status, body) =
        refresh(&server, "contoso-a.example", &app_id, &refresh_token, Some(&secret)).await;
    assert_eq!(status, 200, "{body}");
    // Bound to its client: the az CLI cannot use it.
    let (status, _) = refresh(&server, "contoso-a.example", AZ_CLI, &refresh_token, None).await;
    assert_eq!(status, 400);
    // Deleted, the app refreshes nothing.
    let token = graph_token(&server, "A", "admin").await;
    let (_, apps) = graph(
        &server,
        &token,
        Method::GET,
        &format!("/v1.0/applications?$filter=appId eq '{app_id}'"),
        None,
    )
    .await;
    let (status, _) = graph(
        &server,
        &token,
        Method::DELETE,
        &format!("/v1.0/applications/{}", apps["value"][0]["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) =
        refresh(&server, "contoso-a.example", &app_id, &refresh_token, Some(&secret)).await;
    assert_eq!(status, 400, "{body}");
}

/// Runs `crosspool admin …` on the test server's store; returns its JSON output.
fn admin(server: &TestServer, args: &[&str]) -> Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"));
    command.arg("--data-dir").arg(server.data_dir());
    if let Some(url) = server.database_url() {
        command.args(["--database", &url]);
    }
    let output = command.arg("admin").args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

crate::support::both_backends! {
    // Issue 19 (12): no lever against a compromised account. Each works at once, from another
    // process, on the tokens the server already issued.
    async fn issue_19_disabling_deleting_and_resetting_a_user_end_its_tokens_at_once(server: &TestServer) {
        let (username, password) = server.demo_user("B", "network_contributor");
        let tokens = password_tokens(server, "B", &username, &password).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        let subscription = subscription_path(server, "B");
        assert_eq!(arm_get(server, &subscription, &access).await.0, 200);

        admin(server, &["user", "disable", "--user", &username]);
        assert_eq!(arm_get(server, &subscription, &access).await, (401, Some("InvalidAuthenticationToken".to_owned())));
        let (_, body) = password_grant(server, "contoso-b.example", &username, &password, ARM_SCOPE).await;
        assert_eq!(body["error_codes"][0], 50057, "{body}");
        let (_, body) = refresh(server, "contoso-b.example", AZ_CLI, &refresh_token, None).await;
        assert_eq!(body["error_codes"][0], 50057, "{body}");
        admin(server, &["user", "enable", "--user", &username]);
        assert_eq!(arm_get(server, &subscription, &access).await.0, 200);

        // A password reset ends every token issued before it; the new password works.
        let reset = admin(server, &["user", "reset-password", "--user", &username]);
        let new_password = reset["password"].as_str().unwrap().to_owned();
        assert_eq!(arm_get(server, &subscription, &access).await.0, 401);
        assert_eq!(refresh(server, "contoso-b.example", AZ_CLI, &refresh_token, None).await.0, 400);
        let (status, _) = password_grant(server, "contoso-b.example", &username, &password, ARM_SCOPE).await;
        assert_eq!(status, 400);
        let tokens = password_tokens(server, "B", &username, &new_password).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        assert_eq!(arm_get(server, &subscription, &access).await.0, 200);

        // Graph's revokeSignInSessions, by the tenant's administrator.
        let admin_graph = graph_token(server, "B", "admin").await;
        let user = identity::directory::user(&server.running.store, &username).await.unwrap();
        let path = format!("/v1.0/users/{}/revokeSignInSessions", user.id);
        let (status, body) = graph(server, &admin_graph, Method::POST, &path, None).await;
        assert_eq!((status, &body["value"]), (200, &json!(true)));
        assert_eq!(arm_get(server, &subscription, &access).await.0, 401);
        let tokens = password_tokens(server, "B", &username, &new_password).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        assert_eq!(arm_get(server, &subscription, &access).await.0, 200);

        admin(server, &["user", "delete", "--user", &username]);
        assert_eq!(arm_get(server, &subscription, &access).await.0, 401);
    }

    // Issue 19 (12): deleting a service principal or an app ends the app's access at once.
    async fn issue_19_deleting_an_apps_service_principal_or_registration_ends_its_access(server: &TestServer) {
        let app = server::demo::multi_tenant_app(&server.running.store, "lever-app").await.unwrap();
        let now = identity::Clock::now(&server::SystemClock);
        identity::directory::create_service_principal(&server.running.store, &app.tenant_b, &app.application.app_id, now).await.unwrap();
        let form = [
            ("client_id", app.application.app_id.as_str()),
            ("client_secret", app.secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com/.default"),
        ];
        let (status, body) = server.token(&app.tenant_b.id, &form).await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_owned();
        let tenants = "/tenants?api-version=2022-12-01";
        assert_eq!(arm_get(server, tenants, &access).await.0, 200);
        admin(server, &["sp", "delete", "--id", &app.application.app_id, "--tenant", &app.tenant_b.id]);
        assert_eq!(arm_get(server, tenants, &access).await.0, 401);
        let (status, body) = server.token(&app.tenant_b.id, &form).await;
        assert_eq!((status, body["error_codes"][0].as_u64()), (400, Some(700016)), "{body}");
        admin(server, &["app", "delete", "--app-id", &app.application.app_id]);
        let (status, _) = server.token(&app.tenant_a.id, &form).await;
        assert_eq!(status, 400);
    }
}

// Issue 19 (13): no framing, no caching of pages that carry codes, a CSP on the portal.
#[tokio::test]
async fn issue_19_sign_in_and_portal_pages_are_not_framed_cached_or_scripted() {
    let server = TestServer::start().await;
    let authorize = no_redirects(&server)
        .get(server.url("/contoso-b.example/oauth2/v2.0/authorize"))
        .query(&[
            ("client_id", AZ_CLI),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:51234"),
            ("scope", ARM_SCOPE),
            ("code_challenge", &challenge(VERIFIER)),
            ("response_mode", "form_post"),
        ])
        .send()
        .await
        .unwrap();
    let portal = no_redirects(&server).get(server.url("/portal")).send().await.unwrap();
    for (page, response) in [("sign-in page", &authorize), ("portal", &portal)] {
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{page}");
        assert_eq!(headers["cache-control"], "no-store", "{page}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"),
            "{page}: {policy}"
        );
    }
    // The form_post page carries the code: never cached, and it may post only to the app.
    let (username, password) = server.demo_user("B", "admin");
    let response = no_redirects(&server)
        .post(server.url("/contoso-b.example/oauth2/v2.0/authorize"))
        .form(&[
            ("client_id", AZ_CLI),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:51234"),
            ("scope", ARM_SCOPE),
            ("code_challenge", &challenge(VERIFIER)),
            ("response_mode", "form_post"),
            ("username", &username),
            ("password", &password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("form-action 'self' http://localhost:51234;"), "{policy}");
    assert!(hidden(&response.text().await.unwrap(), "code").is_some());
}

// Issue 19 (14): a CR/LF in a portal `return=` or an authorize `redirect_uri` gave a 500.
#[tokio::test]
async fn issue_19_line_breaks_in_return_and_redirect_uri_are_a_400() {
    let server = TestServer::start().await;
    let response = no_redirects(&server)
        .get(server.url("/portal/signin"))
        .query(&[
            ("tenant", "contoso-a.example"),
            ("return", "/portal/t/x\r\nLocation: https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    for target in ["https://evil.example/portal/", "//evil.example/portal/", "/elsewhere"] {
        let response = no_redirects(&server)
            .get(server.url("/portal/signin"))
            .query(&[("tenant", "contoso-a.example"), ("return", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{target}");
    }
    let response = no_redirects(&server)
        .get(server.url("/contoso-b.example/oauth2/v2.0/authorize"))
        .query(&[
            ("client_id", AZ_CLI),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:1/\r\nSet-Cookie: x=1"),
            ("scope", ARM_SCOPE),
            ("code_challenge", &challenge(VERIFIER)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

// Issue 19 (17): the user realm told existing users from unknown ones.
#[tokio::test]
async fn issue_19_the_user_realm_answers_by_domain_only() {
    let server = TestServer::start().await;
    let (username, _) = server.demo_user("A", "admin");
    let (_, known) =
        server.get_json(&format!("/common/userrealm/{username}?api-version=1.0")).await;
    let (_, unknown) =
        server.get_json("/common/userrealm/nobody-here@contoso-a.example?api-version=1.0").await;
    assert_eq!(
        known,
        json!({"ver": "1.0", "account_type": "Managed", "domain_name": "contoso-a.example", "cloud_instance_name": known["cloud_instance_name"], "cloud_audience_urn": "urn:federation:MicrosoftOnline"})
    );
    assert_eq!(known["account_type"], unknown["account_type"]);
    let (_, elsewhere) =
        server.get_json("/common/userrealm/someone@unknown.example?api-version=1.0").await;
    assert_eq!(elsewhere["account_type"], "Unknown");
}

// Issue 19 (18): `/devicecode` had no rate limit, and expired device codes stayed forever.
#[tokio::test]
async fn issue_19_device_codes_are_rate_limited_and_expired_ones_deleted() {
    let server = TestServer::start().await;
    let store = server.running.store.clone();
    let expired = store::identity::DeviceCode {
        device_code_sha256: vec![7; 32],
        user_code: "EXPIRED1".to_owned(),
        client_id: AZ_CLI.to_owned(),
        tenant_segment: "organizations".to_owned(),
        scope: ARM_SCOPE.to_owned(),
        user_id: None,
        expires_at: store::Timestamp(1),
    };
    store.write(move |tx| tx.device_code_insert(&expired)).await.unwrap();
    let ask = || async {
        let response = server
            .client
            .post(server.url("/organizations/oauth2/v2.0/devicecode"))
            .form(&[("client_id", AZ_CLI), ("scope", ARM_SCOPE)])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.headers().get("retry-after").is_some())
    };
    for _ in 0..identity::limiter::MAX_DEVICE_CODES_PER_MINUTE {
        assert_eq!(ask().await, (200, false));
    }
    assert_eq!(ask().await, (429, true));
    let gone = store.read(|tx| tx.device_code_by_user_code("EXPIRED1")).await.unwrap();
    assert!(gone.is_none(), "the expired device code was deleted");
}

// Issue 19 (19): a second `x-ms-authorization-auxiliary` header was ignored, so an invalid
// token in it was never refused.
#[tokio::test]
async fn issue_19_a_second_auxiliary_header_is_a_400() {
    let server = TestServer::start().await;
    let tokens = demo_tokens(&server, "B", "admin").await;
    let access = tokens["access_token"].as_str().unwrap();
    let vnet = format!("{}?api-version=2024-05-01", server.demo("B", "vnet_id"));
    let body = json!({"location": "centralus", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}});
    let mut request = server.client.put(server.url(&vnet)).bearer_auth(access).json(&body);
    request = request.header("x-ms-authorization-auxiliary", format!("Bearer {access}"));
    request = request.header("x-ms-authorization-auxiliary", "Bearer not-a-token");
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "InvalidAuxiliaryTokens");
}

// Issue 19 (15): VNet and subnet names, locations and `networkManagerScopes` were not checked.
#[tokio::test]
async fn issue_19_arm_refuses_bad_names_locations_and_scopes_naming_the_field() {
    let server = TestServer::start().await;
    let tokens = demo_tokens(&server, "B", "admin").await;
    let access = tokens["access_token"].as_str().unwrap();
    let group = format!(
        "/subscriptions/{}/resourceGroups/rg-b/providers/Microsoft.Network",
        server.demo("B", "subscription_id")
    );
    let space = json!({"addressPrefixes": ["10.20.0.0/16"]});
    // (A name of `..` never reaches a server: URL parsers remove it from the path.)
    for name in [".x", "a%22b", "a'b", "%00", "%3Cscript%3E", "-lead", "trail.", &"x".repeat(65)] {
        let path = format!("{group}/virtualNetworks/{name}?api-version=2024-05-01");
        let body = json!({"location": "westus", "properties": {"addressSpace": space}});
        let (status, answer) =
            arm_call(&server, Method::PUT, &path, access, Some(&body), &[]).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("InvalidResourceName")),
            "{name}: {answer}"
        );
    }
    let path = format!("{group}/virtualNetworks/good?api-version=2024-05-01");
    for (location, code) in [
        ("", "LocationRequired"),
        ("mars", "InvalidLocation"),
        ("westus<script>", "InvalidLocation"),
    ] {
        let body = json!({"location": location, "properties": {"addressSpace": space}});
        let (status, answer) =
            arm_call(&server, Method::PUT, &path, access, Some(&body), &[]).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{location:?}: {answer}"
        );
    }
    let body = json!({"location": "West US", "properties": {"addressSpace": space, "subnets": [{"name": "<script>", "properties": {"addressPrefix": "10.20.0.0/24"}}]}});
    let (status, answer) = arm_call(&server, Method::PUT, &path, access, Some(&body), &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str(), answer["error"]["target"].as_str()),
        (400, Some("InvalidResourceName"), Some("properties.subnets[0].name")),
        "{answer}"
    );
    let body = json!({"location": "West US", "properties": {"addressSpace": space}});
    let (status, answer) = arm_call(&server, Method::PUT, &path, access, Some(&body), &[]).await;
    assert_eq!((status, answer["location"].as_str()), (201, Some("westus")), "{answer}");
    let subnet = format!("{group}/virtualNetworks/good/subnets/a..b%22?api-version=2024-05-01");
    let (status, answer) = arm_call(
        &server,
        Method::PUT,
        &subnet,
        access,
        Some(&json!({"properties": {"addressPrefix": "10.20.1.0/24"}})),
        &[],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("InvalidResourceName")),
        "{answer}"
    );
    // A network manager's scopes of the wrong type are named.
    let manager = format!("{group}/networkManagers/nm-bad?api-version=2024-05-01");
    for (scopes, target) in [
        (json!("all"), "properties.networkManagerScopes"),
        (json!({"subscriptions": "x"}), "properties.networkManagerScopes.subscriptions"),
    ] {
        let body = json!({"location": "westus", "properties": {"networkManagerScopes": scopes}});
        let (status, answer) =
            arm_call(&server, Method::PUT, &manager, access, Some(&body), &[]).await;
        assert_eq!((status, answer["error"]["target"].as_str()), (400, Some(target)), "{answer}");
    }
}

// Issue 19 (16): the static CIDR DELETE ignored If-Match.
#[tokio::test]
async fn issue_19_deletes_honour_their_preconditions() {
    let server = TestServer::start().await;
    let tokens = demo_tokens(&server, "A", "admin").await;
    let access = tokens["access_token"].as_str().unwrap();
    let cidr =
        format!("{}/staticCidrs/reserved?api-version=2024-05-01", server.demo("A", "pool_id"));
    let body = json!({"properties": {"addressPrefixes": ["10.200.0.0/24"]}});
    assert_eq!(arm_call(&server, Method::PUT, &cidr, access, Some(&body), &[]).await.0, 200);
    let (status, answer) =
        arm_call(&server, Method::DELETE, &cidr, access, None, &[("if-match", "\"not-the-etag\"")])
            .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (412, Some("PreconditionFailed")),
        "{answer}"
    );
    assert_eq!(
        arm_call(&server, Method::GET, &cidr, access, None, &[]).await.0,
        200,
        "still there"
    );
    assert_eq!(
        arm_call(&server, Method::DELETE, &cidr, access, None, &[("if-match", "*")]).await.0,
        204
    );
    let (status, _) =
        arm_call(&server, Method::DELETE, &cidr, access, None, &[("if-match", "*")]).await;
    assert_eq!(status, 412, "If-Match: * on a missing static CIDR");
    // A resource group's DELETE too.
    let group = format!(
        "/subscriptions/{}/resourcegroups/rg-temp?api-version=2021-04-01",
        server.demo("A", "subscription_id")
    );
    assert_eq!(
        arm_call(&server, Method::PUT, &group, access, Some(&json!({"location": "westus"})), &[])
            .await
            .0,
        201
    );
    let (status, _) =
        arm_call(&server, Method::DELETE, &group, access, None, &[("if-match", "\"nope\"")]).await;
    assert_eq!(status, 412);
    assert_eq!(
        arm_call(&server, Method::GET, &group, access, None, &[]).await.0,
        200,
        "still there"
    );
}

/// The portal session cookie a response sets, if any.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("crosspool_portal="))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

/// Signs in to the portal in `tenant` as a browser would, starting with `planted` as the
/// session cookie if given; returns the cookie the portal sets at the end.
async fn portal_sign_in(
    server: &TestServer,
    tenant: &str,
    role: &str,
    planted: Option<&str>,
) -> String {
    let client = no_redirects(server);
    let mut request =
        client.get(server.url(&format!("/portal/signin?tenant={}", server.demo(tenant, "domain"))));
    if let Some(planted) = planted {
        request = request.header("cookie", format!("crosspool_portal={planted}"));
    }
    let response = request.send().await.unwrap();
    let cookie = session_cookie(&response).or(planted.map(str::to_owned)).unwrap();
    let authorize = url_of(&server.url(response.headers()["location"].to_str().unwrap()));
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let (username, password) = server.demo_user(tenant, role);
    form.extend([("username".to_owned(), username), ("password".to_owned(), password)]);
    let response = client.post(authorize.as_str()).form(&form).send().await.unwrap();
    let callback = response.headers()["location"].to_str().unwrap().to_owned();
    let response = client
        .get(&callback)
        .header("cookie", format!("crosspool_portal={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    session_cookie(&response).expect("a new session id at sign-in")
}

// Issue 19 (10): a session id planted before sign-in was kept after it.
#[tokio::test]
async fn issue_19_the_portal_issues_a_new_session_id_at_sign_in() {
    let server = TestServer::start().await;
    // The attacker's session, planted in the victim's browser.
    let attacker = session_cookie(
        &no_redirects(&server)
            .get(server.url("/portal/signin?tenant=contoso-a.example"))
            .send()
            .await
            .unwrap(),
    )
    .unwrap();
    let victim = portal_sign_in(&server, "A", "admin", Some(&attacker)).await;
    assert_ne!(victim, attacker);
    let home = server.url(&format!("/portal/t/{}", server.demo("A", "tenant_id")));
    let as_attacker = no_redirects(&server)
        .get(&home)
        .header("cookie", format!("crosspool_portal={attacker}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_attacker.status().as_u16(), 303, "the planted id signs nobody in");
    let as_victim = no_redirects(&server)
        .get(&home)
        .header("cookie", format!("crosspool_portal={victim}"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_victim.status().as_u16(), 200);
}

// Issue 19 (9): no CSRF token and no Origin check; a cross-origin form POST created a role
// assignment.
#[tokio::test]
async fn issue_19_portal_forms_need_the_sessions_token_and_this_origin() {
    let server = TestServer::start().await;
    let cookie = portal_sign_in(&server, "A", "admin", None).await;
    let tenant = server.demo("A", "tenant_id");
    let pool = server.demo("A", "pool_id");
    let page = no_redirects(&server)
        .get(server.url(&format!("/portal/t/{tenant}/pool?id={}&tab=iam", pool)))
        .header("cookie", format!("crosspool_portal={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = hidden(&page, "csrf").expect("the IAM form carries the form token");
    let (contributor, _) = server.demo_user("A", "network_contributor");
    let contributor = identity::directory::user(&server.running.store, &contributor).await.unwrap();
    let assignments = || async {
        let pool = pool.clone();
        server
            .running
            .store
            .read(move |tx| tx.role_assignments_at_scope(&pool))
            .await
            .unwrap()
            .len()
    };
    let before = assignments().await;
    let post = |csrf: Option<&str>, origin: &str, site: &str| {
        let mut form =
            vec![("role", arm::rbac::READER.id.to_owned()), ("principal", contributor.id.clone())];
        form.extend(csrf.map(|csrf| ("csrf", csrf.to_owned())));
        no_redirects(&server)
            .post(server.url(&format!("/portal/t/{tenant}/pool/iam?id={pool}")))
            .header("cookie", format!("crosspool_portal={cookie}"))
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .form(&form)
            .send()
    };
    let origin = server.running.origin.clone();
    for (csrf, from, site) in [
        (None, origin.as_str(), "same-origin"),
        (Some("forged"), origin.as_str(), "same-origin"),
        (Some(token.as_str()), "https://evil.example", "cross-site"),
        (Some(token.as_str()), origin.as_str(), "cross-site"),
    ] {
        let response = post(csrf, from, site).await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{csrf:?} from {from} ({site})");
        assert_eq!(assignments().await, before, "nothing was assigned");
    }
    let response = post(Some(&token), &origin, "same-origin").await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(assignments().await, before + 1, "the portal's own form works");
}

// Issue 20: the portal kept its own copy of the role names, which had drifted (User Access
// Administrator showed as a raw GUID); they come from the API now.
#[tokio::test]
async fn issue_20_the_iam_page_names_roles_as_the_api_defines_them() {
    let server = TestServer::start().await;
    let pool = server.demo("A", "pool_id");
    let (contributor, _) = server.demo_user("A", "network_contributor");
    let contributor = identity::directory::user(&server.running.store, &contributor).await.unwrap();
    let new = arm::rbac::NewAssignment {
        name: None,
        scope: &pool,
        role: &arm::rbac::USER_ACCESS_ADMINISTRATOR,
        principal_id: &contributor.id,
        principal_type: "User",
        created_by: None,
    };
    arm::rbac::assign(&server.running.store, new, identity::Clock::now(&server::SystemClock))
        .await
        .unwrap();
    let cookie = portal_sign_in(&server, "A", "admin", None).await;
    let page =
        no_redirects(&server)
            .get(server.url(&format!(
                "/portal/t/{}/pool?id={pool}&tab=iam",
                server.demo("A", "tenant_id")
            )))
            .header("cookie", format!("crosspool_portal={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let table = &page[page.find("id=\"role-assignments\"").unwrap()..];
    assert!(table.contains("<td>User Access Administrator</td>"), "{table}");
    assert!(!table.contains(&format!("<td>{}</td>", arm::rbac::USER_ACCESS_ADMINISTRATOR.id)));
    let options = &page[page.find("id=\"iam-role\"").unwrap()..];
    assert!(
        options.contains(&format!(
            "<option value=\"{}\">IPAM Pool User</option>",
            arm::rbac::IPAM_POOL_USER.id
        )),
        "{options}"
    );
}
