//! The seeds' cross-tenant VNet PUT under load: 16 and then 32 concurrent clients, each PUTting
//! its own VNets with an allocation from A's pool (B's token, A's token as auxiliary, tokens
//! reused), against one server on SQLite, one on PostgreSQL, and two servers sharing one
//! PostgreSQL database. Reports requests/s, p50 and p99 latency, and the store's raw commit
//! rate measured in the same run; afterwards checks that no two allocations overlap and none is
//! missing.
//!
//! Run with `cargo bench -p crosspool-server --bench vnet_put`. PostgreSQL comes from
//! `CROSSPOOL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); its runs
//! are skipped when it is unreachable. Prints a markdown table for docs/benchmarks.md.

// Reason: a benchmark measures wall-clock time and reports on stdout.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

/// The `crosspool` binary's allocator (src/main.rs), so that the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::{Running, ServeConfig};
use store::resource::{Precondition, ResourceWrite};
use store::{StoreConfig, Timestamp};

/// Each scenario runs with each of these numbers of concurrent clients.
const CLIENTS: [usize; 2] = [16, 32];
const DURATION: Duration = Duration::from_secs(5);

fn postgres_url() -> String {
    std::env::var("CROSSPOOL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// One key-encryption key for every server of a run: replicas of one store share it.
fn kek() -> server::files::KekSource {
    static KEK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    server::files::KekSource::Text(KEK.get_or_init(identity::kek::Kek::generate_text).clone())
}

async fn start(dir: &std::path::Path, database: Option<StoreConfig>, demo: bool) -> Running {
    let config = ServeConfig { database, demo, kek: kek(), ..ServeConfig::local(dir.to_owned()) };
    server::start(config).await.unwrap()
}

/// The multi-tenant app of the seeds with its roles; returns (app id, secret).
async fn app(running: &Running) -> (String, String) {
    let store = &running.store;
    let now = Timestamp(0);
    let server::demo::DemoApp { tenant_a, tenant_b, application, secret } =
        server::demo::multi_tenant_app(store, "bench-app").await.unwrap();
    let demo = running.demo.as_ref().unwrap();
    let pool = demo["tenants"]["A"]["pool_id"].as_str().unwrap().to_owned();
    let group_b = format!(
        "/subscriptions/{}/resourceGroups/rg-b",
        demo["tenants"]["B"]["subscription_id"].as_str().unwrap()
    );
    for (tenant, scope, role) in [
        (&tenant_a, pool, &arm::rbac::IPAM_POOL_USER),
        (&tenant_b, group_b, &arm::rbac::NETWORK_CONTRIBUTOR),
    ] {
        let (principal, _) =
            identity::directory::create_service_principal(store, tenant, &application.app_id, now)
                .await
                .unwrap();
        let new = arm::rbac::NewAssignment {
            name: None,
            scope: &scope,
            role,
            principal_id: &principal.id,
            principal_type: "ServicePrincipal",
            created_by: None,
        };
        arm::rbac::assign(store, new, now).await.unwrap();
    }
    (application.app_id, secret)
}

async fn token(
    client: &reqwest::Client,
    origin: &str,
    tenant: &str,
    app: &(String, String),
) -> String {
    let form = [
        ("client_id", app.0.as_str()),
        ("client_secret", app.1.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", "https://management.azure.com/.default"),
    ];
    let body: Value = client
        .post(format!("{origin}/{tenant}/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// One target server: its origin and the app's tokens for B (primary) and A (auxiliary).
struct Target {
    origin: String,
    token_b: String,
    token_a: String,
}

/// Raw commits per second of the store: small document writes from 32 writers.
async fn commit_rate(running: &Running) -> f64 {
    let store = running.store.clone();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < Duration::from_secs(2) {
                let id = format!("/bench/commit/{writer}/{done}");
                store
                    .write(move |tx| {
                        let write = ResourceWrite {
                            id: &id,
                            resource_type: "bench/commit",
                            tenant_id: "bench",
                            body: "{}",
                        };
                        tx.resource_put(write, &Precondition::None, Timestamp(0)).map(|_| ())
                    })
                    .await
                    .unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn run(
    label: &str,
    n_clients: usize,
    client: &reqwest::Client,
    targets: &[Target],
    pool: &str,
    subscription_b: &str,
    commits: f64,
) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for at in 0..n_clients {
        let target = &targets[at % targets.len()];
        let (client, origin, token_b, token_a) =
            (client.clone(), target.origin.clone(), target.token_b.clone(), target.token_a.clone());
        let (pool, subscription_b, label) =
            // A VNet name holds letters, digits, '-', '_' and '.' only.
            (
                pool.to_owned(),
                subscription_b.to_owned(),
                label.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
            );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut prefixes = Vec::new();
            let body = json!({"location": "centralus", "properties": {"addressSpace": {"ipamPoolPrefixAllocations": [{"numberOfIpAddresses": "16", "pool": {"id": pool}}]}}});
            let mut n = 0;
            while start.elapsed() < DURATION {
                let url = format!("{origin}/subscriptions/{subscription_b}/resourceGroups/rg-b/providers/Microsoft.Network/virtualNetworks/{label}-{n_clients}-{at}-{n}?api-version=2022-07-01");
                let sent = Instant::now();
                let response = client.put(url).bearer_auth(&token_b).header("x-ms-authorization-auxiliary", format!("Bearer {token_a}")).json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap();
                latencies.push(sent.elapsed());
                assert_eq!(status, 201, "{answer}");
                for prefix in answer["properties"]["addressSpace"]["addressPrefixes"].as_array().unwrap() {
                    prefixes.push(ipam::prefix::Prefix::parse(prefix.as_str().unwrap()).unwrap());
                }
                n += 1;
            }
            (latencies, prefixes)
        }));
    }
    let (mut latencies, mut prefixes) = (Vec::new(), Vec::new());
    for task in tasks {
        let (l, p) = task.await.unwrap();
        latencies.extend(l);
        prefixes.extend(p);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let quantile = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    prefixes.sort();
    let overlaps = prefixes.windows(2).filter(|pair| pair[0].overlaps(&pair[1])).count();
    println!(
        "| {label} | {n_clients} | {} | {:.0} | {:.1} | {:.1} | {commits:.0} | {overlaps} |",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        quantile(0.5),
        quantile(0.99)
    );
    assert_eq!(overlaps, 0, "allocations overlap");
    assert_eq!(prefixes.len(), latencies.len(), "every VNet holds one /28");
}

async fn scenario(label: &str, databases: Vec<Option<StoreConfig>>) {
    let dirs: Vec<tempfile::TempDir> =
        databases.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    for (at, (dir, database)) in dirs.iter().zip(databases).enumerate() {
        servers.push(start(dir.path(), database, at == 0).await);
    }
    let demo = servers[0].demo.clone().unwrap();
    let app = app(&servers[0]).await;
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(32);
    for server in &servers {
        let ca = std::fs::read(&server.ca_cert).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    }
    let client = builder.build().unwrap();
    let (tenant_a, tenant_b) = (
        demo["tenants"]["A"]["tenant_id"].as_str().unwrap(),
        demo["tenants"]["B"]["tenant_id"].as_str().unwrap(),
    );
    let mut targets = Vec::new();
    for server in &servers {
        targets.push(Target {
            origin: server.origin.clone(),
            token_b: token(&client, &server.origin, tenant_b, &app).await,
            token_a: token(&client, &server.origin, tenant_a, &app).await,
        });
    }
    let commits = commit_rate(&servers[0]).await;
    let pool = demo["tenants"]["A"]["pool_id"].as_str().unwrap();
    for n_clients in CLIENTS {
        let subscription_b = demo["tenants"]["B"]["subscription_id"].as_str().unwrap();
        run(label, n_clients, &client, &targets, pool, subscription_b, commits).await;
    }
    for server in servers {
        server.shutdown().await;
    }
}

fn postgres_schema(name: &str) -> Option<StoreConfig> {
    let url = postgres_url();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).ok()?;
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).ok()?;
    Some(StoreConfig::Postgres { url, schema: Some(name.to_owned()), max_connections: 16 })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "| store | clients | requests | requests/s | p50 ms | p99 ms | raw commits/s | overlaps |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    // `CROSSPOOL_BENCH_ONLY=sqlite` (or `postgres`) runs one backend's scenarios, for profiling.
    let only = std::env::var("CROSSPOOL_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        runtime.block_on(scenario("SQLite", vec![None]));
    }
    if only == "sqlite" {
        return;
    }
    let pid = std::process::id();
    let one = std::thread::spawn(move || postgres_schema(&format!("crosspool_bench_{pid}_1")))
        .join()
        .unwrap();
    let two = std::thread::spawn(move || postgres_schema(&format!("crosspool_bench_{pid}_2")))
        .join()
        .unwrap();
    match (one, two) {
        (Some(one), Some(two)) => {
            runtime.block_on(scenario("PostgreSQL", vec![Some(one)]));
            runtime.block_on(scenario("PostgreSQL, 2 servers", vec![Some(two.clone()), Some(two)]));
            for n in 1..=2 {
                if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls)
                {
                    let _ = client.batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS crosspool_bench_{pid}_{n} CASCADE"
                    ));
                }
            }
        }
        _ => eprintln!("skipping PostgreSQL: not reachable at {}", postgres_url()),
    }
}
