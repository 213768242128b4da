//! Backup and restore (issue 21): `crosspool admin backup` during a burst of cross-tenant
//! allocations, `admin restore` into another data directory, and there every allocation
//! acknowledged before the backup began, `admin check` clean; the backup holds no usable secret
//! without the key-encryption key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use store::{Store, StoreConfig};
use tokio::time::Instant;

use crate::burst::{Burst, seeds};
use crate::support::TestServer;

fn crosspool(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_crosspool"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CROSSPOOL_DATABASE_URL")
        .env_remove("CROSSPOOL_KEK")
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn copy_private(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_during_a_burst_restores_every_allocation_acknowledged_before_it() {
    let server = TestServer::start().await;
    let seeds = seeds(&server).await;
    let mut burst = Burst::start(&server, &seeds, "backup", 4);
    burst
        .until("30 acknowledgements", |seen| seen.iter().filter(|s| s.acknowledged()).count() >= 30)
        .await;

    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("crosspool.backup");
    let began = Instant::now();
    let (data_dir, target) = (server.data_dir().to_owned(), file.clone());
    let backup = tokio::task::spawn_blocking(move || {
        crosspool(&data_dir, &["admin", "backup", "--to", target.to_str().unwrap()])
    })
    .await
    .unwrap();
    let summary = json_of(&backup);
    assert_eq!(summary["schemaVersion"], Store::schema_version_supported());
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // The burst went on during the backup and after it.
    let ended = Instant::now();
    burst
        .until("20 acknowledgements after the backup", |seen| {
            seen.iter().filter(|s| s.acknowledged() && s.at >= ended).count() >= 20
        })
        .await;
    let seen = burst.stop().await;
    let before: Vec<_> =
        seen.iter().filter(|s| s.acknowledged() && s.at + s.took <= began).collect();
    assert!(before.len() >= 30);

    // A backup is written to a new file only.
    let again = crosspool(server.data_dir(), &["admin", "backup", "--to", file.to_str().unwrap()]);
    assert!(!again.status.success());

    // Restored beside the key-encryption key of the server it came from.
    let restored = scratch.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    copy_private(&server.data_dir().join("kek"), &restored.join("kek"));
    let summary =
        json_of(&crosspool(&restored, &["admin", "restore", "--from", file.to_str().unwrap()]));
    assert_eq!(summary["audit"], "clean", "{summary}");
    assert_eq!(summary["keys"]["opened"], true, "{summary}");
    let check = crosspool(&restored, &["admin", "check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("overlapping allocation blocks: 0"));
    // Only into a data directory without a store.
    let twice = crosspool(&restored, &["admin", "restore", "--from", file.to_str().unwrap()]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already holds a store"));

    let store = Store::open(&StoreConfig::sqlite(&restored)).unwrap();
    for one in &before {
        let vnet = one.vnet.clone();
        let (document, allocations) = store
            .read_blocking(move |tx| {
                Ok::<_, store::error::StoreError>((
                    tx.resource_get(&vnet)?,
                    tx.allocations_of_owner(&vnet)?,
                ))
            })
            .unwrap();
        let body: Value =
            serde_json::from_str(&document.expect("the VNet is in the backup").body).unwrap();
        assert_eq!(
            body["properties"]["addressSpace"]["addressPrefixes"],
            serde_json::json!(one.prefixes),
            "{}",
            one.vnet
        );
        let blocks: Vec<String> =
            allocations.iter().flat_map(|a| a.blocks()).map(ToString::to_string).collect();
        assert_eq!(blocks, one.prefixes, "{}", one.vnet);
    }

    // No usable secret: no private key in clear, no password; another key opens nothing.
    let bytes = std::fs::read(&file).unwrap();
    let holds =
        |needle: &str| bytes.windows(needle.len()).any(|window| window == needle.as_bytes());
    assert!(!holds("PRIVATE KEY"));
    for tenant in ["A", "B"] {
        for role in ["admin", "network_contributor"] {
            let (_, password) = server.demo_user(tenant, role);
            assert!(!holds(&password), "a password of {tenant}'s {role}");
        }
    }
    let stranger = scratch.path().join("stranger");
    std::fs::create_dir(&stranger).unwrap();
    let other_kek = scratch.path().join("other.kek");
    std::fs::write(&other_kek, format!("{}\n", identity::kek::Kek::generate_text())).unwrap();
    std::fs::set_permissions(&other_kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = crosspool(
        &stranger,
        &[
            "--kek-file",
            other_kek.to_str().unwrap(),
            "admin",
            "restore",
            "--from",
            file.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not open signing key"));
    assert!(!stranger.join("crosspool.db").exists(), "a refused restore leaves nothing behind");
    // Without any key it restores, and says the key is missing.
    let keyless = scratch.path().join("keyless");
    std::fs::create_dir(&keyless).unwrap();
    let summary =
        json_of(&crosspool(&keyless, &["admin", "restore", "--from", file.to_str().unwrap()]));
    assert_eq!(summary["keys"]["opened"], false, "{summary}");
}
