//! azure-identity's `ClientSecretCredential` and `UsernamePasswordCredential`, pointed at
//! crosspool as a custom authority, get tokens whose claims are what crosspool issued.

use std::process::Command;

use serde_json::{Value, json};
use server::Running;
use store::Timestamp;

use crate::support::{
    PORT_443, REALM_PORT, can_serve_port_443, claims, demo, demo_user, multi_tenant_app,
    start_server,
};

/// Runs the token script with `config`; returns its JSON output and whether it succeeded.
fn get_token(running: &Running, config: Value) -> (bool, Value) {
    let python = crosspool_e2e::python().unwrap();
    let script = crosspool_e2e::e2e_dir().join("python/azure_identity_token.py");
    let output = Command::new(python)
        .arg(script)
        .arg(config.to_string())
        .env("REQUESTS_CA_BUNDLE", &running.ca_cert)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last_line = stdout.lines().last().unwrap_or_default();
    let parsed = serde_json::from_str(last_line).unwrap_or_else(|_| {
        panic!("no JSON from the script: {stdout} {}", String::from_utf8_lossy(&output.stderr))
    });
    (output.status.success(), parsed)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_credential_gets_an_app_token_in_each_tenant_with_a_service_principal() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_server(&dir, Vec::new()).await;
    let store = &running.store;
    let now = Timestamp(0);
    let (tenant_a, tenant_b, application, secret) = multi_tenant_app(&running).await;
    let (service_principal_b, _) =
        identity::directory::create_service_principal(store, &tenant_b, &application.app_id, now)
            .await
            .unwrap();
    let config = |tenant_id: &str| {
        json!({
            "kind": "client_secret", "authority": running.origin, "tenant_id": tenant_id,
            "client_id": application.app_id, "client_secret": secret, "scope": "https://management.azure.com/.default",
        })
    };
    let (ok, output) = tokio::task::block_in_place(|| get_token(&running, config(&tenant_b.id)));
    assert!(ok, "{output}");
    let token = claims(output["token"].as_str().unwrap());
    assert_eq!(
        (token["tid"].as_str(), token["oid"].as_str()),
        (Some(tenant_b.id.as_str()), Some(service_principal_b.id.as_str()))
    );
    assert_eq!(
        (token["aud"].as_str(), token["idtyp"].as_str()),
        (Some("https://management.azure.com"), Some("app"))
    );
    // Tenant A has no service principal for the app yet: the platform's error reaches the SDK.
    let (ok, output) = tokio::task::block_in_place(|| get_token(&running, config(&tenant_a.id)));
    assert!(!ok);
    assert!(output["error"].as_str().unwrap().contains("AADSTS700016"), "{output}");
    let (service_principal_a, _) =
        identity::directory::create_service_principal(store, &tenant_a, &application.app_id, now)
            .await
            .unwrap();
    let (ok, output) = tokio::task::block_in_place(|| get_token(&running, config(&tenant_a.id)));
    assert!(ok, "{output}");
    assert_eq!(claims(output["token"].as_str().unwrap())["oid"], service_principal_a.id.as_str());
    running.shutdown().await;
}

/// The password sign-in also needs the user realm on port 443 (see `support`).
#[tokio::test(flavor = "multi_thread")]
async fn username_password_credential_signs_a_user_in() {
    let _port_443 = PORT_443.lock().await;
    if !can_serve_port_443() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = start_server(&dir, vec![REALM_PORT.parse().unwrap()]).await;
    let (username, password) = demo_user(&running, "B", "admin");
    let config = json!({
        "kind": "username_password", "authority": running.origin, "tenant_id": demo(&running, "B", "tenant_id"),
        "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "username": username, "password": password,
        "scope": "https://management.azure.com/.default",
    });
    let (ok, output) = tokio::task::block_in_place(|| get_token(&running, config.clone()));
    assert!(ok, "{output}");
    let token = claims(output["token"].as_str().unwrap());
    assert_eq!(
        (token["upn"].as_str(), token["idtyp"].as_str()),
        (Some(username.as_str()), Some("user"))
    );
    let mut wrong = config;
    wrong["password"] = json!("wrong-password");
    let (ok, output) = tokio::task::block_in_place(|| get_token(&running, wrong));
    assert!(!ok);
    assert!(output["error"].as_str().unwrap().contains("AADSTS50126"), "{output}");
    running.shutdown().await;
}
