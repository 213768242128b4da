//! Online backup and restore of a SQLite store. A backup is `VACUUM INTO` a new file: one read
//! transaction, so it is consistent and the server keeps serving (WAL readers never block the
//! writer); never a copy of a live WAL database's files, which may miss what the WAL holds. A
//! restore copies a checked backup into an empty data directory. PostgreSQL stores are backed up
//! with PostgreSQL's own tools (docs/operations.md).
//!
//! A backup holds what the store holds: signing keys sealed with the key-encryption key (which
//! is not in it), Argon2id password hashes, and SHA-256 hashes of client secrets, authorization
//! codes and device codes (refresh tokens are signed, not stored) — no secret usable without
//! the key-encryption key.

use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::{create_private_file, migrate};

/// The store's file in a data directory.
pub fn sqlite_file(data_dir: &Path) -> PathBuf {
    data_dir.join("crosspool.db")
}

/// What a backup or restore produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: i64,
}

fn failed(location: &Path, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Open { location: location.display().to_string(), source: Box::new(error) }
}

/// Checks that `path` is a whole SQLite database of a schema this build can read: its
/// integrity check passes and its schema version is not newer.
fn check_file(path: &Path) -> Result<i64, StoreError> {
    let connection =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| failed(path, error))?;
    let verdict: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|error| failed(path, error))?;
    if verdict != "ok" {
        return Err(StoreError::InvalidConfig {
            setting: path.display().to_string(),
            reason: format!("the file fails SQLite's integrity check: {verdict}"),
        });
    }
    let version: i64 = connection
        .query_row("SELECT max(version) FROM crosspool_schema", [], |row| row.get(0))
        .map_err(|_| StoreError::InvalidConfig {
            setting: path.display().to_string(),
            reason: "the file is not a crosspool store".to_owned(),
        })?;
    let supported = migrate::latest_version();
    if version > supported {
        return Err(StoreError::NewerSchema {
            location: path.display().to_string(),
            found: version,
            supported,
        });
    }
    Ok(version)
}

/// Backs the SQLite store in `data_dir` up to `to`, a new file (mode 0600), while it serves.
pub fn backup_sqlite(data_dir: &Path, to: &Path) -> Result<Copied, StoreError> {
    let source = sqlite_file(data_dir);
    if !source.exists() {
        return Err(StoreError::InvalidConfig {
            setting: data_dir.display().to_string(),
            reason: "no crosspool.db in this data directory".to_owned(),
        });
    }
    if to.exists() {
        return Err(StoreError::InvalidConfig {
            setting: to.display().to_string(),
            reason: "the file exists; a backup is written to a new file".to_owned(),
        });
    }
    // VACUUM INTO writes into an empty file; made first, it is private from its first byte.
    let parent = to.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_file(parent, to).map_err(|error| failed(to, error))?;
    let outcome = (|| {
        let connection =
            rusqlite::Connection::open(&source).map_err(|error| failed(&source, error))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|error| failed(&source, error))?;
        let target = to.to_str().ok_or_else(|| StoreError::InvalidConfig {
            setting: to.display().to_string(),
            reason: "the path is not valid UTF-8".to_owned(),
        })?;
        connection.execute("VACUUM INTO ?1", [target]).map_err(|error| failed(to, error))?;
        let schema_version = check_file(to)?;
        let bytes = std::fs::metadata(to).map_err(|error| failed(to, error))?.len();
        Ok(Copied { path: to.to_owned(), bytes, schema_version })
    })();
    if outcome.is_err() {
        let _ = std::fs::remove_file(to);
    }
    outcome
}

/// Restores the backup `from` into `data_dir`, which must hold no store yet. The store is
/// brought up to this build's schema when it is next opened.
pub fn restore_sqlite(from: &Path, data_dir: &Path) -> Result<Copied, StoreError> {
    let target = sqlite_file(data_dir);
    let in_use = ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut name = target.clone().into_os_string();
        name.push(suffix);
        Path::new(&name).exists()
    });
    if in_use {
        return Err(StoreError::InvalidConfig {
            setting: data_dir.display().to_string(),
            reason: "the data directory already holds a store; restore into an empty one"
                .to_owned(),
        });
    }
    let schema_version = check_file(from)?;
    // Written beside the target and renamed into place, so a restore that stops half-way
    // leaves no store behind.
    let partial = data_dir.join("crosspool.db.restoring");
    let _ = std::fs::remove_file(&partial);
    create_private_file(data_dir, &partial).map_err(|error| failed(&partial, error))?;
    let copy = || -> std::io::Result<u64> {
        let mut reader = std::fs::File::open(from)?;
        let mut writer = std::fs::OpenOptions::new().write(true).truncate(true).open(&partial)?;
        let bytes = std::io::copy(&mut reader, &mut writer)?;
        writer.sync_all()?;
        std::fs::rename(&partial, &target)?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(bytes)
    };
    match copy() {
        Ok(bytes) => Ok(Copied { path: target, bytes, schema_version }),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(failed(&target, error))
        }
    }
}
