//! The data directory and the secrets in it: the directory is the owner's alone (0700), secret
//! files are 0600 whatever the umask, a directory others can write is refused, and the
//! key-encryption key that seals the signing keys comes from a file or the environment.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use identity::kek::Kek;

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `<data-dir>/kek`, created (0600) on first start.
    DataDir,
    /// A file the operator keeps, e.g. on another volume; it must exist.
    File(PathBuf),
    /// The key itself (base64 of 32 bytes), e.g. from `CROSSPOOL_KEK`.
    Text(String),
}

/// The files in the data directory that hold secrets.
const SECRET_FILES: [&str; 6] = [
    "kek",
    "demo.json",
    "tls/server-key.pem",
    "crosspool.db",
    "crosspool.db-wal",
    "crosspool.db-shm",
];

/// Creates the data directory (0700) or checks the one there: refused if others can write to
/// it; group and other permissions on it and on its secret files are removed.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(metadata) => {
            anyhow::ensure!(metadata.is_dir(), "{} is not a directory", dir.display());
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o022 != 0 {
                bail!(
                    "the data directory {} can be written by other users (mode {mode:o}); it holds the store, the signing keys' encryption key and TLS keys, so crosspool will not use it. Run `chmod 700 {}` if it is yours",
                    dir.display(),
                    dir.display()
                );
            }
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, Permissions::from_mode(0o700))
                    .with_context(|| format!("making {} private", dir.display()))?;
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            // `mode` is filtered by the umask; the directory itself must be 0700 exactly.
            std::fs::set_permissions(dir, Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", dir.display()));
        }
    }
    for name in SECRET_FILES {
        make_private(&dir.join(name))?;
    }
    let tls = dir.join("tls");
    if tls.is_dir() {
        std::fs::set_permissions(&tls, Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", tls.display()))?;
    }
    Ok(())
}

/// Removes group and other permissions from a file, if it exists.
fn make_private(path: &Path) -> anyhow::Result<()> {
    let Ok(metadata) = std::fs::metadata(path) else { return Ok(()) };
    if metadata.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

/// Creates a directory only its owner can use.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// Writes a file only its owner can read (0600, whatever the umask and the file's old mode).
pub fn write_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.set_permissions(Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    file.write_all(contents).with_context(|| format!("writing {}", path.display()))
}

/// Writes a file anyone may read (a certificate).
pub fn write_public(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// The key-encryption key from `source`, creating `<data-dir>/kek` on first start.
pub fn load_kek(source: &KekSource, data_dir: &Path) -> anyhow::Result<Kek> {
    let (text, from) = match source {
        KekSource::Text(text) => (text.clone(), "CROSSPOOL_KEK".to_owned()),
        KekSource::File(path) => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("reading the key-encryption key {}", path.display()))?
                .permissions()
                .mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "the key-encryption key {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
            (text, path.display().to_string())
        }
        KekSource::DataDir => {
            let path = data_dir.join("kek");
            if !path.exists() {
                write_secret(&path, format!("{}\n", Kek::generate_text()).as_bytes())?;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
            (text, path.display().to_string())
        }
    };
    Kek::parse(&text).with_context(|| format!("the key-encryption key from {from}"))
}
