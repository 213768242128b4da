//! Helpers for the end-to-end tests: a Python virtual environment with the pinned clients of
//! `python/requirements.txt`, created on first use under `target/` and reused while the
//! requirements are unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This crate's directory.
pub fn e2e_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter of the test venv, creating the venv if needed.
///
/// The venv is built in a temporary directory and renamed into place, so test processes that
/// start together do not trip over each other; the loser of the race uses the winner's.
pub fn python() -> Result<PathBuf, String> {
    // Threads of one test process share one build; separate processes race to the rename below.
    static PYTHON: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    PYTHON.get_or_init(build_venv).clone()
}

fn build_venv() -> Result<PathBuf, String> {
    let requirements = e2e_dir().join("python/requirements.txt");
    let pinned = std::fs::read_to_string(&requirements)
        .map_err(|error| format!("reading {}: {error}", requirements.display()))?;
    let venv = e2e_dir().join("../../target/e2e-venv").join(fingerprint(&pinned));
    let interpreter = venv.join("bin/python");
    if interpreter.exists() {
        return Ok(interpreter);
    }
    let parent = venv.parent().expect("the venv path has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|error| format!("creating {}: {error}", parent.display()))?;
    let building = parent.join(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    run(Command::new("python3").args(["-m", "venv"]).arg(&building))?;
    run(Command::new(building.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements))?;
    // Only the scripts' shebangs remember where the venv was built; the tests run
    // `python script.py`, which needs none, so building elsewhere and renaming is safe.
    match std::fs::rename(&building, &venv) {
        Ok(()) => {}
        Err(_) if interpreter.exists() => {
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(error) => return Err(format!("moving the venv into {}: {error}", venv.display())),
    }
    Ok(interpreter)
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|error| format!("running {command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// A short stable hash of the pinned requirements, naming the venv built from them.
fn fingerprint(text: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A directory holding the portal test's scripts with their npm packages installed (from
/// `portal/package.json`, pinned), created on first use under `target/` and reused while the
/// package list is unchanged. The script is copied in on every call.
pub fn portal_scripts() -> Result<PathBuf, String> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(build_node_modules).clone()?;
    std::fs::copy(e2e_dir().join("portal/flow.mjs"), dir.join("flow.mjs"))
        .map_err(|error| format!("copying flow.mjs: {error}"))?;
    Ok(dir)
}

fn build_node_modules() -> Result<PathBuf, String> {
    let manifest = e2e_dir().join("portal/package.json");
    let pinned = std::fs::read_to_string(&manifest)
        .map_err(|error| format!("reading {}: {error}", manifest.display()))?;
    let dir = e2e_dir().join("../../target/e2e-node").join(fingerprint(&pinned));
    if dir.join("node_modules/playwright-core").exists() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("the directory has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|error| format!("creating {}: {error}", parent.display()))?;
    let building = parent.join(format!("building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)
        .map_err(|error| format!("creating {}: {error}", building.display()))?;
    std::fs::copy(&manifest, building.join("package.json"))
        .map_err(|error| format!("copying package.json: {error}"))?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&building))?;
    match std::fs::rename(&building, &dir) {
        Ok(()) => {}
        Err(_) if dir.join("node_modules/playwright-core").exists() => {
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(error) => return Err(format!("moving node_modules into {}: {error}", dir.display())),
    }
    Ok(dir)
}
