//! The database goes away (issue 21), on PostgreSQL clusters the tests run themselves: while it
//! is down requests answer at once with ARM's 503 and `Retry-After` and `/readyz` says so; when
//! it is back (restarted, or a synchronous standby promoted in its place) the server reconnects
//! by itself; every acknowledged allocation survives and none is doubled. The recovery times
//! are printed for docs/operations.md.

use std::time::Duration;

use store::StoreConfig;
use tokio::time::Instant;

use crate::burst::{Burst, Seen, check_allocations, seeds};
use crate::pg_cluster::{Binaries, Cluster};
use crate::support::TestServer;

fn postgres(url: String) -> StoreConfig {
    StoreConfig::Postgres { url, schema: None, max_connections: 8 }
}

async fn readyz(server: &TestServer) -> u16 {
    server.client.get(server.url("/readyz")).send().await.unwrap().status().as_u16()
}

/// What the burst saw of an outage: only acknowledgements and 503s with `Retry-After`, every
/// request answered (none hung or was cut off); the slowest 503 and the time from `back` to
/// the first acknowledgement after it.
fn outage_report(seen: &[Seen], back: Instant) -> (Duration, Duration) {
    for one in seen {
        assert!(one.error.is_none(), "{}: {:?}", one.vnet, one.error);
        match one.status {
            Some(200 | 201) => {}
            Some(503) => assert!(one.retry_after, "{}: a 503 without Retry-After", one.vnet),
            other => panic!("{}: answered {other:?} during the outage", one.vnet),
        }
    }
    let slowest_503 = seen.iter().filter(|one| one.status == Some(503)).map(|one| one.took).max();
    let first_after = seen
        .iter()
        .filter(|one| one.acknowledged() && one.at >= back)
        .map(|one| one.at + one.took)
        .min()
        .expect("acknowledgements after the database came back");
    (slowest_503.expect("503s while the database was down"), first_after - back)
}

// Stop the database with `-m immediate` under load, start it again: 503s meanwhile, then the
// server carries on without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_under_load_costs_503s_and_no_acknowledged_allocation() {
    let Some(binaries) = tokio::task::spawn_blocking(Binaries::find).await.unwrap() else { return };
    let cluster =
        tokio::task::spawn_blocking(move || Cluster::primary(&binaries, false)).await.unwrap();
    let server = TestServer::start_with(postgres(cluster.url())).await;
    let seeds = seeds(&server).await;
    let mut burst = Burst::start(&server, &seeds, "restart", 4);
    burst
        .until("20 acknowledgements", |seen| seen.iter().filter(|s| s.acknowledged()).count() >= 20)
        .await;

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_immediately();
        cluster
    })
    .await
    .unwrap();
    let stopped = Instant::now();
    burst
        .until("20 503s", |seen| {
            seen.iter().filter(|s| s.at >= stopped && s.status == Some(503)).count() >= 20
        })
        .await;
    assert_eq!(readyz(&server).await, 503, "/readyz while the database is down");
    // The identity platform answers so too: a sign-in can't be checked without the directory.
    let (username, password) = server.demo_user("A", "admin");
    let form = [
        ("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
        ("grant_type", "password"),
        ("username", username.as_str()),
        ("password", password.as_str()),
        ("scope", "https://management.azure.com//.default"),
    ];
    let url = server.url(&format!("/{}/oauth2/v2.0/token", server.demo("A", "domain")));
    let refused = server.client.post(url).form(&form).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start();
        cluster
    })
    .await
    .unwrap();
    let back = Instant::now();
    burst
        .until("20 acknowledgements after the restart", |seen| {
            seen.iter().filter(|s| s.acknowledged() && s.at >= back).count() >= 20
        })
        .await;
    assert_eq!(readyz(&server).await, 200, "/readyz once the database is back");
    let seen = burst.stop().await;
    let (slowest_503, recovery) = outage_report(&seen, back);
    eprintln!(
        "database restart: slowest 503 {slowest_503:?}; first acknowledgement {recovery:?} after the database accepted connections again; {} requests, {} acknowledged",
        seen.len(),
        seen.iter().filter(|s| s.acknowledged()).count()
    );
    check_allocations(&server, &seeds, &seen).await;
    drop(cluster);
}

// A primary with a synchronous streaming standby; the URL names both with
// `target_session_attrs=read-write`. Kill the primary under load and promote the standby: the
// server finds the new primary by itself, and every acknowledged allocation is on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_standby_takes_over_with_every_acknowledged_allocation() {
    let Some(binaries) = tokio::task::spawn_blocking(Binaries::find).await.unwrap() else { return };
    let (primary, standby) = tokio::task::spawn_blocking(move || {
        let primary = Cluster::primary(&binaries, true);
        let standby = Cluster::standby_of(&primary);
        (primary, standby)
    })
    .await
    .unwrap();
    let url = format!(
        "postgres://crosspool@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let server = TestServer::start_with(postgres(url)).await;
    let seeds = seeds(&server).await;
    let mut burst = Burst::start(&server, &seeds, "failover", 4);
    burst
        .until("20 acknowledgements", |seen| seen.iter().filter(|s| s.acknowledged()).count() >= 20)
        .await;

    let primary = tokio::task::spawn_blocking(move || {
        primary.stop_immediately();
        primary
    })
    .await
    .unwrap();
    let killed = Instant::now();
    burst
        .until("20 503s", |seen| {
            seen.iter().filter(|s| s.at >= killed && s.status == Some(503)).count() >= 20
        })
        .await;
    assert_eq!(readyz(&server).await, 503, "/readyz while no primary is up");

    let standby = tokio::task::spawn_blocking(move || {
        standby.promote();
        standby
    })
    .await
    .unwrap();
    let promoted = Instant::now();
    burst
        .until("20 acknowledgements after the promotion", |seen| {
            seen.iter().filter(|s| s.acknowledged() && s.at >= promoted).count() >= 20
        })
        .await;
    let seen = burst.stop().await;
    let (slowest_503, recovery) = outage_report(&seen, promoted);
    eprintln!(
        "failover: slowest 503 {slowest_503:?}; first acknowledgement {recovery:?} after the standby's promotion; {} requests, {} acknowledged",
        seen.len(),
        seen.iter().filter(|s| s.acknowledged()).count()
    );
    check_allocations(&server, &seeds, &seen).await;
    drop((primary, standby));
}
