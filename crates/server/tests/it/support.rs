//! A real server on a free loopback port with a fresh data dir and the demo world, and an HTTPS
//! client that trusts its CA.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use server::{Running, ServeConfig};
use store::StoreConfig;

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub running: Running,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The synchronous client runs its own runtime, so it must not run on the test's.
        if let Some(schema) = self.schema.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls)
                {
                    let _ =
                        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

/// The PostgreSQL the tests use: `CROSSPOOL_TEST_DATABASE_URL`, or the local one with trust auth.
pub fn postgres_url() -> String {
    std::env::var("CROSSPOOL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether PostgreSQL is reachable; `CROSSPOOL_REQUIRE_POSTGRES=1` makes its absence a failure,
/// otherwise the PostgreSQL case is skipped with a message.
pub fn postgres_available() -> bool {
    match postgres::Client::connect(&postgres_url(), postgres::NoTls) {
        Ok(_) => true,
        Err(error) => {
            if std::env::var("CROSSPOOL_REQUIRE_POSTGRES").is_ok_and(|value| value == "1") {
                panic!(
                    "CROSSPOOL_REQUIRE_POSTGRES=1 but PostgreSQL at {} is not reachable: {error}",
                    postgres_url()
                );
            }
            eprintln!(
                "skipping: PostgreSQL at {} is not reachable ({error}); set CROSSPOOL_TEST_DATABASE_URL",
                postgres_url()
            );
            false
        }
    }
}

impl TestServer {
    /// A server on SQLite.
    pub async fn start() -> TestServer {
        TestServer::start_on(Backend::Sqlite).await.unwrap()
    }

    /// A server on `backend` (each PostgreSQL server in a schema of its own), or `None` when
    /// PostgreSQL is not there and not required.
    pub async fn start_on(backend: Backend) -> Option<TestServer> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let (database, schema) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                if !std::thread::spawn(postgres_available).join().unwrap() {
                    return None;
                }
                let schema = format!(
                    "crosspool_server_test_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let config = StoreConfig::Postgres {
                    url: postgres_url(),
                    schema: Some(schema.clone()),
                    max_connections: 8,
                };
                (Some(config), Some(schema))
            }
        };
        Some(TestServer::start_in(dir, database, schema).await)
    }

    /// A server with the demo world on `database` (a PostgreSQL the test runs itself).
    pub async fn start_with(database: StoreConfig) -> TestServer {
        TestServer::start_in(tempfile::tempdir().unwrap(), Some(database), None).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        database: Option<StoreConfig>,
        schema: Option<String>,
    ) -> TestServer {
        let config =
            ServeConfig { database, demo: true, ..ServeConfig::local(dir.path().to_owned()) };
        let running = server::start(config).await.unwrap();
        let ca = std::fs::read(&running.ca_cert).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        TestServer { running, client, _dir: dir, schema }
    }

    /// The `--database` URL of the server's PostgreSQL schema, for `crosspool admin`; `None`
    /// on SQLite.
    pub fn database_url(&self) -> Option<String> {
        let schema = self.schema.as_ref()?;
        let url = postgres_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{separator}options=-c%20search_path%3D{schema}%2Cpublic"))
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The key-encryption key in the data directory, which seals the signing keys.
    pub fn kek(&self) -> identity::kek::Kek {
        server::files::load_kek(&server::files::KekSource::DataDir, self.data_dir()).unwrap()
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

/// Emits, for each `async fn name(server: &TestServer) { … }`, a module `name` with a `sqlite`
/// and a `postgres` test that run the body against a fresh demo server on that store.
macro_rules! both_backends {
    ($(async fn $name:ident($server:ident: &TestServer) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn body($server: &$crate::support::TestServer) $body

                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite() {
                    let server = $crate::support::TestServer::start_on($crate::support::Backend::Sqlite).await.unwrap();
                    body(&server).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn postgres() {
                    if let Some(server) = $crate::support::TestServer::start_on($crate::support::Backend::Postgres).await {
                        body(&server).await;
                    }
                }
            }
        )*
    };
}
pub(crate) use both_backends;
