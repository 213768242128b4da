//! The seeds' portal flow in a real browser: Playwright (`playwright-core` from npm) drives
//! Debian's Chromium (`/usr/bin/chromium`) through `portal/flow.mjs` against `serve --demo`.
//! Screenshots of each step land in `target/e2e-artifacts/portal/`. Without Chromium the test
//! says so and skips, unless `CROSSPOOL_REQUIRE_CHROMIUM=1` (CI) makes that a failure.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{demo, demo_user, start_server};

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_portal_flow_works_in_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CROSSPOOL_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "CROSSPOOL_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing (apt install chromium)"
        );
        eprintln!("skipping: {CHROMIUM} is missing (apt install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let running = start_server(&dir, Vec::new()).await;
    let scripts = crosspool_e2e::portal_scripts().unwrap();
    let artifacts = crosspool_e2e::e2e_dir().join("../../target/e2e-artifacts/portal");
    let _ = std::fs::remove_dir_all(&artifacts);
    let user = |tenant: &str, role: &str| {
        let (name, password) = demo_user(&running, tenant, role);
        json!([name, password])
    };
    let config = json!({
        "endpoint": running.origin,
        "artifacts": artifacts,
        "tenant_a": demo(&running, "A", "tenant_id"),
        "tenant_b": demo(&running, "B", "tenant_id"),
        "admin_a": user("A", "admin"),
        "contributor_b": user("B", "network_contributor"),
        "pool_id": demo(&running, "A", "pool_id"),
        "vnet_id": demo(&running, "B", "vnet_id"),
    });
    let output = tokio::task::block_in_place(|| {
        Command::new("node").arg(scripts.join("flow.mjs")).arg(config.to_string()).output().unwrap()
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!("no report from the flow: {stdout}{}", String::from_utf8_lossy(&output.stderr))
        });
    assert_eq!(report["ok"], true, "{report:#}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(report["screenshots"].as_u64().unwrap() >= 10);
    running.shutdown().await;
}
