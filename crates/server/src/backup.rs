//! `crosspool admin backup`, `admin restore` and `admin check`: an online backup of a SQLite
//! store, its restore into a data directory without a store, and the audit to run after either
//! (or after an upgrade or a crash). PostgreSQL stores are backed up with PostgreSQL's tools
//! (docs/operations.md); `admin check` audits them too.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use store::audit::Audit;
use store::{Store, StoreConfig};

use crate::files::KekSource;

const POSTGRES_BACKUP: &str = "a PostgreSQL store is backed up and restored with pg_dump and pg_restore, or with PostgreSQL's point-in-time recovery: see docs/operations.md";

/// Backs the SQLite store of `data_dir` up to the new file `to`, while a server may be serving.
pub fn backup(config: &StoreConfig, data_dir: &Path, to: &Path) -> anyhow::Result<Value> {
    anyhow::ensure!(matches!(config, StoreConfig::Sqlite { .. }), "{POSTGRES_BACKUP}");
    let copied = store::backup::backup_sqlite(data_dir, to)
        .with_context(|| format!("backing up {} to {}", data_dir.display(), to.display()))?;
    Ok(json!({
        "backup": copied.path.display().to_string(),
        "bytes": copied.bytes,
        "schemaVersion": copied.schema_version,
        "note": "the backup holds the signing keys sealed with the key-encryption key, which it does not hold: keep that key (<data-dir>/kek or --kek-file) safe, apart from the backups",
    }))
}

/// Restores the backup `from` into `data_dir` (which must hold no store), brings it to this
/// build's schema, checks that the key-encryption key opens its signing keys, and audits it.
pub fn restore(
    config: &StoreConfig,
    from: &Path,
    data_dir: &Path,
    kek: &KekSource,
) -> anyhow::Result<Value> {
    anyhow::ensure!(matches!(config, StoreConfig::Sqlite { .. }), "{POSTGRES_BACKUP}");
    let copied = store::backup::restore_sqlite(from, data_dir)
        .with_context(|| format!("restoring {} into {}", from.display(), data_dir.display()))?;
    let checked = check_restored(config, data_dir, kek);
    if checked.is_err() {
        // The data directory is left as it was, so the restore can be run again.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = copied.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
    let keys = checked?;
    Ok(json!({
        "restored": copied.path.display().to_string(),
        "bytes": copied.bytes,
        "schemaVersion": copied.schema_version,
        "keys": keys,
        "audit": "clean",
    }))
}

/// Brings a restored store to this build's schema, checks that the key-encryption key opens
/// its signing keys (or says it is missing), and audits it.
fn check_restored(config: &StoreConfig, data_dir: &Path, kek: &KekSource) -> anyhow::Result<Value> {
    let store = Store::open(config).context("opening the restored store")?;
    let keys = match kek {
        KekSource::DataDir if !data_dir.join("kek").exists() => json!({
            "opened": false,
            "reason": format!("no key-encryption key at {}: copy the kek of the server the backup was taken from there (or pass --kek-file) before serving", data_dir.join("kek").display()),
        }),
        _ => {
            let kek = crate::files::load_kek(kek, data_dir)?;
            let records = store.read_blocking(|tx| tx.signing_keys())?;
            for record in &records {
                identity::jwt::SigningKey::from_record(record, &kek).map_err(|error| {
                    anyhow::anyhow!("the key-encryption key does not open signing key {} of this backup ({error}); use the key of the server it was taken from", record.kid)
                })?;
            }
            json!({ "opened": true, "signingKeys": records.len() })
        }
    };
    let audit = store.read_blocking(|tx| tx.audit()).context("auditing the restored store")?;
    anyhow::ensure!(audit.is_clean(), "the restored store fails its audit: {}", report(&audit));
    Ok(keys)
}

/// The audit as lines of text.
fn report(audit: &Audit) -> String {
    let list = |items: &[String]| {
        if items.is_empty() { "none".to_owned() } else { items.join(", ") }
    };
    format!(
        "integrity problems: {}\noverlapping allocation blocks: {}\npools whose space does not add up: {}\nallocations whose resource is gone: {}",
        list(&audit.integrity),
        audit.overlapping_blocks,
        list(&audit.unbalanced_pools),
        list(&audit.orphaned_allocations)
    )
}

/// Opens the store (creating or upgrading its schema), audits it and says what it found; an
/// error if anything is wrong.
pub fn check(config: &StoreConfig) -> anyhow::Result<String> {
    let store = Store::open(config).context("opening the store")?;
    let audit = store
        .read_blocking(|tx| tx.audit())
        .with_context(|| format!("auditing {}", store.location()))?;
    let text = format!(
        "store: {} ({:?}), schema version {}\n{}",
        store.location(),
        store.backend(),
        Store::schema_version_supported(),
        report(&audit)
    );
    anyhow::ensure!(audit.is_clean(), "{text}\nthe store fails its audit");
    Ok(text)
}
