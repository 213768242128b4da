//! A real server on a free loopback port with a fresh data dir and the demo world, and an HTTPS
//! client that trusts its CA.

use std::sync::Arc;

use serde_json::Value;
use server::{Running, ServeConfig, SystemClock};

pub struct TestServer {
    pub running: Running,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            also_listen: Vec::new(),
            data_dir: dir.path().to_owned(),
            database: None,
            demo: true,
            clock: Arc::new(SystemClock),
        };
        let running = server::start(config).await.unwrap();
        let ca = std::fs::read(&running.ca_cert).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        TestServer { running, client, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.origin)
    }

    /// A demo field, e.g. `demo("B", "tenant_id")`.
    pub fn demo(&self, tenant: &str, field: &str) -> String {
        self.running.demo.as_ref().unwrap()["tenants"][tenant][field].as_str().unwrap().to_owned()
    }

    pub fn demo_user(&self, tenant: &str, role: &str) -> (String, String) {
        let user = &self.running.demo.as_ref().unwrap()["tenants"][tenant][role];
        (
            user["username"].as_str().unwrap().to_owned(),
            user["password"].as_str().unwrap().to_owned(),
        )
    }

    /// POSTs a form to a tenant's token endpoint; returns the status and JSON body.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .header("client-request-id", "0f6a7c8e-1111-4222-8333-944455556666")
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// The claims of a JWT, without checking it.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap(),
    )
    .unwrap()
}
